// SPDX-License-Identifier: MIT OR Apache-2.0
//! The Rust lock agent of the cross-language tests (`tests/cross`, run by
//! `scripts/test-cross.sh`): commands on stdin, one per line, and one JSON object per line on
//! stdout. `tests/cross/agent.py` (Python) and `tests/cross/agent.js` (Node) speak the same
//! line protocol, described in `tests/cross/README.md`, so a test drives every language alike.
//!
//! ```text
//! lock_agent <redis-url> <name>        # TXCOORD_WITNESS_LUA = path of the witness script
//! ```
//!
//! `TXCOORD_FALLBACK_POLL_MS`, if set, is the manager's fallback poll (its waiter lease is
//! four times that).

mod election;
mod line;

use std::collections::HashMap;
use std::io::BufRead;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use txcoord::{
    AcquireOptions, Client, ClientOptions, DistributedLock, LockManager, ManagerOptions,
};

use election::Candidate;
use line::{emit, now_us, stats_fields, status_str};

struct Agent {
    name: String,
    client: Client,
    manager: LockManager,
    locks: Mutex<HashMap<String, DistributedLock>>,
    elections: Mutex<HashMap<String, Candidate>>,
    /// Set when the agent quits: the campaigns still waiting stop.
    quit: tokio::sync::watch::Sender<bool>,
    witness: redis::Script,
    store: redis::aio::MultiplexedConnection,
}

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn arg<'a>(args: &[&'a str], i: usize, what: &str) -> Res<&'a str> {
    args.get(i)
        .copied()
        .ok_or_else(|| format!("missing argument {what}").into())
}

fn millis(args: &[&str], i: usize, what: &str) -> Res<Duration> {
    let ms: u64 = arg(args, i, what)?
        .parse()
        .map_err(|e| format!("{what}: {e}"))?;
    Ok(Duration::from_millis(ms))
}

impl Agent {
    fn lock(&self, resource: &str) -> Res<DistributedLock> {
        self.locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(resource)
            .cloned()
            .ok_or_else(|| format!("no lock on {resource} was acquired").into())
    }

    /// Reports the loss of `lock` (acquired on `resource`) when it happens.
    fn watch_loss(&self, resource: &str, lock: &DistributedLock) {
        let mut watch = lock.loss_watch();
        let lock = lock.clone();
        let resource = resource.to_string();
        tokio::spawn(async move {
            if let Some(reason) = watch.lost().await {
                emit(vec![
                    ("ev", "lost".into()),
                    ("resource", resource.into()),
                    ("reason", reason.as_str().into()),
                    ("is_held", lock.is_held().into()),
                    ("status", status_str(&lock).into()),
                    ("token", lock.fencing_token().into()),
                    ("t_us", now_us().into()),
                ]);
            }
        });
    }

    async fn acquire(
        &self,
        resource: &str,
        ttl: Duration,
        timeout: Duration,
        fair: bool,
        owner_id: Option<&str>,
        priority: Option<i32>,
    ) -> Res<Option<DistributedLock>> {
        let mut options = AcquireOptions::new()
            .set_ttl(ttl)
            .set_timeout(timeout)
            .set_fair(fair);
        if let Some(owner) = owner_id {
            options = options.set_owner_id(owner);
        }
        if let Some(p) = priority {
            options = options.set_priority(p);
        }
        let lock = self.manager.acquire_lock_with(resource, options).await?;
        if let Some(lock) = &lock {
            self.watch_loss(resource, lock);
            self.locks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(resource.to_string(), lock.clone());
        }
        Ok(lock)
    }

    /// The witness's fenced write: accepted only if `token` is above every token it saw.
    async fn fenced_write(&self, witness_key: &str, token: Option<u64>) -> Res<bool> {
        let token = token.ok_or("no fencing token")?;
        let mut con = self.store.clone();
        let accepted: i64 = self
            .witness
            .key(witness_key)
            .arg(token.to_string())
            .arg(&self.name)
            .invoke_async(&mut con)
            .await?;
        Ok(accepted == 1)
    }

