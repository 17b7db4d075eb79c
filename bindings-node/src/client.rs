// SPDX-License-Identifier: MIT OR Apache-2.0
//! `Client`: one Redis connection shared by every lock and manager built on it; and what a
//! `redis` argument that is not a `Client` becomes (`clientFor`), as the core decides
//! (`txcoord::binding::target`).

use std::ffi::CStr;

use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;
use txcoord::binding::options::{Host as Lang, CLIENT};
use txcoord::binding::target::{self, ForeignClient, Topology};
use txcoord::binding::validate;

use crate::bridge::{self, Prep};
use crate::error;
use crate::raw::{self, Host, Options};

/// A snapshot of a client's counters.
#[napi(object)]
pub struct ClientStats {
    /// Acquire attempts sent (one script call each).
    pub attempts: f64,
    /// Acquisitions granted (including re-entries).
    pub acquired: f64,
    /// Releases that deleted the lock or dropped a hold.
    pub released: f64,
    /// Successful renewals.
    pub renewals: f64,
    /// Renewal attempts that failed with a retryable error.
    pub renewal_errors: f64,
    /// Locks lost while held.
    pub lost: f64,
    /// Waits ended by a release notification.
    pub wake_notified: f64,
    /// Waits ended by a timer (the holder's expiry or the fallback poll).
    pub wake_timer: f64,
    /// Times a waiter went to sleep until a release notice or a timer.
    pub sleeps: f64,
    /// Release notifications received.
    pub messages: f64,
    /// Connection losses seen.
    pub disconnects: f64,
    /// Channel subscriptions made.
    pub subscribes: f64,
    /// Channel subscriptions dropped.
    pub unsubscribes: f64,
}

/// A connection to one Redis server (`redis://` or `rediss://`), shared by every lock and
/// manager built on it. Creating it does not connect; the first command does.
///
/// ### Example
/// ```js
/// const { Client, LockManager } = require('txcoord')
/// const client = new Client('redis://127.0.0.1:6379/0', { keyPrefix: 'app:' })
/// const manager = new LockManager(client)
/// ```
#[napi(js_name = "Client")]
pub struct JsClient {
    pub(crate) inner: txcoord::Client,
}

fn build(url: &raw::Host, options: &Options) -> std::result::Result<txcoord::Client, Prep> {
    let url = raw::optional_str("url", url)?.ok_or_else(|| txcoord::Error::InvalidType {
        arg: "url".into(),
        message: "is required (a redis:// or rediss:// URL)".into(),
    })?;
    // SAFETY: on the JavaScript thread, inside the calling #[napi] function.
    let opts = unsafe { options.read(CLIENT, &[]) }?;
    Ok(txcoord::Client::with_options(url, opts)?)
}

/// A foreign client's settings, from the description `index.js` read from an ioredis instance.
fn foreign(description: &Options) -> std::result::Result<ForeignClient, Prep> {
    let bad = |what: &str, host: &Host| {
        Prep::Core(txcoord::Error::InvalidArgument {
            arg: "redis".into(),
            message: format!(
                "has an ioredis option {what} txcoord cannot read ({})",
                raw::type_name(host)
            ),
        })
    };
    // SAFETY (all `get` calls): on the JavaScript thread, inside the calling #[napi] function.
    let text = |name: &'static CStr| -> std::result::Result<Option<String>, Prep> {
        let host = unsafe { description.get(name) }?;
        match &host {
            Host::Absent | Host::Null => Ok(None),
            Host::Str(s) => Ok(Some(s.clone())),
            other => Err(bad(&name.to_string_lossy(), other)),
        }
    };
    let flag = |name: &'static CStr| -> std::result::Result<bool, Prep> {
        Ok(matches!(
            unsafe { description.get(name) }?,
            Host::Bool(true)
        ))
    };
    let number = |name: &'static CStr| -> std::result::Result<Option<f64>, Prep> {
        let host = unsafe { description.get(name) }?;
        match &host {
            Host::Absent | Host::Null => Ok(None),
            Host::Num(n) => Ok(Some(*n)),
            Host::Str(s) if s.parse::<f64>().is_ok() => Ok(s.parse().ok()),
            other => Err(bad(&name.to_string_lossy(), other)),
        }
    };
    let topology = match text(c"topology")?.as_deref() {
        None | Some("standalone") => Topology::Standalone,
        Some("cluster") => Topology::Cluster,
        Some("sentinel") => Topology::Sentinel,
        Some("unix") => Topology::UnixSocket,
        Some(other) => {
            return Err(Prep::Napi(napi::Error::from_reason(format!(
                "txcoord: unknown topology {other:?}"
            ))))
        }
    };
    let port = match number(c"port")? {
        None => None,
        Some(p) if p.fract() == 0.0 && (0.0..=65535.0).contains(&p) => Some(p as u16),
        Some(p) => return Err(bad(&format!("port ({p})"), &Host::Num(p))),
    };
    let db = match number(c"db")? {
        None => None,
        Some(d) if d.fract() == 0.0 && (0.0..1e15).contains(&d) => Some(d as i64),
        Some(d) => return Err(bad(&format!("db ({d})"), &Host::Num(d))),
    };
    Ok(ForeignClient {
        library: "ioredis",
        class_name: text(c"className")?.unwrap_or_default(),
        topology,
        host: text(c"host")?,
        port,
        db,
        username: text(c"username")?,
        password: text(c"password")?,
        tls: flag(c"tls")?,
        tls_insecure: flag(c"tlsInsecure")?,
        tls_material: text(c"tlsMaterial")?,
        key_prefix: text(c"keyPrefix")?,
    })
}

