// SPDX-License-Identifier: MIT OR Apache-2.0
//! Rust `tracing` events of txcoord, forwarded to Python's `logging` (logger `txcoord`).
//!
//! The thread that emits an event (often a tokio worker, sometimes while the core holds one of
//! its own locks) never waits for the GIL: the event is queued, and one forwarding thread per
//! process takes the GIL and calls `logging.getLogger("txcoord").log(...)`. So logging can
//! neither deadlock with Python code that waits for the core nor stall a runtime worker.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Condvar, Mutex};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// Events kept while Python is busy; later ones are counted and dropped.
const MAX_QUEUED: usize = 10_000;

struct Record {
    level: i32,
    message: String,
}

struct State {
    pid: u32,
    queue: VecDeque<Record>,
    forwarding: bool,
    dropped: u64,
}

// A std mutex: held for queue updates only, never while attached to Python; `before_fork`
// holds it across `fork()`.
static LOG: Mutex<State> = Mutex::new(State {
    pid: 0,
    queue: VecDeque::new(),
    forwarding: false,
    dropped: 0,
});
static READY: Condvar = Condvar::new();

/// Takes the queue's lock for the duration of a `fork()` (see `runtime::before_fork`).
pub(crate) fn lock_for_fork() -> Box<dyn std::any::Any> {
    Box::new(LOG.lock().unwrap_or_else(|p| p.into_inner()))
}

fn python_level(level: &Level) -> i32 {
    match *level {
        Level::ERROR => 40,
        Level::WARN => 30,
        Level::INFO => 20,
        Level::DEBUG => 10,
        _ => 5,
    }
}

#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.insert_str(0, value);
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let text = format!("{value:?}");
            self.0.insert_str(0, &text);
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

/// The `tracing` layer that queues txcoord's events for Python.
struct PythonLogging;

impl<S: Subscriber> Layer<S> for PythonLogging {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        if !meta.target().starts_with("txcoord") && !meta.target().starts_with("_native") {
            return;
        }
        let mut message = Message::default();
        event.record(&mut message);
        push(Record {
            level: python_level(meta.level()),
            message: message.0,
        });
    }
}

fn push(record: Record) {
    let pid = std::process::id();
    let mut st = LOG.lock().unwrap_or_else(|p| p.into_inner());
    if st.pid != pid {
        // A forked child: the parent's queue and forwarding thread are not ours.
        st.pid = pid;
        st.queue.clear();
        st.forwarding = false;
        st.dropped = 0;
    }
    if st.queue.len() >= MAX_QUEUED {
        st.dropped += 1;
        return;
    }
    st.queue.push_back(record);
    if !st.forwarding {
        st.forwarding = std::thread::Builder::new()
            .name("txcoord-logging".into())
            .spawn(move || forward(pid))
            .is_ok();
    }
    drop(st);
    READY.notify_one();
}

static GET_LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn forward(pid: u32) {
    loop {
        let (batch, dropped) = {
            let mut st = LOG.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if st.pid != pid {
                    return;
                }
                if !st.queue.is_empty() || st.dropped > 0 {
                    break;
                }
                st = READY.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            (
                std::mem::take(&mut st.queue),
                std::mem::take(&mut st.dropped),
            )
        };
        let attached = Python::try_attach(|py| {
            let logger = GET_LOGGER
                .import(py, "logging", "getLogger")
                .and_then(|get| get.call1(("txcoord",)));
            let Ok(logger) = logger else { return };
            for record in batch {
                let _ = logger.call_method1("log", (record.level, "%s", record.message));
            }
            if dropped > 0 {
                let _ = logger.call_method1(
                    "log",
                    (
                        30,
                        "txcoord: %d log records were dropped (Python did not keep up)",
                        dropped,
                    ),
                );
            }
        });
        if attached.is_none() {
            // The interpreter is shutting down.
            let mut st = LOG.lock().unwrap_or_else(|p| p.into_inner());
            if st.pid == pid {
                st.forwarding = false;
            }
            return;
        }
    }
}

/// Installs the forwarding layer as this module's `tracing` subscriber (once per process).
pub(crate) fn install() {
    let subscriber = tracing_subscriber::registry().with(PythonLogging);
    let _ = tracing::subscriber::set_global_default(subscriber);
}
