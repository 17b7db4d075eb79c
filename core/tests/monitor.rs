// SPDX-License-Identifier: MIT OR Apache-2.0
//! The saga monitor: the seed's behaviours (long-running alerts with per-type limits, stuck
//! sagas retried then compensated, deadlocks, metrics) and what the seed left broken (an unset
//! retry count, NaN success rate, overlapping or all-or-nothing passes, every instance acting,
//! blind overwrites).

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::*;
use txcoord::{
    Alert, AlertSink, BoxFuture, DetectorOptions, MonitorMetrics, MonitorOptions, RecoveryHandlers,
    RedisSagaRepository, SagaDeadlockDetector, SagaMonitor, SagaRecord, SagaRepository, SagaStatus,
    TracingLogger,
};
use txcoord_testkit::RedisServer;

#[derive(Default)]
struct Alerts(Mutex<Vec<Alert>>);
impl AlertSink for Alerts {
    fn send(&self, alert: &Alert) -> BoxFuture<'_, txcoord::Result<()>> {
        self.0.lock().unwrap().push(alert.clone());
        Box::pin(async { Ok(()) })
    }
}
impl Alerts {
    fn named(&self, name: &str) -> Vec<Alert> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.name == name)
            .cloned()
            .collect()
    }
}

#[derive(Default)]
struct Metrics(Mutex<Vec<(String, f64)>>);
impl MonitorMetrics for Metrics {
    fn record_gauge(&self, name: &str, value: f64) {
        self.0.lock().unwrap().push((name.into(), value));
    }
    fn record_histogram(&self, name: &str, value: f64) {
        self.0
            .lock()
            .unwrap()
            .push((format!("{name}/histogram"), value));
    }
}
impl Metrics {
    fn last(&self, name: &str) -> Option<f64> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }
}

#[derive(Default)]
struct Handlers(Mutex<Vec<(String, String)>>);
impl RecoveryHandlers for Handlers {
    fn retry<'a>(&'a self, saga: &'a SagaRecord) -> BoxFuture<'a, txcoord::Result<()>> {
        self.0
            .lock()
            .unwrap()
            .push(("retry".into(), saga.id.clone()));
        Box::pin(async { Ok(()) })
    }
    fn compensate<'a>(&'a self, saga: &'a SagaRecord) -> BoxFuture<'a, txcoord::Result<()>> {
        self.0
            .lock()
            .unwrap()
            .push(("compensate".into(), saga.id.clone()));
        Box::pin(async { Ok(()) })
    }
}

struct Setup {
    repo: Arc<RedisSagaRepository>,
    alerts: Arc<Alerts>,
    metrics: Arc<Metrics>,
    handlers: Arc<Handlers>,
    detector: SagaDeadlockDetector,
}

fn setup(c: &txcoord::Client) -> Setup {
    let repo =
        Arc::new(RedisSagaRepository::new(c).set_default_stuck_after(Duration::from_secs(60)));
    let detector = SagaDeadlockDetector::new(
        repo.clone(),
        Arc::new(TracingLogger),
        DetectorOptions::new(),
    )
    .unwrap();
    Setup {
        repo,
        alerts: Arc::default(),
        metrics: Arc::default(),
        handlers: Arc::default(),
        detector,
    }
}

fn monitor(s: &Setup, options: MonitorOptions) -> SagaMonitor {
    SagaMonitor::new(
        s.repo.clone(),
        s.metrics.clone(),
        s.alerts.clone(),
        s.detector.clone(),
        options.set_handlers(s.handlers.clone()).set_start(false),
    )
    .unwrap()
}

