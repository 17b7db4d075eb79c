// SPDX-License-Identifier: MIT OR Apache-2.0
//! A deadlock explained: for every edge of the cycle, which saga holds which lock (with its
//! fencing token) and which saga has waited for it how long; and a stable id, the same for the
//! same cycle wherever and whenever it is found.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::graph::{FoundCycle, GraphEdge, WaitForGraph};

/// One hop of a cycle: `waiter` has waited `waited_ms` for `lock_key`, held by `holder`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CycleEdge {
    pub waiter: String,
    pub holder: String,
    pub lock_key: String,
    /// The holder's fencing token.
    pub holder_token: Option<u64>,
    pub waited_ms: u64,
}

/// A deadlock cycle, explained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadlockCycle {
    /// Stable: the same cycle (same sagas, same locks) always has the same id.
    pub id: String,
    /// The sagas in order, the first repeated at the end (the seed's shape: `["B", "C", "B"]`).
    pub sagas: Vec<String>,
    /// One per hop, in the same order.
    pub edges: Vec<CycleEdge>,
    /// The saga aborted to break it, once one was.
    pub victim: Option<String>,
}

impl DeadlockCycle {
    pub(crate) fn from_found(graph: &WaitForGraph, found: &FoundCycle) -> DeadlockCycle {
        let edges: Vec<CycleEdge> = found.edges.iter().map(|&e| edge(&graph.edges[e])).collect();
        DeadlockCycle {
            id: cycle_id(&edges),
            sagas: found.sagas.clone(),
            edges,
            victim: None,
        }
    }
}

fn edge(e: &GraphEdge) -> CycleEdge {
    CycleEdge {
        waiter: e.waiter.clone(),
        holder: e.holder.clone(),
        lock_key: e.lock_key.clone(),
        holder_token: e.holder_token,
        waited_ms: e.waited_ms,
    }
}

/// FNV-1a (64 bits) of the cycle's hops, started from its smallest saga id: the same cycle
/// gives the same id whichever saga it was found from.
fn cycle_id(edges: &[CycleEdge]) -> String {
    let start = edges
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.waiter.cmp(&b.1.waiter))
        .map(|(i, _)| i)
        .unwrap_or(0);
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |s: &str| {
        for b in s.bytes().chain(std::iter::once(0)) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for i in 0..edges.len() {
        let e = &edges[(start + i) % edges.len()];
        feed(&e.waiter);
        feed(&e.lock_key);
    }
    format!("{hash:016x}")
}

impl fmt::Display for DeadlockCycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "deadlock {}: ", self.id)?;
        for (i, e) in self.edges.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(
                f,
                "saga {} has waited {} ms for {}, held by saga {}",
                e.waiter, e.waited_ms, e.lock_key, e.holder
            )?;
            if let Some(t) = e.holder_token {
                write!(f, " (fencing token {t})")?;
            }
        }
        if let Some(v) = &self.victim {
            write!(f, "; saga {v} was aborted to break it")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(w: &str, h: &str, k: &str) -> CycleEdge {
        CycleEdge {
            waiter: w.into(),
            holder: h.into(),
            lock_key: k.into(),
            holder_token: Some(7),
            waited_ms: 1200,
        }
    }

    #[test]
    fn the_id_does_not_depend_on_where_the_cycle_was_entered() {
        let a = [e("A", "B", "k1"), e("B", "A", "k2")];
        let b = [e("B", "A", "k2"), e("A", "B", "k1")];
        assert_eq!(cycle_id(&a), cycle_id(&b));
        let other = [e("A", "B", "k3"), e("B", "A", "k2")];
        assert_ne!(cycle_id(&a), cycle_id(&other));
    }

    #[test]
    fn it_reads_as_an_explanation() {
        let c = DeadlockCycle {
            id: cycle_id(&[e("A", "B", "lock:x"), e("B", "A", "lock:y")]),
            sagas: vec!["A".into(), "B".into(), "A".into()],
            edges: vec![e("A", "B", "lock:x"), e("B", "A", "lock:y")],
            victim: Some("B".into()),
        };
        let text = c.to_string();
        assert!(
            text.contains("saga A has waited 1200 ms for lock:x, held by saga B (fencing token 7)")
        );
        assert!(text.ends_with("saga B was aborted to break it"));
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<DeadlockCycle>(&json).unwrap(), c);
    }
}
