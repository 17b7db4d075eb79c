# SPDX-License-Identifier: MIT OR Apache-2.0
"""The two surfaces the parity check (parity.py) compares, read into one normalised model: the
Python stubs `_native.pyi` (with `ast`) as `txcoord` and `txcoord.sync` export them, and the Node
package's index.d.ts (with the TypeScript parser, through dts_surface.js), plus what the Node
package has at runtime. parity.py says how names are normalised."""

from __future__ import annotations

import ast
import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PY_PKG = ROOT / "bindings-python" / "python" / "txcoord"
PYI = PY_PKG / "_native.pyi"
PY_INIT = PY_PKG / "__init__.py"
PY_SYNC = PY_PKG / "sync.py"
DTS = ROOT / "bindings-node" / "index.d.ts"
NODE_INDEX = ROOT / "bindings-node" / "index.js"
CORE_ERRORS = ROOT / "core" / "src" / "error.rs"
CORE_CLIENT = ROOT / "core" / "src" / "client" / "stats.rs"

EVENT_METHODS = {"on", "once", "addListener", "prependListener", "prependOnceListener", "off", "removeListener"}
SCOPE_PY = {"__aenter__", "__enter__"}
SCOPE_PY_EXIT = {"__aexit__", "__exit__"}
SCOPE_JS = {"[Symbol.asyncDispose]", "[Symbol.dispose]"}


# -- the normalised model -----------------------------------------------------------------------


@dataclass
class Param:
    key: str  # normalised
    name: str  # as spelled
    positional: bool  # else keyword-only (Python) / an options-object field (JS)
    required: bool
    literals: Optional[frozenset[str]] = None
    default: Optional[str] = None  # a stub's literal default, as the core's table spells it


@dataclass
class Member:
    key: str  # normalised
    name: str  # as spelled
    kind: str  # constructor, method, property, scope, event
    is_async: Optional[bool] = None
    returns_value: Optional[bool] = None
    params: list[Param] = field(default_factory=list)
    literals: Optional[frozenset[str]] = None


Classes = dict[str, dict[str, Member]]  # public class name -> member key -> member


def camel_to_snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def py_key(name: str) -> str:
    return name[: -len("_ms")] if name.endswith("_ms") else name


# -- Python: the stubs, read with ast -------------------------------------------------------------


