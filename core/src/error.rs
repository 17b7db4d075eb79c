// SPDX-License-Identifier: MIT OR Apache-2.0
//! The one error type of txcoord, and the flat list of kinds both bindings map from.

use std::borrow::Cow;
use std::fmt;

/// Why a held lock stopped being held, other than by its own release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LossReason {
    /// The lock key holds another value: someone else owns the lock now.
    Taken,
    /// The lock key is gone: it expired (or was deleted) before the holder renewed it.
    Expired,
    /// Renewal met an error that retrying cannot fix (for example `NOPERM` or `NOREPLICAS`).
    RenewalFailed,
    /// The local lease deadline passed before a renewal succeeded, and Redis could not say
    /// more: retryable errors (connection loss, timeouts) lasted until the deadline, or the
    /// process was paused past it and Redis did not answer the check that follows. (When a
    /// paused holder wakes and Redis answers, the reason is `Taken` or `Expired` instead.)
    Deadline,
}

impl LossReason {
    /// The stable string used by every binding: `taken`, `expired`, `renewal-failed`, `deadline`.
    pub const fn as_str(self) -> &'static str {
        match self {
            LossReason::Taken => "taken",
            LossReason::Expired => "expired",
            LossReason::RenewalFailed => "renewal-failed",
            LossReason::Deadline => "deadline",
        }
    }
}

impl fmt::Display for LossReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The flat list of error kinds. Python exception classes and JS `code`s are mirrored from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A value out of range (empty resource, ttl ≤ 0, above a cap, ...).
    InvalidArgument,
    /// A value of the wrong type (a string where milliseconds were expected, ...).
    InvalidType,
    /// Redis could not be reached, or did not answer in time.
    Connection,
    /// A scoped acquisition could not get the lock within its timeout.
    Timeout,
    /// The lock was lost while held.
    LockLost,
    /// The waiting saga was chosen as a deadlock victim.
    DeadlockVictim,
    /// The client or manager was closed.
    Closed,
    /// Redis answered with an error that retrying will not fix (NOPERM, WRONGPASS, ...).
    Redis,
    /// Redis holds txcoord state of another protocol version, which this client refuses to
    /// touch rather than guess.
    Protocol,
    /// A bug in txcoord (a panic caught at a boundary, an unexpected reply shape).
    Internal,
}

impl ErrorKind {
    /// Every kind, in a stable order (used by the bindings' parity tests).
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::InvalidArgument,
        ErrorKind::InvalidType,
        ErrorKind::Connection,
        ErrorKind::Timeout,
        ErrorKind::LockLost,
        ErrorKind::DeadlockVictim,
        ErrorKind::Closed,
        ErrorKind::Redis,
        ErrorKind::Protocol,
        ErrorKind::Internal,
    ];

    /// A short snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::InvalidType => "invalid_type",
            ErrorKind::Connection => "connection",
            ErrorKind::Timeout => "timeout",
            ErrorKind::LockLost => "lock_lost",
            ErrorKind::DeadlockVictim => "deadlock_victim",
            ErrorKind::Closed => "closed",
            ErrorKind::Redis => "redis",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Internal => "internal",
        }
    }

    /// The stable code both bindings expose (`err.code` in JS).
    pub const fn code(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "TXCOORD_INVALID_ARGUMENT",
            ErrorKind::InvalidType => "TXCOORD_INVALID_TYPE",
            ErrorKind::Connection => "TXCOORD_CONNECTION",
            ErrorKind::Timeout => "TXCOORD_TIMEOUT",
            ErrorKind::LockLost => "TXCOORD_LOCK_LOST",
            ErrorKind::DeadlockVictim => "TXCOORD_DEADLOCK_VICTIM",
            ErrorKind::Closed => "TXCOORD_CLOSED",
            ErrorKind::Redis => "TXCOORD_REDIS",
            ErrorKind::Protocol => "TXCOORD_PROTOCOL",
            ErrorKind::Internal => "TXCOORD_INTERNAL",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error type of every fallible txcoord call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value out of range; `arg` names the argument as the caller spelled it.
    #[error("invalid argument `{arg}`: {message}")]
    InvalidArgument {
        arg: Cow<'static, str>,
        message: String,
    },
    /// A value of the wrong type; `arg` names the argument.
    #[error("invalid type for `{arg}`: {message}")]
    InvalidType {
        arg: Cow<'static, str>,
        message: String,
    },
    /// Redis could not be reached or did not answer in time.
    #[error("cannot reach Redis: {message}")]
    Connection {
        message: String,
        #[source]
        source: Option<redis::RedisError>,
    },
    /// A scoped acquisition timed out.
    #[error("could not acquire lock {key:?} within {waited_ms} ms")]
    Timeout { key: String, waited_ms: u64 },
    /// The lock was lost while held.
    #[error("lock {key:?} was lost ({reason})")]
    LockLost { key: String, reason: LossReason },
    /// The waiter was chosen as a deadlock victim; `cycle` explains the deadlock it broke.
    #[error(
        "owner {owner:?} was aborted as a deadlock victim while waiting for lock {key:?}{}",
        cycle.as_ref().map(|c| format!(" ({c})")).unwrap_or_default()
    )]
    DeadlockVictim {
        key: String,
        owner: String,
        cycle: Option<Box<crate::deadlock::DeadlockCycle>>,
    },
    /// The client or manager was closed.
    #[error("{what} is closed")]
    Closed { what: &'static str },
    /// Redis answered with an error that retrying will not fix.
    #[error("redis error: {0}")]
    Redis(#[source] redis::RedisError),
    /// The lock key holds state of another protocol version.
    #[error(
        "lock {key:?} holds state of txcoord protocol {version}; this client speaks protocol {}",
        crate::protocol::PROTOCOL_VERSION
    )]
    Protocol { key: String, version: i64 },
    /// A bug in txcoord.
    #[error("internal error: {0}")]
    Internal(String),
}

