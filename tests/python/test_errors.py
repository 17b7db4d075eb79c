# SPDX-License-Identifier: MIT OR Apache-2.0
"""Bad input is refused by the core's validator with the Python parameter named, before
anything reaches Redis; the error classes, codes and pickling. Mirrors tests/node/errors.test.js."""

from __future__ import annotations

import inspect
import pickle
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import redis

import txcoord
import txcoord.sync

Call = Callable[["Ctx"], Any]


@dataclass
class Ctx:
    url: str
    client: txcoord.Client
    sync_client: txcoord.sync.Client
    manager: txcoord.LockManager
    sync_manager: txcoord.sync.LockManager
    lock: txcoord.DistributedLock
    sync_lock: txcoord.sync.DistributedLock


@pytest.fixture
def client_name() -> str:
    return f"bad-input-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def ctx(url: str, client_name: str) -> Ctx:
    client = txcoord.Client(url, client_name=client_name)
    sync_client = txcoord.sync.Client(url, client_name=client_name)
    return Ctx(
        url=url,
        client=client,
        sync_client=sync_client,
        manager=txcoord.LockManager(client),
        sync_manager=txcoord.sync.LockManager(sync_client),
        lock=txcoord.DistributedLock(client, "k"),
        sync_lock=txcoord.sync.DistributedLock(sync_client, "k"),
    )


IA = txcoord.InvalidArgumentError
IT = txcoord.InvalidTypeError

