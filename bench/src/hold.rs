// SPDX-License-Identifier: MIT OR Apache-2.0
//! Scenario D: 200 locks held and renewed for a while; the commands per second the renewals
//! cost Redis and the client's CPU.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use txcoord::{Client, DistributedLock, LockManager};

use crate::config::{D_LOCKS, D_TTL, HANG_GRACE};
use crate::server::{calls_of, commandstats, commandstats_delta, process_cpu, CmdStats};

pub struct Snapshot {
    at: std::time::Instant,
    cpu: Option<Duration>,
    cmds: CmdStats,
}

pub fn snapshot(admin: &mut redis::Connection, ticks: u64) -> Snapshot {
    let cmds = commandstats(admin);
    Snapshot {
        at: std::time::Instant::now(),
        cpu: process_cpu(ticks),
        cmds,
    }
}

pub struct Hold {
    pub label: String,
    pub renewal: String,
    pub held_at_end: usize,
    pub window: Duration,
    pub cpu_pct: Option<f64>,
    /// Calls per second per command over the window (our INFO excluded).
    pub per_cmd: Vec<(String, f64)>,
    pub total_per_s: f64,
    pub top_level_per_s: f64,
    pub notes: Vec<String>,
    pub errors: Vec<String>,
}

/// The commands a client sends to renew: its scripts. What else INFO commandstats counts, the
/// scripts ran.
pub const RENEWAL_SENT: [&str; 2] = ["evalsha", "eval"];

struct Window {
    window: Duration,
    cpu_pct: Option<f64>,
    per_cmd: Vec<(String, f64)>,
    total: f64,
    top: f64,
}

fn window_stats(s0: &Snapshot, s1: &Snapshot) -> Window {
    let window = s1.at - s0.at;
    let secs = window.as_secs_f64().max(1e-9);
    let cpu_pct = match (s0.cpu, s1.cpu) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a).as_secs_f64() / secs * 100.0),
        _ => None,
    };
    let delta = commandstats_delta(&s0.cmds, &s1.cmds);
    let mut per_cmd: Vec<(String, f64)> = delta
        .iter()
        .map(|(name, s)| (name.clone(), s.calls as f64 / secs))
        .collect();
    per_cmd.sort_by(|a, b| b.1.total_cmp(&a.1));
    Window {
        window,
        cpu_pct,
        total: per_cmd.iter().map(|(_, r)| r).sum(),
        top: calls_of(&delta, &RENEWAL_SENT) as f64 / secs,
        per_cmd,
    }
}

pub fn hold_result(
    label: &str,
    renewal: &str,
    held_at_end: usize,
    s0: &Snapshot,
    s1: &Snapshot,
) -> Hold {
    let w = window_stats(s0, s1);
    Hold {
        label: label.into(),
        renewal: renewal.into(),
        held_at_end,
        window: w.window,
        cpu_pct: w.cpu_pct,
        per_cmd: w.per_cmd,
        total_per_s: w.total,
        top_level_per_s: w.top,
        notes: Vec::new(),
        errors: Vec::new(),
    }
}

pub fn failed_hold(label: &str, renewal: &str, error: String) -> Hold {
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
pub fn wait_count(count: &AtomicUsize, n: usize, limit: Duration) -> bool {
    let until = std::time::Instant::now() + limit;
    while std::time::Instant::now() < until {
        if count.load(Ordering::SeqCst) >= n {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    count.load(Ordering::SeqCst) >= n
}

pub const SETTLE: Duration = Duration::from_millis(300);

pub fn hold_txcoord(
    rt: &tokio::runtime::Runtime,
    admin: &mut redis::Connection,
    url: &str,
    secs: Duration,
    ticks: u64,
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
    let mut h = hold_result(label, renewal, held, &s0, &s1);
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

pub fn hold_rslock_using(
    rt: &tokio::runtime::Runtime,
    admin: &mut redis::Connection,
    url: &str,
    secs: Duration,
    ticks: u64,
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
    let mut h = hold_result(label, renewal, held, &s0, &s1);
    if ok < D_LOCKS {
        h.notes.push(format!(
            "{} using() calls ended in an error (lost renewal)",
            D_LOCKS - ok
        ));
    }
    h
}

pub fn hold_rslock_manual(
    rt: &tokio::runtime::Runtime,
    admin: &mut redis::Connection,
    url: &str,
    secs: Duration,
    ticks: u64,
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
    let mut h = hold_result(label, renewal, held, &s0, &s1);
    if ok < D_LOCKS {
        h.notes
            .push(format!("{} locks lost a renewal", D_LOCKS - ok));
    }
    h
}

/// Joins the tasks of a D run (aborting them after `limit`); how many ended with `true`.
pub async fn join_bounded(handles: Vec<tokio::task::JoinHandle<bool>>, limit: Duration) -> usize {
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
pub fn rslock_warm_up(rt: &tokio::runtime::Runtime, lm: &rslock::LockManager) {
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
