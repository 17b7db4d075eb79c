// SPDX-License-Identifier: MIT OR Apache-2.0
//! Deadlocks between sagas: found on the lock registry and broken — by the waiting
//! acquisitions themselves after their deadlock timeout, or by the detector's sweep.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use common::*;
use txcoord::{
    DeadlockMetrics, DetectorOptions, DistributedLock, ErrorKind, LockManager, ManagerOptions,
    RedisSagaRepository, SagaDeadlockDetector, SagaRecord, SagaRepository, SagaStatus,
    TracingLogger,
};
use txcoord_testkit::RedisServer;

fn saga_manager(c: &txcoord::Client, owner: &str, priority: i32, probe_ms: u64) -> LockManager {
    LockManager::with_options(
        c,
        ManagerOptions::new()
            .set_owner_id(owner)
            .set_priority(priority)
            .set_deadlock_timeout(ms(probe_ms)),
    )
    .unwrap()
}

/// Each saga holds its own lock, then waits for the next saga's: a cycle of `sagas.len()`.
/// Returns the pending waits (their managers hold the first locks).
async fn form_cycle(
    c: &txcoord::Client,
    sagas: &[(&str, i32)],
    probe_ms: u64,
) -> Vec<tokio::task::JoinHandle<txcoord::Result<Option<DistributedLock>>>> {
    let managers: Vec<LockManager> = sagas
        .iter()
        .map(|(s, p)| saga_manager(c, s, *p, probe_ms))
        .collect();
    for (m, (s, _)) in managers.iter().zip(sagas) {
        m.acquire_lock(&format!("res:{s}"), ms(60_000), ms(0))
            .await
            .unwrap()
            .unwrap();
    }
    let mut waits = Vec::new();
    for (i, m) in managers.iter().enumerate() {
        let next = sagas[(i + 1) % sagas.len()].0.to_string();
        let m = m.clone();
        waits.push(tokio::spawn(async move {
            m.acquire_lock(&format!("res:{next}"), ms(60_000), ms(30_000))
                .await
        }));
    }
    waits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_saga_deadlock_is_broken_by_the_waiters_themselves() {
    let server = RedisServer::start();
    let (ca, cb) = (client(&server), client(&server));
    let a = saga_manager(&ca, "saga-a", 5, 1000);
    let b = saga_manager(&cb, "saga-b", 1, 1000);
    a.acquire_lock("x", ms(60_000), ms(0))
        .await
        .unwrap()
        .unwrap();
    b.acquire_lock("y", ms(60_000), ms(0))
        .await
        .unwrap()
        .unwrap();
    let started = Instant::now();
    let (a2, b2) = (a.clone(), b.clone());
    let wait_a = tokio::spawn(async move { a2.acquire_lock("y", ms(60_000), ms(20_000)).await });
    let wait_b = tokio::spawn(async move { b2.acquire_lock("x", ms(60_000), ms(20_000)).await });
    // saga-b has the lower priority: its wait fails at once, explained
    let e = wait_b.await.unwrap().unwrap_err();
    let broken_after = started.elapsed();
    assert_eq!(e.kind(), ErrorKind::DeadlockVictim, "{e}");
    assert_eq!(e.key(), Some("lock:x"));
    let text = e.to_string();
    assert!(text.contains("saga saga-b has waited"), "{text}");
    assert!(text.contains("held by saga saga-a"), "{text}");
    assert!(broken_after < ms(5_000), "broken after {broken_after:?}");
    // the victim gives up what it holds (as a saga does when aborted); the other goes on
    b.release_all_locks().await;
    let got = wait_a.await.unwrap().unwrap().expect("saga-a gets y");
    assert!(got.is_held());
    a.release_all_locks().await;
    println!("two-saga deadlock broken after {broken_after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_racing_on_one_cycle_abort_one_saga() {
    let server = RedisServer::start();
    let c1 = client(&server);
    let c2 = client(&server);
    // equal priorities: the youngest (then the smallest id) is the victim, whoever probes
    let sagas = [("p", 3), ("q", 3)];
    let a = saga_manager(&c1, sagas[0].0, 3, 700);
    let b = saga_manager(&c2, sagas[1].0, 3, 700);
    a.acquire_lock("res:p", ms(60_000), ms(0))
        .await
        .unwrap()
        .unwrap();
    b.acquire_lock("res:q", ms(60_000), ms(0))
        .await
        .unwrap()
        .unwrap();
    let (a2, b2) = (a.clone(), b.clone());
    let wa = tokio::spawn(async move { a2.acquire_lock("res:q", ms(60_000), ms(15_000)).await });
    let wb = tokio::spawn(async move { b2.acquire_lock("res:p", ms(60_000), ms(15_000)).await });
    // whichever fails first is the one victim; the other still waits
    let deadline = Instant::now() + ms(10_000);
    while !wa.is_finished() && !wb.is_finished() {
        assert!(Instant::now() < deadline, "no victim");
        tokio::time::sleep(ms(10)).await; // polling a condition with a deadline
    }
    let (victim, survivor, victim_m, survivor_m) = if wa.is_finished() {
        (wa, wb, a, b)
    } else {
        (wb, wa, b, a)
    };
    let e = victim.await.unwrap().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DeadlockVictim);
    // the survivor is not aborted too: it gets the lock once the victim lets go
    victim_m.release_all_locks().await;
    assert!(
        survivor.await.unwrap().unwrap().is_some(),
        "one victim only"
    );
    survivor_m.release_all_locks().await;
}

#[derive(Default)]
struct Counter(AtomicU64);
impl DeadlockMetrics for Counter {
    fn record_deadlock(&self, method: &str) {
        assert_eq!(method, "abort_saga");
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_detector_finds_explains_and_breaks_cycles_and_fails_the_victims() {
    let server = RedisServer::start();
    let c = client(&server);
    let repo = Arc::new(RedisSagaRepository::new(&c));
    for (id, p) in [("d1", 2), ("d2", 1), ("d3", 3)] {
        let mut s = SagaRecord::new(id, "CreateOrderSaga");
        s.priority = p;
        repo.save(&s).await.unwrap();
    }
    let counter = Arc::new(Counter::default());
    let detector = SagaDeadlockDetector::new(
        repo.clone(),
        Arc::new(TracingLogger),
        DetectorOptions::new().set_metrics(counter.clone()),
    )
    .unwrap();
    // probes off: only the detector breaks it
    let waits = form_cycle(&c, &[("d1", 2), ("d2", 1), ("d3", 3)], 0).await;
    let mut found = None;
    for _ in 0..200 {
        let r = detector.detect_deadlock().await.unwrap();
        if r.has_deadlock {
            found = Some(r);
            break;
        }
        tokio::time::sleep(ms(25)).await; // the waits are still queueing: poll with a bound
    }
    let r = found.expect("a deadlock is found");
    assert_eq!(r.cycles, vec![vec!["d1", "d2", "d3", "d1"]]);
    assert_eq!(r.affected_sagas, vec!["d1", "d2", "d3"]);
    let explained = &r.explained[0];
    assert_eq!(explained.edges.len(), 3);
    assert!(explained.edges.iter().all(|e| e.holder_token.is_some()));
    assert_eq!(explained.id.len(), 16);
    let again = detector.detect_deadlock().await.unwrap();
    assert_eq!(again.explained[0].id, explained.id, "a stable cycle id");

    let broken = detector.resolve_deadlock(&r.cycles).await.unwrap();
    assert_eq!(broken.len(), 1);
    assert_eq!(
        broken[0].victim.as_deref(),
        Some("d2"),
        "the lowest priority"
    );
    assert_eq!(
        counter.0.load(Ordering::SeqCst),
        1,
        "counted once per cycle"
    );
    let saga = repo.find_by_id("d2").await.unwrap().unwrap();
    assert_eq!(saga.status, SagaStatus::Failed);
    assert_eq!(saga.error.as_deref(), Some(txcoord::ABORT_ERROR));
    assert_eq!(
        repo.find_by_id("d1").await.unwrap().unwrap().status,
        SagaStatus::Executing
    );
    // d2's wait (on res:d3) failed; the others still wait until d2 lets go
    let mut results = Vec::new();
    for w in waits {
        results.push(w);
    }
    let d2 = results.remove(1).await.unwrap().unwrap_err();
    assert_eq!(d2.kind(), ErrorKind::DeadlockVictim);
    assert!(!detector.detect_deadlock().await.unwrap().has_deadlock);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_false_cycle_graph_reports_only_the_real_cycle() {
    // A→B, B→C, C→B, D→A: only B–C is a deadlock; D and A are not in it.
    let server = RedisServer::start();
    let c = client(&server);
    let repo = Arc::new(RedisSagaRepository::new(&c));
    let detector =
        SagaDeadlockDetector::new(repo, Arc::new(TracingLogger), DetectorOptions::new()).unwrap();
    let m: std::collections::HashMap<&str, LockManager> = ["A", "B", "C", "D"]
        .into_iter()
        .map(|s| (s, saga_manager(&c, s, 0, 0)))
        .collect();
    for s in ["A", "B", "C", "D"] {
        m[s].acquire_lock(&format!("res:{s}"), ms(60_000), ms(0))
            .await
            .unwrap()
            .unwrap();
    }
    let mut waits = Vec::new();
    for (w, h) in [("A", "B"), ("B", "C"), ("C", "B"), ("D", "A")] {
        let mm = m[w].clone();
        waits.push(tokio::spawn(async move {
            mm.acquire_lock(&format!("res:{h}"), ms(60_000), ms(10_000))
                .await
        }));
    }
    let mut result = None;
    for _ in 0..200 {
        let graph = detector.wait_for_graph().await.unwrap();
        if graph.edges.len() == 4 {
            result = Some(detector.detect_deadlock().await.unwrap());
            break;
        }
        tokio::time::sleep(ms(25)).await; // the waits are still queueing: poll with a bound
    }
    let r = result.expect("four edges");
    assert_eq!(r.cycles, vec![vec!["B", "C", "B"]]);
    assert_eq!(r.affected_sagas, vec!["B", "C"]);
    for w in waits {
        w.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_held_without_an_owner_makes_no_edge() {
    let server = RedisServer::start();
    let c = client(&server);
    let anon = LockManager::new(&c);
    anon.acquire_lock("plain", ms(60_000), ms(0))
        .await
        .unwrap()
        .unwrap();
    let saga = saga_manager(&c, "s1", 0, 200);
    let s2 = saga.clone();
    let wait = tokio::spawn(async move { s2.acquire_lock("plain", ms(60_000), ms(1_500)).await });
    let detector = SagaDeadlockDetector::new(
        Arc::new(RedisSagaRepository::new(&c)),
        Arc::new(TracingLogger),
        DetectorOptions::new(),
    )
    .unwrap();
    wait_until("the saga to wait", ms(5_000), || {
        waiter_count(&server, "lock:plain") == 1
    })
    .await;
    let graph = detector.wait_for_graph().await.unwrap();
    assert!(graph.edges.is_empty(), "{graph:?}");
    // its probes (every 200 ms) never abort it: it times out normally
    assert!(wait.await.unwrap().unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_repository_needs_the_redis_option() {
    struct Mine;
    impl SagaRepository for Mine {
        fn find_by_id<'a>(
            &'a self,
            _: &'a str,
        ) -> txcoord::BoxFuture<'a, txcoord::Result<Option<SagaRecord>>> {
            Box::pin(async { Ok(None) })
        }
        fn save<'a>(&'a self, _: &'a SagaRecord) -> txcoord::BoxFuture<'a, txcoord::Result<()>> {
            Box::pin(async { Ok(()) })
        }
        fn save_if<'a>(
            &'a self,
            _: &'a SagaRecord,
            _: &'a txcoord::SaveOptions,
        ) -> txcoord::BoxFuture<'a, txcoord::Result<Option<txcoord::SaveOutcome>>> {
            Box::pin(async { Ok(None) })
        }
        fn find_active_sagas(&self) -> txcoord::BoxFuture<'_, txcoord::Result<Vec<SagaRecord>>> {
            Box::pin(async { Ok(Vec::new()) })
        }
        fn find_stuck_sagas(&self) -> txcoord::BoxFuture<'_, txcoord::Result<Vec<SagaRecord>>> {
            Box::pin(async { Ok(Vec::new()) })
        }
        fn get_statistics(
            &self,
        ) -> txcoord::BoxFuture<'_, txcoord::Result<txcoord::SagaStatistics>> {
            Box::pin(async { Ok(Default::default()) })
        }
    }
    let e = SagaDeadlockDetector::new(
        Arc::new(Mine),
        Arc::new(TracingLogger),
        DetectorOptions::new(),
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert_eq!(e.argument(), Some("redis"));
    let c = txcoord::Client::open("redis://127.0.0.1:1").unwrap();
    assert!(SagaDeadlockDetector::new(
        Arc::new(Mine),
        Arc::new(TracingLogger),
        DetectorOptions::new().set_redis(&c)
    )
    .is_ok());
}
