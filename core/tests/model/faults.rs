// SPDX-License-Identifier: MIT OR Apache-2.0
//! The rare faults: lost replies, DEBUG SLEEP, late grants, starved renewals, restarts.
use std::time::Instant;

use crate::common::*;
use txcoord::{AcquireOptions, LockStatus, LossReason};

use crate::world::*;

impl World {
    /// An operation of a flaky actor whose reply is lost: dropped by the proxy (the command
    /// runs), or delayed by DEBUG SLEEP past the client's response timeout.
    pub(crate) async fn lost_reply(&mut self, stall: bool) {
        let flaky: Vec<usize> = (0..self.actors.len())
            .filter(|&a| self.actors[a].flaky)
            .collect();
        let a = self.rng.pick(&flaky);
        let owner = self.actors[a].owner;
        let held: Vec<usize> = (0..self.recs.len())
            .filter(|&i| {
                let x = &self.recs[i];
                x.actor == a && x.st == St::Held && x.lock.status() == LockStatus::Held
            })
            .collect();
        let mut kind = self.rng.below(4);
        if kind >= 2 && held.is_empty() {
            kind -= 2;
        }
        let r = if kind >= 2 {
            self.recs[held[0]].res
        } else {
            self.rng.index(RESOURCES.len())
        };
        if kind == 0 && !stall && self.rng.chance(500) {
            kind = 1; // the retry after a lost reply, where it can be predicted
        }
        // Waiting with retries after a dropped reply: predictable when the resource is free or
        // held by this owner (the retry must find its own grant or re-entry).
        let reentry = self
            .held_on(r)
            .iter()
            .any(|(i, d)| same_owner(&self.recs[*i].owner, owner) && *d > Instant::now() + ms(200));
        let predictable = !stall
            && kind == 1
            && !self.unknown(r)
            && (self.is_free(r) || (reentry && self.regs_exact(r, self.live_value(r))));
        if kind == 1 && !predictable {
            kind = 0;
        }
        let expected_count = if self.is_free(r) {
            1
        } else {
            self.regs(r, self.live_value(r)) as u64 + 1
        };
        self.note(format!(
            "{} lost reply (stall {stall}) kind {kind} on {} (predictable {predictable})",
            self.actors[a].name, RESOURCES[r]
        ));
        let sleeper = stall.then(|| {
            let secs = 0.3 + self.rng.below(300) as f64 / 1_000.0;
            tokio::task::block_in_place(|| debug_sleep(&self.server, secs))
        });
        if !stall {
            self.proxy.blackhole_down(true);
        }
        let m = self.actors[a].manager.clone();
        let ttl = self.rng.pick(&TTLS);
        match kind {
            0 => {
                let opts = AcquireOptions::new().set_ttl(ms(ttl)).set_timeout(ms(0));
                let got = self
                    .bounded("acquire", m.acquire_lock_with(RESOURCES[r], opts))
                    .await;
                self.end_fault(sleeper).await;
                self.note(format!("  -> {:?}", got.as_ref().map(|l| l.is_some())));
                match got {
                    Ok(Some(lock)) => self.granted(a, r, lock, ttl, false, Ctx::default()).await,
                    Ok(None) => {}
                    Err(_) => {
                        self.bump("lost reply: acquire");
                        self.mark_unknown(r, owner, ttl);
                    }
                }
            }
            1 => {
                let client = self.actors[a].client.clone();
                let attempts = client.stats().attempts;
                let opts = AcquireOptions::new()
                    .set_ttl(ms(ttl))
                    .set_timeout(ms(3_000))
                    .set_fair(self.rng.chance(300));
                let task =
                    tokio::spawn(async move { m.acquire_lock_with(RESOURCES[r], opts).await });
                let limit = Instant::now() + ms(2_000);
                while client.stats().attempts == attempts && Instant::now() < limit {
                    tokio::time::sleep(ms(1)).await;
                }
                // the attempt reached Redis and ran; its reply went nowhere
                tokio::time::sleep(ms(30)).await;
                self.end_fault(None).await;
                let got = self.bounded("acquire", task).await.expect("acquire task");
                // a re-entry is predictable if the holder kept the key all along
                let kept = expected_count == 1
                    || self.held_on(r).iter().any(|(i, _)| {
                        same_owner(&self.recs[*i].owner, owner)
                            && self.recs[*i].value == self.live_value(r)
                    });
                match got {
                    Ok(Some(lock)) if !kept => {
                        self.granted(a, r, lock, ttl, false, Ctx::default()).await;
                        self.mark_unknown(r, owner, ttl.max(WAITER_LEASE));
                    }
                    Ok(Some(lock)) => {
                        if lock.hold_count() != expected_count {
                            self.fail(format!(
                                "after a lost reply the retry got hold count {}, expected \
                                 {expected_count}",
                                lock.hold_count()
                            ));
                        }
                        self.bump("exact: lost reply recognised by the retry");
                        self.granted(a, r, lock, ttl, false, Ctx::default()).await;
                    }
                    other if kept => {
                        self.fail(format!(
                        "after a lost reply the waiting acquire of a {} resource gave {other:?}",
                        if expected_count == 1 { "free" } else { "same-owner" }
                    ))
                    }
                    _ => self.mark_unknown(r, owner, ttl.max(WAITER_LEASE)),
                }
            }
            _ => {
                let i = held[0];
                let lock = self.recs[i].lock.clone();
                if kind == 2 {
                    let extra = self.rng.pick(&EXTENDS);
                    if let Some(l) = self.res[r].live.as_mut() {
                        l.max_ms = l.max_ms.max(extra);
                    }
                    let got = self.bounded("extend", lock.extend(Some(ms(extra)))).await;
                    self.end_fault(sleeper).await;
                    self.note(format!(
                        "  -> extend rec {} by {extra}: {got:?}",
                        self.recs[i].id
                    ));
                    self.bump("lost reply: extend");
                } else {
                    let pre = lock.status();
                    let got = self.bounded("release", lock.release()).await;
                    self.end_fault(sleeper).await;
                    self.note(format!("  -> release rec {}: {got:?}", self.recs[i].id));
                    self.released(i, pre, got);
                    self.bump("lost reply: release");
                }
            }
        }
    }

