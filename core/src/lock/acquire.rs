// SPDX-License-Identifier: MIT OR Apache-2.0
//! One acquisition: attempts, waiting for a release notice or a timer in between, until the
//! lock is held or the timeout passes (PROTOCOL.md, sections 3 and 4). Whatever way it ends —
//! a reply, a timeout, an error, a dropped future — it leaves no waiter entry and no unseen
//! grant behind.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::handle::{validity, DistributedLock, LockStatus};
use super::keys::LockKeys;
use super::scripts::{self, Acquire, Attempt};
use super::{DEFAULT_DEADLOCK_TIMEOUT, DEFAULT_FALLBACK_POLL, DEFAULT_WAITER_LEASE};
use crate::client::{bump, Client, WaiterRegistration};
use crate::deadlock::probe::ProbeGuard;
use crate::error::{Error, Result};
use crate::protocol::VALUE_PREFIX;
use crate::registry;

/// First and longest pause between checks of a lock held by a client that announces nothing
/// (the seed's own code, plain `SET NX`).
const FOREIGN_POLL_MIN: Duration = Duration::from_millis(10);
const FOREIGN_POLL_MAX: Duration = Duration::from_millis(250);
/// Smallest time given to one attempt when a wait's deadline is close.
const MIN_ATTEMPT_BUDGET: Duration = Duration::from_millis(50);
/// Pause between attempts while Redis is unreachable.
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// Shortest sleep between two attempts of a waiter whose attempts are slow.
const MIN_PAUSE: Duration = Duration::from_millis(10);

/// How an acquisition waits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WaitParams {
    pub timeout: Duration,
    pub fair: bool,
    pub fallback_poll: Duration,
    pub waiter_lease: Duration,
    /// After this long waiting, an acquisition with an owner id probes for deadlocks through
    /// its saga (zero: never).
    pub deadlock_timeout: Duration,
}

impl WaitParams {
    /// One attempt, no waiting.
    pub(crate) fn once() -> Self {
        WaitParams {
            timeout: Duration::ZERO,
            fair: false,
            fallback_poll: DEFAULT_FALLBACK_POLL,
            waiter_lease: DEFAULT_WAITER_LEASE,
            deadlock_timeout: DEFAULT_DEADLOCK_TIMEOUT,
        }
    }
}

/// What an acquisition does after one reply.
enum Next {
    Acquired,
    /// A single attempt found the lock busy.
    NotAcquired,
    /// Attempt again now.
    Again,
    /// Sleep until a notice or this instant, then attempt again.
    Sleep(Instant, Duration),
    /// The timeout passed.
    TimedOut,
}

/// The state of one acquisition between its attempts.
struct Acquisition<'a> {
    lock: &'a DistributedLock,
    wait: WaitParams,
    /// The hold id: the lock's value for a grant without an owner, its prefix with one.
    hold: String,
    /// `""` for a single attempt (it does not queue).
    waiter: String,
    deadline: Instant,
    /// The longest one attempt (or subscription) may take.
    step_budget: Duration,
    cleanup: Cleanup,
    /// An attempt may have taken effect without its reply reaching us.
    ambiguous: bool,
    attempts: u32,
    registration: Option<WaiterRegistration>,
    subscribed_before: bool,
    first_busy: bool,
    foreign_poll: Duration,
    index_due: Instant,
    started: Instant,
    /// This acquisition's deadlock probe, once it waits with an owner id.
    probe: Option<ProbeGuard>,
    /// It found the lock held by another at least once.
    contended: bool,
    /// Its last sleep was ended by a release notice.
    woken_by_notice: bool,
}

