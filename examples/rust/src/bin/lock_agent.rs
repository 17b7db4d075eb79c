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

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use txcoord::{
    AcquireOptions, Client, ClientOptions, ClientStats, DistributedLock, ElectionOptions,
    LeaderElection, LockManager, ManagerOptions,
};

/// One JSON value of an output line.
enum V {
    S(String),
    I(i64),
    B(bool),
    Null,
}

impl From<&str> for V {
    fn from(s: &str) -> V {
        V::S(s.to_string())
    }
}
impl From<String> for V {
    fn from(s: String) -> V {
        V::S(s)
    }
}
impl From<bool> for V {
    fn from(b: bool) -> V {
        V::B(b)
    }
}
impl From<u64> for V {
    fn from(n: u64) -> V {
        V::I(i64::try_from(n).unwrap_or(i64::MAX))
    }
}
impl From<i64> for V {
    fn from(n: i64) -> V {
        V::I(n)
    }
}
impl<T: Into<V>> From<Option<T>> for V {
    fn from(o: Option<T>) -> V {
        o.map_or(V::Null, Into::into)
    }
}

fn quote(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Prints one JSON object as one line (stdout is locked for the whole line).
fn emit(fields: Vec<(&str, V)>) {
    let mut line = String::from("{");
    for (i, (k, v)) in fields.into_iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        quote(k, &mut line);
        line.push(':');
        match v {
            V::S(s) => quote(&s, &mut line),
            V::I(n) => line.push_str(&n.to_string()),
            V::B(b) => line.push_str(if b { "true" } else { "false" }),
            V::Null => line.push_str("null"),
        }
    }
    line.push('}');
    let mut out = std::io::stdout().lock();
    // A closed stdout means the test harness is gone: nothing left to report to.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Wall-clock microseconds (every agent reports the same clock, so times compare across
/// processes on one host).
fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn stats_fields(s: &ClientStats) -> Vec<(&'static str, V)> {
    vec![
        ("attempts", s.attempts.into()),
        ("acquired", s.acquired.into()),
        ("released", s.released.into()),
        ("renewals", s.renewals.into()),
        ("renewal_errors", s.renewal_errors.into()),
        ("lost", s.lost.into()),
        ("wake_notified", s.wake_notified.into()),
        ("wake_timer", s.wake_timer.into()),
        ("sleeps", s.sleeps.into()),
        ("messages", s.messages.into()),
        ("disconnects", s.disconnects.into()),
        ("subscribes", s.subscribes.into()),
        ("unsubscribes", s.unsubscribes.into()),
    ]
}

fn status_str(lock: &DistributedLock) -> &'static str {
    lock.status().as_str()
}

