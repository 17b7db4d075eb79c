// SPDX-License-Identifier: MIT OR Apache-2.0
//! TransactionMetricsCollector: the seed's metrics exactly, the monitor's names, lock metrics of
//! real clients on a real redis-server, `promtool check metrics`, a user's registry. (The
//! endpoint and a real Prometheus scraping it: `metrics_endpoint.rs`.)

mod common;
mod tools;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use tools::sample::{collector, everything, monitor_pass, value};
use txcoord::{
    DeadlockMetrics, ErrorKind, LockManager, LossReason, MetricNames, MonitorMetrics,
    TransactionMetricsCollector,
};
use txcoord_testkit::RedisServer;

/// The lines of `text` that belong to the family `name` (its HELP, TYPE and samples).
fn family_lines<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| {
            let l = l
                .strip_prefix("# HELP ")
                .or_else(|| l.strip_prefix("# TYPE "))
                .unwrap_or(l);
            let metric = l.split(['{', ' ']).next().unwrap_or("");
            metric == name
                || ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| metric.strip_suffix(s) == Some(name))
        })
        .collect()
}

/// The label names and values of a sample line.
fn labels_of(line: &str) -> BTreeMap<String, String> {
    let Some(start) = line.find('{') else {
        return BTreeMap::new();
    };
    let end = line.rfind('}').expect("closing brace");
    line[start + 1..end]
        .split("\",")
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once("=\"").expect("label=value");
            (k.to_string(), v.trim_end_matches('"').to_string())
        })
        .collect()
}

/// The `le` bounds of a histogram family's buckets for one label set, in order.
fn bounds(text: &str, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for l in family_lines(text, name) {
        if l.starts_with(&format!("{name}_bucket{{")) {
            let le = labels_of(l).remove("le").expect("le");
            if !out.contains(&le) {
                out.push(le);
            }
        }
    }
    out
}

#[test]
fn the_seeds_four_metrics_keep_its_names_help_labels_and_buckets() {
    let c = TransactionMetricsCollector::new();
    c.record_distributed_transaction("CreateOrder", "success", 1500.0)
        .unwrap();
    c.record_saga_execution("CreateOrderSaga", "compensated", 700.0)
        .unwrap();
    c.record_compensation("CreateOrderSaga", "reserve-stock", "payment-declined")
        .unwrap();
    c.record_deadlock("abort_saga").unwrap();
    c.record_deadlock("abort_saga").unwrap();
    let text = c.metrics();

    let tx = "distributed_transaction_duration_seconds";
    let lines = family_lines(&text, tx);
    assert_eq!(
        lines[0],
        format!("# HELP {tx} Duration of distributed transactions")
    );
    assert_eq!(lines[1], format!("# TYPE {tx} histogram"));
    assert_eq!(
        bounds(&text, tx),
        ["0.1", "0.5", "1", "2", "5", "10", "30", "60", "120", "300", "+Inf"]
    );
    for l in &lines[2..] {
        let names: Vec<String> = labels_of(l).into_keys().collect();
        let expected: &[&str] = if l.contains("_bucket{") {
            &["le", "status", "transaction_type"]
        } else {
            &["status", "transaction_type"]
        };
        assert_eq!(names, expected, "{l}");
    }
    // 1.5 s: above 0.1, 0.5 and 1, within 2 and every bound after
    let bucket = |le: &str| {
        value(
            &text,
            &format!(
                "{tx}_bucket{{status=\"success\",transaction_type=\"CreateOrder\",le=\"{le}\"}}"
            ),
        )
    };
    assert_eq!(bucket("1"), Some(0.0));
    assert_eq!(bucket("2"), Some(1.0));
    assert_eq!(bucket("+Inf"), Some(1.0));
    assert_eq!(
        value(
            &text,
            &format!("{tx}_sum{{status=\"success\",transaction_type=\"CreateOrder\"}}")
        ),
        Some(1.5),
        "observed in seconds"
    );

    let saga = "saga_execution_duration_seconds";
    let lines = family_lines(&text, saga);
    assert_eq!(
        lines[0],
        format!("# HELP {saga} Duration of saga execution")
    );
    assert_eq!(lines[1], format!("# TYPE {saga} histogram"));
    assert_eq!(
        bounds(&text, saga),
        ["0.5", "1", "2", "5", "10", "20", "30", "60", "120", "300", "+Inf"]
    );
    assert_eq!(
        value(
            &text,
            &format!(
                "{saga}_bucket{{saga_type=\"CreateOrderSaga\",status=\"compensated\",le=\"1\"}}"
            )
        ),
        Some(1.0)
    );

    assert_eq!(
        family_lines(&text, "saga_compensations_total"),
        [
            "# HELP saga_compensations_total Total number of saga compensations",
            "# TYPE saga_compensations_total counter",
            "saga_compensations_total{reason=\"payment-declined\",saga_type=\"CreateOrderSaga\",step=\"reserve-stock\"} 1",
        ]
    );
    assert_eq!(
        family_lines(&text, "deadlocks_detected_total"),
        [
            "# HELP deadlocks_detected_total Total number of deadlocks detected",
            "# TYPE deadlocks_detected_total counter",
            "deadlocks_detected_total{resolution_method=\"abort_saga\"} 2",
        ]
    );
}

