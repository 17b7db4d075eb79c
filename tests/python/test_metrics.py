# SPDX-License-Identifier: MIT OR Apache-2.0
"""TransactionMetricsCollector through Python: the seed's names, help texts, labels and
buckets in its text; served beside a user's own metrics from prometheus_client's registry
(generate_latest and prometheus_client's own HTTP server on loopback); txcoord's /metrics
endpoint (async and blocking); lock metrics of a watched client; bad arguments."""

from __future__ import annotations

import re
from collections.abc import Callable
import socket
import urllib.error
import urllib.request

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

import txcoord
from txcoord import InvalidArgumentError, InvalidTypeError, LockManager, TransactionMetricsCollector

SEED = {
    # name: (help, labels, buckets)
    "distributed_transaction_duration_seconds": (
        "Duration of distributed transactions",
        ["transaction_type", "status"],
        ["0.1", "0.5", "1", "2", "5", "10", "30", "60", "120", "300", "+Inf"],
    ),
    "saga_execution_duration_seconds": (
        "Duration of saga execution",
        ["saga_type", "status"],
        ["0.5", "1", "2", "5", "10", "20", "30", "60", "120", "300", "+Inf"],
    ),
    "saga_compensations_total": ("Total number of saga compensations", ["saga_type", "step", "reason"], []),
    "deadlocks_detected_total": ("Total number of deadlocks detected", ["resolution_method"], []),
}


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        body: bytes = r.read()
        return body.decode()


def record_the_seeds_four(c: TransactionMetricsCollector) -> None:
    c.record_distributed_transaction("checkout", "success", 750)
    c.record_saga_execution("CreateOrderSaga", "completed", 1500.0)
    c.record_compensation("CreateOrderSaga", "payment", "declined")
    c.record_deadlock("abort_saga")


def test_the_text_carries_the_seeds_names_labels_and_buckets() -> None:
    c = TransactionMetricsCollector()
    assert c.names == "legacy"
    record_the_seeds_four(c)
    text = c.metrics()
    for name, (help, labels, buckets) in SEED.items():
        assert f"# HELP {name} {help}\n" in text
        kind = "histogram" if buckets else "counter"
        assert f"# TYPE {name} {kind}\n" in text
        sample = name + ("_bucket" if buckets else "")
        lines = [line for line in text.splitlines() if line.startswith(sample + "{")]
        assert lines, name
        names = re.findall(r'(\w+)="', lines[0])
        assert sorted(n for n in names if n != "le") == sorted(labels), lines[0]
        if buckets:
            assert re.findall(r'le="([^"]+)"', "\n".join(lines)) == buckets
    # label names sorted, as the Rust encoder writes them
    assert 'distributed_transaction_duration_seconds_bucket{status="success",transaction_type="checkout",le="0.5"} 0' in text
    assert 'distributed_transaction_duration_seconds_bucket{status="success",transaction_type="checkout",le="1"} 1' in text
    assert 'saga_execution_duration_seconds_sum{saga_type="CreateOrderSaga",status="completed"} 1.5' in text
    assert 'saga_compensations_total{reason="declined",saga_type="CreateOrderSaga",step="payment"} 1' in text
    assert 'deadlocks_detected_total{resolution_method="abort_saga"} 1' in text


def test_the_monitors_gauges_under_the_chosen_names() -> None:
    legacy, convention, both = (TransactionMetricsCollector(names=n) for n in ("legacy", "convention", "both"))
    for c in (legacy, convention, both):
        c.record_gauge("sagas_active_total", 4)
        c.record_histogram("saga_duration_seconds", 2.5)
    assert "\nsagas_active_total 4\n" in legacy.metrics() and "txcoord_sagas_active" not in legacy.metrics()
    assert "\ntxcoord_sagas_active 4\n" in convention.metrics()
    assert "sagas_active_total" not in convention.metrics()
    assert "\nsagas_active_total 4\n" in both.metrics() and "\ntxcoord_sagas_active 4\n" in both.metrics()
    assert 'saga_duration_seconds_bucket{le="5"} 1' in legacy.metrics()


