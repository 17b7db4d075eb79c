// SPDX-License-Identifier: MIT OR Apache-2.0
//! The seed's four metrics, and where they live: in the collector's own Prometheus metrics, or
//! in a user's seed-style registry (the seed's `MetricsRegistry`: `createHistogram` and
//! `createCounter`, whose metrics take `labels(...).observe(v)` and `labels(...).inc()`).
//!
//! The bindings implement [`SeedRegistry`] over the user's object (prom-client, a Python
//! registry with the seed's methods); what is created, in which order, with which names, help
//! texts, labels and buckets, and what is recorded, is decided here.

use std::sync::Arc;

use prometheus::core::Collector;
use prometheus::{CounterVec, HistogramOpts, HistogramVec, Opts};

use super::names::*;
use crate::error::Result;

/// What kind of metric a [`SeedMetricSpec`] creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedMetricKind {
    /// `createHistogram({ name, help, labelNames, buckets })`.
    Histogram,
    /// `createCounter({ name, help, labelNames })`.
    Counter,
}

/// One of the seed's metrics, as its `setupMetrics` creates it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeedMetricSpec {
    pub kind: SeedMetricKind,
    pub name: &'static str,
    pub help: &'static str,
    pub label_names: &'static [&'static str],
    /// Bucket upper bounds in seconds (histograms; empty for counters).
    pub buckets: &'static [f64],
}

/// The seed's four metrics in the order its `setupMetrics` creates them.
pub const SEED_METRICS: [SeedMetricSpec; 4] = [
    SeedMetricSpec {
        kind: SeedMetricKind::Histogram,
        name: TX_DURATION,
        help: TX_DURATION_HELP,
        label_names: &TX_DURATION_LABELS,
        buckets: &TX_DURATION_BUCKETS,
    },
    SeedMetricSpec {
        kind: SeedMetricKind::Histogram,
        name: SAGA_EXECUTION,
        help: SAGA_EXECUTION_HELP,
        label_names: &SAGA_EXECUTION_LABELS,
        buckets: &SAGA_EXECUTION_BUCKETS,
    },
    SeedMetricSpec {
        kind: SeedMetricKind::Counter,
        name: COMPENSATIONS,
        help: COMPENSATIONS_HELP,
        label_names: &COMPENSATIONS_LABELS,
        buckets: &[],
    },
    SeedMetricSpec {
        kind: SeedMetricKind::Counter,
        name: DEADLOCKS,
        help: DEADLOCKS_HELP,
        label_names: &DEADLOCKS_LABELS,
        buckets: &[],
    },
];

/// A user's seed-style metrics registry.
pub trait SeedRegistry: Send + Sync {
    /// Creates the metric `spec` describes (called once per metric, in the seed's order, while
    /// the collector is built). An error fails the construction.
    fn create(&self, spec: &SeedMetricSpec) -> Result<Arc<dyn SeedMetric>>;
}

/// A metric a [`SeedRegistry`] created. Label values come in the order of the spec's
/// `label_names`; values already validated.
pub trait SeedMetric: Send + Sync {
    /// `labels(...values).observe(value)` (histograms; `value` in seconds).
    fn observe(&self, label_values: &[&str], value: f64) -> Result<()>;
    /// `labels(...values).inc()` (counters).
    fn inc(&self, label_values: &[&str]) -> Result<()>;
}

/// A seed metric in the collector's own Prometheus metrics.
enum Own {
    Histogram(HistogramVec),
    Counter(CounterVec),
}

impl SeedMetric for Own {
    fn observe(&self, label_values: &[&str], value: f64) -> Result<()> {
        if let Own::Histogram(h) = self {
            h.with_label_values(label_values).observe(value);
        }
        Ok(())
    }

    fn inc(&self, label_values: &[&str]) -> Result<()> {
        if let Own::Counter(c) = self {
            c.with_label_values(label_values).inc();
        }
        Ok(())
    }
}

/// The four metrics, wherever they live.
pub(super) struct SeedMetrics {
    pub transactions: Arc<dyn SeedMetric>,
    pub sagas: Arc<dyn SeedMetric>,
    pub compensations: Arc<dyn SeedMetric>,
    pub deadlocks: Arc<dyn SeedMetric>,
    /// The collector's own metrics (exported by it); empty when a user's registry holds them.
    own: Vec<Box<dyn Collector>>,
}

impl SeedMetrics {
    /// The four in the collector's own Prometheus metrics.
    pub(super) fn own() -> SeedMetrics {
        let mut own: Vec<Box<dyn Collector>> = Vec::new();
        let mut made: Vec<Arc<dyn SeedMetric>> = Vec::new();
        for spec in &SEED_METRICS {
            match spec.kind {
                SeedMetricKind::Histogram => {
                    let h = HistogramVec::new(
                        HistogramOpts::new(spec.name, spec.help).buckets(spec.buckets.to_vec()),
                        spec.label_names,
                    )
                    .expect("valid seed histogram");
                    own.push(Box::new(h.clone()));
                    made.push(Arc::new(Own::Histogram(h)));
                }
                SeedMetricKind::Counter => {
                    let c = CounterVec::new(Opts::new(spec.name, spec.help), spec.label_names)
                        .expect("valid seed counter");
                    own.push(Box::new(c.clone()));
                    made.push(Arc::new(Own::Counter(c)));
                }
            }
        }
        Self::from_made(made, own)
    }

    /// The four created in a user's registry, in the seed's order.
    pub(super) fn in_registry(registry: &dyn SeedRegistry) -> Result<SeedMetrics> {
        let made = SEED_METRICS
            .iter()
            .map(|spec| registry.create(spec))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self::from_made(made, Vec::new()))
    }

    fn from_made(made: Vec<Arc<dyn SeedMetric>>, own: Vec<Box<dyn Collector>>) -> SeedMetrics {
        let mut it = made.into_iter();
        let mut next = || it.next().expect("one metric per seed spec");
        SeedMetrics {
            transactions: next(),
            sagas: next(),
            compensations: next(),
            deadlocks: next(),
            own,
        }
    }

    /// The collector's own seed metrics (none when a user's registry holds them).
    pub(super) fn collectors(&self) -> impl Iterator<Item = &dyn Collector> {
        self.own.iter().map(|c| c.as_ref())
    }
}