#[test]
fn the_detector_counts_broken_deadlocks_as_abort_saga() {
    let c = TransactionMetricsCollector::new();
    let as_detector: &dyn DeadlockMetrics = &c;
    as_detector.record_deadlock("abort_saga");
    as_detector.record_deadlock("abort_saga");
    assert_eq!(
        value(
            &c.metrics(),
            "deadlocks_detected_total{resolution_method=\"abort_saga\"}"
        ),
        Some(2.0)
    );
}

#[test]
fn bad_input_is_refused_naming_the_argument() {
    let c = TransactionMetricsCollector::new();
    let cases = [
        (
            c.record_distributed_transaction("", "success", 1.0),
            "transaction_type",
        ),
        (c.record_distributed_transaction("T", "ok", 1.0), "status"),
        (
            c.record_distributed_transaction("T", "success", -1.0),
            "duration",
        ),
        (
            c.record_distributed_transaction("T", "success", f64::NAN),
            "duration",
        ),
        (c.record_saga_execution("S", "success", 1.0), "status"),
        (
            c.record_saga_execution("S", "failed", f64::INFINITY),
            "duration",
        ),
        (c.record_compensation("S", "", "r"), "step"),
        (
            c.record_compensation("S", "step", &"x".repeat(300)),
            "reason",
        ),
        (c.record_deadlock("killed"), "resolution_method"),
    ];
    for (i, (result, arg)) in cases.into_iter().enumerate() {
        let e = result.expect_err(arg);
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "case {i}");
        assert_eq!(e.argument(), Some(arg), "case {i}: {e}");
    }
    assert!(
        !c.metrics().contains("transaction_type=\"T\""),
        "nothing recorded"
    );
    assert_eq!(
        MetricNames::parse("names", "both").unwrap(),
        MetricNames::Both
    );
    assert_eq!(
        MetricNames::parse("names", "seed").unwrap_err().argument(),
        Some("names")
    );
}

const LEGACY: [&str; 6] = [
    "sagas_active_total",
    "sagas_completed_total",
    "sagas_failed_total",
    "saga_success_rate",
    "sagas_stuck_total",
    "saga_duration_seconds",
];
const CONVENTION: [&str; 6] = [
    "txcoord_sagas_active",
    "txcoord_sagas_completed",
    "txcoord_sagas_failed",
    "txcoord_saga_success_ratio",
    "txcoord_sagas_stuck",
    "txcoord_saga_duration_seconds",
];

/// The names of the families in `text` (from its TYPE lines).
fn families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect()
}

