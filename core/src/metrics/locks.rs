// SPDX-License-Identifier: MIT OR Apache-2.0
//! Lock metrics: read at scrape time from the counters of the clients the collector watches,
//! summed over them. Nothing is recorded here: the lock paths bump their clients' atomics.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prometheus::core::Desc;
use prometheus::proto::{self, MetricFamily, MetricType};

use crate::client::{
    Client, ClientStats, LockCountersSnapshot, Stats, TimingsSnapshot, LOCK_BUCKETS_US,
    LOSS_REASONS,
};

/// A lock metric family: name, help, type, its one label (if any).
struct Family {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    label: Option<&'static str>,
}

const fn counter(name: &'static str, help: &'static str) -> Family {
    Family {
        name,
        help,
        kind: MetricType::COUNTER,
        label: None,
    }
}

const FAMILIES: [Family; 14] = [
    counter(
        "txcoord_lock_acquire_attempts_total",
        "Lock acquire attempts sent to Redis",
    ),
    counter(
        "txcoord_lock_acquired_total",
        "Lock acquisitions granted (re-entries included)",
    ),
    counter(
        "txcoord_lock_released_total",
        "Lock releases that deleted the lock or dropped a hold",
    ),
    counter(
        "txcoord_lock_contended_total",
        "Lock acquisitions that found the lock held by another",
    ),
    counter(
        "txcoord_lock_not_acquired_total",
        "Lock acquisitions that ended without the lock (busy, or the wait timed out)",
    ),
    counter(
        "txcoord_lock_handoffs_total",
        "Locks granted to a waiter right after a release notice woke it",
    ),
    Family {
        name: "txcoord_lock_wakeups_total",
        help: "Sleeping lock waiters woken, by a release notice or by a timer",
        kind: MetricType::COUNTER,
        label: Some("by"),
    },
    counter("txcoord_lock_renewals_total", "Successful lock renewals"),
    counter(
        "txcoord_lock_renewal_errors_total",
        "Lock renewals that failed with a retryable error (retried)",
    ),
    Family {
        name: "txcoord_lock_lost_total",
        help: "Locks lost while held, by reason",
        kind: MetricType::COUNTER,
        label: Some("reason"),
    },
    counter(
        "txcoord_lock_release_notices_total",
        "Release notices received over pub/sub",
    ),
    counter(
        "txcoord_redis_disconnects_total",
        "Connection losses of the clients' Redis connections",
    ),
    Family {
        name: "txcoord_lock_acquire_duration_seconds",
        help: "Time from the start of a lock acquisition to its grant",
        kind: MetricType::HISTOGRAM,
        label: None,
    },
    Family {
        name: "txcoord_lock_wait_duration_seconds",
        help: "Time lock acquisitions that found the lock held waited, granted or not",
        kind: MetricType::HISTOGRAM,
        label: None,
    },
];

/// The lock metrics of the watched clients.
pub(crate) struct LockMetrics {
    // A std mutex: a list pushed to by `watch` and copied by a scrape, never held across an
    // await.
    clients: Mutex<Vec<Arc<Stats>>>,
    descs: Vec<Desc>,
}

/// The sum of every watched client's counters.
#[derive(Default)]
struct Totals {
    stats: ClientStats,
    locks: LockCountersSnapshot,
}

impl LockMetrics {
    pub(crate) fn new() -> LockMetrics {
        let descs = FAMILIES
            .iter()
            .map(|f| {
                let labels = f.label.iter().map(|l| l.to_string()).collect();
                Desc::new(f.name.into(), f.help.into(), labels, HashMap::new())
                    .expect("valid lock metric descriptors")
            })
            .collect();
        LockMetrics {
            clients: Mutex::new(Vec::new()),
            descs,
        }
    }

    /// Adds a client (once: watching it again changes nothing). Its counters are kept after it
    /// is dropped, so totals never go down.
    pub(crate) fn watch(&self, client: &Client) {
        let stats = client.stats_arc();
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if !clients.iter().any(|s| Arc::ptr_eq(s, &stats)) {
            clients.push(stats);
        }
    }

