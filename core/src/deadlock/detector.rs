// SPDX-License-Identifier: MIT OR Apache-2.0
//! `SagaDeadlockDetector`: the seed's detector, on the lock registry.

use std::collections::HashSet;
use std::sync::Arc;

use super::cycle::DeadlockCycle;
use super::graph::WaitForGraph;
use super::read;
use super::resolve::break_cycles;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::saga::{SagaRecord, SagaRepository, SagaStatus, SaveOptions};

/// The error the seed's detector writes into a victim's saga record.
pub const ABORT_ERROR: &str = "Aborted due to deadlock resolution";

/// Where the detector reports (the seed's `logger`: anything with `warn` and `info`).
pub trait Logger: Send + Sync {
    /// `message` with structured `fields`.
    fn warn(&self, message: &str, fields: &serde_json::Value);
    fn info(&self, message: &str, fields: &serde_json::Value);
}

/// A [`Logger`] that writes to `tracing` (target `txcoord`).
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingLogger;

impl Logger for TracingLogger {
    fn warn(&self, message: &str, fields: &serde_json::Value) {
        tracing::warn!(target: "txcoord", "{message} {fields}");
    }
    fn info(&self, message: &str, fields: &serde_json::Value) {
        tracing::info!(target: "txcoord", "{message} {fields}");
    }
}

/// Where broken deadlocks are counted: `deadlocks_detected_total{resolution_method}`.
pub trait DeadlockMetrics: Send + Sync {
    fn record_deadlock(&self, resolution_method: &str);
}

/// Settings of a [`SagaDeadlockDetector`].
#[derive(Clone, Default)]
pub struct DetectorOptions {
    redis: Option<Client>,
    metrics: Option<Arc<dyn DeadlockMetrics>>,
}

impl DetectorOptions {
    pub fn new() -> Self {
        Self::default()
    }
    /// The Redis that holds the lock registry (default: the repository's own, when it is a
    /// `RedisSagaRepository`; required otherwise).
    pub fn set_redis(mut self, client: &Client) -> Self {
        self.redis = Some(client.clone());
        self
    }
    /// Where broken deadlocks are counted, once per cycle.
    pub fn set_metrics(mut self, metrics: Arc<dyn DeadlockMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }
}

/// The seed's `detectDeadlock()` result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadlockResult {
    pub has_deadlock: bool,
    /// One cycle per deadlocked group of sagas, in the seed's shape (`["B", "C", "B"]`).
    pub cycles: Vec<Vec<String>>,
    /// Every saga in a deadlock (all members of every cyclic component).
    pub affected_sagas: Vec<String>,
    /// The same cycles, explained.
    pub explained: Vec<DeadlockCycle>,
}

/// The seed's `SagaDeadlockDetector(sagaRepository, logger)`, on the lock registry of
/// PROTOCOL.md.
///
/// ## Behavior
///
/// - `detect_deadlock` reads the whole wait-for graph in three round trips whatever its size
///   and finds every deadlocked saga (Tarjan's strongly connected components) with one
///   concrete, explained cycle per deadlocked group; it changes nothing.
/// - `resolve_deadlock` reads the registry again, re-checks each cycle, aborts one victim per
///   cycle (lowest priority, then youngest, then smallest id: the same choice every process
///   makes), repeats until no cycle is left, and marks each victim's saga `FAILED` with the
///   seed's error through the repository — a conditional save that never turns a finished saga
///   into `FAILED`.
/// - Waiting acquisitions break deadlocks through their own sagas by themselves (see
///   `ManagerOptions::set_deadlock_timeout`); the detector's sweep catches the rest.
#[derive(Clone)]
pub struct SagaDeadlockDetector {
    client: Client,
    repository: Arc<dyn SagaRepository>,
    logger: Arc<dyn Logger>,
    metrics: Option<Arc<dyn DeadlockMetrics>>,
}

impl std::fmt::Debug for SagaDeadlockDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SagaDeadlockDetector")
            .field("client", &self.client)
            .finish()
    }
}

