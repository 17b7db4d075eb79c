// SPDX-License-Identifier: MIT OR Apache-2.0
//! `make demo`: workers contend for one resource, the lock is handed over on release, every
//! write is fenced, and a holder that lost its lock is told so (and fenced out).
//!
//! Runs against `$REDIS_URL`, or a throwaway redis-server on a free loopback port.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use txcoord::{Client, LockManager};
use txcoord_testkit::RedisServer;

const RESOURCE: &str = "inventory:sku-42";
const WORKERS: usize = 4;
const ROUNDS: usize = 5;

/// A write protected by a fencing token: accepted only if the token is newer than every token
/// seen before (what a database would check with `WHERE fence < $token`).
const FENCED_WRITE: &str = r#"
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) <= last then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('INCRBY', KEYS[2], ARGV[2])
return 1
"#;

#[derive(Clone, Copy)]
struct Event {
    worker: usize,
    acquired: Duration,
    released: Duration,
    waited: Duration,
    token: u64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn fenced_write(redis: &redis::Client, token: u64, delta: i64) -> bool {
    let mut con = redis
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let accepted: i64 = redis::Script::new(FENCED_WRITE)
        .key("demo:stock:fence")
        .key("demo:stock")
        .arg(token.to_string())
        .arg(delta)
        .invoke_async(&mut con)
        .await
        .expect("fenced write");
    accepted == 1
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut _server = None;
    let url = match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            let server = RedisServer::start();
            let url = server.url();
            _server = Some(server);
            url
        }
    };
    println!("txcoord demo on {url}\n");
    let store = redis::Client::open(url.as_str())?;
    {
        let mut con = store.get_multiplexed_async_connection().await?;
        let _: () = redis::cmd("DEL")
            .arg("demo:stock")
            .arg("demo:stock:fence")
            .query_async(&mut con)
            .await?;
    }

    // Part 1: workers in two "services" (two clients) contend for one resource.
    println!("1. {WORKERS} workers, {ROUNDS} rounds each, contend for lock:{RESOURCE}");
    let clients = [Client::open(&url)?, Client::open(&url)?];
    let start = Instant::now();
    let events = Arc::new(Mutex::new(Vec::<Event>::new()));
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let manager = LockManager::new(&clients[w % 2]);
        let events = events.clone();
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..ROUNDS {
                let asked = Instant::now();
                let lock = manager
                    .acquire_lock(
                        RESOURCE,
                        Duration::from_millis(5_000),
                        Duration::from_millis(10_000),
                    )
                    .await
                    .expect("redis reachable")
                    .expect("acquired within 10 s");
                let acquired = start.elapsed();
                let waited = asked.elapsed();
                let token = lock.fencing_token().expect("token");
                println!(
                    "  [{:>7.1} ms] worker-{w} acquired  token {token}  (waited {:>5.1} ms)",
                    ms(acquired),
                    ms(waited)
                );
                // the protected work: a fenced write, then some time holding the lock
                assert!(
                    fenced_write(&store, token, -1).await,
                    "a current holder's write is accepted"
                );
                tokio::time::sleep(Duration::from_millis(10 + 5 * w as u64)).await;
                lock.release().await.expect("release");
                let released = start.elapsed();
                events.lock().unwrap().push(Event {
                    worker: w,
                    acquired,
                    released,
                    waited,
                    token,
                });
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let mut events = events.lock().unwrap().clone();
    events.sort_by_key(|e| e.acquired);
    let tokens_increase = events.windows(2).all(|p| p[1].token > p[0].token);
    let mut handoffs: Vec<f64> = events
        .windows(2)
        .filter(|p| p[0].worker != p[1].worker)
        .map(|p| ms(p[1].acquired.saturating_sub(p[0].released)))
        .collect();
    handoffs.sort_by(|a, b| a.partial_cmp(b).unwrap());

    // Part 2: a holder loses its lock and is told so; its stale write is fenced out.
    println!("\n2. a holder loses its lock");
    let old_client = Client::open(&url)?;
    let holder = LockManager::new(&old_client);
    let lock = holder
        .acquire_lock(
            "ledger:7",
            Duration::from_millis(1_500),
            Duration::from_millis(0),
        )
        .await?
        .expect("free");
    let old_token = lock.fencing_token().expect("token");
    println!(
        "  holder A acquired lock:ledger:7  token {old_token}  (ttl 1500 ms, renewed every 500 ms)"
    );
    let watcher = {
        let lock = lock.clone();
        let t0 = Instant::now();
        tokio::spawn(async move {
            let reason = lock.lost().await;
            (reason, t0.elapsed())
        })
    };
    // Holder A stalls (a long GC pause, say): its key expires, and service B takes over.
    {
        let mut con = store.get_multiplexed_async_connection().await?;
        let _: () = redis::cmd("DEL")
            .arg("lock:ledger:7")
            .query_async(&mut con)
            .await?;
    }
    println!("  ... A stalls; its key expires (deleted here to save time)");
    let other = LockManager::new(&Client::open(&url)?);
    let b = other
        .acquire_lock(
            "ledger:7",
            Duration::from_millis(5_000),
            Duration::from_millis(2_000),
        )
        .await?
        .expect("B takes over");
    let new_token = b.fencing_token().expect("token");
    println!("  holder B acquired lock:ledger:7  token {new_token}");
    assert!(fenced_write(&store, new_token, 0).await);
    let (reason, after) = watcher.await?;
    let reason = reason.map(|r| r.as_str()).unwrap_or("none");
    println!(
        "  holder A is told: lock lost ({reason}) {:.0} ms after the takeover began; is_held = {}",
        ms(after),
        lock.is_held()
    );
    let stale = fenced_write(&store, old_token, -100).await;
    println!(
        "  holder A's late write with token {old_token}: {}",
        if stale {
            "ACCEPTED (bug!)"
        } else {
            "rejected by the fence"
        }
    );
    lock.release().await?; // a lost lock's release does not fail, and does not touch B's key
    b.release().await?;

    // Summary.
    println!("\nsummary");
    println!("  | worker | acquisitions | mean wait ms | max wait ms |");
    println!("  |---|---|---|---|");
    for w in 0..WORKERS {
        let mine: Vec<&Event> = events.iter().filter(|e| e.worker == w).collect();
        let waits: Vec<f64> = mine.iter().map(|e| ms(e.waited)).collect();
        let mean = waits.iter().sum::<f64>() / waits.len().max(1) as f64;
        let max = waits.iter().cloned().fold(0.0, f64::max);
        println!("  | worker-{w} | {} | {mean:.1} | {max:.1} |", mine.len());
    }
    println!(
        "  handoffs to another worker: {}  p50 {:.2} ms  max {:.2} ms",
        handoffs.len(),
        percentile(&handoffs, 0.5),
        handoffs.last().copied().unwrap_or(0.0)
    );
    println!(
        "  fencing tokens strictly increasing: {}",
        if tokens_increase { "yes" } else { "NO" }
    );
    println!(
        "  lost-lock signal: {reason}; stale write fenced out: {}",
        if stale { "NO" } else { "yes" }
    );
    let stats = clients[0].stats();
    println!(
        "  client 1: {} attempts, {} woken by release notices, {} by timers",
        stats.attempts, stats.wake_notified, stats.wake_timer
    );
    if !tokens_increase || stale || reason != "taken" {
        return Err("demo found a guarantee broken".into());
    }
    Ok(())
}
