// SPDX-License-Identifier: MIT OR Apache-2.0
//! `SagaDeadlockDetector(saga_repository, logger, *, redis=None, metrics=None)`: the seed's
//! detector on the lock registry. The repository is the built-in one or a user's object (see
//! `saga::repository`); the logger is a `logging.Logger` (called with `warning`/`info`, the
//! fields as `extra` and in the message) or anything with the seed's `warn`/`info`; the
//! metrics collector anything with `record_deadlock(resolution_method)`. The Python objects
//! are owned by the detector (reported to the garbage collector); the core detector is built
//! per call from them, so a forked child uses its own connection.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString};
use pyo3::{PyTraverseError, PyVisit};
use txcoord::binding::saga as fields;
use txcoord::{DeadlockMetrics, DetectorOptions, Logger, SagaDeadlockDetector, TracingLogger};

use super::cycle::{cycles_to_py, PyDeadlockCycle, PyDeadlockResult, PyWaitForGraph};
use crate::bridge::{self, OnCancel, Run};
use crate::client::{resolve, ClientHandle};
use crate::convert::{json_to_py, type_description, OwnedRaw};
use crate::error::{guard, IntoPyResult};
use crate::on_lost::Slot;
use crate::saga::repository::RepoSource;

fn callable(obj: &Bound<'_, PyAny>, name: &str) -> bool {
    obj.getattr(name).is_ok_and(|m| m.is_callable())
}

static STDLIB_LOGGERS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static RESERVED: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `(logging.Logger, logging.LoggerAdapter)`.
fn stdlib_loggers(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    STDLIB_LOGGERS
        .get_or_try_init(py, || {
            let logging = py.import("logging")?;
            Ok::<_, PyErr>(
                (
                    logging.getattr("Logger")?,
                    logging.getattr("LoggerAdapter")?,
                )
                    .into_pyobject(py)?
                    .into_any()
                    .unbind(),
            )
        })
        .map(|t| t.bind(py))
}

/// The attribute names of a `LogRecord`, which `extra` must not use.
fn reserved(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    RESERVED
        .get_or_try_init(py, || {
            let record = py.import("logging")?.getattr("LogRecord")?.call1((
                "",
                0,
                "",
                0,
                "",
                pyo3::types::PyTuple::empty(py),
                py.None(),
            ))?;
            let names = pyo3::types::PySet::new(py, ["message", "asctime"])?;
            for key in record.getattr("__dict__")?.try_iter()? {
                names.add(key?)?;
            }
            Ok::<_, PyErr>(names.into_any().unbind())
        })
        .map(|s| s.bind(py))
}

#[derive(Clone, Copy)]
enum Level {
    Warn,
    Info,
}

