# SPDX-License-Identifier: MIT OR Apache-2.0
"""The Python side of the side-by-side benchmark: scenarios A, B, C, C2 and D of the Rust
program (bench/), plus peak RSS, for txcoord (asyncio) beside redis-py's
`redis.asyncio.lock.Lock` and python-redis-lock (`redis_lock.Lock`, synchronous: run in
threads), on one redis-server.

    BENCH_REDIS_URL=redis://127.0.0.1:PORT python bench/python/scenarios.py \\
        [--json out.json] [--libs txcoord,redis-py,python-redis-lock]

scripts/bench.sh runs it (with the release wheel of txcoord in target/bench/venv, installed from
bench/python/requirements.txt) beside the Rust and Node programs and prints the combined tables
(bench/report.py). Without BENCH_REDIS_URL (or REDIS_URL) it starts a throwaway redis-server
(bench/python/redis_server.py). The server must be a throwaway one: keys named bench:py:* are
written to it.

Each library runs in its own child process (this file with --lib), so its peak RSS
(`ru_maxrss`) is its own: the interpreter, the library and what it imports (redis-py for the
other two; the harness's own INFO queries use a raw socket), its connections and the harness's
latency samples (8 bytes per cycle).

Scenarios: (A) one task, acquire+release cycles on its own key; (B) 50 tasks (threads for
python-redis-lock) on their own keys, one client per library; (C) 8 tasks on one key, each
with its own client, holding it 1 ms; txcoord also in fair mode; (C2) the same with a 50 ms
pause after each release; (D) 200 locks with ttl 1 s held and renewed.

Knobs (the Rust program's): BENCH_QUICK=1 (every scenario 1 s), BENCH_SECONDS (C, C2, D;
default 10), BENCH_AB_SECONDS (A, B; default 5 or BENCH_SECONDS if shorter).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import math
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from pathlib import Path
from typing import Any, Callable

from redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

AB_TTL_MS = 30_000
AB_TIMEOUT_MS = 10_000
B_TASKS = 50
C_TASKS = 8
C_HOLD = 0.001
C_TTL_MS = 30_000
C2_PAUSE = 0.050
D_LOCKS = 200
D_TTL_MS = 1_000
WARM_CYCLES = 20
MAX_SAMPLES = 2_000_000
HANG_GRACE = 30.0
# D is measured after this long, so every library has renewed at least once (and opened the
# connections it renews on) before the window starts (shorter in runs shorter than that).
SETTLE = 1.2


def settle(cfg: "Config") -> float:
    return min(SETTLE, max(cfg.secs, 0.3))

LIBS = ["txcoord", "redis-py", "python-redis-lock"]

now = time.perf_counter


# ------------------------------------------------------------------------------------------
# Configuration
# ------------------------------------------------------------------------------------------


def env_flag(name: str) -> bool | None:
    v = os.environ.get(name, "").strip().lower()
    if not v:
        return None
    return v in ("1", "true", "yes", "on")


def env_number(name: str) -> float | None:
    v = os.environ.get(name, "").strip()
    if not v:
        return None
    try:
        x = float(v)
    except ValueError:
        print(f"ignoring {name}={v!r}: not a number", file=sys.stderr)
        return None
    return x if math.isfinite(x) else None


class Config:
    def __init__(self) -> None:
        self.quick = bool(env_flag("BENCH_QUICK"))
        secs = env_number("BENCH_SECONDS")
        self.secs = min(max(secs, 0.2), 3600.0) if secs is not None else (1.0 if self.quick else 10.0)
        ab = env_number("BENCH_AB_SECONDS")
        if ab is not None:
            self.ab_secs = min(max(ab, 0.2), 3600.0)
        else:
            self.ab_secs = min(1.0 if self.quick else 5.0, self.secs)


# ------------------------------------------------------------------------------------------
# Redis facts: INFO commandstats, the commands each library's scripts run inside Redis
# ------------------------------------------------------------------------------------------


def txcoord_inner() -> set[str]:
    """Commands txcoord's scripts call on the paths A, B and D take (they count in commandstats,
    but are not sent): the releases and the renewal. An uncontended acquisition without an owner
    id sends SET and TIME itself; the acquire script, which also calls them, runs only for
    contended, fair or owned acquisitions."""
    out = {"publish", "spublish"}
    for name in ("release.lua", "release_hold.lua", "extend.lua"):
        src = (ROOT / "core" / "src" / "lock" / "lua" / name).read_text()
        out.update(m.lower() for m in re.findall(r"redis\.p?call\(\s*['\"](\w+)['\"]", src))
    return out


INNER = {
    "txcoord": txcoord_inner(),
    # redis.asyncio.lock: release (get, del), extend (get, pttl, pexpire), reacquire (get, pexpire)
    "redis-py": {"get", "del", "pttl", "pexpire"},
    # redis_lock: unlock (get, del, lpush, pexpire), extend (get, ttl, expire)
    "python-redis-lock": {"get", "del", "lpush", "pexpire", "ttl", "expire"},
}


class Admin:
    """A minimal RESP connection for the harness's own queries (PING, INFO), so that a child
    process measuring txcoord's peak RSS does not load redis-py."""

    def __init__(self, url: str) -> None:
        rest = url.split("://", 1)[-1].split("/", 1)[0].split("?", 1)[0]
        host, _, port = rest.rpartition(":") if ":" in rest else (rest, "", "6379")
        self.sock = socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=10)
        self.file = self.sock.makefile("rb")

    def command(self, *args: str) -> Any:
        parts = [f"*{len(args)}\r\n".encode()]
        for a in args:
            b = a.encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
        self.sock.sendall(b"".join(parts))
        return self._reply()

    def _reply(self) -> Any:
        line = self.file.readline().rstrip(b"\r\n")
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.file.read(n + 2)[:-2].decode()
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RuntimeError(f"unexpected reply {line!r}")

    def ping(self) -> None:
        self.command("PING")

    def info(self, section: str) -> dict[str, str]:
        out = {}
        for line in str(self.command("INFO", section)).splitlines():
            if ":" in line and not line.startswith("#"):
                k, v = line.split(":", 1)
                out[k] = v
        return out

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def commandstats(admin: Admin) -> dict[str, int]:
    info = admin.command("INFO", "commandstats")
    out: dict[str, int] = {}
    for line in str(info).splitlines():
        if line.startswith("cmdstat_") and ":" in line:
            name, stats = line[len("cmdstat_"):].split(":", 1)
            for kv in stats.split(","):
                if kv.startswith("calls="):
                    out[name.lower()] = int(kv[len("calls="):])
    return out


