# SPDX-License-Identifier: MIT OR Apache-2.0
"""How a `redis` argument given as a URL string becomes a connection: the core's policy
(`binding::target::url_client`, `Client.shared` in Rust) of one client per URL while in use,
closed once nobody uses it. tests/node/connections.test.js has the same tests."""

from __future__ import annotations

import gc
import uuid

import redis

import txcoord
import txcoord.sync

from helpers import wait_for, wait_until


def _url_of_db(url: str, db: int) -> str:
    # A database only this test uses: other tests' connections to the server do not count.
    return url.rsplit("/", 1)[0] + f"/{db}"


def txcoord_connections(raw: redis.Redis, db: int) -> int:
    return sum(1 for c in raw.client_list() if c.get("name", "").startswith("txcoord-") and c.get("db") == str(db))


async def test_two_managers_built_from_the_same_url_share_one_connection(url: str, raw: redis.Redis) -> None:
    db = 7
    dburl = _url_of_db(url, db)
    a = txcoord.LockManager(dburl)
    b = txcoord.LockManager(dburl)
    name = f"r-{uuid.uuid4().hex[:8]}"
    first = await a.acquire_lock(f"{name}-a", 5000, 0)
    second = await b.acquire_lock(f"{name}-b", 5000, 0)
    assert first is not None and second is not None
    # The seed builds a DistributedLock per call on its `redis`: no connection per lock either.
    direct = txcoord.sync.DistributedLock(dburl, f"lock:{name}-c", 5000)
    assert direct.acquire() is True
    assert txcoord_connections(raw, db) == 1, raw.client_list()
    direct.release()
    assert await a.release_all_locks() == []
    assert await b.release_all_locks() == []
    # An explicit Client is a connection of its own.
    own = txcoord.LockManager(txcoord.Client(dburl))
    assert await own.acquire_lock(f"{name}-d", 5000, 0) is not None
    assert txcoord_connections(raw, db) == 2
    await own.aclose()


async def test_a_client_nobody_uses_any_more_is_closed(url: str, raw: redis.Redis) -> None:
    db = 8
    dburl = _url_of_db(url, db)
    managers = [txcoord.LockManager(dburl) for _ in range(3)]
    for i, m in enumerate(managers):
        lock = await m.acquire_lock(f"gone-{i}", 5000, 0)
        assert lock is not None
        await lock.release()
    del lock
    assert txcoord_connections(raw, db) == 1
    del managers, m
    gc.collect()
    await wait_for(lambda: txcoord_connections(raw, db) == 0, "the unused client's connection to close")
    # The next manager for the URL opens a new connection.
    again = txcoord.LockManager(dburl)
    assert await again.acquire_lock("gone-again", 5000, 0) is not None
    assert txcoord_connections(raw, db) == 1
    await again.aclose()


def test_the_blocking_twins_follow_the_same_policy(url: str, raw: redis.Redis) -> None:
    db = 9
    dburl = _url_of_db(url, db)
    a = txcoord.sync.LockManager(dburl)
    b = txcoord.sync.LockManager(dburl)
    with a.lock("sync-a", 5000), b.lock("sync-b", 5000):
        assert txcoord_connections(raw, db) == 1
    del a, b
    gc.collect()
    wait_until(lambda: txcoord_connections(raw, db) == 0, "the unused client's connection to close")
