// SPDX-License-Identifier: MIT OR Apache-2.0
//! `LockManager`: the seed's manager of locks by resource name, and the cancellation token the
//! JavaScript layer ties to an `AbortSignal`.

use napi::bindgen_prelude::*;
use napi::sys;
use napi::threadsafe_function::ThreadsafeFunction;
use napi_derive::napi;
use tokio::sync::watch;
use txcoord::binding::options::{ACQUIRE, MANAGER};
use txcoord::binding::validate;
use txcoord::AcquireOptions;

use crate::bridge::{self, Prep, Settled};
use crate::client::{unknown, JsClient};
use crate::error;
use crate::lock::JsDistributedLock;
use crate::raw::{self, Options};

/// Cancels the waits it is given to (the JavaScript layer calls `cancel()` when an
/// `AbortSignal` aborts). Cancelling drops the wait, which removes its waiter entry in Redis.
#[napi]
pub struct CancelToken {
    tx: watch::Sender<bool>,
}

impl CancelToken {
    /// A receiver of this token's cancellation (for [`cancelled`]).
    pub(crate) fn subscribe(&self) -> watch::Receiver<bool> {
        self.tx.subscribe()
    }
}

impl Default for CancelToken {
    fn default() -> Self {
        Self::new()
    }
}

#[napi]
impl CancelToken {
    #[napi(constructor, catch_unwind)]
    pub fn new() -> Self {
        CancelToken {
            tx: watch::channel(false).0,
        }
    }

    /// Cancels every wait this token was given to (now and later).
    #[napi(catch_unwind)]
    pub fn cancel(&self) {
        self.tx.send_replace(true);
    }

    /// Whether `cancel()` was called.
    #[napi(getter, catch_unwind)]
    pub fn cancelled(&self) -> bool {
        *self.tx.borrow()
    }
}

/// Resolves once `rx` is cancelled; never, if its token is gone without cancelling.
pub(crate) async fn cancelled(rx: Option<watch::Receiver<bool>>) {
    match rx {
        Some(mut rx) => {
            if rx.wait_for(|c| *c).await.is_err() {
                std::future::pending::<()>().await
            }
        }
        None => std::future::pending::<()>().await,
    }
}

/// The seed's `LockManager`: locks by resource name (key `lock:<resource>` after the client's
/// prefix), waits woken by release notifications, owner ids (re-entrant), fair mode.
#[napi(js_name = "LockManager")]
pub struct JsLockManager {
    inner: txcoord::LockManager,
}

/// Reads the per-call options of the core's acquire table (`ttl`, `timeout`, `ownerId`,
/// `priority`, `fair`, ...): `ttl` and `timeout` from the positional parameters when given
/// (`acquireLock`), else from the options object (`using`).
fn acquire_options(
    options: &Options,
    positional: &[(&str, &raw::Host)],
) -> std::result::Result<AcquireOptions, Prep> {
    // SAFETY: on the JavaScript thread, inside the calling #[napi] function.
    unsafe { options.read(ACQUIRE, positional) }
}

fn options_arg(env: sys::napi_env, value: &Unknown) -> std::result::Result<Options, Prep> {
    // SAFETY: on the JavaScript thread with a live handle.
    Ok(unsafe { Options::new(env, value.raw(), "options") }??)
}

fn resource_arg(env: sys::napi_env, value: &Unknown) -> std::result::Result<String, Prep> {
    // SAFETY: on the JavaScript thread with a live handle.
    let host = unsafe { raw::read(env, value.raw()) }?;
    Ok(validate::resource("resource", host.text("resource")?)?.to_string())
}

/// Failed releases as an array of errors, each with a `resource` property.
fn failures_settle(failures: Vec<(String, txcoord::Error)>) -> bridge::Settle {
    Box::new(move |env| unsafe {
        // SAFETY: settle closures run on the JavaScript thread.
        let mut array = std::ptr::null_mut();
        sys::napi_create_array_with_length(env, failures.len(), &mut array);
        for (i, (resource, e)) in failures.iter().enumerate() {
            let err = error::to_js(env, e);
            let mut r = std::ptr::null_mut();
            sys::napi_create_string_utf8(
                env,
                resource.as_ptr().cast(),
                resource.len() as isize,
                &mut r,
            );
            sys::napi_set_named_property(env, err, c"resource".as_ptr(), r);
            sys::napi_set_element(env, array, i as u32, err);
        }
        Settled::Resolve(array)
    })
}

