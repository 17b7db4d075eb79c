// SPDX-License-Identifier: MIT OR Apache-2.0
//! Metrics, as the core's `metrics` module: the seed's `TransactionMetricsCollector` (with the
//! monitor's `record_gauge`/`record_histogram`, lock metrics of watched clients, the text
//! exposition, and a `collect()` that makes it a prometheus_client collector), the `/metrics`
//! endpoint (`serve_metrics`, async and blocking), and the adapter that lets a user's own
//! metrics object (the seed's `MetricsCollector`) receive what the monitor records. `seed`:
//! a user's seed-style registry (the seed's `MetricsRegistry`) holding the seed's four metrics.

mod seed;

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString};
use pyo3::{PyTraverseError, PyVisit};
use txcoord::binding::options::{self, Host, METRICS, SERVE};
use txcoord::binding::serve;
use txcoord::binding::validate::{self, Raw};
use txcoord::{MetricsServer, MonitorMetrics, TransactionMetricsCollector};

use crate::bridge::{self, OnCancel};
use crate::client::resolve;
use crate::convert::{type_description, Arg, Keywords, OwnedRaw};
use crate::error::{guard, IntoPyResult};
use crate::on_lost::Slot;
use crate::twin::{twins, Async, Blocking, Flavour};

/// A label value argument of a seed method: a string.
fn label(py: Python<'_>, arg: &'static str, value: &Bound<'_, PyAny>) -> PyResult<String> {
    match value.cast::<PyString>() {
        Ok(s) => Ok(s.to_cow()?.into_owned()),
        Err(_) => Err(validate::wrong_type(
            arg,
            "a string",
            Raw::Other(&type_description(value)),
        ))
        .into_py(py),
    }
}

/// A number argument (milliseconds, a gauge value): an int or a float, never a bool.
fn number(py: Python<'_>, arg: &'static str, value: &Bound<'_, PyAny>) -> PyResult<f64> {
    match OwnedRaw::from_value(value)? {
        OwnedRaw::Int(i) => Ok(i as f64),
        OwnedRaw::Float(f) => Ok(f),
        OwnedRaw::BigInt => Ok(value.extract::<f64>()?),
        other => Err(validate::wrong_type(arg, "a number", other.raw())).into_py(py),
    }
}

static METRIC: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The seed's `TransactionMetricsCollector(metricsRegistry)`: the seed's four metrics with its
/// names, help texts, labels and buckets (created in `metrics_registry` when it is a seed-style
/// registry, as the seed creates them, else in the collector); what the monitor records (`record_gauge`,
/// `record_histogram`); the lock metrics of the clients it watches; alert deliveries. Serve it
/// with `metrics()` (the text exposition), `serve_metrics(collector)` (its own `/metrics`
/// endpoint), or beside your own metrics from prometheus_client's registry
/// (`REGISTRY.register(collector)`, or `collector.register()`): it is a prometheus_client
/// collector (`collect()`).
#[pyclass(name = "TransactionMetricsCollector", module = "txcoord", frozen)]
pub(crate) struct PyTransactionMetricsCollector {
    inner: TransactionMetricsCollector,
    /// The user's seed-style registry, if the seed's metrics live there.
    seed: Option<seed::PySeedRegistry>,
}

/// A core result of a call into a user's seed-style registry: the exception it raised, as
/// itself, else the core's error.
fn reraise<T>(py: Python<'_>, result: txcoord::Result<T>) -> PyResult<T> {
    match result {
        Ok(v) => {
            seed::take_raised();
            Ok(v)
        }
        Err(e) => match seed::take_raised() {
            Some(raised) => Err(raised),
            None => Err(e).into_py(py),
        },
    }
}

impl PyTransactionMetricsCollector {
    pub(crate) fn collector(&self) -> &TransactionMetricsCollector {
        &self.inner
    }
}

/// Whether `obj` is a prometheus_client registry (it has `register` and `get_sample_value`).
fn is_prometheus_registry(obj: &Bound<'_, PyAny>) -> bool {
    ["register", "unregister", "get_sample_value"]
        .iter()
        .all(|m| obj.getattr(*m).is_ok_and(|f| f.is_callable()))
}

