// SPDX-License-Identifier: MIT OR Apache-2.0
//! `SagaMonitor` (async and blocking, from one definition: see `twin`) over the core's
//! `SagaMonitor`: the seed's `(saga_repository, metrics_collector, alert_manager,
//! deadlock_detector)`, each either txcoord's own or a user's Python object (see `saga`,
//! `metrics`, `alert`), plus the user's recovery handlers (`on_retry`, `on_compensate`).
//!
//! The monitor's passes run on the binding's tokio runtime, started on construction as the
//! seed's are. A user's object whose methods are coroutines runs them on the event loop captured
//! when the monitor was built (or by the latest awaited call: `tick()`, `stop()`); plain methods
//! are called on a runtime thread. The Python objects are owned by the monitor (reported to the
//! garbage collector). A monitor runs in the process that created it: a forked child gets none
//! (its methods raise `ClosedError`; build the monitor after forking).

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use pyo3::{PyTraverseError, PyVisit};
use txcoord::binding::monitor as table;
use txcoord::binding::options::{self, Host, MONITOR};
use txcoord::{BoxFuture, RecoveryHandlers, SagaMonitor, SagaRecord, TickReport};

use crate::alert::AlertSource;
use crate::bridge::{self, OnCancel, Run};
use crate::client::resolve;
use crate::convert::{type_description, Keywords, OwnedRaw};
use crate::deadlock::detector::PySagaDeadlockDetector;
use crate::error::{guard, IntoPyResult};
use crate::metrics::MetricsSource;
use crate::on_lost::Slot;
use crate::runtime;
use crate::saga::record::record_to_py;
use crate::saga::repository::RepoSource;
use crate::twin::{twins, Async, Blocking, Flavour};
use crate::user::{describe, UserObject};

/// What one pass did (`await monitor.tick()`).
#[pyclass(name = "TickReport", module = "txcoord", frozen, eq)]
#[derive(Clone, PartialEq)]
pub(crate) struct PyTickReport {
    inner: TickReport,
}

#[pymethods]
impl PyTickReport {
    /// Whether this monitor led (only the leader acts; a follower's report is otherwise empty).
    #[getter]
    fn leader(&self) -> bool {
        self.inner.leader
    }
    /// Sagas alerted as long-running.
    #[getter]
    fn long_running(&self) -> usize {
        self.inner.long_running
    }
    /// Sagas found stuck.
    #[getter]
    fn stuck(&self) -> usize {
        self.inner.stuck
    }
    /// Stuck sagas retried (retry count + 1, `EXECUTING`).
    #[getter]
    fn retried(&self) -> usize {
        self.inner.retried
    }
    /// Stuck sagas compensated (`COMPENSATING`).
    #[getter]
    fn compensated(&self) -> usize {
        self.inner.compensated
    }
    /// Deadlock cycles broken.
    #[getter]
    fn deadlocks(&self) -> usize {
        self.inner.deadlocks
    }
    /// The steps that failed, with why (the others ran all the same).
    #[getter]
    fn errors(&self) -> Vec<String> {
        self.inner.errors.clone()
    }

    fn __repr__(&self) -> String {
        let r = &self.inner;
        format!(
            "TickReport(leader={}, long_running={}, stuck={}, retried={}, compensated={}, \
             deadlocks={}, errors={:?})",
            if r.leader { "True" } else { "False" },
            r.long_running,
            r.stuck,
            r.retried,
            r.compensated,
            r.deadlocks,
            r.errors
        )
    }
}

/// The user's `on_retry(saga)` and `on_compensate(saga)` (coroutine functions or plain ones),
/// as the core's `RecoveryHandlers`. Called after the monitor's conditional save of the new
/// status, with the saga record as saved. An exception is logged; the monitor then alerts
/// `Saga recovery failed`, as the seed does, and goes on.
struct PyHandlers {
    retry: Option<UserObject>,
    compensate: Option<UserObject>,
}

async fn handle(user: &Option<UserObject>, saga: &SagaRecord) -> txcoord::Result<()> {
    let Some(user) = user else {
        return Ok(());
    };
    let saga = saga.clone();
    let id = saga.id.clone();
    user.call(None, move |py| {
        Ok((PyTuple::new(py, [record_to_py(py, saga)?])?, None))
    })
    .await
    .map(drop)
    .map_err(|e| {
        let message = format!("{}(saga {id:?}) raised {}", user.what(), describe(&e));
        tracing::warn!(target: "txcoord", "txcoord: {message}");
        txcoord::Error::Internal(message)
    })
}

