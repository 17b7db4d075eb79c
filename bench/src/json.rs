// SPDX-License-Identifier: MIT OR Apache-2.0
//! The figures as JSON for scripts/bench.sh: the schema bench/report.py reads (its docstring).

use std::time::Duration;

use serde::Serialize;

use crate::config::{Config, B_TASKS, D_LOCKS, RSLOCK_RETRIES};
use crate::contention::{ContentionStats, Lib};
use crate::cost::Cost;
use crate::cycles::Cycles;
use crate::fmt::{num, percentile, rate};
use crate::hold::Hold;
use crate::rbench::Ceiling;
use crate::report::Report;
use crate::server::{Machine, Server};
use crate::summary::stats_of;

fn ms(d: Option<Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64() * 1000.0)
}

#[derive(Serialize)]
pub struct CyclesJson {
    rate: f64,
    cycles: u64,
    tasks: usize,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    cmds_per_cycle: Option<f64>,
    how: String,
    errors: Vec<String>,
}

fn cycles(c: &Cycles, tasks: usize, how: &str) -> CyclesJson {
    CyclesJson {
        rate: c.rate(),
        cycles: c.cycles,
        tasks,
        p50_ms: ms(percentile(&c.lat, 0.5)),
        p99_ms: ms(percentile(&c.lat, 0.99)),
        cmds_per_cycle: c.sent_per_cycle,
        how: how.into(),
        errors: c.errors.clone(),
    }
}

#[derive(Serialize)]
pub struct ContentionJson {
    acq_per_s: f64,
    acquisitions: usize,
    wait_p50_ms: Option<f64>,
    wait_p99_ms: Option<f64>,
    wait_max_ms: Option<f64>,
    wait_max_cut: bool,
    handoffs: usize,
    handoff_p50_ms: Option<f64>,
    handoff_p99_ms: Option<f64>,
    back_share: Option<f64>,
    per_task_min: usize,
    per_task_max: usize,
    hold_mean_ms: Option<f64>,
    hold_max_ms: Option<f64>,
    overlaps: usize,
    how: String,
    errors: Vec<String>,
}

fn contention(s: &ContentionStats, how: &str) -> ContentionJson {
    ContentionJson {
        acq_per_s: s.per_s,
        acquisitions: s.acquisitions,
        wait_p50_ms: ms(s.wait_p50),
        wait_p99_ms: ms(s.wait_p99),
        wait_max_ms: ms(s.wait_max),
        wait_max_cut: s.wait_max_cut,
        handoffs: s.handoffs,
        handoff_p50_ms: ms(s.handoff_p50),
        handoff_p99_ms: ms(s.handoff_p99),
        back_share: s.back_share,
        per_task_min: s.per_task_min,
        per_task_max: s.per_task_max,
        hold_mean_ms: ms(s.hold_mean),
        hold_max_ms: ms(s.hold_max),
        overlaps: s.overlaps,
        how: how.into(),
        errors: s.errors.clone(),
    }
}

#[derive(Serialize)]
pub struct Modes {
    default: Option<ContentionJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fair: Option<ContentionJson>,
}

#[derive(Serialize)]
pub struct HoldJson {
    locks: usize,
    held: usize,
    cpu_pct: Option<f64>,
    cmds_per_s: f64,
    cmds_incl_scripts_per_s: f64,
    renewal: String,
    how: String,
    errors: Vec<String>,
}

fn hold(h: &Hold) -> HoldJson {
    HoldJson {
        locks: D_LOCKS,
        held: h.held_at_end,
        cpu_pct: h.cpu_pct,
        cmds_per_s: h.top_level_per_s,
        cmds_incl_scripts_per_s: h.total_per_s,
        renewal: h.renewal.clone(),
        how: h.label.clone(),
        errors: h.errors.clone(),
    }
}

#[derive(Serialize)]
pub struct LibJson {
    id: &'static str,
    label: String,
    fair_mode: bool,
    #[serde(rename = "A")]
    a: CyclesJson,
    #[serde(rename = "B")]
    b: CyclesJson,
    #[serde(rename = "C")]
    c: Modes,
    #[serde(rename = "C2")]
    c2: Modes,
    #[serde(rename = "D")]
    d: Option<HoldJson>,
    peak_rss_kib: Option<u64>,
}

