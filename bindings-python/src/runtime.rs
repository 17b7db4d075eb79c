// SPDX-License-Identifier: MIT OR Apache-2.0
//! The binding's tokio runtime, one per process, and what keeps the binding usable after
//! `fork()`.
//!
//! The core never builds a runtime; this module does, lazily, on first use. Fork behaviour is
//! deliberate (Celery prefork builds its clients at import, RQ forks per job): a forked child
//! inherits none of the parent's runtime threads, so the first use in the child builds a new
//! runtime, and every handle the binding keeps ([`ForkSafe`]) is rebuilt for the child from
//! its settings (a client reconnects with `Client::reopen`; locks held by the parent are not
//! held by the child). The parent's objects are leaked in the child, never dropped: dropping
//! them would wait for threads that do not exist there, or release the parent's locks.

use std::sync::{Mutex, MutexGuard};

use tokio::runtime::{Builder, Handle, Runtime};

struct Slot {
    pid: u32,
    runtime: &'static Runtime,
}

// A std mutex: held for a pointer copy (or the build of a runtime), never while waiting for the
// GIL; `before_fork` holds it across `fork()` so that no other thread owns it in the child.
static RUNTIME: Mutex<Option<Slot>> = Mutex::new(None);

fn build() -> std::io::Result<Runtime> {
    let mut builder = Builder::new_multi_thread();
    if let Some(n) = std::env::var("TXCOORD_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
    {
        builder.worker_threads(n);
    }
    builder.enable_all().thread_name("txcoord-worker").build()
}

/// The runtime of this process, built on first use (and again in a forked child).
pub(crate) fn runtime() -> txcoord::Result<&'static Runtime> {
    let pid = std::process::id();
    let mut slot = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(s) = slot.as_ref() {
        if s.pid == pid {
            return Ok(s.runtime);
        }
    }
    // First use, or first use after fork: the parent's runtime (if any) stays leaked; its
    // threads do not exist here and dropping it would wait for them.
    let runtime: &'static Runtime =
        Box::leak(Box::new(build().map_err(|e| {
            txcoord::Error::Internal(format!("cannot start the tokio runtime: {e}"))
        })?));
    *slot = Some(Slot { pid, runtime });
    Ok(runtime)
}

/// A handle on the runtime of this process.
pub(crate) fn handle() -> txcoord::Result<Handle> {
    runtime().map(|rt| rt.handle().clone())
}

/// A value that belongs to the process that created it. In a forked child the value is
/// rebuilt from the parent's (by `rebuild`, which must not touch the parent's locks or
/// runtime) and the parent's is leaked rather than dropped.
pub(crate) struct ForkSafe<T> {
    // A std mutex: taken only by threads holding the GIL, for a clone.
    slot: Mutex<(u32, Option<T>)>,
}

impl<T: Clone> ForkSafe<T> {
    pub(crate) fn new(value: T) -> Self {
        ForkSafe {
            slot: Mutex::new((std::process::id(), Some(value))),
        }
    }

    /// The value for this process.
    pub(crate) fn get(&self, rebuild: impl FnOnce(&T) -> txcoord::Result<T>) -> txcoord::Result<T> {
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        let pid = std::process::id();
        if slot.0 != pid {
            let old = slot.1.take();
            let fresh = match &old {
                Some(old) => rebuild(old),
                None => Err(txcoord::Error::Internal("fork-safe slot is empty".into())),
            };
            // Leak the parent's value: its drop could wait for threads that do not exist
            // in the child, or release what the parent still holds.
            std::mem::forget(old);
            let fresh = fresh?;
            slot.0 = pid;
            slot.1 = Some(fresh);
        }
        slot.1
            .clone()
            .ok_or_else(|| txcoord::Error::Internal("fork-safe slot is empty".into()))
    }

    /// The value if it belongs to this process, without rebuilding.
    pub(crate) fn peek(&self) -> Option<T> {
        let slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        if slot.0 == std::process::id() {
            slot.1.clone()
        } else {
            None
        }
    }
}

impl<T> Drop for ForkSafe<T> {
    fn drop(&mut self) {
        let slot = self.slot.get_mut().unwrap_or_else(|p| p.into_inner());
        if slot.0 != std::process::id() {
            std::mem::forget(slot.1.take());
        }
    }
}

thread_local! {
    // Guards taken by `before_fork`, dropped by `after_fork` (in the parent and in the child).
    static HELD: std::cell::RefCell<Vec<Box<dyn std::any::Any>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `os.register_at_fork(before=...)`: takes the binding's global locks so that no other
/// thread holds one of them in the child.
pub(crate) fn before_fork() {
    let runtime: MutexGuard<'static, Option<Slot>> =
        RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    let log = crate::logging::lock_for_fork();
    HELD.with(|h| {
        let mut h = h.borrow_mut();
        h.push(Box::new(runtime));
        h.push(log);
    });
}

/// `os.register_at_fork(after_in_parent=..., after_in_child=...)`: releases what
/// [`before_fork`] took.
pub(crate) fn after_fork() {
    HELD.with(|h| h.borrow_mut().clear());
}
