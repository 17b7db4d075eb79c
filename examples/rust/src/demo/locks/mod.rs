// SPDX-License-Identifier: MIT OR Apache-2.0
//! `make demo-locks`: one product in three languages. A Rust task (here), a Python worker
//! (`examples/demo/worker.py`) and a Node service (`examples/demo/worker.js`) contend for one
//! lock on one Redis; the lock is handed over on release from any language to any other; every
//! write is fenced by the lock's token; then a Python holder is frozen past its TTL, the Node
//! service takes over, and the Python worker, woken up, is told it lost the lock while its late
//! write is refused by the fence.
//!
//! The orchestrator starts a throwaway redis-server (or uses `$REDIS_URL`), the two workers,
//! sends them JSON commands on stdin, reads their JSON events from stdout, prints one
//! time-ordered log as it goes and a summary at the end. It exits non-zero if a guarantee is
//! broken: overlapping holders, a token going backwards, a stale write accepted, no lost signal.
//!
//! Environment: `REDIS_URL`; `TXCOORD_DEMO_PYTHON`, `TXCOORD_DEMO_NODE` (see
//! [`crate::demo::process`]); `TXCOORD_DEMO_PAUSED=node` freezes the Node service instead and
//! lets the Python worker take over.

mod printer;
mod summary;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedSender;
use txcoord::{Client, LockManager};

use super::event::{now_ms, Event, Who};
use super::hub::{Hub, REORDER_WINDOW_MS};
use super::process::{node_program, python_program, repo_root, Proc};
use printer::Printer;

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
/// The storage every worker writes to, fenced by the lock's token (shared with the workers).
const FENCED_WRITE: &str = include_str!("../../../../demo/fenced_write.lua");

type LockHub = Hub<Printer>;

/// The lock story, start to end: 0 when every guarantee held, 1 when one broke, 2 when the
/// story could not be told.
pub async fn main() -> ExitCode {
    let mut hub = Hub::new(Printer::new(now_ms()));
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
    python: Proc,
    node: Proc,
}

impl Workers {
    fn get(&mut self, who: Who) -> &mut Proc {
        match who {
            Who::Python => &mut self.python,
            Who::Node => &mut self.node,
            _ => unreachable!("only python and node are child processes"),
        }
    }
}

/// Scene 1: the Rust task, the Python worker and the Node service contend for `RESOURCE`.
async fn contend(
    hub: &mut LockHub,
    workers: &mut Workers,
    manager: &LockManager,
    store: &redis::Client,
) -> Result<(), String> {
    let mark = hub.mark();
    hub.phase(format!(
        "1. rust task, python worker and node service: {ROUNDS} rounds each on \
         lock:{RESOURCE} (ttl {TTL_MS} ms; each hold: one fenced write, {}-{} ms of work; \
         {}-{} ms idle between holds)",
        WORK_MS[0], WORK_MS[1], IDLE_MS[0], IDLE_MS[1]
    ));
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
pub struct Scene {
    frozen_for: Duration,
    resumed_at: f64,
}

/// Scene 2: `paused` holds `LEDGER` with a short TTL and freezes (SIGSTOP, by itself, between
/// its check and its write); `taker` takes the lock over once the key expired; `paused` is
/// resumed (SIGCONT, from here), must hear that it lost the lock, and its late write must be
/// refused.
async fn lost_lock(
    hub: &mut LockHub,
    workers: &mut Workers,
    paused: Who,
    taker: Who,
    broken: &mut Vec<String>,
) -> Result<Scene, String> {
    let (pn, tn) = (paused.name(), taker.name());
    let mark = hub.mark();
    hub.phase(format!(
        "2. a lost lock: {pn} holds lock:{LEDGER} with a {SHORT_TTL_MS} ms ttl and freezes \
         before it writes; {tn} takes over"
    ));
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
async fn finish(hub: &mut LockHub, workers: &mut Workers, broken: &mut Vec<String>) {
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

/// Ok(true): every guarantee held; Ok(false): one was broken (the summary says which).
async fn run(hub: &mut LockHub) -> Result<bool, String> {
    let wall = Instant::now();
    let root = repo_root();
    let (url, _server) = super::redis_url();
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
    let demo = root.join("examples/demo");
    let mut workers = Workers {
        python: Proc::worker(
            Who::Python,
            &python_program(&root),
            &demo.join("worker.py"),
            &root,
            &url,
            &tx,
        )?,
        node: Proc::worker(
            Who::Node,
            &node_program(),
            &demo.join("worker.js"),
            &root,
            &url,
            &tx,
        )?,
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
    summary::summary(
        &mut events,
        &summary::Inputs {
            store: &store,
            versions: &versions,
            paused,
            taker,
            scene: &scene,
            rust_client: &client,
        },
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
