# SPDX-License-Identifier: MIT OR Apache-2.0
"""txcoord quickstart (asyncio): a scoped lock, a fencing token, the seed's acquire/release.

    REDIS_URL=redis://127.0.0.1:6379/0 python examples/python/quickstart.py

Run by tests/python/test_examples.py; the README's Python snippet is taken from here.
"""

import asyncio
import os

import txcoord


async def main() -> None:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    async with txcoord.LockManager(url) as manager:
        async with manager.lock("order:42", ttl_ms=10_000) as lock:
            # Held, renewed in the background; pass the token to storage to fence stale writers.
            print(f"holding {lock.key} with fencing token {lock.fencing_token}")

        # The seed's API: None (not an exception) when the timeout passes.
        again = await manager.acquire_lock("order:42", ttl_ms=30_000, timeout_ms=1_000)
        if again is not None:
            print(f"acquired again, held={again.is_held}, {again.remaining_validity_ms} ms left")
            await manager.release_lock("order:42")
    print("released everything")


if __name__ == "__main__":
    asyncio.run(main())
