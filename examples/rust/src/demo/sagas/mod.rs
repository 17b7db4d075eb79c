// SPDX-License-Identifier: MIT OR Apache-2.0
//! `make demo`: sagas in three languages, watched by two monitor sidecars.
//!
//! 1. Saga workers in Rust (in this process), Python (`examples/demo/saga_worker.py`) and Node
//!    (`examples/demo/saga_worker.js`) run an order, payment and inventory mix. Each saga is a
//!    record in the built-in saga repository; its steps lock shared resources
//!    (`inventory:sku-N`, `account:M`) with the saga id as owner id, so they contend across
//!    languages.
//! 2. One saga stalls: its record stops moving while it says `EXECUTING`. The monitor finds it
//!    stuck (`no-progress`), retries it up to the limit, then marks it `COMPENSATING`; its
//!    worker compensates it (`COMPENSATED`).
//! 3. Two sagas in different languages deadlock; the waiting acquisitions break it themselves
//!    after their deadlock timeout (1 s); the wait-for graph is captured while it stands.
//! 4. Two `txcoord monitor` sidecars elect a leader; the leader is killed (SIGKILL) midway and
//!    the other takes over. Their alerts show in the log.
//! 5. A summary: sagas per language and status, the stalled saga, the deadlock, the failover,
//!    the surviving sidecar's `/metrics`, the wait-for graph.
//!
//! Exit status: 0 when the story happened as told, 1 when a part of it did not (the summary
//! says which), 2 when it could not be told. Environment: `REDIS_URL` (else a throwaway
//! redis-server), `TXCOORD_CLI` (the `txcoord` command; default: beside this program),
//! `TXCOORD_DEMO_QUICK=1` (fewer sagas, shorter thresholds: the test suite's run), and those
//! of [`crate::demo::process`].

mod deadlock;
mod plan;
mod printer;
mod rust_worker;
mod sidecar;
mod summary;

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use txcoord::{Client, RedisSagaRepository, SagaRecord, SagaRepository};

use super::event::{now_ms, Event, Who};
use super::hub::Hub;
use super::process::{node_program, python_program, repo_root, Proc};
use plan::{Deadlock, Saga};
use printer::Printer;
use rust_worker::RustWorker;
use sidecar::Settings;

type SagaHub = Hub<Printer>;

const WORKERS: [Who; 3] = [Who::Rust, Who::Python, Who::Node];
/// The worker whose saga stalls, and the two of the deadlock (the second one is the victim).
const STALLS: Who = Who::Node;
const DEADLOCK: (Who, Who) = (Who::Python, Who::Node);

/// How big and how fast the story is.
struct Config {
    per_language: usize,
    concurrency: usize,
    sidecars: Settings,
}

impl Config {
    fn from_env() -> Config {
        let quick = std::env::var("TXCOORD_DEMO_QUICK").is_ok_and(|v| v == "1");
        Config {
            per_language: if quick { 4 } else { 9 },
            concurrency: 3,
            sidecars: Settings {
                interval_s: 1,
                leader_ttl_ms: if quick { 3_000 } else { 4_000 },
                max_retries: 2,
                stuck_after_s: if quick { 2 } else { 3 },
                limit_s: if quick { 4 } else { 6 },
                types: plan::TYPES.to_vec(),
            },
        }
    }
}

/// The three saga workers, addressed by language.
struct Workers {
    rust: RustWorker,
    python: Proc,
    node: Proc,
}

impl Workers {
    fn send(&mut self, who: Who, command: Value) -> Result<(), String> {
        match who {
            Who::Rust => {
                self.rust.send(command);
                Ok(())
            }
            Who::Python => self.python.send(command),
            Who::Node => self.node.send(command),
            _ => unreachable!("{} runs no sagas", who.name()),
        }
    }
}

