// SPDX-License-Identifier: MIT OR Apache-2.0
//! Reading the holder/waiter registry of PROTOCOL.md: one lock, or every lock with waiters in a
//! fixed number of round trips (the deadlock detector's wait-for graph).

mod scripts;

use std::time::Duration;

use redis::Value;

use crate::client::Client;
use crate::error::Result;
use crate::lock::LockKeys;
use crate::protocol::{self, array, int, text};

/// The record of one owner id (a saga): the locks it waits on and its age (PROTOCOL.md §7).
pub fn owner_key(prefix: &str, owner: &str) -> String {
    format!("{prefix}txcoord:owner:{owner}")
}

/// Notes a wait in the indexes of PROTOCOL.md section 7 (sent, not awaited): the index of
/// locks with waiters, and, for a waiter with an owner id, that owner's record. Each is its
/// own key (its own slot in Cluster), so each is its own command.
pub(crate) fn note_waiting(client: &Client, keys: &LockKeys, owner: &str, lease: Duration) {
    let c = client.clone();
    let index = keys.index.clone();
    let owner_key = (!owner.is_empty()).then(|| owner_key(client.key_prefix(), owner));
    let lock = keys.lock.clone();
    let lease_ms = lease.as_millis() as u64;
    client.spawn(async move {
        let budget = c.op_budget();
        if let Err(e) = scripts::index(&c, &index, &lock, lease_ms, budget).await {
            tracing::debug!("txcoord: waiting index for {lock}: {e}");
        }
        if let Some(owner_key) = owner_key {
            if let Err(e) = scripts::owner_index(&c, &owner_key, &lock, lease_ms, budget).await {
                tracing::debug!("txcoord: owner record {owner_key}: {e}");
            }
        }
    });
}

/// The holder of a lock as recorded by txcoord (PROTOCOL.md, section 1: the lock's value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolderInfo {
    /// The value in the lock key.
    pub value: String,
    /// The explicit owner id, if the holder gave one.
    pub owner_id: Option<String>,
    /// Holds of the owner (re-entries + 1).
    pub hold_count: u64,
    /// The holder's priority (0 for a holder without an owner id).
    pub priority: i32,
    /// When it was acquired, Redis time in ms since the epoch (holders with an owner id).
    pub since_ms: Option<u64>,
    /// Its fencing token (holders with an owner id carry it in their value).
    pub fencing_token: Option<u64>,
}

impl HolderInfo {
    /// The holder a txcoord lock value describes: `2:<uuid>` (no owner) or
    /// `2:<uuid>:<token>:<priority>:<owner>`. `None` for a value txcoord did not write.
    pub fn from_value(value: &str, hold_count: u64) -> Option<HolderInfo> {
        let rest = value.strip_prefix(crate::protocol::VALUE_PREFIX)?;
        let mut parts = rest.splitn(4, ':');
        let _hold = parts.next()?;
        let (token, priority, owner) = match (parts.next(), parts.next(), parts.next()) {
            (Some(t), Some(p), Some(o)) => (Some(t.parse().ok()?), p.parse().ok()?, Some(o)),
            (None, None, None) => (None, 0, None),
            _ => return None,
        };
        Some(HolderInfo {
            value: value.to_string(),
            owner_id: owner.filter(|o| !o.is_empty()).map(str::to_string),
            hold_count: hold_count.max(1),
            priority,
            since_ms: token.map(|t: u64| t / 1000),
            fencing_token: token,
        })
    }
}

/// A waiter of a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaiterInfo {
    /// The waiter id (`<client id>-<sequence>`).
    pub id: String,
    /// The explicit owner id, if the waiter gave one.
    pub owner_id: Option<String>,
    /// The waiter's priority.
    pub priority: i32,
    /// When it started waiting, Redis time in ms.
    pub since_ms: u64,
    /// When its entry expires unless refreshed, Redis time in ms.
    pub expires_ms: u64,
    /// Whether it was marked as a deadlock victim.
    pub aborted: bool,
}

