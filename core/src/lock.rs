// SPDX-License-Identifier: MIT OR Apache-2.0
//! `DistributedLock`: one lock key, acquired with the protocol's scripts, renewed in the
//! background, with a fencing token and a lost-lock signal.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::client::{bump, Client, WaiterRegistration};
use crate::error::{Error, LossReason, Result};
use crate::keys::LockKeys;
use crate::protocol::{self, Attempt, PUBLISH, VALUE_PREFIX};
use crate::renewal::{Renewable, Ticket};
use crate::validate;

/// The seed's default lock TTL: 30 000 ms.
pub const DEFAULT_TTL: Duration = Duration::from_millis(30_000);
/// The seed's default acquire timeout: 10 000 ms.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(10_000);
/// Longest a waiter sleeps between two checks of a lock whose txcoord holder will announce its
/// release (a safety net for lost notifications).
pub const DEFAULT_FALLBACK_POLL: Duration = Duration::from_millis(1_000);
/// How long a waiter's registry entry lives without being refreshed; a crashed waiter's entry
/// disappears after this.
pub const DEFAULT_WAITER_LEASE: Duration = Duration::from_millis(5_000);
/// First and longest pause between checks of a lock held by a client that announces nothing
/// (the seed's own code, plain `SET NX`).
const FOREIGN_POLL_MIN: Duration = Duration::from_millis(10);
const FOREIGN_POLL_MAX: Duration = Duration::from_millis(250);
/// Smallest time given to one attempt when a wait's deadline is close.
const MIN_ATTEMPT_BUDGET: Duration = Duration::from_millis(50);
/// Pause between attempts while Redis is unreachable.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// The part of a lease the holder may count on: the TTL less a clock-drift margin of 1 % + 2 ms.
pub(crate) fn validity(ms: u64) -> Duration {
    Duration::from_millis(ms.saturating_sub(ms / 100 + 2))
}

/// Where a lock handle stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LockStatus {
    /// Never acquired.
    Idle,
    /// Held (as far as this process knows; see [`DistributedLock::is_held`] for the deadline).
    Held,
    /// A release was started and not confirmed by Redis (it failed, or its future was
    /// dropped): not held any more, and `release()` sends it again.
    Releasing,
    /// Released by its holder.
    Released,
    /// Lost while held.
    Lost(LossReason),
}

impl LockStatus {
    /// The stable string every binding reports: `idle`, `held`, `releasing`, `released`, `lost`.
    pub const fn as_str(self) -> &'static str {
        match self {
            LockStatus::Idle => "idle",
            LockStatus::Held => "held",
            LockStatus::Releasing => "releasing",
            LockStatus::Released => "released",
            LockStatus::Lost(_) => "lost",
        }
    }

    /// Whether a release may still have something to do in Redis (held, lost while the key may
    /// still exist, or a release not yet confirmed).
    pub const fn needs_release(self) -> bool {
        matches!(
            self,
            LockStatus::Held | LockStatus::Lost(_) | LockStatus::Releasing
        )
    }
}

/// Watches one lock for loss without holding it (see [`DistributedLock::loss_watch`]).
#[derive(Debug, Clone)]
pub struct LossWatch {
    rx: watch::Receiver<LockStatus>,
}

impl LossWatch {
    /// Resolves when the lock stops being held: `Some(reason)` if it was lost, `None` if it was
    /// released, never acquired, or dropped.
    pub async fn lost(&mut self) -> Option<LossReason> {
        loop {
            let status = *self.rx.borrow_and_update();
            match status {
                LockStatus::Held => {}
                LockStatus::Lost(r) => return Some(r),
                LockStatus::Idle | LockStatus::Releasing | LockStatus::Released => return None,
            }
            if self.rx.changed().await.is_err() {
                return None;
            }
        }
    }
}

/// Settings of one lock. Defaults: ttl 30 000 ms, no owner, priority 0.
#[derive(Debug, Clone)]
pub struct LockOptions {
    ttl: Duration,
    owner_id: Option<String>,
    priority: i32,
}

impl Default for LockOptions {
    fn default() -> Self {
        LockOptions {
            ttl: DEFAULT_TTL,
            owner_id: None,
            priority: 0,
        }
    }
}

impl LockOptions {
    /// Options with every default.
    pub fn new() -> Self {
        Self::default()
    }
    /// The lock's TTL (whole milliseconds, 1 ms to 2^31−1 ms); renewed every ttl/3.
    pub fn set_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }
    /// An explicit owner id (a saga id): acquisitions with the same owner re-enter the lock.
    pub fn set_owner_id(mut self, owner_id: impl Into<String>) -> Self {
        self.owner_id = Some(owner_id.into());
        self
    }
    /// The priority recorded for the deadlock detector (lowest is aborted first).
    pub fn set_priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }
}

/// How an acquisition waits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WaitParams {
    pub timeout: Duration,
    pub fair: bool,
    pub fallback_poll: Duration,
    pub waiter_lease: Duration,
}

