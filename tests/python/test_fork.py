# SPDX-License-Identifier: MIT OR Apache-2.0
"""After os.fork(), objects created in the parent work in the child (as Celery prefork and
RQ use them): the child gets its own runtime and connection, does not hold the parent's
locks, and never releases them; the parent is unaffected."""

from __future__ import annotations

import asyncio
import gc
import os
import select
import time
import traceback
import warnings
from collections.abc import Callable

import redis

import txcoord
import txcoord.sync


def run_in_child(fn: Callable[[], None], timeout: float = 60.0) -> None:
    """Runs `fn` in a forked child; fails with the child's traceback, or if it hangs."""
    r, w = os.pipe()
    with warnings.catch_warnings():
        # Python >= 3.12 warns about fork() in a process with threads (the runtime's).
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child
        os.close(r)
        code = 0
        try:
            fn()
            message = b"ok"
        except BaseException:
            message = traceback.format_exc().encode()
            code = 1
        os.write(w, message)
        os._exit(code)
    os.close(w)
    out = b""
    deadline = time.monotonic() + timeout
    exiting = False  # the child closed the pipe: it is in os._exit
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"the child hung; output so far: {out.decode(errors='replace')}")
            ready, _, _ = select.select([r], [], [], left)
            if ready:
                chunk = os.read(r, 65536)
                if not chunk:
                    exiting = True
                    break
                out += chunk
    finally:
        os.close(r)
        if not exiting:  # it hung, or the parent failed or timed out: it must not live on
            os.kill(pid, 9)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, out.decode(errors="replace")
    assert out == b"ok", out.decode(errors="replace")


def test_the_blocking_twin_works_in_a_forked_child(url: str, raw: redis.Redis, name: str) -> None:
    # Built in the parent, as a Celery prefork worker builds its clients at import.
    client = txcoord.sync.Client(url)
    manager = txcoord.sync.LockManager(client)
    standalone = txcoord.sync.DistributedLock(client, f"lock:{name}-s", 5000)
    parent_lock = manager.acquire_lock(f"{name}-a", 5000, 0)
    assert parent_lock is not None and standalone.acquire()
    held_value = raw.get(f"lock:{name}-a")

    def child() -> None:
        assert parent_lock.is_held is False, "the child does not hold the parent's lock"
        assert standalone.is_held is False
        assert manager.held_resources == []
        assert manager.acquire_lock(f"{name}-a", 5000, 0) is None, "the parent's lock excludes the child"
        lock = manager.acquire_lock(f"{name}-b", 5000, 0)
        assert lock is not None and lock.is_held
        client.ping()
        assert client.stats()["acquired"] == 1, "the child's client is its own"
        manager.release_lock(f"{name}-b")
        assert standalone.acquire() is False
        with txcoord.sync.LockManager(client).lock(f"{name}-c") as scoped:
            assert scoped.is_held
        # Dropping the parent's handles in the child must not release the parent's locks.
        del_all = [parent_lock, standalone]
        del_all.clear()
        gc.collect()

    run_in_child(child)
    run_in_child(child)  # and again from the same parent objects

    assert raw.get(f"lock:{name}-a") == held_value, "the parent's lock survived the children"
    assert raw.exists(f"lock:{name}-b", f"lock:{name}-c") == 0
    assert parent_lock.is_held and standalone.is_held
    assert parent_lock.extend() is True
    manager.release_lock(f"{name}-a")
    standalone.release()
    assert raw.exists(f"lock:{name}-a", f"lock:{name}-s") == 0
    assert client.stats()["acquired"] == 2


def test_the_async_classes_work_in_a_forked_child_with_a_new_event_loop(url: str, raw: redis.Redis, name: str) -> None:
    client = txcoord.Client(url)
    manager = txcoord.LockManager(client)

    async def use(resource: str) -> int:
        async with manager.lock(resource, 5000, 1000) as lock:
            assert lock.is_held
            assert lock.fencing_token is not None
            return lock.fencing_token

    first = asyncio.run(use(f"{name}-p"))

    def child() -> None:
        token = asyncio.run(use(f"{name}-p"))
        assert token > first

    run_in_child(child)
    assert asyncio.run(use(f"{name}-p")) > first
    assert raw.exists(f"lock:{name}-p") == 0


def test_a_monitor_runs_only_in_the_process_that_created_it(url: str, raw: redis.Redis) -> None:
    repo = txcoord.sync.RedisSagaRepository(url)
    detector = txcoord.SagaDeadlockDetector(repo)

    class Sink:
        def send(self, alert: txcoord.Alert) -> None:
            pass

    monitor = txcoord.sync.SagaMonitor(repo, txcoord.TransactionMetricsCollector(), Sink(), detector, start=False)
    assert monitor.tick().leader

    def child() -> None:
        assert not monitor.is_leader and monitor.term is None
        try:
            monitor.tick()
        except txcoord.ClosedError as e:
            assert "the process that created it" in str(e), e
        else:
            raise AssertionError("a forked child ran the parent's monitor")
        # a monitor built in the child works there
        own = txcoord.sync.SagaMonitor(repo, txcoord.TransactionMetricsCollector(), Sink(), detector,
                                       start=False, candidate_id="child")
        own.tick()
        own.stop()

    run_in_child(child)
    assert monitor.is_leader, "the parent's monitor still leads"
    monitor.stop()
