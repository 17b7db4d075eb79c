# SPDX-License-Identifier: MIT OR Apache-2.0
"""Helpers shared by the tests: wait for a condition until a deadline (never a bare sleep
standing in for an event), and the protocol's key names."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


async def wait_for(
    condition: Callable[[], bool | Awaitable[bool]],
    what: str,
    timeout: float = 10.0,
    interval: float = 0.01,
) -> None:
    """Polls `condition` until it holds, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(interval)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0, interval: float = 0.01) -> None:
    """The blocking `wait_for`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def waiter_keys(resource: str) -> tuple[str, str]:
    """The queue and waiter-entry keys of `lock:<resource>` (PROTOCOL.md, section 1)."""
    return f"{{lock:{resource}}}:~q", f"{{lock:{resource}}}:~w"


def native_hook(name: str) -> Callable[..., Any]:
    """A test-only function of the native module (`_test_panic`, `_test_log`), present when the
    package is built with the `test-hooks` feature, as scripts/test-python.sh builds it."""
    import txcoord._native

    hook: Callable[..., Any] | None = getattr(txcoord._native, name, None)
    assert callable(hook), f"txcoord._native.{name} is missing: build with --features test-hooks"
    return hook