/// One lock's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockInfo {
    /// The lock key.
    pub key: String,
    /// Whether the lock key exists (held by anyone).
    pub held: bool,
    /// The txcoord holder, when the holder is a txcoord client (`held` without a holder means a
    /// foreign client such as the seed's code holds it).
    pub holder: Option<HolderInfo>,
    /// Remaining TTL of the lock key in ms (-2 absent, -1 no expiry).
    pub pttl_ms: i64,
    /// The Redis time of the reading, in ms.
    pub now_ms: u64,
    /// Live waiters in arrival order.
    pub waiters: Vec<WaiterInfo>,
}

fn pairs(v: &Value) -> Result<Vec<(String, String)>> {
    match v {
        Value::Map(m) => m.iter().map(|(k, v)| Ok((text(k)?, text(v)?))).collect(),
        other => {
            let items = array(other)?;
            items
                .chunks(2)
                .map(|c| Ok((text(&c[0])?, text(c.get(1).unwrap_or(&Value::Nil))?)))
                .collect()
        }
    }
}

fn parse_waiter(id: String, entry: &str) -> Option<WaiterInfo> {
    let mut parts = entry.splitn(6, '|');
    if parts.next()? != "2" {
        return None;
    }
    let state = parts.next()?;
    let expires_ms = parts.next()?.parse().ok()?;
    let since_ms = parts.next()?.parse().ok()?;
    let priority = parts.next()?.parse().ok()?;
    let owner = parts.next()?.to_string();
    Some(WaiterInfo {
        id,
        owner_id: (!owner.is_empty()).then_some(owner),
        priority,
        since_ms,
        expires_ms,
        aborted: state == "a",
    })
}

fn parse_lock_info(key: &str, v: &Value) -> Result<LockInfo> {
    let items = array(v)?;
    if items.len() < 6 {
        return Err(protocol::bad_reply("6 fields", v));
    }
    let value = match &items[0] {
        Value::Nil => None,
        other => Some(text(other)?),
    };
    let pttl_ms = int(&items[1])?;
    let holds = array(&items[2]).map(|a| a.len()).unwrap_or(0) as u64;
    let queue = array(&items[3])
        .map(|a| a.to_vec())
        .or_else(|_| match &items[3] {
            Value::Map(m) => Ok(m.iter().flat_map(|(k, v)| [k.clone(), v.clone()]).collect()),
            other => Err(protocol::bad_reply("queue", other)),
        })?;
    let entries: std::collections::HashMap<String, String> =
        pairs(&items[4])?.into_iter().collect();
    let now_ms: u64 = int(&items[5])? as u64;
    let holder = value
        .as_deref()
        .and_then(|v| HolderInfo::from_value(v, holds));
    let mut waiters = Vec::new();
    for chunk in queue.chunks(2) {
        let id = text(&chunk[0])?;
        if let Some(w) = entries.get(&id).and_then(|e| parse_waiter(id.clone(), e)) {
            if w.expires_ms > now_ms {
                waiters.push(w);
            }
        }
    }
    Ok(LockInfo {
        key: key.to_string(),
        held: value.is_some(),
        holder,
        pttl_ms,
        now_ms,
        waiters,
    })
}

/// The holder and waiters of one lock key (full key, with the prefix).
pub async fn inspect(client: &Client, lock_key: &str) -> Result<LockInfo> {
    let keys = LockKeys::for_key(client.key_prefix(), lock_key, "lock_key")?;
    let v = scripts::inspect(client, &keys).await?;
    parse_lock_info(lock_key, &v)
}

/// Several locks (full keys, with the prefix) in one round trip, whatever their number;
/// keys that break the hash-tag rule are skipped.
pub async fn inspect_locks(client: &Client, lock_keys: &[String]) -> Result<Vec<LockInfo>> {
    let keys: Vec<LockKeys> = lock_keys
        .iter()
        .filter_map(|k| LockKeys::for_key(client.key_prefix(), k, "lock_key").ok())
        .collect();
    let replies = scripts::inspect_many(client, &keys).await?;
    keys.iter()
        .zip(replies.iter())
        .map(|(k, v)| parse_lock_info(&k.lock, v))
        .collect()
}

