// SPDX-License-Identifier: MIT OR Apache-2.0
//! One pass of the saga monitor at scale, and the memory of the process that runs it.
//!
//! A child process (this program again, `BENCH_SAGA_TICK_CHILD=1`) does what `txcoord monitor`
//! does and nothing else: a `SagaMonitor` over the built-in `RedisSagaRepository` and
//! detector, counting alert and metrics sinks; it runs a first pass on the empty server (it is
//! elected), then waits. Meanwhile this process writes 100,000 active saga records with their
//! indexes (PROTOCOL.md §8), 1,000 of them stuck, and tells the child to go: its second pass,
//! `SagaMonitor::tick`, is timed, and the child's peak RSS (VmHWM) read after it. Writing the
//! records happens here, so it does not count towards the child's memory.
//!
//! Sagas cycle through the seed's three types and one of our own (5 min limits by default);
//! the stuck ones were created 40 min ago and last updated 30 min ago (long-running and stuck
//! for every type), the others were created a minute ago and updated in the last 11 s. So one
//! pass must alert every stuck saga as long-running and as stuck, and retry each (retry count
//! 0 → 1, `EXECUTING`) with a conditional save carrying its leader term; nothing else.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use txcoord::{
    Alert, AlertSink, BoxFuture, Client, DetectorOptions, MonitorMetrics, MonitorOptions,
    RedisSagaRepository, SagaDeadlockDetector, SagaMonitor, SagaRepository, SagaStatus,
};

use crate::fmt::{dash, num, verdict, Table};
use crate::registry_graph::CountingLogger;
use crate::sagas::{dur, short, Batcher, Bench, Target};
use crate::server::proc_status_kib;

/// Set in the child's environment (with the server's URL as its value).
pub const CHILD_ENV: &str = "BENCH_SAGA_TICK_CHILD";
pub const TARGET: Duration = Duration::from_secs(1);
pub const TARGET_RSS_MIB: f64 = 100.0;
/// The saga types, in turn.
const TYPES: [&str; 4] = [
    "CreateOrderSaga",
    "ProcessRefundSaga",
    "UserRegistrationSaga",
    "BenchSaga",
];
/// How long the parent waits for the child at each step.
const CHILD_LIMIT: Duration = Duration::from_secs(300);

/// The saga state's base key `S` (PROTOCOL.md §8) with no key prefix.
const S: &str = "{txcoord:sagas}";

pub fn saga_id(i: usize) -> String {
    format!("bench-saga-{i:07}")
}

/// Which sagas are stuck: every `stride`-th, `stuck` of them.
#[derive(Debug, Clone, Copy)]
pub struct Population {
    pub sagas: usize,
    pub stuck: usize,
}

impl Population {
    fn stride(&self) -> usize {
        (self.sagas / self.stuck.max(1)).max(1)
    }
    pub fn is_stuck(&self, i: usize) -> bool {
        i.is_multiple_of(self.stride()) && i / self.stride() < self.stuck
    }
}

/// Writes the records and indexes of PROTOCOL.md §8, pipelined; returns the commands sent.
fn populate(b: &mut Bench, p: Population) -> Result<usize, String> {
    let now = b.redis_now_ms()?;
    let mut w = Batcher::new(&mut b.admin, 10_000);
    for t in TYPES {
        let mut types = redis::cmd("SADD");
        types.arg(format!("{S}:types")).arg(t);
        w.add(types)?;
    }
    for i in 0..p.sagas {
        let id = saga_id(i);
        let t = TYPES[i % TYPES.len()];
        let (created, updated) = if p.is_stuck(i) {
            (now - 40 * 60_000, now - 30 * 60_000)
        } else {
            (now - 60_000, now - 1_000 - (i % 10_000) as u64)
        };
        let mut record = redis::cmd("HSET");
        record.arg(format!("{S}:saga:{id}"));
        for (field, value) in [
            ("pv", "2".to_string()),
            ("id", id.clone()),
            ("type", t.to_string()),
            ("status", SagaStatus::Executing.as_str().to_string()),
            ("priority", "0".into()),
            ("createdAt", created.to_string()),
            ("updatedAt", updated.to_string()),
            ("retryCount", "0".into()),
            ("error", String::new()),
            ("stuckReason", String::new()),
            ("stuckDetail", String::new()),
            ("version", "1".into()),
            ("term", "0".into()),
        ] {
            record.arg(field).arg(value);
        }
        w.add(record)?;
        for (index, score) in [
            (format!("{S}:active"), updated),
            (format!("{S}:active:{t}"), updated),
            (format!("{S}:started"), created),
        ] {
            let mut z = redis::cmd("ZADD");
            z.arg(index).arg(score).arg(&id);
            w.add(z)?;
        }
    }
    w.flush()?;
    Ok(w.sent)
}

