// SPDX-License-Identifier: MIT OR Apache-2.0
//! Prometheus metrics: the seed's `TransactionMetricsCollector`, the monitor's gauges, lock
//! metrics from the clients it watches, alert delivery; the text exposition and an optional
//! `/metrics` endpoint.
//!
//! - `names.rs`: every name, help text, label and bucket list;
//! - `monitor.rs`: what the [`SagaMonitor`](crate::SagaMonitor) records;
//! - `locks.rs`: the lock metrics, read from the watched clients' counters at scrape time;
//! - `http.rs`: [`serve_metrics`].

mod http;
mod locks;
mod monitor;
mod names;
mod seed;

use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounterVec, Opts, Registry};

use crate::client::Client;
use crate::deadlock::DeadlockMetrics;
use crate::error::{Error, Result};
use crate::monitor::MonitorMetrics;

pub use http::{serve_metrics, MetricsServer};
use seed::SeedMetrics;
pub use seed::{SeedMetric, SeedMetricKind, SeedMetricSpec, SeedRegistry, SEED_METRICS};

/// Which names the monitor's gauges are exported under.
///
/// The seed's monitor names four gauges with `_total` (`sagas_active_total`,
/// `sagas_completed_total`, `sagas_failed_total`, `sagas_stuck_total`), a suffix Prometheus
/// reserves for counters: `promtool check metrics` rejects them, but existing dashboards query
/// them. The convention names live under `txcoord_`, so both sets can be exported together
/// without a clash:
///
/// | seed (legacy)           | convention                      |
/// |-------------------------|---------------------------------|
/// | `sagas_active_total`    | `txcoord_sagas_active`          |
/// | `sagas_completed_total` | `txcoord_sagas_completed`       |
/// | `sagas_failed_total`    | `txcoord_sagas_failed`          |
/// | `saga_success_rate`     | `txcoord_saga_success_ratio`    |
/// | `sagas_stuck_total`     | `txcoord_sagas_stuck`           |
/// | `saga_duration_seconds` | `txcoord_saga_duration_seconds` |
///
/// The seed's other four metrics (`distributed_transaction_duration_seconds`,
/// `saga_execution_duration_seconds`, `saga_compensations_total`, `deadlocks_detected_total`)
/// already follow the conventions and keep their names under every choice, as does everything
/// txcoord adds (`txcoord_sagas_stuck_by_reason{reason}`, the `txcoord_lock_*` metrics,
/// `txcoord_alert*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum MetricNames {
    /// The seed's names (the default: dashboards built on the seed keep working).
    #[default]
    Legacy,
    /// The convention-correct names only.
    Convention,
    /// Both: each value under its seed name and its convention name.
    Both,
}

impl MetricNames {
    /// `legacy`, `convention`, `both`.
    pub const fn as_str(self) -> &'static str {
        match self {
            MetricNames::Legacy => "legacy",
            MetricNames::Convention => "convention",
            MetricNames::Both => "both",
        }
    }

    /// Parses `legacy`, `convention` or `both` (for the bindings); `arg` names the argument in
    /// the error.
    pub fn parse(arg: &'static str, s: &str) -> Result<MetricNames> {
        match s {
            "legacy" => Ok(MetricNames::Legacy),
            "convention" => Ok(MetricNames::Convention),
            "both" => Ok(MetricNames::Both),
            _ => Err(Error::invalid_argument(
                arg,
                format!("must be \"legacy\", \"convention\" or \"both\", not {s:?}"),
            )),
        }
    }

    pub(crate) fn legacy(self) -> bool {
        matches!(self, MetricNames::Legacy | MetricNames::Both)
    }

    pub(crate) fn convention(self) -> bool {
        matches!(self, MetricNames::Convention | MetricNames::Both)
    }
}

/// Settings of a [`TransactionMetricsCollector`].
#[derive(Debug, Clone, Default)]
pub struct MetricsOptions {
    names: MetricNames,
}

