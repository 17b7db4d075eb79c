// SPDX-License-Identifier: MIT OR Apache-2.0
//! `Client`: one multiplexed, reconnecting Redis connection shared by every lock, carrying the
//! release-channel subscriptions as RESP3 pushes, and the per-client counters.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, ProtocolVersion, PushInfo, PushKind, Value};
use tokio::sync::Notify;

use crate::error::{Error, Result};
use crate::validate;

/// How long a release channel stays subscribed after its last local waiter left, so that a
/// busy resource does not pay SUBSCRIBE/UNSUBSCRIBE for every contended acquisition.
const UNSUBSCRIBE_LINGER: Duration = Duration::from_secs(2);

/// Connection settings of a [`Client`]. Defaults: no key prefix, client name
/// `txcoord-<random id>`, connect timeout 1 s, response timeout 2 s.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    key_prefix: String,
    client_name: Option<String>,
    connect_timeout: Duration,
    response_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            key_prefix: String::new(),
            client_name: None,
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(2),
        }
    }
}

impl ClientOptions {
    /// Options with every default.
    pub fn new() -> Self {
        Self::default()
    }

    /// A prefix put before every key txcoord writes (as ioredis' `keyPrefix`). The hash-tag rule
    /// of PROTOCOL.md applies to the full prefixed key.
    pub fn set_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// The name given with `CLIENT SETNAME` (shown by `CLIENT LIST`); no spaces or newlines.
    pub fn set_client_name(mut self, name: impl Into<String>) -> Self {
        self.client_name = Some(name.into());
        self
    }

    /// How long one connection attempt may take.
    pub fn set_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one command may wait for its reply before it fails with a connection error.
    pub fn set_response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// The key prefix.
    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }

    fn validate(&self) -> Result<()> {
        validate::key_prefix_str("key_prefix", &self.key_prefix)?;
        if let Some(name) = &self.client_name {
            if name.is_empty()
                || name.len() > 128
                || name.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(Error::invalid_argument(
                    "client_name",
                    "must be 1 to 128 bytes without spaces, newlines or control characters",
                ));
            }
        }
        for (arg, d) in [
            ("connect_timeout", self.connect_timeout),
            ("response_timeout", self.response_timeout),
        ] {
            validate::duration(arg, d, 1, validate::MAX_MS)?;
        }
        Ok(())
    }
}

/// A snapshot of a client's counters (see [`Client::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientStats {
    /// Acquire attempts sent (one script call each).
    pub attempts: u64,
    /// Acquisitions granted (including re-entries).
    pub acquired: u64,
    /// Releases that deleted the lock or dropped a hold.
    pub released: u64,
    /// Successful renewals.
    pub renewals: u64,
    /// Renewal attempts that failed with a retryable error.
    pub renewal_errors: u64,
    /// Locks that were lost while held.
    pub lost: u64,
    /// Waits ended by a release notification.
    pub wake_notified: u64,
    /// Waits ended by a timer: the holder's expiry or the fallback poll.
    pub wake_timer: u64,
    /// Times a waiter went to sleep until a release notice or a timer (each such sleep ends in
    /// `wake_notified` or `wake_timer`, or in the wait being cancelled).
    pub sleeps: u64,
    /// Release notifications received (for any waiter of this client).
    pub messages: u64,
    /// Connection losses seen.
    pub disconnects: u64,
    /// Channel subscriptions made.
    pub subscribes: u64,
    /// Channel subscriptions dropped.
    pub unsubscribes: u64,
}

