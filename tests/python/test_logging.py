# SPDX-License-Identifier: MIT OR Apache-2.0
"""Rust tracing events reach Python's logging, logger "txcoord", from any thread."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest
import redis

import txcoord
import txcoord.sync

from helpers import native_hook, wait_for, wait_until


def records(caplog: pytest.LogCaptureFixture, text: str, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "txcoord" and r.levelno == level and text in r.getMessage()]


def test_events_are_forwarded_with_their_level(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="txcoord")
    for level, py_level in [("error", logging.ERROR), ("warn", logging.WARNING), ("info", logging.INFO), ("debug", logging.DEBUG)]:
        native_hook("_test_log")(level, f"hello {level} %s")
        wait_until(lambda: bool(records(caplog, f"hello {level} %s", py_level)), f"the {level} record")


async def test_a_lost_lock_is_logged_as_a_warning(url: str, raw: redis.Redis, name: str, caplog: pytest.LogCaptureFixture) -> None:
    lock = txcoord.DistributedLock(url, f"lock:{name}", 3000)
    assert await lock.acquire()
    raw.set(f"lock:{name}", "intruder")
    assert await asyncio.wait_for(lock.lost(), 10) == "taken"
    await wait_for(lambda: bool(records(caplog, f"lock:{name} lost (taken)", logging.WARNING)), "the warning")


def test_logging_while_python_threads_wait_on_the_core(url: str, raw: redis.Redis, name: str, caplog: pytest.LogCaptureFixture) -> None:
    # A thread blocked in the core (GIL released) and a lock lost meanwhile: the runtime thread
    # that logs must not wait for the GIL, and nothing deadlocks.
    lock = txcoord.sync.DistributedLock(url, f"lock:{name}", 3000)
    assert lock.acquire()
    result: list[str | None] = []
    t = threading.Thread(target=lambda: result.append(lock.lost()))
    t.start()
    raw.set(f"lock:{name}", "intruder")
    t.join(20)
    assert not t.is_alive()
    assert result == ["taken"]
    wait_until(lambda: bool(records(caplog, f"lock:{name} lost (taken)", logging.WARNING)), "the warning")
