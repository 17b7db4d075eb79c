// SPDX-License-Identifier: MIT OR Apache-2.0
//! The everyday events: acquire, release, extend, crash, renewal waits.
use std::time::Instant;

use crate::common::*;
use txcoord::{AcquireOptions, DistributedLock, LockStatus, LossReason};

use crate::world::*;

impl World {
    pub(crate) fn direct_handle(&self, a: usize, r: usize) -> DistributedLock {
        self.actors[a].direct[r].clone()
    }

    pub(crate) fn current_direct(&self, a: usize, r: usize) -> Option<usize> {
        self.recs
            .iter()
            .position(|x| x.actor == a && x.res == r && x.direct && x.current)
    }

    pub(crate) async fn acquire(
        &mut self,
        a: usize,
        r: usize,
        timeout: u64,
        fair: bool,
        direct: bool,
    ) {
        let actor_name = self.actors[a].name;
        let owner = self.actors[a].owner;
        let flaky = self.actors[a].flaky;
        let mut ttl = self.rng.pick(&TTLS);
        let handle = direct.then(|| self.direct_handle(a, r));
        if let Some(h) = &handle {
            ttl = h.ttl().as_millis() as u64;
            if h.status() == LockStatus::Held {
                let before = h.value();
                let got = self.bounded("acquire", h.acquire()).await;
                if !matches!(got, Ok(false)) || h.value() != before {
                    self.fail(format!("acquire on a held handle gave {got:?}"));
                }
                self.bump("acquire on a held handle refused");
                return;
            }
        }
        let prev = handle.as_ref().and_then(|_| self.current_direct(a, r));
        let prev_status = prev.map(|p| self.recs[p].lock.status());
        let before = self.held_on(r);
        let free = self.is_free(r);
        self.note(format!(
            "{actor_name} acquire {} ttl {ttl} timeout {timeout} fair {fair} direct {direct} \
             (free {free}, held by {:?})",
            RESOURCES[r],
            before
                .iter()
                .map(|(i, _)| self.recs[*i].id)
                .collect::<Vec<_>>()
        ));
        let t0 = Instant::now();
        let result = match &handle {
            Some(h) => {
                let fut = async {
                    if timeout == 0 {
                        h.acquire().await
                    } else {
                        h.acquire_timeout(ms(timeout)).await
                    }
                };
                self.bounded("acquire", fut)
                    .await
                    .map(|ok| ok.then(|| h.clone()))
            }
            None => {
                let m = self.actors[a].manager.clone();
                let opts = AcquireOptions::new()
                    .set_ttl(ms(ttl))
                    .set_timeout(ms(timeout))
                    .set_fair(fair);
                self.bounded("acquire", m.acquire_lock_with(RESOURCES[r], opts))
                    .await
            }
        };
        let elapsed = t0.elapsed();
        let t1 = Instant::now();
        if let (Some(p), Some(LockStatus::Releasing | LockStatus::Lost(_))) = (prev, prev_status) {
            // The handle still owes a release (`needs_release`): a release not confirmed, or a
            // lock lost while its key may still exist, whose hold is still recorded. It must
            // be sent before the handle takes a new hold, or the old hold outlives it.
            self.recs[p].st = if result.is_ok() {
                St::Released
            } else {
                St::MaybeReleased
            };
        }
        let still: Vec<usize> = before
            .iter()
            .filter(|(i, d)| *d > t1 && self.recs[*i].lock.is_held())
            .map(|(i, _)| *i)
            .collect();
        let other = still
            .iter()
            .copied()
            .find(|&i| !same_owner(&self.recs[i].owner, owner));
        let same = still
            .iter()
            .copied()
            .find(|&i| same_owner(&self.recs[i].owner, owner));
        let in_time = elapsed < validity(ttl);
        match result {
            Err(e) => {
                self.note(format!("  -> error after {} ms: {e}", elapsed.as_millis()));
                // A waiting acquisition gives each attempt at least 50 ms, even past its
                // timeout; an attempt slower than that (a loaded machine) ends the call with
                // the connection error, its outcome unknown.
                let slow_attempt = timeout > 0 && elapsed >= ms(50) && e.is_retryable();
                if !flaky && !slow_attempt {
                    self.fail(format!("{actor_name}: unexpected acquire error: {e}"));
                }
                self.bump(if flaky {
                    "acquire error (flaky client)"
                } else {
                    "acquire error (attempt slower than 50 ms)"
                });
                let queue_lease = match (timeout, direct) {
                    (0, _) => 0,
                    (_, true) => txcoord::DEFAULT_WAITER_LEASE.as_millis() as u64,
                    (_, false) => WAITER_LEASE,
                };
                self.mark_unknown(r, owner, ttl.max(queue_lease));
            }
            Ok(None) => {
                self.note(format!(
                    "  -> not acquired after {} ms",
                    elapsed.as_millis()
                ));
                if !in_time {
                    // a grant that came too late is given back: its release may have failed
                    self.mark_unknown(r, owner, ttl);
                } else if free {
                    self.fail(format!("{actor_name} was refused a free {}", RESOURCES[r]));
                } else if let Some(h) = same {
                    self.fail(format!(
                        "{actor_name} (owner {owner:?}) was refused re-entry while rec {} held \
                         {}",
                        self.recs[h].id, RESOURCES[r]
                    ));
                }
                self.bump(if other.is_some() {
                    "refused: held by another owner"
                } else {
                    "refused"
                });
            }
            Ok(Some(lock)) => {
                if let Some(p) = prev {
                    self.recs[p].current = false;
                }
                let ctx = Ctx {
                    free,
                    other,
                    same,
                    exact_count: true,
                };
                self.granted(a, r, lock, ttl, direct, ctx).await;
            }
        }
    }