#[derive(Default)]
pub(crate) struct Stats {
    pub attempts: AtomicU64,
    pub acquired: AtomicU64,
    pub released: AtomicU64,
    pub renewals: AtomicU64,
    pub renewal_errors: AtomicU64,
    pub lost: AtomicU64,
    pub wake_notified: AtomicU64,
    pub wake_timer: AtomicU64,
    pub sleeps: AtomicU64,
    pub messages: AtomicU64,
    pub disconnects: AtomicU64,
    pub subscribes: AtomicU64,
    pub unsubscribes: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Stats {
    fn snapshot(&self) -> ClientStats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ClientStats {
            attempts: g(&self.attempts),
            acquired: g(&self.acquired),
            released: g(&self.released),
            renewals: g(&self.renewals),
            renewal_errors: g(&self.renewal_errors),
            lost: g(&self.lost),
            wake_notified: g(&self.wake_notified),
            wake_timer: g(&self.wake_timer),
            sleeps: g(&self.sleeps),
            messages: g(&self.messages),
            disconnects: g(&self.disconnects),
            subscribes: g(&self.subscribes),
            unsubscribes: g(&self.unsubscribes),
        }
    }
}

/// Local waiters of one release channel.
#[derive(Default)]
struct Channel {
    waiters: HashMap<u64, Arc<Notify>>,
    /// Confirmed subscribed on the current connection (reset when the connection drops).
    subscribed: bool,
    /// Subscribed at some point and not unsubscribed since: the connection restores it after
    /// a reconnect, so it must be undone when the channel is no longer needed.
    requested: bool,
    generation: u64,
}

/// What the push handler touches: it must not hold the client itself (no reference cycle).
struct Shared {
    /// Waiter ids of this client are `<id>-<seq>`.
    waiter_prefix: String,
    // A std mutex: held only for map updates, never across an await, and taken from the
    // connection's push callback, which must not block on an async lock.
    channels: Mutex<HashMap<String, Channel>>,
    // A tokio mutex: serialises SUBSCRIBE/UNSUBSCRIBE so an unsubscribe can never overtake a
    // newer subscribe of the same channel.
    sub_lock: tokio::sync::Mutex<()>,
    stats: Stats,
    name_pending: AtomicBool,
}

impl Shared {
    fn on_push(&self, info: PushInfo) {
        match info.kind {
            PushKind::Message | PushKind::SMessage => {
                bump(&self.stats.messages);
                let (Some(channel), Some(payload)) = (info.data.first(), info.data.get(1)) else {
                    return;
                };
                let (Some(channel), Some(payload)) = (bytes_of(channel), bytes_of(payload)) else {
                    return;
                };
                let Ok(channel) = std::str::from_utf8(channel) else {
                    return;
                };
                let channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
                let Some(entry) = channels.get(channel) else {
                    return;
                };
                if payload == b"*" {
                    entry.waiters.values().for_each(|n| n.notify_one());
                    return;
                }
                let Some(seq) = std::str::from_utf8(payload)
                    .ok()
                    .and_then(|p| p.strip_prefix(self.waiter_prefix.as_str()))
                    .and_then(|s| s.parse::<u64>().ok())
                else {
                    return;
                };
                if let Some(n) = entry.waiters.get(&seq) {
                    n.notify_one();
                }
            }
            PushKind::Disconnection => {
                bump(&self.stats.disconnects);
                self.name_pending.store(true, Ordering::SeqCst);
                // Messages may have been missed while the connection was down: every local
                // waiter tries again. The subscriptions are restored by the connection, but
                // until then none can be counted on: the next waiter subscribes (again) and
                // makes its second attempt after that.
                let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
                for entry in channels.values_mut() {
                    entry.subscribed = false;
                    entry.waiters.values().for_each(|n| n.notify_one());
                }
            }
            _ => {}
        }
    }
}

fn bytes_of(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

struct ClientInner {
    redis: redis::Client,
    options: ClientOptions,
    name: String,
    id: String,
    seq: AtomicU64,
    conn: tokio::sync::OnceCell<ConnectionManager>,
    shared: Arc<Shared>,
    closed: AtomicBool,
    runtime: OnceLock<tokio::runtime::Handle>,
    renewals: Arc<crate::renewal::Renewals>,
}

/// A connection to one Redis server, shared by every lock built on it.
///
/// ## Behavior
///
/// - Creating a client parses and checks the URL but does not connect; the first command
///   connects (so a client can be created outside any async runtime).
/// - All locks, renewals and release subscriptions of a client share one multiplexed RESP3
///   connection that reconnects by itself; subscriptions are restored after a reconnect and
///   every waiter re-checks its lock, since notifications may have been missed meanwhile.
/// - The connection is named with `CLIENT SETNAME` (again after each reconnect).
/// - Cloning is cheap: clones share the connection.
#[derive(Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("name", &self.inner.name)
            .field("key_prefix", &self.inner.options.key_prefix)
            .finish()
    }
}

