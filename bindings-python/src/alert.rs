// SPDX-License-Identifier: MIT OR Apache-2.0
//! Alerts, as the core's `alert` module: the `Alert` value, the built-in sinks (`LogAlertSink`,
//! `AlertmanagerSink`, async and blocking from one definition: see `twin`), and the adapter that
//! lets a user's own object with the seed's `send(alert)` stand wherever a sink is taken.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use pyo3::{PyTraverseError, PyVisit};
use txcoord::binding::monitor as table;
use txcoord::binding::options::{self, Host, ALERTMANAGER};
use txcoord::binding::validate::{self, Raw};
use txcoord::{Alert, AlertSink, AlertmanagerSink, BoxFuture, LogAlertSink, Severity};

use crate::bridge::{self, OnCancel};
use crate::convert::{json_to_py, py_to_json, type_description, Keywords, OwnedRaw};
use crate::error::{guard, IntoPyResult};
use crate::metrics::PyTransactionMetricsCollector;
use crate::twin::{twins, Async, Blocking, Flavour};
use crate::user::{describe, UserObject};

const SEVERITIES: [&str; 3] = ["info", "warning", "critical"];

fn severity(s: &str) -> Severity {
    match s {
        "info" => Severity::Info,
        "warning" => Severity::Warning,
        _ => Severity::Critical,
    }
}

/// One alert, in the seed's shape (`severity`, `summary`, `description`, `metadata`), with what
/// identifies it for sinks that deduplicate (`name`, `labels`) and whether its condition
/// cleared (`resolved`). The monitor hands one to a sink's `send(alert)`.
#[pyclass(name = "Alert", module = "txcoord", frozen, eq)]
#[derive(Clone, PartialEq)]
pub(crate) struct PyAlert {
    pub(crate) inner: Alert,
}

/// A string field of an alert given as a dict or an object.
fn text_field(
    py: Python<'_>,
    arg: &'static str,
    value: Option<Bound<'_, PyAny>>,
) -> PyResult<Option<String>> {
    let raw = OwnedRaw::from_optional(value.as_ref())?;
    Ok(validate::string(arg, raw.raw())
        .into_py(py)?
        .map(str::to_string))
}

/// `labels`: a mapping of strings to strings (or pairs).
fn labels_from_py(
    py: Python<'_>,
    value: Option<Bound<'_, PyAny>>,
) -> PyResult<Vec<(String, String)>> {
    let Some(value) = value.filter(|v| !v.is_none()) else {
        return Ok(Vec::new());
    };
    let items = match value.cast::<PyDict>() {
        Ok(d) => d.items().into_any(),
        Err(_) => value.clone(),
    };
    let bad = || {
        Err(txcoord::Error::invalid_type(
            "labels",
            format!(
                "must map label names to values (strings), got {}",
                type_description(&value)
            ),
        ))
        .into_py(py)
    };
    let Ok(iter) = items.try_iter() else {
        return bad();
    };
    let mut out = Vec::new();
    for pair in iter {
        let Ok((k, v)) = pair?.extract::<(String, String)>() else {
            return bad();
        };
        out.push((k, v));
    }
    Ok(out)
}

impl PyAlert {
    /// An alert from a `send(alert)`-style argument: an `Alert`, a dict with the seed's keys, or
    /// an object with those attributes.
    pub(crate) fn from_py(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<Alert> {
        if let Ok(a) = obj.cast::<PyAlert>() {
            return Ok(a.get().inner.clone());
        }
        let dict = obj.cast::<PyDict>().ok();
        let get = |key: &str| -> PyResult<Option<Bound<'_, PyAny>>> {
            match &dict {
                Some(d) => d.get_item(key),
                None => Ok(obj.getattr(key).ok()),
            }
        };
        if dict.is_none() && obj.getattr("severity").is_err() {
            return Err(txcoord::Error::invalid_type(
                "alert",
                format!(
                    "must be an Alert, a dict or an object with severity, summary, description \
                     and metadata, got {}",
                    type_description(obj)
                ),
            ))
            .into_py(py);
        }
        let raw = OwnedRaw::from_optional(get("severity")?.as_ref())?;
        let sev = validate::one_of("severity", raw.raw(), &SEVERITIES)
            .into_py(py)?
            .unwrap_or("warning");
        let metadata = match get("metadata")?.filter(|m| !m.is_none()) {
            Some(m) => py_to_json(&m)
                .map_err(|e| {
                    txcoord::Error::invalid_argument(
                        "metadata",
                        format!("must be JSON-like: {}", e.value(py)),
                    )
                })
                .into_py(py)?,
            None => serde_json::Value::Object(Default::default()),
        };
        let resolved = match get("resolved")? {
            Some(r) if !r.is_none() => {
                let raw = OwnedRaw::from_value(&r)?;
                validate::flag("resolved", raw.raw())
                    .into_py(py)?
                    .unwrap_or(false)
            }
            _ => false,
        };
        Ok(Alert {
            severity: severity(sev),
            summary: text_field(py, "summary", get("summary")?)?.unwrap_or_default(),
            description: text_field(py, "description", get("description")?)?.unwrap_or_default(),
            metadata,
            name: text_field(py, "name", get("name")?)?.unwrap_or_default(),
            labels: labels_from_py(py, get("labels")?)?,
            resolved,
        })
    }
}

