# SPDX-License-Identifier: MIT OR Apache-2.0
"""The blocking twins of txcoord's classes, for sync workers (Celery, RQ, threads).

Same names, arguments and semantics as the async classes in :mod:`txcoord`, without an event
loop: calls block the calling thread (other Python threads keep running; Ctrl-C interrupts a
wait), ``with`` replaces ``async with``, and ``on_lost`` (and ``on_elected``/``on_revoked``)
callbacks run on a background thread. The value classes (``SagaRecord``, ``SagaStatus``, ...)
are the same as in :mod:`txcoord`.

Objects created before ``os.fork()`` keep working in the child: the child gets its own
connection, and locks held by the parent are not held by the child.
"""

from ._native import SyncClient as Client
from ._native import SyncDistributedLock as DistributedLock
from ._native import SyncLeaderElection as LeaderElection
from ._native import SyncLockContext as LockContext
from ._native import SyncLockManager as LockManager
from ._native import SyncRedisSagaRepository as RedisSagaRepository
from ._native import (
    ClosedError,
    DeadlockCycle,
    DeadlockVictimError,
    Leader,
    SagaRecord,
    SagaStatistics,
    SagaStatus,
    ProtocolError,
    InternalError,
    InvalidArgumentError,
    InvalidTypeError,
    LockLostError,
    LockTimeoutError,
    RedisConnectionError,
    RedisError,
    TxcoordError,
)

__all__ = [
    "Client",
    "ClosedError",
    "DeadlockCycle",
    "DeadlockVictimError",
    "ProtocolError",
    "DistributedLock",
    "InternalError",
    "InvalidArgumentError",
    "InvalidTypeError",
    "Leader",
    "LeaderElection",
    "LockContext",
    "LockLostError",
    "LockManager",
    "LockTimeoutError",
    "RedisConnectionError",
    "RedisError",
    "RedisSagaRepository",
    "SagaRecord",
    "SagaStatistics",
    "SagaStatus",
    "TxcoordError",
]
