// SPDX-License-Identifier: MIT OR Apache-2.0
//! `LockManager` (async and blocking, from one definition: see `twin`) over the core's
//! `LockManager`; its scoped `manager.lock(resource)` context is in `scope`.

use std::future::Future;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use pyo3::{PyTraverseError, PyVisit};
use txcoord::binding::options::{self, Host, ACQUIRE, MANAGER};
use txcoord::binding::validate;
use txcoord::{AcquireOptions, LockManager, ManagerOptions};

use crate::bridge::{self, OnCancel, Run};
use crate::client::{resolve, ClientHandle};
use crate::convert::{Arg, Keywords, OwnedRaw};
use crate::error::{guard, to_pyerr, IntoPyResult};
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

impl Request {
    /// `resource, ttl_ms, timeout_ms, **options` of `acquire_lock` and `lock` (`function`, for
    /// the message about an unknown keyword): `on_lost` is the binding's, every other option
    /// the core's `ACQUIRE` table.
    fn parse(
        py: Python<'_>,
        function: &str,
        resource: &Bound<'_, PyAny>,
        ttl_ms: &Arg<'_>,
        timeout_ms: &Arg<'_>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Request> {
        let mut keywords = Keywords::new(options);
        let on_lost = keywords.take("on_lost")?;
        keywords.refuse_unknown(function, |name| {
            options::accepts(ACQUIRE, Host::Python, name)
        })?;
        let raw = OwnedRaw::from_value(resource)?;
        let resource = validate::resource("resource", raw.raw())
            .into_py(py)?
            .to_string();
        let options = keywords
            .read(ACQUIRE, &[("ttl", ttl_ms), ("timeout", timeout_ms)])?
            .into_py(py)?;
        Ok(Request {
            resource,
            options,
            on_lost: callback(py, on_lost.as_ref())?.map(Slot::new),
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
    /// `LockManager(redis, **options)`: the options are the core's `MANAGER` table.
    fn construct(
        py: Python<'_>,
        redis: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Arc<Self>> {
        let keywords = Keywords::new(options);
        keywords.refuse_unknown("LockManager", |name| {
            options::accepts(MANAGER, Host::Python, name)
        })?;
        let options = keywords.read(MANAGER, &[])?.into_py(py)?;
        let client = resolve(py, redis)?;
        let manager =
            LockManager::with_options(&client.get().into_py(py)?, options.clone()).into_py(py)?;
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

    /// One acquisition: the wrapped lock, or None on timeout (`acquire_lock`); or, `scoped`,
    /// the core's scoped acquisition (`LockManager::lock`: the lock or the timeout error kind).
    /// With `adopt`, the request's callback slot is the manager's for this acquisition and hold
    /// only.
    fn acquire_task(
        &self,
        py: Python<'_>,
        request: Request,
        adopt: Option<&Slots>,
        scoped: bool,
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
            let acquired = if scoped {
                Some(manager.lock(&resource, options).await?)
            } else {
                manager.acquire_lock_with(&resource, options).await?
            };
            let Some(lock) = acquired else {
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

    /// The scoped acquisition (`manager.lock(...)`): the core's `LockManager::lock`, which
    /// registers the lock in the manager's table, or fails with the timeout error kind.
    pub(crate) fn enter_task(
        &self,
        py: Python<'_>,
        request: Request,
        notifier: impl FnOnce() -> PyResult<Notifier>,
    ) -> PyResult<impl Future<Output = txcoord::Result<Arc<LockShared>>> + Send + 'static> {
        let acquire = self.acquire_task(py, request, None, true, notifier)?;
        Ok(async move {
            acquire.await?.ok_or_else(|| {
                txcoord::Error::Internal("the scoped acquisition returned no lock".into())
            })
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
        #[pyo3(signature = (redis, **options))]
        fn new(
            py: Python<'_>,
            redis: &Bound<'_, PyAny>,
            options: Option<&Bound<'_, PyDict>>,
        ) -> PyResult<Self> {
            guard(py, || {
                Ok(Self {
                    shared: ManagerShared::construct(py, redis, options)?,
                    on_lost: Slots::default(),
                })
            })
        }

        /// The seed's `acquireLock`: the lock, or None when `timeout_ms` passed first (0 tries once).
        /// Options: `owner_id`, `priority`, `fair` (the core's acquire table), `on_lost`.
        #[pyo3(
            signature = (resource, ttl_ms=Arg::Absent, timeout_ms=Arg::Absent, **options),
            text_signature = "($self, resource, ttl_ms=30000, timeout_ms=10000, **options)"
        )]
        fn acquire_lock<'py>(
            &self,
            py: Python<'py>,
            resource: &Bound<'_, PyAny>,
            ttl_ms: Arg<'_>,
            timeout_ms: Arg<'_>,
            options: Option<&Bound<'_, PyDict>>,
        ) -> PyResult<Bound<'py, PyAny>> {
            let request = Request::parse(
                py,
                "LockManager.acquire_lock",
                resource,
                &ttl_ms,
                &timeout_ms,
                options,
            )?;
            let notifier = || F::notifier(py);
            let task = self
                .shared
                .acquire_task(py, request, Some(&self.on_lost), false, notifier)?;
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
            signature = (resource, ttl_ms=Arg::Absent, timeout_ms=Arg::Absent, **options),
            text_signature = "($self, resource, ttl_ms=30000, timeout_ms=10000, **options)"
        )]
        fn lock(
            &self,
            py: Python<'_>,
            resource: &Bound<'_, PyAny>,
            ttl_ms: Arg<'_>,
            timeout_ms: Arg<'_>,
            options: Option<&Bound<'_, PyDict>>,
        ) -> PyResult<Py<PyAny>> {
            let request = Request::parse(
                py,
                "LockManager.lock",
                resource,
                &ttl_ms,
                &timeout_ms,
                options,
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
