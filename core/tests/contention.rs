// SPDX-License-Identifier: MIT OR Apache-2.0
//! Mutual exclusion under contention, checked with fencing tokens (RELIABILITY.md T1, small).

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::*;
use txcoord::{LockManager, ManagerOptions};
use txcoord_testkit::RedisServer;

/// The critical section's own bookkeeping: who is inside, and the last token that entered.
#[derive(Default)]
struct Witness {
    inside: Option<(usize, u64)>,
    last_token: u64,
    entries: u64,
}

async fn contend(fair: bool) {
    const TASKS: usize = 16;
    const ROUNDS: usize = 500;
    let server = RedisServer::start();
    // four clients, as four processes would have
    let clients: Vec<_> = (0..4).map(|_| client(&server)).collect();
    let witness = Arc::new(Mutex::new(Witness::default()));
    let overlaps = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let m = LockManager::with_options(&clients[t % 4], ManagerOptions::new().set_fair(fair))
            .unwrap();
        let witness = witness.clone();
        let overlaps = overlaps.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = 0;
            for _ in 0..ROUNDS {
                let lock = m
                    .acquire_lock("hot", ms(5000), ms(30_000))
                    .await
                    .expect("no error")
                    .expect("acquired within 30 s");
                let token = lock.fencing_token().unwrap();
                {
                    let mut w = witness.lock().unwrap();
                    if let Some((other, _)) = w.inside {
                        overlaps.fetch_add(1, Ordering::SeqCst);
                        panic!("task {t} entered while task {other} was inside");
                    }
                    assert!(
                        token > w.last_token,
                        "token {token} after {} (task {t})",
                        w.last_token
                    );
                    w.inside = Some((t, token));
                    w.last_token = token;
                    w.entries += 1;
                }
                // the critical section: yield so others really run meanwhile
                tokio::task::yield_now().await;
                {
                    let mut w = witness.lock().unwrap();
                    assert_eq!(w.inside, Some((t, token)));
                    w.inside = None;
                }
                lock.release().await.unwrap();
                mine += 1;
            }
            mine
        }));
    }
    let mut per_task = Vec::new();
    for t in tasks {
        per_task.push(t.await.expect("task"));
    }
    let w = witness.lock().unwrap();
    assert_eq!(overlaps.load(Ordering::SeqCst), 0);
    assert_eq!(w.entries, (TASKS * ROUNDS) as u64);
    assert!(per_task.iter().all(|&n| n == ROUNDS));
    assert!(!exists(&server, "lock:hot"));
    println!(
        "fair={fair}: {} acquisitions in {:?} ({:.0}/s)",
        w.entries,
        started.elapsed(),
        w.entries as f64 / started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mutual_exclusion_with_fencing_tokens() {
    contend(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mutual_exclusion_with_fencing_tokens_fair() {
    contend(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_resources_in_parallel() {
    let server = RedisServer::start();
    let c = client(&server);
    let m = LockManager::new(&c);
    let mut tasks = Vec::new();
    for t in 0..32 {
        let m = m.clone();
        tasks.push(tokio::spawn(async move {
            let mut last = 0;
            for _ in 0..100 {
                let r = format!("res:{}", t % 8);
                let lock = m
                    .acquire_lock(&r, ms(5000), ms(30_000))
                    .await
                    .unwrap()
                    .unwrap();
                let token = lock.fencing_token().unwrap();
                assert!(token > 0);
                last = last.max(token);
                lock.release().await.unwrap();
            }
            last
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap() > 0);
    }
    assert!(server.keys().iter().all(|k| !k.starts_with("lock:")));
}
