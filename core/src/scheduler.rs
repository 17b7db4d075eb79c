// SPDX-License-Identifier: MIT OR Apache-2.0
//! One timer per client: a time-ordered table of the work to run (lock renewals today; any
//! periodic work of the client's components can use it) and one task that sleeps until the
//! earliest is due. Scheduling or cancelling is a table insert or remove, not a task spawned
//! and aborted (which cost more than the Redis round trip of a renewal itself).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;
use tokio::time::Instant;

/// A scheduled run: when, and a unique number (the table key).
pub(crate) type Ticket = (Instant, u64);

/// What a scheduled run is for (counted per kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TaskKind {
    /// The renewal of a held lock.
    Renewal,
}

/// Something the scheduler runs when it is due. The table holds it weakly: dropping the last
/// strong reference cancels its runs.
pub(crate) trait Scheduled: Send + Sync + 'static {
    /// Runs the work scheduled as `ticket` for `generation` (in its own task).
    fn fire(
        self: Arc<Self>,
        generation: u64,
        ticket: Ticket,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

struct Entry {
    target: Weak<dyn Scheduled>,
    generation: u64,
    kind: TaskKind,
}

pub(crate) struct Scheduler {
    // A std mutex: inserts, removes and pops only, never held across an await.
    table: Mutex<BTreeMap<Ticket, Entry>>,
    seq: AtomicU64,
    // Shared with the timer task, which holds no strong reference to the scheduler.
    wake: Arc<Notify>,
    started: AtomicBool,
}

impl Scheduler {
    pub(crate) fn new() -> Arc<Scheduler> {
        Arc::new(Scheduler {
            table: Mutex::new(BTreeMap::new()),
            seq: AtomicU64::new(0),
            wake: Arc::new(Notify::new()),
            started: AtomicBool::new(false),
        })
    }

    /// Schedules `target`'s run for `generation` at `at`. Must run inside the runtime (it
    /// starts the timer task on first use).
    pub(crate) fn schedule(
        self: &Arc<Self>,
        at: Instant,
        kind: TaskKind,
        target: Weak<dyn Scheduled>,
        generation: u64,
    ) -> Ticket {
        let ticket = (at, self.seq.fetch_add(1, Ordering::Relaxed));
        let earliest = {
            let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
            let earliest = table.keys().next().map(|t| t.0);
            table.insert(
                ticket,
                Entry {
                    target,
                    generation,
                    kind,
                },
            );
            earliest
        };
        if !self.started.swap(true, Ordering::SeqCst) {
            tokio::spawn(run(Arc::downgrade(self), self.wake.clone()));
        } else if earliest.is_none_or(|e| at < e) {
            // the timer sleeps until a later time: wake it to sleep less
            self.wake.notify_one();
        }
        ticket
    }

    /// Removes a scheduled run (no-op if it already ran).
    pub(crate) fn cancel(&self, ticket: Ticket) {
        self.table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ticket);
    }

    /// Number of scheduled runs of one kind (for tests and soak checks).
    pub(crate) fn len_of(&self, kind: TaskKind) -> usize {
        self.table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|e| e.kind == kind)
            .count()
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        // let the timer task see that its table is gone, and end
        self.wake.notify_one();
    }
}

async fn run(scheduler: Weak<Scheduler>, wake: Arc<Notify>) {
    loop {
        let next = {
            let Some(s) = scheduler.upgrade() else { return };
            let now = Instant::now();
            let mut due = Vec::new();
            let next = {
                let mut table = s.table.lock().unwrap_or_else(|p| p.into_inner());
                while let Some(entry) = table.first_entry() {
                    if entry.key().0 > now {
                        break;
                    }
                    let ticket = *entry.key();
                    due.push((ticket, entry.remove()));
                }
                table.keys().next().map(|t| t.0)
            };
            for (ticket, entry) in due {
                if let Some(target) = entry.target.upgrade() {
                    tokio::spawn(target.fire(entry.generation, ticket));
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
