// SPDX-License-Identifier: MIT OR Apache-2.0
//! The live log of the lock story: handoffs named as they happen, live alarms on overlaps and
//! tokens going backwards (the summary checks again, on the complete log).

use std::collections::HashMap;

use super::RESOURCE;
use crate::demo::event::{Event, Who};
use crate::demo::hub::{log_line, Narrate};

#[derive(Default)]
pub struct Printer {
    pub start: f64,
    /// Per resource: the last release (who, when), to name handoffs as they happen.
    last_release: HashMap<String, (Who, f64)>,
    /// Per resource: who holds it now (as far as the log says), and the last token seen.
    holder: HashMap<String, Who>,
    last_token: HashMap<String, u64>,
}

impl Printer {
    pub fn new(start: f64) -> Printer {
        Printer {
            start,
            ..Printer::default()
        }
    }
}

impl Narrate for Printer {
    fn line(&mut self, e: &Event) -> Option<String> {
        let resource = e.str("resource");
        let text = match e.ev.as_str() {
            "phase" => return Some(format!("\n{}", e.str("text"))),
            "note" => e.str("text").to_string(),
            "ready" => format!(
                "ready ({}, pid {})",
                e.str("version"),
                e.v["pid"].as_u64().unwrap_or(0)
            ),
            "acquired" => {
                let token = e.token().unwrap_or(0);
                let mut s = format!("acquired {resource:<16} token {token}");
                if let Some(asked) = e.num("asked") {
                    s += &format!("  waited {:>6.1} ms", e.t - asked);
                    if let Some((from, released)) = self.last_release.remove(resource) {
                        if from != e.who && asked < released {
                            s += &format!(
                                "  <- handoff {} -> {} in {:.2} ms",
                                from.name(),
                                e.who.name(),
                                e.t - released
                            );
                        }
                    }
                }
                if let Some(ttl) = e.num("ttl_ms") {
                    s += &format!("  (ttl {ttl} ms, renewed every {:.0} ms)", ttl / 3.0);
                }
                if let Some(other) = self.holder.insert(resource.to_string(), e.who) {
                    if resource == RESOURCE && other != e.who {
                        s += &format!("  !! OVERLAP: {} has not released", other.name());
                    }
                }
                if let Some(last) = self.last_token.insert(resource.to_string(), token) {
                    if token <= last {
                        s += &format!("  !! TOKEN NOT INCREASING (last {last})");
                    }
                }
                s
            }
            "release" => {
                if self.holder.get(resource) == Some(&e.who) {
                    self.holder.remove(resource);
                }
                self.last_release.insert(resource.to_string(), (e.who, e.t));
                if resource == RESOURCE {
                    return None; // the next acquisition names the handoff
                }
                format!("releases {resource}")
            }
            "write" => {
                let token = e.token().unwrap_or(0);
                match (e.v["accepted"].as_bool(), resource == RESOURCE) {
                    (Some(true), true) => return None, // the normal case, once per acquisition
                    (Some(true), false) => format!("write with token {token}: accepted"),
                    _ => format!(
                        "write with token {token}: REFUSED by the fence (a newer token has written)"
                    ),
                }
            }
            "paused" => format!(
                "checked is_held = true, about to write ... and the whole process freezes \
                 (SIGSTOP, pid {})",
                e.v["pid"].as_u64().unwrap_or(0)
            ),
            "resumed" => format!(
                "wakes up; is_held = {}; writes anyway, with its old token",
                e.v["is_held"].as_bool().unwrap_or(true)
            ),
            "lost" => format!(
                "LOST {resource}: its lost-lock signal, reason \"{}\" ({})",
                e.str("reason"),
                match e.str("reason") {
                    "taken" => "another holder's value is in the key",
                    "expired" => "the key expired before a renewal",
                    "deadline" => "its lease ran out before any renewal could run",
                    _ => "renewal failed",
                }
            ),
            "stderr" => format!("stderr: {}", e.str("line")),
            "output" => format!("stdout: {}", e.str("line")),
            "error" => format!("ERROR: {}", e.str("message")),
            _ => return None, // done, exit, started
        };
        Some(log_line(self.start, e, &text))
    }
}