/// `Result` with txcoord's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The kind of this error; bindings map from it.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidArgument { .. } => ErrorKind::InvalidArgument,
            Error::InvalidType { .. } => ErrorKind::InvalidType,
            Error::Connection { .. } => ErrorKind::Connection,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::LockLost { .. } => ErrorKind::LockLost,
            Error::DeadlockVictim { .. } => ErrorKind::DeadlockVictim,
            Error::Closed { .. } => ErrorKind::Closed,
            Error::Redis(_) => ErrorKind::Redis,
            Error::Protocol { .. } => ErrorKind::Protocol,
            Error::Internal(_) => ErrorKind::Internal,
        }
    }

    /// Whether trying again later may succeed (connection loss, timeouts, failover).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Connection { .. })
    }

    /// An `InvalidArgument` error about `arg` (for bindings and user repositories too).
    pub fn invalid_argument(arg: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Error::InvalidArgument {
            arg: arg.into(),
            message: message.into(),
        }
    }

    /// An `InvalidType` error about `arg` (for bindings and user repositories too).
    pub fn invalid_type(arg: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Error::InvalidType {
            arg: arg.into(),
            message: message.into(),
        }
    }

    pub(crate) fn connection(message: impl Into<String>) -> Self {
        Error::Connection {
            message: message.into(),
            source: None,
        }
    }

    /// The lock key a `Timeout`, `LockLost` or `DeadlockVictim` error is about.
    pub fn key(&self) -> Option<&str> {
        match self {
            Error::Timeout { key, .. }
            | Error::LockLost { key, .. }
            | Error::DeadlockVictim { key, .. }
            | Error::Protocol { key, .. } => Some(key),
            _ => None,
        }
    }

    /// The argument an `InvalidArgument`/`InvalidType` error names.
    pub fn argument(&self) -> Option<&str> {
        match self {
            Error::InvalidArgument { arg, .. } | Error::InvalidType { arg, .. } => Some(arg),
            _ => None,
        }
    }
}

/// Whether a Redis error is worth retrying: the connection dropped, timed out, or the server is
/// briefly unable to serve (loading, failover, cluster reconfiguration).
pub(crate) fn redis_is_retryable(e: &redis::RedisError) -> bool {
    use redis::{ErrorKind as K, ServerErrorKind as S};
    if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() {
        return true;
    }
    // A server briefly unable to serve: a script or function running past
    // `busy-reply-threshold` (another client's), loading its dataset, a replica (failover),
    // a cluster reconfiguring. Also when one command of a pipeline met it.
    const WAIT_IT_OUT: [&str; 6] = [
        "BUSY",
        "LOADING",
        "READONLY",
        "MASTERDOWN",
        "TRYAGAIN",
        "CLUSTERDOWN",
    ];
    if let Some(errors) = e.clone().into_server_errors() {
        if errors
            .iter()
            .any(|(_, server)| WAIT_IT_OUT.contains(&server.code()))
        {
            return true;
        }
    }
    matches!(
        e.kind(),
        K::Server(S::BusyLoading)
            | K::Server(S::TryAgain)
            | K::Server(S::ClusterDown)
            | K::Server(S::MasterDown)
            | K::Server(S::ReadOnly)
            | K::Server(S::Moved)
            | K::Server(S::Ask)
            | K::ClusterConnectionNotFound
            | K::MasterNameNotFoundBySentinel
            | K::NoValidReplicasFoundBySentinel
            | K::Io
            | K::Parse
    )
}

