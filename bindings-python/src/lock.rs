// SPDX-License-Identifier: MIT OR Apache-2.0
//! `DistributedLock` (async and blocking, from one definition: see `twin`) over the core's
//! `DistributedLock`, with the `on_lost=` callback.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict};
use pyo3::{PyTraverseError, PyVisit};
use tokio::task::AbortHandle;
use txcoord::binding::options::{self, Host, LOCK};
use txcoord::binding::validate;
use txcoord::{DistributedLock, LockOptions, LockStatus, LossReason};

use crate::bridge::{self, OnCancel};
use crate::client::{resolve, ClientHandle};
use crate::convert::{Arg, Keywords, OwnedRaw};
use crate::error::{guard, IntoPyResult};
use crate::on_lost::{callback, Notifier, Slot, Watch};
use crate::runtime::{self, ForkSafe};
use crate::twin::{twins, Async, Blocking, Flavour};

/// What a Python lock handle shares with its tasks.
///
/// Exactly one Python lock object holds each `LockShared` (others hold it only from Rust): that
/// object reports the `on_lost` slot to the garbage collector.
pub(crate) struct LockShared {
    client: Arc<ClientHandle>,
    lock: ForkSafe<DistributedLock>,
    /// The callback armed for each acquisition of this handle.
    on_lost: Option<Arc<Slot>>,
    /// Created by `DistributedLock(...)`: the handle owns the lock, so its watcher must not
    /// outlive it (a dropped handle releases its lock). Locks from a manager live in the
    /// manager's table instead.
    standalone: bool,
    // A std mutex: replaced or taken, never held across an await.
    watcher: Mutex<Option<(u32, AbortHandle)>>,
}

impl Drop for LockShared {
    fn drop(&mut self) {
        if !self.standalone {
            return;
        }
        if let Some((pid, w)) = self
            .watcher
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            if pid == std::process::id() {
                w.abort();
            }
        }
    }
}

/// How an acquisition of a standalone lock waits.
#[derive(Clone, Copy)]
enum Attempt {
    /// One attempt (`acquire()`).
    Once,
    /// Up to a timeout (`acquire(timeout_ms)`): false if it passes.
    Wait(Duration),
    /// The scoped form: up to a timeout, which fails with the timeout error kind.
    Scoped(Duration),
}

/// A lock of the parent, as a fresh (not held) handle of the child's client.
fn rebuild(parent: &DistributedLock, client: &txcoord::Client) -> txcoord::Result<DistributedLock> {
    let key = parent.key();
    let key = key
        .strip_prefix(parent.client().key_prefix())
        .unwrap_or(key);
    let mut options = LockOptions::new()
        .set_ttl(parent.ttl())
        .set_priority(parent.priority());
    if let Some(owner) = parent.owner_id() {
        options = options.set_owner_id(owner);
    }
    DistributedLock::with_options(client, key, options)
}

fn status_str(status: LockStatus) -> &'static str {
    status.as_str()
}

/// Releases a lock in the background (an acquisition whose awaitable was cancelled).
pub(crate) fn release_in_background(lock: DistributedLock) {
    if let Ok(handle) = runtime::handle() {
        handle.spawn(async move {
            if let Err(e) = lock.release().await {
                tracing::warn!(target: "txcoord", "txcoord: release of {} after a cancelled acquisition: {e}", lock.key());
            }
        });
    }
}

impl LockShared {
    pub(crate) fn new(
        client: Arc<ClientHandle>,
        lock: DistributedLock,
        on_lost: Option<Arc<Slot>>,
        standalone: bool,
    ) -> Arc<Self> {
        Arc::new(LockShared {
            client,
            lock: ForkSafe::new(lock),
            on_lost,
            standalone,
            watcher: Mutex::new(None),
        })
    }

