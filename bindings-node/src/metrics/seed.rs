// SPDX-License-Identifier: MIT OR Apache-2.0
//! A user's seed-style metrics registry (the seed's `MetricsRegistry`: `createHistogram` and
//! `createCounter`, whose metrics take `labels(...values).observe(v)` and
//! `labels(...values).inc()`) as the core's `SeedRegistry`. What is created, in which order,
//! with which names, help texts, labels and buckets, and what is recorded, is the core's
//! decision; this module calls the user's methods, synchronously, on the JavaScript thread
//! that made the collector (the seed's collector records synchronously too).

use std::cell::Cell;
use std::ffi::CStr;
use std::ptr;
use std::sync::Arc;

use napi::sys;
use txcoord::{Error, SeedMetric, SeedMetricKind, SeedMetricSpec, SeedRegistry};

use crate::object::{self, Obj};
use crate::raw;

thread_local! {
    /// The environment of the `#[napi]` call in progress on this thread (see [`enter`]).
    static CURRENT: Cell<sys::napi_env> = const { Cell::new(ptr::null_mut()) };
}

/// While alive, a seed metric recorded on this thread may call into `env`.
pub(crate) struct Entered(sys::napi_env);

/// Marks `env` as the environment of the call in progress (a recording method of the
/// collector, on its JavaScript thread).
pub(crate) fn enter(env: sys::napi_env) -> Entered {
    Entered(CURRENT.with(|c| c.replace(env)))
}

impl Drop for Entered {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.0));
    }
}

/// Whether an exception is pending on `env` (a user's method threw).
///
/// # Safety
/// On the JavaScript thread of `env`.
pub(crate) unsafe fn exception_pending(env: sys::napi_env) -> bool {
    let mut pending = false;
    sys::napi_is_exception_pending(env, &mut pending);
    pending
}

/// Calls `this[name](...args)`. A method that is missing is an `InvalidType` naming `arg`; one
/// that throws leaves its exception pending (the caller rethrows it) and is an `Internal`
/// error here.
///
/// # Safety
/// On the JavaScript thread of `env`, with live handles; runs the user's JavaScript.
unsafe fn call(
    env: sys::napi_env,
    this: sys::napi_value,
    name: &CStr,
    args: &[sys::napi_value],
    arg: &'static str,
    what: &str,
) -> txcoord::Result<sys::napi_value> {
    let method = name.to_string_lossy();
    let f = object::property(env, this, name)
        .map_err(|_| Error::Internal(format!("reading {what}.{method} failed")))?;
    let is_function = raw::read(env, f)
        .map(|h| matches!(h, raw::Host::Other("a function")))
        .unwrap_or(false);
    if !is_function {
        return Err(Error::invalid_type(
            arg,
            format!("{what} has no {method}() method (the seed's MetricsRegistry and its metrics have one)"),
        ));
    }
    let mut out = ptr::null_mut();
    let status = sys::napi_call_function(env, this, f, args.len(), args.as_ptr(), &mut out);
    if status != sys::Status::napi_ok {
        return Err(Error::Internal(format!("{what}.{method}() threw")));
    }
    Ok(out)
}

/// A JavaScript object kept alive by a reference (never released: the user's registry keeps
/// its metrics as long as the process anyway).
struct Held(sys::napi_ref);

// SAFETY: the reference is only dereferenced on the JavaScript thread of the environment that
// created it (checked against `CURRENT` before every use).
unsafe impl Send for Held {}
unsafe impl Sync for Held {}

/// The user's registry while the collector is built (on the JavaScript thread, inside the
/// `#[napi]` factory).
pub(super) struct JsSeedRegistry {
    env: sys::napi_env,
    registry: sys::napi_value,
}

// SAFETY: used only inside the factory that made it, on its JavaScript thread (the core calls
// `create` synchronously while it builds the collector).
unsafe impl Send for JsSeedRegistry {}
unsafe impl Sync for JsSeedRegistry {}

