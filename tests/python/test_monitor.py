# SPDX-License-Identifier: MIT OR Apache-2.0
"""The saga monitor through Python: the seed's behaviours (long-running alerts with per-type
limits, stuck sagas retried while retry_count < 3 then compensated, the user's handlers,
deadlocks broken, the seed's gauges) and what the seed left broken (an unset retry count,
every instance acting), with txcoord's and the user's own repositories, alert sinks and
metrics objects; the blocking twin; bad arguments. Scenario names follow
core/tests/monitor.rs."""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import txcoord
from txcoord import (
    Alert,
    InvalidArgumentError,
    InvalidTypeError,
    LogAlertSink,
    RedisSagaRepository,
    SagaDeadlockDetector,
    SagaMonitor,
    SagaRecord,
    SagaStatus,
    TickReport,
    TransactionMetricsCollector,
)

from helpers import wait_for, wait_until
from test_deadlock import ConditionalRepository, Deadlock, graph_edges
from test_gc import collect_until_dead_async


class Alerts:
    """A user's alert sink with an async send, recording every alert."""

    def __init__(self) -> None:
        self.sent: list[Alert] = []

    async def send(self, alert: Alert) -> None:
        await asyncio.sleep(0)  # a real await on the event loop
        self.sent.append(alert)

    def named(self, name: str) -> list[Alert]:
        return [a for a in self.sent if a.name == name]


