// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `on_lost=` callback: where it is kept (in slots owned by Python objects, visible to the
//! garbage collector) and the runtime task that calls it when a lock is lost.
//!
//! A callback often refers back to the object that holds the lock (a bound method of it). If
//! the runtime held the callback, that object would be reachable from a root the collector
//! cannot see, and it, its lock and the lock's renewals would live forever. So the Python
//! objects own the callback and report it in `__traverse__`; the task holds only `Weak`
//! handles to their slots, and finds nothing once they are collected.

use std::sync::{Arc, Mutex, TryLockError, Weak};

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PySet;
use pyo3::{PyTraverseError, PyVisit};
use tokio::task::AbortHandle;
use txcoord::{DistributedLock, LossReason};

use crate::bridge::LoopQueue;
use crate::convert::type_description;
use crate::error::IntoPyResult;

/// Checks an `on_lost=` argument: a callable or `None`.
pub(crate) fn callback(
    py: Python<'_>,
    on_lost: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<Py<PyAny>>> {
    match on_lost {
        None => Ok(None),
        Some(cb) if cb.is_none() => Ok(None),
        Some(cb) if cb.is_callable() => Ok(Some(cb.clone().unbind())),
        Some(cb) => Err(txcoord::binding::validate::wrong_type(
            "on_lost",
            "a callable taking the loss reason",
            txcoord::binding::validate::Raw::Other(&type_description(cb)),
        ))
        .into_py(py),
    }
}

/// One reference to a callback, owned by exactly one Python object: its `__traverse__` visits
/// the slot and its `__clear__` empties it. Others hold the slot through `Weak`, or briefly
/// through `Arc` (an acquisition in flight), never reporting it to the collector.
pub(crate) struct Slot {
    // A std mutex: held to clone or take the reference, never across a Python call.
    callback: Mutex<Option<Py<PyAny>>>,
}

impl Slot {
    pub(crate) fn new(callback: Py<PyAny>) -> Arc<Slot> {
        Arc::new(Slot {
            callback: Mutex::new(Some(callback)),
        })
    }

    /// A new reference to the callback, if the slot still has it.
    pub(crate) fn get(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.callback
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|cb| cb.clone_ref(py))
    }

    /// Whether the slot was emptied.
    fn is_empty(&self) -> bool {
        self.callback
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }

    /// Empties the slot. The reference is dropped after the slot is unlocked: dropping it may
    /// run Python code (a `__del__`) that touches the slot again.
    pub(crate) fn clear(&self) {
        let taken = self
            .callback
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        drop(taken);
    }

    /// For the owner's `__traverse__`. The collector must not wait for a lock: a slot that is
    /// busy right now is not reported, so this collection keeps what it refers to.
    pub(crate) fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        match self.callback.try_lock() {
            Ok(cb) => visit.call(cb.as_ref()),
            Err(TryLockError::Poisoned(p)) => visit.call(p.into_inner().as_ref()),
            Err(TryLockError::WouldBlock) => Ok(()),
        }
    }
}

/// The slots a Python manager owns for the locks it acquired with `on_lost=`: the callback is
/// called while the manager holds the lock, whether or not the lock object is still alive. A
/// slot is emptied when the acquisition or hold it served is over ([`Spend`]) and dropped at
/// the next acquisition.
#[derive(Default)]
pub(crate) struct Slots {
    // A std mutex: held to add, prune or visit, never across a Python call.
    slots: Mutex<Vec<Arc<Slot>>>,
}

impl Slots {
    /// Keeps `slot` (and drops the spent ones).
    pub(crate) fn adopt(&self, slot: Arc<Slot>) {
        let spent = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            let (spent, kept): (Vec<_>, Vec<_>) = slots.drain(..).partition(|s| s.is_empty());
            *slots = kept;
            slots.push(slot);
            spent
        };
        drop(spent);
    }

    pub(crate) fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        let slots = match self.slots.try_lock() {
            Ok(s) => s,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return Ok(()),
        };
        slots.iter().try_for_each(|s| s.traverse(visit))
    }

    pub(crate) fn clear(&self) {
        let slots = std::mem::take(&mut *self.slots.lock().unwrap_or_else(|p| p.into_inner()));
        for s in &slots {
            s.clear();
        }
    }
}