impl RecoveryHandlers for PyHandlers {
    fn retry<'a>(&'a self, saga: &'a SagaRecord) -> BoxFuture<'a, txcoord::Result<()>> {
        Box::pin(handle(&self.retry, saga))
    }
    fn compensate<'a>(&'a self, saga: &'a SagaRecord) -> BoxFuture<'a, txcoord::Result<()>> {
        Box::pin(handle(&self.compensate, saga))
    }
}

impl PyHandlers {
    fn users(&self) -> impl Iterator<Item = &UserObject> {
        self.retry.iter().chain(self.compensate.iter())
    }
}

/// An `on_retry=`/`on_compensate=` argument: a callable or `None`.
fn handler(
    py: Python<'_>,
    arg: &'static str,
    value: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<UserObject>> {
    match value.filter(|v| !v.is_none()) {
        None => Ok(None),
        Some(cb) if cb.is_callable() => Ok(Some(UserObject::new(py, cb, arg)?)),
        Some(cb) => Err(txcoord::Error::invalid_type(
            arg,
            format!(
                "must be a callable taking the saga record, got {}",
                type_description(cb)
            ),
        ))
        .into_py(py),
    }
}

/// What a Python monitor keeps.
pub(crate) struct MonitorShared {
    monitor: SagaMonitor,
    /// The process that created it: the only one where it runs.
    pid: u32,
    repo: RepoSource,
    metrics: MetricsSource,
    alerts: AlertSource,
    handlers: Option<Arc<PyHandlers>>,
    /// The Python detector, kept (and reported to the collector) for its own Python objects.
    detector: Arc<Slot>,
}

impl MonitorShared {
    #[allow(clippy::too_many_arguments)]
    fn construct(
        py: Python<'_>,
        saga_repository: &Bound<'_, PyAny>,
        metrics_collector: &Bound<'_, PyAny>,
        alert_manager: &Bound<'_, PyAny>,
        deadlock_detector: &Bound<'_, PyAny>,
        redis: Option<&Bound<'_, PyAny>>,
        limits_ms: Option<&Bound<'_, PyAny>>,
        on_retry: Option<&Bound<'_, PyAny>>,
        on_compensate: Option<&Bound<'_, PyAny>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Arc<Self>> {
        let keywords = Keywords::new(options);
        keywords.refuse_unknown("SagaMonitor", |name| {
            options::accepts(MONITOR, Host::Python, name)
        })?;
        let mut opts = keywords.read(MONITOR, &[])?.into_py(py)?;
        if let Some(limits) = limits_ms.filter(|l| !l.is_none()) {
            let Ok(d) = limits.cast::<PyDict>() else {
                return Err(txcoord::Error::invalid_type(
                    "limits_ms",
                    format!(
                        "must be a dict of saga types to milliseconds, got {}",
                        type_description(limits)
                    ),
                ))
                .into_py(py);
            };
            for (k, v) in d.iter() {
                let (k, v) = (OwnedRaw::from_value(&k)?, OwnedRaw::from_value(&v)?);
                opts = table::limit(Host::Python, opts, k.raw(), v.raw()).into_py(py)?;
            }
        }
        if let Some(r) = redis.filter(|r| !r.is_none()) {
            opts = opts.set_redis(&resolve(py, r)?.get().into_py(py)?);
        }
        let Ok(detector) = deadlock_detector.cast::<PySagaDeadlockDetector>() else {
            return Err(txcoord::Error::invalid_type(
                "deadlock_detector",
                format!(
                    "must be a SagaDeadlockDetector, got {}",
                    type_description(deadlock_detector)
                ),
            ))
            .into_py(py);
        };
        let core_detector = detector.get().for_call(py)?;
        let repo = RepoSource::from_py(py, saga_repository)?;
        let metrics = MetricsSource::from_py(py, metrics_collector)?;
        let alerts = AlertSource::from_py(py, alert_manager)?;
        let retry = handler(py, "on_retry", on_retry)?;
        let compensate = handler(py, "on_compensate", on_compensate)?;
        let handlers = (retry.is_some() || compensate.is_some())
            .then(|| Arc::new(PyHandlers { retry, compensate }));
        if let Some(h) = &handlers {
            opts = opts.set_handlers(h.clone());
        }
        // the monitor spawns its passes on the runtime it is built in
        let rt = runtime::handle().into_py(py)?;
        let _entered = rt.enter();
        let monitor = SagaMonitor::new(
            repo.core().into_py(py)?,
            metrics.core(),
            alerts.core(),
            core_detector,
            opts,
        )
        .into_py(py)?;
        Ok(Arc::new(MonitorShared {
            monitor,
            pid: std::process::id(),
            repo,
            metrics,
            alerts,
            handlers,
            detector: Slot::new(deadlock_detector.clone().unbind()),
        }))
    }

    /// The monitor, in the process that created it.
    fn monitor(&self) -> txcoord::Result<SagaMonitor> {
        if self.pid != std::process::id() {
            return Err(txcoord::Error::Closed {
                what: "this saga monitor (it runs in the process that created it)",
            });
        }
        Ok(self.monitor.clone())
    }

    /// Before an awaited call: the user's coroutines run on the caller's loop.
    fn bind_loop(&self, py: Python<'_>) -> PyResult<()> {
        self.repo.bind_loop(py)?;
        self.alerts.bind_loop(py)?;
        if let Some(h) = &self.handlers {
            for u in h.users() {
                u.bind_loop(py)?;
            }
        }
        if let Some(d) = self.detector.get(py) {
            if let Ok(d) = d.bind(py).cast::<PySagaDeadlockDetector>() {
                d.get().for_call(py)?;
            }
        }
        Ok(())
    }

    /// The monitor for one call of flavour `run`.
    fn for_call(&self, py: Python<'_>, run: Run) -> PyResult<SagaMonitor> {
        let monitor = self.monitor().into_py(py)?;
        if matches!(run, Run::Await) {
            self.bind_loop(py)?;
        }
        Ok(monitor)
    }

    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.repo.traverse(visit)?;
        self.metrics.traverse(visit)?;
        self.alerts.traverse(visit)?;
        if let Some(h) = &self.handlers {
            for u in h.users() {
                u.traverse(visit)?;
            }
        }
        self.detector.traverse(visit)
    }

    fn clear(&self) {
        self.repo.clear();
        self.metrics.clear();
        self.alerts.clear();
        if let Some(h) = &self.handlers {
            for u in h.users() {
                u.clear();
            }
        }
        self.detector.clear();
    }
}

