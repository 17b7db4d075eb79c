# SPDX-License-Identifier: MIT OR Apache-2.0
"""txcoord: saga transaction coordination over Redis.

Distributed locks with automatic renewal, fencing tokens, lost-lock signals and fast handoff,
speaking the same wire protocol as the Rust crate and the Node package.

    import txcoord

    async with txcoord.LockManager("redis://localhost:6379") as manager:
        async with manager.lock("order:42") as lock:
            print(lock.fencing_token)

The blocking twins of every class live in :mod:`txcoord.sync`. Durations are milliseconds
(``ttl_ms``, ``timeout_ms``) or :class:`datetime.timedelta`.
"""

from ._native import (
    DEFAULT_DEADLOCK_TIMEOUT_MS,
    DEFAULT_FALLBACK_POLL_MS,
    DEFAULT_TIMEOUT_MS,
    DEFAULT_TTL_MS,
    DEFAULT_WAITER_LEASE_MS,
    MAX_FALLBACK_POLL_MS,
    MAX_MS,
    PROTOCOL_VERSION,
    Client,
    ClosedError,
    DeadlockVictimError,
    ProtocolError,
    DistributedLock,
    InternalError,
    InvalidArgumentError,
    InvalidTypeError,
    LockContext,
    LockLostError,
    LockManager,
    LockTimeoutError,
    RedisConnectionError,
    RedisError,
    TxcoordError,
    __version__,
)
from . import sync

__all__ = [
    "DEFAULT_DEADLOCK_TIMEOUT_MS",
    "DEFAULT_FALLBACK_POLL_MS",
    "DEFAULT_TIMEOUT_MS",
    "DEFAULT_TTL_MS",
    "DEFAULT_WAITER_LEASE_MS",
    "MAX_FALLBACK_POLL_MS",
    "MAX_MS",
    "PROTOCOL_VERSION",
    "Client",
    "ClosedError",
    "DeadlockVictimError",
    "ProtocolError",
    "DistributedLock",
    "InternalError",
    "InvalidArgumentError",
    "InvalidTypeError",
    "LockContext",
    "LockLostError",
    "LockManager",
    "LockTimeoutError",
    "RedisConnectionError",
    "RedisError",
    "TxcoordError",
    "__version__",
    "sync",
]
