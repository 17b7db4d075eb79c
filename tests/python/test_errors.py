# SPDX-License-Identifier: MIT OR Apache-2.0
"""Bad input is refused by the core's validator with the Python parameter named, before
anything reaches Redis: the cases of the shared table tests/fixtures/bad_inputs.json (which
core/tests/inputs.rs and tests/node/errors.test.js read too), on the async classes and their
blocking twins. Also: the error classes, codes and pickling, and the redis-py clients of
topologies txcoord does not support yet."""

from __future__ import annotations

import inspect
import json
import pickle
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import redis

import txcoord
import txcoord.sync

from helpers import ROOT

TABLE: dict[str, Any] = json.loads((ROOT / "tests" / "fixtures" / "bad_inputs.json").read_text(encoding="utf-8"))
CASES: list[dict[str, Any]] = [c for c in TABLE["cases"] if "python" in c.get("only", ["rust", "python", "node"])]


@dataclass
class Ctx:
    url: str
    client: Any
    manager: Any
    lock: Any


@pytest.fixture
def client_name() -> str:
    return f"bad-input-{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=["async", "sync"])
def flavour(request: pytest.FixtureRequest) -> Any:
    return txcoord if request.param == "async" else txcoord.sync


@pytest.fixture
def ctx(url: str, client_name: str, flavour: Any) -> Ctx:
    client = flavour.Client(url, client_name=client_name)
    return Ctx(url=url, client=client, manager=flavour.LockManager(client), lock=flavour.DistributedLock(client, "k"))


IA = txcoord.InvalidArgumentError
IT = txcoord.InvalidTypeError


def python_value(v: Any) -> Any:
    """A value of the table, as Python spells it."""
    if not isinstance(v, dict):
        return v
    if "float" in v:
        return {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf"), "-0": -0.0}[v["float"]]
    if "int" in v:
        base, exp = v["int"].split("**")
        return int(base) ** int(exp)
    if "repeat" in v:
        return v["repeat"] * v["times"]
    if "list" in v:
        return list(v["list"])
    if "object" in v:
        return dict(v["object"])
    if "bytes" in v:
        return v["bytes"].encode()
    if "timedelta_us" in v:
        return timedelta(microseconds=v["timedelta_us"])
    raise AssertionError(f"no Python value for {v}")


def python_name(core: str) -> str:
    return str(TABLE["arguments"].get(core, {}).get("python", core))


def invoke(c: Ctx, flavour: Any, case: dict[str, Any]) -> Any:
    """Makes the case's call; its result (an awaitable, for the async classes)."""
    args = {k: python_value(v) for k, v in case["args"].items()}
    positional = {"resource", "lock_key", "url", "redis"}
    kw = {python_name(k): v for k, v in args.items() if k not in positional}
    call = case["call"]
    if call == "acquire":
        return c.manager.acquire_lock(args.get("resource", "r"), **kw)
    if call == "scoped":
        return c.manager.lock(args.get("resource", "r"), **kw)
    if call == "release_lock":
        return c.manager.release_lock(args["resource"])
    if call == "lock":
        return flavour.DistributedLock(c.client, args.get("lock_key", "k"), **kw)
    if call == "lock_acquire":
        return c.lock.acquire(**kw)
    if call == "extend":
        return c.lock.extend(**kw)
    if call == "manager":
        return flavour.LockManager(c.client, **kw)
    if call == "client":
        return flavour.Client(args.get("url", c.url), **kw)
    if call == "redis":
        return flavour.LockManager(args["redis"])
    raise AssertionError(f"no Python call {call}")


def _untouched(raw: redis.Redis, client_name: str) -> None:
    names = [c.get("name") for c in raw.client_list()]
    assert client_name not in names, "the client connected to Redis"
    assert raw.dbsize() == 0, "a key was written"


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
async def test_bad_input_is_refused_before_redis(
    ctx: Ctx, flavour: Any, raw: redis.Redis, client_name: str, case: dict[str, Any]
) -> None:
    kind = case.get("kinds", {}).get("python", case["kind"])
    error = {"InvalidArgument": IA, "InvalidType": IT}[kind]
    argument = python_name(case["argument"])
    with pytest.raises(error) as info:
        result = invoke(ctx, flavour, case)
        if inspect.isawaitable(result):  # the resource's hash-tag rule is checked when the call runs
            await result
    exc = info.value
    assert isinstance(exc, txcoord.TxcoordError)
    assert exc.argument == argument, str(exc)
    assert f"`{argument}`" in str(exc)
    assert exc.code == ("TXCOORD_INVALID_ARGUMENT" if error is IA else "TXCOORD_INVALID_TYPE")
    assert isinstance(exc, ValueError if error is IA else TypeError)
    _untouched(raw, client_name)


def test_an_unknown_keyword_is_refused_as_python_refuses_it(url: str) -> None:
    for make in (
        lambda: txcoord.LockManager(url, fallback_poll=5),  # type: ignore[call-arg]
        lambda: txcoord.sync.LockManager(url, ownerId="x"),  # type: ignore[call-arg]
        lambda: txcoord.Client(url, prefix="x"),  # type: ignore[call-arg]
        lambda: txcoord.DistributedLock(url, "k", fair=True),  # type: ignore[call-arg]
        lambda: txcoord.LockManager(url).acquire_lock("r", waiter_lease_ms=10),  # type: ignore[call-arg]
        lambda: txcoord.sync.LockManager(url).lock("r", ttl=5),  # type: ignore[call-arg]
    ):
        with pytest.raises(TypeError, match="got an unexpected keyword argument") as info:
            make()
        assert not isinstance(info.value, txcoord.TxcoordError)


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


# The redis-py clients of topologies txcoord does not support yet are refused by the core's one
# rule (binding::target): InvalidArgumentError naming `redis`, as in JavaScript
# (tests/node/errors.test.js has a test of the same name for each).


def _refused(make: Any, what: str) -> None:
    with pytest.raises(IA) as info:
        make()
    assert info.value.argument == "redis"
    assert info.value.code == "TXCOORD_INVALID_ARGUMENT"
    assert what in str(info.value), str(info.value)


def test_a_redis_cluster_client_is_refused_as_an_invalid_argument() -> None:
    from redis.cluster import RedisCluster

    cluster = RedisCluster.__new__(RedisCluster)  # not connected: only its type matters
    _refused(lambda: txcoord.LockManager(cluster), "Redis Cluster")  # type: ignore[arg-type]
    _refused(lambda: txcoord.sync.DistributedLock(cluster, "k"), "Redis Cluster")  # type: ignore[arg-type]


def test_a_sentinel_client_is_refused_as_an_invalid_argument() -> None:
    from redis.sentinel import Sentinel

    sentinel = Sentinel([("127.0.0.1", 1)])  # type: ignore[no-untyped-call]
    _refused(lambda: txcoord.sync.LockManager(sentinel), "Sentinel mode")  # type: ignore[arg-type]
    master = sentinel.master_for("mymaster")  # type: ignore[no-untyped-call]
    _refused(lambda: txcoord.LockManager(master), "Sentinel mode")


def test_a_unix_socket_client_is_refused_as_an_invalid_argument() -> None:
    unix = redis.Redis(unix_socket_path="/tmp/redis.sock")
    _refused(lambda: txcoord.LockManager(unix), "unix socket")


def test_a_client_with_custom_tls_material_is_refused_as_an_invalid_argument() -> None:
    tls = redis.Redis(host="127.0.0.1", port=1, ssl=True, ssl_ca_certs="/etc/ssl/certs/ca.pem")
    _refused(lambda: txcoord.LockManager(tls), "custom TLS material (ssl_ca_certs)")
