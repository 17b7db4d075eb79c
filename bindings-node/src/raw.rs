// SPDX-License-Identifier: MIT OR Apache-2.0
//! JavaScript values as they arrived, turned into [`txcoord::binding::validate::Raw`] without any
//! conversion: `undefined` → `Absent`, `null` → `Null`, a boolean → `Bool`, a number →
//! `Float`, a string → `Str`, anything else → `Other(typeof)`. The core's validator decides.
//!
//! Strings are read as UTF-16 and decoded strictly: a string with an unpaired surrogate is
//! refused (N-API's UTF-8 conversion would silently replace it with U+FFFD, so two different
//! JavaScript strings would name the same lock).

use std::ffi::{CStr, CString};
use std::ptr;

use napi::sys;
use txcoord::binding::options::{self, Host as Lang, Kind, Spec};
use txcoord::binding::validate::Raw;
use txcoord::Error;

use crate::bridge::Prep;

/// An owned copy of one JavaScript value, enough to build a [`Raw`] from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Host {
    Absent,
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    /// A string that is not valid UTF-16 (an unpaired surrogate).
    BadStr,
    Other(&'static str),
}

/// Reads a JavaScript value.
///
/// # Safety
/// `env` must be the current environment and `value` a live handle, on the JavaScript thread.
pub(crate) unsafe fn read(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Host> {
    let mut t = 0;
    check(sys::napi_typeof(env, value, &mut t))?;
    Ok(match t {
        sys::ValueType::napi_undefined => Host::Absent,
        sys::ValueType::napi_null => Host::Null,
        sys::ValueType::napi_boolean => {
            let mut b = false;
            check(sys::napi_get_value_bool(env, value, &mut b))?;
            Host::Bool(b)
        }
        sys::ValueType::napi_number => {
            let mut f = 0.0;
            check(sys::napi_get_value_double(env, value, &mut f))?;
            Host::Num(f)
        }
        sys::ValueType::napi_string => {
            let mut len = 0usize;
            check(sys::napi_get_value_string_utf16(
                env,
                value,
                ptr::null_mut(),
                0,
                &mut len,
            ))?;
            let mut buf = vec![0u16; len + 1];
            let mut written = 0usize;
            check(sys::napi_get_value_string_utf16(
                env,
                value,
                buf.as_mut_ptr(),
                buf.len(),
                &mut written,
            ))?;
            buf.truncate(written);
            match String::from_utf16(&buf) {
                Ok(s) => Host::Str(s),
                Err(_) => Host::BadStr,
            }
        }
        sys::ValueType::napi_object => {
            let mut is_array = false;
            check(sys::napi_is_array(env, value, &mut is_array))?;
            Host::Other(if is_array { "an array" } else { "an object" })
        }
        sys::ValueType::napi_function => Host::Other("a function"),
        sys::ValueType::napi_symbol => Host::Other("a symbol"),
        sys::ValueType::napi_bigint => Host::Other("a bigint"),
        _ => Host::Other("an external value"),
    })
}

fn check(status: sys::napi_status) -> napi::Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(napi::Error::new(
            napi::Status::from(status),
            "reading a JavaScript value failed",
        ))
    }
}

impl Host {
    /// The raw value for a validator that expects a number or a boolean. A string with an
    /// unpaired surrogate is still a string there (a wrong type).
    pub(crate) fn raw(&self) -> Raw<'_> {
        match self {
            Host::Absent => Raw::Absent,
            Host::Null => Raw::Null,
            Host::Bool(b) => Raw::Bool(*b),
            Host::Num(f) => Raw::Float(*f),
            Host::Str(s) => Raw::Str(s),
            Host::BadStr => Raw::Other("a string"),
            Host::Other(t) => Raw::Other(t),
        }
    }

    /// The raw value for a validator that expects a string: a string with an unpaired
    /// surrogate is refused here, naming `arg`.
    pub(crate) fn text(&self, arg: &'static str) -> Result<Raw<'_>, Error> {
        match self {
            Host::BadStr => Err(Error::InvalidArgument {
                arg: arg.into(),
                message: "must be valid Unicode text, but it contains an unpaired UTF-16 \
                          surrogate"
                    .into(),
            }),
            other => Ok(other.raw()),
        }
    }
}