impl WaitParams {
    pub(crate) fn once() -> Self {
        WaitParams {
            timeout: Duration::ZERO,
            fair: false,
            fallback_poll: DEFAULT_FALLBACK_POLL,
            waiter_lease: DEFAULT_WAITER_LEASE,
        }
    }
}

struct State {
    status: LockStatus,
    /// Bumped at each acquisition, so a renewal task of an earlier one stops.
    generation: u64,
    value: Option<String>,
    /// The hold this handle made: the value of its own acquisition (equal to `value` unless
    /// it re-entered a lock its owner already held).
    hold_id: Option<String>,
    token: Option<u64>,
    hold_count: u64,
    deadline: Instant,
    next_renewal: Instant,
    /// The scheduled renewal, if any (see `renewal.rs`). Only the renewal holding this very
    /// ticket may run; one started from an older ticket finds it replaced and stops.
    ticket: Option<Ticket>,
    /// Set by the test hook that simulates a crashed process: nothing is sent on drop.
    crashed: bool,
}

struct LockInner {
    client: Client,
    keys: Arc<LockKeys>,
    ttl: Duration,
    owner: String,
    priority: i32,
    // A std mutex: short critical sections, never held across an await.
    state: Mutex<State>,
    // A tokio mutex: serialises the commands that move the expiry (renew, extend, release), so
    // the local deadline always matches the last expiry Redis applied. Held across awaits.
    op_lock: tokio::sync::Mutex<()>,
    status_tx: watch::Sender<LockStatus>,
}

/// A lock on one Redis key, wire-compatible with the seed's `DistributedLock`.
///
/// ## Behavior
///
/// - The lock key holds a random UUID while held; a plain `SET key value NX PX ttl` (what the
///   seed's code does) excludes txcoord, and txcoord excludes it.
/// - While held, the lock is renewed every ttl/3 by a background task that never overlaps
///   itself; retryable errors are retried until the local deadline (acquisition time + TTL −
///   drift, on the monotonic clock). The task stops before a release is sent.
/// - Loss is signalled by [`DistributedLock::lost`] with a [`LossReason`].
/// - Each acquisition gets a fencing token that strictly increases per lock key.
/// - Cloning is cheap and clones share the lock. When the last clone is dropped while the lock
///   is held, renewal stops and a release is sent in the background.
#[derive(Clone)]
pub struct DistributedLock {
    inner: Arc<LockInner>,
}

impl std::fmt::Debug for DistributedLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DistributedLock")
            .field("key", &self.inner.keys.lock)
            .field("status", &self.status())
            .field("fencing_token", &self.fencing_token())
            .finish()
    }
}

impl DistributedLock {
    /// The seed's `new DistributedLock(redis, lockKey, ttl)`: a lock on `lock_key` (the client's
    /// key prefix is put before it).
    pub fn new(client: &Client, lock_key: &str, ttl: Duration) -> Result<Self> {
        Self::with_options(client, lock_key, LockOptions::default().set_ttl(ttl))
    }

    /// A lock on `lock_key` with options.
    pub fn with_options(client: &Client, lock_key: &str, options: LockOptions) -> Result<Self> {
        let keys = LockKeys::new(client.key_prefix(), lock_key, "lock_key")?;
        Self::from_keys(client, Arc::new(keys), options)
    }

    pub(crate) fn from_keys(
        client: &Client,
        keys: Arc<LockKeys>,
        options: LockOptions,
    ) -> Result<Self> {
        let ttl = validate::duration("ttl", options.ttl, 1, validate::MAX_MS)?;
        if let Some(owner) = &options.owner_id {
            validate::owner_id_str("owner_id", owner)?;
        }
        let now = Instant::now();
        let (status_tx, _) = watch::channel(LockStatus::Idle);
        Ok(DistributedLock {
            inner: Arc::new(LockInner {
                client: client.clone(),
                keys,
                ttl,
                owner: options.owner_id.unwrap_or_default(),
                priority: options.priority,
                state: Mutex::new(State {
                    status: LockStatus::Idle,
                    generation: 0,
                    value: None,
                    hold_id: None,
                    token: None,
                    hold_count: 0,
                    deadline: now,
                    next_renewal: now,
                    ticket: None,
                    crashed: false,
                }),
                op_lock: tokio::sync::Mutex::new(()),
                status_tx,
            }),
        })
    }

