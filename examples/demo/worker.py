# SPDX-License-Identifier: MIT OR Apache-2.0
"""The Python worker of the cross-language demo (`make demo`).

It contends for the same locks as a Rust task and a Node service, passes each lock's fencing
token to its storage (a fenced write on Redis, examples/demo/fenced_write.lua), and hears when
it has lost a lock. The demo (examples/rust/src/bin/demo.rs) drives it with one JSON command a
line on stdin and reads one JSON event a line from its stdout. By hand:

    echo '{"cmd": "contend", "resource": "inventory:sku-42", "rounds": 3}' |
        REDIS_URL=redis://127.0.0.1:6379 .venv/bin/python examples/demo/worker.py
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

import redis.asyncio as redis  # the application's own Redis client

import txcoord

FENCED_WRITE = (Path(__file__).parent / "fenced_write.lua").read_text()


def emit(event: str, **fields: Any) -> None:
    """One event for the demo: a JSON line, timestamped in wall-clock milliseconds."""
    print(json.dumps({"ev": event, "t": time.time() * 1000, **fields}), flush=True)


class Worker:
    def __init__(self, store: redis.Redis) -> None:
        self.store = store
        self.fenced_write = store.register_script(FENCED_WRITE)
        # txcoord reads the redis-py client's settings (host, db, credentials, TLS).
        self.manager = txcoord.LockManager(store)

    async def write(self, resource: str, token: int) -> bool:
        """The protected write: refused by the storage if a newer token has written since."""
        keys = [f"demo:{resource}:fence", f"demo:{resource}:log"]
        accepted = bool(await self.fenced_write(keys=keys, args=[token, f"python {token}"]))
        emit("write", resource=resource, token=token, accepted=accepted)
        return accepted

    async def contend(
        self, resource: str, rounds: int, ttl_ms: int, work_ms: list[int], idle_ms: list[int]
    ) -> None:
        """`rounds` times: take the lock, write under its token, work a little, let go, idle."""
        for _ in range(rounds):
            asked = time.time() * 1000
            async with self.manager.lock(resource, ttl_ms=ttl_ms, timeout_ms=10_000) as lock:
                token = lock.fencing_token
                assert token is not None
                emit("acquired", resource=resource, token=token, asked=asked)
                await self.write(resource, token)
                await asyncio.sleep(random.uniform(*work_ms) / 1000)
                emit("release", resource=resource)
            await asyncio.sleep(random.uniform(*idle_ms) / 1000)

    async def hold(self, resource: str, ttl_ms: int) -> None:
        """Holds a short-TTL lock, checks it, and is frozen before it writes (a stop-the-world
        pause: GC, swap, a VM migration). Renewals stop with the process, the lock expires and
        another service takes it: on waking up, the write is refused and the loss reported."""
        lock = await self.manager.acquire_lock(
            resource,
            ttl_ms=ttl_ms,
            timeout_ms=10_000,
            on_lost=lambda reason: emit("lost", resource=resource, reason=reason),
        )
        assert lock is not None and lock.fencing_token is not None
        token = lock.fencing_token
        emit("acquired", resource=resource, token=token, ttl_ms=ttl_ms)
        if lock.is_held:  # still ours, so write...
            emit("paused", resource=resource, pid=os.getpid())
            os.kill(os.getpid(), signal.SIGSTOP)  # ...but the whole process freezes first
            emit("resumed", resource=resource, is_held=lock.is_held)
            await self.write(resource, token)
        await lock.lost()  # on_lost reported the loss the moment it was known; wait for it here
        await lock.release()  # a lost lock's release is a no-op: the new holder keeps its lock

    async def take(self, resource: str, ttl_ms: int) -> None:
        """Takes the lock (waiting up to 10 s), writes, and keeps it until `release`."""
        asked = time.time() * 1000
        lock = await self.manager.acquire_lock(resource, ttl_ms=ttl_ms, timeout_ms=10_000)
        assert lock is not None and lock.fencing_token is not None
        emit("acquired", resource=resource, token=lock.fencing_token, asked=asked)
        await self.write(resource, lock.fencing_token)

    async def release(self, resource: str) -> None:
        emit("release", resource=resource)
        await self.manager.release_lock(resource)


async def main() -> None:
    store = redis.Redis.from_url(os.environ["REDIS_URL"])  # set by the demo orchestrator
    worker = Worker(store)
    await store.ping()
    emit("ready", pid=os.getpid(), version=sys.version.split()[0])
    while line := await asyncio.to_thread(sys.stdin.readline):
        command = json.loads(line)
        name = command.pop("cmd")
        if name == "exit":
            break
        await getattr(worker, name)(**command)
        emit("done", cmd=name)
    await worker.manager.aclose()
    await store.aclose()


if __name__ == "__main__":
    asyncio.run(main())
