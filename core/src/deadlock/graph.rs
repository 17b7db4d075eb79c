// SPDX-License-Identifier: MIT OR Apache-2.0
//! The wait-for graph among sagas and the search for its cycles: an iterative Tarjan
//! (strongly connected components, O(V+E), no recursion), one concrete cycle per component
//! by a breadth-first search inside it, and the victim rule every process applies alike.

use std::collections::{HashMap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};

/// A saga in the wait-for graph, with what the victim rule reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SagaNode {
    /// The saga id (its lock owner id).
    pub id: String,
    /// The lowest priority its waits carry (the victim is the lowest).
    pub priority: i32,
    /// Since when the registry has known it waiting (Redis ms): its owner record's age, kept
    /// across its retries; the youngest saga (the largest) is preferred as a victim.
    pub since_ms: u64,
}

/// One edge: `waiter` waits for `lock_key`, which `holder` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphEdge {
    pub waiter: String,
    pub holder: String,
    pub lock_key: String,
    /// The waiter's id in the registry (what an abort marks).
    pub waiter_id: String,
    /// How long it has waited, ms.
    pub waited_ms: u64,
    /// The holder's fencing token.
    pub holder_token: Option<u64>,
}

/// The wait-for graph: sagas, and who waits for whom on which lock.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitForGraph {
    pub nodes: Vec<SagaNode>,
    pub edges: Vec<GraphEdge>,
}

/// A cycle as found: its sagas in order (the first repeated at the end, as the seed's) and
/// the indexes of its edges in the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FoundCycle {
    pub sagas: Vec<String>,
    pub edges: Vec<usize>,
}

/// The graph in index form.
pub(crate) struct Indexed<'g> {
    pub graph: &'g WaitForGraph,
    /// Outgoing edges (edge indexes) per node.
    pub out: Vec<Vec<usize>>,
    /// Edge index → (from, to) node indexes.
    pub ends: Vec<(usize, usize)>,
}

impl WaitForGraph {
    pub(crate) fn indexed(&self) -> Indexed<'_> {
        let mut index: HashMap<&str, usize> = HashMap::with_capacity(self.nodes.len());
        for (i, n) in self.nodes.iter().enumerate() {
            index.insert(n.id.as_str(), i);
        }
        let mut out = vec![Vec::new(); self.nodes.len()];
        let mut ends = Vec::with_capacity(self.edges.len());
        for (e, edge) in self.edges.iter().enumerate() {
            let (Some(&a), Some(&b)) = (
                index.get(edge.waiter.as_str()),
                index.get(edge.holder.as_str()),
            ) else {
                ends.push((usize::MAX, usize::MAX));
                continue;
            };
            out[a].push(e);
            ends.push((a, b));
        }
        Indexed {
            graph: self,
            out,
            ends,
        }
    }

    /// One concrete cycle per deadlocked group of sagas (strongly connected component), in
    /// the seed's shape (`["B", "C", "B"]`), found in O(V+E) without recursion.
    pub fn cycles(&self) -> Vec<Vec<String>> {
        // A copy only when nodes are missing (the detector's graphs are complete).
        let missing = self.missing_nodes();
        let completed;
        let graph = if missing.is_empty() {
            self
        } else {
            completed = WaitForGraph {
                nodes: self.nodes.iter().cloned().chain(missing).collect(),
                edges: self.edges.clone(),
            };
            &completed
        };
        let ix = graph.indexed();
        let none = vec![false; graph.edges.len()];
        ix.cyclic_components(&none)
            .iter()
            .filter_map(|c| ix.cycle_in(c, &none))
            .map(|c| c.sagas)
            .collect()
    }

    /// Adds the nodes named by edges but missing from `nodes` (priority 0, age 0).
    pub(crate) fn complete_nodes(&mut self) {
        let missing = self.missing_nodes();
        self.nodes.extend(missing);
    }

    /// The nodes named by edges but missing from `nodes`, each once, in order of appearance.
    fn missing_nodes(&self) -> Vec<SagaNode> {
        let mut known: HashSet<&str> = self.nodes.iter().map(|n| n.id.as_str()).collect();
        let mut missing = Vec::new();
        for e in &self.edges {
            for id in [&e.waiter, &e.holder] {
                if known.insert(id.as_str()) {
                    missing.push(SagaNode {
                        id: id.clone(),
                        priority: 0,
                        since_ms: 0,
                    });
                }
            }
        }
        missing
    }
}

