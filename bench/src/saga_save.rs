// SPDX-License-Identifier: MIT OR Apache-2.0
//! The repository's conditional save beside a plain write of the same record: 50 tasks, each
//! on a saga of its own, run `RedisSagaRepository::save_if` (expected version and leader term,
//! the finished guard) in a loop, the next save expecting the version the last one returned;
//! then 50 tasks `HSET` the same 13 fields on keys of their own over one RESP3
//! `ConnectionManager` (the connection type of txcoord's client). The sides alternate, each a
//! few times; the medians and their ratios are the figures: saves per second, and the server's
//! CPU per save (`used_cpu_user + used_cpu_sys` of `INFO cpu` over the timed part of a run,
//! divided by its saves), with the time inside the command (`INFO commandstats`: EVALSHA for
//! the save script, HSET for the plain write) beside it.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use txcoord::{Client, RedisSagaRepository, SagaRecord, SagaRepository, SaveOptions, SaveOutcome};

use crate::fmt::{dash, median, ms_opt, num, percentile, Table};
use crate::sagas::{Bench, Target};
use crate::server::{commandstats_delta, parse_commandstats, CmdStats};

/// The leader term the conditional saves carry.
const TERM: u64 = 7;
/// Most latency samples kept per run.
const MAX_SAMPLES: usize = 1_000_000;

/// One run of one side.
#[derive(Debug, Default)]
struct Run {
    ops: u64,
    elapsed: Duration,
    lat: Vec<Duration>,
    /// The server's CPU over the timed part.
    server_cpu: Option<Duration>,
    /// Calls and µs of the saving command (EVALSHA or HSET) over the timed part.
    in_command: Option<(u64, u64)>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Server CPU per save, µs.
    fn cpu_us(&self) -> Option<f64> {
        let cpu = self.server_cpu?;
        (self.ops > 0).then(|| cpu.as_secs_f64() * 1e6 / self.ops as f64)
    }

    /// Time inside the saving command per call, µs.
    fn in_command_us(&self) -> Option<f64> {
        let (calls, usec) = self.in_command?;
        (calls > 0).then(|| usec as f64 / calls as f64)
    }
}

/// The server's counters at one moment: CPU (user + system, all threads) and commandstats.
struct Snapshot {
    cpu: Option<Duration>,
    stats: CmdStats,
}

async fn snapshot(admin: &mut redis::aio::MultiplexedConnection) -> Snapshot {
    let cpu = match redis::cmd("INFO")
        .arg("cpu")
        .query_async::<String>(admin)
        .await
    {
        Ok(info) => {
            let field = |k: &str| {
                info.lines()
                    .find_map(|l| l.strip_prefix(k)?.strip_prefix(':'))
                    .and_then(|v| v.trim().parse::<f64>().ok())
            };
            field("used_cpu_user")
                .zip(field("used_cpu_sys"))
                .map(|(u, s)| Duration::from_secs_f64(u + s))
        }
        Err(e) => {
            eprintln!("INFO cpu failed: {e}");
            None
        }
    };
    let stats = match redis::cmd("INFO")
        .arg("commandstats")
        .query_async::<String>(admin)
        .await
    {
        Ok(info) => parse_commandstats(&info),
        Err(e) => {
            eprintln!("INFO commandstats failed: {e}");
            CmdStats::new()
        }
    };
    Snapshot { cpu, stats }
}

/// Fills in the run's server figures between two snapshots; `command` is the saving one.
fn account(run: &mut Run, s0: &Snapshot, s1: &Snapshot, command: &str) {
    run.server_cpu = s0.cpu.zip(s1.cpu).map(|(a, b)| b.saturating_sub(a));
    run.in_command = commandstats_delta(&s0.stats, &s1.stats)
        .get(command)
        .map(|c| (c.calls, c.usec));
}

fn record(id: &str) -> SagaRecord {
    let mut r = SagaRecord::new(id, "CreateOrderSaga");
    r.priority = 3;
    r
}

/// The record's fields as the save script writes them (PROTOCOL.md §8).
fn fields(r: &SagaRecord, version: u64) -> Vec<(&'static str, String)> {
    let ms = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
            .to_string()
    };
    vec![
        ("pv", "2".into()),
        ("id", r.id.clone()),
        ("type", r.saga_type.clone()),
        ("status", r.status.as_str().into()),
        ("priority", r.priority.to_string()),
        ("createdAt", ms(r.created_at)),
        ("updatedAt", ms(r.updated_at)),
        ("retryCount", r.retry_count.to_string()),
        ("error", String::new()),
        ("stuckReason", String::new()),
        ("stuckDetail", String::new()),
        ("version", version.to_string()),
        ("term", TERM.to_string()),
    ]
}

