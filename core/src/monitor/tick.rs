// SPDX-License-Identifier: MIT OR Apache-2.0
//! One pass of the monitor: the seed's four steps (long-running sagas, stuck sagas and their
//! recovery, deadlocks, metrics), each isolated from the others' failures.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use serde_json::json;

use super::Inner;
use crate::alert::{Alert, Severity};
use crate::error::Result;
use crate::registry;
use crate::saga::{SagaRecord, SagaStatus, SaveOptions};

/// What the monitor remembers between passes.
#[derive(Default)]
pub(super) struct State {
    /// Alerts sent and not resolved: (name, saga id) → the alert.
    active: HashMap<(String, String), Alert>,
    /// Where the stream of finished sagas was read up to.
    finished_cursor: Option<String>,
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Whether this monitor led (only the leader acts).
    pub leader: bool,
    pub long_running: usize,
    pub stuck: usize,
    pub retried: usize,
    pub compensated: usize,
    /// Cycles broken.
    pub deadlocks: usize,
    /// Steps that failed, with why.
    pub errors: Vec<String>,
}

fn ms_since(t: SystemTime) -> u64 {
    SystemTime::now()
        .duration_since(t)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn to_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub(super) async fn run(inner: &Inner) -> TickReport {
    let mut state = inner.tick.lock().await;
    let mut report = TickReport::default();
    if !inner.election.is_leader() {
        match inner.election.campaign(Duration::ZERO).await {
            Ok(true) => {}
            Ok(false) => {
                // a follower forgets what it alerted: the leader now owns those alerts
                state.active.clear();
                return report;
            }
            Err(e) => {
                report.errors.push(format!("election: {e}"));
                return report;
            }
        }
    }
    report.leader = true;
    let mut still_alerting: HashSet<(String, String)> = HashSet::new();
    if let Err(e) = long_running(inner, &mut state, &mut report, &mut still_alerting).await {
        report.errors.push(format!("long-running sagas: {e}"));
    }
    let stuck_counts = match stuck(inner, &mut state, &mut report, &mut still_alerting).await {
        Ok(c) => c,
        Err(e) => {
            report.errors.push(format!("stuck sagas: {e}"));
            Vec::new()
        }
    };
    if let Err(e) = deadlocks(inner, &mut report).await {
        report.errors.push(format!("deadlocks: {e}"));
    }
    if let Err(e) = metrics(inner, &mut state, &stuck_counts, report.stuck).await {
        report.errors.push(format!("metrics: {e}"));
    }
    resolve_cleared(inner, &mut state, &still_alerting).await;
    report
}

async fn send(inner: &Inner, alert: &Alert) {
    if let Err(e) = inner.alerts.send(alert).await {
        tracing::warn!(target: "txcoord", "txcoord: alert {:?} not sent: {e}", alert.summary);
    }
}

async fn long_running(
    inner: &Inner,
    state: &mut State,
    report: &mut TickReport,
    still: &mut HashSet<(String, String)>,
) -> Result<()> {
    // only sagas older than the shortest limit can be long-running: the repository reads
    // just those (from its index by creation time, when it has one)
    let before = SystemTime::now()
        .checked_sub(inner.options.shortest_limit())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    for saga in inner.repository.find_active_created_before(before).await? {
        let runtime = ms_since(saga.created_at);
        if Duration::from_millis(runtime) <= inner.options.limit(&saga.saga_type) {
            continue;
        }
        report.long_running += 1;
        let alert = Alert {
            severity: Severity::Warning,
            summary: format!("Long-running saga detected: {}", saga.saga_type),
            description: format!("Saga {} has been running for {runtime}ms", saga.id),
            metadata: json!({
                "sagaId": saga.id, "sagaType": saga.saga_type,
                "runtime": runtime, "status": saga.status.as_str(),
            }),
            name: "LongRunningSaga".into(),
            labels: vec![
                ("saga_type".into(), saga.saga_type.clone()),
                ("saga_id".into(), saga.id.clone()),
            ],
            resolved: false,
        };
        send(inner, &alert).await;
        let key = (alert.name.clone(), saga.id.clone());
        still.insert(key.clone());
        state.active.insert(key, alert);
    }
    Ok(())
}

/// Why a stuck saga is stuck, from its record and the lock registry.
async fn reasons(inner: &Inner, sagas: &[SagaRecord]) -> HashMap<String, (String, String)> {
    let mut out = HashMap::new();
    let client = inner.detector.client();
    let ids: Vec<&str> = sagas.iter().map(|s| s.id.as_str()).collect();
    let waits = registry::owners(client, &ids).await.unwrap_or_default();
    let locks: Vec<String> = waits.iter().flat_map(|o| o.waits.clone()).collect();
    let holders: HashMap<String, String> = registry::inspect_locks(client, &locks)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|l| {
            let owner = l.holder.and_then(|h| h.owner_id)?;
            Some((l.key, owner))
        })
        .collect();
    for s in sagas {
        let waiting = waits
            .iter()
            .find(|o| o.owner_id == s.id)
            .and_then(|o| o.waits.first());
        let reason = if let Some(lock) = waiting {
            let holder = holders
                .get(lock)
                .map(String::as_str)
                .unwrap_or("another holder");
            (
                "waiting-on-lock".to_string(),
                format!("{lock} held by {holder}"),
            )
        } else if s.status == SagaStatus::Compensating {
            ("compensation-failing".to_string(), String::new())
        } else if s.retry_count > 0 {
            (
                "retrying".to_string(),
                format!("{} retries so far", s.retry_count),
            )
        } else {
            (
                "no-progress".to_string(),
                format!("no update for {} ms", ms_since(s.updated_at)),
            )
        };
        out.insert(s.id.clone(), reason);
    }
    out
}

