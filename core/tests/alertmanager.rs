// SPDX-License-Identifier: MIT OR Apache-2.0
//! AlertmanagerSink against real Prometheus Alertmanager processes started by the tests on free
//! loopback ports: alerts received with their labels and annotations, re-sends deduplicated
//! with their first startsAt (also across an Alertmanager restart), resolved sends, replicas,
//! failures counted without holding the caller up; and the saga monitor alerting through it.

mod tools;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use txcoord::{
    Alert, AlertSink, AlertmanagerOptions, AlertmanagerSink, Client, DetectorOptions, ErrorKind,
    MetricNames, MetricsOptions, MonitorOptions, RedisSagaRepository, SagaDeadlockDetector,
    SagaMonitor, SagaRecord, SagaRepository, Severity, TracingLogger, TransactionMetricsCollector,
};
use txcoord_testkit::RedisServer;

fn stuck(saga: &str, stuck_ms: u64) -> Alert {
    Alert {
        severity: Severity::Critical,
        summary: "Stuck saga detected: CreateOrderSaga".into(),
        description: format!("Saga {saga} appears to be stuck in EXECUTING status"),
        metadata: json!({
            "sagaId": saga, "sagaType": "CreateOrderSaga", "status": "EXECUTING",
            "stuckDuration": stuck_ms, "reason": "no-progress",
        }),
        name: "StuckSaga".into(),
        labels: vec![
            ("saga_type".into(), "CreateOrderSaga".into()),
            ("saga_id".into(), saga.into()),
            ("reason".into(), "no-progress".into()),
        ],
        resolved: false,
    }
}

/// The alerts Alertmanager lists (active ones: resolved alerts are not listed).
fn listed(am: &tools::Server) -> Vec<Value> {
    am.get_json("/api/v2/alerts")
        .as_array()
        .expect("an array")
        .clone()
}

/// Waits until Alertmanager lists exactly `n` alerts, and returns them.
fn wait_listed(am: &tools::Server, n: usize) -> Vec<Value> {
    tools::poll(
        &format!("{n} alerts listed"),
        Duration::from_secs(30),
        || {
            let alerts = listed(am);
            (alerts.len() == n).then_some(alerts)
        },
    )
}

