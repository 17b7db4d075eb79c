# SPDX-License-Identifier: MIT OR Apache-2.0
"""txcoord: saga transaction coordination over Redis.

Distributed locks with automatic renewal, fencing tokens, lost-lock signals and fast handoff,
speaking the same wire protocol as the Rust crate and the Node package.

    import txcoord

    async with txcoord.LockManager("redis://localhost:6379") as manager:
        async with manager.lock("order:42") as lock:
            print(lock.fencing_token)

Beyond locks: saga records (:class:`SagaRecord`, :class:`RedisSagaRepository`, or your own
repository object), the deadlock detector (:class:`SagaDeadlockDetector`), leader
election (:class:`LeaderElection`), the saga monitor (:class:`SagaMonitor`, alerting through
:class:`LogAlertSink`, :class:`AlertmanagerSink` or your own sink) and Prometheus metrics
(:class:`TransactionMetricsCollector`, :func:`serve_metrics`, or prometheus_client's registry).

The blocking twins of the classes live in :mod:`txcoord.sync`. Durations are milliseconds
(``ttl_ms``, ``timeout_ms``) or :class:`datetime.timedelta`.
"""

from ._native import (
    DEFAULT_DEADLOCK_TIMEOUT_MS,
    DEFAULT_FALLBACK_POLL_MS,
    DEFAULT_LEADER_TTL_MS,
    DEFAULT_TIMEOUT_MS,
    DEFAULT_TTL_MS,
    DEFAULT_WAITER_LEASE_MS,
    MAX_FALLBACK_POLL_MS,
    MAX_MS,
    PROTOCOL_VERSION,
    Alert,
    AlertmanagerSink,
    Client,
    ClosedError,
    CycleEdge,
    DeadlockCycle,
    DeadlockResult,
    DeadlockVictimError,
    GraphEdge,
    ProtocolError,
    DistributedLock,
    InternalError,
    InvalidArgumentError,
    InvalidTypeError,
    Leader,
    LeaderElection,
    LockContext,
    LockLostError,
    LockManager,
    LockTimeoutError,
    LogAlertSink,
    MetricsServer,
    RedisConnectionError,
    RedisError,
    RedisSagaRepository,
    SagaDeadlockDetector,
    SagaMonitor,
    SagaNode,
    SagaRecord,
    SagaStatistics,
    SagaStatus,
    TickReport,
    TransactionMetricsCollector,
    TxcoordError,
    WaitForGraph,
    __version__,
    serve_metrics,
)
from . import sync

__all__ = [
    "DEFAULT_DEADLOCK_TIMEOUT_MS",
    "DEFAULT_FALLBACK_POLL_MS",
    "DEFAULT_LEADER_TTL_MS",
    "DEFAULT_TIMEOUT_MS",
    "DEFAULT_TTL_MS",
    "DEFAULT_WAITER_LEASE_MS",
    "MAX_FALLBACK_POLL_MS",
    "MAX_MS",
    "PROTOCOL_VERSION",
    "Alert",
    "AlertmanagerSink",
    "Client",
    "ClosedError",
    "CycleEdge",
    "DeadlockCycle",
    "DeadlockResult",
    "DeadlockVictimError",
    "GraphEdge",
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
    "SagaDeadlockDetector",
    "SagaMonitor",
    "SagaNode",
    "SagaRecord",
    "SagaStatistics",
    "SagaStatus",
    "TickReport",
    "TransactionMetricsCollector",
    "TxcoordError",
    "WaitForGraph",
    "__version__",
    "serve_metrics",
    "sync",
]