class Metrics:
    """A user's metrics object: the seed's MetricsCollector, recording every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, float]] = []

    def record_gauge(self, name: str, value: float) -> None:
        self.calls.append(("gauge", name, value))

    def record_histogram(self, name: str, value: float) -> None:
        self.calls.append(("histogram", name, value))

    def last(self, name: str) -> float | None:
        values = [v for _, n, v in self.calls if n == name]
        return values[-1] if values else None


def logged(caplog: pytest.LogCaptureFixture, *texts: str) -> bool:
    """Whether a warning of the `txcoord` logger contains every one of `texts`."""
    return any(
        r.name == "txcoord" and r.levelno == logging.WARNING and all(t in r.getMessage() for t in texts)
        for r in caplog.records
    )


def ago(seconds: float) -> datetime:
    return datetime.now(timezone.utc) - timedelta(seconds=seconds)


async def save(repo: RedisSagaRepository, id: str, type: str, age_s: float, idle_s: float, retries: int = 0) -> None:
    await repo.save(SagaRecord(id, type, created_at=ago(age_s), updated_at=ago(idle_s), retry_count=retries))


def setup(url: str) -> tuple[RedisSagaRepository, SagaDeadlockDetector]:
    repo = RedisSagaRepository(url, default_stuck_after_ms=60000)
    return repo, SagaDeadlockDetector(repo)


async def test_long_running_sagas_per_type_limit_are_alerted_then_resolved(url: str) -> None:
    repo, detector = setup(url)
    # the seed's limits: UserRegistrationSaga 2 min, CreateOrderSaga 5 min; ours: QuickSaga 10 s
    await save(repo, "u1", "UserRegistrationSaga", 180, 1)
    await save(repo, "o1", "CreateOrderSaga", 180, 1)
    await save(repo, "q1", "QuickSaga", 30, 1)
    await save(repo, "d1", "OtherSaga", 200, 1)  # under the default 5 min
    alerts = Alerts()
    m = SagaMonitor(repo, Metrics(), alerts, detector, start=False, limits_ms={"QuickSaga": timedelta(seconds=10)})
    try:
        r = await m.tick()
        assert isinstance(r, TickReport)
        assert r.leader and r.errors == [] and r.long_running == 2, r
        long = alerts.named("LongRunningSaga")
        assert sorted(a.metadata["sagaId"] for a in long) == ["q1", "u1"], "CreateOrderSaga's 5 min not reached"
        a = next(a for a in long if a.metadata["sagaId"] == "u1")
        assert a.severity == "warning"
        assert a.summary == "Long-running saga detected: UserRegistrationSaga"
        assert a.description.startswith("Saga u1 has been running for ")
        assert a.metadata["sagaType"] == "UserRegistrationSaga"
        assert a.metadata["status"] == "EXECUTING"
        assert 179_000 <= a.metadata["runtime"] < 300_000
        assert a.labels == {"saga_type": "UserRegistrationSaga", "saga_id": "u1"}
        assert not a.resolved
        # u1 completes: its alert is resolved at the next pass, q1's is sent again
        done = await repo.find_by_id("u1")
        assert done is not None
        done.status = SagaStatus.COMPLETED
        await repo.save(done)
        alerts.sent.clear()
        await m.tick()
        assert [(a.metadata["sagaId"], a.resolved) for a in alerts.named("LongRunningSaga")] == [
            ("q1", False),
            ("u1", True),
        ]
    finally:
        await m.stop()


async def test_stuck_sagas_are_retried_below_the_limit_then_compensated(url: str) -> None:
    repo, detector = setup(url)
    await save(repo, "never-retried", "PaymentSaga", 600, 300, 0)
    await save(repo, "retried-twice", "PaymentSaga", 600, 300, 2)
    await save(repo, "retried-thrice", "PaymentSaga", 600, 300, 3)
    calls: list[tuple[str, str, str, int]] = []

    async def on_retry(saga: SagaRecord) -> None:
        await asyncio.sleep(0)
        calls.append(("retry", saga.id, saga.status, saga.retry_count))

    def on_compensate(saga: SagaRecord) -> None:  # a plain function works too
        calls.append(("compensate", saga.id, saga.status, saga.retry_count))

    alerts = Alerts()
    m = SagaMonitor(repo, Metrics(), alerts, detector, start=False, on_retry=on_retry, on_compensate=on_compensate)
    try:
        r = await m.tick()
        assert (r.stuck, r.retried, r.compensated) == (3, 2, 1), r
        a = await repo.find_by_id("never-retried")
        assert a is not None
        assert (a.status, a.retry_count) == (SagaStatus.EXECUTING, 1), "an unset count is 0"
        assert a.term == m.term, "written under the leader's term"
        assert a.stuck_reason == "no-progress"
        b = await repo.find_by_id("retried-twice")
        assert b is not None and (b.status, b.retry_count) == (SagaStatus.EXECUTING, 3)
        c = await repo.find_by_id("retried-thrice")
        assert c is not None and (c.status, c.retry_count) == (SagaStatus.COMPENSATING, 3)
        assert sorted(calls) == [
            ("compensate", "retried-thrice", "COMPENSATING", 3),
            ("retry", "never-retried", "EXECUTING", 1),
            ("retry", "retried-twice", "EXECUTING", 3),
        ]
        stuck = alerts.named("StuckSaga")
        assert len(stuck) == 3
        s = next(a for a in stuck if a.metadata["sagaId"] == "never-retried")
        assert s.severity == "critical"
        assert s.summary == "Stuck saga detected: PaymentSaga"
        assert s.description.startswith("Saga never-retried appears to be stuck in EXECUTING status")
        assert s.metadata["status"] == "EXECUTING" and s.metadata["stuckDuration"] >= 299_000
        assert s.labels == {"saga_type": "PaymentSaga", "saga_id": "never-retried", "reason": "no-progress"}
        # their updates make them no longer stuck: nothing is retried twice for one episode
        r = await m.tick()
        assert (r.stuck, r.retried, r.compensated) == (0, 0, 0), r
        assert len(calls) == 3
    finally:
        await m.stop()


async def test_max_retries_is_an_option(url: str) -> None:
    repo, detector = setup(url)
    await save(repo, "s", "PaymentSaga", 600, 300, 1)
    m = SagaMonitor(repo, Metrics(), Alerts(), detector, start=False, max_retries=1)
    try:
        r = await m.tick()
        assert (r.retried, r.compensated) == (0, 1), r
        s = await repo.find_by_id("s")
        assert s is not None and s.status == SagaStatus.COMPENSATING
    finally:
        await m.stop()


async def test_a_failing_handler_is_logged_and_alerted_and_the_monitor_goes_on(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    repo, detector = setup(url)
    await save(repo, "s1", "PaymentSaga", 600, 300)

    async def on_retry(saga: SagaRecord) -> None:
        raise RuntimeError(f"cannot retry {saga.id}")

    alerts = Alerts()
    metrics = Metrics()
    m = SagaMonitor(repo, metrics, alerts, detector, start=False, on_retry=on_retry)
    try:
        with caplog.at_level(logging.WARNING, logger="txcoord"):
            r = await m.tick()
            # txcoord's log records reach `logging` from a forwarding thread
            await wait_for(lambda: logged(caplog, "on_retry", "cannot retry s1"), "the handler's exception logged")
        assert r.stuck == 1 and r.errors == [], r
        failed = alerts.named("SagaRecoveryFailed")
        assert len(failed) == 1
        assert failed[0].summary == "Saga recovery failed"
        assert failed[0].description == "Failed to recover stuck saga s1"
        assert "cannot retry s1" in failed[0].metadata["error"]
        assert metrics.last("sagas_stuck_total") == 1.0, "the metrics step ran after it"
        # the status was written before the handler ran: the saga moved on
        s = await repo.find_by_id("s1")
        assert s is not None and s.retry_count == 1
        assert (await m.tick()).leader
    finally:
        await m.stop()


async def test_a_failing_alert_sink_or_metrics_object_never_stops_a_pass(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    repo, detector = setup(url)
    await save(repo, "s1", "PaymentSaga", 600, 300)

    class BrokenSink:
        def send(self, alert: Alert) -> None:
            raise ValueError("sink down")

    class BrokenMetrics:
        def record_gauge(self, name: str, value: float) -> None:
            raise ValueError("metrics down")

        def record_histogram(self, name: str, value: float) -> None:
            raise ValueError("metrics down")

    m = SagaMonitor(repo, BrokenMetrics(), BrokenSink(), detector, start=False)
    try:
        with caplog.at_level(logging.WARNING, logger="txcoord"):
            r = await m.tick()
            await wait_for(lambda: logged(caplog, "sink down") and logged(caplog, "metrics down"), "both logged")
        assert (r.stuck, r.retried, r.errors) == (1, 1, []), r
    finally:
        await m.stop()


async def test_deadlocks_are_detected_alerted_and_broken(url: str) -> None:
    repo, detector = setup(url)
    for saga, priority in [("d1", 2), ("d2", 1)]:
        await repo.save(SagaRecord(saga, "CreateOrderSaga", priority=priority))
    alerts = Alerts()
    collector = TransactionMetricsCollector()
    detector = SagaDeadlockDetector(repo, metrics=collector)
    dl = Deadlock(url, {"d1": 2, "d2": 1})
    m = SagaMonitor(repo, collector, alerts, detector, start=False)
    try:
        await dl.form([("d1", "d2"), ("d2", "d1")])
        await graph_edges(detector, 2)
        r = await m.tick()
        assert r.deadlocks == 1 and r.errors == [], r
        [a] = alerts.named("SagaDeadlock")
        assert a.severity == "critical"
        assert a.summary == "Deadlock detected in saga execution"
        assert a.description == "Detected 1 deadlock cycles involving 2 sagas"
        assert sorted(a.metadata["affectedSagas"]) == ["d1", "d2"]
        assert len(a.metadata["cycles"]) == 1
        victim = await repo.find_by_id("d2")
        assert victim is not None and victim.status == SagaStatus.FAILED
        assert victim.error == "Aborted due to deadlock resolution"
        assert 'deadlocks_detected_total{resolution_method="abort_saga"} 1' in collector.metrics()
        with pytest.raises(txcoord.DeadlockVictimError):
            await asyncio.wait_for(dl.waits.pop("d2"), 15)
    finally:
        await m.stop()
        await dl.close()


async def test_metrics_follow_the_seed_and_the_success_rate_is_never_nan(url: str) -> None:
    repo, detector = setup(url)
    await save(repo, "a", "T", 1, 1)
    metrics = Metrics()
    m = SagaMonitor(repo, metrics, Alerts(), detector, start=False)
    try:
        await m.tick()
        assert metrics.last("sagas_active_total") == 1.0
        assert metrics.last("sagas_completed_total") == 0.0
        assert metrics.last("sagas_failed_total") == 0.0
        assert metrics.last("saga_success_rate") == 1.0, "no finished saga: not NaN"
        assert metrics.last("sagas_stuck_total") == 0.0
        for id, status in [("c1", "COMPLETED"), ("c2", "COMPLETED"), ("f1", "FAILED")]:
            await repo.save(SagaRecord(id, "T", status=status, created_at=ago(4), updated_at=ago(0)))
        await m.tick()
        rate = metrics.last("saga_success_rate")
        assert rate is not None and abs(rate - 2 / 3) < 1e-9
        assert metrics.last("sagas_completed_total") == 2.0
        # each finished saga's duration observed once (about 4 s each), not the average
        durations = [v for kind, n, v in metrics.calls if (kind, n) == ("histogram", "saga_duration_seconds")]
        assert len(durations) == 3 and all(3.5 <= d < 5.0 for d in durations), durations
        assert {kind for kind, n, _ in metrics.calls if n != "saga_duration_seconds"} == {"gauge"}
    finally:
        await m.stop()


async def test_a_metrics_object_with_the_seeds_camel_case_names_is_accepted(url: str) -> None:
    repo, detector = setup(url)

    class SeedMetrics:
        def __init__(self) -> None:
            self.gauges: dict[str, float] = {}

        def recordGauge(self, name: str, value: float) -> None:
            self.gauges[name] = value

        def recordHistogram(self, name: str, value: float) -> None:
            pass

    metrics = SeedMetrics()
    m = SagaMonitor(repo, metrics, Alerts(), detector, start=False)  # type: ignore[arg-type]
    try:
        await m.tick()
        assert metrics.gauges["saga_success_rate"] == 1.0
    finally:
        await m.stop()


async def test_our_collector_records_the_monitors_gauges(url: str) -> None:
    repo, detector = setup(url)
    await save(repo, "a", "T", 1, 1)
    await save(repo, "b", "T", 600, 300)
    collector = TransactionMetricsCollector(names="both")
    m = SagaMonitor(repo, collector, LogAlertSink(), detector, start=False)
    try:
        await m.tick()
        text = collector.metrics()
        assert "\nsagas_active_total 2\n" in text
        assert "\ntxcoord_sagas_active 2\n" in text
        assert "\nsagas_stuck_total 1\n" in text
        assert 'txcoord_sagas_stuck_by_reason{reason="no-progress"} 1' in text
    finally:
        await m.stop()


async def test_among_two_monitors_one_acts_and_the_other_takes_over(url: str) -> None:
    repo, detector = setup(url)
    await save(repo, "stuck-1", "PaymentSaga", 600, 300)
    alerts1, alerts2 = Alerts(), Alerts()
    m1 = SagaMonitor(repo, Metrics(), alerts1, detector, start=False, candidate_id="m1", leader_ttl_ms=1500)
    m2 = SagaMonitor(repo, Metrics(), alerts2, detector, start=False, candidate_id="m2", leader_ttl_ms=1500)
    try:
        r1 = await m1.tick()
        r2 = await m2.tick()
        assert r1.leader and r1.retried == 1
        assert not r2.leader and (r2.stuck, r2.retried, r2.long_running) == (0, 0, 0)
        assert m1.is_leader and not m2.is_leader
        assert alerts1.named("StuckSaga") and not alerts2.sent, "the follower does nothing"
        t1 = m1.term
        assert t1 is not None and m2.term is None
        await m1.stop()
        assert not m1.is_leader and m1.term is None, "stop resigns"
        took_over = False
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if (await m2.tick()).leader:
                took_over = True
                break
            await asyncio.sleep(0.1)  # the next pass, as the monitor's interval would
        assert took_over, "m2 never led"
        assert m2.is_leader and m2.candidate_id == "m2"
        t2 = m2.term
        assert t2 is not None and t2 > t1
        saga = await repo.find_by_id("stuck-1")
        assert saga is not None and saga.retry_count == 1, "not retried a second time"
    finally:
        await m1.stop()
        await m2.stop()


async def test_a_started_monitor_runs_passes_until_stopped(url: str) -> None:
    repo, detector = setup(url)
    await save(repo, "a", "T", 1, 1)
    metrics = Metrics()

    def passes() -> int:
        return sum(1 for _, n, _ in metrics.calls if n == "sagas_active_total")

    async with SagaMonitor(repo, metrics, Alerts(), detector, interval_ms=100) as m:
        assert m.interval_ms == 100
        await wait_for(lambda: passes() >= 3, "three passes", timeout=20)
    after_stop = passes()
    assert not m.is_leader, "leaving the block stops the monitor"
    await asyncio.sleep(0.5)  # several intervals: no pass may run after stop
    assert passes() == after_stop


async def test_a_user_repository_is_called_with_the_right_arguments(url: str) -> None:
    old = datetime.now(timezone.utc) - timedelta(minutes=10)
    repo = ConditionalRepository(
        {
            "u1": {"id": "u1", "type": "PaymentSaga", "status": "EXECUTING", "version": 7, "created_at": old,
                   "updated_at": old, "priority": 0},
        }
    )

    async def find_stuck_sagas() -> list[dict[str, Any]]:
        repo.calls.append(("find_stuck_sagas",))
        return [r for r in repo.records.values() if r["status"] == "EXECUTING" and r["version"] == 7]

    repo.find_stuck_sagas = find_stuck_sagas  # type: ignore[method-assign]
    detector = SagaDeadlockDetector(repo, redis=url)
    alerts = Alerts()
    m = SagaMonitor(repo, Metrics(), alerts, detector, start=False, max_retries=3)
    try:
        r = await m.tick()
        assert (r.long_running, r.stuck, r.retried, r.errors) == (1, 1, 1, []), r
        names = [c[0] for c in repo.calls]
        assert names == ["find_active_sagas", "find_stuck_sagas", "find_by_id", "save", "get_statistics"], names
        assert repo.calls[2] == ("find_by_id", "u1")
        _, saga, expected_version, term, guard_finished = repo.calls[3]
        assert isinstance(saga, SagaRecord)
        assert (saga.id, saga.status, saga.retry_count) == ("u1", SagaStatus.EXECUTING, 1)
        assert saga.stuck_reason == "no-progress"
        assert (expected_version, term, guard_finished) == (7, m.term, True)
        assert repo.records["u1"]["version"] == 8
    finally:
        await m.stop()


async def test_a_user_alert_sink_gets_the_seeds_alert(url: str) -> None:
    repo, detector = setup(url)
    await save(repo, "s1", "CreateOrderSaga", 600, 300)
    received: list[dict[str, Any]] = []

    class DictSink:  # a plain send, reading the alert as a dict
        def send(self, alert: Alert) -> None:
            received.append(alert.to_dict())

    m = SagaMonitor(repo, Metrics(), DictSink(), detector, start=False)
    try:
        await m.tick()
        stuck = [a for a in received if a["name"] == "StuckSaga"]
        assert len(stuck) == 1
        a = stuck[0]
        assert set(a) == {"severity", "summary", "description", "metadata", "name", "labels", "resolved"}
        assert a["severity"] == "critical" and a["resolved"] is False
        assert a["metadata"]["sagaId"] == "s1" and a["metadata"]["sagaType"] == "CreateOrderSaga"
        assert isinstance(a["metadata"]["lastUpdated"], int)
    finally:
        await m.stop()


def test_the_blocking_monitor(url: str) -> None:
    sync_repo = txcoord.sync.RedisSagaRepository(url, default_stuck_after_ms=60000)
    sync_repo.save(SagaRecord("s1", "PaymentSaga", created_at=ago(600), updated_at=ago(300)))
    detector = SagaDeadlockDetector(sync_repo)
    sent: list[Alert] = []

    class Sink:
        def send(self, alert: Alert) -> None:
            sent.append(alert)

    retried: list[str] = []
    with txcoord.sync.SagaMonitor(
        sync_repo, Metrics(), Sink(), detector, start=False, on_retry=lambda s: retried.append(s.id)
    ) as m:
        r = m.tick()
        assert (r.leader, r.stuck, r.retried) == (True, 1, 1), r
        assert retried == ["s1"] and sorted(a.name for a in sent) == ["LongRunningSaga", "StuckSaga"]
        assert m.is_leader
    assert not m.is_leader
    # a started blocking monitor runs its passes by itself
    metrics = Metrics()
    m = txcoord.sync.SagaMonitor(sync_repo, metrics, Sink(), detector, interval_ms=100)
    try:
        wait_until(lambda: metrics.last("sagas_active_total") is not None, "a pass", timeout=20)
    finally:
        m.stop()


async def test_bad_monitor_arguments_name_themselves(url: str) -> None:
    repo, detector = setup(url)

    def make(**kw: Any) -> SagaMonitor:
        args: dict[str, Any] = {
            "saga_repository": repo,
            "metrics_collector": Metrics(),
            "alert_manager": Alerts(),
            "deadlock_detector": detector,
            "start": False,
        }
        args.update(kw)
        return SagaMonitor(**args)

    cases: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"max_retries": -1}, InvalidArgumentError, "max_retries"),
        ({"max_retries": True}, InvalidTypeError, "max_retries"),
        ({"interval_ms": 0}, InvalidArgumentError, "interval_ms"),
        ({"interval_ms": "30s"}, InvalidTypeError, "interval_ms"),
        ({"leader_ttl_ms": 1.5}, InvalidArgumentError, "leader_ttl_ms"),
        ({"limits_ms": {"T": 0}}, InvalidArgumentError, "limits_ms"),
        ({"limits_ms": {"": 1000}}, InvalidArgumentError, "limits_ms"),
        ({"limits_ms": [1000]}, InvalidTypeError, "limits_ms"),
        ({"election_name": ""}, InvalidArgumentError, "election_name"),
        ({"candidate_id": ""}, InvalidArgumentError, "candidate_id"),
        ({"metrics_collector": object()}, InvalidTypeError, "metrics_collector"),
        ({"alert_manager": object()}, InvalidTypeError, "alert_manager"),
        ({"deadlock_detector": object()}, InvalidTypeError, "deadlock_detector"),
        ({"saga_repository": object()}, InvalidTypeError, "saga_repository"),
        ({"on_retry": 42}, InvalidTypeError, "on_retry"),
    ]
    for kw, error, argument in cases:
        with pytest.raises(error) as e:
            make(**kw)
        assert e.value.argument == argument, (kw, e.value)  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="unexpected keyword argument 'interval'"):
        make(interval=1000)


async def test_alerts_as_values() -> None:
    a = Alert("critical", "s", "d", {"sagaId": "x", "when": datetime(2024, 1, 1, tzinfo=timezone.utc)},
              name="StuckSaga", labels={"saga_id": "x"})
    assert a.metadata == {"sagaId": "x", "when": "2024-01-01 00:00:00+00:00"}
    assert a == Alert("critical", "s", "d", {"sagaId": "x", "when": "2024-01-01 00:00:00+00:00"},
                      name="StuckSaga", labels={"saga_id": "x"})
    assert a.to_dict()["labels"] == {"saga_id": "x"} and not a.resolved
    with pytest.raises(InvalidArgumentError) as e:
        Alert("urgent", "s", "d")  # type: ignore[arg-type]
    assert e.value.argument == "severity"
    # the built-in sinks take the seed's dict too
    await LogAlertSink().send({"severity": "info", "summary": "hello", "description": "d", "metadata": {}})


async def test_a_monitor_and_the_objects_referring_to_it_are_collected(url: str) -> None:
    repo, _ = setup(url)

    class Service:
        """Owns a monitor whose sink, metrics and handler are its own methods."""

        def __init__(self) -> None:
            self.alerts: list[Alert] = []
            self.monitor = SagaMonitor(
                repo, self, self, SagaDeadlockDetector(ConditionalRepository({}), redis=url),
                start=False, on_retry=self.retry,
            )

        async def send(self, alert: Alert) -> None:
            self.alerts.append(alert)

        def record_gauge(self, name: str, value: float) -> None:
            pass

        def record_histogram(self, name: str, value: float) -> None:
            pass

        async def retry(self, saga: SagaRecord) -> None:
            pass

    service = Service()
    assert (await service.monitor.tick()).leader
    await service.monitor.stop()
    ref = weakref.ref(service)
    del service
    await collect_until_dead_async(ref, "a service holding its monitor")
