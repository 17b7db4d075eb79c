// SPDX-License-Identifier: MIT OR Apache-2.0
//! `LockManager`: the seed's manager of locks by resource name, with waiting woken by release
//! notifications, owner ids, fair mode and a scoped form.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::acquire::WaitParams;
use super::keys::LockKeys;
use super::{
    is_host_exiting, DistributedLock, LockOptions, LockStatus, DEFAULT_DEADLOCK_TIMEOUT,
    DEFAULT_FALLBACK_POLL, DEFAULT_TIMEOUT, DEFAULT_TTL, DEFAULT_WAITER_LEASE,
};
use crate::binding::validate;
use crate::client::Client;
use crate::error::{Error, Result};

/// Settings of a [`LockManager`]. Defaults: no owner, priority 0, not fair, fallback poll
/// 1000 ms, waiter lease 5000 ms.
#[derive(Debug, Clone)]
pub struct ManagerOptions {
    owner_id: Option<String>,
    priority: i32,
    fair: bool,
    fallback_poll: Duration,
    waiter_lease: Duration,
    deadlock_timeout: Duration,
}

impl Default for ManagerOptions {
    fn default() -> Self {
        ManagerOptions {
            owner_id: None,
            priority: 0,
            fair: false,
            fallback_poll: DEFAULT_FALLBACK_POLL,
            waiter_lease: DEFAULT_WAITER_LEASE,
            deadlock_timeout: DEFAULT_DEADLOCK_TIMEOUT,
        }
    }
}

impl ManagerOptions {
    /// Options with every default.
    pub fn new() -> Self {
        Self::default()
    }
    /// The owner id of every acquisition (a saga id): acquisitions with the same owner — from
    /// any process or language — re-enter the lock instead of waiting for themselves.
    pub fn set_owner_id(mut self, owner_id: impl Into<String>) -> Self {
        self.owner_id = Some(owner_id.into());
        self
    }
    /// The priority recorded for every acquisition (the deadlock detector aborts the lowest).
    pub fn set_priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }
    /// FIFO fair mode: waiters are served in arrival order and nobody barges in.
    pub fn set_fair(mut self, fair: bool) -> Self {
        self.fair = fair;
        self
    }
    /// Longest pause between two checks of a busy lock whose release will be announced
    /// (a safety net for lost notifications). 1 ms to 60 000 ms.
    pub fn set_fallback_poll(mut self, poll: Duration) -> Self {
        self.fallback_poll = poll;
        self
    }
    /// How long a waiter's registry entry lives unless refreshed (at least twice the fallback
    /// poll); a crashed waiter's entry vanishes after this.
    pub fn set_waiter_lease(mut self, lease: Duration) -> Self {
        self.waiter_lease = lease;
        self
    }
    /// How long an acquisition with an owner id waits before it probes for a deadlock through
    /// its saga, and breaks it (default 1000 ms, as PostgreSQL's `deadlock_timeout`; zero: never
    /// — deadlocks are then left to a detector's sweep).
    pub fn set_deadlock_timeout(mut self, timeout: Duration) -> Self {
        self.deadlock_timeout = timeout;
        self
    }

    fn validate(&self) -> Result<()> {
        if let Some(owner) = &self.owner_id {
            validate::owner_id_str("owner_id", owner)?;
        }
        validate::duration(
            "fallback_poll",
            self.fallback_poll,
            1,
            crate::binding::options::MAX_FALLBACK_POLL_MS,
        )?;
        validate::duration("waiter_lease", self.waiter_lease, 1, validate::MAX_MS)?;
        validate::duration(
            "deadlock_timeout",
            self.deadlock_timeout,
            0,
            validate::MAX_MS,
        )?;
        if self.waiter_lease < self.fallback_poll * 2 {
            return Err(Error::invalid_argument(
                "waiter_lease",
                format!(
                    "must be at least twice fallback_poll ({} ms), got {} ms",
                    self.fallback_poll.as_millis(),
                    self.waiter_lease.as_millis()
                ),
            ));
        }
        Ok(())
    }
}

/// Per-call settings of [`LockManager::acquire_lock_with`]; unset fields take the manager's
/// (owner, priority, fair) or the seed's defaults (ttl 30 000 ms, timeout 10 000 ms).
#[derive(Debug, Clone, Default)]
pub struct AcquireOptions {
    ttl: Option<Duration>,
    timeout: Option<Duration>,
    owner_id: Option<String>,
    priority: Option<i32>,
    fair: Option<bool>,
}

