// SPDX-License-Identifier: MIT OR Apache-2.0
//! The lock scripts of PROTOCOL.md section 3, each behind a typed call: its keys and arguments
//! are spelled here once, in the order the script reads them.

use std::sync::LazyLock;
use std::time::Duration;

use redis::{Script, Value};

use super::keys::LockKeys;
use crate::client::Client;
use crate::error::Result;
use crate::protocol::{self, array, bad_reply, int, text, PUBLISH};

static ACQUIRE: LazyLock<Script> = LazyLock::new(|| Script::new(&protocol::ACQUIRE_LUA));
static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(&protocol::RELEASE_LUA));
static RELEASE_HOLD: LazyLock<Script> = LazyLock::new(|| Script::new(&protocol::RELEASE_HOLD_LUA));
static EXTEND: LazyLock<Script> = LazyLock::new(|| Script::new(&protocol::EXTEND_LUA));
static CANCEL: LazyLock<Script> = LazyLock::new(|| Script::new(&protocol::CANCEL_LUA));

/// One attempt of the acquire script.
pub(crate) struct Acquire<'a> {
    pub keys: &'a LockKeys,
    /// The acquisition's hold id (`2:<uuid>`), the same in each of its attempts.
    pub hold: &'a str,
    pub ttl_ms: u64,
    /// `""` for none.
    pub owner: &'a str,
    pub priority: i32,
    /// `""`: do not queue.
    pub waiter: &'a str,
    pub fair: bool,
    pub lease_ms: u64,
    /// Not the waiter's first attempt: it may be queued already (and aborted).
    pub maybe_queued: bool,
}

/// The reply of one acquire attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Attempt {
    Acquired {
        value: String,
        token: u64,
        hold_count: u64,
        validity_ms: i64,
    },
    /// `pttl` of the lock key (-2: free, but another waiter's turn; -3: unknown, the busy reply
    /// of the uncontended commands); `hint`: 1 for a txcoord holder (which announces its
    /// release), 0 for a foreign one, or, when `pttl` is -2, how long the head of the queue has
    /// left to claim the lock (ms).
    Busy { pttl: i64, hint: i64 },
    /// This waiter was chosen as a deadlock victim; why, as the aborting process explained it
    /// (JSON of a `DeadlockCycle`, or empty).
    Victim { why: String },
    /// The lock key holds state of another protocol version.
    Incompatible { version: i64 },
}

impl Acquire<'_> {
    pub(crate) async fn run(&self, client: &Client, budget: Duration) -> Result<Attempt> {
        let v: Value = client
            .run_script(
                &ACQUIRE,
                &self.keys.all(),
                &[
                    self.hold,
                    &self.ttl_ms.to_string(),
                    self.owner,
                    &self.priority.to_string(),
                    self.waiter,
                    if self.fair { "1" } else { "0" },
                    &self.lease_ms.to_string(),
                    &self.keys.channel,
                    PUBLISH,
                    if self.maybe_queued { "1" } else { "0" },
                ],
                budget,
            )
            .await?;
        parse_attempt(&v)
    }
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
        -1 => Ok(Attempt::Victim {
            why: items.get(1).map(text).transpose()?.unwrap_or_default(),
        }),
        -2 => Ok(Attempt::Incompatible {
            version: int(at(1)?)?,
        }),
        _ => Err(bad_reply("a status of 1, 0, -1 or -2", v)),
    }
}

/// Releases one hold: `value` is the lock key's value as the hold knows it (`""` when unknown:
/// an acquisition whose reply was lost), `hold` the hold's id. 1 released, 2 other holds of
/// the owner remain, 0 this hold was not held.
pub(crate) async fn release(
    client: &Client,
    keys: &LockKeys,
    value: &str,
    hold: &str,
    owned: bool,
    budget: Duration,
) -> Result<i64> {
    if owned {
        client
            .run_script(
                &RELEASE_HOLD,
                &[&keys.lock, &keys.holder, &keys.queue, &keys.waiters],
                &[value, hold],
                budget,
            )
            .await
    } else {
        // without an owner, the hold id is the value
        let value = if value.is_empty() { hold } else { value };
        client
            .run_script(
                &RELEASE,
                &[&keys.lock, &keys.queue, &keys.waiters],
                &[value],
                budget,
            )
            .await
    }
}

/// Sets the expiry of a lock held with `value` to `ms` from now: 1 extended, -1 expired,
/// -2 taken.
pub(crate) async fn extend(
    client: &Client,
    keys: &LockKeys,
    value: &str,
    ms: u64,
    budget: Duration,
) -> Result<i64> {
    client
        .run_script(
            &EXTEND,
            &[&keys.lock, &keys.holder],
            &[value, &ms.to_string()],
            budget,
        )
        .await
}

/// A waiter gives up: its entries go, and the next waiter is woken if the lock is free.
pub(crate) async fn cancel(
    client: &Client,
    keys: &LockKeys,
    waiter: &str,
    budget: Duration,
) -> Result<()> {
    let _woken: Value = client
        .run_script(
            &CANCEL,
            &[&keys.lock, &keys.queue, &keys.waiters],
            &[waiter, &keys.channel, PUBLISH],
            budget,
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
            Attempt::Victim { why: String::new() }
        );
        assert_eq!(
            parse_attempt(&Value::Array(vec![Value::Int(-2), Value::Int(3)])).unwrap(),
            Attempt::Incompatible { version: 3 }
        );
        assert!(parse_attempt(&Value::Nil).is_err());
        assert!(parse_attempt(&Value::Array(vec![Value::Int(7)])).is_err());
    }

    #[test]
    fn scripts_are_distinct() {
        assert_ne!(ACQUIRE.get_hash(), RELEASE.get_hash());
        assert_ne!(RELEASE.get_hash(), RELEASE_HOLD.get_hash());
    }
}