    /// `DistributedLock(redis, lock_key, ttl_ms=30000, **options)`: `on_lost` is the
    /// binding's, every other option the core's `LOCK` table.
    fn construct(
        py: Python<'_>,
        redis: &Bound<'_, PyAny>,
        lock_key: &Bound<'_, PyAny>,
        ttl_ms: &Arg<'_>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Arc<Self>> {
        let mut keywords = Keywords::new(options);
        let on_lost = keywords.take("on_lost")?;
        keywords.refuse_unknown("DistributedLock", |name| {
            options::accepts(LOCK, Host::Python, name)
        })?;
        let key = OwnedRaw::from_value(lock_key)?;
        let key = validate::resource("lock_key", key.raw()).into_py(py)?;
        let ttl = OwnedRaw::from_arg(ttl_ms)?;
        let ttl = validate::ttl("ttl_ms", ttl.raw()).into_py(py)?;
        let mut options = keywords.read(LOCK, &[])?.into_py(py)?;
        if let Some(ttl) = ttl {
            options = options.set_ttl(ttl);
        }
        let on_lost = callback(py, on_lost.as_ref())?.map(Slot::new);
        let client = resolve(py, redis)?;
        let lock =
            DistributedLock::with_options(&client.get().into_py(py)?, key, options).into_py(py)?;
        Ok(LockShared::new(client, lock, on_lost, true))
    }

    /// The core lock for this process.
    pub(crate) fn lock(&self) -> txcoord::Result<DistributedLock> {
        self.lock.get(|parent| rebuild(parent, &self.client.get()?))
    }

    /// Arms the `on_lost` callback (if any) for the next acquisition.
    fn watch(&self, notifier: impl FnOnce() -> PyResult<Notifier>) -> PyResult<Option<Watch>> {
        match &self.on_lost {
            None => Ok(None),
            Some(slot) => Ok(Some(Watch::new(
                vec![Arc::downgrade(slot)],
                None,
                notifier()?,
            ))),
        }
    }

    /// For the `__traverse__` of the one Python object holding this handle.
    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        match &self.on_lost {
            Some(slot) => slot.traverse(visit),
            None => Ok(()),
        }
    }

    /// For the `__clear__` of the one Python object holding this handle.
    fn clear(&self) {
        if let Some(slot) = &self.on_lost {
            slot.clear();
        }
    }

    /// Records the watcher of the current acquisition (stopping an earlier one).
    pub(crate) fn set_watcher(&self, watcher: AbortHandle) {
        let pid = std::process::id();
        let old = self
            .watcher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace((pid, watcher));
        if let Some((old_pid, old)) = old {
            if old_pid == pid {
                old.abort();
            }
        }
    }

    /// `acquire(timeout_ms=0)`: the lock and the future of one acquisition.
    fn acquire_task(
        self: &Arc<Self>,
        py: Python<'_>,
        timeout_ms: &Arg<'_>,
        notifier: impl FnOnce() -> PyResult<Notifier>,
    ) -> PyResult<(
        DistributedLock,
        impl Future<Output = txcoord::Result<bool>> + Send + 'static,
    )> {
        let raw = OwnedRaw::from_arg(timeout_ms)?;
        let attempt = match validate::timeout("timeout_ms", raw.raw()).into_py(py)? {
            None => Attempt::Once,
            Some(t) => Attempt::Wait(t),
        };
        self.acquire_with(py, attempt, notifier)
    }

    fn acquire_with(
        self: &Arc<Self>,
        py: Python<'_>,
        attempt: Attempt,
        notifier: impl FnOnce() -> PyResult<Notifier>,
    ) -> PyResult<(
        DistributedLock,
        impl Future<Output = txcoord::Result<bool>> + Send + 'static,
    )> {
        let lock = self.lock().into_py(py)?;
        let watch = self.watch(notifier)?;
        let me = self.clone();
        let l = lock.clone();
        Ok((lock, async move {
            let acquired = match attempt {
                Attempt::Once => l.acquire().await?,
                Attempt::Wait(t) => l.acquire_timeout(t).await?,
                Attempt::Scoped(t) => {
                    txcoord::binding::scope::acquire(&l, t).await?;
                    true
                }
            };
            if acquired {
                if let Some(w) = watch {
                    me.set_watcher(w.spawn(&l));
                }
            }
            Ok(acquired)
        }))
    }

    /// The scoped acquisition of `with lock:` (the core's `binding::scope::acquire`): waits up
    /// to the default timeout and fails with the timeout error kind.
    fn enter_task(
        self: &Arc<Self>,
        py: Python<'_>,
        notifier: impl FnOnce() -> PyResult<Notifier>,
    ) -> PyResult<impl Future<Output = txcoord::Result<bool>> + Send + 'static> {
        let (_, acquire) =
            self.acquire_with(py, Attempt::Scoped(txcoord::DEFAULT_TIMEOUT), notifier)?;
        Ok(acquire)
    }

    fn extend_task(
        &self,
        py: Python<'_>,
        additional_time_ms: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<impl Future<Output = txcoord::Result<bool>> + Send + 'static> {
        let raw = OwnedRaw::from_optional(additional_time_ms)?;
        let additional = validate::ttl("additional_time_ms", raw.raw()).into_py(py)?;
        let lock = self.lock().into_py(py)?;
        Ok(async move { lock.extend(additional).await })
    }

    fn repr(&self, class: &str) -> String {
        match self.lock.peek() {
            Some(l) => format!(
                "<{class} key={:?} status={:?} fencing_token={}>",
                l.key(),
                status_str(l.status()),
                l.fencing_token()
                    .map_or("None".to_string(), |t| t.to_string())
            ),
            None => format!("<{class}>"),
        }
    }
}