def test_prometheus_client_serves_ours_beside_the_users_own() -> None:
    registry = CollectorRegistry()
    mine = Counter("orders_placed", "Orders placed", ["shop"], registry=registry)
    mine.labels("berlin").inc(3)
    ours = TransactionMetricsCollector()
    ours.register(registry)
    record_the_seeds_four(ours)
    assert registry.get_sample_value("orders_placed_total", {"shop": "berlin"}) == 3.0
    assert registry.get_sample_value(
        "saga_compensations_total", {"saga_type": "CreateOrderSaga", "step": "payment", "reason": "declined"}
    ) == 1.0
    assert registry.get_sample_value(
        "saga_execution_duration_seconds_bucket", {"saga_type": "CreateOrderSaga", "status": "completed", "le": "2"}
    ) == 1.0
    text = generate_latest(registry).decode()
    assert "# TYPE saga_compensations_total counter" in text
    assert "# TYPE saga_execution_duration_seconds histogram" in text
    assert 'orders_placed_total{shop="berlin"} 3.0' in text
    # recorded after registration: read at each scrape
    ours.record_deadlock("manual")
    assert registry.get_sample_value("deadlocks_detected_total", {"resolution_method": "manual"}) == 1.0
    # prometheus_client's own HTTP server, on loopback
    server, thread = prometheus_client.start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        body = fetch(f"http://127.0.0.1:{server.server_port}/metrics")
        assert 'orders_placed_total{shop="berlin"} 3.0' in body
        assert 'deadlocks_detected_total{resolution_method="abort_saga"} 1.0' in body
        assert 'saga_execution_duration_seconds_count{saga_type="CreateOrderSaga",status="completed"} 1.0' in body
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    # a registry refuses a second collector with the same names, as for its own metrics
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        TransactionMetricsCollector().register(registry)


def test_a_registry_given_at_construction_takes_the_collector() -> None:
    registry = CollectorRegistry()
    c = TransactionMetricsCollector(registry)
    c.record_saga_execution("RefundSaga", "failed", 100)
    assert registry.get_sample_value(
        "saga_execution_duration_seconds_count", {"saga_type": "RefundSaga", "status": "failed"}
    ) == 1.0


async def test_serve_metrics_answers_until_closed() -> None:
    c = TransactionMetricsCollector()
    record_the_seeds_four(c)
    async with await txcoord.serve_metrics(c, "127.0.0.1", 0) as server:
        assert server.host == "127.0.0.1" and server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}/metrics"
        body = fetch(server.url)
        assert 'deadlocks_detected_total{resolution_method="abort_saga"} 1' in body
        with pytest.raises(urllib.error.HTTPError) as e:
            fetch(f"http://127.0.0.1:{server.port}/other")
        e.value.close()
        assert e.value.code == 404
    # closed: the port is released
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()


def test_serve_metrics_blocking() -> None:
    c = TransactionMetricsCollector()
    c.record_gauge("sagas_failed_total", 2)
    with txcoord.sync.serve_metrics(c, port=0) as server:
        assert "\nsagas_failed_total 2\n" in fetch(server.url)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()


async def test_a_watched_clients_lock_metrics_appear(url: str, name: str) -> None:
    c = TransactionMetricsCollector()
    assert "txcoord_lock_acquired_total" not in c.metrics()
    client = txcoord.Client(url)
    c.watch_client(client)
    async with LockManager(client) as manager:
        async with manager.lock(name):
            pass
    assert re.search(r"^txcoord_lock_acquired_total 1$", c.metrics(), re.M), c.metrics()


def test_bad_metrics_arguments_name_themselves() -> None:
    c = TransactionMetricsCollector()
    cases: list[tuple[Callable[[], object], type[Exception], str]] = [
        (lambda: c.record_saga_execution("T", "done", 1), InvalidArgumentError, "status"),  # type: ignore[arg-type]
        (lambda: c.record_distributed_transaction("T", "success", -1), InvalidArgumentError, "duration"),
        (lambda: c.record_distributed_transaction("T", "success", "1s"), InvalidTypeError, "duration_ms"),  # type: ignore[arg-type]
        (lambda: c.record_compensation("", "step", "r"), InvalidArgumentError, "saga_type"),
        (lambda: c.record_deadlock("retry"), InvalidArgumentError, "resolution_method"),  # type: ignore[arg-type]
        (lambda: c.record_gauge("g", True), InvalidTypeError, "value"),
        (lambda: TransactionMetricsCollector(names="dashboards"), InvalidArgumentError, "names"),  # type: ignore[arg-type]
        (lambda: TransactionMetricsCollector(object()), InvalidTypeError, "metrics_registry"),  # type: ignore[arg-type]
        (lambda: txcoord.sync.serve_metrics(c, port=65_536), InvalidArgumentError, "port"),
        (lambda: txcoord.sync.serve_metrics(c, port=True), InvalidTypeError, "port"),
        (lambda: txcoord.sync.serve_metrics(c, host=1), InvalidTypeError, "host"),  # type: ignore[arg-type]
        (lambda: txcoord.sync.serve_metrics(c, host=""), InvalidArgumentError, "host"),
    ]
    for call, error, argument in cases:
        with pytest.raises(error) as e:
            call()
        assert e.value.argument == argument, (argument, e.value)  # type: ignore[attr-defined]
    assert "distributed_transaction_duration_seconds_bucket" not in c.metrics(), "nothing recorded"