impl MetricsOptions {
    pub fn new() -> Self {
        Self::default()
    }
    /// Which names the monitor's gauges are exported under (default [`MetricNames::Legacy`]).
    pub fn set_names(mut self, names: MetricNames) -> Self {
        self.names = names;
        self
    }
}

/// Alert delivery counters, per Alertmanager.
#[derive(Clone)]
pub(crate) struct AlertCounters {
    pub sent: IntCounterVec,
    pub failures: IntCounterVec,
}

impl AlertCounters {
    pub(crate) fn new() -> AlertCounters {
        use names::*;
        let vec = |name: &str, help: &str| {
            IntCounterVec::new(Opts::new(name, help), &ALERT_LABELS).expect("valid alert counter")
        };
        AlertCounters {
            sent: vec(ALERTS_SENT, ALERTS_SENT_HELP),
            failures: vec(ALERT_FAILURES, ALERT_FAILURES_HELP),
        }
    }
}

struct Inner {
    names: MetricNames,
    seed: SeedMetrics,
    monitor: monitor::MonitorSeries,
    locks: locks::LockMetrics,
    alerts: AlertCounters,
}

/// The seed's `TransactionMetricsCollector`, and what the rest of txcoord records: the
/// monitor's gauges ([`MonitorMetrics`]), broken deadlocks ([`DeadlockMetrics`]), lock metrics
/// of the clients it watches, alert delivery.
///
/// ## Behavior
///
/// - The seed's four metrics keep its names, help texts, label names and buckets exactly:
///   `distributed_transaction_duration_seconds{transaction_type,status}` (buckets 0.1 … 300 s),
///   `saga_execution_duration_seconds{saga_type,status}` (0.5 … 300 s),
///   `saga_compensations_total{saga_type,step,reason}`,
///   `deadlocks_detected_total{resolution_method}`. Durations are given in milliseconds, as the
///   seed's, and observed in seconds.
/// - The monitor's gauges are exported under the names [`MetricNames`] chooses; stuck sagas are
///   also counted per reason in `txcoord_sagas_stuck_by_reason{reason}`, and the monitor's
///   `saga_duration_seconds` histogram (one observation per finished saga) has the buckets
///   0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800 s (the seed's saga buckets, to 30 min).
///   A name the collector does not know, recorded with `record_gauge` or `record_histogram`, is
///   exported as given (a histogram with those buckets), as the seed's generic collector would.
/// - Lock metrics (`txcoord_lock_*`) are read from the watched clients' counters at each
///   scrape, summed over the clients; they appear once a client is watched.
/// - [`metrics`](Self::metrics) renders the Prometheus text exposition; the collector is a
///   [`prometheus::core::Collector`], so [`register`](Self::register) puts it into a user's own
///   [`prometheus::Registry`], served beside the user's metrics.
/// - Cloning is cheap: clones share the metrics.
#[derive(Clone)]
pub struct TransactionMetricsCollector {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TransactionMetricsCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionMetricsCollector")
            .field("names", &self.inner.names)
            .field("watched_clients", &self.inner.locks.watched())
            .finish()
    }
}

impl Default for TransactionMetricsCollector {
    fn default() -> Self {
        Self::new()
    }
}

/// Checks a label value given to a seed method: not empty, at most 256 bytes (label values are
/// series identities: an error text or an id here would grow the series without bound).
fn label_value(arg: &'static str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid_argument(arg, "must not be empty"));
    }
    if value.len() > 256 {
        return Err(Error::invalid_argument(
            arg,
            "must be at most 256 bytes (a label value: keep it a short category)",
        ));
    }
    Ok(())
}

fn one_of(arg: &'static str, value: &str, allowed: &[&str]) -> Result<()> {
    if allowed.contains(&value) {
        return Ok(());
    }
    Err(Error::invalid_argument(
        arg,
        format!("must be one of {allowed:?}, not {value:?}"),
    ))
}

