// SPDX-License-Identifier: MIT OR Apache-2.0
//! Release-channel subscriptions on the client's connection, and the fan-out of the notices
//! Redis pushes to the local waiters they name.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::{PushInfo, PushKind, Value};
use tokio::sync::Notify;

use super::{bump, Client, Stats};
use crate::error::Result;

/// How long a release channel stays subscribed after its last local waiter left, so that a
/// busy resource does not pay SUBSCRIBE/UNSUBSCRIBE for every contended acquisition.
const UNSUBSCRIBE_LINGER: Duration = Duration::from_secs(2);

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
pub(super) struct Shared {
    /// Waiter ids of this client are `<id>-<seq>`.
    pub(super) waiter_prefix: String,
    // A std mutex: held only for map updates, never across an await, and taken from the
    // connection's push callback, which must not block on an async lock.
    channels: Mutex<HashMap<String, Channel>>,
    // A tokio mutex: serialises SUBSCRIBE/UNSUBSCRIBE so an unsubscribe can never overtake a
    // newer subscribe of the same channel.
    sub_lock: tokio::sync::Mutex<()>,
    pub(super) stats: Arc<Stats>,
    pub(super) name_pending: AtomicBool,
}

impl Shared {
    pub(super) fn new(id: &str) -> Self {
        Shared {
            waiter_prefix: format!("{id}-"),
            channels: Mutex::new(HashMap::new()),
            sub_lock: tokio::sync::Mutex::new(()),
            stats: Arc::new(Stats::default()),
            name_pending: AtomicBool::new(true),
        }
    }

    pub(super) fn on_push(&self, info: PushInfo) {
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

impl Client {
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
