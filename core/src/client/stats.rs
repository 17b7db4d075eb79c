// SPDX-License-Identifier: MIT OR Apache-2.0
//! The counters of a client: what it sent, what woke its waiters, what its connection did.

use std::sync::atomic::{AtomicU64, Ordering};

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
    pub(crate) fn snapshot(&self) -> ClientStats {
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