impl<'a> Acquisition<'a> {
    fn new(lock: &'a DistributedLock, wait: WaitParams) -> Self {
        let client = lock.client();
        let keys = lock.keys_arc();
        let queue = !wait.timeout.is_zero();
        let (waiter, seq) = if queue {
            client.new_waiter()
        } else {
            (String::new(), 0)
        };
        let op_budget = client.op_budget();
        // A waiter's entry must be refreshed within its lease: no single attempt (or
        // subscription) may take more than a quarter of it.
        let step_budget = if queue {
            op_budget.min(wait.waiter_lease / 4).max(MIN_ATTEMPT_BUDGET)
        } else {
            op_budget
        };
        let start = Instant::now();
        // Registered locally before the first attempt: if the release channel is already
        // subscribed (another local waiter), a notice for this waiter cannot be missed and the
        // first busy reply needs no second attempt.
        let registration = queue.then(|| client.register_waiter(&keys.channel, seq));
        Acquisition {
            lock,
            wait,
            hold: format!("{VALUE_PREFIX}{}", uuid::Uuid::new_v4()),
            deadline: start + wait.timeout,
            step_budget,
            // Armed from the first attempt: a wait dropped while an attempt is in flight may
            // already be queued, or even granted, in Redis.
            cleanup: Cleanup {
                client: client.clone(),
                keys: keys.clone(),
                waiter: queue.then(|| waiter.clone()),
                hold: None,
                owned: lock.owner_id().is_some(),
                armed: true,
            },
            waiter,
            ambiguous: false,
            attempts: 0,
            subscribed_before: queue && client.is_subscribed_hint(&keys.channel),
            registration,
            first_busy: true,
            foreign_poll: FOREIGN_POLL_MIN,
            index_due: start,
            started: start,
            probe: None,
            contended: false,
            woken_by_notice: false,
        }
    }

    fn queued(&self) -> bool {
        !self.waiter.is_empty()
    }

