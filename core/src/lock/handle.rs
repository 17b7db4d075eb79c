// SPDX-License-Identifier: MIT OR Apache-2.0
//! `DistributedLock`: one lock key, acquired with the protocol's scripts, renewed in the
//! background, with a fencing token and a lost-lock signal.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::acquire::WaitParams;
use super::keys::LockKeys;
use super::scripts;
use super::DEFAULT_TTL;
use crate::binding::validate;
use crate::client::{bump, Client};
use crate::error::{LossReason, Result};
use crate::scheduler::Ticket;

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

pub(super) struct State {
    pub(super) status: LockStatus,
    /// Bumped at each acquisition, so a renewal task of an earlier one stops.
    pub(super) generation: u64,
    pub(super) value: Option<String>,
    /// The hold this handle made: the value of its own acquisition (equal to `value` unless
    /// it re-entered a lock its owner already held).
    pub(super) hold_id: Option<String>,
    pub(super) token: Option<u64>,
    pub(super) hold_count: u64,
    pub(super) deadline: Instant,
    pub(super) next_renewal: Instant,
    /// The scheduled renewal, if any (see `renewal.rs`). Only the renewal holding this very
    /// ticket may run; one started from an older ticket finds it replaced and stops.
    pub(super) ticket: Option<Ticket>,
    /// Set by the test hook that simulates a crashed process: nothing is sent on drop.
    pub(super) crashed: bool,
}

pub(super) struct LockInner {
    pub(super) client: Client,
    pub(super) keys: Arc<LockKeys>,
    pub(super) ttl: Duration,
    pub(super) owner: String,
    pub(super) priority: i32,
    // A std mutex: short critical sections, never held across an await.
    pub(super) state: Mutex<State>,
    // A tokio mutex: serialises the commands that move the expiry (renew, extend, release), so
    // the local deadline always matches the last expiry Redis applied. Held across awaits.
    pub(super) op_lock: tokio::sync::Mutex<()>,
    pub(super) status_tx: watch::Sender<LockStatus>,
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
    pub(super) inner: Arc<LockInner>,
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

    pub(super) fn keys_arc(&self) -> &Arc<LockKeys> {
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

    pub(super) fn on_acquired(
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
                        self.inner.client.scheduler().cancel(ticket);
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
        let result = scripts::release(
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
        let reply =
            match scripts::extend(client, &self.inner.keys, &value, ms, client.op_budget()).await {
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
            self.inner.client.scheduler().cancel(ticket);
        }
    }
}

thread_local! {
    /// Set on a thread whose host (a Node environment, the Python interpreter) is shutting down.
    static HOST_EXITING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Tells the core that the host language's runtime is shutting down on this thread (a Node
/// environment's cleanup, Python's `atexit`): a lock dropped on this thread from now on is not
/// released but left to its TTL, as after a crash. The finalizers a shutting-down host runs
/// would otherwise start releases that the exiting process may or may not finish, so whether
/// the key survived would be a race; a program that wants a fast handoff releases its locks
/// before it exits. Other threads (another Node worker) are not affected.
pub fn host_exiting() {
    HOST_EXITING.with(|e| e.set(true));
}

/// Whether [`host_exiting`] was called on this thread.
pub(crate) fn is_host_exiting() -> bool {
    HOST_EXITING.with(|e| e.get())
}

impl Drop for LockInner {
    fn drop(&mut self) {
        let scheduler = self.client.scheduler().clone();
        let st = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(ticket) = st.ticket.take() {
            scheduler.cancel(ticket);
        }
        if st.crashed || !st.status.needs_release() || is_host_exiting() {
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
            if let Err(e) = scripts::release(&client, &keys, &value, &hold, owned, budget).await {
                tracing::debug!("txcoord: release of dropped lock {}: {e}", keys.lock);
            }
        });
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
