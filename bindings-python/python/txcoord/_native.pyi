# SPDX-License-Identifier: MIT OR Apache-2.0
# Hand-written stubs for the native module `txcoord._native`, checked against the module by
# `python -m mypy.stubtest txcoord._native` (scripts/test-python.sh).

import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from datetime import datetime, timedelta
from enum import Enum
from types import TracebackType
from typing import Any, Final, Literal, Protocol, Union, final

from typing_extensions import Self

__version__: Final[str]
# The core's constants (`binding::options::constants()`), exported by the Node package too.
PROTOCOL_VERSION: Final[int]
DEFAULT_TTL_MS: Final[int]
DEFAULT_TIMEOUT_MS: Final[int]
DEFAULT_FALLBACK_POLL_MS: Final[int]
DEFAULT_WAITER_LEASE_MS: Final[int]
DEFAULT_DEADLOCK_TIMEOUT_MS: Final[int]
MAX_FALLBACK_POLL_MS: Final[int]
DEFAULT_LEADER_TTL_MS: Final[int]
MAX_MS: Final[int]

__all__ = [
    "TxcoordError",
    "InvalidArgumentError",
    "InvalidTypeError",
    "RedisConnectionError",
    "LockTimeoutError",
    "LockLostError",
    "DeadlockVictimError",
    "ProtocolError",
    "ClosedError",
    "RedisError",
    "InternalError",
    "Client",
    "DistributedLock",
    "LockManager",
    "LockContext",
    "SyncClient",
    "SyncDistributedLock",
    "SyncLockManager",
    "SyncLockContext",
    "SagaStatus",
    "SagaRecord",
    "SagaStatistics",
    "RedisSagaRepository",
    "SyncRedisSagaRepository",
    "CycleEdge",
    "DeadlockCycle",
    "DeadlockResult",
    "SagaNode",
    "GraphEdge",
    "WaitForGraph",
    "SagaDeadlockDetector",
    "Leader",
    "LeaderElection",
    "SyncLeaderElection",
    "__version__",
    "PROTOCOL_VERSION",
    "DEFAULT_TTL_MS",
    "DEFAULT_TIMEOUT_MS",
    "DEFAULT_FALLBACK_POLL_MS",
    "DEFAULT_WAITER_LEASE_MS",
    "DEFAULT_DEADLOCK_TIMEOUT_MS",
    "MAX_FALLBACK_POLL_MS",
    "DEFAULT_LEADER_TTL_MS",
    "MAX_MS",
    "_binding_table",
    "_use_plain_bridge",
]

def _binding_table() -> dict[str, Any]:
    """The core's constants and option tables (for the parity test)."""
def _use_plain_bridge(enabled: bool) -> None:
    """Benchmarks only: one event-loop wake-up per future (pyo3-async-runtimes)."""

# Milliseconds as an int (or an integral float), or a timedelta of whole milliseconds.
_Millis = Union[int, float, timedelta]
_LossReason = Literal["taken", "expired", "renewal-failed", "deadline"]
_Status = Literal["idle", "held", "releasing", "released", "lost"]
_OnLost = Callable[[_LossReason], object]

class _RedisPyClient(Protocol):
    """A redis-py client (`redis.Redis` or `redis.asyncio.Redis`); its settings are read."""

    @property
    def connection_pool(self) -> Any: ...

_Redis = Union[str, Client, SyncClient, _RedisPyClient]
_Failures = list[tuple[str, TxcoordError]]
# Async methods return a coroutine (a `collections.abc.Coroutine` over an asyncio future):
# `await` it, or pass it to `asyncio.create_task`. The operation starts when the method is
# called, not when it is first awaited.

class TxcoordError(Exception):
    """Base class of every txcoord error."""

    code: str | None
    """The stable TXCOORD_* code of the error kind (the same as JS `err.code`)."""
    argument: str | None
    """The parameter an invalid argument/type error names."""
    reason: str | None
    """The loss reason of a LockLostError."""
    key: str | None
    """The lock key a timeout, loss or deadlock-victim error is about."""

