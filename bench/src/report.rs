// SPDX-License-Identifier: MIT OR Apache-2.0
//! Everything one run measured, its targets (printed as met or missed, never asserted) and the
//! problems of txcoord itself it saw (those fail the run).

use std::time::Duration;

use crate::capture::Captured;
use crate::contention::{ContentionStats, Lib};
use crate::cost::Cost;
use crate::cycles::Cycles;
use crate::fmt::{ms_opt, verdict, Table};
use crate::hold::Hold;
use crate::rbench::Ceiling;

/// One target, measured.
pub struct Check {
    pub scenario: String,
    pub target: String,
    pub value: String,
    pub met: Option<bool>,
}

/// Problems of txcoord itself found during the run (they make the exit status non-zero).
#[derive(Default)]
pub struct Failures(pub Vec<String>);

impl Failures {
    pub fn add(&mut self, what: impl Into<String>) {
        let what = what.into();
        println!("  !! txcoord problem: {what}");
        self.0.push(what);
    }
}

pub struct Report {
    pub plain: Result<Captured, String>,
    pub owned: Result<Captured, String>,
    pub cost: Cost,
    pub ceiling: Result<Ceiling, String>,
    /// The captured commands sent by hand on the redis crate (A only).
    pub raw_a: Option<Cycles>,
    pub tx_a: Cycles,
    pub rs_a: Cycles,
    pub tx_b: Cycles,
    pub rs_b: Cycles,
    pub c: Vec<(Lib, ContentionStats)>,
    pub c2: Vec<(Lib, ContentionStats)>,
    pub d: Vec<Hold>,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn check(&self, scenario: &str, target_prefix: &str) -> Option<&Check> {
        self.checks
            .iter()
            .find(|c| c.scenario == scenario && c.target.starts_with(target_prefix))
    }

    pub fn verdict_of(&self, scenario: &str, target_prefix: &str) -> &'static str {
        verdict(self.check(scenario, target_prefix).and_then(|c| c.met))
    }

    /// The median cycles/s of a side of the ceiling.
    pub fn ceiling_of(&self, id: &str) -> Option<f64> {
        self.ceiling
            .as_ref()
            .ok()?
            .sides
            .iter()
            .find(|s| s.id == id)?
            .median_cycles()
    }
}

pub fn print_checks(checks: &[Check]) {
    for c in checks {
        println!(
            "target ({}) {}: {} → {}",
            c.scenario,
            c.target,
            c.value,
            verdict(c.met)
        );
    }
    println!();
}

pub fn print_targets(r: &Report) {
    println!("## Targets\n");
    let mut t = Table::new(&["scenario", "target", "measured", "result"]);
    for c in &r.checks {
        t.row(vec![
            c.scenario.clone(),
            c.target.clone(),
            c.value.clone(),
            verdict(c.met).into(),
        ]);
    }
    println!("{}", t.render());
}

/// The server-cost targets: txcoord's median beside the seed's.
pub fn cost_checks(cost: &Cost) -> Vec<Check> {
    let (tx, seed) = (cost.side("txcoord"), cost.side("seed"));
    let value = match (tx.and_then(|s| s.median_us), seed.and_then(|s| s.median_us)) {
        (Some(a), Some(b)) => format!("{:.2}× ({a:.2} vs {b:.2} µs per cycle)", a / b),
        _ => "not measured".into(),
    };
    let ratio = tx.and_then(|s| s.ratio);
    [cost.target_ratio, cost.stretch_ratio]
        .into_iter()
        .enumerate()
        .map(|(i, limit)| Check {
            scenario: "server cost".into(),
            target: format!(
                "{}txcoord ≤ {limit}× the seed's server CPU per uncontended cycle",
                if i == 1 { "stretch: " } else { "" }
            ),
            value: value.clone(),
            met: ratio.map(|q| q <= limit),
        })
        .collect()
}

pub fn c_checks(s: &ContentionStats) -> Vec<Check> {
    vec![
        Check {
            scenario: "C fair".into(),
            target: "longest wait ≤ 100 ms".into(),
            value: format!(
                "{}{} ms",
                if s.wait_max_cut { "≥" } else { "" },
                ms_opt(s.wait_max)
            ),
            met: s.wait_max.map(|d| d <= Duration::from_millis(100)),
        },
        Check {
            scenario: "C fair".into(),
            target: "per-task min/max ≥ 0.8".into(),
            value: format!(
                "{:.2} ({}/{})",
                s.min_max_ratio(),
                s.per_task_min,
                s.per_task_max
            ),
            met: Some(s.min_max_ratio() >= 0.8),
        },
    ]
}

pub fn c2_checks(lib: Lib, s: &ContentionStats) -> Vec<Check> {
    let scenario = format!("C2 {}", lib.mode());
    [
        ("handoff p50 ≤ 1 ms", s.handoff_p50, 1u64),
        ("handoff p99 ≤ 5 ms", s.handoff_p99, 5),
        ("wait p99 ≤ 10 ms", s.wait_p99, 10),
    ]
    .into_iter()
    .map(|(target, value, limit)| Check {
        scenario: scenario.clone(),
        target: target.into(),
        value: format!("{} ms", ms_opt(value)),
        met: value.map(|d| d <= Duration::from_millis(limit)),
    })
    .collect()
}
