// SPDX-License-Identifier: MIT OR Apache-2.0
//! A client's connection killed under a waiter or a holder, and Redis restarted without
//! persistence under a holder or a waiter: waits, renewals and release notices carry on over
//! the new connection.

mod common;

use std::time::Instant;

use common::*;
use txcoord::{LockManager, LockStatus, LossReason, ManagerOptions};
use txcoord_testkit::RedisServer;

/// Waiters whose fallback poll is longer than any of these tests: within a test, only a release
/// notice (or a lost connection) can wake them.
fn notice_only() -> ManagerOptions {
    ManagerOptions::new()
        .set_fallback_poll(ms(30_000))
        .set_waiter_lease(ms(60_000))
}

/// The server's connections named `name` (`CLIENT SETNAME`), as (id, channel subscriptions).
fn connections_named(server: &RedisServer, name: &str) -> Vec<(u64, u64)> {
    let mut con = server.connection();
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut con).unwrap();
    list.lines()
        .filter_map(|line| {
            let field = |key: &str| {
                line.split_whitespace()
                    .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            };
            (field("name")? == name).then(|| {
                (
                    field("id").and_then(|v| v.parse().ok()).unwrap_or(0),
                    field("sub").and_then(|v| v.parse().ok()).unwrap_or(0),
                )
            })
        })
        .collect()
}