def sent_between(s0: dict[str, int], s1: dict[str, int], inner: set[str]) -> tuple[int, int]:
    """(commands the client sent, commands incl. those run inside scripts); INFO left out."""
    sent = total = 0
    for name, calls in s1.items():
        if name == "info":
            continue
        d = calls - s0.get(name, 0)
        if d <= 0:
            continue
        total += d
        if name not in inner:
            sent += d
    return sent, total


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# ------------------------------------------------------------------------------------------
# Results
# ------------------------------------------------------------------------------------------


def pct(sorted_values: Any, p: float) -> float | None:
    n = len(sorted_values)
    if n == 0:
        return None
    idx = min(max(math.ceil(p * n), 1), n) - 1
    return float(sorted_values[idx])


def cycles_result(n: int, elapsed: float, lat: list[float], errors: list[str], tasks: int, how: str) -> dict[str, Any]:
    lat.sort()
    return {
        "rate": n / elapsed if elapsed > 0 else 0.0,
        "cycles": n,
        "tasks": tasks,
        "p50_ms": None if not lat else pct(lat, 0.5) * 1000,  # type: ignore[operator]
        "p99_ms": None if not lat else pct(lat, 0.99) * 1000,  # type: ignore[operator]
        "cmds_per_cycle": None,
        "how": how,
        "errors": errors[:5],
    }


Rec = tuple[int, float, float, float, Any]  # task, t0, acquired, release start, fencing token


