// SPDX-License-Identifier: MIT OR Apache-2.0
//! The fields of a saga record as a binding receives them (a Python `SagaRecord(...)` keyword,
//! a JS object property, or a record a user's own repository returned), judged here once.
//! Timestamps arrive as whole milliseconds since the Unix epoch: each binding turns its own
//! date type into them (refusing what it cannot place in time, such as a naive `datetime`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::validate::{self, Raw};
use crate::error::{Error, Result};
use crate::saga::SagaStatus;

/// The largest timestamp accepted: 2^53 − 1 ms (what a JS `Date` holds exactly).
pub const MAX_TIME_MS: u64 = (1 << 53) - 1;

fn what(raw: &Raw<'_>) -> String {
    match raw {
        Raw::Absent => "nothing".into(),
        Raw::Null => "null".into(),
        Raw::Bool(_) => "a boolean".into(),
        Raw::Int(_) | Raw::BigInt => "an integer".into(),
        Raw::Float(_) => "a float".into(),
        Raw::Micros(_) => "a duration".into(),
        Raw::Str(_) => "a string".into(),
        Raw::Other(name) => name.to_string(),
    }
}

/// A saga id: required, with the rules of an owner id (it is the saga's lock owner id).
pub fn saga_id<'a>(arg: &'static str, raw: Raw<'a>) -> Result<&'a str> {
    match validate::owner_id(arg, raw)? {
        Some(s) => Ok(s),
        None => Err(Error::invalid_type(arg, "is required (a string)")),
    }
}

/// A saga type (`CreateOrderSaga`, ...): a required, non-empty string without NUL.
pub fn saga_type<'a>(arg: &'static str, raw: Raw<'a>) -> Result<&'a str> {
    validate::resource(arg, raw)
}

/// A status: one of the six `SagaStatus` strings. `Absent` gives `None`.
pub fn status(arg: &'static str, raw: Raw<'_>) -> Result<Option<SagaStatus>> {
    match raw {
        Raw::Absent => Ok(None),
        Raw::Str(s) => s.parse::<SagaStatus>().map(Some).map_err(|e| match e {
            Error::InvalidArgument { message, .. } => Error::invalid_argument(arg, message),
            other => other,
        }),
        other => Err(Error::invalid_type(
            arg,
            format!("must be a SagaStatus (or its string), got {}", what(&other)),
        )),
    }
}

/// A count or version: a non-negative integer up to `max` (an integral float is accepted, as
/// every JS number is one). `Absent` gives `None`.
pub fn count(arg: &'static str, raw: Raw<'_>, max: u64) -> Result<Option<u64>> {
    let range = || format!("must be an integer from 0 to {max}");
    let value: i128 = match raw {
        Raw::Absent => return Ok(None),
        Raw::Int(i) => i,
        Raw::Float(f) if f.is_finite() && f.fract() == 0.0 && f.abs() <= 1e30 => f as i128,
        Raw::Float(f) => {
            return Err(Error::invalid_argument(
                arg,
                format!("{}, got {f}", range()),
            ))
        }
        Raw::BigInt => {
            return Err(Error::invalid_argument(
                arg,
                format!("{}, got an integer beyond 2^127", range()),
            ))
        }
        other => {
            return Err(Error::invalid_type(
                arg,
                format!("must be an integer, got {}", what(&other)),
            ))
        }
    };
    if value < 0 || value > max as i128 {
        return Err(Error::invalid_argument(
            arg,
            format!("{}, got {value}", range()),
        ));
    }
    Ok(Some(value as u64))
}

/// A point in time as whole milliseconds since the Unix epoch (0 ..= [`MAX_TIME_MS`]). `Absent`
/// gives `None`.
pub fn time_ms(arg: &'static str, raw: Raw<'_>) -> Result<Option<SystemTime>> {
    Ok(count(arg, raw, MAX_TIME_MS)?.map(|ms| UNIX_EPOCH + Duration::from_millis(ms)))
}

/// An optional text field (`error`, `stuck_reason`, `stuck_detail`): a string, or nothing
/// (`Absent` or `Null`). An empty string is nothing too, as the record stores it.
pub fn optional_text<'a>(arg: &'static str, raw: Raw<'a>) -> Result<Option<&'a str>> {
    match raw {
        Raw::Absent | Raw::Null => Ok(None),
        Raw::Str("") => Ok(None),
        Raw::Str(s) => Ok(Some(s)),
        other => Err(Error::invalid_type(
            arg,
            format!("must be a string or nothing, got {}", what(&other)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn statuses_are_the_six_strings() {
        assert_eq!(
            status("status", Raw::Str("FAILED")).unwrap(),
            Some(SagaStatus::Failed)
        );
        assert_eq!(status("status", Raw::Absent).unwrap(), None);
        let e = status("status", Raw::Str("DONE")).unwrap_err();
        assert_eq!(
            (e.kind(), e.argument()),
            (ErrorKind::InvalidArgument, Some("status"))
        );
        let e = status("status", Raw::Int(1)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidType);
    }

    #[test]
    fn counts_are_non_negative_integers() {
        assert_eq!(count("version", Raw::Int(7), u64::MAX).unwrap(), Some(7));
        assert_eq!(
            count("version", Raw::Float(7.0), u64::MAX).unwrap(),
            Some(7)
        );
        for raw in [
            Raw::Int(-1),
            Raw::Float(1.5),
            Raw::BigInt,
            Raw::Int(1 << 40),
        ] {
            let e = count("retry_count", raw, u32::MAX as u64).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{raw:?}");
            assert_eq!(e.argument(), Some("retry_count"));
        }
        for raw in [Raw::Bool(true), Raw::Str("1"), Raw::Null] {
            let e = count("term", raw, u64::MAX).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidType, "{raw:?}");
        }
    }

    #[test]
    fn ids_types_texts_and_times() {
        assert_eq!(saga_id("id", Raw::Str("s-1")).unwrap(), "s-1");
        assert_eq!(
            saga_id("id", Raw::Str("")).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            saga_id("id", Raw::Absent).unwrap_err().kind(),
            ErrorKind::InvalidType
        );
        assert_eq!(saga_type("type", Raw::Str("T")).unwrap(), "T");
        assert_eq!(
            saga_type("type", Raw::Int(1)).unwrap_err().argument(),
            Some("type")
        );
        assert_eq!(optional_text("error", Raw::Null).unwrap(), None);
        assert_eq!(optional_text("error", Raw::Str("")).unwrap(), None);
        assert_eq!(optional_text("error", Raw::Str("x")).unwrap(), Some("x"));
        assert_eq!(
            time_ms("created_at", Raw::Int(1_000)).unwrap(),
            Some(UNIX_EPOCH + Duration::from_secs(1))
        );
        assert_eq!(
            time_ms("created_at", Raw::Int(-1)).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
    }
}
