// SPDX-License-Identifier: MIT OR Apache-2.0
//! The model's world: the actors, their handles and what the model expects of Redis, and
//! the checks run after every step.
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::common::*;
use txcoord::{
    Client, ClientOptions, DistributedLock, LockManager, LockOptions, LockStatus, ManagerOptions,
};
use txcoord_testkit::{Proxy, RedisServer};

pub(crate) const RESOURCES: [&str; 3] = ["m0", "m1", "m2"];
pub(crate) const TTLS: [u64; 4] = [300, 500, 1_000, 2_000];
pub(crate) const EXTENDS: [u64; 6] = [30, 150, 400, 1_000, 2_000, 3_000];
/// The longest expiry any operation sets on a lock key (largest ttl or extend).
pub(crate) const MAX_LEASE: u64 = 3_000;
pub(crate) const WAITER_LEASE: u64 = 2_000;
/// Margin for a loaded machine: commands in flight, scheduling delays.
pub(crate) const SLACK: u64 = 1_000;
pub(crate) const MIN_STEPS: u64 = 10_000;
pub(crate) const OP_LIMIT: Duration = Duration::from_secs(30);
pub(crate) const MAX_HELD: usize = 14;
/// Events and their weights: plain operations are common, slow faults rare.
pub(crate) const EVENTS: [(&str, u64); 16] = [
    ("acquire", 4_200),
    ("release", 2_500),
    ("extend", 1_000),
    ("crash", 25),
    ("sleep", 100),
    ("renewal", 8),
    ("handoff", 800),
    ("release_all_locks", 150),
    ("burst", 250),
    ("expiry wait", 10),
    ("extend meets renewal", 4),
    ("paused holder", 6),
    ("lost reply", 20),
    ("DEBUG SLEEP", 4),
    ("late grant", 3),
    ("restart", 6),
];

/// The actors: name, owner id, and whether the client reaches Redis through the fault proxy
/// with short timeouts.
pub(crate) const ACTORS: [(&str, Option<&str>, bool); 6] = [
    ("a0", Some("saga-a"), false),
    ("a1", Some("saga-a"), false),
    ("b0", Some("saga-b"), false),
    ("n0", None, false),
    ("fb", Some("saga-b"), true),
    ("fn", None, true),
];

pub(crate) struct Actor {
    pub(crate) name: &'static str,
    pub(crate) owner: Option<&'static str>,
    pub(crate) flaky: bool,
    pub(crate) client: Client,
    pub(crate) manager: LockManager,
    /// One `DistributedLock` per resource, reused across acquisitions (normal actors only).
    pub(crate) direct: Vec<DistributedLock>,
}

/// What the model knows of one acquisition (one hold).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum St {
    /// Acquired and not released by the model (the handle may have lost the lock since).
    Held,
    /// A release failed: the handle is `Releasing`, Redis may or may not have dropped the hold.
    Releasing,
    /// Released, but whether Redis dropped the hold is not known.
    MaybeReleased,
    /// Released, confirmed by Redis.
    Released,
    /// `test_crash`: the hold stays recorded until the key expires.
    Crashed,
}

pub(crate) struct Rec {
    pub(crate) id: u64,
    pub(crate) actor: usize,
    pub(crate) res: usize,
    pub(crate) lock: DistributedLock,
    pub(crate) direct: bool,
    pub(crate) value: String,
    pub(crate) owner: Option<String>,
    pub(crate) ttl: u64,
    pub(crate) st: St,
    /// The latest acquisition of its handle (a direct handle is reused).
    pub(crate) current: bool,
    /// Held when Redis restarted: may say held until this instant, not later.
    pub(crate) exempt_until: Option<Instant>,
    pub(crate) overdue_since: Option<Instant>,
}

/// The lock key's value as far as the model knows, while it may exist.
pub(crate) struct Live {
    pub(crate) value: String,
    pub(crate) owner: Option<String>,
    /// Longest expiry any operation set on it.
    pub(crate) max_ms: u64,
    /// A hold nobody saw may be recorded on it (an unknown outcome): hold counts are not exact.
    pub(crate) ghost_regs: bool,
    /// No handle of it is held: it is gone by this instant at the latest.
    pub(crate) ghost_until: Option<Instant>,
}

