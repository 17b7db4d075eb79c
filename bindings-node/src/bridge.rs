// SPDX-License-Identifier: MIT OR Apache-2.0
//! Futures → Promises, settled in batches.
//!
//! napi-rs' `async fn` creates a threadsafe function (a libuv handle) for every promise and
//! wakes the event loop once per completed future. Lock calls are short and many (two per
//! acquire+release cycle), so this bridge keeps **one** threadsafe function per JavaScript
//! environment instead: a finished future pushes its result on a queue, the first push after
//! a drain wakes the JavaScript thread, and that one wake-up settles every promise queued by
//! then. Errors are built on the JavaScript thread by `error::to_js` (so a rejection can be a
//! `RangeError` or `TypeError` with its `code`).
//!
//! Lifetime rules:
//! - A *ref'd* promise (an acquire, a release) keeps Node's event loop alive until it settles,
//!   as a pending timer would; an *unref'd* one (the lost-lock watcher) does not. The shared
//!   threadsafe function is ref'd exactly while ref'd promises are pending.
//! - A panic in a future rejects its promise with `TXCOORD_INTERNAL`; a panic while building a
//!   JavaScript value rejects that one promise; nothing aborts the process.
//! - When the environment is torn down, the queue is closed first (an env cleanup hook), so a
//!   future finishing later never touches the finalized threadsafe function.
//!
//! napi-rs' own path (`execute_tokio_future`, what a `#[napi] async fn` expands to) stays
//! available behind `__usePlainBridge(true)`, for the benchmark that compares the two
//! (`bindings-node/benchmark/bridge.js`). It takes ref'd promises only: an unref'd one would
//! keep the process alive there.

use std::cell::RefCell;
use std::ffi::c_void;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use futures_util::FutureExt;
use napi::sys;

use crate::error;

/// What a finished future becomes on the JavaScript thread.
pub(crate) enum Settled {
    Resolve(sys::napi_value),
    Reject(sys::napi_value),
}

/// Builds the settlement of one promise, on the JavaScript thread.
pub(crate) type Settle = Box<dyn FnOnce(sys::napi_env) -> Settled + Send>;

/// Settles with `Ok` converted by `to_js`, or the mapped error.
pub(crate) fn settle_with<T: Send + 'static>(
    result: txcoord::Result<T>,
    to_js: impl FnOnce(sys::napi_env, T) -> napi::Result<sys::napi_value> + Send + 'static,
) -> Settle {
    Box::new(move |env| match result {
        // SAFETY: settle closures run on the JavaScript thread inside a handle scope.
        Ok(v) => match to_js(env, v) {
            Ok(value) => Settled::Resolve(value),
            Err(e) => Settled::Reject(unsafe { error::internal(env, &e.to_string()) }),
        },
        Err(e) => Settled::Reject(unsafe { error::to_js(env, &e) }),
    })
}

/// Settles with `Ok` converted by its `ToNapiValue`, or the mapped error.
pub(crate) fn settle<T: napi::bindgen_prelude::ToNapiValue + Send + 'static>(
    result: txcoord::Result<T>,
) -> Settle {
    // SAFETY: on the JavaScript thread (see `settle_with`).
    settle_with(result, |env, v| unsafe { T::to_napi_value(env, v) })
}

struct Completion {
    deferred: sys::napi_deferred,
    refd: bool,
    settle: Settle,
}

// SAFETY: the deferred handle is only used on the JavaScript thread that created it (in
// `call_js`); the queue merely carries it across.
unsafe impl Send for Completion {}

struct QueueState {
    items: Vec<Completion>,
    /// A wake-up of the JavaScript thread is on its way.
    scheduled: bool,
    /// The environment is gone: drop results instead of calling the threadsafe function.
    closed: bool,
}

struct Queue {
    // A std mutex: held for a push or a swap, never across an await; pushes come from tokio
    // worker threads, the swap from the JavaScript thread.
    state: Mutex<QueueState>,
    /// Set once, before any future can push.
    tsfn: OnceLock<SendPtr<sys::napi_threadsafe_function>>,
}

#[derive(Clone, Copy)]
struct SendPtr<T>(T);
// SAFETY: napi_threadsafe_function may be called from any thread (that is its purpose); it is
// never called after the env cleanup hook marked the queue closed.
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

