// SPDX-License-Identifier: MIT OR Apache-2.0
//! A server that is briefly unable to serve (a slow script, loading, a replica, a master link
//! down) is waited out, not taken as a verdict; a lock lost at its deadline is still released;
//! a waiter that reconnects subscribes again.

mod common;

use std::time::Instant;

use common::*;
use txcoord::{ClientOptions, DistributedLock, LockManager, LockStatus, LossReason};
use txcoord_testkit::{Proxy, RedisServer};

/// A Lua script that keeps the server busy for `ms` milliseconds.
fn busy_script(ms: u64) -> String {
    format!(
        "local function t() local x = redis.call('TIME') return x[1] * 1000000 + x[2] end \
         local s = t() repeat until t() - s > {} return 1",
        ms * 1000
    )
}

/// Runs a slow script on its own connection in a thread; returns once others get `BUSY`.
fn run_busy_script(server: &RedisServer, ms: u64) -> std::thread::JoinHandle<()> {
    let mut con = server.connection();
    let script = busy_script(ms);
    let handle = std::thread::spawn(move || {
        let _: i64 = redis::cmd("EVAL")
            .arg(script)
            .arg(0)
            .query(&mut con)
            .expect("slow script");
    });
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    loop {
        if raw_reply(server, "PING").starts_with("-BUSY") {
            return handle;
        }
        assert!(Instant::now() < deadline, "the server never answered BUSY");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_script_on_the_server_does_not_cost_the_holder_its_lock() {
    let server = RedisServer::start_with(&["--busy-reply-threshold", "100"]);
    let c = client(&server);
    let lock = DistributedLock::new(&c, "busy", ms(1_500)).unwrap();
    assert!(lock.acquire().await.unwrap());
    let renewed = c.stats().renewals;
    wait_until("a renewal", ms(5_000), || c.stats().renewals > renewed).await;
    // Right after a renewal: the next one (in 500 ms) meets the 700 ms script.
    let errors = c.stats().renewal_errors;
    let slow = run_busy_script(&server, 700);
    slow.join().unwrap();
    let after_script = c.stats().renewals;
    wait_until("a renewal after the script", ms(5_000), || {
        c.stats().renewals > after_script || !lock.is_held()
    })
    .await;
    assert!(
        c.stats().renewal_errors > errors,
        "a renewal met BUSY: {:?}",
        c.stats()
    );
    assert_eq!(lock.status(), LockStatus::Held, "{:?}", lock.loss_reason());
    assert!(lock.is_held());
    assert_eq!(get(&server, "busy"), lock.value());
    lock.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acquisition_waits_out_a_busy_server() {
    let server = RedisServer::start_with(&["--busy-reply-threshold", "100"]);
    let c = client(&server);
    c.ping().await.unwrap();
    let m = LockManager::new(&c);
    let slow = run_busy_script(&server, 700);
    let got = m.acquire_lock("b", ms(30_000), ms(10_000)).await;
    slow.join().unwrap();
    assert!(got.unwrap().is_some(), "the lock was free all along");
    assert!(c.stats().attempts >= 2, "the first attempt met BUSY");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acquisition_waits_out_a_server_loading_its_dataset() {
    let server = RedisServer::start();
    let c = client(&server);
    c.ping().await.unwrap();
    let m = LockManager::new(&c);
    let mut con = server.connection();
    let _: () = redis::cmd("DEBUG")
        .arg("POPULATE")
        .arg(1_500_000)
        .query(&mut con)
        .unwrap();
    let reload = std::thread::spawn(move || {
        let _: () = redis::cmd("DEBUG")
            .arg("RELOAD")
            .query(&mut con)
            .expect("DEBUG RELOAD");
    });
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    let mut loading = false;
    while Instant::now() < deadline && !reload.is_finished() {
        if raw_reply(&server, "PING").starts_with("-LOADING") {
            loading = true;
            break;
        }
    }
    assert!(loading, "the server never answered LOADING");
    let got = m.acquire_lock("l", ms(30_000), ms(20_000)).await;
    reload.join().unwrap();
    assert!(got.unwrap().is_some());
    assert!(c.stats().attempts >= 2, "the first attempt met LOADING");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acquisition_waits_out_a_replica_until_it_is_promoted() {
    let server = RedisServer::start();
    let master = RedisServer::start();
    let c = client(&server);
    c.ping().await.unwrap();
    let m = LockManager::new(&c);
    let mut con = server.connection();
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(master.port())
        .query(&mut con)
        .unwrap();
    wait_until("the replica to sync", ms(10_000), || {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut server.connection())
            .unwrap();
        info.contains("master_link_status:up")
    })
    .await;
    let c2 = c.clone();
    let pending = tokio::spawn(async move {
        LockManager::new(&c2)
            .acquire_lock("ro", ms(30_000), ms(20_000))
            .await
    });
    wait_until("attempts meeting READONLY", ms(10_000), || {
        c.stats().attempts >= 3
    })
    .await;
    assert!(!pending.is_finished(), "READONLY ended the acquisition");
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query(&mut con)
        .unwrap();
    let got = pending.await.unwrap();
    assert!(got.unwrap().is_some());
    drop(m);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acquisition_waits_out_a_replica_whose_master_is_down() {
    let server = RedisServer::start();
    let c = client(&server);
    c.ping().await.unwrap();
    let mut con = server.connection();
    let dead_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("replica-serve-stale-data")
        .arg("no")
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(dead_port)
        .query(&mut con)
        .unwrap();
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    while !raw_reply(&server, "GET x").starts_with("-MASTERDOWN") {
        assert!(
            Instant::now() < deadline,
            "the server never answered MASTERDOWN"
        );
    }
    let c2 = c.clone();
    let pending = tokio::spawn(async move {
        LockManager::new(&c2)
            .acquire_lock("md", ms(30_000), ms(20_000))
            .await
    });
    wait_until("attempts meeting MASTERDOWN", ms(10_000), || {
        c.stats().attempts >= 3
    })
    .await;
    assert!(!pending.is_finished(), "MASTERDOWN ended the acquisition");
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query(&mut con)
        .unwrap();
    assert!(pending.await.unwrap().unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_lost_at_its_deadline_is_still_released() {
    let server = RedisServer::start();
    let proxy = Proxy::start(server.port());
    let c = txcoord::Client::with_options(
        &proxy.url(),
        ClientOptions::new().set_response_timeout(ms(200)),
    )
    .unwrap();
    let m = LockManager::new(&c);
    let lock = m
        .acquire_lock("deadline", ms(3_000), ms(0))
        .await
        .unwrap()
        .unwrap();
    // the extend script is in the server's cache (no NOSCRIPT fallback is needed later)
    assert!(lock.extend(None).await.unwrap());
    // Renewals reach Redis (the key stays alive) but no reply comes back.
    proxy.blackhole_down(true);
    wait_until("the loss at the deadline", ms(10_000), || {
        lock.loss_reason().is_some()
    })
    .await;
    assert_eq!(lock.loss_reason(), Some(LossReason::Deadline));
    assert!(
        exists(&server, &lock_key("deadline")),
        "the renewals kept the key"
    );
    proxy.blackhole_down(false);
    proxy.reset_all();
    let mut released = false;
    let deadline = Instant::now() + ms(10_000);
    while !released && Instant::now() < deadline {
        released = m.release_lock("deadline").await.is_ok();
        if !released {
            tokio::time::sleep(ms(50)).await; // pause between retries while the client reconnects
        }
    }
    assert!(!exists(&server, &lock_key("deadline")));
    assert!(released, "release_lock left the key of a lost lock behind");
    assert!(m.held_resources().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_after_a_reconnect_subscribes_again() {
    let server = RedisServer::start();
    let holder_client = client(&server);
    let holder = LockManager::new(&holder_client);
    let held = holder
        .acquire_lock("resub", ms(30_000), ms(0))
        .await
        .unwrap()
        .unwrap();
    let wc = client(&server);
    let waiter = LockManager::new(&wc);
    let sleeps = wc.stats().sleeps;
    let w1 = waiter.clone();
    let first = tokio::spawn(async move { w1.acquire_lock("resub", ms(30_000), ms(20_000)).await });
    wait_until("the first waiter asleep", ms(10_000), || {
        wc.stats().sleeps > sleeps
    })
    .await;
    let subscribes = wc.stats().subscribes;
    let mut con = server.connection();
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("USER")
        .arg("default")
        .arg("SKIPME")
        .arg("yes")
        .query(&mut con)
        .unwrap();
    assert!(killed >= 2, "the waiter's and the holder's connections");
    wait_until("the disconnect to be seen", ms(10_000), || {
        wc.stats().disconnects >= 1
    })
    .await;
    let w2 = waiter.clone();
    let second =
        tokio::spawn(async move { w2.acquire_lock("resub", ms(30_000), ms(20_000)).await });
    wait_until("a new subscription after the reconnect", ms(10_000), || {
        wc.stats().subscribes > subscribes
    })
    .await;
    held.release().await.unwrap();
    // Both waits end with the lock, one after the other: each is handed over by a release.
    let mut pending = vec![first, second];
    for _ in 0..2 {
        let deadline = Instant::now() + ms(20_000);
        let done = loop {
            if let Some(i) = pending.iter().position(|t| t.is_finished()) {
                break i;
            }
            assert!(Instant::now() < deadline, "a waiter never got the lock");
            tokio::time::sleep(ms(10)).await; // polling a condition with a deadline
        };
        let lock = pending
            .remove(done)
            .await
            .unwrap()
            .unwrap()
            .expect("handed over");
        lock.release().await.unwrap();
    }
}
