# SPDX-License-Identifier: MIT OR Apache-2.0
"""Deadlocks between sagas at the Python level: found on the lock registry and broken, by the
waiting acquisitions themselves or by SagaDeadlockDetector; a user's own repository and logger
in Python; several locks taken in one global order. Scenario names follow
tests/node/deadlock.test.js."""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

import pytest
import redis

import txcoord
from txcoord import (
    DeadlockCycle,
    DeadlockVictimError,
    LockManager,
    RedisSagaRepository,
    SagaDeadlockDetector,
    SagaRecord,
    SagaStatus,
)

from helpers import wait_for
from test_gc import collect_until_dead_async

ABORT_ERROR = "Aborted due to deadlock resolution"


def saga_manager(url: str, saga: str, priority: int, deadlock_timeout_ms: int = 0) -> LockManager:
    """A saga's lock manager; with deadlock_timeout_ms=0 its waits never probe, so only the
    detector breaks a deadlock."""
    return LockManager(txcoord.Client(url), owner_id=saga, priority=priority, deadlock_timeout_ms=deadlock_timeout_ms)


class Deadlock:
    """Each saga holds `res:<saga>` and waits for `res:<holder>` along the given edges."""

    def __init__(self, url: str, sagas: dict[str, int], deadlock_timeout_ms: int = 0) -> None:
        self.managers = {s: saga_manager(url, s, p, deadlock_timeout_ms) for s, p in sagas.items()}
        self.waits: dict[str, asyncio.Task[Any]] = {}

    async def form(self, edges: Iterable[tuple[str, str]], timeout_ms: int = 30000) -> None:
        for s, m in self.managers.items():
            assert await m.acquire_lock(f"res:{s}", 60000, 0) is not None
        for waiter, holder in edges:
            self.waits[waiter] = asyncio.create_task(
                self.managers[waiter].acquire_lock(f"res:{holder}", 60000, timeout_ms)
            )

    async def close(self) -> None:
        for t in self.waits.values():
            t.cancel()
        await asyncio.gather(*self.waits.values(), return_exceptions=True)
        for m in self.managers.values():
            await m.aclose()


async def graph_edges(detector: SagaDeadlockDetector, count: int) -> None:
    async def ready() -> bool:
        return len((await detector.wait_for_graph()).edges) == count

    await wait_for(ready, f"{count} edges in the wait-for graph", timeout=15)


async def test_the_seeds_false_cycle_graph_reports_only_the_real_cycle(url: str) -> None:
    # A→B, B→C, C→B, D→A: only B–C is a deadlock; D and A are not in it (the seed's DFS
    # reported [D, A] from root D).
    detector = SagaDeadlockDetector(RedisSagaRepository(url), logging.getLogger("test.deadlock"))
    dl = Deadlock(url, {"A": 0, "B": 0, "C": 0, "D": 0})
    try:
        await dl.form([("A", "B"), ("B", "C"), ("C", "B"), ("D", "A")])
        await graph_edges(detector, 4)
        r = await detector.detect_deadlock()
        assert r.has_deadlock
        assert r.cycles == [["B", "C", "B"]]
        assert r.affected_sagas == ["B", "C"]
        [cycle] = r.explained
        assert isinstance(cycle, DeadlockCycle)
        assert cycle.sagas == ["B", "C", "B"]
        assert {(e.waiter, e.holder, e.lock_key) for e in cycle.edges} == {
            ("B", "C", "lock:res:C"),
            ("C", "B", "lock:res:B"),
        }
        assert all(e.holder_token is not None and e.waited_ms >= 0 for e in cycle.edges)
        assert cycle.victim is None, "detection changes nothing"
        assert "saga B has waited" in str(cycle) and "held by saga C" in str(cycle)
        graph = await detector.wait_for_graph()
        assert sorted(n.id for n in graph.nodes) == ["A", "B", "C", "D"]
        assert sorted((e.waiter, e.holder) for e in graph.edges) == [("A", "B"), ("B", "C"), ("C", "B"), ("D", "A")]
    finally:
        await dl.close()


