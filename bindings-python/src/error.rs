// SPDX-License-Identifier: MIT OR Apache-2.0
//! The one mapping from the core's error kinds to Python exception classes.
//!
//! Every class derives from `txcoord.TxcoordError` and carries `code` (the core's
//! `ErrorKind::code()`, the same string JS puts in `err.code`); bad-argument errors also carry
//! `argument` (the Python parameter name: the core renames its own argument names with
//! `binding::options::for_host`), and lost-lock errors `reason`.

use std::any::Any;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};
use txcoord::binding::options::{for_host, Host};
use txcoord::{Error, ErrorKind};

/// The builtin exception a class also derives from, so `except ValueError:` keeps working.
#[derive(Clone, Copy)]
enum Builtin {
    Value,
    Type,
    Connection,
    Timeout,
}

/// The Python class of each core error kind: the single table both directions use.
fn python_class(kind: ErrorKind) -> Option<(&'static str, Option<Builtin>, &'static str)> {
    Some(match kind {
        ErrorKind::InvalidArgument => (
            "InvalidArgumentError",
            Some(Builtin::Value),
            "A value out of range (empty resource, ttl <= 0, above a cap, NaN, ...). `argument` names the parameter.",
        ),
        ErrorKind::InvalidType => (
            "InvalidTypeError",
            Some(Builtin::Type),
            "A value of the wrong type (a string or a bool where milliseconds were expected, ...). `argument` names the parameter.",
        ),
        ErrorKind::Connection => (
            "RedisConnectionError",
            Some(Builtin::Connection),
            "Redis could not be reached, or did not answer in time.",
        ),
        ErrorKind::Timeout => (
            "LockTimeoutError",
            Some(Builtin::Timeout),
            "A scoped acquisition (`async with manager.lock(...)`) could not get the lock within its timeout.",
        ),
        ErrorKind::LockLost => ("LockLostError", None, "The lock was lost while held. `reason` says why."),
        ErrorKind::DeadlockVictim => (
            "DeadlockVictimError",
            None,
            "The waiting saga was chosen as a deadlock victim. `cycle` is the deadlock its abort broke (a DeadlockCycle), if known.",
        ),
        ErrorKind::Closed => ("ClosedError", None, "The client or manager was closed."),
        ErrorKind::Redis => (
            "RedisError",
            None,
            "Redis answered with an error that retrying will not fix (NOPERM, WRONGPASS, ...).",
        ),
        ErrorKind::Protocol => (
            "ProtocolError",
            None,
            "Redis holds txcoord state of another protocol version; this client refuses to touch it.",
        ),
        ErrorKind::Internal => ("InternalError", None, "A bug in txcoord (for example a panic caught at the boundary)."),
        _ => return None,
    })
}

struct Classes {
    base: Py<PyType>,
    by_kind: Vec<(ErrorKind, Py<PyType>)>,
}

static CLASSES: PyOnceLock<Classes> = PyOnceLock::new();

fn builtin<'py>(py: Python<'py>, b: Builtin) -> Bound<'py, PyType> {
    match b {
        Builtin::Value => py.get_type::<pyo3::exceptions::PyValueError>(),
        Builtin::Type => py.get_type::<pyo3::exceptions::PyTypeError>(),
        Builtin::Connection => py.get_type::<pyo3::exceptions::PyConnectionError>(),
        Builtin::Timeout => py.get_type::<pyo3::exceptions::PyTimeoutError>(),
    }
}

fn make_class<'py>(
    py: Python<'py>,
    name: &str,
    bases: Bound<'py, PyTuple>,
    doc: &str,
    code: Option<&str>,
) -> PyResult<Bound<'py, PyType>> {
    let ns = PyDict::new(py);
    ns.set_item("__module__", "txcoord")?;
    ns.set_item("__doc__", doc)?;
    ns.set_item("code", code)?;
    ns.set_item("argument", py.None())?;
    ns.set_item("reason", py.None())?;
    ns.set_item("key", py.None())?;
    let ty = py.get_type::<PyType>().call1((name, bases, ns))?;
    Ok(ty.cast_into::<PyType>()?)
}

