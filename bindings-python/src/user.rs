// SPDX-License-Identifier: MIT OR Apache-2.0
//! A user's Python object (a saga repository, an alert sink, a recovery handler) as the core
//! calls it: from a tokio task, attached to Python for the call itself; a coroutine it returns
//! runs on the event loop captured when the object was handed over (or, later, by an awaited
//! call that uses it), through `pyo3_async_runtimes::into_future_with_locals`. Methods that
//! return plain values (not awaitables) are called the same way and need no loop.
//!
//! The object is owned by the Python object that was given it (in a [`Slot`] it reports to the
//! garbage collector); calls in flight find the slot empty once that object was collected.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use pyo3::{PyTraverseError, PyVisit};
use pyo3_async_runtimes::TaskLocals;

use crate::error::runtime_error;
use crate::on_lost::{is_awaitable, Slot};

type PyFuture = Pin<Box<dyn Future<Output = PyResult<Py<PyAny>>> + Send>>;

enum Step {
    Ready(Py<PyAny>),
    Wait(PyFuture),
}

/// Positional arguments and keywords of one call, built while attached.
pub(crate) type CallArgs<'py> = (Bound<'py, PyTuple>, Option<Bound<'py, PyDict>>);

/// A user's object (or callable), and the event loop its coroutines run on.
pub(crate) struct UserObject {
    object: Arc<Slot>,
    /// What it is, for messages ("the saga repository").
    what: &'static str,
    // A std mutex: held to replace or clone the locals, never across a Python call or an await.
    locals: Mutex<Option<TaskLocals>>,
}

impl UserObject {
    /// Keeps `obj`, and captures the running event loop if there is one.
    pub(crate) fn new(
        py: Python<'_>,
        obj: &Bound<'_, PyAny>,
        what: &'static str,
    ) -> PyResult<Self> {
        let user = UserObject {
            object: Slot::new(obj.clone().unbind()),
            what,
            locals: Mutex::new(None),
        };
        user.bind_loop(py)?;
        Ok(user)
    }

    /// What it is, for messages.
    pub(crate) fn what(&self) -> &'static str {
        self.what
    }

    /// Captures the running event loop (and the caller's context), if there is one and it is
    /// not the one already captured.
    pub(crate) fn bind_loop(&self, py: Python<'_>) -> PyResult<()> {
        let Ok(running) = py.import("asyncio")?.call_method0("get_running_loop") else {
            return Ok(());
        };
        let mut locals = self.locals.lock().unwrap_or_else(|p| p.into_inner());
        if locals
            .as_ref()
            .is_some_and(|l| l.event_loop(py).is(&running))
        {
            return Ok(());
        }
        *locals = Some(TaskLocals::new(running).copy_context(py)?);
        Ok(())
    }

    /// Calls `method` of the object (the object itself when `None`) with what `args` builds,
    /// and awaits its coroutine, if it returns one, on the captured loop.
    pub(crate) async fn call(
        &self,
        method: Option<&str>,
        args: impl FnOnce(Python<'_>) -> PyResult<CallArgs<'_>>,
    ) -> PyResult<Py<PyAny>> {
        let step = Python::try_attach(|py| -> PyResult<Step> {
            let obj = self.object.get(py).ok_or_else(|| {
                runtime_error(format!("{} object was garbage-collected", self.what))
            })?;
            let (args, kwargs) = args(py)?;
            let obj = obj.bind(py);
            let out = match method {
                Some(m) => obj.call_method(m, args, kwargs.as_ref())?,
                None => obj.call(args, kwargs.as_ref())?,
            };
            if !is_awaitable(py, &out)? {
                return Ok(Step::Ready(out.unbind()));
            }
            let locals = self
                .locals
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let locals = locals.ok_or_else(|| {
                // never awaited: closed, so Python does not warn about it
                let _ = out.call_method0("close");
                runtime_error(format!(
                    "{} returned a coroutine, but no event loop was captured: hand it over \
                     (or use it) from a running asyncio loop",
                    self.what
                ))
            })?;
            let fut = pyo3_async_runtimes::into_future_with_locals(&locals, out)?;
            Ok(Step::Wait(Box::pin(fut)))
        })
        .unwrap_or_else(|| Err(runtime_error("Python is shutting down")))?;
        match step {
            Step::Ready(v) => Ok(v),
            Step::Wait(fut) => fut.await,
        }
    }

    pub(crate) fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.object.traverse(visit)
    }

    pub(crate) fn clear(&self) {
        self.object.clear();
    }
}

/// The text of an exception a user's code raised (`ValueError: boom`), for the core's errors
/// and the log.
pub(crate) fn describe(err: &PyErr) -> String {
    Python::try_attach(|py| {
        let value = err.value(py);
        let name = value
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "exception".into());
        format!("{name}: {value}")
    })
    .unwrap_or_else(|| "an exception".into())
}
