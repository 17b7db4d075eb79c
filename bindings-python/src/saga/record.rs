// SPDX-License-Identifier: MIT OR Apache-2.0
//! `SagaStatus` (a `str` enum), `SagaRecord` and `SagaStatistics`, and their conversions: a
//! record from a `SagaRecord`, a dict or any object with the record's attributes (what a user's
//! own repository may return), times as aware UTC `datetime`s.

use std::time::{SystemTime, UNIX_EPOCH};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyString, PyType};
use txcoord::binding::saga as fields;
use txcoord::binding::validate;
use txcoord::{SagaRecord, SagaStatistics, SagaStatus};

use crate::convert::{type_description, OwnedRaw};
use crate::error::{invalid_argument, IntoPyResult};

static STATUS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static EPOCH: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static ONE_MS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static DATETIME: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static TIMEDELTA: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// The `SagaStatus` enum: `class SagaStatus(str, Enum)` with the six strings of the core, whose
/// `str()` is its value (as `enum.StrEnum`, which Python 3.9 lacks).
fn status_enum(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    STATUS
        .get_or_try_init(py, || {
            let members = PyList::empty(py);
            for s in SagaStatus::ALL {
                members.append((s.as_str(), s.as_str()))?;
            }
            let kwargs = PyDict::new(py);
            kwargs.set_item("module", "txcoord")?;
            kwargs.set_item("qualname", "SagaStatus")?;
            kwargs.set_item("type", py.get_type::<PyString>())?;
            let cls = py
                .import("enum")?
                .getattr("Enum")?
                .call(("SagaStatus", members), Some(&kwargs))?;
            cls.setattr("__str__", py.get_type::<PyString>().getattr("__str__")?)?;
            cls.setattr(
                "__doc__",
                "Where a saga stands: PENDING (created, not started), EXECUTING, COMPENSATING \
                 (active), COMPLETED, COMPENSATED (rolled back), FAILED (finished). A str: \
                 `SagaStatus.FAILED == \"FAILED\"`.",
            )?;
            Ok::<_, PyErr>(cls.unbind())
        })
        .map(|c| c.bind(py))
}

/// Adds `SagaStatus` to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("SagaStatus", status_enum(m.py())?)
}

/// The `SagaStatus` member of a status.
pub(crate) fn status_to_py(py: Python<'_>, s: SagaStatus) -> PyResult<Bound<'_, PyAny>> {
    status_enum(py)?.getattr(s.as_str())
}

fn datetime_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    DATETIME.import(py, "datetime", "datetime")
}

fn epoch(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    EPOCH
        .get_or_try_init(py, || {
            let utc = py.import("datetime")?.getattr("timezone")?.getattr("utc")?;
            let kwargs = PyDict::new(py);
            kwargs.set_item("tzinfo", utc)?;
            Ok::<_, PyErr>(
                datetime_type(py)?
                    .call((1970, 1, 1), Some(&kwargs))?
                    .unbind(),
            )
        })
        .map(|e| e.bind(py))
}

fn one_ms(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    ONE_MS
        .get_or_try_init(py, || {
            let kwargs = PyDict::new(py);
            kwargs.set_item("milliseconds", 1)?;
            Ok::<_, PyErr>(
                TIMEDELTA
                    .import(py, "datetime", "timedelta")?
                    .call((), Some(&kwargs))?
                    .unbind(),
            )
        })
        .map(|e| e.bind(py))
}

