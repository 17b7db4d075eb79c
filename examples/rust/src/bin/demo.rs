// SPDX-License-Identifier: MIT OR Apache-2.0
//! `make demo`: one product in three languages. A Rust task (here), a Python worker
//! (`examples/demo/worker.py`) and a Node service (`examples/demo/worker.js`) contend for one
//! lock on one Redis; the lock is handed over on release from any language to any other; every
//! write is fenced by the lock's token; then a Python holder is frozen past its TTL, the Node
//! service takes over, and the Python worker, woken up, is told it lost the lock while its late
//! write is refused by the fence.
//!
//! This binary is the orchestrator: it starts a throwaway redis-server (or uses `$REDIS_URL`),
//! the two workers (`.venv/bin/python` and `node`: `scripts/demo.sh` makes sure both are
//! built), sends them JSON commands on stdin, reads their JSON events from stdout, prints one
//! time-ordered log as it goes and a summary at the end. It exits non-zero if a guarantee is
//! broken: overlapping holders, a token going backwards, a stale write accepted, no lost signal.
//!
//! Environment: `REDIS_URL`; `TXCOORD_DEMO_PYTHON` (default `$TXCOORD_VENV/bin/python`, else
//! `.venv/bin/python`), `TXCOORD_DEMO_NODE` (default `node`); `TXCOORD_DEMO_PAUSED=node`
//! freezes the Node service instead and lets the Python worker take over.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use txcoord::{Client, LockManager};
use txcoord_testkit::RedisServer;

/// The contended resource (lock key `lock:inventory:sku-42`).
const RESOURCE: &str = "inventory:sku-42";
/// Rounds per worker on it, the lock's TTL, and how long each hold works (ms, uniform).
const ROUNDS: usize = 10;
const TTL_MS: u64 = 5_000;
const WORK_MS: [u64; 2] = [10, 40];
/// How long a worker idles between two holds (ms, uniform): sometimes nobody is waiting.
const IDLE_MS: [u64; 2] = [0, 60];
/// The resource of the lost-lock scene, and the frozen holder's TTL.
const LEDGER: &str = "ledger:7";
const SHORT_TTL_MS: u64 = 1_000;
/// Events are printed in time order once they are this old (children report over pipes).
const REORDER_WINDOW_MS: f64 = 150.0;
/// The storage every worker writes to, fenced by the lock's token (shared with the workers).
const FENCED_WRITE: &str = include_str!("../../../demo/fenced_write.lua");

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
enum Who {
    Demo,
    Rust,
    Python,
    Node,
}

impl Who {
    fn name(self) -> &'static str {
        match self {
            Who::Demo => "demo",
            Who::Rust => "rust",
            Who::Python => "python",
            Who::Node => "node",
        }
    }
    fn role(self) -> &'static str {
        match self {
            Who::Demo => "orchestrator",
            Who::Rust => "task",
            Who::Python => "worker",
            Who::Node => "service",
        }
    }
}

/// One thing that happened: `ev` is the kind, `v` the whole JSON object a worker printed.
#[derive(Clone, Debug)]
struct Event {
    who: Who,
    t: f64,
    ev: String,
    v: Value,
}

impl Event {
    fn new(who: Who, ev: &str, v: Value) -> Event {
        Event {
            who,
            t: now_ms(),
            ev: ev.to_string(),
            v,
        }
    }
    fn str(&self, key: &str) -> &str {
        self.v.get(key).and_then(Value::as_str).unwrap_or("")
    }
    fn num(&self, key: &str) -> Option<f64> {
        self.v.get(key).and_then(Value::as_f64)
    }
    fn token(&self) -> Option<u64> {
        self.v.get("token").and_then(Value::as_u64)
    }
    fn is(&self, who: Who, ev: &str) -> bool {
        self.who == who && self.ev == ev
    }
    fn on(&self, resource: &str) -> bool {
        self.str("resource") == resource
    }
}

/// Wall-clock milliseconds: the one clock every process of the demo can read.
fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
        * 1000.0
}

// ---------------------------------------------------------------------------------------------
// The log: every event, printed in time order as it ages past the reorder window.

