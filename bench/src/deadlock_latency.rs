// SPDX-License-Identifier: MIT OR Apache-2.0
//! From a deadlock forming to the victim's error, at the default settings: saga A holds `x`,
//! saga B holds `y` (each a `LockManager` with its owner id, on a client of its own, as two
//! processes would); A waits for `y`; once A's wait is asleep, B waits for `x` — the deadlock
//! forms — and the clock runs until one of the two waits fails with `DeadlockVictim`. The
//! waits break it themselves (their probe after the deadlock timeout, 1000 ms by default); no
//! detector or monitor runs. The victim then lets go of its lock, and the other saga must get
//! it.

use std::time::{Duration, Instant};

use txcoord::{Client, DistributedLock, ErrorKind, LockManager, ManagerOptions};

use crate::fmt::{dash, median, verdict, Table};
use crate::sagas::{dur, Bench, Target};

pub const TARGET: Duration = Duration::from_millis(1_500);
const TTL: Duration = Duration::from_secs(60);
/// How long each wait may take: far beyond the target, so a deadlock that is not broken shows
/// as a failure, not as a long figure.
const WAIT: Duration = Duration::from_secs(10);

type Wait = tokio::task::JoinHandle<txcoord::Result<Option<DistributedLock>>>;

/// One deadlock, formed and broken: the latency and which saga was the victim.
async fn one(url: &str, rep: usize) -> Result<(Duration, &'static str), String> {
    let e = |what: &str| {
        let what = what.to_string();
        move |err: txcoord::Error| format!("{what}: {err}")
    };
    let (ca, cb) = (
        Client::open(url).map_err(e("client"))?,
        Client::open(url).map_err(e("client"))?,
    );
    let manager = |c: &Client, saga: &str| {
        LockManager::with_options(c, ManagerOptions::new().set_owner_id(saga)).map_err(e("manager"))
    };
    let (a, b) = (
        manager(&ca, &format!("dl{rep}-a"))?,
        manager(&cb, &format!("dl{rep}-b"))?,
    );
    let (x, y) = (format!("dl{rep}:x"), format!("dl{rep}:y"));
    for (m, r) in [(&a, &x), (&b, &y)] {
        m.acquire_lock(r, TTL, Duration::ZERO)
            .await
            .map_err(e("first lock"))?
            .ok_or_else(|| format!("{r} was not free"))?;
    }
    let asleep = ca.stats().sleeps;
    let wait = |m: &LockManager, r: &str| -> Wait {
        let (m, r) = (m.clone(), r.to_string());
        tokio::spawn(async move { m.acquire_lock(&r, TTL, WAIT).await })
    };
    let mut wa = wait(&a, &y);
    // B's wait closes the cycle once A's is asleep (queued, waiting for a notice or a timer).
    let deadline = Instant::now() + Duration::from_secs(5);
    while ca.stats().sleeps <= asleep {
        if Instant::now() > deadline || wa.is_finished() {
            return Err("saga A's wait never went to sleep".into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let started = Instant::now();
    let mut wb = wait(&b, &x);
    // Both waits end within their timeout, so this is bounded.
    let (first, a_first) = tokio::select! {
        r = &mut wa => (r, true),
        r = &mut wb => (r, false),
    };
    let latency = started.elapsed();
    let (victim, victim_m, survivor, survivor_m) = if a_first {
        ("A", &a, wb, &b)
    } else {
        ("B", &b, wa, &a)
    };
    let outcome = match first {
        Ok(Err(err)) if err.kind() == ErrorKind::DeadlockVictim => Ok((latency, victim)),
        Ok(Err(err)) => Err(format!("saga {victim}'s wait failed otherwise: {err}")),
        Ok(Ok(Some(_))) => Err(format!("saga {victim} got a lock held by the other saga")),
        Ok(Ok(None)) => Err(format!(
            "the deadlock was not broken: saga {victim}'s wait timed out after {}",
            dur(latency)
        )),
        Err(join) => Err(format!("saga {victim}'s wait: {join}")),
    };
    // The victim lets go (as an aborted saga does); the other saga must then get its lock.
    victim_m.release_all_locks().await;
    let survived = match tokio::time::timeout(WAIT + Duration::from_secs(5), survivor).await {
        Ok(Ok(Ok(Some(_)))) => Ok(()),
        Ok(Ok(Ok(None))) => Err("the other saga's wait timed out after the victim let go".into()),
        Ok(Ok(Err(err))) if err.kind() == ErrorKind::DeadlockVictim => {
            Err("both sagas were aborted: one victim was enough".into())
        }
        Ok(Ok(Err(err))) => Err(format!("the other saga's wait failed: {err}")),
        Ok(Err(join)) => Err(format!("the other saga's wait: {join}")),
        Err(_) => Err("the other saga's wait hung".into()),
    };
    survivor_m.release_all_locks().await;
    ca.close();
    cb.close();
    let found = outcome?;
    survived?;
    Ok(found)
}

pub fn run(b: &mut Bench) {
    let url = b.url();
    let reps = b.cfg.deadlock_reps;
    let mut lat = Vec::new();
    let mut victims = (0, 0);
    for rep in 0..reps {
        match b.rt.block_on(one(&url, rep)) {
            Ok((d, v)) => {
                lat.push(d);
                if v == "A" {
                    victims.0 += 1;
                } else {
                    victims.1 += 1;
                }
            }
            Err(e) => b.fail(format!("deadlock {}: {e}", rep + 1)),
        }
    }
    lat.sort();
    let med = median(&lat.iter().map(Duration::as_secs_f64).collect::<Vec<_>>())
        .map(Duration::from_secs_f64);
    let max = lat.last().copied();
    let met = (lat.len() == reps).then(|| max.is_some_and(|m| m <= TARGET));
    println!("## From a deadlock forming to the victim's error ({reps} deadlocks of two sagas)\n");
    let mut t = Table::new(&[
        "detector",
        "median",
        "max",
        "broken",
        "target (max)",
        "result",
    ]);
    t.row(vec![
        "txcoord: the waits' own probes, deadlock_timeout 1000 ms (default)".into(),
        med.map(dur).unwrap_or_else(dash),
        max.map(dur).unwrap_or_else(dash),
        format!("{}/{reps}", lat.len()),
        format!("≤ {}", dur(TARGET)),
        verdict(met).into(),
    ]);
    println!("{}", t.render());
    println!(
        "Each run: saga A holds x and waits for y; once A's wait is asleep, saga B (holding y) \
         waits for x, and the clock starts; it stops when a wait fails with DeadlockVictim. \
         Then the victim releases its lock and the other saga must get it (checked). Two \
         clients, two LockManagers with owner ids, no detector or monitor running. All runs: \
         {}. Victims: A {} times, B {} times (equal priorities: the younger waiter).\n",
        lat.iter().map(|d| dur(*d)).collect::<Vec<_>>().join(", "),
        victims.0,
        victims.1
    );
    b.targets.push(Target::new(
        "deadlock formed → victim's error (max)",
        "≤ 1.5 s",
        match (med, max) {
            (Some(m), Some(x)) => format!("median {}, max {}", dur(m), dur(x)),
            _ => dash(),
        },
        met,
    ));
}