impl JsSeedRegistry {
    /// # Safety
    /// `registry` a live handle of `env`, on its JavaScript thread; the value must not outlive
    /// the calling `#[napi]` function.
    pub(super) unsafe fn new(env: sys::napi_env, registry: sys::napi_value) -> Self {
        JsSeedRegistry { env, registry }
    }
}

impl SeedRegistry for JsSeedRegistry {
    fn create(&self, spec: &SeedMetricSpec) -> txcoord::Result<Arc<dyn SeedMetric>> {
        let env = self.env;
        // SAFETY: on the JavaScript thread, inside the factory (see `JsSeedRegistry`).
        unsafe {
            let labels: Vec<String> = spec.label_names.iter().map(|s| s.to_string()).collect();
            let options = Obj::new(env);
            options
                .set(c"name", object::string(env, spec.name))
                .set(c"help", object::string(env, spec.help))
                .set(c"labelNames", object::strings(env, &labels));
            let method = match spec.kind {
                SeedMetricKind::Histogram => {
                    let buckets =
                        object::array(env, spec.buckets.iter().map(|b| object::number(env, *b)));
                    options.set(c"buckets", buckets);
                    c"createHistogram"
                }
                SeedMetricKind::Counter => c"createCounter",
            };
            let metric = call(
                env,
                self.registry,
                method,
                &[options.value()],
                "metricsRegistry",
                "the metrics registry",
            )?;
            if !matches!(raw::read(env, metric), Ok(raw::Host::Other("an object"))) {
                return Err(Error::invalid_type(
                    "metricsRegistry",
                    format!(
                        "{}() must return the metric (an object), for {}",
                        method.to_string_lossy(),
                        spec.name
                    ),
                ));
            }
            let mut held = ptr::null_mut();
            if sys::napi_create_reference(env, metric, 1, &mut held) != sys::Status::napi_ok {
                return Err(Error::Internal(format!("keeping {} failed", spec.name)));
            }
            Ok(Arc::new(JsSeedMetric {
                env,
                metric: Held(held),
                name: spec.name,
            }))
        }
    }
}

/// One of the seed's metrics in the user's registry.
struct JsSeedMetric {
    env: sys::napi_env,
    metric: Held,
    name: &'static str,
}

// SAFETY: `env` is only used after checking that it is the environment of the call in
// progress on the current thread.
unsafe impl Send for JsSeedMetric {}
unsafe impl Sync for JsSeedMetric {}

impl JsSeedMetric {
    /// `metric.labels(...labelValues)[method](...args)`.
    fn record(
        &self,
        label_values: &[&str],
        method: &CStr,
        value: Option<f64>,
    ) -> txcoord::Result<()> {
        let here = CURRENT.with(Cell::get);
        if here.is_null() || here != self.env {
            return Err(Error::Internal(format!(
                "{}: a seed-style registry's metric is recorded on the JavaScript thread that \
                 made the collector",
                self.name
            )));
        }
        let env = self.env;
        let what = format!("the metric {}", self.name);
        // SAFETY: on the JavaScript thread of `env` (checked above), inside a #[napi] call.
        unsafe {
            let mut metric = ptr::null_mut();
            sys::napi_get_reference_value(env, self.metric.0, &mut metric);
            let labels: Vec<sys::napi_value> = label_values
                .iter()
                .map(|v| object::string(env, v))
                .collect();
            let labelled = call(env, metric, c"labels", &labels, "metricsRegistry", &what)?;
            let args: Vec<sys::napi_value> =
                value.map(|v| object::number(env, v)).into_iter().collect();
            call(
                env,
                labelled,
                method,
                &args,
                "metricsRegistry",
                &format!("{what}.labels(...)"),
            )?;
        }
        Ok(())
    }
}

impl SeedMetric for JsSeedMetric {
    fn observe(&self, label_values: &[&str], value: f64) -> txcoord::Result<()> {
        self.record(label_values, c"observe", Some(value))
    }

    fn inc(&self, label_values: &[&str]) -> txcoord::Result<()> {
        self.record(label_values, c"inc", None)
    }
}