#[derive(Default)]
struct Printer {
    start: f64,
    /// Per resource: the last release (who, when), to name handoffs as they happen.
    last_release: HashMap<String, (Who, f64)>,
    /// Per resource: who holds it now (as far as the log says), and the last token seen.
    holder: HashMap<String, Who>,
    last_token: HashMap<String, u64>,
}

impl Printer {
    fn line(&mut self, e: &Event) -> Option<String> {
        let resource = e.str("resource");
        let text = match e.ev.as_str() {
            "phase" => return Some(format!("\n{}", e.str("text"))),
            "note" => e.str("text").to_string(),
            "ready" => format!(
                "ready ({}, pid {})",
                e.str("version"),
                e.v["pid"].as_u64().unwrap_or(0)
            ),
            "acquired" => {
                let token = e.token().unwrap_or(0);
                let mut s = format!("acquired {resource:<16} token {token}");
                if let Some(asked) = e.num("asked") {
                    s += &format!("  waited {:>6.1} ms", e.t - asked);
                    if let Some((from, released)) = self.last_release.remove(resource) {
                        if from != e.who && asked < released {
                            s += &format!(
                                "  <- handoff {} -> {} in {:.2} ms",
                                from.name(),
                                e.who.name(),
                                e.t - released
                            );
                        }
                    }
                }
                if let Some(ttl) = e.num("ttl_ms") {
                    s += &format!("  (ttl {ttl} ms, renewed every {:.0} ms)", ttl / 3.0);
                }
                // Live alarms (the summary checks again, on the complete log).
                if let Some(other) = self.holder.insert(resource.to_string(), e.who) {
                    if resource == RESOURCE && other != e.who {
                        s += &format!("  !! OVERLAP: {} has not released", other.name());
                    }
                }
                if let Some(last) = self.last_token.insert(resource.to_string(), token) {
                    if token <= last {
                        s += &format!("  !! TOKEN NOT INCREASING (last {last})");
                    }
                }
                s
            }
            "release" => {
                if self.holder.get(resource) == Some(&e.who) {
                    self.holder.remove(resource);
                }
                self.last_release.insert(resource.to_string(), (e.who, e.t));
                if resource == RESOURCE {
                    return None; // the next acquisition names the handoff
                }
                format!("releases {resource}")
            }
            "write" => {
                let token = e.token().unwrap_or(0);
                match (e.v["accepted"].as_bool(), resource == RESOURCE) {
                    (Some(true), true) => return None, // the normal case, once per acquisition
                    (Some(true), false) => format!("write with token {token}: accepted"),
                    _ => format!(
                        "write with token {token}: REFUSED by the fence (a newer token has written)"
                    ),
                }
            }
            "paused" => format!(
                "checked is_held = true, about to write ... and the whole process freezes \
                 (SIGSTOP, pid {})",
                e.v["pid"].as_u64().unwrap_or(0)
            ),
            "resumed" => format!(
                "wakes up; is_held = {}; writes anyway, with its old token",
                e.v["is_held"].as_bool().unwrap_or(true)
            ),
            "lost" => format!(
                "LOST {resource}: its lost-lock signal, reason \"{}\" ({})",
                e.str("reason"),
                match e.str("reason") {
                    "taken" => "another holder's value is in the key",
                    "expired" => "the key expired before a renewal",
                    "deadline" => "its lease ran out before any renewal could run",
                    _ => "renewal failed",
                }
            ),
            "stderr" => format!("stderr: {}", e.str("line")),
            "output" => format!("stdout: {}", e.str("line")),
            "error" => format!("ERROR: {}", e.str("message")),
            _ => return None, // done, exit, started
        };
        Some(format!(
            "  {:>7.3}s  {:<7} {text}",
            (e.t - self.start) / 1000.0,
            e.who.name()
        ))
    }
}

struct Hub {
    rx: UnboundedReceiver<Event>,
    tx: UnboundedSender<Event>,
    /// Every event, in arrival order.
    all: Vec<Event>,
    /// Not printed yet.
    pending: Vec<Event>,
    printer: Printer,
    /// Set once the workers were told to exit.
    exiting: bool,
}

impl Hub {
    fn new(start: f64) -> Hub {
        let (tx, rx) = unbounded_channel();
        Hub {
            rx,
            tx,
            all: Vec::new(),
            pending: Vec::new(),
            printer: Printer {
                start,
                ..Printer::default()
            },
            exiting: false,
        }
    }

