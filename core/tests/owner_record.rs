// SPDX-License-Identifier: MIT OR Apache-2.0
//! The owner record of PROTOCOL.md section 7: the locks a saga waits on and its age, what a
//! deadlock probe follows from one saga to the next without reading the whole registry.

mod common;

use common::*;
use txcoord::{registry, LockManager, ManagerOptions};
use txcoord_testkit::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_saga_is_recorded_with_its_waits_and_its_age() {
    let server = RedisServer::start();
    let holder_client = client(&server);
    let holder =
        LockManager::with_options(&holder_client, ManagerOptions::new().set_owner_id("saga-h"))
            .unwrap();
    for r in ["a", "b"] {
        holder
            .acquire_lock(r, ms(30_000), ms(0))
            .await
            .unwrap()
            .unwrap();
    }
    let wc = client(&server);
    let waiter = LockManager::with_options(
        &wc,
        ManagerOptions::new()
            .set_owner_id("saga-w")
            .set_fallback_poll(ms(200))
            .set_waiter_lease(ms(1_000)),
    )
    .unwrap();
    let w = waiter.clone();
    let pending = tokio::spawn(async move { w.acquire_lock("a", ms(30_000), ms(20_000)).await });
    let mut seen = None;
    wait_until("the owner record", ms(10_000), || {
        let mut con = server.connection();
        let fields: Vec<String> = redis::cmd("HKEYS")
            .arg("txcoord:owner:saga-w")
            .query(&mut con)
            .unwrap();
        let found = fields.iter().any(|f| f == "w:lock:a");
        if found {
            seen = Some(fields);
        }
        found
    })
    .await;
    assert!(seen.unwrap().contains(&"since".to_string()));
    let info = registry::owners(&holder_client, &["saga-w", "saga-h"])
        .await
        .unwrap();
    assert_eq!(info[0].waits, vec!["lock:a".to_string()]);
    let since = info[0].since_ms.expect("an age");
    assert_eq!(
        info[1].waits,
        Vec::<String>::new(),
        "the holder waits on nothing"
    );
    assert_eq!(info[1].since_ms, None);
    // The wait ends (the waiter gives up): its entry in the record expires with its lease,
    // the age stays (a retry of the same saga keeps it).
    pending.abort();
    let _ = pending.await;
    let mut waits_gone = false;
    for _ in 0..100 {
        let info = registry::owners(&holder_client, &["saga-w"]).await.unwrap();
        if info[0].waits.is_empty() {
            waits_gone = true;
            assert_eq!(info[0].since_ms, Some(since));
            break;
        }
        tokio::time::sleep(ms(50)).await; // polling a condition with a deadline
    }
    assert!(waits_gone, "the ended wait stays in the owner record");
    let ttl = pttl(&server, "txcoord:owner:saga-w");
    assert!(
        ttl > 500_000,
        "the record keeps the age for ten minutes: {ttl}"
    );
    holder.release_all_locks().await;
}
