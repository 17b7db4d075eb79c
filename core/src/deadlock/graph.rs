// SPDX-License-Identifier: MIT OR Apache-2.0
//! The wait-for graph among sagas and the search for its cycles: an iterative Tarjan
//! (strongly connected components, O(V+E), no recursion), one concrete cycle per component
//! by a breadth-first search inside it, and the victim rule every process applies alike.

use std::collections::{HashSet, VecDeque};
use std::hash::BuildHasher;

use hashbrown::hash_table::{Entry, HashTable};
use rustc_hash::FxBuildHasher;

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

/// The graph in index form: every saga id interned once to a dense index (the graph's nodes
/// first, in order, then the sagas its edges name but its nodes lack, in order of appearance),
/// and the outgoing edges of each node as one compressed sparse row, in edge order.
pub(crate) struct Indexed<'g> {
    pub graph: &'g WaitForGraph,
    /// The sagas the edges name but `graph.nodes` lacks: nodes `graph.nodes.len()..`.
    extra: Vec<&'g str>,
    /// Node `v`'s outgoing edges are the positions `offsets[v]..offsets[v + 1]`.
    offsets: Vec<u32>,
    /// Per position: the node the edge leads to.
    targets: Vec<u32>,
    /// Per position: the edge's index in the graph.
    edge_at: Vec<u32>,
}

/// A node or edge index that no node or edge has.
const NONE: u32 = u32::MAX;

impl WaitForGraph {
    pub(crate) fn indexed<'g>(&'g self) -> Indexed<'g> {
        assert!(
            self.nodes.len() + 2 * self.edges.len() < NONE as usize,
            "a wait-for graph of fewer than 2^31 edges and nodes"
        );
        let known = self.nodes.len();
        let mut ids = Interner::with_capacity(known + 16);
        for n in &self.nodes {
            // A repeated id names its last node, as it always has.
            ids.add_node(&n.id);
        }
        let mut ends: Vec<(u32, u32)> = Vec::with_capacity(self.edges.len());
        // The previous edge's ends: neighbouring edges often share a saga (the waiters of one
        // lock share its holder; a saga waiting on several locks, a chain of waits), and a
        // comparison with a string just read is cheaper than a lookup in a large table.
        let mut previous: [(&str, u32); 2] = [("", NONE), ("", NONE)];
        for edge in &self.edges {
            let mut id_of = |id: &'g str| -> u32 {
                for &(seen, v) in &previous {
                    if v != NONE && seen == id {
                        return v;
                    }
                }
                ids.intern(id)
            };
            let a = id_of(&edge.waiter);
            let b = id_of(&edge.holder);
            previous = [(&edge.waiter, a), (&edge.holder, b)];
            ends.push((a, b));
        }
        let extra = ids.names.split_off(known);
        let n = known + extra.len();
        // Counting sort of the edges by their source, stable: each node's edges in edge order.
        let mut offsets = vec![0u32; n + 1];
        for &(a, _) in &ends {
            offsets[a as usize + 1] += 1;
        }
        for v in 0..n {
            offsets[v + 1] += offsets[v];
        }
        let mut fill: Vec<u32> = offsets[..n].to_vec();
        let mut targets = vec![0u32; ends.len()];
        let mut edge_at = vec![0u32; ends.len()];
        for (e, &(a, b)) in ends.iter().enumerate() {
            let p = fill[a as usize] as usize;
            fill[a as usize] += 1;
            targets[p] = b;
            edge_at[p] = e as u32;
        }
        Indexed {
            graph: self,
            extra,
            offsets,
            targets,
            edge_at,
        }
    }

    /// One concrete cycle per deadlocked group of sagas (strongly connected component), in
    /// the seed's shape (`["B", "C", "B"]`), found in O(V+E) without recursion.
    pub fn cycles(&self) -> Vec<Vec<String>> {
        let ix = self.indexed();
        ix.cyclic_components(&[])
            .iter()
            .filter_map(|c| ix.cycle_in(c, &[]))
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
        let mut known: HashSet<&str, FxBuildHasher> =
            HashSet::with_capacity_and_hasher(self.nodes.len() + 16, FxBuildHasher);
        known.extend(self.nodes.iter().map(|n| n.id.as_str()));
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

/// Saga ids to dense indexes: hashbrown's table of indexes (the ids stay in `names`), hashed
/// with FxHash: the ids come from one's own application's registry, and the table lives for
/// one search.
struct Interner<'g> {
    table: HashTable<u32>,
    /// Per index, its id (a repeated node id: each of its nodes).
    names: Vec<&'g str>,
}