impl Queue {
    fn push(&self, c: Completion) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.closed {
            return;
        }
        st.items.push(c);
        if !st.scheduled {
            st.scheduled = true;
            // SAFETY: the queue is open, so the environment (and the function) still exist;
            // the cleanup hook takes this same lock before it closes the queue.
            let Some(tsfn) = self.tsfn.get() else { return };
            let status = unsafe {
                sys::napi_call_threadsafe_function(
                    tsfn.0,
                    ptr::null_mut(),
                    sys::ThreadsafeFunctionCallMode::nonblocking,
                )
            };
            if status != sys::Status::napi_ok {
                st.closed = true;
                st.items.clear();
            }
        }
    }
}

/// Per-environment state, kept on the environment's JavaScript thread.
struct Local {
    env: sys::napi_env,
    queue: Arc<Queue>,
    /// Ref'd promises not settled yet.
    pending_refd: usize,
}

thread_local! {
    static LOCAL: RefCell<Option<Local>> = const { RefCell::new(None) };
}

unsafe extern "C" fn call_js(
    env: sys::napi_env,
    _js_cb: sys::napi_value,
    context: *mut c_void,
    _data: *mut c_void,
) {
    if env.is_null() || context.is_null() {
        return;
    }
    let _ = std::panic::catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the context is the `Arc<Queue>` pointer leaked for this function; it is
        // released only in `finalize`, after the last call.
        let queue = unsafe { &*(context as *const Queue) };
        let items = {
            let mut st = queue.state.lock().unwrap_or_else(|p| p.into_inner());
            st.scheduled = false;
            std::mem::take(&mut st.items)
        };
        let mut refd = 0usize;
        for c in items {
            if c.refd {
                refd += 1;
            }
            // SAFETY: on the JavaScript thread of `env`, which created `c.deferred`.
            unsafe { settle_one(env, c) };
        }
        if refd > 0 {
            LOCAL.with(|l| {
                if let Some(local) = l.borrow_mut().as_mut() {
                    local.pending_refd = local.pending_refd.saturating_sub(refd);
                    if local.pending_refd == 0 {
                        // SAFETY: on the owning thread; the function is alive.
                        if let Some(tsfn) = queue.tsfn.get() {
                            unsafe { sys::napi_unref_threadsafe_function(env, tsfn.0) };
                        }
                    }
                }
            });
        }
    }));
}

unsafe fn settle_one(env: sys::napi_env, c: Completion) {
    let mut scope = ptr::null_mut();
    sys::napi_open_handle_scope(env, &mut scope);
    let settle = c.settle;
    let settled = match std::panic::catch_unwind(AssertUnwindSafe(move || settle(env))) {
        Ok(s) => s,
        Err(p) => Settled::Reject(error::internal(
            env,
            &format!(
                "panic while building a result: {}",
                error::panic_message(&*p)
            ),
        )),
    };
    match settled {
        Settled::Resolve(v) => sys::napi_resolve_deferred(env, c.deferred, or_undefined(env, v)),
        Settled::Reject(v) => sys::napi_reject_deferred(env, c.deferred, or_undefined(env, v)),
    };
    if !scope.is_null() {
        sys::napi_close_handle_scope(env, scope);
    }
}

unsafe fn or_undefined(env: sys::napi_env, v: sys::napi_value) -> sys::napi_value {
    if v.is_null() {
        let mut u = ptr::null_mut();
        sys::napi_get_undefined(env, &mut u);
        u
    } else {
        v
    }
}

unsafe extern "C" fn finalize(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    if !data.is_null() {
        // SAFETY: `data` is the `Arc<Queue>` leaked in `queue_for`.
        drop(unsafe { Arc::from_raw(data as *const Queue) });
    }
}

unsafe extern "C" fn cleanup(arg: *mut c_void) {
    let _ = std::panic::catch_unwind(AssertUnwindSafe(|| {
        // The environment is going away: the locks its finalizers drop from here on are left
        // to their TTLs (the core's rule for a host that exits).
        txcoord::binding::host_exiting();
        // SAFETY: `arg` is the queue; the threadsafe function (which owns a reference to it) is
        // finalized by Node only after this hook, which was registered after it.
        let queue = unsafe { &*(arg as *const Queue) };
        let dropped = {
            let mut st = queue.state.lock().unwrap_or_else(|p| p.into_inner());
            st.closed = true;
            std::mem::take(&mut st.items)
        };
        drop(dropped);
        LOCAL.with(|l| {
            let mut l = l.borrow_mut();
            if l.as_ref()
                .is_some_and(|local| Arc::as_ptr(&local.queue) == arg as *const Queue)
            {
                *l = None;
            }
        });
    }));
}

