// SPDX-License-Identifier: MIT OR Apache-2.0
//! A user's seed-style metrics registry (the seed's `MetricsRegistry`) as the core's
//! `SeedRegistry`: the collector creates the seed's four metrics in it, in the seed's order
//! and with its names, help texts, labels and buckets (the core decides all that), and records
//! into the metrics it returned with `labels(*values).observe(seconds)` and
//! `labels(*values).inc()`, as the seed does. So a registry wrapping prometheus_client's
//! `Histogram` and `Counter` works as it is.
//!
//! Python spelling: `create_histogram(name=, help=, label_names=, buckets=)` and
//! `create_counter(name=, help=, label_names=)`; an object with the seed's own spelling
//! (`createHistogram`, `createCounter`) gets the seed's one options dict (`name`, `help`,
//! `labelNames`, `buckets`).
//!
//! An exception the user's code raises in a call made from Python (the constructor, a
//! `record_*` method) is raised by that call as itself: the adapter keeps it in a thread-local
//! slot ([`take_raised`]) the binding checks when the core reports the failure. One raised where
//! the core records by itself (a broken deadlock) is logged by the core.

use std::cell::RefCell;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use pyo3::{PyTraverseError, PyVisit};
use txcoord::{SeedMetric, SeedMetricKind, SeedMetricSpec, SeedRegistry};

use crate::on_lost::Slot;
use crate::user::describe;

thread_local! {
    // The exception the user's registry raised in this thread's latest call, until taken.
    static RAISED: RefCell<Option<PyErr>> = const { RefCell::new(None) };
}

/// The exception the user's registry raised in this thread since the last call, if any.
pub(crate) fn take_raised() -> Option<PyErr> {
    RAISED.with(|r| r.borrow_mut().take())
}

/// Keeps `err` for [`take_raised`]; the core error that carries its text.
fn raised(what: String, err: PyErr) -> txcoord::Error {
    let message = format!("{what} raised {}", describe(&err));
    RAISED.with(|r| *r.borrow_mut() = Some(err));
    txcoord::Error::invalid_argument("metrics_registry", message)
}

/// How the registry object spells its methods.
#[derive(Clone, Copy)]
enum Spelling {
    /// `create_histogram(name=, help=, label_names=, buckets=)`.
    Python,
    /// `createHistogram({name, help, labelNames, buckets})`, the seed's.
    Seed,
}

/// The user's registry object.
pub(crate) struct PySeedRegistry {
    object: Arc<Slot>,
    spelling: Spelling,
}

fn callable(obj: &Bound<'_, PyAny>, name: &str) -> bool {
    obj.getattr(name).is_ok_and(|m| m.is_callable())
}

impl PySeedRegistry {
    /// `obj` as a seed-style registry, if it has the seed's two methods in either spelling.
    pub(crate) fn from_py(obj: &Bound<'_, PyAny>) -> Option<PySeedRegistry> {
        let spelling = if callable(obj, "create_histogram") && callable(obj, "create_counter") {
            Spelling::Python
        } else if callable(obj, "createHistogram") && callable(obj, "createCounter") {
            Spelling::Seed
        } else {
            return None;
        };
        Some(PySeedRegistry {
            object: Slot::new(obj.clone().unbind()),
            spelling,
        })
    }

    pub(crate) fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.object.traverse(visit)
    }

    pub(crate) fn clear(&self) {
        self.object.clear();
    }
}

impl SeedRegistry for PySeedRegistry {
    fn create(&self, spec: &SeedMetricSpec) -> txcoord::Result<Arc<dyn SeedMetric>> {
        let method = match (self.spelling, spec.kind) {
            (Spelling::Python, SeedMetricKind::Histogram) => "create_histogram",
            (Spelling::Python, SeedMetricKind::Counter) => "create_counter",
            (Spelling::Seed, SeedMetricKind::Histogram) => "createHistogram",
            (Spelling::Seed, SeedMetricKind::Counter) => "createCounter",
        };
        let what = || format!("the metrics registry's {method}({:?})", spec.name);
        Python::try_attach(|py| {
            let obj = self.object.get(py).ok_or_else(|| {
                txcoord::Error::Internal("the metrics registry was garbage-collected".into())
            })?;
            let made = (|| -> PyResult<Py<PyAny>> {
                let options = PyDict::new(py);
                options.set_item("name", spec.name)?;
                options.set_item("help", spec.help)?;
                let labels = PyList::new(py, spec.label_names)?;
                let histogram = spec.kind == SeedMetricKind::Histogram;
                let buckets = PyList::new(py, spec.buckets)?;
                let out = match self.spelling {
                    Spelling::Python => {
                        options.set_item("label_names", labels)?;
                        if histogram {
                            options.set_item("buckets", buckets)?;
                        }
                        obj.bind(py)
                            .call_method(method, PyTuple::empty(py), Some(&options))?
                    }
                    Spelling::Seed => {
                        options.set_item("labelNames", labels)?;
                        if histogram {
                            options.set_item("buckets", buckets)?;
                        }
                        obj.bind(py).call_method1(method, (options,))?
                    }
                };
                Ok(out.unbind())
            })()
            .map_err(|e| raised(what(), e))?;
            if !callable(made.bind(py), "labels") {
                return Err(txcoord::Error::invalid_type(
                    "metrics_registry",
                    format!("{} returned an object without labels(*values)", what()),
                ));
            }
            Ok(Arc::new(PySeedMetric {
                metric: Slot::new(made),
                name: spec.name,
            }) as Arc<dyn SeedMetric>)
        })
        .unwrap_or_else(|| Err(txcoord::Error::Internal("Python is shutting down".into())))
    }
}

/// A metric the user's registry created, held by the collector.
struct PySeedMetric {
    metric: Arc<Slot>,
    name: &'static str,
}

impl PySeedMetric {
    /// `metric.labels(*values).<method>(*args)`.
    fn call(&self, values: &[&str], method: &str, value: Option<f64>) -> txcoord::Result<()> {
        Python::try_attach(|py| {
            let Some(metric) = self.metric.get(py) else {
                return Ok(());
            };
            let result = (|| -> PyResult<()> {
                let child = metric
                    .bind(py)
                    .call_method1("labels", PyTuple::new(py, values)?)?;
                match value {
                    Some(v) => child.call_method1(method, (v,))?,
                    None => child.call_method0(method)?,
                };
                Ok(())
            })();
            result.map_err(|e| raised(format!("{}.labels(...).{method}()", self.name), e))
        })
        .unwrap_or(Ok(()))
    }
}

impl SeedMetric for PySeedMetric {
    fn observe(&self, label_values: &[&str], value: f64) -> txcoord::Result<()> {
        self.call(label_values, "observe", Some(value))
    }

    fn inc(&self, label_values: &[&str]) -> txcoord::Result<()> {
        self.call(label_values, "inc", None)
    }
}
