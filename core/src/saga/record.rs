// SPDX-License-Identifier: MIT OR Apache-2.0
//! The saga record of PROTOCOL.md section 8.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

/// Where a saga stands. The seed's statuses (`EXECUTING`, `COMPENSATING`, `FAILED`, and
/// `COMPLETED`), plus `PENDING` (created, not started) and `COMPENSATED` (rolled back).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SagaStatus {
    Pending,
    Executing,
    Compensating,
    Completed,
    Compensated,
    Failed,
}

impl SagaStatus {
    /// Every status, in a stable order.
    pub const ALL: [SagaStatus; 6] = [
        SagaStatus::Pending,
        SagaStatus::Executing,
        SagaStatus::Compensating,
        SagaStatus::Completed,
        SagaStatus::Compensated,
        SagaStatus::Failed,
    ];

    /// The string stored in Redis and used by every binding: `PENDING`, `EXECUTING`, ...
    pub const fn as_str(self) -> &'static str {
        match self {
            SagaStatus::Pending => "PENDING",
            SagaStatus::Executing => "EXECUTING",
            SagaStatus::Compensating => "COMPENSATING",
            SagaStatus::Completed => "COMPLETED",
            SagaStatus::Compensated => "COMPENSATED",
            SagaStatus::Failed => "FAILED",
        }
    }

    /// `PENDING`, `EXECUTING` and `COMPENSATING`: the saga has not finished.
    pub const fn is_active(self) -> bool {
        matches!(
            self,
            SagaStatus::Pending | SagaStatus::Executing | SagaStatus::Compensating
        )
    }

    /// `COMPLETED`, `COMPENSATED` and `FAILED`.
    pub const fn is_finished(self) -> bool {
        !self.is_active()
    }
}

impl fmt::Display for SagaStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SagaStatus {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        SagaStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                Error::invalid_argument(
                    "status",
                    format!(
                        "must be one of PENDING, EXECUTING, COMPENSATING, COMPLETED, \
                         COMPENSATED, FAILED, got {s:?}"
                    ),
                )
            })
    }
}

/// One saga. `id` is also the saga's lock owner id (PROTOCOL.md, section 2).
#[derive(Debug, Clone, PartialEq)]
pub struct SagaRecord {
    pub id: String,
    /// The saga type (`CreateOrderSaga`, ...): the seed's `type`.
    pub saga_type: String,
    pub status: SagaStatus,
    /// The deadlock victim is the lowest.
    pub priority: i32,
    pub created_at: SystemTime,
    pub updated_at: SystemTime,
    pub retry_count: u32,
    pub error: Option<String>,
    /// Why it is stuck (`no-progress`, `waiting-on-lock`, `retrying`, `compensation-failing`),
    /// if it is.
    pub stuck_reason: Option<String>,
    /// The detail of `stuck_reason` (e.g. `lock:order:42 held by saga-7`).
    pub stuck_detail: Option<String>,
    /// Incremented by every save: the compare-and-set of a conditional save.
    pub version: u64,
    /// The highest leader term that wrote the record (0: none).
    pub term: u64,
}

impl SagaRecord {
    /// A new saga of `saga_type` in `EXECUTING`, created now, never saved.
    pub fn new(id: impl Into<String>, saga_type: impl Into<String>) -> SagaRecord {
        let now = SystemTime::now();
        SagaRecord {
            id: id.into(),
            saga_type: saga_type.into(),
            status: SagaStatus::Executing,
            priority: 0,
            created_at: now,
            updated_at: now,
            retry_count: 0,
            error: None,
            stuck_reason: None,
            stuck_detail: None,
            version: 0,
            term: 0,
        }
    }
}

/// Milliseconds since the Unix epoch (0 before it).
pub(crate) fn to_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub(crate) fn from_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// The condition of a conditional save.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaveOptions {
    /// Write only if the stored record has this version (0: it does not exist yet).
    pub expected_version: Option<u64>,
    /// The writer's leader term: refused if a newer leader wrote the record.
    pub term: Option<u64>,
    /// Refuse to change the status of a finished saga (an automated change never turns a
    /// `COMPLETED` saga into `FAILED`).
    pub guard_finished: bool,
}

/// What a conditional save did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaveOutcome {
    /// Written; the record's version is now this.
    Written { version: u64 },
    /// Refused: the stored record's version, term and status.
    Conflict {
        version: u64,
        term: u64,
        status: Option<SagaStatus>,
    },
}

impl SaveOutcome {
    /// Whether the record was written.
    pub fn written(&self) -> bool {
        matches!(self, SaveOutcome::Written { .. })
    }
}

/// A saga that finished, as the repository lists them for metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedSaga {
    /// Where the listing is: pass it to get the sagas finished after this one.
    pub cursor: String,
    pub id: String,
    pub saga_type: String,
    pub status: SagaStatus,
    pub duration: Duration,
}

/// The seed's `getStatistics()`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SagaStatistics {
    pub active: u64,
    pub completed: u64,
    pub failed: u64,
    pub compensated: u64,
    /// Mean duration of the finished sagas, in ms (0 with none).
    pub average_duration_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_classify() {
        for s in SagaStatus::ALL {
            assert_eq!(s.as_str().parse::<SagaStatus>().unwrap(), s);
            assert_eq!(s.is_active(), !s.is_finished());
        }
        assert!(SagaStatus::Compensating.is_active());
        assert!(SagaStatus::Compensated.is_finished());
        let e = "DONE".parse::<SagaStatus>().unwrap_err();
        assert_eq!(e.argument(), Some("status"));
    }
}
