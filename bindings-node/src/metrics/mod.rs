// SPDX-License-Identifier: MIT OR Apache-2.0
//! `TransactionMetricsCollector`: the seed's collector on the core's (its four metrics, the
//! monitor's gauges, lock metrics of the clients it watches), its text exposition and its
//! samples as prom-client takes them, or the seed's four metrics in a user's seed-style
//! registry (`seed.rs`); `serveMetrics`, the core's `/metrics` endpoint.

mod seed;

use std::ffi::CString;
use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use txcoord::binding::monitor::METRICS;
use txcoord::binding::serve::{self, ServeOptions, SERVE};
use txcoord::binding::validate;
use txcoord::{
    Error, MetricFamilySamples, MetricsOptions, MetricsServer, MonitorMetrics,
    TransactionMetricsCollector,
};

use crate::bridge::{self, Prep};
use crate::client::{unknown, JsClient};
use crate::error;
use crate::object::{self, Obj};
use crate::raw::{self, Host, Options};

/// A label value, a status or a metric name given to a recording method: a string.
fn text<'a>(arg: &'static str, host: &'a Host) -> txcoord::Result<&'a str> {
    match validate::string(arg, host.text(arg)?)? {
        Some(s) => Ok(s),
        None => Err(Error::invalid_type(arg, "is required (a string)")),
    }
}

/// A value given to a recording method: a number (the core judges its range).
fn number(arg: &'static str, host: &Host, what: &str) -> txcoord::Result<f64> {
    match host {
        Host::Num(f) => Ok(*f),
        other => Err(validate::wrong_type(arg, what, other.raw())),
    }
}

/// The error a synchronous method throws for `e`: the exception a user's method threw (a
/// seed-style registry's metric), which is pending, or `e` itself.
fn fail(env: &Env, e: &Error) -> napi::Error {
    // SAFETY: on the JavaScript thread, inside a #[napi] function.
    if unsafe { seed::exception_pending(env.raw()) } {
        return napi::Error::new(napi::Status::PendingException, e.to_string());
    }
    error::throw(env.raw(), e)
}

/// Reads the raw arguments of a synchronous method and runs `f` on them; a bad one is thrown.
/// A seed-style registry's metrics may be called meanwhile (on this thread).
fn with_args<T>(
    env: &Env,
    args: &[&Unknown],
    f: impl FnOnce(&[Host]) -> txcoord::Result<T>,
) -> Result<T> {
    let mut hosts = Vec::with_capacity(args.len());
    for a in args {
        // SAFETY: on the JavaScript thread, inside a #[napi] function, with live handles.
        hosts.push(unsafe { raw::read(env.raw(), a.raw()) }?);
    }
    let _entered = seed::enter(env.raw());
    f(&hosts).map_err(|e| fail(env, &e))
}

/// The options of a collector (`names`).
fn read_options(env: &Env, options: &Unknown) -> std::result::Result<MetricsOptions, Prep> {
    // SAFETY: on the JavaScript thread, inside a #[napi] function, with a live handle.
    let bag = unsafe { Options::new(env.raw(), options.raw(), "options") }??;
    unsafe { bag.read(METRICS, &[]) }
}

/// The seed's `TransactionMetricsCollector`, on the core's: the seed's four metrics with its
/// names, help texts, labels and buckets, the monitor's gauges (under the names `names`
/// chooses), lock metrics of the clients it watches, alert deliveries.
#[napi(js_name = "TransactionMetricsCollector")]
pub struct JsTransactionMetricsCollector {
    pub(crate) inner: TransactionMetricsCollector,
}