/// Every lock held now whose key starts with `lock:` (the LockManager's keys) or
/// `txcoord:election:`, after the client's prefix, with its holder and waiters — for operators
/// (`txcoord locks`). Unlike the wait-for graph this walks the keyspace with `SCAN` (bounded to
/// `limit` locks), so it costs in proportion to the database.
pub async fn held_locks(client: &Client, limit: usize) -> Result<Vec<LockInfo>> {
    let prefix = client.key_prefix();
    let mut keys: Vec<String> = Vec::new();
    for pattern in [
        format!("{prefix}lock:*"),
        format!("{prefix}txcoord:election:*"),
    ] {
        let mut cursor: u64 = 0;
        for _ in 0..100_000 {
            let mut cmd = redis::cmd("SCAN");
            cmd.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .arg("TYPE")
                .arg("string");
            let (next, batch): (u64, Vec<String>) = client.query(cmd, client.op_budget()).await?;
            keys.extend(batch);
            cursor = next;
            if cursor == 0 || keys.len() >= limit {
                break;
            }
        }
    }
    keys.sort();
    keys.dedup();
    keys.truncate(limit);
    let mut locks = inspect_locks(client, &keys).await?;
    locks.retain(|l| l.held);
    Ok(locks)
}

/// Every lock that has live waiters, with its holder and waiters: two round trips (the index,
/// then one pipeline of inspections), whatever the number of locks.
pub async fn waiting_locks(client: &Client) -> Result<Vec<LockInfo>> {
    let index = format!(
        "{}{}",
        client.key_prefix(),
        crate::lock::keys::WAITING_INDEX
    );
    let budget = client.op_budget();
    let mut cmd = redis::cmd("ZRANGE");
    cmd.arg(&index)
        .arg("+inf")
        .arg("(0")
        .arg("BYSCORE")
        .arg("REV");
    let members: Vec<String> = client.query(cmd, budget).await?;
    let keys: Vec<LockKeys> = members
        .iter()
        .filter_map(|m| LockKeys::for_key(client.key_prefix(), m, "lock_key").ok())
        .collect();
    let replies = scripts::inspect_many(client, &keys).await?;
    let mut out = Vec::new();
    for (k, v) in keys.iter().zip(replies.iter()) {
        let info = parse_lock_info(&k.lock, v)?;
        if !info.waiters.is_empty() {
            out.push(info);
        }
    }
    Ok(out)
}

/// One edge of the wait-for graph: a saga (owner id) waiting for a lock another saga holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitForEdge {
    /// The waiting owner id.
    pub waiter: String,
    /// The holding owner id.
    pub holder: String,
    /// The lock key waited on.
    pub lock_key: String,
    /// The waiter's id (what `abort_waiter` takes).
    pub waiter_id: String,
    /// The waiter's priority.
    pub waiter_priority: i32,
    /// Since when it has waited, Redis time in ms.
    pub waiting_since_ms: u64,
    /// The holder's fencing token.
    pub holder_token: Option<u64>,
}

/// Wait-for edges among owners: one for every live waiter with an owner id on a lock whose
/// txcoord holder has a different owner id. Waiters already aborted (deadlock victims about
/// to fail) wait no more.
pub fn wait_for_edges(locks: &[LockInfo]) -> Vec<WaitForEdge> {
    let mut edges = Vec::new();
    for l in locks {
        let Some(holder) = l.holder.as_ref() else {
            continue;
        };
        let Some(holder_owner) = holder.owner_id.as_ref() else {
            continue;
        };
        for w in l.waiters.iter().filter(|w| !w.aborted) {
            if let Some(owner) = &w.owner_id {
                if owner != holder_owner {
                    edges.push(WaitForEdge {
                        waiter: owner.clone(),
                        holder: holder_owner.clone(),
                        lock_key: l.key.clone(),
                        waiter_id: w.id.clone(),
                        waiter_priority: w.priority,
                        waiting_since_ms: w.since_ms,
                        holder_token: holder.fencing_token,
                    });
                }
            }
        }
    }
    edges
}

