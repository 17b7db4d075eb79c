// SPDX-License-Identifier: MIT OR Apache-2.0
//! Detection without waiting for a monitor: a waiting acquisition with an owner id that has
//! waited longer than its deadlock timeout asks its client to look for cycles through its
//! saga, as PostgreSQL's waiting backend does after `deadlock_timeout`. The client's prober
//! coalesces them: one read of the part of the registry reachable from all of its due waiters
//! serves them all, each round.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::read;
use super::resolve::break_cycles;
use crate::client::Client;

struct Watch {
    owner: String,
    lock_key: String,
    due: Instant,
    every: Duration,
}

/// The deadlock probes of one client.
#[derive(Default)]
pub(crate) struct Prober {
    // A std mutex: map updates only, never held across an await.
    watches: Mutex<HashMap<u64, Watch>>,
    seq: AtomicU64,
    // Whether the probe task runs (it ends when no watch is left).
    running: Mutex<bool>,
    wake: Notify,
}

/// A waiting acquisition's place among the probes; dropping it ends its probing.
pub(crate) struct ProbeGuard {
    prober: Arc<Prober>,
    id: u64,
}

impl Drop for ProbeGuard {
    fn drop(&mut self) {
        self.prober
            .watches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

impl Prober {
    /// Probes for cycles through `owner`, waiting on `lock_key`, `first` from now and every
    /// `every` after that, until the guard is dropped.
    pub(crate) fn watch(
        self: &Arc<Self>,
        client: &Client,
        owner: &str,
        lock_key: &str,
        first: Duration,
        every: Duration,
    ) -> ProbeGuard {
        let id = self.seq.fetch_add(1, Ordering::Relaxed);
        self.watches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                id,
                Watch {
                    owner: owner.to_string(),
                    lock_key: lock_key.to_string(),
                    due: Instant::now() + first,
                    every,
                },
            );
        let start = {
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            !std::mem::replace(&mut *running, true)
        };
        if start {
            let prober = self.clone();
            let client = client.clone();
            client
                .clone()
                .spawn(async move { prober.run(client).await });
        } else {
            self.wake.notify_one();
        }
        ProbeGuard {
            prober: self.clone(),
            id,
        }
    }

    async fn run(self: Arc<Self>, client: Client) {
        loop {
            let (due, next) = {
                let mut watches = self.watches.lock().unwrap_or_else(|p| p.into_inner());
                if watches.is_empty() {
                    *self.running.lock().unwrap_or_else(|p| p.into_inner()) = false;
                    return;
                }
                let now = Instant::now();
                let mut due = Vec::new();
                for w in watches.values_mut() {
                    if w.due <= now {
                        due.push((w.owner.clone(), w.lock_key.clone()));
                        w.due = now + w.every;
                    }
                }
                let next = watches.values().map(|w| w.due).min();
                (due, next)
            };
            if !due.is_empty() {
                probe(&client, due).await;
            }
            if let Some(at) = next {
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = self.wake.notified() => {}
                }
            }
        }
    }
}

/// One probe round for the due waiters: read what is reachable from them, break what is
/// found (re-checked, the same victims every process would choose).
async fn probe(client: &Client, mut starts: Vec<(String, String)>) {
    starts.sort();
    starts.dedup();
    let graph = match read::reachable_graph(client, &starts).await {
        Ok(g) => g,
        Err(e) => {
            tracing::debug!(target: "txcoord", "txcoord: deadlock probe: {e}");
            return;
        }
    };
    match break_cycles(client, graph, None).await {
        Ok(broken) => {
            for b in broken.into_iter().filter(|b| b.aborted_here) {
                tracing::warn!(target: "txcoord", "txcoord: {}", b.cycle);
            }
        }
        Err(e) => tracing::debug!(target: "txcoord", "txcoord: deadlock probe: {e}"),
    }
}