impl AcquireOptions {
    /// Options with every default.
    pub fn new() -> Self {
        Self::default()
    }
    /// The lock TTL (whole milliseconds, 1 ms to 2^31−1 ms).
    pub fn set_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }
    /// How long to wait; zero tries once.
    pub fn set_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
    /// The owner id for this call (instead of the manager's).
    pub fn set_owner_id(mut self, owner_id: impl Into<String>) -> Self {
        self.owner_id = Some(owner_id.into());
        self
    }
    /// The priority for this call (instead of the manager's).
    pub fn set_priority(mut self, priority: i32) -> Self {
        self.priority = Some(priority);
        self
    }
    /// Fair (FIFO) waiting for this call (instead of the manager's setting).
    pub fn set_fair(mut self, fair: bool) -> Self {
        self.fair = Some(fair);
        self
    }
}

struct ManagerInner {
    client: Client,
    options: ManagerOptions,
    // A std mutex: map updates only, never held across an await.
    locks: Mutex<HashMap<String, Vec<DistributedLock>>>,
    // Keys computed per resource, reused (bounded); a std mutex as above.
    keys: Mutex<HashMap<String, Arc<LockKeys>>>,
    closed: AtomicBool,
}

/// The seed's `LockManager`: acquires locks by resource name (key `lock:<resource>`), waits for
/// busy ones, and remembers what it holds so `release_lock`/`release_all_locks` can free it.
///
/// ## Behavior
///
/// - A busy lock is waited for without fixed polling: the waiter is woken by the holder's release
///   notification, or at the holder's expiry, with a bounded fallback poll for holders that
///   announce nothing (the seed's own clients).
/// - Acquisitions without an owner id exclude each other, even on one manager. With an owner id
///   the lock is re-entrant for that owner, across processes: the same lock and fencing token,
///   hold count + 1, freed when every hold is released.
/// - Holder and waiters are recorded in Redis (PROTOCOL.md) with TTLs, for the deadlock detector.
/// - Cloning is cheap: clones share the held-lock table.
#[derive(Clone)]
pub struct LockManager {
    inner: Arc<ManagerInner>,
}

impl std::fmt::Debug for LockManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockManager")
            .field("client", &self.inner.client)
            .field("options", &self.inner.options)
            .finish()
    }
}

/// A held lock that is released when the scope ends, however it ends.
struct ScopeGuard(Option<DistributedLock>);

impl Drop for ScopeGuard {
    fn drop(&mut self) {
        if is_host_exiting() {
            // left to its TTL, as any lock dropped while the host exits
            return;
        }
        if let Some(lock) = self.0.take() {
            let client = lock.client().clone();
            client.spawn(async move {
                if let Err(e) = lock.release().await {
                    tracing::warn!("txcoord: release of {} after its scope: {e}", lock.key());
                }
            });
        }
    }
}

impl LockManager {
    /// The seed's `new LockManager(redis)`.
    pub fn new(client: &Client) -> Self {
        Self::build(client, ManagerOptions::default())
    }

    /// A manager with an owner id, priority, fair mode or poll settings.
    pub fn with_options(client: &Client, options: ManagerOptions) -> Result<Self> {
        options.validate()?;
        Ok(Self::build(client, options))
    }

