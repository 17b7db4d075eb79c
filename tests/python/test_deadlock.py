# SPDX-License-Identifier: MIT OR Apache-2.0
"""Deadlocks between sagas at the Python level: several locks taken in one global order.
Scenario names follow tests/node/deadlock.test.js."""

from __future__ import annotations

import asyncio

import pytest
import redis

import txcoord
from txcoord import LockManager


async def test_acquire_locks_takes_all_or_none_in_one_global_order(url: str, raw: redis.Redis) -> None:
    holder = LockManager(txcoord.Client(url))
    taker = LockManager(txcoord.Client(url))
    try:
        assert await holder.acquire_lock("set:b", 60000, 0) is not None
        assert await taker.acquire_locks(["set:c", "set:b", "set:a"], 30000, 1500) is None
        assert raw.exists("lock:set:a", "lock:set:c") == 0, "none of the set is held after a timeout"
        assert taker.held_resources == []
        await holder.release_lock("set:b")
        locks = await taker.acquire_locks(["set:c", "set:b", "set:a", "set:b"], 30000, 5000)
        assert locks is not None
        assert [l.key for l in locks] == ["lock:set:a", "lock:set:b", "lock:set:c"], "sorted, duplicates removed"
        assert all(l.is_held for l in locks)
        assert taker.held_resources == ["set:a", "set:b", "set:c"]
        assert await taker.release_locks(["set:a", "set:b", "set:c"]) == []
        assert raw.exists("lock:set:a", "lock:set:b", "lock:set:c") == 0

        # two managers asking for the same pair in opposite orders never deadlock
        async def worker(m: LockManager, order: list[str]) -> int:
            done = 0
            for _ in range(10):
                got = await m.acquire_locks(order, 30000, 20000)
                assert got is not None
                done += 1
                assert await m.release_locks(order) == []
            return done

        counts = await asyncio.wait_for(
            asyncio.gather(worker(holder, ["pair:x", "pair:y"]), worker(taker, ["pair:y", "pair:x"])), 60
        )
        assert list(counts) == [10, 10]
        for bad in ["set:a", 5, ["ok", ""]]:
            with pytest.raises((txcoord.InvalidTypeError, txcoord.InvalidArgumentError)) as e:
                await taker.acquire_locks(bad)  # type: ignore[arg-type]
            assert e.value.argument == "resources"
        with pytest.raises(txcoord.InvalidArgumentError) as e:
            await taker.acquire_locks(["ok"], ttl_ms=0)
        assert e.value.argument == "ttl_ms"
    finally:
        await holder.aclose()
        await taker.aclose()


def test_acquire_locks_blocking(url: str, raw: redis.Redis) -> None:
    m = txcoord.sync.LockManager(url)
    try:
        locks = m.acquire_locks(["s:2", "s:1"], 30000, 1000)
        assert locks is not None and [l.key for l in locks] == ["lock:s:1", "lock:s:2"]
        assert isinstance(locks[0], txcoord.sync.DistributedLock)
        assert m.release_locks(["s:1", "s:2"]) == []
        assert raw.exists("lock:s:1", "lock:s:2") == 0
    finally:
        m.close()

