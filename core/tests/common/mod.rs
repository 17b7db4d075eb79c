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
