// SPDX-License-Identifier: MIT OR Apache-2.0
//! Events with several actors: handoffs, bursts, waits that end at a holder's expiry.
use std::time::Instant;

use crate::common::*;
use txcoord::{AcquireOptions, LockStatus};

use crate::world::*;

impl World {
    pub(crate) async fn handoff(&mut self) {
        let candidates: Vec<usize> = (0..self.res.len())
            .filter(|&r| self.all_holds(r).is_some())
            .collect();
        if candidates.is_empty() {
            return;
        }
        let r = self.rng.pick(&candidates);
        let holder_owner = self.res[r].live.as_ref().unwrap().owner.clone();
        let waiters: Vec<usize> = (0..self.actors.len())
            .filter(|&a| !self.actors[a].flaky && !same_owner(&holder_owner, self.actors[a].owner))
            .collect();
        let w = self.rng.pick(&waiters);
        let fair = self.rng.chance(400);
        let ttl = self.rng.pick(&TTLS);
        let holds = self.all_holds(r).unwrap_or_default();
        self.note(format!(
            "handoff of {} from {holds:?} to {} (fair {fair})",
            RESOURCES[r], self.actors[w].name
        ));
        let client = self.actors[w].client.clone();
        let sleeps = client.stats().sleeps;
        let m = self.actors[w].manager.clone();
        let opts = AcquireOptions::new()
            .set_ttl(ms(ttl))
            .set_timeout(ms(5_000))
            .set_fair(fair);
        let task = tokio::spawn(async move { m.acquire_lock_with(RESOURCES[r], opts).await });
        let limit = Instant::now() + ms(3_000);
        while client.stats().sleeps == sleeps && !task.is_finished() && Instant::now() < limit {
            tokio::time::sleep(ms(1)).await;
        }
        if client.stats().sleeps > sleeps {
            self.bump("handoff: the waiter was asleep");
        }
        for id in holds {
            let i = self.rec_index(id);
            let pre = self.recs[i].lock.status();
            let lock = self.recs[i].lock.clone();
            let result = self.bounded("release", lock.release()).await;
            self.released(i, pre, result);
        }
        let released_at = Instant::now();
        let got = self
            .bounded("handoff waiter", task)
            .await
            .expect("waiter task");
        let waited = released_at.elapsed().as_millis() as u64;
        match got {
            Ok(Some(lock)) => {
                self.handoff_ms.push(waited);
                self.bump("exact: handoff");
                self.granted(w, r, lock, ttl, false, Ctx::default()).await;
            }
            other => self.fail(format!(
                "the waiter was not handed {} after every hold was released: {other:?}",
                RESOURCES[r]
            )),
        }
    }