    fn emit(&mut self, ev: &str, v: Value) {
        self.push(Event::new(Who::Demo, ev, v));
    }

    fn note(&mut self, text: String) {
        self.emit("note", json!({ "text": text }));
    }

    fn push(&mut self, e: Event) {
        self.all.push(e.clone());
        self.pending.push(e);
    }

    /// Prints the events older than the reorder window (all of them if `everything`).
    fn flush(&mut self, everything: bool) {
        let horizon = if everything {
            f64::INFINITY
        } else {
            now_ms() - REORDER_WINDOW_MS
        };
        self.pending.sort_by(|a, b| a.t.total_cmp(&b.t));
        let n = self.pending.partition_point(|e| e.t <= horizon);
        let out: Vec<Event> = self.pending.drain(..n).collect();
        let mut stdout = std::io::stdout().lock();
        for e in &out {
            if let Some(line) = self.printer.line(e) {
                let _ = writeln!(stdout, "{line}");
            }
        }
        let _ = stdout.flush();
    }

    fn mark(&self) -> usize {
        self.all.len()
    }

    /// Waits for the first event since `mark` that `pred` accepts. A worker exiting or
    /// reporting an error meanwhile, or the timeout, is an error.
    async fn wait(
        &mut self,
        mark: usize,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&Event) -> bool,
    ) -> Result<Event, String> {
        let exiting = self.exiting;
        let check = |e: &Event| -> Result<bool, String> {
            if pred(e) {
                Ok(true)
            } else if (e.ev == "exit" && !exiting) || e.ev == "error" {
                Err(format!(
                    "{} {} while the demo waited for {what}",
                    e.who.name(),
                    if e.ev == "exit" {
                        "exited (its stderr, if any, is above)".to_string()
                    } else {
                        format!("failed: {}", e.str("message"))
                    },
                ))
            } else {
                Ok(false)
            }
        };
        for e in &self.all[mark.min(self.all.len())..] {
            if check(e)? {
                return Ok(e.clone());
            }
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        loop {
            tokio::select! {
                got = self.rx.recv() => {
                    let e = got.expect("the hub keeps a sender");
                    self.push(e.clone());
                    if check(&e)? {
                        return Ok(e);
                    }
                }
                _ = tick.tick() => self.flush(false),
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(format!("no {what} within {} ms", timeout.as_millis()));
                }
            }
        }
    }

    /// Lets events come in for `d` (printing as they age).
    async fn settle(&mut self, d: Duration) {
        let mark = self.mark();
        let _ = self.wait(mark, d, "nothing", |_| false).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The workers in other languages: child processes, JSON commands in, JSON events out.

struct Worker {
    who: Who,
    child: Child,
    stdin: ChildStdin,
    pid: u32,
}

impl Worker {
    fn spawn(
        who: Who,
        program: &str,
        script: &Path,
        root: &Path,
        url: &str,
        tx: &UnboundedSender<Event>,
    ) -> Result<Worker, String> {
        let mut child = Command::new(program)
            .arg(script)
            .current_dir(root)
            .env("REDIS_URL", url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start the {} {} ({program} {}): {e}; scripts/demo.sh (make demo) \
                     builds what it needs",
                    who.name(),
                    who.role(),
                    script.display()
                )
            })?;
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let tx_out = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let event = match serde_json::from_str::<Value>(&line) {
                    Ok(v) if v.get("ev").and_then(Value::as_str).is_some() => Event {
                        who,
                        t: v.get("t").and_then(Value::as_f64).unwrap_or_else(now_ms),
                        ev: v["ev"].as_str().unwrap_or_default().to_string(),
                        v,
                    },
                    _ => Event::new(who, "output", json!({ "line": line })),
                };
                let _ = tx_out.send(event);
            }
            let _ = tx_out.send(Event::new(who, "exit", json!({})));
        });
        let tx_err = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = tx_err.send(Event::new(who, "stderr", json!({ "line": line })));
            }
        });
        let stdin = child.stdin.take().expect("piped");
        let pid = child.id();
        Ok(Worker {
            who,
            child,
            stdin,
            pid,
        })
    }

    fn send(&mut self, command: Value) -> Result<(), String> {
        writeln!(self.stdin, "{command}")
            .and_then(|_| self.stdin.flush())
            .map_err(|e| format!("{} does not take commands: {e}", self.who.name()))
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid; it has not been reaped (we hold `child`).
        unsafe {
            libc::kill(self.pid as libc::pid_t, signal);
        }
    }

    /// Whether the process is stopped (`T` in /proc/<pid>/stat); true where /proc is missing.
    fn is_stopped(&self) -> bool {
        match std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) {
            Ok(stat) => stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('T') || rest.starts_with('t')),
            Err(_) => true,
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The Rust task: the same loop as the workers' `contend`, in this process.

