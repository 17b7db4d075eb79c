// SPDX-License-Identifier: MIT OR Apache-2.0
//! Rust `tracing` events of txcoord, handed to JavaScript, where `index.js` routes them (to the
//! logger given to `setLogger`, or to `process.emitWarning`).
//!
//! The thread that emits an event (a tokio worker, sometimes while the core holds one of its
//! own locks) never waits for JavaScript: the event is queued, and only the push that makes the
//! queue non-empty calls the threadsafe function, non-blocking. That function is weak (unref'd),
//! so a pending delivery never keeps the process alive; on the JavaScript thread it takes the
//! whole queue as one array. Records go to the first JavaScript thread that registered a sink
//! (the main thread, unless txcoord is loaded only in workers), for as long as it lives.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// Records kept while JavaScript is busy; later ones are counted and dropped.
const MAX_QUEUED: usize = 10_000;

/// One log record, as JavaScript receives it.
#[napi(object)]
pub struct LogRecord {
    /// `error`, `warn`, `info` or `debug`.
    #[napi(ts_type = "'error' | 'warn' | 'info' | 'debug'")]
    pub level: String,
    /// The text, e.g. `txcoord: lock lock:order:42 lost (taken)`.
    pub message: String,
    /// The code of the process warning the record becomes when no logger is set:
    /// `TXCOORD_ERROR`, `TXCOORD_WARNING`, or `null` (a record that never becomes a warning).
    pub code: Option<String>,
}

/// The levels, most severe first; `silent` forwards nothing.
const LEVELS: [&str; 5] = ["silent", "error", "warn", "info", "debug"];

/// The process-warning code of a record of `level`, if it may become a process warning.
fn warning_code(level: &Level) -> Option<String> {
    match *level {
        Level::ERROR => Some("TXCOORD_ERROR".to_string()),
        Level::WARN => Some("TXCOORD_WARNING".to_string()),
        _ => None,
    }
}

type Sink = ThreadsafeFunction<(), (), Vec<LogRecord>, Status, false, true>;

struct State {
    queue: VecDeque<(Level, String)>,
    /// A delivery is on its way to the JavaScript thread.
    scheduled: bool,
    dropped: u64,
    sink: Option<Arc<Sink>>,
}

// A std mutex: held for queue updates only, never while calling into JavaScript or N-API.
static LOG: Mutex<State> = Mutex::new(State {
    queue: VecDeque::new(),
    scheduled: false,
    dropped: 0,
    sink: None,
});

/// The most verbose level forwarded: 0 none, 1 error, 2 warn, 3 info, 4 debug.
static LEVEL: AtomicU8 = AtomicU8::new(2);

fn rank(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        _ => 5,
    }
}

fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        _ => "debug",
    }
}

fn is_ours(meta: &Metadata<'_>) -> bool {
    meta.target().starts_with("txcoord")
}

/// The event's message, then its other fields as ` name=value`.
#[derive(Default)]
struct Text(String);

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.insert_str(0, &format!("{value:?}"));
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

/// The `tracing` layer that queues txcoord's events for JavaScript.
struct JsLogging;

impl<S: Subscriber> Layer<S> for JsLogging {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        // `sometimes`: the level is asked at each event, since `setLogLevel` can change it.
        if is_ours(meta) {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        is_ours(meta) && rank(meta.level()) <= LEVEL.load(Ordering::Relaxed)
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut text = Text::default();
        event.record(&mut text);
        push(*event.metadata().level(), text.0);
    }
}

fn push(level: Level, message: String) {
    let sink = {
        let mut st = LOG.lock().unwrap_or_else(|p| p.into_inner());
        if st.sink.is_none() {
            return;
        }
        if st.queue.len() >= MAX_QUEUED {
            st.dropped += 1;
            return;
        }
        st.queue.push_back((level, message));
        if std::mem::replace(&mut st.scheduled, true) {
            return;
        }
        st.sink.clone()
    };
    let Some(sink) = sink else { return };
    if sink.call((), ThreadsafeFunctionCallMode::NonBlocking) != Status::Ok {
        // The environment is gone: forget its sink (another thread may register one).
        let mut st = LOG.lock().unwrap_or_else(|p| p.into_inner());
        if st.sink.as_ref().is_some_and(|s| Arc::ptr_eq(s, &sink)) {
            st.sink = None;
            st.queue.clear();
            st.scheduled = false;
        }
    }
}

