// SPDX-License-Identifier: MIT OR Apache-2.0
//! Server cost per uncontended cycle: the redis-server's CPU time (Δ `used_cpu_user +
//! used_cpu_sys` of `INFO cpu`) per acquire+release cycle on distinct resources, each side
//! sending its real commands, repeated alternately; and what `INFO commandstats` says the
//! cycles ran.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::Value;
use serde::Serialize;
use txcoord::{AcquireOptions, Client, LockManager};

use crate::capture::Captured;
use crate::config::{Config, AB_TIMEOUT, AB_TTL};
use crate::rbench::SEED_RELEASE_LUA;
use crate::server::{commandstats, commandstats_delta, dbsize, server_cpu, CmdStats, Server};

/// The target: txcoord's server CPU per cycle at most this many times the seed's.
pub const TARGET_RATIO: f64 = 2.0;
pub const STRETCH_RATIO: f64 = 1.5;
/// Cycles per write of the pipelined sides (their acquires, then their releases).
const BATCH: u64 = 500;
/// Longest a run may take before it counts as hung.
const RUN_LIMIT: Duration = Duration::from_secs(600);

/// How a side sends its cycles.
pub enum Driver {
    /// `SET NX PX` then the seed's compare-and-delete script, from concurrent tasks on one
    /// `ConnectionManager`.
    SeedTasks,
    /// `LockManager::acquire_lock` (or `acquire_lock_with` an owner id per cycle) +
    /// `release_lock`, from concurrent tasks on one client.
    Txcoord { owner: bool },
    /// The seed's commands, pipelined [`BATCH`] cycles per write.
    SeedPipelined,
    /// Captured txcoord commands, pipelined [`BATCH`] cycles per write.
    Pipelined(Captured),
}

pub struct Side {
    pub id: &'static str,
    pub label: &'static str,
    pub how: String,
    /// The side its ratio is taken to.
    pub baseline: &'static str,
    pub driver: Driver,
    /// The commands a cycle sends (by name, lower case): the others counted are run by scripts.
    pub sent: BTreeMap<String, u64>,
}

pub fn seed_sent() -> BTreeMap<String, u64> {
    [("set".to_string(), 1), ("evalsha".to_string(), 1)].into()
}

/// One command's share of a cycle, over every measured run of a side.
#[derive(Serialize, Clone, Debug)]
pub struct PerCommand {
    pub name: String,
    pub calls_per_cycle: f64,
    pub usec_per_call: f64,
    /// Sent by the client (an `EVALSHA`'s time includes the commands its script ran).
    pub sent: bool,
}

#[derive(Serialize, Clone, Debug)]
pub struct CostResult {
    pub id: &'static str,
    pub label: &'static str,
    pub how: String,
    pub baseline: &'static str,
    /// Server CPU µs per cycle of each run, in the order run.
    pub runs_us: Vec<f64>,
    pub median_us: Option<f64>,
    pub min_us: Option<f64>,
    pub max_us: Option<f64>,
    pub ratio: Option<f64>,
    pub cycles_per_s: Option<f64>,
    /// Commands the client sends per cycle, and those it sends as `INFO commandstats` counted.
    pub sent_per_cycle: f64,
    pub sent_measured_per_cycle: Option<f64>,
    /// Every command per cycle, including those scripts ran.
    pub run_per_cycle: Option<f64>,
    /// Σ in-command µs of the commands sent (commandstats `usec`) per cycle.
    pub in_command_us: Option<f64>,
    pub per_command: Vec<PerCommand>,
    pub errors: Vec<String>,
}

#[derive(Serialize, Clone, Debug)]
pub struct Cost {
    pub cycles: u64,
    pub reps: usize,
    pub tasks: usize,
    pub batch: u64,
    pub target_ratio: f64,
    pub stretch_ratio: f64,
    pub sides: Vec<CostResult>,
}

impl Cost {
    pub fn side(&self, id: &str) -> Option<&CostResult> {
        self.sides.iter().find(|s| s.id == id)
    }
}

