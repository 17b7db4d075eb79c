// SPDX-License-Identifier: MIT OR Apache-2.0
//! The detector's whole-graph read at scale: 100,000 waiting sagas on 10,000 locks, written
//! straight into the lock registry in the formats of PROTOCOL.md §1 and §7 (holder values,
//! queue and waiter entries, the waiting index, owner records), then
//! `SagaDeadlockDetector::detect_deadlock` — three round trips and the cycle search — timed.
//!
//! Saga `s<j>` holds lock `lock:sb:<j>` for every lock `j`; every saga waits on one lock:
//! - the first holders wait in pairs on each other (a tenth of the locks: 2-saga deadlocks),
//!   the next ones in rings of 10 (a tenth of the locks: 10-saga deadlocks);
//! - the other holders form one long chain that ends in the first pair (no cycle);
//! - the sagas that hold nothing wait on lock `i mod locks` (about 9 waiters a lock).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use txcoord::{
    Client, DetectorOptions, Logger, RedisSagaRepository, SagaDeadlockDetector, WaitForGraph,
};

use crate::fmt::{dash, median, num, verdict, Table};
use crate::sagas::{dur, Batcher, Bench, Target};

pub const TARGET: Duration = Duration::from_secs(1);
/// How long the written entries live (well past the run).
const LIFE_MS: u64 = 600_000;
/// The client id part of the waiter ids written here (16 hex digits, PROTOCOL.md §2).
const CLIENT_ID: &str = "5b5b5b5b5b5b5b5b";

/// `aux(K, s)` of PROTOCOL.md §1 for a lock key without braces.
pub fn aux(lock_key: &str, suffix: &str) -> String {
    debug_assert!(!lock_key.contains(['{', '}']));
    format!("{{{lock_key}}}:{suffix}")
}

pub fn lock_key(j: usize) -> String {
    format!("lock:sb:{j}")
}

/// The shape of the registry written: who waits on which lock, and the cycles it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub sagas: usize,
    pub locks: usize,
    /// Pairs of holders waiting on each other, then rings of 10 holders.
    pub pairs: usize,
    pub tens: usize,
}

impl Layout {
    pub fn new(sagas: usize, locks: usize) -> Layout {
        assert!(
            locks >= 100 && sagas >= locks,
            "{sagas} sagas, {locks} locks"
        );
        Layout {
            sagas,
            locks,
            pairs: locks / 20,
            tens: locks / 100,
        }
    }

    /// The lock saga `i` waits on.
    pub fn waits_on(&self, i: usize) -> usize {
        let pair_end = 2 * self.pairs;
        let ten_end = pair_end + 10 * self.tens;
        if i < pair_end {
            i ^ 1
        } else if i < ten_end {
            let base = pair_end + (i - pair_end) / 10 * 10;
            base + (i - base + 1) % 10
        } else if i == ten_end {
            0
        } else if i < self.locks {
            i - 1
        } else {
            i % self.locks
        }
    }

    pub fn cycles(&self) -> usize {
        self.pairs + self.tens
    }

    pub fn deadlocked_sagas(&self) -> usize {
        2 * self.pairs + 10 * self.tens
    }
}

/// Writes the registry of `layout`; returns the commands sent.
fn populate(b: &mut Bench, layout: &Layout) -> Result<usize, String> {
    let now = b.redis_now_ms()?;
    let expires = now + LIFE_MS;
    let mut w = Batcher::new(&mut b.admin, 10_000);
    for j in 0..layout.locks {
        let k = lock_key(j);
        // 2:<uuid>:<token>:<priority>:<owner> (§2); the token is the grant's Redis time in µs
        let value = format!(
            "2:00000000-0000-4000-8000-{j:012}:{}:0:s{j}",
            (now - LIFE_MS / 10) * 1000 + j as u64
        );
        let mut set = redis::cmd("SET");
        set.arg(&k).arg(value).arg("PX").arg(LIFE_MS);
        w.add(set)?;
        let mut index = redis::cmd("ZADD");
        index.arg("txcoord:waiting").arg(expires).arg(&k);
        w.add(index)?;
    }
    for i in 0..layout.sagas {
        let k = lock_key(layout.waits_on(i));
        let waiter = format!("{CLIENT_ID}-{i}");
        let since = now - 60_000 + (i % 1000) as u64;
        let mut q = redis::cmd("ZADD");
        q.arg(aux(&k, "~q")).arg(since * 1000).arg(&waiter);
        w.add(q)?;
        // 2|<state>|<expires_ms>|<since_ms>|<priority>|<owner> (§1)
        let mut entry = redis::cmd("HSET");
        entry
            .arg(aux(&k, "~w"))
            .arg(&waiter)
            .arg(format!("2|w|{expires}|{since}|0|s{i}"));
        w.add(entry)?;
        let owner = txcoord::registry::owner_key("", &format!("s{i}"));
        let mut record = redis::cmd("HSET");
        record
            .arg(&owner)
            .arg("since")
            .arg(since)
            .arg(format!("w:{k}"))
            .arg(expires);
        w.add(record)?;
        let mut keep = redis::cmd("PEXPIRE");
        keep.arg(&owner).arg(LIFE_MS);
        w.add(keep)?;
    }
    w.flush()?;
    Ok(w.sent)
}

