// SPDX-License-Identifier: MIT OR Apache-2.0
//! The one validator for user input. The Rust API calls it with typed values; the bindings call
//! it with [`Raw`] host values, unconverted, so `true`, `-1`, `1.5`, `NaN` or `2**70` are judged
//! here and never slip through a silent integer conversion.

use std::time::Duration;

use crate::error::{Error, Result};

/// The largest number of milliseconds accepted for any duration (ttl, timeout, extension):
/// 2^31 − 1 ms, about 24.8 days.
pub const MAX_MS: u64 = 2_147_483_647;
/// The longest resource name or lock key, in UTF-8 bytes.
pub const MAX_RESOURCE_BYTES: usize = 1024;
/// The longest owner id, in UTF-8 bytes.
pub const MAX_OWNER_BYTES: usize = 256;
/// The longest key prefix, in UTF-8 bytes.
pub const MAX_PREFIX_BYTES: usize = 256;

/// A host-language value as the binding received it, before any conversion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Raw<'a> {
    /// Not given (`None` in Python, `undefined` in JS): the default applies.
    Absent,
    /// An explicit `null` where the argument takes none.
    Null,
    /// A boolean (refused wherever a number is expected, although Python's `bool` is an `int`).
    Bool(bool),
    /// An integer that fits in `i128`.
    Int(i128),
    /// An integer too large for `i128`.
    BigInt,
    /// A floating-point number (every JS number).
    Float(f64),
    /// A duration given as a duration type (Python `timedelta`), in microseconds.
    Micros(i128),
    /// A string.
    Str(&'a str),
    /// Any other type; the string names it for the error message.
    Other(&'a str),
}

impl Raw<'_> {
    fn type_name(&self) -> &str {
        match self {
            Raw::Absent => "nothing",
            Raw::Null => "null",
            Raw::Bool(_) => "a boolean",
            Raw::Int(_) | Raw::BigInt => "an integer",
            Raw::Float(_) => "a float",
            Raw::Micros(_) => "a duration",
            Raw::Str(_) => "a string",
            Raw::Other(name) => name,
        }
    }
}

fn describe(raw: &Raw<'_>) -> String {
    match raw {
        Raw::Int(i) => i.to_string(),
        Raw::BigInt => "an integer beyond 2^127".to_string(),
        Raw::Float(f) => format!("{f}"),
        Raw::Micros(us) => format!("a duration of {us} µs"),
        other => other.type_name().to_string(),
    }
}

/// Milliseconds from a raw value: an integer, an integral float, or a duration in whole
/// milliseconds, within `min..=max`. `Absent` gives `None` (use the default).
pub fn millis(arg: &'static str, raw: Raw<'_>, min: u64, max: u64) -> Result<Option<u64>> {
    let range = || format!("an integer number of milliseconds from {min} to {max}");
    let value: i128 = match raw {
        Raw::Absent => return Ok(None),
        Raw::Int(i) => i,
        Raw::Float(f) => {
            if !f.is_finite() || f.fract() != 0.0 {
                return Err(Error::invalid_argument(
                    arg,
                    format!("must be {}, got {}", range(), describe(&raw)),
                ));
            }
            if f.abs() > 1e30 {
                return Err(Error::invalid_argument(
                    arg,
                    format!("must be {}, got {}", range(), describe(&raw)),
                ));
            }
            f as i128
        }
        Raw::Micros(us) => {
            if us % 1000 != 0 {
                return Err(Error::invalid_argument(
                    arg,
                    format!(
                        "must be a whole number of milliseconds, got {}",
                        describe(&raw)
                    ),
                ));
            }
            us / 1000
        }
        Raw::BigInt => {
            return Err(Error::invalid_argument(
                arg,
                format!("must be {}, got {}", range(), describe(&raw)),
            ))
        }
        other => {
            return Err(Error::invalid_type(
                arg,
                format!(
                    "must be a number of milliseconds, got {}",
                    other.type_name()
                ),
            ))
        }
    };
    if value < min as i128 || value > max as i128 {
        return Err(Error::invalid_argument(
            arg,
            format!("must be {}, got {}", range(), describe(&raw)),
        ));
    }
    Ok(Some(value as u64))
}

/// A lock ttl: 1 ..= [`MAX_MS`] milliseconds.
pub fn ttl(arg: &'static str, raw: Raw<'_>) -> Result<Option<Duration>> {
    Ok(millis(arg, raw, 1, MAX_MS)?.map(Duration::from_millis))
}

