# SPDX-License-Identifier: MIT OR Apache-2.0
"""Alert sinks through Python: the saga monitor alerting to a real Prometheus Alertmanager
(started by the test on a free loopback port, as core/tests/alertmanager.rs does) and resolving
the alert when its condition clears; delivery failures counted; bad arguments."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import txcoord
from txcoord import (
    AlertmanagerSink,
    InvalidArgumentError,
    InvalidTypeError,
    RedisSagaRepository,
    SagaDeadlockDetector,
    SagaMonitor,
    SagaRecord,
    SagaStatus,
    TransactionMetricsCollector,
)

from helpers import wait_for


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


@pytest.fixture
def alertmanager() -> Iterator[str]:
    """A prometheus-alertmanager on a free loopback port (its own directory and config); its
    base URL."""
    binary = os.environ.get("TXCOORD_ALERTMANAGER", "prometheus-alertmanager")
    if shutil.which(binary) is None:
        raise RuntimeError(f"{binary} not found: scripts/install-deps.sh installs it with apt")
    workdir = tempfile.mkdtemp(prefix="txcoord-pytest-alertmanager-")
    config = os.path.join(workdir, "alertmanager.yml")
    with open(config, "w") as f:
        f.write('route:\n  receiver: "null"\n  group_wait: 1s\nreceivers:\n  - name: "null"\n')
    port = _free_port()
    log = open(os.path.join(workdir, "alertmanager.log"), "wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={workdir}/data",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                _get(f"{url}/api/v2/status")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"alertmanager did not start (exit status {proc.poll()}); see {workdir}")
                time.sleep(0.05)
        yield url
    finally:
        proc.kill()
        proc.wait(timeout=10)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


def ago(seconds: float) -> datetime:
    return datetime.now(timezone.utc) - timedelta(seconds=seconds)


async def test_a_monitor_alerts_a_real_alertmanager_and_resolves(url: str, alertmanager: str) -> None:
    repo = RedisSagaRepository(url, default_stuck_after_ms=60000)
    await repo.save(SagaRecord("s-1", "CreateOrderSaga", created_at=ago(30), updated_at=ago(300), retry_count=3))
    collector = TransactionMetricsCollector()
    sink = AlertmanagerSink([alertmanager], labels={"env": "test"}, metrics=collector)
    assert sink.alertmanagers == [alertmanager]
    m = SagaMonitor(repo, collector, sink, SagaDeadlockDetector(repo), start=False)
    try:
        r = await m.tick()
        assert (r.stuck, r.compensated, r.errors) == (1, 1, []), r

        listed: list[Any] = []

        def one_listed() -> bool:
            listed[:] = _get(f"{alertmanager}/api/v2/alerts")
            return len(listed) == 1

        await wait_for(one_listed, "the stuck saga's alert listed", timeout=30)
        a = listed[0]
        assert a["labels"] == {
            "alertname": "StuckSaga",
            "severity": "critical",
            "saga_type": "CreateOrderSaga",
            "saga_id": "s-1",
            "reason": "retrying",
            "env": "test",
        }
        assert a["annotations"]["summary"] == "Stuck saga detected: CreateOrderSaga"
        assert a["annotations"]["description"].startswith("Saga s-1 appears to be stuck in EXECUTING status")
        assert a["status"]["state"] == "active"
        assert sink.sent() == {alertmanager: 1} and sink.send_failures() == {alertmanager: 0}
        assert f'txcoord_alerts_sent_total{{alertmanager="{alertmanager}"}} 1' in collector.metrics()

        # compensated, the saga is no longer stuck: the next pass resolves its alert
        s = await repo.find_by_id("s-1")
        assert s is not None and s.status == SagaStatus.COMPENSATING
        await m.tick()
        await wait_for(lambda: one_listed() is False and listed == [], "the alert resolved", timeout=30)
        assert sink.sent() == {alertmanager: 2}
    finally:
        await m.stop()


async def test_failed_deliveries_are_counted() -> None:
    port = _free_port()  # nothing listens there
    dead = f"http://127.0.0.1:{port}"
    sink = AlertmanagerSink(dead, timeout_ms=2000)
    with pytest.raises(txcoord.TxcoordError):
        await sink.send({"severity": "warning", "summary": "s", "description": "d", "metadata": {}})
    assert sink.send_failures() == {dead: 1} and sink.sent() == {dead: 0}
    blocking = txcoord.sync.AlertmanagerSink([dead], timeout_ms=2000)
    with pytest.raises(txcoord.TxcoordError):
        blocking.send(txcoord.Alert("info", "s", "d"))
    assert blocking.send_failures() == {dead: 1}


def test_bad_sink_arguments_name_themselves() -> None:
    cases: list[tuple[Any, dict[str, Any], type[Exception], str]] = [
        ("ftp://am:9093", {}, InvalidArgumentError, "urls"),
        ("not a url", {}, InvalidArgumentError, "urls"),
        (42, {}, InvalidTypeError, "urls"),
        ("http://am:9093", {"timeout_ms": 0}, InvalidArgumentError, "timeout_ms"),
        ("http://am:9093", {"timeout_ms": "5s"}, InvalidTypeError, "timeout_ms"),
        ("http://am:9093", {"labels": {"env": 1}}, InvalidTypeError, "labels"),
        ("http://am:9093", {"labels": {"": "x"}}, InvalidArgumentError, "labels"),
        ("http://am:9093", {"metrics": object()}, InvalidTypeError, "metrics"),
    ]
    for urls, kw, error, argument in cases:
        with pytest.raises(error) as e:
            AlertmanagerSink(urls, **kw)
        assert e.value.argument == argument, (urls, kw, e.value)  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="unexpected keyword argument 'timeout'"):
        AlertmanagerSink("http://am:9093", timeout=5)  # type: ignore[call-arg]
