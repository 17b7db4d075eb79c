# SPDX-License-Identifier: MIT OR Apache-2.0
"""The Python lock agent of the cross-language tests: commands on stdin, one per line, one JSON
object per line on stdout. The Rust agent (examples/rust/src/bin/lock_agent.rs) and the Node
agent (agent.js) speak the same protocol (README.md in this folder).

    python agent.py <redis-url> <name>        # TXCOORD_WITNESS_LUA = path of the witness script

TXCOORD_FALLBACK_POLL_MS, if set, is the manager's fallback poll (its waiter lease is four
times that).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

import redis.asyncio as aioredis

import txcoord


def now_us() -> int:
    """Wall-clock microseconds: every agent reports the same clock."""
    return time.time_ns() // 1000


def emit(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields, separators=(",", ":")) + "\n")
    sys.stdout.flush()


class Agent:
    def __init__(self, url: str, name: str, witness_src: str) -> None:
        self.name = name
        self.client = txcoord.Client(url, client_name=f"cross-python-{name}")
        poll = os.environ.get("TXCOORD_FALLBACK_POLL_MS")
        if poll is None:
            self.manager = txcoord.LockManager(self.client)
        else:
            self.manager = txcoord.LockManager(
                self.client, fallback_poll_ms=int(poll), waiter_lease_ms=4 * int(poll)
            )
        self.locks: dict[str, txcoord.DistributedLock] = {}
        self.elections: dict[str, tuple[txcoord.LeaderElection, int | None]] = {}
        # The term each election was last won with (kept after the leadership ends: a
        # deposed leader that writes anyway writes with it).
        self.terms: dict[str, int] = {}
        # What the callbacks said last: the term this candidate leads with, per on_elected
        # and on_revoked (what an application following them believes).
        self.notified: dict[str, int | None] = {}
        self.store = aioredis.Redis.from_url(url)
        self.witness = self.store.register_script(witness_src)

    def lock(self, resource: str) -> txcoord.DistributedLock:
        try:
            return self.locks[resource]
        except KeyError:
            raise RuntimeError(f"no lock on {resource} was acquired") from None

    async def acquire(
        self,
        resource: str,
        ttl_ms: int,
        timeout_ms: int,
        fair: bool,
        owner_id: str | None = None,
        priority: int | None = None,
    ) -> txcoord.DistributedLock | None:
        box: list[txcoord.DistributedLock] = []

        def on_lost(reason: str) -> None:
            # Called on this event loop when the lock stops being held other than by release.
            lock = box[0] if box else None
            emit(
                ev="lost",
                resource=resource,
                reason=reason,
                is_held=lock.is_held if lock else None,
                status=lock.status if lock else None,
                token=lock.fencing_token if lock else None,
                t_us=now_us(),
            )

        lock = await self.manager.acquire_lock(
            resource, ttl_ms, timeout_ms, fair=fair, owner_id=owner_id, priority=priority, on_lost=on_lost
        )
        if lock is not None:
            box.append(lock)
            self.locks[resource] = lock
        return lock

    def election(self, name: str, ttl_ms: int | None = None) -> txcoord.LeaderElection:
        """This agent's candidate in the election `name` (candidate id: the agent's name),
        created by its first command on `name` (with the default ttl unless a campaign)."""
        known = self.elections.get(name)
        if known is not None:
            election, ttl = known
            if ttl_ms is not None and ttl_ms != ttl:
                raise RuntimeError(f"the election {name} was joined with ttl_ms={ttl}, not {ttl_ms}")
            return election

        def on_elected(term: int) -> None:
            self.terms[name] = term
            self.notified[name] = term
            emit(ev="elected", name=name, term=term, t_us=now_us())

        def on_revoked(term: int) -> None:
            if self.notified.get(name) == term:
                self.notified[name] = None
            emit(ev="revoked", name=name, term=term, t_us=now_us())

        if ttl_ms is None:
            election = txcoord.LeaderElection(
                self.client, name, candidate_id=self.name, on_elected=on_elected, on_revoked=on_revoked
            )
        else:
            election = txcoord.LeaderElection(
                self.client, name, ttl_ms=ttl_ms, candidate_id=self.name, on_elected=on_elected, on_revoked=on_revoked
            )
        self.elections[name] = (election, ttl_ms)
        return election

    async def fenced_write(self, witness_key: str, token: int | None) -> bool:
        if token is None:
            raise RuntimeError("no fencing token")
        accepted = await self.witness(keys=[witness_key], args=[str(token), self.name])
        return bool(accepted == 1)

    def stats(self) -> dict[str, int]:
        return self.client.stats()

    async def handle(self, cid: str, verb: str, args: list[str]) -> None:
        if verb == "acquire":
            resource, ttl_ms, timeout_ms = args[0], int(args[1]), int(args[2])
            fair = "fair" in args[3:]
            owners = [a.removeprefix("owner=") for a in args[3:] if a.startswith("owner=")]
            priorities = [int(a.removeprefix("priority=")) for a in args[3:] if a.startswith("priority=")]
            before = self.stats()
            t0 = now_us()
            lock = await self.acquire(
                resource,
                ttl_ms,
                timeout_ms,
                fair,
                owners[0] if owners else None,
                priorities[0] if priorities else None,
            )
            t = now_us()
            after = self.stats()
            emit(
                id=cid,
                ev="acquire",
                ok=lock is not None,
                token=lock.fencing_token if lock else None,
                hold_count=lock.hold_count if lock else None,
                t0_us=t0,
                t_us=t,
                attempts=after["attempts"] - before["attempts"],
                wake_notified=after["wake_notified"] - before["wake_notified"],
                wake_timer=after["wake_timer"] - before["wake_timer"],
            )
        elif verb == "release":
            lock = self.lock(args[0])
            t0 = now_us()
            await lock.release()
            emit(id=cid, ev="release", t0_us=t0, t_us=now_us())
        elif verb == "status":
            lock = self.lock(args[0])
            emit(
                id=cid,
                ev="status",
                is_held=lock.is_held,
                status=lock.status,
                loss_reason=lock.loss_reason,
                token=lock.fencing_token,
                remaining_validity_ms=lock.remaining_validity_ms,
            )
        elif verb == "write":
            lock = self.lock(args[0])
            witness_key = args[1]
            force = args[2:3] == ["force"]
            # The protected operation: a holder that is not sure to hold the lock stops here.
            is_held = lock.is_held
            done = is_held or force
            accepted = await self.fenced_write(witness_key, lock.fencing_token) if done else None
            emit(
                id=cid,
                ev="write",
                done=done,
                accepted=accepted,
                is_held=is_held,
                token=lock.fencing_token,
                loss_reason=lock.loss_reason,
            )
        elif verb == "cycle":
            resource, rounds, ttl_ms, timeout_ms, witness_key = (
                args[0], int(args[1]), int(args[2]), int(args[3]), args[4],
            )
            fair = args[5:6] == ["fair"]
            acquired = 0
            for i in range(rounds):
                lock = await self.acquire(resource, ttl_ms, timeout_ms, fair)
                if lock is None:
                    emit(id=cid, ev="round", i=i, ok=False)
                    continue
                acquired += 1
                t_acq = now_us()
                accepted = await self.fenced_write(witness_key, lock.fencing_token)
                t_rel = now_us()
                await lock.release()
                emit(
                    id=cid,
                    ev="round",
                    i=i,
                    ok=True,
                    token=lock.fencing_token,
                    accepted=accepted,
                    t_acq_us=t_acq,
                    t_rel_us=t_rel,
                )
            emit(id=cid, ev="cycle", rounds=rounds, acquired=acquired)
        elif verb == "campaign":
            name, ttl_ms, timeout_ms = args[0], int(args[1]), int(args[2])
            election = self.election(name, ttl_ms)
            before = self.stats()
            t0 = now_us()
            ok = await election.campaign(timeout_ms)
            t = now_us()
            after = self.stats()
            term = election.term
            if ok and term is not None:
                self.terms[name] = term
            emit(
                id=cid,
                ev="campaign",
                ok=ok,
                term=term,
                t0_us=t0,
                t_us=t,
                wake_notified=after["wake_notified"] - before["wake_notified"],
                wake_timer=after["wake_timer"] - before["wake_timer"],
            )
        elif verb == "resign":
            election = self.election(args[0])
            t0 = now_us()
            await election.resign()
            emit(id=cid, ev="resign", t0_us=t0, t_us=now_us(), is_leader=election.is_leader)
        elif verb == "leader":
            election = self.election(args[0])
            leader = await election.leader()
            emit(
                id=cid,
                ev="leader",
                candidate_id=leader.candidate_id if leader else None,
                term=leader.term if leader else None,
                remaining_ms=leader.remaining_ms if leader else None,
                is_leader=election.is_leader,
                own_term=election.term,
            )
        elif verb == "lead":
            name, witness_key = args[0], args[1]
            force = args[2:3] == ["force"]
            election = self.election(name)
            # The leader's protected action: a candidate that does not believe it leads stops here.
            is_leader = election.is_leader
            current = election.term if is_leader else None
            term = current if current is not None else self.terms.get(name)
            done = is_leader or force
            notified = self.notified.get(name)
            accepted = await self.fenced_write(witness_key, term) if done else None
            emit(
                id=cid,
                ev="lead",
                done=done,
                accepted=accepted,
                is_leader=is_leader,
                term=term,
                current_term=current,
                notified_term=notified,
            )
        elif verb in ("stats", "ping"):
            # `ping`: the counters first, then a PING on the client's connection, so every
            # attempt counted has been answered by Redis when the reply arrives.
            stats = self.stats()
            if verb == "ping":
                await self.client.ping()
            emit(id=cid, ev=verb, **stats)
        else:
            raise RuntimeError(f"unknown command {verb!r}")

    async def run_command(self, cid: str, verb: str, args: list[str]) -> None:
        try:
            await self.handle(cid, verb, args)
        except Exception as e:  # reported to the harness, which fails the test
            emit(id=cid, ev="error", message=f"{type(e).__name__}: {e}", code=getattr(e, "code", None))

    async def close(self) -> int:
        failures = await self.manager.aclose()
        resign_failures = 0
        for election, _ in self.elections.values():
            try:
                await election.resign()
            except txcoord.TxcoordError:
                resign_failures += 1
        await self.store.aclose()
        return len(failures) + resign_failures


async def main() -> None:
    url, name = sys.argv[1], sys.argv[2]
    with open(os.environ["TXCOORD_WITNESS_LUA"], encoding="utf-8") as f:
        witness_src = f.read()
    agent = Agent(url, name, witness_src)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    emit(ev="ready", lang="python", name=name, pid=os.getpid())
    tasks: set[asyncio.Task[None]] = set()
    quit_id = None
    while True:
        raw = await reader.readline()
        if not raw:
            break
        words = raw.decode().split()
        if len(words) < 2:
            continue
        cid, verb, rest = words[0], words[1], words[2:]
        if verb == "quit":
            quit_id = cid
            break
        # Every command runs as its own task: a `ping` is answered while an `acquire` waits.
        task = asyncio.create_task(agent.run_command(cid, verb, rest))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    for task in list(tasks):
        task.cancel()
    failures = await agent.close()
    if quit_id is not None:
        emit(id=quit_id, ev="quit", release_failures=failures)


if __name__ == "__main__":
    asyncio.run(main())
