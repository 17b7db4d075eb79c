// SPDX-License-Identifier: MIT OR Apache-2.0
//! Rust futures as asyncio awaitables, and as blocking calls for `txcoord.sync` ([`Run`]).
//!
//! ## The asyncio bridge
//!
//! An async method creates an `asyncio.Future` with `loop.create_future()`, spawns its Rust
//! future on the binding's runtime and returns the asyncio future. When the Rust future
//! completes, its result is pushed onto a queue that belongs to the event loop; only the push
//! that makes the queue non-empty wakes the loop (one byte on a socket pair the loop watches
//! with `add_reader`, or `call_soon_threadsafe` on loops without `add_reader`). The loop then
//! drains the whole queue in one callback, setting every result. So a burst of completions
//! costs one wake-up, and runtime threads never wait for the GIL.
//!
//! Cancelling the asyncio future aborts the Rust task; dropping the Rust future is how the
//! core cancels (a waiting acquisition removes its waiter entry in the background). A result
//! that arrives for a future cancelled meanwhile is discarded (an acquired lock is released).
//!
//! `pyo3_async_runtimes::tokio::future_into_py` (one loop wake-up per future) stays available
//! behind `_native._use_plain_bridge(True)`, for benchmarks that compare the two.

use std::cell::RefCell;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::FutureExt;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use tokio::runtime::Handle;

use crate::error::{panic_error, runtime_error, to_pyerr, IntoPyResult};
use crate::runtime;

