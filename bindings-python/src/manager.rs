// SPDX-License-Identifier: MIT OR Apache-2.0
//! `LockManager` (async and blocking, from one definition: see `twin`) over the core's
//! `LockManager`; its scoped `manager.lock(resource)` context is in `scope`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use pyo3::{PyTraverseError, PyVisit};
use txcoord::binding::validate;
use txcoord::{AcquireOptions, LockKeys, LockManager, ManagerOptions};

use crate::bridge::{self, OnCancel, Run};
use crate::client::{resolve, ClientHandle};
use crate::convert::{Arg, OwnedRaw};
use crate::error::{guard, python_names, to_pyerr, IntoPyResult};
use crate::lock::{release_in_background, LockShared};
use crate::on_lost::{callback, Notifier, Slot, Slots, Spend, Watch};
use crate::runtime::ForkSafe;
use crate::twin::{twins, Async, Blocking, Flavour};

/// What a Python manager shares with its tasks.
pub(crate) struct ManagerShared {
    client: Arc<ClientHandle>,
    manager: ForkSafe<LockManager>,
    options: ManagerOptions,
}

/// One `acquire_lock`/`lock` call, validated.
#[derive(Clone)]
pub(crate) struct Request {
    resource: String,
    options: AcquireOptions,
    /// The callback's slot, owned by the Python object that keeps the request: the manager
    /// (`acquire_lock`, adopted into its `Slots`) or the scoped context (`lock`).
    on_lost: Option<Arc<Slot>>,
}

/// `owner_id`, `priority` and `fair`, validated: what a manager and each of its calls take.
fn owner_priority_fair(
    py: Python<'_>,
    owner_id: Option<&Bound<'_, PyAny>>,
    priority: Option<&Bound<'_, PyAny>>,
    fair: Option<&Bound<'_, PyAny>>,
) -> PyResult<(Option<String>, Option<i32>, Option<bool>)> {
    let raw = OwnedRaw::from_optional(owner_id)?;
    let owner = validate::owner_id("owner_id", raw.raw()).into_py(py)?;
    let owner = owner.map(str::to_string);
    let raw = OwnedRaw::from_optional(priority)?;
    let priority = validate::priority("priority", raw.raw()).into_py(py)?;
    let raw = OwnedRaw::from_optional(fair)?;
    let fair = validate::flag("fair", raw.raw()).into_py(py)?;
    Ok((owner, priority, fair))
}

impl Request {
    #[allow(clippy::too_many_arguments)]
    fn parse(
        py: Python<'_>,
        resource: &Bound<'_, PyAny>,
        ttl_ms: &Arg<'_>,
        timeout_ms: &Arg<'_>,
        owner_id: Option<&Bound<'_, PyAny>>,
        priority: Option<&Bound<'_, PyAny>>,
        fair: Option<&Bound<'_, PyAny>>,
        on_lost: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Request> {
        let raw = OwnedRaw::from_value(resource)?;
        let resource = validate::resource("resource", raw.raw())
            .into_py(py)?
            .to_string();
        let mut options = AcquireOptions::new();
        let raw = OwnedRaw::from_arg(ttl_ms)?;
        if let Some(ttl) = validate::ttl("ttl_ms", raw.raw()).into_py(py)? {
            options = options.set_ttl(ttl);
        }
        let raw = OwnedRaw::from_arg(timeout_ms)?;
        if let Some(timeout) = validate::timeout("timeout_ms", raw.raw()).into_py(py)? {
            options = options.set_timeout(timeout);
        }
        let (owner, priority, fair) = owner_priority_fair(py, owner_id, priority, fair)?;
        if let Some(owner) = owner {
            options = options.set_owner_id(owner);
        }
        if let Some(p) = priority {
            options = options.set_priority(p);
        }
        if let Some(f) = fair {
            options = options.set_fair(f);
        }
        Ok(Request {
            resource,
            options,
            on_lost: callback(py, on_lost)?.map(Slot::new),
        })
    }

    /// For the `__traverse__` of the Python object that keeps the request.
    pub(crate) fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        match &self.on_lost {
            Some(slot) => slot.traverse(visit),
            None => Ok(()),
        }
    }

    /// For the `__clear__` of the Python object that keeps the request.
    pub(crate) fn clear(&self) {
        if let Some(slot) = &self.on_lost {
            slot.clear();
        }
    }
}

