# SPDX-License-Identifier: MIT OR Apache-2.0
"""Acquire+release cycles per second from asyncio: txcoord (batching bridge and the plain
`future_into_py` bridge) beside redis-py's asyncio Lock, on the same server.

    python bench/python/bridge.py [seconds] [rounds]     (REDIS_URL=... to use another server)

Each of N tasks loops on its own lock key (acquire, release), so the figure measures the
client side (bridge, event loop, protocol) rather than contention. Without REDIS_URL it starts a
throwaway redis-server. Not part of the test run.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

import txcoord
from txcoord import _native

from redis_server import RedisServer

Cycle = Callable[[], Awaitable[None]]


async def run(make_cycle: Callable[[int], Cycle], tasks: int, seconds: float) -> float:
    cycles = [make_cycle(i) for i in range(tasks)]
    for cycle in cycles:  # warm up: connect, load the scripts
        await cycle()
    stop = time.perf_counter() + seconds
    counts = [0] * tasks

    async def worker(i: int) -> None:
        cycle = cycles[i]
        while time.perf_counter() < stop:
            await cycle()
            counts[i] += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(tasks)))
    return sum(counts) / (time.perf_counter() - started)


def txcoord_cycles(url: str, tag: str) -> Callable[[int], Cycle]:
    client = txcoord.Client(url)

    def make(i: int) -> Cycle:
        lock = txcoord.DistributedLock(client, f"bench:{tag}:{i}", 30000)

        async def cycle() -> None:
            if not await lock.acquire():
                raise RuntimeError("lock busy")
            await lock.release()

        return cycle

    return make


def redis_py_cycles(url: str, tag: str) -> Callable[[int], Cycle] | None:
    try:
        import redis.asyncio as aioredis
    except ImportError:
        return None
    r = aioredis.Redis.from_url(url, max_connections=200)

    def make(i: int) -> Cycle:
        lock = r.lock(f"bench:{tag}:{i}", timeout=30)

        async def cycle() -> None:
            if not await lock.acquire(blocking=False):
                raise RuntimeError("lock busy")
            await lock.release()

        return cycle

    return make


async def main(url: str) -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    print(f"{'tasks':>5} {'txcoord':>10} {'plain bridge':>13} {'redis-py Lock':>14} {'ratio':>6}   (medians of {rounds} interleaved rounds of {seconds} s)")
    for tasks in (1, 50):
        batched: list[float] = []
        plain: list[float] = []
        redis_py: list[float] = []
        ratios: list[float] = []
        for r in range(rounds):
            # The plain bridge first: pyo3-async-runtimes completes futures from blocking
            # threads that may still be finishing when the next measurement starts (and
            # must not be when the interpreter exits).
            _native._use_plain_bridge(True)
            plain.append(await run(txcoord_cycles(url, f"p{tasks}.{r}"), tasks, seconds))
            _native._use_plain_bridge(False)
            batched.append(await run(txcoord_cycles(url, f"b{tasks}.{r}"), tasks, seconds))
            make = redis_py_cycles(url, f"r{tasks}.{r}")
            redis_py.append(await run(make, tasks, seconds) if make else float("nan"))
            ratios.append(batched[-1] / redis_py[-1])
        print(
            f"{tasks:>5} {statistics.median(batched):>10.0f} {statistics.median(plain):>13.0f}"
            f" {statistics.median(redis_py):>14.0f} {statistics.median(ratios):>6.2f}"
        )


if __name__ == "__main__":
    if os.environ.get("REDIS_URL"):
        asyncio.run(main(os.environ["REDIS_URL"]))
    else:
        with RedisServer.start() as server:
            asyncio.run(main(server.url))
