// SPDX-License-Identifier: MIT OR Apache-2.0
//! `LeaderElection`: among the candidates of one election name, at most one leads at a time,
//! and each leadership has a term that is larger than every earlier one (PROTOCOL.md,
//! section 9). Built on the lock: the leader holds the election's lock, renewed as every lock
//! is, and is deposed the moment it could no longer be sure of it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::binding::validate;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::lock::{DistributedLock, LockOptions, LockStatus};
use crate::registry;

/// The default lease of a leadership: 10 000 ms (renewed every third of it; a leader that dies
/// is replaced within the lease plus one renewal interval).
pub const DEFAULT_LEADER_TTL: Duration = Duration::from_millis(10_000);

/// Settings of a [`LeaderElection`].
#[derive(Debug, Clone)]
pub struct ElectionOptions {
    ttl: Duration,
    candidate_id: Option<String>,
}

impl Default for ElectionOptions {
    fn default() -> Self {
        ElectionOptions {
            ttl: DEFAULT_LEADER_TTL,
            candidate_id: None,
        }
    }
}

impl ElectionOptions {
    pub fn new() -> Self {
        Self::default()
    }
    /// The lease of a leadership (renewed every third of it while leading).
    pub fn set_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }
    /// This candidate's identity, as observers see the leader (default: the client's name
    /// and a random suffix). Distinct candidates need distinct ids.
    pub fn set_candidate_id(mut self, id: impl Into<String>) -> Self {
        self.candidate_id = Some(id.into());
        self
    }
}

/// Who leads an election, as observers read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    pub candidate_id: String,
    pub term: u64,
    /// How long its lease has left, in ms.
    pub remaining_ms: i64,
}

struct Inner {
    client: Client,
    key: String,
    candidate: String,
    ttl: Duration,
    // A std mutex: swapped between campaigns, never held across an await.
    lock: Mutex<Option<DistributedLock>>,
    /// `Some(term)` while this candidate leads.
    state: watch::Sender<Option<u64>>,
}

/// A candidate in one leader election.
///
/// ## Behavior
///
/// - `campaign` waits (up to its timeout) until this candidate leads; the wait is woken by the
///   release notice when a leader resigns, or at the lease's end when it died.
/// - `is_leader` is false as soon as the leadership's local deadline passed, so a leader that
///   was paused past its lease knows it is deposed before it acts.
/// - `term` is the leadership's fencing token: larger for every later leadership, usable as a
///   fencing number in the writes the leader makes.
/// - `watch` gives the changes (`Some(term)` when elected, `None` when revoked or resigned).
#[derive(Clone)]
pub struct LeaderElection {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LeaderElection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElection")
            .field("key", &self.inner.key)
            .field("candidate", &self.inner.candidate)
            .field("term", &self.term())
            .finish()
    }
}

impl LeaderElection {
    /// A candidate in the election `name` (key `txcoord:election:<name>` after the prefix).
    pub fn new(client: &Client, name: &str, options: ElectionOptions) -> Result<LeaderElection> {
        validate::resource_str("name", name)?;
        let ttl = validate::duration("ttl", options.ttl, 1, validate::MAX_MS)?;
        let candidate = match options.candidate_id {
            Some(id) => {
                validate::owner_id_str("candidate_id", &id)?;
                id
            }
            None => format!(
                "{}-{}",
                client.name(),
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
        };
        let key = format!("txcoord:election:{name}");
        // the key must pass the hash-tag rule before anything is sent
        DistributedLock::with_options(client, &key, LockOptions::new().set_ttl(ttl))
            .map_err(|e| rename(e, "name"))?;
        Ok(LeaderElection {
            inner: Arc::new(Inner {
                client: client.clone(),
                key,
                candidate,
                ttl,
                lock: Mutex::new(None),
                state: watch::channel(None).0,
            }),
        })
    }

    /// This candidate's id.
    pub fn candidate_id(&self) -> &str {
        &self.inner.candidate
    }

    /// The election's lock key (without the client's prefix).
    pub fn key(&self) -> &str {
        &self.inner.key
    }

    fn current(&self) -> Option<DistributedLock> {
        self.inner
            .lock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether this candidate leads now (and its lease's local deadline has not passed).
    pub fn is_leader(&self) -> bool {
        self.current().is_some_and(|l| l.is_held())
    }

    /// The term of this candidate's leadership, while it leads.
    pub fn term(&self) -> Option<u64> {
        self.current()
            .filter(|l| l.is_held())
            .and_then(|l| l.fencing_token())
    }

    /// Changes of this candidate's leadership: `Some(term)` when elected, `None` when revoked
    /// (the lease lost) or resigned.
    pub fn watch(&self) -> watch::Receiver<Option<u64>> {
        self.inner.state.subscribe()
    }

    /// Waits up to `timeout` to lead; `true` once leading (at once if it already leads).
    /// Dropping the future cancels the wait.
    pub async fn campaign(&self, timeout: Duration) -> Result<bool> {
        if self.is_leader() {
            return Ok(true);
        }
        let lock = DistributedLock::with_options(
            &self.inner.client,
            &self.inner.key,
            LockOptions::new()
                .set_ttl(self.inner.ttl)
                .set_owner_id(self.inner.candidate.clone()),
        )?;
        if !lock.acquire_timeout(timeout).await? {
            return Ok(false);
        }
        let term = lock.fencing_token();
        *self.inner.lock.lock().unwrap_or_else(|p| p.into_inner()) = Some(lock.clone());
        self.inner.state.send_replace(term);
        // revoked when the lock is lost (not when it is released: resign says so itself)
        let state = self.inner.state.clone();
        let mut loss = lock.loss_watch();
        self.inner.client.spawn(async move {
            if let Some(reason) = loss.lost().await {
                tracing::warn!(target: "txcoord", "txcoord: leadership lost ({reason})");
                state.send_if_modified(|s| {
                    let changed = *s == term;
                    if changed {
                        *s = None;
                    }
                    changed
                });
            }
        });
        Ok(true)
    }

    /// Gives up the leadership (if this candidate leads): the lock is released, and the
    /// candidates waiting are woken.
    pub async fn resign(&self) -> Result<()> {
        let lock = self.current();
        if let Some(lock) = lock {
            let was = lock.fencing_token();
            lock.release().await?;
            if lock.status() == LockStatus::Released {
                self.inner.state.send_if_modified(|s| {
                    let changed = s.is_some() && *s == was;
                    if changed {
                        *s = None;
                    }
                    changed
                });
            }
        }
        Ok(())
    }

    /// Who leads now, as any observer reads it (`None`: nobody).
    pub async fn leader(&self) -> Result<Option<Leader>> {
        let full = format!("{}{}", self.inner.client.key_prefix(), self.inner.key);
        let info = registry::inspect(&self.inner.client, &full).await?;
        Ok(info.holder.and_then(|h| {
            Some(Leader {
                candidate_id: h.owner_id?,
                term: h.fencing_token?,
                remaining_ms: info.pttl_ms,
            })
        }))
    }
}

fn rename(e: Error, arg: &'static str) -> Error {
    match e {
        Error::InvalidArgument { message, .. } => Error::InvalidArgument {
            arg: arg.into(),
            message,
        },
        other => other,
    }
}
