// SPDX-License-Identifier: MIT OR Apache-2.0
//! The txcoord benchmark (issue 2, item 7): txcoord beside the `rslock` crate and beside
//! `redis-benchmark` running txcoord's own acquire and release scripts, all in one run against
//! one throwaway redis-server on a loopback port.
//!
//! ```text
//! cargo bench -p txcoord --bench scenarios                   # full run, about 3 minutes
//! BENCH_SECONDS=20 cargo bench -p txcoord --bench scenarios  # longer C, C2 and D
//! BENCH_QUICK=1 cargo bench -p txcoord --bench scenarios     # smoke run, about 30 s
//! ```
//!
//! Scenarios: (A) one task, acquire+release cycles; (B) 50 tasks on their own keys; (C) 8 tasks
//! on one key holding it 1 ms, default and fair mode; (C2) the same with a 50 ms pause after each
//! release; (D) 200 locks with ttl 1000 ms held (and renewed) for BENCH_SECONDS.
//!
//! Knobs: `BENCH_SECONDS` (length of C, C2 and D; default 10, 1 in quick mode), `BENCH_QUICK=1`
//! (every scenario about 1 s, small redis-benchmark runs), `BENCH_AB_SECONDS` (length of A and
//! B; default 5, or BENCH_SECONDS if shorter; 1 in quick mode), `BENCH_RSLOCK_RETRY_MS`
//! (rslock's retry delay while waiting, default 10). Run without cargo's `--bench` flag (as
//! `cargo test --bench scenarios` does) the program runs in quick mode unless `BENCH_QUICK=0`.
//!
//! Used by `scripts/bench.sh` (the side-by-side tables of issue 5 with the Python and Node
//! benchmarks, on one server), the program also takes:
//! - `BENCH_REDIS_URL=redis://host:port`: use that redis-server instead of starting one. It
//!   must be a throwaway server: the program runs FLUSHALL and MONITOR on it, so the scenarios
//!   refuse to run on it unless `BENCH_REDIS_FLUSH=1` confirms that its data may be deleted
//!   (scripts/bench.sh sets both for the server it starts). The soak does not flush.
//! - `BENCH_JSON=path`: also write the figures as JSON (the schema of
//!   `bindings-python/benchmark/report.py`), with each library's peak RSS, measured in a child
//!   process of this program that runs A, B, C, C2 and D (shortened) for that library alone.
//! - `BENCH_SOAK=cycles` (1 means 1,000,000): instead of the scenarios, a soak: that many
//!   acquire+release cycles (50 tasks, one `LockManager`, a new resource name each cycle),
//!   printing RSS along the way, open fds and `Client::scheduled_renewals()` at the end; exit
//!   status 3 when RSS at the end is more than max(5%, 10 MiB) above RSS at 1/5 of the cycles.
//!   `scripts/soak.sh` runs it beside the Python and Node soaks.
//!
//! Targets are printed as met/missed; they are not asserted. The exit status is non-zero only
//! when txcoord itself misbehaved (an error, a hang, two holders at once, a fencing token going
//! backwards), so a smoke run can guard the program and the core against rot.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use txcoord::{protocol, AcquireOptions, Client, DistributedLock, LockManager, ManagerOptions};
use txcoord_testkit::RedisServer;

/// TTL and timeout of the A/B cycles (the seed's defaults).
const AB_TTL: Duration = Duration::from_millis(30_000);
const AB_TIMEOUT: Duration = Duration::from_millis(10_000);
const B_TASKS: usize = 50;
/// C and C2: tasks on one key, hold time, TTL, pause after each release in C2.
const C_TASKS: usize = 8;
const C_HOLD: Duration = Duration::from_millis(1);
const C_TTL: Duration = Duration::from_millis(30_000);
const C2_PAUSE: Duration = Duration::from_millis(50);
/// D: locks held, their TTL.
const D_LOCKS: usize = 200;
const D_TTL: Duration = Duration::from_millis(1_000);
/// rslock: attempts per `lock()` call while waiting (its own retry loop, random 0..delay sleeps).
const RSLOCK_RETRIES: u32 = 5;
/// Bounds on every loop and every sample buffer.
const MAX_ITERATIONS: u64 = 50_000_000;
const MAX_SAMPLES: usize = 2_000_000;
/// Extra time a scenario may take beyond its length before it is declared hung.
const HANG_GRACE: Duration = Duration::from_secs(30);
/// Uncounted acquire+release cycles before A and B (connect, load scripts).
const WARM_CYCLES: u64 = 20;
/// The lock value redis-benchmark sends in place of txcoord's random one (a UUID v4 too).
const RB_VALUE: &str = "6f1c2d3e-4b5a-4c6d-8e7f-908172635445";

// ---------------------------------------------------------------------------------------------
// Configuration and small helpers
// ---------------------------------------------------------------------------------------------

struct Config {
    quick: bool,
    mode_reason: &'static str,
    /// Length of C, C2 and D.
    secs: Duration,
    /// Length of A and B.
    ab_secs: Duration,
    /// Target length of one redis-benchmark run (requests are sized from it).
    rb_secs: f64,
    /// Requests of the first (sizing) redis-benchmark acquire runs: c=1, c=50, pipelined.
    rb_requests: [u64; 3],
    rslock_retry: Duration,
}

fn env_flag(name: &str) -> Option<bool> {
    let v = std::env::var(name).ok()?;
    let v = v.trim().to_ascii_lowercase();
    if v.is_empty() {
        return None;
    }
    Some(matches!(v.as_str(), "1" | "true" | "yes" | "on"))
}

fn env_number(name: &str) -> Option<f64> {
    let v = std::env::var(name).ok()?;
    match v.trim().parse::<f64>() {
        Ok(x) if x.is_finite() => Some(x),
        _ => {
            eprintln!("ignoring {name}={v:?}: not a number");
            None
        }
    }
}

impl Config {
    fn from_env() -> Config {
        let as_bench = std::env::args().any(|a| a == "--bench");
        let (quick, mode_reason) = match env_flag("BENCH_QUICK") {
            Some(true) => (true, "BENCH_QUICK=1"),
            Some(false) => (false, "BENCH_QUICK=0"),
            None if as_bench => (false, "default"),
            None => (true, "run without --bench (as a test)"),
        };
        let secs = env_number("BENCH_SECONDS")
            .map(|s| s.clamp(0.2, 3600.0))
            .unwrap_or(if quick { 1.0 } else { 10.0 });
        let secs = Duration::from_millis((secs * 1000.0).round() as u64);
        let ab_secs = match env_number("BENCH_AB_SECONDS") {
            Some(s) => Duration::from_millis((s.clamp(0.2, 3600.0) * 1000.0).round() as u64),
            None if quick => Duration::from_secs(1).min(secs),
            None => Duration::from_secs(5).min(secs),
        };
        let retry = env_number("BENCH_RSLOCK_RETRY_MS")
            .map(|ms| ms.clamp(1.0, 10_000.0))
            .unwrap_or(10.0);
        Config {
            quick,
            mode_reason,
            secs,
            ab_secs,
            rb_secs: if quick { 0.25 } else { 2.0 },
            rb_requests: if quick {
                [2_000, 10_000, 15_000]
            } else {
                [20_000, 100_000, 150_000]
            },
            rslock_retry: Duration::from_millis(retry as u64),
        }
    }
}

fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1000.0;
    if v < 1.0 {
        format!("{v:.3}")
    } else if v < 10.0 {
        format!("{v:.2}")
    } else if v < 1000.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

fn ms_opt(d: Option<Duration>) -> String {
    d.map(ms).unwrap_or_else(|| "–".into())
}

/// An integer with thousands separators.
fn num(x: f64) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    let n = x.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

fn rate(x: f64) -> String {
    if x.is_finite() && x < 100.0 {
        format!("{x:.1}")
    } else {
        num(x)
    }
}

fn percent(x: f64) -> String {
    if x < 0.1 {
        format!("{:.1}%", x * 100.0)
    } else {
        format!("{:.0}%", x * 100.0)
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let idx = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(sorted[idx])
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "n/a",
    }
}

/// A markdown table that also reads well as plain text (padded columns).
struct Table {
    head: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(head: &[&str]) -> Table {
        Table {
            head: head.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn render(&self) -> String {
        let cols = self.head.len();
        let mut width: Vec<usize> = self.head.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(cols) {
                width[i] = width[i].max(c.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::from("|");
            for (i, w) in width.iter().enumerate() {
                let c = cells.get(i).map(String::as_str).unwrap_or("");
                let pad = w.saturating_sub(c.chars().count());
                s.push(' ');
                s.push_str(c);
                s.push_str(&" ".repeat(pad));
                s.push_str(" |");
            }
            s
        };
        let mut out = line(&self.head);
        out.push('\n');
        out.push('|');
        for w in &width {
            out.push_str(&"-".repeat(w + 2));
            out.push('|');
        }
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(r));
            out.push('\n');
        }
        out
    }
}

/// One target of the issue, measured.
struct Check {
    scenario: String,
    target: String,
    value: String,
    met: Option<bool>,
}

/// Problems of txcoord itself found during the run (they make the exit status non-zero).
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    fn add(&mut self, what: impl Into<String>) {
        let what = what.into();
        println!("  !! txcoord problem: {what}");
        self.0.push(what);
    }
}

// ---------------------------------------------------------------------------------------------
// The server: our own throwaway one, or $BENCH_REDIS_URL
// ---------------------------------------------------------------------------------------------

/// The redis-server of the run: a throwaway one started here, or the one `$BENCH_REDIS_URL`
/// names (scripts/bench.sh starts one and shares it with the Python and Node benchmarks).
enum Server {
    Own(RedisServer),
    /// `flush`: `BENCH_REDIS_FLUSH=1` confirmed the server is a throwaway one.
    External {
        host: String,
        port: u16,
        flush: bool,
    },
}

/// `redis://host:port` (a trailing `/db` or `?query` is ignored; credentials are refused: the
/// benchmark's MONITOR and redis-benchmark connections would need them too).
fn parse_redis_url(url: &str) -> Result<(String, u16), String> {
    let rest = url
        .strip_prefix("redis://")
        .ok_or_else(|| format!("{url:?} does not start with redis://"))?;
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(format!("{url:?}: credentials are not supported here"));
    }
    let (host, port) = match authority.strip_prefix('[') {
        // [::1]:port
        Some(v6) => {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{url:?}: unclosed ["))?;
            (h, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| format!("{url:?}: bad port {p:?}"))?,
        None => 6379,
    };
    if host.is_empty() {
        return Err(format!("{url:?}: no host"));
    }
    Ok((host.to_string(), port))
}

impl Server {
    fn from_env() -> Result<Server, String> {
        match std::env::var("BENCH_REDIS_URL") {
            Ok(url) if !url.trim().is_empty() => {
                let (host, port) = parse_redis_url(url.trim())?;
                let flush = std::env::var("BENCH_REDIS_FLUSH").is_ok_and(|v| v.trim() == "1");
                Ok(Server::External { host, port, flush })
            }
            _ => Ok(Server::Own(RedisServer::start())),
        }
    }

    fn host(&self) -> &str {
        match self {
            Server::Own(_) => "127.0.0.1",
            Server::External { host, .. } => host,
        }
    }

    fn port(&self) -> u16 {
        match self {
            Server::Own(s) => s.port(),
            Server::External { port, .. } => *port,
        }
    }

    fn url(&self) -> String {
        match self {
            Server::Own(s) => s.url(),
            Server::External { host, port, .. } if host.contains(':') => {
                format!("redis://[{host}]:{port}")
            }
            Server::External { host, port, .. } => format!("redis://{host}:{port}"),
        }
    }

    fn connection(&self) -> Result<redis::Connection, String> {
        match self {
            Server::Own(s) => Ok(s.connection()),
            Server::External { .. } => redis::Client::open(self.url())
                .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
                .map_err(|e| format!("cannot connect to BENCH_REDIS_URL {}: {e}", self.url())),
        }
    }

    /// Whether FLUSHALL may run on it: our own server, or one `BENCH_REDIS_FLUSH=1` vouched for.
    fn may_flush(&self) -> bool {
        match self {
            Server::Own(_) => true,
            Server::External { flush, .. } => *flush,
        }
    }

    /// Why the scenarios will not run on this server, if they will not.
    fn refusal(&self) -> Option<String> {
        (!self.may_flush()).then(|| {
            format!(
                "BENCH_REDIS_URL names {}, a redis-server this program did not start, and the \
                 scenarios run FLUSHALL on it. Refused: unset BENCH_REDIS_URL to run on a \
                 throwaway server of our own, or set BENCH_REDIS_FLUSH=1 to confirm that every \
                 key on it may be deleted.",
                self.url()
            )
        })
    }

    fn describe(&self) -> String {
        match self {
            Server::Own(s) => format!("a throwaway redis-server on 127.0.0.1:{}", s.port()),
            Server::External { .. } => {
                format!("the redis-server of BENCH_REDIS_URL, {}", self.url())
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Machine and server facts
// ---------------------------------------------------------------------------------------------

struct Machine {
    nproc: usize,
    cpu_model: String,
    redis_version: String,
}

fn machine(admin: &mut redis::Connection) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let listed = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(listed.max(1));
    let cpu_model = cpuinfo
        .lines()
        .find(|l| {
            l.starts_with("model name") || l.starts_with("Hardware") || l.starts_with("cpu model")
        })
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query(admin)
        .unwrap_or_default();
    let redis_version = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("?")
        .trim()
        .to_string();
    Machine {
        nproc,
        cpu_model,
        redis_version,
    }
}

/// Calls per command from `INFO commandstats` (subcommands as `config|get`).
fn commandstats(admin: &mut redis::Connection) -> BTreeMap<String, u64> {
    let info: String = match redis::cmd("INFO").arg("commandstats").query(admin) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("INFO commandstats failed: {e}");
            return BTreeMap::new();
        }
    };
    let mut out = BTreeMap::new();
    for line in info.lines() {
        let Some(rest) = line.strip_prefix("cmdstat_") else {
            continue;
        };
        let Some((name, stats)) = rest.split_once(':') else {
            continue;
        };
        let calls = stats
            .split(',')
            .find_map(|kv| kv.strip_prefix("calls="))
            .and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(calls) = calls {
            out.insert(name.to_ascii_lowercase(), calls);
        }
    }
    out
}

fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .stderr(Stdio::null())
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// CPU time (user + system) of this process so far, from /proc/self/stat.
fn process_cpu(ticks: u64) -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the command name: state is field 3 (index 0), utime field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_secs_f64(
        (utime + stime) as f64 / ticks as f64,
    ))
}

