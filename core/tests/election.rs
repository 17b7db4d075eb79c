// SPDX-License-Identifier: MIT OR Apache-2.0
//! Leader election on the lock: one leader at a time, a larger term for every leadership,
//! a successor when the leader dies, and a paused leader that knows it was deposed.

mod common;

use common::*;
use txcoord::{ElectionOptions, ErrorKind, LeaderElection};
use txcoord_testkit::RedisServer;

fn candidate(c: &txcoord::Client, id: &str, ttl_ms: u64) -> LeaderElection {
    LeaderElection::new(
        c,
        "monitor",
        ElectionOptions::new()
            .set_candidate_id(id)
            .set_ttl(ms(ttl_ms)),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_at_a_time_and_terms_only_grow() {
    let server = RedisServer::start();
    let (c1, c2) = (client(&server), client(&server));
    let a = candidate(&c1, "a", 3_000);
    let b = candidate(&c2, "b", 3_000);
    assert!(a.campaign(ms(0)).await.unwrap());
    assert!(a.is_leader());
    let t1 = a.term().unwrap();
    assert_eq!(*a.watch().borrow(), Some(t1));
    assert!(!b.campaign(ms(300)).await.unwrap(), "a leads");
    let seen = b.leader().await.unwrap().unwrap();
    assert_eq!((seen.candidate_id.as_str(), seen.term), ("a", t1));
    // a resigns: b, waiting, takes over at once, with a larger term
    let b2 = b.clone();
    let waiting = tokio::spawn(async move { b2.campaign(ms(10_000)).await });
    wait_until("b to wait", ms(5_000), || {
        waiter_count(&server, "txcoord:election:monitor") == 1
    })
    .await;
    a.resign().await.unwrap();
    assert!(!a.is_leader());
    assert_eq!(*a.watch().borrow(), None);
    assert!(waiting.await.unwrap().unwrap());
    let t2 = b.term().unwrap();
    assert!(t2 > t1);
    assert!(!a.is_leader() && b.is_leader());
    assert_eq!(b.leader().await.unwrap().unwrap().candidate_id, "b");
    b.resign().await.unwrap();
    assert_eq!(b.leader().await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_leader_is_replaced_within_its_lease() {
    let server = RedisServer::start();
    let (c1, c2) = (client(&server), client(&server));
    let a = candidate(&c1, "a", 1_500);
    assert!(a.campaign(ms(0)).await.unwrap());
    let t1 = a.term().unwrap();
    // a's process dies: its lock is never renewed nor released
    c1.close();
    let b = candidate(&c2, "b", 1_500);
    let started = std::time::Instant::now();
    assert!(b.campaign(ms(10_000)).await.unwrap());
    let took = started.elapsed();
    assert!(took < ms(1_500 + 500 + 2_000), "took {took:?}");
    assert!(b.term().unwrap() > t1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_loses_its_lease_is_revoked_before_it_acts() {
    let server = RedisServer::start();
    let c = client(&server);
    let a = candidate(&c, "a", 1_000);
    assert!(a.campaign(ms(0)).await.unwrap());
    let mut changes = a.watch();
    // the lease is taken away behind its back (as after a pause past it)
    let _: () = redis::cmd("DEL")
        .arg("txcoord:election:monitor")
        .query(&mut server.connection())
        .unwrap();
    let other = candidate(&client(&server), "b", 1_000);
    assert!(other.campaign(ms(0)).await.unwrap());
    tokio::time::timeout(ms(5_000), changes.wait_for(|s| s.is_none()))
        .await
        .expect("revoked within a renewal interval")
        .unwrap();
    assert!(!a.is_leader());
    assert_eq!(a.term(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_names_are_refused_before_redis() {
    let c = txcoord::Client::open("redis://127.0.0.1:1").unwrap();
    for bad in ["", "a}b"] {
        let e = LeaderElection::new(&c, bad, ElectionOptions::new()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad:?}");
        assert_eq!(e.argument(), Some("name"));
    }
    let e = LeaderElection::new(&c, "x", ElectionOptions::new().set_candidate_id("")).unwrap_err();
    assert_eq!(e.argument(), Some("candidate_id"));
}