    fn client(&self) -> &'a Client {
        self.lock.client()
    }

    fn keys(&self) -> &'a LockKeys {
        self.lock.keys()
    }

    /// Sends one attempt: the uncontended commands for the first attempt of an acquisition
    /// without an owner id and not in fair mode, the acquire script otherwise.
    async fn attempt(&mut self, sent: Instant) -> Result<Attempt> {
        let client = self.client();
        let budget = if self.queued() {
            self.deadline
                .saturating_duration_since(sent)
                .max(MIN_ATTEMPT_BUDGET)
                .min(self.step_budget)
        } else {
            client.op_budget()
        };
        bump(&client.stats_ref().attempts);
        self.cleanup.hold = Some(self.hold.clone());
        let first = self.attempts == 0;
        self.attempts += 1;
        let ttl_ms = self.lock.ttl().as_millis() as u64;
        if first && self.lock.owner_id().is_none() && !self.wait.fair {
            let granted = client
                .set_nx_with_time(&self.keys().lock, &self.hold, ttl_ms, budget)
                .await?;
            return Ok(match granted {
                Some(token) => Attempt::Acquired {
                    value: self.hold.clone(),
                    token,
                    hold_count: 1,
                    validity_ms: ttl_ms as i64,
                },
                // busy: the script's attempt says by whom, and queues
                None => Attempt::Busy { pttl: -3, hint: 0 },
            });
        }
        Acquire {
            keys: self.keys(),
            hold: &self.hold,
            ttl_ms,
            owner: self.lock.owner_id().unwrap_or(""),
            priority: self.lock.priority(),
            waiter: &self.waiter,
            fair: self.wait.fair,
            lease_ms: self.wait.waiter_lease.as_millis() as u64,
            maybe_queued: !first,
        }
        .run(client, budget)
        .await
    }

    /// Decides what follows a reply.
    async fn next(&mut self, reply: Result<Attempt>, sent: Instant) -> Result<Next> {
        let took = sent.elapsed();
        match reply {
            Ok(Attempt::Acquired {
                value,
                token,
                hold_count,
                validity_ms,
            }) => {
                let ttl_ms = self.lock.ttl().as_millis() as u64;
                let validity_ms = u64::try_from(validity_ms)
                    .ok()
                    .filter(|v| *v > 0)
                    .unwrap_or(ttl_ms);
                if Instant::now() >= sent + validity(validity_ms) {
                    // The grant's reply came after the lease it granted had run out: it cannot
                    // be trusted. While waiting, ask again (the same hold id is recognised,
                    // with the key's current expiry); otherwise give it up.
                    self.ambiguous = true;
                    return Ok(if self.queued() && Instant::now() < self.deadline {
                        Next::Again
                    } else {
                        Next::TimedOut
                    });
                }
                self.cleanup.armed = false;
                self.lock.on_acquired(
                    value,
                    self.hold.clone(),
                    token,
                    hold_count,
                    sent,
                    validity_ms,
                );
                Ok(Next::Acquired)
            }
            Ok(Attempt::Busy { pttl, hint }) => Ok(self.on_busy(pttl, hint, took).await),
            Ok(Attempt::Incompatible { version }) => Err(Error::Protocol {
                key: self.keys().lock.clone(),
                version,
            }),
            Ok(Attempt::Victim { why }) => {
                self.cleanup.waiter = None;
                if !self.ambiguous {
                    self.cleanup.hold = None;
                }
                Err(Error::DeadlockVictim {
                    key: self.keys().lock.clone(),
                    owner: self.lock.owner_id().unwrap_or("").to_string(),
                    cycle: serde_json::from_str(&why).ok().map(Box::new),
                })
            }
            Err(e) if e.is_retryable() => {
                // The attempt may have run even though no reply came: keep the hold so a grant
                // nobody saw is released (or recognised by the next attempt).
                self.ambiguous = true;
                let now = Instant::now();
                if !self.queued() || now >= self.deadline {
                    return Err(e);
                }
                tokio::time::sleep_until((now + RETRY_PAUSE).min(self.deadline)).await;
                Ok(Next::Again)
            }
            Err(e) => Err(e),
        }
    }

    async fn on_busy(&mut self, pttl: i64, hint: i64, took: Duration) -> Next {
        if !std::mem::replace(&mut self.contended, true) {
            bump(&self.client().stats_ref().locks.contended);
        }
        if !self.ambiguous {
            self.cleanup.hold = None;
        }
        if !self.queued() {
            self.cleanup.armed = self.ambiguous;
            return Next::NotAcquired;
        }
        if std::mem::take(&mut self.first_busy) && (!self.subscribed_before || pttl == -3) {
            if !self.subscribed_before {
                self.subscribe(self.step_budget).await;
            }
            // Again at once (the script queues this waiter): a release between the first
            // attempt and the subscription was announced to nobody.
            return Next::Again;
        }
        let now = Instant::now();
        if now >= self.deadline {
            return Next::TimedOut;
        }
        self.probe_deadlocks();
        if now >= self.index_due {
            self.index_due = now + self.wait.waiter_lease / 2;
            registry::note_waiting(
                self.client(),
                self.keys(),
                self.lock.owner_id().unwrap_or(""),
                self.wait.waiter_lease,
            );
        }
        let poll = self.wait.fallback_poll;
        let pause = if pttl == -2 {
            // free, but another waiter's turn (fair mode): until the head's claim on it runs
            // out, should it not take it
            until_expiry(hint, poll)
        } else if hint == 1 {
            until_expiry(pttl, poll)
        } else {
            let p = self.foreign_poll.min(poll);
            self.foreign_poll = (self.foreign_poll * 2).min(FOREIGN_POLL_MAX);
            until_expiry(pttl, p)
        };
        // The next attempt refreshes the waiter entry: it must start early enough to land
        // within the lease, however long attempts take now.
        let pause = pause.min(
            (self.wait.waiter_lease / 2)
                .saturating_sub(took)
                .max(MIN_PAUSE),
        );
        Next::Sleep((now + pause).min(self.deadline), pause)
    }

    /// Once it waits with an owner id, the acquisition has its client probe for deadlocks
    /// through its saga, `deadlock_timeout` after it began and every `deadlock_timeout` then.
    fn probe_deadlocks(&mut self) {
        let timeout = self.wait.deadlock_timeout;
        if self.probe.is_some() || timeout.is_zero() {
            return;
        }
        let Some(owner) = self.lock.owner_id() else {
            return;
        };
        let client = self.client();
        let first = timeout.saturating_sub(self.started.elapsed());
        self.probe = Some(
            client
                .prober()
                .watch(client, owner, &self.keys().lock, first, timeout),
        );
    }

    async fn subscribe(&self, budget: Duration) {
        let channel = &self.keys().channel;
        if let Err(e) = self.client().ensure_subscribed(channel, budget).await {
            // Waiting still works by polling; the next wait tries the subscription again.
            tracing::debug!("txcoord: subscribe to {channel}: {e}");
        }
    }

    /// Sleeps until a release notice for this waiter, or `until`.
    async fn sleep(&mut self, until: Instant, pause: Duration) {
        let Some(registration) = &self.registration else {
            return;
        };
        let client = self.client();
        if !client.is_subscribed_hint(&self.keys().channel) {
            self.subscribe(self.step_budget.min(pause)).await;
        }
        let stats = client.stats_ref();
        bump(&stats.sleeps);
        let by_notice = tokio::select! {
            _ = registration.notify.notified() => true,
            _ = tokio::time::sleep_until(until) => false,
        };
        bump(if by_notice {
            &stats.wake_notified
        } else {
            &stats.wake_timer
        });
        self.woken_by_notice = by_notice;
    }

    /// Counts how the acquisition ended, for the metrics collector.
    fn count_outcome(&self, granted: bool) {
        let locks = &self.client().stats_ref().locks;
        let took = self.started.elapsed();
        if granted {
            locks.acquire.observe(took);
            if self.woken_by_notice {
                bump(&locks.handoffs);
            }
        } else {
            bump(&locks.not_acquired);
        }
        if self.contended && self.queued() {
            locks.wait.observe(took);
        }
    }

    /// The wait ended without the lock: leave the queue (and give back a grant that came too
    /// late) before answering, so no entry outlives the call.
    async fn give_up(mut self) {
        drop(self.registration.take());
        self.cleanup.armed = false;
        let budget = self.client().op_budget();
        self.cleanup.run(budget).await;
    }
}