#[derive(Serialize)]
pub struct Doc<'a> {
    lang: &'static str,
    runtime: String,
    server: String,
    redis_version: String,
    machine: String,
    ab_secs: f64,
    secs: f64,
    rss_note: String,
    libs: Vec<LibJson>,
    notes: Vec<String>,
    /// What txcoord's client sends for one uncontended lock, without and with an owner id.
    captured: Vec<String>,
    cost: &'a Cost,
    ceiling: Option<&'a Ceiling>,
}

pub fn report_json(
    r: &Report,
    cfg: &Config,
    m: &Machine,
    rss: &[(&str, Result<u64, String>)],
    server: &Server,
    rss_note: String,
) -> String {
    let c_of = |v: &[(Lib, ContentionStats)], lib: Lib, how: &str| {
        stats_of(v, lib).map(|s| contention(s, how))
    };
    let rss_of = |lib: &str| match rss.iter().find(|(l, _)| *l == lib) {
        Some((_, Ok(k))) => Some(*k),
        _ => None,
    };
    let tx_wait = "LockManager::acquire_lock_with (release notification wake-up)";
    let rs_wait = format!(
        "lock() again until the deadline (set_retry({RSLOCK_RETRIES}, {} ms))",
        cfg.rslock_retry.as_millis()
    );
    let txcoord = LibJson {
        id: "txcoord",
        label: format!("txcoord {}", env!("CARGO_PKG_VERSION")),
        fair_mode: true,
        a: cycles(&r.tx_a, 1, "LockManager acquire_lock + release_lock"),
        b: cycles(
            &r.tx_b,
            B_TASKS,
            "one Client, one LockManager, acquire_lock + release_lock",
        ),
        c: Modes {
            default: c_of(&r.c, Lib::TxDefault, tx_wait),
            fair: c_of(&r.c, Lib::TxFair, tx_wait),
        },
        c2: Modes {
            default: c_of(&r.c2, Lib::TxDefault, tx_wait),
            fair: c_of(&r.c2, Lib::TxFair, tx_wait),
        },
        d: r.d.first().map(hold),
        peak_rss_kib: rss_of("txcoord"),
    };
    let rslock = LibJson {
        id: "rslock",
        label: "rslock 0.10".into(),
        fair_mode: false,
        a: cycles(&r.rs_a, 1, "lock + unlock"),
        b: cycles(&r.rs_b, B_TASKS, "one LockManager, lock + unlock"),
        c: Modes {
            default: c_of(&r.c, Lib::Rslock, &rs_wait),
            fair: None,
        },
        c2: Modes {
            default: c_of(&r.c2, Lib::Rslock, &rs_wait),
            fair: None,
        },
        d: r.d.get(1).map(hold),
        peak_rss_kib: rss_of("rslock"),
    };
    let mut notes = Vec::new();
    if let Some(h) = r.d.get(2) {
        notes.push(format!(
            "rslock D with extend() by hand every 333 ms: client CPU {}, {} Redis cmds/s sent",
            h.cpu_pct
                .map(|c| format!("{c:.2}%"))
                .unwrap_or_else(crate::fmt::dash),
            rate(h.top_level_per_s)
        ));
    }
    if let Some(raw) = &r.raw_a {
        notes.push(format!(
            "txcoord's commands sent by hand on the redis crate, one task: {} cycles/s",
            num(raw.rate())
        ));
    }
    let mut captured = Vec::new();
    for (what, c) in [("no owner id", &r.plain), ("owner id", &r.owned)] {
        match c {
            Ok(c) => captured.extend(c.describe().into_iter().map(|l| format!("{what}, {l}"))),
            Err(e) => captured.push(format!("{what}: not captured: {e}")),
        }
    }
    let doc = Doc {
        lang: "rust",
        runtime: format!(
            "tokio multi-thread runtime ({} workers), {} build",
            m.nproc,
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
        ),
        server: server.url(),
        redis_version: m.redis_version.clone(),
        machine: format!("{} × {}", m.nproc, m.cpu_model),
        ab_secs: cfg.ab_secs.as_secs_f64(),
        secs: cfg.secs.as_secs_f64(),
        rss_note,
        libs: vec![txcoord, rslock],
        notes,
        captured,
        cost: &r.cost,
        ceiling: r.ceiling.as_ref().ok(),
    };
    let mut out = serde_json::to_string(&doc).unwrap_or_else(|e| format!("{{\"error\":{e:?}}}"));
    out.push('\n');
    out
}
