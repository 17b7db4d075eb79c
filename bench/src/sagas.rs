// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `sagas` bench target: the deadlock detector, the saga monitor and the saga repository
//! at scale, each figure beside its target, on a throwaway redis-server of its own.
//!
//! ```text
//! cargo bench -p txcoord-bench --bench sagas                  # full run, about 1–2 minutes
//! BENCH_QUICK=1 cargo bench -p txcoord-bench --bench sagas    # smoke run, under 40 s
//! BENCH_ONLY=graph,monitor cargo bench -p txcoord-bench --bench sagas
//! ```
//!
//! Figures, in the order they run (`BENCH_ONLY` names a subset):
//! - `graph` ([`crate::wait_graph`]): `WaitForGraph::cycles()` on an in-memory wait-for graph
//!   of 1,000,000 edges (disjoint rings of 2–20 sagas among acyclic chains); target ≤ 1 s.
//! - `registry` ([`crate::registry_graph`]): 100,000 waiting sagas on 10,000 locks written
//!   straight into the lock registry (PROTOCOL.md §7), then the detector's whole-graph read and
//!   cycle search (`SagaDeadlockDetector::detect_deadlock`); target ≤ 1 s.
//! - `deadlock` ([`crate::deadlock_latency`]): two sagas deadlock through `LockManager` at the
//!   default deadlock timeout (1000 ms); time from the second wait starting to the victim's
//!   `DeadlockVictim` error, 10 times (3 in quick mode); target ≤ 1.5 s.
//! - `monitor` ([`crate::monitor_tick`]): one `SagaMonitor::tick` over 100,000 active sagas of
//!   which 1,000 are stuck (10,000 / 100 in quick mode), in a child process that does nothing
//!   else, with its peak RSS; targets ≤ 1 s and ≤ 100 MiB.
//! - `save` ([`crate::saga_save`]): `RedisSagaRepository::save_if` (expected version and
//!   term) beside a plain `HSET` of the same fields, 50 in flight each; the ratio.
//!
//! With `BENCH_JSON=path` the targets table is also written as JSON for `scripts/bench.sh`:
//! `{"kind": "sagas", "mode", "machine", "sizes", "targets": [{"figure", "target", "value",
//! "met": true|false|null}], "failures": [str]}` (`bench/report.py` renders it).
//!
//! Knobs: `BENCH_QUICK=1` (also the default when run without `--bench`, as `cargo test`
//! does), `BENCH_ONLY`, `BENCH_GRAPH_EDGES`, `BENCH_REGISTRY_SAGAS` (locks: a tenth),
//! `BENCH_DEADLOCK_REPS`, `BENCH_MONITOR_SAGAS` (stuck: a hundredth), `BENCH_SAVE_SECONDS`.
//! The redis-server is started here (`$TXCOORD_REDIS_SERVER`, default `redis-server`), unless
//! `BENCH_REDIS_URL` names a throwaway one and `BENCH_REDIS_FLUSH=1` vouches for it: every
//! figure starts on a flushed server.
//!
//! Targets are printed as met or MISSED, never asserted. The exit status is 1 when txcoord
//! gave a wrong result (a cycle not found or one too many, a wrong node, edge or saga count, a
//! deadlock not broken or broken twice, a conditional save refused or counted wrong), 2 when
//! the benchmark could not run; 0 otherwise.

use std::time::{Duration, Instant};

use crate::config::{env_flag, env_number};
use crate::fmt::{verdict, Table};
use crate::report::Failures;
use crate::server::{machine, Server};

/// The settings of one run.
#[derive(Debug, Clone)]
pub struct SagaConfig {
    pub quick: bool,
    pub mode_reason: &'static str,
    pub only: Option<Vec<String>>,
    /// Edges of the in-memory graph.
    pub graph_edges: usize,
    /// Runs of the in-memory search (the median is the figure).
    pub graph_reps: usize,
    /// Waiting sagas and locks written into the registry.
    pub registry_sagas: usize,
    pub registry_locks: usize,
    pub registry_reps: usize,
    /// Deadlocks formed and broken.
    pub deadlock_reps: usize,
    /// Active and stuck sagas of the monitor's tick.
    pub monitor_sagas: usize,
    pub monitor_stuck: usize,
    /// Length of each side's run of saves, runs per side, saves in flight.
    pub save_secs: Duration,
    pub save_reps: usize,
    pub save_in_flight: usize,
}

pub const FIGURES: [&str; 5] = ["graph", "registry", "deadlock", "monitor", "save"];

