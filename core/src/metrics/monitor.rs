// SPDX-License-Identifier: MIT OR Apache-2.0
//! What the monitor records: its gauges under the chosen names, stuck sagas by reason, the
//! finished sagas' durations; and names the collector does not know, exported as given.

use std::collections::BTreeMap;
use std::sync::Mutex;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Gauge, GaugeVec, Histogram, HistogramOpts, Opts};

use super::names::*;
use super::MetricNames;

/// A name recorded that the collector does not know.
enum Other {
    Gauge(Gauge),
    Histogram(Histogram),
}

pub(super) struct MonitorSeries {
    /// Per entry of [`MONITOR_GAUGES`]: the legacy gauge and the convention gauge, as chosen.
    gauges: Vec<(Option<Gauge>, Option<Gauge>)>,
    duration: (Option<Histogram>, Option<Histogram>),
    stuck_by_reason: GaugeVec,
    // A std mutex: a map looked up and inserted into, never held across an await.
    other: Mutex<BTreeMap<String, Other>>,
}

fn gauge(name: &str, help: &str) -> Gauge {
    Gauge::with_opts(Opts::new(name, help)).expect("valid monitor gauge")
}

fn histogram(name: &str, help: &str, buckets: &[f64]) -> prometheus::Result<Histogram> {
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
}

/// Names no unknown metric may take: every name the collector exports or may export.
fn reserved(name: &str) -> bool {
    let base = ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name);
    name.starts_with("txcoord_")
        || [
            TX_DURATION,
            SAGA_EXECUTION,
            COMPENSATIONS,
            DEADLOCKS,
            SAGA_DURATION,
        ]
        .iter()
        .any(|n| *n == name || *n == base)
        || MONITOR_GAUGES.iter().any(|g| g.legacy == name)
}

impl MonitorSeries {
    pub(super) fn new(names: MetricNames) -> MonitorSeries {
        let gauges = MONITOR_GAUGES
            .iter()
            .map(|g| {
                (
                    names.legacy().then(|| gauge(g.legacy, g.help)),
                    names.convention().then(|| gauge(g.convention, g.help)),
                )
            })
            .collect();
        let duration = |name| {
            histogram(name, SAGA_DURATION_HELP, &SAGA_DURATION_BUCKETS).expect("valid histogram")
        };
        let stuck_by_reason = GaugeVec::new(
            Opts::new(STUCK_BY_REASON, STUCK_BY_REASON_HELP),
            &["reason"],
        )
        .expect("valid gauge");
        for r in STUCK_REASONS {
            stuck_by_reason.with_label_values(&[r]).set(0.0);
        }
        MonitorSeries {
            gauges,
            duration: (
                names.legacy().then(|| duration(SAGA_DURATION)),
                names
                    .convention()
                    .then(|| duration(SAGA_DURATION_CONVENTION)),
            ),
            stuck_by_reason,
            other: Mutex::new(BTreeMap::new()),
        }
    }

    pub(super) fn gauge(&self, name: &str, value: f64) {
        if let Some(i) = MONITOR_GAUGES.iter().position(|g| g.legacy == name) {
            let (legacy, convention) = &self.gauges[i];
            for g in [legacy, convention].into_iter().flatten() {
                g.set(value);
            }
            return;
        }
        self.other(name, false, |o| match o {
            Other::Gauge(g) => g.set(value),
            Other::Histogram(_) => tracing::warn!(
                target: "txcoord",
                "txcoord: metric {name:?} is a histogram: record_gauge ignored"
            ),
        });
    }

    pub(super) fn histogram(&self, name: &str, value: f64) {
        if name == SAGA_DURATION {
            let (legacy, convention) = &self.duration;
            for h in [legacy, convention].into_iter().flatten() {
                h.observe(value);
            }
            return;
        }
        self.other(name, true, |o| match o {
            Other::Histogram(h) => h.observe(value),
            Other::Gauge(_) => tracing::warn!(
                target: "txcoord",
                "txcoord: metric {name:?} is a gauge: record_histogram ignored"
            ),
        });
    }

    /// Sets the count of each reason given, and 0 for every reason not given.
    pub(super) fn stuck_by_reason(&self, counts: &[(String, u64)]) {
        for m in self
            .stuck_by_reason
            .collect()
            .iter()
            .flat_map(|f| f.get_metric())
        {
            if let Some(l) = m.get_label().first() {
                if !counts.iter().any(|(r, _)| r == l.value()) {
                    self.stuck_by_reason
                        .with_label_values(&[l.value()])
                        .set(0.0);
                }
            }
        }
        for (reason, n) in counts {
            self.stuck_by_reason
                .with_label_values(&[reason.as_str()])
                .set(*n as f64);
        }
    }

    /// Runs `f` on the metric of a name the collector does not know, created on first use;
    /// names that are invalid or taken by txcoord are refused (and logged).
    fn other(&self, name: &str, histogram_kind: bool, f: impl FnOnce(&Other)) {
        let mut other = self.other.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(o) = other.get(name) {
            f(o);
            return;
        }
        if reserved(name) {
            tracing::warn!(
                target: "txcoord",
                "txcoord: metric name {name:?} is txcoord's own: value ignored"
            );
            return;
        }
        let help = "Recorded by a saga monitor under a name txcoord does not define";
        let made = if histogram_kind {
            histogram(name, help, &OTHER_HISTOGRAM_BUCKETS).map(Other::Histogram)
        } else {
            Gauge::with_opts(Opts::new(name, help)).map(Other::Gauge)
        };
        match made {
            Ok(o) => {
                f(&o);
                other.insert(name.to_string(), o);
            }
            Err(e) => {
                tracing::warn!(target: "txcoord", "txcoord: metric {name:?} ignored: {e}")
            }
        }
    }

    pub(super) fn desc(&self) -> Vec<&Desc> {
        let mut out = Vec::new();
        for (l, c) in &self.gauges {
            for g in [l, c].into_iter().flatten() {
                out.extend(g.desc());
            }
        }
        for h in [&self.duration.0, &self.duration.1].into_iter().flatten() {
            out.extend(h.desc());
        }
        out.extend(self.stuck_by_reason.desc());
        out
    }

    pub(super) fn collect(&self) -> Vec<MetricFamily> {
        let mut out = Vec::new();
        for (l, c) in &self.gauges {
            for g in [l, c].into_iter().flatten() {
                out.extend(g.collect());
            }
        }
        for h in [&self.duration.0, &self.duration.1].into_iter().flatten() {
            out.extend(h.collect());
        }
        out.extend(self.stuck_by_reason.collect());
        let other = self.other.lock().unwrap_or_else(|p| p.into_inner());
        for o in other.values() {
            match o {
                Other::Gauge(g) => out.extend(g.collect()),
                Other::Histogram(h) => out.extend(h.collect()),
            }
        }
        out
    }
}