def contention_stats(recs: list[Rec], cuts: list[float], secs: float, errors: list[str], how: str) -> dict[str, Any]:
    recs = sorted(recs, key=lambda r: r[2])
    waits = sorted(r[2] - r[1] for r in recs)
    longest_done = waits[-1] if waits else None
    longest_cut = max(cuts) if cuts else None
    wait_max, wait_max_cut = longest_done, False
    if longest_cut is not None and (longest_done is None or longest_cut > longest_done):
        wait_max, wait_max_cut = longest_cut, True
    handoffs: list[float] = []
    back = overlaps = regressions = 0
    for prev, cur in zip(recs, recs[1:]):
        if cur[2] < prev[3]:
            overlaps += 1
        if isinstance(prev[4], int) and isinstance(cur[4], int) and cur[4] <= prev[4]:
            regressions += 1
        if cur[0] == prev[0]:
            back += 1
        elif cur[1] <= prev[3]:
            handoffs.append(max(cur[2] - prev[3], 0.0))
    handoffs.sort()
    per_task = [0] * C_TASKS
    for r in recs:
        per_task[r[0]] += 1
    holds = [r[3] - r[2] for r in recs]

    def ms(v: float | None) -> float | None:
        return None if v is None else v * 1000

    if regressions:
        errors = errors + [f"{regressions} fencing tokens did not increase"]
    return {
        "acq_per_s": len(recs) / secs,
        "acquisitions": len(recs),
        "wait_p50_ms": ms(pct(waits, 0.5)),
        "wait_p99_ms": ms(pct(waits, 0.99)),
        "wait_max_ms": ms(wait_max),
        "wait_max_cut": wait_max_cut,
        "handoffs": len(handoffs),
        "handoff_p50_ms": ms(pct(handoffs, 0.5)),
        "handoff_p99_ms": ms(pct(handoffs, 0.99)),
        "back_share": back / (len(recs) - 1) if len(recs) > 1 else None,
        "per_task_min": min(per_task),
        "per_task_max": max(per_task),
        "hold_mean_ms": ms(sum(holds) / len(holds)) if holds else None,
        "hold_max_ms": ms(max(holds)) if holds else None,
        "overlaps": overlaps,
        "how": how,
        "errors": errors[:5],
    }


def fmt(v: float | None, digits: int = 2) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def say_cycles(name: str, r: dict[str, Any]) -> None:
    print(
        f"  {name}: {r['rate']:,.0f} cycles/s, p50 {fmt(r['p50_ms'], 3)} ms, p99 {fmt(r['p99_ms'], 3)} ms,"
        f" {fmt(r['cmds_per_cycle'])} cmds/cycle" + (f"; errors: {r['errors']}" if r["errors"] else ""),
        flush=True,
    )


def say_contention(name: str, s: dict[str, Any]) -> None:
    back = "–" if s["back_share"] is None else f"{s['back_share'] * 100:.0f}%"
    print(
        f"  {name}: {s['acq_per_s']:,.1f} acq/s, wait p50/p99/max {fmt(s['wait_p50_ms'])}/{fmt(s['wait_p99_ms'])}/"
        f"{'≥' if s['wait_max_cut'] else ''}{fmt(s['wait_max_ms'], 1)} ms, handoff p50/p99 {fmt(s['handoff_p50_ms'])}/"
        f"{fmt(s['handoff_p99_ms'])} ms ({s['handoffs']}), back to releaser {back}, per task"
        f" {s['per_task_min']}/{s['per_task_max']}, hold mean/max {fmt(s['hold_mean_ms'])}/{fmt(s['hold_max_ms'])} ms"
        + (f"; overlaps {s['overlaps']}" if s["overlaps"] else "")
        + (f"; errors: {s['errors']}" if s["errors"] else ""),
        flush=True,
    )


def say_hold(r: dict[str, Any]) -> None:
    print(
        f"  D: {r['held']}/{r['locks']} held at the end, client CPU {fmt(r['cpu_pct'])}% of one core, "
        f"{r['cmds_per_s']:,.0f} Redis cmds/s sent ({r['cmds_incl_scripts_per_s']:,.0f} incl. in scripts); "
        f"renewal: {r['renewal']}" + (f"; errors: {r['errors']}" if r["errors"] else ""),
        flush=True,
    )


# ------------------------------------------------------------------------------------------
# Asyncio harness (txcoord, redis-py)
# ------------------------------------------------------------------------------------------


async def async_cycles(make_cycle: Callable[[int], Callable[[], Any]], tasks: int, secs: float, how: str) -> dict[str, Any]:
    cycles = [make_cycle(i) for i in range(tasks)]
    for i in range(WARM_CYCLES):  # connect, load the scripts
        await cycles[i % tasks]()
    start = now()
    deadline = start + secs

    async def worker(i: int) -> tuple[int, array[float], str | None]:
        cycle = cycles[i]
        lat: array[float] = array("d")
        n = 0
        try:
            while True:
                t0 = now()
                if t0 >= deadline:
                    break
                await cycle()
                n += 1
                if len(lat) < MAX_SAMPLES:
                    lat.append(now() - t0)
        except Exception as e:  # noqa: BLE001
            return n, lat, f"task {i}: {type(e).__name__}: {e}"
        return n, lat, None

    errors: list[str] = []
    try:
        results = await asyncio.wait_for(asyncio.gather(*(worker(i) for i in range(tasks))), secs + HANG_GRACE)
    except asyncio.TimeoutError:
        return cycles_result(0, now() - start, [], ["tasks still running 30 s after the end (hang)"], tasks, how)
    elapsed = now() - start
    lat: list[float] = []
    n = 0
    for k, l, e in results:
        n += k
        lat.extend(l)
        if e:
            errors.append(e)
    return cycles_result(n, elapsed, lat, errors, tasks, how)


