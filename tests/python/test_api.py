# SPDX-License-Identifier: MIT OR Apache-2.0
"""The public surface: exports, the hand-written stubs against the module (beyond stubtest:
defaults equal the core's, the sync twins mirror the async classes), and the version."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from typing import Any

import txcoord
import txcoord.sync
from txcoord import _native

from helpers import ROOT

STUB = Path(txcoord.__file__).with_name("_native.pyi")
TWINS = {
    "Client": "SyncClient",
    "DistributedLock": "SyncDistributedLock",
    "LockManager": "SyncLockManager",
    "LockContext": "SyncLockContext",
    "RedisSagaRepository": "SyncRedisSagaRepository",
    "LeaderElection": "SyncLeaderElection",
    "SagaMonitor": "SyncSagaMonitor",
    "LogAlertSink": "SyncLogAlertSink",
    "AlertmanagerSink": "SyncAlertmanagerSink",
    "MetricsServer": "SyncMetricsServer",
}
# Names that differ on purpose between an async class and its blocking twin.
AS_SYNC = {"__aenter__": "__enter__", "__aexit__": "__exit__", "aclose": "close"}


def as_sync(names: set[str]) -> set[str]:
    return {AS_SYNC.get(n, n) for n in names}


def public(cls: type) -> set[str]:
    return {m for m in dir(cls) if not m.startswith("_") or m in AS_SYNC or m in AS_SYNC.values()}


def stub_classes() -> dict[str, dict[str, ast.FunctionDef]]:
    tree = ast.parse(STUB.read_text())
    out: dict[str, dict[str, ast.FunctionDef]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            out[node.name] = {f.name: f for f in node.body if isinstance(f, ast.FunctionDef)}
    return out


def test_exports() -> None:
    for n in txcoord.__all__:
        assert hasattr(txcoord, n), n
    for n in txcoord.sync.__all__:
        assert hasattr(txcoord.sync, n), n
    assert txcoord.sync.LockManager is _native.SyncLockManager
    twins = set(TWINS) | {"serve_metrics"}
    assert set(txcoord.sync.__all__) - twins <= set(txcoord.__all__)
    # the value classes are shared by both flavours
    for n in set(txcoord.sync.__all__) - twins:
        assert getattr(txcoord.sync, n) is getattr(txcoord, n), n


def test_the_sync_twins_mirror_the_async_classes() -> None:
    classes = stub_classes()
    for a, s in TWINS.items():
        assert as_sync(set(classes[a])) == set(classes[s]), (a, as_sync(set(classes[a])) ^ set(classes[s]))
        runtime_a, runtime_s = as_sync(public(getattr(_native, a))), public(getattr(_native, s))
        assert runtime_a == runtime_s, (a, runtime_a ^ runtime_s)


def test_spelled_defaults_are_the_core_defaults() -> None:
    expected = {"ttl_ms": _native.DEFAULT_TTL_MS, "timeout_ms": _native.DEFAULT_TIMEOUT_MS}
    table = {(o["table"], o["python"]): o["default"] for o in _native._binding_table()["options"]}
    seen = 0
    for cls, methods in stub_classes().items():
        if cls in ("AlertmanagerSink", "SyncAlertmanagerSink"):
            # one post's timeout, not an acquisition's: the core's ALERTMANAGER table
            assert methods["__new__"].args.kwonlyargs[0].arg == "timeout_ms"
            default = methods["__new__"].args.kw_defaults[0]
            assert isinstance(default, ast.Constant) and str(default.value) == table[("alertmanager", "timeout_ms")]
            continue
        # a leadership's lease has its own default
        ttl = _native.DEFAULT_LEADER_TTL_MS if cls in ("LeaderElection", "SyncLeaderElection") else expected["ttl_ms"]
        for fname, f in methods.items():
            args = f.args.args + f.args.kwonlyargs
            defaults = [None] * (len(f.args.args) - len(f.args.defaults)) + list(f.args.defaults) + list(f.args.kw_defaults)
            for arg, default in zip(args, defaults):
                if arg.arg == "ttl_ms" and isinstance(default, ast.Constant):
                    assert default.value == ttl, (cls, fname)
                    seen += 1
                if (
                    arg.arg == "timeout_ms"
                    and isinstance(default, ast.Constant)
                    and default.value is not None
                    and fname != "acquire"
                ):
                    assert default.value == expected["timeout_ms"], (cls, fname)
                    seen += 1
    assert seen >= 10
    # the runtime signatures say the same
    for method in (txcoord.LockManager.acquire_lock, txcoord.sync.LockManager.acquire_lock):
        params = inspect.signature(method).parameters
        assert params["ttl_ms"].default == _native.DEFAULT_TTL_MS
        assert params["timeout_ms"].default == _native.DEFAULT_TIMEOUT_MS
    assert inspect.signature(txcoord.DistributedLock.acquire).parameters["timeout_ms"].default == 0
    for election in (txcoord.LeaderElection, txcoord.sync.LeaderElection):
        assert inspect.signature(election).parameters["ttl_ms"].default == _native.DEFAULT_LEADER_TTL_MS
        assert inspect.signature(election.campaign).parameters["timeout_ms"].default is None, "no limit"


def test_the_version_is_the_workspace_version() -> None:
    cargo = (ROOT / "Cargo.toml").read_text()
    match = re.search(r'\[workspace\.package\][^\[]*?version\s*=\s*"([^"]+)"', cargo, re.S)
    assert match is not None
    assert txcoord.__version__ == match.group(1)
    assert txcoord.PROTOCOL_VERSION == 2


def test_the_package_is_typed() -> None:
    assert (Path(txcoord.__file__).parent / "py.typed").exists()


def _sample(option: dict[str, Any]) -> Any:
    """A valid value for an option of the core's table."""
    kind = option["kind"]
    if option["table"] == "serve":
        return {"host": "127.0.0.1", "port": 0}[option["python"]]
    if kind == "millis":
        return int(option["default"]) if option["default"].isdigit() else 1000
    if kind in ("count", "choice"):
        return int(option["default"]) if kind == "count" else option["default"]
    if option["python"] == "start":
        return False  # nothing runs in the background
    samples: dict[str, Any] = {"priority": 7, "flag": True, "owner_id": "saga-1", "text": "t-1"}
    return samples[kind]


