// SPDX-License-Identifier: MIT OR Apache-2.0
//! `SagaMonitor`: the seed's monitor on the core's, with what it records into (our collector
//! or a user's object with the seed's `recordGauge`/`recordHistogram`) and the user's recovery
//! handlers (`onRetry`, `onCompensate`), both called from tokio through weak threadsafe
//! functions.

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunction;
use napi_derive::napi;
use tokio::sync::watch;
use txcoord::binding::monitor::{self as table, MONITOR};
use txcoord::binding::options::Host as Lang;
use txcoord::{
    BoxFuture, Error, MonitorMetrics, MonitorOptions, RecoveryHandlers, SagaMonitor, SagaRecord,
};

use crate::alert::JsAlertSink;
use crate::bridge::{self, Prep};
use crate::callback::{Ignored, Pending};
use crate::client::{unknown, JsClient};
use crate::deadlock::JsSagaDeadlockDetector;
use crate::error;
use crate::metrics::JsTransactionMetricsCollector;
use crate::object;
use crate::raw::{self, Host, Options};
use crate::saga::{JsSagaRepository, RecordArg};

// -- what the monitor records into -----------------------------------------------------------

/// `(name, value)`: the JavaScript layer calls the user's `recordGauge(name, value)` (or
/// `recordHistogram`), reporting what it throws.
type RecordFn = ThreadsafeFunction<
    FnArgs<(String, f64)>,
    Unknown<'static>,
    FnArgs<(String, f64)>,
    Status,
    false,
    true,
>;

struct ForeignMetrics {
    gauge: RecordFn,
    histogram: RecordFn,
    pending: Pending,
}

impl MonitorMetrics for ForeignMetrics {
    fn record_gauge(&self, name: &str, value: f64) {
        self.pending
            .call(&self.gauge, FnArgs::from((name.to_string(), value)));
    }
    fn record_histogram(&self, name: &str, value: f64) {
        self.pending
            .call(&self.histogram, FnArgs::from((name.to_string(), value)));
    }
}

/// What a monitor records into: a `TransactionMetricsCollector`
/// (`MonitorMetrics.collector(c)`), or a user's object (`MonitorMetrics.foreign(...)`).
#[napi(js_name = "MonitorMetrics")]
pub struct JsMonitorMetrics {
    inner: Arc<dyn MonitorMetrics>,
    pending: Option<Pending>,
}

#[napi]
impl JsMonitorMetrics {
    /// Our collector: the monitor records into it directly.
    #[napi(factory, catch_unwind)]
    pub fn collector(collector: &JsTransactionMetricsCollector) -> Self {
        JsMonitorMetrics {
            inner: Arc::new(collector.inner.clone()),
            pending: None,
        }
    }

    /// A user's object: `recordGauge(name, value)` and `recordHistogram(name, value)` call
    /// its methods.
    #[napi(
        factory,
        catch_unwind,
        ts_args_type = "recordGauge: (name: string, value: number) => unknown, recordHistogram: (name: string, value: number) => unknown"
    )]
    pub fn foreign(record_gauge: RecordFn, record_histogram: RecordFn) -> Self {
        let pending = Pending::new();
        JsMonitorMetrics {
            inner: Arc::new(ForeignMetrics {
                gauge: record_gauge,
                histogram: record_histogram,
                pending: pending.clone(),
            }),
            pending: Some(pending),
        }
    }
}

// -- the recovery handlers -------------------------------------------------------------------

/// `(saga)`: the JavaScript layer calls the user's handler and returns its promise.
type HandlerFn = ThreadsafeFunction<RecordArg, Promise<Ignored>, RecordArg, Status, false, true>;

struct Handlers {
    retry: Option<HandlerFn>,
    compensate: Option<HandlerFn>,
}

async fn handle(f: &Option<HandlerFn>, name: &str, saga: &SagaRecord) -> txcoord::Result<()> {
    let Some(f) = f else { return Ok(()) };
    let failed = |e: napi::Error| {
        let message = format!("{name}(saga {:?}) failed: {}", saga.id, e.reason);
        tracing::warn!(target: "txcoord", "txcoord: {message}");
        Error::Internal(message)
    };
    let promise = f
        .call_async(RecordArg::from(saga.clone()))
        .await
        .map_err(failed)?;
    promise.await.map_err(failed)?;
    Ok(())
}