class InvalidArgumentError(TxcoordError, ValueError): ...
class InvalidTypeError(TxcoordError, TypeError): ...
class RedisConnectionError(TxcoordError, ConnectionError): ...
class LockTimeoutError(TxcoordError, TimeoutError): ...
class LockLostError(TxcoordError): ...
class DeadlockVictimError(TxcoordError):
    cycle: DeadlockCycle | None
    """The deadlock the victim's abort broke, explained, if known."""

class ProtocolError(TxcoordError): ...
class ClosedError(TxcoordError): ...
class RedisError(TxcoordError): ...
class InternalError(TxcoordError): ...

@final
class Client:
    """A connection to one Redis server, shared by every lock built on it (async API).

    Created without connecting; the first command connects. Usable in a process forked after
    its creation (the child gets its own connection).
    """

    def __new__(
        cls,
        url: str,
        *,
        key_prefix: str | None = None,
        client_name: str | None = None,
        connect_timeout_ms: _Millis | None = 1000,
        response_timeout_ms: _Millis | None = 2000,
    ) -> Self: ...
    def ping(self) -> Coroutine[Any, Any, None]: ...
    def stats(self) -> dict[str, int]: ...
    def close(self) -> None: ...
    @property
    def key_prefix(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def closed(self) -> bool: ...

@final
class DistributedLock:
    """A lock on one Redis key (async API), wire-compatible with the seed's DistributedLock.

    Renewed every ttl/3 while held; loss is reported by `await lost()` and `on_lost`.
    """

    def __new__(
        cls,
        redis: _Redis,
        lock_key: str,
        ttl_ms: _Millis = 30000,
        *,
        owner_id: str | None = None,
        priority: int = 0,
        on_lost: _OnLost | None = None,
    ) -> Self: ...
    def acquire(self, timeout_ms: _Millis = 0) -> Coroutine[Any, Any, bool]:
        """One attempt (or wait up to timeout_ms milliseconds); True if now held."""
    def release(self) -> Coroutine[Any, Any, None]: ...
    def extend(self, additional_time_ms: _Millis | None = None) -> Coroutine[Any, Any, bool]:
        """Sets the expiry to additional_time_ms (default: the ttl) from now."""
    def lost(self) -> Coroutine[Any, Any, _LossReason | None]:
        """Resolves when the lock stops being held: the loss reason, or None if released."""
    def __aenter__(self) -> Awaitable[DistributedLock]: ...
    def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Awaitable[None]: ...
    @property
    def is_held(self) -> bool: ...
    @property
    def fencing_token(self) -> int | None: ...
    @property
    def remaining_validity_ms(self) -> int: ...
    @property
    def hold_count(self) -> int: ...
    @property
    def status(self) -> _Status: ...
    @property
    def loss_reason(self) -> _LossReason | None: ...
    @property
    def key(self) -> str: ...
    @property
    def ttl_ms(self) -> int: ...
    @property
    def owner_id(self) -> str | None: ...
    @property
    def priority(self) -> int: ...

@final
class LockContext:
    """`async with manager.lock(resource) as lock:`; raises LockTimeoutError on timeout."""

    def __aenter__(self) -> Awaitable[DistributedLock]: ...
    def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Awaitable[None]: ...

@final
class LockManager:
    """The seed's LockManager (async API): locks by resource name (key `lock:<resource>`)."""

    def __new__(
        cls,
        redis: _Redis,
        *,
        owner_id: str | None = None,
        priority: int = 0,
        fair: bool = False,
        fallback_poll_ms: _Millis | None = 1000,
        waiter_lease_ms: _Millis | None = 5000,
        deadlock_timeout_ms: _Millis | None = 1000,
    ) -> Self: ...
    def acquire_lock(
        self,
        resource: str,
        ttl_ms: _Millis = 30000,
        timeout_ms: _Millis = 10000,
        *,
        owner_id: str | None = None,
        priority: int | None = None,
        fair: bool | None = None,
        on_lost: _OnLost | None = None,
    ) -> Coroutine[Any, Any, DistributedLock | None]:
        """The lock, or None when timeout_ms passed first (0 tries once)."""
    def lock(
        self,
        resource: str,
        ttl_ms: _Millis = 30000,
        timeout_ms: _Millis = 10000,
        *,
        owner_id: str | None = None,
        priority: int | None = None,
        fair: bool | None = None,
        on_lost: _OnLost | None = None,
    ) -> LockContext: ...
    def acquire_locks(
        self,
        resources: Iterable[str],
        ttl_ms: _Millis = 30000,
        timeout_ms: _Millis = 10000,
        *,
        owner_id: str | None = None,
        priority: int | None = None,
        fair: bool | None = None,
    ) -> Coroutine[Any, Any, list[DistributedLock] | None]:
        """All the locks (in the global, sorted order) or None when timeout_ms passed first (none held then)."""
    def release_locks(self, resources: Iterable[str]) -> Coroutine[Any, Any, _Failures]: ...
    def release_lock(self, resource: str) -> Coroutine[Any, Any, None]: ...
    def release_all_locks(self) -> Coroutine[Any, Any, _Failures]: ...
    @property
    def held_resources(self) -> list[str]: ...
    def aclose(self) -> Coroutine[Any, Any, _Failures]: ...
    def __aenter__(self) -> Awaitable[LockManager]: ...
    def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Awaitable[None]: ...
    @property
    def owner_id(self) -> str | None: ...

@final
class SyncClient:
    """`txcoord.sync.Client`: the blocking twin of Client."""

    def __new__(
        cls,
        url: str,
        *,
        key_prefix: str | None = None,
        client_name: str | None = None,
        connect_timeout_ms: _Millis | None = 1000,
        response_timeout_ms: _Millis | None = 2000,
    ) -> Self: ...
    def ping(self) -> None: ...
    def stats(self) -> dict[str, int]: ...
    def close(self) -> None: ...
    @property
    def key_prefix(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def closed(self) -> bool: ...

@final
class SyncDistributedLock:
    """`txcoord.sync.DistributedLock`: the blocking twin of DistributedLock."""

    def __new__(
        cls,
        redis: _Redis,
        lock_key: str,
        ttl_ms: _Millis = 30000,
        *,
        owner_id: str | None = None,
        priority: int = 0,
        on_lost: _OnLost | None = None,
    ) -> Self: ...
    def acquire(self, timeout_ms: _Millis = 0) -> bool: ...
    def release(self) -> None: ...
    def extend(self, additional_time_ms: _Millis | None = None) -> bool: ...
    def lost(self) -> _LossReason | None: ...
    def __enter__(self) -> SyncDistributedLock: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    @property
    def is_held(self) -> bool: ...
    @property
    def fencing_token(self) -> int | None: ...
    @property
    def remaining_validity_ms(self) -> int: ...
    @property
    def hold_count(self) -> int: ...
    @property
    def status(self) -> _Status: ...
    @property
    def loss_reason(self) -> _LossReason | None: ...
    @property
    def key(self) -> str: ...
    @property
    def ttl_ms(self) -> int: ...
    @property
    def owner_id(self) -> str | None: ...
    @property
    def priority(self) -> int: ...

@final
class SyncLockContext:
    """`with manager.lock(resource) as lock:`; raises LockTimeoutError on timeout."""

    def __enter__(self) -> SyncDistributedLock: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

@final
class SyncLockManager:
    """`txcoord.sync.LockManager`: the blocking twin of LockManager."""

    def __new__(
        cls,
        redis: _Redis,
        *,
        owner_id: str | None = None,
        priority: int = 0,
        fair: bool = False,
        fallback_poll_ms: _Millis | None = 1000,
        waiter_lease_ms: _Millis | None = 5000,
        deadlock_timeout_ms: _Millis | None = 1000,
    ) -> Self: ...
    def acquire_lock(
        self,
        resource: str,
        ttl_ms: _Millis = 30000,
        timeout_ms: _Millis = 10000,
        *,
        owner_id: str | None = None,
        priority: int | None = None,
        fair: bool | None = None,
        on_lost: _OnLost | None = None,
    ) -> SyncDistributedLock | None: ...
    def lock(
        self,
        resource: str,
        ttl_ms: _Millis = 30000,
        timeout_ms: _Millis = 10000,
        *,
        owner_id: str | None = None,
        priority: int | None = None,
        fair: bool | None = None,
        on_lost: _OnLost | None = None,
    ) -> SyncLockContext: ...
    def acquire_locks(
        self,
        resources: Iterable[str],
        ttl_ms: _Millis = 30000,
        timeout_ms: _Millis = 10000,
        *,
        owner_id: str | None = None,
        priority: int | None = None,
        fair: bool | None = None,
    ) -> list[SyncDistributedLock] | None: ...
    def release_locks(self, resources: Iterable[str]) -> _Failures: ...
    def release_lock(self, resource: str) -> None: ...
    def release_all_locks(self) -> _Failures: ...
    @property
    def held_resources(self) -> list[str]: ...
    def close(self) -> _Failures: ...
    def __enter__(self) -> SyncLockManager: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    @property
    def owner_id(self) -> str | None: ...

# Sagas

class SagaStatus(str, Enum):
    """Where a saga stands; a str (`SagaStatus.FAILED == "FAILED"`)."""

    def __new__(cls, value: object) -> Self: ...

    PENDING = "PENDING"
    EXECUTING = "EXECUTING"
    COMPENSATING = "COMPENSATING"
    COMPLETED = "COMPLETED"
    COMPENSATED = "COMPENSATED"
    FAILED = "FAILED"

@final
class SagaRecord:
    """One saga (mutable, as the seed's code changes a record and saves it)."""

    def __new__(
        cls,
        id: str,
        type: str,
        *,
        status: SagaStatus | str = "EXECUTING",
        priority: int = 0,
        created_at: datetime | None = None,
        updated_at: datetime | None = None,
        retry_count: int = 0,
        error: str | None = None,
        stuck_reason: str | None = None,
        stuck_detail: str | None = None,
        version: int = 0,
        term: int = 0,
    ) -> Self: ...
    @property
    def id(self) -> str: ...
    @id.setter
    def id(self, value: str) -> None: ...
    @property
    def type(self) -> str: ...
    @type.setter
    def type(self, value: str) -> None: ...
    @property
    def status(self) -> SagaStatus: ...
    @status.setter
    def status(self, value: SagaStatus | str) -> None: ...
    @property
    def priority(self) -> int: ...
    @priority.setter
    def priority(self, value: int) -> None: ...
    @property
    def created_at(self) -> datetime:
        """Aware, in UTC."""
    @created_at.setter
    def created_at(self, value: datetime) -> None: ...
    @property
    def updated_at(self) -> datetime:
        """Aware, in UTC."""
    @updated_at.setter
    def updated_at(self, value: datetime) -> None: ...
    @property
    def retry_count(self) -> int: ...
    @retry_count.setter
    def retry_count(self, value: int) -> None: ...
    @property
    def error(self) -> str | None: ...
    @error.setter
    def error(self, value: str | None) -> None: ...
    @property
    def stuck_reason(self) -> str | None: ...
    @stuck_reason.setter
    def stuck_reason(self, value: str | None) -> None: ...
    @property
    def stuck_detail(self) -> str | None: ...
    @stuck_detail.setter
    def stuck_detail(self, value: str | None) -> None: ...
    @property
    def version(self) -> int: ...
    @version.setter
    def version(self, value: int) -> None: ...
    @property
    def term(self) -> int: ...
    @term.setter
    def term(self, value: int) -> None: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...
    __hash__: None  # type: ignore[assignment]

@final
class SagaStatistics:
    """The seed's getStatistics(): counts, and the mean duration of finished sagas in ms."""

    @property
    def active(self) -> int: ...
    @property
    def completed(self) -> int: ...
    @property
    def failed(self) -> int: ...
    @property
    def compensated(self) -> int: ...
    @property
    def average_duration(self) -> float:
        """Milliseconds (the seed's averageDuration); 0 with no finished saga."""
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...
    __hash__: None  # type: ignore[assignment]

# A record as a user's own repository may return it: a SagaRecord, a mapping with its keys, or
# any object with its attributes.
_RecordLike = object

class _SagaRepository(Protocol):
    """A user's own saga repository: the seed's methods, async (plain methods work too). A
    `save` that also takes the keywords `expected_version`, `term` and `guard_finished` is
    used for conditional saves (returning True/False: written or refused; anything else:
    saved unconditionally); otherwise conditional saves are plain saves."""

    def find_by_id(self, id: str, /) -> Awaitable[_RecordLike | None]: ...
    def save(self, saga: SagaRecord, /) -> Awaitable[object]: ...
    def find_active_sagas(self) -> Awaitable[Iterable[_RecordLike]]: ...
    def find_stuck_sagas(self) -> Awaitable[Iterable[_RecordLike]]: ...
    def get_statistics(self) -> Awaitable[object]: ...

@final
class RedisSagaRepository:
    """The built-in saga repository (async API): records in Redis with indexes."""

    def __new__(
        cls,
        redis: _Redis,
        *,
        stuck_after_ms: Mapping[str, _Millis] | None = None,
        default_stuck_after_ms: _Millis = 300000,
        finished_retention_ms: _Millis | None = 604800000,
    ) -> Self: ...
    def find_by_id(self, id: str) -> Coroutine[Any, Any, SagaRecord | None]: ...
    def save(
        self,
        saga: SagaRecord | _RecordLike,
        *,
        expected_version: int | None = None,
        term: int | None = None,
        guard_finished: bool = False,
    ) -> Coroutine[Any, Any, bool]:
        """The seed's save; with a condition, a conditional save. True if written."""
    def find_active_sagas(self) -> Coroutine[Any, Any, list[SagaRecord]]: ...
    def find_stuck_sagas(self) -> Coroutine[Any, Any, list[SagaRecord]]: ...
    def get_statistics(self) -> Coroutine[Any, Any, SagaStatistics]: ...

@final
class SyncRedisSagaRepository:
    """`txcoord.sync.RedisSagaRepository`: the blocking twin of RedisSagaRepository."""

    def __new__(
        cls,
        redis: _Redis,
        *,
        stuck_after_ms: Mapping[str, _Millis] | None = None,
        default_stuck_after_ms: _Millis = 300000,
        finished_retention_ms: _Millis | None = 604800000,
    ) -> Self: ...
    def find_by_id(self, id: str) -> SagaRecord | None: ...
    def save(
        self,
        saga: SagaRecord | _RecordLike,
        *,
        expected_version: int | None = None,
        term: int | None = None,
        guard_finished: bool = False,
    ) -> bool: ...
    def find_active_sagas(self) -> list[SagaRecord]: ...
    def find_stuck_sagas(self) -> list[SagaRecord]: ...
    def get_statistics(self) -> SagaStatistics: ...

# Deadlocks

@final
class CycleEdge:
    """One hop: `waiter` has waited `waited_ms` for `lock_key`, held by `holder`."""

    @property
    def waiter(self) -> str: ...
    @property
    def holder(self) -> str: ...
    @property
    def lock_key(self) -> str: ...
    @property
    def holder_token(self) -> int | None: ...
    @property
    def waited_ms(self) -> int: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...
    __hash__: None  # type: ignore[assignment]

@final
class DeadlockCycle:
    """A deadlock cycle, explained; `str()` reads as the explanation."""

    @property
    def id(self) -> str:
        """Stable: the same cycle always has the same id."""
    @property
    def sagas(self) -> list[str]:
        """In order, the first repeated at the end (the seed's shape)."""
    @property
    def edges(self) -> list[CycleEdge]: ...
    @property
    def victim(self) -> str | None: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...
    __hash__: None  # type: ignore[assignment]

@final
class DeadlockResult:
    """The seed's detectDeadlock() result, plus the cycles explained."""

    @property
    def has_deadlock(self) -> bool: ...
    @property
    def cycles(self) -> list[list[str]]: ...
    @property
    def affected_sagas(self) -> list[str]: ...
    @property
    def explained(self) -> list[DeadlockCycle]: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...
    __hash__: None  # type: ignore[assignment]

@final
class SagaNode:
    @property
    def id(self) -> str: ...
    @property
    def priority(self) -> int: ...
    @property
    def since_ms(self) -> int: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...
    __hash__: None  # type: ignore[assignment]

@final
class GraphEdge:
    @property
    def waiter(self) -> str: ...
    @property
    def holder(self) -> str: ...
    @property
    def lock_key(self) -> str: ...
    @property
    def waiter_id(self) -> str: ...
    @property
    def waited_ms(self) -> int: ...
    @property
    def holder_token(self) -> int | None: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...
    __hash__: None  # type: ignore[assignment]

@final
class WaitForGraph:
    """The wait-for graph as the lock registry shows it now."""

    @property
    def nodes(self) -> list[SagaNode]: ...
    @property
    def edges(self) -> list[GraphEdge]: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...
    __hash__: None  # type: ignore[assignment]

class _SeedLogger(Protocol):
    """The seed's logger: warn(message, fields) and info(message, fields)."""

    def warn(self, message: str, fields: dict[str, Any], /) -> object: ...
    def info(self, message: str, fields: dict[str, Any], /) -> object: ...

_Logger = Union[logging.Logger, logging.LoggerAdapter[Any], _SeedLogger]

class _DeadlockMetrics(Protocol):
    def record_deadlock(self, resolution_method: str, /) -> object: ...

_Cycles = Union[DeadlockResult, Iterable[Union[DeadlockCycle, Iterable[str]]]]

@final
class SagaDeadlockDetector:
    """The seed's SagaDeadlockDetector (async API), on the lock registry."""

    def __new__(
        cls,
        saga_repository: RedisSagaRepository | SyncRedisSagaRepository | _SagaRepository,
        logger: _Logger | None = None,
        *,
        redis: _Redis | None = None,
        metrics: _DeadlockMetrics | None = None,
    ) -> Self: ...
    def detect_deadlock(self) -> Coroutine[Any, Any, DeadlockResult]: ...
    def resolve_deadlock(self, cycles: _Cycles) -> Coroutine[Any, Any, list[DeadlockCycle]]:
        """Breaks the deadlocks among those sagas; the cycles broken, each with its victim."""
    def wait_for_graph(self) -> Coroutine[Any, Any, WaitForGraph]: ...

# Leader election

@final
class Leader:
    """Who leads an election, as observers read it."""

    @property
    def candidate_id(self) -> str: ...
    @property
    def term(self) -> int: ...
    @property
    def remaining_ms(self) -> int: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...
    __hash__: None  # type: ignore[assignment]

@final
class LeaderElection:
    """A candidate in one leader election (async API)."""

    def __new__(
        cls,
        redis: _Redis,
        name: str,
        *,
        ttl_ms: _Millis = 10000,
        candidate_id: str | None = None,
        on_elected: Callable[[int], object] | None = None,
        on_revoked: Callable[[int], object] | None = None,
    ) -> Self: ...
    def campaign(self, timeout_ms: _Millis | None = None) -> Coroutine[Any, Any, bool]:
        """Waits to lead, at most timeout_ms milliseconds (0 tries once; None: no limit); True once leading."""
    def resign(self) -> Coroutine[Any, Any, None]: ...
    def leader(self) -> Coroutine[Any, Any, Leader | None]: ...
    @property
    def is_leader(self) -> bool: ...
    @property
    def term(self) -> int | None: ...
    @property
    def candidate_id(self) -> str: ...
    def __aenter__(self) -> Awaitable[LeaderElection]: ...
    def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Awaitable[None]: ...

@final
class SyncLeaderElection:
    """`txcoord.sync.LeaderElection`: the blocking twin of LeaderElection."""

    def __new__(
        cls,
        redis: _Redis,
        name: str,
        *,
        ttl_ms: _Millis = 10000,
        candidate_id: str | None = None,
        on_elected: Callable[[int], object] | None = None,
        on_revoked: Callable[[int], object] | None = None,
    ) -> Self: ...
    def campaign(self, timeout_ms: _Millis | None = None) -> bool: ...
    def resign(self) -> None: ...
    def leader(self) -> Leader | None: ...
    @property
    def is_leader(self) -> bool: ...
    @property
    def term(self) -> int | None: ...
    @property
    def candidate_id(self) -> str: ...
    def __enter__(self) -> SyncLeaderElection: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