    /// An extend queues for the handle's operation lock just as its renewal falls due (the
    /// renewal queues behind it): afterwards the handle is held and renewed as before.
    pub(crate) async fn extend_meets_renewal(&mut self) {
        let held: Vec<usize> = (0..self.recs.len())
            .filter(|&i| {
                let x = &self.recs[i];
                x.current && x.st == St::Held && x.ttl <= 1_000 && !self.actors[x.actor].flaky
            })
            .filter(|&i| self.recs[i].lock.is_held())
            .collect();
        if held.is_empty() {
            return;
        }
        let i = self.rng.pick(&held);
        let (id, ttl, lock) = (self.recs[i].id, self.recs[i].ttl, self.recs[i].lock.clone());
        self.note(format!("extend of rec {id} while its renewal falls due"));
        let guard = lock.test_hold_operation_lock().await;
        let l2 = lock.clone();
        let extend = tokio::spawn(async move { l2.extend(None).await });
        tokio::time::sleep(ms(ttl / 3 + 20)).await;
        drop(guard);
        let got = self.bounded("extend", extend).await.expect("extend task");
        match got {
            Ok(true) => self.bump("extend met a due renewal"),
            Ok(false) if !lock.is_held() => self.bump("extend refused (not held)"),
            other => self.fail(format!("extend of held rec {id} gave {other:?}")),
        }
        // the renewal that waited has run (the operation lock is fair)
        drop(lock.test_hold_operation_lock().await);
        if let Some(d0) = deadline(&lock) {
            let limit = d0 + ms(SLACK);
            loop {
                tokio::time::sleep(ms(3)).await;
                match deadline(&lock) {
                    Some(d) if d > d0 + ms(2) => break,
                    None => break,
                    Some(_) if Instant::now() > limit => {
                        self.fail(format!("rec {id} is no longer renewed after the race"))
                    }
                    Some(_) => {}
                }
            }
        }
    }

