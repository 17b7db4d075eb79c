// SPDX-License-Identifier: MIT OR Apache-2.0
//! Collectors with every family populated, and reading values back from the text.

use txcoord::{
    AlertmanagerOptions, AlertmanagerSink, Client, MetricNames, MetricsOptions, MonitorMetrics,
    TransactionMetricsCollector,
};

pub fn collector(names: MetricNames) -> TransactionMetricsCollector {
    TransactionMetricsCollector::with_options(MetricsOptions::new().set_names(names))
}

/// The value of the sample `series` (`name{labels}` exactly as printed).
pub fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// What the monitor records in one pass.
pub fn monitor_pass(m: &dyn MonitorMetrics) {
    m.record_gauge("sagas_active_total", 3.0);
    m.record_gauge("sagas_completed_total", 10.0);
    m.record_gauge("sagas_failed_total", 2.0);
    m.record_gauge("saga_success_rate", 10.0 / 12.0);
    m.record_gauge("sagas_stuck_total", 2.0);
    m.record_stuck_by_reason(&[("waiting-on-lock".into(), 1), ("retrying".into(), 1)]);
    m.record_histogram("saga_duration_seconds", 4.0);
    m.record_histogram("saga_duration_seconds", 700.0);
}

/// Every family populated: the seed's, the monitor's, a watched client's lock metrics, an
/// Alertmanager sink's counters.
pub fn everything(names: MetricNames) -> TransactionMetricsCollector {
    let c = collector(names);
    c.record_distributed_transaction("CreateOrder", "failure", 250.0)
        .unwrap();
    c.record_saga_execution("CreateOrderSaga", "completed", 9000.0)
        .unwrap();
    c.record_compensation("CreateOrderSaga", "charge", "timeout")
        .unwrap();
    c.record_deadlock("timeout").unwrap();
    monitor_pass(&c);
    // never connects: its counters exist all the same
    c.watch_client(&Client::open("redis://127.0.0.1:1").unwrap());
    AlertmanagerSink::new(
        &["http://127.0.0.1:1"],
        AlertmanagerOptions::new().set_metrics(&c),
    )
    .unwrap();
    c
}
