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


def _tail(path: str, lines: int = 20) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """The session's redis-server, in a temporary directory that also holds its output
    (redis.log, shown when it does not start); killed and the directory removed at the end."""
    binary = os.environ.get("TXCOORD_REDIS_SERVER", "redis-server")
    if shutil.which(binary) is None:
        raise RuntimeError(f"{binary} not found (scripts/install-deps.sh installs it)")
    workdir = tempfile.mkdtemp(prefix="txcoord-cross-redis-")
    log_path = os.path.join(workdir, "redis.log")
    last = ""
    try:
        for _ in range(5):
            port = _free_port()
            if port == 6379:
                continue
            with open(log_path, "ab") as log:
                proc = subprocess.Popen(
                    [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                     "--dir", workdir, "--loglevel", "warning"],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            try:
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and proc.poll() is None:
                    if _answers_ping(port):
                        break
                    time.sleep(0.02)
                if proc.poll() is None and _answers_ping(port):
                    yield RedisServer(f"redis://127.0.0.1:{port}/0", port, proc)
                    return
            finally:
                _stop(proc)
            last = f"port {port}, exit status {proc.returncode}; the end of {log_path}:\n{_tail(log_path)}"
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