/// `tasks` tasks of conditional saves for `secs`; each task's sagas' versions are checked
/// against its count of saves.
async fn conditional(
    admin: &mut redis::aio::MultiplexedConnection,
    repo: Arc<RedisSagaRepository>,
    tasks: usize,
    secs: Duration,
    run: usize,
) -> Result<Run, String> {
    let mut ids = Vec::new();
    for k in 0..tasks {
        let id = format!("save-{run}-{k}");
        repo.save(&record(&id)).await.map_err(|e| e.to_string())?;
        ids.push(id);
    }
    let mut versions = Vec::new();
    for id in &ids {
        let r = repo
            .find_by_id(id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("a saga just saved is missing")?;
        versions.push(r);
    }
    let s0 = snapshot(admin).await;
    let started = Instant::now();
    let deadline = started + secs;
    let mut handles = Vec::new();
    for mut r in versions {
        let repo = repo.clone();
        handles.push(tokio::spawn(async move {
            let id = r.id.clone();
            let mut lat = Vec::new();
            let mut n = 0u64;
            while Instant::now() < deadline {
                r.updated_at = SystemTime::now();
                let options = SaveOptions {
                    expected_version: Some(r.version),
                    term: Some(TERM),
                    guard_finished: true,
                };
                let t = Instant::now();
                let outcome = repo
                    .save_if(&r, &options)
                    .await
                    .map_err(|e| e.to_string())?;
                if lat.len() < MAX_SAMPLES / tasks {
                    lat.push(t.elapsed());
                }
                match outcome {
                    Some(SaveOutcome::Written { version }) if version == r.version + 1 => {
                        r.version = version;
                        n += 1;
                    }
                    other => {
                        return Err(format!(
                            "saga {id}: a conditional save at version {} gave {other:?}",
                            r.version
                        ))
                    }
                }
            }
            Ok::<_, String>((id, n, r.version, lat))
        }));
    }
    let mut out = Run::default();
    let mut done = Vec::new();
    for h in handles {
        done.push(h.await.map_err(|e| e.to_string())??);
    }
    out.elapsed = started.elapsed();
    let s1 = snapshot(admin).await;
    account(&mut out, &s0, &s1, "evalsha");
    for (id, n, version, lat) in done {
        out.ops += n;
        out.lat.extend(lat);
        let stored = repo
            .find_by_id(&id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("a saga disappeared")?;
        if stored.version != version || version != n + 1 || stored.term != TERM {
            return Err(format!(
                "saga {id}: {n} saves written, the record says version {} term {} (expected \
                 version {} term {TERM})",
                stored.version,
                stored.term,
                n + 1
            ));
        }
    }
    Ok(out)
}

/// `tasks` tasks of `HSET` for `secs`, on a multiplexed RESP3 connection.
async fn plain(
    admin: &mut redis::aio::MultiplexedConnection,
    url: &str,
    tasks: usize,
    secs: Duration,
    run: usize,
) -> Result<Run, String> {
    let client =
        redis::Client::open(format!("{url}/?protocol=resp3")).map_err(|e| e.to_string())?;
    let con = redis::aio::ConnectionManager::new(client)
        .await
        .map_err(|e| e.to_string())?;
    let s0 = snapshot(admin).await;
    let started = Instant::now();
    let deadline = started + secs;
    let mut handles = Vec::new();
    for k in 0..tasks {
        let mut con = con.clone();
        let id = format!("save-{run}-{k}");
        handles.push(tokio::spawn(async move {
            let mut r = record(&id);
            let key = format!("bench:plain:{id}");
            let mut lat = Vec::new();
            let mut n = 0u64;
            while Instant::now() < deadline {
                r.updated_at = SystemTime::now();
                let mut cmd = redis::cmd("HSET");
                cmd.arg(&key);
                for (f, v) in fields(&r, n + 1) {
                    cmd.arg(f).arg(v);
                }
                let t = Instant::now();
                let added: i64 = cmd.query_async(&mut con).await.map_err(|e| e.to_string())?;
                if lat.len() < MAX_SAMPLES / tasks {
                    lat.push(t.elapsed());
                }
                if added != if n == 0 { 13 } else { 0 } {
                    return Err(format!("HSET {key} added {added} fields"));
                }
                n += 1;
            }
            Ok::<_, String>((n, lat))
        }));
    }
    let mut out = Run::default();
    for h in handles {
        let (n, lat) = h.await.map_err(|e| e.to_string())??;
        out.ops += n;
        out.lat.extend(lat);
    }
    out.elapsed = started.elapsed();
    let s1 = snapshot(admin).await;
    account(&mut out, &s0, &s1, "hset");
    Ok(out)
}

pub fn run(b: &mut Bench) {
    let url = b.url();
    let (tasks, secs, reps) = (b.cfg.save_in_flight, b.cfg.save_secs, b.cfg.save_reps);
    let result = b.rt.block_on(async {
        let client = Client::open(&url).map_err(|e| e.to_string())?;
        client.ping().await.map_err(|e| e.to_string())?;
        let repo = Arc::new(RedisSagaRepository::new(&client));
        let mut admin = redis::Client::open(url.as_str())
            .map_err(|e| e.to_string())?
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| e.to_string())?;
        let warm = Duration::from_millis(100);
        // warm: the save script loaded, connections open
        conditional(&mut admin, repo.clone(), tasks, warm, 0).await?;
        plain(&mut admin, &url, tasks, warm, 0).await?;
        let (mut cond, mut hset) = (Vec::new(), Vec::new());
        for rep in 1..=reps {
            cond.push(conditional(&mut admin, repo.clone(), tasks, secs, rep).await?);
            hset.push(plain(&mut admin, &url, tasks, secs, rep).await?);
        }
        client.close();
        Ok::<_, String>((cond, hset))
    });
    let (cond, hset) = match result {
        Ok(x) => x,
        Err(e) => {
            b.fail(format!("saves: {e}"));
            (Vec::new(), Vec::new())
        }
    };
    let med_of = |runs: &[Run], f: fn(&Run) -> Option<f64>| {
        median(&runs.iter().filter_map(f).collect::<Vec<_>>())
    };
    let rate = |r: &Run| Some(r.rate());
    let (cr, hr) = (med_of(&cond, rate), med_of(&hset, rate));
    let (ccpu, hcpu) = (med_of(&cond, Run::cpu_us), med_of(&hset, Run::cpu_us));
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    let (rate_ratio, cpu_ratio) = (ratio(cr, hr), ratio(ccpu, hcpu));
    let us = |x: Option<f64>| x.map(|v| format!("{v:.1}")).unwrap_or_else(dash);
    let times = |q: Option<f64>| q.map(|q| format!("{q:.2}×")).unwrap_or_else(dash);
    println!(
        "## Conditional save beside a plain HSET of the same record ({tasks} in flight, {:.1} s \
         × {reps} runs per side, alternating)\n",
        secs.as_secs_f64()
    );
    let mut t = Table::new(&[
        "side",
        "saves/s (median)",
        "runs",
        "p50 ms",
        "p99 ms",
        "server CPU µs/save (median)",
        "runs",
        "in command µs/call",
    ]);
    for (name, runs, rate, cpu) in [
        (
            "RedisSagaRepository::save_if (expected version, term, guard)",
            &cond,
            cr,
            ccpu,
        ),
        (
            "HSET of the same 13 fields (redis crate, ConnectionManager)",
            &hset,
            hr,
            hcpu,
        ),
    ] {
        let mut lat: Vec<Duration> = runs.iter().flat_map(|r| r.lat.iter().copied()).collect();
        lat.sort();
        let each = |f: &dyn Fn(&Run) -> String| runs.iter().map(f).collect::<Vec<_>>().join(" / ");
        t.row(vec![
            name.into(),
            rate.map(num).unwrap_or_else(dash),
            each(&|r| num(r.rate())),
            ms_opt(percentile(&lat, 0.5)),
            ms_opt(percentile(&lat, 0.99)),
            us(cpu),
            each(&|r| us(r.cpu_us())),
            us(med_of(runs, Run::in_command_us)),
        ]);
    }
    t.row(vec![
        "ratio, conditional / plain".into(),
        times(rate_ratio),
        dash(),
        dash(),
        dash(),
        times(cpu_ratio),
        dash(),
        times(ratio(
            med_of(&cond, Run::in_command_us),
            med_of(&hset, Run::in_command_us),
        )),
    ]);
    println!("{}", t.render());
    println!(
        "The conditional save is one EVALSHA of the save script: it reads the stored version, \
         term and status (HMGET), takes the server's TIME, writes the record (HSET of 13 \
         fields) and keeps the indexes (ZADD ×2, SADD, PERSIST) in one atomic step, and replies \
         the new version. Server CPU: used_cpu_user + used_cpu_sys of INFO cpu over the timed \
         part of each run (both sides on the same server, alternating, in this one run) divided \
         by its saves; it includes reading requests and writing replies. In command: INFO \
         commandstats' time per EVALSHA (the whole script) or per HSET. Checked: every save \
         written, each saga's stored version and term equal to its count of saves + 1 and the \
         writer's term.\n"
    );
    b.targets.push(Target::new(
        "conditional save vs plain HSET: saves/s",
        "none (reported)",
        match (cr, hr) {
            (Some(c), Some(h)) => format!("{} vs {} /s: {}", num(c), num(h), times(rate_ratio)),
            _ => dash(),
        },
        None,
    ));
    b.targets.push(Target::new(
        "conditional save vs plain HSET: server CPU per save",
        "none (reported)",
        match (ccpu, hcpu) {
            (Some(c), Some(h)) => format!("{c:.1} vs {h:.1} µs: {}", times(cpu_ratio)),
            _ => dash(),
        },
        None,
    ));
}