#[napi]
impl JsTransactionMetricsCollector {
    /// A collector of its own. Options: `names` (`'legacy'`, the seed's names of the monitor's
    /// gauges; `'convention'`, Prometheus' under `txcoord_`; or `'both'`).
    #[napi(
        constructor,
        catch_unwind,
        ts_args_type = "options?: { names?: 'legacy' | 'convention' | 'both' }"
    )]
    pub fn new(env: Env, options: Unknown) -> Result<Self> {
        match read_options(&env, &options) {
            Ok(o) => Ok(JsTransactionMetricsCollector {
                inner: TransactionMetricsCollector::with_options(o),
            }),
            Err(Prep::Core(e)) => Err(error::throw(env.raw(), &e)),
            Err(Prep::Napi(e)) => Err(e),
        }
    }

    /// The seed's `new TransactionMetricsCollector(metricsRegistry)`: the seed's four metrics
    /// are created in `registry` (an object with the seed's `createHistogram` and
    /// `createCounter`) as the seed creates them, and recorded there (`labels(...).observe(v)`,
    /// `labels(...).inc()`); the rest stays in this collector. Throws what the registry
    /// throws.
    #[napi(
        factory,
        catch_unwind,
        ts_args_type = "registry: { createHistogram(options: object): unknown, createCounter(options: object): unknown }, options?: { names?: 'legacy' | 'convention' | 'both' }"
    )]
    pub fn with_registry(env: Env, registry: Unknown, options: Unknown) -> Result<Self> {
        let options = match read_options(&env, &options) {
            Ok(o) => o,
            Err(Prep::Core(e)) => return Err(error::throw(env.raw(), &e)),
            Err(Prep::Napi(e)) => return Err(e),
        };
        // SAFETY: on the JavaScript thread, inside this factory, with a live handle that the
        // registry adapter does not outlive.
        let registry = unsafe { seed::JsSeedRegistry::new(env.raw(), registry.raw()) };
        match TransactionMetricsCollector::with_registry(&registry, options) {
            Ok(inner) => Ok(JsTransactionMetricsCollector { inner }),
            Err(e) => Err(fail(&env, &e)),
        }
    }

    /// The names the monitor's gauges are exported under: `legacy`, `convention` or `both`.
    #[napi(
        getter,
        catch_unwind,
        ts_return_type = "'legacy' | 'convention' | 'both'"
    )]
    pub fn names(&self) -> String {
        self.inner.names().as_str().to_string()
    }

    /// The seed's `recordDistributedTransaction(transactionType, status, duration)`: `status`
    /// `success` or `failure`, `duration` in ms (observed in seconds).
    #[napi(
        catch_unwind,
        ts_args_type = "transactionType: string, status: 'success' | 'failure', duration: number"
    )]
    pub fn record_distributed_transaction(
        &self,
        env: Env,
        transaction_type: Unknown,
        status: Unknown,
        duration: Unknown,
    ) -> Result<()> {
        with_args(&env, &[&transaction_type, &status, &duration], |a| {
            self.inner.record_distributed_transaction(
                text("transaction_type", &a[0])?,
                text("status", &a[1])?,
                number("duration", &a[2], "a number of milliseconds")?,
            )
        })
    }

    /// The seed's `recordSagaExecution(sagaType, status, duration)`: `status` `completed`,
    /// `failed` or `compensated`, `duration` in ms.
    #[napi(
        catch_unwind,
        ts_args_type = "sagaType: string, status: 'completed' | 'failed' | 'compensated', duration: number"
    )]
    pub fn record_saga_execution(
        &self,
        env: Env,
        saga_type: Unknown,
        status: Unknown,
        duration: Unknown,
    ) -> Result<()> {
        with_args(&env, &[&saga_type, &status, &duration], |a| {
            self.inner.record_saga_execution(
                text("saga_type", &a[0])?,
                text("status", &a[1])?,
                number("duration", &a[2], "a number of milliseconds")?,
            )
        })
    }

    /// The seed's `recordCompensation(sagaType, step, reason)` (label values: short
    /// categories, not error texts).
    #[napi(
        catch_unwind,
        ts_args_type = "sagaType: string, step: string, reason: string"
    )]
    pub fn record_compensation(
        &self,
        env: Env,
        saga_type: Unknown,
        step: Unknown,
        reason: Unknown,
    ) -> Result<()> {
        with_args(&env, &[&saga_type, &step, &reason], |a| {
            self.inner.record_compensation(
                text("saga_type", &a[0])?,
                text("step", &a[1])?,
                text("reason", &a[2])?,
            )
        })
    }

    /// The seed's `recordDeadlock(resolutionMethod)`: `abort_saga`, `timeout` or `manual`.
    #[napi(
        catch_unwind,
        ts_args_type = "resolutionMethod: 'abort_saga' | 'timeout' | 'manual'"
    )]
    pub fn record_deadlock(&self, env: Env, resolution_method: Unknown) -> Result<()> {
        with_args(&env, &[&resolution_method], |a| {
            self.inner
                .record_deadlock(text("resolution_method", &a[0])?)
        })
    }

    /// The seed's `MetricsCollector.recordGauge(name, value)`, as the monitor calls it: the
    /// monitor's gauges under the chosen names, any other name exported as given.
    #[napi(catch_unwind, ts_args_type = "name: string, value: number")]
    pub fn record_gauge(&self, env: Env, name: Unknown, value: Unknown) -> Result<()> {
        with_args(&env, &[&name, &value], |a| {
            MonitorMetrics::record_gauge(
                &self.inner,
                text("name", &a[0])?,
                number("value", &a[1], "a number")?,
            );
            Ok(())
        })
    }

    /// The seed's `MetricsCollector.recordHistogram(name, value)`: `saga_duration_seconds`
    /// (seconds), or any other name exported as given.
    #[napi(catch_unwind, ts_args_type = "name: string, value: number")]
    pub fn record_histogram(&self, env: Env, name: Unknown, value: Unknown) -> Result<()> {
        with_args(&env, &[&name, &value], |a| {
            MonitorMetrics::record_histogram(
                &self.inner,
                text("name", &a[0])?,
                number("value", &a[1], "a number")?,
            );
            Ok(())
        })
    }

    /// Exports the lock metrics (`txcoord_lock_*`) of `client` from now on, summed with the
    /// other watched clients'.
    #[napi(catch_unwind)]
    pub fn watch_client(&self, client: &JsClient) {
        self.inner.watch_client(&client.inner);
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric.
    #[napi(catch_unwind)]
    pub fn metrics(&self) -> String {
        self.inner.metrics()
    }

    /// Every metric family as prom-client's `metric.get()` gives it: `{ name, help, type,
    /// values: [{ metricName, labels, value }] }` (a histogram's buckets with `le`, its `_sum`
    /// and `_count`). Families without a series yet are left out.
    #[napi(
        catch_unwind,
        ts_return_type = "Array<{ name: string, help: string, type: 'counter' | 'gauge' | 'histogram', values: Array<{ metricName: string, labels: Record<string, string>, value: number }> }>"
    )]
    pub fn families<'env>(&self, env: &'env Env) -> Unknown<'env> {
        families_to_js(env, &self.inner.families())
    }

    /// Every family the collector exports, also those without a series yet, without values.
    #[napi(
        catch_unwind,
        ts_return_type = "Array<{ name: string, help: string, type: 'counter' | 'gauge' | 'histogram', values: Array<{ metricName: string, labels: Record<string, string>, value: number }> }>"
    )]
    pub fn descriptions<'env>(&self, env: &'env Env) -> Unknown<'env> {
        families_to_js(env, &self.inner.descriptions())
    }
}