fn id_hash(id: &str) -> u64 {
    FxBuildHasher.hash_one(id)
}

impl<'g> Interner<'g> {
    fn with_capacity(n: usize) -> Interner<'g> {
        Interner {
            table: HashTable::with_capacity(n),
            names: Vec::with_capacity(n),
        }
    }

    /// A node's id: the next index, which a repeated id's entry then names.
    fn add_node(&mut self, id: &'g str) {
        let v = self.names.len() as u32;
        self.names.push(id);
        let names = &self.names;
        match self.table.entry(
            id_hash(id),
            |&i| names[i as usize] == id,
            |&i| id_hash(names[i as usize]),
        ) {
            Entry::Occupied(mut o) => *o.get_mut() = v,
            Entry::Vacant(e) => {
                e.insert(v);
            }
        }
    }

    /// The index of `id`, a new one if it has none.
    fn intern(&mut self, id: &'g str) -> u32 {
        let names = &self.names;
        match self.table.entry(
            id_hash(id),
            |&i| names[i as usize] == id,
            |&i| id_hash(names[i as usize]),
        ) {
            Entry::Occupied(o) => *o.get(),
            Entry::Vacant(e) => {
                let v = names.len() as u32;
                e.insert(v);
                self.names.push(id);
                v
            }
        }
    }
}