/// The queue of `env`, created on first use.
fn queue_for(env: sys::napi_env) -> napi::Result<Arc<Queue>> {
    if let Some(q) = LOCAL.with(|l| {
        l.borrow()
            .as_ref()
            .filter(|local| local.env == env)
            .map(|local| local.queue.clone())
    }) {
        return Ok(q);
    }
    // SAFETY: on the JavaScript thread of `env` (every caller is a #[napi] function).
    unsafe {
        let queue = Arc::new(Queue {
            state: Mutex::new(QueueState {
                items: Vec::new(),
                scheduled: false,
                closed: false,
            }),
            tsfn: OnceLock::new(),
        });
        let mut name = ptr::null_mut();
        let label = "txcoord";
        sys::napi_create_string_utf8(env, label.as_ptr().cast(), label.len() as isize, &mut name);
        let context = Arc::into_raw(queue.clone()) as *mut c_void;
        let mut tsfn = ptr::null_mut();
        let status = sys::napi_create_threadsafe_function(
            env,
            ptr::null_mut(),
            ptr::null_mut(),
            name,
            0,
            1,
            context,
            Some(finalize),
            context,
            Some(call_js),
            &mut tsfn,
        );
        if status != sys::Status::napi_ok {
            drop(Arc::from_raw(context as *const Queue));
            return Err(napi::Error::new(
                napi::Status::from(status),
                "creating the promise queue failed",
            ));
        }
        sys::napi_unref_threadsafe_function(env, tsfn);
        let _ = queue.tsfn.set(SendPtr(tsfn));
        sys::napi_add_env_cleanup_hook(env, Some(cleanup), context);
        LOCAL.with(|l| {
            *l.borrow_mut() = Some(Local {
                env,
                queue: queue.clone(),
                pending_refd: 0,
            })
        });
        Ok(queue)
    }
}

static PLAIN: AtomicBool = AtomicBool::new(false);

/// Switches every ref'd promise to napi-rs' own future → promise path (one threadsafe function
/// and one event-loop wake-up per promise), for comparing the two. For benchmarks only.
#[napi_derive::napi(js_name = "__usePlainBridge", catch_unwind)]
pub fn use_plain_bridge(enabled: bool) {
    PLAIN.store(enabled, Ordering::Relaxed);
}

/// The settlement of `fut`, or the rejection its panic becomes.
async fn caught<F: Future<Output = Settle>>(fut: F) -> Settle {
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(s) => s,
        Err(p) => {
            let msg = format!("panic: {}", error::panic_message(&*p));
            Box::new(move |env| {
                // SAFETY: on the JavaScript thread (a settle closure).
                Settled::Reject(unsafe { error::internal(env, &msg) })
            })
        }
    }
}

/// `fut` through napi-rs' `execute_tokio_future`, as a `#[napi] async fn` would run it.
fn spawn_plain<F>(env: sys::napi_env, fut: F) -> napi::Result<sys::napi_value>
where
    F: Future<Output = Settle> + Send + 'static,
{
    let fut = Box::pin(fut);
    napi::bindgen_prelude::execute_tokio_future(
        env,
        async move { Ok::<_, napi::Error>(caught(fut).await) },
        // SAFETY: napi-rs calls the resolver on the JavaScript thread, in a handle scope.
        |env, settle| match settle(env) {
            Settled::Resolve(v) => Ok(unsafe { or_undefined(env, v) }),
            // napi-rs rejects with the very error object a `napi::Error` made from it holds.
            Settled::Reject(v) => Err(napi::Error::from(unsafe {
                napi::bindgen_prelude::Unknown::from_raw_unchecked(env, or_undefined(env, v))
            })),
        },
    )
}