/// An acquire timeout: 0 (try once) ..= [`MAX_MS`] milliseconds.
pub fn timeout(arg: &'static str, raw: Raw<'_>) -> Result<Option<Duration>> {
    Ok(millis(arg, raw, 0, MAX_MS)?.map(Duration::from_millis))
}

/// A typed `Duration` checked against the same rules: whole milliseconds within `min..=max`.
pub fn duration(arg: &'static str, d: Duration, min: u64, max: u64) -> Result<Duration> {
    let micros = i128::try_from(d.as_micros()).unwrap_or(i128::MAX);
    if !d.subsec_nanos().is_multiple_of(1000) {
        return Err(Error::invalid_argument(
            arg,
            format!("must be a whole number of milliseconds, got {d:?}"),
        ));
    }
    Ok(Duration::from_millis(
        millis(arg, Raw::Micros(micros), min, max)?.unwrap_or(min),
    ))
}

/// A priority: an integer in the `i32` range. Higher means more important (a deadlock victim is
/// chosen among the lowest).
pub fn priority(arg: &'static str, raw: Raw<'_>) -> Result<Option<i32>> {
    let value = match raw {
        Raw::Absent => return Ok(None),
        Raw::Int(i) => i,
        Raw::Float(f) if f.is_finite() && f.fract() == 0.0 && f.abs() <= 1e30 => f as i128,
        Raw::Float(_) | Raw::BigInt => {
            return Err(Error::invalid_argument(
                arg,
                format!(
                    "must be an integer from {} to {}, got {}",
                    i32::MIN,
                    i32::MAX,
                    describe(&raw)
                ),
            ))
        }
        other => {
            return Err(Error::invalid_type(
                arg,
                format!("must be an integer, got {}", other.type_name()),
            ))
        }
    };
    i32::try_from(value).map(Some).map_err(|_| {
        Error::invalid_argument(
            arg,
            format!(
                "must be an integer from {} to {}, got {value}",
                i32::MIN,
                i32::MAX
            ),
        )
    })
}

/// A count (for example the monitor's retries): an integer, or an integral float, within
/// `min..=max`. Booleans and strings are refused.
pub fn count(arg: &'static str, raw: Raw<'_>, min: u64, max: u64) -> Result<Option<u64>> {
    let range = || format!("an integer from {min} to {max}");
    let value: i128 = match raw {
        Raw::Absent => return Ok(None),
        Raw::Int(i) => i,
        Raw::Float(f) if f.is_finite() && f.fract() == 0.0 && f.abs() <= 1e30 => f as i128,
        Raw::Float(_) | Raw::BigInt => {
            return Err(Error::invalid_argument(
                arg,
                format!("must be {}, got {}", range(), describe(&raw)),
            ))
        }
        other => {
            return Err(Error::invalid_type(
                arg,
                format!("must be an integer, got {}", other.type_name()),
            ))
        }
    };
    if value < min as i128 || value > max as i128 {
        return Err(Error::invalid_argument(
            arg,
            format!("must be {}, got {value}", range()),
        ));
    }
    Ok(Some(value as u64))
}

/// A boolean flag (for example `fair`). Numbers and strings are refused.
pub fn flag(arg: &'static str, raw: Raw<'_>) -> Result<Option<bool>> {
    match raw {
        Raw::Absent => Ok(None),
        Raw::Bool(b) => Ok(Some(b)),
        other => Err(Error::invalid_type(
            arg,
            format!("must be a boolean, got {}", other.type_name()),
        )),
    }
}

fn text<'a>(arg: &'static str, raw: Raw<'a>, what: &str) -> Result<Option<&'a str>> {
    match raw {
        Raw::Absent => Ok(None),
        Raw::Str(s) => Ok(Some(s)),
        other => Err(Error::invalid_type(
            arg,
            format!("must be {what}, got {}", other.type_name()),
        )),
    }
}

fn check_name(arg: &'static str, s: &str, max: usize) -> Result<()> {
    if s.is_empty() {
        return Err(Error::invalid_argument(arg, "must not be empty"));
    }
    if s.len() > max {
        return Err(Error::invalid_argument(
            arg,
            format!("is {} bytes long; the limit is {max} bytes", s.len()),
        ));
    }
    if s.contains('\0') {
        return Err(Error::invalid_argument(
            arg,
            "must not contain NUL characters",
        ));
    }
    Ok(())
}

/// An optional string argument (a URL, a key prefix, a client name) from a raw value; its
/// content is checked where it is used.
pub fn string<'a>(arg: &'static str, raw: Raw<'a>) -> Result<Option<&'a str>> {
    text(arg, raw, "a string")
}

