// SPDX-License-Identifier: MIT OR Apache-2.0
//! Event lines: who said what, and when. Workers print one JSON object a line
//! (`{"ev": "...", "t": <wall-clock ms>, ...}`); the demo's own notes and the sidecars' lines
//! become events of the same shape.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// Where an event comes from.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum Who {
    Demo,
    Rust,
    Python,
    Node,
    /// The two `txcoord monitor` sidecars of the saga story.
    MonitorA,
    MonitorB,
}

impl Who {
    pub fn name(self) -> &'static str {
        match self {
            Who::Demo => "demo",
            Who::Rust => "rust",
            Who::Python => "python",
            Who::Node => "node",
            Who::MonitorA => "mon-a",
            Who::MonitorB => "mon-b",
        }
    }

    pub fn role(self) -> &'static str {
        match self {
            Who::Demo => "orchestrator",
            Who::Rust => "task",
            Who::Python => "worker",
            Who::Node => "service",
            Who::MonitorA | Who::MonitorB => "sidecar",
        }
    }
}

/// One thing that happened: `ev` is the kind, `v` the whole JSON object.
#[derive(Clone, Debug)]
pub struct Event {
    pub who: Who,
    /// Wall-clock ms: the one clock every process of the demo can read.
    pub t: f64,
    pub ev: String,
    pub v: Value,
}

impl Event {
    pub fn new(who: Who, ev: &str, v: Value) -> Event {
        Event {
            who,
            t: now_ms(),
            ev: ev.to_string(),
            v,
        }
    }

    /// A worker's line: its JSON event, or the raw line as an `output` event.
    pub fn from_json_line(who: Who, line: &str) -> Event {
        match serde_json::from_str::<Value>(line) {
            Ok(v) if v.get("ev").and_then(Value::as_str).is_some() => Event {
                who,
                t: v.get("t").and_then(Value::as_f64).unwrap_or_else(now_ms),
                ev: v["ev"].as_str().unwrap_or_default().to_string(),
                v,
            },
            _ => Event::new(who, "output", json!({ "line": line })),
        }
    }

    pub fn str(&self, key: &str) -> &str {
        self.v.get(key).and_then(Value::as_str).unwrap_or("")
    }

    pub fn num(&self, key: &str) -> Option<f64> {
        self.v.get(key).and_then(Value::as_f64)
    }

    pub fn token(&self) -> Option<u64> {
        self.v.get("token").and_then(Value::as_u64)
    }

    pub fn is(&self, who: Who, ev: &str) -> bool {
        self.who == who && self.ev == ev
    }

    pub fn on(&self, resource: &str) -> bool {
        self.str("resource") == resource
    }
}

/// Wall-clock milliseconds.
pub fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
        * 1000.0
}
