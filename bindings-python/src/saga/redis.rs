// SPDX-License-Identifier: MIT OR Apache-2.0
//! `RedisSagaRepository` (async and blocking, from one definition: see `twin`) over the core's
//! `RedisSagaRepository`: the saga records in Redis with their indexes and running totals.

use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict};
use txcoord::binding::{saga as fields, validate};
use txcoord::{RedisSagaRepository, SagaRepository, SaveOptions};

use super::record::{record_from_py, record_to_py, records_to_py, PySagaStatistics};
use crate::bridge::{self, OnCancel};
use crate::client::{resolve, ClientHandle};
use crate::convert::{type_description, Arg, OwnedRaw};
use crate::error::{guard, IntoPyResult};
use crate::twin::{twins, Async, Blocking, Flavour};

/// What a Python repository keeps: its client and its settings; the core repository is built
/// from them per call (cheap), so a forked child uses its own connection.
pub(crate) struct RepoShared {
    client: Arc<ClientHandle>,
    stuck_after: Vec<(String, Duration)>,
    default_stuck_after: Option<Duration>,
    /// `Some(None)`: keep finished records forever.
    retention: Option<Option<Duration>>,
}

impl RepoShared {
    /// The core repository for this process.
    pub(crate) fn repo(&self) -> txcoord::Result<RedisSagaRepository> {
        let mut r = RedisSagaRepository::new(&self.client.get()?);
        for (t, d) in &self.stuck_after {
            r = r.set_stuck_after(t.clone(), *d);
        }
        if let Some(d) = self.default_stuck_after {
            r = r.set_default_stuck_after(d);
        }
        if let Some(retention) = self.retention {
            r = r.set_finished_retention(retention);
        }
        Ok(r)
    }

    fn construct(
        py: Python<'_>,
        redis: &Bound<'_, PyAny>,
        stuck_after_ms: Option<&Bound<'_, PyAny>>,
        default_stuck_after_ms: Option<&Bound<'_, PyAny>>,
        finished_retention_ms: &Arg<'_>,
    ) -> PyResult<Arc<Self>> {
        let millis = |arg: &'static str, v: &Bound<'_, PyAny>| -> PyResult<Duration> {
            let raw = OwnedRaw::from_value(v)?;
            Ok(Duration::from_millis(
                validate::millis(arg, raw.raw(), 1, validate::MAX_MS)
                    .into_py(py)?
                    .unwrap_or(1),
            ))
        };
        let mut stuck_after = Vec::new();
        if let Some(map) = stuck_after_ms.filter(|m| !m.is_none()) {
            let items = map.call_method0("items").map_err(|_| {
                crate::error::to_pyerr(
                    py,
                    txcoord::Error::invalid_type(
                        "stuck_after_ms",
                        format!(
                            "must be a mapping of saga type to ms, got {}",
                            type_description(map)
                        ),
                    ),
                )
            })?;
            for item in items.try_iter()? {
                let (t, ms): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item?.extract()?;
                let raw = OwnedRaw::from_value(&t)?;
                let t = fields::saga_type("stuck_after_ms", raw.raw()).into_py(py)?;
                stuck_after.push((t.to_string(), millis("stuck_after_ms", &ms)?));
            }
        }
        let default_stuck_after = match default_stuck_after_ms.filter(|v| !v.is_none()) {
            Some(v) => Some(millis("default_stuck_after_ms", v)?),
            None => None,
        };
        let retention = match finished_retention_ms {
            Arg::Absent => None,
            Arg::Given(v) if v.is_none() => Some(None),
            Arg::Given(v) => Some(Some(millis("finished_retention_ms", v)?)),
        };
        Ok(Arc::new(RepoShared {
            client: resolve(py, redis)?,
            stuck_after,
            default_stuck_after,
            retention,
        }))
    }
}

