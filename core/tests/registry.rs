// SPDX-License-Identifier: MIT OR Apache-2.0
//! The holder/waiter registry: what the deadlock detector reads (PROTOCOL.md section 7).

mod common;

use common::*;
use txcoord::{registry, ErrorKind, LockManager, ManagerOptions};
use txcoord_testkit::RedisServer;

fn saga(c: &txcoord::Client, id: &str, priority: i32) -> LockManager {
    LockManager::with_options(
        c,
        ManagerOptions::new()
            .set_owner_id(id)
            .set_priority(priority),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_and_holders_form_the_wait_for_graph() {
    let server = RedisServer::start();
    // the detector's client, and one per saga (as separate processes would have), so that each
    // saga's wake counters are its own
    let c = client(&server);
    let (ca, cb) = (client(&server), client(&server));
    // A's wait can end only by a notice: its fallback poll is longer than the test
    let a = LockManager::with_options(
        &ca,
        ManagerOptions::new()
            .set_owner_id("saga-A")
            .set_priority(1)
            .set_fallback_poll(ms(30_000))
            .set_waiter_lease(ms(60_000)),
    )
    .unwrap();
    let b = saga(&cb, "saga-B", 5);
    let _ra = a
        .acquire_lock("res:1", ms(30_000), ms(0))
        .await
        .unwrap()
        .unwrap();
    let _rb = b
        .acquire_lock("res:2", ms(30_000), ms(0))
        .await
        .unwrap()
        .unwrap();
    // A waits for res:2 (held by B), B waits for res:1 (held by A): a deadlock.
    let (a2, b2) = (a.clone(), b.clone());
    let (before_a, before_b) = (ca.stats(), cb.stats());
    let wa = tokio::spawn(async move { a2.acquire_lock("res:2", ms(30_000), ms(20_000)).await });
    let wb = tokio::spawn(async move { b2.acquire_lock("res:1", ms(30_000), ms(20_000)).await });
    wait_until_asleep(&ca, &before_a, ms(10_000)).await;
    wait_until_asleep(&cb, &before_b, ms(10_000)).await;
    assert_eq!(waiter_count(&server, &lock_key("res:1")), 1);
    assert_eq!(waiter_count(&server, &lock_key("res:2")), 1);
    // the index is written in the background right after queueing
    let mut locks = Vec::new();
    for _ in 0..200 {
        locks = registry::waiting_locks(&c).await.unwrap();
        if locks.len() == 2 {
            break;
        }
        tokio::time::sleep(ms(10)).await;
    }
    assert_eq!(locks.len(), 2, "{locks:?}");
    let mut edges: Vec<(String, String, String)> = registry::wait_for_edges(&locks)
        .into_iter()
        .map(|e| {
            assert!(
                e.holder_token.is_some(),
                "a saga holder's token is in its value"
            );
            assert!(!e.waiter_id.is_empty());
            (e.waiter, e.holder, e.lock_key)
        })
        .collect();
    edges.sort();
    assert_eq!(
        edges,
        vec![
            (
                "saga-A".to_string(),
                "saga-B".to_string(),
                "lock:res:2".to_string()
            ),
            (
                "saga-B".to_string(),
                "saga-A".to_string(),
                "lock:res:1".to_string()
            ),
        ]
    );
    let res1 = locks.iter().find(|l| l.key == "lock:res:1").unwrap();
    let holder = res1.holder.as_ref().unwrap();
    assert_eq!(
        (holder.owner_id.as_deref(), holder.priority),
        (Some("saga-A"), 1)
    );
    let waiter = &res1.waiters[0];
    assert_eq!(
        (waiter.owner_id.as_deref(), waiter.priority, waiter.aborted),
        (Some("saga-B"), 5, false)
    );
    assert!(waiter.expires_ms > waiter.since_ms);

    // The detector aborts the lower-priority saga A's wait: it fails fast as a victim, woken
    // by the abort's notice (its only timer is 30 s away).
    let before = ca.stats();
    assert!(registry::abort_waiter(
        &c,
        "lock:res:2",
        &locks
            .iter()
            .find(|l| l.key == "lock:res:2")
            .unwrap()
            .waiters[0]
            .id
    )
    .await
    .unwrap());
    let e = wa.await.unwrap().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DeadlockVictim);
    assert_eq!(e.kind().code(), "TXCOORD_DEADLOCK_VICTIM");
    let after = ca.stats();
    assert_eq!(
        after.wake_notified - before.wake_notified,
        1,
        "woken by the notice: {after:?}"
    );
    assert_eq!(
        after.wake_timer, before.wake_timer,
        "not by a timer: {after:?}"
    );
    assert_eq!(waiter_count(&server, &lock_key("res:2")), 0);
    // A gives up its lock: B gets it.
    a.release_all_locks().await;
    let got = wb.await.unwrap().unwrap().expect("B proceeds");
    assert_eq!(got.owner_id(), Some("saga-B"));
    assert!(!registry::abort_waiter(&c, "lock:res:2", "nobody-1")
        .await
        .unwrap());
    b.release_all_locks().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_waiter_leaves_no_ghost_entry() {
    let server = RedisServer::start();
    let c = client(&server);
    let holder = LockManager::new(&c);
    let _h = holder
        .acquire_lock("ghost", ms(30_000), ms(0))
        .await
        .unwrap()
        .unwrap();
    // A waiter in another "process" whose client dies while it waits: its entry stays until
    // its lease runs out, then readers ignore it and the next writer prunes it.
    let doomed = client(&server);
    let lease = ms(600);
    let w = LockManager::with_options(
        &doomed,
        ManagerOptions::new()
            .set_owner_id("saga-dead")
            .set_fallback_poll(ms(200))
            .set_waiter_lease(lease),
    )
    .unwrap();
    let task = tokio::spawn(async move { w.acquire_lock("ghost", ms(30_000), ms(20_000)).await });
    wait_until("queued", ms(3000), || {
        waiter_count(&server, "lock:ghost") == 1
    })
    .await;
    doomed.close(); // it can no longer refresh nor cancel
    task.abort();
    let info = registry::inspect(&c, "lock:ghost").await.unwrap();
    assert_eq!(info.waiters.len(), 1);
    let keys = txcoord::LockKeys::for_resource("", "ghost").unwrap();
    wait_until("entry expired", ms(3000), || {
        !exists(&server, &keys.waiters)
    })
    .await;
    let info = registry::inspect(&c, "lock:ghost").await.unwrap();
    assert!(info.waiters.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_holder_is_seen_as_held_without_a_holder_record() {
    let server = RedisServer::start();
    let c = client(&server);
    let mut con = server.connection();
    let _: () = redis::cmd("SET")
        .arg("lock:legacy")
        .arg("seed-id")
        .arg("PX")
        .arg(10_000)
        .query(&mut con)
        .unwrap();
    let info = registry::inspect(&c, "lock:legacy").await.unwrap();
    assert!(info.held);
    assert!(info.holder.is_none());
    assert!(info.pttl_ms > 0);
}
