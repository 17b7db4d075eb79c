# SPDX-License-Identifier: MIT OR Apache-2.0
"""The core lock scenarios at the Python (asyncio) level, against a throwaway redis-server.
Scenario names follow tests/node/lock.test.js."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
import redis

import txcoord
from txcoord import Client, DistributedLock, LockManager

from helpers import ROOT, native_hook, wait_for, waiter_keys

# A lock value of protocol 2: the version, then a UUID v4 like the seed's values.
LOCK_VALUE = re.compile(r"^2:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")



async def test_mutual_exclusion_with_strictly_increasing_fencing_tokens(url: str, raw: redis.Redis, name: str) -> None:
    managers = [LockManager(Client(url)), LockManager(Client(url))]
    inside = 0
    max_inside = 0
    tokens: list[int] = []

    async def worker(i: int) -> None:
        nonlocal inside, max_inside
        m = managers[i % 2]
        for _ in range(3):
            lock = await m.acquire_lock(name, 5000, 20000)
            assert lock is not None, "acquired within the timeout"
            inside += 1
            max_inside = max(max_inside, inside)
            assert lock.fencing_token is not None
            tokens.append(lock.fencing_token)
            assert lock.fencing_token < 2**53
            await asyncio.to_thread(raw.incr, f"{name}:counter")  # a round trip while holding
            inside -= 1
            await lock.release()

    await asyncio.gather(*(worker(i) for i in range(12)))
    assert max_inside == 1
    assert len(tokens) == 36
    assert all(b > a for a, b in zip(tokens, tokens[1:])), tokens
    assert raw.exists(f"lock:{name}") == 0


async def test_a_vanished_holder_its_lock_expires_and_the_next_token_is_larger(url: str, raw: redis.Redis, name: str) -> None:
    script = (
        "import asyncio, os, sys, txcoord\n"
        "async def main():\n"
        "    m = txcoord.LockManager(os.environ['REDIS_URL'])\n"
        f"    lock = await m.acquire_lock({name!r}, 3000, 1000)\n"
        "    print(lock.fencing_token, flush=True)\n"
        "    await asyncio.Event().wait()\n"
        "asyncio.run(main())\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        env={**os.environ, "REDIS_URL": url},
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 20)
        token = int(line)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()
    assert raw.exists(f"lock:{name}") == 1, "the dead holder still holds the key"
    m = LockManager(url)
    lock = await m.acquire_lock(name, 5000, 10000)
    assert lock is not None, "acquired after the expiry"
    assert lock.fencing_token is not None and lock.fencing_token > token
    await m.release_all_locks()


async def test_a_process_still_holding_a_lock_exits_and_its_key_expires_with_the_ttl(
    url: str, raw: redis.Redis, name: str
) -> None:
    """A normal exit (not a crash) with a lock still held: the interpreter's finalization drops
    the handles, and the lock is left to its TTL (never a release the exiting process may or may
    not finish)."""
    ttl = 5000
    # The manager and its lock live in a module global until the interpreter's finalization.
    script = (
        "import asyncio, os, txcoord\n"
        "held = []\n"
        "async def main():\n"
        "    manager = txcoord.LockManager(os.environ['REDIS_URL'])\n"
        f"    lock = await manager.acquire_lock({name!r}, {ttl}, 1000)\n"
        "    held.extend([manager, lock])\n"
        "    print(lock.fencing_token, flush=True)\n"
        "asyncio.run(main())\n"
    )
    child = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", script],
        env={**os.environ, "REDIS_URL": url},
        capture_output=True,
        cwd=ROOT,
        timeout=60,
    )
    assert child.returncode == 0, child.stderr
    token = int(child.stdout.decode().split()[0])
    checked = time.monotonic()
    value, pttl = raw.get(f"lock:{name}"), raw.pttl(f"lock:{name}")
    assert isinstance(value, str) and LOCK_VALUE.match(value), "held after the exit, with the child's value"
    assert 0 < pttl <= ttl, f"pttl {pttl}"
    secs, micros = raw.time()
    assert token <= secs * 1_000_000 + micros
    # It disappears by expiry: not before its pttl ran out.
    await wait_for(lambda: raw.exists(f"lock:{name}") == 0, "the key's expiry", (pttl + 10_000) / 1000, 0.05)
    assert (time.monotonic() - checked) * 1000 >= pttl - 100, "gone before its pttl ran out"


async def test_lost_lock_reason_taken_by_lost_and_on_lost(url: str, raw: redis.Redis, name: str) -> None:
    m = LockManager(url)
    reasons: list[str] = []
    called = asyncio.Event()

    def on_lost(reason: str) -> None:
        reasons.append(reason)
        called.set()

    lock = await m.acquire_lock(name, 3000, 0, on_lost=on_lost)
    assert lock is not None
    waiting = asyncio.ensure_future(lock.lost())
    raw.set(f"lock:{name}", "intruder", px=60000)
    assert await asyncio.wait_for(waiting, 10) == "taken"
    await asyncio.wait_for(called.wait(), 10)
    assert reasons == ["taken"]
    assert lock.is_held is False
    assert lock.loss_reason == "taken"
    assert lock.status == "lost"
    assert await lock.lost() == "taken", "resolves at once once lost"
    await lock.release()  # does not raise, and does not delete the intruder's key
    assert raw.get(f"lock:{name}") == "intruder"


async def test_lost_lock_reason_expired_on_a_distributed_lock_with_a_coroutine_callback(
    url: str, raw: redis.Redis, name: str
) -> None:
    seen: asyncio.Queue[str] = asyncio.Queue()

    async def on_lost(reason: str) -> None:
        await seen.put(reason)

    lock = DistributedLock(url, f"lock:{name}", 3000, on_lost=on_lost)
    assert await lock.acquire() is True
    raw.delete(f"lock:{name}")
    assert await asyncio.wait_for(seen.get(), 10) == "expired"
    assert lock.loss_reason == "expired"
    assert await lock.extend() is False
    await lock.release()


async def test_renewal_keeps_a_lock_alive_well_past_its_ttl(url: str, raw: redis.Redis, name: str) -> None:
    client = Client(url)
    m = LockManager(client)
    lock = await m.acquire_lock(name, 1000, 0)  # renewed every ~333 ms
    assert lock is not None
    value = raw.get(f"lock:{name}")
    assert isinstance(value, str) and LOCK_VALUE.match(value)
    before = client.stats()["renewals"]
    await wait_for(lambda: client.stats()["renewals"] >= before + 4, "4 renewals")
    assert raw.get(f"lock:{name}") == value
    assert raw.pttl(f"lock:{name}") > 0
    assert lock.is_held is True
    assert 0 < lock.remaining_validity_ms <= 1000
    await m.release_lock(name)
    assert raw.exists(f"lock:{name}") == 0
    assert lock.is_held is False
    assert lock.remaining_validity_ms == 0
    assert lock.status == "released"
    assert await lock.lost() is None


async def test_extend_sets_the_expiry_now_and_defaults_to_the_ttl(url: str, raw: redis.Redis, name: str) -> None:
    lock = DistributedLock(url, f"lock:{name}", 2000)
    assert lock.ttl_ms == 2000
    assert await lock.acquire() is True
    assert await lock.extend(60000) is True
    assert raw.pttl(f"lock:{name}") > 50000
    assert lock.remaining_validity_ms > 50000
    assert await lock.extend(timedelta(seconds=1)) is True
    assert raw.pttl(f"lock:{name}") <= 1000
    assert await lock.extend() is True
    assert 1000 < raw.pttl(f"lock:{name}") <= 2000
    await lock.release()
    assert await lock.extend() is False


async def test_defaults_are_the_core_defaults(url: str, raw: redis.Redis, name: str) -> None:
    assert txcoord.DEFAULT_TTL_MS == 30000
    assert txcoord.DEFAULT_TIMEOUT_MS == 10000
    lock = DistributedLock(url, f"lock:{name}")
    assert lock.ttl_ms == txcoord.DEFAULT_TTL_MS
    m = LockManager(url)
    held = await m.acquire_lock(name)
    assert held is not None
    assert held.ttl_ms == txcoord.DEFAULT_TTL_MS
    assert held.hold_count == 1
    assert held.owner_id is None
    assert held.priority == 0
    assert held.key == f"lock:{name}"
    pttl = raw.pttl(f"lock:{name}")
    assert 29000 < pttl <= 30000
    await m.release_all_locks()


async def test_durations_accept_timedelta(url: str, raw: redis.Redis, name: str) -> None:
    m = LockManager(url)
    lock = await m.acquire_lock(name, timedelta(seconds=5), timedelta(0))
    assert lock is not None and lock.ttl_ms == 5000
    assert await m.acquire_lock(name, 5000, timedelta(milliseconds=50)) is None
    await m.release_all_locks()


async def test_timeout_returns_none_and_leaves_no_waiter_entry(url: str, raw: redis.Redis, name: str) -> None:
    holder = LockManager(url)
    waiter = LockManager(Client(url))
    assert await holder.acquire_lock(name, 10000, 0) is not None
    started = time.monotonic()
    assert await waiter.acquire_lock(name, 10000, 300) is None
    assert time.monotonic() - started >= 0.28
    q, w = waiter_keys(name)
    assert raw.exists(q, w) == 0
    assert await waiter.acquire_lock(name, 10000, 0) is None, "timeout 0 tries once"
    await holder.release_all_locks()


async def test_a_waiter_is_woken_by_the_release_notification_not_by_a_timer(url: str, raw: redis.Redis, name: str) -> None:
    holder = LockManager(Client(url))
    waiter_client = Client(url)
    waiter = LockManager(waiter_client, fallback_poll_ms=60000, waiter_lease_ms=120000)
    assert await holder.acquire_lock(name, 60000, 0) is not None
    before = waiter_client.stats()
    pending = asyncio.ensure_future(waiter.acquire_lock(name, 60000, 30000))
    _, w = waiter_keys(name)
    # Wait until it sleeps: a release before that could be found by its next attempt instead of
    # being announced to it.
    await wait_for(lambda: waiter_client.stats()["sleeps"] > before["sleeps"], "the waiter to go to sleep")
    assert raw.hlen(w) == 1, "the waiter is registered"
    assert not pending.done()
    await holder.release_lock(name)
    lock = await asyncio.wait_for(pending, 20)
    assert lock is not None
    stats = waiter_client.stats()
    assert stats["wake_notified"] > before["wake_notified"], stats
    assert stats["wake_timer"] == before["wake_timer"], stats
    await waiter.release_all_locks()


async def test_fair_mode_serves_waiters_in_arrival_order(url: str, raw: redis.Redis, name: str) -> None:
    holder = LockManager(url)
    assert await holder.acquire_lock(name, 30000, 0) is not None
    order: list[int] = []
    q, _ = waiter_keys(name)

    async def wait_turn(i: int, m: LockManager) -> None:
        lock = await m.acquire_lock(name, 30000, 30000)
        assert lock is not None
        order.append(i)
        await lock.release()

    tasks = []
    for i in range(4):
        m = LockManager(Client(url), fair=True)
        tasks.append(asyncio.ensure_future(wait_turn(i, m)))
        await wait_for(lambda: raw.zcard(q) == i + 1, f"waiter {i} queued")
    await holder.release_lock(name)
    await asyncio.wait_for(asyncio.gather(*tasks), 30)
    assert order == [0, 1, 2, 3]


async def test_reentrant_for_one_explicit_owner_exclusive_without_an_owner(url: str, raw: redis.Redis, name: str) -> None:
    saga = LockManager(url, owner_id="saga-7")
    assert saga.owner_id == "saga-7"
    first = await saga.acquire_lock(name, 10000, 0)
    second = await saga.acquire_lock(name, 10000, 1000)
    assert first is not None and second is not None
    assert second.fencing_token == first.fencing_token
    assert second.hold_count == 2
    assert second.owner_id == "saga-7"
    other = LockManager(url, owner_id="saga-8")
    assert await other.acquire_lock(name, 10000, 0) is None
    await saga.release_lock(name)
    assert raw.exists(f"lock:{name}") == 1, "still held once"
    await saga.release_lock(name)
    assert raw.exists(f"lock:{name}") == 0

    plain = LockManager(url)
    assert await plain.acquire_lock(f"{name}x", 10000, 0) is not None
    assert await plain.acquire_lock(f"{name}x", 10000, 200) is None, "no owner: one manager excludes itself"
    a = await plain.acquire_lock(f"{name}y", 10000, 0, owner_id="o")
    b = await plain.acquire_lock(f"{name}y", 10000, 0, owner_id="o")
    assert a is not None and b is not None
    assert b.hold_count == 2 and a.fencing_token == b.fencing_token
    assert plain.held_resources == sorted([f"{name}x", f"{name}y"])
    assert await plain.release_all_locks() == []
    assert raw.exists(f"lock:{name}x", f"lock:{name}y") == 0


async def test_cancelling_a_waiting_acquire_removes_its_waiter_entry(url: str, raw: redis.Redis, name: str) -> None:
    holder = LockManager(url)
    waiter = LockManager(Client(url))
    assert await holder.acquire_lock(name, 30000, 0) is not None
    q, w = waiter_keys(name)

    task = asyncio.create_task(waiter.acquire_lock(name, 30000, 30000))
    await wait_for(lambda: raw.hlen(w) == 1, "the waiter to queue")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_for(lambda: raw.exists(q, w) == 0, "the waiter entry to be removed")

    # asyncio.wait_for cancels the same way
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(waiter.acquire_lock(name, 30000, 30000), 0.2)
    await wait_for(lambda: raw.exists(q, w) == 0, "no waiter left after wait_for")

    # and so does cancelling the scoped form while it waits
    async def scoped() -> None:
        async with waiter.lock(name, 30000, 30000):
            raise AssertionError("must not be entered")

    task2 = asyncio.create_task(scoped())
    await wait_for(lambda: raw.hlen(w) == 1, "the scoped waiter to queue")
    task2.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task2
    await wait_for(lambda: raw.exists(q, w) == 0, "no waiter left after the scoped form")

    # a task cancelled before its first step still cancels the operation, which already started
    task3 = asyncio.create_task(waiter.acquire_lock(name, 30000, 30000))
    await wait_for(lambda: raw.hlen(w) == 1, "the waiter to queue (its task not yet run)")
    task3.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task3
    await wait_for(lambda: raw.exists(q, w) == 0, "no waiter left after an early cancel")

    # an acquisition that is never awaited is cancelled when dropped
    waiter.acquire_lock(name, 30000, 30000)  # type: ignore[unused-coroutine]
    await wait_for(lambda: raw.exists(q, w) == 0, "no waiter left after a dropped call")

    # a cancellation does not disturb the next acquisition
    await holder.release_lock(name)
    lock = await waiter.acquire_lock(name, 30000, 1000)
    assert lock is not None
    await waiter.release_all_locks()


async def test_scoped_lock_releases_always_and_raises_lock_timeout_error(url: str, raw: redis.Redis, name: str) -> None:
    m = LockManager(url)
    async with m.lock(name) as lock:
        assert lock.is_held
        assert raw.exists(f"lock:{name}") == 1
    assert raw.exists(f"lock:{name}") == 0
    assert lock.status == "released"

    with pytest.raises(ValueError, match="boom"):
        async with m.lock(name, ttl_ms=1000):
            raise ValueError("boom")
    assert raw.exists(f"lock:{name}") == 0

    holder = LockManager(url)
    assert await holder.acquire_lock(name, 30000, 0) is not None
    with pytest.raises(txcoord.LockTimeoutError) as info:
        async with m.lock(name, timeout_ms=50):
            raise AssertionError("must not be entered")
    assert info.value.code == "TXCOORD_TIMEOUT"
    assert info.value.key == f"lock:{name}"
    assert isinstance(info.value, TimeoutError)
    assert "lock:" + name in str(info.value)
    q, w = waiter_keys(name)
    assert raw.exists(q, w) == 0
    await holder.release_all_locks()

    # a DistributedLock is a context manager too
    async with DistributedLock(url, f"lock:{name}", 5000) as held:
        assert held.is_held
    assert raw.exists(f"lock:{name}") == 0


async def test_a_scoped_lock_is_in_held_resources_during_its_scope_only(url: str, raw: redis.Redis, name: str) -> None:
    m = LockManager(url)
    assert m.held_resources == []
    async with m.lock(name, 5000, 1000) as lock:
        assert m.held_resources == [name], "the core's table lists a scoped lock"
        assert lock.is_held and raw.exists(f"lock:{name}") == 1
    assert m.held_resources == []
    assert raw.exists(f"lock:{name}") == 0
    # Also when the scope ends with an exception.
    with pytest.raises(RuntimeError):
        async with m.lock(name, 5000, 1000):
            assert m.held_resources == [name]
            raise RuntimeError("boom")
    assert m.held_resources == []
    # A scope that cannot acquire fails with the core's timeout error and lists nothing.
    other = LockManager(url)
    assert await other.acquire_lock(name, 5000, 0) is not None
    with pytest.raises(txcoord.LockTimeoutError) as info:
        async with m.lock(name, 5000, 100):
            pass
    assert info.value.code == "TXCOORD_TIMEOUT" and info.value.key == f"lock:{name}"
    assert m.held_resources == []
    await other.aclose()


async def test_async_with_manager_closes_it(url: str, raw: redis.Redis, name: str) -> None:
    async with LockManager(url) as m:
        for suffix in ("1", "2", "3"):
            assert await m.acquire_lock(name + suffix, 30000, 0) is not None
        assert m.held_resources == [name + "1", name + "2", name + "3"]
    assert raw.exists(f"lock:{name}1", f"lock:{name}2", f"lock:{name}3") == 0
    with pytest.raises(txcoord.ClosedError) as info:
        await m.acquire_lock(name + "4")
    assert info.value.code == "TXCOORD_CLOSED"

    m2 = LockManager(url)
    assert await m2.acquire_lock(name, 30000, 0) is not None
    assert await m2.aclose() == []
    assert raw.exists(f"lock:{name}") == 0


async def test_release_all_locks_returns_failures_and_never_raises(
    url: str, raw: redis.Redis, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = Client(url)
    m = LockManager(client)
    assert await m.acquire_lock(name, 30000, 0) is not None
    client.close()  # every later command fails
    failures = await m.release_all_locks()
    assert len(failures) == 1
    resource, error = failures[0]
    assert resource == name
    assert isinstance(error, txcoord.ClosedError)
    assert error.code == "TXCOORD_CLOSED"
    await wait_for(
        lambda: any(f"failed to release lock for {name}" in r.getMessage() for r in caplog.records),
        "the failure to be logged",
    )
    raw.delete(f"lock:{name}")


async def test_redis_unreachable_is_a_connection_error_not_none() -> None:
    m = LockManager(Client("redis://127.0.0.1:1", connect_timeout_ms=200, response_timeout_ms=200))
    with pytest.raises(txcoord.RedisConnectionError) as info:
        await m.acquire_lock("down", 1000, 100)
    assert info.value.code == "TXCOORD_CONNECTION"
    assert isinstance(info.value, ConnectionError)


async def test_a_distributed_lock_handle_one_hold_at_a_time_and_the_seed_value_format(
    url: str, raw: redis.Redis, name: str
) -> None:
    a = DistributedLock(url, f"lock:{name}", 5000)
    b = DistributedLock(url, f"lock:{name}", 5000)
    assert a.fencing_token is None
    assert a.status == "idle"
    assert await a.acquire() is True
    assert await a.acquire() is False, "no second hold on one handle"
    assert await b.acquire() is False
    value = raw.get(f"lock:{name}")
    assert isinstance(value, str) and LOCK_VALUE.match(value)
    await a.release()
    await a.release()  # twice is fine
    assert await b.acquire(timeout_ms=1000) is True
    assert a.fencing_token is not None and b.fencing_token is not None
    assert b.fencing_token > a.fencing_token
    await b.release()
    assert a.status == "released"
    assert "released" in repr(a)


async def test_async_methods_return_coroutines_for_create_task(url: str, name: str) -> None:
    m = LockManager(url)
    pending = m.acquire_lock(name, 5000, 0)
    assert asyncio.iscoroutine(pending)
    lock = await asyncio.create_task(pending)
    assert lock is not None
    # Two independent operations at once: the outcome does not depend on which runs first.
    extended, other = await asyncio.gather(lock.extend(), m.acquire_lock(f"{name}-2", 5000, 0))
    assert extended is True and other is not None
    released = await asyncio.gather(lock.release(), other.release())
    assert released == [None, None]


async def test_a_never_awaited_acquisition_does_not_leak_the_lock(url: str, raw: redis.Redis, name: str) -> None:
    m = LockManager(url)
    m.acquire_lock(name, 30000, 0)  # type: ignore[unused-coroutine]  # granted or not, it is released
    await wait_for(lambda: raw.exists(f"lock:{name}") == 0 and m.held_resources == [], "the lock to be released")
    lock = await m.acquire_lock(name, 30000, 1000)
    assert lock is not None
    await m.aclose()


async def test_a_dropped_handle_releases_its_lock(url: str, raw: redis.Redis, name: str) -> None:
    lock = DistributedLock(url, f"lock:{name}", 30000, on_lost=lambda reason: None)
    assert await lock.acquire()
    del lock
    await wait_for(lambda: raw.exists(f"lock:{name}") == 0, "the dropped lock to be released")


async def test_a_panic_becomes_an_internal_error() -> None:
    with pytest.raises(txcoord.InternalError, match="panic") as info:
        await native_hook("_test_panic")("async")
    assert info.value.code == "TXCOORD_INTERNAL"
    with pytest.raises(txcoord.InternalError, match="panic"):
        native_hook("_test_panic")("sync")
    with pytest.raises(txcoord.InternalError, match="panic"):
        native_hook("_test_panic")("blocking")