impl ManagerShared {
    #[allow(clippy::too_many_arguments)]
    fn construct(
        py: Python<'_>,
        redis: &Bound<'_, PyAny>,
        owner_id: Option<&Bound<'_, PyAny>>,
        priority: Option<&Bound<'_, PyAny>>,
        fair: Option<&Bound<'_, PyAny>>,
        fallback_poll_ms: Option<&Bound<'_, PyAny>>,
        waiter_lease_ms: Option<&Bound<'_, PyAny>>,
        deadlock_timeout_ms: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Arc<Self>> {
        let mut options = ManagerOptions::new();
        let (owner, priority, fair) = owner_priority_fair(py, owner_id, priority, fair)?;
        if let Some(owner) = owner {
            options = options.set_owner_id(owner);
        }
        if let Some(p) = priority {
            options = options.set_priority(p);
        }
        if let Some(f) = fair {
            options = options.set_fair(f);
        }
        // Type checks here; the ranges are the core's (which names them without `_ms`).
        let raw = OwnedRaw::from_optional(fallback_poll_ms)?;
        if let Some(ms) =
            validate::millis("fallback_poll_ms", raw.raw(), 1, validate::MAX_MS).into_py(py)?
        {
            options = options.set_fallback_poll(Duration::from_millis(ms));
        }
        let raw = OwnedRaw::from_optional(waiter_lease_ms)?;
        if let Some(ms) =
            validate::millis("waiter_lease_ms", raw.raw(), 1, validate::MAX_MS).into_py(py)?
        {
            options = options.set_waiter_lease(Duration::from_millis(ms));
        }
        let raw = OwnedRaw::from_optional(deadlock_timeout_ms)?;
        if let Some(ms) =
            validate::millis("deadlock_timeout_ms", raw.raw(), 0, validate::MAX_MS).into_py(py)?
        {
            options = options.set_deadlock_timeout(Duration::from_millis(ms));
        }
        let client = resolve(py, redis)?;
        let manager = LockManager::with_options(&client.get().into_py(py)?, options.clone())
            .map_err(|e| {
                python_names(
                    e,
                    &[
                        ("fallback_poll", "fallback_poll_ms"),
                        ("waiter_lease", "waiter_lease_ms"),
                        ("deadlock_timeout", "deadlock_timeout_ms"),
                    ],
                )
            })
            .into_py(py)?;
        Ok(Arc::new(ManagerShared {
            client,
            manager: ForkSafe::new(manager),
            options,
        }))
    }

    /// The owner id, for `__repr__` (without rebuilding a forked child's manager).
    fn options_owner(&self) -> Option<String> {
        self.manager
            .peek()
            .and_then(|m| m.owner_id().map(str::to_string))
    }

    /// The core manager for this process (a forked child starts with an empty table).
    fn manager(&self) -> txcoord::Result<LockManager> {
        self.manager
            .get(|_| LockManager::with_options(&self.client.get()?, self.options.clone()))
    }

    /// One acquisition: the wrapped lock, or None on timeout. With `adopt`, the request's
    /// callback slot is the manager's for this acquisition and hold only.
    fn acquire_task(
        &self,
        py: Python<'_>,
        request: Request,
        adopt: Option<&Slots>,
        notifier: impl FnOnce() -> PyResult<Notifier>,
    ) -> PyResult<impl Future<Output = txcoord::Result<Option<Arc<LockShared>>>> + Send + 'static>
    {
        let manager = self.manager().into_py(py)?;
        let client = self.client.clone();
        let Request {
            resource,
            options,
            on_lost,
        } = request;
        // When the lock is lost, the watch finds the callback through the slot of whoever
        // acquired it (manager or context) or the lock object's own, whichever still lives; it
        // holds neither, so a callback that refers to its owner makes a cycle the garbage
        // collector sees.
        let watch = match &on_lost {
            Some(slot) => {
                let spend = adopt.map(|slots| {
                    slots.adopt(slot.clone());
                    Spend::new(slot)
                });
                let own = slot.get(py).map(Slot::new);
                Some((own, Arc::downgrade(slot), spend, notifier()?))
            }
            None => None,
        };
        drop(on_lost);
        Ok(async move {
            let Some(lock) = manager.acquire_lock_with(&resource, options).await? else {
                return Ok(None);
            };
            let Some((own, acquirer, spend, notifier)) = watch else {
                return Ok(Some(LockShared::new(client, lock, None, false)));
            };
            let mut slots = vec![acquirer];
            if let Some(own) = &own {
                slots.push(Arc::downgrade(own));
            }
            let shared = LockShared::new(client, lock.clone(), own, false);
            shared.set_watcher(Watch::new(slots, spend, notifier).spawn(&lock));
            Ok(Some(shared))
        })
    }

    /// The scoped acquisition: the lock, or the timeout error kind.
    pub(crate) fn enter_task(
        &self,
        py: Python<'_>,
        request: Request,
        notifier: impl FnOnce() -> PyResult<Notifier>,
    ) -> PyResult<impl Future<Output = txcoord::Result<Arc<LockShared>>> + Send + 'static> {
        let client = self.client.get().into_py(py)?;
        let key = LockKeys::for_resource(client.key_prefix(), &request.resource)
            .into_py(py)?
            .lock;
        let acquire = self.acquire_task(py, request, None, notifier)?;
        Ok(async move {
            let started = tokio::time::Instant::now();
            match acquire.await? {
                Some(lock) => Ok(lock),
                None => Err(txcoord::Error::Timeout {
                    key,
                    waited_ms: started.elapsed().as_millis() as u64,
                }),
            }
        })
    }

