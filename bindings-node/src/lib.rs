// SPDX-License-Identifier: MIT OR Apache-2.0
//! Node binding of txcoord: thin conversion between JavaScript and the `txcoord` core.
//!
//! - Arguments arrive raw (`Unknown`) and are judged by `txcoord::binding::validate` (see `raw`).
//! - Promise-returning methods validate synchronously and reject (never throw) on bad
//!   arguments; their futures run on napi's tokio runtime and settle in batches (`bridge`).
//! - Errors are mapped once, from `Error::kind()`, in `error`.
//! - Every synchronous function has `catch_unwind`, so a panic becomes an exception.
//! - The core's `tracing` events are queued for JavaScript (`logging`).
//!
//! The JavaScript layer (`index.js`) adds what N-API cannot express: reading an ioredis
//! instance's settings (what is supported is the core's decision: `clientFor`), the `'lost'`
//! event, `lock.signal`, `AbortSignal` support, and where log records go (`setLogger`). Its
//! errors are built here (`wrongType`), its constants come from the core (`constants`).

mod bridge;
mod client;
mod deadlock;
mod election;
mod error;
mod lock;
mod logging;
mod manager;
mod object;
mod raw;
mod saga;
mod table;

pub use bridge::use_plain_bridge;
pub use client::{client_for, ClientStats, JsClient};
pub use deadlock::JsSagaDeadlockDetector;
pub use election::JsLeaderElection;
pub use error::wrong_type;
pub use lock::JsDistributedLock;
#[cfg(feature = "test-hooks")]
pub use logging::log_for_tests;
pub use logging::{set_log_level, set_log_sink, warn, LogRecord};
pub use manager::{CancelToken, JsLockManager};
pub use saga::{saga_statuses, JsSagaRepository};
pub use table::{constants, error_codes, option_table, OptionInfo};

/// For the test suite only: panics, synchronously (`sync = true`, caught and thrown as an
/// `Error`) or inside a future (the promise rejects with code `TXCOORD_INTERNAL`), to show that
/// a panic never aborts the process.
#[cfg(feature = "test-hooks")]
#[napi_derive::napi(
    js_name = "__panicForTests",
    catch_unwind,
    ts_return_type = "Promise<void> | void"
)]
pub fn panic_for_tests(
    env: &napi::Env,
    sync: bool,
) -> napi::Result<napi::bindgen_prelude::Unknown<'_>> {
    if sync {
        panic!("txcoord test panic (sync)");
    }
    let p = bridge::spawn(env.raw(), true, async {
        if std::hint::black_box(true) {
            panic!("txcoord test panic (async)");
        }
        bridge::settle(Ok(()))
    })?;
    Ok(client::unknown(env.raw(), p))
}

/// The tokio runtime the core runs on (napi's `tokio_rt` owns it; this only configures it).
///
/// One worker thread by default: every lock command already crosses from the JavaScript thread
/// to tokio and back, and a client's commands all go through one connection task, so a second
/// worker mostly adds hand-offs between workers. Measured here (2 vCPU): one worker gives
/// 20-60 % more single-promise cycles/s at about 30 % less CPU per cycle, and the same
/// throughput with 50 promises. `TXCOORD_WORKER_THREADS=<n>` picks another number.
#[napi_derive::module_init]
fn init() {
    logging::install();
    let workers = std::env::var("TXCOORD_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(1);
    if let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("txcoord-tokio")
        .enable_all()
        .build()
    {
        napi::bindgen_prelude::create_custom_tokio_runtime(rt);
    }
}
