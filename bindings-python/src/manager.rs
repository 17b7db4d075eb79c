// SPDX-License-Identifier: MIT OR Apache-2.0
//! `LockManager` (async and blocking) over the core's `LockManager`, and the scoped
//! `manager.lock(resource)` context manager.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use txcoord::validate;
use txcoord::{AcquireOptions, LockKeys, LockManager, ManagerOptions};

use crate::bridge::{self, LoopQueue, OnCancel};
use crate::client::{resolve, ClientHandle};
use crate::convert::{Arg, OwnedRaw};
use crate::error::{guard, python_names, to_pyerr, IntoPyResult};
use crate::lock::{
    callback, release_in_background, LockShared, Notifier, PyDistributedLock, PySyncDistributedLock,
};
use crate::runtime::ForkSafe;

/// What a Python manager shares with its tasks.
pub(crate) struct ManagerShared {
    client: Arc<ClientHandle>,
    manager: ForkSafe<LockManager>,
    options: ManagerOptions,
}

/// One `acquire_lock`/`lock` call, validated.
struct Request {
    resource: String,
    options: AcquireOptions,
    on_lost: Option<Py<PyAny>>,
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
        let raw = OwnedRaw::from_optional(owner_id)?;
        if let Some(owner) = validate::owner_id("owner_id", raw.raw()).into_py(py)? {
            options = options.set_owner_id(owner);
        }
        let raw = OwnedRaw::from_optional(priority)?;
        if let Some(p) = validate::priority("priority", raw.raw()).into_py(py)? {
            options = options.set_priority(p);
        }
        let raw = OwnedRaw::from_optional(fair)?;
        if let Some(f) = validate::flag("fair", raw.raw()).into_py(py)? {
            options = options.set_fair(f);
        }
        Ok(Request {
            resource,
            options,
            on_lost: callback(py, on_lost)?,
        })
    }

    fn clone_ref(&self, py: Python<'_>) -> Request {
        Request {
            resource: self.resource.clone(),
            options: self.options.clone(),
            on_lost: self.on_lost.as_ref().map(|c| c.clone_ref(py)),
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
    ) -> PyResult<Arc<Self>> {
        let mut options = ManagerOptions::new();
        let raw = OwnedRaw::from_optional(owner_id)?;
        if let Some(owner) = validate::owner_id("owner_id", raw.raw()).into_py(py)? {
            options = options.set_owner_id(owner);
        }
        let raw = OwnedRaw::from_optional(priority)?;
        if let Some(p) = validate::priority("priority", raw.raw()).into_py(py)? {
            options = options.set_priority(p);
        }
        let raw = OwnedRaw::from_optional(fair)?;
        if let Some(f) = validate::flag("fair", raw.raw()).into_py(py)? {
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
        let client = resolve(py, redis)?;
        let manager = LockManager::with_options(&client.get().into_py(py)?, options.clone())
            .map_err(|e| {
                python_names(
                    e,
                    &[
                        ("fallback_poll", "fallback_poll_ms"),
                        ("waiter_lease", "waiter_lease_ms"),
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

    /// The core manager for this process (a forked child starts with an empty table).
    fn manager(&self) -> txcoord::Result<LockManager> {
        self.manager
            .get(|_| LockManager::with_options(&self.client.get()?, self.options.clone()))
    }

    /// One acquisition: the wrapped lock, or None on timeout.
    fn acquire_task(
        &self,
        py: Python<'_>,
        request: Request,
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
        // The watcher owns the callback (until the lock is released or lost); the handle does
        // not keep it, so a callback that refers to the lock makes no reference cycle.
        let watch = match on_lost {
            Some(cb) => Some((cb, notifier()?)),
            None => None,
        };
        Ok(async move {
            let Some(lock) = manager.acquire_lock_with(&resource, options).await? else {
                return Ok(None);
            };
            let shared = LockShared::new(client, lock.clone(), None, false);
            if let Some((cb, notifier)) = watch {
                let w = crate::lock::Watch::new(cb, notifier);
                shared.set_watcher(w.spawn(&lock));
            }
            Ok(Some(shared))
        })
    }

    /// The scoped acquisition: the lock, or the timeout error kind.
    fn enter_task(
        &self,
        py: Python<'_>,
        request: Request,
        notifier: impl FnOnce() -> PyResult<Notifier>,
    ) -> PyResult<impl Future<Output = txcoord::Result<Arc<LockShared>>> + Send + 'static> {
        let client = self.client.get().into_py(py)?;
        let key = LockKeys::for_resource(client.key_prefix(), &request.resource)
            .into_py(py)?
            .lock;
        let acquire = self.acquire_task(py, request, notifier)?;
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

fn loop_notifier(py: Python<'_>) -> impl FnOnce() -> PyResult<Notifier> + '_ {
    move || Ok(Notifier::Loop(LoopQueue::current(py)?))
}

fn thread_notifier() -> PyResult<Notifier> {
    Ok(Notifier::Thread)
}

/// The seed's `LockManager` (async API): locks by resource name (key `lock:<resource>`),
/// waits woken by release notifications, owner ids (re-entrant), fair mode.
#[pyclass(name = "LockManager", module = "txcoord", frozen)]
pub(crate) struct PyLockManager {
    shared: Arc<ManagerShared>,
}

#[pymethods]
impl PyLockManager {
    #[new]
    #[pyo3(
        signature = (redis, *, owner_id=None, priority=None, fair=None, fallback_poll_ms=None, waiter_lease_ms=None),
        text_signature = "(redis, *, owner_id=None, priority=0, fair=False, fallback_poll_ms=None, waiter_lease_ms=None)"
    )]
    fn new(
        py: Python<'_>,
        redis: &Bound<'_, PyAny>,
        owner_id: Option<&Bound<'_, PyAny>>,
        priority: Option<&Bound<'_, PyAny>>,
        fair: Option<&Bound<'_, PyAny>>,
        fallback_poll_ms: Option<&Bound<'_, PyAny>>,
        waiter_lease_ms: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        guard(py, || {
            Ok(PyLockManager {
                shared: ManagerShared::construct(
                    py,
                    redis,
                    owner_id,
                    priority,
                    fair,
                    fallback_poll_ms,
                    waiter_lease_ms,
                )?,
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
        let task = self.shared.acquire_task(py, request, loop_notifier(py))?;
        bridge::future_or_discard(
            py,
            OnCancel::Abort,
            task,
            |py, lock| match lock {
                Some(shared) => Ok(Py::new(py, PyDistributedLock { shared })?.into_any()),
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

    /// The scoped form: `async with manager.lock("order:42") as lock:` acquires (raising
    /// LockTimeoutError when it cannot) and always releases.
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
    ) -> PyResult<PyLockContext> {
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
        Ok(PyLockContext {
            manager: self.shared.clone(),
            request,
            held: Mutex::new(Vec::new()),
        })
    }

    /// The seed's `releaseLock`: releases the most recent lock this manager holds on `resource`.
    fn release_lock<'py>(
        &self,
        py: Python<'py>,
        resource: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let task = self.shared.release_lock_task(py, resource)?;
        bridge::future(py, OnCancel::Finish, task, |py, ()| Ok(py.None()))
    }

    /// The seed's `releaseAllLocks`: attempts every release; returns the failures as
    /// (resource, exception) pairs instead of raising.
    fn release_all_locks<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let manager = self.shared.manager().into_py(py)?;
        bridge::future(
            py,
            OnCancel::Finish,
            async move { Ok(manager.release_all_locks().await) },
            failures_list,
        )
    }

    /// Resources this manager currently holds locks on (sorted).
    #[getter]
    fn held_resources(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        Ok(self.shared.manager().into_py(py)?.held_resources())
    }

    /// Releases everything this manager holds and refuses further acquisitions; returns the
    /// failed releases as (resource, exception) pairs.
    fn aclose<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let manager = self.shared.manager().into_py(py)?;
        bridge::future(
            py,
            OnCancel::Finish,
            async move { Ok(manager.close().await) },
            failures_list,
        )
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

    fn __aenter__<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        bridge::ready(py, slf.into_any().unbind())
    }

    fn __aexit__<'py>(
        &self,
        py: Python<'py>,
        _exc_type: &Bound<'_, PyAny>,
        _exc: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let manager = self.shared.manager().into_py(py)?;
        bridge::future(
            py,
            OnCancel::Finish,
            async move { Ok(manager.close().await) },
            |py, _| Ok(py.None()),
        )
    }

    fn __repr__(&self) -> String {
        format!(
            "<txcoord.LockManager owner_id={:?}>",
            self.shared.options_owner()
        )
    }
}

impl ManagerShared {
    fn options_owner(&self) -> Option<String> {
        self.manager
            .peek()
            .and_then(|m| m.owner_id().map(str::to_string))
    }
}

/// `async with manager.lock(resource) as lock:` (from `LockManager.lock`).
#[pyclass(name = "LockContext", module = "txcoord", frozen)]
pub(crate) struct PyLockContext {
    manager: Arc<ManagerShared>,
    request: Request,
    // A std mutex: locks entered and not yet exited (a stack, for nested use of one context).
    held: Mutex<Vec<Arc<LockShared>>>,
}

#[pymethods]
impl PyLockContext {
    fn __aenter__<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let ctx = slf.get();
        let task = ctx
            .manager
            .enter_task(py, ctx.request.clone_ref(py), loop_notifier(py))?;
        let me = slf.clone().unbind();
        bridge::future_or_discard(
            py,
            OnCancel::Abort,
            task,
            move |py, shared: Arc<LockShared>| {
                me.get()
                    .held
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(shared.clone());
                Ok(Py::new(py, PyDistributedLock { shared })?.into_any())
            },
            |shared| {
                if let Ok(l) = shared.lock() {
                    release_in_background(l);
                }
            },
        )
    }

    fn __aexit__<'py>(
        &self,
        py: Python<'py>,
        _exc_type: &Bound<'_, PyAny>,
        _exc: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let shared = self.held.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let lock = shared.map(|s| s.lock()).transpose().into_py(py)?;
        bridge::future(
            py,
            OnCancel::Finish,
            async move {
                match lock {
                    Some(l) => l.release().await,
                    None => Ok(()),
                }
            },
            |py, ()| Ok(py.None()),
        )
    }
}

/// The seed's `LockManager` (blocking API, `txcoord.sync.LockManager`).
#[pyclass(name = "LockManager", module = "txcoord.sync", frozen)]
pub(crate) struct PySyncLockManager {
    shared: Arc<ManagerShared>,
}

#[pymethods]
impl PySyncLockManager {
    #[new]
    #[pyo3(
        signature = (redis, *, owner_id=None, priority=None, fair=None, fallback_poll_ms=None, waiter_lease_ms=None),
        text_signature = "(redis, *, owner_id=None, priority=0, fair=False, fallback_poll_ms=None, waiter_lease_ms=None)"
    )]
    fn new(
        py: Python<'_>,
        redis: &Bound<'_, PyAny>,
        owner_id: Option<&Bound<'_, PyAny>>,
        priority: Option<&Bound<'_, PyAny>>,
        fair: Option<&Bound<'_, PyAny>>,
        fallback_poll_ms: Option<&Bound<'_, PyAny>>,
        waiter_lease_ms: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        guard(py, || {
            Ok(PySyncLockManager {
                shared: ManagerShared::construct(
                    py,
                    redis,
                    owner_id,
                    priority,
                    fair,
                    fallback_poll_ms,
                    waiter_lease_ms,
                )?,
            })
        })
    }

    /// The seed's `acquireLock`: the lock, or None when `timeout_ms` passed first (0 tries once).
    #[pyo3(
        signature = (resource, ttl_ms=Arg::Absent, timeout_ms=Arg::Absent, *, owner_id=None, priority=None, fair=None, on_lost=None),
        text_signature = "($self, resource, ttl_ms=30000, timeout_ms=10000, *, owner_id=None, priority=None, fair=None, on_lost=None)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn acquire_lock(
        &self,
        py: Python<'_>,
        resource: &Bound<'_, PyAny>,
        ttl_ms: Arg<'_>,
        timeout_ms: Arg<'_>,
        owner_id: Option<&Bound<'_, PyAny>>,
        priority: Option<&Bound<'_, PyAny>>,
        fair: Option<&Bound<'_, PyAny>>,
        on_lost: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Option<PySyncDistributedLock>> {
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
        let task = self.shared.acquire_task(py, request, thread_notifier)?;
        Ok(bridge::block(py, task)?.map(|shared| PySyncDistributedLock { shared }))
    }

    /// The scoped form: `with manager.lock("order:42") as lock:` acquires (raising
    /// LockTimeoutError when it cannot) and always releases.
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
    ) -> PyResult<PySyncLockContext> {
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
        Ok(PySyncLockContext {
            manager: self.shared.clone(),
            request,
            held: Mutex::new(Vec::new()),
        })
    }

    /// The seed's `releaseLock`: releases the most recent lock this manager holds on `resource`.
    fn release_lock(&self, py: Python<'_>, resource: &Bound<'_, PyAny>) -> PyResult<()> {
        let task = self.shared.release_lock_task(py, resource)?;
        bridge::block(py, task)
    }

    /// The seed's `releaseAllLocks`: attempts every release; returns the failures as
    /// (resource, exception) pairs instead of raising.
    fn release_all_locks(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let manager = self.shared.manager().into_py(py)?;
        let failures = bridge::block(py, async move { Ok(manager.release_all_locks().await) })?;
        failures_list(py, failures)
    }

    /// Resources this manager currently holds locks on (sorted).
    #[getter]
    fn held_resources(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        Ok(self.shared.manager().into_py(py)?.held_resources())
    }

    /// Releases everything this manager holds and refuses further acquisitions; returns the
    /// failed releases as (resource, exception) pairs.
    fn close(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let manager = self.shared.manager().into_py(py)?;
        let failures = bridge::block(py, async move { Ok(manager.close().await) })?;
        failures_list(py, failures)
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

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: &Bound<'_, PyAny>,
        _exc: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        self.close(py).map(drop)
    }

    fn __repr__(&self) -> String {
        format!(
            "<txcoord.sync.LockManager owner_id={:?}>",
            self.shared.options_owner()
        )
    }
}

/// `with manager.lock(resource) as lock:` (from `txcoord.sync.LockManager.lock`).
#[pyclass(name = "LockContext", module = "txcoord.sync", frozen)]
pub(crate) struct PySyncLockContext {
    manager: Arc<ManagerShared>,
    request: Request,
    // A std mutex: locks entered and not yet exited.
    held: Mutex<Vec<Arc<LockShared>>>,
}

#[pymethods]
impl PySyncLockContext {
    fn __enter__(&self, py: Python<'_>) -> PyResult<PySyncDistributedLock> {
        let task = self
            .manager
            .enter_task(py, self.request.clone_ref(py), thread_notifier)?;
        let shared = bridge::block(py, task)?;
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(shared.clone());
        Ok(PySyncDistributedLock { shared })
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: &Bound<'_, PyAny>,
        _exc: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let shared = self.held.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let lock = shared.map(|s| s.lock()).transpose().into_py(py)?;
        bridge::block(py, async move {
            match lock {
                Some(l) => l.release().await,
                None => Ok(()),
            }
        })
    }
}
