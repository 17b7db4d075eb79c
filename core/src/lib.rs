// SPDX-License-Identifier: MIT OR Apache-2.0
//! # txcoord
//!
//! Saga transaction coordination over Redis: distributed locks with automatic renewal, fencing
//! tokens, lost-lock signals and fast handoff, speaking the wire protocol of `PROTOCOL.md` that
//! the Python and Node packages speak too.
//!
//! ```no_run
//! use std::time::Duration;
//! use txcoord::{Client, LockManager};
//!
//! # async fn run() -> txcoord::Result<()> {
//! let client = Client::open("redis://127.0.0.1:6380")?;
//! let manager = LockManager::new(&client);
//! if let Some(lock) = manager
//!     .acquire_lock("order:42", Duration::from_secs(30), Duration::from_secs(10))
//!     .await?
//! {
//!     println!("fencing token {:?}", lock.fencing_token());
//!     manager.release_lock("order:42").await?;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The core never creates an async runtime; it must be used from within a tokio runtime.

#![forbid(unsafe_code)]

mod alert;
pub mod binding;
mod client;
mod deadlock;
mod election;
mod error;
mod lock;
mod metrics;
mod monitor;
pub mod protocol;
pub mod registry;
mod saga;
mod scheduler;

pub use alert::{
    Alert, AlertSink, AlertmanagerOptions, AlertmanagerSink, LogAlertSink, Severity,
    DEFAULT_ALERTMANAGER_TIMEOUT,
};
pub use client::{Client, ClientOptions, ClientStats};
pub use deadlock::{
    CycleEdge, DeadlockCycle, DeadlockMetrics, DeadlockResult, DetectorOptions, GraphEdge, Logger,
    SagaDeadlockDetector, SagaNode, TracingLogger, WaitForGraph, ABORT_ERROR,
};
pub use election::{ElectionOptions, Leader, LeaderElection, DEFAULT_LEADER_TTL};
pub use error::{Error, ErrorKind, LossReason, Result};
pub use lock::{
    hash_tag, slot, AcquireOptions, DistributedLock, LockKeys, LockManager, LockOptions,
    LockStatus, LossWatch, ManagerOptions, DEFAULT_DEADLOCK_TIMEOUT, DEFAULT_FALLBACK_POLL,
    DEFAULT_TIMEOUT, DEFAULT_TTL, DEFAULT_WAITER_LEASE,
};
pub use metrics::{
    serve_metrics, MetricNames, MetricsOptions, MetricsServer, SeedMetric, SeedMetricKind,
    SeedMetricSpec, SeedRegistry, TransactionMetricsCollector, SEED_METRICS,
};
pub use monitor::{
    MonitorMetrics, MonitorOptions, RecoveryHandlers, SagaMonitor, TickReport, DEFAULT_INTERVAL,
};
pub use protocol::PROTOCOL_VERSION;
pub use saga::{
    BoxFuture, FinishedSaga, RedisSagaRepository, SagaRecord, SagaRepository, SagaStatistics,
    SagaStatus, SaveOptions, SaveOutcome, DEFAULT_FINISHED_RETENTION,
};