    fn release_lock_task(
        &self,
        py: Python<'_>,
        resource: &Bound<'_, PyAny>,
    ) -> PyResult<impl Future<Output = txcoord::Result<()>> + Send + 'static> {
        let raw = OwnedRaw::from_value(resource)?;
        let resource = validate::resource("resource", raw.raw())
            .into_py(py)?
            .to_string();
        let manager = self.manager().into_py(py)?;
        Ok(async move { manager.release_lock(&resource).await })
    }
}

/// Runs `releases` (of every lock a manager holds); its value is the list of the failed ones,
/// as (resource, exception) pairs.
fn releases(
    py: Python<'_>,
    how: Run,
    releases: impl Future<Output = Vec<(String, txcoord::Error)>> + Send + 'static,
) -> PyResult<Bound<'_, PyAny>> {
    let releases = async move { Ok(releases.await) };
    bridge::run(py, how, OnCancel::Finish, releases, failures_list)
}

fn failures_list(py: Python<'_>, failures: Vec<(String, txcoord::Error)>) -> PyResult<Py<PyAny>> {
    let list = PyList::empty(py);
    for (resource, e) in failures {
        let err = to_pyerr(py, e);
        list.append(PyTuple::new(
            py,
            [
                resource.into_pyobject(py)?.into_any(),
                err.into_value(py).into_bound(py).into_any(),
            ],
        )?)?;
    }
    Ok(list.into_any().unbind())
}