#[pymethods]
impl PyAlert {
    #[new]
    #[pyo3(
        signature = (severity, summary, description, metadata=None, *, name=None, labels=None, resolved=None),
        text_signature = "(severity, summary, description, metadata=None, *, name=None, labels=None, resolved=False)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        severity: &Bound<'_, PyAny>,
        summary: &Bound<'_, PyAny>,
        description: &Bound<'_, PyAny>,
        metadata: Option<&Bound<'_, PyAny>>,
        name: Option<&Bound<'_, PyAny>>,
        labels: Option<&Bound<'_, PyAny>>,
        resolved: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let d = PyDict::new(py);
        d.set_item("severity", severity)?;
        d.set_item("summary", summary)?;
        d.set_item("description", description)?;
        d.set_item("metadata", metadata)?;
        d.set_item("name", name)?;
        d.set_item("labels", labels)?;
        d.set_item("resolved", resolved)?;
        Ok(PyAlert {
            inner: PyAlert::from_py(py, d.as_any())?,
        })
    }

    /// `info`, `warning` or `critical`.
    #[getter]
    fn severity(&self) -> &'static str {
        self.inner.severity.as_str()
    }
    #[getter]
    fn summary(&self) -> &str {
        &self.inner.summary
    }
    #[getter]
    fn description(&self) -> &str {
        &self.inner.description
    }
    /// The changing values, with the seed's keys (`sagaId`, `sagaType`, `runtime`, ...).
    #[getter]
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &self.inner.metadata)
    }
    /// A stable name of the condition (`LongRunningSaga`, `StuckSaga`, `SagaDeadlock`,
    /// `SagaRecoveryFailed`); empty when none was given.
    #[getter]
    fn name(&self) -> &str {
        &self.inner.name
    }
    /// Stable facts that identify the alert among others of its name (saga type, saga id).
    #[getter]
    fn labels<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in &self.inner.labels {
            d.set_item(k, v)?;
        }
        Ok(d)
    }
    /// Whether the condition cleared (the alert is resolved).
    #[getter]
    fn resolved(&self) -> bool {
        self.inner.resolved
    }

    /// The alert as a dict with the seed's keys (`severity`, `summary`, `description`,
    /// `metadata`) and `name`, `labels`, `resolved`.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("severity", self.severity())?;
        d.set_item("summary", self.summary())?;
        d.set_item("description", self.description())?;
        d.set_item("metadata", self.metadata(py)?)?;
        d.set_item("name", self.name())?;
        d.set_item("labels", self.labels(py)?)?;
        d.set_item("resolved", self.resolved())?;
        Ok(d)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Alert(severity={:?}, name={}, summary={}, resolved={})",
            self.inner.severity.as_str(),
            PyString::new(py, &self.inner.name).repr()?,
            PyString::new(py, &self.inner.summary).repr()?,
            if self.inner.resolved { "True" } else { "False" }
        ))
    }
}

/// Runs a core sink's `send` as `F` runs futures.
fn send_with<'py>(
    py: Python<'py>,
    run: bridge::Run,
    sink: Arc<dyn AlertSink>,
    alert: &Bound<'_, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let alert = PyAlert::from_py(py, alert)?;
    bridge::run(
        py,
        run,
        OnCancel::Finish,
        async move { sink.send(&alert).await },
        |py, ()| Ok(py.None()),
    )
}

twins! {
    /// An alert sink that logs (async API): through the `txcoord` logger (Python's `logging`),
    /// warnings and criticals as warnings, the rest as info.
    #[pyclass(name = "LogAlertSink", module = "txcoord", frozen)]
    pub(crate) struct PyLogAlertSink: Async;
    /// An alert sink that logs (blocking API, `txcoord.sync.LogAlertSink`).
    #[pyclass(name = "LogAlertSink", module = "txcoord.sync", frozen)]
    pub(crate) struct PySyncLogAlertSink: Blocking;
    fields {}
    flavour F;
    methods {
        #[new]
        fn new() -> Self {
            Self {}
        }

        /// The seed's `send(alert)`: logs the alert (an `Alert`, or a dict with the seed's keys).
        fn send<'py>(&self, py: Python<'py>, alert: &Bound<'_, PyAny>) -> PyResult<Bound<'py, PyAny>> {
            send_with(py, F::RUN, Arc::new(LogAlertSink), alert)
        }

        fn __repr__(&self) -> String {
            format!("<{}.LogAlertSink>", F::MODULE)
        }
    }
}

