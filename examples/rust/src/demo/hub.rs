// SPDX-License-Identifier: MIT OR Apache-2.0
//! The hub: every event of every process comes in here, is kept, and is printed in time order
//! once it is older than the reorder window (children report over pipes, so lines arrive a
//! little out of order). The story waits on it for the events it needs, with a deadline.

use std::collections::HashSet;
use std::io::Write;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use super::event::{now_ms, Event, Who};

/// Events are printed in time order once they are this old.
pub const REORDER_WINDOW_MS: f64 = 150.0;

/// Turns an event into its line of the live log (`None`: not shown).
pub trait Narrate {
    fn line(&mut self, e: &Event) -> Option<String>;
}

/// The usual shape of a log line: seconds since the start, who, the text.
pub fn log_line(start: f64, e: &Event, text: &str) -> String {
    format!(
        "  {:>7.3}s  {:<7} {text}",
        (e.t - start) / 1000.0,
        e.who.name()
    )
}

pub struct Hub<N: Narrate> {
    rx: UnboundedReceiver<Event>,
    pub tx: UnboundedSender<Event>,
    /// Every event, in arrival order.
    pub all: Vec<Event>,
    /// Not printed yet.
    pending: Vec<Event>,
    pub narrator: N,
    /// Set once the workers were told to exit: exits are no longer failures.
    pub exiting: bool,
    /// Processes whose exit is expected (a sidecar the story kills).
    pub may_exit: HashSet<Who>,
}

impl<N: Narrate> Hub<N> {
    pub fn new(narrator: N) -> Hub<N> {
        let (tx, rx) = unbounded_channel();
        Hub {
            rx,
            tx,
            all: Vec::new(),
            pending: Vec::new(),
            narrator,
            exiting: false,
            may_exit: HashSet::new(),
        }
    }

    /// An event of the demo itself.
    pub fn emit(&mut self, ev: &str, v: Value) {
        self.push(Event::new(Who::Demo, ev, v));
    }

    pub fn note(&mut self, text: String) {
        self.emit("note", json!({ "text": text }));
    }

    pub fn phase(&mut self, text: String) {
        self.emit("phase", json!({ "text": text }));
    }

    pub fn push(&mut self, e: Event) {
        self.all.push(e.clone());
        self.pending.push(e);
    }

    /// Prints the events older than the reorder window (all of them if `everything`).
    pub fn flush(&mut self, everything: bool) {
        let horizon = if everything {
            f64::INFINITY
        } else {
            now_ms() - REORDER_WINDOW_MS
        };
        self.pending.sort_by(|a, b| a.t.total_cmp(&b.t));
        let n = self.pending.partition_point(|e| e.t <= horizon);
        let out: Vec<Event> = self.pending.drain(..n).collect();
        let mut stdout = std::io::stdout().lock();
        for e in &out {
            if let Some(line) = self.narrator.line(e) {
                let _ = writeln!(stdout, "{line}");
            }
        }
        let _ = stdout.flush();
    }

    pub fn mark(&self) -> usize {
        self.all.len()
    }

    /// Waits for the first event since `mark` that `pred` accepts. A process exiting (unless
    /// expected) or reporting an error meanwhile, or the timeout, is an error.
    pub async fn wait(
        &mut self,
        mark: usize,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&Event) -> bool,
    ) -> Result<Event, String> {
        let (exiting, may_exit) = (self.exiting, self.may_exit.clone());
        let check = |e: &Event| -> Result<bool, String> {
            if pred(e) {
                Ok(true)
            } else if (e.ev == "exit" && !exiting && !may_exit.contains(&e.who)) || e.ev == "error"
            {
                Err(format!(
                    "{} {} while the demo waited for {what}",
                    e.who.name(),
                    if e.ev == "exit" {
                        "exited (its stderr, if any, is above)".to_string()
                    } else {
                        format!("failed: {}", e.str("message"))
                    },
                ))
            } else {
                Ok(false)
            }
        };
        for e in &self.all[mark.min(self.all.len())..] {
            if check(e)? {
                return Ok(e.clone());
            }
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        loop {
            tokio::select! {
                got = self.rx.recv() => {
                    let e = got.expect("the hub keeps a sender");
                    self.push(e.clone());
                    if check(&e)? {
                        return Ok(e);
                    }
                }
                _ = tick.tick() => self.flush(false),
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(format!("no {what} within {} ms", timeout.as_millis()));
                }
            }
        }
    }

    /// Lets events come in for `d` (printing as they age).
    pub async fn settle(&mut self, d: Duration) {
        let mark = self.mark();
        let _ = self.wait(mark, d, "nothing", |_| false).await;
    }
}
