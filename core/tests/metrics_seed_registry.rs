// SPDX-License-Identifier: MIT OR Apache-2.0
//! TransactionMetricsCollector over a seed-style registry (the seed's `MetricsRegistry` with
//! `createHistogram`/`createCounter`): the four metrics created there exactly as the seed
//! creates them, recorded there, and not also exported by the collector.

use std::sync::{Arc, Mutex};

use txcoord::{
    DeadlockMetrics, Error, ErrorKind, MetricsOptions, SeedMetric, SeedMetricKind, SeedMetricSpec,
    SeedRegistry, TransactionMetricsCollector,
};

/// What a registry was asked to do, in order.
#[derive(Debug, Clone, PartialEq)]
enum Call {
    Create(SeedMetricKind, String, String, Vec<String>, Vec<f64>),
    Observe(String, Vec<String>, f64),
    Inc(String, Vec<String>),
}

#[derive(Default)]
struct Recording {
    calls: Arc<Mutex<Vec<Call>>>,
    refuse: Option<&'static str>,
}

struct Metric {
    name: String,
    calls: Arc<Mutex<Vec<Call>>>,
}

fn owned(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

impl SeedRegistry for Recording {
    fn create(&self, spec: &SeedMetricSpec) -> txcoord::Result<Arc<dyn SeedMetric>> {
        if self.refuse == Some(spec.name) {
            return Err(Error::invalid_argument(
                "metrics_registry",
                format!("refused {}", spec.name),
            ));
        }
        self.calls.lock().unwrap().push(Call::Create(
            spec.kind,
            spec.name.into(),
            spec.help.into(),
            owned(spec.label_names),
            spec.buckets.to_vec(),
        ));
        Ok(Arc::new(Metric {
            name: spec.name.into(),
            calls: self.calls.clone(),
        }))
    }
}

impl SeedMetric for Metric {
    fn observe(&self, label_values: &[&str], value: f64) -> txcoord::Result<()> {
        let call = Call::Observe(self.name.clone(), owned(label_values), value);
        self.calls.lock().unwrap().push(call);
        Ok(())
    }

    fn inc(&self, label_values: &[&str]) -> txcoord::Result<()> {
        let call = Call::Inc(self.name.clone(), owned(label_values));
        self.calls.lock().unwrap().push(call);
        Ok(())
    }
}

#[test]
fn the_seeds_four_metrics_are_created_in_its_registry_as_the_seed_creates_them() {
    let registry = Recording::default();
    let collector =
        TransactionMetricsCollector::with_registry(&registry, MetricsOptions::new()).unwrap();
    let created = registry.calls.lock().unwrap().clone();
    let h = SeedMetricKind::Histogram;
    let c = SeedMetricKind::Counter;
    assert_eq!(
        created,
        vec![
            Call::Create(
                h,
                "distributed_transaction_duration_seconds".into(),
                "Duration of distributed transactions".into(),
                owned(&["transaction_type", "status"]),
                vec![0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0],
            ),
            Call::Create(
                h,
                "saga_execution_duration_seconds".into(),
                "Duration of saga execution".into(),
                owned(&["saga_type", "status"]),
                vec![0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0],
            ),
            Call::Create(
                c,
                "saga_compensations_total".into(),
                "Total number of saga compensations".into(),
                owned(&["saga_type", "step", "reason"]),
                vec![],
            ),
            Call::Create(
                c,
                "deadlocks_detected_total".into(),
                "Total number of deadlocks detected".into(),
                owned(&["resolution_method"]),
                vec![],
            ),
        ]
    );
    // the collector does not also export them
    let text = collector.metrics();
    for name in [
        "distributed_transaction_duration_seconds",
        "saga_execution_duration_seconds",
        "saga_compensations_total",
        "deadlocks_detected_total",
    ] {
        assert!(
            !text.contains(name),
            "{name} exported beside the registry's"
        );
    }
}

#[test]
fn recordings_reach_the_registrys_metrics_in_seconds_with_the_label_values_in_order() {
    let registry = Recording::default();
    let collector =
        TransactionMetricsCollector::with_registry(&registry, MetricsOptions::new()).unwrap();
    registry.calls.lock().unwrap().clear();
    collector
        .record_distributed_transaction("checkout", "success", 1500.0)
        .unwrap();
    collector
        .record_saga_execution("order", "compensated", 250.0)
        .unwrap();
    collector
        .record_compensation("order", "reserve-stock", "payment-declined")
        .unwrap();
    DeadlockMetrics::record_deadlock(&collector, "abort_saga");
    // refused before the registry sees it
    let e = collector
        .record_saga_execution("order", "done", 1.0)
        .unwrap_err();
    assert_eq!(
        (e.kind(), e.argument()),
        (ErrorKind::InvalidArgument, Some("status"))
    );
    assert_eq!(
        registry.calls.lock().unwrap().clone(),
        vec![
            Call::Observe(
                "distributed_transaction_duration_seconds".into(),
                owned(&["checkout", "success"]),
                1.5
            ),
            Call::Observe(
                "saga_execution_duration_seconds".into(),
                owned(&["order", "compensated"]),
                0.25
            ),
            Call::Inc(
                "saga_compensations_total".into(),
                owned(&["order", "reserve-stock", "payment-declined"])
            ),
            Call::Inc("deadlocks_detected_total".into(), owned(&["abort_saga"])),
        ]
    );
}

#[test]
fn a_registry_that_refuses_a_metric_fails_the_construction_with_its_error() {
    let registry = Recording {
        refuse: Some("saga_compensations_total"),
        ..Recording::default()
    };
    let e =
        TransactionMetricsCollector::with_registry(&registry, MetricsOptions::new()).unwrap_err();
    assert_eq!(e.argument(), Some("metrics_registry"));
    assert!(e.to_string().contains("saga_compensations_total"), "{e}");
}
