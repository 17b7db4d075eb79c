// SPDX-License-Identifier: MIT OR Apache-2.0
//! Bad input is refused with the argument named, before anything reaches Redis: the cases of
//! the shared table `tests/fixtures/bad_inputs.json` that Rust's typed API can express (the
//! Python and Node suites read the same table).

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::Value;
use txcoord::{
    AcquireOptions, ClientOptions, DistributedLock, ErrorKind, LockManager, LockOptions,
    ManagerOptions,
};
use txcoord_testkit::RedisServer;

fn table() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/bad_inputs.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

fn applies_to_rust(case: &Value) -> bool {
    match case.get("only") {
        None => true,
        Some(only) => only
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str() == Some("rust")),
    }
}

/// A duration from the table's value: milliseconds, possibly fractional, or `{int: "2**N"}`.
fn duration(id: &str, v: &Value) -> Duration {
    if let Some(n) = v.as_u64() {
        return Duration::from_millis(n);
    }
    if let Some(f) = v.as_f64() {
        assert!(f >= 0.0 && f.is_finite(), "{id}: {v} is no Rust Duration");
        return Duration::from_nanos((f * 1e6).round() as u64);
    }
    if let Some(big) = v.get("int").and_then(Value::as_str) {
        let exp: u32 = big
            .strip_prefix("2**")
            .and_then(|e| e.parse().ok())
            .unwrap_or_else(|| panic!("{id}: {big}"));
        let ms = 1u128 << exp;
        return Duration::new(
            u64::try_from(ms / 1000).unwrap(),
            (ms % 1000) as u32 * 1_000_000,
        );
    }
    panic!("{id}: {v} is no Rust Duration")
}

fn text(id: &str, v: &Value) -> String {
    if let Some(s) = v.as_str() {
        return s.to_string();
    }
    if let (Some(s), Some(n)) = (
        v.get("repeat").and_then(Value::as_str),
        v.get("times").and_then(Value::as_u64),
    ) {
        return s.repeat(n as usize);
    }
    panic!("{id}: {v} is no Rust string")
}

fn acquire_options(id: &str, args: &Value) -> AcquireOptions {
    let mut o = AcquireOptions::new();
    for (name, v) in args.as_object().unwrap() {
        o = match name.as_str() {
            "resource" => o,
            "ttl" => o.set_ttl(duration(id, v)),
            "timeout" => o.set_timeout(duration(id, v)),
            "owner_id" => o.set_owner_id(text(id, v)),
            other => panic!("{id}: no Rust acquire option {other}"),
        };
    }
    o
}

fn resource(id: &str, args: &Value) -> String {
    args.get("resource")
        .map(|v| text(id, v))
        .unwrap_or_else(|| "r".to_string())
}

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

    let table = table();
    let mut ran = 0;
    for case in table["cases"].as_array().unwrap() {
        if !applies_to_rust(case) {
            continue;
        }
        let id = case["id"].as_str().unwrap();
        let args = &case["args"];
        let arg = |name: &str| args.get(name);
        let result: txcoord::Result<()> = match case["call"].as_str().unwrap() {
            "acquire" => m
                .acquire_lock_with(&resource(id, args), acquire_options(id, args))
                .await
                .map(|_| ()),
            "scoped" => {
                m.with_lock(&resource(id, args), acquire_options(id, args), |_| async {})
                    .await
            }
            "lock" => {
                let key = arg("lock_key")
                    .map(|v| text(id, v))
                    .unwrap_or_else(|| "k".into());
                let mut o = LockOptions::new();
                if let Some(v) = arg("ttl") {
                    o = o.set_ttl(duration(id, v));
                }
                if let Some(v) = arg("owner_id") {
                    o = o.set_owner_id(text(id, v));
                }
                DistributedLock::with_options(&c, &key, o).map(|_| ())
            }
            "lock_acquire" => held
                .acquire_timeout(duration(id, &args["timeout"]))
                .await
                .map(|_| ()),
            "extend" => held
                .extend(Some(duration(id, &args["additional_time"])))
                .await
                .map(|_| ()),
            "manager" => {
                let mut o = ManagerOptions::new();
                for (name, v) in args.as_object().unwrap() {
                    o = match name.as_str() {
                        "owner_id" => o.set_owner_id(text(id, v)),
                        "fallback_poll" => o.set_fallback_poll(duration(id, v)),
                        "waiter_lease" => o.set_waiter_lease(duration(id, v)),
                        "deadlock_timeout" => o.set_deadlock_timeout(duration(id, v)),
                        other => panic!("{id}: no Rust manager option {other}"),
                    };
                }
                LockManager::with_options(&c, o).map(|_| ())
            }
            "client" => {
                let url = arg("url")
                    .map(|v| text(id, v))
                    .unwrap_or_else(|| server.url());
                let mut o = ClientOptions::new();
                for (name, v) in args.as_object().unwrap() {
                    o = match name.as_str() {
                        "url" => o,
                        "key_prefix" => o.set_key_prefix(text(id, v)),
                        "client_name" => o.set_client_name(text(id, v)),
                        "connect_timeout" => o.set_connect_timeout(duration(id, v)),
                        "response_timeout" => o.set_response_timeout(duration(id, v)),
                        other => panic!("{id}: no Rust client option {other}"),
                    };
                }
                txcoord::Client::with_options(&url, o).map(|_| ())
            }
            "redis" => txcoord::binding::target::url_client(&text(id, &args["redis"])).map(|_| ()),
            other => panic!("{id}: no Rust call {other}"),
        };
        let kind = case
            .get("kinds")
            .and_then(|k| k.get("rust"))
            .unwrap_or(&case["kind"])
            .as_str()
            .unwrap();
        let kind = match kind {
            "InvalidArgument" => ErrorKind::InvalidArgument,
            "InvalidType" => ErrorKind::InvalidType,
            other => panic!("{id}: kind {other}"),
        };
        let core_arg = case["argument"].as_str().unwrap();
        let e = result.expect_err(id);
        assert_eq!(e.kind(), kind, "{id}: {e}");
        assert_eq!(e.argument(), Some(core_arg), "{id}: {e}");
        assert!(
            e.to_string().contains(&format!("`{core_arg}`")),
            "{id}: the message names the argument: {e}"
        );
        ran += 1;
    }
    assert!(ran >= 25, "{ran} cases ran");
    assert_eq!(
        commands_processed(&server),
        commands_before,
        "nothing reached Redis"
    );
    assert_eq!(server.keys(), keys_before, "nothing written");
    assert!(held.is_held());
    held.release().await.unwrap();
}