/// Sets (or discards) one asyncio future's result; runs on the loop thread, attached.
type Deliver = Box<dyn FnOnce(Python<'_>, bool) -> Option<PyResult<Py<PyAny>>> + Send>;
/// A callback to run on the loop thread (for example an `on_lost` callback).
pub(crate) type Callback = Box<dyn FnOnce(Python<'_>) -> PyResult<()> + Send>;

enum Item {
    Resolve(Py<PyAny>, Deliver),
    Call(Callback),
}

#[derive(Default)]
struct QueueState {
    items: Vec<Item>,
    scheduled: bool,
}

/// The completion queue of one event loop (in one process).
pub(crate) struct LoopQueue {
    event_loop: Py<PyAny>,
    create_future: Py<PyAny>,
    call_soon_threadsafe: Py<PyAny>,
    drainer: Option<Py<Drainer>>,
    pid: u32,
    handle: Handle,
    // A std mutex: held to push or take items, never across Python calls or awaits.
    state: Mutex<QueueState>,
    #[cfg(unix)]
    socket: Option<(
        std::os::unix::net::UnixStream,
        std::os::unix::net::UnixStream,
    )>,
    /// Whether the loop watches the socket (else `call_soon_threadsafe` wakes it).
    watched: AtomicBool,
}

thread_local! {
    // The queues of the loops this thread has run, most recent first.
    static QUEUES: RefCell<Vec<Arc<LoopQueue>>> = const { RefCell::new(Vec::new()) };
}

static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static PLAIN: AtomicBool = AtomicBool::new(false);

fn running_loop(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    GET_RUNNING_LOOP
        .import(py, "asyncio", "get_running_loop")?
        .call0()
        .map_err(|_| runtime_error("txcoord: async methods must be awaited inside a running asyncio event loop (use txcoord.sync outside one)"))
}

impl LoopQueue {
    /// The queue of the running loop, created on first use.
    pub(crate) fn current(py: Python<'_>) -> PyResult<Arc<LoopQueue>> {
        let lp = running_loop(py)?;
        let pid = std::process::id();
        let hit = QUEUES.with(|qs| {
            let qs = qs.borrow();
            qs.first()
                .filter(|q| q.pid == pid && q.event_loop.bind(py).is(&lp))
                .cloned()
        });
        if let Some(q) = hit {
            return Ok(q);
        }
        Self::slow_path(py, &lp, pid)
    }

    #[cold]
    fn slow_path(py: Python<'_>, lp: &Bound<'_, PyAny>, pid: u32) -> PyResult<Arc<LoopQueue>> {
        let mut known: Vec<Arc<LoopQueue>> =
            QUEUES.with(|qs| std::mem::take(&mut *qs.borrow_mut()));
        // Queues inherited from a parent process are leaked, never dropped: their items may
        // hold the parent's locks, whose drop would send releases.
        let (mine, parents): (Vec<_>, Vec<_>) = known.drain(..).partition(|q| q.pid == pid);
        std::mem::forget(parents);
        let mut kept = Vec::with_capacity(mine.len() + 1);
        let mut found = None;
        for q in mine {
            if q.event_loop.bind(py).is(lp) {
                found = Some(q);
            } else if !is_closed(q.event_loop.bind(py)) {
                kept.push(q);
            }
        }
        let q = match found {
            Some(q) => q,
            None => LoopQueue::new(py, lp, pid)?,
        };
        kept.insert(0, q.clone());
        QUEUES.with(|qs| {
            let mut qs = qs.borrow_mut();
            kept.append(&mut qs);
            *qs = kept;
        });
        Ok(q)
    }

    fn new(py: Python<'_>, lp: &Bound<'_, PyAny>, pid: u32) -> PyResult<Arc<LoopQueue>> {
        let handle = runtime::handle().into_py(py)?;
        #[cfg(unix)]
        let socket = std::os::unix::net::UnixStream::pair()
            .and_then(|(tx, rx)| {
                tx.set_nonblocking(true)?;
                rx.set_nonblocking(true)?;
                Ok((tx, rx))
            })
            .ok();
        let mut failed = None;
        let queue = Arc::new_cyclic(|weak: &Weak<LoopQueue>| {
            let drainer = match Py::new(
                py,
                Drainer {
                    queue: weak.clone(),
                },
            ) {
                Ok(d) => Some(d),
                Err(e) => {
                    failed = Some(e);
                    None
                }
            };
            LoopQueue {
                event_loop: lp.clone().unbind(),
                create_future: lp
                    .getattr(intern!(py, "create_future"))
                    .map(Bound::unbind)
                    .unwrap_or_else(|_| py.None()),
                call_soon_threadsafe: lp
                    .getattr(intern!(py, "call_soon_threadsafe"))
                    .map(Bound::unbind)
                    .unwrap_or_else(|_| py.None()),
                drainer,
                pid,
                handle,
                state: Mutex::new(QueueState::default()),
                #[cfg(unix)]
                socket,
                watched: AtomicBool::new(false),
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        #[cfg(unix)]
        if let (Some((_, rx)), Some(drainer)) = (&queue.socket, &queue.drainer) {
            use std::os::fd::AsRawFd;
            // Loops without add_reader (Windows' proactor) raise NotImplementedError: they
            // are woken with call_soon_threadsafe instead.
            if lp
                .call_method1(
                    intern!(py, "add_reader"),
                    (rx.as_raw_fd(), drainer.clone_ref(py)),
                )
                .is_ok()
            {
                queue.watched.store(true, Ordering::Release);
            }
        }
        Ok(queue)
    }

    fn push(&self, item: Item) {
        let wake = {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            st.items.push(item);
            !std::mem::replace(&mut st.scheduled, true)
        };
        if wake {
            self.wake();
        }
    }

    /// Runs `callback` on this loop's thread, attached to Python.
    pub(crate) fn call(&self, callback: Callback) {
        self.push(Item::Call(callback));
    }

    fn wake(&self) {
        #[cfg(unix)]
        if self.watched.load(Ordering::Acquire) {
            if let Some((tx, _)) = &self.socket {
                use std::io::Write;
                // WouldBlock means bytes are already waiting: a drain is due anyway.
                let _ = (&*tx).write(&[1]);
                return;
            }
        }
        // Rare path (no add_reader): this needs the GIL.
        Python::try_attach(|py| {
            if let Some(drainer) = &self.drainer {
                if let Err(e) = self
                    .call_soon_threadsafe
                    .call1(py, (drainer.clone_ref(py),))
                {
                    // The loop is closed: nobody is waiting for these results any more.
                    tracing::debug!(target: "txcoord", "txcoord: cannot wake the event loop: {e}");
                }
            }
        });
    }

    fn drain(&self, py: Python<'_>) {
        #[cfg(unix)]
        if let Some((_, rx)) = &self.socket {
            use std::io::Read;
            let mut buf = [0u8; 64];
            while let Ok(n) = (&*rx).read(&mut buf) {
                if n < buf.len() {
                    break;
                }
            }
        }
        let items = {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            st.scheduled = false;
            std::mem::take(&mut st.items)
        };
        for item in items {
            match item {
                Item::Resolve(fut, deliver) => {
                    let fut = fut.bind(py);
                    let wanted = !fut
                        .call_method0(intern!(py, "done"))
                        .and_then(|d| d.is_truthy())
                        .unwrap_or(true);
                    match deliver(py, wanted) {
                        None => {}
                        Some(Ok(value)) => {
                            if let Err(e) = fut.call_method1(intern!(py, "set_result"), (value,)) {
                                self.report(py, "txcoord: cannot set a result", e);
                            }
                        }
                        Some(Err(err)) => {
                            if let Err(e) = fut
                                .call_method1(intern!(py, "set_exception"), (err.into_value(py),))
                            {
                                self.report(py, "txcoord: cannot set an exception", e);
                            }
                        }
                    }
                }
                Item::Call(callback) => {
                    if let Err(e) = callback(py) {
                        self.report(py, "txcoord: exception in callback", e);
                    }
                }
            }
        }
    }

    /// Hands an exception to the loop's exception handler (as asyncio does for callbacks).
    fn report(&self, py: Python<'_>, message: &str, err: PyErr) {
        let context = pyo3::types::PyDict::new(py);
        let _ = context.set_item("message", message);
        let _ = context.set_item("exception", err.value(py));
        if self
            .event_loop
            .call_method1(py, intern!(py, "call_exception_handler"), (context,))
            .is_err()
        {
            err.write_unraisable(py, None);
        }
    }
}

fn is_closed(lp: &Bound<'_, PyAny>) -> bool {
    lp.call_method0("is_closed")
        .and_then(|r| r.is_truthy())
        .unwrap_or(true)
}

/// The `add_reader` callback of one loop's queue.
#[pyclass(frozen, module = "txcoord._native")]
pub(crate) struct Drainer {
    queue: Weak<LoopQueue>,
}

#[pymethods]
impl Drainer {
    fn __call__(&self, py: Python<'_>) {
        if let Some(q) = self.queue.upgrade() {
            q.drain(py);
        }
    }
}

/// Aborts the Rust task of an asyncio future when that future is done (cancelled, or
/// finished, when the abort does nothing).
#[pyclass(frozen, module = "txcoord._native")]
pub(crate) struct Canceller {
    abort: tokio::task::AbortHandle,
}

#[pymethods]
impl Canceller {
    fn __call__(&self, _future: &Bound<'_, PyAny>) {
        self.abort.abort();
    }
}

/// What cancelling the awaitable does to the Rust future.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnCancel {
    /// Drop the Rust future (acquisitions, waits).
    Abort,
    /// Let it finish in the background (releases, extensions).
    Finish,
}

/// How a method runs its future: what sets an async class apart from its blocking twin.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Run {
    /// Return an awaitable at once (`txcoord`).
    Await,
    /// Block the calling thread, detached from Python, until the future completed
    /// (`txcoord.sync`): see [`block`].
    Block,
}

/// Runs `fut` as `how` says; `deliver` turns its value into the Python result (on the loop
/// thread for an awaitable).
pub(crate) fn run<'py, T, F, D>(
    py: Python<'py>,
    how: Run,
    on_cancel: OnCancel,
    fut: F,
    deliver: D,
) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = txcoord::Result<T>> + Send + 'static,
    T: Send + 'static,
    D: FnOnce(Python<'_>, T) -> PyResult<Py<PyAny>> + Send + 'static,
{
    run_or_discard(py, how, on_cancel, fut, deliver, drop)
}

/// As [`run`]; `discard` gets the value when the awaitable was cancelled after the Rust
/// future completed (for example to release a lock nobody will see). `on_cancel` and `discard`
/// concern awaitables only: a blocking call is still waiting when its future completes.
pub(crate) fn run_or_discard<'py, T, F, D, X>(
    py: Python<'py>,
    how: Run,
    on_cancel: OnCancel,
    fut: F,
    deliver: D,
    discard: X,
) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = txcoord::Result<T>> + Send + 'static,
    T: Send + 'static,
    D: FnOnce(Python<'_>, T) -> PyResult<Py<PyAny>> + Send + 'static,
    X: FnOnce(T) + Send + 'static,
{
    if how == Run::Block {
        let value = block(py, fut)?;
        return Ok(deliver(py, value)?.into_bound(py));
    }
    if PLAIN.load(Ordering::Relaxed) {
        return plain(py, fut, deliver);
    }
    let queue = LoopQueue::current(py)?;
    let py_future = queue.create_future.bind(py).call0()?;
    let target = py_future.clone().unbind();
    let q = queue.clone();
    let task = queue.handle.spawn(async move {
        let out = AssertUnwindSafe(fut).catch_unwind().await;
        let deliver: Deliver = Box::new(move |py, wanted| {
            if !wanted {
                if let Ok(Ok(value)) = out {
                    discard(value);
                }
                return None;
            }
            Some(match out {
                Ok(Ok(value)) => deliver(py, value),
                Ok(Err(e)) => Err(to_pyerr(py, e)),
                Err(payload) => Err(to_pyerr(py, panic_error(payload))),
            })
        });
        q.push(Item::Resolve(target, deliver));
    });
    if on_cancel == OnCancel::Abort {
        let canceller = Canceller {
            abort: task.abort_handle(),
        };
        py_future.call_method1(intern!(py, "add_done_callback"), (canceller,))?;
    }
    Ok(Bound::new(
        py,
        Pending {
            future: py_future.unbind(),
            iter: std::sync::OnceLock::new(),
            awaited: AtomicBool::new(false),
        },
    )?
    .into_any())
}

/// What an async method returns: a coroutine over the method's asyncio future.
///
/// `await` goes straight to the future (`__await__` returns the future's own iterator);
/// `send`/`throw`/`close` make it a `collections.abc.Coroutine` (registered at module init),
/// so `asyncio.create_task()` and `TaskGroup.create_task()` accept it as they accept the
/// coroutines of an `async def`. Unlike such a coroutine, the work starts when the method is
/// called; so a `throw` (a task cancelled before its first step), a `close`, or dropping it
/// without ever awaiting it cancels the operation.
#[pyclass(frozen, module = "txcoord._native")]
pub(crate) struct Pending {
    future: Py<PyAny>,
    iter: std::sync::OnceLock<Py<PyAny>>,
    awaited: AtomicBool,
}

impl Pending {
    fn iter<'py>(&self, py: Python<'py>) -> PyResult<&Bound<'py, PyAny>> {
        self.awaited.store(true, Ordering::Relaxed);
        if self.iter.get().is_none() {
            let it = self
                .future
                .bind(py)
                .call_method0(intern!(py, "__await__"))?;
            let _ = self.iter.set(it.unbind());
        }
        match self.iter.get() {
            Some(it) => Ok(it.bind(py)),
            None => Err(runtime_error("txcoord: awaitable in an invalid state")),
        }
    }

    fn cancel_future(&self, py: Python<'_>) -> PyResult<bool> {
        self.future
            .bind(py)
            .call_method0(intern!(py, "cancel"))?
            .is_truthy()
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !*self.awaited.get_mut() {
            Python::try_attach(|py| {
                let _ = self.cancel_future(py);
            });
        }
    }
}

#[pymethods]
impl Pending {
    fn __await__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.awaited.store(true, Ordering::Relaxed);
        self.future.bind(py).call_method0(intern!(py, "__await__"))
    }

    fn send<'py>(&self, py: Python<'py>, value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        self.iter(py)?.call_method1(intern!(py, "send"), (value,))
    }

    #[pyo3(signature = (typ, val=None, tb=None))]
    fn throw<'py>(
        &self,
        py: Python<'py>,
        typ: &Bound<'py, PyAny>,
        val: Option<&Bound<'py, PyAny>>,
        tb: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let it = self.iter(py)?;
        self.cancel_future(py)?;
        match (val, tb) {
            (None, None) => it.call_method1(intern!(py, "throw"), (typ,)),
            (Some(v), None) => it.call_method1(intern!(py, "throw"), (typ, v)),
            (v, Some(tb)) => it.call_method1(intern!(py, "throw"), (typ, v, tb)),
        }
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.awaited.store(true, Ordering::Relaxed);
        self.cancel_future(py)?;
        if let Some(it) = self.iter.get() {
            it.bind(py).call_method0(intern!(py, "close"))?;
        }
        Ok(())
    }

    /// Cancels the operation (as cancelling the task that awaits it does).
    fn cancel(&self, py: Python<'_>) -> PyResult<bool> {
        self.cancel_future(py)
    }

    /// Whether the operation finished (or was cancelled).
    fn done(&self, py: Python<'_>) -> PyResult<bool> {
        self.future
            .bind(py)
            .call_method0(intern!(py, "done"))?
            .is_truthy()
    }
}

