// SPDX-License-Identifier: MIT OR Apache-2.0
//! DistributedLock and LockManager against a real redis-server.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::*;
use txcoord::{
    AcquireOptions, ClientOptions, DistributedLock, ErrorKind, LockManager, LockStatus, LossReason,
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
