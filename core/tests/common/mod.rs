// SPDX-License-Identifier: MIT OR Apache-2.0
#![allow(dead_code)]

use std::time::{Duration, Instant};

use txcoord::{Client, ClientOptions, ClientStats, LockKeys};
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

/// Waits until a wait of `client` that began after the counters `before` is asleep, waiting for
/// a release notice or a timer: its attempts found the lock busy, it subscribed, and it went to
/// sleep (`sleeps` rose). A release from then on is announced to it, not raced by its attempt.
pub async fn wait_until_asleep(client: &Client, before: &ClientStats, limit: Duration) {
    wait_until("the waiter asleep", limit, || {
        client.stats().sleeps > before.sleeps
    })
    .await;
}

/// The lock key of `resource` (no key prefix), as txcoord names it.
pub fn lock_key(resource: &str) -> String {
    LockKeys::for_resource("", resource).unwrap().lock
}

/// Every key in the server, listed with SCAN (bounded), sorted.
pub fn scan_keys(server: &RedisServer) -> Vec<String> {
    let mut con = server.connection();
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    for _ in 0..100_000 {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query(&mut con)
            .unwrap();
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            keys.sort();
            keys.dedup();
            return keys;
        }
    }
    panic!("SCAN did not finish");
}

/// The keys in the server beyond what may outlive the release of every lock on `resources`:
/// the cross-resource waiting index, which expires one waiter lease after the last wait
/// (PROTOCOL.md, section 1). Listed with SCAN, so a key under a name nobody expected shows up
/// instead of passing unnoticed. Empty when everything was released and cleaned up.
pub fn left_behind(server: &RedisServer, resources: &[&str]) -> Vec<String> {
    let mut allowed = Vec::new();
    for r in resources {
        allowed.push(LockKeys::for_resource("", r).unwrap().index);
    }
    scan_keys(server)
        .into_iter()
        .filter(|k| !allowed.contains(k))
        .collect()
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

/// splitmix64: a small seedable generator for randomized tests (no dependency, same sequence on
/// every platform for one seed).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Rng::below(0)");
        self.next_u64() % n
    }

    /// An index into a slice of length `n` (`n > 0`).
    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.index(items.len())]
    }

    /// True `per_mille` times in a thousand.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1_000) < per_mille
    }
}

/// A seed from the clock, for runs that were not given one.
pub fn time_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut rng = Rng::new(nanos ^ ((std::process::id() as u64) << 32));
    rng.next_u64()
}

/// An unsigned integer from the environment (decimal, or hex with `0x`); `None` when unset.
/// Panics naming the variable when it is set but not a number.
pub fn env_u64(name: &str) -> Option<u64> {
    let raw = std::env::var(name).ok()?;
    let s = raw.trim();
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse::<u64>(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={raw:?} is not an unsigned integer")))
}
