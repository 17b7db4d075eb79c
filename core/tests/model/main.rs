// SPDX-License-Identifier: MIT OR Apache-2.0
//! A randomized model test of the lock state machine of PROTOCOL.md against a real redis-server.
//!
//! Six actors, each its own `Client` (two share the owner id `saga-a`, two `saga-b`, two are
//! anonymous; one `saga-b` and one anonymous actor reach Redis through a fault proxy with short
//! timeouts), acquire, re-enter, extend, release and crash locks on three resources, one event at
//! a time, while a model of the protocol follows along. Some events run several operations at
//! once (bursts of acquisitions racing a release, a waiter handed the lock by a release notice or
//! at the holder's expiry, an extend meeting a due renewal); faults are rare events: a reply
//! dropped by the proxy, DEBUG SLEEP, a holder paused past its deadline, a Redis restart without
//! persistence. After every event:
//!
//! - every handle that `is_held` finds the lock key holding its value, so no two owners (nor two
//!   anonymous handles) are held at once. Exception, as PROTOCOL.md §6 documents: handles that
//!   were held when Redis restarted without persistence may say held until their next renewal
//!   or their deadline, and never past `kill time + the longest lease their key was given`;
//! - every fresh grant's fencing token is larger than every earlier token of its resource, and at
//!   most the Redis clock (µs) plus the number of grants; re-entries share their holder's token;
//! - where the model knows the outcome it checks it exactly: a free resource is granted fresh
//!   (hold count 1), a same-owner holder is re-entered (its value and token, hold count + 1, also
//!   when the attempt's reply was lost), a held handle's extend succeeds, and the lock key is gone
//!   once every hold of it was released, or one lease after its holders stopped renewing;
//! - a handle whose deadline passed reports the loss.
//!
//! At the end every hold is released, and Redis must hold nothing but what PROTOCOL.md says
//! remains: the waiting index `I` and the owner records `O`, each with a TTL (PROTOCOL.md §1).
//!
//! An operation whose outcome is unknown on purpose (reply dropped by the proxy, DEBUG SLEEP)
//! turns off the exact predictions for its resource for one lease; the safety checks stay on.
//!
//! `TXCOORD_MODEL_SEED` replays a run's choices (the outcomes still depend on timing),
//! `TXCOORD_MODEL_STEPS` (default 20 000) and `TXCOORD_MODEL_SECONDS` (default 50) bound it; at
//! least `min(10 000, steps)` steps must run.

#[path = "../common/mod.rs"]
mod common;
mod faults;
mod ops;
mod scenarios;
mod world;

use std::time::{Duration, Instant};

use crate::common::*;
use txcoord::{DistributedLock, LockOptions, LockStatus, LossReason};
use txcoord_testkit::RedisServer;

use world::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn the_lock_state_machine_follows_its_model() {
    let seed = env_u64("TXCOORD_MODEL_SEED").unwrap_or_else(time_seed);
    let target = env_u64("TXCOORD_MODEL_STEPS").unwrap_or(20_000);
    let budget = Duration::from_secs(env_u64("TXCOORD_MODEL_SECONDS").unwrap_or(50));
    let min_steps = target.min(MIN_STEPS);
    eprintln!(
        "model: seed {seed} (replay with TXCOORD_MODEL_SEED={seed}), up to {target} steps in \
         {budget:?}"
    );
    let mut world = World::new(seed).await;
    let started = Instant::now();
    while world.step < target && started.elapsed() < budget {
        world.step += 1;
        let t = Instant::now();
        let kind = world.run_step().await;
        world.check().await;
        let spent = world.time.entry(kind).or_default();
        spent.0 += 1;
        spent.1 += t.elapsed();
        if world.step % 20_000 == 0 && world.step < target {
            world.quiesce().await;
        }
    }
    let steps = world.step;
    let secs = started.elapsed().as_secs_f64();
    world.quiesce().await;
    let mut handoff = world.handoff_ms.clone();
    handoff.sort_unstable();
    let pct = |p: usize| handoff.get(handoff.len() * p / 100).copied().unwrap_or(0);
    eprintln!(
        "model: seed {seed}: {steps} steps in {secs:.1} s ({:.0} steps/s); handoff ms p50 {} \
         p99 {} max {}",
        steps as f64 / secs,
        pct(50),
        pct(99),
        handoff.last().copied().unwrap_or(0)
    );
    for (what, n) in &world.counts {
        eprintln!("  {what}: {n}");
    }
    for (kind, (n, spent)) in &world.time {
        eprintln!("  time in {kind}: {n} events, {} ms", spent.as_millis());
    }
    assert!(
        steps >= min_steps,
        "seed {seed}: only {steps} steps within {budget:?} (at least {min_steps} required)"
    );
    for what in [
        "exact: free granted",
        "re-entered",
        "crashed",
        "extended",
        "released",
    ] {
        assert!(
            world.counts.get(what).copied().unwrap_or(0) > 0,
            "seed {seed}: the run never exercised '{what}'"
        );
    }
}

/// The sequence the model found, step by step: a handle of an owner-shared lock that lost it by
/// its deadline (its process paused) while another hold kept the key still owes the release of
/// its hold (`needs_release`); acquiring again must not leave that hold behind, or the key
/// outlives the release of every live hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn a_handle_lost_by_its_deadline_drops_its_old_hold_when_it_acquires_again() {
    let server = RedisServer::start();
    let c = client(&server);
    let owned = |ttl| LockOptions::new().set_ttl(ms(ttl)).set_owner_id("saga");
    let a = DistributedLock::with_options(&c, "shared", owned(300)).unwrap();
    let b = DistributedLock::with_options(&c, "shared", owned(30_000)).unwrap();
    assert!(a.acquire().await.unwrap());
    assert!(b.acquire().await.unwrap());
    assert_eq!(b.hold_count(), 2);
    {
        // A's process pauses past its deadline: its renewal cannot run
        let _paused = a.test_hold_operation_lock().await;
        tokio::time::sleep(ms(500)).await;
    }
    wait_until("A reports the loss", ms(5_000), || {
        a.status() != LockStatus::Held
    })
    .await;
    assert_eq!(
        a.status(),
        LockStatus::Lost(LossReason::Deadline),
        "B kept the key"
    );
    assert!(a.acquire().await.unwrap(), "A re-enters the lock B holds");
    assert_eq!(
        a.hold_count(),
        2,
        "A re-entered without releasing the hold it lost"
    );
    a.release().await.unwrap();
    b.release().await.unwrap();
    assert_eq!(
        get(&server, "shared"),
        None,
        "the key outlives the release of every live hold (pttl {} ms)",
        pttl(&server, "shared")
    );
}