#[pymethods]
impl PyTransactionMetricsCollector {
    #[new]
    #[pyo3(
        signature = (metrics_registry=None, **options),
        text_signature = "(metrics_registry=None, *, names='legacy')"
    )]
    fn new(
        py: Python<'_>,
        metrics_registry: Option<&Bound<'_, PyAny>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        guard(py, || {
            let keywords = Keywords::new(options);
            keywords.refuse_unknown("TransactionMetricsCollector", |name| {
                options::accepts(METRICS, Host::Python, name)
            })?;
            let opts = keywords.read(METRICS, &[])?.into_py(py)?;
            let registry = metrics_registry.filter(|r| !r.is_none());
            if let Some(seed) = registry.and_then(seed::PySeedRegistry::from_py) {
                seed::take_raised();
                let inner = reraise(py, TransactionMetricsCollector::with_registry(&seed, opts))?;
                return Ok(PyTransactionMetricsCollector {
                    inner,
                    seed: Some(seed),
                });
            }
            let inner = TransactionMetricsCollector::with_options(opts);
            match registry {
                None => {}
                Some(r) if is_prometheus_registry(r) => {
                    // another Python object over the same metrics: what the registry collects
                    let shared = Py::new(
                        py,
                        PyTransactionMetricsCollector {
                            inner: inner.clone(),
                            seed: None,
                        },
                    )?;
                    r.call_method1("register", (shared,))?;
                }
                Some(r) => {
                    return Err(txcoord::Error::invalid_type(
                        "metrics_registry",
                        format!(
                            "must be a seed-style registry (create_histogram and create_counter) \
                             or a prometheus_client registry (CollectorRegistry), got {}",
                            type_description(r)
                        ),
                    ))
                    .into_py(py)
                }
            }
            Ok(PyTransactionMetricsCollector { inner, seed: None })
        })
    }

    /// The names the monitor's gauges are exported under: `legacy`, `convention` or `both`.
    #[getter]
    fn names(&self) -> &'static str {
        self.inner.names().as_str()
    }

    /// The seed's `recordDistributedTransaction(transactionType, status, duration)`: `status`
    /// is `success` or `failure`, `duration_ms` in milliseconds (observed in seconds).
    fn record_distributed_transaction(
        &self,
        py: Python<'_>,
        transaction_type: &Bound<'_, PyAny>,
        status: &Bound<'_, PyAny>,
        duration_ms: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let (t, s) = (
            label(py, "transaction_type", transaction_type)?,
            label(py, "status", status)?,
        );
        let d = number(py, "duration_ms", duration_ms)?;
        reraise(py, self.inner.record_distributed_transaction(&t, &s, d))
    }

    /// The seed's `recordSagaExecution(sagaType, status, duration)`: `status` is `completed`,
    /// `failed` or `compensated`, `duration_ms` in milliseconds (observed in seconds).
    fn record_saga_execution(
        &self,
        py: Python<'_>,
        saga_type: &Bound<'_, PyAny>,
        status: &Bound<'_, PyAny>,
        duration_ms: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let (t, s) = (
            label(py, "saga_type", saga_type)?,
            label(py, "status", status)?,
        );
        let d = number(py, "duration_ms", duration_ms)?;
        reraise(py, self.inner.record_saga_execution(&t, &s, d))
    }

    /// The seed's `recordCompensation(sagaType, step, reason)`; `reason` is a label value: keep
    /// it a short category, not an error text.
    fn record_compensation(
        &self,
        py: Python<'_>,
        saga_type: &Bound<'_, PyAny>,
        step: &Bound<'_, PyAny>,
        reason: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let t = label(py, "saga_type", saga_type)?;
        let (s, r) = (label(py, "step", step)?, label(py, "reason", reason)?);
        reraise(py, self.inner.record_compensation(&t, &s, &r))
    }

    /// The seed's `recordDeadlock(resolutionMethod)`: `abort_saga`, `timeout` or `manual`.
    fn record_deadlock(
        &self,
        py: Python<'_>,
        resolution_method: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let m = label(py, "resolution_method", resolution_method)?;
        reraise(py, self.inner.record_deadlock(&m))
    }

    /// The seed's `recordGauge(name, value)` (what the monitor records: `sagas_active_total`,
    /// ...). A name the collector does not know is exported as given.
    fn record_gauge(
        &self,
        py: Python<'_>,
        name: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let n = label(py, "name", name)?;
        let v = number(py, "value", value)?;
        MonitorMetrics::record_gauge(&self.inner, &n, v);
        Ok(())
    }

    /// The seed's `recordHistogram(name, value)` (the monitor's `saga_duration_seconds`, one
    /// observation per finished saga). A name the collector does not know is exported as given.
    fn record_histogram(
        &self,
        py: Python<'_>,
        name: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let n = label(py, "name", name)?;
        let v = number(py, "value", value)?;
        MonitorMetrics::record_histogram(&self.inner, &n, v);
        Ok(())
    }

    /// Exports the lock metrics (`txcoord_lock_*`) of `client` (a `Client`, a URL, or a redis-py
    /// client, as `LockManager` takes) from now on, summed with the other watched clients'.
    fn watch_client(&self, py: Python<'_>, client: &Bound<'_, PyAny>) -> PyResult<()> {
        let handle = resolve(py, client)?;
        self.inner.watch_client(&handle.get().into_py(py)?);
        Ok(())
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric.
    fn metrics(&self, py: Python<'_>) -> String {
        py.detach(|| self.inner.metrics())
    }

    /// The metrics as prometheus_client metric families: what makes the collector a
    /// prometheus_client collector (`REGISTRY.register(collector)`). Needs prometheus_client.
    fn collect<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let families = py.detach(|| self.inner.families());
        to_prometheus_client(py, families)
    }

    /// Every metric family the collector exports, without samples: prometheus_client's
    /// registries read the names from it, to refuse a second collector of the same names.
    fn describe<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let families = py.detach(|| self.inner.descriptions());
        to_prometheus_client(py, families)
    }

    /// Registers the collector into a prometheus_client registry (default: its global
    /// `REGISTRY`), so your endpoint serves txcoord's metrics beside yours. Raises what the
    /// registry raises for a name it already has (`ValueError`).
    #[pyo3(signature = (registry=None))]
    fn register(slf: &Bound<'_, Self>, registry: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let py = slf.py();
        let registry = match registry.filter(|r| !r.is_none()) {
            Some(r) => r.clone(),
            None => py.import("prometheus_client")?.getattr("REGISTRY")?,
        };
        registry.call_method1("register", (slf,))?;
        Ok(())
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        match &self.seed {
            Some(s) => s.traverse(&visit),
            None => Ok(()),
        }
    }

    fn __clear__(&self) {
        if let Some(s) = &self.seed {
            s.clear();
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "<txcoord.TransactionMetricsCollector names={:?}{}>",
            self.names(),
            if self.seed.is_some() {
                " in a seed-style registry"
            } else {
                ""
            }
        )
    }
}