/// The Redis commands a set of Lua sources calls (lower case).
fn script_commands(sources: &[&str]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for src in sources {
        for part in src.split("redis.call(").skip(1) {
            let part = part.trim_start();
            if let Some(rest) = part.strip_prefix('\'').or_else(|| part.strip_prefix('"')) {
                if let Some(end) = rest.find(['\'', '"']) {
                    out.insert(rest[..end].to_ascii_lowercase());
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// redis-benchmark with txcoord's acquire and release scripts
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
struct RbRun {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
}

struct RbConfig {
    label: &'static str,
    clients: u32,
    pipeline: u32,
    acquire: Result<RbRun, String>,
    release: Result<RbRun, String>,
    /// Share of release calls that found a held lock (the full release path).
    release_hit: Option<f64>,
}

impl RbConfig {
    fn cycles(&self) -> Option<f64> {
        match (&self.acquire, &self.release) {
            (Ok(a), Ok(r)) if a.rps > 0.0 && r.rps > 0.0 => Some(1.0 / (1.0 / a.rps + 1.0 / r.rps)),
            _ => None,
        }
    }
}

fn find_redis_benchmark() -> Option<String> {
    if let Ok(p) = std::env::var("REDIS_BENCHMARK") {
        return Some(p);
    }
    let path = std::env::var("PATH").unwrap_or_default();
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let p = std::path::Path::new(dir).join("redis-benchmark");
        if p.is_file() {
            return Some(p.to_string_lossy().into_owned());
        }
    }
    let fixed = "/usr/bin/redis-benchmark";
    std::path::Path::new(fixed)
        .is_file()
        .then(|| fixed.to_string())
}

struct Rb<'a> {
    bin: &'a str,
    host: &'a str,
    port: u16,
    clients: u32,
    pipeline: u32,
}

/// Runs redis-benchmark once (killed if it outlives `limit`) and parses its CSV line.
fn redis_benchmark(
    rb: &Rb<'_>,
    requests: u64,
    keyspace: u64,
    command: &[String],
    limit: Duration,
) -> Result<RbRun, String> {
    let bin = rb.bin;
    let mut cmd = Command::new(bin);
    cmd.args(["-h", rb.host, "-p", &rb.port.to_string()])
        .args(["-c", &rb.clients.to_string(), "-n", &requests.to_string()])
        .args(["-P", &rb.pipeline.to_string(), "-r", &keyspace.to_string()])
        .arg("--csv")
        .args(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("cannot run {bin}: {e}"))?;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let started = std::time::Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "redis-benchmark ran longer than {} s; killed",
                    limit.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("waiting for redis-benchmark: {e}")),
        }
    };
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    if !status.success() {
        return Err(format!("redis-benchmark failed ({status}): {}", err.trim()));
    }
    // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms",
    // "p99_latency_ms","max_latency_ms" -- parsed from the end (the test name is the command).
    for line in out.lines().rev() {
        let fields: Vec<f64> = line
            .rsplit(',')
            .take(7)
            .map(|f| {
                f.trim()
                    .trim_matches('"')
                    .parse::<f64>()
                    .unwrap_or(f64::NAN)
            })
            .collect();
        if fields.len() == 7 && fields.iter().all(|f| f.is_finite()) {
            // reversed: max, p99, p95, p50, min, avg, rps
            return Ok(RbRun {
                rps: fields[6],
                p50_ms: fields[3],
                p99_ms: fields[1],
                requests,
            });
        }
    }
    Err(format!(
        "no result line in redis-benchmark output: {:?} {:?}",
        out.trim(),
        err.trim()
    ))
}

/// Fills the keys `pattern(0) .. pattern(keyspace-1)` (`__rand_int__` replaced by a 12-digit
/// number, as redis-benchmark does) with held locks of value `RB_VALUE` and their holder
/// hashes, so that release calls on random keys of that range find a held lock.
fn fill_held_locks(
    admin: &mut redis::Connection,
    lock_pattern: &str,
    holder_pattern: &str,
    keyspace: u64,
) -> redis::RedisResult<()> {
    const FILL: &str = r#"
local v, px = ARGV[1], ARGV[2]
for i = tonumber(ARGV[3]), tonumber(ARGV[4]) do
  local n = string.format('%012d', i)
  redis.call('SET', (string.gsub(ARGV[5], '__rand_int__', n)), v, 'PX', px)
  redis.call('HSET', (string.gsub(ARGV[6], '__rand_int__', n)),
    'f', '1', 'v', v, 'o', '', 'n', '1', 'p', '0', 't', '0')
end
return 1
"#;
    let chunk = 20_000u64;
    let mut from = 0u64;
    while from < keyspace {
        let to = (from + chunk).min(keyspace) - 1;
        redis::cmd("EVAL")
            .arg(FILL)
            .arg(0)
            .arg(RB_VALUE)
            .arg(600_000)
            .arg(from)
            .arg(to)
            .arg(lock_pattern)
            .arg(holder_pattern)
            .query::<i64>(admin)?;
        from = to + 1;
    }
    Ok(())
}

/// FLUSHALL, only on a server that may be flushed (see [`Server::may_flush`]).
fn flushall(server: &Server, admin: &mut redis::Connection) {
    if !server.may_flush() {
        eprintln!(
            "FLUSHALL skipped on {}: not a throwaway server",
            server.url()
        );
        return;
    }
    if let Err(e) = redis::cmd("FLUSHALL").arg("SYNC").query::<()>(admin) {
        eprintln!("FLUSHALL failed: {e}");
    }
}

fn dbsize(admin: &mut redis::Connection) -> u64 {
    redis::cmd("DBSIZE").query(admin).unwrap_or(0)
}

/// The resource whose acquire and release are captured for redis-benchmark.
const PROBE: &str = "bench:probe";

/// Parses the arguments of one MONITOR line: `<time> [<db> <client>] "ARG" "ARG" ...`, each
/// argument quoted with C-style escapes.
fn monitor_args(line: &str) -> Vec<Vec<u8>> {
    let Some(start) = line.find("] ") else {
        return Vec::new();
    };
    let bytes = &line.as_bytes()[start + 2..];
    let mut args = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'"' {
            i += 1;
            continue;
        }
        i += 1;
        let mut arg = Vec::new();
        while i < bytes.len() && bytes[i] != b'"' {
            if bytes[i] == b'\\' && i + 1 < bytes.len() {
                i += 1;
                match bytes[i] {
                    b'n' => arg.push(b'\n'),
                    b'r' => arg.push(b'\r'),
                    b't' => arg.push(b'\t'),
                    b'a' => arg.push(7),
                    b'b' => arg.push(8),
                    b'x' if i + 2 < bytes.len() => {
                        let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                        arg.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                        i += 2;
                    }
                    other => arg.push(other),
                }
            } else {
                arg.push(bytes[i]);
            }
            i += 1;
        }
        args.push(arg);
        i += 1;
    }
    args
}

/// What txcoord's `LockManager` really sends for one uncontended acquire and release:
/// captured with MONITOR while it takes and releases [`PROBE`], then generalised for
/// redis-benchmark (the lock key becomes `lock:bench:__rand_int__` in every argument, the
/// random value becomes `RB_VALUE`).
struct Captured {
    acquire: Vec<String>,
    release: Vec<String>,
}

fn capture_txcoord_commands(
    rt: &tokio::runtime::Runtime,
    host: &str,
    port: u16,
    url: &str,
) -> Result<Captured, String> {
    use std::io::{BufRead, BufReader, Write};
    let acq_sha = redis::Script::new(&protocol::ACQUIRE_LUA)
        .get_hash()
        .to_string();
    let rel_sha = redis::Script::new(&protocol::RELEASE_LUA)
        .get_hash()
        .to_string();
    let mut mon = std::net::TcpStream::connect((host, port))
        .map_err(|e| format!("MONITOR connection: {e}"))?;
    mon.set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(|e| e.to_string())?;
    mon.write_all(b"MONITOR\r\n").map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(mon.try_clone().map_err(|e| e.to_string())?);
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .map_err(|e| format!("MONITOR: {e}"))?;
    if !line.starts_with("+OK") {
        return Err(format!("MONITOR answered {:?}", line.trim()));
    }
    let value = rt.block_on(async {
        let client = Client::open(url).map_err(|e| e.to_string())?;
        let mgr = LockManager::new(&client);
        let lock = mgr
            .acquire_lock(PROBE, AB_TTL, AB_TIMEOUT)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "the probe lock was busy".to_string())?;
        let value = lock.value().unwrap_or_default();
        mgr.release_lock(PROBE).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(value)
    })?;
    let probe_key = format!("lock:{PROBE}");
    let pattern = "lock:bench:__rand_int__";
    let generalise = |args: Vec<Vec<u8>>, sha: &str| -> Vec<String> {
        let mut out: Vec<String> = args
            .into_iter()
            .map(|a| String::from_utf8_lossy(&a).into_owned())
            .map(|a| {
                if !value.is_empty() && a == value {
                    RB_VALUE.to_string()
                } else {
                    a.replace(&probe_key, pattern)
                }
            })
            .collect();
        // A first call may have gone out as EVAL <source>: benchmark the EVALSHA form.
        out[0] = "EVALSHA".into();
        out[1] = sha.to_string();
        out
    };
    let (mut acquire, mut release) = (None, None);
    let until = std::time::Instant::now() + Duration::from_secs(3);
    while (acquire.is_none() || release.is_none()) && std::time::Instant::now() < until {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => return Err(format!("MONITOR: {e}")),
        }
        let args = monitor_args(line.trim_end());
        if args.len() < 3 {
            continue;
        }
        let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
        let script = String::from_utf8_lossy(&args[1]).into_owned();
        let is = |sha: &str, src: &str| {
            (name == "EVALSHA" && script.eq_ignore_ascii_case(sha))
                || (name == "EVAL" && script == src)
        };
        if acquire.is_none() && is(&acq_sha, &protocol::ACQUIRE_LUA) {
            acquire = Some(generalise(args, &acq_sha));
        } else if release.is_none() && is(&rel_sha, &protocol::RELEASE_LUA) {
            release = Some(generalise(args, &rel_sha));
        }
    }
    let _ = mon.shutdown(std::net::Shutdown::Both);
    match (acquire, release) {
        (Some(acquire), Some(release)) => Ok(Captured { acquire, release }),
        _ => Err("MONITOR did not show txcoord's acquire and release scripts".into()),
    }
}