# (id, call, error class, argument named)
CASES: list[tuple[str, Call, type[txcoord.TxcoordError], str]] = [
    ("ttl True", lambda c: txcoord.DistributedLock(c.client, "k", True), IT, "ttl_ms"),
    ("ttl -1", lambda c: txcoord.DistributedLock(c.client, "k", -1), IA, "ttl_ms"),
    ("ttl 0", lambda c: txcoord.DistributedLock(c.client, "k", 0), IA, "ttl_ms"),
    ("ttl 1.5", lambda c: txcoord.DistributedLock(c.client, "k", 1.5), IA, "ttl_ms"),
    ("ttl nan", lambda c: txcoord.DistributedLock(c.client, "k", float("nan")), IA, "ttl_ms"),
    ("ttl inf", lambda c: txcoord.DistributedLock(c.client, "k", float("inf")), IA, "ttl_ms"),
    ("ttl 2**70", lambda c: txcoord.DistributedLock(c.client, "k", 2**70), IA, "ttl_ms"),
    ("ttl 2**31", lambda c: txcoord.DistributedLock(c.client, "k", 2**31), IA, "ttl_ms"),
    ("ttl str", lambda c: txcoord.DistributedLock(c.client, "k", "1000"), IT, "ttl_ms"),  # type: ignore[arg-type]
    ("ttl None", lambda c: txcoord.DistributedLock(c.client, "k", None), IT, "ttl_ms"),  # type: ignore[arg-type]
    ("ttl 1.5 ms timedelta", lambda c: txcoord.DistributedLock(c.client, "k", timedelta(microseconds=1500)), IA, "ttl_ms"),
    ("ttl negative timedelta", lambda c: txcoord.DistributedLock(c.client, "k", timedelta(seconds=-1)), IA, "ttl_ms"),
    ("lock_key empty", lambda c: txcoord.DistributedLock(c.client, ""), IA, "lock_key"),
    ("lock_key int", lambda c: txcoord.DistributedLock(c.client, 42), IT, "lock_key"),  # type: ignore[arg-type]
    ("lock_key NUL", lambda c: txcoord.DistributedLock(c.client, "a\0b"), IA, "lock_key"),
    ("lock_key too long", lambda c: txcoord.DistributedLock(c.client, "x" * 1025), IA, "lock_key"),
    ("lock_key brace", lambda c: txcoord.DistributedLock(c.client, "a}b"), IA, "lock_key"),
    ("owner_id empty", lambda c: txcoord.DistributedLock(c.client, "k", owner_id=""), IA, "owner_id"),
    ("owner_id int", lambda c: txcoord.LockManager(c.client, owner_id=7), IT, "owner_id"),  # type: ignore[arg-type]
    ("owner_id too long", lambda c: txcoord.LockManager(c.client, owner_id="o" * 257), IA, "owner_id"),
    ("priority 2**40", lambda c: txcoord.LockManager(c.client, priority=2**40), IA, "priority"),
    ("priority 0.5", lambda c: txcoord.DistributedLock(c.client, "k", priority=0.5), IA, "priority"),  # type: ignore[arg-type]
    ("priority str", lambda c: txcoord.LockManager(c.client, priority="high"), IT, "priority"),  # type: ignore[arg-type]
    ("priority True", lambda c: txcoord.LockManager(c.client, priority=True), IT, "priority"),
    ("fair 1", lambda c: txcoord.LockManager(c.client, fair=1), IT, "fair"),  # type: ignore[arg-type]
    ("fair str", lambda c: txcoord.sync.LockManager(c.sync_client, fair="yes"), IT, "fair"),  # type: ignore[arg-type]
    ("fallback_poll_ms 0", lambda c: txcoord.LockManager(c.client, fallback_poll_ms=0), IA, "fallback_poll_ms"),
    ("fallback_poll_ms 2 min", lambda c: txcoord.LockManager(c.client, fallback_poll_ms=120_000), IA, "fallback_poll_ms"),
    ("waiter_lease_ms below 2 polls", lambda c: txcoord.LockManager(c.client, fallback_poll_ms=1000, waiter_lease_ms=1500), IA, "waiter_lease_ms"),
    ("on_lost not callable", lambda c: txcoord.DistributedLock(c.client, "k", on_lost=42), IT, "on_lost"),  # type: ignore[arg-type]
    ("acquire_lock resource empty", lambda c: c.manager.acquire_lock(""), IA, "resource"),
    ("acquire_lock resource None", lambda c: c.manager.acquire_lock(None), IT, "resource"),  # type: ignore[arg-type]
    ("acquire_lock resource bytes", lambda c: c.manager.acquire_lock(b"r"), IT, "resource"),  # type: ignore[arg-type]
    ("acquire_lock ttl list", lambda c: c.manager.acquire_lock("r", [1]), IT, "ttl_ms"),  # type: ignore[arg-type]
    ("acquire_lock timeout -1", lambda c: c.manager.acquire_lock("r", 1000, -1), IA, "timeout_ms"),
    ("acquire_lock timeout True", lambda c: c.manager.acquire_lock("r", 1000, True), IT, "timeout_ms"),
    ("acquire_lock timeout nan", lambda c: c.manager.acquire_lock("r", 1000, float("nan")), IA, "timeout_ms"),
    ("acquire_lock timeout None", lambda c: c.manager.acquire_lock("r", 1000, None), IT, "timeout_ms"),  # type: ignore[arg-type]
    ("acquire_lock owner empty", lambda c: c.manager.acquire_lock("r", owner_id=""), IA, "owner_id"),
    ("acquire_lock priority big", lambda c: c.manager.acquire_lock("r", priority=-(2**31) - 1), IA, "priority"),
    ("acquire_lock fair 0", lambda c: c.manager.acquire_lock("r", fair=0), IT, "fair"),  # type: ignore[arg-type]
    ("acquire_lock on_lost str", lambda c: c.manager.acquire_lock("r", on_lost="x"), IT, "on_lost"),  # type: ignore[arg-type]
    ("lock ttl -5", lambda c: c.manager.lock("r", -5), IA, "ttl_ms"),
    ("release_lock int", lambda c: c.manager.release_lock(5), IT, "resource"),  # type: ignore[arg-type]
    ("acquire timeout -5", lambda c: c.lock.acquire(-5), IA, "timeout_ms"),
    ("acquire timeout 2**31", lambda c: c.lock.acquire(2**31), IA, "timeout_ms"),
    ("extend 0", lambda c: c.lock.extend(0), IA, "additional_time_ms"),
    ("extend True", lambda c: c.lock.extend(True), IT, "additional_time_ms"),
    ("sync acquire_lock ttl 0.1", lambda c: c.sync_manager.acquire_lock("r", 0.1), IA, "ttl_ms"),
    ("sync acquire_lock resource NUL", lambda c: c.sync_manager.acquire_lock("r\0"), IA, "resource"),
    ("sync acquire timeout str", lambda c: c.sync_lock.acquire("5"), IT, "timeout_ms"),  # type: ignore[arg-type]
    ("sync extend -1", lambda c: c.sync_lock.extend(-1), IA, "additional_time_ms"),
    ("sync lock timeout 1e300", lambda c: c.sync_manager.lock("r", 1000, 1e300), IA, "timeout_ms"),
    ("client url scheme", lambda c: txcoord.Client("http://localhost"), IA, "url"),
    ("client url int", lambda c: txcoord.Client(6379), IT, "url"),  # type: ignore[arg-type]
    ("client key_prefix int", lambda c: txcoord.Client(c.url, key_prefix=3), IT, "key_prefix"),  # type: ignore[arg-type]
    ("client key_prefix NUL", lambda c: txcoord.sync.Client(c.url, key_prefix="a\0"), IA, "key_prefix"),
    ("client name with space", lambda c: txcoord.Client(c.url, client_name="has space"), IA, "client_name"),
    ("client connect timeout 0", lambda c: txcoord.Client(c.url, connect_timeout_ms=0), IA, "connect_timeout_ms"),
    ("client response timeout bool", lambda c: txcoord.Client(c.url, response_timeout_ms=False), IT, "response_timeout_ms"),
    ("redis int", lambda c: txcoord.LockManager(42), IT, "redis"),  # type: ignore[arg-type]
    ("redis bad scheme", lambda c: txcoord.LockManager("ftp://localhost"), IA, "redis"),
    ("redis object", lambda c: txcoord.sync.DistributedLock(object(), "k"), IT, "redis"),  # type: ignore[arg-type]
]


