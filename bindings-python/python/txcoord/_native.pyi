# SPDX-License-Identifier: MIT OR Apache-2.0
# Hand-written stubs for the native module `txcoord._native`, checked against the module by
# `python -m mypy.stubtest txcoord._native` (scripts/test-python.sh).

from collections.abc import Awaitable, Callable, Coroutine, Iterable
from datetime import timedelta
from types import TracebackType
from typing import Any, Final, Literal, Protocol, Union, final

from typing_extensions import Self

__version__: Final[str]
PROTOCOL_VERSION: Final[int]
DEFAULT_TTL_MS: Final[int]
DEFAULT_TIMEOUT_MS: Final[int]
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
    "__version__",
    "PROTOCOL_VERSION",
    "DEFAULT_TTL_MS",
    "DEFAULT_TIMEOUT_MS",
    "MAX_MS",
    "_use_plain_bridge",
    "_test_panic",
    "_test_log",
]

def _use_plain_bridge(enabled: bool) -> None:
    """Benchmarks only: one event-loop wake-up per future (pyo3-async-runtimes)."""
def _test_panic(where_: str) -> Any:
    """Tests only: raises the InternalError a Rust panic becomes."""
def _test_log(level: str, message: str) -> None:
    """Tests only: emits a Rust tracing event."""

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
class DeadlockVictimError(TxcoordError): ...
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
        connect_timeout_ms: _Millis | None = None,
        response_timeout_ms: _Millis | None = None,
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
        fallback_poll_ms: _Millis | None = None,
        waiter_lease_ms: _Millis | None = None,
        deadlock_timeout_ms: _Millis | None = None,
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
        connect_timeout_ms: _Millis | None = None,
        response_timeout_ms: _Millis | None = None,
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
        fallback_poll_ms: _Millis | None = None,
        waiter_lease_ms: _Millis | None = None,
        deadlock_timeout_ms: _Millis | None = None,
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
