// SPDX-License-Identifier: MIT OR Apache-2.0
//! The scoped form of `LockManager`: `manager.lock(resource)`, a context manager that
//! acquires on entry (raising `LockTimeoutError` when it cannot) and always releases on exit
//! (async `LockContext` and blocking `txcoord.sync.LockContext`).

use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::{PyTraverseError, PyVisit};

use crate::bridge::{self, OnCancel};
use crate::error::IntoPyResult;
use crate::lock::{release_in_background, LockShared, PyDistributedLock, PySyncDistributedLock};
use crate::manager::{loop_notifier, thread_notifier, ManagerShared, Request};

/// `async with manager.lock(resource) as lock:` (from `LockManager.lock`).
#[pyclass(name = "LockContext", module = "txcoord", frozen)]
pub(crate) struct PyLockContext {
    manager: Arc<ManagerShared>,
    request: Request,
    // A std mutex: locks entered and not yet exited (a stack, for nested use of one context).
    held: Mutex<Vec<Arc<LockShared>>>,
}

impl PyLockContext {
    pub(crate) fn new(manager: Arc<ManagerShared>, request: Request) -> Self {
        PyLockContext {
            manager,
            request,
            held: Mutex::new(Vec::new()),
        }
    }
}

#[pymethods]
impl PyLockContext {
    fn __aenter__<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let ctx = slf.get();
        let task = ctx
            .manager
            .enter_task(py, ctx.request.clone(), loop_notifier(py))?;
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

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.request.traverse(&visit)
    }

    fn __clear__(&self) {
        self.request.clear();
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

impl PySyncLockContext {
    pub(crate) fn new(manager: Arc<ManagerShared>, request: Request) -> Self {
        PySyncLockContext {
            manager,
            request,
            held: Mutex::new(Vec::new()),
        }
    }
}

#[pymethods]
impl PySyncLockContext {
    fn __enter__(&self, py: Python<'_>) -> PyResult<PySyncDistributedLock> {
        let task = self
            .manager
            .enter_task(py, self.request.clone(), thread_notifier)?;
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

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.request.traverse(&visit)
    }

    fn __clear__(&self) {
        self.request.clear();
    }
}