/// This agent's candidate in one election.
#[derive(Clone)]
struct Candidate {
    election: LeaderElection,
    /// The ttl it was created with (`None`: the default).
    ttl: Option<Duration>,
    /// The term it was last elected with (kept after the leadership ends: a deposed leader
    /// that writes anyway writes with it).
    term: Arc<Mutex<Option<u64>>>,
}

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

    /// This agent's candidate in the election `name` (candidate id: the agent's name), created
    /// by its first command on `name` (with the default ttl unless a campaign). Its changes of
    /// leadership are reported as `elected` and `revoked` lines.
    fn election(&self, name: &str, ttl: Option<Duration>) -> Res<Candidate> {
        let mut elections = self.elections.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(known) = elections.get(name) {
            if ttl.is_some() && ttl != known.ttl {
                return Err(format!(
                    "the election {name} was joined with ttl {:?}, not {ttl:?}",
                    known.ttl
                )
                .into());
            }
            return Ok(known.clone());
        }
        let mut options = ElectionOptions::new().set_candidate_id(self.name.as_str());
        if let Some(ttl) = ttl {
            options = options.set_ttl(ttl);
        }
        let candidate = Candidate {
            election: LeaderElection::new(&self.client, name, options)?,
            ttl,
            term: Arc::new(Mutex::new(None)),
        };
        let mut changes = candidate.election.watch();
        let last_term = candidate.term.clone();
        let election_name = name.to_string();
        tokio::spawn(async move {
            let mut last = *changes.borrow_and_update();
            while changes.changed().await.is_ok() {
                let now = *changes.borrow_and_update();
                if now == last {
                    continue;
                }
                if let Some(ended) = last {
                    emit(vec![
                        ("ev", "revoked".into()),
                        ("name", election_name.as_str().into()),
                        ("term", ended.into()),
                        ("t_us", now_us().into()),
                    ]);
                }
                if let Some(term) = now {
                    *last_term.lock().unwrap_or_else(|p| p.into_inner()) = Some(term);
                    emit(vec![
                        ("ev", "elected".into()),
                        ("name", election_name.as_str().into()),
                        ("term", term.into()),
                        ("t_us", now_us().into()),
                    ]);
                }
                last = now;
            }
        });
        elections.insert(name.to_string(), candidate.clone());
        Ok(candidate)
    }

    /// The election commands (`campaign`, `resign`, `leader`, `lead`); `Ok(false)` for
    /// another verb.
    async fn handle_election(&self, id: &str, verb: &str, args: &[&str]) -> Res<bool> {
        match verb {
            "campaign" => {
                let name = arg(args, 0, "name")?;
                let ttl = millis(args, 1, "ttl_ms")?;
                let timeout = millis(args, 2, "timeout_ms")?;
                let candidate = self.election(name, Some(ttl))?;
                let mut quit = self.quit.subscribe();
                let before = self.client.stats();
                let t0 = now_us();
                let ok = tokio::select! {
                    won = candidate.election.campaign(timeout) => won?,
                    _ = quit.wait_for(|q| *q) => return Err("the agent quits".into()),
                };
                let t = now_us();
                let after = self.client.stats();
                let term = candidate.election.term();
                if ok && term.is_some() {
                    *candidate.term.lock().unwrap_or_else(|p| p.into_inner()) = term;
                }
                emit(vec![
                    ("id", id.into()),
                    ("ev", "campaign".into()),
                    ("ok", ok.into()),
                    ("term", term.into()),
                    ("t0_us", t0.into()),
                    ("t_us", t.into()),
                    (
                        "wake_notified",
                        (after.wake_notified - before.wake_notified).into(),
                    ),
                    ("wake_timer", (after.wake_timer - before.wake_timer).into()),
                ]);
            }
            "resign" => {
                let candidate = self.election(arg(args, 0, "name")?, None)?;
                let t0 = now_us();
                candidate.election.resign().await?;
                emit(vec![
                    ("id", id.into()),
                    ("ev", "resign".into()),
                    ("t0_us", t0.into()),
                    ("t_us", now_us().into()),
                    ("is_leader", candidate.election.is_leader().into()),
                ]);
            }
            "leader" => {
                let candidate = self.election(arg(args, 0, "name")?, None)?;
                let leader = candidate.election.leader().await?;
                emit(vec![
                    ("id", id.into()),
                    ("ev", "leader".into()),
                    (
                        "candidate_id",
                        leader.as_ref().map(|l| l.candidate_id.clone()).into(),
                    ),
                    ("term", leader.as_ref().map(|l| l.term).into()),
                    (
                        "remaining_ms",
                        leader.as_ref().map(|l| l.remaining_ms).into(),
                    ),
                    ("is_leader", candidate.election.is_leader().into()),
                    ("own_term", candidate.election.term().into()),
                ]);
            }
            "lead" => {
                let candidate = self.election(arg(args, 0, "name")?, None)?;
                let witness_key = arg(args, 1, "witness_key")?;
                let force = args.get(2) == Some(&"force");
                // The leader's protected action: a candidate that does not believe it leads
                // stops here.
                let is_leader = candidate.election.is_leader();
                let current = if is_leader {
                    candidate.election.term()
                } else {
                    None
                };
                let term = current.or(*candidate.term.lock().unwrap_or_else(|p| p.into_inner()));
                // what an application following `watch()` believes
                let notified = *candidate.election.watch().borrow();
                let (done, accepted) = if is_leader || force {
                    (true, Some(self.fenced_write(witness_key, term).await?))
                } else {
                    (false, None)
                };
                emit(vec![
                    ("id", id.into()),
                    ("ev", "lead".into()),
                    ("done", done.into()),
                    ("accepted", accepted.into()),
                    ("is_leader", is_leader.into()),
                    ("term", term.into()),
                    ("current_term", current.into()),
                    ("notified_term", notified.into()),
                ]);
            }
            _ => return Ok(false),
        }
        Ok(true)
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
