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
    // released and cleaned up: nothing is left but, for a lease, the waiting index
    assert_eq!(left_behind(&server, &["hot"]), Vec::<String>::new());
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

/// Per resource: who is inside, and the last token granted (grant order = order of entry).
#[derive(Default)]
struct ResourceWitness {
    inside: Option<usize>,
    last_token: u64,
    entries: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_resources_in_parallel() {
    const RESOURCES: usize = 8;
    const TASKS: usize = 32;
    const ROUNDS: usize = 100;
    let server = RedisServer::start();
    let c = client(&server);
    let m = LockManager::new(&c);
    let witness: Arc<Mutex<Vec<ResourceWitness>>> = Arc::new(Mutex::new(
        (0..RESOURCES).map(|_| ResourceWitness::default()).collect(),
    ));
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let m = m.clone();
        let witness = witness.clone();
        tasks.push(tokio::spawn(async move {
            let i = t % RESOURCES;
            let r = format!("res:{i}");
            for _ in 0..ROUNDS {
                let lock = m
                    .acquire_lock(&r, ms(5000), ms(30_000))
                    .await
                    .unwrap()
                    .expect("acquired within 30 s");
                let token = lock.fencing_token().unwrap();
                {
                    let mut w = witness.lock().unwrap();
                    let w = &mut w[i];
                    assert_eq!(
                        w.inside, None,
                        "task {t} entered {r} while another was inside"
                    );
                    // fencing: each grant of a resource carries a larger token than the one before
                    assert!(
                        token > w.last_token,
                        "{r}: token {token} granted after {} (task {t})",
                        w.last_token
                    );
                    w.inside = Some(t);
                    w.last_token = token;
                    w.entries += 1;
                }
                tokio::task::yield_now().await;
                witness.lock().unwrap()[i].inside = None;
                lock.release().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let w = witness.lock().unwrap();
    for (i, rw) in w.iter().enumerate() {
        assert_eq!(rw.entries, (TASKS / RESOURCES * ROUNDS) as u64, "res:{i}");
    }
    let resources: Vec<String> = (0..RESOURCES).map(|i| format!("res:{i}")).collect();
    let resources: Vec<&str> = resources.iter().map(String::as_str).collect();
    assert_eq!(left_behind(&server, &resources), Vec::<String>::new());
}
