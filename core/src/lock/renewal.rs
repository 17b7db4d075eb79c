// SPDX-License-Identifier: MIT OR Apache-2.0
//! Keeping a held lock: the renewal the client's scheduler runs every ttl/3 (one chain per
//! held lock, never overlapping, retried until the local deadline), and the loss signal when
//! it cannot (PROTOCOL.md, section 6).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::Instant;

use super::handle::{validity, LockInner, LockStatus};
use super::scripts;
use crate::client::bump;
use crate::error::{LossReason, Result};
use crate::scheduler::{Scheduled, TaskKind, Ticket};

impl LockInner {
    /// (Re)schedules this acquisition's next renewal at min(next renewal, deadline).
    pub(super) fn schedule_renewal(self: &Arc<Self>, generation: u64) {
        let scheduler = self.client.scheduler();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.status != LockStatus::Held || st.generation != generation {
            return;
        }
        if let Some(old) = st.ticket.take() {
            scheduler.cancel(old);
        }
        let at = st.next_renewal.min(st.deadline);
        let weak: Weak<dyn Scheduled> = Arc::downgrade(self) as Weak<dyn Scheduled>;
        st.ticket = Some(scheduler.schedule(at, TaskKind::Renewal, weak, generation));
    }

    /// Moves the local deadline earlier (never later) to `at`, after an extend or renewal
    /// whose outcome is unknown.
    pub(super) fn cap_deadline(&self, generation: u64, at: Instant) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.status == LockStatus::Held && st.generation == generation && at < st.deadline {
            st.deadline = at;
        }
    }

    pub(super) fn lose(&self, reason: LossReason, generation: u64) {
        {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if st.status != LockStatus::Held || st.generation != generation {
                return;
            }
            st.status = LockStatus::Lost(reason);
        }
        let stats = self.client.stats_ref();
        bump(&stats.lost);
        stats.locks.lost(reason);
        tracing::warn!("txcoord: lock {} lost ({reason})", self.keys.lock);
        self.status_tx.send_replace(LockStatus::Lost(reason));
    }
}

/// How long the loss waits for Redis to say what became of the key after the local deadline.
const CLASSIFY_BUDGET: Duration = Duration::from_millis(100);

/// The loss reason once the local deadline passed without a failed renewal: `taken` or
/// `expired` when Redis can say, `deadline` when it cannot (or the key is, oddly, still ours).
/// Only reads: a lock given up locally is never extended again. The question is short (100 ms
/// at most): the loss is announced once it is answered, and a holder whose Redis is itself
/// unreachable (stopped, partitioned) should hear of its loss at once, with `deadline`.
async fn classify_after_deadline(inner: &LockInner, value: &str) -> LossReason {
    let budget = inner.client.op_budget().min(CLASSIFY_BUDGET);
    let mut cmd = redis::cmd("GET");
    cmd.arg(&inner.keys.lock);
    match inner.client.query::<Option<String>>(cmd, budget).await {
        Ok(None) => LossReason::Expired,
        Ok(Some(v)) if v != value => LossReason::Taken,
        _ => LossReason::Deadline,
    }
}

impl Scheduled for LockInner {
    fn fire(
        self: Arc<Self>,
        generation: u64,
        ticket: Ticket,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(renew_once(self, generation, ticket))
    }
}

/// One renewal, run by the client's scheduler when it is due; schedules the next one.
async fn renew_once(inner: Arc<LockInner>, generation: u64, ticket: Ticket) {
    let _op = inner.op_lock.lock().await;
    let (value, next, deadline) = {
        let mut st = inner.state.lock().unwrap_or_else(|p| p.into_inner());
        // An extend that ran while this renewal waited for the op lock scheduled a newer
        // ticket: that one carries on, and this one stops (one chain per held lock).
        if st.status != LockStatus::Held || st.generation != generation || st.ticket != Some(ticket)
        {
            return;
        }
        st.ticket = None;
        (
            st.value.clone().unwrap_or_default(),
            st.next_renewal,
            st.deadline,
        )
    };
    let now = Instant::now();
    if now >= deadline {
        // The lease ran out before a renewal could run (this process was paused or starved):
        // `is_held` is already false; ask Redis, briefly, what became of the key.
        let reason = classify_after_deadline(&inner, &value).await;
        inner.lose(reason, generation);
        return;
    }
    if now < next {
        // moved by extend() meanwhile
        inner.schedule_renewal(generation);
        return;
    }
    let client = &inner.client;
    let ttl_ms = inner.ttl.as_millis() as u64;
    let budget = deadline.saturating_duration_since(now);
    let reply: Result<i64> = scripts::extend(client, &inner.keys, &value, ttl_ms, budget).await;
    match reply {
        Ok(1) => {
            bump(&client.stats_ref().renewals);
            {
                let mut st = inner.state.lock().unwrap_or_else(|p| p.into_inner());
                if st.generation == generation {
                    st.deadline = now + validity(ttl_ms);
                    st.next_renewal = now + inner.ttl / 3;
                }
            }
            inner.schedule_renewal(generation);
        }
        Ok(-2) => inner.lose(LossReason::Taken, generation),
        Ok(_) => inner.lose(LossReason::Expired, generation),
        Err(e) if e.is_retryable() => {
            // It may have run: with a ttl shorter than an earlier extend, the key now expires
            // sooner than the deadline says.
            inner.cap_deadline(generation, now + validity(ttl_ms));
            bump(&client.stats_ref().renewal_errors);
            tracing::debug!(
                "txcoord: renewal of {} failed, retrying: {e}",
                inner.keys.lock
            );
            if Instant::now() >= deadline {
                inner.lose(LossReason::Deadline, generation);
                return;
            }
            let pause =
                (inner.ttl / 10).clamp(Duration::from_millis(10), Duration::from_millis(200));
            {
                let mut st = inner.state.lock().unwrap_or_else(|p| p.into_inner());
                st.next_renewal = Instant::now() + pause;
            }
            inner.schedule_renewal(generation);
        }
        Err(e) => {
            tracing::warn!("txcoord: renewal of {} failed: {e}", inner.keys.lock);
            inner.lose(LossReason::RenewalFailed, generation);
        }
    }
}
