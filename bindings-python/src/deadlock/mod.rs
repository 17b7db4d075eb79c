// SPDX-License-Identifier: MIT OR Apache-2.0
//! `SagaDeadlockDetector` over the core's detector, with the seed's `logger` and the
//! `metrics` collector as Python objects (`detector`); its results as Python values (`cycle`).

pub(crate) mod cycle;
pub(crate) mod detector;

use pyo3::prelude::*;

pub(crate) use cycle::cycle_to_py;

/// Adds the deadlock classes to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    cycle::register(m)?;
    m.add_class::<detector::PySagaDeadlockDetector>()?;
    Ok(())
}