/// Makes [`Pending`] a `collections.abc.Coroutine`.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let coroutine = py.import("collections.abc")?.getattr("Coroutine")?;
    coroutine.call_method1("register", (py.get_type::<Pending>(),))?;
    Ok(())
}

fn plain<'py, T, F, D>(py: Python<'py>, fut: F, deliver: D) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = txcoord::Result<T>> + Send + 'static,
    T: Send + 'static,
    D: FnOnce(Python<'_>, T) -> PyResult<Py<PyAny>> + Send + 'static,
{
    pyo3_async_runtimes::tokio::future_into_py(py, async move {
        let out = AssertUnwindSafe(fut).catch_unwind().await;
        Python::attach(|py| match out {
            Ok(Ok(value)) => deliver(py, value),
            Ok(Err(e)) => Err(to_pyerr(py, e)),
            Err(payload) => Err(to_pyerr(py, panic_error(payload))),
        })
    })
}

/// Switches every async method to `pyo3_async_runtimes::tokio::future_into_py` (one loop
/// wake-up per future), for comparing bridges. Not fork-safe.
#[pyfunction]
#[pyo3(name = "_use_plain_bridge")]
pub(crate) fn use_plain_bridge(py: Python<'_>, enabled: bool) -> PyResult<()> {
    if enabled {
        let rt = runtime::runtime().into_py(py)?;
        if pyo3_async_runtimes::tokio::init_with_runtime(rt).is_err()
            && !std::ptr::eq(pyo3_async_runtimes::tokio::get_runtime(), rt)
        {
            return Err(runtime_error("the plain bridge cannot be used after fork"));
        }
    }
    PLAIN.store(enabled, Ordering::Relaxed);
    Ok(())
}

/// An already-completed awaitable (for `__aenter__` returning `self`).
pub(crate) fn ready<'py>(py: Python<'py>, value: Py<PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let lp = running_loop(py)?;
    let fut = lp.call_method0(intern!(py, "create_future"))?;
    fut.call_method1(intern!(py, "set_result"), (value,))?;
    Ok(fut)
}

