// SPDX-License-Identifier: MIT OR Apache-2.0
//! The scoped form of `LockManager`: `manager.lock(resource)`, a context manager that
//! acquires on entry with the core's `LockManager::lock` (which registers the lock in the
//! manager's table, or fails with the timeout error kind: `LockTimeoutError`) and always
//! releases on exit (async `LockContext` and blocking `txcoord.sync.LockContext`, from one
//! definition: see `twin`).

use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::{PyTraverseError, PyVisit};

use crate::bridge::{self, OnCancel};
use crate::error::IntoPyResult;
use crate::lock::{release_in_background, LockShared};
use crate::manager::{ManagerShared, Request};
use crate::twin::{twins, Async, Blocking, Flavour};

twins! {
    /// `async with manager.lock(resource) as lock:` (from `LockManager.lock`).
    #[pyclass(name = "LockContext", module = "txcoord", frozen)]
    pub(crate) struct PyLockContext: Async;
    /// `with manager.lock(resource) as lock:` (from `txcoord.sync.LockManager.lock`).
    #[pyclass(name = "LockContext", module = "txcoord.sync", frozen)]
    pub(crate) struct PySyncLockContext: Blocking;
    fields {
        manager: Arc<ManagerShared>,
        request: Request,
        // A std mutex: the locks this context entered and has not exited yet, each released by
        // its own exit (a stack, for nested use of one context). The manager's table, not
        // this, is what `held_resources` reads.
        held: Mutex<Vec<Arc<LockShared>>>,
    }
    flavour F;
    methods {
        @async { #[pyo3(name = "__aenter__")] }
        @sync { #[pyo3(name = "__enter__")] }
        fn enter<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
            let py = slf.py();
            let ctx = slf.get();
            let task = ctx
                .manager
                .enter_task(py, ctx.request.clone(), || F::notifier(py))?;
            let me = slf.clone().unbind();
            bridge::run_or_discard(
                py,
                F::RUN,
                OnCancel::Abort,
                task,
                move |py, shared: Arc<LockShared>| {
                    me.get()
                        .held
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(shared.clone());
                    F::lock(py, shared)
                },
                |shared| {
                    if let Ok(l) = shared.lock() {
                        release_in_background(l);
                    }
                },
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
            let shared = self.held.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let lock = shared.map(|s| s.lock()).transpose().into_py(py)?;
            bridge::run(
                py,
                F::RUN,
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

        fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
            self.request.traverse(&visit)
        }

        fn __clear__(&self) {
            self.request.clear();
        }
    }
    impl {
        pub(crate) fn new(manager: Arc<ManagerShared>, request: Request) -> Self {
            Self {
                manager,
                request,
                held: Mutex::new(Vec::new()),
            }
        }
    }
}
