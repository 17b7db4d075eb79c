# SPDX-License-Identifier: MIT OR Apache-2.0
"""The Python saga worker of the demo (`make demo`).

It runs the sagas the demo gives it, beside a Rust and a Node worker that run theirs on the same
Redis: each saga is a record in txcoord's built-in saga repository (created EXECUTING, saved
after each step, COMPLETED, COMPENSATED or FAILED at the end), and each step locks a shared
resource with the saga id as the owner id, so the lock registry knows which saga holds and which
waits. The demo (examples/rust/src/demo/sagas/) drives it with one JSON command a line on stdin
and reads one JSON event a line from its stdout; the Rust worker
(examples/rust/src/demo/sagas/rust_worker.rs) lists the commands. By hand:

    echo '{"cmd": "mix", "concurrency": 1, "sagas": [{"id": "py-1", "type": "PaymentSaga",
           "steps": [{"name": "authorize", "resource": "account:1", "work_ms": 20}]}]}' |
        REDIS_URL=redis://127.0.0.1:6379 .venv/bin/python examples/demo/saga_worker.py
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from datetime import datetime, timezone
from typing import Any

import txcoord
from txcoord import SagaRecord, SagaStatus

TTL_MS = 10_000  # each lock's lease, renewed while held
LOCK_TIMEOUT_MS = 15_000  # how long a step waits for its lock


def emit(event: str, **fields: Any) -> None:
    """One event for the demo: a JSON line, timestamped in wall-clock milliseconds."""
    print(json.dumps({"ev": event, "t": time.time() * 1000, **fields}), flush=True)


def now_ms() -> float:
    return time.time() * 1000


class EventHandler(logging.Handler):
    """txcoord's log records (a deadlock broken by this process's probe, a lost lock) as events."""

    def emit(self, record: logging.LogRecord) -> None:
        emit("log", level=record.levelname.lower(), message=record.getMessage())


class Worker:
    def __init__(self, url: str) -> None:
        self.client = txcoord.Client(url, client_name="demo-saga-worker-py")
        self.manager = txcoord.LockManager(self.client)
        self.repo = txcoord.RedisSagaRepository(self.client)
        # sagas between dl_hold and dl_wait: id -> (record, spec, locks, started)
        self.open: dict[str, tuple[SagaRecord, dict[str, Any], list[txcoord.DistributedLock], float]] = {}

    async def save(self, record: SagaRecord) -> None:
        record.updated_at = datetime.now(timezone.utc)
        await self.repo.save(record)

    async def start(self, spec: dict[str, Any]) -> SagaRecord:
        record = SagaRecord(spec["id"], spec["type"], priority=spec.get("priority", 0))
        await self.save(record)
        emit("started", id=record.id, type=record.type)
        return record

    async def lock(self, record: SagaRecord, resource: str) -> txcoord.DistributedLock | None:
        """The step's lock, owned by the saga; None when it stayed busy."""
        asked = now_ms()
        lock = await self.manager.acquire_lock(
            resource, ttl_ms=TTL_MS, timeout_ms=LOCK_TIMEOUT_MS, owner_id=record.id, priority=record.priority
        )
        if lock is not None:
            waited = now_ms() - asked
            emit("locked", id=record.id, resource=resource, token=lock.fencing_token, waited_ms=waited)
        return lock

    async def release(self, saga_id: str, locks: list[txcoord.DistributedLock]) -> None:
        emit("released", id=saga_id, resources=[lock.key.removeprefix("lock:") for lock in locks])
        for lock in reversed(locks):
            await lock.release()

    async def finish(
        self,
        record: SagaRecord,
        locks: list[txcoord.DistributedLock],
        status: SagaStatus,
        error: str | None,
        started: float,
    ) -> None:
        record.status = status
        record.error = error
        await self.save(record)
        await self.release(record.id, locks)
        ms = now_ms() - started
        emit("finished", id=record.id, type=record.type, status=status.value, error=error, ms=ms)

    async def compensate(
        self,
        record: SagaRecord,
        spec: dict[str, Any],
        done: int,
        locks: list[txcoord.DistributedLock],
        reason: str,
        started: float,
    ) -> None:
        """Undoes the steps done, in reverse, then ends COMPENSATED."""
        record.status = SagaStatus.COMPENSATING
        record.error = reason
        await self.save(record)
        emit("compensating", id=record.id, reason=reason, steps=done)
        for step in reversed(spec["steps"][:done]):
            await asyncio.sleep(step["work_ms"] / 2000)
        await self.finish(record, locks, SagaStatus.COMPENSATED, reason, started)

    async def run_saga(self, spec: dict[str, Any]) -> None:
        started = now_ms()
        record = await self.start(spec)
        locks: list[txcoord.DistributedLock] = []
        for i, step in enumerate(spec["steps"]):
            if step.get("resource"):
                lock = await self.lock(record, step["resource"])
                if lock is None:
                    why = f"{step['resource']} stayed busy"
                    await self.finish(record, locks, SagaStatus.FAILED, why, started)
                    return
                locks.append(lock)
            await asyncio.sleep(step["work_ms"] / 1000)
            if spec.get("decline_at") == i:
                await self.compensate(record, spec, i, locks, "payment declined", started)
                return
            await self.save(record)
        await self.finish(record, locks, SagaStatus.COMPLETED, None, started)

    async def mix(self, sagas: list[dict[str, Any]], concurrency: int) -> None:
        """Runs the sagas, `concurrency` at a time."""
        slots = asyncio.Semaphore(max(1, concurrency))

        async def one(spec: dict[str, Any]) -> None:
            async with slots:
                await self.run_saga(spec)

        await asyncio.gather(*(one(spec) for spec in sagas))

    async def stall(self, saga: dict[str, Any], hang_at: int, poll_ms: int, give_up_ms: int) -> None:
        """Runs the steps before `hang_at`, then hangs: the record stops moving. Watches what the
        monitor writes into it, and compensates once it says COMPENSATING."""
        started = now_ms()
        record = await self.start(saga)
        locks: list[txcoord.DistributedLock] = []
        for step in saga["steps"][:hang_at]:
            if step.get("resource"):
                lock = await self.lock(record, step["resource"])
                if lock is None:
                    raise RuntimeError(f"{step['resource']} stayed busy")
                locks.append(lock)
            await asyncio.sleep(step["work_ms"] / 1000)
            await self.save(record)
        step_name = saga["steps"][hang_at]["name"]
        emit("stalled", id=record.id, step=step_name)
        seen = None
        while True:
            current = await self.repo.find_by_id(record.id)
            if current is None:
                raise RuntimeError(f"{record.id}: the record is gone")
            if (current.status, current.retry_count) != seen:
                seen = (current.status, current.retry_count)
                emit(
                    "record",
                    id=current.id,
                    status=current.status.value,
                    retry_count=current.retry_count,
                    stuck_reason=current.stuck_reason,
                    stuck_detail=current.stuck_detail,
                    version=current.version,
                )
            if current.status == SagaStatus.COMPENSATING:
                break
            if current.status in (SagaStatus.COMPLETED, SagaStatus.COMPENSATED, SagaStatus.FAILED):
                raise RuntimeError(f"{current.id} ended {current.status.value} under it")
            if now_ms() - started > give_up_ms:
                raise RuntimeError(f"{current.id}: never marked COMPENSATING ({current.retry_count} retries)")
            await asyncio.sleep(poll_ms / 1000)
        retries = current.retry_count
        emit("compensating", id=current.id, reason=current.stuck_reason, steps=hang_at, retries=retries)
        await self.release(current.id, locks)
        for _ in range(5):
            # conditional: the monitor's record, one version on (it may write meanwhile)
            version = current.version
            current.status = SagaStatus.COMPENSATED
            current.error = f"stalled at {step_name}; compensated after {current.retry_count} retries"
            current.updated_at = datetime.now(timezone.utc)
            if await self.repo.save(current, expected_version=version):
                ms = now_ms() - started
                emit("finished", id=current.id, type=current.type, status="COMPENSATED", error=current.error, ms=ms)
                return
            again = await self.repo.find_by_id(current.id)
            if again is None:
                raise RuntimeError(f"{current.id}: the record is gone")
            current = again
        raise RuntimeError(f"{current.id}: could not save COMPENSATED")

    async def dl_hold(self, saga: dict[str, Any]) -> None:
        """Takes the first step's lock and keeps it (the deadlock scene)."""
        started = now_ms()
        record = await self.start(saga)
        lock = await self.lock(record, saga["steps"][0]["resource"])
        if lock is None:
            raise RuntimeError(f"{saga['steps'][0]['resource']} stayed busy")
        self.open[record.id] = (record, saga, [lock], started)

    async def dl_wait(self, id: str) -> None:
        """Waits for the second step's lock: completes, or is the deadlock victim and fails."""
        record, spec, locks, started = self.open.pop(id)
        second = spec["steps"][1]
        emit("waiting", id=id, resource=second["resource"])
        try:
            lock = await self.lock(record, second["resource"])
        except txcoord.DeadlockVictimError as e:
            cycle = e.cycle
            emit(
                "victim",
                id=id,
                code="TXCOORD_DEADLOCK_VICTIM",
                cycle=str(cycle) if cycle else str(e),
                sagas=cycle.sagas if cycle else None,
                victim=cycle.victim if cycle else None,
            )
            why = f"deadlock victim ({cycle.id if cycle else ''})"
            await self.finish(record, locks, SagaStatus.FAILED, why, started)
            return
        if lock is None:
            await self.finish(record, locks, SagaStatus.FAILED, f"{second['resource']} stayed busy", started)
            return
        locks.append(lock)
        await asyncio.sleep(second["work_ms"] / 1000)
        await self.save(record)
        await self.finish(record, locks, SagaStatus.COMPLETED, None, started)


async def main() -> None:
    log = logging.getLogger("txcoord")
    log.addHandler(EventHandler(logging.WARNING))
    log.propagate = False
    worker = Worker(os.environ["REDIS_URL"])  # set by the demo
    await worker.client.ping()
    emit("ready", pid=os.getpid(), version=sys.version.split()[0])
    running: set[asyncio.Task[None]] = set()

    async def run(name: str, command: dict[str, Any]) -> None:
        try:
            await getattr(worker, name)(**command)
        except Exception as e:  # reported to the demo, which stops the story
            emit("error", cmd=name, message=f"{type(e).__name__}: {e}")
        else:
            emit("done", cmd=name)

    while line := await asyncio.to_thread(sys.stdin.readline):
        command = json.loads(line)
        name = command.pop("cmd")
        if name == "exit":
            break
        task = asyncio.create_task(run(name, command))  # commands run side by side
        running.add(task)
        task.add_done_callback(running.discard)
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)
    await worker.manager.aclose()
    worker.client.close()


if __name__ == "__main__":
    asyncio.run(main())