/// Runs `count` cycles `f(i)` from `tasks` tasks; the errors (a task stops at its first).
async fn in_tasks<F, Fut>(tasks: usize, count: u64, f: F) -> Vec<String>
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let next = Arc::new(AtomicU64::new(0));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..tasks {
        let (next, f) = (next.clone(), f.clone());
        set.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok(());
                }
                f(i).await?;
            }
        });
    }
    let mut errors = Vec::new();
    let joined = tokio::time::timeout(RUN_LIMIT, async {
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
        errors.push(format!(
            "cycles still running after {} s (hang)",
            RUN_LIMIT.as_secs()
        ));
    }
    errors
}

/// A side's connection or client for one run.
enum Handle {
    Conn(ConnectionManager),
    Tx(Client, LockManager),
}

async fn open(url: &str, driver: &Driver) -> Result<Handle, String> {
    match driver {
        Driver::Txcoord { .. } => {
            let client = Client::open(url).map_err(|e| e.to_string())?;
            let mgr = LockManager::new(&client);
            Ok(Handle::Tx(client, mgr))
        }
        _ => {
            let client =
                redis::Client::open(format!("{url}/?protocol=resp3")).map_err(|e| e.to_string())?;
            ConnectionManager::new(client)
                .await
                .map(Handle::Conn)
                .map_err(|e| format!("connect: {e}"))
        }
    }
}

fn cmd_of(args: &[String]) -> redis::Cmd {
    let mut c = redis::cmd(&args[0]);
    for a in &args[1..] {
        c.arg(a);
    }
    c
}

/// Whether an acquire's reply grants the lock: not nil, not an error, and a script's reply
/// starts with 1. With the lock's value, when the reply carries it (an owner's value).
fn granted(v: &Value) -> Result<Option<String>, String> {
    match v {
        Value::Nil => Err("an acquire on a free key was refused".into()),
        Value::ServerError(e) => Err(format!("acquire: {e:?}")),
        Value::Array(items) => match items.first() {
            Some(Value::Int(1)) => Ok(match items.get(1) {
                Some(Value::BulkString(b)) if b.starts_with(b"2:") => {
                    Some(String::from_utf8_lossy(b).into_owned())
                }
                _ => None,
            }),
            Some(Value::Int(x)) => Err(format!("acquire replied {x}")),
            // TIME: two integers as strings
            _ => Ok(None),
        },
        _ => Ok(None),
    }
}

