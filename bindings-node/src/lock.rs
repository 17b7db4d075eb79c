// SPDX-License-Identifier: MIT OR Apache-2.0
//! `DistributedLock`: the seed's lock on one key, backed by `txcoord::DistributedLock`.

use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;
use txcoord::binding::options::LOCK;
use txcoord::binding::validate;
use txcoord::LockOptions;

use crate::bridge::{self, Prep, Settled};
use crate::client::{unknown, JsClient};
use crate::error;
use crate::raw::{self, Options};

/// A lock on one Redis key, wire-compatible with the seed's `DistributedLock` (key = the
/// client's key prefix + `lockKey`, value a random UUID, `SET NX PX`), renewed every ttl/3
/// while held. The JavaScript class of the same name wraps it (adds `signal` and the
/// `'lost'` event).
#[napi(js_name = "DistributedLock")]
pub struct JsDistributedLock {
    pub(crate) inner: txcoord::DistributedLock,
}

impl From<txcoord::DistributedLock> for JsDistributedLock {
    fn from(inner: txcoord::DistributedLock) -> Self {
        JsDistributedLock { inner }
    }
}

fn build(
    client: &txcoord::Client,
    lock_key: &raw::Host,
    ttl: &raw::Host,
    options: &Options,
) -> std::result::Result<txcoord::DistributedLock, Prep> {
    let key = validate::resource("lockKey", lock_key.text("lockKey")?)?;
    let ttl = validate::ttl("ttl", ttl.raw())?;
    // SAFETY: on the JavaScript thread, inside the calling #[napi] function.
    let mut opts: LockOptions = unsafe { options.read(LOCK, &[]) }?;
    if let Some(ttl) = ttl {
        opts = opts.set_ttl(ttl);
    }
    // The core names this argument `lock_key`; error.rs spells it as JavaScript does.
    Ok(txcoord::DistributedLock::with_options(client, key, opts)?)
}