/// What the child reports after its timed pass.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChildResult {
    pub term: u64,
    pub tick_us: u64,
    pub leader: bool,
    pub long_running: usize,
    pub stuck: usize,
    pub retried: usize,
    pub compensated: usize,
    pub deadlocks: usize,
    pub errors: Vec<String>,
    /// Alerts sent, by name (resolved ones as `<name>/resolved`).
    pub alerts: HashMap<String, u64>,
    pub rss_before_kib: u64,
    pub hwm_before_kib: u64,
    pub peak_kib: u64,
    pub threads: u64,
}

/// Counts alerts by name.
#[derive(Default)]
struct CountingAlerts(Mutex<HashMap<String, u64>>);

impl AlertSink for CountingAlerts {
    fn send(&self, alert: &Alert) -> BoxFuture<'_, txcoord::Result<()>> {
        let name = if alert.resolved {
            format!("{}/resolved", alert.name)
        } else {
            alert.name.clone()
        };
        *self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(name)
            .or_default() += 1;
        Box::pin(async { Ok(()) })
    }
}

#[derive(Default)]
struct CountingMetrics(AtomicU64);

impl MonitorMetrics for CountingMetrics {
    fn record_gauge(&self, _: &str, _: f64) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    fn record_histogram(&self, _: &str, _: f64) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// The child: elect, say so, wait for the word, run one pass, report.
pub fn child_main() -> i32 {
    let url = std::env::var(CHILD_ENV).unwrap_or_default();
    // As `txcoord monitor` runs it.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let alerts = Arc::new(CountingAlerts::default());
    let setup = rt.block_on(async {
        let client = Client::open(&url).map_err(|e| e.to_string())?;
        let repo = Arc::new(RedisSagaRepository::new(&client));
        let detector = SagaDeadlockDetector::new(
            repo.clone(),
            Arc::new(CountingLogger::default()),
            DetectorOptions::new(),
        )
        .map_err(|e| e.to_string())?;
        let monitor = SagaMonitor::new(
            repo,
            Arc::new(CountingMetrics::default()),
            alerts.clone(),
            detector,
            MonitorOptions::new().set_start(false),
        )
        .map_err(|e| e.to_string())?;
        let first = monitor.tick().await;
        if !first.leader || !first.errors.is_empty() {
            return Err(format!("the first pass did not lead: {first:?}"));
        }
        Ok::<_, String>((client, monitor))
    });
    let (client, monitor) = match setup {
        Ok(s) => s,
        Err(e) => {
            eprintln!("monitor child: {e}");
            return 2;
        }
    };
    let term = monitor.term().unwrap_or(0);
    println!("ELECTED {term}");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line).unwrap_or(0) == 0 || line.trim() != "GO" {
        eprintln!("monitor child: no GO from the parent");
        return 2;
    }
    alerts.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    let rss_before_kib = proc_status_kib("VmRSS").unwrap_or(0);
    let hwm_before_kib = proc_status_kib("VmHWM").unwrap_or(0);
    let started = Instant::now();
    let report = rt.block_on(monitor.tick());
    let tick_us = started.elapsed().as_micros() as u64;
    let peak_kib = proc_status_kib("VmHWM").unwrap_or(0);
    let result = ChildResult {
        term: monitor.term().unwrap_or(term),
        tick_us,
        leader: report.leader,
        long_running: report.long_running,
        stuck: report.stuck,
        retried: report.retried,
        compensated: report.compensated,
        deadlocks: report.deadlocks,
        errors: report.errors.clone(),
        alerts: alerts.0.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        rss_before_kib,
        hwm_before_kib,
        peak_kib,
        threads: proc_status_kib("Threads").unwrap_or(0),
    };
    println!(
        "RESULT {}",
        serde_json::to_string(&result).unwrap_or_default()
    );
    let _ = std::io::stdout().flush();
    rt.block_on(monitor.stop());
    client.close();
    rt.shutdown_timeout(Duration::from_secs(2));
    0
}