/// `count` cycles of a side on resources `<prefix>:<i>`.
async fn cycles(
    handle: &Handle,
    driver: &Driver,
    tasks: usize,
    prefix: &str,
    count: u64,
) -> Vec<String> {
    let ttl = AB_TTL.as_millis() as u64;
    match (handle, driver) {
        (Handle::Conn(conn), Driver::SeedTasks) => {
            let script = Arc::new(redis::Script::new(SEED_RELEASE_LUA));
            let (conn, prefix) = (conn.clone(), prefix.to_string());
            in_tasks(tasks, count, move |i| {
                let (mut conn, script) = (conn.clone(), script.clone());
                let key = format!("lock:{prefix}:{i}");
                async move {
                    let value = uuid::Uuid::new_v4().to_string();
                    let set: Option<String> = redis::cmd("SET")
                        .arg(&key)
                        .arg(&value)
                        .arg("NX")
                        .arg("PX")
                        .arg(ttl)
                        .query_async(&mut conn)
                        .await
                        .map_err(|e| format!("SET: {e}"))?;
                    set.ok_or_else(|| format!("{key}: SET NX refused on a free key"))?;
                    let released: i64 = script
                        .key(&key)
                        .arg(&value)
                        .invoke_async(&mut conn)
                        .await
                        .map_err(|e| format!("release: {e}"))?;
                    if released != 1 {
                        return Err(format!("{key}: the release replied {released}"));
                    }
                    Ok(())
                }
            })
            .await
        }
        (Handle::Tx(_, mgr), Driver::Txcoord { owner }) => {
            let (mgr, prefix, owner) = (mgr.clone(), prefix.to_string(), *owner);
            in_tasks(tasks, count, move |i| {
                let mgr = mgr.clone();
                let resource = format!("{prefix}:{i}");
                async move {
                    let acquired = if owner {
                        let options = AcquireOptions::new()
                            .set_ttl(AB_TTL)
                            .set_timeout(AB_TIMEOUT)
                            .set_owner_id(format!("saga-{i}"));
                        mgr.acquire_lock_with(&resource, options).await
                    } else {
                        mgr.acquire_lock(&resource, AB_TTL, AB_TIMEOUT).await
                    };
                    acquired
                        .map_err(|e| format!("{resource}: acquire: {e}"))?
                        .ok_or_else(|| format!("{resource}: timed out on a free key"))?;
                    mgr.release_lock(&resource)
                        .await
                        .map_err(|e| format!("{resource}: release: {e}"))
                }
            })
            .await
        }
        (Handle::Conn(conn), Driver::SeedPipelined | Driver::Pipelined(_)) => {
            let mut conn = conn.clone();
            let seed_sha = redis::Script::new(SEED_RELEASE_LUA).get_hash().to_string();
            let mut start = 0;
            while start < count {
                let end = (start + BATCH).min(count);
                let mut acquires = redis::pipe();
                let mut per_cycle = Vec::new();
                for i in start..end {
                    let resource = format!("{prefix}:{i}");
                    let uuid = uuid::Uuid::new_v4().to_string();
                    let (acq, rel) = match driver {
                        Driver::Pipelined(c) => c.instantiate(&resource, &uuid, None),
                        _ => {
                            let key = format!("lock:{resource}");
                            let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect();
                            (
                                vec![s(&["SET", &key, &uuid, "NX", "PX", &ttl.to_string()])],
                                vec![s(&["EVALSHA", &seed_sha, "1", &key, &uuid])],
                            )
                        }
                    };
                    for a in &acq {
                        acquires.add_command(cmd_of(a));
                    }
                    per_cycle.push((resource, uuid, acq.len(), rel));
                }
                let replies: Vec<Value> = match acquires.query_async(&mut conn).await {
                    Ok(r) => r,
                    Err(e) => return vec![format!("acquire pipeline: {e}")],
                };
                let mut releases = redis::pipe();
                let mut at = 0;
                for (resource, uuid, n, rel) in &per_cycle {
                    let mut value = None;
                    for v in &replies[at..at + n] {
                        match granted(v) {
                            Ok(Some(x)) => value = Some(x),
                            Ok(None) => {}
                            Err(e) => return vec![format!("{resource}: {e}")],
                        }
                    }
                    at += n;
                    let rel = match (driver, &value) {
                        (Driver::Pipelined(c), Some(v)) => c.instantiate(resource, uuid, Some(v)).1,
                        _ => rel.clone(),
                    };
                    for r in &rel {
                        releases.add_command(cmd_of(r));
                    }
                }
                let released: Vec<i64> = match releases.query_async(&mut conn).await {
                    Ok(r) => r,
                    Err(e) => return vec![format!("release pipeline: {e}")],
                };
                if let Some(bad) = released.iter().find(|&&r| r != 1) {
                    return vec![format!("a release replied {bad}")];
                }
                start = end;
            }
            Vec::new()
        }
        _ => vec!["internal: a driver with another side's connection".into()],
    }
}

/// One measured run: server CPU µs per cycle, cycles/s, the commands run.
struct Run {
    us: f64,
    per_s: f64,
    cmds: CmdStats,
}

