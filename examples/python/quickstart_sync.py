# SPDX-License-Identifier: MIT OR Apache-2.0
"""txcoord quickstart for sync workers (Celery, RQ): the blocking twins in txcoord.sync.

    REDIS_URL=redis://127.0.0.1:6379/0 python examples/python/quickstart_sync.py

The manager may be built at import time: it keeps working in forked worker processes.
"""

import os

from txcoord.sync import LockManager

manager = LockManager(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))


def process_order(order_id: int) -> None:
    with manager.lock(f"order:{order_id}", ttl_ms=10_000, timeout_ms=5_000) as lock:
        print(f"processing order {order_id} under fencing token {lock.fencing_token}")


if __name__ == "__main__":
    process_order(42)
    manager.close()
    print("done")