/// Kills the one connection named `name` with `CLIENT KILL ID`; returns its id.
fn kill_connection(server: &RedisServer, name: &str) -> u64 {
    let conns = connections_named(server, name);
    assert_eq!(conns.len(), 1, "one connection named {name}: {conns:?}");
    let id = conns[0].0;
    let mut con = server.connection();
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(id)
        .query(&mut con)
        .unwrap();
    assert_eq!(killed, 1, "CLIENT KILL ID {id}");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_whose_connection_is_killed_resubscribes_and_gets_the_release_notice() {
    let server = RedisServer::start();
    let (holder_client, waiter_client) = (client(&server), client(&server));
    let holder = LockManager::new(&holder_client);
    let waiter = LockManager::with_options(&waiter_client, notice_only()).unwrap();
    let lock = holder
        .acquire_lock("rk", ms(30_000), ms(0))
        .await
        .unwrap()
        .unwrap();
    let start = waiter_client.stats();
    let w = waiter.clone();
    let task = tokio::spawn(async move { w.acquire_lock("rk", ms(30_000), ms(30_000)).await });
    wait_until_asleep(&waiter_client, &start, ms(10_000)).await;
    let name = waiter_client.name().to_string();
    let conns = connections_named(&server, &name);
    assert_eq!(conns.len(), 1, "{conns:?}");
    assert_eq!(
        conns[0].1, 1,
        "subscribed to the release channel: {conns:?}"
    );

    let before_kill = waiter_client.stats();
    let killed = kill_connection(&server, &name);
    // The waiter wakes (a notice may have been lost with the connection), tries again over a
    // new connection, which is subscribed to the release channel again, and sleeps again.
    wait_until(
        "the waiter reconnected, subscribed again and asleep",
        ms(10_000),
        || {
            let s = waiter_client.stats();
            s.disconnects > before_kill.disconnects
                && s.sleeps > before_kill.sleeps
                && connections_named(&server, &name)
                    .iter()
                    .any(|&(id, sub)| id != killed && sub == 1)
        },
    )
    .await;
    let asleep = waiter_client.stats();
    assert!(
        asleep.wake_notified > before_kill.wake_notified,
        "woken when the connection dropped: {asleep:?}"
    );
    assert_eq!(asleep.wake_timer, before_kill.wake_timer, "{asleep:?}");

    lock.release().await.unwrap();
    let got = tokio::time::timeout(ms(10_000), task)
        .await
        .expect("the waiter got the lock within 10 s of the release")
        .unwrap()
        .unwrap()
        .expect("acquired");
    let after = waiter_client.stats();
    assert_eq!(
        after.wake_notified - asleep.wake_notified,
        1,
        "woken by the release notice: {after:?}"
    );
    assert_eq!(after.wake_timer, asleep.wake_timer, "{after:?}");
    assert!(got.fencing_token() > lock.fencing_token());
    got.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_whose_connection_is_killed_keeps_renewing() {
    let server = RedisServer::start();
    let c = client(&server);
    let m = LockManager::new(&c);
    // renewed every 2 s; a reconnect fits many times into the lease
    let ttl = ms(6000);
    let lock = m.acquire_lock("rh", ttl, ms(0)).await.unwrap().unwrap();
    let value = lock.value();
    let key = lock_key("rh");
    let before = c.stats();
    let killed = kill_connection(&server, c.name());

    // Two renewals after the kill: the first may have failed on the dead connection and been
    // retried, the second ran on the new one as scheduled.
    wait_until("two renewals after the kill", ms(15_000), || {
        c.stats().renewals >= before.renewals + 2
    })
    .await;
    let after = c.stats();
    assert!(after.disconnects > before.disconnects, "{after:?}");
    assert_eq!(after.lost, before.lost, "{after:?}");
    assert!(lock.is_held());
    assert_eq!(lock.status(), LockStatus::Held);
    assert_eq!(lock.loss_reason(), None);
    assert_eq!(get(&server, &key), value, "still ours");
    let p = pttl(&server, &key);
    assert!(p > 2000, "the expiry keeps being pushed out: pttl {p}");
    let conns = connections_named(&server, c.name());
    assert!(
        conns.len() == 1 && conns[0].0 != killed,
        "a new connection, named again: {conns:?}"
    );
    lock.release().await.unwrap();
    assert!(!exists(&server, &key));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_learns_within_a_renewal_interval_that_a_restart_lost_its_lock() {
    let mut server = RedisServer::start();
    let c = client(&server);
    let m = LockManager::new(&c);
    // renewed every 2 s; the lease (6 s) is far off, so the loss is found by a renewal
    let ttl = ms(6000);
    let lock = m.acquire_lock("rr", ttl, ms(0)).await.unwrap().unwrap();
    let before = c.stats();
    tokio::task::block_in_place(|| server.restart());
    let restarted = Instant::now();
    assert_eq!(
        scan_keys(&server),
        Vec::<String>::new(),
        "nothing persisted"
    );
    let reason = tokio::time::timeout(ms(15_000), lock.lost())
        .await
        .expect("loss signalled");
    let took = restarted.elapsed();
    assert_eq!(reason, Some(LossReason::Expired), "the key is gone");
    assert!(
        took < ttl / 3 + ms(2000),
        "signalled {took:?} after the restart: more than a renewal interval (2 s) and slack"
    );
    assert!(!lock.is_held());
    assert_eq!(c.stats().lost, before.lost + 1);
    lock.release().await.unwrap(); // does not fail
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_the_waiter_gets_the_lock_and_the_next_waiter_a_release_notice() {
    let mut server = RedisServer::start();
    let (holder_client, waiter_client) = (client(&server), client(&server));
    let holder = LockManager::new(&holder_client);
    let waiter = LockManager::with_options(&waiter_client, notice_only()).unwrap();
    let held = holder
        .acquire_lock("rw", ms(30_000), ms(0))
        .await
        .unwrap()
        .unwrap();
    let start = waiter_client.stats();
    let w = waiter.clone();
    let first = tokio::spawn(async move { w.acquire_lock("rw", ms(30_000), ms(30_000)).await });
    wait_until_asleep(&waiter_client, &start, ms(10_000)).await;

    // The holder's key vanishes with the restart: the waiter, woken by the lost connection,
    // takes the lock once Redis is back (not at its 30 s fallback poll).
    tokio::task::block_in_place(|| server.restart());
    let got = tokio::time::timeout(ms(10_000), first)
        .await
        .expect("the waiter got the lock within 10 s of the restart")
        .unwrap()
        .unwrap()
        .expect("acquired");
    assert_eq!(get(&server, &lock_key("rw")), got.value());

    // A new wait on the same client, begun after the reconnect (while the client still keeps
    // the channel of the wait that just ended), is woken by the release notice.
    let before = waiter_client.stats();
    let w = waiter.clone();
    let second = tokio::spawn(async move { w.acquire_lock("rw", ms(30_000), ms(20_000)).await });
    wait_until_asleep(&waiter_client, &before, ms(10_000)).await;
    let asleep = waiter_client.stats();
    got.release().await.unwrap();
    let next = tokio::time::timeout(ms(10_000), second)
        .await
        .expect("the new waiter got the lock within 10 s of the release")
        .unwrap()
        .unwrap()
        .expect("acquired");
    let after = waiter_client.stats();
    assert_eq!(
        after.wake_notified - asleep.wake_notified,
        1,
        "woken by the release notice: {after:?}"
    );
    assert_eq!(after.wake_timer, asleep.wake_timer, "{after:?}");
    assert!(next.fencing_token() > got.fencing_token());
    next.release().await.unwrap();

    // The old holder learns that its lock went with the restart.
    let reason = tokio::time::timeout(ms(15_000), held.lost())
        .await
        .expect("loss signalled within a renewal interval (10 s) and slack");
    assert!(
        matches!(reason, Some(LossReason::Taken) | Some(LossReason::Expired)),
        "{reason:?}"
    );
}