impl SagaConfig {
    pub fn from_env() -> SagaConfig {
        let as_bench = std::env::args().any(|a| a == "--bench");
        let (quick, mode_reason) = match env_flag("BENCH_QUICK") {
            Some(true) => (true, "BENCH_QUICK=1"),
            Some(false) => (false, "BENCH_QUICK=0"),
            None if as_bench => (false, "default"),
            None => (true, "run without --bench (as a test)"),
        };
        // An unoptimised build (cargo test) runs the same program on a tenth of the data.
        let scale = if cfg!(debug_assertions) { 10 } else { 1 };
        let count = |name: &str, default: usize, lo: f64, hi: f64| {
            env_number(name)
                .map(|n| n.clamp(lo, hi) as usize)
                .unwrap_or(default)
        };
        let registry_sagas = count("BENCH_REGISTRY_SAGAS", 100_000 / scale, 10.0, 2e6);
        let monitor_sagas = count(
            "BENCH_MONITOR_SAGAS",
            if quick { 10_000 } else { 100_000 } / scale,
            100.0,
            2e6,
        );
        let only = std::env::var("BENCH_ONLY")
            .ok()
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                s.split(',')
                    .map(|f| f.trim().to_ascii_lowercase())
                    .filter(|f| !f.is_empty())
                    .collect()
            });
        SagaConfig {
            quick,
            mode_reason,
            only,
            graph_edges: count("BENCH_GRAPH_EDGES", 1_000_000 / scale, 100.0, 2e7),
            graph_reps: if quick { 1 } else { 3 },
            registry_sagas,
            registry_locks: (registry_sagas / 10).max(1),
            registry_reps: if quick { 1 } else { 3 },
            deadlock_reps: count(
                "BENCH_DEADLOCK_REPS",
                if quick { 3 } else { 10 },
                1.0,
                200.0,
            ),
            monitor_sagas,
            monitor_stuck: (monitor_sagas / 100).max(1),
            save_secs: Duration::from_millis(
                (env_number("BENCH_SAVE_SECONDS")
                    .unwrap_or(if quick { 0.5 } else { 3.0 })
                    .clamp(0.1, 600.0)
                    * 1000.0) as u64,
            ),
            save_reps: if quick { 1 } else { 3 },
            save_in_flight: 50,
        }
    }

    pub fn wants(&self, figure: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|f| f == figure))
    }
}

/// One target, measured: what the summary table lists.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Target {
    pub figure: String,
    pub target: String,
    pub value: String,
    /// `None`: nothing measured (the figure failed), or no target.
    pub met: Option<bool>,
}

impl Target {
    pub fn new(figure: &str, target: &str, value: String, met: Option<bool>) -> Target {
        Target {
            figure: figure.into(),
            target: target.into(),
            value,
            met,
        }
    }
}

/// A count as the targets table names sizes: 1000000 → "1M", 100000 → "100k".
pub fn short(n: usize) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        crate::fmt::num(n as f64)
    }
}

/// Seconds as the tables show them: ms below 10 s.
pub fn dur(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 10.0 {
        format!("{:.0} ms", s * 1000.0)
    } else {
        format!("{s:.1} s")
    }
}

/// Everything the figures share: the server, an admin connection, the runtime, the failures.
pub struct Bench {
    pub cfg: SagaConfig,
    pub server: Server,
    pub admin: redis::Connection,
    pub rt: tokio::runtime::Runtime,
    pub failures: Failures,
    pub targets: Vec<Target>,
}

impl Bench {
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// A flushed server for the next figure.
    pub fn flush(&mut self) {
        self.server.flushall(&mut self.admin);
    }

    /// The Redis time, in ms.
    pub fn redis_now_ms(&mut self) -> Result<u64, String> {
        let (secs, micros): (u64, u64) = redis::cmd("TIME")
            .query(&mut self.admin)
            .map_err(|e| format!("TIME: {e}"))?;
        Ok(secs * 1000 + micros / 1000)
    }

    pub fn fail(&mut self, what: impl Into<String>) {
        self.failures.add(what);
    }
}

/// Runs `pipe` on `admin` in pieces of at most `batch` commands; counts the commands sent.
pub struct Batcher<'a> {
    con: &'a mut redis::Connection,
    pipe: redis::Pipeline,
    queued: usize,
    batch: usize,
    pub sent: usize,
}

