// SPDX-License-Identifier: MIT OR Apache-2.0
//! Sagas, as the core's `saga` module: the record and its status (`record`), the built-in
//! Redis repository, async and blocking (`redis`), and the adapter that lets a user's own
//! repository object stand wherever the built-in one does (`repository`).

pub(crate) mod record;
pub(crate) mod redis;
pub(crate) mod repository;

use pyo3::prelude::*;

/// Adds the saga classes to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    record::register(m)?;
    m.add_class::<record::PySagaRecord>()?;
    m.add_class::<record::PySagaStatistics>()?;
    m.add_class::<redis::PyRedisSagaRepository>()?;
    m.add(
        "SyncRedisSagaRepository",
        py.get_type::<redis::PySyncRedisSagaRepository>(),
    )?;
    Ok(())
}
