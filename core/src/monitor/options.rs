// SPDX-License-Identifier: MIT OR Apache-2.0
//! The monitor's settings and the interfaces it calls.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::binding::validate;
use crate::client::Client;
use crate::election::DEFAULT_LEADER_TTL;
use crate::error::{Error, Result};
use crate::saga::{BoxFuture, SagaRecord};

/// The seed's interval between passes: 30 s.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);

/// What the monitor records: the seed's `MetricsCollector` (`recordGauge`, `recordHistogram`).
pub trait MonitorMetrics: Send + Sync {
    /// The seed's `recordGauge(name, value)`.
    fn record_gauge(&self, name: &str, value: f64);
    /// The seed's `recordHistogram(name, value)`.
    fn record_histogram(&self, name: &str, value: f64);
    /// Stuck sagas counted by reason (`no-progress`, `waiting-on-lock`, `retrying`,
    /// `compensation-failing`); collectors that label by reason record it.
    fn record_stuck_by_reason(&self, _counts: &[(String, u64)]) {}
}

/// What really moves a stuck saga: called after the monitor's conditional save of the new
/// status was written.
pub trait RecoveryHandlers: Send + Sync {
    /// Retry the saga's last step (its record says `EXECUTING`, retry count + 1).
    fn retry<'a>(&'a self, saga: &'a SagaRecord) -> BoxFuture<'a, Result<()>>;
    /// Compensate the saga (its record says `COMPENSATING`).
    fn compensate<'a>(&'a self, saga: &'a SagaRecord) -> BoxFuture<'a, Result<()>>;
}

/// Settings of a [`super::SagaMonitor`].
#[derive(Clone)]
pub struct MonitorOptions {
    pub(super) interval: Duration,
    pub(super) limits: HashMap<String, Duration>,
    pub(super) default_limit: Duration,
    pub(super) redis: Option<Client>,
    pub(super) election_name: String,
    pub(super) leader_ttl: Duration,
    pub(super) candidate_id: Option<String>,
    pub(super) max_retries: u32,
    pub(super) handlers: Option<Arc<dyn RecoveryHandlers>>,
    pub(super) start: bool,
}

impl std::fmt::Debug for MonitorOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut limits: Vec<_> = self.limits.iter().collect();
        limits.sort();
        f.debug_struct("MonitorOptions")
            .field("interval", &self.interval)
            .field("limits", &limits)
            .field("default_limit", &self.default_limit)
            .field("redis", &self.redis.is_some())
            .field("election_name", &self.election_name)
            .field("leader_ttl", &self.leader_ttl)
            .field("candidate_id", &self.candidate_id)
            .field("max_retries", &self.max_retries)
            .field("handlers", &self.handlers.is_some())
            .field("start", &self.start)
            .finish()
    }
}

impl Default for MonitorOptions {
    fn default() -> Self {
        MonitorOptions {
            interval: DEFAULT_INTERVAL,
            limits: crate::saga::seed_limits(),
            default_limit: Duration::from_secs(5 * 60),
            redis: None,
            election_name: "saga-monitor".to_string(),
            leader_ttl: DEFAULT_LEADER_TTL,
            candidate_id: None,
            max_retries: 3,
            handlers: None,
            start: true,
        }
    }
}

impl MonitorOptions {
    pub fn new() -> Self {
        Self::default()
    }
    /// The interval between passes (default 30 s).
    pub fn set_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }
    /// The longest a saga of `saga_type` should run before it is alerted as long-running
    /// (defaults: the seed's — CreateOrderSaga 5 min, ProcessRefundSaga 10 min,
    /// UserRegistrationSaga 2 min).
    pub fn set_limit(mut self, saga_type: impl Into<String>, limit: Duration) -> Self {
        self.limits.insert(saga_type.into(), limit);
        self
    }
    /// The limit of the other types (default 5 min).
    pub fn set_default_limit(mut self, limit: Duration) -> Self {
        self.default_limit = limit;
        self
    }
    /// The Redis of the leader election (default: the detector's).
    pub fn set_redis(mut self, client: &Client) -> Self {
        self.redis = Some(client.clone());
        self
    }
    /// The election's name: monitors with the same name elect one leader (default
    /// `saga-monitor`).
    pub fn set_election_name(mut self, name: impl Into<String>) -> Self {
        self.election_name = name.into();
        self
    }
    /// The leader's lease (default 10 s): a dead leader is replaced within it.
    pub fn set_leader_ttl(mut self, ttl: Duration) -> Self {
        self.leader_ttl = ttl;
        self
    }
    /// This monitor's id in the election.
    pub fn set_candidate_id(mut self, id: impl Into<String>) -> Self {
        self.candidate_id = Some(id.into());
        self
    }
    /// Retries before compensating (default 3, the seed's).
    pub fn set_max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }
    /// The user's handlers that retry or compensate a stuck saga.
    pub fn set_handlers(mut self, handlers: Arc<dyn RecoveryHandlers>) -> Self {
        self.handlers = Some(handlers);
        self
    }
    /// Whether the monitor starts its passes on construction (default true, as the seed's).
    pub fn set_start(mut self, start: bool) -> Self {
        self.start = start;
        self
    }

    pub(super) fn limit(&self, saga_type: &str) -> Duration {
        self.limits
            .get(saga_type)
            .copied()
            .unwrap_or(self.default_limit)
    }

    /// The smallest limit of any type: no saga younger than this is long-running.
    pub(super) fn shortest_limit(&self) -> Duration {
        self.limits
            .values()
            .copied()
            .fold(self.default_limit, Duration::min)
    }

    pub(super) fn validate(&self) -> Result<()> {
        validate::duration("interval", self.interval, 1, validate::MAX_MS)?;
        validate::duration("leader_ttl", self.leader_ttl, 1, validate::MAX_MS)?;
        validate::resource_str("election_name", &self.election_name)?;
        for (t, limit) in &self.limits {
            if t.is_empty() {
                return Err(Error::invalid_argument("limits", "a saga type is empty"));
            }
            validate::duration("limits", *limit, 1, u64::MAX)?;
        }
        Ok(())
    }
}
