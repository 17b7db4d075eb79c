# SPDX-License-Identifier: MIT OR Apache-2.0
"""The blocking twins of txcoord's classes, for sync workers (Celery, RQ, threads).

Same names, arguments and semantics as the async classes in :mod:`txcoord`, without an event
loop: calls block the calling thread (other Python threads keep running; Ctrl-C interrupts a
wait), ``with`` replaces ``async with``, and ``on_lost`` (and ``on_elected``/``on_revoked``)
callbacks run on a background thread. The value classes (``SagaRecord``, ``SagaStatus``,
``Alert``, ``TickReport``, ...) and ``TransactionMetricsCollector`` are the same as in
:mod:`txcoord`. A ``SagaMonitor`` takes the deadlock detector of :mod:`txcoord`
(``txcoord.SagaDeadlockDetector``, only handed over); it runs its passes on txcoord's runtime
threads and calls your objects there: their methods must be plain functions, not coroutines.

Objects created before ``os.fork()`` keep working in the child: the child gets its own
connection, and locks held by the parent are not held by the child.
"""

from ._native import SyncAlertmanagerSink as AlertmanagerSink
from ._native import SyncClient as Client
from ._native import SyncDistributedLock as DistributedLock
from ._native import SyncLeaderElection as LeaderElection
from ._native import SyncLockContext as LockContext
from ._native import SyncLockManager as LockManager
from ._native import SyncLogAlertSink as LogAlertSink
from ._native import SyncMetricsServer as MetricsServer
from ._native import SyncRedisSagaRepository as RedisSagaRepository
from ._native import SyncSagaMonitor as SagaMonitor
from ._native import _sync_serve_metrics as serve_metrics
from ._native import (
    Alert,
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
    TickReport,
    TransactionMetricsCollector,
    TxcoordError,
)

__all__ = [
    "Alert",
    "AlertmanagerSink",
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
    "LogAlertSink",
    "MetricsServer",
    "RedisConnectionError",
    "RedisError",
    "RedisSagaRepository",
    "SagaMonitor",
    "SagaRecord",
    "SagaStatistics",
    "SagaStatus",
    "TickReport",
    "TransactionMetricsCollector",
    "TxcoordError",
    "serve_metrics",
]