/// The protected write: refused by the storage if a newer token has written since.
async fn fenced_write(
    con: &mut redis::aio::MultiplexedConnection,
    resource: &str,
    token: u64,
) -> Result<bool, String> {
    let accepted: i64 = redis::Script::new(FENCED_WRITE)
        .key(format!("demo:{resource}:fence"))
        .key(format!("demo:{resource}:log"))
        .arg(token)
        .arg(format!("rust {token}"))
        .invoke_async(con)
        .await
        .map_err(|e| format!("rust: fenced write: {e}"))?;
    Ok(accepted == 1)
}

async fn rust_task(
    manager: LockManager,
    store: redis::Client,
    tx: UnboundedSender<Event>,
) -> Result<(), String> {
    let emit = |ev: &str, v: Value| {
        let _ = tx.send(Event::new(Who::Rust, ev, v));
    };
    let mut con = store
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| format!("rust: connect: {e}"))?;
    let mut seed = now_ms().to_bits() | 1;
    let mut random = move |lo: u64, hi: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        lo + seed % (hi - lo + 1)
    };
    for _ in 0..ROUNDS {
        let asked = now_ms();
        let lock = manager
            .acquire_lock(
                RESOURCE,
                Duration::from_millis(TTL_MS),
                Duration::from_millis(10_000),
            )
            .await
            .map_err(|e| e.to_string())?
            .ok_or("rust: no lock within 10 s")?;
        let token = lock.fencing_token().ok_or("rust: no token")?;
        emit(
            "acquired",
            json!({ "resource": RESOURCE, "token": token, "asked": asked }),
        );
        let accepted = fenced_write(&mut con, RESOURCE, token).await?;
        emit(
            "write",
            json!({ "resource": RESOURCE, "token": token, "accepted": accepted }),
        );
        tokio::time::sleep(Duration::from_millis(random(WORK_MS[0], WORK_MS[1]))).await;
        emit("release", json!({ "resource": RESOURCE }));
        lock.release().await.map_err(|e| e.to_string())?;
        tokio::time::sleep(Duration::from_millis(random(IDLE_MS[0], IDLE_MS[1]))).await;
    }
    emit("done", json!({ "cmd": "contend" }));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The story, scene by scene.

/// The two child workers, addressed by language.
struct Workers {
    python: Worker,
    node: Worker,
}

impl Workers {
    fn get(&mut self, who: Who) -> &mut Worker {
        match who {
            Who::Python => &mut self.python,
            Who::Node => &mut self.node,
            _ => unreachable!("only python and node are child processes"),
        }
    }
}

/// Scene 1: the Rust task, the Python worker and the Node service contend for `RESOURCE`.
async fn contend(
    hub: &mut Hub,
    workers: &mut Workers,
    manager: &LockManager,
    store: &redis::Client,
) -> Result<(), String> {
    let mark = hub.mark();
    hub.emit(
        "phase",
        json!({ "text": format!(
            "1. rust task, python worker and node service: {ROUNDS} rounds each on \
             lock:{RESOURCE} (ttl {TTL_MS} ms; each hold: one fenced write, {}-{} ms of work; \
             {}-{} ms idle between holds)",
            WORK_MS[0], WORK_MS[1], IDLE_MS[0], IDLE_MS[1]) }),
    );
    let command = json!({ "cmd": "contend", "resource": RESOURCE, "rounds": ROUNDS,
                          "ttl_ms": TTL_MS, "work_ms": WORK_MS, "idle_ms": IDLE_MS });
    workers.python.send(command.clone())?;
    workers.node.send(command)?;
    let (manager, store, tx) = (manager.clone(), store.clone(), hub.tx.clone());
    let task = tokio::spawn(async move {
        let result = rust_task(manager, store, tx.clone()).await;
        if let Err(e) = &result {
            let _ = tx.send(Event::new(Who::Rust, "error", json!({ "message": e })));
        }
        result
    });
    for who in [Who::Rust, Who::Python, Who::Node] {
        hub.wait(mark, Duration::from_secs(60), "the end of scene 1", |e| {
            e.is(who, "done")
        })
        .await?;
    }
    task.await.map_err(|e| e.to_string())??;
    hub.settle(Duration::from_millis(REORDER_WINDOW_MS as u64))
        .await;
    Ok(())
}

