// SPDX-License-Identifier: MIT OR Apache-2.0
//! Python values → the core validator's [`Raw`] values, unconverted: `True` stays a boolean,
//! `1.5` a float, `2**70` a big integer, a `timedelta` a duration, so the core decides (and
//! names the Python parameter) instead of a silent integer conversion here. Options gathered as
//! keyword arguments are read through the core's tables ([`Keywords`]).

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyType};
use pyo3::Borrowed;
use txcoord::binding::options::{self, Host, Spec};
use txcoord::binding::validate::Raw;

/// A Python argument that distinguishes "not given" from an explicit `None`.
pub(crate) enum Arg<'py> {
    Absent,
    Given(Bound<'py, PyAny>),
}

impl<'a, 'py> FromPyObject<'a, 'py> for Arg<'py> {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        Ok(Arg::Given(obj.to_owned()))
    }
}

/// An owned [`Raw`], holding the text a `Raw::Str`/`Raw::Other` borrows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum OwnedRaw {
    Absent,
    Null,
    Bool(bool),
    Int(i128),
    BigInt,
    Float(f64),
    Micros(i128),
    Str(String),
    Other(String),
}

impl OwnedRaw {
    pub(crate) fn raw(&self) -> Raw<'_> {
        match self {
            OwnedRaw::Absent => Raw::Absent,
            OwnedRaw::Null => Raw::Null,
            OwnedRaw::Bool(b) => Raw::Bool(*b),
            OwnedRaw::Int(i) => Raw::Int(*i),
            OwnedRaw::BigInt => Raw::BigInt,
            OwnedRaw::Float(f) => Raw::Float(*f),
            OwnedRaw::Micros(us) => Raw::Micros(*us),
            OwnedRaw::Str(s) => Raw::Str(s),
            OwnedRaw::Other(name) => Raw::Other(name),
        }
    }

    /// `None` as "not given" (optional parameters whose default is `None`).
    pub(crate) fn from_optional(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        match obj {
            None => Ok(OwnedRaw::Absent),
            Some(o) if o.is_none() => Ok(OwnedRaw::Absent),
            Some(o) => Self::from_value(o),
        }
    }

    /// An [`Arg`]: not given is `Absent`, an explicit `None` is `Null` (refused where a value
    /// is required, e.g. `ttl_ms=None`).
    pub(crate) fn from_arg(arg: &Arg<'_>) -> PyResult<Self> {
        match arg {
            Arg::Absent => Ok(OwnedRaw::Absent),
            Arg::Given(o) if o.is_none() => Ok(OwnedRaw::Null),
            Arg::Given(o) => Self::from_value(o),
        }
    }

    /// A present value. `bool` is tested before `int` (a Python bool is an int).
    pub(crate) fn from_value(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        let py = obj.py();
        if obj.is_none() {
            return Ok(OwnedRaw::Null);
        }
        if let Ok(b) = obj.cast::<PyBool>() {
            return Ok(OwnedRaw::Bool(b.is_true()));
        }
        if obj.is_instance_of::<PyInt>() {
            return Ok(match obj.extract::<i128>() {
                Ok(i) => OwnedRaw::Int(i),
                Err(_) => OwnedRaw::BigInt,
            });
        }
        if let Ok(f) = obj.cast::<PyFloat>() {
            return Ok(OwnedRaw::Float(f.value()));
        }
        if let Ok(s) = obj.cast::<PyString>() {
            return Ok(OwnedRaw::Str(s.to_cow()?.into_owned()));
        }
        if obj.is_instance(timedelta(py)?)? {
            let days: i128 = obj.getattr("days")?.extract()?;
            let seconds: i128 = obj.getattr("seconds")?.extract()?;
            let micros: i128 = obj.getattr("microseconds")?.extract()?;
            return Ok(OwnedRaw::Micros(
                days * 86_400_000_000 + seconds * 1_000_000 + micros,
            ));
        }
        Ok(OwnedRaw::Other(type_description(obj)))
    }
}

/// "an object of type list", for the validator's messages.
pub(crate) fn type_description(obj: &Bound<'_, PyAny>) -> String {
    let name = obj
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_string());
    format!("an object of type {name}")
}