pub(crate) struct Res {
    pub(crate) name: &'static str,
    pub(crate) key: String,
    pub(crate) max_token: u64,
    pub(crate) grants: u64,
    pub(crate) tokens: BTreeMap<String, (u64, Option<String>)>,
    pub(crate) live: Option<Live>,
    pub(crate) unknown_until: Option<Instant>,
}

pub(crate) struct World {
    pub(crate) seed: u64,
    pub(crate) rng: Rng,
    pub(crate) server: RedisServer,
    pub(crate) proxy: Proxy,
    pub(crate) conn: redis::aio::MultiplexedConnection,
    pub(crate) actors: Vec<Actor>,
    pub(crate) recs: Vec<Rec>,
    pub(crate) res: Vec<Res>,
    pub(crate) next_id: u64,
    pub(crate) log: VecDeque<String>,
    pub(crate) start: Instant,
    pub(crate) step: u64,
    pub(crate) counts: BTreeMap<&'static str, u64>,
    pub(crate) handoff_ms: Vec<u64>,
    pub(crate) time: BTreeMap<&'static str, (u64, Duration)>,
}

/// What the model knew when an acquisition was sent.
#[derive(Clone, Copy)]
pub(crate) struct Ctx {
    /// The resource was certainly free.
    pub(crate) free: bool,
    /// A record of another owner held the resource before and after the call.
    pub(crate) other: Option<usize>,
    /// A record of the same owner held the resource before and after the call.
    pub(crate) same: Option<usize>,
    /// The hold count of a re-entry can be predicted (no concurrent acquisitions).
    pub(crate) exact_count: bool,
}

impl Default for Ctx {
    fn default() -> Self {
        Ctx {
            free: false,
            other: None,
            same: None,
            exact_count: true,
        }
    }
}

pub(crate) fn short(v: &str) -> &str {
    &v[..v.len().min(8)]
}

pub(crate) fn same_owner(a: &Option<String>, b: Option<&str>) -> bool {
    a.is_some() && a.as_deref() == b
}

/// The local deadline of a held handle (never later than the real one), `None` if not held.
pub(crate) fn deadline(lock: &DistributedLock) -> Option<Instant> {
    let now = Instant::now();
    lock.is_held().then(|| now + lock.remaining_validity())
}

/// Validity the library gives a lease of `ms` (PROTOCOL.md §6: less 1 % + 2 ms).
pub(crate) fn validity(ms: u64) -> Duration {
    Duration::from_millis(ms.saturating_sub(ms / 100 + 2))
}

/// The observer's own connection. redis-rs gives up on a reply after 500 ms by default, shorter
/// than the stalls a loaded shared machine shows; the observer must wait, not fail the model.
pub(crate) async fn check_connection(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    let config = redis::AsyncConnectionConfig::new()
        .set_response_timeout(Some(Duration::from_secs(30)))
        .set_connection_timeout(Some(Duration::from_secs(5)));
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("check connection")
}

impl World {
    pub(crate) async fn new(seed: u64) -> World {
        let server = RedisServer::start();
        let proxy = Proxy::start(server.port());
        let mut rng = Rng::new(seed);
        let mut actors = Vec::new();
        for (name, owner, flaky) in ACTORS {
            let client = if flaky {
                let o = ClientOptions::new()
                    .set_response_timeout(ms(200))
                    .set_connect_timeout(ms(500));
                Client::with_options(&proxy.url(), o).unwrap()
            } else {
                let o = ClientOptions::new()
                    .set_response_timeout(ms(10_000))
                    .set_connect_timeout(ms(2_000));
                client_with(&server, o)
            };
            let mut mo = ManagerOptions::new()
                .set_fallback_poll(ms(1_000))
                .set_waiter_lease(ms(WAITER_LEASE));
            if let Some(o) = owner {
                mo = mo.set_owner_id(o);
            }
            let manager = LockManager::with_options(&client, mo).unwrap();
            client.ping().await.expect("ping");
            let direct = if flaky {
                Vec::new()
            } else {
                RESOURCES
                    .iter()
                    .map(|r| new_direct(&client, r, owner, rng.pick(&TTLS)))
                    .collect()
            };
            actors.push(Actor {
                name,
                owner,
                flaky,
                client,
                manager,
                direct,
            });
        }
        let res = RESOURCES
            .iter()
            .map(|name| Res {
                name,
                key: format!("lock:{name}"),
                max_token: 0,
                grants: 0,
                tokens: BTreeMap::new(),
                live: None,
                unknown_until: None,
            })
            .collect();
        let conn = check_connection(&server).await;
        World {
            seed,
            rng,
            server,
            proxy,
            conn,
            actors,
            recs: Vec::new(),
            res,
            next_id: 0,
            log: VecDeque::new(),
            start: Instant::now(),
            step: 0,
            counts: BTreeMap::new(),
            handoff_ms: Vec::new(),
            time: BTreeMap::new(),
        }
    }

