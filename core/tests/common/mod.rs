// SPDX-License-Identifier: MIT OR Apache-2.0
#![allow(dead_code)]

use std::time::{Duration, Instant};

use txcoord::{Client, ClientOptions};
use txcoord_testkit::RedisServer;

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn client(server: &RedisServer) -> Client {
    Client::open(&server.url()).expect("client")
}

pub fn client_with(server: &RedisServer, options: ClientOptions) -> Client {
    Client::with_options(&server.url(), options).expect("client")
}

/// Polls `cond` every 5 ms until it holds or `limit` passes (then panics naming `what`).
pub async fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(ms(5)).await;
    }
}

/// Number of live waiters recorded in Redis for `lock_key`.
pub fn waiter_count(server: &RedisServer, lock_key: &str) -> usize {
    let keys = txcoord::LockKeys::for_key("", lock_key, "lock_key").unwrap();
    let mut con = server.connection();
    redis::cmd("ZCARD")
        .arg(&keys.queue)
        .query::<usize>(&mut con)
        .unwrap()
}

pub fn exists(server: &RedisServer, key: &str) -> bool {
    let mut con = server.connection();
    redis::cmd("EXISTS")
        .arg(key)
        .query::<i64>(&mut con)
        .unwrap()
        == 1
}

pub fn get(server: &RedisServer, key: &str) -> Option<String> {
    let mut con = server.connection();
    redis::cmd("GET").arg(key).query(&mut con).unwrap()
}

pub fn pttl(server: &RedisServer, key: &str) -> i64 {
    let mut con = server.connection();
    redis::cmd("PTTL").arg(key).query(&mut con).unwrap()
}

/// Total calls of every command so far (INFO commandstats), minus the INFO calls themselves.
pub fn commands_processed(server: &RedisServer) -> u64 {
    let mut con = server.connection();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut con)
        .unwrap();
    info.lines()
        .filter(|l| {
            l.starts_with("cmdstat_")
                && !l.starts_with("cmdstat_info:")
                && !l.starts_with("cmdstat_hello:")
                && !l.starts_with("cmdstat_client|setinfo:")
        })
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// Whether the server answers a plain `PING` within 100 ms on a fresh connection.
fn answers_quickly(server: &RedisServer) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", server.port())) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(ms(100)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    matches!(s.read(&mut buf), Ok(n) if n > 0)
}

/// Runs `DEBUG SLEEP secs` on its own connection in a thread, and returns once the server has
/// stopped answering (so commands sent from now on wait for the sleep to end, then run).
pub fn debug_sleep(server: &RedisServer, secs: f64) -> std::thread::JoinHandle<()> {
    let mut con = server.connection();
    let handle = std::thread::spawn(move || {
        let _: () = redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(secs)
            .query(&mut con)
            .expect("DEBUG SLEEP");
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while answers_quickly(server) {
        assert!(Instant::now() < deadline, "the server never went to sleep");
    }
    handle
}

/// The first line a fresh connection gets back for `command` (e.g. `-BUSY ...`, `+PONG`).
pub fn raw_reply(server: &RedisServer, command: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port())).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(format!("{command}\r\n").as_bytes()).unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).trim_end().to_string()
}