#[napi]
impl JsDistributedLock {
    /// The seed's `new DistributedLock(redis, lockKey, ttl = 30000)` on a `Client`, with
    /// options `ownerId` (re-entrant for that owner) and `priority`. Throws a
    /// `TypeError`/`RangeError` with a `TXCOORD_*` code for bad arguments.
    #[napi(
        factory,
        catch_unwind,
        ts_args_type = "client: Client, lockKey: string, ttl?: number, options?: { ownerId?: string, priority?: number }"
    )]
    pub fn create(
        env: Env,
        client: &JsClient,
        lock_key: Unknown,
        ttl: Unknown,
        options: Unknown,
    ) -> Result<Self> {
        let env = env.raw();
        // SAFETY: on the JavaScript thread with live handles.
        let (lock_key, ttl) =
            unsafe { (raw::read(env, lock_key.raw())?, raw::read(env, ttl.raw())?) };
        let options = match unsafe { Options::new(env, options.raw(), "options") }? {
            Ok(o) => o,
            Err(e) => return Err(error::throw(env, &e)),
        };
        match build(&client.inner, &lock_key, &ttl, &options) {
            Ok(inner) => Ok(JsDistributedLock { inner }),
            Err(Prep::Core(e)) => Err(error::throw(env, &e)),
            Err(Prep::Napi(e)) => Err(e),
        }
    }

    /// The seed's `acquire()`: one attempt; `true` if the lock is now held.
    #[napi(catch_unwind, ts_return_type = "Promise<boolean>")]
    pub fn acquire<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        let lock = self.inner.clone();
        let p = bridge::promise(env.raw(), true, || {
            Ok(async move { bridge::settle(lock.acquire().await) })
        })?;
        Ok(unknown(env.raw(), p))
    }

    /// The seed's `release()`: stops renewal, then releases (or drops one hold of a re-entered
    /// lock). Releasing a lock that was lost or never acquired does not fail.
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn release<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        let lock = self.inner.clone();
        let p = bridge::promise(env.raw(), true, || {
            Ok(async move { bridge::settle(lock.release().await) })
        })?;
        Ok(unknown(env.raw(), p))
    }

    /// The seed's `extend(additionalTime = ttl)`: sets the expiry to `additionalTime` ms from
    /// now if the lock is still held; `false` if it is not (it was lost).
    #[napi(
        catch_unwind,
        ts_args_type = "additionalTime?: number",
        ts_return_type = "Promise<boolean>"
    )]
    pub fn extend<'env>(&self, env: &'env Env, additional_time: Unknown) -> Result<Unknown<'env>> {
        let lock = self.inner.clone();
        let raw_env = env.raw();
        let p = bridge::promise(raw_env, true, || {
            // SAFETY: on the JavaScript thread with a live handle.
            let host = unsafe { raw::read(raw_env, additional_time.raw()) }?;
            let additional = validate::ttl("additionalTime", host.raw())?;
            Ok(async move { bridge::settle(lock.extend(additional).await) })
        })?;
        Ok(unknown(raw_env, p))
    }

    /// Resolves when the lock stops being held: with an `Error` (code `TXCOORD_LOCK_LOST`,
    /// `reason` one of `taken`, `expired`, `renewal-failed`, `deadline`) if it was lost, with
    /// `null` if it was released or is not held. Does not keep the process alive.
    #[napi(
        catch_unwind,
        ts_return_type = "Promise<(Error & { code: string, reason: string }) | null>"
    )]
    pub fn lost<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        // A watch, not the lock: waiting for loss does not keep the lock (and its renewal) alive.
        let mut watch = self.inner.loss_watch();
        let key = self.inner.key().to_string();
        let p = bridge::promise(env.raw(), false, || {
            Ok(async move {
                let reason = watch.lost().await;
                let settle: bridge::Settle = Box::new(move |env: sys::napi_env| match reason {
                    // SAFETY: settle closures run on the JavaScript thread.
                    Some(reason) => Settled::Resolve(unsafe {
                        error::to_js(env, &txcoord::Error::LockLost { key, reason })
                    }),
                    None => Settled::Resolve(unsafe { null(env) }),
                });
                settle
            })
        })?;
        Ok(unknown(env.raw(), p))
    }

    /// Whether the lock is held and its local deadline has not passed.
    #[napi(getter, catch_unwind)]
    pub fn is_held(&self) -> bool {
        self.inner.is_held()
    }

    /// How much longer the lock is safely held, in whole ms (0 when it is not held).
    #[napi(getter, catch_unwind)]
    pub fn remaining_validity(&self) -> f64 {
        self.inner.remaining_validity().as_millis() as f64
    }

    /// The fencing token of the last acquisition (kept after release); `null` before the
    /// first. Strictly increasing per key, below 2^53.
    #[napi(getter, catch_unwind)]
    pub fn fencing_token(&self) -> Option<f64> {
        self.inner.fencing_token().map(|t| t as f64)
    }

    /// How many holds the owner had when this handle acquired (1 unless re-entered).
    #[napi(getter, catch_unwind)]
    pub fn hold_count(&self) -> f64 {
        self.inner.hold_count() as f64
    }

    /// The full lock key (with the client's key prefix).
    #[napi(getter, catch_unwind)]
    pub fn key(&self) -> String {
        self.inner.key().to_string()
    }

    /// The TTL in ms.
    #[napi(getter, catch_unwind)]
    pub fn ttl(&self) -> f64 {
        self.inner.ttl().as_millis() as f64
    }

    /// The explicit owner id, or `null`.
    #[napi(getter, catch_unwind)]
    pub fn owner_id(&self) -> Option<String> {
        self.inner.owner_id().map(str::to_string)
    }

    /// The priority recorded for the deadlock detector.
    #[napi(getter, catch_unwind)]
    pub fn priority(&self) -> i32 {
        self.inner.priority()
    }

    /// `idle`, `held`, `releasing` (a release not yet confirmed: call `release()` again),
    /// `released` or `lost`.
    #[napi(
        getter,
        catch_unwind,
        ts_return_type = "'idle' | 'held' | 'releasing' | 'released' | 'lost'"
    )]
    pub fn status(&self) -> &'static str {
        self.inner.status().as_str()
    }

    /// The `TXCOORD_LOCK_LOST` error of the current hold if it was lost (a new object on each
    /// read), or `null`.
    #[napi(
        getter,
        catch_unwind,
        ts_return_type = "(Error & { code: string, reason: string }) | null"
    )]
    pub fn loss_error<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        let raw_env = env.raw();
        // SAFETY: on the JavaScript thread, inside this #[napi] getter.
        let value = match self.inner.loss_reason() {
            Some(reason) => unsafe {
                error::to_js(
                    raw_env,
                    &txcoord::Error::LockLost {
                        key: self.inner.key().to_string(),
                        reason,
                    },
                )
            },
            None => unsafe { null(raw_env) },
        };
        Ok(unknown(raw_env, value))
    }

    /// Why the lock was lost (`taken`, `expired`, `renewal-failed`, `deadline`), or `null`.
    #[napi(getter, catch_unwind)]
    pub fn loss_reason(&self) -> Option<&'static str> {
        self.inner.loss_reason().map(|r| r.as_str())
    }
}

unsafe fn null(env: sys::napi_env) -> sys::napi_value {
    let mut v = std::ptr::null_mut();
    sys::napi_get_null(env, &mut v);
    v
}