/// The error for a value of the wrong type where the core has no raw form to judge (a callback,
/// an `AbortSignal`, a logger): "must be {expected}, got {what `raw` is}".
pub fn wrong_type(
    arg: impl Into<std::borrow::Cow<'static, str>>,
    expected: &str,
    raw: Raw<'_>,
) -> Error {
    Error::invalid_type(arg, format!("must be {expected}, got {}", raw.type_name()))
}

/// One of a fixed set of strings (a log level): `Absent` gives `None`.
pub fn one_of<'a>(
    arg: &'static str,
    raw: Raw<'a>,
    allowed: &[&'static str],
) -> Result<Option<&'static str>> {
    let list = || {
        allowed
            .iter()
            .map(|a| format!("'{a}'"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match raw {
        Raw::Absent => Ok(None),
        Raw::Str(s) => match allowed.iter().find(|a| **a == s) {
            Some(a) => Ok(Some(a)),
            None => Err(Error::invalid_argument(
                arg,
                format!("must be one of {}, got {s:?}", list()),
            )),
        },
        other => Err(Error::invalid_type(
            arg,
            format!("must be one of {}, got {}", list(), other.type_name()),
        )),
    }
}

/// The error for a host string that is not valid Unicode (a JS string with a lone surrogate):
/// refused rather than silently replaced, since a replaced name would lock something else.
pub fn bad_encoding(arg: &'static str) -> Error {
    Error::invalid_argument(
        arg,
        "is not valid Unicode (it contains an unpaired surrogate)",
    )
}

/// A resource name or lock key: a non-empty string of at most [`MAX_RESOURCE_BYTES`] bytes
/// without NUL. (The hash-tag rules are checked on the full key, see [`crate::keys`].)
pub fn resource_str(arg: &'static str, s: &str) -> Result<()> {
    check_name(arg, s, MAX_RESOURCE_BYTES)
}

/// A required resource name from a raw value.
pub fn resource<'a>(arg: &'static str, raw: Raw<'a>) -> Result<&'a str> {
    match text(arg, raw, "a string")? {
        Some(s) => {
            resource_str(arg, s)?;
            Ok(s)
        }
        None => Err(Error::invalid_type(arg, "is required (a string)")),
    }
}

/// An owner id: a non-empty string of at most [`MAX_OWNER_BYTES`] bytes without NUL.
pub fn owner_id_str(arg: &'static str, s: &str) -> Result<()> {
    check_name(arg, s, MAX_OWNER_BYTES)
}

/// An optional owner id from a raw value.
pub fn owner_id<'a>(arg: &'static str, raw: Raw<'a>) -> Result<Option<&'a str>> {
    let s = text(arg, raw, "a string")?;
    if let Some(s) = s {
        owner_id_str(arg, s)?;
    }
    Ok(s)
}

/// A key prefix: any string of at most [`MAX_PREFIX_BYTES`] bytes without NUL (may be empty).
pub fn key_prefix_str(arg: &'static str, s: &str) -> Result<()> {
    if s.len() > MAX_PREFIX_BYTES {
        return Err(Error::invalid_argument(
            arg,
            format!(
                "is {} bytes long; the limit is {MAX_PREFIX_BYTES} bytes",
                s.len()
            ),
        ));
    }
    if s.contains('\0') {
        return Err(Error::invalid_argument(
            arg,
            "must not contain NUL characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn kind<T: std::fmt::Debug>(r: Result<T>) -> ErrorKind {
        r.expect_err("should be refused").kind()
    }

    #[test]
    fn ttl_accepts_integers_and_integral_floats() {
        assert_eq!(
            ttl("ttl", Raw::Int(30000)).unwrap(),
            Some(Duration::from_millis(30000))
        );
        assert_eq!(
            ttl("ttl", Raw::Float(1000.0)).unwrap(),
            Some(Duration::from_millis(1000))
        );
        assert_eq!(
            ttl("ttl", Raw::Micros(2_000_000)).unwrap(),
            Some(Duration::from_secs(2))
        );
        assert_eq!(ttl("ttl", Raw::Absent).unwrap(), None);
        assert_eq!(
            ttl("ttl", Raw::Int(MAX_MS as i128)).unwrap(),
            Some(Duration::from_millis(MAX_MS))
        );
    }

    #[test]
    fn ttl_refuses_out_of_range_values() {
        for raw in [
            Raw::Int(0),
            Raw::Int(-1),
            Raw::Int(MAX_MS as i128 + 1),
            Raw::Int(1 << 40),
            Raw::BigInt,
            Raw::Float(1.5),
            Raw::Float(f64::NAN),
            Raw::Float(f64::INFINITY),
            Raw::Float(f64::NEG_INFINITY),
            Raw::Float(-0.0),
            Raw::Float(1e300),
            Raw::Micros(1500),
            Raw::Micros(-1000),
        ] {
            let e = ttl("ttl", raw).expect_err(&format!("{raw:?}"));
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{raw:?}");
            assert_eq!(e.argument(), Some("ttl"));
            assert!(e.to_string().contains("`ttl`"), "{e}");
        }
    }

    #[test]
    fn ttl_refuses_wrong_types() {
        for raw in [
            Raw::Bool(true),
            Raw::Null,
            Raw::Str("1000"),
            Raw::Other("a list"),
        ] {
            assert_eq!(kind(ttl("ttl_ms", raw)), ErrorKind::InvalidType, "{raw:?}");
        }
        let e = ttl("ttl_ms", Raw::Other("a list")).unwrap_err();
        assert!(
            e.to_string().contains("ttl_ms") && e.to_string().contains("a list"),
            "{e}"
        );
    }

    #[test]
    fn timeout_allows_zero_but_not_negative() {
        assert_eq!(
            timeout("timeout", Raw::Int(0)).unwrap(),
            Some(Duration::ZERO)
        );
        assert_eq!(
            kind(timeout("timeout", Raw::Int(-1))),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            kind(timeout("timeout", Raw::Float(f64::NAN))),
            ErrorKind::InvalidArgument
        );
    }

    #[test]
    fn typed_durations_follow_the_same_rules() {
        assert_eq!(
            duration("ttl", Duration::from_millis(5), 1, MAX_MS).unwrap(),
            Duration::from_millis(5)
        );
        assert_eq!(
            kind(duration("ttl", Duration::ZERO, 1, MAX_MS)),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            kind(duration("ttl", Duration::from_micros(1500), 1, MAX_MS)),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            kind(duration("ttl", Duration::from_nanos(1), 1, MAX_MS)),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            kind(duration("ttl", Duration::from_secs(u64::MAX), 1, MAX_MS)),
            ErrorKind::InvalidArgument
        );
    }

    #[test]
    fn priority_is_an_i32() {
        assert_eq!(priority("priority", Raw::Int(-5)).unwrap(), Some(-5));
        assert_eq!(priority("priority", Raw::Float(7.0)).unwrap(), Some(7));
        assert_eq!(
            kind(priority("priority", Raw::Int(1 << 40))),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            kind(priority("priority", Raw::Float(0.5))),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            kind(priority("priority", Raw::Bool(false))),
            ErrorKind::InvalidType
        );
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(
            resource("resource", Raw::Str("order:42")).unwrap(),
            "order:42"
        );
        assert_eq!(
            kind(resource("resource", Raw::Str(""))),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            kind(resource("resource", Raw::Str("a\0b"))),
            ErrorKind::InvalidArgument
        );
        let long = "x".repeat(MAX_RESOURCE_BYTES + 1);
        assert_eq!(
            kind(resource("resource", Raw::Str(&long))),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            kind(resource("resource", Raw::Int(1))),
            ErrorKind::InvalidType
        );
        assert_eq!(
            kind(resource("resource", Raw::Absent)),
            ErrorKind::InvalidType
        );
        assert_eq!(owner_id("owner_id", Raw::Absent).unwrap(), None);
        assert_eq!(
            kind(owner_id("owner_id", Raw::Str(""))),
            ErrorKind::InvalidArgument
        );
        assert_eq!(kind(flag("fair", Raw::Int(1))), ErrorKind::InvalidType);
        assert_eq!(
            resource("resource", Raw::Str("注文:🙂")).unwrap(),
            "注文:🙂"
        );
    }

    #[test]
    fn fixed_choices_and_foreign_types() {
        let levels = ["silent", "error"];
        assert_eq!(
            one_of("level", Raw::Str("error"), &levels).unwrap(),
            Some("error")
        );
        assert_eq!(one_of("level", Raw::Absent, &levels).unwrap(), None);
        let e = one_of("level", Raw::Str("verbose"), &levels).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.to_string().contains("'silent', 'error'"), "{e}");
        assert_eq!(
            kind(one_of("level", Raw::Float(1.0), &levels)),
            ErrorKind::InvalidType
        );
        let e = wrong_type("signal", "an AbortSignal", Raw::Str("x"));
        assert_eq!(e.kind(), ErrorKind::InvalidType);
        assert_eq!(
            e.to_string(),
            "invalid type for `signal`: must be an AbortSignal, got a string"
        );
    }
}
