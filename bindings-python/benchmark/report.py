# SPDX-License-Identifier: MIT OR Apache-2.0
"""The combined tables of `make bench` and `make soak` (issue 5, item 4), from the JSON the
three benchmark programs write. Standard library only.

    python3 bindings-python/benchmark/report.py bench rust.json python.json node.json
    python3 bindings-python/benchmark/report.py soak rust.json python.json node.json

bench: one markdown table per language (scenarios A, B, C, C2, D and peak RSS, one column per
library), then the targets of the issue, met or missed, with the ratio. Exit status 0.

soak: one table (RSS at 1/5 of the cycles and at the end, open fds, scheduled renewals); exit
status 1 when a soak failed or its RSS was not flat: the end more than max(5 %, 10 MiB) above the
figure at 1/5 of the cycles.

The JSON of one language (core/benches/scenarios.rs with BENCH_JSON, scenarios.py --json,
tests/node/bench/scenarios.js --json):

    {"lang": "rust"|"python"|"node", "runtime": str, "server": url, "redis_version": str,
     "ab_secs": s, "secs": s, "rss_note": str, "notes": [str],
     "libs": [{"id": str, "label": str, "fair_mode": bool, "notes": [str],
               "A" and "B": {"rate", "cycles", "tasks", "p50_ms", "p99_ms", "cmds_per_cycle",
                             "how", "errors": [str]},
               "C" and "C2": {"default": S, "fair": S (txcoord only)} where S =
                   {"acq_per_s", "acquisitions", "wait_p50_ms", "wait_p99_ms", "wait_max_ms",
                    "wait_max_cut", "handoffs", "handoff_p50_ms", "handoff_p99_ms",
                    "back_share", "per_task_min", "per_task_max", "hold_mean_ms",
                    "hold_max_ms", "overlaps", "how", "errors"},
               "D": {"locks", "held", "cpu_pct", "cmds_per_s", "cmds_incl_scripts_per_s",
                     "renewal", "errors"},
               "peak_rss_kib": int}]}

A soak result (one JSON object, printed by each soak program after `SOAK_RESULT `):

    {"lang", "lib", "cycles", "seconds", "tasks", "rss_early_at", "rss_early_kib",
     "rss_end_kib", "marks": [[cycles, rss_kib], ...], "fds", "scheduled_renewals" (Rust),
     "redis_keys_left", "errors": [str]}
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

LANGS = {"rust": "Rust", "python": "Python", "node": "Node"}
SOAK_SLACK_SHARE = 0.05
SOAK_SLACK_KIB = 10 * 1024

# The targets of issue 5, item 4: (language, scenario, txcoord ≥ ratio × baseline id).
THROUGHPUT_TARGETS = [
    ("python", "A", 1.5, "redis-py"),
    ("python", "B", 3.0, "redis-py"),
    ("node", "A", 1.2, "seed"),
    ("node", "B", 1.5, "seed"),
]
C2_HANDOFF_P99_MS = 5.0
C2_WAIT_P99_MS = 10.0


def dash() -> str:
    return "–"


def num(x: Any) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return dash()
    return f"{x:,.0f}"


def rate(x: Any) -> str:
    if x is None:
        return dash()
    return f"{x:.1f}" if x < 100 else num(x)


def ms(x: Any) -> str:
    if x is None:
        return dash()
    if x < 1:
        return f"{x:.3f}"
    if x < 10:
        return f"{x:.2f}"
    if x < 1000:
        return f"{x:.1f}"
    return f"{x:.0f}"


def pct(x: Any) -> str:
    return dash() if x is None else f"{x * 100:.0f}%"


class Table:
    def __init__(self, head: list[str]) -> None:
        self.head = head
        self.rows: list[list[str]] = []

    def row(self, cells: list[str]) -> None:
        self.rows.append(cells)

    def render(self) -> str:
        n = len(self.head)
        width = [len(h) for h in self.head]
        for r in self.rows:
            for i, c in enumerate(r[:n]):
                width[i] = max(width[i], len(c))

        def line(cells: list[str]) -> str:
            return "| " + " | ".join((cells[i] if i < len(cells) else "").ljust(width[i]) for i in range(n)) + " |"

        out = [line(self.head), "|" + "|".join("-" * (w + 2) for w in width) + "|"]
        out += [line(r) for r in self.rows]
        return "\n".join(out) + "\n"


def get(d: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(d, dict):
            return None
        d = d.get(p)
    return d


def secs(x: Any) -> str:
    return dash() if x is None else f"{x:g} s"


def language_table(doc: dict[str, Any]) -> str:
    libs = doc.get("libs", [])
    lang = LANGS.get(doc.get("lang", ""), doc.get("lang", "?"))
    out = [
        f"### {lang}: {', '.join(l['label'] for l in libs) or 'no library ran'}\n",
        f"{doc.get('runtime', '')}; Redis {doc.get('redis_version', '?')}; A and B {secs(doc.get('ab_secs'))} each, "
        f"C, C2 and D {secs(doc.get('secs'))} each.\n",
    ]
    if not libs:
        return "\n".join(out + [f"- {n}" for n in doc.get("notes", [])]) + "\n"
    t = Table(["scenario", "measure"] + [l["label"] for l in libs])

    def row(scenario: str, measure: str, f: Any) -> None:
        t.row([scenario, measure] + [f(l) for l in libs])

    b_tasks = get(libs[0], "B", "tasks") or 50
    for scen, title in (("A", "A: 1 task, own key"), ("B", f"B: {b_tasks} tasks, own keys")):
        row(title, "cycles/s", lambda l, s=scen: num(get(l, s, "rate")))
        row("", "cycle p50 / p99 ms", lambda l, s=scen: f"{ms(get(l, s, 'p50_ms'))} / {ms(get(l, s, 'p99_ms'))}")
    for scen, title in (("C", "C: 8 tasks, 1 key, hold 1 ms"), ("C2", "C2: C + 50 ms pause after release")):
        for mode in ("default", "fair"):
            if mode == "fair" and not any(get(l, scen, "fair") for l in libs):
                continue

            def cell(l: dict[str, Any], f: Any, s: str = scen, m: str = mode) -> str:
                st = get(l, s, m)
                if not st:
                    return "no fair mode" if m == "fair" else dash()
                return str(f(st))

            label = title if mode == "default" else f"{scen}, fair mode (txcoord)"
            row(label, "acquisitions/s", lambda l, cell=cell: cell(l, lambda s: rate(s["acq_per_s"])))
            row(
                "",
                "wait p50 / p99 / max ms",
                lambda l, cell=cell: cell(
                    l, lambda s: f"{ms(s['wait_p50_ms'])} / {ms(s['wait_p99_ms'])} / {'≥' if s['wait_max_cut'] else ''}{ms(s['wait_max_ms'])}"
                ),
            )
            row("", "handoff p50 / p99 ms", lambda l, cell=cell: cell(l, lambda s: f"{ms(s['handoff_p50_ms'])} / {ms(s['handoff_p99_ms'])}"))
            row("", "back to releaser", lambda l, cell=cell: cell(l, lambda s: pct(s["back_share"])))
            row(
                "",
                "per-task min/max",
                lambda l, cell=cell: cell(
                    l, lambda s: f"{s['per_task_min']}/{s['per_task_max']}" + (f" ({s['per_task_min'] / s['per_task_max']:.2f})" if s["per_task_max"] else "")
                ),
            )
    locks = get(libs[0], "D", "locks") or 200
    row(f"D: {locks} locks, ttl 1 s, held", "held at the end", lambda l: f"{get(l, 'D', 'held')}/{locks}" if get(l, "D") else dash())
    row("", "client CPU, % of one core", lambda l: dash() if get(l, "D", "cpu_pct") is None else f"{get(l, 'D', 'cpu_pct'):.2f}%")
    row(
        "",
        "Redis cmds/s sent (incl. in scripts)",
        lambda l: f"{num(get(l, 'D', 'cmds_per_s'))} ({num(get(l, 'D', 'cmds_incl_scripts_per_s'))})" if get(l, "D") else dash(),
    )
    row("peak RSS", "MiB", lambda l: dash() if not l.get("peak_rss_kib") else f"{l['peak_rss_kib'] / 1024:.1f}")
    out.append(t.render())
    notes = []
    for l in libs:
        hows = [f"A/B {get(l, 'B', 'how') or get(l, 'A', 'how') or dash()}", f"C/C2 {get(l, 'C', 'default', 'how') or dash()}", f"D renewal: {get(l, 'D', 'renewal') or dash()}"]
        notes.append(f"- {l['label']}: " + "; ".join(hows) + "".join(f"; {n}" for n in l.get("notes", []) or []))
        errs = lib_errors(l)
        if errs:
            notes.append(f"  errors ({len(errs)}): " + "; ".join(errs[:3]))
    if doc.get("rss_note"):
        notes.append(f"- peak RSS: {doc['rss_note']}")
    notes += [f"- {n}" for n in doc.get("notes", [])]
    out.append("\n".join(notes) + "\n")
    return "\n".join(out)


def lib_errors(l: dict[str, Any]) -> list[str]:
    out = []
    for scen in ("A", "B", "D"):
        out += [f"{scen}: {e}" for e in get(l, scen, "errors") or []]
    for scen in ("C", "C2"):
        for mode in ("default", "fair"):
            st = get(l, scen, mode)
            if st:
                out += [f"{scen} {mode}: {e}" for e in st.get("errors") or []]
    return out


def lib_of(doc: dict[str, Any] | None, lib_id: str) -> dict[str, Any] | None:
    if not doc:
        return None
    return next((l for l in doc.get("libs", []) if l.get("id") == lib_id), None)


def targets(docs: list[dict[str, Any]]) -> list[list[str]]:
    by_lang = {d.get("lang"): d for d in docs}
    rows: list[list[str]] = []
    for lang, scen, want, base_id in THROUGHPUT_TARGETS:
        doc = by_lang.get(lang)
        tx, base = lib_of(doc, "txcoord"), lib_of(doc, base_id)
        name = LANGS[lang]
        target = f"txcoord ≥ {want:g}× {base['label'] if base else base_id} (cycles/s)"
        a, b = get(tx, scen, "rate"), get(base, scen, "rate")
        if not a or not b:
            rows.append([name, scen, target, "not measured", dash(), "n/a"])
            continue
        q = a / b
        rows.append([name, scen, target, f"{num(a)} vs {num(b)}", f"{q:.2f}×", "met" if q >= want else f"MISSED ({q / want:.0%} of the target)"])
    for lang in ("rust", "python", "node"):
        tx = lib_of(by_lang.get(lang), "txcoord")
        for mode in ("default", "fair"):
            st = get(tx, "C2", mode)
            for measure, key, limit in (("handoff to a waiter p99", "handoff_p99_ms", C2_HANDOFF_P99_MS), ("wait p99", "wait_p99_ms", C2_WAIT_P99_MS)):
                target = f"{measure} ≤ {limit:g} ms"
                v = get(st, key)
                if v is None:
                    rows.append([LANGS[lang], f"C2 {mode}", target, "not measured", dash(), "n/a"])
                    continue
                rows.append([LANGS[lang], f"C2 {mode}", target, f"{ms(v)} ms", f"{v / limit:.2f} of the limit", "met" if v <= limit else "MISSED"])
    return rows


def bench(paths: list[str]) -> int:
    docs = []
    for p in paths:
        try:
            with open(p) as f:
                docs.append(json.load(f))
        except (OSError, ValueError) as e:
            print(f"(no figures from {p}: {e})\n")
    order = {"rust": 0, "python": 1, "node": 2}
    docs.sort(key=lambda d: order.get(d.get("lang", ""), 9))
    print("## Side by side (issue 5, item 4)\n")
    servers = sorted({d.get("server", "?") for d in docs})
    print(f"One redis-server for every language: {', '.join(servers)}; the languages ran one after another.\n")
    for d in docs:
        print(language_table(d))
    print("## Targets (benchmark, not tests)\n")
    t = Table(["language", "scenario", "target", "measured", "ratio", "result"])
    for r in targets(docs):
        t.row(r)
    print(t.render())
    print(
        "Ratios: for throughput, txcoord's cycles/s over the baseline's (the target is the "
        "minimum); for C2, the measured p99 over the limit (≤ 1.00 meets it). C2 handoff = from "
        "the start of a release to the next acquisition by a task already waiting; wait = time "
        "inside the acquire call.\n"
    )
    return 0


def soak(paths: list[str]) -> int:
    results = []
    failed = False
    for p in paths:
        try:
            with open(p) as f:
                results.append(json.load(f))
        except (OSError, ValueError) as e:
            print(f"(no soak result in {p}: {e})")
            failed = True
    t = Table(
        [
            "language",
            "cycles",
            "time s",
            "cycles/s",
            "RSS at 1/5 MiB",
            "RSS at the end MiB",
            "growth",
            "open fds",
            "scheduled renewals",
            "Redis keys left",
            "result",
        ]
    )
    for r in results:
        a, b = r.get("rss_early_kib"), r.get("rss_end_kib")
        errors = r.get("errors") or []
        if a and b:
            allowed = max(a * SOAK_SLACK_SHARE, SOAK_SLACK_KIB)
            flat = b <= a + allowed
            growth = f"{(b - a) / 1024:+.1f} MiB ({(b - a) / a:+.1%})"
        else:
            flat, growth = False, dash()
        ok = flat and not errors and r.get("cycles", 0) >= (r.get("rss_early_at", 0) * 5)
        failed |= not ok
        verdict = "flat" if ok else ("GROWING" if a and b and not flat else "FAILED")
        if errors:
            verdict += f" ({len(errors)} errors: {errors[0]})"
        t.row(
            [
                LANGS.get(r.get("lang", ""), r.get("lang", "?")) + f" ({r.get('lib', '?')})",
                num(r.get("cycles")),
                f"{r.get('seconds', 0):.0f}",
                num(r.get("cycles", 0) / r["seconds"]) if r.get("seconds") else dash(),
                dash() if not a else f"{a / 1024:.1f} (at {num(r.get('rss_early_at'))})",
                dash() if not b else f"{b / 1024:.1f}",
                growth,
                dash() if r.get("fds") is None else str(r["fds"]),
                dash() if r.get("scheduled_renewals") is None else str(r["scheduled_renewals"]),
                dash() if r.get("redis_keys_left") is None else num(r["redis_keys_left"]),
                verdict,
            ]
        )
    print("## Soak: acquire+release cycles, RSS must stay flat\n")
    print(t.render())
    for r in results:
        marks = r.get("marks") or []
        if marks:
            trail = ", ".join(f"{m[1] / 1024:.1f}" for m in marks)
            print(f"- {LANGS.get(r.get('lang', ''), '?')}: RSS MiB every {num(marks[0][0])} cycles: {trail}")
    print(
        f"\nflat = RSS at the end at most max({SOAK_SLACK_SHARE:.0%}, {SOAK_SLACK_KIB // 1024} MiB) above RSS at 1/5 of "
        "the cycles. Redis keys left: txcoord keeps a released lock's holder record (its fencing "
        "counter) for the lock's TTL plus a grace period, so they expire on their own.\n"
    )
    print("soak: " + ("FAILED" if failed else "RSS flat in every language"))
    return 1 if failed else 0


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("bench", "soak"):
        print(__doc__)
        return 2
    return bench(sys.argv[2:]) if sys.argv[1] == "bench" else soak(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
