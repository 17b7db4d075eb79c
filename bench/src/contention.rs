// SPDX-License-Identifier: MIT OR Apache-2.0
//! Scenarios C and C2: tasks contending for one key (txcoord in default and fair mode, and
//! rslock), each with its own client; who got the lock when, handoffs, fencing tokens.

use std::time::Duration;

use tokio::time::Instant;
use txcoord::{AcquireOptions, Client, LockManager, ManagerOptions};

use crate::config::{
    Config, AB_TIMEOUT, C_HOLD, C_TASKS, C_TTL, HANG_GRACE, MAX_ITERATIONS, MAX_SAMPLES,
    RSLOCK_RETRIES,
};
use crate::fmt::{ms, ms_opt, percent, percentile, rate, Table};

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Lib {
    TxDefault,
    TxFair,
    Rslock,
}

impl Lib {
    pub fn label(self) -> &'static str {
        match self {
            Lib::TxDefault => "txcoord default",
            Lib::TxFair => "txcoord fair",
            Lib::Rslock => "rslock",
        }
    }
    pub fn mode(self) -> &'static str {
        match self {
            Lib::TxDefault => "default",
            Lib::TxFair => "fair",
            Lib::Rslock => "rslock",
        }
    }
    pub fn is_txcoord(self) -> bool {
        self != Lib::Rslock
    }
}

pub enum Contender {
    Tx(LockManager),
    Rs(rslock::LockManager),
}

pub enum Held {
    Tx(Option<u64>),
    Rs(rslock::Lock),
}

/// One acquisition: who, when the wait began, when the lock came, when the release began and
/// ended, and its fencing token.
pub struct Rec {
    pub task: usize,
    pub t0: Instant,
    pub acq: Instant,
    pub rel_start: Instant,
    pub token: Option<u64>,
}

#[derive(Default)]
pub struct TaskLog {
    pub recs: Vec<Rec>,
    /// A wait cut short by the end of the run.
    pub cut: Option<Duration>,
    pub error: Option<String>,
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
pub async fn hold() {
    if tokio::task::spawn_blocking(|| std::thread::sleep(C_HOLD))
        .await
        .is_err()
    {
        tokio::time::sleep(C_HOLD).await;
    }
}

pub struct Contention {
    pub secs: Duration,
    pub logs: Vec<TaskLog>,
    pub hung: bool,
    pub wake: Option<WakeCounts>,
}

/// txcoord's client counters over a contention run, summed over the tasks' clients.
#[derive(Default, Clone, Copy)]
pub struct WakeCounts {
    pub attempts: u64,
    pub notified: u64,
    pub timer: u64,
    pub messages: u64,
    pub subscribes: u64,
}

pub fn wake_counts(clients: &[Client]) -> WakeCounts {
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

pub async fn contend(
    cfg: &Config,
    url: &str,
    lib: Lib,
    key: String,
    pause: Duration,
) -> Contention {
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

pub struct ContentionStats {
    pub acquisitions: usize,
    pub per_s: f64,
    pub wait_p50: Option<Duration>,
    pub wait_p99: Option<Duration>,
    /// Longest wait, counting waits cut by the end of the run; whether it was a cut one.
    pub wait_max: Option<Duration>,
    pub wait_max_cut: bool,
    pub handoffs: usize,
    pub handoff_p50: Option<Duration>,
    pub handoff_p99: Option<Duration>,
    pub back_share: Option<f64>,
    pub per_task_min: usize,
    pub per_task_max: usize,
    pub hold_mean: Option<Duration>,
    /// The longest hold: far above 1 ms means the machine stalled the run.
    pub hold_max: Option<Duration>,
    pub overlaps: usize,
    pub token_regressions: usize,
    pub errors: Vec<String>,
    pub cut_waits: usize,
    pub wake: Option<WakeCounts>,
}

impl ContentionStats {
    pub fn min_max_ratio(&self) -> f64 {
        if self.per_task_max == 0 {
            0.0
        } else {
            self.per_task_min as f64 / self.per_task_max as f64
        }
    }
}

pub fn contention_stats(run: &Contention) -> ContentionStats {
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

pub fn contention_table(title: &str, runs: &[(Lib, ContentionStats)]) -> String {
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

pub fn print_contention_notes(results: &[(Lib, ContentionStats)], cfg: &Config) {
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