/// What the demo itself measured in scene 2.
struct Scene {
    frozen_for: Duration,
    resumed_at: f64,
}

/// Scene 2: `paused` holds `LEDGER` with a short TTL and freezes (SIGSTOP, by itself, between
/// its check and its write); `taker` takes the lock over once the key expired; `paused` is
/// resumed (SIGCONT, from here), must hear that it lost the lock, and its late write must be
/// refused.
async fn lost_lock(
    hub: &mut Hub,
    workers: &mut Workers,
    paused: Who,
    taker: Who,
    broken: &mut Vec<String>,
) -> Result<Scene, String> {
    let (pn, tn) = (paused.name(), taker.name());
    let mark = hub.mark();
    hub.emit(
        "phase",
        json!({ "text": format!(
            "2. a lost lock: {pn} holds lock:{LEDGER} with a {SHORT_TTL_MS} ms ttl and freezes \
             before it writes; {tn} takes over") }),
    );
    workers
        .get(paused)
        .send(json!({ "cmd": "hold", "resource": LEDGER, "ttl_ms": SHORT_TTL_MS }))?;
    hub.wait(mark, Duration::from_secs(10), "the pause", |e| {
        e.is(paused, "paused")
    })
    .await?;
    let frozen_at = Instant::now();
    while !workers.get(paused).is_stopped() {
        if frozen_at.elapsed() > Duration::from_secs(2) {
            return Err(format!("{pn} did not stop"));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    hub.note(format!(
        "{pn} is frozen: no renewals; its key expires within {SHORT_TTL_MS} ms"
    ));
    workers
        .get(taker)
        .send(json!({ "cmd": "take", "resource": LEDGER, "ttl_ms": TTL_MS }))?;
    hub.wait(mark, Duration::from_secs(12), "the takeover", |e| {
        e.is(taker, "write") && e.on(LEDGER)
    })
    .await?;
    let frozen_for = frozen_at.elapsed();
    workers.get(paused).signal(libc::SIGCONT);
    let resumed_at = now_ms();
    hub.note(format!(
        "resumes {pn} (SIGCONT) after {:.0} ms frozen, while {tn} holds the lock",
        frozen_for.as_secs_f64() * 1000.0
    ));
    // The frozen holder finishes its command once it has heard of the loss.
    if let Err(e) = hub
        .wait(mark, Duration::from_secs(5), "the lost-lock signal", |e| {
            e.is(paused, "done")
        })
        .await
    {
        broken.push(e);
    }
    let mark = hub.mark();
    workers
        .get(taker)
        .send(json!({ "cmd": "release", "resource": LEDGER }))?;
    hub.wait(mark, Duration::from_secs(5), "the release", |e| {
        e.is(taker, "done")
    })
    .await?;
    Ok(Scene {
        frozen_for,
        resumed_at,
    })
}

/// The workers exit (cleanly, or it is reported) and the log is printed to its end.
async fn finish(hub: &mut Hub, workers: &mut Workers, broken: &mut Vec<String>) {
    let mark = hub.mark();
    hub.exiting = true;
    for who in [Who::Python, Who::Node] {
        if let Err(e) = workers.get(who).send(json!({ "cmd": "exit" })) {
            broken.push(e);
        }
    }
    for who in [Who::Python, Who::Node] {
        let exited = hub
            .wait(mark, Duration::from_secs(10), "the exit", |e| {
                e.is(who, "exit")
            })
            .await;
        match exited.and_then(|_| workers.get(who).child.wait().map_err(|e| e.to_string())) {
            Ok(status) if status.success() => {}
            Ok(status) => broken.push(format!(
                "the {} {} exited with {status}",
                who.name(),
                who.role()
            )),
            Err(e) => broken.push(e),
        }
    }
    hub.settle(Duration::from_millis(50)).await;
    hub.flush(true);
}

// ---------------------------------------------------------------------------------------------
// The analysis, on the complete log, and the summary.

struct Hold {
    who: Who,
    asked: Option<f64>,
    acquired: f64,
    released: Option<f64>,
    token: u64,
}

/// The holds on `resource`, in acquisition order (each worker's acquisition paired with its
/// next release).
fn holds(events: &[Event], resource: &str) -> Vec<Hold> {
    let mut out: Vec<Hold> = Vec::new();
    let mut open: HashMap<Who, usize> = HashMap::new();
    for e in events.iter().filter(|e| e.on(resource)) {
        match e.ev.as_str() {
            "acquired" => {
                open.insert(e.who, out.len());
                out.push(Hold {
                    who: e.who,
                    asked: e.num("asked"),
                    acquired: e.t,
                    released: None,
                    token: e.token().unwrap_or(0),
                });
            }
            "release" => {
                if let Some(i) = open.remove(&e.who) {
                    out[i].released = Some(e.t);
                }
            }
            _ => {}
        }
    }
    out
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The writes the store accepted for `resource`: (writer, token), in order.
fn stored_writes(store: &redis::Client, resource: &str) -> Vec<(String, u64)> {
    let Ok(mut con) = store.get_connection() else {
        return Vec::new();
    };
    let entries: Vec<String> = redis::cmd("LRANGE")
        .arg(format!("demo:{resource}:log"))
        .arg(0)
        .arg(-1)
        .query(&mut con)
        .unwrap_or_default();
    entries
        .iter()
        .filter_map(|s| {
            let (who, token) = s.split_once(' ')?;
            Some((who.to_string(), token.parse().ok()?))
        })
        .collect()
}

fn accepted(e: Option<&Event>) -> Option<bool> {
    e.and_then(|e| e.v["accepted"].as_bool())
}

/// Checks every guarantee on the complete log (and the store) and prints the summary.
#[allow(clippy::too_many_arguments)]
fn summary(
    events: &mut [Event],
    store: &redis::Client,
    versions: &BTreeMap<Who, String>,
    paused: Who,
    taker: Who,
    scene: &Scene,
    rust_client: &Client,
    broken: &mut Vec<String>,
) {
    events.sort_by(|a, b| a.t.total_cmp(&b.t));
    let (pn, tn) = (paused.name(), taker.name());

    // Scene 1: mutual exclusion, tokens, handoffs, the store.
    let held = holds(events, RESOURCE);
    let expected = ROUNDS * 3;
    if held.len() != expected {
        broken.push(format!(
            "{} acquisitions of {RESOURCE}, expected {expected}",
            held.len()
        ));
    }
    let mut overlaps = 0;
    let mut tokens_increase = true;
    let mut handoffs: Vec<f64> = Vec::new();
    let mut directions: BTreeMap<(Who, Who), Vec<f64>> = BTreeMap::new();
    for pair in held.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        // Acquired = when the acquire call returned, released = when release was called: the
        // measured holds lie inside the real ones, so an overlap here is a real overlap.
        let released = a.released.unwrap_or(f64::INFINITY);
        if released > b.acquired {
            overlaps += 1;
            broken.push(format!(
                "{} acquired {RESOURCE} {:.3} ms before {} released it",
                b.who.name(),
                released - b.acquired,
                a.who.name()
            ));
        }
        if b.token <= a.token {
            tokens_increase = false;
            broken.push(format!(
                "{RESOURCE}: token {} ({}) after token {} ({})",
                b.token,
                b.who.name(),
                a.token,
                a.who.name()
            ));
        }
        // A handoff: the next holder, in another language, was already waiting at the release.
        if a.who != b.who && b.asked.is_some_and(|asked| asked < released) {
            handoffs.push(b.acquired - released);
            directions
                .entry((a.who, b.who))
                .or_default()
                .push(b.acquired - released);
        }
    }
    handoffs.sort_by(|a, b| a.total_cmp(b));
    let refused = events
        .iter()
        .filter(|e| e.ev == "write" && e.on(RESOURCE) && accepted(Some(e)) != Some(true))
        .count();
    if refused > 0 {
        broken.push(format!(
            "{refused} writes of current holders of {RESOURCE} were refused"
        ));
    }
    let stored = stored_writes(store, RESOURCE);
    let stored_in_order = stored.windows(2).all(|p| p[1].1 > p[0].1);
    if stored.len() != expected || !stored_in_order {
        broken.push(format!(
            "the store holds {} writes for {RESOURCE} (expected {expected}), in token order: \
             {stored_in_order}",
            stored.len()
        ));
    }

    // Scene 2: the lost lock.
    let find = |who: Who, ev: &str| events.iter().find(|e| e.on(LEDGER) && e.is(who, ev));
    let old_token = find(paused, "acquired").and_then(Event::token);
    let new_token = find(taker, "acquired").and_then(Event::token);
    let lost = find(paused, "lost");
    let stale_refused = accepted(find(paused, "write")) == Some(false);
    if !matches!((old_token, new_token), (Some(a), Some(b)) if b > a) {
        tokens_increase = false;
        broken.push(format!(
            "{LEDGER}: {tn}'s token {new_token:?} is not above {pn}'s {old_token:?}"
        ));
    }
    if lost.is_none() {
        broken.push(format!("{pn} was never told it lost the lock"));
    }
    if !stale_refused {
        broken.push(format!("{pn}'s stale write was not refused"));
    }
    if accepted(find(taker, "write")) != Some(true) {
        broken.push(format!("{tn}'s write as the new holder was refused"));
    }
    if stored_writes(store, LEDGER).iter().any(|(w, _)| w == pn) {
        broken.push(format!("the ledger holds a write from {pn}"));
    }

    println!("\nsummary");
    println!("| worker | language | acquisitions | mean wait ms | max wait ms |");
    println!("|---|---|---:|---:|---:|");
    for who in [Who::Rust, Who::Python, Who::Node] {
        let waits: Vec<f64> = held
            .iter()
            .filter(|h| h.who == who)
            .filter_map(|h| h.asked.map(|a| h.acquired - a))
            .collect();
        let mean = waits.iter().sum::<f64>() / waits.len().max(1) as f64;
        let max = waits.iter().copied().fold(0.0, f64::max);
        println!(
            "| {} {} | {} | {} | {mean:.1} | {max:.1} |",
            who.name(),
            who.role(),
            versions[&who],
            waits.len()
        );
    }
    println!("\n| handoff (release -> waiter's acquire) | count | p50 ms | max ms |");
    println!("|---|---:|---:|---:|");
    for ((from, to), mut times) in directions {
        times.sort_by(|a, b| a.total_cmp(b));
        println!(
            "| {} -> {} | {} | {:.2} | {:.2} |",
            from.name(),
            to.name(),
            times.len(),
            percentile(&times, 0.5),
            times.last().copied().unwrap_or(0.0)
        );
    }
    println!(
        "| all | {} | {:.2} | {:.2} |\n",
        handoffs.len(),
        percentile(&handoffs, 0.5),
        handoffs.last().copied().unwrap_or(0.0)
    );
    println!(
        "mutual exclusion: {}",
        if overlaps == 0 {
            format!("no overlapping holds ({} holds)", held.len())
        } else {
            format!("{overlaps} OVERLAPS")
        }
    );
    let show = |t: Option<u64>| t.map_or("-".to_string(), |t| t.to_string());
    println!(
        "fencing tokens strictly increasing: {} ({} tokens from 3 languages on lock:{RESOURCE}; \
         {} -> {} on lock:{LEDGER}); the store took {} writes, in token order: {}",
        if tokens_increase { "yes" } else { "NO" },
        held.len(),
        show(old_token),
        show(new_token),
        stored.len(),
        if stored_in_order { "yes" } else { "NO" }
    );
    println!(
        "lost lock: {pn} frozen {:.0} ms with a {SHORT_TTL_MS} ms ttl, {tn} took over; \
         {pn}'s lost-lock signal: {}; its stale write (token {}) fenced out: {}",
        scene.frozen_for.as_secs_f64() * 1000.0,
        match lost {
            Some(e) => format!(
                "\"{}\", {:.0} ms after resuming",
                e.str("reason"),
                // the signal can be logged a hair before the resume note: show 0, not -0
                (e.t - scene.resumed_at).max(0.0)
            ),
            None => "NONE".into(),
        },
        show(old_token),
        if stale_refused { "yes" } else { "NO" }
    );
    let stats = rust_client.stats();
    println!(
        "rust client: {} acquire attempts, {} waits woken by release notices, {} by timers",
        stats.attempts, stats.wake_notified, stats.wake_timer
    );
}

// ---------------------------------------------------------------------------------------------

fn repo_root() -> PathBuf {
    match std::env::var_os("TXCOORD_ROOT") {
        Some(root) => PathBuf::from(root),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."),
    }
    .canonicalize()
    .expect("the repository root")
}

fn python_program(root: &Path) -> String {
    if let Ok(p) = std::env::var("TXCOORD_DEMO_PYTHON") {
        return p;
    }
    let venv = std::env::var_os("TXCOORD_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv"));
    venv.join("bin/python").to_string_lossy().into_owned()
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut hub = Hub::new(now_ms());
    match run(&mut hub).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            // What the workers said last (a Python traceback, a Node stack) comes first.
            hub.exiting = true;
            hub.settle(Duration::from_millis(200)).await;
            hub.flush(true);
            eprintln!("\ndemo failed: {e}");
            ExitCode::from(2)
        }
    }
}