impl Client {
    /// A client for `redis://[user:password@]host[:port][/db]` or `rediss://...` (TLS).
    pub fn open(url: &str) -> Result<Client> {
        Self::with_options(url, ClientOptions::default())
    }

    /// A client with options (key prefix, client name, timeouts).
    pub fn with_options(url: &str, options: ClientOptions) -> Result<Client> {
        options.validate()?;
        if url.is_empty() {
            return Err(Error::invalid_argument("url", "must not be empty"));
        }
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(Error::invalid_argument(
                "url",
                "must start with redis:// or rediss://",
            ));
        }
        if url.starts_with("rediss://") {
            // rustls needs a process-wide crypto provider; install ring's unless one is set.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let parsed = redis::Client::open(url).map_err(|e| {
            Error::invalid_argument("url", format!("is not a valid Redis URL: {e}"))
        })?;
        let info = parsed.get_connection_info().clone();
        let redis_settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3)
            .set_lib_name("txcoord", env!("CARGO_PKG_VERSION"));
        let info = info.set_redis_settings(redis_settings);
        let redis = redis::Client::open(info).map_err(|e| {
            Error::invalid_argument("url", format!("is not a valid Redis URL: {e}"))
        })?;
        let id = short_id();
        let name = options
            .client_name
            .clone()
            .unwrap_or_else(|| format!("txcoord-{id}"));
        Ok(Client {
            inner: Arc::new(ClientInner {
                redis,
                options,
                name,
                seq: AtomicU64::new(0),
                conn: tokio::sync::OnceCell::new(),
                shared: Arc::new(Shared {
                    waiter_prefix: format!("{id}-"),
                    channels: Mutex::new(HashMap::new()),
                    sub_lock: tokio::sync::Mutex::new(()),
                    stats: Stats::default(),
                    name_pending: AtomicBool::new(true),
                }),
                id,
                closed: AtomicBool::new(false),
                runtime: OnceLock::new(),
                renewals: crate::renewal::Renewals::new(),
            }),
        })
    }

    /// A new client with the same settings and its own (not yet opened) connection. Bindings
    /// use it after `fork()`: the parent's connection and runtime threads do not exist in the
    /// child.
    pub fn reopen(&self) -> Client {
        let id = short_id();
        Client {
            inner: Arc::new(ClientInner {
                redis: self.inner.redis.clone(),
                options: self.inner.options.clone(),
                name: self.inner.name.clone(),
                seq: AtomicU64::new(0),
                conn: tokio::sync::OnceCell::new(),
                shared: Arc::new(Shared {
                    waiter_prefix: format!("{id}-"),
                    channels: Mutex::new(HashMap::new()),
                    sub_lock: tokio::sync::Mutex::new(()),
                    stats: Stats::default(),
                    name_pending: AtomicBool::new(true),
                }),
                id,
                closed: AtomicBool::new(false),
                runtime: OnceLock::new(),
                renewals: crate::renewal::Renewals::new(),
            }),
        }
    }

    /// The key prefix of this client.
    pub fn key_prefix(&self) -> &str {
        &self.inner.options.key_prefix
    }

    /// The connection name given with `CLIENT SETNAME`.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// A snapshot of this client's counters.
    pub fn stats(&self) -> ClientStats {
        self.inner.shared.stats.snapshot()
    }

    /// Connects if needed and checks that Redis answers.
    pub async fn ping(&self) -> Result<()> {
        let reply: String = self.query(redis::cmd("PING"), self.op_budget()).await?;
        if reply == "PONG" {
            Ok(())
        } else {
            Err(Error::Internal(format!("unexpected PING reply {reply:?}")))
        }
    }

    /// Refuses further commands. Locks still held keep their keys until their TTL; release
    /// them first (`LockManager::close` does).
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
    }

    /// Whether [`Client::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::SeqCst)
    }

    pub(crate) fn renewals(&self) -> &Arc<crate::renewal::Renewals> {
        &self.inner.renewals
    }

    /// Number of renewals currently scheduled (one per held lock).
    pub fn scheduled_renewals(&self) -> usize {
        self.inner.renewals.len()
    }

    pub(crate) fn stats_ref(&self) -> &Stats {
        &self.inner.shared.stats
    }

    /// The longest one command may take end to end when Redis does not answer: two connection
    /// attempts (with at most 500 ms between them), then the reply's timeout. A call that tries
    /// once (timeout 0) gives up after this.
    pub(crate) fn op_budget(&self) -> Duration {
        self.inner.options.connect_timeout * 2
            + Duration::from_millis(500)
            + self.inner.options.response_timeout
    }

    pub(crate) fn new_waiter(&self) -> (String, u64) {
        let seq = self.inner.seq.fetch_add(1, Ordering::Relaxed) + 1;
        (format!("{}-{seq}", self.inner.id), seq)
    }

    /// Spawns background work (cleanups from `Drop`) on the runtime this client runs on.
    pub(crate) fn spawn<F>(&self, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(fut);
        } else if let Some(handle) = self.inner.runtime.get() {
            handle.spawn(fut);
        } else {
            tracing::debug!("txcoord: no runtime to run a cleanup on; Redis TTLs will clear it");
        }
    }

    async fn connection(&self) -> Result<ConnectionManager> {
        if self.is_closed() {
            return Err(Error::Closed { what: "client" });
        }
        let inner = &self.inner;
        let conn = inner
            .conn
            .get_or_try_init(|| async {
                let _ = inner.runtime.set(tokio::runtime::Handle::current());
                let shared = inner.shared.clone();
                let config = ConnectionManagerConfig::new()
                    .set_push_sender(move |info: PushInfo| -> std::result::Result<(), ()> {
                        shared.on_push(info);
                        Ok(())
                    })
                    .set_automatic_resubscription()
                    .set_connection_timeout(Some(inner.options.connect_timeout))
                    .set_response_timeout(Some(inner.options.response_timeout))
                    .set_number_of_retries(1)
                    .set_min_delay(Duration::from_millis(20))
                    .set_max_delay(Duration::from_millis(500))
                    .set_pipeline_buffer_size(1024);
                ConnectionManager::new_lazy_with_config(inner.redis.clone(), config)
                    .map_err(Error::from)
            })
            .await?
            .clone();
        if inner.shared.name_pending.swap(false, Ordering::SeqCst) {
            let mut c = conn.clone();
            let mut cmd = redis::cmd("CLIENT");
            cmd.arg("SETNAME").arg(&inner.name);
            if let Err(e) = cmd.query_async::<()>(&mut c).await {
                inner.shared.name_pending.store(true, Ordering::SeqCst);
                return Err(e.into());
            }
        }
        Ok(conn)
    }

    /// Runs one command, failing with a connection error when no reply came within `budget`.
    pub(crate) async fn query<T: FromRedisValue>(
        &self,
        cmd: redis::Cmd,
        budget: Duration,
    ) -> Result<T> {
        self.bounded(budget, async {
            let mut conn = self.connection().await?;
            cmd.query_async::<T>(&mut conn).await.map_err(Error::from)
        })
        .await
    }

    /// Runs a pipeline, failing with a connection error when no reply came within `budget`.
    pub(crate) async fn query_pipeline<T: FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
        budget: Duration,
    ) -> Result<T> {
        self.bounded(budget, async {
            let mut conn = self.connection().await?;
            pipe.query_async::<T>(&mut conn).await.map_err(Error::from)
        })
        .await
    }

    /// `SET key value NX PX ttl_ms` and `TIME` in one round trip (one write on the
    /// multiplexed connection): `Some(Redis time in µs)` read right after the key was set, or
    /// `None` when the key exists.
    pub(crate) async fn set_nx_with_time(
        &self,
        key: &str,
        value: &str,
        ttl_ms: u64,
        budget: Duration,
    ) -> Result<Option<u64>> {
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(key)
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms)
            .cmd("TIME");
        let (set, (secs, micros)): (Option<String>, (u64, u64)) =
            self.query_pipeline(&pipe, budget).await?;
        Ok(set.map(|_| secs * 1_000_000 + micros))
    }

    /// Runs one script (EVALSHA, falling back to EVAL when Redis lost its script cache).
    pub(crate) async fn run_script<T: FromRedisValue>(
        &self,
        script: &redis::Script,
        keys: &[&str],
        args: &[&str],
        budget: Duration,
    ) -> Result<T> {
        self.bounded(budget, async {
            let mut conn = self.connection().await?;
            let mut inv = script.prepare_invoke();
            for k in keys {
                inv.key(*k);
            }
            for a in args {
                inv.arg(*a);
            }
            inv.invoke_async::<T>(&mut conn).await.map_err(Error::from)
        })
        .await
    }

    async fn bounded<T>(
        &self,
        budget: Duration,
        fut: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        if budget >= self.op_budget() {
            // The connection's own connect and response timeouts already bound this call.
            return fut.await;
        }
        match tokio::time::timeout(budget, fut).await {
            Ok(r) => r,
            Err(_) => Err(Error::connection(format!(
                "no reply from Redis within {} ms",
                budget.as_millis()
            ))),
        }
    }

    /// Registers a local waiter on a release channel. Notifications for it arrive on the
    /// returned registration until it is dropped.
    pub(crate) fn register_waiter(&self, channel: &str, seq: u64) -> WaiterRegistration {
        let notify = Arc::new(Notify::new());
        let mut channels = self
            .inner
            .shared
            .channels
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let entry = channels.entry(channel.to_string()).or_default();
        entry.waiters.insert(seq, notify.clone());
        entry.generation += 1;
        WaiterRegistration {
            client: self.clone(),
            channel: channel.to_string(),
            seq,
            notify,
        }
    }

    /// Makes sure this client is subscribed to `channel` (a registration must be held).
    pub(crate) async fn ensure_subscribed(&self, channel: &str, budget: Duration) -> Result<()> {
        let shared = &self.inner.shared;
        let is_subscribed = |shared: &Shared| {
            shared
                .channels
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(channel)
                .is_some_and(|c| c.subscribed)
        };
        if is_subscribed(shared) {
            return Ok(());
        }
        self.bounded(budget, async {
            let _serial = shared.sub_lock.lock().await;
            if is_subscribed(shared) {
                return Ok(());
            }
            let mut conn = self.connection().await?;
            conn.subscribe(channel).await?;
            bump(&shared.stats.subscribes);
            let orphaned = {
                let mut channels = shared.channels.lock().unwrap_or_else(|p| p.into_inner());
                let entry = channels.entry(channel.to_string()).or_default();
                entry.subscribed = true;
                entry.requested = true;
                // every local waiter left while we subscribed: undo it after the linger
                entry.waiters.is_empty().then(|| {
                    entry.generation += 1;
                    entry.generation
                })
            };
            if let Some(generation) = orphaned {
                self.schedule_unsubscribe(channel.to_string(), generation);
            }
            Ok(())
        })
        .await
    }

    pub(crate) fn is_subscribed_hint(&self, channel: &str) -> bool {
        self.inner
            .shared
            .channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(channel)
            .is_some_and(|c| c.subscribed)
    }

    fn schedule_unsubscribe(&self, channel: String, generation: u64) {
        let client = self.clone();
        self.spawn(async move {
            tokio::time::sleep(UNSUBSCRIBE_LINGER).await;
            let shared = &client.inner.shared;
            let _serial = shared.sub_lock.lock().await;
            let subscribed = {
                let mut channels = shared.channels.lock().unwrap_or_else(|p| p.into_inner());
                match channels.get(&channel) {
                    Some(c) if c.waiters.is_empty() && c.generation == generation => {
                        let subscribed = c.requested;
                        channels.remove(&channel);
                        subscribed
                    }
                    _ => return,
                }
            };
            if subscribed {
                if let Ok(mut conn) = client.connection().await {
                    let budget = client.op_budget();
                    match tokio::time::timeout(budget, conn.unsubscribe(&channel)).await {
                        Ok(Ok(())) => bump(&shared.stats.unsubscribes),
                        Ok(Err(e)) => tracing::debug!("txcoord: unsubscribe {channel}: {e}"),
                        Err(_) => tracing::debug!("txcoord: unsubscribe {channel}: timed out"),
                    }
                }
            }
        });
    }

    /// Number of channels with a subscription or local waiters (for tests and stats).
    pub fn channels_in_use(&self) -> usize {
        self.inner
            .shared
            .channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
}