#[test]
fn the_monitors_gauges_take_the_names_chosen() {
    for names in [
        MetricNames::Legacy,
        MetricNames::Convention,
        MetricNames::Both,
    ] {
        let c = collector(names);
        assert_eq!(c.names(), names);
        monitor_pass(&c);
        let text = c.metrics();
        let have = families(&text);
        for (legacy, convention) in LEGACY.iter().zip(CONVENTION) {
            assert_eq!(
                have.contains(*legacy),
                names != MetricNames::Convention,
                "{names:?} {legacy}"
            );
            assert_eq!(
                have.contains(convention),
                names != MetricNames::Legacy,
                "{names:?} {convention}"
            );
        }
        if names != MetricNames::Convention {
            assert_eq!(value(&text, "sagas_active_total"), Some(3.0));
            assert_eq!(value(&text, "sagas_stuck_total"), Some(2.0));
            assert_eq!(value(&text, "saga_duration_seconds_count"), Some(2.0));
            assert_eq!(
                value(&text, "saga_duration_seconds_bucket{le=\"600\"}"),
                Some(1.0)
            );
            assert_eq!(
                value(&text, "saga_duration_seconds_bucket{le=\"1800\"}"),
                Some(2.0)
            );
            assert!(text.contains("# TYPE sagas_active_total gauge"));
        }
        if names != MetricNames::Legacy {
            assert_eq!(value(&text, "txcoord_sagas_active"), Some(3.0));
            assert_eq!(
                value(&text, "txcoord_saga_success_ratio"),
                Some(10.0 / 12.0)
            );
            assert_eq!(
                value(&text, "txcoord_saga_duration_seconds_count"),
                Some(2.0)
            );
        }
        // by reason under every choice; the reasons not given are 0
        for (reason, n) in [
            ("waiting-on-lock", 1.0),
            ("retrying", 1.0),
            ("no-progress", 0.0),
            ("compensation-failing", 0.0),
        ] {
            assert_eq!(
                value(
                    &text,
                    &format!("txcoord_sagas_stuck_by_reason{{reason=\"{reason}\"}}")
                ),
                Some(n),
                "{names:?} {reason}"
            );
        }
    }
    // a later pass with fewer stuck sagas sets the reasons that cleared back to 0
    let c = TransactionMetricsCollector::new();
    c.record_stuck_by_reason(&[("retrying".into(), 2)]);
    c.record_stuck_by_reason(&[("no-progress".into(), 1)]);
    let text = c.metrics();
    assert_eq!(
        value(&text, "txcoord_sagas_stuck_by_reason{reason=\"retrying\"}"),
        Some(0.0)
    );
    assert_eq!(
        value(
            &text,
            "txcoord_sagas_stuck_by_reason{reason=\"no-progress\"}"
        ),
        Some(1.0)
    );
}

#[test]
fn names_the_collector_does_not_know_are_exported_as_given_but_never_over_its_own() {
    let c = collector(MetricNames::Convention);
    c.record_gauge("orders_pending", 7.0);
    c.record_histogram("order_latency_seconds", 0.7);
    // txcoord's own names are not taken over, whatever their kind
    c.record_gauge("deadlocks_detected_total", 99.0);
    c.record_gauge("txcoord_lock_acquired_total", 99.0);
    c.record_histogram("saga_execution_duration_seconds", 99.0);
    c.record_gauge("not a name", 1.0);
    let text = c.metrics();
    assert_eq!(value(&text, "orders_pending"), Some(7.0));
    assert_eq!(value(&text, "order_latency_seconds_count"), Some(1.0));
    assert!(!text.contains("99"), "{text}");
    assert!(!text.contains("deadlocks_detected_total"), "{text}");
}

#[test]
fn promtool_passes_the_convention_names_and_flags_only_the_seeds_total_gauges() {
    let text = everything(MetricNames::Convention).metrics();
    for f in [
        "txcoord_lock_lost_total",
        "txcoord_alert_send_failures_total",
        "deadlocks_detected_total",
    ] {
        assert!(families(&text).contains(f), "{f} populated");
    }
    let out = tools::promtool(&["check", "metrics"], &text);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool check metrics: {said}\n{text}"
    );
    assert_eq!(said.trim(), "", "no complaint");

    for names in [MetricNames::Legacy, MetricNames::Both] {
        let text = everything(names).metrics();
        let out = tools::promtool(&["check", "metrics"], &text);
        assert!(
            !out.status.success(),
            "{names:?}: the seed's _total gauges are flagged"
        );
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let complaints: BTreeSet<String> = said
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        let expected: BTreeSet<String> = [
            "sagas_active_total",
            "sagas_completed_total",
            "sagas_failed_total",
            "sagas_stuck_total",
        ]
        .iter()
        .map(|n| format!("{n} non-counter metrics should not have \"_total\" suffix"))
        .collect();
        assert_eq!(complaints, expected, "{names:?}: {said}");
    }
}

