# SPDX-License-Identifier: MIT OR Apache-2.0
"""The API parity check (STYLE.md 3.12): the public classes and members of the
Python package — the hand-written stubs `_native.pyi`, as exported by `txcoord` and by
`txcoord.sync` — against the Node package's declarations `index.d.ts` (read with the TypeScript
parser by dts_surface.js), and the Python exception classes and their codes against the JS error
codes and the core's error kinds.

Names are normalised before they are compared:

- JS camelCase → snake_case (`fencingToken` → `fencing_token`, `isHeld` → `is_held`);
- the Python unit suffix `_ms` is dropped (`ttl_ms` ↔ `ttl`, `timeout_ms` ↔ `timeout`,
  `additional_time_ms` ↔ `additionalTime`, `remaining_validity_ms` ↔ `remainingValidity`,
  `fallback_poll_ms` ↔ `fallbackPoll`);
- Python's keyword-only arguments correspond to the fields of a JS options object
  (`owner_id=` ↔ `{ ownerId }`), its positional arguments to JS positional parameters. An
  options object is a parameter typed as an inline object type or as an interface named
  `…Options`; a parameter of another interface type is one value (`save(saga: SagaRecordInput,
  options?: SaveOptions)` ↔ `save(saga, *, expected_version=None, term=None,
  guard_finished=False)`);
- `__new__` ↔ `constructor`; the async close of the async API is spelled `aclose` in Python
  (PEP 525, `contextlib.aclosing`) ↔ `close`;
- pseudo-members: `<scope>` is `async with`/`with` (`__aenter__`/`__enter__`) ↔
  `[Symbol.asyncDispose]`/`[Symbol.dispose]`; `<event:NAME>` is an EventEmitter event the JS
  class declares (`on('lost', ...)`), which Python has no counterpart of.

Value types are classes in Python and plain objects in JS: a Python class that index.d.ts
declares no class of is compared with the exported interface of its name (`SagaRecord`,
`DeadlockCycle`, `Leader`, ...), field by field both ways (`waited_ms` ↔ `waitedMs`), and its
constructor with the fields of the interface `<Name>Input` where there is one (which exist,
which are required). String enumerations (Python `class SagaStatus(str, Enum)`, JS `declare
const SagaStatus: { readonly PENDING: 'PENDING', ... }`) are compared member by member.

Beyond the classes, the check compares both packages against the core's tables
(`binding::options`, read from the native modules: `txcoord._native._binding_table()` and the
Node addon's `constants()`/`optionTable()`): the module constants (Python attributes, JS named
exports, their declarations in the stubs and index.d.ts, and their values), and each option of
the acquire, manager, lock and client tables (declared in the stubs under its Python name and in
index.d.ts under its JS name, with the core's default where that is a number or a boolean: the
stub's default value, the "Default N." of the d.ts doc comment). The two builds must carry the
same tables.

Every difference is one line, `<surface>: <what>`, where the surface is `txcoord` (async
classes), `txcoord.sync` (blocking twins; asyncness is not compared there), `errors`,
`constants` or `options`. The reviewed ones are listed in parity-exceptions.toml.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from parity_read import (
    CORE_CLIENT,
    CORE_ERRORS,
    DTS,
    HERE,
    NODE_INDEX,
    PY_INIT,
    PY_SYNC,
    PYI,
    Classes,
    Member,
    Param,
    PythonStubs,
    camel_to_snake,
    js_classes,
    js_values,
    read_dts,
    read_node_constants,
)

EXCLUSIONS = HERE / "parity-exceptions.toml"

# -- comparing ---------------------------------------------------------------------------------------


def _label(cls: str, member: Member) -> str:
    """How a member is named in a difference: `Client.closed`, `DistributedLock.<scope>`,
    `DistributedLock.on('lost')`, `LockManager()` (the constructor)."""
    if member.kind == "constructor":
        return f"{cls}()"
    return f"{cls}.{'<scope>' if member.kind == 'scope' else member.name}"


def _call(cls: str, member: Member, param: Param) -> str:
    """How a parameter is named: `DistributedLock(on_lost)`, `LockManager.acquire_lock(signal)`."""
    return f"{cls}({param.name})" if member.kind == "constructor" else f"{_label(cls, member)}({param.name})"


def compare_classes(
    surface: str, py: Classes, js: Classes, compare_async: bool, values: Optional[Classes] = None
) -> list[str]:
    """The classes of one Python surface against the JS classes; a Python class without a JS
    class of its name is compared, as a value type, with the JS interface of its name (`values`,
    from js_values) if there is one."""
    diffs: list[str] = []
    values = values or {}
    for name in sorted(set(py) - set(js)):
        if name in values:
            diffs += _compare_value(surface, name, py[name], values[name])
        else:
            diffs.append(f"{surface}: class {name}: python only")
    for name in sorted(set(js) - set(py)):
        diffs.append(f"{surface}: class {name}: js only")
    for cname in sorted(set(py) & set(js)):
        pm, jm = py[cname], js[cname]
        for key in sorted(set(pm) - set(jm)):
            diffs.append(f"{surface}: {_label(cname, pm[key])}: python only")
        for key in sorted(set(jm) - set(pm)):
            diffs.append(f"{surface}: {_label(cname, jm[key])}: js only")
        for key in sorted(set(pm) & set(jm)):
            diffs += _compare_member(surface, cname, pm[key], jm[key], compare_async)
    return diffs


def _compare_value(surface: str, cname: str, pm: dict[str, Member], jm: dict[str, Member]) -> list[str]:
    """A Python value class against a JS interface: its fields both ways, and the Python
    constructor against the fields of `<Name>Input` where JS declares one (which arguments
    exist and which are required; a plain object has no positions)."""
    diffs: list[str] = []
    pf = {k: m for k, m in pm.items() if m.kind != "constructor"}
    jf = {k: m for k, m in jm.items() if m.kind != "constructor"}
    for key in sorted(set(pf) - set(jf)):
        diffs.append(f"{surface}: {_label(cname, pf[key])}: python only")
    for key in sorted(set(jf) - set(pf)):
        diffs.append(f"{surface}: {_label(cname, jf[key])}: js only")
    for key in sorted(set(pf) & set(jf)):
        diffs += _compare_member(surface, cname, pf[key], jf[key], compare_async=False)
    if "<constructor>" in pm and "<constructor>" in jm:
        diffs += _compare_params(surface, cname, pm["<constructor>"], jm["<constructor>"], positions=False)
    return diffs


def compare_enums(surface: str, py: dict[str, dict[str, str]], js: dict[str, dict[str, str]]) -> list[str]:
    """String enumerations (a Python `str` Enum, a JS frozen object): members and values."""
    diffs: list[str] = []
    for name in sorted(set(py) - set(js)):
        diffs.append(f"{surface}: enum {name}: python only")
    for name in sorted(set(js) - set(py)):
        diffs.append(f"{surface}: enum {name}: js only")
    for name in sorted(set(py) & set(js)):
        for member in sorted(set(py[name]) - set(js[name])):
            diffs.append(f"{surface}: {name}.{member}: python only")
        for member in sorted(set(js[name]) - set(py[name])):
            diffs.append(f"{surface}: {name}.{member}: js only")
        for member in sorted(set(py[name]) & set(js[name])):
            if py[name][member] != js[name][member]:
                diffs.append(f"{surface}: {name}.{member}: {py[name][member]!r} in python, {js[name][member]!r} in js")
    return diffs


def _compare_member(surface: str, cname: str, p: Member, j: Member, compare_async: bool) -> list[str]:
    where = f"{surface}: {_label(cname, p)}"
    diffs: list[str] = []
    if p.kind != j.kind:
        return [f"{where}: python {p.kind}, js {j.kind}"]
    if p.kind == "method":
        if compare_async and p.is_async != j.is_async:
            diffs.append(f"{where}: async in {'python' if p.is_async else 'js'} only")
        if p.returns_value != j.returns_value:
            diffs.append(f"{where}: returns a value in {'python' if p.returns_value else 'js'} only")
    if p.literals is not None and j.literals is not None and p.literals != j.literals:
        for v in sorted(p.literals - j.literals):
            diffs.append(f"{where}: value {v!r} python only")
        for v in sorted(j.literals - p.literals):
            diffs.append(f"{where}: value {v!r} js only")
    if p.kind not in ("method", "constructor"):
        return diffs
    return diffs + _compare_params(surface, cname, p, j, positions=True)


def _compare_params(surface: str, cname: str, p: Member, j: Member, positions: bool) -> list[str]:
    """The parameters of a method or constructor; `positions`: also positional against named,
    and the order of the positional ones."""
    where = f"{surface}: {_label(cname, p)}"
    diffs: list[str] = []
    pp = {x.key: x for x in p.params}
    jp = {x.key: x for x in j.params}
    for x in p.params:
        if x.key not in jp:
            diffs.append(f"{surface}: {_call(cname, p, x)}: python only")
    for x in j.params:
        if x.key not in pp:
            diffs.append(f"{surface}: {_call(cname, j, x)}: js only")
    for a in p.params:
        b = jp.get(a.key)
        if b is None:
            continue
        if positions and a.positional != b.positional:
            how = "positional in python, an option in js" if a.positional else "keyword-only in python, positional in js"
            diffs.append(f"{surface}: {_call(cname, p, a)}: {how}")
        if a.required != b.required:
            diffs.append(f"{surface}: {_call(cname, p, a)}: required in {'python' if a.required else 'js'} only")
        if a.literals is not None and b.literals is not None and a.literals != b.literals:
            diffs.append(
                f"{surface}: {_call(cname, p, a)}: values {sorted(a.literals)} in python, {sorted(b.literals)} in js"
            )
    common_py = [x.key for x in p.params if x.positional and x.key in jp and jp[x.key].positional]
    common_js = [x.key for x in j.params if x.positional and x.key in pp and pp[x.key].positional]
    if positions and common_py != common_js:
        diffs.append(f"{where}: positional order ({', '.join(common_py)}) in python, ({', '.join(common_js)}) in js")
    return diffs


def core_error_codes(error_rs: Path) -> list[str]:
    text = error_rs.read_text(encoding="utf-8")
    body = text[text.index("pub const fn code(self)"):]
    body = body[: body.index("\n    }\n")]
    return re.findall(r'ErrorKind::\w+ => "(TXCOORD_\w+)"', body)


def core_stats_fields(client_rs: Path) -> list[str]:
    text = client_rs.read_text(encoding="utf-8")
    body = text[text.index("pub struct ClientStats {"):]
    body = body[: body.index("\n}")]
    return re.findall(r"pub (\w+): u64", body)


def compare_errors(
    stubs: PythonStubs,
    dts: dict[str, Any],
    python_codes: dict[str, Optional[str]],
    core_codes: list[str],
) -> list[str]:
    """Exception classes and codes. `python_codes`: exception class -> its `.code` (runtime)."""
    diffs: list[str] = []
    async_exc = stubs.exception_classes(stubs.async_exports)
    sync_exc = stubs.exception_classes(stubs.sync_exports)
    for name in sorted(set(async_exc) ^ set(sync_exc)):
        diffs.append(f"errors: class {name}: exported by {'txcoord' if name in async_exc else 'txcoord.sync'} only")
    for name in sorted(set(async_exc) - set(python_codes)):
        diffs.append(f"errors: class {name}: in the stubs, not in the module")
    js_codes = dts["unions"].get("TxcoordErrorCode")
    if js_codes is None:
        diffs.append("errors: index.d.ts declares no TxcoordErrorCode union")
        js_codes = []
    by_code: dict[str, list[str]] = {}
    for cls, code in python_codes.items():
        if code is not None:
            by_code.setdefault(code, []).append(cls)
    for code, classes in sorted(by_code.items()):
        if len(classes) > 1:
            diffs.append(f"errors: code {code}: shared by python classes {', '.join(sorted(classes))}")
    sides = {"python": set(by_code), "js": set(js_codes), "core": set(core_codes)}
    for code in sorted(set().union(*sides.values())):
        present = [s for s, codes in sides.items() if code in codes]
        if len(present) != len(sides):
            diffs.append(f"errors: code {code}: only in {' and '.join(present)}")
    # Attributes of the error types both sides declare by name (TxcoordError, LockLostError).
    for name, iface in sorted(dts["interfaces"].items()):
        if name not in async_exc:
            continue
        py_attrs = stubs.exception_attributes(async_exc[name])
        js_attrs = {camel_to_snake(f["name"]) for f in iface["fields"]}
        for attr in sorted(py_attrs - js_attrs):
            diffs.append(f"errors: {name}.{attr}: python only")
        for attr in sorted(js_attrs - py_attrs):
            diffs.append(f"errors: {name}.{attr}: js only")
    return diffs


def compare_values(
    stubs: PythonStubs, dts: dict[str, Any], python_stats: list[str], core_stats: list[str]
) -> list[str]:
    """Stats counters (Python `stats()` keys, JS `ClientStats`, the core's `ClientStats`) and
    loss reasons (`_LossReason`, `LossReason`)."""
    diffs: list[str] = []
    js_stats = [camel_to_snake(f["name"]) for f in dts["interfaces"].get("ClientStats", {}).get("fields", [])]
    sides = {"python": set(python_stats), "js": set(js_stats), "core": set(core_stats)}
    for key in sorted(set().union(*sides.values())):
        present = [s for s, keys in sides.items() if key in keys]
        if len(present) != len(sides):
            diffs.append(f"stats: counter {key}: only in {' and '.join(present)}")
    py_reasons = stubs.literals(ast.Name("_LossReason")) or frozenset()
    js_reasons = frozenset(dts["unions"].get("LossReason", []))
    for v in sorted(py_reasons - js_reasons):
        diffs.append(f"values: loss reason {v!r}: python only")
    for v in sorted(js_reasons - py_reasons):
        diffs.append(f"values: loss reason {v!r}: js only")
    return diffs


# Where each core option table is declared: the Python stub members (class, member key) and the
# d.ts options interface.
OPTION_PLACES: dict[str, tuple[list[tuple[str, str]], str]] = {
    "acquire": ([("LockManager", "acquire_lock"), ("LockManager", "lock")], "UsingOptions"),
    "manager": ([("LockManager", "<constructor>")], "ManagerOptions"),
    "lock": ([("DistributedLock", "<constructor>")], "LockOptions"),
    "client": ([("Client", "<constructor>")], "ClientOptions"),
}


def _comparable(default: str) -> bool:
    """A core default both declarations must spell: a number or a boolean."""
    return re.fullmatch(r"-?\d+|true|false", default) is not None


def _doc_default(doc: str) -> Optional[str]:
    """The `Default N.` of a d.ts doc comment."""
    m = re.search(r"\bDefault:?\s+`?([-\w.<> ]+?)`?\.?(?:\s|$)", doc)
    return m.group(1) if m else None


def compare_options(stubs: PythonStubs, dts: dict[str, Any], options: list[dict[str, Any]]) -> list[str]:
    """Each option of the core's tables, declared by both packages with the core's default."""
    diffs: list[str] = []
    surfaces = [("txcoord", stubs.async_exports, True), ("txcoord.sync", stubs.sync_exports, False)]
    for o in options:
        places, interface = OPTION_PLACES[o["table"]]
        core = f"{o['table']}.{o['name']}"
        for surface, exports, is_async in surfaces:
            classes = stubs.surface(exports, is_async)
            for cls, member_key in places:
                member = classes.get(cls, {}).get(member_key)
                if member is None:
                    continue
                label = _label(cls, member)
                params = {p.name: p for p in member.params}
                param = params.get(o["python"])
                if param is None:
                    diffs.append(f"options: {surface}: {label}: no {o['python']} (core option {core})")
                elif _comparable(o["default"]) and param.default != o["default"]:
                    diffs.append(
                        f"options: {surface}: {_call(cls, member, param)}: default {param.default}, "
                        f"the core's {o['default']}"
                    )
        fields = {f["name"]: f for f in dts["interfaces"].get(interface, {}).get("fields", [])}
        field_ = fields.get(o["js"])
        if field_ is None:
            diffs.append(f"options: index.d.ts: {interface}: no {o['js']} (core option {core})")
        elif _comparable(o["default"]):
            documented = _doc_default(field_.get("doc", ""))
            if documented != o["default"]:
                diffs.append(
                    f"options: index.d.ts: {interface}.{o['js']}: default {documented or 'undocumented'}, "
                    f"the core's {o['default']}"
                )
    return diffs


def _table_key(table: dict[str, Any]) -> tuple[Any, ...]:
    options = sorted(
        tuple(sorted((k, json.dumps(v)) for k, v in o.items())) for o in table["options"]
    )
    return (tuple(sorted(table["constants"].items())), tuple(options))


def compare_constants(
    stubs: PythonStubs, dts: dict[str, Any], python: dict[str, Any], node: dict[str, Any]
) -> list[str]:
    """The module constants: declared in the stubs (exported by `txcoord`) and in index.d.ts,
    exported at runtime by both packages with the core's values; and the two builds' tables.
    `python`/`node`: `{"exports": {name: value}, "table": {"constants", "options"}}`."""
    diffs: list[str] = []
    core = python["table"]["constants"]
    # An option without a range has `min`/`max` None in Python, absent in JS.
    py_options = [{k: v for k, v in o.items() if v is not None} for o in python["table"]["options"]]
    js_options = [{k: v for k, v in o.items() if v is not None} for o in node["table"]["options"]]
    if _table_key({"constants": core, "options": py_options}) != _table_key(
        {"constants": node["table"]["constants"], "options": js_options}
    ):
        changed = sorted(
            {f"{o['table']}.{o['name']}" for o in py_options if o not in js_options}
            | {f"{o['table']}.{o['name']}" for o in js_options if o not in py_options}
            | {n for n in set(core) | set(node["table"]["constants"]) if core.get(n) != node["table"]["constants"].get(n)}
        )
        diffs.append(f"constants: the core tables of the Python and Node builds differ ({', '.join(changed)})")
    declared_py = {n for n in stubs.constants if n in stubs.async_exports}
    sides = {
        "python": declared_py,
        "js": set(dts.get("constants", [])),
        "core": set(core),
    }
    for name in sorted(set().union(*sides.values())):
        present = [side for side, names in sides.items() if name in names]
        if len(present) != len(sides):
            diffs.append(f"constants: {name}: only in {' and '.join(present)}")
    for side, exported in (("python", python["exports"]), ("node", node["exports"])):
        for name, value in sorted(core.items()):
            if exported.get(name) != value:
                diffs.append(f"constants: {name}: {exported.get(name)} in {side}, {value} in the core")
    return diffs


@dataclass
class Inputs:
    pyi: Path = PYI
    init: Path = PY_INIT
    sync: Path = PY_SYNC
    dts: Path = DTS
    core_errors: Path = CORE_ERRORS
    core_client: Path = CORE_CLIENT
    python_codes: Optional[dict[str, Optional[str]]] = None  # default: from the imported module
    python_stats: Optional[list[str]] = None  # default: from the imported module
    python_constants: Optional[dict[str, Any]] = None  # default: runtime_python_constants()
    node_constants: Optional[dict[str, Any]] = None  # default: read_node_constants(index.js)


def runtime_python_codes(names: list[str]) -> dict[str, Optional[str]]:
    import txcoord

    return {n: getattr(getattr(txcoord, n), "code", None) for n in names if hasattr(txcoord, n)}


def runtime_python_stats() -> list[str]:
    import txcoord

    # Creating a client does not connect.
    return sorted(txcoord.Client("redis://127.0.0.1:1").stats())


def runtime_python_constants() -> dict[str, Any]:
    """As read_node_constants, for the Python package."""
    import txcoord

    table: dict[str, Any] = txcoord._native._binding_table()
    exports = {n: getattr(txcoord, n) for n in dir(txcoord) if re.fullmatch(r"[A-Z][A-Z0-9_]*", n)}
    return {"exports": exports, "table": table}


def differences(inputs: Inputs) -> list[str]:
    stubs = PythonStubs(inputs.pyi, inputs.init, inputs.sync)
    dts = read_dts(inputs.dts)
    js, values = js_classes(dts), js_values(dts)
    diffs: list[str] = []
    for surface, exports, is_async in (("txcoord", stubs.async_exports, True), ("txcoord.sync", stubs.sync_exports, False)):
        diffs += compare_classes(surface, stubs.surface(exports, is_async), js, is_async, values)
        diffs += compare_enums(surface, stubs.enums(exports), dts["enums"])
    codes = inputs.python_codes
    if codes is None:
        codes = runtime_python_codes(sorted(stubs.exception_classes(stubs.async_exports)))
    diffs += compare_errors(stubs, dts, codes, core_error_codes(inputs.core_errors))
    stats = inputs.python_stats if inputs.python_stats is not None else runtime_python_stats()
    diffs += compare_values(stubs, dts, stats, core_stats_fields(inputs.core_client))
    python = inputs.python_constants if inputs.python_constants is not None else runtime_python_constants()
    node = inputs.node_constants if inputs.node_constants is not None else read_node_constants(NODE_INDEX)
    diffs += compare_constants(stubs, dts, python, node)
    diffs += compare_options(stubs, dts, python["table"]["options"])
    return diffs


# -- the reviewed list ------------------------------------------------------------------------------


def _toml_loads(text: str) -> dict[str, Any]:
    # tomllib from Python 3.11; before that tomli, or the copy pip vendors.
    for name in ("tomllib", "tomli", "pip._vendor.tomli"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        data: dict[str, Any] = module.loads(text)
        return data
    raise RuntimeError("no TOML parser: use Python >= 3.11 or install tomli")


def load_exclusions(path: Path = EXCLUSIONS) -> dict[str, str]:
    """Difference -> the reason it is accepted. The file's format is checked on the way."""
    data = _toml_loads(path.read_text(encoding="utf-8"))
    unknown = set(data) - {"accepted"}
    if unknown:
        raise ValueError(f"{path.name}: unknown top-level keys {sorted(unknown)}")
    out: dict[str, str] = {}
    for i, entry in enumerate(data.get("accepted", [])):
        where = f"{path.name}: entry {i + 1}"
        if set(entry) != {"differences", "reason"}:
            raise ValueError(f"{where}: needs exactly `differences` and `reason`, has {sorted(entry)}")
        reason = entry["reason"]
        if not isinstance(reason, str) or not reason.strip() or "\n" in reason.strip():
            raise ValueError(f"{where}: `reason` must be one non-empty line")
        if not entry["differences"] or not all(isinstance(d, str) for d in entry["differences"]):
            raise ValueError(f"{where}: `differences` must be a non-empty list of strings")
        for d in entry["differences"]:
            if d in out:
                raise ValueError(f"{where}: {d!r} is listed twice")
            out[d] = reason.strip()
    return out


def check(found: list[str], accepted: dict[str, str]) -> tuple[list[str], list[str]]:
    """(differences not on the list, listed differences that no longer exist)."""
    return sorted(set(found) - set(accepted)), sorted(set(accepted) - set(found))