/// Alertmanager's own count of alerts received, by status (`firing`, `resolved`).
fn received(am: &tools::Server, status: &str) -> f64 {
    let (code, text) = tools::http(am.addr, "GET", "/metrics").expect("alertmanager metrics");
    assert_eq!(code, 200);
    text.lines()
        .filter(|l| {
            l.starts_with("alertmanager_alerts_received_total{")
                && l.contains(&format!("status=\"{status}\""))
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

fn count(list: &[(String, u64)], url: &str) -> u64 {
    list.iter()
        .find(|(u, _)| u == url)
        .unwrap_or_else(|| panic!("{url} in {list:?}"))
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_alertmanager_receives_deduplicates_and_resolves() {
    let mut am = tools::alertmanager();
    let collector = TransactionMetricsCollector::new();
    let sink = AlertmanagerSink::new(
        &[am.url()],
        AlertmanagerOptions::new()
            .set_metrics(&collector)
            .set_label("env", "test"),
    )
    .unwrap();
    assert_eq!(sink.alertmanagers(), [am.url()]);
    sink.send(&stuck("s-1", 61_000)).await.unwrap();
    let alerts = wait_listed(&am, 1);
    let a = &alerts[0];
    assert_eq!(
        a["labels"],
        json!({
            "alertname": "StuckSaga", "severity": "critical", "saga_type": "CreateOrderSaga",
            "saga_id": "s-1", "reason": "no-progress", "env": "test",
        })
    );
    assert_eq!(
        a["annotations"]["summary"],
        "Stuck saga detected: CreateOrderSaga"
    );
    assert_eq!(
        a["annotations"]["description"],
        "Saga s-1 appears to be stuck in EXECUTING status"
    );
    assert_eq!(a["annotations"]["stuckDuration"], "61000");
    assert_eq!(a["status"]["state"], "active");
    let starts = a["startsAt"].as_str().unwrap().to_string();
    let fingerprint = a["fingerprint"].clone();

    // re-sent a little later with a changed value: still one alert, its first start kept
    tokio::time::sleep(Duration::from_millis(50)).await;
    sink.send(&stuck("s-1", 91_000)).await.unwrap();
    let alerts = tools::poll("the re-sent value listed", Duration::from_secs(30), || {
        let alerts = listed(&am);
        (alerts.len() == 1 && alerts[0]["annotations"]["stuckDuration"] == "91000")
            .then_some(alerts)
    });
    assert_eq!(alerts[0]["fingerprint"], fingerprint);
    assert_eq!(alerts[0]["startsAt"], starts.as_str());

    // Alertmanager keeps no alerts across a restart: the start it shows after the next
    // re-send is the one the sink remembered
    am.restart();
    assert!(
        listed(&am).is_empty(),
        "a restarted Alertmanager starts empty"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    sink.send(&stuck("s-1", 121_000)).await.unwrap();
    let alerts = wait_listed(&am, 1);
    assert_eq!(
        alerts[0]["startsAt"],
        starts.as_str(),
        "startsAt kept by the sink"
    );
    assert_eq!(alerts[0]["annotations"]["stuckDuration"], "121000");
    assert_eq!(received(&am, "firing"), 1.0);

    // another saga's alert is another alert
    sink.send(&stuck("s-2", 1_000)).await.unwrap();
    wait_listed(&am, 2);

    // resolved: received as resolved, no longer listed; the other one stays
    sink.send(&Alert {
        resolved: true,
        ..stuck("s-1", 125_000)
    })
    .await
    .unwrap();
    let alerts = wait_listed(&am, 1);
    assert_eq!(alerts[0]["labels"]["saga_id"], "s-2");
    assert_eq!(received(&am, "resolved"), 1.0);
    assert_eq!(received(&am, "firing"), 2.0);

    // five deliveries to this Alertmanager's address, none failed, in the collector's text
    assert_eq!(count(&sink.sent(), &am.url()), 5);
    assert_eq!(count(&sink.send_failures(), &am.url()), 0);
    let text = collector.metrics();
    assert!(
        text.contains(&format!(
            "txcoord_alerts_sent_total{{alertmanager=\"{}\"}} 5",
            am.url()
        )),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_receives_each_alert() {
    let (am1, am2) = (tools::alertmanager(), tools::alertmanager());
    let sink = AlertmanagerSink::new(&[am1.url(), am2.url()], AlertmanagerOptions::new()).unwrap();
    sink.send(&stuck("s-9", 61_000)).await.unwrap();
    for am in [&am1, &am2] {
        let alerts = wait_listed(am, 1);
        assert_eq!(alerts[0]["labels"]["saga_id"], "s-9");
        assert_eq!(alerts[0]["labels"]["alertname"], "StuckSaga");
    }
    // the same start on both
    assert_eq!(listed(&am1)[0]["startsAt"], listed(&am2)[0]["startsAt"]);
    assert_eq!(count(&sink.sent(), &am1.url()), 1);
    assert_eq!(count(&sink.sent(), &am2.url()), 1);
    sink.send(&Alert {
        resolved: true,
        ..stuck("s-9", 62_000)
    })
    .await
    .unwrap();
    for am in [&am1, &am2] {
        wait_listed(am, 0);
        assert_eq!(received(am, "resolved"), 1.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_counted_and_never_hold_the_caller_long() {
    let am = tools::alertmanager();
    // nothing listens there
    let closed = format!("http://127.0.0.1:{}", tools::free_port());
    // accepts connections (the kernel's backlog) but never answers
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    // answers, but with an error status
    let wrong_path = format!("{}/no/such/prefix", am.url());
    let collector = TransactionMetricsCollector::new();
    let sink = AlertmanagerSink::new(
        &[
            am.url(),
            closed.clone(),
            silent_url.clone(),
            wrong_path.clone(),
        ],
        AlertmanagerOptions::new()
            .set_metrics(&collector)
            .set_timeout(Duration::from_secs(1)),
    )
    .unwrap();
    let started = Instant::now();
    sink.send(&stuck("s-5", 61_000))
        .await
        .expect("one Alertmanager accepted it");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(4),
        "{took:?}: bounded by the 1 s timeout"
    );
    wait_listed(&am, 1);
    let failures = sink.send_failures();
    assert_eq!(count(&failures, &am.url()), 0);
    assert_eq!(count(&failures, &closed), 1);
    assert_eq!(count(&failures, &silent_url), 1);
    assert_eq!(count(&failures, &wrong_path), 1);
    let text = collector.metrics();
    for url in [&closed, &silent_url, &wrong_path] {
        let line = format!("txcoord_alert_send_failures_total{{alertmanager=\"{url}\"}} 1");
        assert!(text.contains(&line), "{line} in\n{text}");
    }

    // none reachable: an error naming why, still within the timeout
    let down = AlertmanagerSink::new(
        &[closed.clone(), silent_url.clone()],
        AlertmanagerOptions::new().set_timeout(Duration::from_secs(1)),
    )
    .unwrap();
    let started = Instant::now();
    let e = down.send(&stuck("s-6", 1)).await.unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "{took:?}");
    assert_eq!(e.kind(), ErrorKind::Connection);
    let message = e.to_string();
    assert!(
        message.contains(&closed) && message.contains(&silent_url),
        "{message}"
    );
    assert!(message.contains("timed out"), "{message}");
    assert_eq!(
        down.send_failures(),
        [(closed.clone(), 1), (silent_url.clone(), 1)]
    );
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_saga_monitor_alerts_through_alertmanager_and_records_its_metrics() {
    let redis = RedisServer::start();
    let am = tools::alertmanager();
    let client = Client::open(&redis.url()).unwrap();
    let repo = Arc::new(
        RedisSagaRepository::new(&client).set_default_stuck_after(Duration::from_secs(60)),
    );
    let collector = TransactionMetricsCollector::with_options(
        MetricsOptions::new().set_names(MetricNames::Both),
    );
    let detector = SagaDeadlockDetector::new(
        repo.clone(),
        Arc::new(TracingLogger),
        DetectorOptions::new().set_metrics(Arc::new(collector.clone())),
    )
    .unwrap();
    let sink = AlertmanagerSink::new(
        &[am.url()],
        AlertmanagerOptions::new().set_metrics(&collector),
    )
    .unwrap();
    let monitor = SagaMonitor::new(
        repo.clone(),
        Arc::new(collector.clone()),
        Arc::new(sink.clone()),
        detector,
        MonitorOptions::new().set_start(false),
    )
    .unwrap();
    // started 4 min ago (within the 5 min limit), idle for 2: stuck (after 60 s for a type
    // without a limit of its own), never retried
    let mut saga = SagaRecord::new("order-7", "PaymentSaga");
    saga.created_at = SystemTime::now() - Duration::from_secs(240);
    saga.updated_at = SystemTime::now() - Duration::from_secs(120);
    repo.save(&saga).await.unwrap();

    let report = monitor.tick().await;
    assert!(report.errors.is_empty(), "{report:?}");
    assert_eq!((report.stuck, report.retried), (1, 1), "{report:?}");
    let alerts = wait_listed(&am, 1);
    let labels = &alerts[0]["labels"];
    assert_eq!(labels["alertname"], "StuckSaga");
    assert_eq!(labels["severity"], "critical");
    assert_eq!(labels["saga_type"], "PaymentSaga");
    assert_eq!(labels["saga_id"], "order-7");
    assert_eq!(labels["reason"], "no-progress");
    let text = collector.metrics();
    for line in [
        "sagas_stuck_total 1",
        "txcoord_sagas_stuck 1",
        "txcoord_sagas_stuck_by_reason{reason=\"no-progress\"} 1",
        "sagas_active_total 1",
        "txcoord_sagas_active 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }

    // retried (updated now): no longer stuck, so the next pass resolves the alert
    let report = monitor.tick().await;
    assert_eq!(report.stuck, 0, "{report:?}");
    wait_listed(&am, 0);
    assert_eq!(received(&am, "resolved"), 1.0);
    let text = collector.metrics();
    assert!(text.lines().any(|l| l == "sagas_stuck_total 0"), "{text}");
    assert!(
        text.lines()
            .any(|l| l == "txcoord_sagas_stuck_by_reason{reason=\"no-progress\"} 0"),
        "{text}"
    );
    monitor.stop().await;
}