twins! {
    /// The seed's SagaMonitor (async API): every `interval_ms` (30 s) it alerts long-running
    /// sagas (per-type limits), alerts and recovers stuck ones (retry while the retry count is
    /// below `max_retries`, an unset count being 0; then compensate), detects and breaks
    /// deadlocks, and records the seed's metrics. It starts on construction, as the seed's does
    /// (`start=False` to run passes only with `tick()`); its passes run on txcoord's runtime,
    /// so no event loop needs to run for them, but a user object's coroutines run on the loop
    /// that built the monitor (or that awaited its latest `tick()`/`stop()`). Among the monitors
    /// of one `election_name` only the leader acts, and its every change to a saga is a
    /// conditional save under its leader term. `await stop()` (or `async with`) ends it.
    #[pyclass(name = "SagaMonitor", module = "txcoord", frozen)]
    pub(crate) struct PySagaMonitor: Async;
    /// The seed's SagaMonitor (blocking API, `txcoord.sync.SagaMonitor`): its passes run on
    /// txcoord's runtime; a user's objects are called there and must not return coroutines.
    #[pyclass(name = "SagaMonitor", module = "txcoord.sync", frozen)]
    pub(crate) struct PySyncSagaMonitor: Blocking;
    fields {
        shared: Arc<MonitorShared>,
    }
    flavour F;
    methods {
        #[new]
        #[pyo3(
            signature = (saga_repository, metrics_collector, alert_manager, deadlock_detector, *, redis=None, limits_ms=None, on_retry=None, on_compensate=None, **options),
            text_signature = "(saga_repository, metrics_collector, alert_manager, deadlock_detector, *, redis=None, interval_ms=30000, limits_ms=None, default_limit_ms=300000, election_name='saga-monitor', leader_ttl_ms=10000, candidate_id=None, max_retries=3, start=True, on_retry=None, on_compensate=None)"
        )]
        #[allow(clippy::too_many_arguments)]
        fn new(
            py: Python<'_>,
            saga_repository: &Bound<'_, PyAny>,
            metrics_collector: &Bound<'_, PyAny>,
            alert_manager: &Bound<'_, PyAny>,
            deadlock_detector: &Bound<'_, PyAny>,
            redis: Option<&Bound<'_, PyAny>>,
            limits_ms: Option<&Bound<'_, PyAny>>,
            on_retry: Option<&Bound<'_, PyAny>>,
            on_compensate: Option<&Bound<'_, PyAny>>,
            options: Option<&Bound<'_, PyDict>>,
        ) -> PyResult<Self> {
            guard(py, || {
                Ok(Self {
                    shared: MonitorShared::construct(
                        py,
                        saga_repository,
                        metrics_collector,
                        alert_manager,
                        deadlock_detector,
                        redis,
                        limits_ms,
                        on_retry,
                        on_compensate,
                        options,
                    )?,
                })
            })
        }

        /// Runs one pass now (after the pass in progress, if any): campaigns if this monitor
        /// does not lead, then, if it leads, runs every step; a `TickReport`. A failing step is
        /// reported in `errors`, never raised.
        fn tick<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
            let monitor = self.shared.for_call(py, F::RUN)?;
            bridge::run(
                py,
                F::RUN,
                OnCancel::Finish,
                async move { Ok(monitor.tick().await) },
                |py, r| Ok(Py::new(py, PyTickReport { inner: r })?.into_any()),
            )
        }

        /// Stops the monitor: no pass starts after it returns, the one in progress has ended,
        /// and the leadership is given up.
        fn stop<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
            let monitor = self.shared.for_call(py, F::RUN)?;
            bridge::run(
                py,
                F::RUN,
                OnCancel::Finish,
                async move {
                    monitor.stop().await;
                    Ok(())
                },
                |py, ()| Ok(py.None()),
            )
        }

        /// Whether this monitor leads (and so acts).
        #[getter]
        fn is_leader(&self) -> bool {
            self.shared.monitor().is_ok_and(|m| m.is_leader())
        }

        /// This monitor's leader term while it leads (a fencing number), else None.
        #[getter]
        fn term(&self) -> Option<u64> {
            self.shared.monitor().ok().and_then(|m| m.term())
        }

        /// This monitor's id in the election.
        #[getter]
        fn candidate_id(&self) -> String {
            self.shared.monitor.candidate_id().to_string()
        }

        /// The time between passes, in ms.
        #[getter]
        fn interval_ms(&self) -> u64 {
            self.shared.monitor.interval().as_millis() as u64
        }

        @async { #[pyo3(name = "__aenter__")] }
        @sync { #[pyo3(name = "__enter__")] }
        /// Gives the monitor (already started, unless `start=False`).
        fn enter<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
            let py = slf.py();
            slf.get().shared.monitor().into_py(py)?;
            F::ready(py, slf.into_any().unbind())
        }

        @async { #[pyo3(name = "__aexit__")] }
        @sync { #[pyo3(name = "__exit__")] }
        /// Stops the monitor.
        fn exit<'py>(
            &self,
            py: Python<'py>,
            _exc_type: &Bound<'_, PyAny>,
            _exc: &Bound<'_, PyAny>,
            _tb: &Bound<'_, PyAny>,
        ) -> PyResult<Bound<'py, PyAny>> {
            self.stop(py)
        }

        fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
            self.shared.traverse(&visit)
        }

        fn __clear__(&self) {
            self.shared.clear();
        }

        fn __repr__(&self) -> String {
            format!(
                "<{}.SagaMonitor candidate_id={:?} leader={}>",
                F::MODULE,
                self.shared.monitor.candidate_id(),
                if self.is_leader() { "True" } else { "False" }
            )
        }
    }
}

/// Adds the monitor classes to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<PyTickReport>()?;
    m.add_class::<PySagaMonitor>()?;
    m.add("SyncSagaMonitor", py.get_type::<PySyncSagaMonitor>())?;
    Ok(())
}