    pub(crate) fn note(&mut self, event: String) {
        if self.log.len() >= 60 {
            self.log.pop_front();
        }
        let t = self.start.elapsed().as_millis();
        self.log.push_back(format!("#{} +{t}ms {event}", self.step));
    }

    pub(crate) fn bump(&mut self, what: &'static str) {
        *self.counts.entry(what).or_default() += 1;
    }

    pub(crate) fn fail(&self, msg: String) -> ! {
        let mut state = String::new();
        let shown = self.recs.iter().filter(|r| {
            matches!(r.st, St::Held | St::Releasing) || r.lock.status().needs_release()
        });
        for r in shown {
            state.push_str(&format!(
                "  rec {} {} {} {:?} value {} owner {:?} ttl {} status {:?} is_held {}{}\n",
                r.id,
                self.actors[r.actor].name,
                self.res[r.res].name,
                r.st,
                short(&r.value),
                r.owner,
                r.ttl,
                r.lock.status(),
                r.lock.is_held(),
                if r.exempt_until.is_some() {
                    " (pre-restart)"
                } else {
                    ""
                }
            ));
        }
        let events: Vec<&str> = self.log.iter().map(String::as_str).collect();
        panic!(
            "model violation (seed {seed}, step {step}): {msg}\nreplay: TXCOORD_MODEL_SEED={seed} \
             cargo test -p txcoord --test model\nhandles not released:\n{state}last events:\n  {}",
            events.join("\n  "),
            seed = self.seed,
            step = self.step,
        );
    }