/// Runs `fut` on napi's tokio runtime and returns a promise of its settlement. A `refd` promise
/// keeps the event loop alive until it settles.
pub(crate) fn spawn<F>(env: sys::napi_env, refd: bool, fut: F) -> napi::Result<sys::napi_value>
where
    F: Future<Output = Settle> + Send + 'static,
{
    if refd && PLAIN.load(Ordering::Relaxed) {
        return spawn_plain(env, fut);
    }
    let queue = queue_for(env)?;
    let mut deferred = ptr::null_mut();
    let mut promise = ptr::null_mut();
    // SAFETY: on the JavaScript thread of `env`.
    let status = unsafe { sys::napi_create_promise(env, &mut deferred, &mut promise) };
    if status != sys::Status::napi_ok {
        return Err(napi::Error::new(
            napi::Status::from(status),
            "creating a promise failed",
        ));
    }
    if refd {
        LOCAL.with(|l| {
            if let Some(local) = l.borrow_mut().as_mut() {
                if local.pending_refd == 0 {
                    if let Some(tsfn) = queue.tsfn.get() {
                        // SAFETY: on the owning thread; the function is alive.
                        unsafe { sys::napi_ref_threadsafe_function(env, tsfn.0) };
                    }
                }
                local.pending_refd += 1;
            }
        });
    }
    let deferred = SendPtr(deferred);
    // Boxed once here: lock futures are a few KB, and would otherwise be moved several times
    // on their way into the task.
    let fut = Box::pin(fut);
    napi::bindgen_prelude::spawn(async move {
        let deferred = deferred;
        let settle = caught(fut).await;
        queue.push(Completion {
            deferred: deferred.0,
            refd,
            settle,
        });
    });
    Ok(promise)
}

/// A promise already rejected with `e` (invalid arguments: async methods reject, never throw).
pub(crate) fn rejected(env: sys::napi_env, e: &txcoord::Error) -> napi::Result<sys::napi_value> {
    // SAFETY: on the JavaScript thread of `env`.
    unsafe { rejected_with(env, error::to_js(env, e)) }
}

/// A promise rejected with the exception pending on `env` (a throwing property getter), or
/// with an internal error made from `e`.
pub(crate) fn rejected_napi(env: sys::napi_env, e: &napi::Error) -> napi::Result<sys::napi_value> {
    // SAFETY: on the JavaScript thread of `env`.
    unsafe {
        let mut pending = false;
        sys::napi_is_exception_pending(env, &mut pending);
        let value = if pending {
            let mut v = ptr::null_mut();
            sys::napi_get_and_clear_last_exception(env, &mut v);
            v
        } else {
            error::internal(env, &e.to_string())
        };
        rejected_with(env, value)
    }
}

unsafe fn rejected_with(
    env: sys::napi_env,
    value: sys::napi_value,
) -> napi::Result<sys::napi_value> {
    let mut deferred = ptr::null_mut();
    let mut promise = ptr::null_mut();
    let status = sys::napi_create_promise(env, &mut deferred, &mut promise);
    if status != sys::Status::napi_ok {
        return Err(napi::Error::new(
            napi::Status::from(status),
            "creating a promise failed",
        ));
    }
    sys::napi_reject_deferred(env, deferred, or_undefined(env, value));
    Ok(promise)
}

/// A failure before any future was started: a core error (bad argument) or an N-API failure
/// (for example a property getter that threw).
pub(crate) enum Prep {
    Core(txcoord::Error),
    Napi(napi::Error),
}

impl From<txcoord::Error> for Prep {
    fn from(e: txcoord::Error) -> Self {
        Prep::Core(e)
    }
}

impl From<napi::Error> for Prep {
    fn from(e: napi::Error) -> Self {
        Prep::Napi(e)
    }
}

/// The common shape of every promise-returning method: `prepare` reads and validates the
/// arguments synchronously (and may fail: the promise is then rejected, nothing is sent to
/// Redis), and returns the future to run.
pub(crate) fn promise<F>(
    env: sys::napi_env,
    refd: bool,
    prepare: impl FnOnce() -> Result<F, Prep>,
) -> napi::Result<sys::napi_value>
where
    F: Future<Output = Settle> + Send + 'static,
{
    match prepare() {
        Ok(fut) => spawn(env, refd, fut),
        Err(Prep::Core(e)) => rejected(env, &e),
        Err(Prep::Napi(e)) => rejected_napi(env, &e),
    }
}
