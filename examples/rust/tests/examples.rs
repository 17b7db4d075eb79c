// SPDX-License-Identifier: MIT OR Apache-2.0
//! Every Rust example runs against a throwaway redis-server, and the README shows the
//! quickstart exactly as it is in the tested file.

use std::process::Command;

use txcoord_testkit::RedisServer;

fn run(bin: &str, server: &RedisServer) -> String {
    run_with(bin, &[], server, &[])
}

fn run_with(bin: &str, args: &[&str], server: &RedisServer, env: &[(&str, &str)]) -> String {
    let out = Command::new(bin)
        .args(args)
        .env("REDIS_URL", server.url())
        .envs(env.iter().copied())
        .output()
        .expect("run example");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{bin} failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn quickstart_runs() {
    let server = RedisServer::start();
    let out = run(env!("CARGO_BIN_EXE_quickstart"), &server);
    assert!(
        out.contains("holding lock:order:42 with fencing token Some("),
        "{out}"
    );
    assert!(out.contains("scoped work done under token Some("), "{out}");
    assert!(
        server.keys().iter().all(|k| !k.starts_with("lock:")),
        "released"
    );
}

/// `make demo-locks`: a Rust task, the Python worker and the Node service of examples/demo
/// contend for one lock, and a frozen holder in one language loses its lock to the other. Needs
/// the project's .venv (txcoord, redis-py) and the Node addon: `scripts/demo.sh --prepare`.
fn demo_keeps_its_guarantees(paused: &str) {
    let server = RedisServer::start();
    let out = run_with(
        env!("CARGO_BIN_EXE_demo"),
        &["locks"],
        &server,
        &[("TXCOORD_DEMO_PAUSED", paused)],
    );
    assert!(out.contains("every guarantee held"), "{out}");
    assert!(
        out.contains("mutual exclusion: no overlapping holds (30 holds)"),
        "{out}"
    );
    assert!(
        out.contains("fencing tokens strictly increasing: yes"),
        "{out}"
    );
    assert!(
        out.contains(&format!("{paused}'s lost-lock signal: \"")),
        "{out}"
    );
    assert!(out.contains("fenced out: yes"), "{out}");
    assert!(out.contains(" REFUSED by the fence"), "{out}");
    for who in ["rust", "python", "node"] {
        let acquisitions = out
            .lines()
            .filter(|l| l.contains(&format!(" {who:<7} acquired inventory:sku-42 ")))
            .count();
        assert_eq!(acquisitions, 10, "{who}: {out}");
    }
    assert!(out.contains("| all | "), "handoff table: {out}");
    assert!(
        server.keys().iter().all(|k| !k.starts_with("lock:")),
        "every lock released: {:?}",
        server.keys()
    );
}

#[test]
fn demo_python_frozen_node_takes_over() {
    demo_keeps_its_guarantees("python");
}

#[test]
fn demo_node_frozen_python_takes_over() {
    demo_keeps_its_guarantees("node");
}

/// `make demo`, shortened (fewer sagas, shorter thresholds): saga workers in three languages,
/// the stalled saga retried then compensated, the deadlock broken with its victim, the leader
/// sidecar killed and replaced, /metrics and the wait-for graph. Needs what the lock story
/// needs, and the txcoord CLI beside the demo binary (`scripts/demo.sh --prepare` builds both).
#[test]
fn saga_demo_tells_its_story() {
    let server = RedisServer::start();
    let out = run_with(
        env!("CARGO_BIN_EXE_demo"),
        &[],
        &server,
        &[("TXCOORD_DEMO_QUICK", "1")],
    );
    assert!(out.contains("the story happened as told"), "{out}");
    for (who, tag) in [("rust", "rs"), ("python", "py"), ("node", "js")] {
        let done = format!(" {who:<7} {tag}-");
        assert!(
            out.lines()
                .any(|l| l.contains(&done) && l.contains(" COMPLETED in ")),
            "{who} completed sagas: {out}"
        );
    }
    assert!(
        out.contains(
            "js-order-stalled: its record now says EXECUTING, retry count 1 (stuck: no-progress"
        ),
        "{out}"
    );
    assert!(
        out.contains("js-order-stalled: its record now says COMPENSATING, retry count 2"),
        "{out}"
    );
    assert!(out.contains("js-order-stalled COMPENSATED in "), "{out}");
    assert!(
        out.contains("js-order-deadlock is the DEADLOCK VICTIM, told the cycle (deadlock "),
        "{out}"
    );
    assert!(out.contains("py-order-deadlock COMPLETED in "), "{out}");
    assert!(
        out.contains("alert [critical] Stuck saga detected: OrderSaga"),
        "{out}"
    );
    assert!(out.contains("now LEADS (term "), "{out}");
    assert!(out.contains("\n  sagas_completed_total "), "{out}");
    assert!(out.contains("digraph waitfor {"), "{out}");
    assert!(
        server.keys().iter().all(|k| !k.starts_with("lock:")),
        "every lock released: {:?}",
        server.keys()
    );
}

/// The README's quickstarts are the tested files, verbatim (minus their SPDX line).
#[test]
fn readme_shows_the_tested_quickstarts() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).expect("README.md");
    for path in [
        "examples/rust/src/bin/quickstart.rs",
        "examples/python/quickstart.py",
        "examples/node/quickstart.js",
        "examples/node/quickstart.ts",
    ] {
        let file = std::fs::read_to_string(format!("{root}/{path}")).expect(path);
        let body: String = file
            .lines()
            .filter(|l| !l.starts_with("// SPDX") && !l.starts_with("# SPDX"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            readme.contains(body.trim()),
            "README.md must contain {path} verbatim"
        );
    }
}
