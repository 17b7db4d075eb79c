# SPDX-License-Identifier: MIT OR Apache-2.0
"""A throwaway redis-server for the Python benchmark programs: a free loopback port (never
6379), no persistence, its own temporary directory (with its log), killed and removed by
`stop()`. The binary is `$TXCOORD_REDIS_SERVER`, or `redis-server` from PATH.

    with RedisServer.start() as server:
        run(server.url)
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, directory: str) -> None:
        self.proc = proc
        self.port = port
        self.directory = directory
        self.url = f"redis://127.0.0.1:{port}"

    @classmethod
    def start(cls, attempts: int = 5, timeout: float = 10.0) -> RedisServer:
        name = os.environ.get("TXCOORD_REDIS_SERVER", "redis-server")
        binary = shutil.which(name)
        if not binary:
            raise SystemExit(f"{name} not found (make deps installs redis-server; TXCOORD_REDIS_SERVER names another binary)")
        directory = tempfile.mkdtemp(prefix="txcoord-bench-redis-")
        log = Path(directory) / "redis.log"
        for _ in range(attempts):
            port = _free_port()
            proc = subprocess.Popen(
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", directory, "--logfile", str(log), "--loglevel", "warning"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            until = time.monotonic() + timeout
            while time.monotonic() < until and proc.poll() is None:
                if _answers(port):
                    return cls(proc, port, directory)
                time.sleep(0.02)
            proc.kill()
            proc.wait()
        tail = log.read_text(errors="replace").splitlines()[-20:] if log.exists() else []
        shutil.rmtree(directory, ignore_errors=True)
        raise SystemExit("could not start redis-server:\n" + "\n".join(tail))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
