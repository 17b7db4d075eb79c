# SPDX-License-Identifier: MIT OR Apache-2.0
"""API parity between the Python and Node packages: see parity.py for what is
compared and how names are normalised (classes, errors, counters, and both packages against the
core's constants and option tables), and parity-exceptions.toml for the reviewed differences.
Also checks that the check itself fails on injected differences, and that index.d.ts declares
what index.js has at runtime (the Node counterpart of stubtest)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import parity
import parity_read
from parity import Inputs


@pytest.fixture(scope="module")
def baseline() -> list[str]:
    return parity.differences(Inputs())


def test_python_and_node_apis_match_but_for_reviewed_differences(baseline: list[str]) -> None:
    accepted = parity.load_exclusions()
    unexpected, stale = parity.check(baseline, accepted)
    message = []
    if unexpected:
        message.append(
            "API differences between the Python stubs and index.d.ts that are not reviewed "
            f"(fix one side, or add them to {parity.EXCLUSIONS.name} with a one-line reason):\n  "
            + "\n  ".join(unexpected)
        )
    if stale:
        message.append(
            f"entries of {parity.EXCLUSIONS.name} that no longer differ (remove them):\n  " + "\n  ".join(stale)
        )
    assert not message, "\n\n".join(message)


def test_the_reviewed_list_is_well_formed() -> None:
    accepted = parity.load_exclusions()
    assert accepted, "the list is read"
    for difference, reason in accepted.items():
        assert difference.split(":", 1)[0] in (
            "txcoord",
            "txcoord.sync",
            "errors",
            "stats",
            "values",
            "constants",
            "options",
        ), difference
        assert len(reason) >= 20, (difference, reason)


# -- the check can fail -----------------------------------------------------------------------------


def _copies(tmp_path: Path) -> Inputs:
    out = {}
    sources = [("pyi", parity_read.PYI), ("init", parity_read.PY_INIT), ("sync", parity_read.PY_SYNC), ("dts", parity_read.DTS)]
    for name, src in sources:
        dst = tmp_path / f"{name}-{src.name}"
        shutil.copyfile(src, dst)
        out[name] = dst
    return Inputs(pyi=out["pyi"], init=out["init"], sync=out["sync"], dts=out["dts"])


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"the injection point {old!r} is gone from {path.name}: update this test"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


BOTH = ("txcoord", "txcoord.sync")

# name, (file, old text, new text), differences the edit must add
INJECTIONS: list[tuple[str, tuple[str, str, str], set[str]]] = [
    (
        "a method only in the Python stubs",
        ("pyi", "    def ping(self) -> Coroutine[Any, Any, None]: ...\n",
         "    def ping(self) -> Coroutine[Any, Any, None]: ...\n    def frobnicate(self) -> None: ...\n"),
        {"txcoord: Client.frobnicate: python only"},
    ),
    (
        "a property renamed in index.d.ts",
        ("dts", "readonly isHeld: boolean", "readonly isHeldNow: boolean"),
        {f"{s}: DistributedLock.{n}" for s in BOTH for n in ("is_held: python only", "isHeldNow: js only")},
    ),
    (
        "an option dropped from index.d.ts",
        ("dts", "  /** FIFO fair waiting (no barging). Default false. */\n  fair?: boolean\n", ""),
        {f"{s}: LockManager(fair): python only" for s in BOTH}
        | {"options: index.d.ts: ManagerOptions: no fair (core option manager.fair)"},
    ),
    (
        "an optional parameter made required in index.d.ts",
        ("dts", "extend(additionalTime?: number)", "extend(additionalTime: number)"),
        {f"{s}: DistributedLock.extend(additional_time_ms): required in js only" for s in BOTH},
    ),
    (
        "positional parameters swapped in index.d.ts",
        ("dts", "    ttl?: number,\n    timeout?: number,\n", "    timeout?: number,\n    ttl?: number,\n"),
        {f"{s}: LockManager.acquire_lock: positional order (resource, ttl, timeout) in python, (resource, timeout, ttl) in js"
         for s in BOTH},
    ),
    (
        "a status value added in index.d.ts",
        ("dts", "readonly status: 'idle' | 'held' | 'releasing' | 'released' | 'lost'",
         "readonly status: 'idle' | 'held' | 'releasing' | 'released' | 'lost' | 'paused'"),
        {f"{s}: DistributedLock.status: value 'paused' js only" for s in BOTH},
    ),
    (
        "an async method made blocking in the stubs",
        ("pyi", "    def ping(self) -> Coroutine[Any, Any, None]: ...\n", "    def ping(self) -> None: ...\n"),
        {"txcoord: Client.ping: async in js only"},
    ),
    (
        "a property turned into a method in the stubs",
        ("pyi", "    @property\n    def hold_count(self) -> int: ...\n", "    def hold_count(self) -> int: ...\n"),
        {"txcoord: DistributedLock.hold_count: python method, js property"},
    ),
    (
        "an error code dropped from index.d.ts",
        ("dts", "  | 'TXCOORD_INTERNAL'\n", "\n"),
        {"errors: code TXCOORD_INTERNAL: only in python and core"},
    ),
    (
        "an error attribute added to the stubs",
        ("pyi", '    """The loss reason of a LockLostError."""\n',
         '    """The loss reason of a LockLostError."""\n    retry_after_ms: int | None\n'),
        {f"errors: {e}.retry_after_ms: python only" for e in ("TxcoordError", "LockLostError", "DeadlockVictimError")},
    ),
    (
        "a class exported by txcoord.sync only",
        ("sync", "from ._native import SyncLockManager as LockManager\n",
         "from ._native import SyncLockManager as LockManager\nfrom ._native import SyncLockManager as Coordinator\n"),
        {"txcoord.sync: class Coordinator: python only"},
    ),
    (
        "a manager option dropped from index.d.ts",
        ("dts", "  deadlockTimeout?: number\n", ""),
        {
            "options: index.d.ts: ManagerOptions: no deadlockTimeout (core option manager.deadlock_timeout)",
            "txcoord: LockManager(deadlock_timeout_ms): python only",
            "txcoord.sync: LockManager(deadlock_timeout_ms): python only",
        },
    ),
    (
        "a default changed in the stubs",
        ("pyi", "        waiter_lease_ms: _Millis | None = 5000,\n", "        waiter_lease_ms: _Millis | None = 6000,\n"),
        {"options: txcoord: LockManager(waiter_lease_ms): default 6000, the core's 5000"},
    ),
    (
        "a default changed in the doc of index.d.ts",
        ("dts", "in ms. Default 5000. */", "in ms. Default 6000. */"),
        {"options: index.d.ts: ManagerOptions.waiterLease: default 6000, the core's 5000"},
    ),
    (
        "a constant missing from index.d.ts",
        ("dts", "export declare const MAX_MS: number\n", ""),
        {"constants: MAX_MS: only in python and core"},
    ),
    (
        "a constant missing from the stubs",
        ("pyi", "DEFAULT_DEADLOCK_TIMEOUT_MS: Final[int]\n", ""),
        {"constants: DEFAULT_DEADLOCK_TIMEOUT_MS: only in js and core"},
    ),
    (
        "a field removed from an interface a Python value class matches",
        ("dts", "  /** How long its lease has left, in ms. */\n  remainingMs: number\n", ""),
        {f"{s}: Leader.remaining_ms: python only" for s in BOTH},
    ),
    (
        "a field added to a Python value class",
        ("pyi", "    @property\n    def average_duration(self) -> float:\n",
         "    @property\n    def median_duration(self) -> float: ...\n    @property\n    def average_duration(self) -> float:\n"),
        {f"{s}: SagaStatistics.median_duration: python only" for s in BOTH},
    ),
    (
        "a field dropped from the record JS accepts",
        ("dts", "  retryCount?: number | null\n", ""),
        {f"{s}: SagaRecord(retry_count): python only" for s in BOTH},
    ),
    (
        "a status added to the JS enumeration",
        ("dts", "  readonly FAILED: 'FAILED'\n", "  readonly FAILED: 'FAILED'\n  readonly PAUSED: 'PAUSED'\n"),
        {f"{s}: SagaStatus.PAUSED: js only" for s in BOTH},
    ),
    (
        "an option dropped beside a record parameter in index.d.ts",
        ("dts", "  guardFinished?: boolean\n", ""),
        {f"{s}: RedisSagaRepository.save(guard_finished): python only" for s in BOTH},
    ),
]


@pytest.mark.parametrize(("edit", "expected"), [(e, x) for _, e, x in INJECTIONS], ids=[n for n, _, _ in INJECTIONS])
def test_the_check_catches_an_injected_difference(
    tmp_path: Path, baseline: list[str], edit: tuple[str, str, str], expected: set[str]
) -> None:
    inputs = _copies(tmp_path)
    which, old, new = edit
    _edit(getattr(inputs, which), old, new)
    found = parity.differences(inputs)
    assert set(found) - set(baseline) == expected
    unexpected, stale = parity.check(found, parity.load_exclusions())
    assert set(unexpected) == expected, "the parity test would fail, naming exactly the injected differences"


def test_the_check_catches_a_changed_error_code(baseline: list[str]) -> None:
    stubs = parity_read.PythonStubs(parity_read.PYI, parity_read.PY_INIT, parity_read.PY_SYNC)
    codes = parity.runtime_python_codes(sorted(stubs.exception_classes(stubs.async_exports)))
    assert codes["InternalError"] == "TXCOORD_INTERNAL"
    found = parity.differences(Inputs(python_codes={**codes, "InternalError": "TXCOORD_BUG"}))
    assert set(found) - set(baseline) == {
        "errors: code TXCOORD_BUG: only in python",
        "errors: code TXCOORD_INTERNAL: only in js and core",
    }
    found = parity.differences(Inputs(python_codes={**codes, "ClosedError": "TXCOORD_INTERNAL"}))
    assert set(found) - set(baseline) == {
        "errors: code TXCOORD_INTERNAL: shared by python classes ClosedError, InternalError",
        "errors: code TXCOORD_CLOSED: only in js and core",
    }


def test_the_check_catches_constants_that_are_not_the_cores(baseline: list[str]) -> None:
    python = parity.runtime_python_constants()
    node = parity_read.read_node_constants(parity_read.NODE_INDEX)
    assert node["exports"] == python["exports"] == python["table"]["constants"], "both export the core's values"
    changed = {**node, "exports": {**node["exports"], "DEFAULT_TTL_MS": 12345}}
    found = parity.differences(Inputs(python_constants=python, node_constants=changed))
    assert set(found) - set(baseline) == {"constants: DEFAULT_TTL_MS: 12345 in node, 30000 in the core"}
    options = [dict(o, default="2000") if o["name"] == "fallback_poll" else o for o in node["table"]["options"]]
    stale = {**node, "table": {**node["table"], "options": options}}
    found = parity.differences(Inputs(python_constants=python, node_constants=stale))
    assert set(found) - set(baseline) == {
        "constants: the core tables of the Python and Node builds differ (manager.fallback_poll)"
    }


def test_every_option_of_the_core_is_compared(baseline: list[str]) -> None:
    table = parity.runtime_python_constants()["table"]["options"]
    assert {o["table"] for o in table} == set(parity.OPTION_PLACES)
    assert any(o["table"] == "manager" and o["name"] == "deadlock_timeout" for o in table)
    assert [d for d in baseline if d.startswith(("options:", "constants:"))] == []


def test_the_check_catches_a_missing_stats_counter(baseline: list[str]) -> None:
    stats = [k for k in parity.runtime_python_stats() if k != "wake_timer"]
    found = parity.differences(Inputs(python_stats=stats))
    assert set(found) - set(baseline) == {"stats: counter wake_timer: only in js and core"}


def test_a_listed_difference_that_is_gone_is_reported(tmp_path: Path, baseline: list[str]) -> None:
    inputs = _copies(tmp_path)
    _edit(inputs.sync, "from ._native import SyncLockContext as LockContext\n", "")
    found = parity.differences(inputs)
    unexpected, stale = parity.check(found, parity.load_exclusions())
    assert unexpected == []
    assert stale == ["txcoord.sync: class LockContext: python only"]


def test_a_malformed_list_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[accepted]]\ndifferences = ["txcoord: Client.x: python only"]\n')
    with pytest.raises(ValueError, match="exactly `differences` and `reason`"):
        parity.load_exclusions(bad)
    bad.write_text('[[accepted]]\nreason = ""\ndifferences = ["txcoord: Client.x: python only"]\n')
    with pytest.raises(ValueError, match="one non-empty line"):
        parity.load_exclusions(bad)
    bad.write_text(
        '[[accepted]]\nreason = "a reason long enough"\ndifferences = ["a"]\n'
        '[[accepted]]\nreason = "another reason here"\ndifferences = ["a"]\n'
    )
    with pytest.raises(ValueError, match="listed twice"):
        parity.load_exclusions(bad)


# -- index.d.ts against index.js -----------------------------------------------------------------------


def test_index_d_ts_declares_what_index_js_has() -> None:
    """The Node counterpart of stubtest: every class index.js exports is declared, with the
    same public members, and nothing is declared that index.js lacks. A class that extends
    EventEmitter is declared so, and may restate the EventEmitter methods it inherits (typed
    with its events)."""
    declared = {c["name"]: c for c in parity_read.read_dts(parity_read.DTS)["classes"]}
    runtime = parity_read.read_node_runtime(parity_read.NODE_INDEX)
    assert set(declared) == set(runtime)
    problems = []
    for name, cls in declared.items():
        members = {m["name"]: m["kind"] for m in cls["members"] if m["kind"] != "constructor" and not m.get("static")}
        statics = {m["name"] for m in cls["members"] if m.get("static")}
        have = runtime[name]["members"]
        if ("EventEmitter" in cls["extends"]) != ("EventEmitter" in runtime[name]["extends"]):
            problems.append(f"{name}: extends {cls['extends']} declared, {runtime[name]['extends']} at runtime")
        inherited = set(runtime[name]["inherited"])
        for member in sorted(set(members) - set(have) - inherited):
            problems.append(f"{name}.{member}: declared, missing at runtime")
        for member in sorted(set(have) - set(members)):
            problems.append(f"{name}.{member}: at runtime, not declared")
        for member in sorted(set(members) & set(have)):
            if members[member] != have[member]:
                problems.append(f"{name}.{member}: declared a {members[member]}, a {have[member]} at runtime")
        # napi classes are sloppy-mode functions: `arguments` and `caller` are not API.
        runtime_statics = set(runtime[name]["statics"]) - {"arguments", "caller"}
        if statics != runtime_statics:
            problems.append(f"{name}: statics declared {sorted(statics)}, at runtime {sorted(runtime_statics)}")
    assert not problems, "\n".join(problems)


def test_index_d_ts_declares_the_enumerations_index_js_has() -> None:
    """`SagaStatus` as declared (`declare const SagaStatus: { readonly PENDING: 'PENDING', ... }`)
    is what index.js exports (a frozen object built from the core's list)."""
    declared = parity_read.read_dts(parity_read.DTS)["enums"]
    runtime = parity_read.read_node_constants(parity_read.NODE_INDEX)["enums"]
    assert "SagaStatus" in runtime
    assert declared == runtime
