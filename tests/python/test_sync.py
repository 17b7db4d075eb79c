# SPDX-License-Identifier: MIT OR Apache-2.0
"""The blocking twin, txcoord.sync: the same scenarios without an event loop, with threads."""

from __future__ import annotations

import signal
import threading
import time

import pytest
import redis

import txcoord
from txcoord.sync import Client, DistributedLock, LockManager

from helpers import wait_until, waiter_keys


def test_no_event_loop_is_needed_and_classes_are_the_sync_twins(url: str, raw: redis.Redis, name: str) -> None:
    assert LockManager.__name__ == txcoord.LockManager.__name__
    assert LockManager.__module__ == "txcoord.sync"
    m = LockManager(url)
    lock = m.acquire_lock(name, 5000, 0)
    assert isinstance(lock, DistributedLock)
    assert lock.is_held and lock.fencing_token is not None
    assert raw.exists(f"lock:{name}") == 1
    m.release_lock(name)
    assert raw.exists(f"lock:{name}") == 0
    assert lock.status == "released"
    Client(url).ping()


def test_mutual_exclusion_across_threads(url: str, raw: redis.Redis, name: str) -> None:
    managers = [LockManager(Client(url)), LockManager(Client(url))]
    inside = 0
    max_inside = 0
    tokens: list[int] = []
    guard = threading.Lock()
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        nonlocal inside, max_inside
        try:
            for _ in range(3):
                lock = managers[i % 2].acquire_lock(name, 5000, 20000)
                assert lock is not None and lock.fencing_token is not None
                with guard:
                    inside += 1
                    max_inside = max(max_inside, inside)
                    tokens.append(lock.fencing_token)
                raw.incr(f"{name}:counter")
                with guard:
                    inside -= 1
                lock.release()
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert max_inside == 1
    assert len(tokens) == 24
    assert all(b > a for a, b in zip(tokens, tokens[1:]))


def test_a_blocking_wait_releases_the_gil(url: str, name: str) -> None:
    holder = LockManager(url)
    assert holder.acquire_lock(name, 10000, 0) is not None
    ticks = 0
    stop = threading.Event()

    def tick() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0.001)

    t = threading.Thread(target=tick)
    t.start()
    try:
        assert LockManager(url).acquire_lock(name, 10000, 1000) is None
        progressed = ticks
    finally:
        stop.set()
        t.join(10)
    assert progressed >= 20, f"another Python thread ran only {progressed} times during a 1000 ms wait"
    holder.close()


def test_timeout_returns_none_and_scoped_form_raises(url: str, raw: redis.Redis, name: str) -> None:
    holder = LockManager(url)
    assert holder.acquire_lock(name, 10000, 0) is not None
    waiter = LockManager(Client(url))
    assert waiter.acquire_lock(name, 10000, 200) is None
    q, w = waiter_keys(name)
    assert raw.exists(q, w) == 0
    with pytest.raises(txcoord.LockTimeoutError):
        with waiter.lock(name, timeout_ms=50):
            raise AssertionError("must not be entered")
    holder.release_all_locks()
    with waiter.lock(name) as lock:
        assert lock.is_held
    assert raw.exists(f"lock:{name}") == 0
    with pytest.raises(KeyError):
        with waiter.lock(name):
            raise KeyError("boom")
    assert raw.exists(f"lock:{name}") == 0


def test_lost_lock_callback_runs_on_a_thread_and_lost_blocks(url: str, raw: redis.Redis, name: str) -> None:
    got: list[str] = []
    called = threading.Event()

    def on_lost(reason: str) -> None:
        got.append(reason)
        called.set()

    lock = DistributedLock(url, f"lock:{name}", 3000, on_lost=on_lost)
    assert lock.acquire() is True
    raw.set(f"lock:{name}", "intruder")
    assert lock.lost() == "taken"
    assert called.wait(10)
    assert got == ["taken"]
    assert lock.is_held is False and lock.loss_reason == "taken"
    lock.release()
    assert raw.get(f"lock:{name}") == "intruder"


def test_reentrant_owner_and_fair_and_context_manager(url: str, raw: redis.Redis, name: str) -> None:
    with LockManager(url, owner_id="saga-1") as saga:
        a = saga.acquire_lock(name, 10000, 0)
        b = saga.acquire_lock(name, 10000, 0)
        assert a is not None and b is not None
        assert b.hold_count == 2 and a.fencing_token == b.fencing_token
        assert saga.held_resources == [name]
    assert raw.exists(f"lock:{name}") == 0, "leaving the with block closed the manager"
    with pytest.raises(txcoord.ClosedError):
        saga.acquire_lock(name)

    with DistributedLock(url, f"lock:{name}", 5000) as held:
        assert held.is_held
    assert raw.exists(f"lock:{name}") == 0


def test_ctrl_c_interrupts_a_blocking_wait_and_removes_the_waiter(url: str, raw: redis.Redis, name: str) -> None:
    holder = LockManager(url)
    assert holder.acquire_lock(name, 30000, 0) is not None

    class Interrupted(Exception):
        pass

    def handler(signum: int, frame: object) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGALRM, handler)
    # The per-test timeout (pytest-timeout) uses this timer too: re-armed afterwards.
    timeout_left, _ = signal.setitimer(signal.ITIMER_REAL, 0.3)
    started = time.monotonic()
    try:
        with pytest.raises(Interrupted):
            LockManager(Client(url)).acquire_lock(name, 30000, 30000)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if timeout_left > 0:
            signal.setitimer(signal.ITIMER_REAL, max(timeout_left - (time.monotonic() - started), 0.001))
    assert time.monotonic() - started < 10
    q, w = waiter_keys(name)
    wait_until(lambda: raw.exists(q, w) == 0, "the interrupted waiter's entry to be removed")
    holder.close()


def test_a_scoped_lock_is_in_held_resources_during_its_scope_only(url: str, raw: redis.Redis, name: str) -> None:
    m = LockManager(url)
    assert m.held_resources == []
    with m.lock(name, 5000, 1000) as lock:
        assert m.held_resources == [name], "the core's table lists a scoped lock"
        assert lock.is_held and raw.exists(f"lock:{name}") == 1
    assert m.held_resources == []
    assert raw.exists(f"lock:{name}") == 0
    other = LockManager(url)
    assert other.acquire_lock(name, 5000, 0) is not None
    with pytest.raises(txcoord.LockTimeoutError):
        with m.lock(name, 5000, 100):
            pass
    assert m.held_resources == []
    other.close()