/// What the registry knows of one owner id (a saga): the locks it waits on, and since when
/// it has been seen waiting (PROTOCOL.md section 7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerInfo {
    /// The owner id.
    pub owner_id: String,
    /// When the owner was first seen waiting, Redis time in ms (kept across its retries while
    /// the record lives), if it has a record.
    pub since_ms: Option<u64>,
    /// The lock keys it waits on now (live waits only).
    pub waits: Vec<String>,
}

/// The records of several owners in one round trip (one pipeline, whatever their number).
pub async fn owners(client: &Client, owner_ids: &[&str]) -> Result<Vec<OwnerInfo>> {
    if owner_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    pipe.cmd("TIME");
    for o in owner_ids {
        pipe.cmd("HGETALL").arg(owner_key(client.key_prefix(), o));
    }
    let replies: Vec<Value> = client.query_pipeline(&pipe, client.op_budget()).await?;
    let clock = array(
        replies
            .first()
            .ok_or_else(|| protocol::bad_reply("TIME", &Value::Nil))?,
    )?;
    let now_ms = (int(&clock[0])? * 1000 + int(&clock[1])? / 1000) as u64;
    let mut out = Vec::with_capacity(owner_ids.len());
    for (o, v) in owner_ids.iter().zip(replies.iter().skip(1)) {
        let mut info = OwnerInfo {
            owner_id: o.to_string(),
            since_ms: None,
            waits: Vec::new(),
        };
        for (field, value) in pairs(v)? {
            if field == "since" {
                info.since_ms = value.parse().ok();
            } else if let Some(lock) = field.strip_prefix("w:") {
                if value.parse::<u64>().is_ok_and(|expires| expires > now_ms) {
                    info.waits.push(lock.to_string());
                }
            }
        }
        info.waits.sort();
        out.push(info);
    }
    Ok(out)
}

/// Marks a waiter as a deadlock victim and wakes it: its acquisition fails with
/// `DeadlockVictim`. Returns whether such a waiter was found (and not marked already).
pub async fn abort_waiter(client: &Client, lock_key: &str, waiter_id: &str) -> Result<bool> {
    abort_waiter_because(client, lock_key, waiter_id, "").await
}

/// [`abort_waiter`], leaving `why` (the explained cycle, JSON) for the victim's error.
pub(crate) async fn abort_waiter_because(
    client: &Client,
    lock_key: &str,
    waiter_id: &str,
    why: &str,
) -> Result<bool> {
    let keys = LockKeys::for_key(client.key_prefix(), lock_key, "lock_key")?;
    scripts::abort_waiter(client, &keys, waiter_id, why).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiter_entries_parse() {
        let w = parse_waiter("c-1".into(), "2|w|200|100|-3|saga|with|bars").unwrap();
        assert_eq!(w.owner_id.as_deref(), Some("saga|with|bars"));
        assert_eq!(
            (w.expires_ms, w.since_ms, w.priority, w.aborted),
            (200, 100, -3, false)
        );
        let w = parse_waiter("c-2".into(), "2|a|200|100|0|").unwrap();
        assert!(w.aborted);
        assert_eq!(w.owner_id, None);
        assert!(parse_waiter("x".into(), "garbage").is_none());
        assert!(
            parse_waiter("x".into(), "3|w|200|100|0|").is_none(),
            "another version"
        );
    }

    #[test]
    fn holders_are_read_from_the_value() {
        let anon = HolderInfo::from_value("2:5f0c-uuid", 0).unwrap();
        assert_eq!(anon.owner_id, None);
        assert_eq!(anon.fencing_token, None);
        assert_eq!(anon.hold_count, 1);
        let owned = HolderInfo::from_value("2:5f0c-uuid:1800000000000123:-4:saga:7", 2).unwrap();
        assert_eq!(owned.owner_id.as_deref(), Some("saga:7"));
        assert_eq!(owned.fencing_token, Some(1_800_000_000_000_123));
        assert_eq!(owned.since_ms, Some(1_800_000_000_000));
        assert_eq!((owned.priority, owned.hold_count), (-4, 2));
        assert!(HolderInfo::from_value("6f1b8c2e-uuid-of-the-seed", 0).is_none());
        assert!(HolderInfo::from_value("2:x:notanumber:0:o", 0).is_none());
    }
}
