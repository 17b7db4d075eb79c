// SPDX-License-Identifier: MIT OR Apache-2.0
//! The pipelined ceiling: `redis-benchmark -c 50 -P 16` sending each side's real commands,
//! one command per run, combined into cycles per second.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::Serialize;
use txcoord::protocol;

use crate::capture::{Captured, RB_UUID};
use crate::config::{Config, AB_TTL};
use crate::fmt::{dash, median, num, percent, shell_line, Table};
use crate::server::{dbsize, server_cpu, Server};

pub const CLIENTS: u32 = 50;
pub const PIPELINE: u32 = 16;
/// Keys of the random keyspace of an acquire run: every call finds a free lock.
const FRESH_KEYSPACE: u64 = 1_000_000_000;
/// The lock keys redis-benchmark draws (`__rand_int__` is a 12-digit number).
const KEY_PATTERN: &str = "lock:bench:__rand_int__";

#[derive(Clone, Copy, Debug)]
pub struct RbRun {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

pub fn find_redis_benchmark() -> Option<String> {
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

/// Parses the result line of `redis-benchmark --csv`: `"test","rps","avg_latency_ms",
/// "min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"`,
/// read from the end (the test name is the command, which may contain commas).
pub fn parse_csv(out: &str) -> Option<RbRun> {
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
            return Some(RbRun {
                rps: fields[6],
                p50_ms: fields[3],
                p99_ms: fields[1],
            });
        }
    }
    None
}

/// Runs redis-benchmark once (killed if it outlives `limit`).
pub fn redis_benchmark(
    bin: &str,
    server: &Server,
    requests: u64,
    keyspace: u64,
    command: &[String],
    limit: Duration,
) -> Result<RbRun, String> {
    let mut cmd = Command::new(bin);
    cmd.args(["-h", server.host(), "-p", &server.port().to_string()])
        .args(["-c", &CLIENTS.to_string(), "-n", &requests.to_string()])
        .args(["-P", &PIPELINE.to_string(), "-r", &keyspace.to_string()])
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
    let error_line = |l: &&str| l.contains("Error from server") || l.contains("NOSCRIPT");
    if let Some(line) = out.lines().chain(err.lines()).find(error_line) {
        return Err(format!(
            "redis-benchmark saw error replies: {}",
            line.trim()
        ));
    }
    parse_csv(&out).ok_or_else(|| {
        format!(
            "no result line in redis-benchmark output: {:?} {:?}",
            out.trim(),
            err.trim()
        )
    })
}

/// Fills the keys of [`KEY_PATTERN`] for `0 .. keyspace` with held locks of value `value`, so
/// that release calls on random keys of that range find a held lock.
fn fill_held_locks(
    admin: &mut redis::Connection,
    value: &str,
    keyspace: u64,
) -> redis::RedisResult<()> {
    const FILL: &str = r#"
for i = tonumber(ARGV[3]), tonumber(ARGV[4]) do
  redis.call('SET', (string.gsub(ARGV[5], '__rand_int__', string.format('%012d', i))),
    ARGV[1], 'PX', ARGV[2])
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
            .arg(value)
            .arg(600_000)
            .arg(from)
            .arg(to)
            .arg(KEY_PATTERN)
            .query::<i64>(admin)?;
        from = to + 1;
    }
    Ok(())
}

/// The compare-and-delete release script of the seed (its `DistributedLock.release`).
pub const SEED_RELEASE_LUA: &str = r#"
      if redis.call("get", KEYS[1]) == ARGV[1] then
        return redis.call("del", KEYS[1])
      else
        return 0
      end
    "#;

/// One side of the ceiling: the commands of an acquire and of a release, and the value a held
/// lock has (what the releases find).
pub struct Side {
    pub id: &'static str,
    pub label: &'static str,
    pub acquire: Vec<Vec<String>>,
    pub release: Vec<Vec<String>>,
    pub held_value: String,
}

pub fn seed_side() -> Side {
    let sha = redis::Script::new(SEED_RELEASE_LUA).get_hash().to_string();
    let ttl = AB_TTL.as_millis().to_string();
    let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    Side {
        id: "seed",
        label: "the seed's commands",
        acquire: vec![args(&["SET", KEY_PATTERN, RB_UUID, "NX", "PX", &ttl])],
        release: vec![args(&["EVALSHA", &sha, "1", KEY_PATTERN, RB_UUID])],
        held_value: RB_UUID.into(),
    }
}

pub fn captured_side(id: &'static str, label: &'static str, c: &Captured) -> Side {
    let (acquire, release) = c.for_benchmark();
    Side {
        id,
        label,
        acquire,
        release,
        held_value: c.benchmark_value(),
    }
}