/// A command line for display: arguments quoted when empty or spaced.
fn shell_line(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.is_empty() || a.contains([' ', '"', '\'']) {
                format!("{a:?}")
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Commands run per call inside the scripts during one redis-benchmark run.
fn per_call(
    s0: &BTreeMap<String, u64>,
    s1: &BTreeMap<String, u64>,
    calls: u64,
) -> Vec<(String, f64)> {
    const OUTSIDE: [&str; 7] = [
        "evalsha",
        "eval",
        "info",
        "config|get",
        "dbsize",
        "ping",
        "hello",
    ];
    let mut out: Vec<(String, f64)> = s1
        .iter()
        .filter(|(name, _)| !OUTSIDE.contains(&name.as_str()))
        .filter_map(|(name, &c)| {
            let d = c.saturating_sub(s0.get(name).copied().unwrap_or(0));
            (d > 0).then(|| (name.clone(), d as f64 / calls.max(1) as f64))
        })
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}

/// Runs the redis-benchmark configurations `which` (0: -c 1, 1: -c 50, 2: -c 50 -P 16), each an
/// acquire run and a release run; adds what it learns about the commands to `notes`.
fn redis_benchmark_section(
    cfg: &Config,
    server: &Server,
    admin: &mut redis::Connection,
    captured: &Result<Captured, String>,
    which: &[usize],
    notes: &mut Vec<String>,
) -> Vec<RbConfig> {
    let configs: [(&'static str, u32, u32); 3] = [
        ("one connection", 1, 1),
        ("50 connections", 50, 1),
        ("the ceiling", 50, 16),
    ];
    let failed = |why: String| {
        configs
            .iter()
            .enumerate()
            .filter(|(i, _)| which.contains(i))
            .map(|(_, &(label, clients, pipeline))| RbConfig {
                label,
                clients,
                pipeline,
                acquire: Err(why.clone()),
                release: Err(why.clone()),
                release_hit: None,
            })
            .collect()
    };
    let Some(bin) = find_redis_benchmark() else {
        return failed("redis-benchmark not found (install redis-tools)".into());
    };
    let captured = match captured {
        Ok(c) => c,
        Err(e) => return failed(format!("txcoord's commands not captured: {e}")),
    };
    if notes.is_empty() {
        notes.push(format!(
            "acquire: redis-benchmark {}",
            shell_line(&captured.acquire)
        ));
        notes.push(format!(
            "release: redis-benchmark {}",
            shell_line(&captured.release)
        ));
    }
    let (lock_pattern, holder_pattern) = match (captured.release.get(3), captured.release.get(4)) {
        (Some(k), Some(h)) => (k.clone(), h.clone()),
        _ => return failed("the captured release has no keys".into()),
    };
    let mut out = Vec::new();
    for (i, &(label, clients, pipeline)) in configs.iter().enumerate() {
        if !which.contains(&i) {
            continue;
        }
        let n_acq = cfg.rb_requests[i];
        let limit = Duration::from_secs(120);
        let rb = Rb {
            bin: &bin,
            host: server.host(),
            port: server.port(),
            clients,
            pipeline,
        };
        flushall(server, admin);
        let s0 = commandstats(admin);
        let acquire = redis_benchmark(&rb, n_acq, 1_000_000_000, &captured.acquire, limit);
        let s1 = commandstats(admin);
        flushall(server, admin);
        let est = acquire.as_ref().map(|r| r.rps).unwrap_or(10_000.0);
        let n_rel = ((est * cfg.rb_secs * 1.5) as u64).clamp(1_000, 1_000_000);
        let keyspace = (n_rel * 4).min(2_000_000);
        let (release, release_hit, inner_rel) =
            match fill_held_locks(admin, &lock_pattern, &holder_pattern, keyspace) {
                Err(e) => (Err(format!("filling held locks: {e}")), None, Vec::new()),
                Ok(()) => {
                    let before = dbsize(admin);
                    let s2 = commandstats(admin);
                    let r = redis_benchmark(&rb, n_rel, keyspace, &captured.release, limit);
                    let s3 = commandstats(admin);
                    let after = dbsize(admin);
                    let hit = before.saturating_sub(after) as f64 / n_rel as f64;
                    (r, Some(hit.min(1.0)), per_call(&s2, &s3, n_rel))
                }
            };
        flushall(server, admin);
        if i == 0 {
            let show = |v: &[(String, f64)]| {
                v.iter()
                    .map(|(n, x)| format!("{n} {x:.2}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            notes.push(format!(
                "commands per call inside Redis (-c 1 runs): acquire {}; release {}",
                show(&per_call(&s0, &s1, n_acq)),
                show(&inner_rel)
            ));
        }
        out.push(RbConfig {
            label,
            clients,
            pipeline,
            acquire,
            release,
            release_hit,
        });
    }
    out
}

fn print_redis_benchmark(rb: &[RbConfig], notes: &[String]) {
    println!("## redis-benchmark: txcoord's own acquire and release scripts\n");
    let mut t = Table::new(&[
        "run",
        "acquire req/s",
        "acq p50/p99 ms",
        "release req/s",
        "rel p50/p99 ms",
        "release hit",
        "cycles/s",
    ]);
    for c in rb {
        let cell = |r: &Result<RbRun, String>| match r {
            Ok(r) => (
                format!("{} (n={})", num(r.rps), num(r.requests as f64)),
                format!("{:.3}/{:.3}", r.p50_ms, r.p99_ms),
            ),
            Err(e) => (format!("error: {e}"), "–".into()),
        };
        let (a, al) = cell(&c.acquire);
        let (r, rl) = cell(&c.release);
        t.row(vec![
            format!("-c {} -P {}: {}", c.clients, c.pipeline, c.label),
            a,
            al,
            r,
            rl,
            c.release_hit.map(percent).unwrap_or_else(|| "–".into()),
            c.cycles().map(num).unwrap_or_else(|| "–".into()),
        ]);
    }
    println!("{}", t.render());
    for n in notes {
        println!("- {n}");
    }
    println!(
        "\ncycles/s = 1/(1/acquire + 1/release). The two commands are what LockManager::\n\
         acquire_lock(r, 30 s, 10 s) and release_lock(r) sent for one uncontended lock (captured\n\
         with MONITOR), with the lock key turned into random keys. acquire runs on fresh keys\n\
         (-r 1e9), so every call takes the grant path. release runs on random keys of a keyspace\n\
         pre-filled with held locks of the same value: a key drawn for the first time is released\n\
         for real (delete, look for a waiter to wake); a key drawn again is no longer held and the\n\
         script stops after comparing the value. 'release hit' is the measured share of real\n\
         releases (keys deleted / requests); the rest make the release rate a little optimistic.\n\
         redis-benchmark draws every __rand_int__ anew, so the lock, holder, queue and waiter keys\n\
         of one call are unrelated keys of the same shapes: the same work on a single server. The\n\
         -c 1 runs ran right before (A), the others right before (B), as the machine's load drifts.\n"
    );
}

// ---------------------------------------------------------------------------------------------
// A and B: acquire+release cycles on uncontended keys
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Cycles {
    cycles: u64,
    /// Warm-up cycles before the timed ones (counted in the commands per cycle).
    warm: u64,
    /// Commands the client sent per cycle (from INFO commandstats).
    sent_per_cycle: Option<f64>,
    elapsed: Duration,
    /// Cycle latencies, sorted.
    lat: Vec<Duration>,
    errors: Vec<String>,
}

impl Cycles {
    fn rate(&self) -> f64 {
        if self.elapsed.is_zero() {
            return 0.0;
        }
        self.cycles as f64 / self.elapsed.as_secs_f64()
    }
}

type CycleTask = (u64, Vec<Duration>, Option<String>);

async fn collect_cycles(
    mut set: tokio::task::JoinSet<CycleTask>,
    start: Instant,
    limit: Duration,
) -> Cycles {
    let mut out = Cycles::default();
    let collected = tokio::time::timeout(limit, async {
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok((n, lat, err)) => {
                    out.cycles += n;
                    out.lat.extend(lat);
                    out.errors.extend(err);
                }
                Err(e) => out.errors.push(format!("task failed: {e}")),
            }
        }
    })
    .await;
    if collected.is_err() {
        set.abort_all();
        out.errors.push(format!(
            "tasks still running {} s after the scenario's end (hang)",
            HANG_GRACE.as_secs()
        ));
    }
    out.elapsed = start.elapsed();
    out.lat.sort_unstable();
    out
}

async fn txcoord_cycles(url: &str, tasks: usize, secs: Duration, tag: &str) -> Cycles {
    let client = match Client::open(url) {
        Ok(c) => c,
        Err(e) => {
            return Cycles {
                errors: vec![e.to_string()],
                ..Cycles::default()
            }
        }
    };
    let mgr = LockManager::new(&client);
    // Warm up: connect, name the connection, load the scripts.
    for i in 0..WARM_CYCLES {
        let res = format!("bench:{tag}:warm:{}", i % 4);
        match mgr.acquire_lock(&res, AB_TTL, AB_TIMEOUT).await {
            Ok(Some(_)) => {
                let _ = mgr.release_lock(&res).await;
            }
            Ok(None) => {}
            Err(e) => {
                return Cycles {
                    errors: vec![format!("warm-up: {e}")],
                    ..Cycles::default()
                }
            }
        }
    }
    let start = Instant::now();
    let deadline = start + secs;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..tasks {
        let mgr = mgr.clone();
        let res = format!("bench:{tag}:{i}");
        set.spawn(async move {
            let mut lat = Vec::new();
            let mut n = 0u64;
            for _ in 0..MAX_ITERATIONS {
                let t0 = Instant::now();
                if t0 >= deadline {
                    break;
                }
                match mgr.acquire_lock(&res, AB_TTL, AB_TIMEOUT).await {
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        return (
                            n,
                            lat,
                            Some(format!("{res}: acquire_lock timed out on a free key")),
                        )
                    }
                    Err(e) => return (n, lat, Some(format!("{res}: acquire_lock: {e}"))),
                }
                if let Err(e) = mgr.release_lock(&res).await {
                    return (n, lat, Some(format!("{res}: release_lock: {e}")));
                }
                n += 1;
                if lat.len() < MAX_SAMPLES {
                    lat.push(t0.elapsed());
                }
            }
            (n, lat, None)
        });
    }
    let mut out = collect_cycles(set, start, secs + HANG_GRACE).await;
    out.warm = WARM_CYCLES;
    out
}

/// The floor for any Rust client: the two captured commands sent by hand on the redis crate's
/// ConnectionManager over RESP3 (txcoord's connection type), one lock key, one task.
async fn raw_cycles(url: &str, captured: &Captured, secs: Duration) -> Cycles {
    let fixed = |args: &[String]| {
        let mut cmd = redis::cmd(&args[0]);
        for a in &args[1..] {
            cmd.arg(a.replace("__rand_int__", "raw"));
        }
        cmd
    };
    let (acquire, release) = (fixed(&captured.acquire), fixed(&captured.release));
    let url = format!("{url}/?protocol=resp3");
    // On a runtime worker, as the other clients' tasks run.
    let task = tokio::spawn(async move {
        let mut out = Cycles::default();
        let conn = match redis::Client::open(url) {
            Ok(c) => redis::aio::ConnectionManager::new(c).await,
            Err(e) => Err(e),
        };
        let mut conn = match conn {
            Ok(c) => c,
            Err(e) => {
                out.errors.push(format!("connect: {e}"));
                return out;
            }
        };
        let mut start = Instant::now();
        let mut deadline = start + secs;
        for i in 0..MAX_ITERATIONS + WARM_CYCLES {
            if i == WARM_CYCLES {
                start = Instant::now();
                deadline = start + secs;
            }
            let t0 = Instant::now();
            if t0 >= deadline {
                break;
            }
            let a: redis::RedisResult<redis::Value> = acquire.query_async(&mut conn).await;
            let r: redis::RedisResult<redis::Value> = release.query_async(&mut conn).await;
            if let Err(e) = a.and(r) {
                out.errors.push(e.to_string());
                break;
            }
            if i < WARM_CYCLES {
                continue;
            }
            out.cycles += 1;
            if out.lat.len() < MAX_SAMPLES {
                out.lat.push(t0.elapsed());
            }
        }
        out.elapsed = start.elapsed();
        out.lat.sort_unstable();
        out
    });
    let abort = task.abort_handle();
    match tokio::time::timeout(secs + HANG_GRACE, task).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => Cycles {
            errors: vec![format!("task failed: {e}")],
            ..Cycles::default()
        },
        Err(_) => {
            abort.abort();
            Cycles {
                errors: vec!["hang".into()],
                ..Cycles::default()
            }
        }
    }
}

async fn rslock_cycles(url: &str, tasks: usize, secs: Duration, tag: &str) -> Cycles {
    let lm = rslock::LockManager::new(vec![url.to_string()]);
    for i in 0..WARM_CYCLES {
        let res = format!("bench:{tag}:warm:{}", i % 4);
        if let Ok(lock) = lm.lock(res.as_bytes(), AB_TTL).await {
            lm.unlock(&lock).await;
        }
    }
    let start = Instant::now();
    let deadline = start + secs;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..tasks {
        let lm = lm.clone();
        let res = format!("bench:{tag}:{i}");
        set.spawn(async move {
            let mut lat = Vec::new();
            let mut n = 0u64;
            let mut failed = 0u64;
            for _ in 0..MAX_ITERATIONS {
                let t0 = Instant::now();
                if t0 >= deadline {
                    break;
                }
                match lm.lock(res.as_bytes(), AB_TTL).await {
                    Ok(lock) => {
                        lm.unlock(&lock).await;
                        n += 1;
                        if lat.len() < MAX_SAMPLES {
                            lat.push(t0.elapsed());
                        }
                    }
                    Err(_) => failed += 1,
                }
            }
            let err =
                (failed > 0).then(|| format!("{res}: {failed} lock() calls failed on a free key"));
            (n, lat, err)
        });
    }
    let mut out = collect_cycles(set, start, secs + HANG_GRACE).await;
    out.warm = WARM_CYCLES;
    out
}

// ---------------------------------------------------------------------------------------------
// C and C2: tasks contending for one key
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Lib {
    TxDefault,
    TxFair,
    Rslock,
}

impl Lib {
    fn label(self) -> &'static str {
        match self {
            Lib::TxDefault => "txcoord default",
            Lib::TxFair => "txcoord fair",
            Lib::Rslock => "rslock",
        }
    }
    fn mode(self) -> &'static str {
        match self {
            Lib::TxDefault => "default",
            Lib::TxFair => "fair",
            Lib::Rslock => "rslock",
        }
    }
    fn is_txcoord(self) -> bool {
        self != Lib::Rslock
    }
}

enum Contender {
    Tx(LockManager),
    Rs(rslock::LockManager),
}

enum Held {
    Tx(Option<u64>),
    Rs(rslock::Lock),
}

/// One acquisition: who, when the wait began, when the lock came, when the release began and
/// ended, and its fencing token.
struct Rec {
    task: usize,
    t0: Instant,
    acq: Instant,
    rel_start: Instant,
    token: Option<u64>,
}

#[derive(Default)]
struct TaskLog {
    recs: Vec<Rec>,
    /// A wait cut short by the end of the run.
    cut: Option<Duration>,
    error: Option<String>,
}

impl Contender {
    async fn acquire(&self, key: &str, deadline: Instant) -> Result<Option<Held>, String> {
        match self {
            Contender::Tx(mgr) => {
                let left = deadline.saturating_duration_since(Instant::now());
                let timeout = Duration::from_millis((left.as_millis() as u64).max(1));
                let options = AcquireOptions::new().set_ttl(C_TTL).set_timeout(timeout);
                match mgr.acquire_lock_with(key, options).await {
                    Ok(Some(lock)) => Ok(Some(Held::Tx(lock.fencing_token()))),
                    Ok(None) => Ok(None),
                    Err(e) => Err(format!("acquire_lock_with: {e}")),
                }
            }
            Contender::Rs(lm) => {
                for _ in 0..MAX_ITERATIONS {
                    if Instant::now() >= deadline {
                        return Ok(None);
                    }
                    match lm.lock(key.as_bytes(), C_TTL).await {
                        Ok(lock) => return Ok(Some(Held::Rs(lock))),
                        Err(rslock::LockError::TtlTooLarge) => return Err("ttl too large".into()),
                        Err(_) => continue,
                    }
                }
                Ok(None)
            }
        }
    }

    async fn release(&self, key: &str, held: Held) -> Result<(), String> {
        match (self, held) {
            (Contender::Tx(mgr), Held::Tx(_)) => mgr
                .release_lock(key)
                .await
                .map_err(|e| format!("release_lock: {e}")),
            (Contender::Rs(lm), Held::Rs(lock)) => {
                lm.unlock(&lock).await;
                Ok(())
            }
            _ => Err("mismatched lock handle".into()),
        }
    }
}

/// Holds the lock for `C_HOLD`: a blocking-pool thread sleeps, since tokio's timer rounds
/// 1 ms up to the next millisecond tick (about 2 ms).
async fn hold() {
    if tokio::task::spawn_blocking(|| std::thread::sleep(C_HOLD))
        .await
        .is_err()
    {
        tokio::time::sleep(C_HOLD).await;
    }
}