/// The queued records, on the JavaScript thread.
fn take() -> Vec<LogRecord> {
    let (queue, dropped) = {
        let mut st = LOG.lock().unwrap_or_else(|p| p.into_inner());
        st.scheduled = false;
        (
            std::mem::take(&mut st.queue),
            std::mem::take(&mut st.dropped),
        )
    };
    let mut records: Vec<LogRecord> = queue
        .into_iter()
        .map(|(level, message)| LogRecord {
            level: level_name(&level).to_string(),
            message,
            code: warning_code(&level),
        })
        .collect();
    if dropped > 0 {
        records.push(LogRecord {
            level: "warn".to_string(),
            code: warning_code(&Level::WARN),
            message: format!(
                "txcoord: {dropped} log records were dropped (JavaScript did not keep up)"
            ),
        });
    }
    records
}

/// Installs the forwarding layer as this addon's `tracing` subscriber (once per process).
pub(crate) fn install() {
    let subscriber = tracing_subscriber::registry().with(JsLogging);
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// Where log records go: `sink` is called on this JavaScript thread with arrays of records,
/// unless a live thread registered one first. Never keeps the process alive. `index.js` calls
/// it once, at load.
#[napi(catch_unwind)]
pub fn set_log_sink(sink: Function<Vec<LogRecord>, ()>) -> Result<()> {
    let mut st = LOG.lock().unwrap_or_else(|p| p.into_inner());
    if st.sink.is_some() {
        return Ok(());
    }
    let tsfn = sink
        .build_threadsafe_function::<()>()
        .callee_handled::<false>()
        .weak::<true>()
        .build_callback(|_ctx| Ok(take()))?;
    st.sink = Some(Arc::new(tsfn));
    Ok(())
}

/// The most verbose level forwarded to the sink: `silent` (none), `error`, `warn`, `info` or
/// `debug`, judged by the core (`level` names the argument in errors). Without a level, `info`
/// when the records go to a logger and `warn` when they become process warnings, which are
/// never more verbose than `warn`. Events below the level cost one atomic read. Throws a
/// `RangeError`/`TypeError` with a `TXCOORD_*` code for a bad level.
#[napi(
    catch_unwind,
    ts_args_type = "level: 'silent' | 'error' | 'warn' | 'info' | 'debug' | undefined, toLogger: boolean"
)]
pub fn set_log_level(env: Env, level: Unknown, to_logger: bool) -> Result<()> {
    let env = env.raw();
    // SAFETY: on the JavaScript thread with a live handle.
    let host = unsafe { crate::raw::read(env, level.raw()) }?;
    let level = match txcoord::binding::validate::one_of("level", host.raw(), &LEVELS) {
        Ok(level) => level.unwrap_or(if to_logger { "info" } else { "warn" }),
        Err(e) => return Err(crate::error::throw(env, &e)),
    };
    let mut rank = LEVELS.iter().position(|l| *l == level).unwrap_or(2) as u8;
    if !to_logger {
        rank = rank.min(2);
    }
    LEVEL.store(rank, Ordering::Relaxed);
    Ok(())
}

/// A warning from the JavaScript layer (a user's logger or metrics object that threw) through
/// the core's logging path: to the logger given to `setLogger`, or a process warning.
#[napi(js_name = "warn", catch_unwind)]
pub fn warn(message: String) {
    tracing::warn!(target: "txcoord", "{message}");
}

/// For the test suite only: emits a tracing event at `level` (`error`, `warn`, `info`,
/// `debug`) through the core's logging path, on the calling thread (so records of successive
/// calls arrive in order).
#[cfg(feature = "test-hooks")]
#[napi(js_name = "__logForTests", catch_unwind)]
pub fn log_for_tests(level: String, message: String) {
    match level.as_str() {
        "error" => tracing::error!(target: "txcoord", "{message}"),
        "warn" => tracing::warn!(target: "txcoord", "{message}"),
        "info" => tracing::info!(target: "txcoord", "{message}"),
        _ => tracing::debug!(target: "txcoord", "{message}"),
    }
}
