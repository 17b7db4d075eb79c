// SPDX-License-Identifier: MIT OR Apache-2.0
//! Scenarios A and B: acquire+release cycles on uncontended keys, for a length of time.

use std::time::Duration;

use tokio::time::Instant;
use txcoord::{Client, LockManager};

use crate::capture::Captured;
use crate::config::{AB_TIMEOUT, AB_TTL, HANG_GRACE, MAX_ITERATIONS, MAX_SAMPLES, WARM_CYCLES};
use crate::server::{calls_of, commandstats, commandstats_delta};

#[derive(Default)]
pub struct Cycles {
    pub cycles: u64,
    /// Warm-up cycles before the timed ones (counted in the commands per cycle).
    pub warm: u64,
    /// Commands the client sent per cycle (from INFO commandstats).
    pub sent_per_cycle: Option<f64>,
    pub elapsed: Duration,
    /// Cycle latencies, sorted.
    pub lat: Vec<Duration>,
    pub errors: Vec<String>,
}

impl Cycles {
    pub fn rate(&self) -> f64 {
        if self.elapsed.is_zero() {
            return 0.0;
        }
        self.cycles as f64 / self.elapsed.as_secs_f64()
    }

    fn failed(e: String) -> Cycles {
        Cycles {
            errors: vec![e],
            ..Cycles::default()
        }
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

pub async fn txcoord_cycles(url: &str, tasks: usize, secs: Duration, tag: &str) -> Cycles {
    let client = match Client::open(url) {
        Ok(c) => c,
        Err(e) => return Cycles::failed(e.to_string()),
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
            Err(e) => return Cycles::failed(format!("warm-up: {e}")),
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
    client.close();
    out
}

/// The floor for any Rust client: the captured commands sent by hand on the redis crate's
/// ConnectionManager over RESP3 (txcoord's connection type), one lock key, one task: the
/// acquire's commands in one write, then the release's.
pub async fn raw_cycles(url: &str, captured: &Captured, secs: Duration) -> Cycles {
    let pipe = |cmds: &[Vec<String>]| {
        let mut p = redis::pipe();
        for args in cmds {
            let mut c = redis::cmd(&args[0]);
            for a in &args[1..] {
                c.arg(a);
            }
            p.add_command(c);
        }
        p
    };
    let (acq, rel) =
        captured.instantiate("bench:raw", "00000000-0000-4000-8000-000000000000", None);
    let (acquire, release) = (pipe(&acq), pipe(&rel));
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
            Err(e) => return Cycles::failed(format!("connect: {e}")),
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
            let a: redis::RedisResult<Vec<redis::Value>> = acquire.query_async(&mut conn).await;
            let r: redis::RedisResult<Vec<i64>> = release.query_async(&mut conn).await;
            match (a, r) {
                (Ok(_), Ok(r)) if r == [1] => {}
                (Ok(_), Ok(r)) => {
                    out.errors.push(format!("the release replied {r:?}"));
                    break;
                }
                (Err(e), _) | (_, Err(e)) => {
                    out.errors.push(e.to_string());
                    break;
                }
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
        Ok(Err(e)) => Cycles::failed(format!("task failed: {e}")),
        Err(_) => {
            abort.abort();
            Cycles::failed("hang".into())
        }
    }
}

pub async fn rslock_cycles(url: &str, tasks: usize, secs: Duration, tag: &str) -> Cycles {
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

/// txcoord then rslock for `length`, with the commands each sent per cycle (`tx_sent` and
/// `rs_sent`: the commands their clients send; the others counted are run by their scripts).
#[allow(clippy::too_many_arguments)]
pub fn cycles_pair(
    rt: &tokio::runtime::Runtime,
    admin: &mut redis::Connection,
    url: &str,
    tasks: usize,
    length: Duration,
    tag: &str,
    tx_sent: &[&str],
    rs_sent: &[&str],
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
    tx.sent_per_cycle = per_cycle(calls_of(&commandstats_delta(&s0, &s1), tx_sent), &tx);
    rs.sent_per_cycle = per_cycle(calls_of(&commandstats_delta(&s1, &s2), rs_sent), &rs);
    (tx, rs)
}