struct Contention {
    secs: Duration,
    logs: Vec<TaskLog>,
    hung: bool,
    wake: Option<WakeCounts>,
}

/// txcoord's client counters over a contention run, summed over the tasks' clients.
#[derive(Default, Clone, Copy)]
struct WakeCounts {
    attempts: u64,
    notified: u64,
    timer: u64,
    messages: u64,
    subscribes: u64,
}

fn wake_counts(clients: &[Client]) -> WakeCounts {
    let mut w = WakeCounts::default();
    for c in clients {
        let s = c.stats();
        w.attempts += s.attempts;
        w.notified += s.wake_notified;
        w.timer += s.wake_timer;
        w.messages += s.messages;
        w.subscribes += s.subscribes;
    }
    w
}

impl WakeCounts {
    fn since(self, before: WakeCounts) -> WakeCounts {
        WakeCounts {
            attempts: self.attempts - before.attempts,
            notified: self.notified - before.notified,
            timer: self.timer - before.timer,
            messages: self.messages - before.messages,
            subscribes: self.subscribes - before.subscribes,
        }
    }
}

async fn contend(cfg: &Config, url: &str, lib: Lib, key: String, pause: Duration) -> Contention {
    let mut contenders = Vec::new();
    let mut setup_error = None;
    for i in 0..C_TASKS {
        // One client (one connection) per task, as separate processes would have.
        let c = match lib {
            Lib::TxDefault | Lib::TxFair => {
                let built = Client::open(url).and_then(|client| {
                    LockManager::with_options(
                        &client,
                        ManagerOptions::new().set_fair(lib == Lib::TxFair),
                    )
                });
                match built {
                    Ok(mgr) => {
                        let warm = format!("{key}:warm:{i}");
                        match mgr.acquire_lock(&warm, C_TTL, AB_TIMEOUT).await {
                            Ok(Some(_)) => {
                                let _ = mgr.release_lock(&warm).await;
                            }
                            Ok(None) => setup_error = Some("warm-up lock timed out".to_string()),
                            Err(e) => setup_error = Some(format!("warm-up: {e}")),
                        }
                        Contender::Tx(mgr)
                    }
                    Err(e) => {
                        setup_error = Some(e.to_string());
                        break;
                    }
                }
            }
            Lib::Rslock => {
                let mut lm = rslock::LockManager::new(vec![url.to_string()]);
                lm.set_retry(RSLOCK_RETRIES, cfg.rslock_retry);
                let warm = format!("{key}:warm:{i}");
                if let Ok(lock) = lm.lock(warm.as_bytes(), C_TTL).await {
                    lm.unlock(&lock).await;
                }
                Contender::Rs(lm)
            }
        };
        contenders.push(c);
    }
    if let Some(e) = setup_error {
        return Contention {
            secs: cfg.secs,
            logs: vec![TaskLog {
                error: Some(format!("set-up: {e}")),
                ..TaskLog::default()
            }],
            hung: false,
            wake: None,
        };
    }
    let clients: Vec<Client> = contenders
        .iter()
        .filter_map(|c| match c {
            Contender::Tx(mgr) => Some(mgr.client().clone()),
            Contender::Rs(_) => None,
        })
        .collect();
    let wake_before = wake_counts(&clients);
    let start = Instant::now() + Duration::from_millis(20);
    let deadline = start + cfg.secs;
    // The counters are read just before the end: waits cut by the end wake by their timers.
    let wake_at_end = {
        let clients = clients.clone();
        let at = deadline
            .checked_sub(Duration::from_millis(5))
            .unwrap_or(deadline);
        tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            wake_counts(&clients)
        })
    };
    let mut handles = Vec::new();
    for (task, c) in contenders.into_iter().enumerate() {
        let key = key.clone();
        handles.push(tokio::spawn(async move {
            tokio::time::sleep_until(start).await;
            let mut log = TaskLog::default();
            for _ in 0..MAX_ITERATIONS {
                let t0 = Instant::now();
                if t0 >= deadline {
                    break;
                }
                let held = match c.acquire(&key, deadline).await {
                    Ok(Some(h)) => h,
                    Ok(None) => {
                        log.cut = Some(t0.elapsed());
                        break;
                    }
                    Err(e) => {
                        log.error = Some(e);
                        break;
                    }
                };
                let acq = Instant::now();
                let token = match &held {
                    Held::Tx(t) => *t,
                    Held::Rs(_) => None,
                };
                hold().await;
                let rel_start = Instant::now();
                let released = c.release(&key, held).await;
                if log.recs.len() < MAX_SAMPLES {
                    log.recs.push(Rec {
                        task,
                        t0,
                        acq,
                        rel_start,
                        token,
                    });
                }
                if let Err(e) = released {
                    log.error = Some(e);
                    break;
                }
                if !pause.is_zero() {
                    tokio::time::sleep_until((Instant::now() + pause).min(deadline)).await;
                }
            }
            log
        }));
    }
    let mut logs = Vec::new();
    let mut hung = false;
    let limit = deadline + HANG_GRACE;
    for h in handles {
        let abort = h.abort_handle();
        match tokio::time::timeout_at(limit, h).await {
            Ok(Ok(log)) => logs.push(log),
            Ok(Err(e)) => logs.push(TaskLog {
                error: Some(format!("task failed: {e}")),
                ..TaskLog::default()
            }),
            Err(_) => {
                abort.abort();
                hung = true;
                logs.push(TaskLog {
                    error: Some("task still running after the run's end (hang)".into()),
                    ..TaskLog::default()
                });
            }
        }
    }
    Contention {
        secs: cfg.secs,
        logs,
        hung,
        wake: match wake_at_end.await {
            Ok(w) if !clients.is_empty() => Some(w.since(wake_before)),
            _ => None,
        },
    }
}

struct ContentionStats {
    acquisitions: usize,
    per_s: f64,
    wait_p50: Option<Duration>,
    wait_p99: Option<Duration>,
    /// Longest wait, counting waits cut by the end of the run; whether it was a cut one.
    wait_max: Option<Duration>,
    wait_max_cut: bool,
    handoffs: usize,
    handoff_p50: Option<Duration>,
    handoff_p99: Option<Duration>,
    back_share: Option<f64>,
    per_task_min: usize,
    per_task_max: usize,
    hold_mean: Option<Duration>,
    /// The longest hold: far above 1 ms means the machine stalled the run.
    hold_max: Option<Duration>,
    overlaps: usize,
    token_regressions: usize,
    errors: Vec<String>,
    cut_waits: usize,
    wake: Option<WakeCounts>,
}

impl ContentionStats {
    fn min_max_ratio(&self) -> f64 {
        if self.per_task_max == 0 {
            0.0
        } else {
            self.per_task_min as f64 / self.per_task_max as f64
        }
    }
}

fn contention_stats(run: &Contention) -> ContentionStats {
    let mut recs: Vec<&Rec> = run.logs.iter().flat_map(|l| l.recs.iter()).collect();
    recs.sort_by_key(|r| r.acq);
    let mut waits: Vec<Duration> = recs.iter().map(|r| r.acq - r.t0).collect();
    waits.sort_unstable();
    let longest_cut = run.logs.iter().filter_map(|l| l.cut).max();
    let longest_done = waits.last().copied();
    let (wait_max, wait_max_cut) = match (longest_done, longest_cut) {
        (Some(d), Some(c)) if c > d => (Some(c), true),
        (None, Some(c)) => (Some(c), true),
        (d, _) => (d, false),
    };
    let mut handoffs = Vec::new();
    let mut back = 0usize;
    let mut overlaps = 0usize;
    let mut token_regressions = 0usize;
    for pair in recs.windows(2) {
        let (prev, cur) = (pair[0], pair[1]);
        // The next grant comes after the previous holder's DEL, which comes after it began
        // releasing: an acquisition before that is two holders at once.
        if cur.acq < prev.rel_start {
            overlaps += 1;
        }
        if let (Some(a), Some(b)) = (prev.token, cur.token) {
            if b <= a {
                token_regressions += 1;
            }
        }
        if cur.task == prev.task {
            back += 1;
        } else if cur.t0 <= prev.rel_start {
            // Handed to a task that was already waiting when the release began.
            handoffs.push(cur.acq.saturating_duration_since(prev.rel_start));
        }
    }
    handoffs.sort_unstable();
    let mut per_task = [0usize; C_TASKS];
    for r in &recs {
        if r.task < per_task.len() {
            per_task[r.task] += 1;
        }
    }
    let holds: Vec<Duration> = recs.iter().map(|r| r.rel_start - r.acq).collect();
    let hold_mean =
        (!holds.is_empty()).then(|| holds.iter().sum::<Duration>() / holds.len() as u32);
    let mut errors: Vec<String> = run.logs.iter().filter_map(|l| l.error.clone()).collect();
    if run.hung {
        errors.push("hang".into());
    }
    ContentionStats {
        acquisitions: recs.len(),
        per_s: recs.len() as f64 / run.secs.as_secs_f64(),
        wait_p50: percentile(&waits, 0.50),
        wait_p99: percentile(&waits, 0.99),
        wait_max,
        wait_max_cut,
        handoffs: handoffs.len(),
        handoff_p50: percentile(&handoffs, 0.50),
        handoff_p99: percentile(&handoffs, 0.99),
        back_share: (recs.len() > 1).then(|| back as f64 / (recs.len() - 1) as f64),
        per_task_min: per_task.iter().copied().min().unwrap_or(0),
        per_task_max: per_task.iter().copied().max().unwrap_or(0),
        hold_mean,
        hold_max: holds.iter().max().copied(),
        overlaps,
        token_regressions,
        errors,
        cut_waits: run.logs.iter().filter(|l| l.cut.is_some()).count(),
        wake: run.wake,
    }
}

fn contention_table(title: &str, runs: &[(Lib, ContentionStats)]) -> String {
    let mut t = Table::new(&[
        "client",
        "acq/s",
        "wait p50 ms",
        "wait p99 ms",
        "wait max ms",
        "handoff p50 ms",
        "handoff p99 ms",
        "back to releaser",
        "per-task min/max",
        "hold mean/max ms",
    ]);
    for (lib, s) in runs {
        let max = match s.wait_max {
            Some(d) if s.wait_max_cut => format!("≥{} (cut)", ms(d)),
            d => ms_opt(d),
        };
        t.row(vec![
            lib.label().to_string(),
            rate(s.per_s),
            ms_opt(s.wait_p50),
            ms_opt(s.wait_p99),
            max,
            ms_opt(s.handoff_p50),
            ms_opt(s.handoff_p99),
            s.back_share.map(percent).unwrap_or_else(|| "–".into()),
            format!(
                "{}/{} ({:.2})",
                s.per_task_min,
                s.per_task_max,
                s.min_max_ratio()
            ),
            format!("{}/{}", ms_opt(s.hold_mean), ms_opt(s.hold_max)),
        ]);
        if *lib == Lib::Rslock {
            t.row(vec![
                "rslock fair".into(),
                "n/a: rslock has no fair mode".into(),
            ]);
        }
    }
    format!("{title}\n\n{}", t.render())
}

// ---------------------------------------------------------------------------------------------
// D: 200 locks held and renewed
// ---------------------------------------------------------------------------------------------

struct Snapshot {
    at: std::time::Instant,
    cpu: Option<Duration>,
    cmds: BTreeMap<String, u64>,
}

fn snapshot(admin: &mut redis::Connection, ticks: u64) -> Snapshot {
    let cmds = commandstats(admin);
    Snapshot {
        at: std::time::Instant::now(),
        cpu: process_cpu(ticks),
        cmds,
    }
}

struct Hold {
    label: String,
    renewal: String,
    held_at_end: usize,
    window: Duration,
    cpu_pct: Option<f64>,
    /// Calls per second per command over the window (our INFO excluded).
    per_cmd: Vec<(String, f64)>,
    total_per_s: f64,
    top_level_per_s: f64,
    notes: Vec<String>,
    errors: Vec<String>,
}

fn window_stats(
    s0: &Snapshot,
    s1: &Snapshot,
    inner: &BTreeSet<String>,
) -> (Duration, Option<f64>, Vec<(String, f64)>, f64, f64) {
    let window = s1.at - s0.at;
    let secs = window.as_secs_f64().max(1e-9);
    let cpu_pct = match (s0.cpu, s1.cpu) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a).as_secs_f64() / secs * 100.0),
        _ => None,
    };
    let mut per_cmd = Vec::new();
    let (mut total, mut top) = (0.0, 0.0);
    for (name, &calls) in &s1.cmds {
        if name == "info" {
            continue;
        }
        let delta = calls.saturating_sub(s0.cmds.get(name).copied().unwrap_or(0));
        if delta == 0 {
            continue;
        }
        let r = delta as f64 / secs;
        total += r;
        if !inner.contains(name) {
            top += r;
        }
        per_cmd.push((name.clone(), r));
    }
    per_cmd.sort_by(|a, b| b.1.total_cmp(&a.1));
    (window, cpu_pct, per_cmd, total, top)
}

fn hold_result(
    label: &str,
    renewal: &str,
    held_at_end: usize,
    s0: &Snapshot,
    s1: &Snapshot,
    inner: &BTreeSet<String>,
) -> Hold {
    let (window, cpu_pct, per_cmd, total_per_s, top_level_per_s) = window_stats(s0, s1, inner);
    Hold {
        label: label.into(),
        renewal: renewal.into(),
        held_at_end,
        window,
        cpu_pct,
        per_cmd,
        total_per_s,
        top_level_per_s,
        notes: Vec::new(),
        errors: Vec::new(),
    }
}

fn failed_hold(label: &str, renewal: &str, error: String) -> Hold {
    Hold {
        label: label.into(),
        renewal: renewal.into(),
        held_at_end: 0,
        window: Duration::ZERO,
        cpu_pct: None,
        per_cmd: Vec::new(),
        total_per_s: 0.0,
        top_level_per_s: 0.0,
        notes: Vec::new(),
        errors: vec![error],
    }
}