    pub(crate) fn watched(&self) -> usize {
        self.clients.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub(crate) fn descs(&self) -> impl Iterator<Item = &Desc> {
        self.descs.iter()
    }

    fn totals(&self) -> Option<Totals> {
        let clients = self
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if clients.is_empty() {
            return None;
        }
        let mut t = Totals::default();
        for c in &clients {
            let s = c.snapshot();
            let l = c.locks.snapshot();
            let a = &mut t.stats;
            a.attempts += s.attempts;
            a.acquired += s.acquired;
            a.released += s.released;
            a.renewals += s.renewals;
            a.renewal_errors += s.renewal_errors;
            a.wake_notified += s.wake_notified;
            a.wake_timer += s.wake_timer;
            a.messages += s.messages;
            a.disconnects += s.disconnects;
            let b = &mut t.locks;
            b.contended += l.contended;
            b.not_acquired += l.not_acquired;
            b.handoffs += l.handoffs;
            for (sum, x) in b.lost.iter_mut().zip(l.lost) {
                *sum += x;
            }
            add_timings(&mut b.acquire, &l.acquire);
            add_timings(&mut b.wait, &l.wait);
        }
        Some(t)
    }

    /// The families, or none while no client is watched.
    pub(crate) fn collect(&self) -> Vec<MetricFamily> {
        let Some(t) = self.totals() else {
            return Vec::new();
        };
        let (s, l) = (&t.stats, &t.locks);
        let one = |v: u64| vec![(None, v)];
        let values: [Vec<(Option<&str>, u64)>; 12] = [
            one(s.attempts),
            one(s.acquired),
            one(s.released),
            one(l.contended),
            one(l.not_acquired),
            one(l.handoffs),
            vec![
                (Some("notice"), s.wake_notified),
                (Some("timer"), s.wake_timer),
            ],
            one(s.renewals),
            one(s.renewal_errors),
            LOSS_REASONS
                .iter()
                .zip(l.lost)
                .map(|(r, v)| (Some(r.as_str()), v))
                .collect(),
            one(s.messages),
            one(s.disconnects),
        ];
        let mut out = Vec::with_capacity(FAMILIES.len());
        for (f, series) in FAMILIES.iter().zip(values) {
            let metrics = series
                .into_iter()
                .map(|(label, v)| {
                    let mut m = proto::Metric::default();
                    if let (Some(name), Some(value)) = (f.label, label) {
                        m.set_label(vec![label_pair(name, value)]);
                    }
                    let mut c = proto::Counter::default();
                    c.set_value(v as f64);
                    m.set_counter(c);
                    m
                })
                .collect();
            out.push(family(f, metrics));
        }
        out.push(family(&FAMILIES[12], vec![histogram(&l.acquire)]));
        out.push(family(&FAMILIES[13], vec![histogram(&l.wait)]));
        out
    }
}

fn add_timings(sum: &mut TimingsSnapshot, x: &TimingsSnapshot) {
    for (a, b) in sum.cumulative.iter_mut().zip(x.cumulative) {
        *a += b;
    }
    sum.sum_ns += x.sum_ns;
}

pub(crate) fn label_pair(name: &str, value: &str) -> proto::LabelPair {
    let mut p = proto::LabelPair::default();
    p.set_name(name.to_string());
    p.set_value(value.to_string());
    p
}

fn family(f: &Family, metrics: Vec<proto::Metric>) -> MetricFamily {
    let mut mf = MetricFamily::default();
    mf.set_name(f.name.to_string());
    mf.set_help(f.help.to_string());
    mf.set_field_type(f.kind);
    mf.set_metric(metrics);
    mf
}

fn histogram(t: &TimingsSnapshot) -> proto::Metric {
    let buckets = LOCK_BUCKETS_US
        .iter()
        .zip(t.cumulative)
        .map(|(&us, n)| {
            let mut b = proto::Bucket::default();
            b.set_upper_bound(us as f64 / 1e6);
            b.set_cumulative_count(n);
            b
        })
        .collect();
    let mut h = proto::Histogram::default();
    h.set_bucket(buckets);
    h.set_sample_count(t.cumulative[LOCK_BUCKETS_US.len()]);
    h.set_sample_sum(t.sum_ns as f64 / 1e9);
    let mut m = proto::Metric::default();
    m.set_histogram(h);
    m
}