async fn stuck(
    inner: &Inner,
    state: &mut State,
    report: &mut TickReport,
    still: &mut HashSet<(String, String)>,
) -> Result<Vec<(String, u64)>> {
    let sagas = inner.repository.find_stuck_sagas().await?;
    let why = reasons(inner, &sagas).await;
    let mut counts: HashMap<String, u64> = HashMap::new();
    for saga in &sagas {
        report.stuck += 1;
        let (reason, detail) = why.get(&saga.id).cloned().unwrap_or_default();
        *counts.entry(reason.clone()).or_default() += 1;
        let alert = Alert {
            severity: Severity::Critical,
            summary: format!("Stuck saga detected: {}", saga.saga_type),
            description: format!(
                "Saga {} appears to be stuck in {} status ({reason}{}{detail})",
                saga.id,
                saga.status,
                if detail.is_empty() { "" } else { ": " }
            ),
            metadata: json!({
                "sagaId": saga.id, "sagaType": saga.saga_type, "status": saga.status.as_str(),
                "lastUpdated": to_ms(saga.updated_at), "stuckDuration": ms_since(saga.updated_at),
                "reason": reason, "detail": detail,
            }),
            name: "StuckSaga".into(),
            labels: vec![
                ("saga_type".into(), saga.saga_type.clone()),
                ("saga_id".into(), saga.id.clone()),
                ("reason".into(), reason.clone()),
            ],
            resolved: false,
        };
        send(inner, &alert).await;
        let key = (alert.name.clone(), saga.id.clone());
        still.insert(key.clone());
        state.active.insert(key, alert);
        match recover(inner, saga, &reason, &detail).await {
            Ok(Some(SagaStatus::Executing)) => report.retried += 1,
            Ok(Some(_)) => report.compensated += 1,
            Ok(None) => {}
            Err(e) => {
                let alert = Alert {
                    severity: Severity::Critical,
                    summary: "Saga recovery failed".into(),
                    description: format!("Failed to recover stuck saga {}", saga.id),
                    metadata: json!({ "sagaId": saga.id, "error": e.to_string() }),
                    name: "SagaRecoveryFailed".into(),
                    labels: vec![
                        ("saga_type".into(), saga.saga_type.clone()),
                        ("saga_id".into(), saga.id.clone()),
                    ],
                    resolved: false,
                };
                send(inner, &alert).await;
            }
        }
    }
    let mut counts: Vec<(String, u64)> = counts.into_iter().collect();
    counts.sort();
    Ok(counts)
}