async def test_a_two_saga_deadlock_is_broken_by_the_waiters_themselves(url: str) -> None:
    # No detector object: saga-b (the lower priority) is aborted by the waits' own probes.
    a = saga_manager(url, "saga-a", 5, deadlock_timeout_ms=1000)
    b = saga_manager(url, "saga-b", 1, deadlock_timeout_ms=1000)
    try:
        assert await a.acquire_lock("x", 60000, 0) is not None
        assert await b.acquire_lock("y", 60000, 0) is not None
        started = time.monotonic()
        wait_a = asyncio.create_task(a.acquire_lock("y", 60000, 20000))
        wait_b = asyncio.create_task(b.acquire_lock("x", 60000, 20000))
        with pytest.raises(DeadlockVictimError) as info:
            await asyncio.wait_for(wait_b, 15)
        broken_after = time.monotonic() - started
        e = info.value
        assert e.code == "TXCOORD_DEADLOCK_VICTIM"
        assert e.key == "lock:x"
        assert isinstance(e.cycle, DeadlockCycle)
        assert e.cycle.victim == "saga-b"
        assert sorted(set(e.cycle.sagas)) == ["saga-a", "saga-b"]
        assert "saga saga-b has waited" in str(e.cycle)
        assert "held by saga saga-a" in str(e)
        assert broken_after < 10, broken_after
        assert not wait_a.done(), "the other saga still waits"
        # the victim gives up what it holds (as an aborted saga does); the other goes on
        await b.release_all_locks()
        got = await asyncio.wait_for(wait_a, 15)
        assert got is not None and got.is_held
    finally:
        await a.aclose()
        await b.aclose()


class RecordingLogger:
    """The seed's logger shape: warn(message, fields) and info(message, fields)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def warn(self, message: str, fields: dict[str, Any]) -> None:
        self.calls.append(("warn", message, fields))

    def info(self, message: str, fields: dict[str, Any]) -> None:
        self.calls.append(("info", message, fields))


class RecordingMetrics:
    def __init__(self) -> None:
        self.methods: list[str] = []

    def record_deadlock(self, resolution_method: str) -> None:
        self.methods.append(resolution_method)


async def test_the_detector_resolves_a_deadlock_and_fails_the_victims_saga(url: str) -> None:
    repo = RedisSagaRepository(url)
    for saga, priority in [("d1", 2), ("d2", 1), ("d3", 3)]:
        await repo.save(SagaRecord(saga, "CreateOrderSaga", priority=priority))
    logger = RecordingLogger()
    metrics = RecordingMetrics()
    detector = SagaDeadlockDetector(repo, logger, metrics=metrics)
    dl = Deadlock(url, {"d1": 2, "d2": 1, "d3": 3})
    try:
        await dl.form([("d1", "d2"), ("d2", "d3"), ("d3", "d1")])
        await graph_edges(detector, 3)
        r = await detector.detect_deadlock()
        assert r.cycles == [["d1", "d2", "d3", "d1"]]
        assert r.affected_sagas == ["d1", "d2", "d3"]
        assert [c[1] for c in logger.calls] == ["Deadlock detected"]
        level, _, fields = logger.calls[0]
        assert level == "warn"
        assert fields["cycle"] == ["d1", "d2", "d3", "d1"]
        assert fields["cycleId"] == r.explained[0].id
        again = await detector.detect_deadlock()
        assert again.explained[0].id == r.explained[0].id, "a stable cycle id"

        broken = await detector.resolve_deadlock(r.cycles)
        assert [c.victim for c in broken] == ["d2"], "the lowest priority"
        assert metrics.methods == ["abort_saga"]
        aborted = [c for c in logger.calls if c[1] == "Saga aborted to resolve deadlock"]
        assert len(aborted) == 1 and aborted[0][0] == "info"
        assert aborted[0][2]["abortedSaga"] == "d2"
        victim = await repo.find_by_id("d2")
        assert victim is not None
        assert victim.status == SagaStatus.FAILED and victim.error == ABORT_ERROR
        for other in ["d1", "d3"]:
            rec = await repo.find_by_id(other)
            assert rec is not None and rec.status == SagaStatus.EXECUTING and rec.error is None
        with pytest.raises(DeadlockVictimError):
            await asyncio.wait_for(dl.waits.pop("d2"), 15)
        assert not (await detector.detect_deadlock()).has_deadlock
    finally:
        await dl.close()


async def test_resolution_never_fails_a_completed_saga(url: str) -> None:
    repo = RedisSagaRepository(url)
    await repo.save(SagaRecord("c1", "CreateOrderSaga", priority=5))
    await repo.save(SagaRecord("c2", "CreateOrderSaga", priority=1, status=SagaStatus.COMPLETED))
    detector = SagaDeadlockDetector(repo, RecordingLogger())
    dl = Deadlock(url, {"c1": 5, "c2": 1})
    try:
        await dl.form([("c1", "c2"), ("c2", "c1")])
        await graph_edges(detector, 2)
        broken = await detector.resolve_deadlock(await detector.detect_deadlock())
        assert [c.victim for c in broken] == ["c2"]
        done = await repo.find_by_id("c2")
        assert done is not None and done.status == SagaStatus.COMPLETED and done.error is None
        other = await repo.find_by_id("c1")
        assert other is not None and other.status == SagaStatus.EXECUTING
    finally:
        await dl.close()


class MemoryRepository:
    """A user's own repository, in memory, recording every call."""

    def __init__(self, records: dict[str, dict[str, Any]]) -> None:
        self.records = records
        self.calls: list[tuple[Any, ...]] = []

    async def find_by_id(self, id: str) -> dict[str, Any] | None:
        self.calls.append(("find_by_id", id))
        await asyncio.sleep(0)  # a real await on the event loop
        return self.records.get(id)

    async def save(self, saga: SagaRecord) -> None:
        self.calls.append(("save", saga))
        self.records[saga.id] = {"id": saga.id, "type": saga.type, "status": saga.status, "version": saga.version + 1,
                                 "created_at": saga.created_at, "error": saga.error, "priority": saga.priority}

    async def find_active_sagas(self) -> list[dict[str, Any]]:
        self.calls.append(("find_active_sagas",))
        return [r for r in self.records.values() if r["status"] in ("PENDING", "EXECUTING", "COMPENSATING")]

    async def find_stuck_sagas(self) -> list[dict[str, Any]]:
        self.calls.append(("find_stuck_sagas",))
        return []

    async def get_statistics(self) -> dict[str, Any]:
        self.calls.append(("get_statistics",))
        return {"active": len(self.records), "completed": 0, "failed": 0, "average_duration": 0}


