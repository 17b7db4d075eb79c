// SPDX-License-Identifier: MIT OR Apache-2.0
//! Alerts: the seed's `alertManager.send({ severity, summary, description, metadata })` — any
//! sink with `send` — and the built-in sinks: the log ([`LogAlertSink`]) and Prometheus
//! Alertmanager (`alertmanager.rs`).

mod alertmanager;

pub use alertmanager::{AlertmanagerOptions, AlertmanagerSink, DEFAULT_ALERTMANAGER_TIMEOUT};

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::saga::BoxFuture;

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    /// `info`, `warning`, `critical` (the seed's strings).
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One alert, in the seed's shape. `name` and `labels` are what identifies it (for sinks such
/// as Alertmanager that deduplicate by identity); `metadata` carries the changing values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub severity: Severity,
    pub summary: String,
    pub description: String,
    pub metadata: serde_json::Value,
    /// A stable name of the condition (`LongRunningSaga`, `StuckSaga`, ...).
    pub name: String,
    /// Stable facts that identify this alert among others of its name (saga type, saga id).
    pub labels: Vec<(String, String)>,
    /// The condition cleared: the alert is resolved (sinks that track alerts end it).
    pub resolved: bool,
}

/// Where alerts go: the seed's `AlertManager` interface.
pub trait AlertSink: Send + Sync {
    fn send(&self, alert: &Alert) -> BoxFuture<'_, Result<()>>;
}

/// An [`AlertSink`] that logs to `tracing` (target `txcoord`): warnings and criticals as
/// warnings, the rest as info.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogAlertSink;

impl AlertSink for LogAlertSink {
    fn send(&self, alert: &Alert) -> BoxFuture<'_, Result<()>> {
        let line = format!(
            "{}{} [{}]: {} {}",
            if alert.resolved { "resolved: " } else { "" },
            alert.summary,
            alert.severity.as_str(),
            alert.description,
            alert.metadata
        );
        let severity = alert.severity;
        Box::pin(async move {
            match severity {
                Severity::Info => tracing::info!(target: "txcoord", "{line}"),
                _ => tracing::warn!(target: "txcoord", "{line}"),
            }
            Ok(())
        })
    }
}