class AsyncContender:
    """One task's lock client in C and C2."""

    async def setup(self, i: int, key: str) -> None:
        raise NotImplementedError

    async def acquire(self, key: str, left: float) -> tuple[bool, Any]:
        """(acquired, fencing token or None) within `left` seconds."""
        raise NotImplementedError

    async def release(self, key: str) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


async def async_contend(make: Callable[[], AsyncContender], key: str, pause: float, secs: float, how: str) -> dict[str, Any]:
    contenders = [make() for _ in range(C_TASKS)]
    for i, c in enumerate(contenders):
        await c.setup(i, f"{key}:warm:{i}")
    start = now() + 0.02
    deadline = start + secs
    recs: list[Rec] = []
    cuts: list[float] = []
    errors: list[str] = []

    async def run(task: int, c: AsyncContender) -> None:
        await asyncio.sleep(max(start - now(), 0))
        while True:
            t0 = now()
            if t0 >= deadline:
                return
            try:
                ok, token = await c.acquire(key, deadline - t0)
            except Exception as e:  # noqa: BLE001
                errors.append(f"task {task} acquire: {type(e).__name__}: {e}")
                return
            if not ok:
                cuts.append(now() - t0)
                return
            acq = now()
            await asyncio.sleep(C_HOLD)
            rel = now()
            try:
                await c.release(key)
            except Exception as e:  # noqa: BLE001
                errors.append(f"task {task} release: {type(e).__name__}: {e}")
                return
            if len(recs) < MAX_SAMPLES:
                recs.append((task, t0, acq, rel, token))
            if pause:
                await asyncio.sleep(max(min(pause, deadline - now()), 0))

    try:
        await asyncio.wait_for(asyncio.gather(*(run(i, c) for i, c in enumerate(contenders))), secs + 0.02 + HANG_GRACE)
    except asyncio.TimeoutError:
        errors.append("tasks still running 30 s after the end (hang)")
    for c in contenders:
        await c.close()
    return contention_stats(recs, cuts, secs, errors, how)


# ------------------------------------------------------------------------------------------
# Thread harness (python-redis-lock)
# ------------------------------------------------------------------------------------------


def thread_cycles(make_cycle: Callable[[int], Callable[[], None]], tasks: int, secs: float, how: str) -> dict[str, Any]:
    cycles = [make_cycle(i) for i in range(tasks)]
    for i in range(WARM_CYCLES):
        cycles[i % tasks]()
    start = now()
    deadline = start + secs
    results: list[tuple[int, array[float], str | None]] = [(0, array("d"), None)] * tasks

    def worker(i: int) -> None:
        cycle = cycles[i]
        lat: array[float] = array("d")
        n = 0
        try:
            while True:
                t0 = now()
                if t0 >= deadline:
                    break
                cycle()
                n += 1
                if len(lat) < MAX_SAMPLES:
                    lat.append(now() - t0)
        except Exception as e:  # noqa: BLE001
            results[i] = (n, lat, f"thread {i}: {type(e).__name__}: {e}")
            return
        results[i] = (n, lat, None)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(tasks)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(deadline + HANG_GRACE - now(), 0.1))
    elapsed = now() - start
    errors = [f"{sum(t.is_alive() for t in threads)} threads still running (hang)"] if any(t.is_alive() for t in threads) else []
    lat: list[float] = []
    n = 0
    for k, l, e in results:
        n += k
        lat.extend(l)
        if e:
            errors.append(e)
    return cycles_result(n, elapsed, lat, errors, tasks, how)


# ------------------------------------------------------------------------------------------
# txcoord
# ------------------------------------------------------------------------------------------


def txcoord_label() -> str:
    import txcoord

    return f"txcoord {txcoord.__version__}"