    /// A normal client's grant whose reply arrives after the lease it grants (DEBUG SLEEP):
    /// not trusted, given back before the call returns.
    pub(crate) async fn late_grant(&mut self) {
        let normal: Vec<usize> = (0..self.actors.len())
            .filter(|&a| !self.actors[a].flaky)
            .collect();
        let a = self.rng.pick(&normal);
        let free: Vec<usize> = (0..self.res.len()).filter(|&r| self.is_free(r)).collect();
        if free.is_empty() {
            return;
        }
        let r = self.rng.pick(&free);
        let ttl = 300;
        let secs = 0.6 + self.rng.below(300) as f64 / 1_000.0;
        self.note(format!(
            "{} acquire the free {} ttl {ttl} during DEBUG SLEEP {secs}",
            self.actors[a].name, RESOURCES[r]
        ));
        let sleeper = tokio::task::block_in_place(|| debug_sleep(&self.server, secs));
        let m = self.actors[a].manager.clone();
        let opts = AcquireOptions::new().set_ttl(ms(ttl)).set_timeout(ms(0));
        let t0 = Instant::now();
        let got = self
            .bounded("acquire", m.acquire_lock_with(RESOURCES[r], opts))
            .await;
        let elapsed = t0.elapsed();
        self.end_fault(Some(sleeper)).await;
        self.note(format!(
            "  -> {:?} after {} ms",
            got.as_ref().map(|l| l.is_some()),
            elapsed.as_millis()
        ));
        let key = self.res[r].key.clone();
        let now: redis::RedisResult<Option<String>> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut self.conn)
            .await;
        let now = now.unwrap_or_else(|e| self.fail(format!("GET: {e}")));
        match got {
            Ok(Some(lock)) => {
                // (measured around the call: up to scheduling delays later than inside it)
                if elapsed > validity(ttl) + ms(100) {
                    self.fail(format!(
                        "a grant whose reply came after {} ms was trusted (ttl {ttl})",
                        elapsed.as_millis()
                    ));
                }
                let ctx = Ctx {
                    free: true,
                    ..Ctx::default()
                };
                self.granted(a, r, lock, ttl, false, ctx).await;
            }
            Ok(None) if elapsed >= validity(ttl) => {
                if let Some(v) = now {
                    self.fail(format!(
                        "a late grant was not given back: {key} = {}",
                        short(&v)
                    ));
                }
                self.bump("exact: late grant given back");
            }
            Ok(None) => self.fail(format!("a free {} was refused", RESOURCES[r])),
            Err(e) => self.fail(format!("unexpected acquire error: {e}")),
        }
    }

    /// The process of a holder is paused past its deadline (its renewal waits for the
    /// operation lock): the handle reports the loss, `deadline` while the key is still its
    /// value, and half the time it acquires again at once.
    pub(crate) async fn starved_renewal(&mut self) {
        let held: Vec<usize> = (0..self.recs.len())
            .filter(|&i| {
                let x = &self.recs[i];
                x.current && x.st == St::Held && !self.actors[x.actor].flaky
            })
            .filter(|&i| {
                let left = self.recs[i].lock.remaining_validity();
                !left.is_zero() && left < ms(600)
            })
            .collect();
        if held.is_empty() {
            return;
        }
        // rather an owned direct handle whose key other holds share
        let shared: Vec<usize> = held
            .iter()
            .copied()
            .filter(|&i| {
                let x = &self.recs[i];
                x.direct && x.owner.is_some() && self.regs(x.res, &x.value) >= 2
            })
            .collect();
        let i = if shared.is_empty() || self.rng.chance(300) {
            self.rng.pick(&held)
        } else {
            self.rng.pick(&shared)
        };
        let rec = &self.recs[i];
        let (id, a, r) = (rec.id, rec.actor, rec.res);
        let (lock, value, direct) = (rec.lock.clone(), rec.value.clone(), rec.direct);
        {
            let paused = lock.test_hold_operation_lock().await;
            let left = lock.remaining_validity();
            self.note(format!("rec {id} paused past its deadline ({left:?} left)"));
            tokio::time::sleep(left + ms(100)).await;
            drop(paused);
        }
        let limit = Instant::now() + ms(5_000);
        while lock.status() == LockStatus::Held {
            if Instant::now() > limit {
                self.fail(format!("rec {id} passed its deadline and reports no loss"));
            }
            tokio::time::sleep(ms(2)).await;
        }
        let status = lock.status();
        // another hold of the key was held all along: the key still is this handle's value
        let kept = self
            .held_on(r)
            .iter()
            .any(|(j, _)| self.recs[*j].value == value);
        self.note(format!(
            "  -> {status:?} (key kept by another hold: {kept})"
        ));
        if kept && status != LockStatus::Lost(LossReason::Deadline) {
            self.fail(format!(
                "rec {id} lost while its key still held its value: {status:?}, expected \
                 Lost(Deadline)"
            ));
        }
        self.bump(match status {
            LockStatus::Lost(LossReason::Deadline) => "paused holder: lost (deadline)",
            LockStatus::Lost(LossReason::Expired) => "paused holder: lost (expired)",
            LockStatus::Lost(LossReason::Taken) => "paused holder: lost (taken)",
            _ => "paused holder: other",
        });
        if direct && self.recs[self.rec_index(id)].current && self.rng.chance(500) {
            self.acquire(a, r, 0, false, true).await;
        }
    }

    pub(crate) fn live_value(&self, r: usize) -> &str {
        self.res[r].live.as_ref().map_or("", |l| l.value.as_str())
    }

    pub(crate) async fn end_fault(&mut self, sleeper: Option<std::thread::JoinHandle<()>>) {
        match sleeper {
            Some(s) => {
                let joined = tokio::task::spawn_blocking(move || s.join()).await;
                if !matches!(joined, Ok(Ok(()))) {
                    self.fail("DEBUG SLEEP failed".into());
                }
            }
            None => {
                // cut the connections before replies flow again: a connection that lost a reply
                // would hand the next reply to the wrong command
                self.proxy.reset_all();
                self.proxy.blackhole_down(false);
            }
        }
    }

    /// Redis restarts without persistence: every key is gone.
    pub(crate) async fn restart(&mut self) {
        self.note("restart redis-server without persistence".into());
        tokio::task::block_in_place(|| self.server.kill());
        let killed = Instant::now();
        for i in 0..self.recs.len() {
            let rec = &self.recs[i];
            if rec.st == St::Held && rec.current && rec.lock.status() == LockStatus::Held {
                let lease = self.res[rec.res]
                    .live
                    .as_ref()
                    .filter(|l| l.value == rec.value)
                    .map_or(MAX_LEASE, |l| l.max_ms);
                self.recs[i].exempt_until = Some(killed + ms(lease));
            }
        }
        tokio::task::block_in_place(|| self.server.restart());
        for res in self.res.iter_mut() {
            res.live = None;
            res.unknown_until = None;
        }
        self.conn = check_connection(&self.server).await;
        for a in 0..self.actors.len() {
            let client = self.actors[a].client.clone();
            let mut ok = false;
            for _ in 0..100 {
                if client.ping().await.is_ok() {
                    ok = true;
                    break;
                }
                tokio::time::sleep(ms(50)).await;
            }
            if !ok {
                self.fail(format!("{} never reconnected", self.actors[a].name));
            }
        }
        self.bump("restarts");
    }
}