/// A time as an aware `datetime` in UTC (exact to the millisecond).
pub(crate) fn time_to_py(py: Python<'_>, t: SystemTime) -> PyResult<Bound<'_, PyAny>> {
    let ms = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    epoch(py)?.call_method1("__add__", (one_ms(py)?.call_method1("__mul__", (ms,))?,))
}

/// A time from an aware `datetime` (any time zone); a naive one is refused, as it names no
/// point in time.
pub(crate) fn time_from_py(arg: &'static str, v: &Bound<'_, PyAny>) -> PyResult<SystemTime> {
    let py = v.py();
    if !v.is_instance(datetime_type(py)?)? {
        return Err(txcoord::Error::invalid_type(
            arg,
            format!("must be a datetime, got {}", type_description(v)),
        ))
        .into_py(py);
    }
    if v.call_method0("utcoffset")?.is_none() {
        return Err(invalid_argument(
            arg,
            "must be an aware datetime (with a tzinfo, e.g. datetime.now(timezone.utc)), got a \
             naive one",
        ))
        .into_py(py);
    }
    let ms = v
        .call_method1("__sub__", (epoch(py)?,))?
        .call_method1("__floordiv__", (one_ms(py)?,))?;
    let raw = OwnedRaw::from_value(&ms)?;
    fields::time_ms(arg, raw.raw())
        .into_py(py)?
        .ok_or_else(|| PyErr::new::<pyo3::exceptions::PyValueError, _>(arg))
}

/// The record's fields as Python values (`None`: not given).
#[derive(Default)]
struct Fields<'py> {
    id: Option<Bound<'py, PyAny>>,
    saga_type: Option<Bound<'py, PyAny>>,
    status: Option<Bound<'py, PyAny>>,
    priority: Option<Bound<'py, PyAny>>,
    created_at: Option<Bound<'py, PyAny>>,
    updated_at: Option<Bound<'py, PyAny>>,
    retry_count: Option<Bound<'py, PyAny>>,
    error: Option<Bound<'py, PyAny>>,
    stuck_reason: Option<Bound<'py, PyAny>>,
    stuck_detail: Option<Bound<'py, PyAny>>,
    version: Option<Bound<'py, PyAny>>,
    term: Option<Bound<'py, PyAny>>,
}

fn set_id(py: Python<'_>, v: &Bound<'_, PyAny>) -> PyResult<String> {
    let raw = OwnedRaw::from_value(v)?;
    Ok(fields::saga_id("id", raw.raw()).into_py(py)?.to_string())
}

fn set_type(py: Python<'_>, v: &Bound<'_, PyAny>) -> PyResult<String> {
    let raw = OwnedRaw::from_value(v)?;
    Ok(fields::saga_type("type", raw.raw())
        .into_py(py)?
        .to_string())
}

fn set_status(py: Python<'_>, v: &Bound<'_, PyAny>) -> PyResult<SagaStatus> {
    // A SagaStatus member is a str: its value is read as the string it is.
    let raw = match v.cast::<PyString>() {
        Ok(s) => OwnedRaw::Str(s.to_cow()?.into_owned()),
        Err(_) => OwnedRaw::from_value(v)?,
    };
    Ok(fields::status("status", raw.raw())
        .into_py(py)?
        .unwrap_or(SagaStatus::Executing))
}

fn set_count(py: Python<'_>, arg: &'static str, v: &Bound<'_, PyAny>, max: u64) -> PyResult<u64> {
    let raw = OwnedRaw::from_value(v)?;
    Ok(fields::count(arg, raw.raw(), max).into_py(py)?.unwrap_or(0))
}

fn set_priority(py: Python<'_>, v: &Bound<'_, PyAny>) -> PyResult<i32> {
    let raw = OwnedRaw::from_value(v)?;
    Ok(validate::priority("priority", raw.raw())
        .into_py(py)?
        .unwrap_or(0))
}

fn set_text(py: Python<'_>, arg: &'static str, v: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
    let raw = OwnedRaw::from_value(v)?;
    Ok(fields::optional_text(arg, raw.raw())
        .into_py(py)?
        .map(str::to_string))
}

impl Fields<'_> {
    /// The record, with the defaults of `SagaRecord(...)` for what is not given.
    fn build(self, py: Python<'_>) -> PyResult<SagaRecord> {
        let id = match &self.id {
            Some(v) => set_id(py, v)?,
            None => set_id(py, &py.None().into_bound(py))?,
        };
        let saga_type = match &self.saga_type {
            Some(v) => set_type(py, v)?,
            None => set_type(py, &py.None().into_bound(py))?,
        };
        let mut r = SagaRecord::new(id, saga_type);
        if let Some(v) = self.status.as_ref().filter(|v| !v.is_none()) {
            r.status = set_status(py, v)?;
        }
        if let Some(v) = self.priority.as_ref().filter(|v| !v.is_none()) {
            r.priority = set_priority(py, v)?;
        }
        if let Some(v) = self.created_at.as_ref().filter(|v| !v.is_none()) {
            r.created_at = time_from_py("created_at", v)?;
        }
        r.updated_at = match self.updated_at.as_ref().filter(|v| !v.is_none()) {
            Some(v) => time_from_py("updated_at", v)?,
            None => r.created_at,
        };
        if let Some(v) = self.retry_count.as_ref().filter(|v| !v.is_none()) {
            r.retry_count = set_count(py, "retry_count", v, u32::MAX as u64)? as u32;
        }
        if let Some(v) = &self.error {
            r.error = set_text(py, "error", v)?;
        }
        if let Some(v) = &self.stuck_reason {
            r.stuck_reason = set_text(py, "stuck_reason", v)?;
        }
        if let Some(v) = &self.stuck_detail {
            r.stuck_detail = set_text(py, "stuck_detail", v)?;
        }
        if let Some(v) = self.version.as_ref().filter(|v| !v.is_none()) {
            r.version = set_count(py, "version", v, u64::MAX)?;
        }
        if let Some(v) = self.term.as_ref().filter(|v| !v.is_none()) {
            r.term = set_count(py, "term", v, u64::MAX)?;
        }
        Ok(r)
    }
}