/// What the story measured, for the summary.
struct Story {
    start: f64,
    versions: BTreeMap<Who, String>,
    /// Every saga, with its worker.
    sagas: Vec<(Who, Saga)>,
    stalled: (Who, Saga),
    deadlock: Deadlock,
    /// When the second deadlocked saga began to wait.
    deadlock_formed: Option<f64>,
    graph: Option<deadlock::Graph>,
    /// The leader killed, when; who took over, when.
    killed: Option<(Who, f64)>,
    took_over: Option<(Who, f64)>,
    survivor_exit: Option<Result<i32, String>>,
    metrics: Result<String, String>,
    /// Each saga's record at the end.
    records: HashMap<String, SagaRecord>,
    /// Whether the demo's own redis-server holds only this run's sagas.
    own_server: bool,
    settings: Settings,
}

/// The saga story, start to end.
pub async fn main() -> ExitCode {
    let start = now_ms();
    let mut hub = Hub::new(Printer::new(start));
    match run(&mut hub, start).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            hub.exiting = true;
            hub.settle(Duration::from_millis(300)).await;
            hub.flush(true);
            eprintln!("\ndemo failed: {e}");
            ExitCode::from(2)
        }
    }
}

/// Waits for `who`'s `done` of command `cmd` since `mark`.
async fn done(
    hub: &mut SagaHub,
    mark: usize,
    who: Who,
    cmd: &str,
    secs: u64,
) -> Result<(), String> {
    let what = format!("the end of {}'s {cmd}", who.name());
    hub.wait(mark, Duration::from_secs(secs), &what, |e| {
        e.is(who, "done") && e.str("cmd") == cmd
    })
    .await
    .map(|_| ())
}

/// Waits for a saga event `ev` about saga `id` since `mark`.
async fn saga_event(
    hub: &mut SagaHub,
    mark: usize,
    id: &str,
    ev: &str,
    secs: u64,
) -> Result<Event, String> {
    let what = format!("{id}'s {ev}");
    hub.wait(mark, Duration::from_secs(secs), &what, |e| {
        e.ev == ev && e.str("id") == id
    })
    .await
}

