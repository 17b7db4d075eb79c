// SPDX-License-Identifier: MIT OR Apache-2.0
//! The agent's output: one JSON object per line on stdout, its fields in the order given.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use txcoord::{ClientStats, DistributedLock};

/// Prints one JSON object as one line (stdout is locked for the whole line).
pub fn emit(fields: Vec<(&str, Value)>) {
    let mut line = String::from("{");
    for (i, (k, v)) in fields.into_iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        line.push_str(&Value::from(k).to_string());
        line.push(':');
        line.push_str(&v.to_string());
    }
    line.push('}');
    let mut out = std::io::stdout().lock();
    // A closed stdout means the test harness is gone: nothing left to report to.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Wall-clock microseconds (every agent reports the same clock, so times compare across
/// processes on one host).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

pub fn stats_fields(s: &ClientStats) -> Vec<(&'static str, Value)> {
    vec![
        ("attempts", s.attempts.into()),
        ("acquired", s.acquired.into()),
        ("released", s.released.into()),
        ("renewals", s.renewals.into()),
        ("renewal_errors", s.renewal_errors.into()),
        ("lost", s.lost.into()),
        ("wake_notified", s.wake_notified.into()),
        ("wake_timer", s.wake_timer.into()),
        ("sleeps", s.sleeps.into()),
        ("messages", s.messages.into()),
        ("disconnects", s.disconnects.into()),
        ("subscribes", s.subscribes.into()),
        ("unsubscribes", s.unsubscribes.into()),
    ]
}

pub fn status_str(lock: &DistributedLock) -> &'static str {
    lock.status().as_str()
}