/// Counts per Alertmanager URL, as a dict.
fn counts<'py>(py: Python<'py>, list: Vec<(String, u64)>) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (url, n) in list {
        d.set_item(url, n)?;
    }
    Ok(d)
}

/// `AlertmanagerSink(urls, *, labels=None, metrics=None, **options)`.
fn alertmanager(
    py: Python<'_>,
    urls: &Bound<'_, PyAny>,
    labels: Option<&Bound<'_, PyAny>>,
    metrics: Option<&Bound<'_, PyAny>>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<AlertmanagerSink> {
    let keywords = Keywords::new(options);
    keywords.refuse_unknown("AlertmanagerSink", |name| {
        options::accepts(ALERTMANAGER, Host::Python, name)
    })?;
    let mut opts = keywords.read(ALERTMANAGER, &[])?.into_py(py)?;
    let urls: Vec<String> = if let Ok(s) = urls.cast::<PyString>() {
        vec![s.to_cow()?.into_owned()]
    } else {
        let bad = || {
            Err(txcoord::Error::invalid_type(
                "urls",
                format!(
                    "must be a URL or a list of URLs (strings), got {}",
                    type_description(urls)
                ),
            ))
            .into_py(py)
        };
        let Ok(iter) = urls.try_iter() else {
            return bad();
        };
        let mut out = Vec::new();
        for u in iter {
            let u = u?;
            let Ok(s) = u.cast::<PyString>() else {
                return bad();
            };
            out.push(s.to_cow()?.into_owned());
        }
        out
    };
    if let Some(labels) = labels.filter(|l| !l.is_none()) {
        let Ok(d) = labels.cast::<PyDict>() else {
            return Err(txcoord::Error::invalid_type(
                "labels",
                format!(
                    "must be a dict of label names to values, got {}",
                    type_description(labels)
                ),
            ))
            .into_py(py);
        };
        for (k, v) in d.iter() {
            let (k, v) = (OwnedRaw::from_value(&k)?, OwnedRaw::from_value(&v)?);
            opts = table::label(Host::Python, opts, k.raw(), v.raw()).into_py(py)?;
        }
    }
    if let Some(m) = metrics.filter(|m| !m.is_none()) {
        let Ok(c) = m.cast::<PyTransactionMetricsCollector>() else {
            return Err(txcoord::binding::validate::wrong_type(
                "metrics",
                "a TransactionMetricsCollector",
                Raw::Other(&type_description(m)),
            ))
            .into_py(py);
        };
        opts = opts.set_metrics(c.get().collector());
    }
    AlertmanagerSink::new(&urls, opts).into_py(py)
}

twins! {
    /// An alert sink that posts to Prometheus Alertmanager's API v2 (async API), to every
    /// replica given. Stable facts are labels (`alertname`, `severity`, `saga_type`,
    /// `saga_id`, the alert's own labels and those given here), changing values annotations;
    /// an active alert re-sent keeps its first `startsAt`, a resolved one is sent with `endsAt`
    /// now. `send` fails only when no Alertmanager accepted the alert; each failed delivery is
    /// counted (`send_failures()`, and `txcoord_alert_send_failures_total` of `metrics`).
    #[pyclass(name = "AlertmanagerSink", module = "txcoord", frozen)]
    pub(crate) struct PyAlertmanagerSink: Async;
    /// An alert sink that posts to Prometheus Alertmanager (blocking API,
    /// `txcoord.sync.AlertmanagerSink`).
    #[pyclass(name = "AlertmanagerSink", module = "txcoord.sync", frozen)]
    pub(crate) struct PySyncAlertmanagerSink: Blocking;
    fields {
        pub(crate) sink: AlertmanagerSink,
    }
    flavour F;
    methods {
        #[new]
        #[pyo3(
            signature = (urls, *, labels=None, metrics=None, **options),
            text_signature = "(urls, *, timeout_ms=5000, ends_after_ms=None, generator_url=None, labels=None, metrics=None)"
        )]
        fn new(
            py: Python<'_>,
            urls: &Bound<'_, PyAny>,
            labels: Option<&Bound<'_, PyAny>>,
            metrics: Option<&Bound<'_, PyAny>>,
            options: Option<&Bound<'_, PyDict>>,
        ) -> PyResult<Self> {
            guard(py, || Ok(Self { sink: alertmanager(py, urls, labels, metrics, options)? }))
        }

        /// The seed's `send(alert)`: posts the alert (an `Alert`, or a dict with the seed's
        /// keys) to every Alertmanager at once.
        fn send<'py>(&self, py: Python<'py>, alert: &Bound<'_, PyAny>) -> PyResult<Bound<'py, PyAny>> {
            send_with(py, F::RUN, Arc::new(self.sink.clone()), alert)
        }

        /// The Alertmanagers posted to (their URLs without credentials).
        #[getter]
        fn alertmanagers(&self) -> Vec<String> {
            self.sink.alertmanagers()
        }

        /// Alerts each Alertmanager accepted: `{url: count}`.
        fn sent<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
            counts(py, self.sink.sent())
        }

        /// Deliveries that failed, per Alertmanager: `{url: count}`.
        fn send_failures<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
            counts(py, self.sink.send_failures())
        }

        fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
            Ok(format!(
                "<{}.AlertmanagerSink {}>",
                F::MODULE,
                PyList::new(py, self.sink.alertmanagers())?.repr()?
            ))
        }
    }
}

