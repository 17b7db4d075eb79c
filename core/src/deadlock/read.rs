// SPDX-License-Identifier: MIT OR Apache-2.0
//! Reading the wait-for graph from the lock registry (PROTOCOL.md, section 7): all of it, in a
//! fixed number of round trips, or only the part reachable from some waiting sagas, following
//! their owner records.

use std::collections::{HashMap, HashSet};

use super::graph::{GraphEdge, SagaNode, WaitForGraph};
use crate::client::Client;
use crate::error::Result;
use crate::registry::{self, LockInfo};

/// Most rounds a reachable read follows (each a step along the longest path): deadlocks longer
/// than this are left to the sweep, which reads the whole graph.
pub(crate) const MAX_ROUNDS: usize = 64;

/// Builds the graph from lock states and the owner records of the sagas in it.
async fn build(client: &Client, locks: &[LockInfo]) -> Result<WaitForGraph> {
    let mut edges = Vec::new();
    let mut wait_since: HashMap<String, u64> = HashMap::new();
    let mut priority: HashMap<String, i32> = HashMap::new();
    for l in locks {
        for w in &l.waiters {
            if let Some(owner) = &w.owner_id {
                let p = priority.entry(owner.clone()).or_insert(w.priority);
                *p = (*p).min(w.priority);
                let s = wait_since.entry(owner.clone()).or_insert(w.since_ms);
                *s = (*s).min(w.since_ms);
            }
        }
        for e in registry::wait_for_edges(std::slice::from_ref(l)) {
            edges.push(GraphEdge {
                waited_ms: l.now_ms.saturating_sub(e.waiting_since_ms),
                waiter: e.waiter,
                holder: e.holder,
                lock_key: e.lock_key,
                waiter_id: e.waiter_id,
                holder_token: e.holder_token,
            });
        }
    }
    let mut ids: Vec<String> = edges
        .iter()
        .flat_map(|e| [e.waiter.clone(), e.holder.clone()])
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    ids.sort();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let records = registry::owners(client, &refs).await?;
    let nodes = records
        .into_iter()
        .map(|o| SagaNode {
            priority: priority.get(&o.owner_id).copied().unwrap_or(0),
            since_ms: o
                .since_ms
                .or_else(|| wait_since.get(&o.owner_id).copied())
                .unwrap_or(0),
            id: o.owner_id,
        })
        .collect();
    Ok(WaitForGraph { nodes, edges })
}

/// The whole wait-for graph: the index of locks with waiters, one pipeline of inspections,
/// one of owner records — three round trips, whatever its size.
pub(crate) async fn whole_graph(client: &Client) -> Result<WaitForGraph> {
    let locks = registry::waiting_locks(client).await?;
    build(client, &locks).await
}

/// The part of the graph reachable from `starts` (waiting sagas, each with a lock it waits
/// on): each round inspects the locks reached (their holders) and reads the owner records of
/// the holders met for the first time (the locks they wait on) — two round trips a round, as
/// many rounds as the longest path followed.
pub(crate) async fn reachable_graph(
    client: &Client,
    starts: &[(String, String)],
) -> Result<WaitForGraph> {
    let mut seen_owners: HashSet<String> = starts.iter().map(|(o, _)| o.clone()).collect();
    let mut seen_locks: HashSet<String> = HashSet::new();
    let mut frontier: Vec<String> = Vec::new();
    for (_, lock) in starts {
        if seen_locks.insert(lock.clone()) {
            frontier.push(lock.clone());
        }
    }
    // the starting sagas may wait elsewhere too (another acquisition of the same saga)
    let owners: Vec<&str> = starts.iter().map(|(o, _)| o.as_str()).collect();
    for o in registry::owners(client, &owners).await? {
        for lock in o.waits {
            if seen_locks.insert(lock.clone()) {
                frontier.push(lock);
            }
        }
    }
    let mut locks: Vec<LockInfo> = Vec::new();
    for _ in 0..MAX_ROUNDS {
        if frontier.is_empty() {
            break;
        }
        let inspected = registry::inspect_locks(client, &frontier).await?;
        frontier.clear();
        let mut new_owners: Vec<String> = Vec::new();
        for l in &inspected {
            if l.waiters.iter().all(|w| w.owner_id.is_none()) {
                continue;
            }
            if let Some(h) = l.holder.as_ref().and_then(|h| h.owner_id.as_ref()) {
                if seen_owners.insert(h.clone()) {
                    new_owners.push(h.clone());
                }
            }
        }
        locks.extend(inspected);
        if new_owners.is_empty() {
            break;
        }
        let refs: Vec<&str> = new_owners.iter().map(String::as_str).collect();
        for o in registry::owners(client, &refs).await? {
            for lock in o.waits {
                if seen_locks.insert(lock.clone()) {
                    frontier.push(lock);
                }
            }
        }
    }
    build(client, &locks).await
}
