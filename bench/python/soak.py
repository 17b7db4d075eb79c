# SPDX-License-Identifier: MIT OR Apache-2.0
"""The Python soak of `make soak`: acquire+release cycles through txcoord's
asyncio LockManager (50 tasks, one Client, a new resource name each cycle), printing RSS every
tenth of the run and, at the end, open fds and the client's counters.

    BENCH_REDIS_URL=redis://127.0.0.1:PORT python bench/python/soak.py [cycles]

Default 1,000,000 cycles. RSS (VmRSS, after gc.collect()) must stay flat: at the end at most
max(5 %, 10 MiB) above the figure at 1/5 of the cycles, else the exit status is 3 (1 on an error).
Without BENCH_REDIS_URL (or REDIS_URL) it starts a throwaway redis-server. The last line is
`SOAK_RESULT {json}` (bench/report.py reads it).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import time
from typing import Any

import txcoord

from redis_server import RedisServer

TASKS = 50
TTL_MS = 30_000
TIMEOUT_MS = 10_000
SLACK_SHARE = 0.05
SLACK_KIB = 10 * 1024


def vm_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def open_fds() -> int | None:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


async def soak(url: str, cycles: int) -> dict[str, Any]:
    client = txcoord.Client(url)
    manager = txcoord.LockManager(client)
    for i in range(20):  # connect, load the scripts
        if await manager.acquire_lock(f"soak:py:warm:{i}", TTL_MS, TIMEOUT_MS) is not None:
            await manager.release_lock(f"soak:py:warm:{i}")
    step = max(cycles // 10, 1)
    marks: list[list[int]] = []
    errors: list[str] = []
    next_i = 0
    done = 0
    began = time.perf_counter()

    async def worker() -> None:
        nonlocal next_i, done
        while next_i < cycles and not errors:
            i = next_i
            next_i += 1
            res = f"soak:py:{i}"
            try:
                if await manager.acquire_lock(res, TTL_MS, TIMEOUT_MS) is None:
                    errors.append(f"{res}: timed out on a free key")
                    return
                await manager.release_lock(res)
            except Exception as e:  # noqa: BLE001
                errors.append(f"{res}: {type(e).__name__}: {e}")
                return
            done += 1
            if done % step == 0:
                gc.collect()
                rss = vm_kib("VmRSS") or 0
                t = time.perf_counter() - began
                marks.append([done, rss])
                print(f"  {done:>9,} cycles  RSS {rss / 1024:7.1f} MiB  {t:6.1f} s  {done / t:8,.0f} cycles/s", flush=True)

    await asyncio.gather(*(worker() for _ in range(TASKS)))
    seconds = time.perf_counter() - began
    stats = client.stats()
    held = len(manager.held_resources)
    await manager.aclose()
    gc.collect()
    return {
        "done": done,
        "seconds": seconds,
        "marks": marks,
        "errors": errors,
        "stats": stats,
        "held": held,
    }


def main() -> int:
    url = os.environ.get("BENCH_REDIS_URL") or os.environ.get("REDIS_URL")
    if not url:
        with RedisServer.start() as server:
            os.environ["BENCH_REDIS_URL"] = server.url
            return main()
    cycles = max(int(float(sys.argv[1])), 1000) if len(sys.argv) > 1 else 1_000_000
    where = os.path.dirname(txcoord._native.__file__)
    print(
        f"# Python soak: {cycles:,} acquire+release cycles, {TASKS} asyncio tasks, one Client and "
        f"LockManager, a new resource each cycle (txcoord {txcoord.__version__} from {where}; {url})\n",
        flush=True,
    )
    r = asyncio.run(soak(url, cycles))
    marks = r["marks"]

    def at(n: int) -> int | None:
        later = [m for m in marks if m[0] >= n]
        return min(later)[1] if later else None

    early, late = at(cycles // 5), at(cycles)
    flat = None if early is None or late is None else late <= early + max(early * SLACK_SHARE, SLACK_KIB)
    fds = open_fds()
    stats = r["stats"]
    print(
        f"\n{r['done']:,} cycles in {r['seconds']:.1f} s ({r['done'] / max(r['seconds'], 1e-9):,.0f} cycles/s); "
        f"errors {len(r['errors'])}; RSS at {cycles // 5:,} cycles "
        f"{'–' if early is None else f'{early / 1024:.1f}'} MiB, at {cycles:,} cycles "
        f"{'–' if late is None else f'{late / 1024:.1f}'} MiB → {'unknown' if flat is None else 'flat' if flat else 'GROWING'}; "
        f"open fds {fds}; manager still holding {r['held']}; client counters: {stats.get('acquired')} acquired, "
        f"{stats.get('released')} released, {stats.get('renewals')} renewals"
    )
    for e in r["errors"][:5]:
        print(f"  error: {e}")
    result = {
        "lang": "python",
        "lib": "txcoord",
        "cycles": r["done"],
        "seconds": r["seconds"],
        "tasks": TASKS,
        "rss_early_at": cycles // 5,
        "rss_early_kib": early,
        "rss_end_kib": late,
        "rss_final_kib": vm_kib("VmRSS"),
        "marks": marks,
        "fds": fds,
        "scheduled_renewals": None,
        "held_resources": r["held"],
        "errors": r["errors"][:5],
    }
    print("SOAK_RESULT " + json.dumps(result), flush=True)
    if r["errors"] or r["done"] < cycles:
        return 1
    return 3 if flat is False else 0


if __name__ == "__main__":
    sys.exit(main())
