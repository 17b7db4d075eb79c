# SPDX-License-Identifier: MIT OR Apache-2.0
"""txcoord saga monitor (asyncio): alerts, recovery and the seed's metrics on /metrics.

    REDIS_URL=redis://127.0.0.1:6379/0 python examples/python/monitor.py

Run by tests/python/test_examples.py; the README's monitor snippet is taken from here.
"""

import asyncio
import os
import urllib.request
from datetime import datetime, timedelta, timezone

import txcoord


class PrintAlerts:
    """Any object with the seed's send(alert) is an alert manager (or use txcoord.LogAlertSink,
    txcoord.AlertmanagerSink)."""

    async def send(self, alert: txcoord.Alert) -> None:
        state = "resolved" if alert.resolved else alert.severity
        print(f"alert [{state}]: {alert.summary}")


async def retry(saga: txcoord.SagaRecord) -> None:
    print(f"retrying {saga.id} (attempt {saga.retry_count})")


async def main() -> None:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    repo = txcoord.RedisSagaRepository(url, default_stuck_after_ms=60_000)
    long_ago = datetime.now(timezone.utc) - timedelta(minutes=10)
    await repo.save(txcoord.SagaRecord("order-42", "PaymentSaga", created_at=long_ago, updated_at=long_ago))

    collector = txcoord.TransactionMetricsCollector()
    detector = txcoord.SagaDeadlockDetector(repo, metrics=collector)
    async with await txcoord.serve_metrics(collector, "127.0.0.1", 0) as server:
        # Starts at once and runs a pass every interval_ms (30 s); only the leader of all the
        # monitors sharing this Redis acts.
        async with txcoord.SagaMonitor(repo, collector, PrintAlerts(), detector, on_retry=retry) as monitor:
            report = await monitor.tick()  # one more pass now
            print(f"leader={report.leader}, errors={report.errors}")
        with urllib.request.urlopen(server.url) as response:
            for line in response.read().decode().splitlines():
                if line.startswith("sagas_active_total"):
                    print(line)
    print("stopped")


if __name__ == "__main__":
    asyncio.run(main())