def test_the_module_constants_are_the_cores() -> None:
    table = _native._binding_table()
    assert len(table["constants"]) >= 8
    for name, value in table["constants"].items():
        assert getattr(txcoord, name) == value, name
        assert name in txcoord.__all__, name
    assert txcoord.DEFAULT_DEADLOCK_TIMEOUT_MS == 1000


def test_every_option_of_the_core_is_a_keyword_by_its_python_name() -> None:
    """Each row of the core's option tables is read by the binding (a new row needs no binding
    code): accepted under its Python name, by the async class and its blocking twin."""
    url = "redis://127.0.0.1:1/0"  # nothing connects
    options = _native._binding_table()["options"]
    assert {o["table"] for o in options} == {
        "acquire", "manager", "lock", "client", "monitor", "alertmanager", "metrics", "serve"
    }
    repo = txcoord.RedisSagaRepository(url)
    detector = txcoord.SagaDeadlockDetector(repo)
    for o in options:
        kw = {o["python"]: _sample(o)}
        for mod in (txcoord, txcoord.sync):
            if o["table"] == "serve":
                if mod is txcoord.sync:
                    txcoord.sync.serve_metrics(txcoord.TransactionMetricsCollector(), **kw).close()
            elif o["table"] == "monitor":
                mod.SagaMonitor(repo, txcoord.TransactionMetricsCollector(), mod.LogAlertSink(), detector,
                                **{"start": False, **kw})
            elif o["table"] == "alertmanager":
                mod.AlertmanagerSink("http://127.0.0.1:1", **kw)
            elif o["table"] == "metrics":
                mod.TransactionMetricsCollector(**kw)
            elif o["table"] == "manager":
                mod.LockManager(url, **kw)
            elif o["table"] == "client":
                mod.Client(url, **kw)
            elif o["table"] == "lock":
                mod.DistributedLock(url, "k", **kw)
            else:
                mod.LockManager(url).lock("r", **kw)
    assert txcoord.LockManager(url, owner_id="saga-1", deadlock_timeout_ms=0).owner_id == "saga-1"
