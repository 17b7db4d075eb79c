// SPDX-License-Identifier: MIT OR Apache-2.0
//! A held lock's life against a real redis-server: scoped holds, release (all, closed, dropped,
//! skipped), renewal, loss and its reasons, a vanished holder, one connection and one renewal
//! chain per lock.

mod common;

use std::time::Instant;

use common::*;
use txcoord::{
    AcquireOptions, DistributedLock, ErrorKind, LockManager, LockStatus, LossReason, ManagerOptions,
};
use txcoord_testkit::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoped_form_releases_and_times_out_with_the_timeout_kind() {
    let server = RedisServer::start();
    let c = client(&server);
    let m = LockManager::new(&c);
    let m2 = m.clone();
    let token = m
        .with_lock("scoped", AcquireOptions::new(), |lock| async move {
            assert!(lock.is_held());
            // a scoped lock is one of the manager's while its scope runs
            assert_eq!(m2.held_resources(), vec!["scoped".to_string()]);
            lock.fencing_token()
        })
        .await
        .unwrap();
    assert!(token.is_some());
    assert!(m.held_resources().is_empty(), "and no longer after it");
    assert!(
        !exists(&server, &lock_key("scoped")),
        "released after the scope"
    );

    let held = m
        .acquire_lock("scoped", ms(10_000), ms(0))
        .await
        .unwrap()
        .unwrap();
    let e = m
        .with_lock(
            "scoped",
            AcquireOptions::new().set_timeout(ms(100)),
            |_| async {},
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert_eq!(e.kind().code(), "TXCOORD_TIMEOUT");
    held.release().await.unwrap();

    // a panicking scope still releases (in the background)
    let m2 = m.clone();
    let r = tokio::spawn(async move {
        m2.with_lock("scoped", AcquireOptions::new(), |_| async {
            panic!("boom")
        })
        .await
    })
    .await;
    assert!(r.is_err());
    wait_until("released after panic", ms(5000), || {
        !exists(&server, &lock_key("scoped"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_all_locks_attempts_every_release_and_returns_failures() {
    let server = RedisServer::start();
    let c = client(&server);
    let m = LockManager::new(&c);
    for r in ["a", "b", "c"] {
        m.acquire_lock(r, ms(10_000), ms(0)).await.unwrap().unwrap();
    }
    assert_eq!(m.held_resources(), vec!["a", "b", "c"]);
    assert!(m.release_all_locks().await.is_empty());
    assert_eq!(left_behind(&server, &["a", "b", "c"]), Vec::<String>::new());

    for r in ["a", "b", "c"] {
        m.acquire_lock(r, ms(10_000), ms(0)).await.unwrap().unwrap();
    }
    c.close(); // every release now fails
    let failures = m.release_all_locks().await;
    let mut failed: Vec<_> = failures
        .iter()
        .map(|(r, e)| (r.as_str(), e.kind()))
        .collect();
    failed.sort_by_key(|(r, _)| *r);
    assert_eq!(
        failed,
        vec![
            ("a", ErrorKind::Closed),
            ("b", ErrorKind::Closed),
            ("c", ErrorKind::Closed)
        ]
    );
    assert!(m.held_resources().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_manager_refuses_and_releases() {
    let server = RedisServer::start();
    let c = client(&server);
    let m = LockManager::new(&c);
    m.acquire_lock("z", ms(10_000), ms(0))
        .await
        .unwrap()
        .unwrap();
    assert!(m.close().await.is_empty());
    assert_eq!(left_behind(&server, &["z"]), Vec::<String>::new());
    let e = m.acquire_lock("z", ms(10_000), ms(0)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_handle_releases() {
    let server = RedisServer::start();
    let c = client(&server);
    let lock = DistributedLock::new(&c, "lock:dropped", ms(30_000)).unwrap();
    assert!(lock.acquire().await.unwrap());
    drop(lock);
    wait_until("released on drop", ms(5000), || {
        !exists(&server, &lock_key("dropped"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_reason_taken_and_expired() {
    let server = RedisServer::start();
    let c = client(&server);
    let m = LockManager::new(&c);
    let ttl = ms(1500); // renewal every 500 ms
    for (resource, reason) in [("gone", LossReason::Expired), ("stolen", LossReason::Taken)] {
        let lock = m.acquire_lock(resource, ttl, ms(0)).await.unwrap().unwrap();
        let key = lock.key().to_string();
        let mut con = server.connection();
        let started = Instant::now();
        match reason {
            LossReason::Expired => {
                let _: () = redis::cmd("DEL").arg(&key).query(&mut con).unwrap();
            }
            _ => {
                let _: () = redis::cmd("SET")
                    .arg(&key)
                    .arg("someone-else")
                    .query(&mut con)
                    .unwrap();
            }
        }
        let got = tokio::time::timeout(ms(10_000), lock.lost())
            .await
            .expect("signalled");
        // found by the next renewal (every 500 ms), before the local deadline (1500 ms), which
        // would have given the reason Deadline
        assert_eq!(got, Some(reason), "{resource}");
        assert!(started.elapsed() < ttl, "{:?}", started.elapsed());
        assert!(!lock.is_held());
        assert_eq!(lock.status(), LockStatus::Lost(reason));
        // releasing a lost lock does not fail, and does not delete someone else's key
        lock.release().await.unwrap();
        if reason == LossReason::Taken {
            assert_eq!(get(&server, &key).as_deref(), Some("someone-else"));
        }
    }
    assert_eq!(c.stats().lost, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_keeps_a_short_lock_held() {
    let server = RedisServer::start();
    let c = client(&server);
    let m = LockManager::new(&c);
    let lock = m
        .acquire_lock("renewed", ms(1000), ms(0))
        .await
        .unwrap()
        .unwrap();
    let value = lock.value();
    let until = Instant::now() + ms(5000);
    let mut checks = 0;
    while Instant::now() < until {
        assert!(lock.is_held());
        assert_eq!(
            get(&server, "lock:renewed"),
            value,
            "still ours after {checks} checks"
        );
        let p = pttl(&server, "lock:renewed");
        assert!(p > 0 && p <= 1000, "{p}");
        checks += 1;
        tokio::time::sleep(ms(100)).await; // sampling, not synchronisation
    }
    assert!(checks >= 20);
    assert!(c.stats().renewals >= 12, "{:?}", c.stats());
    assert_eq!(lock.loss_reason(), None);
    lock.release().await.unwrap();
    assert_eq!(left_behind(&server, &["renewed"]), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_holder_frees_the_lock_after_its_ttl_and_not_before() {
    let server = RedisServer::start();
    let holder_client = client(&server);
    let waiter_client = client(&server);
    let ttl = ms(1200);
    let holder = LockManager::new(&holder_client);
    let sent = Instant::now();
    let lock = holder
        .acquire_lock("vanish", ttl, ms(0))
        .await
        .unwrap()
        .unwrap();
    // The holder's process goes away: its client refuses everything, so it neither renews nor
    // releases (std::mem::forget keeps the handle from releasing on drop).
    holder_client.close();
    std::mem::forget(lock);
    let waiter = LockManager::new(&waiter_client);
    let got = waiter
        .acquire_lock("vanish", ms(5000), ms(5000))
        .await
        .unwrap()
        .expect("freed by TTL");
    let after = sent.elapsed();
    assert!(
        after >= ttl - ms(5),
        "acquired {after:?} after the vanished grant, before its TTL"
    );
    // the waiter sleeps until the key's expiry (at most one fallback poll, 1 s, at a time)
    assert!(
        after <= ttl + ms(1500),
        "acquired {after:?} after the grant, long after its TTL"
    );
    got.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_lock_skips_handles_released_directly() {
    let server = RedisServer::start();
    let c = client(&server);
    let m = LockManager::with_options(&c, ManagerOptions::new().set_owner_id("saga-r")).unwrap();
    let first = m
        .acquire_lock("rr", ms(10_000), ms(0))
        .await
        .unwrap()
        .unwrap();
    let second = m
        .acquire_lock("rr", ms(10_000), ms(0))
        .await
        .unwrap()
        .unwrap();
    second.release().await.unwrap(); // released behind the manager's back
    assert!(exists(&server, "lock:rr"));
    m.release_lock("rr").await.unwrap(); // releases `first`, not the released `second` again
    assert_eq!(first.status(), LockStatus::Released);
    assert!(!exists(&server, &lock_key("rr")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_scheduled_renewal_per_held_lock_and_none_after_release() {
    let server = RedisServer::start();
    let c = client(&server);
    let m = LockManager::new(&c);
    for i in 0..100 {
        m.acquire_lock(&format!("many:{i}"), ms(30_000), ms(0))
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(c.scheduled_renewals(), 100);
    assert!(m.release_all_locks().await.is_empty());
    assert_eq!(c.scheduled_renewals(), 0);
    let lock = m
        .acquire_lock("one", ms(900), ms(0))
        .await
        .unwrap()
        .unwrap();
    // renewals reschedule themselves: still exactly one after a few renewals
    wait_until("three renewals", ms(3000), || c.stats().renewals >= 3).await;
    assert_eq!(c.scheduled_renewals(), 1);
    drop(lock);
    m.release_lock("one").await.unwrap();
    assert_eq!(c.scheduled_renewals(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_per_client_however_many_locks_and_waiters() {
    let server = RedisServer::start();
    let c = client(&server);
    let m = LockManager::new(&c);
    let mut held = Vec::new();
    for i in 0..50 {
        held.push(
            m.acquire_lock(&format!("conn:{i}"), ms(30_000), ms(0))
                .await
                .unwrap()
                .unwrap(),
        );
    }
    // waiters on several locks, each subscribed to its release channel
    let mut waiters = Vec::new();
    for i in 0..5 {
        let m = m.clone();
        waiters.push(tokio::spawn(async move {
            m.acquire_lock(&format!("conn:{i}"), ms(30_000), ms(10_000))
                .await
        }));
    }
    wait_until("subscribed", ms(3000), || c.stats().subscribes == 5).await;
    let mut con = server.connection();
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut con).unwrap();
    let ours = list
        .lines()
        .filter(|l| l.contains(&format!("name={}", c.name())))
        .count();
    assert_eq!(
        ours, 1,
        "one connection for 50 locks, 5 waiters and their subscriptions:\n{list}"
    );
    for lock in held {
        lock.release().await.unwrap();
    }
    for w in waiters {
        w.await
            .unwrap()
            .unwrap()
            .expect("handed over")
            .release()
            .await
            .unwrap();
    }
}