/// A command in a few words: its name, or the script an `EVALSHA` runs.
pub fn short_name(args: &[String]) -> String {
    let name = args
        .first()
        .map(|a| a.to_ascii_uppercase())
        .unwrap_or_default();
    if name == "EVALSHA" {
        let sha = args.get(1).map(String::as_str).unwrap_or("");
        let scripts: [(&str, &str); 4] = [
            (&protocol::ACQUIRE_LUA, "acquire.lua"),
            (&protocol::RELEASE_LUA, "release.lua"),
            (&protocol::RELEASE_HOLD_LUA, "release_hold.lua"),
            (SEED_RELEASE_LUA, "the seed's compare-and-delete"),
        ];
        for (src, script) in scripts {
            if redis::Script::new(src).get_hash().eq_ignore_ascii_case(sha) {
                return format!("EVALSHA {script}");
            }
        }
        return "EVALSHA".into();
    }
    if name == "SET" && args.iter().any(|a| a.eq_ignore_ascii_case("NX")) {
        return "SET NX PX".into();
    }
    name
}

/// Every run of one command of a side.
#[derive(Serialize, Clone, Debug)]
pub struct CommandRuns {
    pub step: &'static str,
    /// The command in a few words ([`short_name`]) and in full.
    pub name: String,
    pub command: String,
    pub rps: Vec<f64>,
    /// Server CPU per request during each run, µs.
    pub server_us: Vec<f64>,
    /// Release runs: the share of requests that found a held lock.
    pub hit: Vec<f64>,
    pub errors: Vec<String>,
    #[serde(skip)]
    next_requests: u64,
}

#[derive(Serialize, Clone, Debug)]
pub struct CeilingSide {
    pub id: &'static str,
    pub label: &'static str,
    pub commands: Vec<CommandRuns>,
    /// Per repetition: 1 / Σ (1 / rate of each command).
    pub cycles_per_s: Vec<f64>,
    /// Per repetition: Σ server CPU per request of each command, µs.
    pub server_us_per_cycle: Vec<f64>,
}

impl CeilingSide {
    pub fn median_cycles(&self) -> Option<f64> {
        median(&self.cycles_per_s)
    }
    pub fn median_server_us(&self) -> Option<f64> {
        median(&self.server_us_per_cycle)
    }
}

#[derive(Serialize, Clone, Debug)]
pub struct Ceiling {
    pub clients: u32,
    pub pipeline: u32,
    pub reps: usize,
    pub sides: Vec<CeilingSide>,
    pub notes: Vec<String>,
}

/// One run of one command; adds its figures to `runs`.
fn run_command(
    bin: &str,
    server: &Server,
    admin: &mut redis::Connection,
    cfg: &Config,
    release_of: Option<&str>,
    command: &[String],
    runs: &mut CommandRuns,
) -> Option<(f64, f64)> {
    let n = runs.next_requests;
    server.flushall(admin);
    let keyspace = match release_of {
        Some(value) => {
            let keyspace = (n * 4).min(2_000_000);
            if let Err(e) = fill_held_locks(admin, value, keyspace) {
                runs.errors.push(format!("filling held locks: {e}"));
                return None;
            }
            keyspace
        }
        None => FRESH_KEYSPACE,
    };
    let keys_before = dbsize(admin);
    let cpu0 = server_cpu(admin);
    let r = redis_benchmark(bin, server, n, keyspace, command, Duration::from_secs(120));
    let cpu1 = server_cpu(admin);
    let keys_after = dbsize(admin);
    server.flushall(admin);
    match r {
        Ok(r) => {
            runs.rps.push(r.rps);
            let us = match (cpu0, cpu1) {
                (Some(a), Some(b)) => b.saturating_sub(a).as_secs_f64() * 1e6 / n as f64,
                _ => f64::NAN,
            };
            runs.server_us.push(us);
            if release_of.is_some() {
                runs.hit
                    .push((keys_before.saturating_sub(keys_after) as f64 / n as f64).min(1.0));
            }
            runs.next_requests = ((r.rps * cfg.rb_secs) as u64).clamp(2_000, cfg.rb_max_requests);
            Some((r.rps, us))
        }
        Err(e) => {
            runs.errors.push(e);
            None
        }
    }
}

