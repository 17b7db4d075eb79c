// SPDX-License-Identifier: MIT OR Apache-2.0
//! Process control: the workers in other languages and the sidecars are child processes whose
//! output lines become events (JSON commands go in on stdin where the child takes them).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedSender;

use super::event::{Event, Who};

/// Turns one output line of a child into an event.
pub type Parse = fn(Who, &str) -> Event;

/// A stderr line, as it is.
pub fn stderr_line(who: Who, line: &str) -> Event {
    Event::new(who, "stderr", json!({ "line": line }))
}

/// A child process, killed (and reaped) when dropped.
pub struct Proc {
    pub who: Who,
    pub child: Child,
    stdin: Option<ChildStdin>,
    pub pid: u32,
}

impl Proc {
    /// Starts `cmd`; each line of its stdout and stderr becomes an event through `out` and
    /// `err`, and its end an `exit` event. With `commands`, its stdin is a pipe for `send`.
    pub fn spawn(
        who: Who,
        cmd: &mut Command,
        commands: bool,
        out: Parse,
        err: Parse,
        tx: &UnboundedSender<Event>,
    ) -> Result<Proc, String> {
        let mut child = cmd
            .stdin(if commands {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                let args: Vec<String> = cmd
                    .get_args()
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect();
                format!(
                    "cannot start the {} {} ({} {}): {e}; scripts/demo.sh (make demo) builds \
                     what it needs",
                    who.name(),
                    who.role(),
                    cmd.get_program().to_string_lossy(),
                    args.join(" ")
                )
            })?;
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let tx_out = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx_out.send(out(who, &line));
            }
            let _ = tx_out.send(Event::new(who, "exit", json!({})));
        });
        let tx_err = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = tx_err.send(err(who, &line));
            }
        });
        let stdin = child.stdin.take();
        let pid = child.id();
        Ok(Proc {
            who,
            child,
            stdin,
            pid,
        })
    }

    /// A worker of the demo: `program script`, run from the repository root, with `REDIS_URL`,
    /// JSON commands on stdin and JSON events on stdout.
    pub fn worker(
        who: Who,
        program: &str,
        script: &Path,
        root: &Path,
        url: &str,
        tx: &UnboundedSender<Event>,
    ) -> Result<Proc, String> {
        Proc::spawn(
            who,
            Command::new(program)
                .arg(script)
                .current_dir(root)
                .env("REDIS_URL", url),
            true,
            Event::from_json_line,
            stderr_line,
            tx,
        )
    }

    /// Sends one JSON command (one line).
    pub fn send(&mut self, command: Value) -> Result<(), String> {
        let who = self.who.name();
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| format!("{who} takes no commands"))?;
        writeln!(stdin, "{command}")
            .and_then(|_| stdin.flush())
            .map_err(|e| format!("{who} does not take commands: {e}"))
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid; it has not been reaped (we hold `child`).
        unsafe {
            libc::kill(self.pid as libc::pid_t, signal);
        }
    }

    /// Whether the process is stopped (`T` in /proc/<pid>/stat); true where /proc is missing.
    pub fn is_stopped(&self) -> bool {
        match std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) {
            Ok(stat) => stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('T') || rest.starts_with('t')),
            Err(_) => true,
        }
    }

    /// Its exit status, waiting up to `timeout` (polled: the child's exit is not an event we
    /// can await here).
    pub async fn exit_status(&mut self, timeout: Duration) -> Result<ExitStatus, String> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                Ok(None) => {
                    return Err(format!(
                        "{} did not exit within {} ms",
                        self.who.name(),
                        timeout.as_millis()
                    ))
                }
                Err(e) => return Err(format!("{}: {e}", self.who.name())),
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The repository root (`TXCOORD_ROOT`, or two levels above this crate).
pub fn repo_root() -> PathBuf {
    match std::env::var_os("TXCOORD_ROOT") {
        Some(root) => PathBuf::from(root),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."),
    }
    .canonicalize()
    .expect("the repository root")
}

/// The Python of the workers: `TXCOORD_DEMO_PYTHON`, else the project's virtualenv
/// (`$TXCOORD_VENV`, default `.venv`).
pub fn python_program(root: &Path) -> String {
    if let Ok(p) = std::env::var("TXCOORD_DEMO_PYTHON") {
        return p;
    }
    let venv = std::env::var_os("TXCOORD_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv"));
    venv.join("bin/python").to_string_lossy().into_owned()
}

/// The Node of the workers: `TXCOORD_DEMO_NODE`, else `node`.
pub fn node_program() -> String {
    std::env::var("TXCOORD_DEMO_NODE").unwrap_or_else(|_| "node".into())
}