async fn run(hub: &mut SagaHub, start: f64) -> Result<bool, String> {
    let wall = Instant::now();
    let Config {
        per_language,
        concurrency,
        sidecars: settings,
    } = Config::from_env();
    let root = repo_root();
    let cli = sidecar::program()?;
    let (url, server) = super::redis_url();
    let s = settings.clone();
    println!(
        "txcoord demo: sagas in Rust, Python and Node on {url}, watched by two `txcoord \
         monitor` sidecars\n(passes every {} s; a saga is stuck after {} s without an update, \
         long-running after {} s; {} retries, then compensation; leader lease {} ms)",
        s.interval_s, s.stuck_after_s, s.limit_s, s.max_retries, s.leader_ttl_ms
    );
    let client = Client::open(&url).map_err(|e| e.to_string())?;
    client.ping().await.map_err(|e| e.to_string())?;
    let tx = hub.tx.clone();
    let demo = root.join("examples/demo");
    let mut workers = Workers {
        rust: RustWorker::new(&client, tx.clone()),
        python: Proc::worker(
            Who::Python,
            &python_program(&root),
            &demo.join("saga_worker.py"),
            &root,
            &url,
            &tx,
        )?,
        node: Proc::worker(
            Who::Node,
            &node_program(),
            &demo.join("saga_worker.js"),
            &root,
            &url,
            &tx,
        )?,
    };
    hub.push(Event::new(
        Who::Rust,
        "ready",
        json!({ "version": "Rust, in the demo's process", "pid": std::process::id() }),
    ));
    let mut versions = BTreeMap::from([(Who::Rust, "Rust".to_string())]);
    for (who, language) in [(Who::Python, "Python"), (Who::Node, "Node")] {
        let ready = hub
            .wait(0, Duration::from_secs(60), "ready", |e| e.is(who, "ready"))
            .await?;
        versions.insert(who, format!("{language} {}", ready.str("version")));
    }

    let sagas: Vec<(Who, Saga)> = WORKERS
        .iter()
        .flat_map(|&w| plan::mix(w, per_language).into_iter().map(move |s| (w, s)))
        .collect();
    let mut story = Story {
        start,
        versions,
        stalled: (STALLS, plan::stalled(STALLS)),
        deadlock: plan::deadlock(DEADLOCK.0, DEADLOCK.1),
        sagas,
        deadlock_formed: None,
        graph: None,
        killed: None,
        took_over: None,
        survivor_exit: None,
        metrics: Err("not read".into()),
        records: HashMap::new(),
        own_server: server.is_some(),
        settings,
    };

    // 0. The sidecars.
    hub.phase(format!(
        "0. two `txcoord monitor` sidecars, mon-a then mon-b, in one election: one leads and \
         runs the passes (every {} s), the other waits to take over",
        s.interval_s
    ));
    let election = format!("demo-monitor-{}", std::process::id());
    let mut sidecars: HashMap<Who, Proc> = HashMap::new();
    let mut metrics_url: HashMap<Who, String> = HashMap::new();
    for (who, leads) in [(Who::MonitorA, true), (Who::MonitorB, false)] {
        let mark = hub.mark();
        sidecars.insert(who, sidecar::start(who, &cli, &url, &election, &s, &tx)?);
        let e = hub
            .wait(mark, Duration::from_secs(30), "its /metrics", |e| {
                e.is(who, "metrics")
            })
            .await?;
        metrics_url.insert(who, e.str("url").to_string());
        let pass = hub
            .wait(mark, Duration::from_secs(30), "a first pass", |e| {
                e.is(who, "pass")
            })
            .await?;
        if pass.v["leader"].as_bool() != Some(leads) {
            return Err(format!(
                "{} {} at its first pass",
                who.name(),
                if leads { "does not lead" } else { "leads too" }
            ));
        }
    }

    // 1. The mix, and the saga that stalls.
    let mark = hub.mark();
    hub.phase(format!(
        "1. the saga mix: {} sagas per language ({} at a time per worker) over {} and {}; \
         every saga locks with its id as owner id, in one global order",
        per_language,
        concurrency,
        plan::SKUS.join(", "),
        plan::ACCOUNTS.join(", ")
    ));
    let (stall_who, stall) = story.stalled.clone();
    workers.send(
        stall_who,
        json!({ "cmd": "stall", "saga": stall.to_json(), "hang_at": 1, "poll_ms": 200,
                "give_up_ms": 120_000 }),
    )?;
    for who in WORKERS {
        let mine: Vec<Value> = story
            .sagas
            .iter()
            .filter(|(w, _)| *w == who)
            .map(|(_, s)| s.to_json())
            .collect();
        workers.send(
            who,
            json!({ "cmd": "mix", "sagas": mine, "concurrency": concurrency }),
        )?;
    }
    for who in WORKERS {
        done(hub, mark, who, "mix", 90).await?;
    }

    // 2. The stalled saga, found stuck and retried.
    hub.phase(format!(
        "2. {} stalled: after {} s without an update the leader finds it stuck and retries \
         it (the retry count goes up in its record)",
        stall.id, s.stuck_after_s
    ));
    let retried = |e: &Event| {
        e.ev == "record" && e.str("id") == stall.id && e.v["retry_count"].as_u64() >= Some(1)
    };
    hub.wait(mark, Duration::from_secs(40), "the first retry", retried)
        .await?;

    // 3. The leader is killed; meanwhile, a deadlock.
    deadlock::scene(
        hub,
        &mut workers,
        &mut story,
        &mut sidecars,
        &client,
        &cli,
        &root,
    )
    .await?;

    // 4. The other sidecar takes over and carries on with the stalled saga.
    let (killed, killed_at) = story.killed.ok_or("no leader was killed")?;
    let heir = if killed == Who::MonitorA {
        Who::MonitorB
    } else {
        Who::MonitorA
    };
    hub.phase(format!(
        "4. failover: {} takes over once {}'s lease ({} ms) runs out, and carries on with \
         {}: retries up to {}, then COMPENSATING; its {} worker compensates it",
        heir.name(),
        killed.name(),
        s.leader_ttl_ms,
        stall.id,
        s.max_retries,
        stall_who.name()
    ));
    let since_kill = hub
        .all
        .iter()
        .position(|e| e.is(Who::Demo, "killed"))
        .unwrap_or(0);
    let led = hub
        .wait(since_kill, Duration::from_secs(30), "the takeover", |e| {
            e.is(heir, "pass") && e.v["leader"] == true
        })
        .await?;
    story.took_over = Some((heir, led.t));
    hub.note(format!(
        "{} leads {:.1} s after {} was killed",
        heir.name(),
        (led.t - killed_at) / 1000.0,
        killed.name()
    ));
    saga_event(hub, mark, &stall.id, "finished", 60).await?;

    // 5. Two more passes (the second one began after the last saga finished), so the gauges
    // count every saga; then /metrics.
    for _ in 0..2 {
        let m = hub.mark();
        hub.wait(m, Duration::from_secs(15), "a pass", |e| e.is(heir, "pass"))
            .await?;
    }
    story.metrics = sidecar::get(&metrics_url[&heir]);

    // The end: workers exit, the surviving sidecar stops on SIGTERM.
    let mut broken = Vec::new();
    finish(hub, &mut workers, &mut broken).await;
    if let Some(mut side) = sidecars.remove(&heir) {
        hub.may_exit.insert(heir);
        side.signal(libc::SIGTERM);
        story.survivor_exit = Some(
            side.exit_status(Duration::from_secs(15))
                .await
                .map(|s| s.code().unwrap_or(-1)),
        );
    }
    hub.settle(Duration::from_millis(200)).await;
    hub.flush(true);
    let repo = RedisSagaRepository::new(&client);
    let ids = story.sagas.iter().map(|(_, s)| s.id.clone()).chain([
        story.stalled.1.id.clone(),
        story.deadlock.strong.1.id.clone(),
        story.deadlock.weak.1.id.clone(),
    ]);
    for id in ids {
        if let Ok(Some(r)) = repo.find_by_id(&id).await {
            story.records.insert(id, r);
        }
    }

    let mut events = hub.all.clone();
    summary::summary(&mut events, &story, &mut broken);
    drop(server);
    println!(
        "\nrun time {:.1} s; {}",
        wall.elapsed().as_secs_f64(),
        if broken.is_empty() {
            "the story happened as told".to_string()
        } else {
            format!("NOT AS TOLD:\n  - {}", broken.join("\n  - "))
        }
    );
    Ok(broken.is_empty())
}

/// The child workers exit (cleanly, or it is reported); the Rust worker closes.
async fn finish(hub: &mut SagaHub, workers: &mut Workers, broken: &mut Vec<String>) {
    let mark = hub.mark();
    hub.exiting = true;
    for who in [Who::Python, Who::Node] {
        if let Err(e) = workers.send(who, json!({ "cmd": "exit" })) {
            broken.push(e);
        }
    }
    workers.rust.close().await;
    for who in [Who::Python, Who::Node] {
        let exited = hub
            .wait(mark, Duration::from_secs(15), "the exit", |e| {
                e.is(who, "exit")
            })
            .await;
        let proc = match who {
            Who::Python => &mut workers.python,
            _ => &mut workers.node,
        };
        match exited {
            Ok(_) => match proc.exit_status(Duration::from_secs(10)).await {
                Ok(status) if status.success() => {}
                Ok(status) => {
                    broken.push(format!("the {} worker exited with {status}", who.name()))
                }
                Err(e) => broken.push(e),
            },
            Err(e) => broken.push(e),
        }
    }
}
