// SPDX-License-Identifier: MIT OR Apache-2.0
//! Waiting for a lock against a real redis-server: the release notice, timeouts, cancellation,
//! fair (FIFO) mode, several resources in one global order.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::*;
use txcoord::{AcquireOptions, LockManager, ManagerOptions};
use txcoord_testkit::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiter_is_woken_by_the_release_notice_not_the_poll() {
    let server = RedisServer::start();
    let holder_client = client(&server);
    let waiter_client = client(&server);
    let holder = LockManager::new(&holder_client);
    // the fallback poll is longer than the test: only the notice can wake the waiter in time
    let waiter = LockManager::with_options(
        &waiter_client,
        ManagerOptions::new()
            .set_fallback_poll(ms(30_000))
            .set_waiter_lease(ms(60_000)),
    )
    .unwrap();
    let lock = holder
        .acquire_lock("notify", ms(30_000), ms(0))
        .await
        .unwrap()
        .unwrap();
    let w = waiter.clone();
    let start = waiter_client.stats();
    let task = tokio::spawn(async move {
        let lock = w
            .acquire_lock("notify", ms(30_000), ms(20_000))
            .await
            .unwrap()
            .expect("handoff");
        (Instant::now(), lock)
    });
    // released only once the waiter sleeps: subscribed, and past its attempt after subscribing
    wait_until_asleep(&waiter_client, &start, ms(10_000)).await;
    let before = waiter_client.stats();
    let released_at = Instant::now();
    lock.release().await.unwrap();
    let (acquired_at, lock2) = task.await.unwrap();
    let after = waiter_client.stats();
    assert_eq!(after.wake_notified - before.wake_notified, 1, "{after:?}");
    assert_eq!(
        after.wake_timer, before.wake_timer,
        "the fallback poll did not fire: {after:?}"
    );
    let handoff = acquired_at.duration_since(released_at);
    assert!(
        handoff < ms(3000),
        "handoff took {handoff:?} (fallback poll is 30 s)"
    );
    assert!(lock2.fencing_token() > lock.fencing_token());
    lock2.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_gives_none_near_the_timeout_and_leaves_no_waiter() {
    let server = RedisServer::start();
    let c = client(&server);
    let m = LockManager::new(&c);
    let _held = m
        .acquire_lock("busy", ms(30_000), ms(0))
        .await
        .unwrap()
        .unwrap();
    for timeout in [0u64, 300, 700] {
        let started = Instant::now();
        let got = m
            .acquire_lock("busy", ms(30_000), ms(timeout))
            .await
            .unwrap();
        let took = started.elapsed();
        assert!(got.is_none());
        assert!(took >= ms(timeout), "{took:?} < {timeout} ms");
        assert!(took < ms(timeout + 1000), "{took:?} for {timeout} ms");
        let keys = txcoord::LockKeys::for_resource("", "busy").unwrap();
        assert!(
            !exists(&server, &keys.queue),
            "no queue left after a {timeout} ms timeout"
        );
        assert!(!exists(&server, &keys.waiters), "no waiter entry left");
    }
    let info = txcoord::registry::inspect(&c, "lock:busy").await.unwrap();
    assert!(info.waiters.is_empty());
    assert!(info.holder.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_wait_removes_its_waiter_entry() {
    let server = RedisServer::start();
    let c = client(&server);
    let m = LockManager::new(&c);
    let held = m
        .acquire_lock("cancel", ms(30_000), ms(0))
        .await
        .unwrap()
        .unwrap();
    let m2 = m.clone();
    let task = tokio::spawn(async move { m2.acquire_lock("cancel", ms(30_000), ms(20_000)).await });
    wait_until("waiter queued", ms(3000), || {
        waiter_count(&server, "lock:cancel") == 1
    })
    .await;
    task.abort(); // drops the acquire future
    assert!(task.await.unwrap_err().is_cancelled());
    wait_until("waiter entry removed", ms(2000), || {
        waiter_count(&server, "lock:cancel") == 0
    })
    .await;
    let keys = txcoord::LockKeys::for_resource("", "cancel").unwrap();
    wait_until("waiter hash removed", ms(2000), || {
        !exists(&server, &keys.waiters)
    })
    .await;
    // the local subscription is dropped after its linger
    wait_until("unsubscribed", ms(5000), || c.channels_in_use() == 0).await;
    held.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fair_mode_serves_waiters_in_arrival_order() {
    let server = RedisServer::start();
    let c = client(&server);
    let fair = LockManager::with_options(&c, ManagerOptions::new().set_fair(true)).unwrap();
    let holder = fair
        .acquire_lock("fifo", ms(30_000), ms(0))
        .await
        .unwrap()
        .unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..6 {
        let m = fair.clone();
        let order = order.clone();
        tasks.push(tokio::spawn(async move {
            let lock = m
                .acquire_lock("fifo", ms(30_000), ms(20_000))
                .await
                .unwrap()
                .expect("served");
            order.lock().unwrap().push(i);
            lock.release().await.unwrap();
        }));
        // the next one arrives only after this one is queued
        wait_until("queued", ms(3000), || {
            waiter_count(&server, "lock:fifo") == i + 1
        })
        .await;
    }
    holder.release().await.unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4, 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fair_mode_refuses_barging_and_skips_dead_heads() {
    let server = RedisServer::start();
    let c = client(&server);
    let fair = LockManager::with_options(&c, ManagerOptions::new().set_fair(true)).unwrap();
    let unfair = LockManager::new(&c);
    let keys = txcoord::LockKeys::for_resource("", "q").unwrap();
    // A queued waiter of another process (entry expires in 1.5 s, its arrival is earliest).
    let mut con = server.connection();
    let now_ms: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let _: () = redis::cmd("ZADD")
        .arg(&keys.queue)
        .arg(1)
        .arg("other-1")
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg(&keys.waiters)
        .arg("other-1")
        .arg(format!("2|w|{}|{}|0|", now_ms + 1500, now_ms))
        .query(&mut con)
        .unwrap();
    // The lock is free, but it is the other waiter's turn: a fair newcomer does not barge.
    assert!(fair
        .acquire_lock("q", ms(5000), ms(0))
        .await
        .unwrap()
        .is_none());
    // A non-fair acquirer may.
    let l = unfair
        .acquire_lock("q", ms(5000), ms(0))
        .await
        .unwrap()
        .expect("barging allowed");
    l.release().await.unwrap();
    // Once the dead head's entry expires it is skipped, within its lease plus a poll.
    let started = Instant::now();
    let l = fair
        .acquire_lock("q", ms(5000), ms(20_000))
        .await
        .unwrap()
        .expect("dead head pruned");
    // the head's lease (1.5 s) plus a fallback poll (1 s), with room for a loaded machine
    assert!(started.elapsed() < ms(6000), "{:?}", started.elapsed());
    l.release().await.unwrap();
    assert!(!exists(&server, &keys.queue));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_resources_in_a_global_order() {
    let server = RedisServer::start();
    let c = client(&server);
    let m = LockManager::new(&c);
    // Two callers ask for the same set in opposite orders, many times: no deadlock, as both
    // acquire in the same global order.
    let mut tasks = Vec::new();
    for flip in [false, true] {
        let m = m.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..30 {
                let set: &[&str] = if flip {
                    &["b", "a", "c", "a"]
                } else {
                    &["a", "c", "b"]
                };
                let locks = m
                    .acquire_locks(set, AcquireOptions::new().set_timeout(ms(10_000)))
                    .await
                    .unwrap()
                    .expect("no deadlock");
                let keys: Vec<&str> = locks.iter().map(|l| l.key()).collect();
                assert_eq!(keys, vec!["lock:a", "lock:b", "lock:c"]);
                if flip {
                    // released together by the manager
                    assert!(m.release_locks(set).await.is_empty());
                    assert!(locks.iter().all(|l| !l.is_held()));
                } else {
                    for l in locks {
                        l.release().await.unwrap();
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // On timeout nothing stays held.
    let other = LockManager::new(&c);
    let b = other
        .acquire_lock("b", ms(10_000), ms(0))
        .await
        .unwrap()
        .unwrap();
    let got = m
        .acquire_locks(&["a", "b"], AcquireOptions::new().set_timeout(ms(200)))
        .await
        .unwrap();
    assert!(got.is_none());
    assert!(
        !exists(&server, &lock_key("a")),
        "the acquired part was released again"
    );
    b.release().await.unwrap();
    // bad names are refused before anything is acquired
    let e = m
        .acquire_locks(&["a", ""], AcquireOptions::new())
        .await
        .unwrap_err();
    assert_eq!(e.argument(), Some("resource"));
    assert!(!exists(&server, &lock_key("a")));
}