class ConditionalRepository(MemoryRepository):
    """Its save also takes the condition, so conditional saves are honoured."""

    async def save(  # type: ignore[override]
        self,
        saga: SagaRecord,
        *,
        expected_version: int | None = None,
        term: int | None = None,
        guard_finished: bool = False,
    ) -> bool:
        self.calls.append(("save", saga, expected_version, term, guard_finished))
        current = self.records.get(saga.id)
        if expected_version is not None and (current or {}).get("version", 0) != expected_version:
            return False
        await MemoryRepository.save(self, saga)
        self.calls.pop()
        return True


CREATED = datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=timezone.utc)


async def test_a_user_repository_in_python_is_called_with_the_right_arguments(url: str) -> None:
    repo = ConditionalRepository(
        {
            "u1": {"id": "u1", "type": "CreateOrderSaga", "status": "EXECUTING", "priority": 4, "version": 7, "created_at": CREATED},
            "u2": {"id": "u2", "type": "CreateOrderSaga", "status": "EXECUTING", "priority": 1, "version": 3, "created_at": CREATED},
        }
    )
    detector = SagaDeadlockDetector(repo, RecordingLogger(), redis=url)
    dl = Deadlock(url, {"u1": 4, "u2": 1})
    try:
        await dl.form([("u1", "u2"), ("u2", "u1")])
        await graph_edges(detector, 2)
        result = await detector.detect_deadlock()
        assert repo.calls == [], "detection reads the registry, not the repository"
        broken = await detector.resolve_deadlock(result.explained)
        assert [c.victim for c in broken] == ["u2"]
        assert [c[0] for c in repo.calls] == ["find_by_id", "save"]
        assert repo.calls[0] == ("find_by_id", "u2")
        _, saga, expected_version, term, guard_finished = repo.calls[1]
        assert isinstance(saga, SagaRecord)
        assert (saga.id, saga.type, saga.priority, saga.version) == ("u2", "CreateOrderSaga", 1, 3)
        assert saga.status == SagaStatus.FAILED and saga.error == ABORT_ERROR
        assert saga.created_at == CREATED
        assert (expected_version, term, guard_finished) == (3, None, True)
        assert repo.records["u2"]["status"] == "FAILED"
        assert repo.records["u1"]["status"] == "EXECUTING"
    finally:
        await dl.close()


async def test_a_user_repository_without_a_conditional_save_is_saved_plainly(url: str) -> None:
    class Record:  # any object with the record's attributes
        def __init__(self, id: str, priority: int) -> None:
            self.id, self.type, self.status, self.priority = id, "ProcessRefundSaga", "EXECUTING", priority
            self.created_at = CREATED

    repo = MemoryRepository({})
    found = {"p1": Record("p1", 2), "p2": Record("p2", 1)}

    async def find_by_id(id: str) -> Record | None:
        repo.calls.append(("find_by_id", id))
        return found.get(id)

    repo.find_by_id = find_by_id  # type: ignore[method-assign, assignment]
    detector = SagaDeadlockDetector(repo, RecordingLogger(), redis=txcoord.Client(url))
    dl = Deadlock(url, {"p1": 2, "p2": 1})
    try:
        await dl.form([("p1", "p2"), ("p2", "p1")])
        await graph_edges(detector, 2)
        await detector.resolve_deadlock([["p1", "p2", "p1"]])
        assert [c[0] for c in repo.calls] == ["find_by_id", "save"]
        saved = repo.calls[1][1]
        assert isinstance(saved, SagaRecord)
        assert (saved.id, saved.type, saved.status, saved.error) == ("p2", "ProcessRefundSaga", "FAILED", ABORT_ERROR)
    finally:
        await dl.close()