/// The core's families as prometheus_client metric families.
fn to_prometheus_client(
    py: Python<'_>,
    families: Vec<txcoord::MetricFamilySamples>,
) -> PyResult<Vec<Bound<'_, PyAny>>> {
    let metric = METRIC.import(py, "prometheus_client.metrics_core", "Metric")?;
    let mut out = Vec::with_capacity(families.len());
    for f in families {
        // prometheus_client names a counter without its `_total` (its samples keep it)
        let name = match f.kind {
            "counter" => f.name.strip_suffix("_total").unwrap_or(&f.name),
            _ => &f.name,
        };
        let family = metric.call1((name, &f.help, f.kind))?;
        for s in &f.samples {
            let labels = PyDict::new(py);
            for (k, v) in &s.labels {
                labels.set_item(k, v)?;
            }
            family.call_method1("add_sample", (&s.name, labels, s.value))?;
        }
        out.push(family);
    }
    Ok(out)
}

twins! {
    /// A running `/metrics` endpoint (async API): `url`, `host`, `port`; `await close()` (or
    /// `async with`) stops it and releases the port.
    #[pyclass(name = "MetricsServer", module = "txcoord", frozen)]
    pub(crate) struct PyMetricsServer: Async;
    /// A running `/metrics` endpoint (blocking API, `txcoord.sync.MetricsServer`).
    #[pyclass(name = "MetricsServer", module = "txcoord.sync", frozen)]
    pub(crate) struct PySyncMetricsServer: Blocking;
    fields {
        server: Arc<MetricsServer>,
    }
    flavour F;
    methods {
        /// `http://HOST:PORT/metrics`.
        #[getter]
        fn url(&self) -> String {
            self.server.url()
        }
        /// The address it listens on.
        #[getter]
        fn host(&self) -> String {
            self.server.local_addr().ip().to_string()
        }
        /// The port it listens on (the one the system chose for port 0).
        #[getter]
        fn port(&self) -> u16 {
            self.server.local_addr().port()
        }

        /// Stops accepting connections, lets requests in progress finish (at most 5 s), and
        /// returns once the port is released.
        fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
            let server = self.server.clone();
            bridge::run(py, F::RUN, OnCancel::Finish, async move { server.shutdown().await; Ok(()) }, |py, ()| Ok(py.None()))
        }

        @async { #[pyo3(name = "__aenter__")] }
        @sync { #[pyo3(name = "__enter__")] }
        /// Gives the server.
        fn enter<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
            let py = slf.py();
            F::ready(py, slf.into_any().unbind())
        }

        @async { #[pyo3(name = "__aexit__")] }
        @sync { #[pyo3(name = "__exit__")] }
        /// Closes the server.
        fn exit<'py>(
            &self,
            py: Python<'py>,
            _exc_type: &Bound<'_, PyAny>,
            _exc: &Bound<'_, PyAny>,
            _tb: &Bound<'_, PyAny>,
        ) -> PyResult<Bound<'py, PyAny>> {
            self.close(py)
        }

        fn __repr__(&self) -> String {
            format!("<{}.MetricsServer {}>", F::MODULE, self.server.url())
        }
    }
}