    pub(crate) async fn granted(
        &mut self,
        a: usize,
        r: usize,
        lock: DistributedLock,
        ttl: u64,
        direct: bool,
        ctx: Ctx,
    ) {
        let Ctx {
            free,
            other,
            same,
            exact_count,
        } = ctx;
        let value = lock.value().unwrap_or_default();
        let token = lock.fencing_token().unwrap_or(0);
        let count = lock.hold_count();
        let owner = lock.owner_id().map(str::to_string);
        let unknown = self.unknown(r);
        self.note(format!(
            "  -> acquired value {} token {token} hold count {count}",
            short(&value)
        ));
        if token == 0 || token >= 1 << 53 {
            self.fail(format!("token {token} out of range"));
        }
        if let Some((t, o)) = self.res[r].tokens.get(&value).cloned() {
            // a re-entry of a key the model saw granted
            if o.is_none() || o != owner {
                self.fail(format!(
                    "{owner:?} re-entered {} held by {o:?}",
                    RESOURCES[r]
                ));
            }
            if t != token {
                self.fail(format!("re-entry got token {token}, its holder has {t}"));
            }
            let live = self.res[r].live.as_ref().map(|l| l.value.clone());
            if live.as_deref() != Some(value.as_str()) {
                if !unknown {
                    self.fail(format!(
                        "re-entered {} whose key the model knows is gone",
                        short(&value)
                    ));
                }
            } else {
                if exact_count && !unknown && self.regs_exact(r, &value) {
                    let expected = self.regs(r, &value) as u64 + 1;
                    if count != expected {
                        self.fail(format!(
                            "re-entry hold count {count}, the model counts {expected}"
                        ));
                    }
                    self.bump("exact: re-entry hold count");
                }
                let l = self.res[r].live.as_mut().unwrap();
                l.max_ms = l.max_ms.max(ttl);
            }
            self.bump("re-entered");
        } else {
            // a fresh grant (or, after an unknown outcome, a re-entry of a grant nobody saw)
            if token <= self.res[r].max_token {
                self.fail(format!(
                    "token {token} is not larger than the earlier {}",
                    self.res[r].max_token
                ));
            }
            if let Some(i) = other {
                self.fail(format!(
                    "{owner:?} granted {} while rec {} ({:?}) held it",
                    RESOURCES[r], self.recs[i].id, self.recs[i].owner
                ));
            }
            if let Some(i) = same {
                self.fail(format!(
                    "a fresh grant while rec {} of the same owner held it: not a re-entry",
                    self.recs[i].id
                ));
            }
            if count != 1 && !unknown {
                self.fail(format!("fresh grant with hold count {count}"));
            }
            let time: redis::RedisResult<(u64, u64)> =
                redis::cmd("TIME").query_async(&mut self.conn).await;
            let (secs, micros) = time.unwrap_or_else(|e| self.fail(format!("TIME: {e}")));
            let now_us = secs * 1_000_000 + micros;
            if token > now_us + self.res[r].grants + 1_000 {
                self.fail(format!(
                    "token {token} is ahead of the Redis clock {now_us} by more than the grants"
                ));
            }
            let res = &mut self.res[r];
            res.max_token = token;
            res.grants += 1;
            res.tokens.insert(value.clone(), (token, owner.clone()));
            res.live = Some(Live {
                value: value.clone(),
                owner: owner.clone(),
                max_ms: ttl,
                ghost_regs: count != 1,
                ghost_until: None,
            });
            self.bump(if free {
                "exact: free granted"
            } else {
                "granted"
            });
        }
        self.next_id += 1;
        self.recs.push(Rec {
            id: self.next_id,
            actor: a,
            res: r,
            lock,
            direct,
            value,
            owner,
            ttl,
            st: St::Held,
            current: true,
            exempt_until: None,
            overdue_since: None,
        });
    }

