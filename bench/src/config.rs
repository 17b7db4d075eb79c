// SPDX-License-Identifier: MIT OR Apache-2.0
//! The program's settings, from the environment (see the crate documentation).

use std::time::Duration;

/// TTL and timeout of the uncontended cycles (the seed's defaults).
pub const AB_TTL: Duration = Duration::from_millis(30_000);
pub const AB_TIMEOUT: Duration = Duration::from_millis(10_000);
/// Tasks of scenario B.
pub const B_TASKS: usize = 50;
/// C and C2: tasks on one key, hold time, TTL, pause after each release in C2.
pub const C_TASKS: usize = 8;
pub const C_HOLD: Duration = Duration::from_millis(1);
pub const C_TTL: Duration = Duration::from_millis(30_000);
pub const C2_PAUSE: Duration = Duration::from_millis(50);
/// D: locks held, their TTL.
pub const D_LOCKS: usize = 200;
pub const D_TTL: Duration = Duration::from_millis(1_000);
/// rslock: attempts per `lock()` call while waiting (its own retry loop, random 0..delay sleeps).
pub const RSLOCK_RETRIES: u32 = 5;
/// Bounds on every loop and every sample buffer.
pub const MAX_ITERATIONS: u64 = 50_000_000;
pub const MAX_SAMPLES: usize = 2_000_000;
/// Extra time a scenario may take beyond its length before it is declared hung.
pub const HANG_GRACE: Duration = Duration::from_secs(30);
/// Uncounted acquire+release cycles before A and B (connect, load scripts).
pub const WARM_CYCLES: u64 = 20;

pub struct Config {
    pub quick: bool,
    pub mode_reason: &'static str,
    /// Length of C, C2 and D.
    pub secs: Duration,
    /// Length of A and B.
    pub ab_secs: Duration,
    /// Target length of one redis-benchmark run (its requests are sized from the previous
    /// run's rate).
    pub rb_secs: f64,
    /// Requests of a first redis-benchmark run of a command, and the most of any run.
    pub rb_first_requests: u64,
    pub rb_max_requests: u64,
    pub rslock_retry: Duration,
    /// The server-cost scenario: measured cycles per run, runs per side, concurrent tasks.
    pub cost_cycles: u64,
    pub cost_reps: usize,
    pub cost_tasks: usize,
}

pub fn env_flag(name: &str) -> Option<bool> {
    let v = std::env::var(name).ok()?;
    let v = v.trim().to_ascii_lowercase();
    if v.is_empty() {
        return None;
    }
    Some(matches!(v.as_str(), "1" | "true" | "yes" | "on"))
}

pub fn env_number(name: &str) -> Option<f64> {
    let v = std::env::var(name).ok()?;
    if v.trim().is_empty() {
        return None;
    }
    match v.trim().parse::<f64>() {
        Ok(x) if x.is_finite() => Some(x),
        _ => {
            eprintln!("ignoring {name}={v:?}: not a number");
            None
        }
    }
}

fn seconds(x: f64) -> Duration {
    Duration::from_millis((x.clamp(0.2, 3600.0) * 1000.0).round() as u64)
}

impl Config {
    pub fn from_env() -> Config {
        let as_bench = std::env::args().any(|a| a == "--bench");
        let (quick, mode_reason) = match env_flag("BENCH_QUICK") {
            Some(true) => (true, "BENCH_QUICK=1"),
            Some(false) => (false, "BENCH_QUICK=0"),
            None if as_bench => (false, "default"),
            None => (true, "run without --bench (as a test)"),
        };
        let secs = seconds(env_number("BENCH_SECONDS").unwrap_or(if quick { 1.0 } else { 10.0 }));
        let ab_secs = match env_number("BENCH_AB_SECONDS") {
            Some(s) => seconds(s),
            None if quick => Duration::from_secs(1).min(secs),
            None => Duration::from_secs(5).min(secs),
        };
        let retry = env_number("BENCH_RSLOCK_RETRY_MS")
            .map(|ms| ms.clamp(1.0, 10_000.0))
            .unwrap_or(10.0);
        let cost_cycles = env_number("BENCH_COST_CYCLES")
            .map(|n| n.clamp(100.0, 10_000_000.0) as u64)
            .unwrap_or(if quick { 3_000 } else { 200_000 });
        let cost_reps = env_number("BENCH_COST_REPS")
            .map(|n| n.clamp(1.0, 15.0) as usize)
            .unwrap_or(3);
        let cost_tasks = env_number("BENCH_COST_TASKS")
            .map(|n| n.clamp(1.0, 10_000.0) as usize)
            .unwrap_or(200);
        Config {
            quick,
            mode_reason,
            secs,
            ab_secs,
            rb_secs: if quick { 0.25 } else { 1.5 },
            rb_first_requests: if quick { 5_000 } else { 100_000 },
            rb_max_requests: if quick { 10_000 } else { 2_000_000 },
            rslock_retry: Duration::from_millis(retry as u64),
            cost_cycles,
            cost_reps,
            cost_tasks,
        }
    }
}
