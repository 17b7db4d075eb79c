// SPDX-License-Identifier: MIT OR Apache-2.0
//! The arguments of `LockManager.acquire_locks` / `release_locks` (several resources taken and
//! released together), read through the core's table of acquisition options.

use pyo3::prelude::*;
use pyo3::types::PyString;
use txcoord::binding::options::{self, Host, ACQUIRE};
use txcoord::binding::validate::{self, Raw};
use txcoord::AcquireOptions;

use crate::convert::{type_description, Arg, OwnedRaw};
use crate::error::IntoPyResult;

/// The resource names of a `resources` argument: an iterable of strings (not a string).
pub(crate) fn resources(py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    let refuse = || {
        Err(txcoord::Error::invalid_type(
            "resources",
            format!(
                "must be a list (or other iterable) of resource names, got {}",
                type_description(value)
            ),
        ))
        .into_py(py)
    };
    if value.is_instance_of::<PyString>() {
        return refuse();
    }
    let Ok(items) = value.try_iter() else {
        return refuse();
    };
    let mut out = Vec::new();
    for item in items {
        let raw = OwnedRaw::from_value(&item?)?;
        out.push(
            validate::resource("resources", raw.raw())
                .into_py(py)?
                .to_string(),
        );
    }
    Ok(out)
}

/// `acquire_locks(resources, ttl_ms, timeout_ms, *, owner_id, priority, fair)`, validated.
pub(crate) fn acquire_args(
    py: Python<'_>,
    value: &Bound<'_, PyAny>,
    ttl_ms: &Arg<'_>,
    timeout_ms: &Arg<'_>,
    owner_id: Option<&Bound<'_, PyAny>>,
    priority: Option<&Bound<'_, PyAny>>,
    fair: Option<&Bound<'_, PyAny>>,
) -> PyResult<(Vec<String>, AcquireOptions)> {
    let names = resources(py, value)?;
    let given = [
        ("ttl_ms", OwnedRaw::from_arg(ttl_ms)?),
        ("timeout_ms", OwnedRaw::from_arg(timeout_ms)?),
        ("owner_id", OwnedRaw::from_optional(owner_id)?),
        ("priority", OwnedRaw::from_optional(priority)?),
        ("fair", OwnedRaw::from_optional(fair)?),
    ];
    let options = options::read(Host::Python, ACQUIRE, |spec| {
        given
            .iter()
            .find(|(name, _)| *name == spec.python)
            .map(|(_, raw)| raw.raw())
            .unwrap_or(Raw::Absent)
    })
    .into_py(py)?;
    Ok((names, options))
}