impl Indexed<'_> {
    /// The strongly connected components with a cycle (two nodes or more), each as sorted node
    /// indexes, in a stable order. `removed[e]` edges are ignored.
    pub(crate) fn cyclic_components(&self, removed: &[bool]) -> Vec<Vec<usize>> {
        let n = self.out.len();
        const NONE: usize = usize::MAX;
        let mut index = vec![NONE; n];
        let mut low = vec![0usize; n];
        let mut on_stack = vec![false; n];
        let mut stack: Vec<usize> = Vec::new();
        let mut next = 0usize;
        let mut out = Vec::new();
        // (node, position in its outgoing list)
        let mut call: Vec<(usize, usize)> = Vec::new();
        for root in 0..n {
            if index[root] != NONE {
                continue;
            }
            call.push((root, 0));
            index[root] = next;
            low[root] = next;
            next += 1;
            stack.push(root);
            on_stack[root] = true;
            while let Some(&mut (v, ref mut pos)) = call.last_mut() {
                if *pos < self.out[v].len() {
                    let e = self.out[v][*pos];
                    *pos += 1;
                    if removed.get(e).copied().unwrap_or(false) {
                        continue;
                    }
                    let w = self.ends[e].1;
                    if index[w] == NONE {
                        index[w] = next;
                        low[w] = next;
                        next += 1;
                        stack.push(w);
                        on_stack[w] = true;
                        call.push((w, 0));
                    } else if on_stack[w] {
                        low[v] = low[v].min(index[w]);
                    }
                    continue;
                }
                call.pop();
                if let Some(&(parent, _)) = call.last() {
                    low[parent] = low[parent].min(low[v]);
                }
                if low[v] == index[v] {
                    let mut component = Vec::new();
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        component.push(w);
                        if w == v {
                            break;
                        }
                    }
                    if component.len() > 1 {
                        component.sort_unstable();
                        out.push(component);
                    }
                }
            }
        }
        out.sort_by(|a, b| self.graph.nodes[a[0]].id.cmp(&self.graph.nodes[b[0]].id));
        out
    }

    /// One concrete cycle through the component: the shortest one from its smallest saga id
    /// back to it, found breadth-first inside the component.
    pub(crate) fn cycle_in(&self, component: &[usize], removed: &[bool]) -> Option<FoundCycle> {
        let mut member = vec![false; self.out.len()];
        for &c in component {
            member[c] = true;
        }
        let start = *component
            .iter()
            .min_by(|a, b| self.graph.nodes[**a].id.cmp(&self.graph.nodes[**b].id))?;
        // parent edge of each node reached
        let mut parent: HashMap<usize, usize> = HashMap::new();
        let mut queue = VecDeque::from([start]);
        let mut closing = None;
        'search: while let Some(v) = queue.pop_front() {
            for &e in &self.out[v] {
                if removed.get(e).copied().unwrap_or(false) {
                    continue;
                }
                let w = self.ends[e].1;
                if !member[w] {
                    continue;
                }
                if w == start {
                    closing = Some(e);
                    break 'search;
                }
                if w != start && !parent.contains_key(&w) {
                    parent.insert(w, e);
                    queue.push_back(w);
                }
            }
        }
        let mut e = closing?;
        let mut edges = vec![e];
        let mut v = self.ends[e].0;
        while v != start {
            e = parent[&v];
            edges.push(e);
            v = self.ends[e].0;
        }
        edges.reverse();
        let mut sagas: Vec<String> = edges
            .iter()
            .map(|&e| self.graph.edges[e].waiter.clone())
            .collect();
        sagas.push(sagas[0].clone());
        Some(FoundCycle { sagas, edges })
    }

    /// The victim of a component: the lowest priority, then the youngest (largest `since`),
    /// then the smallest id — from registry data alone, so every process picks the same.
    pub(crate) fn victim(&self, component: &[usize]) -> usize {
        let nodes = &self.graph.nodes;
        *component
            .iter()
            .min_by(|&&a, &&b| {
                let (x, y) = (&nodes[a], &nodes[b]);
                x.priority
                    .cmp(&y.priority)
                    .then(y.since_ms.cmp(&x.since_ms))
                    .then(x.id.cmp(&y.id))
            })
            .expect("a component has nodes")
    }
}

/// Resolution of a graph as every process computes it: the cycles found, and the victims
/// whose waits (edges) are removed, one at a time, until no component has a cycle.
pub(crate) struct Resolution {
    /// Per victim: the cycle it breaks (as found before it was removed), and its node.
    pub steps: Vec<(FoundCycle, usize)>,
}