async fn saga(
    repo: &RedisSagaRepository,
    id: &str,
    t: &str,
    age_s: u64,
    idle_s: u64,
    retries: u32,
) {
    let mut s = SagaRecord::new(id, t);
    s.created_at = SystemTime::now() - Duration::from_secs(age_s);
    s.updated_at = SystemTime::now() - Duration::from_secs(idle_s);
    s.retry_count = retries;
    repo.save(&s).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_running_sagas_per_type_limit_are_alerted_then_resolved() {
    let server = RedisServer::start();
    let c = client(&server);
    let s = setup(&c);
    // the seed's limits: UserRegistrationSaga 2 min, CreateOrderSaga 5 min; ours: Quick 10 s
    saga(&s.repo, "u1", "UserRegistrationSaga", 180, 1, 0).await;
    saga(&s.repo, "o1", "CreateOrderSaga", 180, 1, 0).await;
    saga(&s.repo, "q1", "QuickSaga", 30, 1, 0).await;
    let m = monitor(
        &s,
        MonitorOptions::new().set_limit("QuickSaga", Duration::from_secs(10)),
    );
    let r = m.tick().await;
    assert!(r.leader && r.errors.is_empty(), "{r:?}");
    let mut ids: Vec<String> = s
        .alerts
        .named("LongRunningSaga")
        .iter()
        .map(|a| a.metadata["sagaId"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, vec!["q1", "u1"], "CreateOrderSaga's 5 min not reached");
    let a = &s.alerts.named("LongRunningSaga")[0];
    assert_eq!(a.severity, txcoord::Severity::Warning);
    assert!(a.summary.starts_with("Long-running saga detected: "));
    // u1 completes: its alert is resolved at the next pass
    let done = SagaRecord {
        status: SagaStatus::Completed,
        ..s.repo.find_by_id("u1").await.unwrap().unwrap()
    };
    s.repo.save(&done).await.unwrap();
    m.tick().await;
    let resolved: Vec<Alert> = s
        .alerts
        .named("LongRunningSaga")
        .into_iter()
        .filter(|a| a.resolved)
        .collect();
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0].metadata["sagaId"], "u1");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_sagas_are_retried_below_the_limit_then_compensated() {
    let server = RedisServer::start();
    let c = client(&server);
    let s = setup(&c);
    saga(&s.repo, "never-retried", "PaymentSaga", 600, 300, 0).await;
    saga(&s.repo, "retried-twice", "PaymentSaga", 600, 300, 2).await;
    saga(&s.repo, "retried-thrice", "PaymentSaga", 600, 300, 3).await;
    let m = monitor(&s, MonitorOptions::new());
    let r = m.tick().await;
    assert_eq!((r.stuck, r.retried, r.compensated), (3, 2, 1), "{r:?}");
    let get = |id: &'static str| {
        let repo = s.repo.clone();
        async move { repo.find_by_id(id).await.unwrap().unwrap() }
    };
    let a = get("never-retried").await;
    assert_eq!(
        (a.status, a.retry_count),
        (SagaStatus::Executing, 1),
        "unset counts as 0"
    );
    assert_eq!(a.term, m.term().unwrap(), "written under the leader's term");
    assert_eq!(a.stuck_reason.as_deref(), Some("no-progress"));
    let b = get("retried-twice").await;
    assert_eq!((b.status, b.retry_count), (SagaStatus::Executing, 3));
    let c3 = get("retried-thrice").await;
    assert_eq!(c3.status, SagaStatus::Compensating);
    let mut calls = s.handlers.0.lock().unwrap().clone();
    calls.sort();
    assert_eq!(
        calls,
        vec![
            ("compensate".to_string(), "retried-thrice".to_string()),
            ("retry".to_string(), "never-retried".to_string()),
            ("retry".to_string(), "retried-twice".to_string()),
        ]
    );
    let stuck = s.alerts.named("StuckSaga");
    assert_eq!(stuck.len(), 3);
    assert!(stuck
        .iter()
        .all(|a| a.labels.iter().any(|(k, _)| k == "reason")));
    // their updates make them no longer stuck: nothing is retried twice for one episode
    let r = m.tick().await;
    assert_eq!((r.stuck, r.retried, r.compensated), (0, 0, 0), "{r:?}");
    m.stop().await;
}