#[napi]
impl JsLockManager {
    /// The seed's `new LockManager(redis)` on a `Client`, with the options of the core's
    /// manager table: `ownerId` (acquisitions with the same owner re-enter), `priority`, `fair`
    /// (FIFO), `fallbackPoll`, `waiterLease` and `deadlockTimeout` (ms). Throws a
    /// `TypeError`/`RangeError` with a `TXCOORD_*` code for bad arguments.
    #[napi(
        constructor,
        catch_unwind,
        ts_args_type = "client: Client, options?: { ownerId?: string, priority?: number, fair?: boolean, fallbackPoll?: number, waiterLease?: number, deadlockTimeout?: number }"
    )]
    pub fn new(env: Env, client: &JsClient, options: Unknown) -> Result<Self> {
        let env = env.raw();
        let build = || -> std::result::Result<txcoord::LockManager, Prep> {
            let options = options_arg(env, &options)?;
            // SAFETY: on the JavaScript thread, inside this #[napi] function.
            let opts = unsafe { options.read(MANAGER, &[]) }?;
            Ok(txcoord::LockManager::with_options(&client.inner, opts)?)
        };
        match build() {
            Ok(inner) => Ok(JsLockManager { inner }),
            Err(Prep::Core(e)) => Err(error::throw(env, &e)),
            Err(Prep::Napi(e)) => Err(e),
        }
    }

    /// The seed's `acquireLock(resource, ttl = 30000, timeout = 10000)`: the lock, or `null`
    /// when `timeout` ms passed first (0 tries once) or `cancel` was cancelled. Options:
    /// `ownerId`, `priority`, `fair`. Bad arguments reject with a `RangeError`/`TypeError`.
    #[napi(
        catch_unwind,
        ts_args_type = "resource: string, ttl?: number, timeout?: number, options?: { ownerId?: string, priority?: number, fair?: boolean }, cancel?: CancelToken | undefined | null",
        ts_return_type = "Promise<DistributedLock | null>"
    )]
    pub fn acquire_lock<'env>(
        &self,
        env: &'env Env,
        resource: Unknown,
        ttl: Unknown,
        timeout: Unknown,
        options: Unknown,
        cancel: Option<&CancelToken>,
    ) -> Result<Unknown<'env>> {
        let raw_env = env.raw();
        let manager = self.inner.clone();
        let rx = cancel.map(|c| c.tx.subscribe());
        let p = bridge::promise(raw_env, true, || {
            let resource = resource_arg(raw_env, &resource)?;
            // SAFETY: on the JavaScript thread with live handles.
            let (ttl, timeout) = unsafe {
                (
                    raw::read(raw_env, ttl.raw())?,
                    raw::read(raw_env, timeout.raw())?,
                )
            };
            let options = options_arg(raw_env, &options)?;
            let opts = acquire_options(&options, &[("ttl", &ttl), ("timeout", &timeout)])?;
            Ok(async move {
                let acquire = manager.acquire_lock_with(&resource, opts);
                let result = tokio::select! {
                    r = acquire => r,
                    _ = cancelled(rx) => Ok(None),
                };
                bridge::settle(result.map(|o| o.map(JsDistributedLock::from)))
            })
        })?;
        Ok(unknown(raw_env, p))
    }

    /// The seed's `releaseLock(resource)`: releases the most recent lock this manager acquired
    /// on `resource` (nothing if it holds none).
    #[napi(
        catch_unwind,
        ts_args_type = "resource: string",
        ts_return_type = "Promise<void>"
    )]
    pub fn release_lock<'env>(&self, env: &'env Env, resource: Unknown) -> Result<Unknown<'env>> {
        let raw_env = env.raw();
        let manager = self.inner.clone();
        let p = bridge::promise(raw_env, true, || {
            let resource = resource_arg(raw_env, &resource)?;
            Ok(async move { bridge::settle(manager.release_lock(&resource).await) })
        })?;
        Ok(unknown(raw_env, p))
    }

    /// The seed's `releaseAllLocks()`: attempts every release and resolves with the failures
    /// (errors with a `resource` property), never rejecting for one of them.
    #[napi(
        catch_unwind,
        ts_return_type = "Promise<Array<Error & { code: string, resource: string }>>"
    )]
    pub fn release_all_locks<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        let manager = self.inner.clone();
        let p = bridge::promise(env.raw(), true, || {
            Ok(async move { failures_settle(manager.release_all_locks().await) })
        })?;
        Ok(unknown(env.raw(), p))
    }

    /// Releases everything this manager holds and refuses further acquisitions; resolves with
    /// the failed releases, as `releaseAllLocks()`.
    #[napi(
        catch_unwind,
        ts_return_type = "Promise<Array<Error & { code: string, resource: string }>>"
    )]
    pub fn close<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        let manager = self.inner.clone();
        let p = bridge::promise(env.raw(), true, || {
            Ok(async move { failures_settle(manager.close().await) })
        })?;
        Ok(unknown(env.raw(), p))
    }

    /// The scoped form: acquires `resource` (options `ttl`, `timeout`, `ownerId`, `priority`,
    /// `fair`), calls `callback` with the lock, waits for the promise it returns, and releases
    /// the lock however it settles. Resolves `true` when the callback ran, `false` when `cancel`
    /// was cancelled first; rejects with code `TXCOORD_TIMEOUT` when the lock could not be
    /// acquired in time.
    #[napi(
        catch_unwind,
        ts_args_type = "resource: string, options: { ttl?: number, timeout?: number, ownerId?: string, priority?: number, fair?: boolean } | undefined, cancel: CancelToken | undefined | null, callback: (lock: DistributedLock) => Promise<void>",
        ts_return_type = "Promise<boolean>"
    )]
    pub fn using<'env>(
        &self,
        env: &'env Env,
        resource: Unknown,
        options: Unknown,
        cancel: Option<&CancelToken>,
        callback: ThreadsafeFunction<
            JsDistributedLock,
            Promise<()>,
            JsDistributedLock,
            Status,
            false,
        >,
    ) -> Result<Unknown<'env>> {
        let raw_env = env.raw();
        let manager = self.inner.clone();
        let rx = cancel.map(|c| c.tx.subscribe());
        let p = bridge::promise(raw_env, true, || {
            let resource = resource_arg(raw_env, &resource)?;
            let options = options_arg(raw_env, &options)?;
            let opts = acquire_options(&options, &[])?;
            Ok(async move {
                let scoped = manager.with_lock(&resource, opts, move |lock| async move {
                    match callback.call_async(JsDistributedLock::from(lock)).await {
                        Ok(promise) => promise.await,
                        Err(e) => Err(e),
                    }
                });
                let result = tokio::select! {
                    r = scoped => r.and_then(|ran| ran.map(|()| true).map_err(|e| {
                        txcoord::Error::Internal(format!("calling the scoped function failed: {e}"))
                    })),
                    _ = cancelled(rx) => Ok(false),
                };
                bridge::settle(result)
            })
        })?;
        Ok(unknown(raw_env, p))
    }

    /// Resources this manager currently holds locks on.
    #[napi(getter, catch_unwind)]
    pub fn held_resources(&self) -> Vec<String> {
        self.inner.held_resources()
    }

    /// The manager's owner id, or `null`.
    #[napi(getter, catch_unwind)]
    pub fn owner_id(&self) -> Option<String> {
        self.inner.owner_id().map(str::to_string)
    }
}