    async fn handle(&self, id: &str, verb: &str, args: &[&str]) -> Res<()> {
        match verb {
            "acquire" => {
                let resource = arg(args, 0, "resource")?;
                let ttl = millis(args, 1, "ttl_ms")?;
                let timeout = millis(args, 2, "timeout_ms")?;
                let flags = args.get(3..).unwrap_or_default();
                let fair = flags.contains(&"fair");
                let owner = flags.iter().find_map(|a| a.strip_prefix("owner="));
                let priority = flags
                    .iter()
                    .find_map(|a| a.strip_prefix("priority="))
                    .map(str::parse::<i32>)
                    .transpose()?;
                let before = self.client.stats();
                let t0 = now_us();
                let lock = self
                    .acquire(resource, ttl, timeout, fair, owner, priority)
                    .await?;
                let t = now_us();
                let after = self.client.stats();
                emit(vec![
                    ("id", id.into()),
                    ("ev", "acquire".into()),
                    ("ok", lock.is_some().into()),
                    (
                        "token",
                        lock.as_ref().and_then(|l| l.fencing_token()).into(),
                    ),
                    ("hold_count", lock.as_ref().map(|l| l.hold_count()).into()),
                    ("t0_us", t0.into()),
                    ("t_us", t.into()),
                    ("attempts", (after.attempts - before.attempts).into()),
                    (
                        "wake_notified",
                        (after.wake_notified - before.wake_notified).into(),
                    ),
                    ("wake_timer", (after.wake_timer - before.wake_timer).into()),
                ]);
            }
            "release" => {
                let lock = self.lock(arg(args, 0, "resource")?)?;
                let t0 = now_us();
                lock.release().await?;
                emit(vec![
                    ("id", id.into()),
                    ("ev", "release".into()),
                    ("t0_us", t0.into()),
                    ("t_us", now_us().into()),
                ]);
            }
            "status" => {
                let lock = self.lock(arg(args, 0, "resource")?)?;
                emit(vec![
                    ("id", id.into()),
                    ("ev", "status".into()),
                    ("is_held", lock.is_held().into()),
                    ("status", status_str(&lock).into()),
                    ("loss_reason", lock.loss_reason().map(|r| r.as_str()).into()),
                    ("token", lock.fencing_token().into()),
                    (
                        "remaining_validity_ms",
                        (lock.remaining_validity().as_millis() as u64).into(),
                    ),
                ]);
            }
            "write" => {
                let lock = self.lock(arg(args, 0, "resource")?)?;
                let witness_key = arg(args, 1, "witness_key")?;
                let force = args.get(2) == Some(&"force");
                // The protected operation: a holder that is not sure to hold the lock stops here.
                let is_held = lock.is_held();
                let (done, accepted) = if is_held || force {
                    (
                        true,
                        Some(self.fenced_write(witness_key, lock.fencing_token()).await?),
                    )
                } else {
                    (false, None)
                };
                emit(vec![
                    ("id", id.into()),
                    ("ev", "write".into()),
                    ("done", done.into()),
                    ("accepted", accepted.into()),
                    ("is_held", is_held.into()),
                    ("token", lock.fencing_token().into()),
                    ("loss_reason", lock.loss_reason().map(|r| r.as_str()).into()),
                ]);
            }
            "cycle" => {
                let resource = arg(args, 0, "resource")?;
                let rounds: u32 = arg(args, 1, "rounds")?.parse()?;
                let ttl = millis(args, 2, "ttl_ms")?;
                let timeout = millis(args, 3, "timeout_ms")?;
                let witness_key = arg(args, 4, "witness_key")?;
                let fair = args.get(5) == Some(&"fair");
                let mut acquired = 0u32;
                for i in 0..rounds {
                    let Some(lock) = self
                        .acquire(resource, ttl, timeout, fair, None, None)
                        .await?
                    else {
                        emit(vec![
                            ("id", id.into()),
                            ("ev", "round".into()),
                            ("i", i64::from(i).into()),
                            ("ok", false.into()),
                        ]);
                        continue;
                    };
                    acquired += 1;
                    let t_acq = now_us();
                    let accepted = self.fenced_write(witness_key, lock.fencing_token()).await?;
                    let t_rel = now_us();
                    lock.release().await?;
                    emit(vec![
                        ("id", id.into()),
                        ("ev", "round".into()),
                        ("i", i64::from(i).into()),
                        ("ok", true.into()),
                        ("token", lock.fencing_token().into()),
                        ("accepted", accepted.into()),
                        ("t_acq_us", t_acq.into()),
                        ("t_rel_us", t_rel.into()),
                    ]);
                }
                emit(vec![
                    ("id", id.into()),
                    ("ev", "cycle".into()),
                    ("rounds", i64::from(rounds).into()),
                    ("acquired", i64::from(acquired).into()),
                ]);
            }
            "stats" | "ping" => {
                // `ping`: the counters first, then a PING on the client's connection, so every
                // attempt counted has been answered by Redis when the reply arrives.
                let stats = self.client.stats();
                if verb == "ping" {
                    self.client.ping().await?;
                }
                let mut fields = vec![("id", id.into()), ("ev", verb.into())];
                fields.extend(stats_fields(&stats));
                emit(fields);
            }
            other => {
                if !self.handle_election(id, other, args).await? {
                    return Err(format!("unknown command {other:?}").into());
                }
            }
        }
        Ok(())
    }
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: lock_agent <redis-url> <name>");
        std::process::exit(2);
    }
    let (url, name) = (args[1].clone(), args[2].clone());
    let witness_path =
        std::env::var("TXCOORD_WITNESS_LUA").map_err(|_| "set TXCOORD_WITNESS_LUA")?;
    let witness = redis::Script::new(&std::fs::read_to_string(&witness_path)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(url, name, witness))
}