impl RecoveryHandlers for Handlers {
    fn retry<'a>(&'a self, saga: &'a SagaRecord) -> BoxFuture<'a, txcoord::Result<()>> {
        Box::pin(handle(&self.retry, "onRetry", saga))
    }
    fn compensate<'a>(&'a self, saga: &'a SagaRecord) -> BoxFuture<'a, txcoord::Result<()>> {
        Box::pin(handle(&self.compensate, "onCompensate", saga))
    }
}

// -- the monitor -----------------------------------------------------------------------------

/// What one pass did.
#[napi(object)]
pub struct TickReport {
    /// Whether this monitor led (only the leader acts).
    pub leader: bool,
    /// Sagas alerted as running longer than their type's limit.
    pub long_running: u32,
    /// Sagas found stuck (each alerted, then retried or compensated).
    pub stuck: u32,
    /// Stuck sagas retried (retry count + 1, `EXECUTING`).
    pub retried: u32,
    /// Stuck sagas compensated (`COMPENSATING`).
    pub compensated: u32,
    /// Deadlock cycles broken.
    pub deadlocks: u32,
    /// The steps that failed, with why (a failing step never stops the others).
    pub errors: Vec<String>,
}

impl From<txcoord::TickReport> for TickReport {
    fn from(r: txcoord::TickReport) -> Self {
        let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        TickReport {
            leader: r.leader,
            long_running: n(r.long_running),
            stuck: n(r.stuck),
            retried: n(r.retried),
            compensated: n(r.compensated),
            deadlocks: n(r.deadlocks),
            errors: r.errors,
        }
    }
}

/// The seed's `SagaMonitor`, on the core's: under leader election, every pass's steps isolated,
/// every change to a saga a conditional save.
#[napi(js_name = "SagaMonitor")]
pub struct JsSagaMonitor {
    inner: SagaMonitor,
    /// Becomes true when `stop()` has stopped the passes started on construction.
    stopped: Arc<watch::Sender<bool>>,
    /// The calls into the user's objects (metrics, the detector's logger) a pass makes.
    pending: Vec<Pending>,
}

/// The options of `new SagaMonitor(...)`: the core's table, and `limits` (saga type → ms).
unsafe fn read_options(
    env: napi::sys::napi_env,
    options: &Unknown,
) -> std::result::Result<MonitorOptions, Prep> {
    let bag = Options::new(env, options.raw(), "options")??;
    let mut opts = bag.read(MONITOR, &[])?;
    match bag.get(c"limits")? {
        Host::Absent | Host::Null => {}
        Host::Other("an object") => {
            let limits = object::property(env, options.raw(), c"limits")?;
            for (saga_type, limit) in object::entries(env, limits)? {
                let limit = raw::read(env, limit)?;
                opts = table::limit(Lang::Node, opts, saga_type.text("limits")?, limit.raw())?;
            }
        }
        other => {
            return Err(Prep::Core(Error::invalid_type(
                "limits",
                format!(
                    "must be an object mapping saga types to ms, got {}",
                    raw::type_name(&other)
                ),
            )))
        }
    }
    Ok(opts)
}

