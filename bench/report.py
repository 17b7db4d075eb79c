# SPDX-License-Identifier: MIT OR Apache-2.0
"""The combined tables of `make bench` and `make soak`, from the JSON the three benchmark
programs write. Standard library only.

    python3 bench/report.py bench rust.json python.json node.json
    python3 bench/report.py soak rust.json python.json node.json

bench: the server's CPU per uncontended lock cycle beside the seed's commands (with the target:
txcoord at most 2× the seed, stretch 1.5×) and the pipelined ceiling (both from the Rust
program), then one markdown table per language (scenarios A, B, C, C2, D and peak RSS, one column
per library). Exit status 0.

soak: one table (RSS at 1/5 of the cycles and at the end, open fds, scheduled renewals, Redis keys
left); exit status 1 when a soak failed or its RSS was not flat: the end more than max(5 %, 10 MiB)
above the figure at 1/5 of the cycles.

The JSON of one language (the Rust program with BENCH_JSON, bench/python/scenarios.py --json,
bench/node/scenarios.js --json):

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

and in the Rust program's only:

     "machine": str, "captured": [str],
     "cost": {"cycles", "reps", "tasks", "batch", "target_ratio", "stretch_ratio",
              "sides": [{"id", "label", "how", "baseline", "runs_us": [µs per cycle],
                         "median_us", "min_us", "max_us", "ratio", "cycles_per_s",
                         "sent_per_cycle", "sent_measured_per_cycle", "run_per_cycle",
                         "in_command_us", "per_command": [{"name", "calls_per_cycle",
                         "usec_per_call", "sent"}], "errors"}]},
     "ceiling": {"clients", "pipeline", "reps",
                 "sides": [{"id", "label", "cycles_per_s": [per repetition],
                            "server_us_per_cycle": [per repetition],
                            "commands": [{"step", "name", "command", "rps": [...],
                                          "server_us": [...], "hit": [...], "errors"}]}]}

The saga program's JSON (cargo bench --bench sagas with BENCH_JSON), told apart by its "kind":

    {"kind": "sagas", "mode": "quick"|"full", "machine": str, "sizes": str,
     "targets": [{"figure", "target", "value", "met": true|false|null}], "failures": [str]}

rendered after the languages as one table (figure, target, measured, met / MISSED / n/a).

A soak result (one JSON object, printed by each soak program after `SOAK_RESULT `):

    {"lang", "lib", "cycles", "seconds", "tasks", "rss_early_at", "rss_early_kib",
     "rss_end_kib", "marks": [[cycles, rss_kib], ...], "fds", "scheduled_renewals" (Rust),
     "redis_keys_left" (Rust), "errors": [str]}
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

LANGS = {"rust": "Rust", "python": "Python", "node": "Node"}
SOAK_SLACK_SHARE = 0.05
SOAK_SLACK_KIB = 10 * 1024


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


def median(values: list[float]) -> float | None:
    v = sorted(x for x in values if x is not None and math.isfinite(x))
    if not v:
        return None
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def cost_section(doc: dict[str, Any]) -> str:
    cost = doc.get("cost")
    if not cost or not cost.get("sides"):
        return ""
    sides = cost["sides"]
    out = [
        "## Server cost per uncontended lock cycle\n",
        f"The redis-server's CPU time (Δ used_cpu_user + used_cpu_sys of INFO cpu) per acquire+release cycle, over "
        f"{num(cost['cycles'])} cycles on distinct resources per run, {cost['reps']} runs per side run alternately "
        f"(median, and every run); {doc.get('machine', '?')}, Redis {doc.get('redis_version', '?')}.\n",
    ]
    t = Table(["side", "server CPU µs/cycle (median)", "runs", "ratio", "cmds sent / run per cycle", "in-command µs/cycle"])
    for s in sides:
        ratio = s.get("ratio")
        base = "the seed" if s["baseline"] == "seed" else "the seed, pipelined"
        t.row(
            [
                s["label"],
                dash() if s.get("median_us") is None else f"{s['median_us']:.2f}",
                " / ".join(f"{x:.2f}" for x in s.get("runs_us") or []) or dash(),
                dash() if ratio is None else ("1.00× (baseline)" if s["id"] == s["baseline"] else f"{ratio:.2f}× {base}"),
                dash() if not s.get("sent_per_cycle") else f"{s['sent_per_cycle']:.0f} / {s['run_per_cycle']:.2f}" if s.get("run_per_cycle") else f"{s['sent_per_cycle']:.0f}",
                dash() if s.get("in_command_us") is None else f"{s['in_command_us']:.2f}",
            ]
        )
    out.append(t.render())
    tx = next((s for s in sides if s["id"] == "txcoord"), None)
    if tx and tx.get("ratio") is not None:
        q = tx["ratio"]
        lo, hi = tx.get("min_us"), tx.get("max_us")
        seed = next((s for s in sides if s["id"] == "seed"), {})
        verdict = lambda limit: "met" if q <= limit else f"MISSED by {q / limit - 1:.0%}"  # noqa: E731
        out.append(
            f"Target: txcoord ≤ {cost['target_ratio']:g}× the seed's server CPU per cycle — {q:.2f}× "
            f"({tx['median_us']:.2f} vs {seed.get('median_us', float('nan')):.2f} µs; txcoord's runs {lo:.2f}–{hi:.2f}, "
            f"the seed's {seed.get('min_us', float('nan')):.2f}–{seed.get('max_us', float('nan')):.2f}): {verdict(cost['target_ratio'])}; "
            f"stretch ≤ {cost['stretch_ratio']:g}×: {verdict(cost['stretch_ratio'])}.\n"
        )
    lines = []
    for s in sides:
        lines.append(f"- {s['label']}: {s['how']}")
        cmds = ", ".join(
            f"{c['name']}{'' if c['sent'] else ' (in a script)'} {c['calls_per_cycle']:.2f}× {c['usec_per_call']:.2f} µs"
            for c in s.get("per_command") or []
        )
        if cmds:
            lines.append(f"  - INFO commandstats per cycle: {cmds}")
        for e in (s.get("errors") or [])[:3]:
            lines.append(f"  - error: {e}")
    out.append("\n".join(lines) + "\n")
    out.append(
        f"The client sides run {cost['tasks']} concurrent tasks on one connection (the seed's commands on a redis::aio::"
        f"ConnectionManager, txcoord through its LockManager); the pipelined sides write {cost['batch']} acquires, then "
        "their releases. cmds sent = what the client writes per cycle; run = every command INFO commandstats counted, "
        "with those the scripts ran; in-command µs = commandstats' own timing of the commands sent; the rest of the CPU "
        "is reading, parsing, replying and the event loop. commandstats per cycle: calls × in-command µs per call (an "
        "EVALSHA's time includes its script's commands).\n"
    )
    captured = doc.get("captured") or []
    if captured:
        out.append("What txcoord's client sends for one uncontended lock (captured with MONITOR):\n")
        out.append("\n".join(f"- `{c}`" for c in captured) + "\n")
    return "\n".join(out)


def ceiling_section(doc: dict[str, Any]) -> str:
    c = doc.get("ceiling")
    if not c or not c.get("sides"):
        return ""
    seed = next((median(s["cycles_per_s"]) for s in c["sides"] if s["id"] == "seed"), None)
    out = [
        f"## Pipelined ceiling: redis-benchmark -c {c['clients']} -P {c['pipeline']}, each side's real commands\n",
    ]
    t = Table(["side", "commands (req/s, median)", "cycles/s (median)", "runs", "vs the seed", "server µs/cycle"])
    for s in c["sides"]:
        cyc = median(s["cycles_per_s"])
        cmds = "; ".join(
            f"{r['name']} {num(median(r['rps']))}" + (f" ({pct(median(r['hit']))} hit)" if r.get("hit") else "")
            for r in s["commands"]
        )
        t.row(
            [
                s["label"],
                cmds,
                num(cyc),
                " / ".join(num(x) for x in s["cycles_per_s"]) or dash(),
                dash() if not cyc or not seed else f"{cyc / seed:.2f}×",
                dash() if median(s["server_us_per_cycle"]) is None else f"{median(s['server_us_per_cycle']):.2f}",
            ]
        )
    out.append(t.render())
    out.append(
        "One redis-benchmark run per command (txcoord's acquire is two commands, SET NX PX and TIME, so two runs); "
        "cycles/s = 1/Σ(1/req/s) per repetition, median of "
        f"{c['reps']} repetitions run alternately. Acquires run on fresh random keys; releases on a keyspace pre-filled "
        "with held locks of the value they send ('hit' = the share that found one). redis-benchmark shares the cores "
        "with the server; server µs = Δ CPU / requests, summed over a side's commands.\n"
    )
    return "\n".join(out)


def bench(paths: list[str]) -> int:
    docs = []
    for p in paths:
        try:
            with open(p) as f:
                docs.append(json.load(f))
        except (OSError, ValueError) as e:
            print(f"(no figures from {p}: {e})\n")
    sagas = [d for d in docs if d.get("kind") == "sagas"]
    docs = [d for d in docs if d.get("kind") != "sagas"]
    order = {"rust": 0, "python": 1, "node": 2}
    docs.sort(key=lambda d: order.get(d.get("lang", ""), 9))
    rust = next((d for d in docs if d.get("lang") == "rust"), None)
    if rust:
        for section in (cost_section(rust), ceiling_section(rust)):
            if section:
                print(section)
    if docs:
        print("## Side by side\n")
        servers = sorted({d.get("server", "?") for d in docs})
        print(f"One redis-server for every language: {', '.join(servers)}; the languages ran one after another.\n")
        for d in docs:
            print(language_table(d))
    for d in sagas:
        print(sagas_section(d))
    return 0


def sagas_section(doc: dict[str, Any]) -> str:
    out = [
        "## Deadlock detector, saga monitor, saga repository (Rust)\n",
        f"{doc.get('mode', '?')} run on {doc.get('machine', '?')}: {doc.get('sizes', '?')}.\n",
    ]
    t = Table(["figure", "target", "measured", "result"])
    for x in doc.get("targets", []):
        met = x.get("met")
        t.row([str(x.get("figure", "?")), str(x.get("target", "")), str(x.get("value", "")),
               "n/a" if met is None else ("met" if met else "MISSED")])
    out.append(t.render())
    for f in doc.get("failures", []):
        out.append(f"- txcoord problem: {f}")
    return "\n".join(out)


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
        "the cycles. Redis keys left: keys the soak's cycles left in Redis (a released lock leaves none).\n"
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