pub(crate) fn resolve(ix: &Indexed<'_>, limit: usize) -> Resolution {
    let mut removed = vec![false; ix.graph.edges.len()];
    let mut steps = Vec::new();
    for _ in 0..limit {
        let components = ix.cyclic_components(&removed);
        let Some(component) = components.first() else {
            break;
        };
        let victim = ix.victim(component);
        let Some(cycle) = ix.cycle_in(component, &removed) else {
            break;
        };
        for &e in &ix.out[victim] {
            removed[e] = true;
        }
        steps.push((cycle, victim));
    }
    Resolution { steps }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &str)]) -> WaitForGraph {
        let mut g = WaitForGraph {
            nodes: Vec::new(),
            edges: edges
                .iter()
                .enumerate()
                .map(|(i, (a, b))| GraphEdge {
                    waiter: a.to_string(),
                    holder: b.to_string(),
                    lock_key: format!("lock:{i}"),
                    waiter_id: format!("w-{i}"),
                    waited_ms: 0,
                    holder_token: None,
                })
                .collect(),
        };
        g.complete_nodes();
        g
    }

    fn cycles(g: &WaitForGraph) -> Vec<Vec<String>> {
        let ix = g.indexed();
        let removed = vec![false; g.edges.len()];
        ix.cyclic_components(&removed)
            .iter()
            .filter_map(|c| ix.cycle_in(c, &removed))
            .map(|c| c.sagas)
            .collect()
    }

    #[test]
    fn the_seeds_false_cycle_is_not_reported() {
        // A→B, B→C, C→B, D→A: the seed reports [D, A]; the only cycle is B–C.
        let g = graph(&[("A", "B"), ("B", "C"), ("C", "B"), ("D", "A")]);
        assert_eq!(cycles(&g), vec![vec!["B", "C", "B"]]);
    }

    #[test]
    fn an_acyclic_graph_has_no_cycle() {
        let edges: Vec<(String, String)> = (0..1000)
            .map(|i| (format!("s{i}"), format!("s{}", i + 1)))
            .collect();
        let refs: Vec<(&str, &str)> = edges
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        assert!(cycles(&graph(&refs)).is_empty());
    }

    #[test]
    fn long_disjoint_and_overlapping_cycles() {
        let mut edges: Vec<(String, String)> = Vec::new();
        for n in [2usize, 3, 50] {
            for i in 0..n {
                edges.push((format!("c{n}-{i}"), format!("c{n}-{}", (i + 1) % n)));
            }
        }
        // two cycles sharing x: x→y→x and x→z→x
        for (a, b) in [("x", "y"), ("y", "x"), ("x", "z"), ("z", "x")] {
            edges.push((a.into(), b.into()));
        }
        let refs: Vec<(&str, &str)> = edges
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let g = graph(&refs);
        let found = cycles(&g);
        assert_eq!(found.len(), 4, "{found:?}");
        let lengths: Vec<usize> = found.iter().map(|c| c.len() - 1).collect();
        assert!(lengths.contains(&50) && lengths.contains(&3) && lengths.contains(&2));
        for c in &found {
            assert_eq!(c.first(), c.last());
        }
        // resolution breaks every cycle
        let ix = g.indexed();
        let r = resolve(&ix, 100);
        let mut removed = vec![false; g.edges.len()];
        for (_, v) in &r.steps {
            for &e in &ix.out[*v] {
                removed[e] = true;
            }
        }
        assert!(ix.cyclic_components(&removed).is_empty());
        assert_eq!(r.steps.len(), 4, "x breaks both of its cycles at once");
    }

    #[test]
    fn the_victim_is_the_lowest_priority_then_youngest_then_smallest_id() {
        let mut g = graph(&[("a", "b"), ("b", "c"), ("c", "a")]);
        for n in &mut g.nodes {
            n.priority = 5;
            n.since_ms = 100;
        }
        let ix_victim = |g: &WaitForGraph| {
            let ix = g.indexed();
            let c = ix.cyclic_components(&vec![false; g.edges.len()]).remove(0);
            g.nodes[ix.victim(&c)].id.clone()
        };
        assert_eq!(ix_victim(&g), "a", "smallest id");
        g.nodes.iter_mut().find(|n| n.id == "c").unwrap().since_ms = 200;
        assert_eq!(ix_victim(&g), "c", "youngest");
        g.nodes.iter_mut().find(|n| n.id == "b").unwrap().priority = 1;
        assert_eq!(ix_victim(&g), "b", "lowest priority");
    }

    #[test]
    fn deep_graphs_need_no_recursion() {
        let n = 200_000;
        let edges: Vec<(String, String)> = (0..n)
            .map(|i| (format!("s{i}"), format!("s{}", (i + 1) % n)))
            .collect();
        let refs: Vec<(&str, &str)> = edges
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let found = cycles(&graph(&refs));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].len(), n + 1);
    }
}