/// How a logger object is called.
#[derive(Clone, Copy)]
enum Style {
    /// `logging.Logger`/`LoggerAdapter`: `warning("%s %s", message, fields_json, extra=fields)`.
    Stdlib,
    /// The seed's `logger.warn(message, fields)` (or `warning` where there is no `warn`).
    Seed { warn: &'static str },
}

/// The seed's `logger`, a Python object, as the core's `Logger`. Called on a runtime thread,
/// attached to Python; an exception it raises is reported as unraisable.
struct PyLogger {
    object: Arc<Slot>,
    style: Style,
}

impl PyLogger {
    fn new(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<PyLogger> {
        let style = if obj.is_instance(stdlib_loggers(py)?)? {
            Style::Stdlib
        } else if callable(obj, "info") && callable(obj, "warn") {
            Style::Seed { warn: "warn" }
        } else if callable(obj, "info") && callable(obj, "warning") {
            Style::Seed { warn: "warning" }
        } else {
            return Err(txcoord::Error::invalid_type(
                "logger",
                format!(
                    "must be a logging.Logger or an object with warn(message, fields) and \
                     info(message, fields) methods, got {}",
                    type_description(obj)
                ),
            ))
            .into_py(py);
        };
        Ok(PyLogger {
            object: Slot::new(obj.clone().unbind()),
            style,
        })
    }

    fn log(&self, level: Level, message: &str, fields: &serde_json::Value) {
        Python::try_attach(|py| {
            let Some(obj) = self.object.get(py) else {
                return;
            };
            let obj = obj.bind(py);
            let result = (|| -> PyResult<()> {
                let fields_py = json_to_py(py, fields)?;
                match self.style {
                    Style::Stdlib => {
                        let extra = PyDict::new(py);
                        if let Ok(d) = fields_py.cast::<PyDict>() {
                            let reserved = reserved(py)?;
                            for (k, v) in d.iter() {
                                if !reserved.contains(&k)? {
                                    extra.set_item(k, v)?;
                                }
                            }
                        }
                        let kwargs = PyDict::new(py);
                        kwargs.set_item("extra", extra)?;
                        let method = match level {
                            Level::Warn => "warning",
                            Level::Info => "info",
                        };
                        obj.call_method(
                            method,
                            ("%s %s", message, fields.to_string()),
                            Some(&kwargs),
                        )?;
                    }
                    Style::Seed { warn } => {
                        let method = match level {
                            Level::Warn => warn,
                            Level::Info => "info",
                        };
                        obj.call_method1(method, (message, fields_py))?;
                    }
                }
                Ok(())
            })();
            if let Err(e) = result {
                e.write_unraisable(py, Some(obj));
            }
        });
    }
}

impl Logger for PyLogger {
    fn warn(&self, message: &str, fields: &serde_json::Value) {
        self.log(Level::Warn, message, fields);
    }
    fn info(&self, message: &str, fields: &serde_json::Value) {
        self.log(Level::Info, message, fields);
    }
}

/// A metrics collector, a Python object with `record_deadlock(resolution_method)`.
struct PyMetrics {
    object: Arc<Slot>,
}

impl DeadlockMetrics for PyMetrics {
    fn record_deadlock(&self, resolution_method: &str) {
        Python::try_attach(|py| {
            if let Some(obj) = self.object.get(py) {
                let obj = obj.bind(py);
                if let Err(e) = obj.call_method1("record_deadlock", (resolution_method,)) {
                    e.write_unraisable(py, Some(obj));
                }
            }
        });
    }
}

/// The seed's `SagaDeadlockDetector` (async API).
///
/// `detect_deadlock()` reads the whole wait-for graph from the lock registry (a few round
/// trips whatever its size) and finds every deadlocked saga, with one explained cycle per
/// deadlocked group; it changes nothing. `resolve_deadlock(cycles)` re-checks, aborts one
/// victim per cycle (lowest priority, then youngest, then smallest id: the choice every process
/// makes), and marks its saga FAILED with "Aborted due to deadlock resolution" (never a
/// finished one). Waiting acquisitions with an owner id break deadlocks themselves after the
/// manager's deadlock timeout; the detector is the sweep that catches the rest.
#[pyclass(name = "SagaDeadlockDetector", module = "txcoord", frozen)]
pub(crate) struct PySagaDeadlockDetector {
    repo: RepoSource,
    logger: Option<Arc<PyLogger>>,
    metrics: Option<Arc<PyMetrics>>,
    redis: Option<Arc<ClientHandle>>,
}

impl PySagaDeadlockDetector {
    /// The core detector for this process.
    fn detector(&self) -> txcoord::Result<SagaDeadlockDetector> {
        let logger: Arc<dyn Logger> = match &self.logger {
            Some(l) => l.clone(),
            None => Arc::new(TracingLogger),
        };
        let mut options = DetectorOptions::new();
        if let Some(redis) = &self.redis {
            options = options.set_redis(&redis.get()?);
        }
        if let Some(m) = &self.metrics {
            options = options.set_metrics(m.clone());
        }
        SagaDeadlockDetector::new(self.repo.core()?, logger, options)
    }

