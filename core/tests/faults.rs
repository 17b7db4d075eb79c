// SPDX-License-Identifier: MIT OR Apache-2.0
//! Redis stopped, killed, paused and restarted under a holder or a waiter.

mod common;

use std::time::Instant;

use common::*;
use txcoord::{ClientOptions, DistributedLock, ErrorKind, LockManager, LossReason};
use txcoord_testkit::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_redis_gives_a_connection_error_within_the_timeout() {
    let server = RedisServer::start();
    // an established connection, then the server stops answering
    let c = client(&server);
    let m = LockManager::new(&c);
    c.ping().await.unwrap();
    server.pause();
    let started = Instant::now();
    let e = m.acquire_lock("x", ms(5000), ms(800)).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    // within the timeout, with room for a loaded machine; not after the client's own budget
    // for a command (2 × 1 s connect + 0.5 s + 2 s reply = 4.5 s)
    assert!(took < ms(800 + 1500), "{took:?}");
    // a fresh client, connecting to the stopped server
    let fresh = LockManager::new(&client(&server));
    let started = Instant::now();
    let e = fresh
        .acquire_lock("x", ms(5000), ms(600))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    assert!(
        started.elapsed() < ms(600 + 1500),
        "{:?}",
        started.elapsed()
    );
    // timeout 0 is bounded by the client's connect + response timeouts
    let quick = client_with(
        &server,
        ClientOptions::new()
            .set_connect_timeout(ms(200))
            .set_response_timeout(ms(300)),
    );
    let started = Instant::now();
    let e = LockManager::new(&quick)
        .acquire_lock("x", ms(5000), ms(0))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    // at most two connection attempts (200 ms each, ≤ 500 ms apart) and one reply (300 ms),
    // 1.2 s, with room for a loaded machine; the default timeouts would take 4.5 s
    assert!(
        started.elapsed() < ms(2 * 200 + 500 + 300 + 1500),
        "{:?}",
        started.elapsed()
    );
    server.resume();
    // and everything works again, with nothing left behind by the failed calls
    let l = m
        .acquire_lock("x", ms(5000), ms(3000))
        .await
        .unwrap()
        .expect("works after resume");
    l.release().await.unwrap();
    wait_until("cleanups done", ms(5000), || {
        left_behind(&server, &["x"]).is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absent_redis_gives_a_connection_error_not_none() {
    let mut server = RedisServer::start();
    let url = server.url();
    server.kill();
    let c = txcoord::Client::open(&url).unwrap();
    let m = LockManager::new(&c);
    for timeout in [0u64, 300] {
        let started = Instant::now();
        let e = m
            .acquire_lock("x", ms(5000), ms(timeout))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
        assert!(e.is_retryable());
        // refused connections fail at once; bounded by the timeout (or one attempt's budget)
        assert!(
            started.elapsed() < ms(timeout.max(1000) + 1500),
            "{:?}",
            started.elapsed()
        );
    }
    let lock = DistributedLock::new(&c, "lock:x", ms(1000)).unwrap();
    assert_eq!(
        lock.acquire().await.unwrap_err().kind(),
        ErrorKind::Connection
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_redis_past_the_ttl_ends_in_deadline() {
    let server = RedisServer::start();
    // Renewals that get no reply fail only after 5 s: a loss signalled near the TTL comes from
    // the local deadline, not from a failed renewal.
    let c = client_with(&server, ClientOptions::new().set_response_timeout(ms(5000)));
    let m = LockManager::new(&c);
    let ttl = ms(1000);
    let lock = m.acquire_lock("paused", ttl, ms(0)).await.unwrap().unwrap();
    let acquired = Instant::now();
    server.pause();
    let reason = tokio::time::timeout(ms(10_000), lock.lost())
        .await
        .expect("loss signalled");
    let signalled = acquired.elapsed();
    assert_eq!(reason, Some(LossReason::Deadline));
    assert!(
        signalled <= ttl + ms(1500),
        "signalled {signalled:?} after acquiring, long past the lease"
    );
    assert!(!lock.is_held());
    server.resume();
    lock.release().await.unwrap(); // does not fail
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_pause_below_the_ttl_is_survived() {
    let server = RedisServer::start();
    let c = client(&server);
    let m = LockManager::new(&c);
    let lock = m
        .acquire_lock("blip", ms(3000), ms(0))
        .await
        .unwrap()
        .unwrap();
    let value = lock.value();
    server.pause();
    tokio::time::sleep(ms(800)).await; // the fault's length, not a synchronisation
    server.resume();
    // renewal resumes within one interval: the key's expiry is pushed out again
    wait_until("renewed after the pause", ms(5000), || {
        pttl(&server, &lock_key("blip")) > 2000
    })
    .await;
    assert!(lock.is_held());
    assert_eq!(lock.loss_reason(), None);
    assert_eq!(get(&server, "lock:blip"), value);
    lock.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_never_go_back_across_a_restart_without_persistence() {
    let mut server = RedisServer::start();
    let c = client(&server);
    let m = LockManager::new(&c);
    let mut last = 0;
    for round in 0..3 {
        for _ in 0..20 {
            let lock = m
                .acquire_lock("fence", ms(5000), ms(3000))
                .await
                .unwrap()
                .expect("acquired");
            let token = lock.fencing_token().unwrap();
            assert!(token > last, "round {round}: {token} after {last}");
            last = token;
            lock.release().await.unwrap();
        }
        server.restart(); // all data gone, fence counter included
        assert!(server.keys().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_learns_of_a_restart_that_lost_its_lock() {
    let mut server = RedisServer::start();
    let c = client(&server);
    let m = LockManager::new(&c);
    let lock = m
        .acquire_lock("wiped", ms(1500), ms(0))
        .await
        .unwrap()
        .unwrap();
    let before = lock.fencing_token().unwrap();
    server.restart();
    let reason = tokio::time::timeout(ms(3000), lock.lost())
        .await
        .expect("signalled");
    assert!(
        matches!(
            reason,
            Some(LossReason::Expired) | Some(LossReason::Deadline)
        ),
        "{reason:?}"
    );
    let again = m
        .acquire_lock("wiped", ms(1500), ms(3000))
        .await
        .unwrap()
        .expect("free after restart");
    assert!(again.fencing_token().unwrap() > before);
    again.release().await.unwrap();
}

/// A holder whose whole process stalls past its lease (here: the runtime's only thread is
/// blocked, so no renewal can run) learns on waking that another process took the lock.
#[tokio::test(flavor = "current_thread")]
async fn a_stalled_holder_learns_its_lock_was_taken() {
    let server = RedisServer::start();
    let c = client(&server);
    let m = LockManager::new(&c);
    let lock = m
        .acquire_lock("stalled", ms(600), ms(0))
        .await
        .unwrap()
        .unwrap();
    std::thread::sleep(ms(900)); // the stall itself (as SIGSTOP would be), not a synchronisation
                                 // meanwhile the key expired and another process took the lock
    let mut con = server.connection();
    let _: () = redis::cmd("SET")
        .arg("lock:stalled")
        .arg("other-process")
        .query(&mut con)
        .unwrap();
    assert!(!lock.is_held(), "false at once, before any renewal ran");
    let reason = tokio::time::timeout(ms(2000), lock.lost())
        .await
        .expect("signalled");
    assert_eq!(reason, Some(LossReason::Taken));
    lock.release().await.unwrap();
    assert_eq!(
        get(&server, "lock:stalled").as_deref(),
        Some("other-process")
    );
}