impl DistributedLock {
    pub(crate) async fn acquire_with(&self, wait: WaitParams) -> Result<bool> {
        match self.status() {
            // As the seed's SET NX on a key this instance holds: no second hold on one handle.
            LockStatus::Held => return Ok(false),
            // Finish the release this handle still owes before it takes a new hold: one not
            // confirmed, or a lost one whose hold may still be recorded (another hold of the
            // same owner kept the key alive).
            LockStatus::Releasing | LockStatus::Lost(_) => self.release().await?,
            _ => {}
        }
        let mut acquisition = Acquisition::new(self, wait);
        loop {
            let sent = Instant::now();
            let reply = acquisition.attempt(sent).await;
            match acquisition.next(reply, sent).await? {
                Next::Acquired => {
                    acquisition.count_outcome(true);
                    return Ok(true);
                }
                Next::NotAcquired => {
                    acquisition.count_outcome(false);
                    return Ok(false);
                }
                Next::Again => {}
                Next::Sleep(until, pause) => acquisition.sleep(until, pause).await,
                Next::TimedOut => break,
            }
        }
        acquisition.count_outcome(false);
        acquisition.give_up().await;
        Ok(false)
    }
}

/// Sleep length while a txcoord holder has `pttl` ms left: until just after its expiry, but no
/// longer than `poll`.
fn until_expiry(pttl: i64, poll: Duration) -> Duration {
    if pttl >= 0 {
        Duration::from_millis(pttl as u64 + 1).min(poll)
    } else {
        poll
    }
}

/// What an acquisition that ends without the lock must undo: its waiter entry, and a hold
/// whose grant (or re-entry) reply never arrived or came too late.
struct Cleanup {
    client: Client,
    keys: Arc<LockKeys>,
    waiter: Option<String>,
    /// The attempt's hold id: the hold it may have made.
    hold: Option<String>,
    owned: bool,
    armed: bool,
}

impl Cleanup {
    async fn run(&mut self, budget: Duration) {
        undo(
            &self.client,
            &self.keys,
            self.waiter.take(),
            self.hold.take(),
            self.owned,
            budget,
        )
        .await;
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !self.armed || (self.waiter.is_none() && self.hold.is_none()) {
            return;
        }
        let client = self.client.clone();
        let keys = self.keys.clone();
        let waiter = self.waiter.take();
        let hold = self.hold.take();
        let owned = self.owned;
        self.client.spawn(async move {
            let budget = client.op_budget();
            undo(&client, &keys, waiter, hold, owned, budget).await;
        });
    }
}

async fn undo(
    client: &Client,
    keys: &LockKeys,
    waiter: Option<String>,
    hold: Option<String>,
    owned: bool,
    budget: Duration,
) {
    if let Some(w) = waiter {
        if let Err(e) = scripts::cancel(client, keys, &w, budget).await {
            tracing::debug!("txcoord: cancel waiter {w} of {}: {e}", keys.lock);
        }
    }
    if let Some(hold) = hold {
        // A fresh grant stored the hold id in the key's value; a re-entry recorded it as a hold
        // of the owner's lock, whose value this attempt may never have seen.
        if let Err(e) = scripts::release(client, keys, "", &hold, owned, budget).await {
            tracing::debug!("txcoord: release unconfirmed grant of {}: {e}", keys.lock);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_end_at_expiry_or_poll() {
        let poll = Duration::from_millis(1000);
        assert_eq!(until_expiry(20, poll), Duration::from_millis(21));
        assert_eq!(until_expiry(5000, poll), poll);
        assert_eq!(until_expiry(-1, poll), poll);
    }
}