/// A record from a `SagaRecord`, a mapping with the record's keys, or any object with its
/// attributes (`id`, `type`, `status`, `priority`, `created_at`, ...); what is missing takes
/// the defaults of `SagaRecord(...)`.
/// `arg` names the value when it is none of these.
pub(crate) fn record_from_py(arg: &'static str, v: &Bound<'_, PyAny>) -> PyResult<SagaRecord> {
    let py = v.py();
    if let Ok(r) = v.cast::<PySagaRecord>() {
        return Ok(r.borrow().inner.clone());
    }
    let mapping = v.cast::<PyDict>().ok();
    if mapping.is_none() && !v.hasattr("id")? {
        return Err(txcoord::Error::invalid_type(
            arg,
            format!(
                "must be a SagaRecord (or a mapping or object with its fields), got {}",
                type_description(v)
            ),
        ))
        .into_py(py);
    }
    let get = |name: &str| -> PyResult<Option<Bound<'_, PyAny>>> {
        match &mapping {
            Some(d) => d.get_item(name),
            None => match v.getattr(name) {
                Ok(x) => Ok(Some(x)),
                Err(e) if e.is_instance_of::<pyo3::exceptions::PyAttributeError>(py) => Ok(None),
                Err(e) => Err(e),
            },
        }
    };
    Fields {
        id: get("id")?,
        saga_type: get("type")?,
        status: get("status")?,
        priority: get("priority")?,
        created_at: get("created_at")?,
        updated_at: get("updated_at")?,
        retry_count: get("retry_count")?,
        error: get("error")?,
        stuck_reason: get("stuck_reason")?,
        stuck_detail: get("stuck_detail")?,
        version: get("version")?,
        term: get("term")?,
    }
    .build(py)
}

/// A new Python `SagaRecord`.
pub(crate) fn record_to_py(py: Python<'_>, r: SagaRecord) -> PyResult<Py<PyAny>> {
    Ok(Py::new(py, PySagaRecord { inner: r })?.into_any())
}

/// A list of new Python `SagaRecord`s.
pub(crate) fn records_to_py(py: Python<'_>, rs: Vec<SagaRecord>) -> PyResult<Py<PyAny>> {
    let list = PyList::empty(py);
    for r in rs {
        list.append(record_to_py(py, r)?)?;
    }
    Ok(list.into_any().unbind())
}

/// One saga, as the seed's `SagaRecord` (mutable, as the seed's code changes a record and
/// saves it). Times are aware `datetime`s in UTC.
#[pyclass(name = "SagaRecord", module = "txcoord", eq)]
#[derive(Clone, PartialEq)]
pub(crate) struct PySagaRecord {
    pub(crate) inner: SagaRecord,
}