/// A logger that counts (the detector warns once per cycle found).
#[derive(Default)]
pub struct CountingLogger {
    pub warns: AtomicU64,
    pub infos: AtomicU64,
}

impl Logger for CountingLogger {
    fn warn(&self, _message: &str, _fields: &serde_json::Value) {
        self.warns.fetch_add(1, Ordering::Relaxed);
    }
    fn info(&self, _message: &str, _fields: &serde_json::Value) {
        self.infos.fetch_add(1, Ordering::Relaxed);
    }
}

fn check_graph(g: &WaitForGraph, layout: &Layout) -> Result<(), String> {
    if g.nodes.len() != layout.sagas || g.edges.len() != layout.sagas {
        return Err(format!(
            "the wait-for graph has {} nodes and {} edges, expected {} and {}",
            g.nodes.len(),
            g.edges.len(),
            layout.sagas,
            layout.sagas
        ));
    }
    if let Some(n) = g.nodes.iter().find(|n| n.since_ms == 0) {
        return Err(format!(
            "saga {} has no age: its owner record was not read",
            n.id
        ));
    }
    Ok(())
}

pub fn run(b: &mut Bench) {
    let layout = Layout::new(b.cfg.registry_sagas, b.cfg.registry_locks);
    let t0 = Instant::now();
    let written = match populate(b, &layout) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("registry: {e}");
            b.fail(format!("registry: writing the registry: {e}"));
            return;
        }
    };
    let populate_time = t0.elapsed();
    let memory = crate::server::info_fields(&mut b.admin, "memory")
        .remove("used_memory_human")
        .unwrap_or_else(dash);
    // The detector's scripts in the server's cache, as in a running system.
    let loaded: redis::RedisResult<String> = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(txcoord::protocol::INSPECT_LUA.as_str())
        .query(&mut b.admin);
    if let Err(e) = loaded {
        eprintln!("SCRIPT LOAD failed: {e}");
    }
    let url = b.url();
    let reps = b.cfg.registry_reps;
    let result = b.rt.block_on(async {
        let client = Client::open(&url).map_err(|e| e.to_string())?;
        client.ping().await.map_err(|e| e.to_string())?;
        let logger = Arc::new(CountingLogger::default());
        let detector = SagaDeadlockDetector::new(
            Arc::new(RedisSagaRepository::new(&client)),
            logger.clone(),
            DetectorOptions::new(),
        )
        .map_err(|e| e.to_string())?;
        let mut reads = Vec::new();
        let mut detects = Vec::new();
        for _ in 0..reps {
            let t = Instant::now();
            let g = detector.wait_for_graph().await.map_err(|e| e.to_string())?;
            reads.push(t.elapsed());
            check_graph(&g, &layout)?;
            drop(g);
            let warned = logger.warns.load(Ordering::Relaxed);
            let t = Instant::now();
            let r = detector
                .detect_deadlock()
                .await
                .map_err(|e| e.to_string())?;
            detects.push(t.elapsed());
            let lengths = |n: usize| r.cycles.iter().filter(|c| c.len() == n + 1).count();
            if r.cycles.len() != layout.cycles()
                || lengths(2) != layout.pairs
                || lengths(10) != layout.tens
                || r.affected_sagas.len() != layout.deadlocked_sagas()
                || r.explained.len() != r.cycles.len()
            {
                return Err(format!(
                    "detect_deadlock found {} cycles ({} of 2 sagas, {} of 10) with {} sagas \
                     affected; the registry has {} ({} and {}) with {}",
                    r.cycles.len(),
                    lengths(2),
                    lengths(10),
                    r.affected_sagas.len(),
                    layout.cycles(),
                    layout.pairs,
                    layout.tens,
                    layout.deadlocked_sagas()
                ));
            }
            let warns = logger.warns.load(Ordering::Relaxed) - warned;
            if warns != layout.cycles() as u64 {
                return Err(format!(
                    "the logger was warned {warns} times for {} cycles",
                    layout.cycles()
                ));
            }
        }
        client.close();
        Ok::<_, String>((reads, detects))
    });
    let (reads, detects) = match result {
        Ok(r) => r,
        Err(e) => {
            b.fail(format!("registry: {e}"));
            (Vec::new(), Vec::new())
        }
    };
    let med = |v: &[Duration]| {
        median(&v.iter().map(Duration::as_secs_f64).collect::<Vec<_>>())
            .map(Duration::from_secs_f64)
    };
    let (read, detect) = (med(&reads), med(&detects));
    let met = detect.map(|d| d <= TARGET);
    println!(
        "## The detector's whole-graph read: {} waiting sagas on {} locks in the registry\n",
        num(layout.sagas as f64),
        num(layout.locks as f64)
    );
    let mut t = Table::new(&[
        "call",
        "time (median)",
        "runs",
        "nodes / edges",
        "cycles (expected)",
        "target",
        "result",
    ]);
    let runs = |v: &[Duration]| v.iter().map(|d| dur(*d)).collect::<Vec<_>>().join(" / ");
    let ok = !detects.is_empty();
    t.row(vec![
        "wait_for_graph(): the read alone".into(),
        read.map(dur).unwrap_or_else(dash),
        runs(&reads),
        if ok {
            format!(
                "{} / {}",
                num(layout.sagas as f64),
                num(layout.sagas as f64)
            )
        } else {
            dash()
        },
        dash(),
        dash(),
        dash(),
    ]);
    t.row(vec![
        "detect_deadlock(): read + cycle search + explanations".into(),
        detect.map(dur).unwrap_or_else(dash),
        runs(&detects),
        dash(),
        format!(
            "{} ({} of 2 sagas, {} of 10)",
            if ok {
                num(layout.cycles() as f64)
            } else {
                "WRONG".into()
            },
            num(layout.pairs as f64),
            num(layout.tens as f64)
        ),
        format!("≤ {}", dur(TARGET)),
        verdict(met).into(),
    ]);
    println!("{}", t.render());
    println!(
        "Written with pipelined commands in {} ({} commands; Redis used_memory {memory}): \
         {} holder values, {} waiter entries with their queue members and owner records, the \
         waiting index. The read is PROTOCOL.md §7's: the waiting index, one pipeline of \
         inspect scripts (one per lock), one pipeline of owner records (HGETALL per saga). \
         Checked every run: {} nodes and edges, every saga's age read from its owner record, \
         the cycles by length, the sagas affected, one warning per cycle.\n",
        dur(populate_time),
        num(written as f64),
        num(layout.locks as f64),
        num(layout.sagas as f64),
        num(layout.sagas as f64),
    );
    b.targets.push(Target::new(
        &format!(
            "detector: whole-graph read + search, {} waiting sagas",
            crate::sagas::short(layout.sagas)
        ),
        "≤ 1 s",
        detect.map(dur).unwrap_or_else(dash),
        met,
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_protocol() {
        let k = lock_key(7);
        let keys = txcoord::LockKeys::for_key("", &k, "lock_key").unwrap();
        assert_eq!(aux(&k, "~q"), keys.queue);
        assert_eq!(aux(&k, "~w"), keys.waiters);
        assert_eq!(keys.index, "txcoord:waiting");
    }

    #[test]
    fn the_layout_has_the_cycles_it_promises() {
        let layout = Layout::new(10_000, 1_000);
        // every saga waits on a lock held by another saga
        for i in 0..layout.sagas {
            assert_ne!(layout.waits_on(i), i, "saga {i}");
            assert!(layout.waits_on(i) < layout.locks);
        }
        // follow each holder's wait: the rings close, the chain ends in the first pair
        let step = |i: usize| layout.waits_on(i);
        assert_eq!(step(step(0)), 0);
        let ten = 2 * layout.pairs;
        let mut x = ten;
        for _ in 0..10 {
            x = step(x);
        }
        assert_eq!(x, ten, "a ring of 10");
        assert_ne!(step(ten + 3), ten + 3);
        let mut x = layout.locks - 1;
        for _ in 0..layout.locks {
            x = step(x);
        }
        assert!(x < 2, "the chain ends in the first pair");
        assert_eq!(layout.cycles(), 50 + 10);
        assert_eq!(layout.deadlocked_sagas(), 100 + 100);
    }
}
