// SPDX-License-Identifier: MIT OR Apache-2.0
//! What every implementation of the wire protocol (PROTOCOL.md) shares: its version, the
//! format of the values txcoord stores, and the Lua scripts as they are sent. The scripts live
//! beside the component that runs them (`lock/lua/`, `registry/lua/`), each called through a
//! typed wrapper there; the shared helpers are `lua/prelude.lua`.

use std::sync::LazyLock;

use redis::Value;

use crate::error::{Error, Result};

/// Version of the protocol described in PROTOCOL.md. Every value txcoord stores in a lock key
/// starts with it (`2:`), and so does every waiter entry (`2|`).
pub const PROTOCOL_VERSION: u32 = 2;

/// The prefix of every lock value txcoord writes: the protocol version.
pub(crate) const VALUE_PREFIX: &str = "2:";

/// How long an owner's record lives after its last wait: long enough that a saga retried
/// after being aborted keeps its age (the deadlock detector's tie-break).
pub const OWNER_RECORD_KEEP_MS: u64 = 600_000;

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

macro_rules! source {
    ($(#[$doc:meta])* $name:ident, $path:literal, $bare:expr) => {
        $(#[$doc])*
        pub static $name: LazyLock<String> =
            LazyLock::new(|| with_prelude(include_str!($path), $bare));
    };
}

source!(
    /// The acquire script (contended, owned and fair acquisitions).
    ACQUIRE_LUA, "lock/lua/acquire.lua", false
);
source!(
    /// The release script of locks taken without an owner id.
    RELEASE_LUA, "lock/lua/release.lua", false
);
source!(
    /// The release script of locks taken with an owner id (one hold at a time).
    RELEASE_HOLD_LUA, "lock/lua/release_hold.lua", false
);
source!(
    /// The extend/renew script.
    EXTEND_LUA, "lock/lua/extend.lua", true
);
source!(
    /// The waiter cancel script.
    CANCEL_LUA, "lock/lua/cancel.lua", false
);
source!(
    /// The waiting-index script.
    INDEX_LUA, "registry/lua/index.lua", false
);
source!(
    /// The owner-record script (the locks one owner waits on, and its age).
    OWNER_INDEX_LUA, "registry/lua/owner_index.lua", false
);
source!(
    /// The inspect script.
    INSPECT_LUA, "registry/lua/inspect.lua", false
);
source!(
    /// The deadlock-victim marking script.
    ABORT_WAITER_LUA, "registry/lua/abort_waiter.lua", false
);

source!(
    /// The saga save script (record, indexes, running totals).
    SAGA_SAVE_LUA, "saga/lua/save.lua", true
);

/// Every script of the protocol by name, with its source as sent.
pub fn scripts() -> Vec<(&'static str, &'static str)> {
    vec![
        ("acquire", ACQUIRE_LUA.as_str()),
        ("release", RELEASE_LUA.as_str()),
        ("release_hold", RELEASE_HOLD_LUA.as_str()),
        ("extend", EXTEND_LUA.as_str()),
        ("cancel", CANCEL_LUA.as_str()),
        ("index", INDEX_LUA.as_str()),
        ("owner_index", OWNER_INDEX_LUA.as_str()),
        ("inspect", INSPECT_LUA.as_str()),
        ("abort_waiter", ABORT_WAITER_LUA.as_str()),
        ("saga_save", SAGA_SAVE_LUA.as_str()),
    ]
}

/// The command that announces releases: `PUBLISH` on a single server (`SPUBLISH` in Cluster).
pub(crate) const PUBLISH: &str = "PUBLISH";

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_carry_the_prelude_where_they_need_it() {
        for (name, src) in scripts() {
            assert!(!src.contains("--@prelude"), "{name}");
            match name {
                "extend" => assert!(!src.contains("local function"), "extend defines none"),
                "saga_save" => assert!(!src.contains("wake_head"), "no lock helpers"),
                _ => assert!(src.contains("local function wake_head"), "{name}"),
            }
        }
        // the release scripts define no function on their common path
        let head = RELEASE_LUA.split("local function").next().unwrap();
        assert!(head.contains("redis.call('DEL', K)"));
        assert_eq!(
            scripts().len(),
            std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/src/lock/lua"))
                .unwrap()
                .count()
                + std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/src/registry/lua"))
                    .unwrap()
                    .count()
                + std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/src/saga/lua"))
                    .unwrap()
                    .count(),
            "every Lua file is a script of the protocol"
        );
    }
}
