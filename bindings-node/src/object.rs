// SPDX-License-Identifier: MIT OR Apache-2.0
//! Plain JavaScript values built from Rust ones (saga records, cycles, graphs), and properties
//! read from JavaScript objects, with the raw N-API calls the settle closures can make.
//!
//! Every function here must run on the JavaScript thread of `env`, inside a handle scope (a
//! `#[napi]` function, a settle closure of `bridge`, or a threadsafe function's callback).

use std::ffi::CStr;
use std::ptr;

use napi::sys;

use crate::raw::{self, Host};

fn check(status: sys::napi_status, what: &str) -> napi::Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(napi::Error::new(
            napi::Status::from(status),
            what.to_string(),
        ))
    }
}

/// A JavaScript string.
///
/// # Safety
/// On the JavaScript thread of `env`.
pub(crate) unsafe fn string(env: sys::napi_env, s: &str) -> sys::napi_value {
    let mut out = ptr::null_mut();
    sys::napi_create_string_utf8(env, s.as_ptr().cast(), s.len() as isize, &mut out);
    out
}

/// A JavaScript number.
///
/// # Safety
/// As [`string`].
pub(crate) unsafe fn number(env: sys::napi_env, n: f64) -> sys::napi_value {
    let mut out = ptr::null_mut();
    sys::napi_create_double(env, n, &mut out);
    out
}

/// `null`.
///
/// # Safety
/// As [`string`].
pub(crate) unsafe fn null(env: sys::napi_env) -> sys::napi_value {
    let mut out = ptr::null_mut();
    sys::napi_get_null(env, &mut out);
    out
}

/// A boolean.
///
/// # Safety
/// As [`string`].
pub(crate) unsafe fn boolean(env: sys::napi_env, b: bool) -> sys::napi_value {
    let mut out = ptr::null_mut();
    sys::napi_get_boolean(env, b, &mut out);
    out
}

/// A string, or `null` for `None`.
///
/// # Safety
/// As [`string`].
pub(crate) unsafe fn string_or_null(env: sys::napi_env, s: Option<&str>) -> sys::napi_value {
    match s {
        Some(s) => string(env, s),
        None => null(env),
    }
}

/// A `Date` at `ms` milliseconds since the Unix epoch.
///
/// # Safety
/// As [`string`].
pub(crate) unsafe fn date(env: sys::napi_env, ms: f64) -> sys::napi_value {
    let mut out = ptr::null_mut();
    sys::napi_create_date(env, ms, &mut out);
    out
}

/// An array of `items`.
///
/// # Safety
/// As [`string`].
pub(crate) unsafe fn array(
    env: sys::napi_env,
    items: impl ExactSizeIterator<Item = sys::napi_value>,
) -> sys::napi_value {
    let mut out = ptr::null_mut();
    sys::napi_create_array_with_length(env, items.len(), &mut out);
    for (i, v) in items.enumerate() {
        sys::napi_set_element(env, out, i as u32, v);
    }
    out
}

/// An array of strings.
///
/// # Safety
/// As [`string`].
pub(crate) unsafe fn strings(env: sys::napi_env, items: &[String]) -> sys::napi_value {
    array(env, items.iter().map(|s| string(env, s)))
}

/// A plain object, filled property by property.
pub(crate) struct Obj {
    env: sys::napi_env,
    value: sys::napi_value,
}

impl Obj {
    /// A new empty object.
    ///
    /// # Safety
    /// As [`string`].
    pub(crate) unsafe fn new(env: sys::napi_env) -> Obj {
        let mut value = ptr::null_mut();
        sys::napi_create_object(env, &mut value);
        Obj { env, value }
    }

    /// Sets property `name` (skipped when `value` is null, which a failed creation gives).
    ///
    /// # Safety
    /// As [`string`].
    pub(crate) unsafe fn set(&self, name: &CStr, value: sys::napi_value) -> &Self {
        if !value.is_null() && !self.value.is_null() {
            sys::napi_set_named_property(self.env, self.value, name.as_ptr(), value);
        }
        self
    }

