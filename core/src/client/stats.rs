// SPDX-License-Identifier: MIT OR Apache-2.0
//! The counters of a client: what it sent, what woke its waiters, what its connection did; and
//! the lock timings and outcomes the metrics collector exports.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::LossReason;

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
    /// What only the metrics collector reads (not part of [`ClientStats`]).
    pub locks: LockCounters,
}

/// Upper bounds (µs) of the buckets of the lock timing histograms: 1 ms to 60 s.
pub(crate) const LOCK_BUCKETS_US: [u64; 15] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000, 30_000_000, 60_000_000,
];

/// A histogram of durations with the fixed buckets [`LOCK_BUCKETS_US`]: one atomic add per
/// bucket hit and one for the sum, no allocation and no lock.
#[derive(Default)]
pub(crate) struct Timings {
    /// Observations per bucket (not cumulative); the last one is above every bound.
    counts: [AtomicU64; LOCK_BUCKETS_US.len() + 1],
    sum_ns: AtomicU64,
}

/// A snapshot of a [`Timings`]: cumulative counts per bound (`+Inf` last, equal to the count).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TimingsSnapshot {
    pub cumulative: [u64; LOCK_BUCKETS_US.len() + 1],
    pub sum_ns: u64,
}

impl Timings {
    pub(crate) fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = LOCK_BUCKETS_US.partition_point(|&bound| bound < us);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> TimingsSnapshot {
        let mut out = TimingsSnapshot {
            sum_ns: self.sum_ns.load(Ordering::Relaxed),
            ..TimingsSnapshot::default()
        };
        let mut total = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            total += c.load(Ordering::Relaxed);
            out.cumulative[i] = total;
        }
        out
    }
}

/// Lock outcomes and timings of one client, for the metrics collector.
#[derive(Default)]
pub(crate) struct LockCounters {
    /// Acquisitions that found the lock held by another at least once.
    pub contended: AtomicU64,
    /// Acquisitions that ended without the lock (a single attempt found it held, or a wait
    /// timed out).
    pub not_acquired: AtomicU64,
    /// Grants to a waiter right after a release notice woke it (the fast handoff).
    pub handoffs: AtomicU64,
    /// Losses by reason, in the order of [`LOSS_REASONS`].
    pub lost: [AtomicU64; 4],
    /// From the start of each granted acquisition to its grant.
    pub acquire: Timings,
    /// From the start to the end (granted or not) of each acquisition that waited for a lock
    /// held by another.
    pub wait: Timings,
}

/// Every loss reason, in the order of [`LockCounters::lost`].
pub(crate) const LOSS_REASONS: [LossReason; 4] = [
    LossReason::Taken,
    LossReason::Expired,
    LossReason::RenewalFailed,
    LossReason::Deadline,
];

impl LockCounters {
    pub(crate) fn lost(&self, reason: LossReason) {
        let i = match reason {
            LossReason::Taken => 0,
            LossReason::Expired => 1,
            LossReason::RenewalFailed => 2,
            LossReason::Deadline => 3,
        };
        bump(&self.lost[i]);
    }

    pub(crate) fn snapshot(&self) -> LockCountersSnapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        LockCountersSnapshot {
            contended: g(&self.contended),
            not_acquired: g(&self.not_acquired),
            handoffs: g(&self.handoffs),
            lost: [
                g(&self.lost[0]),
                g(&self.lost[1]),
                g(&self.lost[2]),
                g(&self.lost[3]),
            ],
            acquire: self.acquire.snapshot(),
            wait: self.wait.snapshot(),
        }
    }
}

/// A snapshot of [`LockCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LockCountersSnapshot {
    pub contended: u64,
    pub not_acquired: u64,
    pub handoffs: u64,
    pub lost: [u64; 4],
    pub acquire: TimingsSnapshot,
    pub wait: TimingsSnapshot,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timings_fall_in_the_first_bucket_whose_bound_is_not_below_them() {
        let t = Timings::default();
        t.observe(Duration::from_micros(1_000)); // on the first bound: first bucket
        t.observe(Duration::from_micros(1_001)); // just above: second
        t.observe(Duration::from_secs(61)); // above every bound: +Inf only
        let s = t.snapshot();
        assert_eq!(s.cumulative[0], 1);
        assert_eq!(s.cumulative[1], 2);
        assert_eq!(s.cumulative[LOCK_BUCKETS_US.len() - 1], 2);
        assert_eq!(s.cumulative[LOCK_BUCKETS_US.len()], 3);
        assert_eq!(s.sum_ns, 1_000_000 + 1_001_000 + 61_000_000_000);
    }

    #[test]
    fn losses_are_counted_by_reason() {
        let c = LockCounters::default();
        c.lost(LossReason::Expired);
        c.lost(LossReason::Expired);
        c.lost(LossReason::Deadline);
        let s = c.snapshot();
        let by: Vec<(&str, u64)> = LOSS_REASONS
            .iter()
            .map(|r| r.as_str())
            .zip(s.lost)
            .collect();
        assert_eq!(
            by,
            [
                ("taken", 0),
                ("expired", 2),
                ("renewal-failed", 0),
                ("deadline", 1)
            ]
        );
    }
}
