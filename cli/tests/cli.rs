// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `txcoord` command against a real redis-server: listings, the graph with its cycles,
//! JSON output, exit codes and one-line errors.

use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use txcoord::{LockManager, ManagerOptions, RedisSagaRepository, SagaRecord, SagaRepository};
use txcoord_testkit::RedisServer;

fn txcoord(server: Option<&RedisServer>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_txcoord"));
    cmd.env_remove("REDIS_URL");
    if let Some(s) = server {
        cmd.arg("--redis").arg(s.url());
    }
    cmd.args(args).output().expect("run txcoord")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn manager(c: &txcoord::Client, owner: &str) -> LockManager {
    LockManager::with_options(
        c,
        ManagerOptions::new()
            .set_owner_id(owner)
            .set_deadlock_timeout(Duration::ZERO),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_graph_and_sagas_show_a_deadlock() {
    let server = RedisServer::start();
    let c = txcoord::Client::open(&server.url()).unwrap();
    let (a, b) = (manager(&c, "saga-a"), manager(&c, "saga-b"));
    let held = a
        .acquire_lock("x", Duration::from_secs(60), Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    b.acquire_lock("y", Duration::from_secs(60), Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    let (a2, b2) = (a.clone(), b.clone());
    let w1 = tokio::spawn(async move {
        a2.acquire_lock("y", Duration::from_secs(60), Duration::from_secs(20))
            .await
    });
    let w2 = tokio::spawn(async move {
        b2.acquire_lock("x", Duration::from_secs(60), Duration::from_secs(20))
            .await
    });

    // the graph: both waits present, the cycle in red, exit 3 with --fail-on-deadlock
    let mut graph = None;
    for _ in 0..200 {
        let o = txcoord(Some(&server), &["graph", "--fail-on-deadlock"]);
        if o.status.code() == Some(3) {
            graph = Some(stdout(&o));
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await; // the waits are queueing
    }
    let dot = graph.expect("a deadlock");
    assert!(dot.starts_with("digraph waitfor {"), "{dot}");
    assert!(
        dot.contains("\"saga-a\" -> \"saga-b\" [label=\"lock:y"),
        "{dot}"
    );
    assert!(dot.matches("color=red, penwidth=2").count() == 2, "{dot}");
    let o = txcoord(Some(&server), &["graph", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["cycles"][0].as_array().unwrap().len(), 3);

    // the snapshot drawn later, without Redis: the same picture
    let snapshot = std::env::temp_dir().join(format!("txcoord-graph-{}.json", std::process::id()));
    std::fs::write(&snapshot, &o.stdout).unwrap();
    let later = txcoord(None, &["graph", "--from", snapshot.to_str().unwrap()]);
    let _ = std::fs::remove_file(&snapshot);
    assert!(later.status.success(), "{}", stderr(&later));
    let redrawn = stdout(&later);
    assert!(
        redrawn.contains("\"saga-a\" -> \"saga-b\" [label=\"lock:y"),
        "{redrawn}"
    );
    assert_eq!(
        redrawn.matches("color=red, penwidth=2").count(),
        2,
        "{redrawn}"
    );

    // locks: both held, with their owners, tokens and the other saga waiting
    let o = txcoord(Some(&server), &["locks", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let x = v
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["key"] == "lock:x")
        .unwrap();
    assert_eq!(x["holder"]["ownerId"], "saga-a");
    assert_eq!(x["holder"]["token"].as_u64(), held.fencing_token());
    assert_eq!(x["waiters"][0]["ownerId"], "saga-b");
    let table = stdout(&txcoord(Some(&server), &["locks"]));
    assert!(table.starts_with("LOCK"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("lock:y") && l.contains("saga-b")),
        "{table}"
    );
    w1.abort();
    w2.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sagas_lists_active_and_stuck_ones() {
    let server = RedisServer::start();
    let c = txcoord::Client::open(&server.url()).unwrap();
    let repo = Arc::new(RedisSagaRepository::new(&c));
    let mut stuck = SagaRecord::new("old-1", "CreateOrderSaga");
    stuck.updated_at = SystemTime::now() - Duration::from_secs(3600);
    stuck.stuck_reason = Some("no-progress".into());
    repo.save(&stuck).await.unwrap();
    repo.save(&SagaRecord::new("new-1", "CreateOrderSaga"))
        .await
        .unwrap();
    let o = txcoord(Some(&server), &["sagas", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    let o = txcoord(Some(&server), &["sagas", "--stuck"]);
    let t = stdout(&o);
    assert!(t.lines().next().unwrap().starts_with("SAGA"), "{t}");
    assert_eq!(t.lines().count(), 2, "{t}");
    assert!(t.contains("old-1") && t.contains("no-progress"), "{t}");
}

#[test]
fn errors_are_one_line_with_meaningful_exit_codes() {
    // unreachable Redis: exit 1, one line
    let o = Command::new(env!("CARGO_BIN_EXE_txcoord"))
        .args(["--redis", "redis://127.0.0.1:1", "locks"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.starts_with("txcoord: cannot reach Redis"), "{err}");
    // a bad URL: exit 1, naming it
    let o = txcoord(None, &["--redis", "http://x", "locks"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("url"), "{}", stderr(&o));
    // bad usage: exit 2
    let o = txcoord(None, &["locks"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "--redis (or REDIS_URL) is required"
    );
    let o = txcoord(None, &["nonsense"]);
    assert_eq!(o.status.code(), Some(2));
    // a snapshot that is not a graph: exit 1, naming the flag
    let o = txcoord(None, &["graph", "--from", "/nonexistent/graph.json"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).starts_with("txcoord: --from"), "{}", stderr(&o));
    // --help lists every command
    let help = stdout(&txcoord(None, &["--help"]));
    for cmd in ["locks", "graph", "sagas", "monitor"] {
        assert!(help.contains(cmd), "{help}");
    }
}
