// SPDX-License-Identifier: MIT OR Apache-2.0
//! Bad input is refused with the argument named, before anything reaches Redis.

mod common;

use std::time::Duration;

use common::*;
use txcoord::{
    AcquireOptions, DistributedLock, ErrorKind, LockManager, LockOptions, ManagerOptions,
};
use txcoord_testkit::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_redis_is_untouched() {
    let server = RedisServer::start();
    let c = client(&server);
    c.ping().await.unwrap();
    let m = LockManager::new(&c);
    let held = DistributedLock::new(&c, "lock:held", ms(10_000)).unwrap();
    assert!(held.acquire().await.unwrap());
    let keys_before = server.keys();
    let commands_before = commands_processed(&server);

    let long = "r".repeat(1025);
    let long_owner = "o".repeat(257);
    let over = Duration::from_millis(txcoord::binding::validate::MAX_MS + 1);
    let acquire = |resource: &'static str, opts: AcquireOptions| {
        let m = m.clone();
        async move { m.acquire_lock_with(resource, opts).await.map(|_| ()) }
    };
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };

    let cases: Vec<(&str, txcoord::Result<()>, ErrorKind, &str)> = vec![
        (
            "empty resource",
            acquire("", AcquireOptions::new()).await,
            ErrorKind::InvalidArgument,
            "resource",
        ),
        (
            "long resource",
            acquire(leak(long.clone()), AcquireOptions::new()).await,
            ErrorKind::InvalidArgument,
            "resource",
        ),
        (
            "NUL in resource",
            acquire("a\0b", AcquireOptions::new()).await,
            ErrorKind::InvalidArgument,
            "resource",
        ),
        (
            "stray brace",
            acquire("a}b", AcquireOptions::new()).await,
            ErrorKind::InvalidArgument,
            "resource",
        ),
        (
            "reserved suffix",
            acquire("r:~w", AcquireOptions::new()).await,
            ErrorKind::InvalidArgument,
            "resource",
        ),
        (
            "ttl 0",
            acquire("r", AcquireOptions::new().set_ttl(Duration::ZERO)).await,
            ErrorKind::InvalidArgument,
            "ttl",
        ),
        (
            "ttl 1.5 ms",
            acquire(
                "r",
                AcquireOptions::new().set_ttl(Duration::from_micros(1500)),
            )
            .await,
            ErrorKind::InvalidArgument,
            "ttl",
        ),
        (
            "ttl 1 ns",
            acquire("r", AcquireOptions::new().set_ttl(Duration::from_nanos(1))).await,
            ErrorKind::InvalidArgument,
            "ttl",
        ),
        (
            "ttl above cap",
            acquire("r", AcquireOptions::new().set_ttl(over)).await,
            ErrorKind::InvalidArgument,
            "ttl",
        ),
        (
            "ttl u64::MAX s",
            acquire(
                "r",
                AcquireOptions::new().set_ttl(Duration::from_secs(u64::MAX)),
            )
            .await,
            ErrorKind::InvalidArgument,
            "ttl",
        ),
        (
            "timeout above cap",
            acquire("r", AcquireOptions::new().set_timeout(over)).await,
            ErrorKind::InvalidArgument,
            "timeout",
        ),
        (
            "timeout 0.5 ms",
            acquire(
                "r",
                AcquireOptions::new().set_timeout(Duration::from_micros(500)),
            )
            .await,
            ErrorKind::InvalidArgument,
            "timeout",
        ),
        (
            "empty owner",
            acquire("r", AcquireOptions::new().set_owner_id("")).await,
            ErrorKind::InvalidArgument,
            "owner_id",
        ),
        (
            "long owner",
            acquire("r", AcquireOptions::new().set_owner_id(long_owner.clone())).await,
            ErrorKind::InvalidArgument,
            "owner_id",
        ),
        (
            "NUL in owner",
            acquire("r", AcquireOptions::new().set_owner_id("s\0")).await,
            ErrorKind::InvalidArgument,
            "owner_id",
        ),
        (
            "empty lock key",
            DistributedLock::new(&c, "", ms(1000)).map(|_| ()),
            ErrorKind::InvalidArgument,
            "lock_key",
        ),
        (
            "lock key NUL",
            DistributedLock::new(&c, "k\0", ms(1000)).map(|_| ()),
            ErrorKind::InvalidArgument,
            "lock_key",
        ),
        (
            "lock ttl 0",
            DistributedLock::new(&c, "k", Duration::ZERO).map(|_| ()),
            ErrorKind::InvalidArgument,
            "ttl",
        ),
        (
            "lock owner empty",
            DistributedLock::with_options(&c, "k", LockOptions::new().set_owner_id("")).map(|_| ()),
            ErrorKind::InvalidArgument,
            "owner_id",
        ),
        (
            "extend 0",
            held.extend(Some(Duration::ZERO)).await.map(|_| ()),
            ErrorKind::InvalidArgument,
            "additional_time",
        ),
        (
            "extend above cap",
            held.extend(Some(over)).await.map(|_| ()),
            ErrorKind::InvalidArgument,
            "additional_time",
        ),
        (
            "acquire_timeout above cap",
            held.acquire_timeout(over).await.map(|_| ()),
            ErrorKind::InvalidArgument,
            "timeout",
        ),
        (
            "manager owner empty",
            LockManager::with_options(&c, ManagerOptions::new().set_owner_id("")).map(|_| ()),
            ErrorKind::InvalidArgument,
            "owner_id",
        ),
        (
            "poll 0",
            LockManager::with_options(&c, ManagerOptions::new().set_fallback_poll(Duration::ZERO))
                .map(|_| ()),
            ErrorKind::InvalidArgument,
            "fallback_poll",
        ),
        (
            "lease below 2 polls",
            LockManager::with_options(&c, ManagerOptions::new().set_waiter_lease(ms(1500)))
                .map(|_| ()),
            ErrorKind::InvalidArgument,
            "waiter_lease",
        ),
        (
            "scoped, bad ttl",
            m.with_lock(
                "r",
                AcquireOptions::new().set_ttl(Duration::ZERO),
                |_| async {},
            )
            .await,
            ErrorKind::InvalidArgument,
            "ttl",
        ),
        (
            "bad url",
            txcoord::Client::open("http://localhost").map(|_| ()),
            ErrorKind::InvalidArgument,
            "url",
        ),
    ];
    assert!(cases.len() >= 25);
    for (name, result, kind, arg) in cases {
        let e = result.expect_err(name);
        assert_eq!(e.kind(), kind, "{name}: {e}");
        assert_eq!(e.argument(), Some(arg), "{name}: {e}");
        assert!(
            e.to_string().contains(&format!("`{arg}`")),
            "{name}: message names the argument: {e}"
        );
    }
    assert_eq!(
        commands_processed(&server),
        commands_before,
        "nothing reached Redis"
    );
    assert_eq!(server.keys(), keys_before, "nothing written");
    assert!(held.is_held());
    held.release().await.unwrap();
}