twins! {
    /// The built-in saga repository (async API): records in Redis with indexes, so the active
    /// and stuck queries and the statistics never scan all sagas (PROTOCOL.md, section 8).
    #[pyclass(name = "RedisSagaRepository", module = "txcoord", frozen)]
    pub(crate) struct PyRedisSagaRepository: Async;
    /// The built-in saga repository (blocking API, `txcoord.sync.RedisSagaRepository`).
    #[pyclass(name = "RedisSagaRepository", module = "txcoord.sync", frozen)]
    pub(crate) struct PySyncRedisSagaRepository: Blocking;
    fields {
        pub(crate) shared: Arc<RepoShared>,
    }
    flavour F;
    methods {
        #[new]
        #[pyo3(
            signature = (redis, *, stuck_after_ms=None, default_stuck_after_ms=None, finished_retention_ms=Arg::Absent),
            text_signature = "(redis, *, stuck_after_ms=None, default_stuck_after_ms=300000, finished_retention_ms=604800000)"
        )]
        fn new(
            py: Python<'_>,
            redis: &Bound<'_, PyAny>,
            stuck_after_ms: Option<&Bound<'_, PyAny>>,
            default_stuck_after_ms: Option<&Bound<'_, PyAny>>,
            finished_retention_ms: Arg<'_>,
        ) -> PyResult<Self> {
            guard(py, || {
                Ok(Self {
                    shared: RepoShared::construct(
                        py,
                        redis,
                        stuck_after_ms,
                        default_stuck_after_ms,
                        &finished_retention_ms,
                    )?,
                })
            })
        }

        /// The seed's `findById`: the record, or None.
        fn find_by_id<'py>(&self, py: Python<'py>, id: &Bound<'_, PyAny>) -> PyResult<Bound<'py, PyAny>> {
            let raw = OwnedRaw::from_value(id)?;
            let id = fields::saga_id("id", raw.raw()).into_py(py)?.to_string();
            let repo = self.shared.repo().into_py(py)?;
            bridge::run(
                py,
                F::RUN,
                OnCancel::Abort,
                async move { repo.find_by_id(&id).await },
                |py, r| match r {
                    Some(r) => record_to_py(py, r),
                    None => Ok(py.None()),
                },
            )
        }

        /// The seed's `save(saga)`: writes the record as given (its version is incremented).
        /// With a condition, a conditional save: written only if the stored record's version
        /// is `expected_version` (0: it does not exist yet), no leader of a term above `term`
        /// wrote it, and, with `guard_finished`, it has not finished. True if written (always,
        /// without a condition).
        #[pyo3(signature = (saga, *, expected_version=None, term=None, guard_finished=None))]
        #[pyo3(text_signature = "($self, saga, *, expected_version=None, term=None, guard_finished=False)")]
        fn save<'py>(
            &self,
            py: Python<'py>,
            saga: &Bound<'_, PyAny>,
            expected_version: Option<&Bound<'_, PyAny>>,
            term: Option<&Bound<'_, PyAny>>,
            guard_finished: Option<&Bound<'_, PyAny>>,
        ) -> PyResult<Bound<'py, PyAny>> {
            let saga = record_from_py("saga", saga)?;
            let options = save_options(py, expected_version, term, guard_finished)?;
            let repo = self.shared.repo().into_py(py)?;
            bridge::run(
                py,
                F::RUN,
                OnCancel::Finish,
                async move {
                    if options == SaveOptions::default() {
                        repo.save(&saga).await.map(|()| true)
                    } else {
                        Ok(repo.save_if(&saga, &options).await?.is_none_or(|o| o.written()))
                    }
                },
                |py, written| Ok(PyBool::new(py, written).to_owned().into_any().unbind()),
            )
        }

        /// The seed's `findActiveSagas`: every PENDING, EXECUTING or COMPENSATING saga.
        fn find_active_sagas<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
            let repo = self.shared.repo().into_py(py)?;
            bridge::run(
                py,
                F::RUN,
                OnCancel::Abort,
                async move { repo.find_active_sagas().await },
                records_to_py,
            )
        }

        /// The seed's `findStuckSagas`: active sagas without an update for longer than their
        /// type's limit (`stuck_after_ms`).
        fn find_stuck_sagas<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
            let repo = self.shared.repo().into_py(py)?;
            bridge::run(
                py,
                F::RUN,
                OnCancel::Abort,
                async move { repo.find_stuck_sagas().await },
                records_to_py,
            )
        }

        /// The seed's `getStatistics`.
        fn get_statistics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
            let repo = self.shared.repo().into_py(py)?;
            bridge::run(
                py,
                F::RUN,
                OnCancel::Abort,
                async move { repo.get_statistics().await },
                |py, s| Ok(Py::new(py, PySagaStatistics::new(s))?.into_any()),
            )
        }

        fn __repr__(&self) -> String {
            format!("<{}.RedisSagaRepository>", F::MODULE)
        }
    }
}

/// The condition of a conditional `save`, validated.
fn save_options(
    py: Python<'_>,
    expected_version: Option<&Bound<'_, PyAny>>,
    term: Option<&Bound<'_, PyAny>>,
    guard_finished: Option<&Bound<'_, PyAny>>,
) -> PyResult<SaveOptions> {
    let raw = OwnedRaw::from_optional(expected_version)?;
    let expected_version = fields::count("expected_version", raw.raw(), u64::MAX).into_py(py)?;
    let raw = OwnedRaw::from_optional(term)?;
    let term = fields::count("term", raw.raw(), u64::MAX).into_py(py)?;
    let raw = OwnedRaw::from_optional(guard_finished)?;
    let guard_finished = validate::flag("guard_finished", raw.raw())
        .into_py(py)?
        .unwrap_or(false);
    Ok(SaveOptions {
        expected_version,
        term,
        guard_finished,
    })
}

/// The keyword arguments of a conditional save, as a user's `save` receives them.
pub(crate) fn save_kwargs<'py>(
    py: Python<'py>,
    options: &SaveOptions,
) -> PyResult<Bound<'py, PyDict>> {
    let kwargs = PyDict::new(py);
    kwargs.set_item("expected_version", options.expected_version)?;
    kwargs.set_item("term", options.term)?;
    kwargs.set_item("guard_finished", options.guard_finished)?;
    Ok(kwargs)
}