/// A repository through which an executor completes a saga just after the monitor listed it
/// as stuck.
struct Racing {
    inner: Arc<RedisSagaRepository>,
}
impl SagaRepository for Racing {
    fn find_by_id<'a>(&'a self, id: &'a str) -> BoxFuture<'a, txcoord::Result<Option<SagaRecord>>> {
        self.inner.find_by_id(id)
    }
    fn save<'a>(&'a self, saga: &'a SagaRecord) -> BoxFuture<'a, txcoord::Result<()>> {
        self.inner.save(saga)
    }
    fn save_if<'a>(
        &'a self,
        saga: &'a SagaRecord,
        o: &'a txcoord::SaveOptions,
    ) -> BoxFuture<'a, txcoord::Result<Option<txcoord::SaveOutcome>>> {
        self.inner.save_if(saga, o)
    }
    fn find_active_sagas(&self) -> BoxFuture<'_, txcoord::Result<Vec<SagaRecord>>> {
        // the long-running step fails: the others must run anyway
        Box::pin(async { Err(txcoord::Error::Internal("find_active_sagas is down".into())) })
    }
    fn find_stuck_sagas(&self) -> BoxFuture<'_, txcoord::Result<Vec<SagaRecord>>> {
        Box::pin(async move {
            let stuck = self.inner.find_stuck_sagas().await?;
            for s in &stuck {
                let done = SagaRecord {
                    status: SagaStatus::Completed,
                    ..s.clone()
                };
                self.inner.save(&done).await?;
            }
            Ok(stuck)
        })
    }
    fn get_statistics(&self) -> BoxFuture<'_, txcoord::Result<txcoord::SagaStatistics>> {
        self.inner.get_statistics()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_completed_while_the_monitor_decides_is_never_compensated() {
    let server = RedisServer::start();
    let c = client(&server);
    let s = setup(&c);
    saga(&s.repo, "racing", "PaymentSaga", 600, 300, 3).await;
    let m = SagaMonitor::new(
        Arc::new(Racing {
            inner: s.repo.clone(),
        }),
        s.metrics.clone(),
        s.alerts.clone(),
        s.detector.clone(),
        MonitorOptions::new().set_start(false),
    )
    .unwrap();
    let r = m.tick().await;
    assert_eq!(r.compensated, 0, "{r:?}");
    assert_eq!(
        s.repo.find_by_id("racing").await.unwrap().unwrap().status,
        SagaStatus::Completed
    );
    assert_eq!(r.errors.len(), 1, "only the failing step failed: {r:?}");
    assert_eq!(s.alerts.named("StuckSaga").len(), 1, "the stuck step ran");
    assert!(
        s.metrics.last("sagas_completed_total").is_some(),
        "metrics ran"
    );
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_the_seed_and_the_success_rate_is_never_nan() {
    let server = RedisServer::start();
    let c = client(&server);
    let s = setup(&c);
    saga(&s.repo, "a", "T", 1, 1, 0).await;
    let m = monitor(&s, MonitorOptions::new());
    m.tick().await;
    assert_eq!(s.metrics.last("sagas_active_total"), Some(1.0));
    assert_eq!(
        s.metrics.last("saga_success_rate"),
        Some(1.0),
        "no finished saga: not NaN"
    );
    assert_eq!(s.metrics.last("sagas_stuck_total"), Some(0.0));
    for (id, st) in [
        ("c1", SagaStatus::Completed),
        ("c2", SagaStatus::Completed),
        ("f1", SagaStatus::Failed),
    ] {
        let mut r = SagaRecord::new(id, "T");
        r.created_at = SystemTime::now() - Duration::from_secs(4);
        r.updated_at = SystemTime::now();
        r.status = st;
        s.repo.save(&r).await.unwrap();
    }
    m.tick().await;
    let rate = s.metrics.last("saga_success_rate").unwrap();
    assert!((rate - 2.0 / 3.0).abs() < 1e-9, "{rate}");
    // each finished saga's duration observed once (about 4 s each), not the average
    let durations: Vec<f64> = s
        .metrics
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|(n, _)| n == "saga_duration_seconds/histogram")
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(durations.len(), 3, "{durations:?}");
    assert!(
        durations.iter().all(|d| (3.5..5.0).contains(d)),
        "{durations:?}"
    );
    m.tick().await;
    let again = s
        .metrics
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|(n, _)| n == "saga_duration_seconds/histogram")
        .count();
    assert_eq!(again, 3, "observed once each");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn among_two_monitors_one_acts_and_the_other_takes_over() {
    let server = RedisServer::start();
    let (c1, c2) = (client(&server), client(&server));
    let (s1, s2) = (setup(&c1), setup(&c2));
    saga(&s1.repo, "stuck-1", "PaymentSaga", 600, 300, 0).await;
    let opts = |id: &str| {
        MonitorOptions::new()
            .set_candidate_id(id)
            .set_leader_ttl(Duration::from_millis(1_500))
    };
    let m1 = monitor(&s1, opts("m1"));
    let m2 = monitor(&s2, opts("m2"));
    let r1 = m1.tick().await;
    let r2 = m2.tick().await;
    assert!(r1.leader && !r2.leader);
    assert_eq!(r1.retried, 1);
    assert_eq!(
        r2,
        txcoord::TickReport::default(),
        "the follower does nothing"
    );
    let t1 = m1.term().unwrap();
    // m1's process dies: its lease runs out, m2 takes over
    c1.close();
    let started = std::time::Instant::now();
    let mut took_over = false;
    while started.elapsed() < ms(8_000) {
        if m2.tick().await.leader {
            took_over = true;
            break;
        }
        tokio::time::sleep(ms(100)).await; // the next pass, as the monitor's interval would
    }
    assert!(took_over, "m2 never led");
    assert!(
        started.elapsed() < ms(1_500 + 500 + 3_000),
        "{:?}",
        started.elapsed()
    );
    assert!(m2.term().unwrap() > t1);
    // the saga m1 retried is not stuck any more: not retried a second time
    let saga = s2.repo.find_by_id("stuck-1").await.unwrap().unwrap();
    assert_eq!(saga.retry_count, 1);
    // a write under m1's old term is refused now that m2 wrote with a newer one
    saga_touch_by(&s2, &m2).await;
    let stale = s1
        .repo
        .save_if(
            &SagaRecord {
                status: SagaStatus::Compensating,
                ..s2.repo.find_by_id("stuck-1").await.unwrap().unwrap()
            },
            &txcoord::SaveOptions {
                expected_version: None,
                term: Some(t1),
                guard_finished: true,
            },
        )
        .await;
    // c1 is closed: the deposed leader cannot even reach Redis; use its term on c2's repo
    assert!(stale.is_err());
    let refused = s2
        .repo
        .save_if(
            &SagaRecord {
                status: SagaStatus::Compensating,
                ..s2.repo.find_by_id("stuck-1").await.unwrap().unwrap()
            },
            &txcoord::SaveOptions {
                expected_version: None,
                term: Some(t1),
                guard_finished: true,
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert!(!refused.written(), "a deposed leader's write is rejected");
    m2.stop().await;
}

/// The leader writes the saga once (as a recovery would), stamping its term.
async fn saga_touch_by(s: &Setup, m: &SagaMonitor) {
    let cur = s.repo.find_by_id("stuck-1").await.unwrap().unwrap();
    let out = s
        .repo
        .save_if(
            &cur,
            &txcoord::SaveOptions {
                expected_version: Some(cur.version),
                term: m.term(),
                guard_finished: true,
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert!(out.written());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_monitor_runs_passes_until_stopped() {
    let server = RedisServer::start();
    let c = client(&server);
    let s = setup(&c);
    saga(&s.repo, "a", "T", 1, 1, 0).await;
    let m = SagaMonitor::new(
        s.repo.clone(),
        s.metrics.clone(),
        s.alerts.clone(),
        s.detector.clone(),
        MonitorOptions::new().set_interval(ms(100)),
    )
    .unwrap();
    wait_until("three passes", ms(10_000), || {
        s.metrics
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|(n, _)| n == "sagas_active_total")
            .count()
            >= 3
    })
    .await;
    m.stop().await;
    let after_stop = s.metrics.0.lock().unwrap().len();
    assert!(!m.is_leader(), "stop resigns");
    tokio::time::sleep(ms(400)).await; // several intervals: no pass may run after stop
    assert_eq!(s.metrics.0.lock().unwrap().len(), after_stop);
}
