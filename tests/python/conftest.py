# SPDX-License-Identifier: MIT OR Apache-2.0
"""Fixtures: one throwaway redis-server per test session (a foreground child process on a
free loopback port, never 6379), flushed before each test, and helpers that wait for a
condition until a deadline instead of sleeping."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis


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


def _start(binary: str, workdir: str) -> RedisServer:
    """A redis-server in `workdir`, its output in `workdir`/redis.log (shown when it fails)."""
    log_path = os.path.join(workdir, "redis.log")
    last = ""
    for _ in range(5):
        port = _free_port()
        if port == 6379:
            continue
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [
                    binary,
                    "--port", str(port),
                    "--bind", "127.0.0.1",
                    "--save", "",
                    "--appendonly", "no",
                    "--dir", workdir,
                    "--loglevel", "warning",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and proc.poll() is None:
                if _answers_ping(port):
                    return RedisServer(f"redis://127.0.0.1:{port}/0", port, proc)
                time.sleep(0.02)
        except BaseException:  # a timeout or an interrupt while it starts
            _stop(proc)
            raise
        _stop(proc)
        last = f"port {port}, exit status {proc.returncode}; the end of {log_path}:\n{_tail(log_path)}"
    raise RuntimeError(f"could not start {binary}: {last}")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    binary = os.environ.get("TXCOORD_REDIS_SERVER", "redis-server")
    if shutil.which(binary) is None:
        raise RuntimeError(f"{binary} not found: scripts/test-python.sh installs it with apt")
    workdir = tempfile.mkdtemp(prefix="txcoord-pytest-redis-")
    try:
        server = _start(binary, workdir)
        try:
            yield server
        finally:
            _stop(server.process)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def raw(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A plain redis-py client on the test server, to inspect and disturb what txcoord does."""
    r = redis.Redis.from_url(redis_server.url, decode_responses=True)
    r.flushall()
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def url(redis_server: RedisServer, raw: redis.Redis) -> str:
    """The server's URL; the database is flushed before each test (through `raw`)."""
    return redis_server.url


@pytest.fixture
def name() -> str:
    """A resource name unique to the test."""
    return f"r-{uuid.uuid4().hex[:12]}"