/// The resources of `acquireLocks`/`releaseLocks`: an array of resource names.
fn resources_arg(env: sys::napi_env, value: &Unknown) -> std::result::Result<Vec<String>, Prep> {
    // SAFETY: on the JavaScript thread with a live handle.
    let Some(items) = (unsafe { crate::object::elements(env, value.raw()) })? else {
        let host = unsafe { raw::read(env, value.raw()) }?;
        return Err(txcoord::Error::InvalidType {
            arg: "resources".into(),
            message: format!(
                "must be an array of resource names, got {}",
                raw::type_name(&host)
            ),
        }
        .into());
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let host = unsafe { raw::read(env, item) }?;
        out.push(validate::resource("resources", host.text("resources")?)?.to_string());
    }
    Ok(out)
}

#[napi]
impl JsLockManager {
    /// Acquires every resource of `resources` or none, in one global order (sorted, duplicates
    /// dropped), so that two callers asking for overlapping sets cannot deadlock each other:
    /// the locks in that order, or `null` when `timeout` ms (for the whole set) passed first or
    /// `cancel` was cancelled; what was acquired meanwhile is released again. Options as
    /// `acquireLock`'s.
    #[napi(
        catch_unwind,
        ts_args_type = "resources: string[], ttl?: number, timeout?: number, options?: { ownerId?: string, priority?: number, fair?: boolean }, cancel?: CancelToken | undefined | null",
        ts_return_type = "Promise<DistributedLock[] | null>"
    )]
    pub fn acquire_locks<'env>(
        &self,
        env: &'env Env,
        resources: Unknown,
        ttl: Unknown,
        timeout: Unknown,
        options: Unknown,
        cancel: Option<&CancelToken>,
    ) -> Result<Unknown<'env>> {
        use txcoord::binding::options::{self as table, Host as Lang};
        let raw_env = env.raw();
        let manager = self.inner.clone();
        let rx = cancel.map(CancelToken::subscribe);
        let p = bridge::promise(raw_env, true, || {
            let resources = resources_arg(raw_env, &resources)?;
            let options = options_arg(raw_env, &options)?;
            // The seed's positional ttl and timeout, the rest from the options object.
            let mut given = Vec::with_capacity(table::ACQUIRE.len());
            for spec in table::ACQUIRE {
                // SAFETY: on the JavaScript thread with live handles.
                given.push(match spec.name {
                    "ttl" => unsafe { raw::read(raw_env, ttl.raw()) }?,
                    "timeout" => unsafe { raw::read(raw_env, timeout.raw()) }?,
                    _ => {
                        let name = std::ffi::CString::new(spec.js)
                            .map_err(|e| napi::Error::from_reason(e.to_string()))?;
                        unsafe { options.get(&name) }?
                    }
                });
            }
            let raws = given
                .iter()
                .zip(table::ACQUIRE)
                .map(|(host, spec)| host.text(spec.js))
                .collect::<txcoord::Result<Vec<_>>>()?;
            let mut raws = raws.into_iter();
            let opts = table::read(Lang::Node, table::ACQUIRE, |_| {
                raws.next().unwrap_or(validate::Raw::Absent)
            })?;
            Ok(async move {
                let names: Vec<&str> = resources.iter().map(String::as_str).collect();
                let result = tokio::select! {
                    r = manager.acquire_locks(&names, opts) => r,
                    _ = cancelled(rx) => Ok(None),
                };
                bridge::settle(result.map(|o| {
                    o.map(|locks| {
                        locks
                            .into_iter()
                            .map(JsDistributedLock::from)
                            .collect::<Vec<_>>()
                    })
                }))
            })
        })?;
        Ok(unknown(raw_env, p))
    }

    /// Releases the locks this manager holds on `resources` together (as `acquireLocks` took
    /// them); resolves with the failed releases, as `releaseAllLocks()`.
    #[napi(
        catch_unwind,
        ts_args_type = "resources: string[]",
        ts_return_type = "Promise<Array<Error & { code: string, resource: string }>>"
    )]
    pub fn release_locks<'env>(&self, env: &'env Env, resources: Unknown) -> Result<Unknown<'env>> {
        let raw_env = env.raw();
        let manager = self.inner.clone();
        let p = bridge::promise(raw_env, true, || {
            let resources = resources_arg(raw_env, &resources)?;
            Ok(async move {
                let names: Vec<&str> = resources.iter().map(String::as_str).collect();
                failures_settle(manager.release_locks(&names).await)
            })
        })?;
        Ok(unknown(raw_env, p))
    }
}
