// SPDX-License-Identifier: MIT OR Apache-2.0
//! One renewal scheduler per client: a time-ordered table of the locks to renew and one task
//! that sleeps until the earliest is due. Acquiring or releasing a lock is a table insert or
//! remove, not a task spawned and aborted (which cost more than the Redis round trip itself).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;
use tokio::time::Instant;

/// A scheduled renewal: when, and a unique number (the table key).
pub(crate) type Ticket = (Instant, u64);

/// Something the scheduler renews. Implemented by the lock's inner state.
pub(crate) trait Renewable: Send + Sync + 'static {
    /// Runs the renewal scheduled as `ticket` for acquisition `generation` (in its own task).
    fn renew(
        self: Arc<Self>,
        generation: u64,
        ticket: Ticket,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
}

type Entry = (Weak<dyn Renewable>, u64);

pub(crate) struct Renewals {
    // A std mutex: inserts, removes and pops only, never held across an await.
    table: Mutex<BTreeMap<Ticket, Entry>>,
    seq: AtomicU64,
    // Shared with the scheduler task, which holds no strong reference to the table's owner.
    wake: Arc<Notify>,
    started: AtomicBool,
}

impl Renewals {
    pub(crate) fn new() -> Arc<Renewals> {
        Arc::new(Renewals {
            table: Mutex::new(BTreeMap::new()),
            seq: AtomicU64::new(0),
            wake: Arc::new(Notify::new()),
            started: AtomicBool::new(false),
        })
    }

    /// Schedules `lock`'s renewal for acquisition `generation` at `at`. Must run inside the
    /// runtime (it starts the scheduler task on first use).
    pub(crate) fn schedule(
        self: &Arc<Self>,
        at: Instant,
        lock: Weak<dyn Renewable>,
        generation: u64,
    ) -> Ticket {
        let ticket = (at, self.seq.fetch_add(1, Ordering::Relaxed));
        let earliest = {
            let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
            let earliest = table.keys().next().map(|t| t.0);
            table.insert(ticket, (lock, generation));
            earliest
        };
        if !self.started.swap(true, Ordering::SeqCst) {
            tokio::spawn(run(Arc::downgrade(self), self.wake.clone()));
        } else if earliest.is_none_or(|e| at < e) {
            // the scheduler sleeps until a later time: wake it to sleep less
            self.wake.notify_one();
        }
        ticket
    }

    /// Removes a scheduled renewal (no-op if it already ran).
    pub(crate) fn cancel(&self, ticket: Ticket) {
        self.table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ticket);
    }

    /// Number of scheduled renewals (for tests and soak checks).
    pub(crate) fn len(&self) -> usize {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Drop for Renewals {
    fn drop(&mut self) {
        // let the scheduler task see that its table is gone, and end
        self.wake.notify_one();
    }
}

async fn run(renewals: Weak<Renewals>, wake: Arc<Notify>) {
    loop {
        let next = {
            let Some(r) = renewals.upgrade() else { return };
            let now = Instant::now();
            let mut due = Vec::new();
            let next = {
                let mut table = r.table.lock().unwrap_or_else(|p| p.into_inner());
                while let Some(entry) = table.first_entry() {
                    if entry.key().0 > now {
                        break;
                    }
                    let ticket = *entry.key();
                    due.push((ticket, entry.remove()));
                }
                table.keys().next().map(|t| t.0)
            };
            for (ticket, (lock, generation)) in due {
                if let Some(lock) = lock.upgrade() {
                    tokio::spawn(lock.renew(generation, ticket));
                }
            }
            next
        };
        match next {
            Some(at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = wake.notified() => {}
                }
            }
            None => wake.notified().await,
        }
    }
}