/// Milliseconds, as the seed takes them, to seconds: finite and not negative.
fn seconds(arg: &'static str, ms: f64) -> Result<f64> {
    if !ms.is_finite() || ms < 0.0 {
        return Err(Error::invalid_argument(
            arg,
            format!("must be a finite number of milliseconds, 0 or more, not {ms}"),
        ));
    }
    Ok(ms / 1000.0)
}

impl TransactionMetricsCollector {
    /// A collector with the seed's names ([`MetricNames::Legacy`]).
    pub fn new() -> TransactionMetricsCollector {
        Self::with_options(MetricsOptions::default())
    }

    /// A collector with options (which names the monitor's gauges take).
    pub fn with_options(options: MetricsOptions) -> TransactionMetricsCollector {
        Self::build(options, SeedMetrics::own())
    }

    /// The seed's `new TransactionMetricsCollector(metricsRegistry)`: the seed's four metrics
    /// are created in `registry` (a seed-style registry, [`SeedRegistry`]) exactly as the seed
    /// creates them, and recorded there; everything else (the monitor's gauges, lock metrics)
    /// stays in this collector. Fails with the registry's error when it refuses a metric.
    pub fn with_registry(
        registry: &dyn SeedRegistry,
        options: MetricsOptions,
    ) -> Result<TransactionMetricsCollector> {
        Ok(Self::build(options, SeedMetrics::in_registry(registry)?))
    }

    fn build(options: MetricsOptions, seed: SeedMetrics) -> TransactionMetricsCollector {
        TransactionMetricsCollector {
            inner: Arc::new(Inner {
                names: options.names,
                seed,
                monitor: monitor::MonitorSeries::new(options.names),
                locks: locks::LockMetrics::new(),
                alerts: AlertCounters::new(),
            }),
        }
    }

    /// Which names the monitor's gauges are exported under.
    pub fn names(&self) -> MetricNames {
        self.inner.names
    }

    /// The seed's `recordDistributedTransaction(transactionType, status, duration)`: `status`
    /// is `success` or `failure`, `duration_ms` in milliseconds.
    pub fn record_distributed_transaction(
        &self,
        transaction_type: &str,
        status: &str,
        duration_ms: f64,
    ) -> Result<()> {
        label_value("transaction_type", transaction_type)?;
        one_of("status", status, &names::TX_STATUSES)?;
        let s = seconds("duration", duration_ms)?;
        self.inner
            .seed
            .transactions
            .observe(&[transaction_type, status], s)
    }

    /// The seed's `recordSagaExecution(sagaType, status, duration)`: `status` is `completed`,
    /// `failed` or `compensated`, `duration_ms` in milliseconds.
    pub fn record_saga_execution(
        &self,
        saga_type: &str,
        status: &str,
        duration_ms: f64,
    ) -> Result<()> {
        label_value("saga_type", saga_type)?;
        one_of("status", status, &names::SAGA_STATUSES)?;
        let s = seconds("duration", duration_ms)?;
        self.inner.seed.sagas.observe(&[saga_type, status], s)
    }

    /// The seed's `recordCompensation(sagaType, step, reason)`. `reason` is a label value:
    /// keep it a short category, not an error text.
    pub fn record_compensation(&self, saga_type: &str, step: &str, reason: &str) -> Result<()> {
        label_value("saga_type", saga_type)?;
        label_value("step", step)?;
        label_value("reason", reason)?;
        self.inner
            .seed
            .compensations
            .inc(&[saga_type, step, reason])
    }

    /// The seed's `recordDeadlock(resolutionMethod)`: `abort_saga`, `timeout` or `manual`.
    pub fn record_deadlock(&self, resolution_method: &str) -> Result<()> {
        one_of(
            "resolution_method",
            resolution_method,
            &names::RESOLUTION_METHODS,
        )?;
        self.inner.seed.deadlocks.inc(&[resolution_method])
    }