/// An options bag: `undefined` (no options) or a plain object whose properties are read raw.
pub(crate) struct Options {
    env: sys::napi_env,
    object: Option<sys::napi_value>,
}

impl Options {
    /// Reads the options argument named `arg`. Anything but `undefined` or a non-array object
    /// is refused with `InvalidType`.
    ///
    /// # Safety
    /// As [`read`].
    pub(crate) unsafe fn new(
        env: sys::napi_env,
        value: sys::napi_value,
        arg: &'static str,
    ) -> napi::Result<Result<Self, Error>> {
        let host = read(env, value)?;
        Ok(match host {
            Host::Absent => Ok(Options { env, object: None }),
            Host::Other("an object") => Ok(Options {
                env,
                object: Some(value),
            }),
            other => Err(Error::InvalidType {
                arg: arg.into(),
                message: format!("must be an object, got {}", type_name(&other)),
            }),
        })
    }

    /// The raw value of property `name` (`Absent` when there are no options or it is unset).
    ///
    /// # Safety
    /// As [`read`]; property getters may run JavaScript.
    pub(crate) unsafe fn get(&self, name: &CStr) -> napi::Result<Host> {
        let Some(object) = self.object else {
            return Ok(Host::Absent);
        };
        let mut value = ptr::null_mut();
        check(sys::napi_get_named_property(
            self.env,
            object,
            name.as_ptr(),
            &mut value,
        ))?;
        read(self.env, value)
    }
}

impl Options {
    /// Reads the options of `table` through the core (`binding::options::read`): each from the
    /// property of its JavaScript name, or from `positional` (the method's own positional
    /// parameters, by the option's core name).
    ///
    /// # Safety
    /// As [`read`]; property getters may run JavaScript.
    pub(crate) unsafe fn read<T: Default>(
        &self,
        table: &[Spec<T>],
        positional: &[(&str, &Host)],
    ) -> Result<T, Prep> {
        let mut hosts = Vec::with_capacity(table.len());
        for spec in table {
            let host = match positional.iter().find(|(name, _)| *name == spec.name) {
                Some((_, host)) => (*host).clone(),
                None => {
                    let name = CString::new(spec.js).map_err(|_| {
                        napi::Error::from_reason(format!("option name {:?}", spec.js))
                    })?;
                    self.get(&name)?
                }
            };
            // A string option with an unpaired surrogate is refused, not replaced.
            if matches!(spec.kind, Kind::OwnerId | Kind::Text) {
                host.text(spec.js)?;
            }
            hosts.push(host);
        }
        Ok(options::read(Lang::Node, table, |spec| {
            table
                .iter()
                .position(|s| s.name == spec.name)
                .map_or(Raw::Absent, |i| hosts[i].raw())
        })?)
    }
}

/// How an error message names the type of a value.
pub(crate) fn type_name(host: &Host) -> &'static str {
    match host {
        Host::Absent => "undefined",
        Host::Null => "null",
        Host::Bool(_) => "a boolean",
        Host::Num(_) => "a number",
        Host::Str(_) | Host::BadStr => "a string",
        Host::Other(t) => t,
    }
}

/// A string argument the core takes as `&str` with its own checks (a URL, a key prefix, a
/// client name): `Absent` gives `None`, a string gives it, anything else is `InvalidType`.
pub(crate) fn optional_str<'a>(
    arg: &'static str,
    host: &'a Host,
) -> Result<Option<&'a str>, Error> {
    match host.text(arg)? {
        Raw::Absent => Ok(None),
        Raw::Str(s) => Ok(Some(s)),
        _ => Err(Error::InvalidType {
            arg: arg.into(),
            message: format!("must be a string, got {}", type_name(host)),
        }),
    }
}
