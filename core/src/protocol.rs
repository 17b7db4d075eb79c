// SPDX-License-Identifier: MIT OR Apache-2.0
//! The wire protocol of PROTOCOL.md: its Lua scripts and reply shapes. Every language speaks
//! exactly this; the scripts live in `core/src/lua/` and are loaded with `redis::Script`, so
//! `EVALSHA` falls back to `EVAL` when Redis has lost its script cache.

use std::sync::LazyLock;

use redis::Value;

use crate::error::{Error, Result};

/// Version of the protocol described in PROTOCOL.md.
pub const PROTOCOL_VERSION: u32 = 1;

/// Extra lifetime of the holder hash (which keeps the fence counter) beyond the lock's own TTL.
pub const FENCE_GRACE_MS: u64 = 60_000;

macro_rules! lua {
    ($file:literal) => {
        concat!(
            include_str!("lua/prelude.lua"),
            "\n",
            include_str!(concat!("lua/", $file))
        )
    };
}

/// Source of the acquire script.
pub const ACQUIRE_LUA: &str = lua!("acquire.lua");
/// Source of the release script.
pub const RELEASE_LUA: &str = lua!("release.lua");
/// Source of the extend/renew script.
pub const EXTEND_LUA: &str = lua!("extend.lua");
/// Source of the waiter cancel script.
pub const CANCEL_LUA: &str = lua!("cancel.lua");
/// Source of the waiting-index script.
pub const INDEX_LUA: &str = lua!("index.lua");
/// Source of the inspect script.
pub const INSPECT_LUA: &str = lua!("inspect.lua");
/// Source of the deadlock-victim marking script.
pub const ABORT_WAITER_LUA: &str = lua!("abort_waiter.lua");

pub(crate) static ACQUIRE: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(ACQUIRE_LUA));
pub(crate) static RELEASE: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(RELEASE_LUA));
pub(crate) static EXTEND: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(EXTEND_LUA));
pub(crate) static CANCEL: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(CANCEL_LUA));
pub(crate) static INDEX: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(INDEX_LUA));
pub(crate) static INSPECT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(INSPECT_LUA));
pub(crate) static ABORT_WAITER: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(ABORT_WAITER_LUA));

/// The command that announces releases: `PUBLISH` on a single server (`SPUBLISH` in Cluster).
pub(crate) const PUBLISH: &str = "PUBLISH";

/// The reply of one acquire attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Attempt {
    Acquired {
        value: String,
        token: u64,
        hold_count: u64,
        validity_ms: i64,
    },
    /// `pttl` of the lock key (-2: free, but another waiter's turn); `hint`: 1 for a txcoord
    /// holder (which announces its release), 0 for a foreign one, or, when `pttl` is -2, how
    /// long the head of the queue has left to claim the lock (ms).
    Busy {
        pttl: i64,
        hint: i64,
    },
    Victim,
}

pub(crate) fn int(v: &Value) -> Result<i64> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::BulkString(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad_reply("an integer", v)),
        Value::SimpleString(s) => s.parse().map_err(|_| bad_reply("an integer", v)),
        Value::Double(d) if d.fract() == 0.0 => Ok(*d as i64),
        _ => Err(bad_reply("an integer", v)),
    }
}

pub(crate) fn text(v: &Value) -> Result<String> {
    match v {
        Value::BulkString(b) => {
            String::from_utf8(b.clone()).map_err(|_| bad_reply("UTF-8 text", v))
        }
        Value::SimpleString(s) => Ok(s.clone()),
        Value::VerbatimString { text, .. } => Ok(text.clone()),
        _ => Err(bad_reply("a string", v)),
    }
}

pub(crate) fn array(v: &Value) -> Result<&[Value]> {
    match v {
        Value::Array(items) | Value::Set(items) => Ok(items),
        _ => Err(bad_reply("an array", v)),
    }
}

pub(crate) fn bad_reply(expected: &str, got: &Value) -> Error {
    Error::Internal(format!(
        "unexpected reply from a txcoord script: expected {expected}, got {got:?}"
    ))
}

pub(crate) fn parse_attempt(v: &Value) -> Result<Attempt> {
    let items = array(v)?;
    let code = int(items.first().ok_or_else(|| bad_reply("a status", v))?)?;
    let at = |i: usize| items.get(i).ok_or_else(|| bad_reply("more fields", v));
    match code {
        1 => Ok(Attempt::Acquired {
            value: text(at(1)?)?,
            token: u64::try_from(int(at(2)?)?).map_err(|_| bad_reply("a token", v))?,
            hold_count: u64::try_from(int(at(3)?)?).map_err(|_| bad_reply("a count", v))?,
            validity_ms: int(at(4)?)?,
        }),
        0 => Ok(Attempt::Busy {
            pttl: int(at(1)?)?,
            hint: int(at(2)?)?,
        }),
        -1 => Ok(Attempt::Victim),
        _ => Err(bad_reply("a status of 1, 0 or -1", v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_carry_the_prelude() {
        for src in [
            ACQUIRE_LUA,
            RELEASE_LUA,
            EXTEND_LUA,
            CANCEL_LUA,
            INDEX_LUA,
            INSPECT_LUA,
            ABORT_WAITER_LUA,
        ] {
            assert!(src.starts_with("-- SPDX-License-Identifier"));
            assert!(src.contains("local function wake_head"));
        }
        assert_ne!(ACQUIRE.get_hash(), RELEASE.get_hash());
    }

    #[test]
    fn attempt_replies_parse() {
        let acquired = Value::Array(vec![
            Value::Int(1),
            Value::BulkString(b"v".to_vec()),
            Value::Int(1_800_000_000_000_000),
            Value::Int(1),
            Value::Int(30000),
        ]);
        assert_eq!(
            parse_attempt(&acquired).unwrap(),
            Attempt::Acquired {
                value: "v".into(),
                token: 1_800_000_000_000_000,
                hold_count: 1,
                validity_ms: 30000
            }
        );
        let busy = Value::Array(vec![Value::Int(0), Value::Int(-2), Value::Int(1)]);
        assert_eq!(
            parse_attempt(&busy).unwrap(),
            Attempt::Busy { pttl: -2, hint: 1 }
        );
        assert_eq!(
            parse_attempt(&Value::Array(vec![Value::Int(-1)])).unwrap(),
            Attempt::Victim
        );
        assert!(parse_attempt(&Value::Nil).is_err());
        assert!(parse_attempt(&Value::Array(vec![Value::Int(7)])).is_err());
    }
}