    /// Awaits `fut`, failing the run if it hangs.
    pub(crate) async fn bounded<T>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = T>,
    ) -> T {
        match tokio::time::timeout(OP_LIMIT, fut).await {
            Ok(v) => v,
            Err(_) => self.fail(format!("{what} did not finish within {OP_LIMIT:?}")),
        }
    }

    pub(crate) fn unknown(&self, r: usize) -> bool {
        self.res[r]
            .unknown_until
            .is_some_and(|u| Instant::now() < u)
    }

    pub(crate) fn is_free(&self, r: usize) -> bool {
        self.res[r].live.is_none() && !self.unknown(r)
    }

    /// An acquisition by `owner` on `r` ended without a known outcome: it may have left a key
    /// (or a hold on the live key, or a queue entry) that lives up to `lease` ms.
    pub(crate) fn mark_unknown(&mut self, r: usize, owner: Option<&str>, lease: u64) {
        let until = Instant::now() + ms(lease + SLACK);
        let res = &mut self.res[r];
        res.unknown_until = Some(res.unknown_until.map_or(until, |u| u.max(until)));
        if let Some(live) = res.live.as_mut() {
            if same_owner(&live.owner, owner) {
                live.ghost_regs = true;
            }
        }
    }

    /// Holds recorded on the key with `value` as far as the model knows.
    pub(crate) fn regs(&self, r: usize, value: &str) -> usize {
        self.recs
            .iter()
            .filter(|x| x.res == r && x.value == value)
            .filter(|x| matches!(x.st, St::Held | St::Crashed))
            .count()
    }

    pub(crate) fn regs_exact(&self, r: usize, value: &str) -> bool {
        let ghost = self.res[r]
            .live
            .as_ref()
            .is_some_and(|l| l.value == value && l.ghost_regs);
        !ghost
            && !self.recs.iter().any(|x| {
                x.res == r && x.value == value && matches!(x.st, St::Releasing | St::MaybeReleased)
            })
    }

    pub(crate) fn rec_index(&self, id: u64) -> usize {
        self.recs.iter().position(|x| x.id == id).expect("record")
    }

    /// Records held (by `is_held`) on `r` with their deadlines, pre-restart ones left out.
    pub(crate) fn held_on(&self, r: usize) -> Vec<(usize, Instant)> {
        (0..self.recs.len())
            .filter(|&i| self.recs[i].res == r && self.recs[i].current)
            .filter(|&i| self.recs[i].exempt_until.is_none())
            .filter_map(|i| deadline(&self.recs[i].lock).map(|d| (i, d)))
            .collect()
    }

    /// The invariant pass, run after every event.
    pub(crate) async fn check(&mut self) {
        let keys: Vec<&str> = self.res.iter().map(|r| r.key.as_str()).collect();
        // what may exist is judged as of before the read
        let sent = Instant::now();
        let reply: redis::RedisResult<Vec<Option<String>>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut self.conn)
            .await;
        let values = reply.unwrap_or_else(|e| self.fail(format!("MGET for the check: {e}")));
        let now = Instant::now();
        // is_held after the read: the deadline is later than the read, so the key held the
        // handle's value when it was read (a key holds one value for one interval of time).
        let held: Vec<usize> = (0..self.recs.len())
            .filter(|&i| self.recs[i].current && self.recs[i].lock.is_held())
            .collect();
        for &i in &held {
            let rec = &self.recs[i];
            if let Some(until) = rec.exempt_until {
                if now > until {
                    self.fail(format!(
                        "rec {} still is_held {} ms after a restart wiped its key (its longest \
                         lease ended then)",
                        rec.id,
                        (now - until).as_millis()
                    ));
                }
                continue;
            }
            let got = &values[rec.res];
            if got.as_deref() != Some(rec.value.as_str()) {
                self.fail(format!(
                    "rec {} ({}) is_held but {} = {:?}, not its value {}",
                    rec.id,
                    self.actors[rec.actor].name,
                    self.res[rec.res].key,
                    got,
                    short(&rec.value)
                ));
            }
        }
        for (r, value) in values.iter().enumerate() {
            let mine: Vec<&Rec> = held
                .iter()
                .map(|&i| &self.recs[i])
                .filter(|x| x.res == r && x.exempt_until.is_none())
                .collect();
            for pair in mine.windows(2) {
                let (x, y) = (pair[0], pair[1]);
                if x.value != y.value || x.owner.is_none() || x.owner != y.owner {
                    self.fail(format!(
                        "rec {} ({:?}) and rec {} ({:?}) are held at once on {}",
                        x.id, x.owner, y.id, y.owner, self.res[r].name
                    ));
                }
            }
            let unknown = self.res[r].unknown_until.is_some_and(|u| sent < u);
            if !self.unknown(r) {
                self.res[r].unknown_until = None;
            }
            if let Some(v) = self.res[r].live.as_ref().map(|l| l.value.clone()) {
                let renewed = mine.iter().any(|x| x.value == v);
                let exact_gone = self.regs_exact(r, &v) && self.regs(r, &v) == 0;
                let live = self.res[r].live.as_mut().unwrap();
                if renewed {
                    live.ghost_until = None;
                } else if exact_gone || live.ghost_until.is_some_and(|g| sent > g) {
                    self.res[r].live = None;
                } else if live.ghost_until.is_none() {
                    live.ghost_until = Some(now + ms(live.max_ms + SLACK));
                }
            }
            match (value, &self.res[r].live) {
                (Some(x), None) if !unknown => self.fail(format!(
                    "{} = {} although every hold of it was released or its lease ran out",
                    self.res[r].key,
                    short(x)
                )),
                (Some(x), Some(l)) if !unknown && *x != l.value => self.fail(format!(
                    "{} = {}, a value no acquisition returned (expected {})",
                    self.res[r].key,
                    short(x),
                    short(&l.value)
                )),
                _ => {}
            }
        }
        for i in 0..self.recs.len() {
            let rec = &self.recs[i];
            let overdue = rec.current
                && rec.lock.status() == LockStatus::Held
                && rec.lock.remaining_validity().is_zero();
            let since = if overdue {
                Some(rec.overdue_since.unwrap_or(now))
            } else {
                None
            };
            if since.is_some_and(|s| now - s > Duration::from_secs(5)) {
                self.fail(format!(
                    "rec {} passed its deadline 5 s ago and still reports Held, no loss",
                    rec.id
                ));
            }
            self.recs[i].overdue_since = since;
        }
        self.prune();
    }

    /// Forgets records that no longer matter: released ones, and holds of keys that are gone.
    pub(crate) fn prune(&mut self) {
        let live: Vec<Option<String>> = self
            .res
            .iter()
            .map(|r| r.live.as_ref().map(|l| l.value.clone()))
            .collect();
        let unknown: Vec<bool> = (0..self.res.len()).map(|r| self.unknown(r)).collect();
        self.recs.retain(|x| match x.st {
            St::Held | St::Releasing => true,
            St::Released => false,
            St::MaybeReleased | St::Crashed => {
                unknown[x.res] || live[x.res].as_deref() == Some(x.value.as_str())
            }
        });
    }

    /// Releases everything, waits for every key the model allows to linger to expire, and
    /// checks that Redis holds nothing else than PROTOCOL.md §5 says.
    pub(crate) async fn quiesce(&mut self) {
        self.note("quiesce: release everything".into());
        let ids: Vec<u64> = self
            .recs
            .iter()
            .filter(|x| x.current && matches!(x.st, St::Held | St::Releasing))
            .map(|x| x.id)
            .collect();
        for id in ids {
            for attempt in 0..10 {
                let i = self.rec_index(id);
                let pre = self.recs[i].lock.status();
                let lock = self.recs[i].lock.clone();
                let result = self.bounded("release", lock.release()).await;
                let failed = result.is_err();
                if failed && attempt < 9 && self.actors[self.recs[i].actor].flaky {
                    tokio::time::sleep(ms(100)).await;
                    continue;
                }
                self.released(i, pre, result);
                break;
            }
        }
        for a in 0..self.actors.len() {
            let m = self.actors[a].manager.clone();
            let mut failures = Vec::new();
            for _ in 0..10 {
                failures = self
                    .bounded("release_all_locks", m.release_all_locks())
                    .await;
                if failures.is_empty() {
                    break;
                }
                tokio::time::sleep(ms(100)).await;
            }
            if !failures.is_empty() {
                self.fail(format!("release_all_locks kept failing: {failures:?}"));
            }
        }
        let limit = Instant::now() + ms(MAX_LEASE + 5_000 + 3 * SLACK);
        loop {
            self.check().await;
            if (0..self.res.len()).all(|r| self.is_free(r)) {
                break;
            }
            if Instant::now() > limit {
                self.fail("the model never saw every lock free".into());
            }
            tokio::time::sleep(ms(50)).await;
        }
        for a in 0..self.actors.len() {
            let client = self.actors[a].client.clone();
            wait_until("no renewal left scheduled", ms(5_000), || {
                client.scheduled_renewals() == 0
            })
            .await;
        }
        // queue and waiter hashes vanish with their last member, or by their TTL (one lease)
        let limit = Instant::now() + ms(WAITER_LEASE + 2 * SLACK);
        let mut extra = Vec::new();
        loop {
            let keys = tokio::task::block_in_place(|| self.server.keys());
            extra.clear();
            let mut con = tokio::task::block_in_place(|| self.server.connection());
            for k in keys {
                let pttl = pttl_of(&mut con, &k);
                // protocol 2: nothing of a lock outlives its last release; what may stay is
                // the waiting index (one lease) and the owner records of sagas that waited
                let allowed = if k == "txcoord:waiting" {
                    pttl > 0 && pttl <= 5_000
                } else if k.starts_with("txcoord:owner:") {
                    pttl > 0 && pttl <= txcoord::protocol::OWNER_RECORD_KEEP_MS as i64
                } else {
                    false
                };
                if !allowed {
                    extra.push(format!("{k} (pttl {pttl})"));
                }
            }
            if extra.is_empty() {
                break;
            }
            if Instant::now() > limit {
                self.fail(format!("left in Redis after every release: {extra:?}"));
            }
            tokio::time::sleep(ms(50)).await;
        }
        self.recs.clear();
        self.bump("quiesced");
    }

    /// Runs one random event; returns its kind.
    pub(crate) async fn run_step(&mut self) -> &'static str {
        let held: Vec<usize> = (0..self.recs.len())
            .filter(|&i| self.recs[i].current && self.recs[i].st == St::Held)
            .collect();
        let releasable: Vec<usize> = (0..self.recs.len())
            .filter(|&i| {
                self.recs[i].current && matches!(self.recs[i].st, St::Held | St::Releasing)
            })
            .collect();
        let total: u64 = EVENTS.iter().map(|e| e.1).sum();
        let mut roll = self.rng.below(total);
        let mut kind = EVENTS[0].0;
        for (k, weight) in EVENTS {
            if roll < weight {
                kind = k;
                break;
            }
            roll -= weight;
        }
        if held.len() > MAX_HELD && kind == "acquire" {
            kind = "release";
        }
        if held.is_empty() && matches!(kind, "release" | "extend" | "crash" | "renewal") {
            kind = "acquire";
        }
        let a = self.rng.index(self.actors.len());
        let r = self.rng.index(RESOURCES.len());
        match kind {
            "acquire" => {
                // aim at re-entry now and then: an actor of the owner holding the resource
                let mut a = a;
                if self.rng.chance(200) {
                    let owner = self.res[r].live.as_ref().and_then(|l| l.owner.clone());
                    let same: Vec<usize> = (0..self.actors.len())
                        .filter(|&x| same_owner(&owner, self.actors[x].owner))
                        .collect();
                    if !same.is_empty() {
                        a = self.rng.pick(&same);
                    }
                }
                let direct = !self.actors[a].flaky && self.rng.chance(250);
                let timeout = if self.rng.chance(50) {
                    self.rng.pick(&[10, 25, 60])
                } else {
                    0
                };
                let fair = self.rng.chance(300);
                self.acquire(a, r, timeout, fair, direct).await;
            }
            "release" => {
                let i = self.rng.pick(&releasable);
                let via_manager = self.rng.chance(300);
                self.release(i, via_manager).await;
            }
            "extend" => {
                let i = self.rng.pick(&held);
                self.extend(i).await;
            }
            "crash" => {
                let i = self.rng.pick(&held);
                self.crash(i);
            }
            "sleep" => {
                let t = 1 + self.rng.below(20);
                self.note(format!("sleep {t} ms"));
                tokio::time::sleep(ms(t)).await;
            }
            "renewal" => {
                // the shortest ttl: the wait is at most a third of it
                let i = *held.iter().min_by_key(|&&i| self.recs[i].ttl).unwrap();
                self.renew(i).await;
            }
            "handoff" => self.handoff().await,
            "release_all_locks" => {
                let m = self.actors[a].manager.clone();
                let flaky = self.actors[a].flaky;
                let mine: Vec<(u64, LockStatus)> = self
                    .recs
                    .iter()
                    .filter(|x| x.actor == a && !x.direct && x.lock.status().needs_release())
                    .map(|x| (x.id, x.lock.status()))
                    .collect();
                self.note(format!(
                    "{} release_all_locks {mine:?}",
                    self.actors[a].name
                ));
                let failures = self
                    .bounded("release_all_locks", m.release_all_locks())
                    .await;
                if !failures.is_empty() && !flaky {
                    self.fail(format!("release_all_locks failed: {failures:?}"));
                }
                for (id, pre) in mine {
                    let i = self.rec_index(id);
                    let result = if failures.is_empty() {
                        Ok(())
                    } else {
                        Err(txcoord::Error::Internal("a release failed".into()))
                    };
                    self.released(i, pre, result);
                }
            }
            "burst" => self.burst().await,
            "expiry wait" => self.expiry_wait().await,
            "extend meets renewal" => self.extend_meets_renewal().await,
            "paused holder" => self.starved_renewal().await,
            "late grant" => self.late_grant().await,
            "lost reply" => self.lost_reply(false).await,
            "DEBUG SLEEP" => self.lost_reply(true).await,
            _ => self.restart().await,
        }
        kind
    }
}

pub(crate) fn new_direct(
    client: &Client,
    resource: &str,
    owner: Option<&str>,
    ttl: u64,
) -> DistributedLock {
    let mut o = LockOptions::new().set_ttl(ms(ttl));
    if let Some(owner) = owner {
        o = o.set_owner_id(owner);
    }
    DistributedLock::with_options(client, &format!("lock:{resource}"), o).unwrap()
}

pub(crate) fn pttl_of(con: &mut redis::Connection, key: &str) -> i64 {
    redis::cmd("PTTL").arg(key).query(con).unwrap()
}
