// SPDX-License-Identifier: MIT OR Apache-2.0
//! `txcoord graph`: the wait-for graph among sagas, as DOT with the cycles marked; from Redis,
//! or from a snapshot saved earlier with `--json`.

use std::collections::HashSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;

use crate::Outcome;

#[derive(clap::Args)]
pub struct Args {
    /// Write an SVG picture to this file (needs Graphviz's `dot`), instead of DOT on stdout.
    #[arg(long)]
    svg: Option<std::path::PathBuf>,
    /// JSON (nodes, edges, cycles) instead of DOT.
    #[arg(long)]
    json: bool,
    /// Exit with 3 when the graph has a deadlock.
    #[arg(long)]
    fail_on_deadlock: bool,
    /// Read the graph from this file (as `--json` writes it; `-` for stdin) instead of Redis:
    /// a snapshot taken while a deadlock stood, drawn later.
    #[arg(long, value_name = "FILE")]
    from: Option<std::path::PathBuf>,
}

impl Args {
    /// Whether the graph is read from Redis (not from a file).
    pub fn needs_redis(&self) -> bool {
        self.from.is_none()
    }
}

/// A graph as `--json` writes it (its `cycles` are found again).
fn read_snapshot(path: &std::path::Path) -> Result<txcoord::WaitForGraph, String> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).map_err(|e| format!("--from -: {e}"))?
    } else {
        std::fs::read_to_string(path).map_err(|e| format!("--from {}: {e}", path.display()))?
    };
    serde_json::from_str(&text).map_err(|e| {
        format!(
            "--from {}: not a graph as `txcoord graph --json` writes it: {e}",
            path.display()
        )
    })
}

/// A DOT string: quotes and backslashes escaped, line breaks as DOT's `\n`.
fn quote(s: &str) -> String {
    let escaped = s
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!("\"{escaped}\"")
}

/// The graph as DOT: sagas as nodes (priority in the label), edges labelled with the lock and
/// the wait; the edges and nodes of cycles in red.
pub fn dot(graph: &txcoord::WaitForGraph, cycles: &[Vec<String>]) -> String {
    let mut in_cycle: HashSet<(String, String)> = HashSet::new();
    let mut nodes_in_cycle: HashSet<String> = HashSet::new();
    for c in cycles {
        for w in c.windows(2) {
            in_cycle.insert((w[0].clone(), w[1].clone()));
            nodes_in_cycle.insert(w[0].clone());
        }
    }
    let mut out =
        String::from("digraph waitfor {\n  rankdir=LR;\n  node [shape=box, fontname=\"sans\"];\n");
    for n in &graph.nodes {
        let color = if nodes_in_cycle.contains(&n.id) {
            ", color=red, fontcolor=red"
        } else {
            ""
        };
        out.push_str(&format!(
            "  {} [label={}{color}];\n",
            quote(&n.id),
            quote(&format!("{}\npriority {}", n.id, n.priority))
        ));
    }
    for e in &graph.edges {
        let red = in_cycle.contains(&(e.waiter.clone(), e.holder.clone()));
        out.push_str(&format!(
            "  {} -> {} [label={}{}];\n",
            quote(&e.waiter),
            quote(&e.holder),
            quote(&format!("{} ({} ms)", e.lock_key, e.waited_ms)),
            if red { ", color=red, penwidth=2" } else { "" }
        ));
    }
    out.push_str("}\n");
    out
}

pub async fn run(client: Option<&txcoord::Client>, args: Args) -> Outcome {
    let graph = match (&args.from, client) {
        (Some(path), _) => read_snapshot(path)?,
        (None, Some(client)) => {
            let detector = txcoord::SagaDeadlockDetector::new(
                Arc::new(txcoord::RedisSagaRepository::new(client)),
                Arc::new(txcoord::TracingLogger),
                txcoord::DetectorOptions::new(),
            )
            .map_err(|e| e.to_string())?;
            detector.wait_for_graph().await.map_err(|e| e.to_string())?
        }
        (None, None) => return Err("--redis URL (or REDIS_URL) is required".into()),
    };
    let cycles = graph.cycles();
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "nodes": graph.nodes, "edges": graph.edges, "cycles": cycles })
        );
    } else if let Some(path) = &args.svg {
        let mut child = Command::new("dot")
            .arg("-Tsvg")
            .arg("-o")
            .arg(path)
            .stdin(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run Graphviz's dot (install graphviz): {e}"))?;
        child
            .stdin
            .take()
            .ok_or("dot has no stdin")?
            .write_all(dot(&graph, &cycles).as_bytes())
            .map_err(|e| format!("writing to dot: {e}"))?;
        let status = child.wait().map_err(|e| format!("dot: {e}"))?;
        if !status.success() {
            return Err(format!("dot failed ({status})"));
        }
    } else {
        print!("{}", dot(&graph, &cycles));
    }
    Ok(if args.fail_on_deadlock && !cycles.is_empty() {
        3
    } else {
        0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_are_drawn_in_red() {
        let graph = txcoord::WaitForGraph {
            nodes: vec![txcoord::SagaNode {
                id: "a".into(),
                priority: 3,
                since_ms: 0,
            }],
            edges: vec![
                txcoord::GraphEdge {
                    waiter: "a".into(),
                    holder: "b".into(),
                    lock_key: "lock:x".into(),
                    waiter_id: "w1".into(),
                    waited_ms: 5,
                    holder_token: None,
                },
                txcoord::GraphEdge {
                    waiter: "b".into(),
                    holder: "a".into(),
                    lock_key: "lock:y".into(),
                    waiter_id: "w2".into(),
                    waited_ms: 7,
                    holder_token: None,
                },
            ],
        };
        let cycles = graph.cycles();
        assert_eq!(cycles, vec![vec!["a", "b", "a"]]);
        let d = dot(&graph, &cycles);
        assert!(
            d.contains("\"a\" -> \"b\" [label=\"lock:x (5 ms)\", color=red"),
            "{d}"
        );
        // the label breaks its line with DOT's \n (one backslash, not an escaped one)
        assert!(
            d.contains("\"a\" [label=\"a\\npriority 3\", color=red"),
            "{d}"
        );
    }
}
