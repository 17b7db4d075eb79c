// SPDX-License-Identifier: MIT OR Apache-2.0
//! Lock correctness when replies are lost, Redis comes back older, holds are shared by one
//! owner, releases fail, or an extend meets a renewal: `is_held` never says true while
//! another holder can exist, a fencing token never repeats, and nothing leaks a hold.

mod common;

use std::time::Instant;

use common::*;
use txcoord::{
    AcquireOptions, ClientOptions, DistributedLock, LockManager, LockStatus, ManagerOptions,
};
use txcoord_testkit::{Proxy, RedisServer};

fn owned(client: &txcoord::Client, owner: &str) -> LockManager {
    LockManager::with_options(client, ManagerOptions::new().set_owner_id(owner)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fence_never_repeats_after_a_restart_from_an_older_snapshot() {
    let mut server = RedisServer::start();
    let c = client(&server);
    let m = LockManager::new(&c);
    let mut seen = Vec::new();
    // The snapshot is taken while a lock is held, then more grants follow.
    let held = m
        .acquire_lock("fence", ms(5_000), ms(0))
        .await
        .unwrap()
        .expect("free lock");
    seen.push(held.fencing_token().unwrap());
    let _: () = redis::cmd("SAVE").query(&mut server.connection()).unwrap();
    m.release_lock("fence").await.unwrap();
    for _ in 0..2 {
        let l = m
            .acquire_lock("fence", ms(5_000), ms(5_000))
            .await
            .unwrap()
            .expect("free lock");
        seen.push(l.fencing_token().unwrap());
        m.release_lock("fence").await.unwrap();
    }
    let newest = *seen.iter().max().unwrap();
    server.restart();
    assert!(
        exists(&server, &lock_key("fence")),
        "the snapshot brought the lock of the first grant back"
    );
    let l = m
        .acquire_lock("fence", ms(30_000), ms(20_000))
        .await
        .unwrap()
        .expect("the lock once the old one expired");
    let token = l.fencing_token().unwrap();
    assert!(
        token > newest,
        "token {token} after the restart repeats one issued before it (newest {newest}, all {seen:?})"
    );
    m.release_lock("fence").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reentrant_hold_never_shortens_the_lock_under_another_hold() {
    let server = RedisServer::start();
    let c = client(&server);
    let saga = owned(&c, "saga-o");
    let key = &lock_key("share");
    let a = saga
        .acquire_lock("share", ms(30_000), ms(0))
        .await
        .unwrap()
        .unwrap();
    let b = saga
        .acquire_lock("share", ms(1_000), ms(0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.hold_count(), 2);
    assert_eq!(a.fencing_token(), b.fencing_token());
    let a_value = a.value().unwrap();
    let check = |when: &str| {
        if a.is_held() {
            assert_eq!(
                get(&server, key).as_deref(),
                Some(a_value.as_str()),
                "A is_held {when} but the key is not A's"
            );
        }
    };
    check("after B re-entered");
    assert!(b.extend(Some(ms(100))).await.unwrap());
    assert!(
        pttl(&server, key) > 20_000,
        "B.extend(100) shortened the lock under A: pttl {}",
        pttl(&server, key)
    );
    check("after B.extend(100)");
    let before = c.stats().renewals;
    wait_until("two renewals of B (ttl 1 s)", ms(10_000), || {
        c.stats().renewals >= before + 2
    })
    .await;
    assert!(
        pttl(&server, key) > 20_000,
        "B's renewal shortened the lock under A: pttl {}",
        pttl(&server, key)
    );
    check("after B's renewals");
    b.release().await.unwrap();
    // For longer than B's ttl: the key stays A's and nobody else gets it while A is_held.
    let other_client = client(&server);
    let other = LockManager::new(&other_client);
    let window = Instant::now() + ms(2_500);
    while Instant::now() < window {
        check("after B released");
        let stolen = other.acquire_lock("share", ms(1_000), ms(0)).await.unwrap();
        assert!(
            stolen.is_none() || !a.is_held(),
            "another manager acquired the lock while A is_held"
        );
        tokio::time::sleep(ms(100)).await; // sampling interval of an invariant over a window
    }
    assert!(a.is_held(), "A keeps its lock by renewal");
    a.release().await.unwrap();
    assert!(!exists(&server, key));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extend_whose_reply_is_lost_only_moves_the_deadline_earlier() {
    let server = RedisServer::start();
    let c = client_with(&server, ClientOptions::new().set_response_timeout(ms(150)));
    let lock = DistributedLock::new(&c, "lost-extend", ms(30_000)).unwrap();
    assert!(lock.acquire().await.unwrap());
    // the extend script is in the server's cache (EVALSHA needs no fallback)
    assert!(lock.extend(None).await.unwrap());
    let sleeper = debug_sleep(&server, 0.6);
    let r = lock.extend(Some(ms(200))).await;
    assert!(r.is_err(), "the reply cannot arrive in time: {r:?}");
    sleeper.join().unwrap();
    // The extend ran once the server woke up: the key expires 200 ms later.
    wait_until("the key to expire", ms(5_000), || {
        !exists(&server, "lost-extend")
    })
    .await;
    assert!(
        !lock.is_held(),
        "is_held while the key is gone (remaining {:?})",
        lock.remaining_validity()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reentry_whose_reply_is_lost_leaks_no_hold() {
    let server = RedisServer::start();
    let c1 = client(&server);
    let c2 = client_with(&server, ClientOptions::new().set_response_timeout(ms(150)));
    let a_side = owned(&c1, "saga-r");
    let b_side = owned(&c2, "saga-r");
    a_side
        .acquire_lock("reenter", ms(30_000), ms(0))
        .await
        .unwrap()
        .unwrap();
    c2.ping().await.unwrap();
    let sleeper = debug_sleep(&server, 0.6);
    let b = b_side
        .acquire_lock("reenter", ms(30_000), ms(10_000))
        .await
        .unwrap()
        .expect("re-entry");
    sleeper.join().unwrap();
    assert!(
        c2.stats().attempts >= 2,
        "the first attempt's reply was lost"
    );
    assert_eq!(b.hold_count(), 2, "one re-entry, however many attempts");
    b_side.release_lock("reenter").await.unwrap();
    assert!(exists(&server, &lock_key("reenter")), "A still holds it");
    a_side.release_lock("reenter").await.unwrap();
    assert!(
        !exists(&server, &lock_key("reenter")),
        "a hold leaked: the key outlives every release"
    );
}

/// A client that reaches `server` through `proxy`, with short timeouts.
fn proxied(proxy: &Proxy) -> txcoord::Client {
    txcoord::Client::with_options(
        &proxy.url(),
        ClientOptions::new()
            .set_response_timeout(ms(200))
            .set_connect_timeout(ms(500)),
    )
    .unwrap()
}

/// Retries `release` until it succeeds (the first command after a reset may fail).
async fn release_until_ok<F, Fut>(mut release: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = txcoord::Result<()>>,
{
    let mut last = None;
    let deadline = Instant::now() + ms(10_000);
    while Instant::now() < deadline {
        match release().await {
            Ok(()) => return,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(ms(50)).await; // pause between retries while the client reconnects
    }
    panic!("release kept failing: {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_release_is_sent_again() {
    let server = RedisServer::start();
    let proxy = Proxy::start(server.port());
    let c = proxied(&proxy);
    let m = LockManager::new(&c);
    let lock = m
        .acquire_lock("rel", ms(30_000), ms(0))
        .await
        .unwrap()
        .unwrap();
    proxy.blackhole_up(true);
    assert!(m.release_lock("rel").await.is_err());
    assert_eq!(lock.status(), LockStatus::Releasing);
    assert!(!lock.is_held());
    assert_eq!(c.scheduled_renewals(), 0, "renewal stopped");
    proxy.blackhole_up(false);
    proxy.reset_all();
    assert!(
        exists(&server, &lock_key("rel")),
        "the first release never reached Redis"
    );
    release_until_ok(|| m.release_lock("rel")).await;
    assert!(
        !exists(&server, &lock_key("rel")),
        "the second release was not sent"
    );
    assert_eq!(lock.status(), LockStatus::Released);
    assert!(m.held_resources().is_empty());
    assert!(m.release_all_locks().await.is_empty());

    // The same when the release future is dropped before Redis answered.
    let lock = DistributedLock::new(&c, "rel2", ms(30_000)).unwrap();
    let mut got = false;
    let deadline = Instant::now() + ms(10_000);
    while !got && Instant::now() < deadline {
        got = matches!(lock.acquire().await, Ok(true));
        if !got {
            tokio::time::sleep(ms(50)).await; // pause between retries while the client reconnects
        }
    }
    assert!(got, "acquire after the reset");
    proxy.blackhole_up(true);
    let dropped = tokio::time::timeout(ms(100), lock.release()).await;
    assert!(
        dropped.is_err(),
        "the release future was dropped mid-flight"
    );
    assert_eq!(lock.status(), LockStatus::Releasing);
    proxy.blackhole_up(false);
    proxy.reset_all();
    assert!(exists(&server, "rel2"));
    release_until_ok(|| lock.release()).await;
    assert!(!exists(&server, "rel2"), "the release was not sent again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_all_locks_keeps_the_failed_ones_for_a_retry() {
    let server = RedisServer::start();
    let proxy = Proxy::start(server.port());
    let c = proxied(&proxy);
    let m = LockManager::new(&c);
    for r in ["all-a", "all-b"] {
        m.acquire_lock(r, ms(30_000), ms(0)).await.unwrap().unwrap();
    }
    proxy.blackhole_up(true);
    let failures = m.release_all_locks().await;
    assert_eq!(failures.len(), 2, "{failures:?}");
    proxy.blackhole_up(false);
    proxy.reset_all();
    let mut left = usize::MAX;
    let deadline = Instant::now() + ms(10_000);
    while left > 0 && Instant::now() < deadline {
        left = m.release_all_locks().await.len();
        if left > 0 {
            tokio::time::sleep(ms(50)).await; // pause between retries while the client reconnects
        }
    }
    assert_eq!(left, 0);
    assert!(!exists(&server, &lock_key("all-a")) && !exists(&server, &lock_key("all-b")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extend_at_the_renewal_instant_leaves_one_renewal_chain() {
    let server = RedisServer::start();
    let c = client(&server);
    let lock = DistributedLock::new(&c, "chain", ms(600)).unwrap();
    assert!(lock.acquire().await.unwrap());
    assert_eq!(c.scheduled_renewals(), 1);
    let guard = lock.test_hold_operation_lock().await;
    // extend() queues for the operation lock first...
    let l2 = lock.clone();
    let extend = tokio::spawn(async move { l2.extend(None).await });
    // ...then the renewal comes due (~200 ms) and queues behind it.
    wait_until("the renewal to come due", ms(5_000), || {
        c.scheduled_renewals() == 0
    })
    .await;
    drop(guard);
    assert!(extend.await.unwrap().unwrap());
    // The operation lock is fair: once we hold it again, the waiting renewal has run.
    drop(lock.test_hold_operation_lock().await);
    assert_eq!(c.scheduled_renewals(), 1, "one renewal chain per held lock");
    let before = c.stats().renewals;
    wait_until("two more renewals", ms(5_000), || {
        c.stats().renewals >= before + 2
    })
    .await;
    assert_eq!(c.scheduled_renewals(), 1);
    lock.release().await.unwrap();
    assert_eq!(c.scheduled_renewals(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_whose_reply_outlives_its_ttl_is_not_acquired() {
    let server = RedisServer::start();
    let proxy = Proxy::start(server.port());
    let c = txcoord::Client::with_options(
        &proxy.url(),
        ClientOptions::new().set_response_timeout(ms(3_000)),
    )
    .unwrap();
    let m = LockManager::new(&c);
    assert!(m
        .acquire_lock("warmup", ms(1_000), ms(0))
        .await
        .unwrap()
        .is_some());
    m.release_lock("warmup").await.unwrap();
    proxy.delay_down(ms(400));
    let got = m.acquire_lock("late", ms(200), ms(0)).await.unwrap();
    assert!(
        got.is_none(),
        "a grant that arrived after its ttl was returned"
    );
    let mut ran = false;
    let scoped = m
        .with_lock(
            "late-scope",
            AcquireOptions::new().set_ttl(ms(200)).set_timeout(ms(0)),
            |_| {
                ran = true;
                async {}
            },
        )
        .await;
    assert!(scoped.is_err(), "the scoped form ran without a lock");
    assert!(!ran);
    assert!(m.held_resources().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_on_a_slow_connection_keeps_its_place_in_the_queue() {
    let server = RedisServer::start();
    let holder_client = client(&server);
    let holder = LockManager::new(&holder_client);
    let lock = holder
        .acquire_lock("slow", ms(30_000), ms(0))
        .await
        .unwrap()
        .unwrap();
    let proxy = Proxy::start(server.port());
    let slow = txcoord::Client::with_options(
        &proxy.url(),
        ClientOptions::new().set_response_timeout(ms(5_000)),
    )
    .unwrap();
    // the acquire script is in the server's cache (no NOSCRIPT round trip is needed later)
    let warm =
        LockManager::with_options(&slow, ManagerOptions::new().set_owner_id("warm")).unwrap();
    assert!(warm
        .acquire_lock("slow", ms(1_000), ms(0))
        .await
        .unwrap()
        .is_none());
    proxy.delay_down(ms(1_500));
    let waiter = LockManager::with_options(
        &slow,
        ManagerOptions::new()
            .set_fair(true)
            .set_fallback_poll(ms(1_000))
            .set_waiter_lease(ms(2_000)),
    )
    .unwrap();
    let pending =
        tokio::spawn(async move { waiter.acquire_lock("slow", ms(30_000), ms(15_000)).await });
    wait_until("the waiter to queue", ms(10_000), || {
        waiter_count(&server, &lock_key("slow")) == 1
    })
    .await;
    // Each reply takes 1.5 s: attempt + pause must still refresh the 2 s lease in time.
    let window = Instant::now() + ms(6_000);
    while Instant::now() < window {
        let info = txcoord::registry::inspect(&holder_client, &lock_key("slow"))
            .await
            .unwrap();
        assert_eq!(
            info.waiters.len(),
            1,
            "the slow waiter's entry expired: it lost its place in the queue"
        );
        tokio::time::sleep(ms(50)).await; // sampling interval of an invariant over a window
    }
    pending.abort();
    lock.release().await.unwrap();
}
