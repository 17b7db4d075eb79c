# SPDX-License-Identifier: MIT OR Apache-2.0
"""Fixtures of the cross-language tests: one throwaway redis-server for the session (a
foreground child on a free loopback port, never 6379), flushed before each test, and agents
in Python, Node and Rust that are stopped (by pid) when the test ends."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis

from cross_harness import MEASURED, Agent, kill_running, start_agents


@dataclass
class RedisServer:
    url: str
    port: int
    process: subprocess.Popen[bytes]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    binary = os.environ.get("TXCOORD_REDIS_SERVER", "redis-server")
    if shutil.which(binary) is None:
        raise RuntimeError(f"{binary} not found (apt-get install redis-server)")
    workdir = tempfile.mkdtemp(prefix="txcoord-cross-redis-")
    last = ""
    try:
        for _ in range(5):
            port = _free_port()
            if port == 6379:
                continue
            proc = subprocess.Popen(
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", workdir, "--loglevel", "warning"],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            try:
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and proc.poll() is None:
                    if _answers_ping(port):
                        break
                    time.sleep(0.02)
            except BaseException:  # a timeout or an interrupt while it starts
                proc.kill()
                proc.communicate(timeout=5)
                raise
            if proc.poll() is None and _answers_ping(port):
                try:
                    yield RedisServer(f"redis://127.0.0.1:{port}/0", port, proc)
                finally:
                    proc.kill()
                    proc.communicate(timeout=10)
                return
            proc.kill()
            out, _ = proc.communicate(timeout=5)
            last = out.decode(errors="replace")
        raise RuntimeError(f"could not start {binary}: {last}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def raw(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A plain redis-py client on the server (flushed before each test)."""
    r = redis.Redis.from_url(redis_server.url, decode_responses=True)
    r.flushall()
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def agents(redis_server: RedisServer, raw: redis.Redis) -> Iterator[Callable[..., list[Agent]]]:
    """`agents("python", "node")` starts those agents (in parallel) and returns them in order
    (keyword `fallback_poll_ms`: their managers' fallback poll); every agent started is stopped
    at the end of the test."""
    started: list[Agent] = []

    def start(*langs: str, fallback_poll_ms: int | None = None) -> list[Agent]:
        new = start_agents(langs, redis_server.url, fallback_poll_ms=fallback_poll_ms)
        started.extend(new)
        return new

    try:
        yield start
    finally:
        try:
            for agent in started:
                agent.stop()
        finally:
            for agent in started:  # those a failed stop() left behind
                agent.kill()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    kill_running()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if MEASURED:
        terminalreporter.section("cross-language measurements")
        for key, value in MEASURED.items():
            terminalreporter.write_line(f"{key}: {json.dumps(value)}")