async def txcoord_main(url: str, cfg: Config, admin: Any, tag: str) -> dict[str, Any]:
    import txcoord

    where = Path(txcoord._native.__file__).resolve()
    print(f"  txcoord {txcoord.__version__} from {where}", flush=True)
    out: dict[str, Any] = {"id": "txcoord", "label": f"txcoord {txcoord.__version__}", "fair_mode": True}
    out["notes"] = [f"native module {where.name}, {where.stat().st_size / 1e6:.1f} MB"]

    for scen, tasks in (("A", 1), ("B", B_TASKS)):
        client = txcoord.Client(url)
        mgr = txcoord.LockManager(client)

        def make(i: int, mgr: Any = mgr, scen: str = scen) -> Callable[[], Any]:
            res = f"{tag}:{scen}:{i}"

            async def cycle() -> None:
                if await mgr.acquire_lock(res, AB_TTL_MS, AB_TIMEOUT_MS) is None:
                    raise RuntimeError(f"{res}: acquire_lock timed out on a free key")
                await mgr.release_lock(res)

            return cycle

        s0 = commandstats(admin)
        r = await async_cycles(make, tasks, cfg.ab_secs, "LockManager.acquire_lock + release_lock" + (", one Client" if tasks > 1 else ""))
        sent, _ = sent_between(s0, commandstats(admin), INNER["txcoord"])
        r["cmds_per_cycle"] = sent / max(r["cycles"] + WARM_CYCLES, 1)
        out[scen] = r
        say_cycles(scen, r)
        await mgr.aclose()
        client.close()

    class Tx(AsyncContender):
        def __init__(self, fair: bool) -> None:
            self.fair = fair

        async def setup(self, i: int, warm: str) -> None:
            self.client = txcoord.Client(url)
            self.mgr = txcoord.LockManager(self.client, fair=self.fair)
            if await self.mgr.acquire_lock(warm, C_TTL_MS, AB_TIMEOUT_MS) is None:
                raise RuntimeError("warm-up lock timed out")
            await self.mgr.release_lock(warm)

        async def acquire(self, key: str, left: float) -> tuple[bool, Any]:
            lock = await self.mgr.acquire_lock(key, C_TTL_MS, max(int(left * 1000), 1))
            return (lock is not None, None if lock is None else lock.fencing_token)

        async def release(self, key: str) -> None:
            await self.mgr.release_lock(key)

        async def close(self) -> None:
            await self.mgr.aclose()
            self.client.close()

    how = "LockManager.acquire_lock(key, 30 s, time left): waits for a release notification"
    for scen, pause in (("C", 0.0), ("C2", C2_PAUSE)):
        out[scen] = {}
        for mode in ("default", "fair"):
            s = await async_contend(functools.partial(Tx, mode == "fair"), f"{tag}:{scen}:{mode}", pause, cfg.secs, how)
            out[scen][mode] = s
            say_contention(f"{scen} {mode}", s)

    client = txcoord.Client(url)
    mgr = txcoord.LockManager(client)
    await client.ping()
    locks = await asyncio.gather(*(mgr.acquire_lock(f"{tag}:D:{i}", D_TTL_MS, 5000) for i in range(D_LOCKS)))
    errors = [] if all(l is not None for l in locks) else ["a free lock timed out"]
    await asyncio.sleep(settle(cfg))
    s0, c0, t0 = commandstats(admin), cpu_seconds(), now()
    await asyncio.sleep(cfg.secs)
    s1, c1, t1 = commandstats(admin), cpu_seconds(), now()
    held = sum(1 for l in locks if l is not None and l.is_held)
    failures = await mgr.release_all_locks()
    if failures:
        errors.append(f"{len(failures)} releases failed")
    out["D"] = hold_result(s0, s1, c1 - c0, t1 - t0, held, INNER["txcoord"], "ttl/3 = 333 ms (built in, one scheduler per client)", errors)
    say_hold(out["D"])
    await mgr.aclose()
    client.close()
    return out


# ------------------------------------------------------------------------------------------
# redis-py's redis.asyncio.lock.Lock
# ------------------------------------------------------------------------------------------