    /// Several actors acquire one resource at the same instant, some waiting a little, while
    /// (sometimes) its holder releases it: mutual exclusion and tokens under real concurrency.
    pub(crate) async fn burst(&mut self) {
        let r = self.rng.index(RESOURCES.len());
        let n = 2 + self.rng.index(3);
        let mut actors: Vec<usize> = (0..self.actors.len()).collect();
        let mut plans = Vec::new();
        for _ in 0..n {
            let a = actors.remove(self.rng.index(actors.len()));
            let timeout = if self.rng.chance(300) {
                self.rng.pick(&[20, 40])
            } else {
                0
            };
            plans.push((a, self.rng.pick(&TTLS), timeout, self.rng.chance(300)));
        }
        let releasing = if self.rng.chance(400) {
            self.all_holds(r).unwrap_or_default()
        } else {
            Vec::new()
        };
        let free = self.is_free(r);
        self.note(format!(
            "burst on {}: {:?} (actor, ttl, timeout, fair), releasing {releasing:?}",
            RESOURCES[r], plans
        ));
        let acquires = plans.iter().map(|&(a, ttl, timeout, fair)| {
            let m = self.actors[a].manager.clone();
            let opts = AcquireOptions::new()
                .set_ttl(ms(ttl))
                .set_timeout(ms(timeout))
                .set_fair(fair);
            async move {
                let t0 = Instant::now();
                let got = m.acquire_lock_with(RESOURCES[r], opts).await;
                (got, t0.elapsed())
            }
        });
        let releases = releasing.iter().map(|&id| {
            let lock = self.recs[self.rec_index(id)].lock.clone();
            async move { (id, lock.status(), lock.release().await) }
        });
        let both = futures_util::future::join(
            futures_util::future::join_all(acquires),
            futures_util::future::join_all(releases),
        );
        let (got, released) = self.bounded("burst", both).await;
        let mut wins = Vec::new();
        let mut errors = 0;
        for (&(a, ttl, timeout, _), (result, elapsed)) in plans.iter().zip(got) {
            match result {
                Ok(Some(lock)) => wins.push((a, ttl, lock)),
                Ok(None) => {}
                Err(e) => {
                    errors += 1;
                    self.note(format!(
                        "  -> {} error after {elapsed:?}: {e}",
                        self.actors[a].name
                    ));
                    let slow_attempt = timeout > 0 && elapsed >= ms(50) && e.is_retryable();
                    if !self.actors[a].flaky && !slow_attempt {
                        self.fail(format!("unexpected acquire error in a burst: {e}"));
                    }
                    let owner = self.actors[a].owner;
                    let lease = if timeout > 0 { WAITER_LEASE } else { 0 };
                    self.mark_unknown(r, owner, ttl.max(lease));
                }
            }
        }
        if free && wins.is_empty() && errors == 0 {
            self.fail(format!("nobody of a burst got the free {}", RESOURCES[r]));
        }
        // in the order Redis granted them: fresh grants before the re-entries that follow
        wins.sort_by_key(|(_, _, l)| (l.fencing_token(), l.hold_count()));
        let values: std::collections::BTreeSet<String> =
            wins.iter().filter_map(|(_, _, l)| l.value()).collect();
        self.note(format!("  -> {} acquired, values {values:?}", wins.len()));
        for (a, ttl, lock) in wins {
            let ctx = Ctx {
                exact_count: false,
                ..Ctx::default()
            };
            self.granted(a, r, lock, ttl, false, ctx).await;
        }
        for (id, pre, result) in released {
            let i = self.rec_index(id);
            self.released(i, pre, result);
        }
        self.bump("burst");
    }

    /// A waiter of another owner waits for a key nobody renews (its holders crashed or lost
    /// it): it must get the lock once the key expires, woken at the holder's expiry.
    pub(crate) async fn expiry_wait(&mut self) {
        let r = self.rng.index(RESOURCES.len());
        let short_lease = self.res[r].live.as_ref().is_some_and(|l| l.max_ms <= 1_000);
        if let (true, Some(holds)) = (short_lease, self.all_holds(r)) {
            // the holder's process dies
            for id in holds {
                let i = self.rec_index(id);
                self.crash(i);
            }
        }
        let Some(live) = self.res[r].live.as_ref() else {
            return;
        };
        let (value, owner) = (live.value.clone(), live.owner.clone());
        let renewed = self.recs.iter().any(|x| {
            x.res == r
                && x.value == value
                && (x.lock.status() == LockStatus::Held || x.st == St::Releasing)
        });
        if renewed || self.unknown(r) {
            return;
        }
        let key = self.res[r].key.clone();
        let pttl: redis::RedisResult<i64> = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut self.conn)
            .await;
        let pttl = pttl.unwrap_or_else(|e| self.fail(format!("PTTL: {e}")));
        if !(1..=1_000).contains(&pttl) {
            return;
        }
        let waiters: Vec<usize> = (0..self.actors.len())
            .filter(|&a| !self.actors[a].flaky && !same_owner(&owner, self.actors[a].owner))
            .collect();
        let w = self.rng.pick(&waiters);
        let ttl = self.rng.pick(&TTLS);
        let fair = self.rng.chance(300);
        self.note(format!(
            "{} waits for {} ({} expires in {pttl} ms, fair {fair})",
            self.actors[w].name,
            RESOURCES[r],
            short(&value)
        ));
        let m = self.actors[w].manager.clone();
        let opts = AcquireOptions::new()
            .set_ttl(ms(ttl))
            .set_timeout(ms(pttl as u64 + 2 * SLACK))
            .set_fair(fair);
        let t0 = Instant::now();
        match self
            .bounded("acquire", m.acquire_lock_with(RESOURCES[r], opts))
            .await
        {
            Ok(Some(lock)) => {
                self.note(format!("  -> after {} ms", t0.elapsed().as_millis()));
                self.bump("exact: acquired at the holder's expiry");
                self.granted(w, r, lock, ttl, false, Ctx::default()).await;
            }
            other => self.fail(format!(
                "a key with {pttl} ms left and nobody renewing it was not acquired within \
                 {} ms: {other:?}",
                pttl as u64 + 2 * SLACK
            )),
        }
    }
}