#[allow(clippy::too_many_arguments)]
fn run_once(
    rt: &tokio::runtime::Runtime,
    server: &Server,
    admin: &mut redis::Connection,
    url: &str,
    side: &Side,
    cfg: &Config,
    rep: usize,
    errors: &mut Vec<String>,
) -> Option<Run> {
    server.flushall(admin);
    let handle = match rt.block_on(open(url, &side.driver)) {
        Ok(h) => h,
        Err(e) => {
            errors.push(e);
            return None;
        }
    };
    let warm = (cfg.cost_cycles / 20).clamp(100, 2_000);
    let tasks = cfg.cost_tasks;
    let prefix = format!("cost:{}:{rep}", side.id);
    let errs = rt.block_on(cycles(
        &handle,
        &side.driver,
        tasks,
        &format!("{prefix}:warm"),
        warm,
    ));
    if let Some(e) = errs.into_iter().next() {
        errors.push(format!("warm-up: {e}"));
        return None;
    }
    let cpu0 = server_cpu(admin);
    let s0 = commandstats(admin);
    let t0 = std::time::Instant::now();
    let errs = rt.block_on(cycles(
        &handle,
        &side.driver,
        tasks,
        &prefix,
        cfg.cost_cycles,
    ));
    let elapsed = t0.elapsed();
    let s1 = commandstats(admin);
    let cpu1 = server_cpu(admin);
    if let Handle::Tx(client, _) = &handle {
        client.close();
    }
    drop(handle);
    let left = dbsize(admin);
    if let Some(e) = errs.into_iter().next() {
        errors.push(e);
        return None;
    }
    if left > 0 {
        errors.push(format!("{left} keys left in Redis after the run"));
    }
    let (Some(a), Some(b)) = (cpu0, cpu1) else {
        errors.push("INFO cpu unreadable".into());
        return None;
    };
    Some(Run {
        us: b.saturating_sub(a).as_secs_f64() * 1e6 / cfg.cost_cycles as f64,
        per_s: cfg.cost_cycles as f64 / elapsed.as_secs_f64().max(1e-9),
        cmds: commandstats_delta(&s0, &s1),
    })
}

fn summarise(side: &Side, runs: &[Run], cycles: u64, errors: Vec<String>) -> CostResult {
    let us: Vec<f64> = runs.iter().map(|r| r.us).collect();
    let n = (cycles * runs.len() as u64).max(1) as f64;
    let mut total: CmdStats = BTreeMap::new();
    for r in runs {
        for (name, s) in &r.cmds {
            let t = total.entry(name.clone()).or_default();
            t.calls += s.calls;
            t.usec += s.usec;
        }
    }
    let mut per_command: Vec<PerCommand> = total
        .iter()
        .map(|(name, s)| PerCommand {
            name: name.clone(),
            calls_per_cycle: s.calls as f64 / n,
            usec_per_call: s.usec as f64 / s.calls.max(1) as f64,
            sent: side.sent.contains_key(name),
        })
        .collect();
    per_command.sort_by(|a, b| b.sent.cmp(&a.sent).then(a.name.cmp(&b.name)));
    let measured = !runs.is_empty();
    let sent_calls: u64 = side
        .sent
        .keys()
        .filter_map(|k| total.get(k))
        .map(|s| s.calls)
        .sum();
    let sent_usec: u64 = side
        .sent
        .keys()
        .filter_map(|k| total.get(k))
        .map(|s| s.usec)
        .sum();
    CostResult {
        id: side.id,
        label: side.label,
        how: side.how.clone(),
        baseline: side.baseline,
        median_us: crate::fmt::median(&us),
        min_us: us.iter().copied().reduce(f64::min),
        max_us: us.iter().copied().reduce(f64::max),
        runs_us: us,
        ratio: None,
        cycles_per_s: crate::fmt::median(&runs.iter().map(|r| r.per_s).collect::<Vec<_>>()),
        sent_per_cycle: side.sent.values().sum::<u64>() as f64,
        sent_measured_per_cycle: measured.then(|| sent_calls as f64 / n),
        run_per_cycle: measured.then(|| total.values().map(|s| s.calls).sum::<u64>() as f64 / n),
        in_command_us: measured.then(|| sent_usec as f64 / n),
        per_command,
        errors,
    }
}