#[pymethods]
impl PySagaRecord {
    #[new]
    #[pyo3(
        signature = (id, r#type, *, status=None, priority=None, created_at=None, updated_at=None, retry_count=None, error=None, stuck_reason=None, stuck_detail=None, version=None, term=None),
        text_signature = "(id, type, *, status='EXECUTING', priority=0, created_at=None, updated_at=None, retry_count=0, error=None, stuck_reason=None, stuck_detail=None, version=0, term=0)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn new<'py>(
        py: Python<'py>,
        id: Bound<'py, PyAny>,
        r#type: Bound<'py, PyAny>,
        status: Option<Bound<'py, PyAny>>,
        priority: Option<Bound<'py, PyAny>>,
        created_at: Option<Bound<'py, PyAny>>,
        updated_at: Option<Bound<'py, PyAny>>,
        retry_count: Option<Bound<'py, PyAny>>,
        error: Option<Bound<'py, PyAny>>,
        stuck_reason: Option<Bound<'py, PyAny>>,
        stuck_detail: Option<Bound<'py, PyAny>>,
        version: Option<Bound<'py, PyAny>>,
        term: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Self> {
        let inner = Fields {
            id: Some(id),
            saga_type: Some(r#type),
            status,
            priority,
            created_at,
            updated_at,
            retry_count,
            error,
            stuck_reason,
            stuck_detail,
            version,
            term,
        }
        .build(py)?;
        Ok(PySagaRecord { inner })
    }

    /// The saga id (also its lock owner id).
    #[getter]
    fn id(&self) -> &str {
        &self.inner.id
    }
    #[setter(id)]
    fn set_id(&mut self, py: Python<'_>, v: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.id = set_id(py, v)?;
        Ok(())
    }

    /// The saga type (`CreateOrderSaga`, ...): the seed's `type`.
    #[getter(r#type)]
    fn saga_type(&self) -> &str {
        &self.inner.saga_type
    }
    #[setter(r#type)]
    fn set_saga_type(&mut self, py: Python<'_>, v: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.saga_type = set_type(py, v)?;
        Ok(())
    }

    /// A `SagaStatus` (set it to a member or its string).
    #[getter]
    fn status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        status_to_py(py, self.inner.status)
    }
    #[setter(status)]
    fn set_status(&mut self, py: Python<'_>, v: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.status = set_status(py, v)?;
        Ok(())
    }

    /// The deadlock victim is the lowest (a 32-bit integer).
    #[getter]
    fn priority(&self) -> i32 {
        self.inner.priority
    }
    #[setter(priority)]
    fn set_priority(&mut self, py: Python<'_>, v: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.priority = set_priority(py, v)?;
        Ok(())
    }

    /// When the saga started (aware, UTC).
    #[getter]
    fn created_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        time_to_py(py, self.inner.created_at)
    }
    #[setter(created_at)]
    fn set_created_at(&mut self, v: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.created_at = time_from_py("created_at", v)?;
        Ok(())
    }

    /// Its last save (aware, UTC).
    #[getter]
    fn updated_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        time_to_py(py, self.inner.updated_at)
    }
    #[setter(updated_at)]
    fn set_updated_at(&mut self, v: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.updated_at = time_from_py("updated_at", v)?;
        Ok(())
    }

    /// Retries so far.
    #[getter]
    fn retry_count(&self) -> u32 {
        self.inner.retry_count
    }
    #[setter(retry_count)]
    fn set_retry_count(&mut self, py: Python<'_>, v: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.retry_count = set_count(py, "retry_count", v, u32::MAX as u64)? as u32;
        Ok(())
    }

    /// The last error, or None.
    #[getter]
    fn error(&self) -> Option<&str> {
        self.inner.error.as_deref()
    }
    #[setter(error)]
    fn set_error(&mut self, py: Python<'_>, v: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.error = set_text(py, "error", v)?;
        Ok(())
    }

    /// Why it is stuck (`no-progress`, `waiting-on-lock`, `retrying`, `compensation-failing`),
    /// or None.
    #[getter]
    fn stuck_reason(&self) -> Option<&str> {
        self.inner.stuck_reason.as_deref()
    }
    #[setter(stuck_reason)]
    fn set_stuck_reason(&mut self, py: Python<'_>, v: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.stuck_reason = set_text(py, "stuck_reason", v)?;
        Ok(())
    }

    /// The detail of `stuck_reason` (e.g. `lock:order:42 held by saga-7`), or None.
    #[getter]
    fn stuck_detail(&self) -> Option<&str> {
        self.inner.stuck_detail.as_deref()
    }
    #[setter(stuck_detail)]
    fn set_stuck_detail(&mut self, py: Python<'_>, v: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.stuck_detail = set_text(py, "stuck_detail", v)?;
        Ok(())
    }

    /// Incremented by every save: the compare-and-set of a conditional save.
    #[getter]
    fn version(&self) -> u64 {
        self.inner.version
    }
    #[setter(version)]
    fn set_version(&mut self, py: Python<'_>, v: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.version = set_count(py, "version", v, u64::MAX)?;
        Ok(())
    }

    /// The highest leader term that wrote the record (0: none).
    #[getter]
    fn term(&self) -> u64 {
        self.inner.term
    }
    #[setter(term)]
    fn set_term(&mut self, py: Python<'_>, v: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.term = set_count(py, "term", v, u64::MAX)?;
        Ok(())
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let r = &self.inner;
        let text = |s: &Option<String>| -> PyResult<String> {
            Ok(match s {
                Some(s) => PyString::new(py, s).repr()?.to_string(),
                None => "None".into(),
            })
        };
        let time = |t: SystemTime| -> PyResult<String> {
            Ok(time_to_py(py, t)?
                .call_method0("isoformat")?
                .repr()?
                .to_string())
        };
        Ok(format!(
            "SagaRecord(id={}, type={}, status='{}', priority={}, created_at={}, updated_at={}, \
             retry_count={}, error={}, stuck_reason={}, stuck_detail={}, version={}, term={})",
            PyString::new(py, &r.id).repr()?,
            PyString::new(py, &r.saga_type).repr()?,
            r.status.as_str(),
            r.priority,
            time(r.created_at)?,
            time(r.updated_at)?,
            r.retry_count,
            text(&r.error)?,
            text(&r.stuck_reason)?,
            text(&r.stuck_detail)?,
            r.version,
            r.term,
        ))
    }
}

