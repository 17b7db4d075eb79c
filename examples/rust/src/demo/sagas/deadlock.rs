// SPDX-License-Identifier: MIT OR Apache-2.0
//! Scene 3 of the saga story: a deadlock across languages, broken by the waiting acquisitions
//! themselves while no monitor leads, and its wait-for graph, read while it stands and drawn by
//! `txcoord graph --from`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use txcoord::{Client, DetectorOptions, RedisSagaRepository, SagaDeadlockDetector, TracingLogger};

use super::plan::Saga;
use super::{done, saga_event, SagaHub, Story, Workers};
use crate::demo::event::{now_ms, Who};
use crate::demo::process::Proc;

/// The wait-for graph as captured while the deadlock stood.
pub(super) struct Graph {
    pub(super) json: PathBuf,
    pub(super) dot: Option<String>,
    pub(super) dot_path: PathBuf,
    /// The SVG written, or why there is none.
    pub(super) svg: Result<PathBuf, String>,
    /// Its cycles, as found here.
    pub(super) cycles: Vec<Vec<String>>,
}

/// Scene 3: the two deadlock sagas each take their first lock; the leading sidecar is killed;
/// both then wait for the other's lock. No monitor leads while its lease runs out, so the
/// waiting acquisitions break the deadlock themselves, after their deadlock timeout. The
/// wait-for graph is read while the deadlock stands and drawn by `txcoord graph --from`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn scene(
    hub: &mut SagaHub,
    workers: &mut Workers,
    story: &mut Story,
    sidecars: &mut HashMap<Who, Proc>,
    client: &Client,
    cli: &Path,
    root: &Path,
) -> Result<(), String> {
    let (strong_who, strong) = story.deadlock.strong.clone();
    let (weak_who, weak) = story.deadlock.weak.clone();
    let first = |s: &Saga| s.steps[0].resource.clone().unwrap_or_default();
    hub.phase(format!(
        "3. the leader is killed (SIGKILL); meanwhile {} ({}, priority {}) holds {} and {} \
         ({}, priority {}) holds {}, then each waits for the other's: a deadlock across \
         languages, broken by the waiting acquisitions themselves after their deadlock \
         timeout (1 s)",
        strong.id,
        strong_who.name(),
        strong.priority,
        first(&strong),
        weak.id,
        weak_who.name(),
        weak.priority,
        first(&weak)
    ));
    let mark = hub.mark();
    workers.send(
        strong_who,
        json!({ "cmd": "dl_hold", "saga": strong.to_json() }),
    )?;
    workers.send(
        weak_who,
        json!({ "cmd": "dl_hold", "saga": weak.to_json() }),
    )?;
    done(hub, mark, strong_who, "dl_hold", 15).await?;
    done(hub, mark, weak_who, "dl_hold", 15).await?;

    // The leader, by its last pass.
    let leader = hub
        .all
        .iter()
        .rev()
        .find(|e| e.ev == "pass" && e.v["leader"] == true)
        .map(|e| e.who)
        .ok_or("no sidecar leads")?;
    hub.may_exit.insert(leader);
    sidecars
        .get(&leader)
        .ok_or("the leader is gone")?
        .signal(libc::SIGKILL);
    let killed_at = now_ms();
    story.killed = Some((leader, killed_at));
    hub.emit("killed", json!({ "who": leader.name() }));
    hub.note(format!("kills {} (SIGKILL), the leader", leader.name()));

    let mark = hub.mark();
    workers.send(strong_who, json!({ "cmd": "dl_wait", "id": strong.id }))?;
    workers.send(weak_who, json!({ "cmd": "dl_wait", "id": weak.id }))?;
    let mut formed = 0.0f64;
    for id in [&strong.id, &weak.id] {
        formed = formed.max(saga_event(hub, mark, id, "waiting", 15).await?.t);
    }
    story.deadlock_formed = Some(formed);

    // The graph, read here while the deadlock stands (the waits register as they begin).
    let detector = SagaDeadlockDetector::new(
        Arc::new(RedisSagaRepository::new(client)),
        Arc::new(TracingLogger),
        DetectorOptions::new(),
    )
    .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(5);
    let snapshot = loop {
        let graph = detector.wait_for_graph().await.map_err(|e| e.to_string())?;
        let cycles = graph.cycles();
        if !cycles.is_empty() {
            break Some((graph, cycles));
        }
        let broken = hub
            .all
            .iter()
            .skip(mark)
            .any(|e| e.ev == "victim" || e.ev == "finished");
        if broken || Instant::now() > deadline {
            break None;
        }
        hub.settle(Duration::from_millis(5)).await;
    };
    match snapshot {
        Some((graph, cycles)) => {
            let dir = root.join("target/demo");
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let json_path = dir.join("deadlock.json");
            let text = json!({ "nodes": graph.nodes, "edges": graph.edges, "cycles": cycles });
            std::fs::write(&json_path, text.to_string())
                .map_err(|e| format!("{}: {e}", json_path.display()))?;
            hub.note(format!(
                "reads the wait-for graph while the deadlock stands: {} (saved to {})",
                cycles[0].join(" -> "),
                json_path.strip_prefix(root).unwrap_or(&json_path).display()
            ));
            story.graph = Some(Graph {
                json: json_path,
                dot: None,
                dot_path: dir.join("deadlock.dot"),
                svg: Err("not drawn".into()),
                cycles,
            });
        }
        None => hub.note("found no cycle in the wait-for graph while it stood".into()),
    }

    saga_event(hub, mark, &weak.id, "victim", 15).await?;
    saga_event(hub, mark, &weak.id, "finished", 15).await?;
    saga_event(hub, mark, &strong.id, "finished", 20).await?;
    if let Some(graph) = &mut story.graph {
        draw(graph, cli)?;
    }
    Ok(())
}

/// `txcoord graph --from` draws the snapshot: DOT, and SVG where Graphviz's `dot` is.
fn draw(graph: &mut Graph, cli: &Path) -> Result<(), String> {
    let out = Command::new(cli)
        .arg("graph")
        .arg("--from")
        .arg(&graph.json)
        .output()
        .map_err(|e| format!("{}: {e}", cli.display()))?;
    if !out.status.success() {
        return Err(format!(
            "txcoord graph --from: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let dot = String::from_utf8_lossy(&out.stdout).into_owned();
    std::fs::write(&graph.dot_path, &dot)
        .map_err(|e| format!("{}: {e}", graph.dot_path.display()))?;
    graph.dot = Some(dot);
    let has_dot = Command::new("dot")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    graph.svg = if has_dot {
        let svg = graph.dot_path.with_extension("svg");
        let out = Command::new(cli)
            .arg("graph")
            .arg("--from")
            .arg(&graph.json)
            .arg("--svg")
            .arg(&svg)
            .output()
            .map_err(|e| format!("{}: {e}", cli.display()))?;
        if out.status.success() {
            Ok(svg)
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    } else {
        Err("Graphviz's `dot` is not installed, so no SVG (apt-get install graphviz)".into())
    };
    Ok(())
}