impl SagaDeadlockDetector {
    /// The seed's constructor. `options.redis` names the Redis of the lock registry; without
    /// it the repository's own is used, and a repository that has none is refused.
    pub fn new(
        repository: Arc<dyn SagaRepository>,
        logger: Arc<dyn Logger>,
        options: DetectorOptions,
    ) -> Result<SagaDeadlockDetector> {
        let client =
            match options.redis.or_else(|| repository.redis_client()) {
                Some(c) => c,
                None => return Err(Error::invalid_argument(
                    "redis",
                    "is required: the saga repository is not txcoord's RedisSagaRepository, so \
                     the detector cannot tell which Redis holds the lock registry (give the \
                     detector the redis option)",
                )),
            };
        Ok(SagaDeadlockDetector {
            client,
            repository,
            logger,
            metrics: options.metrics,
        })
    }

    /// The client of the lock registry.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The wait-for graph itself (nodes, edges with their locks, tokens and wait ages).
    pub async fn wait_for_graph(&self) -> Result<WaitForGraph> {
        let mut graph = read::whole_graph(&self.client).await?;
        graph.complete_nodes();
        Ok(graph)
    }

    /// The seed's `detectDeadlock()`.
    pub async fn detect_deadlock(&self) -> Result<DeadlockResult> {
        let graph = self.wait_for_graph().await?;
        let ix = graph.indexed();
        let none = vec![false; graph.edges.len()];
        let components = ix.cyclic_components(&none);
        let mut result = DeadlockResult::default();
        let mut affected = Vec::new();
        for component in &components {
            affected.extend(component.iter().map(|&n| graph.nodes[n].id.clone()));
            if let Some(found) = ix.cycle_in(component, &none) {
                let cycle = DeadlockCycle::from_found(&graph, &found);
                self.logger.warn(
                    "Deadlock detected",
                    &serde_json::json!({ "cycle": cycle.sagas, "explanation": cycle.to_string(), "cycleId": cycle.id }),
                );
                result.cycles.push(cycle.sagas.clone());
                result.explained.push(cycle);
            }
        }
        affected.sort();
        affected.dedup();
        result.has_deadlock = !result.cycles.is_empty();
        result.affected_sagas = affected;
        Ok(result)
    }

    /// The seed's `resolveDeadlock(cycles)`: breaks the deadlocks among the sagas of `cycles`
    /// as they stand now. Returns the cycles broken, each with its victim.
    pub async fn resolve_deadlock(&self, cycles: &[Vec<String>]) -> Result<Vec<DeadlockCycle>> {
        let sagas: HashSet<String> = cycles.iter().flatten().cloned().collect();
        if sagas.is_empty() {
            return Ok(Vec::new());
        }
        let graph = read::whole_graph(&self.client).await?;
        let broken = break_cycles(&self.client, graph, Some(&sagas)).await?;
        let mut out = Vec::new();
        for b in broken {
            let victim = b.cycle.victim.clone().unwrap_or_default();
            if b.aborted_here {
                if let Some(m) = &self.metrics {
                    m.record_deadlock("abort_saga");
                }
                self.logger.info(
                    "Saga aborted to resolve deadlock",
                    &serde_json::json!({ "abortedSaga": victim, "cycle": b.cycle.sagas, "cycleId": b.cycle.id }),
                );
            }
            if let Err(e) = self.mark_failed(&victim).await {
                self.logger.warn(
                    "Could not mark the deadlock victim's saga FAILED",
                    &serde_json::json!({ "sagaId": victim, "error": e.to_string() }),
                );
            }
            out.push(b.cycle);
        }
        Ok(out)
    }

    /// Marks a victim's saga `FAILED` with the seed's error, unless it finished meanwhile. A
    /// save refused because the record changed meanwhile is tried again on the new record (a
    /// few times).
    async fn mark_failed(&self, id: &str) -> Result<()> {
        for _ in 0..3 {
            let Some(saga) = self.repository.find_by_id(id).await? else {
                return Ok(());
            };
            if saga.status.is_finished() {
                return Ok(());
            }
            let failed = SagaRecord {
                status: SagaStatus::Failed,
                error: Some(ABORT_ERROR.to_string()),
                updated_at: std::time::SystemTime::now(),
                ..saga.clone()
            };
            let options = SaveOptions {
                expected_version: Some(saga.version),
                term: None,
                guard_finished: true,
            };
            match self.repository.save_if(&failed, &options).await? {
                Some(outcome) if outcome.written() => return Ok(()),
                Some(_) => continue,
                // the repository has no conditional form: it saved as the seed's save does
                None => return Ok(()),
            }
        }
        Ok(())
    }
}