/// The seed's `getStatistics()`: counts of active and finished sagas and the mean duration of
/// the finished ones (`average_duration`, in ms: the seed's `averageDuration`).
#[pyclass(name = "SagaStatistics", module = "txcoord", frozen, eq)]
#[derive(Clone, PartialEq)]
pub(crate) struct PySagaStatistics {
    inner: SagaStatistics,
}

impl PySagaStatistics {
    pub(crate) fn new(inner: SagaStatistics) -> Self {
        PySagaStatistics { inner }
    }
}

#[pymethods]
impl PySagaStatistics {
    /// Sagas PENDING, EXECUTING or COMPENSATING.
    #[getter]
    fn active(&self) -> u64 {
        self.inner.active
    }
    /// Sagas that finished COMPLETED.
    #[getter]
    fn completed(&self) -> u64 {
        self.inner.completed
    }
    /// Sagas that finished FAILED.
    #[getter]
    fn failed(&self) -> u64 {
        self.inner.failed
    }
    /// Sagas that finished COMPENSATED.
    #[getter]
    fn compensated(&self) -> u64 {
        self.inner.compensated
    }
    /// Mean duration of the finished sagas, in ms (0 with none).
    #[getter]
    fn average_duration(&self) -> f64 {
        self.inner.average_duration_ms
    }

    fn __repr__(&self) -> String {
        let s = &self.inner;
        format!(
            "SagaStatistics(active={}, completed={}, failed={}, compensated={}, average_duration={:?})",
            s.active, s.completed, s.failed, s.compensated, s.average_duration_ms
        )
    }
}

/// Statistics from what a user's repository returned: a `SagaStatistics`, a mapping or an
/// object with `active`, `completed`, `failed`, optionally `compensated` and
/// `average_duration` (ms).
pub(crate) fn statistics_from_py(v: &Bound<'_, PyAny>) -> PyResult<SagaStatistics> {
    let py = v.py();
    if let Ok(s) = v.cast::<PySagaStatistics>() {
        return Ok(s.get().inner);
    }
    let mapping = v.cast::<PyDict>().ok();
    let get = |name: &str| -> PyResult<Option<Bound<'_, PyAny>>> {
        match &mapping {
            Some(d) => d.get_item(name),
            None => match v.getattr(name) {
                Ok(x) => Ok(Some(x)),
                Err(e) if e.is_instance_of::<pyo3::exceptions::PyAttributeError>(py) => Ok(None),
                Err(e) => Err(e),
            },
        }
    };
    let count = |name: &'static str| -> PyResult<u64> {
        match get(name)? {
            Some(x) if !x.is_none() => set_count(py, name, &x, u64::MAX),
            _ => Ok(0),
        }
    };
    let average = match get("average_duration")? {
        Some(x) if !x.is_none() => {
            let f: f64 = x.extract().map_err(|_| {
                crate::error::to_pyerr(
                    py,
                    txcoord::Error::invalid_type(
                        "average_duration",
                        format!("must be a number of ms, got {}", type_description(&x)),
                    ),
                )
            })?;
            if !f.is_finite() || f < 0.0 {
                return Err(invalid_argument(
                    "average_duration",
                    format!("must be a finite, non-negative number of ms, got {f}"),
                ))
                .into_py(py);
            }
            f
        }
        _ => 0.0,
    };
    Ok(SagaStatistics {
        active: count("active")?,
        completed: count("completed")?,
        failed: count("failed")?,
        compensated: count("compensated")?,
        average_duration_ms: average,
    })
}
