// SPDX-License-Identifier: MIT OR Apache-2.0
//! The detector on larger and stranger graphs: cycles of 2 to 50 sagas, disjoint and
//! overlapping, all broken; a big acyclic graph with no false deadlock; a saga that finished
//! before resolution is left alone; a crashed waiter's edges go with its lease.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use common::*;
use txcoord::{
    DetectorOptions, ErrorKind, LockManager, ManagerOptions, RedisSagaRepository,
    SagaDeadlockDetector, SagaRecord, SagaRepository, SagaStatus, TracingLogger,
};
use txcoord_testkit::RedisServer;

fn detector(c: &txcoord::Client) -> (SagaDeadlockDetector, Arc<RedisSagaRepository>) {
    let repo = Arc::new(RedisSagaRepository::new(c));
    let d = SagaDeadlockDetector::new(
        repo.clone(),
        Arc::new(TracingLogger),
        DetectorOptions::new(),
    )
    .unwrap();
    (d, repo)
}

fn manager(c: &txcoord::Client, owner: &str, priority: i32) -> LockManager {
    LockManager::with_options(
        c,
        ManagerOptions::new()
            .set_owner_id(owner)
            .set_priority(priority)
            .set_deadlock_timeout(ms(0)),
    )
    .unwrap()
}

/// Waits until the registry shows `edges` edges (the waits queue one by one).
async fn until_edges(d: &SagaDeadlockDetector, edges: usize) {
    for _ in 0..800 {
        if d.wait_for_graph().await.unwrap().edges.len() >= edges {
            return;
        }
        tokio::time::sleep(ms(25)).await; // polling a condition with a deadline
    }
    panic!("the graph never had {edges} edges");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cycles_of_2_to_50_sagas_disjoint_and_overlapping_are_all_broken() {
    let server = RedisServer::start();
    let c = client(&server);
    let (d, _) = detector(&c);
    // (saga, priority, the saga whose lock it waits for)
    let mut plan: Vec<(String, i32, String)> = Vec::new();
    for n in [2usize, 3, 7, 50] {
        for i in 0..n {
            plan.push((
                format!("c{n}-{i}"),
                1 + i as i32,
                format!("c{n}-{}", (i + 1) % n),
            ));
        }
    }
    // x is in two cycles (x↔y, x↔z) and has their lowest priority
    let mut managers: HashMap<String, LockManager> = HashMap::new();
    for (s, p, _) in &plan {
        managers.insert(s.clone(), manager(&c, s, *p));
    }
    for (s, p) in [("x", 0), ("y", 5), ("z", 5)] {
        managers.insert(s.to_string(), manager(&c, s, p));
    }
    for (s, m) in &managers {
        m.acquire_lock(&format!("res:{s}"), ms(120_000), ms(0))
            .await
            .unwrap()
            .unwrap();
    }
    let mut waits = Vec::new();
    let overlapping = [("x", "y"), ("y", "x"), ("z", "x")];
    for (w, h) in plan.iter().map(|(w, _, h)| (w.clone(), h.clone())).chain(
        overlapping
            .iter()
            .map(|(w, h)| (w.to_string(), h.to_string())),
    ) {
        let m = managers[&w].clone();
        waits.push((
            w.clone(),
            tokio::spawn(async move {
                m.acquire_lock(&format!("res:{h}"), ms(120_000), ms(60_000))
                    .await
            }),
        ));
    }
    // x also waits for z (a second acquisition of the saga x, on its own handle)
    let mx = managers["x"].clone();
    waits.push((
        "x".to_string(),
        tokio::spawn(async move { mx.acquire_lock("res:z", ms(120_000), ms(60_000)).await }),
    ));
    until_edges(&d, plan.len() + 4).await;
    let found = d.detect_deadlock().await.unwrap();
    let mut lengths: Vec<usize> = found.cycles.iter().map(|c| c.len() - 1).collect();
    lengths.sort();
    assert_eq!(lengths, vec![2, 2, 3, 7, 50], "{:?}", found.cycles);
    assert_eq!(found.affected_sagas.len(), plan.len() + 3);

    let broken = d.resolve_deadlock(&found.cycles).await.unwrap();
    let mut victims: Vec<String> = broken.iter().filter_map(|c| c.victim.clone()).collect();
    victims.sort();
    assert_eq!(
        victims,
        vec!["c2-0", "c3-0", "c50-0", "c7-0", "x"],
        "the lowest priority of each cycle; x breaks both of its cycles"
    );
    let after = d.detect_deadlock().await.unwrap();
    assert!(!after.has_deadlock, "{:?}", after.explained);
    for (w, t) in waits {
        if victims.contains(&w) {
            let e = t.await.unwrap().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::DeadlockVictim, "{w}");
        } else {
            t.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_waiting_sagas_without_a_cycle_are_no_deadlock() {
    let server = RedisServer::start();
    let c = client(&server);
    let (d, _) = detector(&c);
    // Written straight into the registry: saga s<i> holds lock:chain:<i> and waits for
    // lock:chain:<i+1>, held by s<i+1> — one long chain, no cycle.
    const FILL: &str = r#"
local now = tonumber(ARGV[3])
for i = tonumber(ARGV[1]), tonumber(ARGV[2]) do
  local key = 'lock:chain:' .. i
  redis.call('SET', key, '2:00000000-0000-4000-8000-' .. string.format('%012d', i) .. ':' .. string.format('%.0f', now * 1000 + i) .. ':0:s' .. i, 'PX', 600000)
  if i > 0 then
    local w = 'x-' .. i
    redis.call('ZADD', '{' .. key .. '}:~q', i, w)
    redis.call('HSET', '{' .. key .. '}:~w', w, '2|w|' .. (now + 600000) .. '|' .. now .. '|0|s' .. (i - 1))
    redis.call('ZADD', 'txcoord:waiting', now + 600000, key)
  end
end
return 1
"#;
    let mut con = server.connection();
    let (secs, _): (u64, u64) = redis::cmd("TIME").query(&mut con).unwrap();
    let now = secs * 1000;
    for from in (0..=10_000).step_by(2_000) {
        let _: i64 = redis::cmd("EVAL")
            .arg(FILL)
            .arg(0)
            .arg(from)
            .arg((from + 1_999).min(10_000))
            .arg(now)
            .query(&mut con)
            .unwrap();
    }
    let started = std::time::Instant::now();
    let graph = d.wait_for_graph().await.unwrap();
    assert_eq!(graph.edges.len(), 10_000);
    let r = d.detect_deadlock().await.unwrap();
    assert!(!r.has_deadlock, "{:?}", r.cycles.first());
    println!(
        "10,000 waiting sagas read and searched in {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_that_finished_before_resolution_is_left_alone() {
    let server = RedisServer::start();
    let c = client(&server);
    let (d, repo) = detector(&c);
    for id in ["f1", "f2"] {
        repo.save(&SagaRecord::new(id, "CreateOrderSaga"))
            .await
            .unwrap();
    }
    let (m1, m2) = (manager(&c, "f1", 1), manager(&c, "f2", 2));
    m1.acquire_lock("res:f1", ms(60_000), ms(0))
        .await
        .unwrap()
        .unwrap();
    m2.acquire_lock("res:f2", ms(60_000), ms(0))
        .await
        .unwrap()
        .unwrap();
    let (a, b) = (m1.clone(), m2.clone());
    let w1 = tokio::spawn(async move { a.acquire_lock("res:f2", ms(60_000), ms(30_000)).await });
    let w2 = tokio::spawn(async move { b.acquire_lock("res:f1", ms(60_000), ms(30_000)).await });
    until_edges(&d, 2).await;
    let found = d.detect_deadlock().await.unwrap();
    assert!(found.has_deadlock);
    // f1 (the would-be victim) stops waiting and completes before the resolution runs
    w1.abort();
    let _ = w1.await;
    let done = SagaRecord {
        status: SagaStatus::Completed,
        ..repo.find_by_id("f1").await.unwrap().unwrap()
    };
    repo.save(&done).await.unwrap();
    until_edges_below(&d, 2).await;
    let broken = d.resolve_deadlock(&found.cycles).await.unwrap();
    assert!(broken.is_empty(), "nothing to break any more: {broken:?}");
    assert_eq!(
        repo.find_by_id("f1").await.unwrap().unwrap().status,
        SagaStatus::Completed
    );
    assert_eq!(
        repo.find_by_id("f2").await.unwrap().unwrap().status,
        SagaStatus::Executing
    );
    m1.release_all_locks().await;
    assert!(w2.await.unwrap().unwrap().is_some(), "f2 was not aborted");
}

async fn until_edges_below(d: &SagaDeadlockDetector, edges: usize) {
    for _ in 0..400 {
        if d.wait_for_graph().await.unwrap().edges.len() < edges {
            return;
        }
        tokio::time::sleep(ms(25)).await; // polling a condition with a deadline
    }
    panic!("the graph kept {edges} edges");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_waiters_edges_go_with_its_lease() {
    let server = RedisServer::start();
    let c = client(&server);
    let (d, _) = detector(&c);
    let holder = manager(&c, "h", 0);
    holder
        .acquire_lock("res:h", ms(60_000), ms(0))
        .await
        .unwrap()
        .unwrap();
    let crashing = client(&server);
    let waiter = LockManager::with_options(
        &crashing,
        ManagerOptions::new()
            .set_owner_id("w")
            .set_fallback_poll(ms(400))
            .set_waiter_lease(ms(1_000)),
    )
    .unwrap();
    let w = tokio::spawn(async move { waiter.acquire_lock("res:h", ms(60_000), ms(30_000)).await });
    until_edges(&d, 1).await;
    // the waiter's process dies: nothing more is sent for it, not even its cleanup
    crashing.close();
    w.abort();
    let started = std::time::Instant::now();
    until_edges_below(&d, 1).await;
    assert!(started.elapsed() < ms(3_000), "{:?}", started.elapsed());
}
