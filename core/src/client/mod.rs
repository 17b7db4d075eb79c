// SPDX-License-Identifier: MIT OR Apache-2.0
//! `Client`: one multiplexed, reconnecting Redis connection shared by every lock, carrying the
//! release-channel subscriptions as RESP3 pushes, the per-client counters and the client's
//! timer.
//!
//! - `connection.rs`: the connection itself, and running commands, pipelines and scripts
//!   within a time budget;
//! - `push.rs`: release-channel subscriptions and the fan-out of pushed notices to local
//!   waiters;
//! - `stats.rs`: the counters.

mod connection;
mod push;
mod stats;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock, Weak};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::ProtocolVersion;

use crate::binding::validate;
use crate::deadlock::probe::Prober;
use crate::error::{Error, Result};
use crate::scheduler::{Scheduler, TaskKind};

use push::Shared;
pub(crate) use push::WaiterRegistration;
pub use stats::ClientStats;
pub(crate) use stats::{
    bump, LockCountersSnapshot, Stats, TimingsSnapshot, LOCK_BUCKETS_US, LOSS_REASONS,
};

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
    scheduler: Arc<Scheduler>,
    prober: Arc<Prober>,
}

impl ClientInner {
    fn new(redis: redis::Client, options: ClientOptions, name: String, id: String) -> Self {
        ClientInner {
            redis,
            options,
            name,
            seq: AtomicU64::new(0),
            conn: tokio::sync::OnceCell::new(),
            shared: Arc::new(Shared::new(&id)),
            id,
            closed: AtomicBool::new(false),
            runtime: OnceLock::new(),
            scheduler: Scheduler::new(),
            prober: Arc::new(Prober::default()),
        }
    }
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
            inner: Arc::new(ClientInner::new(redis, options, name, id)),
        })
    }

    /// The client of this process for `url` and `options`: the one already open with exactly
    /// these settings, if any is still in use, else a new one. This is how the Python and Node
    /// packages turn a URL string into a client, so that code building a lock or a manager per
    /// call (as the seed's does) shares one connection instead of opening one per call, and a
    /// client nobody uses any more is closed (the table holds clients weakly). A forked child
    /// process never gets its parent's client.
    pub fn shared(url: &str, options: ClientOptions) -> Result<Client> {
        static SHARED: LazyLock<Mutex<HashMap<String, Weak<ClientInner>>>> =
            LazyLock::new(|| Mutex::new(HashMap::new()));
        let key = format!("{}\0{url}\0{options:?}", std::process::id());
        // A std mutex: map lookups and inserts only, never held across an await.
        let mut table = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(inner) = table.get(&key).and_then(Weak::upgrade) {
            if !inner.closed.load(Ordering::SeqCst) {
                return Ok(Client { inner });
            }
        }
        table.retain(|_, c| c.strong_count() > 0);
        let client = Client::with_options(url, options)?;
        table.insert(key, Arc::downgrade(&client.inner));
        Ok(client)
    }

    /// A new client with the same settings and its own (not yet opened) connection. Bindings
    /// use it after `fork()`: the parent's connection and runtime threads do not exist in the
    /// child.
    pub fn reopen(&self) -> Client {
        let inner = &self.inner;
        Client {
            inner: Arc::new(ClientInner::new(
                inner.redis.clone(),
                inner.options.clone(),
                inner.name.clone(),
                short_id(),
            )),
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

    /// The client's timer: lock renewals (and any other periodic work) run from it.
    pub(crate) fn scheduler(&self) -> &Arc<Scheduler> {
        &self.inner.scheduler
    }

    /// The deadlock probes of this client's waiting acquisitions.
    pub(crate) fn prober(&self) -> &Arc<Prober> {
        &self.inner.prober
    }

    /// Number of renewals currently scheduled (one per held lock).
    pub fn scheduled_renewals(&self) -> usize {
        self.inner.scheduler.len_of(TaskKind::Renewal)
    }

    pub(crate) fn stats_ref(&self) -> &Stats {
        &self.inner.shared.stats
    }

    /// The counters themselves, shared: they outlive the client (the metrics collector keeps
    /// them, so its totals never go down when a client is dropped).
    pub(crate) fn stats_arc(&self) -> Arc<Stats> {
        self.inner.shared.stats.clone()
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
    fn shared_clients_are_one_per_url_and_options_while_used() {
        let url = "redis://127.0.0.1:1/5";
        let a = Client::shared(url, ClientOptions::new()).unwrap();
        let b = Client::shared(url, ClientOptions::new()).unwrap();
        assert!(Arc::ptr_eq(&a.inner, &b.inner));
        let other = Client::shared(url, ClientOptions::new().set_key_prefix("x:")).unwrap();
        assert!(!Arc::ptr_eq(&a.inner, &other.inner));
        let weak = Arc::downgrade(&a.inner);
        drop((a, b));
        assert!(weak.upgrade().is_none(), "no longer used: gone");
        let c = Client::shared(url, ClientOptions::new()).unwrap();
        c.close();
        let d = Client::shared(url, ClientOptions::new()).unwrap();
        assert!(!d.is_closed(), "a closed client is not handed out again");
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
