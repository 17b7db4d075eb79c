// SPDX-License-Identifier: MIT OR Apache-2.0
//! The Python binding of txcoord: the native module `txcoord._native`.
//!
//! Thin by design: argument conversion (`convert`), error mapping (`error`), future ↔
//! awaitable (`bridge`), the runtime and fork handling (`runtime`), logging (`logging`); every
//! decision is the core's. `client`, `lock` and `manager` mirror the core modules of the same
//! names; each defines the async class (`txcoord.X`) and its blocking twin (`txcoord.sync.X`)
//! from one definition (`twin`), as does `scope` for `manager.lock(resource)`. `on_lost` keeps
//! and calls the lost-lock callbacks. `saga` (records, the Redis repository, a user's own
//! repository), `deadlock` (the detector) and `election` mirror the core modules too.

mod bridge;
mod client;
mod convert;
mod deadlock;
mod election;
mod error;
mod lock;
mod logging;
mod manager;
mod manager_set;
mod on_lost;
mod runtime;
mod saga;
mod scope;
mod twin;

use pyo3::prelude::*;
use pyo3::wrap_pyfunction;

/// `os.register_at_fork(before=...)`.
#[pyfunction]
#[pyo3(name = "_before_fork")]
fn before_fork() {
    runtime::before_fork();
}

/// `os.register_at_fork(after_in_parent=..., after_in_child=...)`.
#[pyfunction]
#[pyo3(name = "_after_fork")]
fn after_fork() {
    runtime::after_fork();
}

/// A future that panics when polled (the `txcoord::Result` type makes it usable by the bridge).
#[cfg(feature = "test-hooks")]
async fn panicking(site: &'static str) -> txcoord::Result<()> {
    panic!("test panic ({site})")
}

/// Raises the error a panic becomes, from synchronous code ("sync"), a blocking call
/// ("blocking") or an awaitable ("async"). For the test suite.
#[cfg(feature = "test-hooks")]
#[pyfunction]
#[pyo3(name = "_test_panic")]
fn test_panic<'py>(py: Python<'py>, where_: &str) -> PyResult<Bound<'py, PyAny>> {
    match where_ {
        "sync" => error::guard(py, || -> PyResult<Bound<'py, PyAny>> {
            panic!("test panic (sync)")
        }),
        "blocking" => bridge::block(py, panicking("blocking")).map(|()| py.None().into_bound(py)),
        "async" => bridge::run(
            py,
            bridge::Run::Await,
            bridge::OnCancel::Abort,
            panicking("async"),
            |py, ()| Ok(py.None()),
        ),
        other => Err(pyo3::exceptions::PyValueError::new_err(format!(
            "unknown panic site {other:?}"
        ))),
    }
}

/// Emits a tracing event at `level` ("error", "warn", "info", "debug") through the core's
/// logging path. For the test suite.
#[cfg(feature = "test-hooks")]
#[pyfunction]
#[pyo3(name = "_test_log")]
fn test_log(level: &str, message: &str) {
    match level {
        "error" => tracing::error!(target: "txcoord", "{message}"),
        "warn" => tracing::warn!(target: "txcoord", "{message}"),
        "info" => tracing::info!(target: "txcoord", "{message}"),
        _ => tracing::debug!(target: "txcoord", "{message}"),
    }
}

/// The core's tables, for the parity test: `{"constants": {name: value}, "options": [{"table",
/// "name", "python", "js", "kind", "min", "max", "default", "doc"}]}`.
#[pyfunction]
#[pyo3(name = "_binding_table")]
fn binding_table(py: Python<'_>) -> PyResult<Bound<'_, pyo3::types::PyDict>> {
    use pyo3::types::{PyDict, PyList};
    let constants = PyDict::new(py);
    for (name, value) in txcoord::binding::options::constants() {
        constants.set_item(name, value)?;
    }
    let options = PyList::empty(py);
    for o in txcoord::binding::options::describe() {
        let d = PyDict::new(py);
        d.set_item("table", o.table)?;
        d.set_item("name", o.name)?;
        d.set_item("python", o.python)?;
        d.set_item("js", o.js)?;
        d.set_item("kind", o.kind)?;
        d.set_item("min", o.min)?;
        d.set_item("max", o.max)?;
        d.set_item("default", o.default)?;
        d.set_item("doc", o.doc)?;
        options.append(d)?;
    }
    let out = PyDict::new(py);
    out.set_item("constants", constants)?;
    out.set_item("options", options)?;
    Ok(out)
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    logging::install();
    error::register(m)?;
    bridge::register(m)?;

    m.add_class::<client::PyClient>()?;
    m.add_class::<lock::PyDistributedLock>()?;
    m.add_class::<manager::PyLockManager>()?;
    m.add_class::<scope::PyLockContext>()?;
    m.add("SyncClient", py.get_type::<client::PySyncClient>())?;
    m.add(
        "SyncDistributedLock",
        py.get_type::<lock::PySyncDistributedLock>(),
    )?;
    m.add(
        "SyncLockManager",
        py.get_type::<manager::PySyncLockManager>(),
    )?;
    m.add("SyncLockContext", py.get_type::<scope::PySyncLockContext>())?;
    saga::register(m)?;
    deadlock::register(m)?;
    election::register(m)?;

    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    for (name, value) in txcoord::binding::options::constants() {
        m.add(name, value)?;
    }
    m.add_function(wrap_pyfunction!(binding_table, m)?)?;

    m.add_function(wrap_pyfunction!(bridge::use_plain_bridge, m)?)?;
    // Attributes, not exports: `__all__` stays the release build's.
    #[cfg(feature = "test-hooks")]
    {
        m.setattr("_test_panic", wrap_pyfunction!(test_panic, m)?)?;
        m.setattr("_test_log", wrap_pyfunction!(test_log, m)?)?;
    }
    let before = wrap_pyfunction!(before_fork, m)?;
    let after = wrap_pyfunction!(after_fork, m)?;
    let kwargs = pyo3::types::PyDict::new(py);
    kwargs.set_item("before", &before)?;
    kwargs.set_item("after_in_parent", &after)?;
    kwargs.set_item("after_in_child", &after)?;
    py.import("os")?
        .getattr("register_at_fork")?
        .call((), Some(&kwargs))?;
    Ok(())
}