    /// Records a release's outcome on record `i`, whose handle was `pre` before it.
    pub(crate) fn released(&mut self, i: usize, pre: LockStatus, result: txcoord::Result<()>) {
        let flaky = self.actors[self.recs[i].actor].flaky;
        match result {
            Ok(()) => {
                let post = self.recs[i].lock.status();
                if post != LockStatus::Released {
                    self.fail(format!(
                        "release of rec {} returned Ok, status {post:?}",
                        self.recs[i].id
                    ));
                }
                self.recs[i].st = match pre {
                    LockStatus::Lost(LossReason::Expired | LossReason::Taken) => St::Released,
                    LockStatus::Held | LockStatus::Releasing if !flaky => St::Released,
                    _ => St::MaybeReleased,
                };
                if let LockStatus::Lost(reason) = pre {
                    self.bump(match reason {
                        LossReason::Taken => "released after loss: taken",
                        LossReason::Expired => "released after loss: expired",
                        LossReason::Deadline => "released after loss: deadline",
                        _ => "released after loss: other",
                    });
                }
            }
            Err(e) => {
                self.note(format!("  -> release error {e}"));
                if !flaky {
                    self.fail(format!("unexpected release error: {e}"));
                }
                // the hold may remain: hold counts of the key are no longer exact
                self.recs[i].st = if self.recs[i].lock.status() == LockStatus::Releasing {
                    St::Releasing
                } else {
                    St::MaybeReleased
                };
            }
        }
    }

    pub(crate) async fn release(&mut self, i: usize, via_manager: bool) {
        let (a, r) = (self.recs[i].actor, self.recs[i].res);
        let target = if via_manager && !self.recs[i].direct {
            // the manager releases its most recent handle on the resource still owing one
            (0..self.recs.len())
                .filter(|&j| {
                    let x = &self.recs[j];
                    x.actor == a && x.res == r && !x.direct && x.lock.status().needs_release()
                })
                .max_by_key(|&j| self.recs[j].id)
                .unwrap_or(i)
        } else {
            i
        };
        let id = self.recs[target].id;
        let pre = self.recs[target].lock.status();
        let via = via_manager && !self.recs[i].direct;
        self.note(format!(
            "{} release rec {id} on {} (status {pre:?}, via manager {via})",
            self.actors[a].name, RESOURCES[r]
        ));
        let result = if via {
            let m = self.actors[a].manager.clone();
            self.bounded("release_lock", m.release_lock(RESOURCES[r]))
                .await
        } else {
            let lock = self.recs[target].lock.clone();
            self.bounded("release", lock.release()).await
        };
        let target = self.rec_index(id);
        self.released(target, pre, result);
        self.bump("released");
    }

