// SPDX-License-Identifier: MIT OR Apache-2.0
//! Every metric name, help text, label and bucket list the collector exports.
//!
//! The seed's four metrics (`transaction-metrics.ts`) keep its names, help texts, labels and
//! buckets exactly. The monitor's six (`saga-monitor.ts`) keep its names under
//! [`MetricNames::Legacy`](super::MetricNames); four of those are gauges ending in `_total`,
//! which Prometheus reserves for counters, so [`MetricNames::Convention`](super::MetricNames)
//! names them anew under `txcoord_`, where no seed name lives: the two sets never clash.
//! Everything txcoord adds (lock metrics, stuck sagas by reason, alert delivery) has one
//! convention-correct name under `txcoord_`, exported whatever the choice.

/// `distributed_transaction_duration_seconds` (seed).
pub(crate) const TX_DURATION: &str = "distributed_transaction_duration_seconds";
pub(crate) const TX_DURATION_HELP: &str = "Duration of distributed transactions";
pub(crate) const TX_DURATION_LABELS: [&str; 2] = ["transaction_type", "status"];
pub(crate) const TX_DURATION_BUCKETS: [f64; 10] =
    [0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

/// `saga_execution_duration_seconds` (seed).
pub(crate) const SAGA_EXECUTION: &str = "saga_execution_duration_seconds";
pub(crate) const SAGA_EXECUTION_HELP: &str = "Duration of saga execution";
pub(crate) const SAGA_EXECUTION_LABELS: [&str; 2] = ["saga_type", "status"];
pub(crate) const SAGA_EXECUTION_BUCKETS: [f64; 10] =
    [0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0];

/// `saga_compensations_total` (seed).
pub(crate) const COMPENSATIONS: &str = "saga_compensations_total";
pub(crate) const COMPENSATIONS_HELP: &str = "Total number of saga compensations";
pub(crate) const COMPENSATIONS_LABELS: [&str; 3] = ["saga_type", "step", "reason"];

/// `deadlocks_detected_total` (seed).
pub(crate) const DEADLOCKS: &str = "deadlocks_detected_total";
pub(crate) const DEADLOCKS_HELP: &str = "Total number of deadlocks detected";
pub(crate) const DEADLOCKS_LABELS: [&str; 1] = ["resolution_method"];

/// The statuses and resolution methods the seed's signatures allow.
pub(crate) const TX_STATUSES: [&str; 2] = ["success", "failure"];
pub(crate) const SAGA_STATUSES: [&str; 3] = ["completed", "failed", "compensated"];
pub(crate) const RESOLUTION_METHODS: [&str; 3] = ["abort_saga", "timeout", "manual"];

/// One gauge the monitor records, under its seed name and its convention name.
pub(crate) struct MonitorGauge {
    /// The name the monitor passes to `record_gauge` (the seed's).
    pub legacy: &'static str,
    pub convention: &'static str,
    pub help: &'static str,
}

/// The monitor's gauges, in the seed's order.
pub(crate) const MONITOR_GAUGES: [MonitorGauge; 5] = [
    MonitorGauge {
        legacy: "sagas_active_total",
        convention: "txcoord_sagas_active",
        help: "Sagas in progress (executing or compensating)",
    },
    MonitorGauge {
        legacy: "sagas_completed_total",
        convention: "txcoord_sagas_completed",
        help: "Sagas completed, as the saga repository counts them",
    },
    MonitorGauge {
        legacy: "sagas_failed_total",
        convention: "txcoord_sagas_failed",
        help: "Sagas failed, as the saga repository counts them",
    },
    MonitorGauge {
        legacy: "saga_success_rate",
        convention: "txcoord_saga_success_ratio",
        help: "Completed sagas over finished (completed and failed) sagas; 1 when none finished",
    },
    MonitorGauge {
        legacy: "sagas_stuck_total",
        convention: "txcoord_sagas_stuck",
        help: "Sagas stuck at the monitor's last pass",
    },
];

/// The histogram of finished sagas' durations the monitor records (`saga_duration_seconds`).
pub(crate) const SAGA_DURATION: &str = "saga_duration_seconds";
pub(crate) const SAGA_DURATION_CONVENTION: &str = "txcoord_saga_duration_seconds";
pub(crate) const SAGA_DURATION_HELP: &str =
    "Duration of finished sagas, from creation to their last update";
/// The seed's saga execution buckets, extended to 30 min: a refund saga may run 10 min before
/// it is even called long-running.
pub(crate) const SAGA_DURATION_BUCKETS: [f64; 12] = [
    0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];

/// Stuck sagas by reason (always exported).
pub(crate) const STUCK_BY_REASON: &str = "txcoord_sagas_stuck_by_reason";
pub(crate) const STUCK_BY_REASON_HELP: &str =
    "Sagas stuck at the monitor's last pass, by why they are stuck";
/// The reasons the monitor gives; their series exist (at 0) from the start.
pub(crate) const STUCK_REASONS: [&str; 4] = [
    "no-progress",
    "waiting-on-lock",
    "retrying",
    "compensation-failing",
];

/// Alert delivery (always exported).
pub(crate) const ALERTS_SENT: &str = "txcoord_alerts_sent_total";
pub(crate) const ALERTS_SENT_HELP: &str = "Alerts accepted by an Alertmanager";
pub(crate) const ALERT_FAILURES: &str = "txcoord_alert_send_failures_total";
pub(crate) const ALERT_FAILURES_HELP: &str =
    "Alerts that could not be delivered to an Alertmanager (refused, unreachable or timed out)";
pub(crate) const ALERT_LABELS: [&str; 1] = ["alertmanager"];

/// The buckets of names recorded with `record_histogram` that the collector does not know.
pub(crate) const OTHER_HISTOGRAM_BUCKETS: [f64; 12] = SAGA_DURATION_BUCKETS;
