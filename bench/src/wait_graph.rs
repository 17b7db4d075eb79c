// SPDX-License-Identifier: MIT OR Apache-2.0
//! Cycle finding on an in-memory wait-for graph: `WaitForGraph::cycles()` (Tarjan's strongly
//! connected components, then one concrete cycle per component) on a graph of a million edges
//! whose cycles are known — disjoint rings of 2 to 20 sagas, and acyclic chains of 100 sagas,
//! half of which end in a ring (their sagas wait on a deadlock without being in it).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use txcoord::{GraphEdge, SagaNode, WaitForGraph};

use crate::fmt::{median, num, Table};
use crate::sagas::{dur, Bench, Target};

/// The target: the search over a million edges in a second.
pub const TARGET: Duration = Duration::from_secs(1);
/// Edges per chain.
const CHAIN: usize = 100;

/// A graph and what its cycles must be.
pub struct Built {
    pub graph: WaitForGraph,
    /// Length of each ring, by ring number.
    pub rings: Vec<usize>,
    pub chains: usize,
}

/// The length of ring `k`: 2 to 20.
fn ring_len(k: usize) -> usize {
    2 + k % 19
}

/// A graph of exactly `edges` edges: rings (sagas `r<k>-<i>`) holding about a tenth of them,
/// chains (sagas `c<k>-<i>`) the rest; odd chains end in a ring member.
pub fn build(edges: usize) -> Built {
    let mut rings = Vec::new();
    let mut ring_edges = 0;
    while ring_edges < edges / 10 || rings.is_empty() {
        let n = ring_len(rings.len()).min(edges - ring_edges).max(2);
        if ring_edges + n > edges {
            break;
        }
        rings.push(n);
        ring_edges += n;
    }
    let mut g = WaitForGraph {
        nodes: Vec::with_capacity(edges + edges / CHAIN + 1),
        edges: Vec::with_capacity(edges),
    };
    let edge = |g: &mut WaitForGraph, waiter: &str, holder: &str| {
        let e = g.edges.len();
        g.edges.push(GraphEdge {
            waiter: waiter.to_string(),
            holder: holder.to_string(),
            lock_key: format!("lock:{holder}"),
            waiter_id: format!("b0b0b0b0b0b0b0b0-{e}"),
            waited_ms: 1_000,
            holder_token: Some(1_800_000_000_000_000 + e as u64),
        });
    };
    let node = |g: &mut WaitForGraph, id: String| {
        g.nodes.push(SagaNode {
            since_ms: 1_800_000_000_000 + g.nodes.len() as u64,
            priority: 0,
            id,
        })
    };
    for (k, &n) in rings.iter().enumerate() {
        for i in 0..n {
            node(&mut g, format!("r{k}-{i}"));
            edge(
                &mut g,
                &format!("r{k}-{i}"),
                &format!("r{k}-{}", (i + 1) % n),
            );
        }
    }
    let mut chains = 0;
    while g.edges.len() < edges {
        let k = chains;
        chains += 1;
        let len = CHAIN.min(edges - g.edges.len());
        let into_ring = k % 2 == 1;
        for i in 0..len {
            node(&mut g, format!("c{k}-{i}"));
            let holder = if into_ring && i + 1 == len {
                let r = k % rings.len();
                format!("r{r}-{}", k % rings[r])
            } else {
                format!("c{k}-{}", i + 1)
            };
            edge(&mut g, &format!("c{k}-{i}"), &holder);
        }
        if !into_ring {
            node(&mut g, format!("c{k}-{len}"));
        }
    }
    Built {
        graph: g,
        rings,
        chains,
    }
}

/// What is wrong with `cycles` for the rings of `built`, if anything.
pub fn check(built: &Built, cycles: &[Vec<String>]) -> Result<(), String> {
    if cycles.len() != built.rings.len() {
        return Err(format!(
            "{} cycles found, the graph has {}",
            cycles.len(),
            built.rings.len()
        ));
    }
    let mut seen = HashSet::new();
    for c in cycles {
        let ring_of =
            |s: &String| -> Option<usize> { s.strip_prefix('r')?.split_once('-')?.0.parse().ok() };
        let Some(k) = c.first().and_then(ring_of) else {
            return Err(format!("a cycle outside the rings: {:?}", head(c)));
        };
        let members: HashSet<&String> = c[..c.len() - 1].iter().collect();
        if c.first() != c.last()
            || c.len() - 1 != built.rings[k]
            || members.len() != built.rings[k]
            || c.iter().any(|s| ring_of(s) != Some(k))
        {
            return Err(format!(
                "cycle {:?} is not ring {k} of {} sagas",
                head(c),
                built.rings[k]
            ));
        }
        if !seen.insert(k) {
            return Err(format!("ring {k} reported twice"));
        }
    }
    Ok(())
}