impl<'g> Indexed<'g> {
    /// The number of nodes.
    pub(crate) fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// A node's saga id.
    pub(crate) fn id(&self, v: usize) -> &'g str {
        let graph: &'g WaitForGraph = self.graph;
        match graph.nodes.get(v) {
            Some(n) => n.id.as_str(),
            None => self.extra[v - graph.nodes.len()],
        }
    }

    /// The edges (indexes in the graph) leaving node `v`, in edge order.
    pub(crate) fn out(&self, v: usize) -> impl Iterator<Item = usize> + '_ {
        let (from, to) = (self.offsets[v] as usize, self.offsets[v + 1] as usize);
        self.edge_at[from..to].iter().map(|&e| e as usize)
    }

    /// The strongly connected components with a cycle (two nodes or more), each as sorted node
    /// indexes, in a stable order. `removed[e]` edges are ignored (none if it is empty).
    pub(crate) fn cyclic_components(&self, removed: &[bool]) -> Vec<Vec<usize>> {
        let n = self.len();
        let is_removed = |p: usize| -> bool {
            !removed.is_empty() && removed.get(self.edge_at[p] as usize) == Some(&true)
        };
        let mut index = vec![NONE; n];
        let mut low = vec![0u32; n];
        let mut on_stack = vec![false; n];
        let mut stack: Vec<u32> = Vec::with_capacity(n);
        // (node, next position in its outgoing edges)
        let mut call: Vec<(u32, u32)> = Vec::with_capacity(n);
        let mut next = 0u32;
        let mut out = Vec::new();
        for root in 0..n {
            if index[root] != NONE {
                continue;
            }
            index[root] = next;
            low[root] = next;
            next += 1;
            stack.push(root as u32);
            on_stack[root] = true;
            call.push((root as u32, self.offsets[root]));
            while let Some(&mut (v, ref mut pos)) = call.last_mut() {
                let v = v as usize;
                let end = self.offsets[v + 1];
                if *pos < end {
                    let p = *pos as usize;
                    *pos += 1;
                    if is_removed(p) {
                        continue;
                    }
                    let w = self.targets[p] as usize;
                    if index[w] == NONE {
                        index[w] = next;
                        low[w] = next;
                        next += 1;
                        stack.push(w as u32);
                        on_stack[w] = true;
                        call.push((w as u32, self.offsets[w]));
                    } else if on_stack[w] {
                        low[v] = low[v].min(index[w]);
                    }
                    continue;
                }
                call.pop();
                if let Some(&(parent, _)) = call.last() {
                    let parent = parent as usize;
                    low[parent] = low[parent].min(low[v]);
                }
                if low[v] == index[v] {
                    // The component is the stack down to v.
                    let at = stack
                        .iter()
                        .rposition(|&w| w as usize == v)
                        .expect("v is on the stack");
                    if stack.len() - at > 1 {
                        let mut component: Vec<usize> =
                            stack[at..].iter().map(|&w| w as usize).collect();
                        component.sort_unstable();
                        out.push(component);
                    }
                    for &w in &stack[at..] {
                        on_stack[w as usize] = false;
                    }
                    stack.truncate(at);
                }
            }
        }
        out.sort_by(|a, b| self.id(a[0]).cmp(self.id(b[0])));
        out
    }

    /// One concrete cycle through the component (sorted node indexes, as
    /// [`Self::cyclic_components`] gives them): the shortest one from its smallest saga id
    /// back to it, found breadth-first inside the component.
    pub(crate) fn cycle_in(&self, component: &[usize], removed: &[bool]) -> Option<FoundCycle> {
        debug_assert!(component.windows(2).all(|w| w[0] < w[1]), "sorted");
        let local = |v: usize| component.binary_search(&v).ok();
        let start = *component
            .iter()
            .min_by(|a, b| self.id(**a).cmp(self.id(**b)))?;
        // Per member (by its place in `component`): the edge position it was reached by, and
        // the node that edge leaves.
        let mut parent: Vec<(u32, u32)> = vec![(NONE, NONE); component.len()];
        let mut queue: VecDeque<u32> = VecDeque::with_capacity(component.len());
        queue.push_back(start as u32);
        let mut closing = None;
        'search: while let Some(v) = queue.pop_front() {
            let v = v as usize;
            for p in self.offsets[v] as usize..self.offsets[v + 1] as usize {
                let e = self.edge_at[p] as usize;
                if removed.get(e).copied().unwrap_or(false) {
                    continue;
                }
                let w = self.targets[p] as usize;
                if w == start {
                    closing = Some((e, v));
                    break 'search;
                }
                let Some(l) = local(w) else {
                    continue;
                };
                if parent[l].0 == NONE {
                    parent[l] = (e as u32, v as u32);
                    queue.push_back(w as u32);
                }
            }
        }
        let (mut e, mut v) = closing?;
        let mut edges = vec![e];
        while v != start {
            let l = local(v).expect("a member");
            e = parent[l].0 as usize;
            v = parent[l].1 as usize;
            edges.push(e);
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
        for e in ix.out(victim) {
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
            for e in ix.out(*v) {
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
    fn sagas_missing_from_the_nodes_are_searched_too() {
        // Only some nodes listed, one of them twice: the edges name the rest.
        let complete = graph(&[("a", "b"), ("b", "a"), ("c", "d"), ("d", "e"), ("e", "c")]);
        let mut partial = complete.clone();
        partial.nodes = vec![complete.nodes[3].clone(), complete.nodes[3].clone()];
        assert_eq!(partial.cycles(), cycles(&complete));
        assert_eq!(
            partial.cycles(),
            vec![vec!["a", "b", "a"], vec!["c", "d", "e", "c"]]
        );
        let ix = partial.indexed();
        assert_eq!(ix.len(), 6, "two listed (one twice), four named by edges");
        assert_eq!(ix.id(2), "a");
        assert_eq!(ix.out(2).collect::<Vec<_>>(), vec![0]);
        // No nodes at all: the table of ids grows from its smallest size.
        let ring: Vec<(String, String)> = (0..1000)
            .map(|i| (format!("r{i}"), format!("r{}", (i + 7) % 1000)))
            .collect();
        let refs: Vec<(&str, &str)> = ring.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let complete = graph(&refs);
        let bare = WaitForGraph {
            nodes: Vec::new(),
            edges: complete.edges.clone(),
        };
        assert_eq!(bare.indexed().len(), 1000);
        let found = bare.cycles();
        assert_eq!(found, cycles(&complete));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].len(), 1001);
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