fn classes(py: Python<'_>) -> PyResult<&Classes> {
    CLASSES.get_or_try_init(py, || {
        let base = make_class(
            py,
            "TxcoordError",
            PyTuple::new(py, [py.get_type::<pyo3::exceptions::PyException>()])?,
            "Base class of every txcoord error. `code` is the stable TXCOORD_* code of its kind.",
            None,
        )?;
        let mut by_kind = Vec::new();
        for kind in ErrorKind::ALL {
            let Some((name, extra, doc)) = python_class(kind) else {
                continue;
            };
            let bases = match extra {
                Some(b) => PyTuple::new(py, [base.clone(), builtin(py, b)])?,
                None => PyTuple::new(py, [base.clone()])?,
            };
            let cls = make_class(py, name, bases, doc, Some(kind.code()))?;
            if kind == ErrorKind::DeadlockVictim {
                // The deadlock the victim's abort broke, explained (a DeadlockCycle), if known.
                cls.setattr("cycle", py.None())?;
            }
            by_kind.push((kind, cls.unbind()));
        }
        Ok(Classes {
            base: base.unbind(),
            by_kind,
        })
    })
}

/// Adds `TxcoordError` and one subclass per error kind to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let c = classes(py)?;
    m.add("TxcoordError", c.base.bind(py))?;
    for (_, cls) in &c.by_kind {
        let cls = cls.bind(py);
        m.add(cls.name()?, cls)?;
    }
    Ok(())
}

/// The Python exception for a core error (its argument named as Python names it).
pub(crate) fn to_pyerr(py: Python<'_>, e: Error) -> PyErr {
    let e = for_host(Host::Python, e);
    match build(py, &e) {
        Ok(err) => err,
        Err(err) => err,
    }
}

fn build(py: Python<'_>, e: &Error) -> PyResult<PyErr> {
    let c = classes(py)?;
    let kind = e.kind();
    let cls = c
        .by_kind
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, cls)| cls.bind(py))
        .unwrap_or_else(|| c.base.bind(py));
    let exc = cls.call1((e.to_string(),))?;
    // Per instance too, so a kind added to the core later still carries its code.
    exc.setattr("code", kind.code())?;
    if let Some(arg) = e.argument() {
        exc.setattr("argument", arg)?;
    }
    if let Some(key) = e.key() {
        exc.setattr("key", key)?;
    }
    if let Error::LockLost { reason, .. } = e {
        exc.setattr("reason", reason.as_str())?;
    }
    if let Error::DeadlockVictim {
        cycle: Some(cycle), ..
    } = e
    {
        exc.setattr(
            "cycle",
            crate::deadlock::cycle_to_py(py, (**cycle).clone())?,
        )?;
    }
    Ok(PyErr::from_value(exc))
}

/// `.into_py(py)` on a core result: the one-line call-site conversion.
pub(crate) trait IntoPyResult<T> {
    fn into_py(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for txcoord::Result<T> {
    fn into_py(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_pyerr(py, e))
    }
}

/// An `InvalidArgument` error found while reading a foreign client's settings.
pub(crate) fn invalid_argument(arg: &'static str, message: impl Into<String>) -> Error {
    Error::InvalidArgument {
        arg: arg.into(),
        message: message.into(),
    }
}

/// The error a caught panic becomes: `InternalError`, never a `BaseException`.
pub(crate) fn panic_error(payload: Box<dyn Any + Send>) -> Error {
    let message = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    };
    Error::Internal(format!("panic in txcoord: {message}"))
}

/// Runs synchronous binding code, turning a panic into `InternalError`.
pub(crate) fn guard<T>(py: Python<'_>, f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => Err(to_pyerr(py, panic_error(payload))),
    }
}

/// A `RuntimeError` for misuse that is not an argument error (no running event loop, ...).
pub(crate) fn runtime_error(message: impl Into<String>) -> PyErr {
    PyRuntimeError::new_err(message.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_distinct_class() {
        let mut names = std::collections::HashSet::new();
        for kind in ErrorKind::ALL {
            let (name, _, doc) =
                python_class(kind).unwrap_or_else(|| panic!("{kind:?} has no class"));
            assert!(name.ends_with("Error"), "{name}");
            assert!(!doc.is_empty());
            assert!(names.insert(name), "{name} used twice");
        }
        assert_eq!(names.len(), ErrorKind::ALL.len());
    }

    #[test]
    fn argument_errors_extend_the_builtins() {
        assert!(matches!(
            python_class(ErrorKind::InvalidArgument),
            Some((_, Some(Builtin::Value), _))
        ));
        assert!(matches!(
            python_class(ErrorKind::InvalidType),
            Some((_, Some(Builtin::Type), _))
        ));
    }

    #[test]
    fn panics_become_internal_errors() {
        let e = panic_error(Box::new("boom"));
        assert_eq!(e.kind(), ErrorKind::Internal);
        assert!(e.to_string().contains("boom"));
        let e = panic_error(Box::new(String::from("bang")));
        assert!(e.to_string().contains("bang"));
    }
}