fn head(c: &[String]) -> Vec<&String> {
    c.iter().take(6).collect()
}

pub fn run(b: &mut Bench) {
    let edges = b.cfg.graph_edges;
    let t0 = Instant::now();
    let built = build(edges);
    let build_time = t0.elapsed();
    let mut runs: Vec<Duration> = Vec::new();
    let mut cpus: Vec<Duration> = Vec::new();
    let ticks = crate::server::clock_ticks_per_second();
    let mut ok = true;
    for _ in 0..b.cfg.graph_reps {
        let c0 = crate::server::process_cpu(ticks);
        let t = Instant::now();
        let cycles = built.graph.cycles();
        runs.push(t.elapsed());
        if let Some((c0, c1)) = c0.zip(crate::server::process_cpu(ticks)) {
            cpus.push(c1.saturating_sub(c0));
        }
        if let Err(e) = check(&built, &cycles) {
            b.fail(format!("graph: {e}"));
            ok = false;
            break;
        }
    }
    let secs: Vec<f64> = runs.iter().map(Duration::as_secs_f64).collect();
    let med = median(&secs).map(Duration::from_secs_f64);
    let ring_edges: usize = built.rings.iter().sum();
    println!(
        "## Cycle finding in memory: WaitForGraph::cycles() on {} edges\n",
        num(edges as f64)
    );
    let mut t = Table::new(&[
        "graph",
        "sagas",
        "edges",
        "cycles (expected)",
        "time (median)",
        "runs",
        "CPU (runs)",
        "target",
        "result",
    ]);
    let met = med.map(|m| ok && m <= TARGET);
    t.row(vec![
        format!(
            "{} rings of 2–20 sagas ({} edges), {} chains of ≤ {CHAIN} (half end in a ring)",
            num(built.rings.len() as f64),
            num(ring_edges as f64),
            num(built.chains as f64)
        ),
        num(built.graph.nodes.len() as f64),
        num(built.graph.edges.len() as f64),
        if ok {
            format!(
                "{} ({})",
                num(built.rings.len() as f64),
                num(built.rings.len() as f64)
            )
        } else {
            format!("WRONG ({})", num(built.rings.len() as f64))
        },
        med.map(dur).unwrap_or_else(crate::fmt::dash),
        runs.iter().map(|d| dur(*d)).collect::<Vec<_>>().join(" / "),
        cpus.iter().map(|d| dur(*d)).collect::<Vec<_>>().join(" / "),
        format!("≤ {}", dur(TARGET)),
        crate::fmt::verdict(met).into(),
    ]);
    println!("{}", t.render());
    println!(
        "The public call as a user makes it (it looks for nodes the edges name but the graph \
         lacks, indexes the graph, runs an iterative Tarjan and one breadth-first search per \
         cyclic component); \
         every run's cycles are checked: each ring found once, whole, nothing else. Building \
         the graph ({}) is not counted. The target is on the wall-clock time; the process's CPU \
         time (user + system) beside it shows how much of it was the search on a shared \
         machine.\n",
        dur(build_time)
    );
    b.targets.push(Target::new(
        &format!(
            "cycle search, {}-edge graph in memory",
            crate::sagas::short(edges)
        ),
        "≤ 1 s",
        med.map(dur).unwrap_or_else(crate::fmt::dash),
        met,
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_graph_has_the_edges_asked_for_and_its_rings_are_its_cycles() {
        for edges in [100, 1_000, 12_345] {
            let built = build(edges);
            assert_eq!(built.graph.edges.len(), edges);
            let mut ids: Vec<&str> = built.graph.nodes.iter().map(|n| n.id.as_str()).collect();
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), built.graph.nodes.len(), "no node twice");
            let cycles = built.graph.cycles();
            check(&built, &cycles).unwrap();
        }
    }

    #[test]
    fn a_wrong_answer_is_caught() {
        let built = build(1_000);
        let mut cycles = built.graph.cycles();
        let last = cycles.pop().unwrap();
        assert!(check(&built, &cycles).is_err(), "one missing");
        cycles.push(last.clone());
        cycles.push(last);
        assert!(check(&built, &cycles).is_err(), "one twice");
        let mut cycles = built.graph.cycles();
        cycles[0] = vec!["c0-0".into(), "c0-1".into(), "c0-0".into()];
        assert!(check(&built, &cycles).is_err(), "a chain as a cycle");
    }
}