#[napi]
impl JsSagaMonitor {
    /// The seed's four arguments, then `redis` (the Redis of the leader election; default the
    /// detector's), the options (`interval`, `limits`, `defaultLimit`, `electionName`,
    /// `leaderTtl`, `candidateId`, `maxRetries`, `start`) and the recovery handlers.
    #[allow(clippy::too_many_arguments)]
    #[napi(
        constructor,
        catch_unwind,
        ts_args_type = "repository: SagaRepository, metrics: MonitorMetrics, alerts: AlertSink, detector: SagaDeadlockDetector, redis: Client | undefined | null, options: object | undefined, onRetry: ((saga: object) => Promise<unknown>) | undefined | null, onCompensate: ((saga: object) => Promise<unknown>) | undefined | null"
    )]
    pub fn new(
        env: Env,
        repository: &JsSagaRepository,
        metrics: &JsMonitorMetrics,
        alerts: &JsAlertSink,
        detector: &JsSagaDeadlockDetector,
        redis: Option<&JsClient>,
        options: Unknown,
        on_retry: Option<HandlerFn>,
        on_compensate: Option<HandlerFn>,
    ) -> Result<Self> {
        // SAFETY: on the JavaScript thread, inside the constructor, with a live handle.
        let mut opts = match unsafe { read_options(env.raw(), &options) } {
            Ok(o) => o,
            Err(Prep::Core(e)) => return Err(error::throw(env.raw(), &e)),
            Err(Prep::Napi(e)) => return Err(e),
        };
        if let Some(client) = redis {
            opts = opts.set_redis(&client.inner);
        }
        if on_retry.is_some() || on_compensate.is_some() {
            opts = opts.set_handlers(Arc::new(Handlers {
                retry: on_retry,
                compensate: on_compensate,
            }));
        }
        // The monitor spawns its passes on napi's runtime.
        let built = napi::bindgen_prelude::within_runtime_if_available(|| {
            SagaMonitor::new(
                repository.inner.clone(),
                metrics.inner.clone(),
                alerts.inner.clone(),
                detector.inner.clone(),
                opts,
            )
        });
        let inner = built.map_err(|e| error::throw(env.raw(), &e))?;
        let pending = metrics
            .pending
            .iter()
            .cloned()
            .chain(std::iter::once(detector.pending.clone()))
            .collect();
        Ok(JsSagaMonitor {
            stopped: Arc::new(watch::channel(!inner.is_running()).0),
            inner,
            pending,
        })
    }

    /// Runs one pass now (after the pass in progress, if any): campaigns if this monitor does
    /// not lead, then, if it leads, runs every step. A failing step is reported in `errors`,
    /// never thrown.
    #[napi(catch_unwind, ts_return_type = "Promise<TickReport>")]
    pub fn tick<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        let monitor = self.inner.clone();
        let pending = self.pending.clone();
        let p = bridge::promise(env.raw(), true, || {
            Ok::<_, Prep>(async move {
                let report = monitor.tick().await;
                for p in &pending {
                    p.delivered().await;
                }
                bridge::settle(Ok(TickReport::from(report)))
            })
        })?;
        Ok(unknown(env.raw(), p))
    }

    /// Stops the monitor: no pass starts after this resolves, the one in progress has ended,
    /// and the leadership is given up.
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn stop<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        let monitor = self.inner.clone();
        let pending = self.pending.clone();
        let stopped = self.stopped.clone();
        let p = bridge::promise(env.raw(), true, || {
            Ok::<_, Prep>(async move {
                monitor.stop().await;
                for p in &pending {
                    p.delivered().await;
                }
                stopped.send_replace(true);
                bridge::settle(Ok(()))
            })
        })?;
        Ok(unknown(env.raw(), p))
    }

    /// Resolves when the passes started on construction were stopped (at once if none were
    /// started). The promise keeps Node alive until then, as the seed's `setInterval` does.
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn running<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        let mut rx = self.stopped.subscribe();
        let p = bridge::promise(env.raw(), true, || {
            Ok::<_, Prep>(async move {
                let _ = rx.wait_for(|s| *s).await;
                bridge::settle(Ok(()))
            })
        })?;
        Ok(unknown(env.raw(), p))
    }

    /// Whether this monitor leads (and so acts).
    #[napi(getter, catch_unwind)]
    pub fn is_leader(&self) -> bool {
        self.inner.is_leader()
    }

    /// This monitor's leader term while it leads, else `null`.
    #[napi(getter, catch_unwind)]
    pub fn term(&self) -> Option<f64> {
        self.inner.term().map(|t| t as f64)
    }

    /// This monitor's id in the election.
    #[napi(getter, catch_unwind)]
    pub fn candidate_id(&self) -> String {
        self.inner.candidate_id().to_string()
    }

    /// The time between passes, in ms.
    #[napi(getter, catch_unwind)]
    pub fn interval(&self) -> f64 {
        self.inner.interval().as_millis() as f64
    }
}