impl<'a> Batcher<'a> {
    pub fn new(con: &'a mut redis::Connection, batch: usize) -> Batcher<'a> {
        Batcher {
            con,
            pipe: redis::pipe(),
            queued: 0,
            batch,
            sent: 0,
        }
    }

    pub fn add(&mut self, cmd: redis::Cmd) -> Result<(), String> {
        self.pipe.add_command(cmd).ignore();
        self.queued += 1;
        if self.queued >= self.batch {
            self.flush()?;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> Result<(), String> {
        if self.queued == 0 {
            return Ok(());
        }
        self.pipe
            .query::<()>(self.con)
            .map_err(|e| format!("pipelined writes: {e}"))?;
        self.sent += self.queued;
        self.queued = 0;
        self.pipe = redis::pipe();
        Ok(())
    }
}

pub fn main() -> i32 {
    if std::env::var_os(crate::monitor_tick::CHILD_ENV).is_some() {
        return crate::monitor_tick::child_main();
    }
    run()
}

fn run() -> i32 {
    let began = Instant::now();
    let cfg = SagaConfig::from_env();
    if let Some(only) = &cfg.only {
        if let Some(bad) = only.iter().find(|f| !FIGURES.contains(&f.as_str())) {
            eprintln!("BENCH_ONLY: {bad:?} is not one of {}", FIGURES.join(", "));
            return 2;
        }
    }
    let server = match Server::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("BENCH_REDIS_URL: {e}");
            return 2;
        }
    };
    if let Some(why) = server.refusal() {
        eprintln!("{why}");
        return 2;
    }
    let mut admin = match server.connection() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let m = machine(&mut admin);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!("# txcoord benchmark: deadlock detector, saga monitor, saga repository\n");
    println!(
        "machine: {} × {}, Redis {} ({}), tokio multi-thread runtime ({} workers)",
        m.nproc,
        m.cpu_model,
        m.redis_version,
        server.describe(),
        m.nproc
    );
    let sizes = format!(
        "graph {} edges; registry {} waiting sagas on {} locks; {} deadlocks; \
         monitor {} active sagas, {} stuck; saves {:.1} s × {} runs per side, {} in flight",
        cfg.graph_edges,
        cfg.registry_sagas,
        cfg.registry_locks,
        cfg.deadlock_reps,
        cfg.monitor_sagas,
        cfg.monitor_stuck,
        cfg.save_secs.as_secs_f64(),
        cfg.save_reps,
        cfg.save_in_flight,
    );
    println!(
        "mode: {} ({}); {sizes}\n",
        if cfg.quick { "quick" } else { "full" },
        cfg.mode_reason
    );
    let machine_line = format!("{} × {}, Redis {}", m.nproc, m.cpu_model, m.redis_version);
    if cfg!(debug_assertions) {
        println!(
            "build: unoptimised (as `cargo test` builds it), on a tenth of the data: the figures \
             below only show that the program runs; use `cargo bench` for measurements\n"
        );
    }
    let mut b = Bench {
        cfg,
        server,
        admin,
        rt,
        failures: Failures::default(),
        targets: Vec::new(),
    };
    type Figure = fn(&mut Bench);
    let figures: [(&str, Figure); 5] = [
        ("graph", crate::wait_graph::run),
        ("registry", crate::registry_graph::run),
        ("deadlock", crate::deadlock_latency::run),
        ("monitor", crate::monitor_tick::run),
        ("save", crate::saga_save::run),
    ];
    for (name, figure) in figures {
        if b.cfg.wants(name) {
            let t0 = Instant::now();
            b.flush();
            eprintln!("sagas: {name} …");
            figure(&mut b);
            eprintln!("sagas: {name} done in {:.1} s", t0.elapsed().as_secs_f64());
        }
    }
    b.flush();

    println!("## Targets\n");
    let mut t = Table::new(&["figure", "target", "measured", "result"]);
    for x in &b.targets {
        t.row(vec![
            x.figure.clone(),
            x.target.clone(),
            x.value.clone(),
            verdict(x.met).to_string(),
        ]);
    }
    println!("{}", t.render());
    println!(
        "Targets are reported, not asserted. total run time: {:.0} s",
        began.elapsed().as_secs_f64()
    );
    if let Some(path) = std::env::var_os("BENCH_JSON") {
        let doc = serde_json::json!({
            "kind": "sagas",
            "mode": if b.cfg.quick { "quick" } else { "full" },
            "machine": machine_line,
            "sizes": sizes,
            "targets": b.targets,
            "failures": b.failures.0,
        });
        if let Err(e) = std::fs::write(&path, format!("{doc:#}\n")) {
            eprintln!("BENCH_JSON: writing {}: {e}", path.to_string_lossy());
            return 2;
        }
    }
    let Bench {
        admin,
        rt,
        server,
        failures,
        ..
    } = b;
    drop(admin);
    rt.shutdown_timeout(Duration::from_secs(2));
    drop(server);
    if failures.0.is_empty() {
        0
    } else {
        println!("\ntxcoord problems seen during the run:");
        for f in &failures.0 {
            println!("- {f}");
        }
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_short() {
        assert_eq!(short(1_000_000), "1M");
        assert_eq!(short(100_000), "100k");
        assert_eq!(short(1_050), "1,050");
    }

    #[test]
    fn durations_read_as_ms_then_s() {
        assert_eq!(dur(Duration::from_micros(1_500)), "2 ms");
        assert_eq!(dur(Duration::from_millis(999)), "999 ms");
        assert_eq!(dur(Duration::from_millis(12_340)), "12.3 s");
    }
}