static TIMEDELTA: PyOnceLock<Py<PyType>> = PyOnceLock::new();

fn timedelta(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    TIMEDELTA.import(py, "datetime", "timedelta")
}

/// The keyword arguments a method gathered (`**options`): looked up by each option's Python
/// name in the core's tables, unknown ones refused as Python refuses them.
pub(crate) struct Keywords<'py> {
    dict: Option<Bound<'py, PyDict>>,
}

impl<'py> Keywords<'py> {
    pub(crate) fn new(dict: Option<&Bound<'py, PyDict>>) -> Self {
        Keywords {
            dict: dict.cloned(),
        }
    }

    /// Removes a keyword the binding handles itself (`on_lost`); `None` counts as not given.
    pub(crate) fn take(&mut self, name: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Some(dict) = &self.dict else {
            return Ok(None);
        };
        let value = dict.get_item(name)?;
        if value.is_some() {
            // A copy: the caller's dict (`**kwargs` of a Python caller) is left alone.
            let copy = dict.copy()?;
            copy.del_item(name)?;
            self.dict = Some(copy);
        }
        Ok(value.filter(|v| !v.is_none()))
    }

    /// A `TypeError` for the first keyword `known` does not accept, worded as Python's own.
    pub(crate) fn refuse_unknown(
        &self,
        function: &str,
        known: impl Fn(&str) -> bool,
    ) -> PyResult<()> {
        let Some(dict) = &self.dict else {
            return Ok(());
        };
        for key in dict.keys() {
            let name: String = key.extract()?;
            if !known(&name) {
                return Err(PyTypeError::new_err(format!(
                    "{function}() got an unexpected keyword argument '{name}'"
                )));
            }
        }
        Ok(())
    }

    /// Reads the options of `table` through the core (`binding::options::read`): each option
    /// from the keyword of its Python name (`None` counts as not given), or from `positional`
    /// (the method's own positional parameters, by the option's core name).
    pub(crate) fn read<T: Default>(
        &self,
        table: &[Spec<T>],
        positional: &[(&str, &Arg<'_>)],
    ) -> PyResult<txcoord::Result<T>> {
        let mut raws = Vec::with_capacity(table.len());
        for spec in table {
            let raw = match positional.iter().find(|(name, _)| *name == spec.name) {
                Some((_, arg)) => OwnedRaw::from_arg(arg)?,
                None => match &self.dict {
                    Some(dict) => OwnedRaw::from_optional(dict.get_item(spec.python)?.as_ref())?,
                    None => OwnedRaw::Absent,
                },
            };
            raws.push((spec.name, raw));
        }
        Ok(options::read(Host::Python, table, |spec| {
            raws.iter()
                .find(|(name, _)| *name == spec.name)
                .map_or(Raw::Absent, |(_, raw)| raw.raw())
        }))
    }
}

/// A `serde_json` value as the Python value `json.loads` would give.
pub(crate) fn json_to_py<'py>(
    py: Python<'py>,
    v: &serde_json::Value,
) -> PyResult<Bound<'py, PyAny>> {
    use serde_json::Value;
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => pyo3::types::PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.into_pyobject(py)?.into_any(),
            (_, Some(u), _) => u.into_pyobject(py)?.into_any(),
            (_, _, f) => f.unwrap_or(f64::NAN).into_pyobject(py)?.into_any(),
        },
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(json_to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, item) in map {
                dict.set_item(k, json_to_py(py, item)?)?;
            }
            dict.into_any()
        }
    })
}

static JSON_DUMPS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// A Python value as JSON: what `json.dumps(value, default=str)` writes (values JSON has no
/// form for, such as a `datetime`, as their `str`).
pub(crate) fn py_to_json(value: &Bound<'_, PyAny>) -> PyResult<serde_json::Value> {
    let py = value.py();
    let kwargs = PyDict::new(py);
    kwargs.set_item("default", py.get_type::<PyString>())?;
    let text: String = JSON_DUMPS
        .import(py, "json", "dumps")?
        .call((value,), Some(&kwargs))?
        .extract()?;
    serde_json::from_str(&text)
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(format!("not JSON: {e}")))
}
