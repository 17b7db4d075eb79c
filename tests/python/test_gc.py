# SPDX-License-Identifier: MIT OR Apache-2.0
"""Locks and the garbage collector: an object that holds a lock whose `on_lost` callback is one
of its own methods (owner -> lock -> callback -> owner) is collected once the program drops it,
and its lock stops being renewed; while the object lives, the lock is renewed and the callback
still reports a loss. Async and blocking classes, standalone locks and locks from a manager."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import weakref
from typing import Any, Callable

import redis

import txcoord
import txcoord.sync

from helpers import wait_for, wait_until

# Short enough to see the lock outlive several TTLs, long enough that a loaded machine renews
# it in time (every ~333 ms).
TTL_MS = 1000
# How long a dropped owner's lock may stay in Redis: the release sent when the lock is dropped,
# or at worst the key's expiry (TTL) once renewals stop, with room for a loaded machine.
GONE_WITHIN_S = 10.0


# Collections tried before an owner is declared leaked (a thread that just ran a callback may
# still hold it for a moment, and asyncio keeps the future of the last awaited call, with its
# result, until the loop's next step).
COLLECTIONS = 50
BETWEEN_COLLECTIONS_S = 0.02


def not_collected(ref: weakref.ref[Any], what: str) -> AssertionError:
    return AssertionError(f"{what} was not collected: referrers {gc.get_referrers(ref())!r}")


def collect_until_dead(ref: weakref.ref[Any], what: str) -> None:
    """Runs the collector until `ref` is dead (bounded in count and time)."""
    for _ in range(COLLECTIONS):
        gc.collect()
        if ref() is None:
            return
        time.sleep(BETWEEN_COLLECTIONS_S)
    raise not_collected(ref, what)


async def collect_until_dead_async(ref: weakref.ref[Any], what: str) -> None:
    """As `collect_until_dead`, letting the event loop run between collections."""
    for _ in range(COLLECTIONS):
        gc.collect()
        if ref() is None:
            return
        await asyncio.sleep(BETWEEN_COLLECTIONS_S)
    raise not_collected(ref, what)


class AsyncOwner:
    """Holds a standalone lock whose `on_lost` is a method of this object."""

    def __init__(self, client: txcoord.Client, key: str) -> None:
        self.reasons: list[str] = []
        self.lost_event = asyncio.Event()
        self.lock = txcoord.DistributedLock(client, key, TTL_MS, on_lost=self.lost)

    def lost(self, reason: str) -> None:
        self.reasons.append(reason)
        self.lost_event.set()


class AsyncManagerOwner:
    """Holds a manager and a lock from it whose `on_lost` is a method of this object."""

    def __init__(self, client: txcoord.Client) -> None:
        self.reasons: list[str] = []
        self.lost_event = asyncio.Event()
        self.manager = txcoord.LockManager(client)
        self.lock: txcoord.DistributedLock | None = None

    async def acquire(self, resource: str) -> None:
        self.lock = await self.manager.acquire_lock(resource, TTL_MS, 0, on_lost=self.lost)
        assert self.lock is not None

    def lost(self, reason: str) -> None:
        self.reasons.append(reason)
        self.lost_event.set()


class SyncOwner:
    def __init__(self, client: txcoord.sync.Client, key: str) -> None:
        self.reasons: list[str] = []
        self.lost_event = threading.Event()
        self.lock = txcoord.sync.DistributedLock(client, key, TTL_MS, on_lost=self.lost)

    def lost(self, reason: str) -> None:
        self.reasons.append(reason)
        self.lost_event.set()


class SyncManagerOwner:
    def __init__(self, client: txcoord.sync.Client) -> None:
        self.reasons: list[str] = []
        self.lost_event = threading.Event()
        self.manager = txcoord.sync.LockManager(client)
        self.lock: txcoord.sync.DistributedLock | None = None

    def acquire(self, resource: str) -> None:
        self.lock = self.manager.acquire_lock(resource, TTL_MS, 0, on_lost=self.lost)
        assert self.lock is not None

    def lost(self, reason: str) -> None:
        self.reasons.append(reason)
        self.lost_event.set()


def renewed_past_three_ttls(stats: Callable[[], dict[str, int]]) -> Callable[[], bool]:
    """A condition: at least 3 TTLs have passed and the client renewed at least 4 times since."""
    started = time.monotonic()
    before = stats()["renewals"]
    return lambda: time.monotonic() - started > 3 * TTL_MS / 1000 and stats()["renewals"] >= before + 4


# -- async ---------------------------------------------------------------------------------------


async def test_a_dropped_owner_of_a_lock_with_its_own_method_as_on_lost_is_collected(
    url: str, raw: redis.Redis, name: str
) -> None:
    key = f"lock:{name}"
    client = txcoord.Client(url)
    owner = AsyncOwner(client, key)
    assert await owner.lock.acquire() is True
    value = raw.get(key)
    # While the owner lives, collections leave it alone and the lock is renewed.
    gc.collect()
    await wait_for(renewed_past_three_ttls(client.stats), "renewals past 3 TTLs")
    assert raw.get(key) == value, "the lock stayed held"

    ref = weakref.ref(owner)
    del owner
    await collect_until_dead_async(ref, "the owner")
    await wait_for(lambda: raw.exists(key) == 0, "the dropped lock to leave Redis", timeout=GONE_WITHIN_S)


async def test_an_owner_method_as_on_lost_still_reports_a_loss(url: str, raw: redis.Redis, name: str) -> None:
    key = f"lock:{name}"
    owner = AsyncOwner(txcoord.Client(url), key)
    assert await owner.lock.acquire() is True
    gc.collect()
    raw.set(key, "intruder", px=60000)
    await asyncio.wait_for(owner.lost_event.wait(), 10)
    assert owner.reasons == ["taken"]
    ref = weakref.ref(owner)
    del owner
    await collect_until_dead_async(ref, "the owner of a lost lock")
    assert raw.get(key) == "intruder"


async def test_a_dropped_owner_of_a_manager_and_its_lock_is_collected(url: str, raw: redis.Redis, name: str) -> None:
    client = txcoord.Client(url)
    owner = AsyncManagerOwner(client)
    await owner.acquire(name)
    value = raw.get(f"lock:{name}")
    gc.collect()
    await wait_for(renewed_past_three_ttls(client.stats), "renewals past 3 TTLs")
    assert raw.get(f"lock:{name}") == value, "the lock stayed held"

    # The callback is the manager's to call while it holds the lock, with or without the lock
    # object.
    owner.lock = None
    gc.collect()
    raw.set(f"lock:{name}", "intruder", px=60000)
    await asyncio.wait_for(owner.lost_event.wait(), 10)
    assert owner.reasons == ["taken"]
    await owner.manager.release_all_locks()

    await owner.acquire(f"{name}-2")
    ref = weakref.ref(owner)
    del owner
    await collect_until_dead_async(ref, "the owner")
    await wait_for(lambda: raw.exists(f"lock:{name}-2") == 0, "the dropped lock to leave Redis", timeout=GONE_WITHIN_S)


async def test_a_scoped_lock_context_with_its_owner_method_as_on_lost_is_collected(url: str, name: str) -> None:
    class Owner:
        def __init__(self) -> None:
            self.manager = txcoord.LockManager(url)
            self.scope = self.manager.lock(name, TTL_MS, on_lost=self.lost)

        def lost(self, reason: str) -> None:
            pass

    owner = Owner()
    async with owner.scope as lock:
        assert lock.is_held
    ref = weakref.ref(owner)
    del owner, lock
    await collect_until_dead_async(ref, "the owner of a lock context")


async def test_a_manager_keeps_an_on_lost_callback_only_while_it_holds_the_lock(url: str, name: str) -> None:
    m = txcoord.LockManager(url)

    def on_lost(reason: str) -> None:
        pass

    def kept() -> int:
        """How many references to the callback the manager reports to the collector."""
        return sum(1 for r in gc.get_referents(m) if r is on_lost)

    for i in range(3):
        lock = await m.acquire_lock(f"{name}-{i}", 30000, 0, on_lost=on_lost)
        assert lock is not None
        assert kept() == 1
        await lock.release()
        await wait_for(lambda: kept() == 0, "the released lock's callback to be dropped")

    other = txcoord.LockManager(url)
    assert await other.acquire_lock(name, 30000, 0) is not None
    assert await m.acquire_lock(name, 30000, 100, on_lost=on_lost) is None
    assert kept() == 0, "an acquisition that timed out keeps no callback"
    await other.aclose()


# -- blocking ------------------------------------------------------------------------------------


def test_sync_a_dropped_owner_of_a_lock_with_its_own_method_as_on_lost_is_collected(
    url: str, raw: redis.Redis, name: str
) -> None:
    key = f"lock:{name}"
    client = txcoord.sync.Client(url)
    owner = SyncOwner(client, key)
    assert owner.lock.acquire() is True
    value = raw.get(key)
    gc.collect()
    wait_until(renewed_past_three_ttls(client.stats), "renewals past 3 TTLs")
    assert raw.get(key) == value, "the lock stayed held"

    ref = weakref.ref(owner)
    del owner
    collect_until_dead(ref, "the owner")
    wait_until(lambda: raw.exists(key) == 0, "the dropped lock to leave Redis", timeout=GONE_WITHIN_S)


def test_sync_an_owner_method_as_on_lost_still_reports_a_loss(url: str, raw: redis.Redis, name: str) -> None:
    key = f"lock:{name}"
    owner = SyncOwner(txcoord.sync.Client(url), key)
    assert owner.lock.acquire() is True
    gc.collect()
    raw.set(key, "intruder", px=60000)
    assert owner.lost_event.wait(10)
    assert owner.reasons == ["taken"]
    ref = weakref.ref(owner)
    del owner
    collect_until_dead(ref, "the owner of a lost lock")


def test_sync_a_dropped_owner_of_a_manager_and_its_lock_is_collected(url: str, raw: redis.Redis, name: str) -> None:
    client = txcoord.sync.Client(url)
    owner = SyncManagerOwner(client)
    owner.acquire(name)
    value = raw.get(f"lock:{name}")
    gc.collect()
    wait_until(renewed_past_three_ttls(client.stats), "renewals past 3 TTLs")
    assert raw.get(f"lock:{name}") == value, "the lock stayed held"

    owner.lock = None
    gc.collect()
    raw.set(f"lock:{name}", "intruder", px=60000)
    assert owner.lost_event.wait(10)
    assert owner.reasons == ["taken"]
    owner.manager.release_all_locks()

    owner.acquire(f"{name}-2")
    ref = weakref.ref(owner)
    del owner
    collect_until_dead(ref, "the owner")
    wait_until(lambda: raw.exists(f"lock:{name}-2") == 0, "the dropped lock to leave Redis", timeout=GONE_WITHIN_S)


def test_sync_a_scoped_lock_context_with_its_owner_method_as_on_lost_is_collected(url: str, name: str) -> None:
    class Owner:
        def __init__(self) -> None:
            self.manager = txcoord.sync.LockManager(url)
            self.scope = self.manager.lock(name, TTL_MS, on_lost=self.lost)

        def lost(self, reason: str) -> None:
            pass

    owner = Owner()
    with owner.scope as lock:
        assert lock.is_held
    ref = weakref.ref(owner)
    del owner, lock
    collect_until_dead(ref, "the owner of a lock context")