/// A user's alert sink, an object with the seed's `send(alert)` (a coroutine function or a
/// plain one), as the core's `AlertSink`. An exception it raises fails that `send` (the monitor
/// logs it and goes on).
pub(crate) struct PyAlertSink {
    user: UserObject,
}

impl AlertSink for PyAlertSink {
    fn send(&self, alert: &Alert) -> BoxFuture<'_, txcoord::Result<()>> {
        let alert = alert.clone();
        Box::pin(async move {
            self.user
                .call(Some("send"), |py| {
                    let a = Py::new(py, PyAlert { inner: alert })?;
                    Ok((pyo3::types::PyTuple::new(py, [a])?, None))
                })
                .await
                .map(drop)
                .map_err(|e| {
                    txcoord::Error::Internal(format!(
                        "the alert sink's send() raised {}",
                        describe(&e)
                    ))
                })
        })
    }
}

/// Where a monitor's alerts go: a built-in sink, or a user's object.
pub(crate) enum AlertSource {
    Core(Arc<dyn AlertSink>),
    User(Arc<PyAlertSink>),
}

impl AlertSource {
    /// An `alert_manager` argument: `LogAlertSink`, `AlertmanagerSink` (either flavour), or any
    /// object with `send(alert)`.
    pub(crate) fn from_py(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<AlertSource> {
        if obj.cast::<PyLogAlertSink>().is_ok() || obj.cast::<PySyncLogAlertSink>().is_ok() {
            return Ok(AlertSource::Core(Arc::new(LogAlertSink)));
        }
        if let Ok(s) = obj.cast::<PyAlertmanagerSink>() {
            return Ok(AlertSource::Core(Arc::new(s.get().sink.clone())));
        }
        if let Ok(s) = obj.cast::<PySyncAlertmanagerSink>() {
            return Ok(AlertSource::Core(Arc::new(s.get().sink.clone())));
        }
        if !obj.getattr("send").is_ok_and(|m| m.is_callable()) {
            return Err(txcoord::Error::invalid_type(
                "alert_manager",
                format!(
                    "must be a LogAlertSink, an AlertmanagerSink or an object with a \
                     send(alert) method, got {}",
                    type_description(obj)
                ),
            ))
            .into_py(py);
        }
        Ok(AlertSource::User(Arc::new(PyAlertSink {
            user: UserObject::new(py, obj, "the alert sink")?,
        })))
    }

    pub(crate) fn core(&self) -> Arc<dyn AlertSink> {
        match self {
            AlertSource::Core(s) => s.clone(),
            AlertSource::User(u) => u.clone(),
        }
    }

    pub(crate) fn bind_loop(&self, py: Python<'_>) -> PyResult<()> {
        match self {
            AlertSource::User(u) => u.user.bind_loop(py),
            AlertSource::Core(_) => Ok(()),
        }
    }

    pub(crate) fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        match self {
            AlertSource::User(u) => u.user.traverse(visit),
            AlertSource::Core(_) => Ok(()),
        }
    }

    pub(crate) fn clear(&self) {
        if let AlertSource::User(u) = self {
            u.user.clear();
        }
    }
}

/// Adds the alert classes to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<PyAlert>()?;
    m.add_class::<PyLogAlertSink>()?;
    m.add_class::<PyAlertmanagerSink>()?;
    m.add("SyncLogAlertSink", py.get_type::<PySyncLogAlertSink>())?;
    m.add(
        "SyncAlertmanagerSink",
        py.get_type::<PySyncAlertmanagerSink>(),
    )?;
    Ok(())
}