/// The seed's recovery: re-read the saga (skip it if it moved meanwhile), retry while its
/// retry count is below the limit (unset counts as 0), else compensate — as a conditional save
/// with its version and the leader's term; then the user's handler. The status written, or
/// `None` when nothing was (the saga moved, or a newer leader or the executor wrote it first).
async fn recover(
    inner: &Inner,
    saga: &SagaRecord,
    reason: &str,
    detail: &str,
) -> Result<Option<SagaStatus>> {
    let Some(current) = inner.repository.find_by_id(&saga.id).await? else {
        return Ok(None);
    };
    if current.status != saga.status || current.version != saga.version {
        return Ok(None);
    }
    let Some(term) = inner.election.term() else {
        return Ok(None);
    };
    let retry = current.retry_count < inner.options.max_retries;
    let next = SagaRecord {
        status: if retry {
            SagaStatus::Executing
        } else {
            SagaStatus::Compensating
        },
        retry_count: if retry {
            current.retry_count + 1
        } else {
            current.retry_count
        },
        updated_at: SystemTime::now(),
        stuck_reason: Some(reason.to_string()),
        stuck_detail: (!detail.is_empty()).then(|| detail.to_string()),
        ..current.clone()
    };
    let options = SaveOptions {
        expected_version: Some(current.version),
        term: Some(term),
        guard_finished: true,
    };
    match inner.repository.save_if(&next, &options).await? {
        Some(outcome) if !outcome.written() => return Ok(None),
        _ => {}
    }
    if let Some(h) = &inner.options.handlers {
        if retry {
            h.retry(&next).await?;
        } else {
            h.compensate(&next).await?;
        }
    }
    Ok(Some(next.status))
}

async fn deadlocks(inner: &Inner, report: &mut TickReport) -> Result<()> {
    let found = inner.detector.detect_deadlock().await?;
    if !found.has_deadlock {
        return Ok(());
    }
    let alert = Alert {
        severity: Severity::Critical,
        summary: "Deadlock detected in saga execution".into(),
        description: format!(
            "Detected {} deadlock cycles involving {} sagas",
            found.cycles.len(),
            found.affected_sagas.len()
        ),
        metadata: json!({
            "cycles": found.cycles, "affectedSagas": found.affected_sagas,
            "explanations": found.explained.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
        }),
        name: "SagaDeadlock".into(),
        labels: found
            .explained
            .first()
            .map(|c| vec![("cycle_id".to_string(), c.id.clone())])
            .unwrap_or_default(),
        resolved: false,
    };
    send(inner, &alert).await;
    let broken = inner.detector.resolve_deadlock(&found.cycles).await?;
    report.deadlocks += broken.len();
    Ok(())
}

async fn metrics(
    inner: &Inner,
    state: &mut State,
    stuck_counts: &[(String, u64)],
    stuck: usize,
) -> Result<()> {
    let stats = inner.repository.get_statistics().await?;
    let m = &inner.metrics;
    m.record_gauge("sagas_active_total", stats.active as f64);
    m.record_gauge("sagas_completed_total", stats.completed as f64);
    m.record_gauge("sagas_failed_total", stats.failed as f64);
    let finished = stats.completed + stats.failed;
    // with no finished saga nothing has failed: 1, not the seed's NaN
    let rate = if finished == 0 {
        1.0
    } else {
        stats.completed as f64 / finished as f64
    };
    m.record_gauge("saga_success_rate", rate);
    m.record_gauge("sagas_stuck_total", stuck as f64);
    m.record_stuck_by_reason(stuck_counts);
    // each finished saga's duration once, when the repository can list them; else the
    // seed's average
    match inner
        .repository
        .finished_since(state.finished_cursor.as_deref(), 10_000)
        .await?
    {
        Some(finished) => {
            for f in &finished {
                m.record_histogram("saga_duration_seconds", f.duration.as_secs_f64());
            }
            if let Some(last) = finished.last() {
                state.finished_cursor = Some(last.cursor.clone());
            }
        }
        None => m.record_histogram("saga_duration_seconds", stats.average_duration_ms / 1000.0),
    }
    Ok(())
}

/// Alerts whose condition cleared are resolved.
async fn resolve_cleared(inner: &Inner, state: &mut State, still: &HashSet<(String, String)>) {
    let cleared: Vec<(String, String)> = state
        .active
        .keys()
        .filter(|k| !still.contains(*k))
        .cloned()
        .collect();
    for key in cleared {
        if let Some(mut alert) = state.active.remove(&key) {
            alert.resolved = true;
            send(inner, &alert).await;
        }
    }
}
