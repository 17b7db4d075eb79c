// SPDX-License-Identifier: MIT OR Apache-2.0
//! The wire protocol of PROTOCOL.md: its Lua scripts and reply shapes. Every language speaks
//! exactly this; the scripts live in `core/src/lua/` and are loaded with `redis::Script`, so
//! `EVALSHA` falls back to `EVAL` when Redis has lost its script cache.

use std::sync::LazyLock;

use redis::Value;

use crate::error::{Error, Result};

/// Version of the protocol described in PROTOCOL.md. Every value txcoord stores in a lock key
/// starts with it (`2:`), and so does every waiter entry (`2|`).
pub const PROTOCOL_VERSION: u32 = 2;

const PRELUDE: &str = include_str!("lua/prelude.lua");

/// A script's source with the prelude's helpers: where the script marks them (`--@prelude`,
/// inside the branch that needs them, so the common path defines no Lua functions), else
/// before it. `bare` scripts use none.
fn with_prelude(own: &str, bare: bool) -> String {
    if bare {
        own.to_string()
    } else if own.contains("--@prelude") {
        own.replacen("--@prelude", PRELUDE, 1)
    } else {
        format!("{PRELUDE}\n{own}")
    }
}

macro_rules! script {
    ($(#[$doc:meta])* $source:ident, $script:ident, $file:literal, $bare:expr) => {
        $(#[$doc])*
        pub static $source: LazyLock<String> =
            LazyLock::new(|| with_prelude(include_str!(concat!("lua/", $file)), $bare));
        pub(crate) static $script: LazyLock<redis::Script> =
            LazyLock::new(|| redis::Script::new(&$source));
    };
}

script!(
    /// Source of the acquire script (contended, owned and fair acquisitions).
    ACQUIRE_LUA, ACQUIRE, "acquire.lua", false
);
script!(
    /// Source of the release script of locks taken without an owner id.
    RELEASE_LUA, RELEASE, "release.lua", false
);
script!(
    /// Source of the release script of locks taken with an owner id (one hold at a time).
    RELEASE_HOLD_LUA, RELEASE_HOLD, "release_hold.lua", false
);
script!(
    /// Source of the extend/renew script.
    EXTEND_LUA, EXTEND, "extend.lua", true
);
script!(
    /// Source of the waiter cancel script.
    CANCEL_LUA, CANCEL, "cancel.lua", false
);
script!(
    /// Source of the waiting-index script.
    INDEX_LUA, INDEX, "index.lua", false
);
script!(
    /// Source of the owner-record script (the locks one owner waits on, and its age).
    OWNER_INDEX_LUA, OWNER_INDEX, "owner_index.lua", false
);
script!(
    /// Source of the inspect script.
    INSPECT_LUA, INSPECT, "inspect.lua", false
);
script!(
    /// Source of the deadlock-victim marking script.
    ABORT_WAITER_LUA, ABORT_WAITER, "abort_waiter.lua", false
);

/// The command that announces releases: `PUBLISH` on a single server (`SPUBLISH` in Cluster).
pub(crate) const PUBLISH: &str = "PUBLISH";

/// How long an owner's record lives after its last wait: long enough that a saga retried
/// after being aborted keeps its age (the deadlock detector's tie-break).
pub const OWNER_RECORD_KEEP_MS: u64 = 600_000;

/// The prefix of every lock value txcoord writes: the protocol version.
pub(crate) const VALUE_PREFIX: &str = "2:";

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
    /// The lock key holds state of another protocol version.
    Incompatible {
        version: i64,
    },
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
        -2 => Ok(Attempt::Incompatible {
            version: int(at(1)?)?,
        }),
        _ => Err(bad_reply("a status of 1, 0, -1 or -2", v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_carry_the_prelude() {
        for src in [
            &*ACQUIRE_LUA,
            &*RELEASE_LUA,
            &*RELEASE_HOLD_LUA,
            &*CANCEL_LUA,
            &*INDEX_LUA,
            &*INSPECT_LUA,
            &*ABORT_WAITER_LUA,
        ] {
            assert!(src.contains("local function wake_head"), "{src}");
            assert!(!src.contains("--@prelude"));
        }
        // the release scripts define no function on their common path
        let release_head = RELEASE_LUA.split("local function").next().unwrap();
        assert!(release_head.contains("redis.call('DEL', K)"));
        assert!(!EXTEND_LUA.contains("local function"));
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