/// The ceiling of every side, `reps` times alternating between the sides.
pub fn ceiling(
    cfg: &Config,
    server: &Server,
    admin: &mut redis::Connection,
    sides: &[Side],
    reps: usize,
) -> Result<Ceiling, String> {
    let bin = find_redis_benchmark().ok_or("redis-benchmark not found (install redis-tools)")?;
    let mut out: Vec<CeilingSide> = sides
        .iter()
        .map(|s| CeilingSide {
            id: s.id,
            label: s.label,
            commands: s
                .acquire
                .iter()
                .map(|c| ("acquire", c))
                .chain(s.release.iter().map(|c| ("release", c)))
                .map(|(step, c)| CommandRuns {
                    step,
                    name: short_name(c),
                    command: shell_line(c),
                    rps: Vec::new(),
                    server_us: Vec::new(),
                    hit: Vec::new(),
                    errors: Vec::new(),
                    next_requests: cfg.rb_first_requests,
                })
                .collect(),
            cycles_per_s: Vec::new(),
            server_us_per_cycle: Vec::new(),
        })
        .collect();
    for _ in 0..reps {
        for (side, result) in sides.iter().zip(out.iter_mut()) {
            let mut inv_rate = 0.0;
            let mut us = 0.0;
            let mut complete = true;
            let steps = side.acquire.iter().map(|c| (None, c)).chain(
                side.release
                    .iter()
                    .map(|c| (Some(side.held_value.as_str()), c)),
            );
            for ((release_of, command), runs) in steps.zip(result.commands.iter_mut()) {
                match run_command(&bin, server, admin, cfg, release_of, command, runs) {
                    Some((rps, u)) if rps > 0.0 => {
                        inv_rate += 1.0 / rps;
                        us += u;
                    }
                    _ => complete = false,
                }
            }
            if complete {
                result.cycles_per_s.push(1.0 / inv_rate);
                result.server_us_per_cycle.push(us);
            }
        }
    }
    Ok(Ceiling {
        clients: CLIENTS,
        pipeline: PIPELINE,
        reps,
        sides: out,
        notes: Vec::new(),
    })
}

pub fn print_ceiling(c: &Result<Ceiling, String>) {
    println!("## The pipelined ceiling: redis-benchmark -c {CLIENTS} -P {PIPELINE}, each side's commands\n");
    let c = match c {
        Ok(c) => c,
        Err(e) => {
            println!("not measured: {e}\n");
            return;
        }
    };
    let seed = c
        .sides
        .iter()
        .find(|s| s.id == "seed")
        .and_then(CeilingSide::median_cycles);
    let mut t = Table::new(&[
        "side",
        "command",
        "req/s (median)",
        "server µs/req",
        "release hit",
        "cycles/s (median)",
        "runs",
        "vs seed",
        "server µs/cycle",
    ]);
    for s in &c.sides {
        for (i, r) in s.commands.iter().enumerate() {
            let first = i == 0;
            let runs = s
                .cycles_per_s
                .iter()
                .map(|x| num(*x))
                .collect::<Vec<_>>()
                .join(" / ");
            t.row(vec![
                if first {
                    s.label.to_string()
                } else {
                    String::new()
                },
                format!("{}: {}", r.step, r.name),
                median(&r.rps).map(num).unwrap_or_else(|| {
                    r.errors
                        .first()
                        .map(|e| format!("error: {e}"))
                        .unwrap_or_else(dash)
                }),
                median(&r.server_us)
                    .map(|x| format!("{x:.2}"))
                    .unwrap_or_else(dash),
                median(&r.hit).map(percent).unwrap_or_else(dash),
                if first {
                    s.median_cycles().map(num).unwrap_or_else(dash)
                } else {
                    String::new()
                },
                if first { runs } else { String::new() },
                match (first, s.median_cycles(), seed) {
                    (true, Some(x), Some(b)) => format!("{:.2}×", x / b),
                    _ => String::new(),
                },
                if first {
                    s.median_server_us()
                        .map(|x| format!("{x:.2}"))
                        .unwrap_or_else(dash)
                } else {
                    String::new()
                },
            ]);
        }
    }
    println!("{}", t.render());
    println!(
        "The commands in full are those of the MONITOR capture above (the seed's: SET K v NX PX \
         30000, EVALSHA of its compare-and-delete). \
         Each command runs alone (redis-benchmark repeats one command), {CLIENTS} connections, \
         {PIPELINE} requests per write; cycles/s = 1/Σ(1/req/s) over a side's commands, per \
         repetition, median of {} repetitions run alternately. Acquires run on fresh random keys \
         (every call is granted); releases run on random keys of a keyspace pre-filled with held \
         locks of the value they send: a key drawn for the first time is released for real, a \
         key drawn again is no longer held ('release hit' is the share of real releases). \
         redis-benchmark draws every __rand_int__ anew, so the auxiliary keys of one call are \
         unrelated keys of the same shapes. redis-benchmark shares the machine's cores with the \
         server; server µs = Δ(used_cpu_user + used_cpu_sys) / requests.\n",
        c.reps
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_lines() {
        let out = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\
                   \"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\
                   \"SET lock:bench:__rand_int__ v NX,PX 30000\",\"123456.79\",\"0.400\",\
                   \"0.100\",\"0.375\",\"0.600\",\"0.800\",\"2.000\"\n";
        let r = parse_csv(out).unwrap();
        assert_eq!(r.rps, 123456.79);
        assert_eq!(r.p50_ms, 0.375);
        assert_eq!(r.p99_ms, 0.8);
        assert!(parse_csv("nothing here").is_none());
    }

    #[test]
    fn the_seed_side_releases_what_it_sets() {
        let s = seed_side();
        assert_eq!(s.acquire[0][2], s.held_value);
        assert_eq!(s.release[0][4], s.held_value);
        assert_eq!(s.release[0][3], s.acquire[0][1]);
    }
}