/// How often a blocking call wakes up to let Python run signal handlers (Ctrl-C).
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// Runs `fut` to completion on the binding's runtime, detached from Python (other Python
/// threads run meanwhile). A pending `KeyboardInterrupt` (or any exception a signal handler
/// raises) drops the future, which is how the core cancels, and is raised.
pub(crate) fn block<T, F>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = txcoord::Result<T>> + Send,
    T: Send,
{
    let handle = runtime::handle().into_py(py)?;
    let mut fut = Box::pin(AssertUnwindSafe(fut).catch_unwind());
    loop {
        let step = py.detach(|| {
            std::panic::catch_unwind(AssertUnwindSafe(|| {
                handle.block_on(async { tokio::time::timeout(SIGNAL_CHECK, &mut fut).await })
            }))
        });
        match step {
            Ok(Ok(Ok(Ok(value)))) => return Ok(value),
            Ok(Ok(Ok(Err(e)))) => return Err(to_pyerr(py, e)),
            Ok(Ok(Err(payload))) | Err(payload) => return Err(to_pyerr(py, panic_error(payload))),
            Ok(Err(_elapsed)) => {
                if let Err(e) = py.check_signals() {
                    let _entered = handle.enter();
                    drop(fut);
                    return Err(e);
                }
            }
        }
    }
}