    /// Whether `other` is a clone of this very handle.
    pub(crate) fn same_handle(&self, other: &DistributedLock) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The client this lock uses.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The full lock key (with the client's prefix).
    pub fn key(&self) -> &str {
        &self.inner.keys.lock
    }

    /// The keys and channel this lock uses (PROTOCOL.md).
    pub fn keys(&self) -> &LockKeys {
        &self.inner.keys
    }

    /// The TTL given at construction.
    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    /// The explicit owner id, if any.
    pub fn owner_id(&self) -> Option<&str> {
        (!self.inner.owner.is_empty()).then_some(self.inner.owner.as_str())
    }

    /// The priority recorded in the registry.
    pub fn priority(&self) -> i32 {
        self.inner.priority
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where this handle stands.
    pub fn status(&self) -> LockStatus {
        self.state().status
    }

    /// Whether the lock is held and its local deadline has not passed. A process that was paused
    /// past its lease sees `false` here before it can do anything else with the lock.
    pub fn is_held(&self) -> bool {
        let st = self.state();
        st.status == LockStatus::Held && Instant::now() < st.deadline
    }

    /// How much longer the lock is safely held (zero when it is not).
    pub fn remaining_validity(&self) -> Duration {
        let st = self.state();
        if st.status == LockStatus::Held {
            st.deadline.saturating_duration_since(Instant::now())
        } else {
            Duration::ZERO
        }
    }

    /// The fencing token of the last acquisition (kept after release), `None` before the first.
    /// Tokens strictly increase per lock key and stay below 2^53.
    pub fn fencing_token(&self) -> Option<u64> {
        self.state().token
    }

    /// The value stored in the lock key by the last acquisition.
    pub fn value(&self) -> Option<String> {
        self.state().value.clone()
    }

    /// How many holds the owner had when this handle acquired (1 unless re-entered).
    pub fn hold_count(&self) -> u64 {
        self.state().hold_count
    }

    /// Why the lock was lost, if it was.
    pub fn loss_reason(&self) -> Option<LossReason> {
        match self.status() {
            LockStatus::Lost(r) => Some(r),
            _ => None,
        }
    }

    /// A watcher of this lock's loss that does not keep the lock alive (bindings use it for
    /// `on_lost` callbacks and JS `'lost'` events).
    pub fn loss_watch(&self) -> LossWatch {
        LossWatch {
            rx: self.inner.status_tx.subscribe(),
        }
    }

    /// Resolves when the lock stops being held: `Some(reason)` if it was lost, `None` if it was
    /// released (or was never acquired).
    pub async fn lost(&self) -> Option<LossReason> {
        let mut rx = self.inner.status_tx.subscribe();
        loop {
            let status = *rx.borrow_and_update();
            match status {
                LockStatus::Held => {}
                LockStatus::Lost(r) => return Some(r),
                LockStatus::Idle | LockStatus::Releasing | LockStatus::Released => return None,
            }
            if rx.changed().await.is_err() {
                return None;
            }
        }
    }

    /// The seed's `acquire()`: one attempt; `true` if the lock is now held by this handle.
    pub async fn acquire(&self) -> Result<bool> {
        self.acquire_with(WaitParams::once()).await
    }

    /// Waits up to `timeout` for the lock (woken by release notifications). `false` on timeout.
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<bool> {
        let timeout = validate::duration("timeout", timeout, 0, validate::MAX_MS)?;
        self.acquire_with(WaitParams {
            timeout,
            ..WaitParams::once()
        })
        .await
    }

    pub(crate) async fn acquire_with(&self, wait: WaitParams) -> Result<bool> {
        match self.status() {
            // As the seed's SET NX on a key this instance holds: no second hold on one handle.
            LockStatus::Held => return Ok(false),
            // Finish the release this handle still owes before it takes a new hold.
            LockStatus::Releasing => self.release().await?,
            _ => {}
        }
        let client = &self.inner.client;
        let keys = &self.inner.keys;
        let ttl_ms = self.inner.ttl.as_millis() as u64;
        // The hold id: the lock's value for an anonymous grant, its prefix for an owned one.
        let value = format!("{VALUE_PREFIX}{}", uuid::Uuid::new_v4());
        let queue = !wait.timeout.is_zero();
        let (waiter_id, seq) = if queue {
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
        let deadline = start + wait.timeout;
        let ttl_arg = ttl_ms.to_string();
        let prio_arg = self.inner.priority.to_string();
        let lease_arg = (wait.waiter_lease.as_millis() as u64).to_string();
        let fair_arg = if wait.fair { "1" } else { "0" };
        let owned = !self.inner.owner.is_empty();

        // Armed from the first attempt: a wait dropped while an attempt is in flight may already
        // be queued, or even granted, in Redis.
        let mut cleanup = Cleanup {
            client: client.clone(),
            keys: keys.clone(),
            waiter_id: queue.then(|| waiter_id.clone()),
            hold: None,
            owned,
            armed: true,
        };
        let mut ambiguous = false;
        let mut attempts: u32 = 0;
        // Registered locally before the first attempt: if the release channel is already
        // subscribed (another local waiter), a notice for this waiter cannot be missed and the
        // first busy reply needs no second attempt.
        let registration: Option<WaiterRegistration> =
            queue.then(|| client.register_waiter(&keys.channel, seq));
        let subscribed_before = queue && client.is_subscribed_hint(&keys.channel);
        let mut first_busy = true;
        let mut foreign_poll = FOREIGN_POLL_MIN;
        let mut index_due = start;

        loop {
            let sent = Instant::now();
            let budget = if queue {
                deadline
                    .saturating_duration_since(sent)
                    .max(MIN_ATTEMPT_BUDGET)
                    .min(step_budget)
            } else {
                op_budget
            };
            bump(&client.stats_ref().attempts);
            cleanup.hold = Some(value.clone());
            let attempts_sent = attempts;
            attempts += 1;
            // The uncontended path of an anonymous, non-fair acquisition: a plain `SET NX PX`
            // and `TIME` in one round trip, no script (PROTOCOL.md, section 3).
            let fast = attempts_sent == 0 && !owned && !wait.fair;
            let reply = if fast {
                client
                    .set_nx_with_time(&keys.lock, &value, ttl_ms, budget)
                    .await
                    .map(|granted| match granted {
                        Some(token) => Attempt::Acquired {
                            value: value.clone(),
                            token,
                            hold_count: 1,
                            validity_ms: ttl_ms as i64,
                        },
                        // busy: the script's attempt says by whom, and queues
                        None => Attempt::Busy { pttl: -3, hint: 0 },
                    })
            } else {
                client
                    .run_script::<redis::Value>(
                        &protocol::ACQUIRE,
                        &keys.all(),
                        &[
                            &value,
                            &ttl_arg,
                            &self.inner.owner,
                            &prio_arg,
                            &waiter_id,
                            fair_arg,
                            &lease_arg,
                            &keys.channel,
                            PUBLISH,
                            if attempts_sent > 0 { "1" } else { "0" },
                        ],
                        budget,
                    )
                    .await
                    .and_then(|v| protocol::parse_attempt(&v))
            };
            let took = sent.elapsed();
            match reply {
                Ok(Attempt::Acquired {
                    value: lock_value,
                    token,
                    hold_count,
                    validity_ms,
                }) => {
                    let validity_ms = if validity_ms > 0 {
                        validity_ms as u64
                    } else {
                        ttl_ms
                    };
                    if Instant::now() >= sent + validity(validity_ms) {
                        // The grant's reply came after the lease it granted had run out: it
                        // cannot be trusted. While waiting, ask again (the same attempt value
                        // is recognised, with the key's current expiry); otherwise give it up.
                        ambiguous = true;
                        if queue && Instant::now() < deadline {
                            continue;
                        }
                        break;
                    }
                    cleanup.armed = false;
                    self.on_acquired(lock_value, value, token, hold_count, sent, validity_ms);
                    return Ok(true);
                }
                Ok(Attempt::Busy { pttl, hint }) => {
                    if !ambiguous {
                        cleanup.hold = None;
                    }
                    if !queue {
                        cleanup.armed = ambiguous;
                        return Ok(false);
                    }
                    let now = Instant::now();
                    if std::mem::take(&mut first_busy) && (!subscribed_before || pttl == -3) {
                        if !subscribed_before {
                            if let Err(e) =
                                client.ensure_subscribed(&keys.channel, step_budget).await
                            {
                                // Waiting still works by polling; the next wait re-tries the
                                // subscription.
                                tracing::debug!("txcoord: subscribe to {}: {e}", keys.channel);
                            }
                        }
                        // Try again at once (the script queues this waiter): a release between
                        // the first attempt and the subscription was announced to nobody.
                        continue;
                    }
                    if now >= deadline {
                        break;
                    }
                    if now >= index_due {
                        index_due = now + wait.waiter_lease / 2;
                        note_waiting(client, keys, &self.inner.owner, wait.waiter_lease);
                    }
                    let pause = if pttl == -2 {
                        // free, but another waiter's turn (fair mode): until the head's claim
                        // on it runs out, should it not take it
                        until_expiry(hint, wait.fallback_poll)
                    } else if hint == 1 {
                        until_expiry(pttl, wait.fallback_poll)
                    } else {
                        let p = foreign_poll.min(wait.fallback_poll);
                        foreign_poll = (foreign_poll * 2).min(FOREIGN_POLL_MAX);
                        until_expiry(pttl, p)
                    };
                    // The next attempt refreshes the waiter entry: it must start early enough
                    // to land within the lease, however long attempts take now.
                    let pause = pause.min(
                        (wait.waiter_lease / 2)
                            .saturating_sub(took)
                            .max(Duration::from_millis(10)),
                    );
                    let wake_at = (now + pause).min(deadline);
                    let notify = registration.as_ref().map(|r| r.notify.clone());
                    if let Some(notify) = notify {
                        if !client.is_subscribed_hint(&keys.channel) {
                            let _ = client
                                .ensure_subscribed(&keys.channel, step_budget.min(pause))
                                .await;
                        }
                        bump(&client.stats_ref().sleeps);
                        tokio::select! {
                            _ = notify.notified() => bump(&client.stats_ref().wake_notified),
                            _ = tokio::time::sleep_until(wake_at) => bump(&client.stats_ref().wake_timer),
                        }
                    }
                }
                Ok(Attempt::Incompatible { version }) => {
                    return Err(Error::Protocol {
                        key: keys.lock.clone(),
                        version,
                    });
                }
                Ok(Attempt::Victim) => {
                    cleanup.waiter_id = None;
                    if !ambiguous {
                        cleanup.hold = None;
                    }
                    return Err(Error::DeadlockVictim {
                        key: keys.lock.clone(),
                        owner: self.inner.owner.clone(),
                    });
                }
                Err(e) if e.is_retryable() => {
                    // The script may have run even though no reply came: remember the hold so a
                    // grant nobody saw is released (or recognised by the next attempt).
                    ambiguous = true;
                    let now = Instant::now();
                    if !queue || now >= deadline {
                        return Err(e);
                    }
                    tokio::time::sleep_until((now + RETRY_PAUSE).min(deadline)).await;
                }
                Err(e) => return Err(e),
            }
        }
        // Timed out: leave the queue (and give back a grant that came too late) before
        // answering, so no entry outlives the call.
        drop(registration);
        cleanup.armed = false;
        cleanup.run(op_budget).await;
        Ok(false)
    }

    fn on_acquired(
        &self,
        value: String,
        hold_id: String,
        token: u64,
        hold_count: u64,
        sent: Instant,
        validity_ms: u64,
    ) {
        bump(&self.inner.client.stats_ref().acquired);
        let ttl = self.inner.ttl;
        let generation = {
            let mut st = self.state();
            st.generation += 1;
            st.status = LockStatus::Held;
            st.value = Some(value);
            st.hold_id = Some(hold_id);
            st.token = Some(token);
            st.hold_count = hold_count;
            st.deadline = sent + validity(validity_ms);
            st.next_renewal =
                sent + Duration::from_millis(validity_ms.min(ttl.as_millis() as u64) / 3);
            st.generation
        };
        self.inner.status_tx.send_replace(LockStatus::Held);
        self.inner.schedule_renewal(generation);
    }

    /// The seed's `release()`: stops renewal, then compare-and-deletes the key (or drops one
    /// hold of a re-entered lock) and hands the lock to the next waiter. Releasing a lock that
    /// was lost (taken or expired), or never acquired, does not fail; as in the seed, Redis
    /// being unreachable does.
    ///
    /// When the release fails (Redis unreachable), or its future is dropped before Redis
    /// answered, the handle stays [`LockStatus::Releasing`]: it is no longer held (renewal has
    /// stopped), and calling `release()` again sends the release again. Releasing is
    /// idempotent in Redis: a release that did arrive is never counted twice.
    pub async fn release(&self) -> Result<()> {
        // Taking the op lock waits for a renewal in flight; none can start after this.
        let _op = self.inner.op_lock.lock().await;
        let (value, hold, was_lost) = {
            let mut st = self.state();
            if st.crashed {
                return Ok(());
            }
            let was_lost = matches!(st.status, LockStatus::Lost(_));
            match st.status {
                LockStatus::Held => {
                    st.status = LockStatus::Releasing;
                    st.generation += 1;
                    if let Some(ticket) = st.ticket.take() {
                        self.inner.client.renewals().cancel(ticket);
                    }
                    self.inner.status_tx.send_replace(LockStatus::Releasing);
                }
                LockStatus::Releasing | LockStatus::Lost(_) => {}
                LockStatus::Idle | LockStatus::Released => return Ok(()),
            }
            (st.value.clone(), st.hold_id.clone(), was_lost)
        };
        let (Some(value), Some(hold)) = (value, hold) else {
            self.mark_released(was_lost);
            return Ok(());
        };
        let client = &self.inner.client;
        let owned = !self.inner.owner.is_empty();
        let result = send_release(
            client,
            &self.inner.keys,
            &value,
            &hold,
            owned,
            client.op_budget(),
        )
        .await;
        match result {
            Ok(n) => {
                if n > 0 {
                    bump(&client.stats_ref().released);
                }
                self.mark_released(was_lost);
                Ok(())
            }
            // Also for a lost lock, whose key may still exist: the release stays to be done
            // (the status stays `Lost` or `Releasing`), and the error says why.
            Err(e) => Err(e),
        }
    }

    /// The release is done (or, for a lost lock, attempted): the handle is `Released`. Watchers
    /// of a lost lock keep seeing the loss.
    fn mark_released(&self, was_lost: bool) {
        self.state().status = LockStatus::Released;
        if !was_lost {
            self.inner.status_tx.send_replace(LockStatus::Released);
        }
    }

    /// The seed's `extend(additionalTime = ttl)`: sets the expiry to `additional` from now if the
    /// lock is still ours, and moves the local deadline. Later renewals use the ttl again.
    pub async fn extend(&self, additional: Option<Duration>) -> Result<bool> {
        let additional = match additional {
            Some(d) => validate::duration("additional_time", d, 1, validate::MAX_MS)?,
            None => self.inner.ttl,
        };
        let ms = additional.as_millis() as u64;
        let _op = self.inner.op_lock.lock().await;
        let (value, generation) = {
            let st = self.state();
            if st.status != LockStatus::Held {
                return Ok(false);
            }
            (st.value.clone().unwrap_or_default(), st.generation)
        };
        let client = &self.inner.client;
        let sent = Instant::now();
        let reply: i64 = match client
            .run_script(
                &protocol::EXTEND,
                &[&self.inner.keys.lock, &self.inner.keys.holder],
                &[&value, &ms.to_string()],
                client.op_budget(),
            )
            .await
        {
            Ok(r) => r,
            Err(e) => {
                // The script may have run: the key may now expire `ms` after it did. The
                // deadline can only move earlier on an unconfirmed extend.
                self.inner.cap_deadline(generation, sent + validity(ms));
                return Err(e);
            }
        };
        match reply {
            1 => {
                let moved = {
                    let mut st = self.state();
                    let current = st.generation == generation && st.status == LockStatus::Held;
                    if current {
                        st.deadline = sent + validity(ms);
                        st.next_renewal = sent
                            + Duration::from_millis(ms.min(self.inner.ttl.as_millis() as u64) / 3);
                    }
                    current
                };
                if moved {
                    self.inner.schedule_renewal(generation);
                }
                Ok(true)
            }
            -2 => {
                self.inner.lose(LossReason::Taken, generation);
                Ok(false)
            }
            _ => {
                self.inner.lose(LossReason::Expired, generation);
                Ok(false)
            }
        }
    }
}

/// Hooks for the integration tests (feature `test-hooks`, never in a shipped build).
#[cfg(feature = "test-hooks")]
impl DistributedLock {
    /// Holds this lock's operation lock (taken by renew, extend and release) until the guard
    /// is dropped.
    #[doc(hidden)]
    pub async fn test_hold_operation_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.inner.op_lock.lock().await
    }

    /// Behaves as if the process holding this handle crashed: renewal stops, and nothing is
    /// ever sent for it again (no release, not even on drop). Redis forgets it by the TTLs.
    #[doc(hidden)]
    pub fn test_crash(&self) {
        let mut st = self.state();
        st.crashed = true;
        st.generation += 1;
        st.status = LockStatus::Released;
        if let Some(ticket) = st.ticket.take() {
            self.inner.client.renewals().cancel(ticket);
        }
    }
}

impl LockInner {
    /// (Re)schedules this acquisition's next renewal at min(next renewal, deadline).
    fn schedule_renewal(self: &Arc<Self>, generation: u64) {
        let renewals = self.client.renewals();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.status != LockStatus::Held || st.generation != generation {
            return;
        }
        if let Some(old) = st.ticket.take() {
            renewals.cancel(old);
        }
        let at = st.next_renewal.min(st.deadline);
        let weak: Weak<dyn Renewable> = Arc::downgrade(self) as Weak<dyn Renewable>;
        st.ticket = Some(renewals.schedule(at, weak, generation));
    }

    /// Moves the local deadline earlier (never later) to `at`, after an extend or renewal
    /// whose outcome is unknown.
    fn cap_deadline(&self, generation: u64, at: Instant) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.status == LockStatus::Held && st.generation == generation && at < st.deadline {
            st.deadline = at;
        }
    }

    fn lose(&self, reason: LossReason, generation: u64) {
        {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if st.status != LockStatus::Held || st.generation != generation {
                return;
            }
            st.status = LockStatus::Lost(reason);
        }
        bump(&self.client.stats_ref().lost);
        tracing::warn!("txcoord: lock {} lost ({reason})", self.keys.lock);
        self.status_tx.send_replace(LockStatus::Lost(reason));
    }
}

impl Drop for LockInner {
    fn drop(&mut self) {
        let renewals = self.client.renewals().clone();
        let st = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(ticket) = st.ticket.take() {
            renewals.cancel(ticket);
        }
        if st.crashed || !matches!(st.status, LockStatus::Held | LockStatus::Releasing) {
            return;
        }
        let (Some(value), Some(hold)) = (st.value.take(), st.hold_id.take()) else {
            return;
        };
        let client = self.client.clone();
        let keys = self.keys.clone();
        let owned = !self.owner.is_empty();
        self.client.spawn(async move {
            let budget = client.op_budget();
            if let Err(e) = send_release(&client, &keys, &value, &hold, owned, budget).await {
                tracing::debug!("txcoord: release of dropped lock {}: {e}", keys.lock);
            }
        });
    }
}

/// Runs the release script for one hold: `value` is the lock key's value as the hold knows it
/// (`""` when unknown: an acquisition whose reply was lost), `hold` the hold's id. Replies 1
/// (released), 2 (other holds of the owner remain) or 0 (this hold was not held).
async fn send_release(
    client: &Client,
    keys: &LockKeys,
    value: &str,
    hold: &str,
    owned: bool,
    budget: Duration,
) -> Result<i64> {
    if owned {
        client
            .run_script::<i64>(
                &protocol::RELEASE_HOLD,
                &[&keys.lock, &keys.holder, &keys.queue, &keys.waiters],
                &[value, hold],
                budget,
            )
            .await
    } else {
        client
            .run_script::<i64>(
                &protocol::RELEASE,
                &[&keys.lock, &keys.queue, &keys.waiters],
                &[if value.is_empty() { hold } else { value }],
                budget,
            )
            .await
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

/// Notes a wait in the indexes of PROTOCOL.md section 7 (sent, not awaited): the index of
/// locks with waiters, and, for a waiter with an owner id, that owner's record. Each is its
/// own key (its own slot in Cluster), so each is its own command.
fn note_waiting(client: &Client, keys: &LockKeys, owner: &str, lease: Duration) {
    let client2 = client.clone();
    let index = keys.index.clone();
    let owner_key = (!owner.is_empty()).then(|| crate::keys::owner_key(client.key_prefix(), owner));
    let lock = keys.lock.clone();
    let lease = (lease.as_millis() as u64).to_string();
    client.spawn(async move {
        let budget = client2.op_budget();
        if let Err(e) = client2
            .run_script::<i64>(&protocol::INDEX, &[&index], &[&lock, &lease], budget)
            .await
        {
            tracing::debug!("txcoord: waiting index for {lock}: {e}");
        }
        if let Some(owner_key) = owner_key {
            let keep = protocol::OWNER_RECORD_KEEP_MS.to_string();
            if let Err(e) = client2
                .run_script::<i64>(
                    &protocol::OWNER_INDEX,
                    &[&owner_key],
                    &[&lock, &lease, &keep],
                    budget,
                )
                .await
            {
                tracing::debug!("txcoord: owner record {owner_key}: {e}");
            }
        }
    });
}

/// What an acquisition that ends without the lock must undo: its waiter entry, and a hold
/// whose grant (or re-entry) reply never arrived or came too late.
struct Cleanup {
    client: Client,
    keys: Arc<LockKeys>,
    waiter_id: Option<String>,
    /// The attempt's value: the id of the hold it may have made.
    hold: Option<String>,
    owned: bool,
    armed: bool,
}

impl Cleanup {
    async fn run(&mut self, budget: Duration) {
        run_cleanup(
            &self.client,
            &self.keys,
            self.waiter_id.take(),
            self.hold.take(),
            self.owned,
            budget,
        )
        .await;
    }
}

async fn run_cleanup(
    client: &Client,
    keys: &LockKeys,
    waiter_id: Option<String>,
    hold: Option<String>,
    owned: bool,
    budget: Duration,
) {
    if let Some(w) = waiter_id {
        if let Err(e) = client
            .run_script::<redis::Value>(
                &protocol::CANCEL,
                &[&keys.lock, &keys.queue, &keys.waiters],
                &[&w, &keys.channel, PUBLISH],
                budget,
            )
            .await
        {
            tracing::debug!("txcoord: cancel waiter {w} of {}: {e}", keys.lock);
        }
    }
    if let Some(hold) = hold {
        // A fresh grant stored the hold id as the key's value; a re-entry recorded it as a hold
        // of the owner's lock, whose value this attempt may never have seen.
        let value = if owned { "" } else { hold.as_str() };
        if let Err(e) = send_release(client, keys, value, &hold, owned, budget).await {
            tracing::debug!("txcoord: release unconfirmed grant of {}: {e}", keys.lock);
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !self.armed || (self.waiter_id.is_none() && self.hold.is_none()) {
            return;
        }
        let client = self.client.clone();
        let keys = self.keys.clone();
        let waiter_id = self.waiter_id.take();
        let hold = self.hold.take();
        let owned = self.owned;
        self.client.spawn(async move {
            let budget = client.op_budget();
            run_cleanup(&client, &keys, waiter_id, hold, owned, budget).await;
        });
    }
}

/// The loss reason once the local deadline passed without a failed renewal: `taken` or
/// `expired` when Redis can say, `deadline` when it cannot (or the key is, oddly, still ours).
/// Only reads: a lock given up locally is never extended again.
async fn classify_after_deadline(inner: &LockInner, value: &str) -> LossReason {
    let budget = inner.client.op_budget().min(Duration::from_millis(500));
    let mut cmd = redis::cmd("GET");
    cmd.arg(&inner.keys.lock);
    match inner.client.query::<Option<String>>(cmd, budget).await {
        Ok(None) => LossReason::Expired,
        Ok(Some(v)) if v != value => LossReason::Taken,
        _ => LossReason::Deadline,
    }
}

impl Renewable for LockInner {
    fn renew(
        self: Arc<Self>,
        generation: u64,
        ticket: Ticket,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(renew_once(self, generation, ticket))
    }
}

/// One renewal, run by the client's scheduler when it is due; schedules the next one.
async fn renew_once(inner: Arc<LockInner>, generation: u64, ticket: Ticket) {
    let _op = inner.op_lock.lock().await;
    let (value, next, deadline) = {
        let mut st = inner.state.lock().unwrap_or_else(|p| p.into_inner());
        // An extend that ran while this renewal waited for the op lock scheduled a newer
        // ticket: that one carries on, and this one stops (one chain per held lock).
        if st.status != LockStatus::Held || st.generation != generation || st.ticket != Some(ticket)
        {
            return;
        }
        st.ticket = None;
        (
            st.value.clone().unwrap_or_default(),
            st.next_renewal,
            st.deadline,
        )
    };
    let now = Instant::now();
    if now >= deadline {
        // The lease ran out before a renewal could run (this process was paused or starved):
        // `is_held` is already false; ask Redis, briefly, what became of the key.
        let reason = classify_after_deadline(&inner, &value).await;
        inner.lose(reason, generation);
        return;
    }
    if now < next {
        // moved by extend() meanwhile
        inner.schedule_renewal(generation);
        return;
    }
    let client = &inner.client;
    let ttl_ms = inner.ttl.as_millis() as u64;
    let budget = deadline.saturating_duration_since(now);
    let reply: Result<i64> = client
        .run_script(
            &protocol::EXTEND,
            &[&inner.keys.lock, &inner.keys.holder],
            &[&value, &ttl_ms.to_string()],
            budget,
        )
        .await;
    match reply {
        Ok(1) => {
            bump(&client.stats_ref().renewals);
            {
                let mut st = inner.state.lock().unwrap_or_else(|p| p.into_inner());
                if st.generation == generation {
                    st.deadline = now + validity(ttl_ms);
                    st.next_renewal = now + inner.ttl / 3;
                }
            }
            inner.schedule_renewal(generation);
        }
        Ok(-2) => inner.lose(LossReason::Taken, generation),
        Ok(_) => inner.lose(LossReason::Expired, generation),
        Err(e) if e.is_retryable() => {
            // It may have run: with a ttl shorter than an earlier extend, the key now expires
            // sooner than the deadline says.
            inner.cap_deadline(generation, now + validity(ttl_ms));
            bump(&client.stats_ref().renewal_errors);
            tracing::debug!(
                "txcoord: renewal of {} failed, retrying: {e}",
                inner.keys.lock
            );
            if Instant::now() >= deadline {
                inner.lose(LossReason::Deadline, generation);
                return;
            }
            let pause =
                (inner.ttl / 10).clamp(Duration::from_millis(10), Duration::from_millis(200));
            {
                let mut st = inner.state.lock().unwrap_or_else(|p| p.into_inner());
                st.next_renewal = Instant::now() + pause;
            }
            inner.schedule_renewal(generation);
        }
        Err(e) => {
            tracing::warn!("txcoord: renewal of {} failed: {e}", inner.keys.lock);
            inner.lose(LossReason::RenewalFailed, generation);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_leaves_a_drift_margin() {
        assert_eq!(validity(30_000), Duration::from_millis(30_000 - 302));
        assert_eq!(validity(1_000), Duration::from_millis(988));
        assert_eq!(validity(1), Duration::ZERO);
    }

    #[test]
    fn waits_end_at_expiry_or_poll() {
        let poll = Duration::from_millis(1000);
        assert_eq!(until_expiry(20, poll), Duration::from_millis(21));
        assert_eq!(until_expiry(5000, poll), poll);
        assert_eq!(until_expiry(-1, poll), poll);
    }

    #[tokio::test(start_paused = true)]
    async fn lost_resolves_on_status_changes() {
        let client = Client::open("redis://127.0.0.1:1").unwrap();
        let lock = DistributedLock::new(&client, "k", Duration::from_secs(1)).unwrap();
        assert_eq!(lock.lost().await, None, "idle");
        lock.inner.state.lock().unwrap().status = LockStatus::Held;
        lock.inner.status_tx.send_replace(LockStatus::Held);
        let l2 = lock.clone();
        let waiter = tokio::spawn(async move { l2.lost().await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiter.is_finished());
        let generation = lock.inner.state.lock().unwrap().generation;
        lock.inner.lose(LossReason::Taken, generation);
        assert_eq!(waiter.await.unwrap(), Some(LossReason::Taken));
        assert_eq!(lock.loss_reason(), Some(LossReason::Taken));
        assert!(!lock.is_held());
    }

    #[test]
    fn options_are_validated() {
        let client = Client::open("redis://127.0.0.1:1").unwrap();
        let e = DistributedLock::new(&client, "k", Duration::ZERO).unwrap_err();
        assert_eq!(e.argument(), Some("ttl"));
        let e = DistributedLock::new(&client, "", Duration::from_secs(1)).unwrap_err();
        assert_eq!(e.argument(), Some("lock_key"));
        let e = DistributedLock::with_options(&client, "k", LockOptions::new().set_owner_id(""))
            .unwrap_err();
        assert_eq!(e.argument(), Some("owner_id"));
    }
}