twins! {
    /// The seed's `LockManager` (async API): locks by resource name (key `lock:<resource>`),
    /// waits woken by release notifications, owner ids (re-entrant), fair mode.
    #[pyclass(name = "LockManager", module = "txcoord", frozen)]
    pub(crate) struct PyLockManager: Async;
    /// The seed's `LockManager` (blocking API, `txcoord.sync.LockManager`).
    #[pyclass(name = "LockManager", module = "txcoord.sync", frozen)]
    pub(crate) struct PySyncLockManager: Blocking;
    fields {
        shared: Arc<ManagerShared>,
        /// The `on_lost` callbacks of the locks this manager acquired and holds.
        on_lost: Slots,
    }
    flavour F;
    methods {
        #[new]
        #[pyo3(
            signature = (redis, *, owner_id=None, priority=None, fair=None, fallback_poll_ms=None, waiter_lease_ms=None, deadlock_timeout_ms=None),
            text_signature = "(redis, *, owner_id=None, priority=0, fair=False, fallback_poll_ms=None, waiter_lease_ms=None, deadlock_timeout_ms=None)"
        )]
        #[allow(clippy::too_many_arguments)]
        fn new(
            py: Python<'_>,
            redis: &Bound<'_, PyAny>,
            owner_id: Option<&Bound<'_, PyAny>>,
            priority: Option<&Bound<'_, PyAny>>,
            fair: Option<&Bound<'_, PyAny>>,
            fallback_poll_ms: Option<&Bound<'_, PyAny>>,
            waiter_lease_ms: Option<&Bound<'_, PyAny>>,
            deadlock_timeout_ms: Option<&Bound<'_, PyAny>>,
        ) -> PyResult<Self> {
            guard(py, || {
                Ok(Self {
                    shared: ManagerShared::construct(
                        py,
                        redis,
                        owner_id,
                        priority,
                        fair,
                        fallback_poll_ms,
                        waiter_lease_ms,
                        deadlock_timeout_ms,
                    )?,
                    on_lost: Slots::default(),
                })
            })
        }

        /// The seed's `acquireLock`: the lock, or None when `timeout_ms` passed first (0 tries once).
        #[pyo3(
            signature = (resource, ttl_ms=Arg::Absent, timeout_ms=Arg::Absent, *, owner_id=None, priority=None, fair=None, on_lost=None),
            text_signature = "($self, resource, ttl_ms=30000, timeout_ms=10000, *, owner_id=None, priority=None, fair=None, on_lost=None)"
        )]
        #[allow(clippy::too_many_arguments)]
        fn acquire_lock<'py>(
            &self,
            py: Python<'py>,
            resource: &Bound<'_, PyAny>,
            ttl_ms: Arg<'_>,
            timeout_ms: Arg<'_>,
            owner_id: Option<&Bound<'_, PyAny>>,
            priority: Option<&Bound<'_, PyAny>>,
            fair: Option<&Bound<'_, PyAny>>,
            on_lost: Option<&Bound<'_, PyAny>>,
        ) -> PyResult<Bound<'py, PyAny>> {
            let request = Request::parse(
                py,
                resource,
                &ttl_ms,
                &timeout_ms,
                owner_id,
                priority,
                fair,
                on_lost,
            )?;
            let notifier = || F::notifier(py);
            let task = self
                .shared
                .acquire_task(py, request, Some(&self.on_lost), notifier)?;
            bridge::run_or_discard(
                py,
                F::RUN,
                OnCancel::Abort,
                task,
                |py, lock| match lock {
                    Some(shared) => F::lock(py, shared),
                    None => Ok(py.None()),
                },
                |lock| {
                    if let Some(shared) = lock {
                        if let Ok(l) = shared.lock() {
                            release_in_background(l);
                        }
                    }
                },
            )
        }

        @async {
            /// The scoped form: `async with manager.lock("order:42") as lock:` acquires (raising
            /// LockTimeoutError when it cannot) and always releases.
        }
        @sync {
            /// The scoped form: `with manager.lock("order:42") as lock:` acquires (raising
            /// LockTimeoutError when it cannot) and always releases.
        }
        #[pyo3(
            signature = (resource, ttl_ms=Arg::Absent, timeout_ms=Arg::Absent, *, owner_id=None, priority=None, fair=None, on_lost=None),
            text_signature = "($self, resource, ttl_ms=30000, timeout_ms=10000, *, owner_id=None, priority=None, fair=None, on_lost=None)"
        )]
        #[allow(clippy::too_many_arguments)]
        fn lock(
            &self,
            py: Python<'_>,
            resource: &Bound<'_, PyAny>,
            ttl_ms: Arg<'_>,
            timeout_ms: Arg<'_>,
            owner_id: Option<&Bound<'_, PyAny>>,
            priority: Option<&Bound<'_, PyAny>>,
            fair: Option<&Bound<'_, PyAny>>,
            on_lost: Option<&Bound<'_, PyAny>>,
        ) -> PyResult<Py<PyAny>> {
            let request = Request::parse(
                py,
                resource,
                &ttl_ms,
                &timeout_ms,
                owner_id,
                priority,
                fair,
                on_lost,
            )?;
            F::context(py, self.shared.clone(), request)
        }

        /// The seed's `releaseLock`: releases the most recent lock this manager holds on `resource`.
        fn release_lock<'py>(
            &self,
            py: Python<'py>,
            resource: &Bound<'_, PyAny>,
        ) -> PyResult<Bound<'py, PyAny>> {
            let task = self.shared.release_lock_task(py, resource)?;
            bridge::run(py, F::RUN, OnCancel::Finish, task, |py, ()| Ok(py.None()))
        }

        /// The seed's `releaseAllLocks`: attempts every release; returns the failures as
        /// (resource, exception) pairs instead of raising.
        fn release_all_locks<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
            let manager = self.shared.manager().into_py(py)?;
            releases(py, F::RUN, async move { manager.release_all_locks().await })
        }

        /// Acquires several resources together, in one global order (sorted, duplicates
        /// removed), so callers asking for overlapping sets cannot deadlock each other: the
        /// locks, in that order, or None when `timeout_ms` (for the whole set) passed first,
        /// and then none of them is held.
        #[pyo3(
            signature = (resources, ttl_ms=Arg::Absent, timeout_ms=Arg::Absent, *, owner_id=None, priority=None, fair=None),
            text_signature = "($self, resources, ttl_ms=30000, timeout_ms=10000, *, owner_id=None, priority=None, fair=None)"
        )]
        #[allow(clippy::too_many_arguments)]
        fn acquire_locks<'py>(
            &self,
            py: Python<'py>,
            resources: &Bound<'_, PyAny>,
            ttl_ms: Arg<'_>,
            timeout_ms: Arg<'_>,
            owner_id: Option<&Bound<'_, PyAny>>,
            priority: Option<&Bound<'_, PyAny>>,
            fair: Option<&Bound<'_, PyAny>>,
        ) -> PyResult<Bound<'py, PyAny>> {
            let (resources, options) = crate::manager_set::acquire_args(
                py, resources, &ttl_ms, &timeout_ms, owner_id, priority, fair,
            )?;
            let manager = self.shared.manager().into_py(py)?;
            let client = self.shared.client.clone();
            bridge::run_or_discard(
                py,
                F::RUN,
                OnCancel::Abort,
                async move {
                    let names: Vec<&str> = resources.iter().map(String::as_str).collect();
                    manager.acquire_locks(&names, options).await
                },
                move |py, locks| match locks {
                    None => Ok(py.None()),
                    Some(locks) => {
                        let list = PyList::empty(py);
                        for l in locks {
                            list.append(F::lock(py, LockShared::new(client.clone(), l, None, false))?)?;
                        }
                        Ok(list.into_any().unbind())
                    }
                },
                |locks| locks.into_iter().flatten().for_each(release_in_background),
            )
        }

        /// Releases the locks this manager holds on `resources` together (as `acquire_locks`
        /// took them); returns the failures as (resource, exception) pairs instead of raising.
        fn release_locks<'py>(&self, py: Python<'py>, resources: &Bound<'_, PyAny>) -> PyResult<Bound<'py, PyAny>> {
            let resources = crate::manager_set::resources(py, resources)?;
            let manager = self.shared.manager().into_py(py)?;
            releases(py, F::RUN, async move {
                let names: Vec<&str> = resources.iter().map(String::as_str).collect();
                manager.release_locks(&names).await
            })
        }

        /// Resources this manager currently holds locks on (sorted).
        #[getter]
        fn held_resources(&self, py: Python<'_>) -> PyResult<Vec<String>> {
            Ok(self.shared.manager().into_py(py)?.held_resources())
        }

        @async { #[pyo3(name = "aclose")] }
        @sync { #[pyo3(name = "close")] }
        /// Releases everything this manager holds and refuses further acquisitions; returns the
        /// failed releases as (resource, exception) pairs.
        fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
            let manager = self.shared.manager().into_py(py)?;
            releases(py, F::RUN, async move { manager.close().await })
        }

        /// The manager's owner id, if any.
        #[getter]
        fn owner_id(&self, py: Python<'_>) -> PyResult<Option<String>> {
            Ok(self
                .shared
                .manager()
                .into_py(py)?
                .owner_id()
                .map(str::to_string))
        }

        @async { #[pyo3(name = "__aenter__")] }
        @sync { #[pyo3(name = "__enter__")] }
        fn enter<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
            let py = slf.py();
            F::ready(py, slf.into_any().unbind())
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
            let manager = self.shared.manager().into_py(py)?;
            bridge::run(
                py,
                F::RUN,
                OnCancel::Finish,
                async move { Ok(manager.close().await) },
                |py, _| Ok(py.None()),
            )
        }

        fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
            self.on_lost.traverse(&visit)
        }

        fn __clear__(&self) {
            self.on_lost.clear();
        }

        fn __repr__(&self) -> String {
            format!(
                "<{}.LockManager owner_id={:?}>",
                F::MODULE,
                self.shared.options_owner()
            )
        }
    }
}