/// Ok(true): every guarantee held; Ok(false): one was broken (the summary says which).
async fn run(hub: &mut Hub) -> Result<bool, String> {
    let wall = Instant::now();
    let root = repo_root();
    let mut _server = None;
    let url = match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            let server = RedisServer::start();
            let url = server.url();
            _server = Some(server);
            url
        }
    };
    let (paused, taker) = match std::env::var("TXCOORD_DEMO_PAUSED").as_deref() {
        Ok("node") => (Who::Node, Who::Python),
        _ => (Who::Python, Who::Node),
    };
    println!("txcoord demo: Rust, Python and Node contend for one lock on {url}");

    // The store starts empty (the locks' fence counters carry on, as they must).
    let store = redis::Client::open(url.as_str()).map_err(|e| e.to_string())?;
    let mut con = store.get_connection().map_err(|e| e.to_string())?;
    let _: () = redis::cmd("DEL")
        .arg(format!("demo:{RESOURCE}:fence"))
        .arg(format!("demo:{RESOURCE}:log"))
        .arg(format!("demo:{LEDGER}:fence"))
        .arg(format!("demo:{LEDGER}:log"))
        .query(&mut con)
        .map_err(|e| e.to_string())?;

    let tx = hub.tx.clone();
    let python = python_program(&root);
    let node = std::env::var("TXCOORD_DEMO_NODE").unwrap_or_else(|_| "node".into());
    let demo = root.join("examples/demo");
    let mut workers = Workers {
        python: Worker::spawn(
            Who::Python,
            &python,
            &demo.join("worker.py"),
            &root,
            &url,
            &tx,
        )?,
        node: Worker::spawn(Who::Node, &node, &demo.join("worker.js"), &root, &url, &tx)?,
    };
    let client = Client::open(&url).map_err(|e| e.to_string())?;
    let manager = LockManager::new(&client);
    client.ping().await.map_err(|e| e.to_string())?;
    hub.emit(
        "ready",
        json!({ "version": "Rust, this process", "pid": std::process::id() }),
    );
    let mut versions = BTreeMap::from([(Who::Rust, "Rust".to_string())]);
    for (who, language) in [(Who::Python, "Python"), (Who::Node, "Node")] {
        let ready = hub
            .wait(0, Duration::from_secs(30), "ready", |e| e.is(who, "ready"))
            .await?;
        versions.insert(who, format!("{language} {}", ready.str("version")));
    }

    let mut broken = Vec::new();
    contend(hub, &mut workers, &manager, &store).await?;
    let scene = lost_lock(hub, &mut workers, paused, taker, &mut broken).await?;
    finish(hub, &mut workers, &mut broken).await;
    let _ = manager.close().await;

    let mut events = hub.all.clone();
    summary(
        &mut events,
        &store,
        &versions,
        paused,
        taker,
        &scene,
        &client,
        &mut broken,
    );
    println!(
        "run time {:.1} s; {}",
        wall.elapsed().as_secs_f64(),
        if broken.is_empty() {
            "every guarantee held".to_string()
        } else {
            format!("GUARANTEES BROKEN:\n  - {}", broken.join("\n  - "))
        }
    );
    Ok(broken.is_empty())
}
