// SPDX-License-Identifier: MIT OR Apache-2.0
//! The live log of the saga story: one short line per notable event, with who said it (the
//! language of a saga worker, or the sidecar).

use std::collections::{HashMap, HashSet};

use crate::demo::event::{Event, Who};
use crate::demo::hub::{log_line, Narrate};

/// Lock waits at least this long are shown (shorter ones are counted in the summary).
pub const WAIT_SHOWN_MS: f64 = 15.0;

/// Whether a saga is one of the mix (not the stalled or the deadlocked one).
pub fn in_mix(id: &str) -> bool {
    !id.ends_with("-stalled") && !id.ends_with("-deadlock")
}

/// The identity of an alert in the log: the same condition is alerted at every pass.
pub fn alert_key(e: &Event) -> String {
    let m = &e.v["metadata"];
    let reason = m["reason"].as_str().unwrap_or_default();
    format!(
        "{}|{}|{}|{}|{}",
        e.v["resolved"],
        e.str("summary"),
        m["sagaId"].as_str().unwrap_or_default(),
        reason,
        if reason == "retrying" {
            m["detail"].as_str().unwrap_or_default()
        } else {
            ""
        }
    )
}

/// The victim, when a worker's log record says its deadlock probe broke a cycle
/// (`...; saga X was aborted to break it`).
pub fn aborted_by_probe(e: &Event) -> Option<&str> {
    let message = e.str("message");
    let rest = message.strip_suffix(" was aborted to break it")?;
    Some(rest.rsplit("saga ").next().unwrap_or(rest))
}

pub struct Printer {
    start: f64,
    /// Saga id -> the worker that runs it.
    owner: HashMap<String, Who>,
    /// Resource -> the saga that took it last.
    last_holder: HashMap<String, String>,
    alerts: HashSet<String>,
    /// Per sidecar: whether it led at its last pass.
    leading: HashMap<Who, bool>,
}

impl Printer {
    pub fn new(start: f64) -> Printer {
        Printer {
            start,
            owner: HashMap::new(),
            last_holder: HashMap::new(),
            alerts: HashSet::new(),
            leading: HashMap::new(),
        }
    }

    fn pass(&mut self, e: &Event) -> Option<String> {
        let leads = e.v["leader"].as_bool().unwrap_or(false);
        let term = e.v["term"]
            .as_u64()
            .map(|t| t.to_string())
            .unwrap_or("-".into());
        let before = self.leading.insert(e.who, leads);
        let mut parts = Vec::new();
        match (before, leads) {
            (None, true) => parts.push(format!("leads (term {term})")),
            (None, false) => parts.push("follows: another monitor leads".to_string()),
            (Some(false), true) => parts.push(format!("now LEADS (term {term})")),
            (Some(true), false) => parts.push("lost the leadership".to_string()),
            _ => {}
        }
        for (key, what) in [
            ("retried", "retried"),
            ("compensated", "marked COMPENSATING"),
            ("deadlocks", "broke deadlocks:"),
        ] {
            let n = e.v[key].as_u64().unwrap_or(0);
            if n > 0 {
                parts.push(format!("{what} {n}"));
            }
        }
        let errors = e.str("errors");
        if !errors.is_empty() && errors != "[]" {
            parts.push(format!("errors {errors}"));
        }
        (!parts.is_empty()).then(|| format!("pass: {}", parts.join("; ")))
    }
}

impl Narrate for Printer {
    fn line(&mut self, e: &Event) -> Option<String> {
        let id = e.str("id");
        let text = match e.ev.as_str() {
            "phase" => return Some(format!("\n{}", e.str("text"))),
            "note" => e.str("text").to_string(),
            "ready" => format!(
                "saga worker ready ({}, pid {})",
                e.str("version"),
                e.v["pid"].as_u64().unwrap_or(0)
            ),
            "started" => {
                self.owner.insert(id.to_string(), e.who);
                return None;
            }
            "locked" => {
                let resource = e.str("resource");
                let waited = e.num("waited_ms").unwrap_or(0.0);
                let before = self
                    .last_holder
                    .insert(resource.to_string(), id.to_string());
                if waited < WAIT_SHOWN_MS && in_mix(id) {
                    return None;
                }
                let mut s = format!("{id} locked {resource}");
                if waited >= WAIT_SHOWN_MS {
                    s += &format!(" after waiting {waited:.0} ms");
                    if let Some(holder) = before.filter(|h| h != id) {
                        let lang = self.owner.get(&holder).map_or("?", |w| w.name());
                        s += &format!(" for {lang} saga {holder}");
                    }
                }
                s
            }
            "released" => return None,
            "finished" => {
                let mut s = format!(
                    "{id} {} in {:.0} ms",
                    e.str("status"),
                    e.num("ms").unwrap_or(0.0)
                );
                if !e.str("error").is_empty() {
                    s += &format!(" ({})", e.str("error"));
                }
                s
            }
            "compensating" => match e.v["retries"].as_u64() {
                Some(n) => format!(
                    "{id} sees COMPENSATING (after {n} retries): undoes its steps, releases its \
                     locks"
                ),
                None => format!(
                    "{id} compensates ({}): undoes its steps, releases its locks",
                    e.str("reason")
                ),
            },
            "stalled" => format!(
                "{id} stalls in its {} step: it keeps its lock but stops saving its record \
                 (EXECUTING)",
                e.str("step")
            ),
            "record" => {
                let mut s = format!(
                    "{id}: its record now says {}, retry count {}",
                    e.str("status"),
                    e.v["retry_count"].as_u64().unwrap_or(0)
                );
                if !e.str("stuck_reason").is_empty() {
                    s += &format!(" (stuck: {}", e.str("stuck_reason"));
                    if !e.str("stuck_detail").is_empty() {
                        s += &format!(", {}", e.str("stuck_detail"));
                    }
                    s += ")";
                }
                s
            }
            "waiting" => format!("{id} waits for {}", e.str("resource")),
            "victim" => {
                // `deadlock <id>: <hop>; <hop>; ...`: one hop a line
                let cycle = e.str("cycle");
                let (head, hops) = cycle.split_once(": ").unwrap_or((cycle, ""));
                let mut s = format!("{id} is the DEADLOCK VICTIM, told the cycle ({head}):");
                for hop in hops.split("; ").filter(|h| !h.is_empty()) {
                    s += &format!("\n{:>20}{hop}", "");
                }
                s
            }
            "alert" => {
                if !self.alerts.insert(alert_key(e)) {
                    return None;
                }
                format!(
                    "{}alert [{}] {}: {}",
                    if e.v["resolved"] == true {
                        "resolved "
                    } else {
                        ""
                    },
                    e.str("severity"),
                    e.str("summary"),
                    e.str("description")
                )
            }
            "pass" => self.pass(e)?,
            "metrics" => format!("serves {}", e.str("url")),
            "candidate" | "done" => return None,
            "log" => match aborted_by_probe(e) {
                Some(victim) => format!(
                    "txcoord: this process's deadlock probe found the cycle and aborted {victim}"
                ),
                None => format!("txcoord {}: {}", e.str("level"), e.str("message")),
            },
            "stderr" => format!("stderr: {}", e.str("line")),
            "output" => format!("stdout: {}", e.str("line")),
            "error" => format!("ERROR: {}", e.str("message")),
            "exit" => match e.who {
                Who::MonitorA | Who::MonitorB => "exited".to_string(),
                _ => return None,
            },
            _ => return None,
        };
        Some(log_line(self.start, e, &text))
    }
}