/// Waits (bounded) until `count` reaches `n`.
fn wait_count(count: &AtomicUsize, n: usize, limit: Duration) -> bool {
    let until = std::time::Instant::now() + limit;
    while std::time::Instant::now() < until {
        if count.load(Ordering::SeqCst) >= n {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    count.load(Ordering::SeqCst) >= n
}

const SETTLE: Duration = Duration::from_millis(300);

fn hold_txcoord(
    rt: &tokio::runtime::Runtime,
    admin: &mut redis::Connection,
    url: &str,
    secs: Duration,
    ticks: u64,
    inner: &BTreeSet<String>,
) -> Hold {
    let label = "txcoord";
    let renewal = "ttl/3 = 333 ms (built in)";
    let setup = rt.block_on(async {
        let client = Client::open(url).map_err(|e| e.to_string())?;
        let mgr = LockManager::new(&client);
        client.ping().await.map_err(|e| e.to_string())?;
        let acquisitions = (0..D_LOCKS).map(|i| {
            let mgr = mgr.clone();
            async move {
                mgr.acquire_lock(&format!("bench:d:{i}"), D_TTL, Duration::from_secs(5))
                    .await
            }
        });
        let mut locks: Vec<DistributedLock> = Vec::new();
        for r in futures_util::future::join_all(acquisitions).await {
            match r {
                Ok(Some(l)) => locks.push(l),
                Ok(None) => return Err("a free lock timed out".to_string()),
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok::<_, String>((client, mgr, locks))
    });
    let (client, mgr, locks) = match setup {
        Ok(x) => x,
        Err(e) => return failed_hold(label, renewal, format!("acquiring: {e}")),
    };
    std::thread::sleep(SETTLE);
    let stats0 = client.stats();
    let s0 = snapshot(admin, ticks);
    std::thread::sleep(secs);
    let s1 = snapshot(admin, ticks);
    let stats1 = client.stats();
    let held = locks.iter().filter(|l| l.is_held()).count();
    let failures =
        rt.block_on(async { tokio::time::timeout(HANG_GRACE, mgr.release_all_locks()).await });
    let mut h = hold_result(label, renewal, held, &s0, &s1, inner);
    h.notes.push(format!(
        "txcoord client counters over the window: {} renewals, {} renewal errors, {} locks lost",
        stats1.renewals - stats0.renewals,
        stats1.renewal_errors - stats0.renewal_errors,
        stats1.lost - stats0.lost
    ));
    match failures {
        Ok(f) if f.is_empty() => {}
        Ok(f) => h
            .errors
            .push(format!("{} releases failed: {:?}", f.len(), f.first())),
        Err(_) => h.errors.push("release_all_locks hung".into()),
    }
    if held < D_LOCKS {
        h.errors.push(format!(
            "only {held} of {D_LOCKS} locks still held at the end"
        ));
    }
    h
}

fn hold_rslock_using(
    rt: &tokio::runtime::Runtime,
    admin: &mut redis::Connection,
    url: &str,
    secs: Duration,
    ticks: u64,
    inner: &BTreeSet<String>,
) -> Hold {
    let label = "rslock using()";
    let renewal = "validity − 500 ms ≈ 490 ms (fixed in using())";
    let lm = rslock::LockManager::new(vec![url.to_string()]);
    rslock_warm_up(rt, &lm);
    let acquired = Arc::new(AtomicUsize::new(0));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let limit = secs + HANG_GRACE;
    let handles: Vec<_> = (0..D_LOCKS)
        .map(|i| {
            let lm = lm.clone();
            let acquired = acquired.clone();
            let stop_rx = stop_rx.clone();
            rt.spawn(async move {
                let res = format!("bench:d-rsu:{i}").into_bytes();
                let routine = async move || {
                    acquired.fetch_add(1, Ordering::SeqCst);
                    let mut stop = stop_rx;
                    let _ = tokio::time::timeout(limit, stop.wait_for(|s| *s)).await;
                };
                lm.using(&res, D_TTL, routine).await.is_ok()
            })
        })
        .collect();
    if !wait_count(&acquired, D_LOCKS, Duration::from_secs(20)) {
        let _ = stop_tx.send(true);
        handles.iter().for_each(|h| h.abort());
        return failed_hold(label, renewal, "not all locks acquired within 20 s".into());
    }
    std::thread::sleep(SETTLE);
    let s0 = snapshot(admin, ticks);
    std::thread::sleep(secs);
    let s1 = snapshot(admin, ticks);
    let held = handles.iter().filter(|h| !h.is_finished()).count();
    let _ = stop_tx.send(true);
    let ok = rt.block_on(join_bounded(handles, HANG_GRACE));
    let mut h = hold_result(label, renewal, held, &s0, &s1, inner);
    if ok < D_LOCKS {
        h.notes.push(format!(
            "{} using() calls ended in an error (lost renewal)",
            D_LOCKS - ok
        ));
    }
    h
}

fn hold_rslock_manual(
    rt: &tokio::runtime::Runtime,
    admin: &mut redis::Connection,
    url: &str,
    secs: Duration,
    ticks: u64,
    inner: &BTreeSet<String>,
) -> Hold {
    let label = "rslock extend() by hand";
    let renewal = "ttl/3 = 333 ms (a task per lock calling extend())";
    let lm = rslock::LockManager::new(vec![url.to_string()]);
    rslock_warm_up(rt, &lm);
    let acquired = Arc::new(AtomicUsize::new(0));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let max_renewals = (secs + HANG_GRACE).as_millis() as u64 / (D_TTL.as_millis() as u64 / 3) + 10;
    let handles: Vec<_> = (0..D_LOCKS)
        .map(|i| {
            let lm = lm.clone();
            let acquired = acquired.clone();
            let mut stop = stop_rx.clone();
            rt.spawn(async move {
                let res = format!("bench:d-rsm:{i}").into_bytes();
                let mut lock = None;
                for _ in 0..100 {
                    if let Ok(l) = lm.lock(&res, D_TTL).await {
                        lock = Some(l);
                        break;
                    }
                }
                let Some(mut lock) = lock else { return false };
                acquired.fetch_add(1, Ordering::SeqCst);
                let mut ok = true;
                for _ in 0..max_renewals {
                    tokio::select! {
                        // The only change ever sent is the stop signal.
                        _ = stop.changed() => break,
                        _ = tokio::time::sleep(D_TTL / 3) => match lm.extend(&lock, D_TTL).await {
                            Ok(l) => lock = l,
                            Err(_) => {
                                ok = false;
                                break;
                            }
                        },
                    }
                }
                lm.unlock(&lock).await;
                ok
            })
        })
        .collect();
    if !wait_count(&acquired, D_LOCKS, Duration::from_secs(20)) {
        let _ = stop_tx.send(true);
        handles.iter().for_each(|h| h.abort());
        return failed_hold(label, renewal, "not all locks acquired within 20 s".into());
    }
    std::thread::sleep(SETTLE);
    let s0 = snapshot(admin, ticks);
    std::thread::sleep(secs);
    let s1 = snapshot(admin, ticks);
    let held = handles.iter().filter(|h| !h.is_finished()).count();
    let _ = stop_tx.send(true);
    let ok = rt.block_on(join_bounded(handles, HANG_GRACE));
    let mut h = hold_result(label, renewal, held, &s0, &s1, inner);
    if ok < D_LOCKS {
        h.notes
            .push(format!("{} locks lost a renewal", D_LOCKS - ok));
    }
    h
}

/// Joins the tasks of a D run (aborting them after `limit`); how many ended with `true`.
async fn join_bounded(handles: Vec<tokio::task::JoinHandle<bool>>, limit: Duration) -> usize {
    let aborts: Vec<_> = handles.iter().map(|h| h.abort_handle()).collect();
    match tokio::time::timeout(limit, futures_util::future::join_all(handles)).await {
        Ok(results) => results
            .into_iter()
            .filter(|r| matches!(r, Ok(true)))
            .count(),
        Err(_) => {
            aborts.iter().for_each(|a| a.abort());
            0
        }
    }
}

/// Connects rslock and gets its unlock and extend scripts into the server's cache.
fn rslock_warm_up(rt: &tokio::runtime::Runtime, lm: &rslock::LockManager) {
    rt.block_on(async {
        if let Ok(lock) = lm.lock(b"bench:d:warm", D_TTL).await {
            if let Ok(lock) = lm.extend(&lock, D_TTL).await {
                lm.unlock(&lock).await;
            } else {
                lm.unlock(&lock).await;
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

fn main() {
    let code = if let Ok(lib) = std::env::var("BENCH_RSS_PROBE") {
        rss_probe(&lib)
    } else if let Some(n) = env_number("BENCH_SOAK").filter(|&n| n > 0.0) {
        let cycles = if n <= 1.0 { 1_000_000 } else { n as u64 };
        soak(cycles)
    } else {
        run()
    };
    std::process::exit(code);
}

/// Everything measured, for the target checks and the summary.
struct Report {
    rb: Vec<RbConfig>,
    /// The captured commands sent by hand on the redis crate (A only).
    raw_a: Option<Cycles>,
    tx_a: Cycles,
    rs_a: Cycles,
    tx_b: Cycles,
    rs_b: Cycles,
    c: Vec<(Lib, ContentionStats)>,
    c2: Vec<(Lib, ContentionStats)>,
    d: Vec<Hold>,
    checks: Vec<Check>,
}

impl Report {
    fn rb_cycles(&self, i: usize) -> Option<f64> {
        self.rb.get(i).and_then(RbConfig::cycles)
    }
    fn check(&self, scenario: &str, target_prefix: &str) -> Option<&Check> {
        self.checks
            .iter()
            .find(|c| c.scenario == scenario && c.target.starts_with(target_prefix))
    }
    fn verdict_of(&self, scenario: &str, target_prefix: &str) -> &'static str {
        verdict(self.check(scenario, target_prefix).and_then(|c| c.met))
    }
}

fn run() -> i32 {
    let began = std::time::Instant::now();
    let cfg = Config::from_env();
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
    let url = server.url();
    let mut admin = match server.connection() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let m = machine(&mut admin);
    let ticks = clock_ticks_per_second();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut failures = Failures::default();
    let mut json_failed = false;

    println!("# txcoord benchmark scenarios\n");
    println!(
        "machine: {} × {}, Redis {} ({}), tokio multi-thread runtime ({} workers)",
        m.nproc,
        m.cpu_model,
        m.redis_version,
        server.describe(),
        m.nproc
    );
    println!(
        "mode: {} ({}); C, C2 and D run {} each, A and B {} each\n",
        if cfg.quick { "quick" } else { "full" },
        cfg.mode_reason,
        secs(cfg.secs),
        secs(cfg.ab_secs),
    );
    if cfg!(debug_assertions) {
        println!(
            "build: unoptimised (as `cargo test` builds it): the figures below only show that \
             the program runs; use `cargo bench` for measurements\n"
        );
    }

    // Every txcoord script in the server's cache, so no scenario pays a NOSCRIPT round trip.
    for src in [
        &protocol::ACQUIRE_LUA,
        &protocol::RELEASE_LUA,
        &protocol::EXTEND_LUA,
        &protocol::CANCEL_LUA,
        &protocol::INDEX_LUA,
    ] {
        let loaded: redis::RedisResult<String> = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(src.as_str())
            .query(&mut admin);
        if let Err(e) = loaded {
            eprintln!("SCRIPT LOAD failed: {e}");
        }
    }
    let mut tx_inner = script_commands(&[
        &protocol::ACQUIRE_LUA,
        &protocol::RELEASE_LUA,
        &protocol::EXTEND_LUA,
        &protocol::CANCEL_LUA,
        &protocol::INDEX_LUA,
        &protocol::INSPECT_LUA,
        &protocol::ABORT_WAITER_LUA,
    ]);
    tx_inner.extend(["publish".to_string(), "spublish".to_string()]);
    // rslock's unlock script runs GET and DEL, its extend script GET and SET.
    let rs_inner: BTreeSet<String> = ["get", "del"].iter().map(|s| s.to_string()).collect();

    // redis-benchmark right before the scenario it is compared with (the machine's load drifts).
    let captured = capture_txcoord_commands(&rt, server.host(), server.port(), &url);
    let mut rb_notes = Vec::new();
    let mut rb = redis_benchmark_section(&cfg, &server, &mut admin, &captured, &[0], &mut rb_notes);

    let (tx_a, rs_a) = cycles_pair(
        &rt,
        &mut admin,
        &url,
        1,
        cfg.ab_secs,
        "a",
        &tx_inner,
        &rs_inner,
    );
    let raw_a = captured
        .as_ref()
        .ok()
        .map(|c| rt.block_on(raw_cycles(&url, c, cfg.ab_secs)));
    rb.extend(redis_benchmark_section(
        &cfg,
        &server,
        &mut admin,
        &captured,
        &[1, 2],
        &mut rb_notes,
    ));
    print_redis_benchmark(&rb, &rb_notes);
    let (tx_b, rs_b) = cycles_pair(
        &rt,
        &mut admin,
        &url,
        B_TASKS,
        cfg.ab_secs,
        "b",
        &tx_inner,
        &rs_inner,
    );
    for e in &tx_a.errors {
        failures.add(format!("A: {e}"));
    }
    for e in &tx_b.errors {
        failures.add(format!("B: {e}"));
    }
    let mut report = Report {
        rb,
        raw_a,
        tx_a,
        rs_a,
        tx_b,
        rs_b,
        c: Vec::new(),
        c2: Vec::new(),
        d: Vec::new(),
        checks: Vec::new(),
    };
    print_a(&mut report, &cfg);
    print_b(&mut report, &cfg);

    for pause in [Duration::ZERO, C2_PAUSE] {
        let tag = if pause.is_zero() { "C" } else { "C2" };
        let mut results = Vec::new();
        for lib in [Lib::TxDefault, Lib::TxFair, Lib::Rslock] {
            let key = format!("bench:{tag}:{}", lib.label().replace(' ', "-"));
            let run = rt.block_on(contend(&cfg, &url, lib, key, pause));
            let s = contention_stats(&run);
            if lib.is_txcoord() {
                let who = format!("{tag} {}", lib.label());
                for e in &s.errors {
                    failures.add(format!("{who}: {e}"));
                }
                if s.overlaps > 0 {
                    failures.add(format!(
                        "{who}: {} acquisitions overlapped the previous holder",
                        s.overlaps
                    ));
                }
                if s.token_regressions > 0 {
                    failures.add(format!(
                        "{who}: {} fencing tokens did not increase",
                        s.token_regressions
                    ));
                }
            }
            results.push((lib, s));
        }
        if pause.is_zero() {
            report.c = results;
            print_c(&mut report, &cfg);
        } else {
            report.c2 = results;
            print_c2(&mut report, &cfg);
        }
    }

    // Let the C/C2 clients' lingering unsubscribes finish before measuring CPU.
    std::thread::sleep(Duration::from_millis(2_500));
    let rs_script_inner: BTreeSet<String> = ["get", "set", "del"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    report.d = vec![
        hold_txcoord(&rt, &mut admin, &url, cfg.secs, ticks, &tx_inner),
        hold_rslock_using(&rt, &mut admin, &url, cfg.secs, ticks, &rs_script_inner),
        hold_rslock_manual(&rt, &mut admin, &url, cfg.secs, ticks, &rs_script_inner),
    ];
    for e in &report.d[0].errors {
        failures.add(format!("D: {e}"));
    }
    print_d(&mut report, &cfg, ticks);

    print_targets(&report);
    print_summary(&report, &cfg, &m);

    if let Ok(path) = std::env::var("BENCH_JSON") {
        if !path.is_empty() {
            let rss: Vec<(&str, Result<u64, String>)> = ["txcoord", "rslock"]
                .into_iter()
                .map(|lib| (lib, run_rss_probe(lib, &url)))
                .collect();
            print_rss(&rss, &cfg);
            let json = report_json(&report, &cfg, &m, &rss, &server);
            match std::fs::write(&path, json) {
                Ok(()) => println!("figures written to {path}\n"),
                Err(e) => {
                    eprintln!("cannot write BENCH_JSON {path}: {e}");
                    json_failed = true;
                }
            }
        }
    }

    println!("total run time: {:.0} s", began.elapsed().as_secs_f64());
    drop(admin);
    rt.shutdown_timeout(Duration::from_secs(2));
    drop(server);
    if failures.0.is_empty() {
        if json_failed {
            2
        } else {
            0
        }
    } else {
        println!("\ntxcoord problems seen during the run:");
        for f in &failures.0 {
            println!("- {f}");
        }
        1
    }
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if (s - s.round()).abs() < 1e-6 {
        format!("{s:.0} s")
    } else {
        format!("{s:.1} s")
    }
}

fn dash() -> String {
    "–".into()
}

/// Commands the client sent between two commandstats snapshots (not those run inside scripts,
/// not our INFO).
fn sent_commands(
    s0: &BTreeMap<String, u64>,
    s1: &BTreeMap<String, u64>,
    inner: &BTreeSet<String>,
) -> u64 {
    s1.iter()
        .filter(|(name, _)| name.as_str() != "info" && !inner.contains(name.as_str()))
        .map(|(name, &calls)| calls.saturating_sub(s0.get(name).copied().unwrap_or(0)))
        .sum()
}

#[allow(clippy::too_many_arguments)]
fn cycles_pair(
    rt: &tokio::runtime::Runtime,
    admin: &mut redis::Connection,
    url: &str,
    tasks: usize,
    length: Duration,
    tag: &str,
    tx_inner: &BTreeSet<String>,
    rs_inner: &BTreeSet<String>,
) -> (Cycles, Cycles) {
    let s0 = commandstats(admin);
    let mut tx = rt.block_on(txcoord_cycles(url, tasks, length, tag));
    let s1 = commandstats(admin);
    let mut rs = rt.block_on(rslock_cycles(url, tasks, length, &format!("{tag}-rs")));
    let s2 = commandstats(admin);
    let per_cycle = |sent: u64, c: &Cycles| {
        let n = c.cycles + c.warm;
        (n > 0).then(|| sent as f64 / n as f64)
    };
    tx.sent_per_cycle = per_cycle(sent_commands(&s0, &s1, tx_inner), &tx);
    rs.sent_per_cycle = per_cycle(sent_commands(&s1, &s2, rs_inner), &rs);
    (tx, rs)
}

fn cycles_row(t: &mut Table, name: &str, c: &Cycles, note: String) {
    t.row(vec![
        name.into(),
        num(c.rate()),
        ms_opt(percentile(&c.lat, 0.5)),
        ms_opt(percentile(&c.lat, 0.99)),
        c.sent_per_cycle
            .map(|x| format!("{x:.2}"))
            .unwrap_or_else(dash),
        format!("{note}{}", error_note(&c.errors)),
    ]);
}

const CYCLE_HEAD: [&str; 6] = [
    "client",
    "cycles/s",
    "cycle p50 ms",
    "cycle p99 ms",
    "cmds sent/cycle",
    "note",
];

fn print_a(r: &mut Report, cfg: &Config) {
    println!(
        "## (A) one task, acquire + release cycles, {}\n",
        secs(cfg.ab_secs)
    );
    let mut t = Table::new(&CYCLE_HEAD);
    cycles_row(
        &mut t,
        "txcoord",
        &r.tx_a,
        "LockManager::acquire_lock(r, 30 s, 10 s) + release_lock(r)".into(),
    );
    cycles_row(
        &mut t,
        "rslock",
        &r.rs_a,
        "lock(r, 30 s) + unlock(&lock)".into(),
    );
    if let Some(raw) = &r.raw_a {
        cycles_row(
            &mut t,
            "redis crate, by hand",
            raw,
            "the same two EVALSHA on a redis::aio::ConnectionManager (RESP3), as txcoord's \
             connection: the floor for a Rust client on this runtime"
                .into(),
        );
    }
    let rb_c1 = r.rb_cycles(0);
    if let Some(c) = r.rb.first() {
        let (p50, p99) = match (&c.acquire, &c.release) {
            (Ok(a), Ok(rel)) => (
                format!("≈{:.3}", a.p50_ms + rel.p50_ms),
                format!("≈{:.3}", a.p99_ms + rel.p99_ms),
            ),
            _ => (dash(), dash()),
        };
        t.row(vec![
            "redis-benchmark -c 1".into(),
            rb_c1.map(num).unwrap_or_else(dash),
            p50,
            p99,
            "2".into(),
            "the same two scripts; latency = acquire + release percentiles".into(),
        ]);
    }
    println!("{}", t.render());
    let ratio = rb_c1.map(|x| r.tx_a.rate() / x);
    let raw_note = match (&r.raw_a, rb_c1) {
        (Some(raw), Some(x)) if raw.rate() > 0.0 => format!(
            "; the redis crate by hand: {} of redis-benchmark, txcoord {} of it",
            percent(raw.rate() / x),
            percent(r.tx_a.rate() / raw.rate())
        ),
        _ => String::new(),
    };
    r.checks.push(Check {
        scenario: "A".into(),
        target: "txcoord ≥ 90% of redis-benchmark -c 1 cycles/s".into(),
        value: match (ratio, rb_c1) {
            (Some(q), Some(x)) => format!(
                "{} ({} vs {}){raw_note}",
                percent(q),
                num(r.tx_a.rate()),
                num(x)
            ),
            _ => "no redis-benchmark figure".into(),
        },
        met: ratio.map(|q| q >= 0.9),
    });
    print_checks(&r.checks[r.checks.len() - 1..]);
}

fn print_b(r: &mut Report, cfg: &Config) {
    println!(
        "## (B) {B_TASKS} tasks on their own keys, one client (one connection) per library, {}\n",
        secs(cfg.ab_secs)
    );
    let mut t = Table::new(&CYCLE_HEAD);
    cycles_row(
        &mut t,
        "txcoord",
        &r.tx_b,
        "one Client, one LockManager, acquire_lock + release_lock".into(),
    );
    cycles_row(
        &mut t,
        "rslock",
        &r.rs_b,
        "one LockManager, lock + unlock".into(),
    );
    for (i, name, note) in [
        (1, "redis-benchmark -c 50", "50 connections, no pipelining"),
        (
            2,
            "redis-benchmark -c 50 -P 16",
            "the ceiling: the server's rate for these two scripts",
        ),
    ] {
        t.row(vec![
            name.into(),
            r.rb_cycles(i).map(num).unwrap_or_else(dash),
            dash(),
            dash(),
            "2".into(),
            note.into(),
        ]);
    }
    println!("{}", t.render());
    let ceiling = r.rb_cycles(2);
    let of_ceiling = ceiling.map(|c| r.tx_b.rate() / c);
    r.checks.push(Check {
        scenario: "B".into(),
        target: "txcoord ≥ 50% of the pipelined ceiling".into(),
        value: match (of_ceiling, ceiling) {
            (Some(q), Some(c)) => format!("{} ({} vs {})", percent(q), num(r.tx_b.rate()), num(c)),
            _ => "no redis-benchmark figure".into(),
        },
        met: of_ceiling.map(|q| q >= 0.5),
    });
    let vs_rslock = (r.rs_b.rate() > 0.0).then(|| r.tx_b.rate() / r.rs_b.rate());
    r.checks.push(Check {
        scenario: "B".into(),
        target: "txcoord ≥ 1.5× rslock".into(),
        value: vs_rslock
            .map(|q| format!("{q:.2}× ({} vs {})", num(r.tx_b.rate()), num(r.rs_b.rate())))
            .unwrap_or_else(|| "no rslock figure".into()),
        met: vs_rslock.map(|q| q >= 1.5),
    });
    print_checks(&r.checks[r.checks.len() - 2..]);
    if let Some(c) = ceiling {
        if r.rs_b.rate() > 0.0 && c < 1.5 * r.rs_b.rate() {
            println!(
                "note: 1.5× rslock ({}) is above the server's own ceiling for txcoord's two \
                 scripts ({}): rslock's SET NX and 2-command unlock script cost Redis far less \
                 than txcoord's acquire and release scripts, so no client-side change can reach \
                 that target with this protocol.\n",
                num(1.5 * r.rs_b.rate()),
                num(c)
            );
        }
    }
}

fn print_c(r: &mut Report, cfg: &Config) {
    let title = format!(
        "## (C) {C_TASKS} tasks on one key, hold {} ms, {} (one client per task)",
        C_HOLD.as_millis(),
        secs(cfg.secs)
    );
    println!("{}", contention_table(&title, &r.c));
    print_contention_notes(&r.c, cfg);
    let Some((_, s)) = r.c.iter().find(|(l, _)| *l == Lib::TxFair) else {
        return;
    };
    let longest = Check {
        scenario: "C fair".into(),
        target: "longest wait ≤ 100 ms".into(),
        value: format!(
            "{}{} ms",
            if s.wait_max_cut { "≥" } else { "" },
            ms_opt(s.wait_max)
        ),
        met: s.wait_max.map(|d| d <= Duration::from_millis(100)),
    };
    let spread = Check {
        scenario: "C fair".into(),
        target: "per-task min/max ≥ 0.8".into(),
        value: format!(
            "{:.2} ({}/{})",
            s.min_max_ratio(),
            s.per_task_min,
            s.per_task_max
        ),
        met: Some(s.min_max_ratio() >= 0.8),
    };
    r.checks.push(longest);
    r.checks.push(spread);
    print_checks(&r.checks[r.checks.len() - 2..]);
}

fn print_c2(r: &mut Report, cfg: &Config) {
    let title = format!(
        "## (C2) {C_TASKS} tasks on one key, hold {} ms, pause {} ms after each release, {}",
        C_HOLD.as_millis(),
        C2_PAUSE.as_millis(),
        secs(cfg.secs)
    );
    println!("{}", contention_table(&title, &r.c2));
    print_contention_notes(&r.c2, cfg);
    let first = r.checks.len();
    for (lib, s) in r.c2.iter().filter(|(l, _)| l.is_txcoord()) {
        let scenario = format!("C2 {}", lib.mode());
        for (target, value, limit) in [
            ("handoff p50 ≤ 1 ms", s.handoff_p50, 1u64),
            ("handoff p99 ≤ 5 ms", s.handoff_p99, 5),
            ("wait p99 ≤ 10 ms", s.wait_p99, 10),
        ] {
            r.checks.push(Check {
                scenario: scenario.clone(),
                target: target.into(),
                value: format!("{} ms", ms_opt(value)),
                met: value.map(|d| d <= Duration::from_millis(limit)),
            });
        }
    }
    print_checks(&r.checks[first..]);
}

fn print_d(r: &mut Report, cfg: &Config, ticks: u64) {
    println!(
        "## (D) {D_LOCKS} locks, ttl {} ms, held {}\n",
        D_TTL.as_millis(),
        secs(cfg.secs)
    );
    let mut t = Table::new(&[
        "client",
        "renewal every",
        "held at end",
        "Redis cmds/s sent",
        "Redis cmds/s incl. in scripts",
        "client CPU % of one core",
    ]);
    for h in &r.d {
        t.row(vec![
            h.label.clone(),
            h.renewal.clone(),
            format!("{}/{D_LOCKS}", h.held_at_end),
            rate(h.top_level_per_s),
            rate(h.total_per_s),
            h.cpu_pct.map(|c| format!("{c:.2}%")).unwrap_or_else(dash),
        ]);
    }
    println!("{}", t.render());
    for h in &r.d {
        let cmds: Vec<String> = h
            .per_cmd
            .iter()
            .map(|(n, x)| format!("{n} {}", rate(*x)))
            .collect();
        println!(
            "- {}, calls/s per command over {}: {}",
            h.label,
            secs(h.window),
            if cmds.is_empty() {
                dash()
            } else {
                cmds.join(", ")
            }
        );
        for n in &h.notes {
            println!("  {n}");
        }
        for e in &h.errors {
            println!("  error: {e}");
        }
    }
    println!(
        "\n'sent' = what the client sent (EVALSHA and plain commands); 'incl. in scripts' adds the\n\
         commands the scripts run inside Redis (INFO commandstats counts both; the benchmark's own\n\
         INFO is left out). CPU = user + system time of this whole process (/proc/self/stat,\n\
         {ticks} ticks/s, so ±{:.2}% over this window) while nothing but the renewals runs. rslock\n\
         renews by itself only inside using(), whose period is fixed; the last row renews by hand.\n",
        100.0 / ticks as f64 / cfg.secs.as_secs_f64().max(0.1)
    );
    let tx_cpu = r.d.first().and_then(|h| h.cpu_pct);
    let rs_cpu = r.d.get(1).and_then(|h| h.cpu_pct);
    r.checks.push(Check {
        scenario: "D".into(),
        target: "txcoord client CPU ≤ 2% of one core".into(),
        value: match tx_cpu {
            Some(c) => format!(
                "{c:.2}% (rslock using(): {})",
                rs_cpu.map(|c| format!("{c:.2}%")).unwrap_or_else(dash)
            ),
            None => "no CPU figure".into(),
        },
        met: tx_cpu.map(|c| c <= 2.0),
    });
    print_checks(&r.checks[r.checks.len() - 1..]);
}

fn print_targets(r: &Report) {
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

/// A summary row of C/C2: its name and how to render it from the stats.
type Measure<'a> = (&'a str, &'a dyn Fn(&ContentionStats) -> String);

fn stats_of(v: &[(Lib, ContentionStats)], lib: Lib) -> Option<&ContentionStats> {
    v.iter().find(|(l, _)| *l == lib).map(|(_, s)| s)
}

fn print_summary(r: &Report, cfg: &Config, m: &Machine) {
    println!("## Summary (for the README)\n");
    println!(
        "`cargo bench -p txcoord --bench scenarios` ({}): {} × {}, Redis {}, client, server and \
         redis-benchmark on the same machine; A, B {} each; C, C2, D {} each.\n",
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
        "redis-benchmark",
        "target",
    ]);
    let lat = |c: &Cycles| {
        format!(
            "{} / {}",
            ms_opt(percentile(&c.lat, 0.5)),
            ms_opt(percentile(&c.lat, 0.99))
        )
    };
    let rb0 = r.rb.first();
    let rb_lat = match rb0.map(|c| (&c.acquire, &c.release)) {
        Some((Ok(a), Ok(rel))) => format!(
            "≈{:.3} / ≈{:.3}",
            a.p50_ms + rel.p50_ms,
            a.p99_ms + rel.p99_ms
        ),
        _ => dash(),
    };
    let result = |scenario: &str, prefix: &str| {
        r.check(scenario, prefix)
            .map(|c| format!("{}: {} {}", c.target, c.value, verdict(c.met)))
            .unwrap_or_else(dash)
    };
    t.row(vec![
        "A: 1 task".into(),
        "cycles/s".into(),
        num(r.tx_a.rate()),
        num(r.rs_a.rate()),
        format!("{} (-c 1)", r.rb_cycles(0).map(num).unwrap_or_else(dash)),
        format!(
            "≥ 90% of redis-benchmark: {} {}",
            r.rb_cycles(0)
                .map(|x| percent(r.tx_a.rate() / x))
                .unwrap_or_else(dash),
            r.verdict_of("A", "txcoord ≥ 90%")
        ),
    ]);
    t.row(vec![
        String::new(),
        "cycle p50 / p99 ms".into(),
        lat(&r.tx_a),
        lat(&r.rs_a),
        rb_lat,
        dash(),
    ]);
    t.row(vec![
        format!("B: {B_TASKS} tasks, own keys"),
        "cycles/s".into(),
        num(r.tx_b.rate()),
        num(r.rs_b.rate()),
        format!(
            "{} (-c 50), {} (-c 50 -P 16, ceiling)",
            r.rb_cycles(1).map(num).unwrap_or_else(dash),
            r.rb_cycles(2).map(num).unwrap_or_else(dash)
        ),
        format!(
            "≥ 50% of ceiling: {}; ≥ 1.5× rslock: {}",
            r.check("B", "txcoord ≥ 50%")
                .map(|c| format!(
                    "{} {}",
                    c.value.split(' ').next().unwrap_or(""),
                    verdict(c.met)
                ))
                .unwrap_or_else(dash),
            r.check("B", "txcoord ≥ 1.5×")
                .map(|c| format!(
                    "{} {}",
                    c.value.split(' ').next().unwrap_or(""),
                    verdict(c.met)
                ))
                .unwrap_or_else(dash),
        ),
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
        "cycle = acquire + release; wait = time inside the acquire call; handoff = from the start\n\
         of a release to the next acquisition by another task that was already waiting; back to\n\
         releaser = share of acquisitions by the task that had just released; per-task = fewest/most\n\
         acquisitions of one task (ratio). redis-benchmark runs txcoord's own acquire and release\n\
         scripts; its cycles/s = 1/(1/acquire + 1/release). rslock waits by retrying lock().\n"
    );
}

fn error_note(errors: &[String]) -> String {
    if errors.is_empty() {
        String::new()
    } else {
        format!("; {} (first: {})", errors.len(), errors[0])
    }
}

fn print_checks(checks: &[Check]) {
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

fn print_contention_notes(results: &[(Lib, ContentionStats)], cfg: &Config) {
    for (lib, s) in results {
        let mut parts = vec![format!(
            "{} acquisitions, {} handoffs to a waiting task",
            s.acquisitions, s.handoffs
        )];
        if s.cut_waits > 0 {
            parts.push(format!("{} waits cut by the end of the run", s.cut_waits));
        }
        if lib.is_txcoord() {
            parts.push(format!(
                "overlaps {}, fencing-token regressions {}",
                s.overlaps, s.token_regressions
            ));
        } else {
            parts.push(format!("overlaps {}", s.overlaps));
        }
        if let Some(w) = s.wake {
            parts.push(format!(
                "client counters until 5 ms before the end: {:.2} acquire attempts per \
                 acquisition; waits woken by a release notice {} times, by a timer (holder \
                 expiry or fallback poll) {} times; {} notices received, {} subscriptions",
                w.attempts as f64 / s.acquisitions.max(1) as f64,
                w.notified,
                w.timer,
                w.messages,
                w.subscribes
            ));
        }
        if !s.errors.is_empty() {
            parts.push(format!("errors: {}", s.errors.join("; ")));
        }
        println!("- {}: {}", lib.label(), parts.join("; "));
    }
    println!(
        "\nwait = time inside the acquire call; handoff = from the start of a release to the next\n\
         acquisition by another task that was already waiting; back to releaser = share of\n\
         acquisitions made by the task that released just before; hold = 1 ms sleep on a blocking\n\
         thread (tokio's timer would round it up to ~2 ms), measured from acquired to release start\n\
         (a hold far above 1 ms means the machine stalled the run). All tasks start together.\n\
         rslock waits by calling lock() again (set_retry({RSLOCK_RETRIES}, {} ms): SET NX, then a random\n\
         0–{} ms sleep between attempts); it has no fair mode and no release notification.\n",
        cfg.rslock_retry.as_millis(),
        cfg.rslock_retry.as_millis()
    );
}

// ---------------------------------------------------------------------------------------------
// Figures as JSON, for scripts/bench.sh (schema: bindings-python/benchmark/report.py)
// ---------------------------------------------------------------------------------------------

/// A JSON value, written by hand (the benchmark has no JSON dependency).
enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(&'static str, Json)>),
}

impl Json {
    fn render(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Num(x) if x.is_finite() => {
                if x.fract() == 0.0 && x.abs() < 1e15 {
                    out.push_str(&format!("{}", *x as i64));
                } else {
                    out.push_str(&format!("{x:.6}"));
                }
            }
            Json::Num(_) => out.push_str("null"),
            Json::Str(s) => {
                out.push('"');
                for c in s.chars() {
                    match c {
                        '"' => out.push_str("\\\""),
                        '\\' => out.push_str("\\\\"),
                        '\n' => out.push_str("\\n"),
                        c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                        c => out.push(c),
                    }
                }
                out.push('"');
            }
            Json::Arr(v) => {
                out.push('[');
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    x.render(out);
                }
                out.push(']');
            }
            Json::Obj(v) => {
                out.push('{');
                for (i, (k, x)) in v.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    Json::Str(k.to_string()).render(out);
                    out.push(':');
                    x.render(out);
                }
                out.push('}');
            }
        }
    }
}

fn j_ms(d: Option<Duration>) -> Json {
    d.map(|d| Json::Num(d.as_secs_f64() * 1000.0))
        .unwrap_or(Json::Null)
}

fn j_strs(v: &[String]) -> Json {
    Json::Arr(v.iter().map(|s| Json::Str(s.clone())).collect())
}

fn j_cycles(c: &Cycles, tasks: usize, how: &str) -> Json {
    Json::Obj(vec![
        ("rate", Json::Num(c.rate())),
        ("cycles", Json::Num(c.cycles as f64)),
        ("tasks", Json::Num(tasks as f64)),
        ("p50_ms", j_ms(percentile(&c.lat, 0.5))),
        ("p99_ms", j_ms(percentile(&c.lat, 0.99))),
        (
            "cmds_per_cycle",
            c.sent_per_cycle.map(Json::Num).unwrap_or(Json::Null),
        ),
        ("how", Json::Str(how.into())),
        ("errors", j_strs(&c.errors)),
    ])
}

fn j_contention(s: &ContentionStats, how: &str) -> Json {
    Json::Obj(vec![
        ("acq_per_s", Json::Num(s.per_s)),
        ("acquisitions", Json::Num(s.acquisitions as f64)),
        ("wait_p50_ms", j_ms(s.wait_p50)),
        ("wait_p99_ms", j_ms(s.wait_p99)),
        ("wait_max_ms", j_ms(s.wait_max)),
        ("wait_max_cut", Json::Bool(s.wait_max_cut)),
        ("handoffs", Json::Num(s.handoffs as f64)),
        ("handoff_p50_ms", j_ms(s.handoff_p50)),
        ("handoff_p99_ms", j_ms(s.handoff_p99)),
        (
            "back_share",
            s.back_share.map(Json::Num).unwrap_or(Json::Null),
        ),
        ("per_task_min", Json::Num(s.per_task_min as f64)),
        ("per_task_max", Json::Num(s.per_task_max as f64)),
        ("hold_mean_ms", j_ms(s.hold_mean)),
        ("hold_max_ms", j_ms(s.hold_max)),
        ("overlaps", Json::Num(s.overlaps as f64)),
        ("how", Json::Str(how.into())),
        ("errors", j_strs(&s.errors)),
    ])
}

fn j_hold(h: &Hold) -> Json {
    let mut errors = h.errors.clone();
    errors.extend(h.notes.iter().filter(|n| n.contains("lost")).cloned());
    Json::Obj(vec![
        ("locks", Json::Num(D_LOCKS as f64)),
        ("held", Json::Num(h.held_at_end as f64)),
        ("cpu_pct", h.cpu_pct.map(Json::Num).unwrap_or(Json::Null)),
        ("cmds_per_s", Json::Num(h.top_level_per_s)),
        ("cmds_incl_scripts_per_s", Json::Num(h.total_per_s)),
        ("renewal", Json::Str(h.renewal.clone())),
        ("how", Json::Str(h.label.clone())),
        ("errors", j_strs(&h.errors)),
    ])
}

fn report_json(
    r: &Report,
    cfg: &Config,
    m: &Machine,
    rss: &[(&str, Result<u64, String>)],
    server: &Server,
) -> String {
    let c_of = |v: &[(Lib, ContentionStats)], lib: Lib, how: &str| {
        stats_of(v, lib)
            .map(|s| j_contention(s, how))
            .unwrap_or(Json::Null)
    };
    let rss_of = |lib: &str| match rss.iter().find(|(l, _)| *l == lib) {
        Some((_, Ok(k))) => Json::Num(*k as f64),
        _ => Json::Null,
    };
    let tx_wait = "LockManager::acquire_lock_with (release notification wake-up)";
    let rs_wait = format!(
        "lock() again until the deadline (set_retry({RSLOCK_RETRIES}, {} ms))",
        cfg.rslock_retry.as_millis()
    );
    let txcoord = Json::Obj(vec![
        ("id", Json::Str("txcoord".into())),
        (
            "label",
            Json::Str(format!("txcoord {}", env!("CARGO_PKG_VERSION"))),
        ),
        ("fair_mode", Json::Bool(true)),
        (
            "A",
            j_cycles(&r.tx_a, 1, "LockManager acquire_lock + release_lock"),
        ),
        (
            "B",
            j_cycles(
                &r.tx_b,
                B_TASKS,
                "one Client, one LockManager, acquire_lock + release_lock",
            ),
        ),
        (
            "C",
            Json::Obj(vec![
                ("default", c_of(&r.c, Lib::TxDefault, tx_wait)),
                ("fair", c_of(&r.c, Lib::TxFair, tx_wait)),
            ]),
        ),
        (
            "C2",
            Json::Obj(vec![
                ("default", c_of(&r.c2, Lib::TxDefault, tx_wait)),
                ("fair", c_of(&r.c2, Lib::TxFair, tx_wait)),
            ]),
        ),
        ("D", r.d.first().map(j_hold).unwrap_or(Json::Null)),
        ("peak_rss_kib", rss_of("txcoord")),
    ]);
    let rslock = Json::Obj(vec![
        ("id", Json::Str("rslock".into())),
        ("label", Json::Str("rslock 0.10".into())),
        ("fair_mode", Json::Bool(false)),
        ("A", j_cycles(&r.rs_a, 1, "lock + unlock")),
        (
            "B",
            j_cycles(&r.rs_b, B_TASKS, "one LockManager, lock + unlock"),
        ),
        (
            "C",
            Json::Obj(vec![("default", c_of(&r.c, Lib::Rslock, &rs_wait))]),
        ),
        (
            "C2",
            Json::Obj(vec![("default", c_of(&r.c2, Lib::Rslock, &rs_wait))]),
        ),
        ("D", r.d.get(1).map(j_hold).unwrap_or(Json::Null)),
        ("peak_rss_kib", rss_of("rslock")),
    ]);
    let mut notes = Vec::new();
    if let Some(h) = r.d.get(2) {
        notes.push(format!(
            "rslock D with extend() by hand every 333 ms: client CPU {}, {} Redis cmds/s sent",
            h.cpu_pct.map(|c| format!("{c:.2}%")).unwrap_or_else(dash),
            rate(h.top_level_per_s)
        ));
    }
    if let (Some(a), Some(b), Some(c)) = (r.rb_cycles(0), r.rb_cycles(1), r.rb_cycles(2)) {
        notes.push(format!(
            "redis-benchmark running txcoord's own two scripts: {} cycles/s at -c 1, {} at -c 50, \
             {} at -c 50 -P 16 (the server's ceiling)",
            num(a),
            num(b),
            num(c)
        ));
    }
    if let Some(raw) = &r.raw_a {
        notes.push(format!(
            "the same two EVALSHA sent by hand on the redis crate, one task: {} cycles/s",
            num(raw.rate())
        ));
    }
    let doc = Json::Obj(vec![
        ("lang", Json::Str("rust".into())),
        (
            "runtime",
            Json::Str(format!(
                "tokio multi-thread runtime ({} workers), {} build",
                m.nproc,
                if cfg!(debug_assertions) {
                    "debug"
                } else {
                    "release"
                }
            )),
        ),
        ("server", Json::Str(server.url())),
        ("redis_version", Json::Str(m.redis_version.clone())),
        ("ab_secs", Json::Num(cfg.ab_secs.as_secs_f64())),
        ("secs", Json::Num(cfg.secs.as_secs_f64())),
        (
            "rss_note",
            Json::Str(format!(
                "peak RSS (VmHWM) of a child process running A and B for {} and C, C2, D for {} \
                 with that library alone",
                secs(PROBE_AB.min(cfg.ab_secs)),
                secs(PROBE_SECS.min(cfg.secs))
            )),
        ),
        ("libs", Json::Arr(vec![txcoord, rslock])),
        ("notes", j_strs(&notes)),
    ]);
    let mut out = String::new();
    doc.render(&mut out);
    out.push('\n');
    out
}

// ---------------------------------------------------------------------------------------------
// Peak RSS per library: this program again, in a child process, one library alone
// ---------------------------------------------------------------------------------------------

/// Lengths of A/B and of C, C2 and D in the RSS probe (shorter than the measured run: the
/// figure is the footprint of the library and its connections, not of a long run).
const PROBE_AB: Duration = Duration::from_secs(1);
const PROBE_SECS: Duration = Duration::from_secs(2);

/// A `kB` field of /proc/self/status (VmRSS, VmHWM), in KiB.
fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn open_fds() -> Option<usize> {
    std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count())
}

/// Runs this program as `BENCH_RSS_PROBE=<lib>` and reads the peak RSS it prints.
fn run_rss_probe(lib: &str, url: &str) -> Result<u64, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut child = Command::new(exe)
        .args(std::env::args().skip(1))
        .env("BENCH_RSS_PROBE", lib)
        .env("BENCH_REDIS_URL", url)
        .env_remove("BENCH_JSON")
        .env_remove("BENCH_SOAK")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("spawning the probe: {e}"))?;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let limit = Duration::from_secs(180);
    let started = std::time::Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("the RSS probe ran longer than 180 s; killed".into());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("waiting for the probe: {e}")),
        }
    };
    let out = reader.join().unwrap_or_default();
    if !status.success() {
        return Err(format!("the RSS probe failed ({status}): {}", out.trim()));
    }
    out.lines()
        .find_map(|l| l.strip_prefix("BENCH_PEAK_RSS_KIB="))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("no BENCH_PEAK_RSS_KIB line in {:?}", out.trim()))
}

fn print_rss(rss: &[(&str, Result<u64, String>)], cfg: &Config) {
    println!("## Peak RSS\n");
    let mut t = Table::new(&["library", "peak RSS MiB", "note"]);
    for (lib, r) in rss {
        let (v, note) = match r {
            Ok(k) => (format!("{:.1}", *k as f64 / 1024.0), String::new()),
            Err(e) => (dash(), e.clone()),
        };
        t.row(vec![lib.to_string(), v, note]);
    }
    println!("{}", t.render());
    println!(
        "VmHWM of a child process of this program that runs A and B ({} each) and C, C2 and D \
         ({} each) for that library alone: the library, its connections, the tokio runtime and \
         the harness's latency samples (16 bytes per cycle).\n",
        secs(PROBE_AB.min(cfg.ab_secs)),
        secs(PROBE_SECS.min(cfg.secs))
    );
}

/// The child side of [`run_rss_probe`]: the scenarios for one library, then `VmHWM`.
fn rss_probe(lib: &str) -> i32 {
    let cfg = Config::from_env();
    let ab = PROBE_AB.min(cfg.ab_secs);
    let secs = PROBE_SECS.min(cfg.secs);
    let cfg = Config {
        secs,
        ab_secs: ab,
        ..cfg
    };
    let server = match Server::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rss probe: {e}");
            return 2;
        }
    };
    let url = server.url();
    let mut admin = match server.connection() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rss probe: {e}");
            return 2;
        }
    };
    let ticks = clock_ticks_per_second();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let none = BTreeSet::new();
    let mut errors: Vec<String> = Vec::new();
    let tag = format!("rss-{lib}");
    match lib {
        "txcoord" => {
            for tasks in [1, B_TASKS] {
                let c = rt.block_on(txcoord_cycles(&url, tasks, ab, &format!("{tag}-{tasks}")));
                errors.extend(c.errors);
            }
            for pause in [Duration::ZERO, C2_PAUSE] {
                for l in [Lib::TxDefault, Lib::TxFair] {
                    let key = format!("bench:{tag}:{}:{}", l.mode(), pause.as_millis());
                    let run = rt.block_on(contend(&cfg, &url, l, key, pause));
                    errors.extend(contention_stats(&run).errors);
                }
            }
            let h = hold_txcoord(&rt, &mut admin, &url, secs, ticks, &none);
            errors.extend(h.errors);
        }
        "rslock" => {
            for tasks in [1, B_TASKS] {
                let c = rt.block_on(rslock_cycles(&url, tasks, ab, &format!("{tag}-{tasks}")));
                errors.extend(c.errors);
            }
            for pause in [Duration::ZERO, C2_PAUSE] {
                let key = format!("bench:{tag}:{}", pause.as_millis());
                let run = rt.block_on(contend(&cfg, &url, Lib::Rslock, key, pause));
                errors.extend(contention_stats(&run).errors);
            }
            let h = hold_rslock_using(&rt, &mut admin, &url, secs, ticks, &none);
            errors.extend(h.errors);
        }
        other => {
            eprintln!("BENCH_RSS_PROBE={other:?}: not a library of this program");
            return 2;
        }
    }
    for e in errors.iter().take(5) {
        eprintln!("rss probe {lib}: {e}");
    }
    let peak = proc_status_kib("VmHWM").unwrap_or(0);
    rt.shutdown_timeout(Duration::from_secs(2));
    println!("BENCH_PEAK_RSS_KIB={peak}");
    0
}