class SeedRegistry:
    """The seed's MetricsRegistry in Python spelling, over prometheus_client's own metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.created: list[tuple[str, str, str, list[str], list[float]]] = []

    def create_histogram(self, *, name: str, help: str, label_names: list[str], buckets: list[float]) -> Histogram:
        self.created.append(("histogram", name, help, label_names, buckets))
        return Histogram(name, help, label_names, buckets=buckets, registry=self.registry)

    def create_counter(self, *, name: str, help: str, label_names: list[str]) -> Counter:
        self.created.append(("counter", name, help, label_names, []))
        return Counter(name, help, label_names, registry=self.registry)


SEED_CREATED = [
    ("histogram", "distributed_transaction_duration_seconds", "Duration of distributed transactions",
     ["transaction_type", "status"], [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300]),
    ("histogram", "saga_execution_duration_seconds", "Duration of saga execution",
     ["saga_type", "status"], [0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300]),
    ("counter", "saga_compensations_total", "Total number of saga compensations", ["saga_type", "step", "reason"], []),
    ("counter", "deadlocks_detected_total", "Total number of deadlocks detected", ["resolution_method"], []),
]


def test_a_seed_style_registry_gets_the_seeds_four_metrics() -> None:
    seed = SeedRegistry()
    c = TransactionMetricsCollector(seed)
    assert seed.created == SEED_CREATED, "created in the seed's order, with its names, help, labels and buckets"
    record_the_seeds_four(c)
    get = seed.registry.get_sample_value
    assert get("distributed_transaction_duration_seconds_sum", {"transaction_type": "checkout", "status": "success"}) == 0.75
    assert get("saga_execution_duration_seconds_bucket",
               {"saga_type": "CreateOrderSaga", "status": "completed", "le": "1.0"}) == 0.0
    assert get("saga_execution_duration_seconds_bucket",
               {"saga_type": "CreateOrderSaga", "status": "completed", "le": "2.0"}) == 1.0
    assert get("saga_compensations_total", {"saga_type": "CreateOrderSaga", "step": "payment", "reason": "declined"}) == 1.0
    assert get("deadlocks_detected_total", {"resolution_method": "abort_saga"}) == 1.0
    # served from the user's registry; the collector keeps the rest and does not export them twice
    text = c.metrics()
    for name in ("distributed_transaction_duration_seconds", "saga_execution_duration_seconds",
                 "saga_compensations_total", "deadlocks_detected_total"):
        assert name not in text
    c.record_gauge("sagas_active_total", 2)
    assert "\nsagas_active_total 2\n" in c.metrics()
    # values are judged before the registry sees them
    with pytest.raises(InvalidArgumentError):
        c.record_saga_execution("T", "done", 1)  # type: ignore[arg-type]
    assert get("saga_execution_duration_seconds_count", {"saga_type": "T", "status": "done"}) is None


def test_a_seed_registry_in_the_seeds_own_spelling_gets_its_options_object() -> None:
    options: list[dict[str, object]] = []

    class Metric:
        def __init__(self) -> None:
            self.calls: list[tuple[object, ...]] = []

        def labels(self, *values: str) -> Metric:
            self.calls.append(("labels", *values))
            return self

        def observe(self, value: float) -> None:
            self.calls.append(("observe", value))

        def inc(self) -> None:
            self.calls.append(("inc",))

    metrics: list[Metric] = []

    class CamelRegistry:
        def _make(self, o: dict[str, object]) -> Metric:
            options.append(o)
            metrics.append(Metric())
            return metrics[-1]

        def createHistogram(self, o: dict[str, object]) -> Metric:
            return self._make(o)

        def createCounter(self, o: dict[str, object]) -> Metric:
            return self._make(o)

    c = TransactionMetricsCollector(CamelRegistry())
    assert options[1] == {
        "name": "saga_execution_duration_seconds",
        "help": "Duration of saga execution",
        "labelNames": ["saga_type", "status"],
        "buckets": [0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0],
    }
    assert options[3] == {"name": "deadlocks_detected_total", "help": "Total number of deadlocks detected",
                          "labelNames": ["resolution_method"]}
    c.record_saga_execution("order", "compensated", 250)
    c.record_deadlock("timeout")
    assert metrics[1].calls == [("labels", "order", "compensated"), ("observe", 0.25)]
    assert metrics[3].calls == [("labels", "timeout"), ("inc",)]


def test_a_seed_registrys_exceptions_reach_the_caller_as_themselves() -> None:
    class Refusing(SeedRegistry):
        def create_counter(self, *, name: str, help: str, label_names: list[str]) -> Counter:
            raise KeyError(f"no room for {name}")

    with pytest.raises(KeyError, match="no room for saga_compensations_total"):
        TransactionMetricsCollector(Refusing())

    class Broken:
        def labels(self, *values: str) -> Broken:
            return self

        def observe(self, value: float) -> None:
            raise OSError("statsd down")

        def inc(self) -> None:
            raise OSError("statsd down")

    class BrokenRegistry:
        def create_histogram(self, **options: object) -> Broken:
            return Broken()

        def create_counter(self, **options: object) -> Broken:
            return Broken()

    c = TransactionMetricsCollector(BrokenRegistry())
    with pytest.raises(OSError, match="statsd down"):
        c.record_distributed_transaction("checkout", "failure", 10)
    with pytest.raises(OSError, match="statsd down"):
        c.record_deadlock("manual")
