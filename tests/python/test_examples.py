# SPDX-License-Identifier: MIT OR Apache-2.0
"""The examples under examples/python run against the test server (the README quotes them)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import redis

from helpers import ROOT


@pytest.mark.parametrize(
    "example, expected",
    [
        ("quickstart.py", ["holding lock:order:42 with fencing token ", "acquired again, held=True", "released everything"]),
        ("quickstart_sync.py", ["processing order 42 under fencing token ", "done"]),
        (
            "monitor.py",
            [
                "alert [critical]: Stuck saga detected: PaymentSaga",
                "alert [warning]: Long-running saga detected: PaymentSaga",
                "retrying order-42 (attempt 1)",
                "leader=True, errors=[]",
                "sagas_active_total 1",
                "stopped",
            ],
        ),
    ],
)
def test_example_runs(example: str, expected: list[str], url: str, raw: redis.Redis) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "python" / example)],
        env={**os.environ, "REDIS_URL": url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for text in expected:
        assert text in done.stdout, done.stdout
    assert raw.keys("lock:*") == [], "the example released its locks"
