// SPDX-License-Identifier: MIT OR Apache-2.0
//! Every Rust example runs against a throwaway redis-server, and the README shows the
//! quickstart exactly as it is in the tested file.

use std::process::Command;

use txcoord_testkit::RedisServer;

fn run(bin: &str, server: &RedisServer) -> String {
    let out = Command::new(bin)
        .env("REDIS_URL", server.url())
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

#[test]
fn demo_runs_and_keeps_its_guarantees() {
    let server = RedisServer::start();
    let out = run(env!("CARGO_BIN_EXE_demo"), &server);
    assert!(
        out.contains("fencing tokens strictly increasing: yes"),
        "{out}"
    );
    assert!(
        out.contains("lost-lock signal: taken; stale write fenced out: yes"),
        "{out}"
    );
    assert_eq!(out.matches(" acquired  token ").count(), 20, "{out}");
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
