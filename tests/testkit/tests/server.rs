// SPDX-License-Identifier: MIT OR Apache-2.0
//! The throwaway server's own hygiene: its output goes to a log in its directory, and the
//! directory and the process are gone afterwards, also when it never started.

use std::path::PathBuf;

use txcoord_testkit::RedisServer;

fn alive(pid: u32) -> bool {
    // a reaped child has no /proc entry; a zombie would still show as "Z"
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

#[test]
fn a_server_logs_to_its_directory_and_leaves_nothing_behind() {
    let mut server = RedisServer::start();
    let dir = server.dir().to_path_buf();
    let pid = server.pid().expect("running");
    assert!(dir.is_dir());
    let mut con = server.connection();
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut con).unwrap();
    drop(con);
    // the log holds what the server prints: DEBUG LOG writes a line at warning level
    let _: () = redis::cmd("DEBUG")
        .arg("LOG")
        .arg("testkit-marker")
        .query(&mut server.connection())
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !server.log_tail(50).contains("testkit-marker") {
        assert!(
            std::time::Instant::now() < deadline,
            "marker not in {}: {:?}",
            server.log_path().display(),
            server.log_tail(50)
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // a restart keeps the port and the directory, and appends to the same log
    let port = server.port();
    server.restart();
    assert_eq!(server.port(), port);
    assert!(server.keys().is_empty(), "no persistence");
    assert!(!alive(pid), "the first process was killed and reaped");
    let pid2 = server.pid().expect("running again");
    assert!(server.log_tail(1000).contains("testkit-marker"));
    drop(server);
    assert!(!alive(pid2), "killed and reaped on drop");
    assert!(!dir.exists(), "{} removed on drop", dir.display());
}

#[test]
fn a_server_that_cannot_start_shows_its_log_and_leaves_no_directory() {
    let panic = std::panic::catch_unwind(|| RedisServer::start_with(&["--no-such-directive", "1"]))
        .err()
        .expect("start-up fails");
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .expect("a message");
    // redis-server's own complaint, read from its log
    assert!(
        message.contains("no-such-directive"),
        "the log's end is in the message: {message}"
    );
    let log = message
        .split_whitespace()
        .find(|w| w.contains("txcoord-redis-") && w.ends_with("redis.log:"))
        .map(|w| PathBuf::from(w.trim_end_matches(':')))
        .unwrap_or_else(|| panic!("no log path in {message}"));
    let dir = log.parent().unwrap();
    assert!(
        !dir.exists(),
        "{} removed after the failed start",
        dir.display()
    );
}