async fn run(url: String, name: String, witness: redis::Script) -> Res<()> {
    let client = Client::with_options(
        &url,
        ClientOptions::new().set_client_name(format!("cross-rust-{name}")),
    )?;
    // the witness store waits out machine stalls (redis-rs gives up after 500 ms by default)
    let patient =
        redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(30)));
    let store = redis::Client::open(url.as_str())?
        .get_multiplexed_async_connection_with_config(&patient)
        .await?;
    let mut options = ManagerOptions::new();
    if let Ok(ms) = std::env::var("TXCOORD_FALLBACK_POLL_MS") {
        let ms: u64 = ms
            .parse()
            .map_err(|e| format!("TXCOORD_FALLBACK_POLL_MS: {e}"))?;
        options = options
            .set_fallback_poll(Duration::from_millis(ms))
            .set_waiter_lease(Duration::from_millis(4 * ms));
    }
    let agent = Arc::new(Agent {
        name,
        manager: LockManager::with_options(&client, options)?,
        client,
        locks: Mutex::new(HashMap::new()),
        elections: Mutex::new(HashMap::new()),
        quit: tokio::sync::watch::channel(false).0,
        witness,
        store,
    });

    // stdin is read on a plain thread (blocking reads) and handed over line by line.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    emit(vec![
        ("ev", "ready".into()),
        ("lang", "rust".into()),
        ("name", agent.name.clone().into()),
        ("pid", u64::from(std::process::id()).into()),
    ]);

    let mut quit_id = None;
    while let Some(line) = rx.recv().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        let [id, verb, rest @ ..] = words.as_slice() else {
            continue;
        };
        if *verb == "quit" {
            quit_id = Some(id.to_string());
            break;
        }
        // Every command runs as its own task: a `ping` is answered while an `acquire` waits.
        let agent = agent.clone();
        let (id, verb) = (id.to_string(), verb.to_string());
        let rest: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
        tokio::spawn(async move {
            let args: Vec<&str> = rest.iter().map(String::as_str).collect();
            if let Err(e) = agent.handle(&id, &verb, &args).await {
                let code = e
                    .downcast_ref::<txcoord::Error>()
                    .map(|t| t.kind().code().to_string());
                emit(vec![
                    ("id", id.as_str().into()),
                    ("ev", "error".into()),
                    ("message", e.to_string().into()),
                    ("code", code.into()),
                ]);
            }
        });
    }
    // stdin closed or `quit`: stop campaigning, release what is held and resign, then leave.
    agent.quit.send_replace(true);
    let mut failures = agent.manager.close().await.len();
    let elections: Vec<Candidate> = agent
        .elections
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .cloned()
        .collect();
    for candidate in elections {
        if candidate.election.resign().await.is_err() {
            failures += 1;
        }
    }
    if let Some(id) = quit_id {
        emit(vec![
            ("id", id.into()),
            ("ev", "quit".into()),
            ("release_failures", (failures as u64).into()),
        ]);
    }
    Ok(())
}
