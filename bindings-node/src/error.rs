// SPDX-License-Identifier: MIT OR Apache-2.0
//! The one mapping from txcoord's error kinds to JavaScript errors.
//!
//! Every error the binding hands to JavaScript is built here, from [`txcoord::Error::kind`]:
//! `InvalidArgument` becomes a `RangeError`, `InvalidType` a `TypeError`, every other kind an
//! `Error`; each carries `code` = [`txcoord::ErrorKind::code`] (`TXCOORD_*`). Errors about an
//! argument also carry `argument` (its JavaScript name), a lost lock carries `reason`
//! (`taken`, `expired`, `renewal-failed`, `deadline`) and `key`, a timeout carries `key`, a
//! deadlock victim's error `key` and `cycle` (the explained cycle, or `null`).
//! The message keeps the "Caused by:" chain of the Rust error.

use std::borrow::Cow;
use std::error::Error as _;
use std::ffi::CStr;
use std::ptr;

use napi::bindgen_prelude::{Env, JsValue, Unknown};
use napi::sys;
use napi_derive::napi;
use txcoord::binding::options::{host_argument, Host as Lang};
use txcoord::binding::validate;
use txcoord::{Error, ErrorKind};

/// The JavaScript spelling of an argument name (`lock_key` → `lockKey`, `fallback_poll` →
/// `fallbackPoll`): the core's `binding::options::host_argument`.
pub(crate) fn js_name(arg: &str) -> Cow<'_, str> {
    host_argument(Lang::Node, arg)
}

/// The message of `e` as JavaScript shows it: argument names in their JavaScript spelling, and
/// the chain of causes.
pub(crate) fn message(e: &Error) -> String {
    let mut msg = match e {
        Error::InvalidArgument { arg, message } => {
            format!("invalid argument `{}`: {message}", js_name(arg))
        }
        Error::InvalidType { arg, message } => {
            format!("invalid type for `{}`: {message}", js_name(arg))
        }
        other => other.to_string(),
    };
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str("\nCaused by: ");
            msg.push_str(&text);
        }
        source = s.source();
    }
    msg
}

unsafe fn string(env: sys::napi_env, s: &str) -> sys::napi_value {
    let mut out = ptr::null_mut();
    sys::napi_create_string_utf8(env, s.as_ptr().cast(), s.len() as isize, &mut out);
    out
}

unsafe fn set(env: sys::napi_env, obj: sys::napi_value, name: &CStr, value: sys::napi_value) {
    if !value.is_null() {
        sys::napi_set_named_property(env, obj, name.as_ptr(), value);
    }
}

/// Builds the JavaScript error object for `e`.
///
/// # Safety
/// `env` must be the current environment, on its JavaScript thread, inside a handle scope.
pub(crate) unsafe fn to_js(env: sys::napi_env, e: &Error) -> sys::napi_value {
    let kind = e.kind();
    let code = string(env, kind.code());
    let msg = string(env, &message(e));
    let mut out = ptr::null_mut();
    match kind {
        ErrorKind::InvalidArgument => sys::napi_create_range_error(env, code, msg, &mut out),
        ErrorKind::InvalidType => sys::napi_create_type_error(env, code, msg, &mut out),
        _ => sys::napi_create_error(env, code, msg, &mut out),
    };
    if out.is_null() {
        return out;
    }
    if let Some(arg) = e.argument() {
        set(env, out, c"argument", string(env, &js_name(arg)));
    }
    match e {
        Error::LockLost { key, reason } => {
            set(env, out, c"reason", string(env, reason.as_str()));
            set(env, out, c"key", string(env, key));
        }
        Error::Timeout { key, .. } => {
            set(env, out, c"key", string(env, key));
        }
        Error::DeadlockVictim { key, cycle, .. } => {
            set(env, out, c"key", string(env, key));
            let cycle = match cycle {
                Some(c) => crate::deadlock::cycle_to_js(env, c),
                None => crate::object::null(env),
            };
            set(env, out, c"cycle", cycle);
        }
        _ => {}
    }
    out
}

/// Builds a JavaScript `Error` with code `TXCOORD_INTERNAL` for a failure of the binding itself
/// (a panic, a failed N-API call).
///
/// # Safety
/// As [`to_js`].
pub(crate) unsafe fn internal(env: sys::napi_env, what: &str) -> sys::napi_value {
    to_js(env, &Error::Internal(what.to_string()))
}

/// Throws `e` (as [`to_js`] builds it) and returns the `napi::Error` that tells napi-rs an
/// exception is already pending. For synchronous functions (constructors, factories).
pub(crate) fn throw(env: sys::napi_env, e: &Error) -> napi::Error {
    // SAFETY: called from a synchronous #[napi] function on the JavaScript thread.
    unsafe {
        let value = to_js(env, e);
        if !value.is_null() {
            sys::napi_throw(env, value);
        }
    }
    napi::Error::new(napi::Status::PendingException, message(e))
}

/// The error for an argument of the wrong type that `index.js` judged by identity (`signal`
/// not an `AbortSignal`, `fn` not a function, a logger without its methods): "must be
/// {expected}, got {the type of value}", built by the core, as a `TypeError` with code
/// `TXCOORD_INVALID_TYPE` and `argument`. Returned, not thrown: the caller throws or rejects.
#[napi(
    js_name = "wrongType",
    catch_unwind,
    ts_return_type = "TypeError & { code: string, argument: string }"
)]
pub fn wrong_type<'env>(
    env: &'env Env,
    arg: String,
    expected: String,
    value: Unknown,
) -> napi::Result<Unknown<'env>> {
    let raw_env = env.raw();
    // SAFETY: on the JavaScript thread with a live handle.
    let host = unsafe { crate::raw::read(raw_env, value.raw()) }?;
    let e = validate::wrong_type(arg, &expected, host.raw());
    // SAFETY: on the JavaScript thread, inside this #[napi] function.
    let js = unsafe { to_js(raw_env, &e) };
    Ok(crate::client::unknown(raw_env, js))
}

/// A panic payload as text.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argument_names_are_camel_cased() {
        assert_eq!(js_name("lock_key"), "lockKey");
        assert_eq!(js_name("additional_time"), "additionalTime");
        assert_eq!(js_name("fallback_poll"), "fallbackPoll");
        assert_eq!(js_name("ttl"), "ttl");
        assert_eq!(js_name("ownerId"), "ownerId");
    }
}
