// SPDX-License-Identifier: MIT OR Apache-2.0
//! Breaking deadlocks, the same way wherever it runs (a waiting acquisition's probe, the
//! detector's sweep): every cycle is re-checked against Redis, the victim is chosen from
//! registry data alone, and aborting it is a compare-and-set on its waiter entry, so two
//! processes racing on one cycle abort one saga.

use std::collections::HashSet;

use super::cycle::DeadlockCycle;
use super::graph::{resolve, GraphEdge, WaitForGraph};
use crate::client::Client;
use crate::error::Result;
use crate::registry;

/// Most victims one resolution takes (a bound on the loop, far above any real deadlock).
const MAX_VICTIMS: usize = 1024;

/// A broken cycle: the cycle with its victim, and whether this process's abort took effect
/// (false when another process aborted the same waiter first).
#[derive(Debug, Clone)]
pub(crate) struct Broken {
    pub cycle: DeadlockCycle,
    pub aborted_here: bool,
}

/// Whether every edge of `edges` still holds in Redis: each waiter still waits (live entry,
/// not aborted) on its lock, which the same saga still holds.
async fn still_there(client: &Client, edges: &[&GraphEdge]) -> Result<bool> {
    let mut keys: Vec<String> = edges.iter().map(|e| e.lock_key.clone()).collect();
    keys.sort();
    keys.dedup();
    let locks = registry::inspect_locks(client, &keys).await?;
    Ok(edges.iter().all(|e| {
        locks.iter().any(|l| {
            l.key == e.lock_key
                && l.holder.as_ref().and_then(|h| h.owner_id.as_deref()) == Some(&e.holder)
                && l.waiters.iter().any(|w| w.id == e.waiter_id && !w.aborted)
        })
    }))
}

/// Finds the cycles of `graph` and breaks each: re-checked, victim chosen, its waits aborted
/// with the explained cycle; repeats until no component has a cycle. With `only`, just the
/// deadlocked groups (strongly connected components) that contain one of those sagas.
pub(crate) async fn break_cycles(
    client: &Client,
    mut graph: WaitForGraph,
    only: Option<&HashSet<String>>,
) -> Result<Vec<Broken>> {
    graph.complete_nodes();
    let ix = graph.indexed();
    let mut wanted = vec![only.is_none(); graph.nodes.len()];
    if let Some(only) = only {
        for component in ix.cyclic_components(&vec![false; graph.edges.len()]) {
            if component.iter().any(|&n| only.contains(&graph.nodes[n].id)) {
                for n in component {
                    wanted[n] = true;
                }
            }
        }
    }
    let resolution = resolve(&ix, MAX_VICTIMS);
    let mut out = Vec::new();
    for (found, victim) in resolution.steps {
        if !wanted[victim] {
            continue;
        }
        let cycle_edges: Vec<&GraphEdge> = found.edges.iter().map(|&e| &graph.edges[e]).collect();
        if !still_there(client, &cycle_edges).await? {
            continue;
        }
        let mut cycle = DeadlockCycle::from_found(&graph, &found);
        let victim_id = graph.nodes[victim].id.clone();
        cycle.victim = Some(victim_id.clone());
        let why = serde_json::to_string(&cycle).unwrap_or_default();
        let mut aborted_here = false;
        for e in ix.out(victim) {
            let edge = &graph.edges[e];
            if registry::abort_waiter_because(client, &edge.lock_key, &edge.waiter_id, &why).await?
            {
                aborted_here = true;
            }
        }
        out.push(Broken {
            cycle,
            aborted_here,
        });
    }
    Ok(out)
}