class PythonStubs:
    def __init__(self, pyi: Path, init: Path, sync: Path) -> None:
        tree = ast.parse(pyi.read_text(encoding="utf-8"))
        self.classes: dict[str, ast.ClassDef] = {}
        self.aliases: dict[str, ast.expr] = {}
        self.constants: list[str] = []  # module-level upper-case names
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                self.classes[node.name] = node
            elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                self.aliases[node.targets[0].id] = node.value
            elif (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and re.fullmatch(r"[A-Z][A-Z0-9_]*", node.target.id)
            ):
                self.constants.append(node.target.id)
        self.async_exports = self._exports(init)
        self.sync_exports = self._exports(sync)

    @staticmethod
    def _exports(module: Path) -> dict[str, str]:
        """Public name -> `_native` name, from the module's `from ._native import ...`."""
        out: dict[str, str] = {}
        for node in ast.parse(module.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ImportFrom) and node.module == "_native" and node.level == 1:
                for alias in node.names:
                    public = alias.asname or alias.name
                    if not public.startswith("_"):
                        out[public] = alias.name
        return out

    def is_enum(self, name: str) -> bool:
        cls = self.classes.get(name)
        return cls is not None and any(isinstance(b, ast.Name) and b.id == "Enum" for b in cls.bases)

    def enum_members(self, native_name: str) -> dict[str, str]:
        """Member name -> value of a stub `class X(str, Enum)`."""
        return {
            node.targets[0].id: node.value.value
            for node in self.classes[native_name].body
            if isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        }

    def enums(self, exports: dict[str, str]) -> dict[str, dict[str, str]]:
        return {public: self.enum_members(native) for public, native in exports.items() if self.is_enum(native)}

    def is_exception(self, name: str) -> bool:
        cls = self.classes.get(name)
        if cls is None:
            return name.endswith("Error") or name in ("Exception", "BaseException")
        return any(isinstance(b, ast.Name) and self.is_exception(b.id) for b in cls.bases)

    def literals(self, node: Optional[ast.expr], seen: frozenset[str] = frozenset()) -> Optional[frozenset[str]]:
        """The strings a `Literal[...]` annotation (through aliases, `| None`) allows, else None."""
        if node is None:
            return None
        if isinstance(node, ast.Constant) and node.value is None:
            return frozenset()
        if isinstance(node, ast.Name):
            if node.id in self.aliases and node.id not in seen:
                return self.literals(self.aliases[node.id], seen | {node.id})
            return None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            left, right = self.literals(node.left, seen), self.literals(node.right, seen)
            return None if left is None or right is None else left | right
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
            elts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            if node.value.id == "Literal":
                if all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in elts):
                    return frozenset(e.value for e in elts if isinstance(e, ast.Constant) and isinstance(e.value, str))
                return None
            if node.value.id in ("Optional", "Union"):
                parts = [self.literals(e, seen) for e in elts]
                if any(p is None for p in parts):
                    return None
                return frozenset().union(*(p for p in parts if p is not None))
        return None

    @staticmethod
    def _returns(node: Optional[ast.expr]) -> tuple[bool, bool]:
        """(is async, returns a value) of a return annotation."""
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id in ("Coroutine", "Awaitable"):
            elts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            result = elts[-1]
            return True, not (isinstance(result, ast.Constant) and result.value is None)
        return False, not (node is None or (isinstance(node, ast.Constant) and node.value is None))

    @staticmethod
    def _default(node: Optional[ast.expr]) -> Optional[str]:
        """A literal default as the core's table spells defaults (`30000`, `false`), else None."""
        if isinstance(node, ast.Constant) and isinstance(node.value, bool):
            return "true" if node.value else "false"
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return str(node.value)
        if (
            isinstance(node, ast.UnaryOp)
            and isinstance(node.op, ast.USub)
            and isinstance(node.operand, ast.Constant)
            and isinstance(node.operand.value, int)
        ):
            return f"-{node.operand.value}"
        return None

    def _params(self, fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[Param]:
        a = fn.args
        positional = a.posonlyargs + a.args
        defaults: list[Optional[ast.expr]] = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
        out = [
            Param(py_key(p.arg), p.arg, True, d is None, self.literals(p.annotation), self._default(d))
            for p, d in zip(positional[1:], defaults[1:])  # self / cls
        ]
        out += [
            Param(py_key(p.arg), p.arg, False, d is None, self.literals(p.annotation), self._default(d))
            for p, d in zip(a.kwonlyargs, a.kw_defaults)
        ]
        return out

    def members(self, native_name: str, is_async_surface: bool) -> dict[str, Member]:
        out: dict[str, Member] = {}
        for node in self.classes[native_name].body:
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                # a declared attribute reads like a property
                name = node.target.id
                if not name.startswith("_"):
                    out[py_key(name)] = Member(py_key(name), name, "property", literals=self.literals(node.annotation))
                continue
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            name = node.name
            decorators = {d.id for d in node.decorator_list if isinstance(d, ast.Name)}
            if any(isinstance(d, ast.Attribute) and d.attr in ("setter", "deleter") for d in node.decorator_list):
                continue  # the property itself speaks for it
            if name in ("__new__", "__init__"):
                out["<constructor>"] = Member("<constructor>", name, "constructor", params=self._params(node))
            elif name in SCOPE_PY:
                out["<scope>"] = Member("<scope>", name, "scope")
            elif name.startswith("_"):
                continue  # private, or a dunder covered above (__aexit__ with __aenter__)
            elif "property" in decorators:
                key = py_key(name)
                out[key] = Member(key, name, "property", literals=self.literals(node.returns))
            else:
                is_async, returns_value = self._returns(node.returns)
                if isinstance(node, ast.AsyncFunctionDef):
                    is_async, returns_value = True, self._returns(node.returns)[1]
                key = py_key(name)
                if is_async_surface and is_async and name == "aclose":
                    key = "close"
                out[key] = Member(key, name, "method", is_async, returns_value, self._params(node))
        return out

    def surface(self, exports: dict[str, str], is_async_surface: bool) -> Classes:
        return {
            public: self.members(native, is_async_surface)
            for public, native in exports.items()
            if native in self.classes and not self.is_exception(native) and not self.is_enum(native)
        }

    def exception_classes(self, exports: dict[str, str]) -> dict[str, str]:
        return {public: native for public, native in exports.items() if native in self.classes and self.is_exception(native)}

    def exception_attributes(self, native_name: str) -> set[str]:
        """The attributes a stub exception class declares, with those of its stub bases."""
        cls = self.classes[native_name]
        attrs = {n.target.id for n in cls.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
        for base in cls.bases:
            if isinstance(base, ast.Name) and base.id in self.classes:
                attrs |= self.exception_attributes(base.id)
        return attrs


# -- JS: index.d.ts, read by dts_surface.js -------------------------------------------------------


def read_dts(dts: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["node", str(HERE / "dts_surface.js"), str(dts)], capture_output=True, text=True, timeout=120, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"dts_surface.js failed on {dts}:\n{out.stderr}")
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def read_node_constants(index_js: Path) -> dict[str, Any]:
    """`{"exports": {name: value}, "table": {"constants": ..., "options": [...]}}` of the Node
    package: its constant exports, and the core's tables as its native addon gives them."""
    out = subprocess.run(
        ["node", str(HERE / "dts_surface.js"), "--constants", str(index_js)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"dts_surface.js --constants failed on {index_js}:\n{out.stderr}")
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def read_node_runtime(index_js: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["node", str(HERE / "dts_surface.js"), "--runtime", str(index_js)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"dts_surface.js --runtime failed on {index_js}:\n{out.stderr}")
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def _js_literals(values: Optional[list[str]]) -> Optional[frozenset[str]]:
    return None if values is None else frozenset(values)


def _js_params(params: list[dict[str, Any]]) -> list[Param]:
    out: list[Param] = []
    for p in params:
        if p["fields"] is not None:  # an options object: its fields are the keyword arguments
            out += [
                Param(camel_to_snake(f["name"]), f["name"], False, not f["optional"], _js_literals(f["literals"]))
                for f in p["fields"]
            ]
        else:
            out.append(Param(camel_to_snake(p["name"]), p["name"], True, not p["optional"], _js_literals(p["literals"])))
    return out


def js_values(dts: dict[str, Any]) -> Classes:
    """The exported interfaces as value types (a Python value class such as `SagaRecord` is a
    plain object in JS): their fields as properties (`_ms` dropped on both sides, `waitedMs` ↔
    `waited_ms`) and, where an interface `<Name>Input` declares what JS accepts as one, its
    fields as the parameters of a constructor."""
    interfaces: dict[str, Any] = dts["interfaces"]
    out: Classes = {}
    for name, iface in interfaces.items():
        members = {}
        for f in iface["fields"]:
            key = py_key(camel_to_snake(f["name"]))
            members[key] = Member(key, f["name"], "property", literals=_js_literals(f["literals"]))
        accepted = interfaces.get(f"{name}Input")
        if accepted is not None:
            params = [
                Param(py_key(camel_to_snake(f["name"])), f["name"], False, not f["optional"], _js_literals(f["literals"]))
                for f in accepted["fields"]
            ]
            members["<constructor>"] = Member("<constructor>", "constructor", "constructor", params=params)
        out[name] = members
    return out


def js_classes(dts: dict[str, Any]) -> Classes:
    out: Classes = {}
    for cls in dts["classes"]:
        members: dict[str, Member] = {}
        for m in cls["members"]:
            if m.get("static"):
                key = f"static {camel_to_snake(m['name'])}"
                members[key] = Member(key, m["name"], m["kind"])
            elif m["kind"] == "constructor":
                members["<constructor>"] = Member("<constructor>", "constructor", "constructor", params=_js_params(m["params"]))
            elif m["kind"] == "method" and m["name"] in EVENT_METHODS:
                events = m["params"][0]["literals"] if m["params"] else None
                for ev in events or []:  # the generic (string | symbol) overload is EventEmitter's
                    members[f"<event:{ev}>"] = Member(f"<event:{ev}>", f"on('{ev}')", "event")
            elif m["name"] in SCOPE_JS:
                members["<scope>"] = Member("<scope>", m["name"], "scope")
            elif m["kind"] == "method":
                key = camel_to_snake(m["name"])
                if key not in members:  # overloads: the first declaration speaks for them
                    members[key] = Member(
                        key, m["name"], "method", m["returns"]["async"], not m["returns"]["void"], _js_params(m["params"])
                    )
            else:
                key = camel_to_snake(m["name"])
                members[key] = Member(key, m["name"], "property", literals=_js_literals(m.get("literals")))
        out[cls["name"]] = members
    return out