fn py_bool(py: Python<'_>, b: bool) -> Py<PyAny> {
    PyBool::new(py, b).to_owned().into_any().unbind()
}

fn reason_str(reason: Option<LossReason>) -> Option<&'static str> {
    reason.map(LossReason::as_str)
}

twins! {
    /// A lock on one Redis key (async API), wire-compatible with the seed's `DistributedLock`.
    ///
    /// Held locks are renewed every ttl/3 in the background; loss is reported by `await lost()`
    /// and the `on_lost` callback with its reason. Durations are in milliseconds (or a
    /// `datetime.timedelta`).
    #[pyclass(name = "DistributedLock", module = "txcoord", frozen)]
    pub(crate) struct PyDistributedLock: Async;
    /// A lock on one Redis key (blocking API, `txcoord.sync.DistributedLock`).
    #[pyclass(name = "DistributedLock", module = "txcoord.sync", frozen)]
    pub(crate) struct PySyncDistributedLock: Blocking;
    fields {
        pub(crate) shared: Arc<LockShared>,
    }
    flavour F;
    methods {
        #[new]
        #[pyo3(
            signature = (redis, lock_key, ttl_ms=Arg::Absent, **options),
            text_signature = "(redis, lock_key, ttl_ms=30000, **options)"
        )]
        fn new(
            py: Python<'_>,
            redis: &Bound<'_, PyAny>,
            lock_key: &Bound<'_, PyAny>,
            ttl_ms: Arg<'_>,
            options: Option<&Bound<'_, PyDict>>,
        ) -> PyResult<Self> {
            guard(py, || {
                Ok(Self {
                    shared: LockShared::construct(py, redis, lock_key, &ttl_ms, options)?,
                })
            })
        }

        /// The seed's `acquire()`: one attempt (or wait up to `timeout_ms`); True if now held.
        #[pyo3(signature = (timeout_ms=Arg::Absent), text_signature = "($self, timeout_ms=0)")]
        fn acquire<'py>(
            &self,
            py: Python<'py>,
            timeout_ms: Arg<'_>,
        ) -> PyResult<Bound<'py, PyAny>> {
            let (lock, task) = self
                .shared
                .acquire_task(py, &timeout_ms, || F::notifier(py))?;
            bridge::run_or_discard(
                py,
                F::RUN,
                OnCancel::Abort,
                task,
                |py, ok| Ok(py_bool(py, ok)),
                move |ok| {
                    if ok {
                        release_in_background(lock)
                    }
                },
            )
        }

        /// The seed's `release()`: stops renewal, then releases (a lost lock releases quietly).
        fn release<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
            let lock = self.shared.lock().into_py(py)?;
            bridge::run(
                py,
                F::RUN,
                OnCancel::Finish,
                async move { lock.release().await },
                |py, ()| Ok(py.None()),
            )
        }

        /// The seed's `extend(additionalTime = ttl)`: sets the expiry to `additional_time_ms` from now.
        #[pyo3(signature = (additional_time_ms=None))]
        fn extend<'py>(
            &self,
            py: Python<'py>,
            additional_time_ms: Option<&Bound<'_, PyAny>>,
        ) -> PyResult<Bound<'py, PyAny>> {
            let task = self.shared.extend_task(py, additional_time_ms)?;
            bridge::run(py, F::RUN, OnCancel::Finish, task, |py, ok| Ok(py_bool(py, ok)))
        }

        @async {
            /// Resolves when the lock stops being held: the loss reason, or None if it was released.
        }
        @sync {
            /// Blocks until the lock stops being held: the loss reason, or None if it was released.
        }
        fn lost<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
            let lock = self.shared.lock().into_py(py)?;
            bridge::run(
                py,
                F::RUN,
                OnCancel::Abort,
                async move { Ok(lock.lost().await) },
                |py, reason| Ok(reason_str(reason).into_pyobject(py)?.unbind()),
            )
        }

        @async { #[pyo3(name = "__aenter__")] }
        @sync { #[pyo3(name = "__enter__")] }
        fn enter<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
            let py = slf.py();
            let task = slf.get().shared.enter_task(py, || F::notifier(py))?;
            let lock = slf.get().shared.lock().into_py(py)?;
            let me = slf.unbind();
            bridge::run_or_discard(
                py,
                F::RUN,
                OnCancel::Abort,
                task,
                move |_py, _| Ok(me.into_any()),
                move |_| release_in_background(lock),
            )
        }

        @async { #[pyo3(name = "__aexit__")] }
        @sync { #[pyo3(name = "__exit__")] }
        fn exit<'py>(
            &self,
            py: Python<'py>,
            _exc_type: &Bound<'_, PyAny>,
            _exc: &Bound<'_, PyAny>,
            _tb: &Bound<'_, PyAny>,
        ) -> PyResult<Bound<'py, PyAny>> {
            self.release(py)
        }

        fn __repr__(&self) -> String {
            self.shared.repr(&format!("{}.DistributedLock", F::MODULE))
        }

        fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
            self.shared.traverse(&visit)
        }

        fn __clear__(&self) {
            self.shared.clear();
        }

        /// Whether the lock is held and its local deadline has not passed.
        #[getter]
        fn is_held(&self, py: Python<'_>) -> PyResult<bool> {
            Ok(self.shared.lock().into_py(py)?.is_held())
        }

        /// The fencing token of the last acquisition (kept after release); None before the first.
        #[getter]
        fn fencing_token(&self, py: Python<'_>) -> PyResult<Option<u64>> {
            Ok(self.shared.lock().into_py(py)?.fencing_token())
        }

        /// How many more milliseconds the lock is safely held (0 when it is not).
        #[getter]
        fn remaining_validity_ms(&self, py: Python<'_>) -> PyResult<u64> {
            Ok(self.shared.lock().into_py(py)?.remaining_validity().as_millis() as u64)
        }

        /// Holds of the owner when this handle acquired (1 unless re-entered).
        #[getter]
        fn hold_count(&self, py: Python<'_>) -> PyResult<u64> {
            Ok(self.shared.lock().into_py(py)?.hold_count())
        }

        /// "idle", "held", "releasing" (a release not yet confirmed: call release() again),
        /// "released" or "lost".
        #[getter]
        fn status(&self, py: Python<'_>) -> PyResult<&'static str> {
            Ok(status_str(self.shared.lock().into_py(py)?.status()))
        }

        /// Why the lock was lost ("taken", "expired", "renewal-failed", "deadline"), or None.
        #[getter]
        fn loss_reason(&self, py: Python<'_>) -> PyResult<Option<&'static str>> {
            Ok(reason_str(self.shared.lock().into_py(py)?.loss_reason()))
        }

        /// The full Redis key (with the client's key prefix).
        #[getter]
        fn key(&self, py: Python<'_>) -> PyResult<String> {
            Ok(self.shared.lock().into_py(py)?.key().to_string())
        }

        /// The lock's TTL in milliseconds.
        #[getter]
        fn ttl_ms(&self, py: Python<'_>) -> PyResult<u64> {
            Ok(self.shared.lock().into_py(py)?.ttl().as_millis() as u64)
        }

        /// The explicit owner id, if any.
        #[getter]
        fn owner_id(&self, py: Python<'_>) -> PyResult<Option<String>> {
            Ok(self.shared.lock().into_py(py)?.owner_id().map(str::to_string))
        }

        /// The priority recorded for the deadlock detector.
        #[getter]
        fn priority(&self, py: Python<'_>) -> PyResult<i32> {
            Ok(self.shared.lock().into_py(py)?.priority())
        }
    }
}