/// The child process and its output, line by line.
struct ChildProc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl ChildProc {
    fn spawn(url: &str) -> Result<ChildProc, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut child = Command::new(exe)
            .args(std::env::args().skip(1))
            .env(CHILD_ENV, url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("spawning the monitor's process: {e}"))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(ChildProc {
            child,
            stdin,
            lines,
        })
    }

    /// The first line starting with `prefix` (its rest), within `limit`.
    fn expect(&mut self, prefix: &str, limit: Duration) -> Result<String, String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return Ok(rest.trim().to_string());
                    }
                    eprintln!("monitor child: {line}");
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(format!("no {prefix:?} from the child within {limit:?}"))
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().map(|s| s.to_string()).unwrap_or_default();
                    return Err(format!("the child exited ({status}) before {prefix:?}"));
                }
            }
        }
    }

    fn go(&mut self) -> Result<(), String> {
        let stdin = self.stdin.as_mut().ok_or("no stdin")?;
        stdin
            .write_all(b"GO\n")
            .and_then(|_| stdin.flush())
            .map_err(|e| format!("telling the child to go: {e}"))
    }

    /// Waits for the child to exit (bounded), killing it past the limit.
    fn finish(mut self, limit: Duration) -> Result<(), String> {
        drop(self.stdin.take());
        let deadline = Instant::now() + limit;
        loop {
            match self.child.try_wait() {
                Ok(Some(s)) if s.success() => return Ok(()),
                Ok(Some(s)) => return Err(format!("the child exited with {s}")),
                Ok(None) if Instant::now() > deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err("the child did not exit; killed".into());
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(format!("waiting for the child: {e}")),
            }
        }
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What is wrong with the child's pass, if anything.
fn check_pass(r: &ChildResult, p: Population) -> Vec<String> {
    let mut wrong = Vec::new();
    let alerts = |name: &str| r.alerts.get(name).copied().unwrap_or(0) as usize;
    for (what, got, want) in [
        ("stuck sagas", r.stuck, p.stuck),
        ("sagas retried", r.retried, p.stuck),
        ("sagas compensated", r.compensated, 0),
        ("long-running sagas", r.long_running, p.stuck),
        ("deadlocks", r.deadlocks, 0),
        ("StuckSaga alerts", alerts("StuckSaga"), p.stuck),
        ("LongRunningSaga alerts", alerts("LongRunningSaga"), p.stuck),
        ("SagaRecoveryFailed alerts", alerts("SagaRecoveryFailed"), 0),
    ] {
        if got != want {
            wrong.push(format!("the pass counted {got} {what}, expected {want}"));
        }
    }
    if !r.leader {
        wrong.push("the pass did not lead".into());
    }
    if !r.errors.is_empty() {
        wrong.push(format!("the pass failed steps: {:?}", r.errors));
    }
    wrong
}

/// The records after the pass: stuck ones retried under the leader's term, the rest untouched.
fn check_records(b: &mut Bench, p: Population, term: u64) -> Result<(), String> {
    let mut retried = 0;
    let mut untouched = 0;
    for chunk in (0..p.sagas).collect::<Vec<_>>().chunks(10_000) {
        let mut pipe = redis::pipe();
        for &i in chunk {
            pipe.cmd("HMGET")
                .arg(format!("{S}:saga:{}", saga_id(i)))
                .arg("status")
                .arg("retryCount")
                .arg("version")
                .arg("term")
                .arg("stuckReason");
        }
        let rows: Vec<Vec<Option<String>>> = pipe
            .query(&mut b.admin)
            .map_err(|e| format!("reading the records back: {e}"))?;
        for (&i, row) in chunk.iter().zip(rows) {
            let f = |k: usize| row.get(k).cloned().flatten().unwrap_or_default();
            let got = (f(0), f(1), f(2), f(3), f(4));
            if p.is_stuck(i) {
                let want = (
                    "EXECUTING".to_string(),
                    "1".to_string(),
                    "2".to_string(),
                    term.to_string(),
                    "no-progress".to_string(),
                );
                if got == want {
                    retried += 1;
                }
            } else if got.0 == "EXECUTING" && got.1 == "0" && got.2 == "1" && got.3 == "0" {
                untouched += 1;
            }
        }
    }
    if retried != p.stuck || untouched != p.sagas - p.stuck {
        return Err(format!(
            "after the pass {retried} of {} stuck records were retried under term {term} and \
             {untouched} of {} others untouched",
            p.stuck,
            p.sagas - p.stuck
        ));
    }
    Ok(())
}

/// The repository reads the records written here as they were meant.
fn check_population(b: &mut Bench, p: Population) -> Result<(), String> {
    let url = b.url();
    b.rt.block_on(async {
        let client = Client::open(&url).map_err(|e| e.to_string())?;
        let repo = RedisSagaRepository::new(&client);
        let stats = repo.get_statistics().await.map_err(|e| e.to_string())?;
        if stats.active != p.sagas as u64 {
            return Err(format!(
                "the repository counts {} active sagas, {} were written",
                stats.active, p.sagas
            ));
        }
        let r = repo
            .find_by_id(&saga_id(0))
            .await
            .map_err(|e| e.to_string())?
            .ok_or("saga 0 not found")?;
        if r.saga_type != TYPES[0] || r.status != SagaStatus::Executing || r.version != 1 {
            return Err(format!("saga 0 reads back as {r:?}"));
        }
        client.close();
        Ok(())
    })
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

pub fn run(b: &mut Bench) {
    let p = Population {
        sagas: b.cfg.monitor_sagas,
        stuck: b.cfg.monitor_stuck,
    };
    let url = b.url();
    let outcome = (|| -> Result<(ChildResult, Duration, usize), String> {
        let mut child = ChildProc::spawn(&url)?;
        let term: u64 = child
            .expect("ELECTED", CHILD_LIMIT)?
            .parse()
            .map_err(|_| "a bad ELECTED line")?;
        let t0 = Instant::now();
        let written = populate(b, p)?;
        let populate_time = t0.elapsed();
        check_population(b, p)?;
        child.go()?;
        let line = child.expect("RESULT", CHILD_LIMIT)?;
        let r: ChildResult =
            serde_json::from_str(&line).map_err(|e| format!("the child's result: {e}"))?;
        child.finish(Duration::from_secs(30))?;
        if r.term != term {
            return Err(format!(
                "the term moved from {term} to {} in the pass",
                r.term
            ));
        }
        Ok((r, populate_time, written))
    })();
    let (r, populate_time, written) = match outcome {
        Ok(x) => x,
        Err(e) => {
            b.fail(format!("monitor: {e}"));
            print_table(b, p, None);
            return;
        }
    };
    let mut wrong = check_pass(&r, p);
    if let Err(e) = check_records(b, p, r.term) {
        wrong.push(e);
    }
    let ok = wrong.is_empty();
    for w in wrong {
        b.fail(format!("monitor: {w}"));
    }
    print_table(b, p, Some((&r, ok)));
    println!(
        "The child runs the monitor as `txcoord monitor` does (2 tokio workers, \
         RedisSagaRepository, the built-in detector; alerts and metrics counted, not sent). \
         Its first pass, on the empty server, elected it (term {}); then {} sagas were written \
         by the parent in {} ({} pipelined commands) and the second pass timed. RSS before the \
         pass {:.1} MiB (peak so far {:.1} MiB); {} threads. Checked: the pass's counts ({} \
         stuck, retried, alerted as stuck and as long-running; nothing compensated, no \
         deadlock, no step failed) and every record afterwards (the stuck ones EXECUTING, retry \
         count 1, version 2, the leader's term, reason no-progress; the others untouched).\n",
        r.term,
        num(p.sagas as f64),
        dur(populate_time),
        num(written as f64),
        mib(r.rss_before_kib),
        mib(r.hwm_before_kib),
        r.threads,
        num(p.stuck as f64),
    );
}

fn print_table(b: &mut Bench, p: Population, r: Option<(&ChildResult, bool)>) {
    println!(
        "## One pass of the saga monitor: {} active sagas, {} stuck\n",
        num(p.sagas as f64),
        num(p.stuck as f64)
    );
    let tick = r.map(|(r, _)| Duration::from_micros(r.tick_us));
    let peak = r.map(|(r, _)| mib(r.peak_kib));
    let ok = r.is_some_and(|(_, ok)| ok);
    let tick_met = tick.map(|t| ok && t <= TARGET);
    let rss_met = peak.map(|m| ok && m <= TARGET_RSS_MIB);
    let mut t = Table::new(&["measure", "value", "target", "result"]);
    t.row(vec![
        "SagaMonitor::tick(), leader elected".into(),
        tick.map(dur).unwrap_or_else(dash),
        format!("≤ {}", dur(TARGET)),
        verdict(tick_met).into(),
    ]);
    t.row(vec![
        "peak RSS (VmHWM) of the process running it".into(),
        peak.map(|m| format!("{m:.1} MiB")).unwrap_or_else(dash),
        format!("≤ {TARGET_RSS_MIB:.0} MiB"),
        verdict(rss_met).into(),
    ]);
    println!("{}", t.render());
    let label = format!(
        "monitor: one tick, {} sagas / {} stuck",
        short(p.sagas),
        short(p.stuck)
    );
    b.targets.push(Target::new(
        &label,
        "≤ 1 s",
        tick.map(dur).unwrap_or_else(dash),
        tick_met,
    ));
    b.targets.push(Target::new(
        &format!("{label}: peak RSS"),
        "≤ 100 MiB",
        peak.map(|m| format!("{m:.1} MiB")).unwrap_or_else(dash),
        rss_met,
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stuck_sagas_are_as_many_as_asked() {
        for (sagas, stuck) in [(100_000, 1_000), (10_000, 100), (1_050, 10), (100, 1)] {
            let p = Population { sagas, stuck };
            assert_eq!((0..sagas).filter(|&i| p.is_stuck(i)).count(), stuck);
        }
    }

    #[test]
    fn a_wrong_pass_is_caught() {
        let p = Population {
            sagas: 1_000,
            stuck: 10,
        };
        let mut r = ChildResult {
            leader: true,
            stuck: 10,
            retried: 10,
            long_running: 10,
            ..Default::default()
        };
        r.alerts.insert("StuckSaga".into(), 10);
        r.alerts.insert("LongRunningSaga".into(), 10);
        assert!(check_pass(&r, p).is_empty());
        r.retried = 9;
        assert_eq!(check_pass(&r, p).len(), 1);
        assert_eq!(short(100_000), "100k");
        assert_eq!(short(1_050), "1,050");
    }
}