/// Families as prom-client's `metric.get()` gives them.
fn families_to_js<'env>(env: &'env Env, families: &[MetricFamilySamples]) -> Unknown<'env> {
    let raw_env = env.raw();
    // SAFETY: on the JavaScript thread, inside the calling #[napi] function.
    let out = unsafe {
        object::array(
            raw_env,
            families.iter().map(|f| {
                let values = object::array(
                    raw_env,
                    f.samples.iter().map(|s| {
                        let labels = Obj::new(raw_env);
                        for (k, v) in &s.labels {
                            if let Ok(k) = CString::new(k.as_str()) {
                                labels.set(&k, object::string(raw_env, v));
                            }
                        }
                        let o = Obj::new(raw_env);
                        o.set(c"metricName", object::string(raw_env, &s.name))
                            .set(c"labels", labels.value())
                            .set(c"value", object::number(raw_env, s.value));
                        o.value()
                    }),
                );
                let o = Obj::new(raw_env);
                o.set(c"name", object::string(raw_env, &f.name))
                    .set(c"help", object::string(raw_env, &f.help))
                    .set(c"type", object::string(raw_env, f.kind))
                    .set(c"values", values);
                o.value()
            }),
        )
    };
    unknown(raw_env, out)
}

// -- the /metrics endpoint -------------------------------------------------------------------

/// A running `/metrics` endpoint (`serveMetrics`).
#[napi(js_name = "MetricsServer")]
pub struct JsMetricsServer {
    inner: Arc<MetricsServer>,
}

#[napi]
impl JsMetricsServer {
    /// `http://HOST:PORT/metrics`.
    #[napi(getter, catch_unwind)]
    pub fn url(&self) -> String {
        self.inner.url()
    }

    /// The address it listens on.
    #[napi(getter, catch_unwind)]
    pub fn host(&self) -> String {
        self.inner.local_addr().ip().to_string()
    }

    /// The port it listens on (the one the system chose for port 0).
    #[napi(getter, catch_unwind)]
    pub fn port(&self) -> u32 {
        u32::from(self.inner.local_addr().port())
    }

    /// Stops accepting connections, lets requests in progress finish (at most 5 s), and
    /// resolves once the port is released.
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn close<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        let server = self.inner.clone();
        let p = bridge::promise(env.raw(), true, || {
            Ok::<_, Prep>(async move {
                server.shutdown().await;
                bridge::settle(Ok(()))
            })
        })?;
        Ok(unknown(env.raw(), p))
    }
}

/// Serves `collector`'s metrics at `http://HOST:PORT/metrics` until the server is closed.
/// Options: `host` (default `127.0.0.1`; `0.0.0.0` to be scraped from other hosts), `port`
/// (default 9464; 0 for a free one).
#[napi(
    js_name = "serveMetrics",
    catch_unwind,
    ts_args_type = "collector: TransactionMetricsCollector, options?: { host?: string, port?: number }",
    ts_return_type = "Promise<MetricsServer>"
)]
pub fn serve_metrics<'env>(
    env: &'env Env,
    collector: &JsTransactionMetricsCollector,
    options: Unknown,
) -> Result<Unknown<'env>> {
    let raw_env = env.raw();
    let collector = collector.inner.clone();
    let p = bridge::promise(raw_env, true, || {
        // SAFETY: on the JavaScript thread with a live handle.
        let options = unsafe { Options::new(raw_env, options.raw(), "options") }??;
        let options: ServeOptions = unsafe { options.read(SERVE, &[]) }?;
        Ok(async move {
            let server = serve::serve(options, collector).await;
            bridge::settle(server.map(|s| JsMetricsServer { inner: Arc::new(s) }))
        })
    })?;
    Ok(unknown(raw_env, p))
}