    pub(crate) async fn extend(&mut self, i: usize) {
        let rec = &self.recs[i];
        let extra = if self.rng.chance(250) {
            None
        } else {
            Some(self.rng.pick(&EXTENDS))
        };
        let rec_ttl = rec.ttl;
        let eff = extra.unwrap_or(rec_ttl);
        let (id, r, lock, value) = (rec.id, rec.res, rec.lock.clone(), rec.value.clone());
        // a restart wiped the key of a pre-restart handle: it may still say held (§6)
        let exempt = rec.exempt_until.is_some();
        let flaky = self.actors[rec.actor].flaky;
        if let Some(l) = self.res[r].live.as_mut() {
            if l.value == value {
                l.max_ms = l.max_ms.max(eff);
            }
        }
        let before = deadline(&lock);
        self.note(format!(
            "extend rec {id} by {eff} ms (held until {before:?})"
        ));
        let result = self.bounded("extend", lock.extend(extra.map(ms))).await;
        let t1 = Instant::now();
        match result {
            Ok(true) => {
                let left = lock.remaining_validity();
                if left > ms(eff.max(rec_ttl)) {
                    self.fail(format!(
                        "rec {id} extended by {eff} ms (ttl {rec_ttl}) is valid for {left:?}"
                    ));
                }
                self.bump("extended");
            }
            Ok(false) => {
                self.note("  -> not extended".into());
                if before.is_some_and(|d| d > t1) && !exempt {
                    self.fail(format!("extend of rec {id} refused while it was held"));
                }
                self.bump("extend refused (not held)");
            }
            Err(e) => {
                self.note(format!("  -> extend error {e}"));
                // the key may now expire `eff` ms after the script ran: `max_ms` has it
                if !flaky {
                    self.fail(format!("unexpected extend error: {e}"));
                }
            }
        }
    }

    pub(crate) fn crash(&mut self, i: usize) {
        let rec = &self.recs[i];
        let event = format!(
            "crash rec {} ({} on {})",
            rec.id, self.actors[rec.actor].name, RESOURCES[rec.res]
        );
        self.note(event);
        let rec = &self.recs[i];
        rec.lock.test_crash();
        if rec.lock.is_held() {
            self.fail(format!("rec {} is_held after a crash", rec.id));
        }
        self.recs[i].st = St::Crashed;
        if self.recs[i].direct {
            // the crashed process is gone: its actor carries on with a new handle
            let (a, r) = (self.recs[i].actor, self.recs[i].res);
            self.recs[i].current = false;
            let ttl = self.rng.pick(&TTLS);
            let actor = &self.actors[a];
            self.actors[a].direct[r] = new_direct(&actor.client, RESOURCES[r], actor.owner, ttl);
        }
        self.bump("crashed");
    }

    /// Waits for a renewal of record `i` (its deadline moves later) or its loss.
    pub(crate) async fn renew(&mut self, i: usize) {
        let (id, lock, ttl) = (self.recs[i].id, self.recs[i].lock.clone(), self.recs[i].ttl);
        let Some(d0) = deadline(&lock) else { return };
        self.note(format!("wait for a renewal of rec {id}"));
        // A renewal moves the deadline to `send + ttl`: later, or earlier after a re-entry or
        // extend that gave more than the ttl.
        let limit = d0.max(Instant::now() + ms(ttl)) + ms(2 * SLACK);
        loop {
            tokio::time::sleep(ms(3)).await;
            match deadline(&lock) {
                Some(d) if d > d0 + ms(2) || d + ms(2) < d0 => {
                    self.bump("renewal seen");
                    return;
                }
                None => {
                    self.bump("lost while waiting for a renewal");
                    return;
                }
                Some(_) if Instant::now() > limit => {
                    self.fail(format!("rec {id} is_held past its deadline, never renewed"))
                }
                Some(_) => {}
            }
        }
    }

    /// A waiter of another owner queues; the holder releases every hold; the waiter must get
    /// the lock (woken by the release notice).
    /// The holds of `r`'s key when releasing them all frees it for sure: every hold is known,
    /// held, and of a client without faults.
    pub(crate) fn all_holds(&self, r: usize) -> Option<Vec<u64>> {
        let l = self.res[r].live.as_ref()?;
        let holds: Vec<&Rec> = self
            .recs
            .iter()
            .filter(|x| x.res == r && x.value == l.value)
            .collect();
        let ok = !self.unknown(r)
            && !l.ghost_regs
            && !holds.is_empty()
            && holds.iter().all(|x| {
                x.st == St::Held && x.current && !self.actors[x.actor].flaky && x.lock.is_held()
            });
        ok.then(|| holds.iter().map(|x| x.id).collect())
    }
}