/// Serves `collector` at `http://HOST:PORT/metrics` (async): the running `MetricsServer`.
#[pyfunction]
#[pyo3(
    signature = (collector, host=None, port=None),
    text_signature = "(collector, host='127.0.0.1', port=9464)"
)]
fn serve_metrics<'py>(
    py: Python<'py>,
    collector: &Bound<'_, PyTransactionMetricsCollector>,
    host: Option<&Bound<'py, PyAny>>,
    port: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    start::<Async>(py, collector, host, port, |py, s| {
        Ok(Py::new(
            py,
            PyMetricsServer {
                server: Arc::new(s),
            },
        )?
        .into_any())
    })
}

/// Serves `collector` at `http://HOST:PORT/metrics` (blocking): the running `MetricsServer`.
#[pyfunction]
#[pyo3(
    name = "_sync_serve_metrics",
    signature = (collector, host=None, port=None),
    text_signature = "(collector, host='127.0.0.1', port=9464)"
)]
fn sync_serve_metrics<'py>(
    py: Python<'py>,
    collector: &Bound<'_, PyTransactionMetricsCollector>,
    host: Option<&Bound<'py, PyAny>>,
    port: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    start::<Blocking>(py, collector, host, port, |py, s| {
        Ok(Py::new(
            py,
            PySyncMetricsServer {
                server: Arc::new(s),
            },
        )?
        .into_any())
    })
}

/// `host` and `port` read through the core's `SERVE` table (None: the default), and the
/// endpoint started by the core.
fn start<'py, F: Flavour>(
    py: Python<'py>,
    collector: &Bound<'_, PyTransactionMetricsCollector>,
    host: Option<&Bound<'py, PyAny>>,
    port: Option<&Bound<'py, PyAny>>,
    wrap: fn(Python<'_>, MetricsServer) -> PyResult<Py<PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let arg = |v: Option<&Bound<'py, PyAny>>| match v.filter(|v| !v.is_none()) {
        Some(v) => Arg::Given(v.clone()),
        None => Arg::Absent,
    };
    let (host, port) = (arg(host), arg(port));
    let options = Keywords::new(None)
        .read(SERVE, &[("host", &host), ("port", &port)])?
        .into_py(py)?;
    let collector = collector.get().inner.clone();
    bridge::run(
        py,
        F::RUN,
        OnCancel::Abort,
        serve::serve(options, collector),
        wrap,
    )
}

