// SPDX-License-Identifier: MIT OR Apache-2.0
//! The summary table at the end of a run: every scenario, txcoord beside rslock, with the
//! targets.

use crate::config::{Config, B_TASKS, D_LOCKS};
use crate::contention::{ContentionStats, Lib};
use crate::cycles::Cycles;
use crate::fmt::{dash, ms_opt, num, num_opt, percent, percentile, rate, secs, verdict, Table};
use crate::hold::Hold;
use crate::report::Report;
use crate::server::Machine;

/// A summary row of C/C2: its name and how to render it from the stats.
type Measure<'a> = (&'a str, &'a dyn Fn(&ContentionStats) -> String);

pub fn stats_of(v: &[(Lib, ContentionStats)], lib: Lib) -> Option<&ContentionStats> {
    v.iter().find(|(l, _)| *l == lib).map(|(_, s)| s)
}

pub fn print_summary(r: &Report, cfg: &Config, m: &Machine) {
    println!("## Summary\n");
    println!(
        "`cargo bench -p txcoord-bench --bench scenarios` ({}): {} × {}, Redis {}, client, server \
         and redis-benchmark on the same machine; A, B {} each; C, C2, D {} each.\n",
        if cfg.quick {
            "BENCH_QUICK=1 smoke run"
        } else {
            "full run"
        },
        m.nproc,
        m.cpu_model,
        m.redis_version,
        secs(cfg.ab_secs),
        secs(cfg.secs)
    );
    let mut t = Table::new(&[
        "scenario",
        "measure",
        "txcoord",
        "rslock",
        "the seed's commands",
        "target",
    ]);
    let result = |scenario: &str, prefix: &str| {
        r.check(scenario, prefix)
            .map(|c| format!("{}: {} {}", c.target, c.value, verdict(c.met)))
            .unwrap_or_else(dash)
    };
    let cost = |id: &str| {
        r.cost
            .side(id)
            .and_then(|s| s.median_us)
            .map(|x| format!("{x:.2}"))
            .unwrap_or_else(dash)
    };
    t.row(vec![
        "server cost, uncontended".into(),
        "server CPU µs per cycle".into(),
        format!(
            "{} ({} with an owner id)",
            cost("txcoord"),
            cost("txcoord-owner")
        ),
        dash(),
        cost("seed"),
        format!(
            "≤ {}×: {}; stretch ≤ {}×: {}",
            r.cost.target_ratio,
            r.verdict_of("server cost", "txcoord"),
            r.cost.stretch_ratio,
            r.verdict_of("server cost", "stretch")
        ),
    ]);
    t.row(vec![
        "pipelined ceiling".into(),
        "cycles/s (redis-benchmark)".into(),
        format!(
            "{} ({} with an owner id)",
            num_opt(r.ceiling_of("txcoord")),
            num_opt(r.ceiling_of("txcoord-owner"))
        ),
        dash(),
        num_opt(r.ceiling_of("seed")),
        dash(),
    ]);
    let lat = |c: &Cycles| {
        format!(
            "{} / {}",
            ms_opt(percentile(&c.lat, 0.5)),
            ms_opt(percentile(&c.lat, 0.99))
        )
    };
    t.row(vec![
        "A: 1 task".into(),
        "cycles/s".into(),
        num(r.tx_a.rate()),
        num(r.rs_a.rate()),
        dash(),
        dash(),
    ]);
    t.row(vec![
        String::new(),
        "cycle p50 / p99 ms".into(),
        lat(&r.tx_a),
        lat(&r.rs_a),
        dash(),
        dash(),
    ]);
    t.row(vec![
        format!("B: {B_TASKS} tasks, own keys"),
        "cycles/s".into(),
        num(r.tx_b.rate()),
        num(r.rs_b.rate()),
        dash(),
        dash(),
    ]);
    let waits = |s: &ContentionStats| {
        format!(
            "{} / {} / {}{}",
            ms_opt(s.wait_p50),
            ms_opt(s.wait_p99),
            if s.wait_max_cut { "≥" } else { "" },
            ms_opt(s.wait_max)
        )
    };
    let spread = |s: &ContentionStats| {
        format!(
            "{}/{} ({:.2})",
            s.per_task_min,
            s.per_task_max,
            s.min_max_ratio()
        )
    };
    let back = |s: &ContentionStats| s.back_share.map(percent).unwrap_or_else(dash);
    let handoff =
        |s: &ContentionStats| format!("{} / {}", ms_opt(s.handoff_p50), ms_opt(s.handoff_p99));
    let c_rows: [Measure<'_>; 5] = [
        ("acquisitions/s", &|s: &ContentionStats| rate(s.per_s)),
        ("wait p50 / p99 / max ms", &waits),
        ("handoff p50 / p99 ms", &handoff),
        ("back to releaser", &back),
        ("per-task min/max", &spread),
    ];
    for (scen, v, pause) in [("C", &r.c, false), ("C2", &r.c2, true)] {
        let label = if pause {
            "C2: C + 50 ms pause after release"
        } else {
            "C: 8 tasks, 1 key, hold 1 ms"
        };
        for (lib, mode) in [(Lib::TxDefault, "default"), (Lib::TxFair, "fair")] {
            let Some(s) = stats_of(v, lib) else { continue };
            for (i, (measure, f)) in c_rows.iter().enumerate() {
                let target = match (scen, mode, *measure) {
                    ("C", "fair", "wait p50 / p99 / max ms") => result("C fair", "longest wait"),
                    ("C", "fair", "per-task min/max") => result("C fair", "per-task"),
                    ("C2", m, "handoff p50 / p99 ms") => format!(
                        "p50 ≤ 1 ms {}, p99 ≤ 5 ms {}",
                        r.verdict_of(&format!("C2 {m}"), "handoff p50"),
                        r.verdict_of(&format!("C2 {m}"), "handoff p99")
                    ),
                    ("C2", m, "wait p50 / p99 / max ms") => format!(
                        "p99 ≤ 10 ms {}",
                        r.verdict_of(&format!("C2 {m}"), "wait p99")
                    ),
                    _ => dash(),
                };
                let rslock = match (lib, stats_of(v, Lib::Rslock)) {
                    (Lib::TxDefault, Some(s)) => f(s),
                    (Lib::TxFair, _) => "no fair mode".into(),
                    _ => dash(),
                };
                t.row(vec![
                    if i == 0 {
                        format!("{label}, {mode} mode")
                    } else {
                        String::new()
                    },
                    measure.to_string(),
                    f(s),
                    rslock,
                    dash(),
                    target,
                ]);
            }
        }
    }
    let d_cpu = |h: Option<&Hold>| {
        h.and_then(|h| h.cpu_pct)
            .map(|c| format!("{c:.2}%"))
            .unwrap_or_else(dash)
    };
    let d_cmds = |h: Option<&Hold>| {
        h.map(|h| format!("{} ({})", rate(h.top_level_per_s), rate(h.total_per_s)))
            .unwrap_or_else(dash)
    };
    t.row(vec![
        format!("D: {D_LOCKS} locks, ttl 1 s, renewed"),
        "client CPU, % of one core".into(),
        d_cpu(r.d.first()),
        format!(
            "{} (using(), every ≈490 ms); {} (extend() every 333 ms)",
            d_cpu(r.d.get(1)),
            d_cpu(r.d.get(2))
        ),
        dash(),
        result("D", "txcoord client CPU"),
    ]);
    t.row(vec![
        String::new(),
        "Redis cmds/s sent (incl. in scripts)".into(),
        d_cmds(r.d.first()),
        format!("{}; {}", d_cmds(r.d.get(1)), d_cmds(r.d.get(2))),
        dash(),
        dash(),
    ]);
    println!("{}", t.render());
    println!(
        "cycle = acquire + release; server cost = the redis-server's CPU per cycle; wait = time\n\
         inside the acquire call; handoff = from the start of a release to the next acquisition by\n\
         another task that was already waiting; back to releaser = share of acquisitions by the\n\
         task that had just released; per-task = fewest/most acquisitions of one task (ratio).\n\
         rslock waits by retrying lock().\n"
    );
}
