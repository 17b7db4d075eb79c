# SPDX-License-Identifier: MIT OR Apache-2.0
"""The seed's flow on redis-py clients (sync and asyncio): `LockManager(redis)` and
`DistributedLock(redis, key, ttl)` keep working when `redis` is the application's redis-py
client; and wire compatibility with the seed's own SET NX / compare-and-delete holder."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import pytest
import redis
import redis.asyncio

import txcoord
import txcoord.sync

from helpers import wait_for

# A lock value of protocol 2: the version, then a UUID v4 like the seed's values.
LOCK_VALUE = re.compile(r"^2:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

# The seed's release and extend scripts (shared/infrastructure/distributed-lock.ts).
SEED_RELEASE = 'if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end'


def txcoord_connections(raw: redis.Redis, db: int) -> int:
    return sum(1 for c in raw.client_list() if c.get("name", "").startswith("txcoord-") and c.get("db") == str(db))


def redis_py_client(kind: str, url: str) -> Any:
    if kind == "asyncio":
        return redis.asyncio.Redis.from_url(url)
    return redis.Redis.from_url(url)


async def close(client: Any) -> None:
    result = client.close() if not hasattr(client, "aclose") else client.aclose()
    if asyncio.iscoroutine(result):
        await result


@pytest.mark.parametrize("kind", ["sync", "asyncio"])
async def test_the_seeds_flow_on_a_redis_py_client(kind: str, url: str, raw: redis.Redis) -> None:
    db = {"sync": 3, "asyncio": 4}[kind]  # a database only this test uses
    dburl = url.rsplit("/", 1)[0] + f"/{db}"
    client = redis_py_client(kind, dburl)
    rawdb = redis.Redis.from_url(dburl, decode_responses=True)
    try:
        # const lockManager = new LockManager(redis)
        manager = txcoord.LockManager(client)
        other = txcoord.LockManager(client)
        lock = await manager.acquire_lock("order:42")
        assert isinstance(lock, txcoord.DistributedLock)
        value = rawdb.get("lock:order:42")
        assert isinstance(value, str) and LOCK_VALUE.match(value), "the key is in the redis-py client's database"
        assert raw.exists("lock:order:42") == 0
        assert await other.acquire_lock("order:42", 5000, 300) is None
        await manager.release_lock("order:42")
        assert rawdb.exists("lock:order:42") == 0
        assert await other.acquire_lock("order:42", 5000, 1000) is not None
        for i in range(10):
            assert await manager.acquire_lock(f"order:{i}", 5000, 1000) is not None
        # new DistributedLock(redis, lockKey, ttl), as the seed's manager builds one per call
        direct = txcoord.DistributedLock(client, "lock:direct", 30000)
        assert await direct.acquire() is True
        assert await direct.extend() is True
        assert await direct.extend(5000) is True
        assert await txcoord.DistributedLock(client, "lock:direct", 30000).acquire() is False
        await direct.release()
        assert await manager.release_all_locks() == []
        assert await other.release_all_locks() == []
        assert rawdb.keys("lock:*") == []
        assert txcoord_connections(raw, db) == 1, "one txcoord connection for the redis-py client"
    finally:
        rawdb.close()
        await close(client)


def test_the_blocking_twin_on_a_sync_redis_py_client(url: str, raw: redis.Redis) -> None:
    client = redis.Redis.from_url(url)
    try:
        manager = txcoord.sync.LockManager(client)
        with manager.lock("invoice:7", 5000) as lock:
            assert lock.is_held
            assert raw.exists("lock:invoice:7") == 1
        assert raw.exists("lock:invoice:7") == 0
        direct = txcoord.sync.DistributedLock(client, "lock:d", 5000)
        assert direct.acquire() is True
        direct.release()
    finally:
        client.close()


async def test_acl_credentials_are_read_from_the_redis_py_client(url: str, raw: redis.Redis) -> None:
    user = f"u{uuid.uuid4().hex[:8]}"
    password = "s3cr@t:/ %x"
    raw.acl_setuser(user, enabled=True, passwords=[f"+{password}"], keys=["~*"], channels=["*"], commands=["+@all"])
    host_port = url.split("//", 1)[1].rsplit("/", 1)[0]
    host, port = host_port.split(":")
    client = redis.asyncio.Redis(host=host, port=int(port), username=user, password=password)
    try:
        manager = txcoord.LockManager(client)
        lock = await manager.acquire_lock("acl", 5000, 0)
        assert lock is not None
        names = {c.get("name"): c.get("user") for c in raw.client_list()}
        assert user in names.values(), "txcoord connected as the ACL user"
        await manager.release_all_locks()
        wrong = redis.asyncio.Redis(host=host, port=int(port), username=user, password="wrong")
        with pytest.raises(txcoord.TxcoordError):
            await txcoord.LockManager(wrong).acquire_lock("acl", 5000, 0)
        await wrong.aclose()
    finally:
        await client.aclose()
        raw.acl_deluser(user)


async def test_wire_compatibility_with_the_seeds_own_lock_both_ways(url: str, raw: redis.Redis, name: str) -> None:
    key = f"lock:{name}"
    # the seed holds: SET key uuid PX ttl NX
    seed_value = str(uuid.uuid4())
    assert raw.set(key, seed_value, px=30000, nx=True)
    m = txcoord.LockManager(url)
    assert await m.acquire_lock(name, 5000, 0) is None
    # a txcoord waiter polls a seed holder (which announces nothing) and gets the lock soon after
    pending = asyncio.ensure_future(m.acquire_lock(name, 5000, 10000))
    await wait_for(lambda: raw.hlen(f"{{{key}}}:~w") == 1, "the txcoord waiter to queue")
    assert raw.eval(SEED_RELEASE, 1, key, seed_value) == 1
    lock = await asyncio.wait_for(pending, 15)
    assert lock is not None
    # txcoord holds: the seed's SET NX fails, and its release script deletes nothing
    assert raw.set(key, str(uuid.uuid4()), px=30000, nx=True) is None
    assert raw.eval(SEED_RELEASE, 1, key, "not-the-holder") == 0
    await lock.release()
    assert raw.set(key, "seed-again", px=30000, nx=True)
    raw.delete(key)