    fn build(client: &Client, options: ManagerOptions) -> Self {
        LockManager {
            inner: Arc::new(ManagerInner {
                client: client.clone(),
                options,
                locks: Mutex::new(HashMap::new()),
                keys: Mutex::new(HashMap::new()),
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// The client this manager uses.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The manager's owner id, if any.
    pub fn owner_id(&self) -> Option<&str> {
        self.inner.options.owner_id.as_deref()
    }

    /// The seed's `acquireLock(resource, ttl, timeout)`: the lock, or `None` when `timeout`
    /// passed first (zero tries once). Redis being unreachable is an error, not `None`.
    pub async fn acquire_lock(
        &self,
        resource: &str,
        ttl: Duration,
        timeout: Duration,
    ) -> Result<Option<DistributedLock>> {
        self.acquire_lock_with(
            resource,
            AcquireOptions::new().set_ttl(ttl).set_timeout(timeout),
        )
        .await
    }

    /// `acquire_lock` with per-call options (owner id, priority, fair mode).
    pub async fn acquire_lock_with(
        &self,
        resource: &str,
        options: AcquireOptions,
    ) -> Result<Option<DistributedLock>> {
        let (lock, wait) = self.prepare(resource, &options)?;
        if !lock.acquire_with(wait).await? {
            return Ok(None);
        }
        self.remember(resource, &lock);
        Ok(Some(lock))
    }

    /// Adds a held lock to the manager's table (what `held_resources`, `release_lock` and
    /// `release_all_locks` see).
    fn remember(&self, resource: &str, lock: &DistributedLock) {
        let mut locks = self.inner.locks.lock().unwrap_or_else(|p| p.into_inner());
        if locks.len() > 64 {
            // Forget handles released or lost behind the manager's back.
            locks.retain(|_, held| {
                held.retain(|l| l.status().needs_release());
                !held.is_empty()
            });
        }
        let held = locks.entry(resource.to_string()).or_default();
        held.retain(|l| l.status().needs_release());
        held.push(lock.clone());
    }

    /// Acquires several resources in one global order (sorted, duplicates removed), so two
    /// callers asking for overlapping sets cannot deadlock each other. The timeout bounds the
    /// whole call; on timeout (`None`) or error, what was acquired is released again.
    pub async fn acquire_locks(
        &self,
        resources: &[&str],
        options: AcquireOptions,
    ) -> Result<Option<Vec<DistributedLock>>> {
        let mut ordered: Vec<&str> = resources.to_vec();
        ordered.sort_unstable();
        ordered.dedup();
        // validate every name before anything reaches Redis
        let mut prepared = Vec::with_capacity(ordered.len());
        for r in &ordered {
            prepared.push(self.prepare(r, &options)?);
        }
        let total = prepared.first().map(|(_, w)| w.timeout).unwrap_or_default();
        let deadline = tokio::time::Instant::now() + total;
        let mut held: Vec<DistributedLock> = Vec::with_capacity(prepared.len());
        for (lock, mut wait) in prepared {
            wait.timeout = deadline.saturating_duration_since(tokio::time::Instant::now());
            match lock.acquire_with(wait).await {
                Ok(true) => held.push(lock),
                other => {
                    for l in held.iter().rev() {
                        if let Err(e) = l.release().await {
                            tracing::warn!(
                                "txcoord: release of {} after a failed multi-acquire: {e}",
                                l.key()
                            );
                        }
                    }
                    return other.map(|_| None);
                }
            }
        }
        let mut locks = self.inner.locks.lock().unwrap_or_else(|p| p.into_inner());
        for (r, l) in ordered.iter().zip(held.iter()) {
            locks.entry(r.to_string()).or_default().push(l.clone());
        }
        Ok(Some(held))
    }

    fn keys_for(&self, resource: &str) -> Result<Arc<LockKeys>> {
        const CACHED: usize = 4096;
        let mut cache = self.inner.keys.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = cache.get(resource) {
            return Ok(k.clone());
        }
        let keys = Arc::new(LockKeys::for_resource(
            self.inner.client.key_prefix(),
            resource,
        )?);
        if cache.len() >= CACHED {
            cache.clear();
        }
        cache.insert(resource.to_string(), keys.clone());
        Ok(keys)
    }

    fn prepare(
        &self,
        resource: &str,
        options: &AcquireOptions,
    ) -> Result<(DistributedLock, WaitParams)> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(Error::Closed {
                what: "lock manager",
            });
        }
        let keys = self.keys_for(resource)?;
        let ttl = validate::duration(
            "ttl",
            options.ttl.unwrap_or(DEFAULT_TTL),
            1,
            validate::MAX_MS,
        )?;
        let timeout = validate::duration(
            "timeout",
            options.timeout.unwrap_or(DEFAULT_TIMEOUT),
            0,
            validate::MAX_MS,
        )?;
        let m = &self.inner.options;
        let mut lock_options = LockOptions::new()
            .set_ttl(ttl)
            .set_priority(options.priority.unwrap_or(m.priority));
        if let Some(owner) = options.owner_id.as_ref().or(m.owner_id.as_ref()) {
            lock_options = lock_options.set_owner_id(owner.clone());
        }
        let lock = DistributedLock::from_keys(&self.inner.client, keys, lock_options)?;
        let wait = WaitParams {
            timeout,
            fair: options.fair.unwrap_or(m.fair),
            fallback_poll: m.fallback_poll,
            waiter_lease: m.waiter_lease,
            deadlock_timeout: m.deadlock_timeout,
        };
        Ok((lock, wait))
    }

    /// The seed's `releaseLock(resource)`: releases the most recent lock this manager acquired
    /// on `resource` (nothing if it holds none). A lock that was lost is released too (its key
    /// may still exist). When the release fails, the manager keeps the lock, so calling
    /// `release_lock` again retries it.
    pub async fn release_lock(&self, resource: &str) -> Result<()> {
        let lock = {
            let mut locks = self.inner.locks.lock().unwrap_or_else(|p| p.into_inner());
            let Some(held) = locks.get_mut(resource) else {
                return Ok(());
            };
            // forget handles released directly meanwhile
            held.retain(|l| l.status().needs_release());
            let lock = held.last().cloned();
            if held.is_empty() {
                locks.remove(resource);
            }
            lock
        };
        let Some(lock) = lock else { return Ok(()) };
        lock.release().await?;
        self.forget(resource, &lock);
        Ok(())
    }

    /// Removes one handle from the held-lock table.
    fn forget(&self, resource: &str, lock: &DistributedLock) {
        let mut locks = self.inner.locks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(held) = locks.get_mut(resource) {
            held.retain(|l| !l.same_handle(lock));
            if held.is_empty() {
                locks.remove(resource);
            }
        }
    }

    /// Releases the locks this manager holds on `resources` together (as [`Self::acquire_locks`]
    /// took them), concurrently; returns the releases that failed (each also logged), which
    /// stay in the manager for a retry.
    pub async fn release_locks(&self, resources: &[&str]) -> Vec<(String, Error)> {
        let tasks: Vec<_> = resources
            .iter()
            .map(|r| {
                let m = self.clone();
                let r = r.to_string();
                tokio::spawn(async move {
                    let result = m.release_lock(&r).await;
                    (r, result)
                })
            })
            .collect();
        let mut failures = Vec::new();
        for task in tasks {
            match task.await {
                Ok((_, Ok(()))) => {}
                Ok((resource, Err(e))) => {
                    tracing::error!("txcoord: failed to release lock for {resource}: {e}");
                    failures.push((resource, e));
                }
                Err(join) => failures.push((
                    String::new(),
                    Error::Internal(format!("release task failed: {join}")),
                )),
            }
        }
        failures
    }

    /// The seed's `releaseAllLocks()`: attempts every release, concurrently, and returns the
    /// ones that failed (each also logged) instead of failing. Locks whose release failed stay
    /// in the manager, so a later call retries them.
    pub async fn release_all_locks(&self) -> Vec<(String, Error)> {
        let all: Vec<(String, DistributedLock)> = {
            let locks = self.inner.locks.lock().unwrap_or_else(|p| p.into_inner());
            locks
                .iter()
                .flat_map(|(resource, held)| {
                    held.iter()
                        .rev()
                        .filter(|l| l.status().needs_release())
                        .map(move |l| (resource.clone(), l.clone()))
                })
                .collect()
        };
        let tasks: Vec<_> = all
            .into_iter()
            .map(|(resource, lock)| {
                tokio::spawn(async move {
                    let r = lock.release().await;
                    (resource, lock, r)
                })
            })
            .collect();
        let mut failures = Vec::new();
        for task in tasks {
            match task.await {
                Ok((resource, lock, Ok(()))) => self.forget(&resource, &lock),
                Ok((resource, _, Err(e))) => {
                    tracing::error!("txcoord: failed to release lock for {resource}: {e}");
                    failures.push((resource, e));
                }
                Err(join) => failures.push((
                    String::new(),
                    Error::Internal(format!("release task failed: {join}")),
                )),
            }
        }
        failures
    }

    /// Acquires `resource` or fails with the `Timeout` error kind (never `None`): the building
    /// block of scoped forms (Python's `async with manager.lock(...)`, JS `using`), which the
    /// bindings call rather than deciding anything themselves. While held, the lock is in the
    /// manager's table like any other (`held_resources` shows it; `release_all_locks` and
    /// `close` release it); the scope releases it when it ends.
    pub async fn lock(&self, resource: &str, options: AcquireOptions) -> Result<DistributedLock> {
        let (lock, wait) = self.prepare(resource, &options)?;
        let started = tokio::time::Instant::now();
        if !lock.acquire_with(wait).await? {
            return Err(Error::Timeout {
                key: lock.key().to_string(),
                waited_ms: started.elapsed().as_millis() as u64,
            });
        }
        self.remember(resource, &lock);
        Ok(lock)
    }

    /// The scoped form: acquires `resource`, runs `f` with the lock, and releases it however
    /// `f` ends (also on panic or cancellation, in the background). Fails with the `Timeout`
    /// error kind when the lock cannot be acquired in time.
    pub async fn with_lock<F, Fut, T>(
        &self,
        resource: &str,
        options: AcquireOptions,
        f: F,
    ) -> Result<T>
    where
        F: FnOnce(DistributedLock) -> Fut,
        Fut: Future<Output = T>,
    {
        let lock = self.lock(resource, options).await?;
        let mut guard = ScopeGuard(Some(lock.clone()));
        let out = f(lock).await;
        if let Some(lock) = guard.0.take() {
            if let Err(e) = lock.release().await {
                tracing::warn!("txcoord: release of {} after its scope: {e}", lock.key());
            }
        }
        Ok(out)
    }

    /// Resources this manager currently holds locks on.
    pub fn held_resources(&self) -> Vec<String> {
        let locks = self.inner.locks.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<String> = locks
            .iter()
            .filter(|(_, held)| held.iter().any(|l| l.status() == LockStatus::Held))
            .map(|(r, _)| r.clone())
            .collect();
        v.sort();
        v
    }

    /// Releases everything this manager holds and refuses further acquisitions.
    pub async fn close(&self) -> Vec<(String, Error)> {
        self.inner.closed.store(true, Ordering::SeqCst);
        self.release_all_locks().await
    }
}
