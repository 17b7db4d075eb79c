// SPDX-License-Identifier: MIT OR Apache-2.0
//! `rediss://` (TLS) and ACL users against a real redis-server with TLS enabled.

mod common;

use std::net::TcpListener;
use std::process::Command;

use common::*;
use txcoord::{Client, ErrorKind, LockManager, ManagerOptions};
use txcoord_testkit::RedisServer;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A temporary directory, removed on drop (also when the test panics).
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!("txcoord-tls-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A self-signed certificate for 127.0.0.1 (openssl is part of the base system).
fn self_signed(dir: &std::path::Path) -> (String, String) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    (cert.to_string_lossy().into(), key.to_string_lossy().into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_over_tls_with_an_acl_user() {
    let dir = TempDir::new();
    let (cert, key) = self_signed(&dir.0);
    let tls_port = free_port();
    let server = RedisServer::start_with(&[
        "--tls-port",
        &tls_port.to_string(),
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &cert,
        "--tls-auth-clients",
        "no",
    ]);
    // A least-privilege user: exactly the rules PROTOCOL.md documents (section 12).
    let mut con = server.connection();
    let mut setuser = redis::cmd("ACL");
    setuser
        .arg("SETUSER")
        .arg("locker")
        .arg("on")
        .arg(">s3cret");
    for rule in documented_acl_rules() {
        setuser.arg(rule);
    }
    let _: () = setuser.query(&mut con).unwrap();

    let url = format!("rediss://locker:s3cret@127.0.0.1:{tls_port}/#insecure");
    let c = Client::open(&url).unwrap();
    let m = LockManager::new(&c);
    let lock = m
        .acquire_lock("secure", ms(5000), ms(0))
        .await
        .unwrap()
        .expect("acquired over TLS");
    assert!(lock.fencing_token().is_some());
    assert!(exists(&server, &lock_key("secure")));
    // a waiter over TLS is woken by the release notice (pub/sub over TLS, ACL channel rule); its
    // fallback poll is longer than the test, so nothing else can wake it
    let waiting = LockManager::with_options(
        &c,
        ManagerOptions::new()
            .set_fallback_poll(ms(30_000))
            .set_waiter_lease(ms(60_000)),
    )
    .unwrap();
    let before = c.stats();
    let waiter =
        tokio::spawn(async move { waiting.acquire_lock("secure", ms(5000), ms(20_000)).await });
    wait_until_asleep(&c, &before, ms(10_000)).await;
    let asleep = c.stats();
    lock.release().await.unwrap();
    let second = waiter.await.unwrap().unwrap().expect("handed over");
    assert!(second.fencing_token() > lock.fencing_token());
    let after = c.stats();
    assert_eq!(after.wake_notified - asleep.wake_notified, 1, "{after:?}");
    assert_eq!(after.wake_timer, asleep.wake_timer, "{after:?}");
    second.release().await.unwrap();

    // a saga's locks: owned acquisition, re-entry and release of each hold
    let saga =
        LockManager::with_options(&c, ManagerOptions::new().set_owner_id("saga-tls")).unwrap();
    let first = saga
        .acquire_lock("owned", ms(5000), ms(0))
        .await
        .unwrap()
        .unwrap();
    let again = saga
        .acquire_lock("owned", ms(5000), ms(0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.hold_count(), 2);
    assert!(again.extend(None).await.unwrap());
    again.release().await.unwrap();
    assert!(exists(&server, &lock_key("owned")));
    first.release().await.unwrap();
    assert!(!exists(&server, &lock_key("owned")));

    // wrong password: an error at once, not a wait until the timeout, and not None
    let bad = Client::open(&format!(
        "rediss://locker:nope@127.0.0.1:{tls_port}/#insecure"
    ))
    .unwrap();
    let started = std::time::Instant::now();
    let e = LockManager::new(&bad)
        .acquire_lock("secure", ms(5000), ms(10_000))
        .await
        .unwrap_err();
    assert!(started.elapsed() < ms(5000), "{:?}", started.elapsed());
    assert!(
        matches!(e.kind(), ErrorKind::Redis | ErrorKind::Connection),
        "{e}"
    );

    // plaintext to the TLS port fails as a connection error, quickly
    let plain = Client::open(&format!("redis://127.0.0.1:{tls_port}")).unwrap();
    let e = LockManager::new(&plain)
        .acquire_lock("secure", ms(5000), ms(500))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
}

/// The rules of the user in PROTOCOL.md's "Least privilege" section: every word of its
/// `ACL SETUSER` block after `on >password`.
fn documented_acl_rules() -> Vec<String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../PROTOCOL.md"))
        .expect("PROTOCOL.md");
    let section = doc
        .split("## 12. Least privilege")
        .nth(1)
        .expect("the ACL section");
    let block = section.split("```").nth(1).expect("the ACL block");
    let words: Vec<String> = block
        .split_whitespace()
        .filter(|w| *w != "\\")
        .map(str::to_string)
        .collect();
    let start = words
        .iter()
        .position(|w| w == ">password")
        .expect("ACL SETUSER <user> on >password")
        + 1;
    let rules = words[start..].to_vec();
    assert!(rules.iter().any(|r| r == "+evalsha"), "{rules:?}");
    rules
}
