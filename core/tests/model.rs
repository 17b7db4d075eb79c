// SPDX-License-Identifier: MIT OR Apache-2.0
//! A randomized model test of the lock state machine of PROTOCOL.md against a real redis-server.
//!
//! Six actors, each its own `Client` (two share the owner id `saga-a`, two `saga-b`, two are
//! anonymous; one `saga-b` and one anonymous actor reach Redis through a fault proxy with short
//! timeouts), acquire, re-enter, extend, release and crash locks on three resources, one event at
//! a time, while a model of the protocol follows along. Some events run several operations at
//! once (bursts of acquisitions racing a release, a waiter handed the lock by a release notice or
//! at the holder's expiry, an extend meeting a due renewal); faults are rare events: a reply
//! dropped by the proxy, DEBUG SLEEP, a holder paused past its deadline, a Redis restart without
//! persistence. After every event:
//!
//! - every handle that `is_held` finds the lock key holding its value, so no two owners (nor two
//!   anonymous handles) are held at once. Exception, as PROTOCOL.md §6 documents: handles that
//!   were held when Redis restarted without persistence may say held until their next renewal
//!   or their deadline, and never past `kill time + the longest lease their key was given`;
//! - every fresh grant's fencing token is larger than every earlier token of its resource, and at
//!   most the Redis clock (µs) plus the number of grants; re-entries share their holder's token;
//! - where the model knows the outcome it checks it exactly: a free resource is granted fresh
//!   (hold count 1), a same-owner holder is re-entered (its value and token, hold count + 1, also
//!   when the attempt's reply was lost), a held handle's extend succeeds, and the lock key is gone
//!   once every hold of it was released, or one lease after its holders stopped renewing;
//! - a handle whose deadline passed reports the loss.
//!
//! At the end every hold is released, and Redis must hold nothing but what PROTOCOL.md says
//! remains: the holder hash `H` (fence counter) and the waiting index `I`, each with a TTL.
//!
//! An operation whose outcome is unknown on purpose (reply dropped by the proxy, DEBUG SLEEP)
//! turns off the exact predictions for its resource for one lease; the safety checks stay on.
//!
//! `TXCOORD_MODEL_SEED` replays a run's choices (the outcomes still depend on timing),
//! `TXCOORD_MODEL_STEPS` (default 20 000) and `TXCOORD_MODEL_SECONDS` (default 50) bound it; at
//! least `min(10 000, steps)` steps must run.

mod common;

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use common::*;
use txcoord::{
    AcquireOptions, Client, ClientOptions, DistributedLock, LockManager, LockOptions, LockStatus,
    LossReason, ManagerOptions,
};
use txcoord_testkit::{Proxy, RedisServer};