#[test]
fn the_collector_registers_into_a_users_registry() {
    let registry = prometheus::Registry::new();
    let mine = prometheus::IntCounter::new("orders_total", "Orders placed").unwrap();
    registry.register(Box::new(mine.clone())).unwrap();
    mine.inc_by(5);
    let c = everything(MetricNames::Both);
    c.register(&registry).unwrap();
    let served = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap();
    assert!(served.contains("orders_total 5"), "{served}");
    assert!(
        served.contains("deadlocks_detected_total{resolution_method=\"timeout\"} 1"),
        "{served}"
    );
    assert!(served.contains("txcoord_lock_acquired_total 0"), "{served}");
    // the registry's text is exactly ours plus theirs
    let ours = c.metrics();
    assert_eq!(
        served.replace(
            "# HELP orders_total Orders placed\n# TYPE orders_total counter\norders_total 5\n",
            ""
        ),
        ours
    );
    // once only
    let e = c.register(&registry).unwrap_err();
    assert_eq!(e.argument(), Some("registry"));
    c.unregister(&registry).unwrap();
    c.register(&registry).unwrap();
    // a registry with a metric of one of our names refuses ours
    let taken = prometheus::Registry::new();
    taken
        .register(Box::new(
            prometheus::IntCounter::new("txcoord_lock_renewals_total", "theirs").unwrap(),
        ))
        .unwrap();
    let e = TransactionMetricsCollector::new()
        .register(&taken)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert_eq!(e.argument(), Some("registry"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_metrics_count_what_real_clients_did() {
    let server = RedisServer::start();
    let c = TransactionMetricsCollector::new();
    assert!(
        !c.metrics().contains("txcoord_lock_"),
        "no lock metrics before a client is watched"
    );
    let (a, b) = (client(&server), client(&server));
    c.watch_client(&a);
    c.watch_client(&b);
    c.watch_client(&a.clone()); // once per client
    let (ma, mb) = (LockManager::new(&a), LockManager::new(&b));
    let held = ma
        .acquire_lock("metrics:r", ms(30_000), ms(0))
        .await
        .unwrap()
        .expect("free");
    // b finds it held: a single attempt gives up at once
    assert!(mb
        .acquire_lock("metrics:r", ms(30_000), ms(0))
        .await
        .unwrap()
        .is_none());
    // b waits, asleep until a's release notice hands the lock over
    let before = b.stats();
    let waiter = tokio::spawn({
        let mb = mb.clone();
        async move { mb.acquire_lock("metrics:r", ms(3_000), ms(20_000)).await }
    });
    wait_until_asleep(&b, &before, ms(10_000)).await;
    tokio::time::sleep(ms(150)).await; // a wait of at least 100 ms
    ma.release_lock("metrics:r").await.unwrap();
    let got = waiter.await.unwrap().unwrap().expect("handed over");
    drop(held);
    let text = c.metrics();
    let v = |s: &str| value(&text, s).unwrap_or_else(|| panic!("{s} in\n{text}"));
    assert_eq!(v("txcoord_lock_acquired_total"), 2.0);
    assert_eq!(v("txcoord_lock_contended_total"), 2.0);
    assert_eq!(v("txcoord_lock_not_acquired_total"), 1.0);
    assert_eq!(v("txcoord_lock_handoffs_total"), 1.0);
    assert_eq!(v("txcoord_lock_wakeups_total{by=\"notice\"}"), 1.0);
    assert_eq!(v("txcoord_lock_acquire_duration_seconds_count"), 2.0);
    assert_eq!(v("txcoord_lock_wait_duration_seconds_count"), 1.0);
    assert_eq!(
        v("txcoord_lock_wait_duration_seconds_bucket{le=\"0.1\"}"),
        0.0,
        "waited 150 ms or more"
    );
    assert!(v("txcoord_lock_wait_duration_seconds_sum") >= 0.15);
    assert_eq!(v("txcoord_lock_released_total"), 1.0);
    assert!(v("txcoord_lock_acquire_attempts_total") >= 3.0);
    for reason in ["taken", "expired", "renewal-failed", "deadline"] {
        assert_eq!(
            v(&format!("txcoord_lock_lost_total{{reason=\"{reason}\"}}")),
            0.0
        );
    }

    // b's lock (ttl 3 s: renewed every second) is taken over behind its back: lost, reason taken
    let mut con = server.connection();
    let _: () = redis::cmd("SET")
        .arg(got.key())
        .arg("someone-else")
        .query(&mut con)
        .unwrap();
    let reason = tokio::time::timeout(ms(30_000), got.lost())
        .await
        .expect("lost");
    assert_eq!(reason, Some(LossReason::Taken));
    let text = c.metrics();
    assert_eq!(
        value(&text, "txcoord_lock_lost_total{reason=\"taken\"}"),
        Some(1.0)
    );

    // the counts outlive the clients
    drop((ma, mb, got, a, b));
    assert_eq!(
        value(&c.metrics(), "txcoord_lock_acquired_total"),
        Some(2.0)
    );
}