def _untouched(raw: redis.Redis, client_name: str) -> None:
    names = [c.get("name") for c in raw.client_list()]
    assert client_name not in names, "the client connected to Redis"
    assert raw.dbsize() == 0, "a key was written"


@pytest.mark.parametrize("call, error, argument", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_bad_input_is_refused_before_redis(
    ctx: Ctx, raw: redis.Redis, client_name: str, call: Call, error: type[txcoord.TxcoordError], argument: str
) -> None:
    with pytest.raises(error) as info:
        result = call(ctx)
        if inspect.isawaitable(result):  # the resource's hash-tag rule is checked when the call runs
            await result
    exc = info.value
    assert isinstance(exc, txcoord.TxcoordError)
    assert exc.argument == argument, str(exc)
    assert f"`{argument}`" in str(exc)
    assert exc.code == ("TXCOORD_INVALID_ARGUMENT" if error is IA else "TXCOORD_INVALID_TYPE")
    assert isinstance(exc, ValueError if error is IA else TypeError)
    _untouched(raw, client_name)


async def test_the_hash_tag_rule_is_checked_before_anything_is_sent(ctx: Ctx, raw: redis.Redis, client_name: str) -> None:
    with pytest.raises(IA) as info:
        await ctx.manager.acquire_lock("a}b")
    assert info.value.argument == "resource"
    with pytest.raises(IA):
        ctx.sync_manager.acquire_lock("{}x")
    _untouched(raw, client_name)


def test_there_are_at_least_25_bad_input_cases() -> None:
    assert len(CASES) >= 25


CLASSES = {
    txcoord.InvalidArgumentError: "TXCOORD_INVALID_ARGUMENT",
    txcoord.InvalidTypeError: "TXCOORD_INVALID_TYPE",
    txcoord.RedisConnectionError: "TXCOORD_CONNECTION",
    txcoord.LockTimeoutError: "TXCOORD_TIMEOUT",
    txcoord.LockLostError: "TXCOORD_LOCK_LOST",
    txcoord.DeadlockVictimError: "TXCOORD_DEADLOCK_VICTIM",
    txcoord.ClosedError: "TXCOORD_CLOSED",
    txcoord.RedisError: "TXCOORD_REDIS",
    txcoord.InternalError: "TXCOORD_INTERNAL",
}


def test_one_class_per_core_kind_with_its_code() -> None:
    assert len(set(CLASSES.values())) == len(CLASSES)
    for cls, code in CLASSES.items():
        assert issubclass(cls, txcoord.TxcoordError)
        assert cls.code == code
        assert cls.__module__ == "txcoord"
        assert getattr(txcoord, cls.__name__) is cls
        assert getattr(txcoord.sync, cls.__name__) is cls
    assert issubclass(txcoord.InvalidArgumentError, ValueError)
    assert issubclass(txcoord.InvalidTypeError, TypeError)
    assert issubclass(txcoord.RedisConnectionError, ConnectionError)
    assert issubclass(txcoord.LockTimeoutError, TimeoutError)
    assert issubclass(txcoord.TxcoordError, Exception)
    assert txcoord.TxcoordError.code is None


def test_errors_survive_pickling() -> None:
    with pytest.raises(txcoord.InvalidTypeError) as info:
        txcoord.LockManager("redis://127.0.0.1:1", priority="x")  # type: ignore[arg-type]
    copy = pickle.loads(pickle.dumps(info.value))
    assert type(copy) is txcoord.InvalidTypeError
    assert copy.argument == "priority"
    assert copy.code == "TXCOORD_INVALID_TYPE"
    assert str(copy) == str(info.value)
    conn = pickle.loads(pickle.dumps(txcoord.RedisConnectionError("down")))
    assert isinstance(conn, txcoord.RedisConnectionError) and str(conn) == "down"


def test_redis_py_cluster_and_sentinel_clients_are_refused() -> None:
    from redis.cluster import RedisCluster
    from redis.sentinel import Sentinel

    cluster = RedisCluster.__new__(RedisCluster)  # not connected: only its type matters
    with pytest.raises(IA, match="cluster") as info:
        txcoord.LockManager(cluster)  # type: ignore[arg-type]
    assert info.value.argument == "redis"
    sentinel = Sentinel([("127.0.0.1", 1)])  # type: ignore[no-untyped-call]
    with pytest.raises(IA, match="Sentinel"):
        txcoord.sync.LockManager(sentinel)  # type: ignore[arg-type]
    master = sentinel.master_for("mymaster")  # type: ignore[no-untyped-call]
    with pytest.raises(IA, match="Sentinel"):
        txcoord.LockManager(master)
    unix = redis.Redis(unix_socket_path="/tmp/redis.sock")
    with pytest.raises(IA, match="unix socket"):
        txcoord.LockManager(unix)