const RESOURCES: [&str; 3] = ["m0", "m1", "m2"];
const TTLS: [u64; 4] = [300, 500, 1_000, 2_000];
const EXTENDS: [u64; 6] = [30, 150, 400, 1_000, 2_000, 3_000];
/// The longest expiry any operation sets on a lock key (largest ttl or extend).
const MAX_LEASE: u64 = 3_000;
const WAITER_LEASE: u64 = 2_000;
/// Margin for a loaded machine: commands in flight, scheduling delays.
const SLACK: u64 = 1_000;
const MIN_STEPS: u64 = 10_000;
const OP_LIMIT: Duration = Duration::from_secs(30);
const MAX_HELD: usize = 14;
/// Events and their weights: plain operations are common, slow faults rare.
const EVENTS: [(&str, u64); 16] = [
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
const ACTORS: [(&str, Option<&str>, bool); 6] = [
    ("a0", Some("saga-a"), false),
    ("a1", Some("saga-a"), false),
    ("b0", Some("saga-b"), false),
    ("n0", None, false),
    ("fb", Some("saga-b"), true),
    ("fn", None, true),
];

struct Actor {
    name: &'static str,
    owner: Option<&'static str>,
    flaky: bool,
    client: Client,
    manager: LockManager,
    /// One `DistributedLock` per resource, reused across acquisitions (normal actors only).
    direct: Vec<DistributedLock>,
}

/// What the model knows of one acquisition (one hold).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum St {
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

struct Rec {
    id: u64,
    actor: usize,
    res: usize,
    lock: DistributedLock,
    direct: bool,
    value: String,
    owner: Option<String>,
    ttl: u64,
    st: St,
    /// The latest acquisition of its handle (a direct handle is reused).
    current: bool,
    /// Held when Redis restarted: may say held until this instant, not later.
    exempt_until: Option<Instant>,
    overdue_since: Option<Instant>,
}

/// The lock key's value as far as the model knows, while it may exist.
struct Live {
    value: String,
    owner: Option<String>,
    /// Longest expiry any operation set on it.
    max_ms: u64,
    /// A hold nobody saw may be recorded on it (an unknown outcome): hold counts are not exact.
    ghost_regs: bool,
    /// No handle of it is held: it is gone by this instant at the latest.
    ghost_until: Option<Instant>,
}

struct Res {
    name: &'static str,
    key: String,
    max_token: u64,
    grants: u64,
    tokens: BTreeMap<String, (u64, Option<String>)>,
    live: Option<Live>,
    unknown_until: Option<Instant>,
}

struct World {
    seed: u64,
    rng: Rng,
    server: RedisServer,
    proxy: Proxy,
    conn: redis::aio::MultiplexedConnection,
    actors: Vec<Actor>,
    recs: Vec<Rec>,
    res: Vec<Res>,
    next_id: u64,
    log: VecDeque<String>,
    start: Instant,
    step: u64,
    counts: BTreeMap<&'static str, u64>,
    handoff_ms: Vec<u64>,
    time: BTreeMap<&'static str, (u64, Duration)>,
}

/// What the model knew when an acquisition was sent.
#[derive(Clone, Copy)]
struct Ctx {
    /// The resource was certainly free.
    free: bool,
    /// A record of another owner held the resource before and after the call.
    other: Option<usize>,
    /// A record of the same owner held the resource before and after the call.
    same: Option<usize>,
    /// The hold count of a re-entry can be predicted (no concurrent acquisitions).
    exact_count: bool,
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

fn short(v: &str) -> &str {
    &v[..v.len().min(8)]
}

fn same_owner(a: &Option<String>, b: Option<&str>) -> bool {
    a.is_some() && a.as_deref() == b
}

/// The local deadline of a held handle (never later than the real one), `None` if not held.
fn deadline(lock: &DistributedLock) -> Option<Instant> {
    let now = Instant::now();
    lock.is_held().then(|| now + lock.remaining_validity())
}

/// Validity the library gives a lease of `ms` (PROTOCOL.md §6: less 1 % + 2 ms).
fn validity(ms: u64) -> Duration {
    Duration::from_millis(ms.saturating_sub(ms / 100 + 2))
}

async fn check_connection(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("check connection")
}

impl World {
    async fn new(seed: u64) -> World {
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

    fn note(&mut self, event: String) {
        if self.log.len() >= 60 {
            self.log.pop_front();
        }
        let t = self.start.elapsed().as_millis();
        self.log.push_back(format!("#{} +{t}ms {event}", self.step));
    }

    fn bump(&mut self, what: &'static str) {
        *self.counts.entry(what).or_default() += 1;
    }

    fn fail(&self, msg: String) -> ! {
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
    async fn bounded<T>(&self, what: &str, fut: impl std::future::Future<Output = T>) -> T {
        match tokio::time::timeout(OP_LIMIT, fut).await {
            Ok(v) => v,
            Err(_) => self.fail(format!("{what} did not finish within {OP_LIMIT:?}")),
        }
    }

    fn unknown(&self, r: usize) -> bool {
        self.res[r]
            .unknown_until
            .is_some_and(|u| Instant::now() < u)
    }

    fn is_free(&self, r: usize) -> bool {
        self.res[r].live.is_none() && !self.unknown(r)
    }

    /// An acquisition by `owner` on `r` ended without a known outcome: it may have left a key
    /// (or a hold on the live key, or a queue entry) that lives up to `lease` ms.
    fn mark_unknown(&mut self, r: usize, owner: Option<&str>, lease: u64) {
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
    fn regs(&self, r: usize, value: &str) -> usize {
        self.recs
            .iter()
            .filter(|x| x.res == r && x.value == value)
            .filter(|x| matches!(x.st, St::Held | St::Crashed))
            .count()
    }

    fn regs_exact(&self, r: usize, value: &str) -> bool {
        let ghost = self.res[r]
            .live
            .as_ref()
            .is_some_and(|l| l.value == value && l.ghost_regs);
        !ghost
            && !self.recs.iter().any(|x| {
                x.res == r && x.value == value && matches!(x.st, St::Releasing | St::MaybeReleased)
            })
    }

    fn rec_index(&self, id: u64) -> usize {
        self.recs.iter().position(|x| x.id == id).expect("record")
    }

    /// Records held (by `is_held`) on `r` with their deadlines, pre-restart ones left out.
    fn held_on(&self, r: usize) -> Vec<(usize, Instant)> {
        (0..self.recs.len())
            .filter(|&i| self.recs[i].res == r && self.recs[i].current)
            .filter(|&i| self.recs[i].exempt_until.is_none())
            .filter_map(|i| deadline(&self.recs[i].lock).map(|d| (i, d)))
            .collect()
    }

    /// The invariant pass, run after every event.
    async fn check(&mut self) {
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
    fn prune(&mut self) {
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

    fn direct_handle(&self, a: usize, r: usize) -> DistributedLock {
        self.actors[a].direct[r].clone()
    }

    fn current_direct(&self, a: usize, r: usize) -> Option<usize> {
        self.recs
            .iter()
            .position(|x| x.actor == a && x.res == r && x.direct && x.current)
    }

    async fn acquire(&mut self, a: usize, r: usize, timeout: u64, fair: bool, direct: bool) {
        let actor_name = self.actors[a].name;
        let owner = self.actors[a].owner;
        let flaky = self.actors[a].flaky;
        let mut ttl = self.rng.pick(&TTLS);
        let handle = direct.then(|| self.direct_handle(a, r));
        if let Some(h) = &handle {
            ttl = h.ttl().as_millis() as u64;
            if h.status() == LockStatus::Held {
                let before = h.value();
                let got = self.bounded("acquire", h.acquire()).await;
                if !matches!(got, Ok(false)) || h.value() != before {
                    self.fail(format!("acquire on a held handle gave {got:?}"));
                }
                self.bump("acquire on a held handle refused");
                return;
            }
        }
        let prev = handle.as_ref().and_then(|_| self.current_direct(a, r));
        let prev_status = prev.map(|p| self.recs[p].lock.status());
        let before = self.held_on(r);
        let free = self.is_free(r);
        self.note(format!(
            "{actor_name} acquire {} ttl {ttl} timeout {timeout} fair {fair} direct {direct} \
             (free {free}, held by {:?})",
            RESOURCES[r],
            before
                .iter()
                .map(|(i, _)| self.recs[*i].id)
                .collect::<Vec<_>>()
        ));
        let t0 = Instant::now();
        let result = match &handle {
            Some(h) => {
                let fut = async {
                    if timeout == 0 {
                        h.acquire().await
                    } else {
                        h.acquire_timeout(ms(timeout)).await
                    }
                };
                self.bounded("acquire", fut)
                    .await
                    .map(|ok| ok.then(|| h.clone()))
            }
            None => {
                let m = self.actors[a].manager.clone();
                let opts = AcquireOptions::new()
                    .set_ttl(ms(ttl))
                    .set_timeout(ms(timeout))
                    .set_fair(fair);
                self.bounded("acquire", m.acquire_lock_with(RESOURCES[r], opts))
                    .await
            }
        };
        let elapsed = t0.elapsed();
        let t1 = Instant::now();
        if let (Some(p), Some(LockStatus::Releasing | LockStatus::Lost(_))) = (prev, prev_status) {
            // The handle still owes a release (`needs_release`): a release not confirmed, or a
            // lock lost while its key may still exist, whose hold is still recorded. It must
            // be sent before the handle takes a new hold, or the old hold outlives it.
            self.recs[p].st = if result.is_ok() {
                St::Released
            } else {
                St::MaybeReleased
            };
        }
        let still: Vec<usize> = before
            .iter()
            .filter(|(i, d)| *d > t1 && self.recs[*i].lock.is_held())
            .map(|(i, _)| *i)
            .collect();
        let other = still
            .iter()
            .copied()
            .find(|&i| !same_owner(&self.recs[i].owner, owner));
        let same = still
            .iter()
            .copied()
            .find(|&i| same_owner(&self.recs[i].owner, owner));
        let in_time = elapsed < validity(ttl);
        match result {
            Err(e) => {
                self.note(format!("  -> error after {} ms: {e}", elapsed.as_millis()));
                // A waiting acquisition gives each attempt at least 50 ms, even past its
                // timeout; an attempt slower than that (a loaded machine) ends the call with
                // the connection error, its outcome unknown.
                let slow_attempt = timeout > 0 && elapsed >= ms(50) && e.is_retryable();
                if !flaky && !slow_attempt {
                    self.fail(format!("{actor_name}: unexpected acquire error: {e}"));
                }
                self.bump(if flaky {
                    "acquire error (flaky client)"
                } else {
                    "acquire error (attempt slower than 50 ms)"
                });
                let queue_lease = match (timeout, direct) {
                    (0, _) => 0,
                    (_, true) => txcoord::DEFAULT_WAITER_LEASE.as_millis() as u64,
                    (_, false) => WAITER_LEASE,
                };
                self.mark_unknown(r, owner, ttl.max(queue_lease));
            }
            Ok(None) => {
                self.note(format!(
                    "  -> not acquired after {} ms",
                    elapsed.as_millis()
                ));
                if !in_time {
                    // a grant that came too late is given back: its release may have failed
                    self.mark_unknown(r, owner, ttl);
                } else if free {
                    self.fail(format!("{actor_name} was refused a free {}", RESOURCES[r]));
                } else if let Some(h) = same {
                    self.fail(format!(
                        "{actor_name} (owner {owner:?}) was refused re-entry while rec {} held \
                         {}",
                        self.recs[h].id, RESOURCES[r]
                    ));
                }
                self.bump(if other.is_some() {
                    "refused: held by another owner"
                } else {
                    "refused"
                });
            }
            Ok(Some(lock)) => {
                if let Some(p) = prev {
                    self.recs[p].current = false;
                }
                let ctx = Ctx {
                    free,
                    other,
                    same,
                    exact_count: true,
                };
                self.granted(a, r, lock, ttl, direct, ctx).await;
            }
        }
    }

    async fn granted(
        &mut self,
        a: usize,
        r: usize,
        lock: DistributedLock,
        ttl: u64,
        direct: bool,
        ctx: Ctx,
    ) {
        let Ctx {
            free,
            other,
            same,
            exact_count,
        } = ctx;
        let value = lock.value().unwrap_or_default();
        let token = lock.fencing_token().unwrap_or(0);
        let count = lock.hold_count();
        let owner = lock.owner_id().map(str::to_string);
        let unknown = self.unknown(r);
        self.note(format!(
            "  -> acquired value {} token {token} hold count {count}",
            short(&value)
        ));
        if token == 0 || token >= 1 << 53 {
            self.fail(format!("token {token} out of range"));
        }
        if let Some((t, o)) = self.res[r].tokens.get(&value).cloned() {
            // a re-entry of a key the model saw granted
            if o.is_none() || o != owner {
                self.fail(format!(
                    "{owner:?} re-entered {} held by {o:?}",
                    RESOURCES[r]
                ));
            }
            if t != token {
                self.fail(format!("re-entry got token {token}, its holder has {t}"));
            }
            let live = self.res[r].live.as_ref().map(|l| l.value.clone());
            if live.as_deref() != Some(value.as_str()) {
                if !unknown {
                    self.fail(format!(
                        "re-entered {} whose key the model knows is gone",
                        short(&value)
                    ));
                }
            } else {
                if exact_count && !unknown && self.regs_exact(r, &value) {
                    let expected = self.regs(r, &value) as u64 + 1;
                    if count != expected {
                        self.fail(format!(
                            "re-entry hold count {count}, the model counts {expected}"
                        ));
                    }
                    self.bump("exact: re-entry hold count");
                }
                let l = self.res[r].live.as_mut().unwrap();
                l.max_ms = l.max_ms.max(ttl);
            }
            self.bump("re-entered");
        } else {
            // a fresh grant (or, after an unknown outcome, a re-entry of a grant nobody saw)
            if token <= self.res[r].max_token {
                self.fail(format!(
                    "token {token} is not larger than the earlier {}",
                    self.res[r].max_token
                ));
            }
            if let Some(i) = other {
                self.fail(format!(
                    "{owner:?} granted {} while rec {} ({:?}) held it",
                    RESOURCES[r], self.recs[i].id, self.recs[i].owner
                ));
            }
            if let Some(i) = same {
                self.fail(format!(
                    "a fresh grant while rec {} of the same owner held it: not a re-entry",
                    self.recs[i].id
                ));
            }
            if count != 1 && !unknown {
                self.fail(format!("fresh grant with hold count {count}"));
            }
            let time: redis::RedisResult<(u64, u64)> =
                redis::cmd("TIME").query_async(&mut self.conn).await;
            let (secs, micros) = time.unwrap_or_else(|e| self.fail(format!("TIME: {e}")));
            let now_us = secs * 1_000_000 + micros;
            if token > now_us + self.res[r].grants + 1_000 {
                self.fail(format!(
                    "token {token} is ahead of the Redis clock {now_us} by more than the grants"
                ));
            }
            let res = &mut self.res[r];
            res.max_token = token;
            res.grants += 1;
            res.tokens.insert(value.clone(), (token, owner.clone()));
            res.live = Some(Live {
                value: value.clone(),
                owner: owner.clone(),
                max_ms: ttl,
                ghost_regs: count != 1,
                ghost_until: None,
            });
            self.bump(if free {
                "exact: free granted"
            } else {
                "granted"
            });
        }
        self.next_id += 1;
        self.recs.push(Rec {
            id: self.next_id,
            actor: a,
            res: r,
            lock,
            direct,
            value,
            owner,
            ttl,
            st: St::Held,
            current: true,
            exempt_until: None,
            overdue_since: None,
        });
    }

    /// Records a release's outcome on record `i`, whose handle was `pre` before it.
    fn released(&mut self, i: usize, pre: LockStatus, result: txcoord::Result<()>) {
        let flaky = self.actors[self.recs[i].actor].flaky;
        match result {
            Ok(()) => {
                let post = self.recs[i].lock.status();
                if post != LockStatus::Released {
                    self.fail(format!(
                        "release of rec {} returned Ok, status {post:?}",
                        self.recs[i].id
                    ));
                }
                self.recs[i].st = match pre {
                    LockStatus::Lost(LossReason::Expired | LossReason::Taken) => St::Released,
                    LockStatus::Held | LockStatus::Releasing if !flaky => St::Released,
                    _ => St::MaybeReleased,
                };
                if let LockStatus::Lost(reason) = pre {
                    self.bump(match reason {
                        LossReason::Taken => "released after loss: taken",
                        LossReason::Expired => "released after loss: expired",
                        LossReason::Deadline => "released after loss: deadline",
                        _ => "released after loss: other",
                    });
                }
            }
            Err(e) => {
                self.note(format!("  -> release error {e}"));
                if !flaky {
                    self.fail(format!("unexpected release error: {e}"));
                }
                // the hold may remain: hold counts of the key are no longer exact
                self.recs[i].st = if self.recs[i].lock.status() == LockStatus::Releasing {
                    St::Releasing
                } else {
                    St::MaybeReleased
                };
            }
        }
    }

    async fn release(&mut self, i: usize, via_manager: bool) {
        let (a, r) = (self.recs[i].actor, self.recs[i].res);
        let target = if via_manager && !self.recs[i].direct {
            // the manager releases its most recent handle on the resource still owing one
            (0..self.recs.len())
                .filter(|&j| {
                    let x = &self.recs[j];
                    x.actor == a && x.res == r && !x.direct && x.lock.status().needs_release()
                })
                .max_by_key(|&j| self.recs[j].id)
                .unwrap_or(i)
        } else {
            i
        };
        let id = self.recs[target].id;
        let pre = self.recs[target].lock.status();
        let via = via_manager && !self.recs[i].direct;
        self.note(format!(
            "{} release rec {id} on {} (status {pre:?}, via manager {via})",
            self.actors[a].name, RESOURCES[r]
        ));
        let result = if via {
            let m = self.actors[a].manager.clone();
            self.bounded("release_lock", m.release_lock(RESOURCES[r]))
                .await
        } else {
            let lock = self.recs[target].lock.clone();
            self.bounded("release", lock.release()).await
        };
        let target = self.rec_index(id);
        self.released(target, pre, result);
        self.bump("released");
    }

    async fn extend(&mut self, i: usize) {
        let rec = &self.recs[i];
        let extra = if self.rng.chance(250) {
            None
        } else {
            Some(self.rng.pick(&EXTENDS))
        };
        let rec_ttl = rec.ttl;
        let eff = extra.unwrap_or(rec_ttl);
        let (id, r, lock, value) = (rec.id, rec.res, rec.lock.clone(), rec.value.clone());
        // a restart wiped the key of a pre-restart handle: it may still say held (§6)
        let exempt = rec.exempt_until.is_some();
        let flaky = self.actors[rec.actor].flaky;
        if let Some(l) = self.res[r].live.as_mut() {
            if l.value == value {
                l.max_ms = l.max_ms.max(eff);
            }
        }
        let before = deadline(&lock);
        self.note(format!(
            "extend rec {id} by {eff} ms (held until {before:?})"
        ));
        let result = self.bounded("extend", lock.extend(extra.map(ms))).await;
        let t1 = Instant::now();
        match result {
            Ok(true) => {
                let left = lock.remaining_validity();
                if left > ms(eff.max(rec_ttl)) {
                    self.fail(format!(
                        "rec {id} extended by {eff} ms (ttl {rec_ttl}) is valid for {left:?}"
                    ));
                }
                self.bump("extended");
            }
            Ok(false) => {
                self.note("  -> not extended".into());
                if before.is_some_and(|d| d > t1) && !exempt {
                    self.fail(format!("extend of rec {id} refused while it was held"));
                }
                self.bump("extend refused (not held)");
            }
            Err(e) => {
                self.note(format!("  -> extend error {e}"));
                // the key may now expire `eff` ms after the script ran: `max_ms` has it
                if !flaky {
                    self.fail(format!("unexpected extend error: {e}"));
                }
            }
        }
    }

    fn crash(&mut self, i: usize) {
        let rec = &self.recs[i];
        let event = format!(
            "crash rec {} ({} on {})",
            rec.id, self.actors[rec.actor].name, RESOURCES[rec.res]
        );
        self.note(event);
        let rec = &self.recs[i];
        rec.lock.test_crash();
        if rec.lock.is_held() {
            self.fail(format!("rec {} is_held after a crash", rec.id));
        }
        self.recs[i].st = St::Crashed;
        if self.recs[i].direct {
            // the crashed process is gone: its actor carries on with a new handle
            let (a, r) = (self.recs[i].actor, self.recs[i].res);
            self.recs[i].current = false;
            let ttl = self.rng.pick(&TTLS);
            let actor = &self.actors[a];
            self.actors[a].direct[r] = new_direct(&actor.client, RESOURCES[r], actor.owner, ttl);
        }
        self.bump("crashed");
    }

    /// Waits for a renewal of record `i` (its deadline moves later) or its loss.
    async fn renew(&mut self, i: usize) {
        let (id, lock, ttl) = (self.recs[i].id, self.recs[i].lock.clone(), self.recs[i].ttl);
        let Some(d0) = deadline(&lock) else { return };
        self.note(format!("wait for a renewal of rec {id}"));
        // A renewal moves the deadline to `send + ttl`: later, or earlier after a re-entry or
        // extend that gave more than the ttl.
        let limit = d0.max(Instant::now() + ms(ttl)) + ms(2 * SLACK);
        loop {
            tokio::time::sleep(ms(3)).await;
            match deadline(&lock) {
                Some(d) if d > d0 + ms(2) || d + ms(2) < d0 => {
                    self.bump("renewal seen");
                    return;
                }
                None => {
                    self.bump("lost while waiting for a renewal");
                    return;
                }
                Some(_) if Instant::now() > limit => {
                    self.fail(format!("rec {id} is_held past its deadline, never renewed"))
                }
                Some(_) => {}
            }
        }
    }

    /// A waiter of another owner queues; the holder releases every hold; the waiter must get
    /// the lock (woken by the release notice).
    /// The holds of `r`'s key when releasing them all frees it for sure: every hold is known,
    /// held, and of a client without faults.
    fn all_holds(&self, r: usize) -> Option<Vec<u64>> {
        let l = self.res[r].live.as_ref()?;
        let holds: Vec<&Rec> = self
            .recs
            .iter()
            .filter(|x| x.res == r && x.value == l.value)
            .collect();
        let ok = !self.unknown(r)
            && !l.ghost_regs
            && !holds.is_empty()
            && holds.iter().all(|x| {
                x.st == St::Held && x.current && !self.actors[x.actor].flaky && x.lock.is_held()
            });
        ok.then(|| holds.iter().map(|x| x.id).collect())
    }

    async fn handoff(&mut self) {
        let candidates: Vec<usize> = (0..self.res.len())
            .filter(|&r| self.all_holds(r).is_some())
            .collect();
        if candidates.is_empty() {
            return;
        }
        let r = self.rng.pick(&candidates);
        let holder_owner = self.res[r].live.as_ref().unwrap().owner.clone();
        let waiters: Vec<usize> = (0..self.actors.len())
            .filter(|&a| !self.actors[a].flaky && !same_owner(&holder_owner, self.actors[a].owner))
            .collect();
        let w = self.rng.pick(&waiters);
        let fair = self.rng.chance(400);
        let ttl = self.rng.pick(&TTLS);
        let holds = self.all_holds(r).unwrap_or_default();
        self.note(format!(
            "handoff of {} from {holds:?} to {} (fair {fair})",
            RESOURCES[r], self.actors[w].name
        ));
        let client = self.actors[w].client.clone();
        let sleeps = client.stats().sleeps;
        let m = self.actors[w].manager.clone();
        let opts = AcquireOptions::new()
            .set_ttl(ms(ttl))
            .set_timeout(ms(5_000))
            .set_fair(fair);
        let task = tokio::spawn(async move { m.acquire_lock_with(RESOURCES[r], opts).await });
        let limit = Instant::now() + ms(3_000);
        while client.stats().sleeps == sleeps && !task.is_finished() && Instant::now() < limit {
            tokio::time::sleep(ms(1)).await;
        }
        if client.stats().sleeps > sleeps {
            self.bump("handoff: the waiter was asleep");
        }
        for id in holds {
            let i = self.rec_index(id);
            let pre = self.recs[i].lock.status();
            let lock = self.recs[i].lock.clone();
            let result = self.bounded("release", lock.release()).await;
            self.released(i, pre, result);
        }
        let released_at = Instant::now();
        let got = self
            .bounded("handoff waiter", task)
            .await
            .expect("waiter task");
        let waited = released_at.elapsed().as_millis() as u64;
        match got {
            Ok(Some(lock)) => {
                self.handoff_ms.push(waited);
                self.bump("exact: handoff");
                self.granted(w, r, lock, ttl, false, Ctx::default()).await;
            }
            other => self.fail(format!(
                "the waiter was not handed {} after every hold was released: {other:?}",
                RESOURCES[r]
            )),
        }
    }

    /// An operation of a flaky actor whose reply is lost: dropped by the proxy (the command
    /// runs), or delayed by DEBUG SLEEP past the client's response timeout.
    async fn lost_reply(&mut self, stall: bool) {
        let flaky: Vec<usize> = (0..self.actors.len())
            .filter(|&a| self.actors[a].flaky)
            .collect();
        let a = self.rng.pick(&flaky);
        let owner = self.actors[a].owner;
        let held: Vec<usize> = (0..self.recs.len())
            .filter(|&i| {
                let x = &self.recs[i];
                x.actor == a && x.st == St::Held && x.lock.status() == LockStatus::Held
            })
            .collect();
        let mut kind = self.rng.below(4);
        if kind >= 2 && held.is_empty() {
            kind -= 2;
        }
        let r = if kind >= 2 {
            self.recs[held[0]].res
        } else {
            self.rng.index(RESOURCES.len())
        };
        if kind == 0 && !stall && self.rng.chance(500) {
            kind = 1; // the retry after a lost reply, where it can be predicted
        }
        // Waiting with retries after a dropped reply: predictable when the resource is free or
        // held by this owner (the retry must find its own grant or re-entry).
        let reentry = self
            .held_on(r)
            .iter()
            .any(|(i, d)| same_owner(&self.recs[*i].owner, owner) && *d > Instant::now() + ms(200));
        let predictable = !stall
            && kind == 1
            && !self.unknown(r)
            && (self.is_free(r) || (reentry && self.regs_exact(r, self.live_value(r))));
        if kind == 1 && !predictable {
            kind = 0;
        }
        let expected_count = if self.is_free(r) {
            1
        } else {
            self.regs(r, self.live_value(r)) as u64 + 1
        };
        self.note(format!(
            "{} lost reply (stall {stall}) kind {kind} on {} (predictable {predictable})",
            self.actors[a].name, RESOURCES[r]
        ));
        let sleeper = stall.then(|| {
            let secs = 0.3 + self.rng.below(300) as f64 / 1_000.0;
            tokio::task::block_in_place(|| debug_sleep(&self.server, secs))
        });
        if !stall {
            self.proxy.blackhole_down(true);
        }
        let m = self.actors[a].manager.clone();
        let ttl = self.rng.pick(&TTLS);
        match kind {
            0 => {
                let opts = AcquireOptions::new().set_ttl(ms(ttl)).set_timeout(ms(0));
                let got = self
                    .bounded("acquire", m.acquire_lock_with(RESOURCES[r], opts))
                    .await;
                self.end_fault(sleeper).await;
                self.note(format!("  -> {:?}", got.as_ref().map(|l| l.is_some())));
                match got {
                    Ok(Some(lock)) => self.granted(a, r, lock, ttl, false, Ctx::default()).await,
                    Ok(None) => {}
                    Err(_) => {
                        self.bump("lost reply: acquire");
                        self.mark_unknown(r, owner, ttl);
                    }
                }
            }
            1 => {
                let client = self.actors[a].client.clone();
                let attempts = client.stats().attempts;
                let opts = AcquireOptions::new()
                    .set_ttl(ms(ttl))
                    .set_timeout(ms(3_000))
                    .set_fair(self.rng.chance(300));
                let task =
                    tokio::spawn(async move { m.acquire_lock_with(RESOURCES[r], opts).await });
                let limit = Instant::now() + ms(2_000);
                while client.stats().attempts == attempts && Instant::now() < limit {
                    tokio::time::sleep(ms(1)).await;
                }
                // the attempt reached Redis and ran; its reply went nowhere
                tokio::time::sleep(ms(30)).await;
                self.end_fault(None).await;
                let got = self.bounded("acquire", task).await.expect("acquire task");
                // a re-entry is predictable if the holder kept the key all along
                let kept = expected_count == 1
                    || self.held_on(r).iter().any(|(i, _)| {
                        same_owner(&self.recs[*i].owner, owner)
                            && self.recs[*i].value == self.live_value(r)
                    });
                match got {
                    Ok(Some(lock)) if !kept => {
                        self.granted(a, r, lock, ttl, false, Ctx::default()).await;
                        self.mark_unknown(r, owner, ttl.max(WAITER_LEASE));
                    }
                    Ok(Some(lock)) => {
                        if lock.hold_count() != expected_count {
                            self.fail(format!(
                                "after a lost reply the retry got hold count {}, expected \
                                 {expected_count}",
                                lock.hold_count()
                            ));
                        }
                        self.bump("exact: lost reply recognised by the retry");
                        self.granted(a, r, lock, ttl, false, Ctx::default()).await;
                    }
                    other if kept => {
                        self.fail(format!(
                        "after a lost reply the waiting acquire of a {} resource gave {other:?}",
                        if expected_count == 1 { "free" } else { "same-owner" }
                    ))
                    }
                    _ => self.mark_unknown(r, owner, ttl.max(WAITER_LEASE)),
                }
            }
            _ => {
                let i = held[0];
                let lock = self.recs[i].lock.clone();
                if kind == 2 {
                    let extra = self.rng.pick(&EXTENDS);
                    if let Some(l) = self.res[r].live.as_mut() {
                        l.max_ms = l.max_ms.max(extra);
                    }
                    let got = self.bounded("extend", lock.extend(Some(ms(extra)))).await;
                    self.end_fault(sleeper).await;
                    self.note(format!(
                        "  -> extend rec {} by {extra}: {got:?}",
                        self.recs[i].id
                    ));
                    self.bump("lost reply: extend");
                } else {
                    let pre = lock.status();
                    let got = self.bounded("release", lock.release()).await;
                    self.end_fault(sleeper).await;
                    self.note(format!("  -> release rec {}: {got:?}", self.recs[i].id));
                    self.released(i, pre, got);
                    self.bump("lost reply: release");
                }
            }
        }
    }

    /// Several actors acquire one resource at the same instant, some waiting a little, while
    /// (sometimes) its holder releases it: mutual exclusion and tokens under real concurrency.
    async fn burst(&mut self) {
        let r = self.rng.index(RESOURCES.len());
        let n = 2 + self.rng.index(3);
        let mut actors: Vec<usize> = (0..self.actors.len()).collect();
        let mut plans = Vec::new();
        for _ in 0..n {
            let a = actors.remove(self.rng.index(actors.len()));
            let timeout = if self.rng.chance(300) {
                self.rng.pick(&[20, 40])
            } else {
                0
            };
            plans.push((a, self.rng.pick(&TTLS), timeout, self.rng.chance(300)));
        }
        let releasing = if self.rng.chance(400) {
            self.all_holds(r).unwrap_or_default()
        } else {
            Vec::new()
        };
        let free = self.is_free(r);
        self.note(format!(
            "burst on {}: {:?} (actor, ttl, timeout, fair), releasing {releasing:?}",
            RESOURCES[r], plans
        ));
        let acquires = plans.iter().map(|&(a, ttl, timeout, fair)| {
            let m = self.actors[a].manager.clone();
            let opts = AcquireOptions::new()
                .set_ttl(ms(ttl))
                .set_timeout(ms(timeout))
                .set_fair(fair);
            async move {
                let t0 = Instant::now();
                let got = m.acquire_lock_with(RESOURCES[r], opts).await;
                (got, t0.elapsed())
            }
        });
        let releases = releasing.iter().map(|&id| {
            let lock = self.recs[self.rec_index(id)].lock.clone();
            async move { (id, lock.status(), lock.release().await) }
        });
        let both = futures_util::future::join(
            futures_util::future::join_all(acquires),
            futures_util::future::join_all(releases),
        );
        let (got, released) = self.bounded("burst", both).await;
        let mut wins = Vec::new();
        let mut errors = 0;
        for (&(a, ttl, timeout, _), (result, elapsed)) in plans.iter().zip(got) {
            match result {
                Ok(Some(lock)) => wins.push((a, ttl, lock)),
                Ok(None) => {}
                Err(e) => {
                    errors += 1;
                    self.note(format!(
                        "  -> {} error after {elapsed:?}: {e}",
                        self.actors[a].name
                    ));
                    let slow_attempt = timeout > 0 && elapsed >= ms(50) && e.is_retryable();
                    if !self.actors[a].flaky && !slow_attempt {
                        self.fail(format!("unexpected acquire error in a burst: {e}"));
                    }
                    let owner = self.actors[a].owner;
                    let lease = if timeout > 0 { WAITER_LEASE } else { 0 };
                    self.mark_unknown(r, owner, ttl.max(lease));
                }
            }
        }
        if free && wins.is_empty() && errors == 0 {
            self.fail(format!("nobody of a burst got the free {}", RESOURCES[r]));
        }
        // in the order Redis granted them: fresh grants before the re-entries that follow
        wins.sort_by_key(|(_, _, l)| (l.fencing_token(), l.hold_count()));
        let values: std::collections::BTreeSet<String> =
            wins.iter().filter_map(|(_, _, l)| l.value()).collect();
        self.note(format!("  -> {} acquired, values {values:?}", wins.len()));
        for (a, ttl, lock) in wins {
            let ctx = Ctx {
                exact_count: false,
                ..Ctx::default()
            };
            self.granted(a, r, lock, ttl, false, ctx).await;
        }
        for (id, pre, result) in released {
            let i = self.rec_index(id);
            self.released(i, pre, result);
        }
        self.bump("burst");
    }

    /// A waiter of another owner waits for a key nobody renews (its holders crashed or lost
    /// it): it must get the lock once the key expires, woken at the holder's expiry.
    async fn expiry_wait(&mut self) {
        let r = self.rng.index(RESOURCES.len());
        let short_lease = self.res[r].live.as_ref().is_some_and(|l| l.max_ms <= 1_000);
        if let (true, Some(holds)) = (short_lease, self.all_holds(r)) {
            // the holder's process dies
            for id in holds {
                let i = self.rec_index(id);
                self.crash(i);
            }
        }
        let Some(live) = self.res[r].live.as_ref() else {
            return;
        };
        let (value, owner) = (live.value.clone(), live.owner.clone());
        let renewed = self.recs.iter().any(|x| {
            x.res == r
                && x.value == value
                && (x.lock.status() == LockStatus::Held || x.st == St::Releasing)
        });
        if renewed || self.unknown(r) {
            return;
        }
        let key = self.res[r].key.clone();
        let pttl: redis::RedisResult<i64> = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut self.conn)
            .await;
        let pttl = pttl.unwrap_or_else(|e| self.fail(format!("PTTL: {e}")));
        if !(1..=1_000).contains(&pttl) {
            return;
        }
        let waiters: Vec<usize> = (0..self.actors.len())
            .filter(|&a| !self.actors[a].flaky && !same_owner(&owner, self.actors[a].owner))
            .collect();
        let w = self.rng.pick(&waiters);
        let ttl = self.rng.pick(&TTLS);
        let fair = self.rng.chance(300);
        self.note(format!(
            "{} waits for {} ({} expires in {pttl} ms, fair {fair})",
            self.actors[w].name,
            RESOURCES[r],
            short(&value)
        ));
        let m = self.actors[w].manager.clone();
        let opts = AcquireOptions::new()
            .set_ttl(ms(ttl))
            .set_timeout(ms(pttl as u64 + 2 * SLACK))
            .set_fair(fair);
        let t0 = Instant::now();
        match self
            .bounded("acquire", m.acquire_lock_with(RESOURCES[r], opts))
            .await
        {
            Ok(Some(lock)) => {
                self.note(format!("  -> after {} ms", t0.elapsed().as_millis()));
                self.bump("exact: acquired at the holder's expiry");
                self.granted(w, r, lock, ttl, false, Ctx::default()).await;
            }
            other => self.fail(format!(
                "a key with {pttl} ms left and nobody renewing it was not acquired within \
                 {} ms: {other:?}",
                pttl as u64 + 2 * SLACK
            )),
        }
    }

    /// An extend queues for the handle's operation lock just as its renewal falls due (the
    /// renewal queues behind it): afterwards the handle is held and renewed as before.
    async fn extend_meets_renewal(&mut self) {
        let held: Vec<usize> = (0..self.recs.len())
            .filter(|&i| {
                let x = &self.recs[i];
                x.current && x.st == St::Held && x.ttl <= 1_000 && !self.actors[x.actor].flaky
            })
            .filter(|&i| self.recs[i].lock.is_held())
            .collect();
        if held.is_empty() {
            return;
        }
        let i = self.rng.pick(&held);
        let (id, ttl, lock) = (self.recs[i].id, self.recs[i].ttl, self.recs[i].lock.clone());
        self.note(format!("extend of rec {id} while its renewal falls due"));
        let guard = lock.test_hold_operation_lock().await;
        let l2 = lock.clone();
        let extend = tokio::spawn(async move { l2.extend(None).await });
        tokio::time::sleep(ms(ttl / 3 + 20)).await;
        drop(guard);
        let got = self.bounded("extend", extend).await.expect("extend task");
        match got {
            Ok(true) => self.bump("extend met a due renewal"),
            Ok(false) if !lock.is_held() => self.bump("extend refused (not held)"),
            other => self.fail(format!("extend of held rec {id} gave {other:?}")),
        }
        // the renewal that waited has run (the operation lock is fair)
        drop(lock.test_hold_operation_lock().await);
        if let Some(d0) = deadline(&lock) {
            let limit = d0 + ms(SLACK);
            loop {
                tokio::time::sleep(ms(3)).await;
                match deadline(&lock) {
                    Some(d) if d > d0 + ms(2) => break,
                    None => break,
                    Some(_) if Instant::now() > limit => {
                        self.fail(format!("rec {id} is no longer renewed after the race"))
                    }
                    Some(_) => {}
                }
            }
        }
    }

    /// A normal client's grant whose reply arrives after the lease it grants (DEBUG SLEEP):
    /// not trusted, given back before the call returns.
    async fn late_grant(&mut self) {
        let normal: Vec<usize> = (0..self.actors.len())
            .filter(|&a| !self.actors[a].flaky)
            .collect();
        let a = self.rng.pick(&normal);
        let free: Vec<usize> = (0..self.res.len()).filter(|&r| self.is_free(r)).collect();
        if free.is_empty() {
            return;
        }
        let r = self.rng.pick(&free);
        let ttl = 300;
        let secs = 0.6 + self.rng.below(300) as f64 / 1_000.0;
        self.note(format!(
            "{} acquire the free {} ttl {ttl} during DEBUG SLEEP {secs}",
            self.actors[a].name, RESOURCES[r]
        ));
        let sleeper = tokio::task::block_in_place(|| debug_sleep(&self.server, secs));
        let m = self.actors[a].manager.clone();
        let opts = AcquireOptions::new().set_ttl(ms(ttl)).set_timeout(ms(0));
        let t0 = Instant::now();
        let got = self
            .bounded("acquire", m.acquire_lock_with(RESOURCES[r], opts))
            .await;
        let elapsed = t0.elapsed();
        self.end_fault(Some(sleeper)).await;
        self.note(format!(
            "  -> {:?} after {} ms",
            got.as_ref().map(|l| l.is_some()),
            elapsed.as_millis()
        ));
        let key = self.res[r].key.clone();
        let now: redis::RedisResult<Option<String>> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut self.conn)
            .await;
        let now = now.unwrap_or_else(|e| self.fail(format!("GET: {e}")));
        match got {
            Ok(Some(lock)) => {
                // (measured around the call: up to scheduling delays later than inside it)
                if elapsed > validity(ttl) + ms(100) {
                    self.fail(format!(
                        "a grant whose reply came after {} ms was trusted (ttl {ttl})",
                        elapsed.as_millis()
                    ));
                }
                let ctx = Ctx {
                    free: true,
                    ..Ctx::default()
                };
                self.granted(a, r, lock, ttl, false, ctx).await;
            }
            Ok(None) if elapsed >= validity(ttl) => {
                if let Some(v) = now {
                    self.fail(format!(
                        "a late grant was not given back: {key} = {}",
                        short(&v)
                    ));
                }
                self.bump("exact: late grant given back");
            }
            Ok(None) => self.fail(format!("a free {} was refused", RESOURCES[r])),
            Err(e) => self.fail(format!("unexpected acquire error: {e}")),
        }
    }

    /// The process of a holder is paused past its deadline (its renewal waits for the
    /// operation lock): the handle reports the loss, `deadline` while the key is still its
    /// value, and half the time it acquires again at once.
    async fn starved_renewal(&mut self) {
        let held: Vec<usize> = (0..self.recs.len())
            .filter(|&i| {
                let x = &self.recs[i];
                x.current && x.st == St::Held && !self.actors[x.actor].flaky
            })
            .filter(|&i| {
                let left = self.recs[i].lock.remaining_validity();
                !left.is_zero() && left < ms(600)
            })
            .collect();
        if held.is_empty() {
            return;
        }
        // rather an owned direct handle whose key other holds share
        let shared: Vec<usize> = held
            .iter()
            .copied()
            .filter(|&i| {
                let x = &self.recs[i];
                x.direct && x.owner.is_some() && self.regs(x.res, &x.value) >= 2
            })
            .collect();
        let i = if shared.is_empty() || self.rng.chance(300) {
            self.rng.pick(&held)
        } else {
            self.rng.pick(&shared)
        };
        let rec = &self.recs[i];
        let (id, a, r) = (rec.id, rec.actor, rec.res);
        let (lock, value, direct) = (rec.lock.clone(), rec.value.clone(), rec.direct);
        {
            let paused = lock.test_hold_operation_lock().await;
            let left = lock.remaining_validity();
            self.note(format!("rec {id} paused past its deadline ({left:?} left)"));
            tokio::time::sleep(left + ms(100)).await;
            drop(paused);
        }
        let limit = Instant::now() + ms(5_000);
        while lock.status() == LockStatus::Held {
            if Instant::now() > limit {
                self.fail(format!("rec {id} passed its deadline and reports no loss"));
            }
            tokio::time::sleep(ms(2)).await;
        }
        let status = lock.status();
        // another hold of the key was held all along: the key still is this handle's value
        let kept = self
            .held_on(r)
            .iter()
            .any(|(j, _)| self.recs[*j].value == value);
        self.note(format!(
            "  -> {status:?} (key kept by another hold: {kept})"
        ));
        if kept && status != LockStatus::Lost(LossReason::Deadline) {
            self.fail(format!(
                "rec {id} lost while its key still held its value: {status:?}, expected \
                 Lost(Deadline)"
            ));
        }
        self.bump(match status {
            LockStatus::Lost(LossReason::Deadline) => "paused holder: lost (deadline)",
            LockStatus::Lost(LossReason::Expired) => "paused holder: lost (expired)",
            LockStatus::Lost(LossReason::Taken) => "paused holder: lost (taken)",
            _ => "paused holder: other",
        });
        if direct && self.recs[self.rec_index(id)].current && self.rng.chance(500) {
            self.acquire(a, r, 0, false, true).await;
        }
    }

    fn live_value(&self, r: usize) -> &str {
        self.res[r].live.as_ref().map_or("", |l| l.value.as_str())
    }

    async fn end_fault(&mut self, sleeper: Option<std::thread::JoinHandle<()>>) {
        match sleeper {
            Some(s) => {
                let joined = tokio::task::spawn_blocking(move || s.join()).await;
                if !matches!(joined, Ok(Ok(()))) {
                    self.fail("DEBUG SLEEP failed".into());
                }
            }
            None => {
                // cut the connections before replies flow again: a connection that lost a reply
                // would hand the next reply to the wrong command
                self.proxy.reset_all();
                self.proxy.blackhole_down(false);
            }
        }
    }

    /// Redis restarts without persistence: every key is gone.
    async fn restart(&mut self) {
        self.note("restart redis-server without persistence".into());
        tokio::task::block_in_place(|| self.server.kill());
        let killed = Instant::now();
        for i in 0..self.recs.len() {
            let rec = &self.recs[i];
            if rec.st == St::Held && rec.current && rec.lock.status() == LockStatus::Held {
                let lease = self.res[rec.res]
                    .live
                    .as_ref()
                    .filter(|l| l.value == rec.value)
                    .map_or(MAX_LEASE, |l| l.max_ms);
                self.recs[i].exempt_until = Some(killed + ms(lease));
            }
        }
        tokio::task::block_in_place(|| self.server.restart());
        for res in self.res.iter_mut() {
            res.live = None;
            res.unknown_until = None;
        }
        self.conn = check_connection(&self.server).await;
        for a in 0..self.actors.len() {
            let client = self.actors[a].client.clone();
            let mut ok = false;
            for _ in 0..100 {
                if client.ping().await.is_ok() {
                    ok = true;
                    break;
                }
                tokio::time::sleep(ms(50)).await;
            }
            if !ok {
                self.fail(format!("{} never reconnected", self.actors[a].name));
            }
        }
        self.bump("restarts");
    }

    /// Releases everything, waits for every key the model allows to linger to expire, and
    /// checks that Redis holds nothing else than PROTOCOL.md §5 says.
    async fn quiesce(&mut self) {
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
                let allowed = if k == "txcoord:waiting" {
                    pttl > 0 && pttl <= 5_000
                } else if k.ends_with("}:~h") {
                    let f: Option<String> =
                        redis::cmd("HGET").arg(&k).arg("f").query(&mut con).unwrap();
                    f.is_some() && pttl > 0 && pttl <= (MAX_LEASE + 60_000) as i64
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
    async fn run_step(&mut self) -> &'static str {
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

fn new_direct(client: &Client, resource: &str, owner: Option<&str>, ttl: u64) -> DistributedLock {
    let mut o = LockOptions::new().set_ttl(ms(ttl));
    if let Some(owner) = owner {
        o = o.set_owner_id(owner);
    }
    DistributedLock::with_options(client, &format!("lock:{resource}"), o).unwrap()
}

fn pttl_of(con: &mut redis::Connection, key: &str) -> i64 {
    redis::cmd("PTTL").arg(key).query(con).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_state_machine_follows_its_model() {
    let seed = env_u64("TXCOORD_MODEL_SEED").unwrap_or_else(time_seed);
    let target = env_u64("TXCOORD_MODEL_STEPS").unwrap_or(20_000);
    let budget = Duration::from_secs(env_u64("TXCOORD_MODEL_SECONDS").unwrap_or(50));
    let min_steps = target.min(MIN_STEPS);
    eprintln!(
        "model: seed {seed} (replay with TXCOORD_MODEL_SEED={seed}), up to {target} steps in \
         {budget:?}"
    );
    let mut world = World::new(seed).await;
    let started = Instant::now();
    while world.step < target && started.elapsed() < budget {
        world.step += 1;
        let t = Instant::now();
        let kind = world.run_step().await;
        world.check().await;
        let spent = world.time.entry(kind).or_default();
        spent.0 += 1;
        spent.1 += t.elapsed();
        if world.step % 20_000 == 0 && world.step < target {
            world.quiesce().await;
        }
    }
    let steps = world.step;
    let secs = started.elapsed().as_secs_f64();
    world.quiesce().await;
    let mut handoff = world.handoff_ms.clone();
    handoff.sort_unstable();
    let pct = |p: usize| handoff.get(handoff.len() * p / 100).copied().unwrap_or(0);
    eprintln!(
        "model: seed {seed}: {steps} steps in {secs:.1} s ({:.0} steps/s); handoff ms p50 {} \
         p99 {} max {}",
        steps as f64 / secs,
        pct(50),
        pct(99),
        handoff.last().copied().unwrap_or(0)
    );
    for (what, n) in &world.counts {
        eprintln!("  {what}: {n}");
    }
    for (kind, (n, spent)) in &world.time {
        eprintln!("  time in {kind}: {n} events, {} ms", spent.as_millis());
    }
    assert!(
        steps >= min_steps,
        "seed {seed}: only {steps} steps within {budget:?} (at least {min_steps} required)"
    );
    for what in [
        "exact: free granted",
        "re-entered",
        "crashed",
        "extended",
        "released",
    ] {
        assert!(
            world.counts.get(what).copied().unwrap_or(0) > 0,
            "seed {seed}: the run never exercised '{what}'"
        );
    }
}

/// The sequence the model found, step by step: a handle of an owner-shared lock that lost it by
/// its deadline (its process paused) while another hold kept the key still owes the release of
/// its hold (`needs_release`); acquiring again must not leave that hold behind, or the key
/// outlives the release of every live hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_lost_by_its_deadline_drops_its_old_hold_when_it_acquires_again() {
    let server = RedisServer::start();
    let c = client(&server);
    let owned = |ttl| LockOptions::new().set_ttl(ms(ttl)).set_owner_id("saga");
    let a = DistributedLock::with_options(&c, "shared", owned(300)).unwrap();
    let b = DistributedLock::with_options(&c, "shared", owned(30_000)).unwrap();
    assert!(a.acquire().await.unwrap());
    assert!(b.acquire().await.unwrap());
    assert_eq!(b.hold_count(), 2);
    {
        // A's process pauses past its deadline: its renewal cannot run
        let _paused = a.test_hold_operation_lock().await;
        tokio::time::sleep(ms(500)).await;
    }
    wait_until("A reports the loss", ms(5_000), || {
        a.status() != LockStatus::Held
    })
    .await;
    assert_eq!(
        a.status(),
        LockStatus::Lost(LossReason::Deadline),
        "B kept the key"
    );
    assert!(a.acquire().await.unwrap(), "A re-enters the lock B holds");
    assert_eq!(
        a.hold_count(),
        2,
        "A re-entered without releasing the hold it lost"
    );
    a.release().await.unwrap();
    b.release().await.unwrap();
    assert_eq!(
        get(&server, "shared"),
        None,
        "the key outlives the release of every live hold (pttl {} ms)",
        pttl(&server, "shared")
    );
}