    /// The object.
    pub(crate) fn value(&self) -> sys::napi_value {
        self.value
    }
}

/// A value read from a property: a `Date` (its time in ms, NaN for an invalid date) or any
/// other value as [`raw::read`] sees it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Field {
    Date(f64),
    Value(Host),
}

/// Whether `value` is an object (not an array, not `null`).
///
/// # Safety
/// As [`string`], with a live handle.
pub(crate) unsafe fn is_object(env: sys::napi_env, value: sys::napi_value) -> napi::Result<bool> {
    Ok(matches!(raw::read(env, value)?, Host::Other("an object")))
}

/// Property `name` of `object`.
///
/// # Safety
/// As [`string`], with a live handle to an object; property getters may run JavaScript.
pub(crate) unsafe fn property(
    env: sys::napi_env,
    object: sys::napi_value,
    name: &CStr,
) -> napi::Result<sys::napi_value> {
    let mut value = ptr::null_mut();
    check(
        sys::napi_get_named_property(env, object, name.as_ptr(), &mut value),
        "reading a property failed",
    )?;
    Ok(value)
}

/// Property `name` of `object`, read raw.
///
/// # Safety
/// As [`string`], with a live handle to an object; property getters may run JavaScript.
pub(crate) unsafe fn field(
    env: sys::napi_env,
    object: sys::napi_value,
    name: &CStr,
) -> napi::Result<Field> {
    let value = property(env, object, name)?;
    let mut is_date = false;
    check(
        sys::napi_is_date(env, value, &mut is_date),
        "reading a property failed",
    )?;
    if is_date {
        let mut ms = 0.0;
        check(
            sys::napi_get_date_value(env, value, &mut ms),
            "reading a Date failed",
        )?;
        return Ok(Field::Date(ms));
    }
    Ok(Field::Value(raw::read(env, value)?))
}

/// The elements of an array, or `None` when `value` is not one.
///
/// # Safety
/// As [`string`], with a live handle.
pub(crate) unsafe fn elements(
    env: sys::napi_env,
    value: sys::napi_value,
) -> napi::Result<Option<Vec<sys::napi_value>>> {
    let mut is_array = false;
    check(
        sys::napi_is_array(env, value, &mut is_array),
        "reading an array failed",
    )?;
    if !is_array {
        return Ok(None);
    }
    let mut len = 0u32;
    check(
        sys::napi_get_array_length(env, value, &mut len),
        "reading an array failed",
    )?;
    let mut out = Vec::with_capacity(len as usize);
    for i in 0..len {
        let mut item = ptr::null_mut();
        check(
            sys::napi_get_element(env, value, i, &mut item),
            "reading an array failed",
        )?;
        out.push(item);
    }
    Ok(Some(out))
}

/// The own enumerable string-keyed properties of an object: `(key as read, value)`.
///
/// # Safety
/// As [`string`], with a live handle to an object; property getters may run JavaScript.
pub(crate) unsafe fn entries(
    env: sys::napi_env,
    object: sys::napi_value,
) -> napi::Result<Vec<(Host, sys::napi_value)>> {
    let mut keys = ptr::null_mut();
    check(
        sys::napi_get_all_property_names(
            env,
            object,
            sys::KeyCollectionMode::own_only,
            sys::KeyFilter::enumerable | sys::KeyFilter::skip_symbols,
            sys::KeyConversion::numbers_to_strings,
            &mut keys,
        ),
        "reading an object's keys failed",
    )?;
    let keys = elements(env, keys)?.unwrap_or_default();
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let mut value = ptr::null_mut();
        check(
            sys::napi_get_property(env, object, key, &mut value),
            "reading a property failed",
        )?;
        out.push((raw::read(env, key)?, value));
    }
    Ok(out)
}