/// A user's metrics object, with the seed's `record_gauge(name, value)` and
/// `record_histogram(name, value)` (or the seed's own spelling, `recordGauge` and
/// `recordHistogram`), as the core's `MonitorMetrics`. Called on a runtime thread, attached;
/// an exception it raises is logged (the `txcoord` logger), never raised into the monitor.
pub(crate) struct PyMonitorMetrics {
    object: Arc<Slot>,
    gauge: &'static str,
    histogram: &'static str,
}

impl PyMonitorMetrics {
    fn record(&self, method: &'static str, name: &str, value: f64) {
        Python::try_attach(|py| {
            let Some(obj) = self.object.get(py) else {
                return;
            };
            if let Err(e) = obj.bind(py).call_method1(method, (name, value)) {
                tracing::warn!(
                    target: "txcoord",
                    "txcoord: the metrics collector's {method}({name:?}) raised {}",
                    crate::user::describe(&e)
                );
            }
        });
    }
}

impl MonitorMetrics for PyMonitorMetrics {
    fn record_gauge(&self, name: &str, value: f64) {
        self.record(self.gauge, name, value);
    }
    fn record_histogram(&self, name: &str, value: f64) {
        self.record(self.histogram, name, value);
    }
}

/// What a monitor records into: our collector, or a user's object.
pub(crate) enum MetricsSource {
    Core(TransactionMetricsCollector),
    User(Arc<PyMonitorMetrics>),
}

impl MetricsSource {
    /// A `metrics_collector` argument: a `TransactionMetricsCollector`, or any object with
    /// `record_gauge` and `record_histogram` (or `recordGauge` and `recordHistogram`).
    pub(crate) fn from_py(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<MetricsSource> {
        if let Ok(c) = obj.cast::<PyTransactionMetricsCollector>() {
            return Ok(MetricsSource::Core(c.get().inner.clone()));
        }
        let has = |m: &str| obj.getattr(m).is_ok_and(|f| f.is_callable());
        let (gauge, histogram) = if has("record_gauge") && has("record_histogram") {
            ("record_gauge", "record_histogram")
        } else if has("recordGauge") && has("recordHistogram") {
            ("recordGauge", "recordHistogram")
        } else {
            return Err(txcoord::Error::invalid_type(
                "metrics_collector",
                format!(
                    "must be a TransactionMetricsCollector or an object with record_gauge(name, \
                     value) and record_histogram(name, value) methods, got {}",
                    type_description(obj)
                ),
            ))
            .into_py(py);
        };
        Ok(MetricsSource::User(Arc::new(PyMonitorMetrics {
            object: Slot::new(obj.clone().unbind()),
            gauge,
            histogram,
        })))
    }

    pub(crate) fn core(&self) -> Arc<dyn MonitorMetrics> {
        match self {
            MetricsSource::Core(c) => Arc::new(c.clone()),
            MetricsSource::User(u) => u.clone(),
        }
    }

    pub(crate) fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        match self {
            MetricsSource::User(u) => u.object.traverse(visit),
            MetricsSource::Core(_) => Ok(()),
        }
    }

    pub(crate) fn clear(&self) {
        if let MetricsSource::User(u) = self {
            u.object.clear();
        }
    }
}

/// Adds the metrics classes and functions to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<PyTransactionMetricsCollector>()?;
    m.add_class::<PyMetricsServer>()?;
    m.add("SyncMetricsServer", py.get_type::<PySyncMetricsServer>())?;
    m.add_function(pyo3::wrap_pyfunction!(serve_metrics, m)?)?;
    m.add_function(pyo3::wrap_pyfunction!(sync_serve_metrics, m)?)?;
    Ok(())
}