impl From<redis::RedisError> for Error {
    fn from(e: redis::RedisError) -> Self {
        if redis_is_retryable(&e) {
            Error::Connection {
                message: e.to_string(),
                source: Some(e),
            }
        } else {
            Error::Redis(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_distinct() {
        let codes: std::collections::HashSet<_> = ErrorKind::ALL.iter().map(|k| k.code()).collect();
        assert_eq!(codes.len(), ErrorKind::ALL.len());
        for k in ErrorKind::ALL {
            assert!(k.code().starts_with("TXCOORD_"), "{k:?}");
            assert_eq!(k.code(), format!("TXCOORD_{}", k.as_str().to_uppercase()));
        }
    }

    #[test]
    fn kind_of_each_variant() {
        let cases: Vec<(Error, ErrorKind)> = vec![
            (
                Error::invalid_argument("ttl", "x"),
                ErrorKind::InvalidArgument,
            ),
            (Error::invalid_type("ttl", "x"), ErrorKind::InvalidType),
            (Error::connection("down"), ErrorKind::Connection),
            (
                Error::Timeout {
                    key: "k".into(),
                    waited_ms: 1,
                },
                ErrorKind::Timeout,
            ),
            (
                Error::LockLost {
                    key: "k".into(),
                    reason: LossReason::Taken,
                },
                ErrorKind::LockLost,
            ),
            (
                Error::DeadlockVictim {
                    key: "k".into(),
                    owner: "s".into(),
                    cycle: None,
                },
                ErrorKind::DeadlockVictim,
            ),
            (Error::Closed { what: "client" }, ErrorKind::Closed),
            (
                Error::Protocol {
                    key: "k".into(),
                    version: 3,
                },
                ErrorKind::Protocol,
            ),
            (Error::Internal("x".into()), ErrorKind::Internal),
        ];
        for (e, k) in cases {
            assert_eq!(e.kind(), k, "{e}");
            assert_eq!(e.is_retryable(), k == ErrorKind::Connection);
        }
    }

    #[test]
    fn redis_errors_map_by_retryability() {
        let io: redis::RedisError =
            std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset").into();
        assert_eq!(Error::from(io).kind(), ErrorKind::Connection);
        let noperm: redis::RedisError = redis::RedisError::from((
            redis::ErrorKind::Server(redis::ServerErrorKind::NoPerm),
            "no permission",
        ));
        assert_eq!(Error::from(noperm).kind(), ErrorKind::Redis);
    }

    #[test]
    fn a_busy_or_failing_over_server_is_worth_waiting_for() {
        for (code, detail) in [
            ("BUSY", "Redis is busy running a script."),
            ("LOADING", "Redis is loading the dataset in memory"),
            ("READONLY", "You can't write against a read only replica."),
            ("TRYAGAIN", "Multiple keys request during rehashing of slot"),
            ("MASTERDOWN", "Link with MASTER is down"),
            ("CLUSTERDOWN", "The cluster is down"),
        ] {
            let e = redis::make_extension_error(code.to_string(), Some(detail.to_string()));
            let parsed: redis::RedisError = match code {
                "BUSY" => e,
                _ => redis::RedisError::from((
                    match code {
                        "LOADING" => redis::ErrorKind::Server(redis::ServerErrorKind::BusyLoading),
                        "READONLY" => redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly),
                        "TRYAGAIN" => redis::ErrorKind::Server(redis::ServerErrorKind::TryAgain),
                        "MASTERDOWN" => {
                            redis::ErrorKind::Server(redis::ServerErrorKind::MasterDown)
                        }
                        _ => redis::ErrorKind::Server(redis::ServerErrorKind::ClusterDown),
                    },
                    "server",
                )),
            };
            let err = Error::from(parsed);
            assert!(err.is_retryable(), "{code}: {err}");
            assert_eq!(err.kind(), ErrorKind::Connection, "{code}");
        }
    }

    #[test]
    fn errors_about_a_lock_name_its_key() {
        let e = Error::Timeout {
            key: "lock:a".into(),
            waited_ms: 5,
        };
        assert_eq!(e.key(), Some("lock:a"));
        assert_eq!(Error::connection("x").key(), None);
    }

    #[test]
    fn loss_reasons_have_the_documented_strings() {
        assert_eq!(LossReason::Taken.as_str(), "taken");
        assert_eq!(LossReason::Expired.as_str(), "expired");
        assert_eq!(LossReason::RenewalFailed.as_str(), "renewal-failed");
        assert_eq!(LossReason::Deadline.as_str(), "deadline");
    }
}