    /// The detector for one awaited call (a user's repository runs on the caller's loop).
    pub(crate) fn for_call(&self, py: Python<'_>) -> PyResult<SagaDeadlockDetector> {
        self.repo.bind_loop(py)?;
        self.detector().into_py(py)
    }
}

/// Saga ids from a `cycles` argument: a `DeadlockResult`, or an iterable of cycles, each a
/// `DeadlockCycle` or an iterable of saga ids.
fn cycle_ids(py: Python<'_>, cycles: &Bound<'_, PyAny>) -> PyResult<Vec<Vec<String>>> {
    if let Ok(r) = cycles.cast::<PyDeadlockResult>() {
        return Ok(r.get().inner.cycles.clone());
    }
    let not_iterable = || {
        Err(txcoord::Error::invalid_type(
            "cycles",
            format!(
                "must be a list of cycles (lists of saga ids, or DeadlockCycle objects), got {}",
                type_description(cycles)
            ),
        ))
        .into_py(py)
    };
    if cycles.is_instance_of::<PyString>() {
        return not_iterable();
    }
    let Ok(items) = cycles.try_iter() else {
        return not_iterable();
    };
    let mut out = Vec::new();
    for item in items {
        let item = item?;
        if let Ok(c) = item.cast::<PyDeadlockCycle>() {
            out.push(c.get().inner.sagas.clone());
            continue;
        }
        if item.is_instance_of::<PyString>() {
            return not_iterable();
        }
        let Ok(ids) = item.try_iter() else {
            return not_iterable();
        };
        let mut cycle = Vec::new();
        for id in ids {
            let raw = OwnedRaw::from_value(&id?)?;
            cycle.push(
                fields::saga_id("cycles", raw.raw())
                    .into_py(py)?
                    .to_string(),
            );
        }
        out.push(cycle);
    }
    Ok(out)
}

#[pymethods]
impl PySagaDeadlockDetector {
    #[new]
    #[pyo3(signature = (saga_repository, logger=None, *, redis=None, metrics=None))]
    fn new(
        py: Python<'_>,
        saga_repository: &Bound<'_, PyAny>,
        logger: Option<&Bound<'_, PyAny>>,
        redis: Option<&Bound<'_, PyAny>>,
        metrics: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        guard(py, || {
            let repo = RepoSource::from_py(py, saga_repository)?;
            let logger = match logger.filter(|l| !l.is_none()) {
                Some(l) => Some(Arc::new(PyLogger::new(py, l)?)),
                None => None,
            };
            let metrics = match metrics.filter(|m| !m.is_none()) {
                Some(m) if callable(m, "record_deadlock") => Some(Arc::new(PyMetrics {
                    object: Slot::new(m.clone().unbind()),
                })),
                Some(m) => {
                    return Err(txcoord::Error::invalid_type(
                        "metrics",
                        format!(
                            "must have a record_deadlock(resolution_method) method, got {}",
                            type_description(m)
                        ),
                    ))
                    .into_py(py)
                }
                None => None,
            };
            let redis = match redis.filter(|r| !r.is_none()) {
                Some(r) => Some(resolve(py, r)?),
                None => None,
            };
            let detector = PySagaDeadlockDetector {
                repo,
                logger,
                metrics,
                redis,
            };
            // The core's checks (a user's repository needs `redis`) before anything runs.
            detector.detector().into_py(py)?;
            Ok(detector)
        })
    }

    /// The seed's `detectDeadlock()`: a `DeadlockResult`; changes nothing.
    fn detect_deadlock<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let detector = self.for_call(py)?;
        bridge::run(
            py,
            Run::Await,
            OnCancel::Abort,
            async move { detector.detect_deadlock().await },
            |py, r| Ok(Py::new(py, PyDeadlockResult { inner: r })?.into_any()),
        )
    }

    /// The seed's `resolveDeadlock(cycles)`: breaks the deadlocks among the sagas of `cycles`
    /// (lists of saga ids, `DeadlockCycle`s, or a `DeadlockResult`) as they stand now; returns
    /// the cycles broken, each with its `victim`.
    fn resolve_deadlock<'py>(
        &self,
        py: Python<'py>,
        cycles: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let cycles = cycle_ids(py, cycles)?;
        let detector = self.for_call(py)?;
        bridge::run(
            py,
            Run::Await,
            OnCancel::Finish,
            async move { detector.resolve_deadlock(&cycles).await },
            cycles_to_py,
        )
    }

    /// The wait-for graph as the lock registry shows it now: `nodes` (sagas) and `edges` (who
    /// waits for whom, on which lock, for how long).
    fn wait_for_graph<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let detector = self.for_call(py)?;
        bridge::run(
            py,
            Run::Await,
            OnCancel::Abort,
            async move { detector.wait_for_graph().await },
            |py, g| Ok(Py::new(py, PyWaitForGraph { inner: g })?.into_any()),
        )
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.repo.traverse(&visit)?;
        if let Some(l) = &self.logger {
            l.object.traverse(&visit)?;
        }
        if let Some(m) = &self.metrics {
            m.object.traverse(&visit)?;
        }
        Ok(())
    }

    fn __clear__(&self) {
        self.repo.clear();
        if let Some(l) = &self.logger {
            l.object.clear();
        }
        if let Some(m) = &self.metrics {
            m.object.clear();
        }
    }

    fn __repr__(&self) -> String {
        let repo = match &self.repo {
            RepoSource::Redis(_) => "RedisSagaRepository",
            RepoSource::User(_) => "user repository",
        };
        format!("<txcoord.SagaDeadlockDetector on a {repo}>")
    }
}
