// SPDX-License-Identifier: MIT OR Apache-2.0
//! `SagaMonitor`: the seed's monitor — long-running and stuck sagas alerted and recovered,
//! deadlocks detected and broken, metrics recorded — under leader election, with every change
//! it makes to a saga a conditional save carrying its leader term and the saga's version.
//!
//! - `options.rs`: its settings, and the interfaces it calls (metrics, recovery handlers);
//! - `tick.rs`: one pass, its steps isolated from each other.

mod options;
mod tick;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::alert::AlertSink;
use crate::deadlock::SagaDeadlockDetector;
use crate::election::{ElectionOptions, LeaderElection};
use crate::error::Result;
use crate::saga::SagaRepository;

pub use options::{MonitorMetrics, MonitorOptions, RecoveryHandlers, DEFAULT_INTERVAL};
pub use tick::TickReport;

pub(crate) struct Inner {
    repository: Arc<dyn SagaRepository>,
    metrics: Arc<dyn MonitorMetrics>,
    alerts: Arc<dyn AlertSink>,
    detector: SagaDeadlockDetector,
    election: LeaderElection,
    options: MonitorOptions,
    // A tokio mutex: one pass at a time, held across its awaits (ticks never overlap).
    tick: tokio::sync::Mutex<tick::State>,
    stop: watch::Sender<bool>,
    // A std mutex: the loop's handle, taken once by `stop`.
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The seed's `SagaMonitor(sagaRepository, metricsCollector, alertManager, deadlockDetector)`.
///
/// ## Behavior
///
/// - It starts on construction (unless told not to) and runs a pass every 30 s (configurable);
///   passes never overlap, and a failing step does not skip the others.
/// - Among all monitors of one election name, exactly one acts: the leader. Another takes over
///   within the leader's lease (plus a renewal interval) when it dies.
/// - Every change it makes to a saga is a conditional save with the saga's version and the
///   leader's term, never turning a finished saga into anything else: a deposed leader or a
///   racing executor cannot be overwritten.
/// - Recovery follows the seed: retry (retry count + 1, `EXECUTING`) while the retry count is
///   below 3 (an unset count being 0), then compensate (`COMPENSATING`); the user's handlers,
///   when given, are called so that the saga really moves.
#[derive(Clone)]
pub struct SagaMonitor {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SagaMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SagaMonitor")
            .field("candidate", &self.inner.election.candidate_id())
            .field("leader", &self.is_leader())
            .finish()
    }
}

impl SagaMonitor {
    /// The seed's constructor; starts the monitor (inside a tokio runtime) unless
    /// `options.set_start(false)`.
    pub fn new(
        repository: Arc<dyn SagaRepository>,
        metrics: Arc<dyn MonitorMetrics>,
        alerts: Arc<dyn AlertSink>,
        detector: SagaDeadlockDetector,
        options: MonitorOptions,
    ) -> Result<SagaMonitor> {
        options.validate()?;
        let client = options
            .redis
            .clone()
            .unwrap_or_else(|| detector.client().clone());
        let mut election_options = ElectionOptions::new().set_ttl(options.leader_ttl);
        if let Some(id) = &options.candidate_id {
            election_options = election_options.set_candidate_id(id.clone());
        }
        let election = LeaderElection::new(&client, &options.election_name, election_options)?;
        let start = options.start;
        let monitor = SagaMonitor {
            inner: Arc::new(Inner {
                repository,
                metrics,
                alerts,
                detector,
                election,
                options,
                tick: tokio::sync::Mutex::new(tick::State::default()),
                stop: watch::channel(false).0,
                task: Mutex::new(None),
            }),
        };
        if start {
            monitor.start();
        }
        Ok(monitor)
    }

    fn start(&self) {
        let weak = Arc::downgrade(&self.inner);
        let mut stop = self.inner.stop.subscribe();
        let interval = self.inner.options.interval;
        let handle = tokio::spawn(async move {
            loop {
                let Some(inner) = weak.upgrade() else { return };
                let monitor = SagaMonitor { inner };
                let report = monitor.tick().await;
                if !report.errors.is_empty() {
                    tracing::warn!(target: "txcoord", "txcoord: monitor pass: {:?}", report.errors);
                }
                drop(monitor);
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        });
        *self.inner.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
    }

    /// Whether this monitor leads (and so acts).
    pub fn is_leader(&self) -> bool {
        self.inner.election.is_leader()
    }

    /// This monitor's leader term, while it leads.
    pub fn term(&self) -> Option<u64> {
        self.inner.election.term()
    }

    /// This monitor's candidate id in the election.
    pub fn candidate_id(&self) -> &str {
        self.inner.election.candidate_id()
    }

    /// Runs one pass now (waiting for a pass in progress to end first): campaigns if it does
    /// not lead, then, if it leads, runs every step. Each step's failure is reported, not
    /// raised.
    pub async fn tick(&self) -> TickReport {
        tick::run(&self.inner).await
    }

    /// Stops the monitor: no pass starts after this returns, the one in progress has ended,
    /// and the leadership is given up.
    pub async fn stop(&self) {
        self.inner.stop.send_replace(true);
        let handle = self
            .inner
            .task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(handle) = handle {
            let _ = handle.await;
        }
        // wait for a pass started by `tick()` to end
        drop(self.inner.tick.lock().await);
        if let Err(e) = self.inner.election.resign().await {
            tracing::debug!(target: "txcoord", "txcoord: monitor resign: {e}");
        }
    }

    /// Whether its passes run on their own: started on construction and not stopped since.
    pub fn is_running(&self) -> bool {
        self.inner
            .task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// The interval between passes.
    pub fn interval(&self) -> Duration {
        self.inner.options.interval
    }
}