async def redis_py_main(url: str, cfg: Config, admin: Any, tag: str) -> dict[str, Any]:
    import redis
    import redis.asyncio as aioredis

    out: dict[str, Any] = {"id": "redis-py", "label": f"redis-py {redis.__version__} asyncio Lock", "fair_mode": False}
    for scen, tasks in (("A", 1), ("B", B_TASKS)):
        r = aioredis.Redis.from_url(url)

        def make(i: int, r: Any = r, scen: str = scen) -> Callable[[], Any]:
            res = f"{tag}:{scen}:{i}"

            async def cycle() -> None:
                lock = r.lock(res, timeout=AB_TTL_MS / 1000, blocking_timeout=AB_TIMEOUT_MS / 1000)
                if not await lock.acquire():
                    raise RuntimeError(f"{res}: acquire timed out on a free key")
                await lock.release()

            return cycle

        s0 = commandstats(admin)
        res = await async_cycles(make, tasks, cfg.ab_secs, "r.lock(key, timeout=30, blocking_timeout=10): acquire + release" + (", one Redis (pool)" if tasks > 1 else ""))
        sent, _ = sent_between(s0, commandstats(admin), INNER["redis-py"])
        res["cmds_per_cycle"] = sent / max(res["cycles"] + WARM_CYCLES, 1)
        out[scen] = res
        say_cycles(scen, res)
        await r.aclose()

    class Rp(AsyncContender):
        async def setup(self, i: int, warm: str) -> None:
            self.r = aioredis.Redis.from_url(url)
            lock = self.r.lock(warm, timeout=C_TTL_MS / 1000)
            await lock.acquire()
            await lock.release()

        async def acquire(self, key: str, left: float) -> tuple[bool, Any]:
            self.lock = self.r.lock(key, timeout=C_TTL_MS / 1000, blocking_timeout=left)
            return (bool(await self.lock.acquire()), None)

        async def release(self, key: str) -> None:
            await self.lock.release()

        async def close(self) -> None:
            await self.r.aclose()

    how = "r.lock(key, timeout=30, blocking_timeout=time left).acquire(): polls SET NX every sleep=0.1 s (the default)"
    for scen, pause in (("C", 0.0), ("C2", C2_PAUSE)):
        s = await async_contend(Rp, f"{tag}:{scen}", pause, cfg.secs, how)
        out[scen] = {"default": s}
        say_contention(scen, s)

    # The pool's default max_connections (100) refuses 200 concurrent acquisitions and renewals.
    r = aioredis.Redis.from_url(url, max_connections=2 * D_LOCKS)
    locks = [r.lock(f"{tag}:D:{i}", timeout=D_TTL_MS / 1000) for i in range(D_LOCKS)]
    got = await asyncio.gather(*(l.acquire(blocking=False) for l in locks))
    errors = [] if all(got) else ["a free lock was busy"]
    stop = asyncio.Event()
    lost = [0]

    async def renew(lock: Any) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), D_TTL_MS / 3000)
                return
            except asyncio.TimeoutError:
                pass
            try:
                await lock.reacquire()
            except Exception:  # noqa: BLE001
                lost[0] += 1
                return

    renewers = [asyncio.create_task(renew(l)) for l in locks]
    await asyncio.sleep(settle(cfg))
    s0, c0, t0 = commandstats(admin), cpu_seconds(), now()
    await asyncio.sleep(cfg.secs)
    s1, c1, t1 = commandstats(admin), cpu_seconds(), now()
    held = sum(await asyncio.gather(*(l.owned() for l in locks)))
    stop.set()
    await asyncio.gather(*renewers)
    for l in locks:
        try:
            await l.release()
        except Exception:  # noqa: BLE001
            pass
    if lost[0]:
        errors.append(f"{lost[0]} renewals failed (lock lost)")
    out["D"] = hold_result(
        s0, s1, c1 - c0, t1 - t0, held, INNER["redis-py"],
        "none built in: a task per lock calls reacquire() every 333 ms (pool max_connections raised to 400)", errors,
    )
    say_hold(out["D"])
    await r.aclose()
    return out


def hold_result(s0: dict[str, int], s1: dict[str, int], cpu: float, window: float, held: int, inner: set[str], renewal: str, errors: list[str]) -> dict[str, Any]:
    sent, total = sent_between(s0, s1, inner)
    return {
        "locks": D_LOCKS,
        "held": held,
        "cpu_pct": cpu / window * 100 if window > 0 else None,
        "cmds_per_s": sent / window,
        "cmds_incl_scripts_per_s": total / window,
        "renewal": renewal,
        "errors": errors[:5],
    }


# ------------------------------------------------------------------------------------------
# python-redis-lock (synchronous, in threads)
# ------------------------------------------------------------------------------------------


