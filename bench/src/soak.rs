// SPDX-License-Identifier: MIT OR Apache-2.0
//! The soak (`BENCH_SOAK=cycles`): acquire+release cycles through one `LockManager`, a new
//! resource name each cycle, RSS along the way; `scripts/soak.sh` runs it beside the Python
//! and Node soaks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;
use txcoord::{Client, LockManager};

use crate::config::{AB_TIMEOUT, AB_TTL, WARM_CYCLES};
use crate::fmt::{dash, num};
use crate::server::{dbsize, open_fds, proc_status_kib, Server};

const SOAK_TASKS: usize = 50;
/// RSS may grow by this share, or by SOAK_SLACK_KIB, whichever is larger.
const SOAK_SLACK_SHARE: f64 = 0.05;
const SOAK_SLACK_KIB: u64 = 10 * 1024;

/// The line `scripts/soak.sh` reads (after `SOAK_RESULT `; schema in bench/report.py).
#[derive(Serialize)]
struct SoakResult {
    lang: &'static str,
    lib: &'static str,
    cycles: u64,
    seconds: f64,
    tasks: usize,
    rss_early_at: u64,
    rss_early_kib: Option<u64>,
    rss_end_kib: Option<u64>,
    rss_final_kib: Option<u64>,
    marks: Vec<[u64; 2]>,
    fds: Option<usize>,
    scheduled_renewals: usize,
    held_resources: usize,
    redis_keys_left: u64,
    errors: Vec<String>,
}

pub fn soak(cycles: u64) -> i32 {
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
        let next = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicU64::new(0));
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
    let line = SoakResult {
        lang: "rust",
        lib: "txcoord",
        cycles: done,
        seconds: elapsed.as_secs_f64(),
        tasks: SOAK_TASKS,
        rss_early_at: cycles / 5,
        rss_early_kib: early,
        rss_end_kib: late,
        rss_final_kib: rss_end,
        marks: marks.iter().map(|(d, r, _)| [*d, *r]).collect(),
        fds,
        scheduled_renewals: renewals,
        held_resources: held,
        redis_keys_left: keys_after.saturating_sub(keys_before),
        errors: errors.clone(),
    };
    let out = serde_json::to_string(&line).unwrap_or_default();
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
