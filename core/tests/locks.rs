// SPDX-License-Identifier: MIT OR Apache-2.0
//! DistributedLock and LockManager against a real redis-server.

mod common;

use std::time::Instant;

use common::*;
use txcoord::{
    AcquireOptions, ClientOptions, DistributedLock, ErrorKind, LockManager, LockStatus,
    ManagerOptions,
};
use txcoord_testkit::RedisServer;

const SEED_RELEASE: &str = r#"
      if redis.call("get", KEYS[1]) == ARGV[1] then
        return redis.call("del", KEYS[1])
      else
        return 0
      end"#;
const SEED_EXTEND: &str = r#"
      if redis.call("get", KEYS[1]) == ARGV[1] then
        return redis.call("pexpire", KEYS[1], ARGV[2])
      else
        return 0
      end"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquire_release_cycle_with_seed_defaults() {
    let server = RedisServer::start();
    let c = client(&server);
    let m = LockManager::new(&c);
    let lock = m
        .acquire_lock("order:1", txcoord::DEFAULT_TTL, txcoord::DEFAULT_TIMEOUT)
        .await
        .unwrap()
        .expect("free lock");
    assert_eq!(lock.key(), "lock:order:1");
    assert!(lock.is_held());
    assert_eq!(lock.hold_count(), 1);
    let value = get(&server, "lock:order:1").expect("key set");
    assert_eq!(Some(value.clone()), lock.value());
    let uuid = value
        .strip_prefix("2:")
        .expect("protocol 2 marks its values");
    assert_eq!(uuid.len(), 36, "a UUID like the seed's: {value}");
    assert_eq!(
        server.keys(),
        vec!["lock:order:1".to_string()],
        "one key per lock"
    );
    let ttl = pttl(&server, "lock:order:1");
    assert!(
        ttl > 29_000 && ttl <= 30_000,
        "seed's default ttl, got {ttl}"
    );
    let validity = lock.remaining_validity();
    assert!(
        validity > ms(29_000) && validity < ms(30_000),
        "{validity:?}"
    );
    assert_eq!(m.held_resources(), vec!["order:1".to_string()]);
    m.release_lock("order:1").await.unwrap();
    assert!(!exists(&server, &lock_key("order:1")));
    assert!(!lock.is_held());
    assert_eq!(lock.status(), LockStatus::Released);
    assert_eq!(lock.lost().await, None, "released, not lost");
    // releasing again, or a resource never held, is a no-op as in the seed
    lock.release().await.unwrap();
    m.release_lock("order:1").await.unwrap();
    m.release_lock("never").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_strictly_increase_per_resource() {
    let server = RedisServer::start();
    let c = client(&server);
    let m = LockManager::new(&c);
    let mut last = 0;
    for _ in 0..50 {
        let lock = m.acquire_lock("t", ms(5000), ms(0)).await.unwrap().unwrap();
        let token = lock.fencing_token().unwrap();
        assert!(token > last, "{token} after {last}");
        assert!(token < (1u64 << 53), "fits a JS number");
        last = token;
        lock.release().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_holders_exclude_us_and_we_exclude_them() {
    let server = RedisServer::start();
    let c = client(&server);
    let m = LockManager::new(&c);
    let mut con = server.connection();

    // The seed's acquire: SET lock:<r> <uuid> PX ttl NX.
    let seed_id = "0b6f0b0e-5c3f-4b8e-9e57-4f1d2c3b4a59";
    let ok: Option<String> = redis::cmd("SET")
        .arg("lock:shared")
        .arg(seed_id)
        .arg("PX")
        .arg(30000)
        .arg("NX")
        .query(&mut con)
        .unwrap();
    assert_eq!(ok.as_deref(), Some("OK"));
    assert!(
        m.acquire_lock("shared", ms(5000), ms(0))
            .await
            .unwrap()
            .is_none(),
        "seed holder excludes us"
    );
    let started = Instant::now();
    assert!(m
        .acquire_lock("shared", ms(5000), ms(300))
        .await
        .unwrap()
        .is_none());
    assert!(started.elapsed() >= ms(300));
    // While we wait, the seed releases with its own script: our waiter polls and gets it.
    let m2 = m.clone();
    let waiter = tokio::spawn(async move { m2.acquire_lock("shared", ms(5000), ms(5000)).await });
    wait_until("waiter queued", ms(3000), || {
        waiter_count(&server, "lock:shared") == 1
    })
    .await;
    let released: i64 = redis::Script::new(SEED_RELEASE)
        .key("lock:shared")
        .arg(seed_id)
        .invoke(&mut con)
        .unwrap();
    assert_eq!(released, 1);
    let ours = waiter
        .await
        .unwrap()
        .unwrap()
        .expect("acquired after the seed released");

    // Ours excludes the seed: SET NX fails, its release and extend with its own id do nothing.
    let ok: Option<String> = redis::cmd("SET")
        .arg("lock:shared")
        .arg(seed_id)
        .arg("PX")
        .arg(30000)
        .arg("NX")
        .query(&mut con)
        .unwrap();
    assert_eq!(ok, None);
    let released: i64 = redis::Script::new(SEED_RELEASE)
        .key("lock:shared")
        .arg(seed_id)
        .invoke(&mut con)
        .unwrap();
    assert_eq!(released, 0);
    let extended: i64 = redis::Script::new(SEED_EXTEND)
        .key("lock:shared")
        .arg(seed_id)
        .arg(1)
        .invoke(&mut con)
        .unwrap();
    assert_eq!(extended, 0);
    assert_eq!(get(&server, "lock:shared"), ours.value());
    // The seed's own calls work on the value we store (e.g. an operator's tool releasing it).
    let value = ours.value().unwrap();
    let extended: i64 = redis::Script::new(SEED_EXTEND)
        .key("lock:shared")
        .arg(&value)
        .arg(60000)
        .invoke(&mut con)
        .unwrap();
    assert_eq!(extended, 1);
    ours.release().await.unwrap();
    assert!(!exists(&server, &lock_key("shared")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributed_lock_keeps_the_seed_api() {
    let server = RedisServer::start();
    let c = client(&server);
    let a = DistributedLock::new(&c, "lock:seed-api", ms(10_000)).unwrap();
    let b = DistributedLock::new(&c, "lock:seed-api", ms(10_000)).unwrap();
    assert!(a.acquire().await.unwrap());
    assert!(
        !a.acquire().await.unwrap(),
        "one hold per handle, as SET NX"
    );
    assert!(!b.acquire().await.unwrap());
    // extend(additional) sets the expiry now and moves the local deadline
    assert!(a.extend(Some(ms(60_000))).await.unwrap());
    let p = pttl(&server, "lock:seed-api");
    assert!(p > 59_000, "{p}");
    assert!(a.remaining_validity() > ms(58_000));
    // extend() defaults to the ttl
    assert!(a.extend(None).await.unwrap());
    let p = pttl(&server, "lock:seed-api");
    assert!(p <= 10_000 && p > 9_000, "{p}");
    a.release().await.unwrap();
    assert!(!a.extend(None).await.unwrap(), "not held any more");
    assert!(b.acquire().await.unwrap());
    assert!(b.fencing_token() > a.fencing_token());
    b.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reentrant_for_an_explicit_owner_across_clients() {
    let server = RedisServer::start();
    let c1 = client(&server);
    let c2 = client(&server); // as another process of the same saga would
    let saga = ManagerOptions::new().set_owner_id("saga-7").set_priority(3);
    let m1 = LockManager::with_options(&c1, saga.clone()).unwrap();
    let m2 = LockManager::with_options(&c2, saga).unwrap();
    let first = m1
        .acquire_lock("acct:1", ms(10_000), ms(0))
        .await
        .unwrap()
        .unwrap();
    let again = m1
        .acquire_lock("acct:1", ms(10_000), ms(0))
        .await
        .unwrap()
        .expect("re-entered");
    let remote = m2
        .acquire_lock("acct:1", ms(10_000), ms(0))
        .await
        .unwrap()
        .expect("re-entered remotely");
    assert_eq!(first.fencing_token(), again.fencing_token());
    assert_eq!(first.fencing_token(), remote.fencing_token());
    assert_eq!(first.value(), remote.value());
    assert_eq!(
        (first.hold_count(), again.hold_count(), remote.hold_count()),
        (1, 2, 3)
    );
    let info = txcoord::registry::inspect(&c1, "lock:acct:1")
        .await
        .unwrap();
    let holder = info.holder.expect("recorded holder");
    assert_eq!(holder.owner_id.as_deref(), Some("saga-7"));
    assert_eq!((holder.hold_count, holder.priority), (3, 3));

    // other owners and anonymous acquirers are excluded
    let other =
        LockManager::with_options(&c1, ManagerOptions::new().set_owner_id("saga-8")).unwrap();
    assert!(other
        .acquire_lock("acct:1", ms(10_000), ms(0))
        .await
        .unwrap()
        .is_none());
    assert!(LockManager::new(&c1)
        .acquire_lock("acct:1", ms(10_000), ms(0))
        .await
        .unwrap()
        .is_none());

    remote.release().await.unwrap();
    assert!(exists(&server, "lock:acct:1"));
    m1.release_lock("acct:1").await.unwrap();
    assert!(exists(&server, "lock:acct:1"), "one hold left");
    m1.release_lock("acct:1").await.unwrap();
    assert!(
        !exists(&server, &lock_key("acct:1")),
        "freed when the count returns to zero"
    );
    assert!(other
        .acquire_lock("acct:1", ms(10_000), ms(0))
        .await
        .unwrap()
        .is_some());
    other.release_all_locks().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_call_owner_overrides_the_manager() {
    let server = RedisServer::start();
    let c = client(&server);
    let m = LockManager::new(&c);
    let opts = || {
        AcquireOptions::new()
            .set_owner_id("saga-x")
            .set_timeout(ms(0))
    };
    let a = m.acquire_lock_with("r", opts()).await.unwrap().unwrap();
    let b = m.acquire_lock_with("r", opts()).await.unwrap().unwrap();
    assert_eq!(b.hold_count(), 2);
    assert_eq!(a.owner_id(), Some("saga-x"));
    assert!(m
        .acquire_lock("r", ms(1000), ms(0))
        .await
        .unwrap()
        .is_none());
    assert!(m.release_all_locks().await.is_empty());
    assert_eq!(left_behind(&server, &["r"]), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_acquisitions_exclude_each_other_on_one_manager() {
    let server = RedisServer::start();
    let c = client(&server);
    let m = LockManager::new(&c);
    let a = m
        .acquire_lock("solo", ms(10_000), ms(0))
        .await
        .unwrap()
        .unwrap();
    let started = Instant::now();
    assert!(m
        .acquire_lock("solo", ms(10_000), ms(200))
        .await
        .unwrap()
        .is_none());
    assert!(started.elapsed() >= ms(200));
    a.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn braces_in_resource_names() {
    let server = RedisServer::start();
    let c = client(&server);
    let m = LockManager::new(&c);
    for resource in ["{user1}:cart", "a{b", "{x}}y", "注文:{🙂}"] {
        let lock = m
            .acquire_lock(resource, ms(5000), ms(0))
            .await
            .unwrap()
            .expect(resource);
        let keys = lock.keys().clone();
        assert_eq!(keys.lock, format!("lock:{resource}"));
        for aux in [&keys.holder, &keys.queue, &keys.waiters, &keys.channel] {
            assert_eq!(txcoord::slot(aux), txcoord::slot(&keys.lock), "{aux}");
        }
        assert_eq!(server.keys(), vec![keys.lock.clone()]);
        lock.release().await.unwrap();
    }
    for bad in ["a}b", "{}x", "x:~q"] {
        let e = m.acquire_lock(bad, ms(5000), ms(0)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad}");
        assert_eq!(e.argument(), Some("resource"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_prefix_and_client_name() {
    let server = RedisServer::start();
    let c = client_with(
        &server,
        ClientOptions::new()
            .set_key_prefix("app:")
            .set_client_name("orders-svc"),
    );
    let m = LockManager::new(&c);
    let lock = m.acquire_lock("p", ms(5000), ms(0)).await.unwrap().unwrap();
    assert_eq!(lock.key(), "app:lock:p");
    assert_eq!(server.keys(), vec!["app:lock:p".to_string()]);
    let mut con = server.connection();
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut con).unwrap();
    assert!(list.contains("name=orders-svc"), "{list}");
    lock.release().await.unwrap();
    let d = client(&server);
    d.ping().await.unwrap();
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut con).unwrap();
    assert!(list.contains(&format!("name={}", d.name())), "{list}");
    assert!(d.name().starts_with("txcoord-"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_left_after_a_burst() {
    let server = RedisServer::start();
    let lease = ms(400);
    let mut tasks = Vec::new();
    for t in 0..6 {
        let c = client(&server);
        let mut options = ManagerOptions::new()
            .set_fair(t % 2 == 0)
            .set_fallback_poll(ms(100))
            .set_waiter_lease(lease);
        if t % 3 == 0 {
            // sagas: two tasks share an owner, so some acquisitions re-enter
            options = options.set_owner_id("burst-saga");
        }
        let m = LockManager::with_options(&c, options).unwrap();
        tasks.push(tokio::spawn(async move {
            for i in 0..60 {
                let resource = format!("burst:{}", i % 3);
                let lock = m
                    .acquire_lock(&resource, ms(5000), ms(10_000))
                    .await
                    .unwrap()
                    .expect("burst acquire");
                lock.release().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // The waiting index expires one lease after its last entry; nothing else of the locks
    // outlives the last release (PROTOCOL.md, section 1). The saga's owner record stays, for
    // its age, with no wait left in it.
    let owner_record = txcoord::registry::owner_key("", "burst-saga");
    wait_until("nothing of the locks left in Redis", ms(5000), || {
        server.keys().iter().all(|k| *k == owner_record)
    })
    .await;
    let c = client(&server);
    let owner = txcoord::registry::owners(&c, &["burst-saga"])
        .await
        .unwrap();
    assert!(owner[0].waits.is_empty(), "{owner:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_cache_flush_is_invisible() {
    let server = RedisServer::start();
    let c = client(&server);
    let m = LockManager::new(&c);
    let mut con = server.connection();
    for _ in 0..5 {
        let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut con).unwrap();
        let l = m
            .acquire_lock("flush", ms(5000), ms(0))
            .await
            .unwrap()
            .unwrap();
        let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut con).unwrap();
        l.release().await.unwrap();
    }
    assert_eq!(left_behind(&server, &["flush"]), Vec::<String>::new());
}