/// A local waiter's place on a release channel; dropping it leaves the channel.
pub(crate) struct WaiterRegistration {
    client: Client,
    channel: String,
    seq: u64,
    pub(crate) notify: Arc<Notify>,
}

impl Drop for WaiterRegistration {
    fn drop(&mut self) {
        let generation = {
            let mut channels = self
                .client
                .inner
                .shared
                .channels
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let Some(entry) = channels.get_mut(&self.channel) else {
                return;
            };
            entry.waiters.remove(&self.seq);
            if !entry.waiters.is_empty() {
                return;
            }
            if !entry.requested {
                // never subscribed (an uncontended acquisition): nothing to undo in Redis
                channels.remove(&self.channel);
                return;
            }
            entry.generation += 1;
            entry.generation
        };
        self.client
            .schedule_unsubscribe(std::mem::take(&mut self.channel), generation);
    }
}

fn short_id() -> String {
    let u = uuid::Uuid::new_v4();
    let b = u.as_bytes();
    b[..8].iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn urls_are_checked_without_connecting() {
        assert!(Client::open("redis://127.0.0.1:1/0").is_ok());
        assert!(Client::open("rediss://user:pw@127.0.0.1:1/2").is_ok());
        for bad in [
            "",
            "http://x",
            "127.0.0.1:6000",
            "redis://127.0.0.1:notaport",
        ] {
            let e = Client::open(bad).expect_err(bad);
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad}");
            assert_eq!(e.argument(), Some("url"));
        }
    }

    #[test]
    fn options_are_checked() {
        let bad = ClientOptions::new().set_client_name("has space");
        assert_eq!(
            Client::with_options("redis://127.0.0.1:1", bad)
                .unwrap_err()
                .argument(),
            Some("client_name")
        );
        let bad = ClientOptions::new().set_key_prefix("a\0b");
        assert_eq!(
            Client::with_options("redis://127.0.0.1:1", bad)
                .unwrap_err()
                .argument(),
            Some("key_prefix")
        );
        let bad = ClientOptions::new().set_response_timeout(Duration::ZERO);
        assert_eq!(
            Client::with_options("redis://127.0.0.1:1", bad)
                .unwrap_err()
                .argument(),
            Some("response_timeout")
        );
    }

    #[test]
    fn waiter_ids_carry_the_client_id() {
        let c = Client::open("redis://127.0.0.1:1").unwrap();
        let (a, sa) = c.new_waiter();
        let (b, sb) = c.new_waiter();
        assert_ne!(a, b);
        assert_eq!(sb, sa + 1);
        assert!(a.starts_with(&c.inner.shared.waiter_prefix));
    }
}