/// The native client for a `redis` argument that is not a `Client` (`index.js` passes those
/// through): a URL string becomes the core's shared client for that URL (one per URL while in
/// use, closed once unused); an ioredis instance, described by `foreign` (its settings, read by
/// `index.js`), a client of its own, or the core's refusal; anything else is refused. Throws a
/// `TypeError`/`RangeError` with a `TXCOORD_*` code naming `redis`.
#[napi(
    js_name = "clientFor",
    catch_unwind,
    ts_args_type = "redis: unknown, foreign?: { className?: string, topology?: 'standalone' | 'cluster' | 'sentinel' | 'unix', host?: string, port?: number, db?: number, username?: string, password?: string, tls?: boolean, tlsInsecure?: boolean, tlsMaterial?: string, keyPrefix?: string }"
)]
pub fn client_for(env: Env, redis: Unknown, foreign_description: Unknown) -> Result<JsClient> {
    let env = env.raw();
    let resolve = || -> std::result::Result<txcoord::Client, Prep> {
        // SAFETY: on the JavaScript thread with live handles.
        let description = unsafe { raw::read(env, foreign_description.raw()) }?;
        if description != Host::Absent {
            let description = unsafe { Options::new(env, foreign_description.raw(), "foreign") }??;
            return Ok(target::foreign_client(&foreign(&description)?)?);
        }
        let redis = unsafe { raw::read(env, redis.raw()) }?;
        match &redis {
            Host::Str(url) => Ok(target::url_client(url)?),
            Host::BadStr => Err(validate::bad_encoding("redis").into()),
            other => Err(target::not_a_client(Lang::Node, raw::type_name(other)).into()),
        }
    };
    match resolve() {
        Ok(inner) => Ok(JsClient { inner }),
        Err(Prep::Core(e)) => Err(error::throw(env, &e)),
        Err(Prep::Napi(e)) => Err(e),
    }
}

#[napi]
impl JsClient {
    /// A client for `url` (`redis://[user:password@]host[:port][/db]`, `rediss://` for TLS).
    /// Options: `keyPrefix` (put before every key, as ioredis' `keyPrefix`), `clientName`
    /// (shown by `CLIENT LIST`), `connectTimeout` and `responseTimeout` (ms). Throws a
    /// `TypeError`/`RangeError` with a `TXCOORD_*` code for bad arguments.
    #[napi(
        constructor,
        catch_unwind,
        ts_args_type = "url: string, options?: { keyPrefix?: string, clientName?: string, connectTimeout?: number, responseTimeout?: number }"
    )]
    pub fn new(env: Env, url: Unknown, options: Unknown) -> Result<Self> {
        let env = env.raw();
        // SAFETY: on the JavaScript thread with live handles.
        let url = unsafe { raw::read(env, url.raw()) }?;
        let options = match unsafe { Options::new(env, options.raw(), "options") }? {
            Ok(o) => o,
            Err(e) => return Err(error::throw(env, &e)),
        };
        match build(&url, &options) {
            Ok(inner) => Ok(JsClient { inner }),
            Err(Prep::Core(e)) => Err(error::throw(env, &e)),
            Err(Prep::Napi(e)) => Err(e),
        }
    }

    /// The key prefix put before every key.
    #[napi(getter, catch_unwind)]
    pub fn key_prefix(&self) -> String {
        self.inner.key_prefix().to_string()
    }

    /// The connection name given with `CLIENT SETNAME`.
    #[napi(getter, catch_unwind)]
    pub fn name(&self) -> String {
        self.inner.name().to_string()
    }

    /// Whether `close()` was called.
    #[napi(getter, catch_unwind)]
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// A snapshot of this client's counters (attempts, wake-ups by notification or timer, ...).
    #[napi(catch_unwind)]
    pub fn stats(&self) -> ClientStats {
        let s = self.inner.stats();
        ClientStats {
            attempts: s.attempts as f64,
            acquired: s.acquired as f64,
            released: s.released as f64,
            renewals: s.renewals as f64,
            renewal_errors: s.renewal_errors as f64,
            lost: s.lost as f64,
            wake_notified: s.wake_notified as f64,
            wake_timer: s.wake_timer as f64,
            sleeps: s.sleeps as f64,
            messages: s.messages as f64,
            disconnects: s.disconnects as f64,
            subscribes: s.subscribes as f64,
            unsubscribes: s.unsubscribes as f64,
        }
    }

    /// Connects if needed and checks that Redis answers.
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn ping(&self, env: Env) -> Result<Unknown<'_>> {
        let client = self.inner.clone();
        let p = bridge::promise(env.raw(), true, || {
            Ok(async move { bridge::settle(client.ping().await) })
        })?;
        Ok(unsafe { Unknown::from_raw_unchecked(env.raw(), p) })
    }

    /// Refuses further commands. Locks still held keep their keys until their TTL: release
    /// them first (`LockManager.close()` does).
    #[napi(catch_unwind)]
    pub fn close(&self) {
        self.inner.close();
    }
}

/// `Unknown` for a raw value, for the promise-returning methods.
pub(crate) fn unknown<'a>(env: sys::napi_env, value: sys::napi_value) -> Unknown<'a> {
    // SAFETY: `value` was just created in `env` on this thread.
    unsafe { Unknown::from_raw_unchecked(env, value) }
}