// ---------------------------------------------------------------------------------------------
// The soak: BENCH_SOAK=cycles
// ---------------------------------------------------------------------------------------------

const SOAK_TASKS: usize = 50;
/// RSS may grow by this share, or by SOAK_SLACK_KIB, whichever is larger.
const SOAK_SLACK_SHARE: f64 = 0.05;
const SOAK_SLACK_KIB: u64 = 10 * 1024;

fn soak(cycles: u64) -> i32 {
    let cycles = cycles.max(1_000);
    let server = match Server::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("BENCH_REDIS_URL: {e}");
            return 2;
        }
    };
    let url = server.url();
    let mut admin = match server.connection() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let keys_before = dbsize(&mut admin);
    println!(
        "# Rust soak: {} acquire+release cycles, {SOAK_TASKS} tasks, one Client and LockManager, \
         a new resource each cycle ({}, {} build)\n",
        num(cycles as f64),
        server.describe(),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    let step = (cycles / 10).max(1);
    let began = std::time::Instant::now();
    let result = rt.block_on(async {
        let client = Client::open(&url).map_err(|e| e.to_string())?;
        let mgr = LockManager::new(&client);
        for i in 0..WARM_CYCLES {
            let res = format!("soak:warm:{i}");
            if let Ok(Some(_)) = mgr.acquire_lock(&res, AB_TTL, AB_TIMEOUT).await {
                mgr.release_lock(&res)
                    .await
                    .map_err(|e| format!("warm-up: {e}"))?;
            }
        }
        let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let marks = Arc::new(std::sync::Mutex::new(Vec::<(u64, u64, f64)>::new()));
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..SOAK_TASKS {
            let (mgr, next, done, marks) = (mgr.clone(), next.clone(), done.clone(), marks.clone());
            set.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= cycles {
                        return Ok::<(), String>(());
                    }
                    let res = format!("soak:{i}");
                    match mgr.acquire_lock(&res, AB_TTL, AB_TIMEOUT).await {
                        Ok(Some(_)) => {}
                        Ok(None) => return Err(format!("{res}: timed out on a free key")),
                        Err(e) => return Err(format!("{res}: acquire_lock: {e}")),
                    }
                    mgr.release_lock(&res)
                        .await
                        .map_err(|e| format!("{res}: release_lock: {e}"))?;
                    let d = done.fetch_add(1, Ordering::SeqCst) + 1;
                    if d % step == 0 {
                        let rss = proc_status_kib("VmRSS").unwrap_or(0);
                        let t = began.elapsed().as_secs_f64();
                        println!(
                            "  {:>9} cycles  RSS {:>7.1} MiB  {:>6.1} s  {:>7} cycles/s",
                            num(d as f64),
                            rss as f64 / 1024.0,
                            t,
                            num(d as f64 / t.max(1e-9))
                        );
                        marks
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push((d, rss, t));
                    }
                }
            });
        }
        let mut errors = Vec::new();
        let limit = Duration::from_secs(3_600);
        let joined = tokio::time::timeout(limit, async {
            while let Some(r) = set.join_next().await {
                match r {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => errors.push(e),
                    Err(e) => errors.push(format!("task failed: {e}")),
                }
            }
        })
        .await;
        if joined.is_err() {
            set.abort_all();
            errors.push("the soak did not finish within an hour".into());
        }
        // Renewals are dropped by the scheduler as their locks go; give it a moment.
        let until = Instant::now() + Duration::from_secs(2);
        while client.scheduled_renewals() > 0 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let marks = marks.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Ok::<_, String>((
            marks,
            errors,
            client.scheduled_renewals(),
            mgr.held_resources().len(),
            client.stats(),
            done.load(Ordering::SeqCst),
        ))
    });
    let elapsed = began.elapsed();
    let (marks, errors, renewals, held, stats, done) = match result {
        Ok(x) => x,
        Err(e) => {
            eprintln!("soak: {e}");
            return 1;
        }
    };
    let fds = open_fds();
    let rss_end = proc_status_kib("VmRSS");
    let keys_after = dbsize(&mut admin);
    let at = |n: u64| {
        marks
            .iter()
            .filter(|(d, _, _)| *d >= n)
            .min_by_key(|(d, _, _)| *d)
            .map(|(_, r, _)| *r)
    };
    let (early, late) = (at(cycles / 5), at(cycles));
    let flat = match (early, late) {
        (Some(a), Some(b)) => {
            let allowed = ((a as f64 * SOAK_SLACK_SHARE) as u64).max(SOAK_SLACK_KIB);
            Some(b <= a + allowed)
        }
        _ => None,
    };
    println!(
        "\n{} cycles in {:.1} s ({} cycles/s); errors {}; RSS at {} cycles {} MiB, at {} cycles {} \
         MiB → {}; open fds {}; scheduled renewals {renewals}; manager still holding {held}; client \
         counters: {} acquired, {} released; Redis keys left by the soak {}",
        num(done as f64),
        elapsed.as_secs_f64(),
        num(done as f64 / elapsed.as_secs_f64().max(1e-9)),
        errors.len(),
        num((cycles / 5) as f64),
        early
            .map(|k| format!("{:.1}", k as f64 / 1024.0))
            .unwrap_or_else(dash),
        num(cycles as f64),
        late.map(|k| format!("{:.1}", k as f64 / 1024.0))
            .unwrap_or_else(dash),
        match flat {
            Some(true) => "flat",
            Some(false) => "GROWING",
            None => "unknown",
        },
        fds.map(|f| f.to_string()).unwrap_or_else(dash),
        stats.acquired,
        stats.released,
        keys_after.saturating_sub(keys_before)
    );
    for e in errors.iter().take(5) {
        println!("  error: {e}");
    }
    let opt = |v: Option<u64>| v.map(|x| Json::Num(x as f64)).unwrap_or(Json::Null);
    let line = Json::Obj(vec![
        ("lang", Json::Str("rust".into())),
        ("lib", Json::Str("txcoord".into())),
        ("cycles", Json::Num(done as f64)),
        ("seconds", Json::Num(elapsed.as_secs_f64())),
        ("tasks", Json::Num(SOAK_TASKS as f64)),
        ("rss_early_at", Json::Num((cycles / 5) as f64)),
        ("rss_early_kib", opt(early)),
        ("rss_end_kib", opt(late)),
        ("rss_final_kib", opt(rss_end)),
        (
            "marks",
            Json::Arr(
                marks
                    .iter()
                    .map(|(d, r, _)| Json::Arr(vec![Json::Num(*d as f64), Json::Num(*r as f64)]))
                    .collect(),
            ),
        ),
        (
            "fds",
            fds.map(|f| Json::Num(f as f64)).unwrap_or(Json::Null),
        ),
        ("scheduled_renewals", Json::Num(renewals as f64)),
        ("held_resources", Json::Num(held as f64)),
        (
            "redis_keys_left",
            Json::Num(keys_after.saturating_sub(keys_before) as f64),
        ),
        ("errors", j_strs(&errors)),
    ]);
    let mut out = String::new();
    line.render(&mut out);
    println!("SOAK_RESULT {out}");
    rt.shutdown_timeout(Duration::from_secs(2));
    drop(server);
    if !errors.is_empty() || done < cycles {
        1
    } else if flat == Some(false) {
        3
    } else {
        0
    }
}