/// Every side `cfg.cost_reps` times, alternating; the medians and ratios.
pub fn measure(
    rt: &tokio::runtime::Runtime,
    server: &Server,
    admin: &mut redis::Connection,
    url: &str,
    cfg: &Config,
    sides: &[Side],
) -> Cost {
    let _: redis::RedisResult<String> = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(SEED_RELEASE_LUA)
        .query(admin);
    let mut runs: Vec<Vec<Run>> = sides.iter().map(|_| Vec::new()).collect();
    let mut errors: Vec<Vec<String>> = sides.iter().map(|_| Vec::new()).collect();
    for rep in 0..cfg.cost_reps {
        for (i, side) in sides.iter().enumerate() {
            if let Some(r) = run_once(rt, server, admin, url, side, cfg, rep, &mut errors[i]) {
                println!(
                    "  server cost, run {} of {}: {:<26} {:>6.2} µs/cycle, {:>7.0} cycles/s",
                    rep + 1,
                    cfg.cost_reps,
                    side.id,
                    r.us,
                    r.per_s
                );
                runs[i].push(r);
            }
        }
    }
    println!();
    let mut out: Vec<CostResult> = sides
        .iter()
        .zip(runs.iter().zip(errors))
        .map(|(side, (r, e))| summarise(side, r, cfg.cost_cycles, e))
        .collect();
    let medians: BTreeMap<&str, Option<f64>> = out.iter().map(|s| (s.id, s.median_us)).collect();
    for s in &mut out {
        if let (Some(x), Some(Some(b))) = (s.median_us, medians.get(s.baseline)) {
            s.ratio = Some(x / b);
        }
    }
    Cost {
        cycles: cfg.cost_cycles,
        reps: cfg.cost_reps,
        tasks: cfg.cost_tasks,
        batch: BATCH,
        target_ratio: TARGET_RATIO,
        stretch_ratio: STRETCH_RATIO,
        sides: out,
    }
}

/// The sides of the scenario: the client paths (seed, txcoord, txcoord with an owner id) and
/// the same commands pipelined; those needing a capture are left out without one.
pub fn sides(tasks: usize, plain: Option<&Captured>, owned: Option<&Captured>) -> Vec<Side> {
    let mut v = vec![Side {
        id: "seed",
        label: "the seed's commands",
        how: format!(
            "SET K v NX PX 30000, then EVALSHA of the seed's compare-and-delete; {tasks} tasks on \
             one redis::aio::ConnectionManager (RESP3, as txcoord's)"
        ),
        baseline: "seed",
        driver: Driver::SeedTasks,
        sent: seed_sent(),
    }];
    let sent_of = |c: Option<&Captured>| c.map(Captured::sent).unwrap_or_default();
    v.push(Side {
        id: "txcoord",
        label: "txcoord LockManager",
        how: format!("acquire_lock(r, 30 s, 10 s) + release_lock(r), {tasks} tasks, one Client"),
        baseline: "seed",
        driver: Driver::Txcoord { owner: false },
        sent: sent_of(plain),
    });
    v.push(Side {
        id: "txcoord-owner",
        label: "txcoord LockManager, owner id",
        how: format!(
            "acquire_lock_with(r, owner id saga-<n>) + release_lock(r), {tasks} tasks, one Client"
        ),
        baseline: "seed",
        driver: Driver::Txcoord { owner: true },
        sent: sent_of(owned),
    });
    v.push(Side {
        id: "seed-pipelined",
        label: "the seed's commands, pipelined",
        how: format!("the seed's commands, {BATCH} acquires per write, then their releases"),
        baseline: "seed-pipelined",
        driver: Driver::SeedPipelined,
        sent: seed_sent(),
    });
    for (c, id, label) in [
        (plain, "txcoord-pipelined", "txcoord's commands, pipelined"),
        (
            owned,
            "txcoord-owner-pipelined",
            "txcoord's owner-id commands, pipelined",
        ),
    ] {
        if let Some(c) = c {
            v.push(Side {
                id,
                label,
                how: format!(
                    "the captured commands, {BATCH} acquires per write, then their releases"
                ),
                baseline: "seed-pipelined",
                driver: Driver::Pipelined(c.clone()),
                sent: c.sent(),
            });
        }
    }
    v
}