/// Empties a slot when dropped: the one acquisition (and hold) it served is over.
pub(crate) struct Spend(Weak<Slot>);

impl Spend {
    pub(crate) fn new(slot: &Arc<Slot>) -> Spend {
        Spend(Arc::downgrade(slot))
    }
}

impl Drop for Spend {
    fn drop(&mut self) {
        if let Some(slot) = self.0.upgrade() {
            slot.clear();
        }
    }
}

/// Where an `on_lost` callback runs.
pub(crate) enum Notifier {
    /// On the event loop that acquired the lock (async classes).
    Loop(Arc<LoopQueue>),
    /// On a new thread (blocking classes: there may be no loop, and the caller is busy).
    Thread,
}

/// Where a watch finds its callback when the loss comes: the first slot still alive and set.
struct Target {
    slots: Vec<Weak<Slot>>,
    // Dropped after the call (or when the watch ends without one).
    _spend: Option<Spend>,
}

impl Target {
    fn callback(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.slots
            .iter()
            .find_map(|s| s.upgrade().and_then(|s| s.get(py)))
    }
}

/// An `on_lost` callback armed for one acquisition.
pub(crate) struct Watch {
    target: Target,
    notifier: Notifier,
}

impl Watch {
    pub(crate) fn new(slots: Vec<Weak<Slot>>, spend: Option<Spend>, notifier: Notifier) -> Self {
        Watch {
            target: Target {
                slots,
                _spend: spend,
            },
            notifier,
        }
    }

    /// Waits (on the runtime) for the lock to be lost and then calls the callback with the
    /// reason. The watch keeps neither the lock nor the callback alive.
    pub(crate) fn spawn(self, lock: &DistributedLock) -> AbortHandle {
        let mut watch = lock.loss_watch();
        tokio::spawn(async move {
            if let Some(reason) = watch.lost().await {
                self.deliver(reason);
            }
        })
        .abort_handle()
    }

    fn deliver(self, reason: LossReason) {
        let Watch { target, notifier } = self;
        let reason = reason.as_str();
        match notifier {
            Notifier::Loop(queue) => queue.call(Box::new(move |py| {
                let Some(callback) = target.callback(py) else {
                    return Ok(());
                };
                let result = callback.bind(py).call1((reason,))?;
                if is_awaitable(py, &result)? {
                    keep_running(py, &result)?;
                }
                Ok(())
            })),
            Notifier::Thread => {
                let spawned = std::thread::Builder::new()
                    .name("txcoord-on-lost".into())
                    .spawn(move || {
                        Python::try_attach(|py| {
                            let Some(callback) = target.callback(py) else {
                                return;
                            };
                            let cb = callback.bind(py);
                            if let Err(e) = cb.call1((reason,)) {
                                e.write_unraisable(py, Some(cb));
                            }
                        });
                    });
                if let Err(e) = spawned {
                    tracing::warn!(target: "txcoord", "txcoord: cannot start the on_lost thread: {e}");
                }
            }
        }
    }
}

static ISAWAITABLE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static ENSURE_FUTURE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static BACKGROUND: PyOnceLock<Py<PySet>> = PyOnceLock::new();

pub(crate) fn is_awaitable(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    ISAWAITABLE
        .import(py, "inspect", "isawaitable")?
        .call1((obj,))?
        .is_truthy()
}

/// Runs a coroutine returned by an `on_lost` callback as a task, keeping a reference until it
/// finishes (asyncio keeps only weak references to tasks).
pub(crate) fn keep_running(py: Python<'_>, awaitable: &Bound<'_, PyAny>) -> PyResult<()> {
    let task = ENSURE_FUTURE
        .import(py, "asyncio", "ensure_future")?
        .call1((awaitable,))?;
    let set = BACKGROUND
        .get_or_try_init(py, || PySet::empty(py).map(Bound::unbind))?
        .bind(py);
    set.add(&task)?;
    task.call_method1(intern!(py, "add_done_callback"), (set.getattr("discard")?,))?;
    Ok(())
}