async def test_a_user_repository_needs_the_redis_option(url: str) -> None:
    with pytest.raises(txcoord.InvalidArgumentError) as info:
        SagaDeadlockDetector(MemoryRepository({}), RecordingLogger())
    assert info.value.argument == "redis"
    with pytest.raises(txcoord.InvalidTypeError) as bad:
        SagaDeadlockDetector(object(), RecordingLogger(), redis=url)  # type: ignore[arg-type]
    assert bad.value.argument == "saga_repository"
    assert "find_by_id" in str(bad.value)


async def test_an_exception_in_a_user_repository_is_logged_and_the_deadlock_still_broken(url: str) -> None:
    class Broken(ConditionalRepository):
        async def find_by_id(self, id: str) -> dict[str, Any] | None:
            raise KeyError(f"no saga {id} here")

    class Unreadable(ConditionalRepository):
        async def find_by_id(self, id: str) -> dict[str, Any] | None:
            return {"id": id, "type": "T", "status": "DONE"}

    for repo, expected in [(Broken({}), "find_by_id() raised 'no saga e2 here'"), (Unreadable({}), "`status`")]:
        logger = RecordingLogger()
        detector = SagaDeadlockDetector(repo, logger, redis=url)
        dl = Deadlock(url, {"e1": 2, "e2": 1})
        try:
            await dl.form([("e1", "e2"), ("e2", "e1")])
            await graph_edges(detector, 2)
            broken = await detector.resolve_deadlock([["e1", "e2", "e1"]])
            assert [c.victim for c in broken] == ["e2"]
            warned = [c for c in logger.calls if c[0] == "warn"]
            assert len(warned) == 1, logger.calls
            assert warned[0][2]["sagaId"] == "e2"
            assert expected in warned[0][2]["error"], warned
        finally:
            await dl.close()


async def test_a_detector_and_a_repository_referring_to_each_other_are_collected(url: str) -> None:
    repo = MemoryRepository({})
    logger = RecordingLogger()
    repo.detector = SagaDeadlockDetector(repo, logger, redis=url)  # type: ignore[attr-defined]
    logger.detector = repo.detector  # type: ignore[attr-defined]
    assert not (await repo.detector.detect_deadlock()).has_deadlock  # type: ignore[attr-defined]
    ref = weakref.ref(repo)
    del repo, logger
    await collect_until_dead_async(ref, "the repository holding its detector")


async def test_a_logging_logger_gets_warning_and_info_with_the_fields(url: str, caplog: pytest.LogCaptureFixture) -> None:
    repo = RedisSagaRepository(url)
    for saga, priority in [("l1", 2), ("l2", 1)]:
        await repo.save(SagaRecord(saga, "CreateOrderSaga", priority=priority))
    log = logging.getLogger("test.deadlock.stdlib")
    detector = SagaDeadlockDetector(repo, log)
    dl = Deadlock(url, {"l1": 2, "l2": 1})
    try:
        with caplog.at_level(logging.INFO, logger="test.deadlock.stdlib"):
            await dl.form([("l1", "l2"), ("l2", "l1")])
            await graph_edges(detector, 2)
            r = await detector.detect_deadlock()
            await detector.resolve_deadlock(r.cycles)
        records = [rec for rec in caplog.records if rec.name == "test.deadlock.stdlib"]
        assert [(rec.levelno, rec.getMessage().split(" {")[0]) for rec in records] == [
            (logging.WARNING, "Deadlock detected"),
            (logging.INFO, "Saga aborted to resolve deadlock"),
        ]
        assert getattr(records[0], "cycle") == ["l1", "l2", "l1"]
        assert getattr(records[1], "abortedSaga") == "l2"
        assert '"abortedSaga":"l2"' in records[1].getMessage()
    finally:
        await dl.close()


async def test_bad_detector_arguments_name_themselves(url: str) -> None:
    repo = RedisSagaRepository(url)
    with pytest.raises(txcoord.InvalidTypeError) as e:
        SagaDeadlockDetector(repo, object())  # type: ignore[arg-type]
    assert e.value.argument == "logger"
    with pytest.raises(txcoord.InvalidTypeError) as e:
        SagaDeadlockDetector(repo, RecordingLogger(), metrics=object())  # type: ignore[arg-type]
    assert e.value.argument == "metrics"
    detector = SagaDeadlockDetector(repo)
    for bad in ["abc", 3, [["ok", 7]], [[""]]]:
        with pytest.raises((txcoord.InvalidTypeError, txcoord.InvalidArgumentError)) as err:
            await detector.resolve_deadlock(bad)  # type: ignore[arg-type]
        assert err.value.argument == "cycles", bad
    assert await detector.resolve_deadlock([]) == []


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