    /// Exports the lock metrics of `client` (and of every clone of it) from now on, summed with
    /// the other watched clients'. Watching a client twice changes nothing. Its counters are
    /// kept after the client is dropped, so the totals never go down.
    pub fn watch_client(&self, client: &Client) {
        self.inner.locks.watch(client);
    }

    /// Every metric family, sorted by name (empty families left out).
    pub fn gather(&self) -> Vec<MetricFamily> {
        let mut families = self.collect();
        families.retain(|f| !f.get_metric().is_empty());
        families.sort_by(|a, b| a.name().cmp(b.name()));
        // series by their label values, as a prometheus::Registry orders them
        for f in &mut families {
            f.mut_metric().sort_by(|a, b| {
                let values = |m: &prometheus::proto::Metric| {
                    m.get_label()
                        .iter()
                        .map(|l| l.value().to_string())
                        .collect::<Vec<_>>()
                };
                values(a).cmp(&values(b))
            });
        }
        families
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric.
    pub fn metrics(&self) -> String {
        let families = self.gather();
        prometheus::TextEncoder::new()
            .encode_to_string(&families)
            .unwrap_or_else(|e| {
                // Only a family without metrics or name fails, and `gather` leaves none.
                tracing::warn!(target: "txcoord", "txcoord: metrics text: {e}");
                String::new()
            })
    }

    /// Registers the collector into `registry`, so that a user's own endpoint serves txcoord's
    /// metrics beside theirs. Fails (an invalid-argument error naming `registry`) when the
    /// registry already has a metric of one of these names, or this collector.
    pub fn register(&self, registry: &Registry) -> Result<()> {
        registry.register(Box::new(self.clone())).map_err(|e| {
            Error::invalid_argument("registry", format!("cannot take txcoord's metrics: {e}"))
        })
    }

    /// Removes the collector from `registry`.
    pub fn unregister(&self, registry: &Registry) -> Result<()> {
        registry.unregister(Box::new(self.clone())).map_err(|e| {
            Error::invalid_argument("registry", format!("does not hold txcoord's metrics: {e}"))
        })
    }

    pub(crate) fn alert_counters(&self) -> AlertCounters {
        self.inner.alerts.clone()
    }
}

impl Collector for TransactionMetricsCollector {
    fn desc(&self) -> Vec<&Desc> {
        let inner = &*self.inner;
        let mut out: Vec<&Desc> = Vec::new();
        for c in inner.seed.collectors() {
            out.extend(c.desc());
        }
        out.extend(inner.monitor.desc());
        out.extend(inner.locks.descs());
        out.extend(inner.alerts.sent.desc());
        out.extend(inner.alerts.failures.desc());
        out
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let inner = &*self.inner;
        let mut out = Vec::new();
        for c in inner.seed.collectors() {
            out.extend(c.collect());
        }
        out.extend(inner.monitor.collect());
        out.extend(inner.locks.collect());
        out.extend(inner.alerts.sent.collect());
        out.extend(inner.alerts.failures.collect());
        out
    }
}

impl DeadlockMetrics for TransactionMetricsCollector {
    /// Counts one broken deadlock in `deadlocks_detected_total{resolution_method}`.
    fn record_deadlock(&self, resolution_method: &str) {
        if let Err(e) = TransactionMetricsCollector::record_deadlock(self, resolution_method) {
            tracing::warn!(target: "txcoord", "txcoord: deadlock not counted: {e}");
        }
    }
}

impl MonitorMetrics for TransactionMetricsCollector {
    fn record_gauge(&self, name: &str, value: f64) {
        self.inner.monitor.gauge(name, value);
    }

    fn record_histogram(&self, name: &str, value: f64) {
        self.inner.monitor.histogram(name, value);
    }

    fn record_stuck_by_reason(&self, counts: &[(String, u64)]) {
        self.inner.monitor.stuck_by_reason(counts);
    }
}