def prl_main(url: str, cfg: Config, admin: Any, tag: str) -> dict[str, Any]:
    import importlib.metadata

    import redis
    import redis_lock

    version = importlib.metadata.version("python-redis-lock")
    out: dict[str, Any] = {"id": "python-redis-lock", "label": f"python-redis-lock {version} (threads)", "fair_mode": False}
    for scen, tasks in (("A", 1), ("B", B_TASKS)):
        conn = redis.Redis.from_url(url)

        def make(i: int, conn: Any = conn, scen: str = scen) -> Callable[[], None]:
            res = f"{tag}:{scen}:{i}"

            def cycle() -> None:
                lock = redis_lock.Lock(conn, res, expire=AB_TTL_MS // 1000)
                if not lock.acquire(blocking=True, timeout=AB_TIMEOUT_MS // 1000):
                    raise RuntimeError(f"{res}: acquire timed out on a free key")
                lock.release()

            return cycle

        s0 = commandstats(admin)
        r = thread_cycles(make, tasks, cfg.ab_secs, "Lock(conn, key, expire=30): acquire + release" + (", 50 threads, one Redis (pool)" if tasks > 1 else ", one thread"))
        sent, _ = sent_between(s0, commandstats(admin), INNER["python-redis-lock"])
        r["cmds_per_cycle"] = sent / max(r["cycles"] + WARM_CYCLES, 1)
        out[scen] = r
        say_cycles(scen, r)
        conn.close()

    how = "Lock(conn, key, expire=30).acquire(timeout=time left, whole s): SET NX, then BLPOP on a signal list the releaser pushes to"
    for scen, pause in (("C", 0.0), ("C2", C2_PAUSE)):
        s = thread_contend(url, f"{tag}:{scen}", pause, cfg.secs, how)
        out[scen] = {"default": s}
        say_contention(scen, s)

    # The pool's default max_connections (100) refuses the renewals of 200 threads at once.
    conn = redis.Redis.from_url(url, max_connections=2 * D_LOCKS)
    locks = [redis_lock.Lock(conn, f"{tag}:D:{i}", expire=D_TTL_MS // 1000, auto_renewal=True) for i in range(D_LOCKS)]
    errors = [] if all(l.acquire(blocking=False) for l in locks) else ["a free lock was busy"]
    time.sleep(settle(cfg))
    s0, c0, t0 = commandstats(admin), cpu_seconds(), now()
    time.sleep(cfg.secs)
    s1, c1, t1 = commandstats(admin), cpu_seconds(), now()
    held = sum(1 for l in locks if l.get_owner_id() == l.id)
    released_ok = 0
    for l in locks:
        try:
            l.release()
            released_ok += 1
        except Exception:  # noqa: BLE001
            pass
    if released_ok < D_LOCKS:
        errors.append(f"{D_LOCKS - released_ok} locks were lost before release")
    out["D"] = hold_result(s0, s1, c1 - c0, t1 - t0, held, INNER["python-redis-lock"], "auto_renewal=True: a thread per lock, every expire·2/3 = 667 ms (expire is whole seconds; pool max_connections raised to 400)", errors)
    say_hold(out["D"])
    conn.close()
    return out


def thread_contend(url: str, key: str, pause: float, secs: float, how: str) -> dict[str, Any]:
    import redis
    import redis_lock

    conns = [redis.Redis.from_url(url) for _ in range(C_TASKS)]
    for i, c in enumerate(conns):
        lock = redis_lock.Lock(c, f"{key}:warm:{i}", expire=C_TTL_MS // 1000)
        lock.acquire()
        lock.release()
    start = now() + 0.02
    deadline = start + secs
    recs: list[Rec] = []
    cuts: list[float] = []
    errors: list[str] = []

    def run(task: int) -> None:
        conn = conns[task]
        time.sleep(max(start - now(), 0))
        while True:
            t0 = now()
            if t0 >= deadline:
                return
            lock = redis_lock.Lock(conn, key, expire=C_TTL_MS // 1000)
            try:
                # whole seconds, at most `expire` (the library refuses more)
                ok = lock.acquire(blocking=True, timeout=min(max(math.ceil(deadline - t0), 1), C_TTL_MS // 1000))
            except Exception as e:  # noqa: BLE001
                errors.append(f"thread {task} acquire: {type(e).__name__}: {e}")
                return
            if not ok:
                if now() < deadline:  # the capped timeout passed before the run's end
                    continue
                cuts.append(now() - t0)
                return
            acq = now()
            if acq >= deadline + 0.5:  # granted long after the end by a whole-second BLPOP
                lock.release()
                cuts.append(acq - t0)
                return
            time.sleep(C_HOLD)
            rel = now()
            try:
                lock.release()
            except Exception as e:  # noqa: BLE001
                errors.append(f"thread {task} release: {type(e).__name__}: {e}")
                return
            recs.append((task, t0, acq, rel, None))
            if pause:
                time.sleep(max(min(pause, deadline - now()), 0))

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(C_TASKS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(deadline + HANG_GRACE - now(), 0.1))
    if any(t.is_alive() for t in threads):
        errors.append("threads still running 30 s after the end (hang)")
    for c in conns:
        c.close()
    # Acquisitions after the deadline (a BLPOP timeout rounds up to whole seconds) are not
    # counted in the rate; the run's length stays `secs`.
    recs = [r for r in recs if r[2] <= deadline]
    return contention_stats(recs, cuts, secs, errors, how)


# ------------------------------------------------------------------------------------------
# One library in this process (--lib), or all of them in child processes
# ------------------------------------------------------------------------------------------


def run_lib(lib: str, url: str, out_path: str) -> int:
    cfg = Config()
    admin = Admin(url)
    admin.ping()
    tag = f"bench:py:{lib}:{os.getpid()}"
    began = now()
    if lib == "txcoord":
        result = asyncio.run(txcoord_main(url, cfg, admin, tag))
    elif lib == "redis-py":
        result = asyncio.run(redis_py_main(url, cfg, admin, tag))
    elif lib == "python-redis-lock":
        result = prl_main(url, cfg, admin, tag)
    else:
        print(f"unknown library {lib!r}; one of {', '.join(LIBS)}", file=sys.stderr)
        return 2
    result["peak_rss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result["seconds"] = now() - began
    print(f"  peak RSS {result['peak_rss_kib'] / 1024:.1f} MiB; {result['seconds']:.0f} s", flush=True)
    admin.close()
    Path(out_path).write_text(json.dumps(result))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lib", help="run one library in this process (internal)")
    ap.add_argument("--out", help="with --lib: where to write its figures")
    ap.add_argument("--json", help="write the figures of every library here")
    ap.add_argument("--libs", default=",".join(LIBS), help="comma-separated, default: all")
    args = ap.parse_args()
    url = os.environ.get("BENCH_REDIS_URL") or os.environ.get("REDIS_URL")
    if args.lib:
        if not url or not args.out:
            print("--lib needs BENCH_REDIS_URL and --out", file=sys.stderr)
            return 2
        return run_lib(args.lib, url, args.out)

    server = None
    if not url:
        server = RedisServer.start()
        url = server.url
    cfg = Config()
    admin = Admin(url)
    redis_version = admin.info("server").get("redis_version", "?")
    admin.close()
    print(
        f"# Python scenarios: Python {sys.version.split()[0]}, Redis {redis_version} at {url}; "
        f"A, B {cfg.ab_secs:g} s each; C, C2, D {cfg.secs:g} s each\n",
        flush=True,
    )
    libs = []
    failed = []
    with tempfile.TemporaryDirectory(prefix="txcoord-pybench-") as tmp:
        for lib in [l.strip() for l in args.libs.split(",") if l.strip()]:
            print(f"## {lib}", flush=True)
            out = os.path.join(tmp, f"{lib}.json")
            env = dict(os.environ, BENCH_REDIS_URL=url, PYTHONUNBUFFERED="1")
            budget = 2 * cfg.ab_secs + 5 * cfg.secs + 4 * HANG_GRACE + 120
            try:
                rc = subprocess.run([sys.executable, __file__, "--lib", lib, "--out", out], env=env, timeout=budget).returncode
            except subprocess.TimeoutExpired:
                rc = -1
                print(f"  {lib}: killed after {budget:.0f} s", flush=True)
            if rc == 0 and os.path.exists(out):
                libs.append(json.loads(Path(out).read_text()))
            else:
                failed.append(lib)
                print(f"  {lib}: failed (exit status {rc})", flush=True)
            print(flush=True)
    doc = {
        "lang": "python",
        "runtime": f"CPython {sys.version.split()[0]}, asyncio (python-redis-lock: threads)",
        "server": url,
        "redis_version": redis_version,
        "ab_secs": cfg.ab_secs,
        "secs": cfg.secs,
        "rss_note": "peak RSS (ru_maxrss) of the child process that ran that library's scenarios",
        "libs": libs,
        "notes": [f"{lib}: failed" for lib in failed],
    }
    if args.json:
        Path(args.json).write_text(json.dumps(doc))
    else:
        sys.path.insert(0, str(HERE.parent))
        import report

        print(report.language_table(doc))
    if server:
        server.stop()
    # A library's failure is a broken benchmark; txcoord's own problems are among them.
    txcoord_errors = [e for l in libs if l["id"] == "txcoord" for e in all_errors(l)]
    for e in txcoord_errors:
        print(f"  !! txcoord problem: {e}")
    return 1 if failed or txcoord_errors else 0


def all_errors(lib: dict[str, Any]) -> list[str]:
    out = []
    for scen in ("A", "B", "D"):
        out += [f"{scen}: {e}" for e in (lib.get(scen) or {}).get("errors", [])]
    for scen in ("C", "C2"):
        for mode, s in (lib.get(scen) or {}).items():
            if s:
                out += [f"{scen} {mode}: {e}" for e in s.get("errors", [])]
                if s.get("overlaps"):
                    out.append(f"{scen} {mode}: {s['overlaps']} acquisitions overlapped the previous holder")
    return out


if __name__ == "__main__":
    sys.exit(main())
