// SPDX-License-Identifier: MIT OR Apache-2.0
//! The seed's `SagaRecord` as a plain JavaScript object (`createdAt`/`updatedAt` are `Date`s),
//! read from and built for JavaScript; the condition of a conditional save; the statistics. The
//! fields are judged by the core's validators (`txcoord::binding::saga`).

use std::ffi::CStr;
use std::time::{SystemTime, UNIX_EPOCH};

use napi::sys;
use txcoord::binding::{saga as check, validate};
use txcoord::{Error, SagaRecord, SagaStatistics, SaveOptions};

use crate::object::{self, Field, Obj};
use crate::raw::{self, Host};

/// A wrong type, naming the argument (`InvalidType`).
pub(crate) fn invalid_type(arg: &'static str, message: impl Into<String>) -> Error {
    Error::InvalidType {
        arg: arg.into(),
        message: message.into(),
    }
}

/// A value out of range, naming the argument (`InvalidArgument`).
fn invalid_argument(arg: &'static str, message: impl Into<String>) -> Error {
    Error::InvalidArgument {
        arg: arg.into(),
        message: message.into(),
    }
}

/// The largest count, version or term a JavaScript number holds exactly: 2^53 − 1.
const MAX_SAFE: u64 = (1 << 53) - 1;

// -- records: Rust → JavaScript --------------------------------------------------------------

fn ms(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as f64)
        .unwrap_or(0.0)
}

/// The seed's `SagaRecord` as a plain object.
///
/// # Safety
/// On the JavaScript thread of `env`, inside a handle scope.
pub(crate) unsafe fn record_to_js(env: sys::napi_env, r: &SagaRecord) -> sys::napi_value {
    let o = Obj::new(env);
    o.set(c"id", object::string(env, &r.id))
        .set(c"type", object::string(env, &r.saga_type))
        .set(c"status", object::string(env, r.status.as_str()))
        .set(c"priority", object::number(env, f64::from(r.priority)))
        .set(c"createdAt", object::date(env, ms(r.created_at)))
        .set(c"updatedAt", object::date(env, ms(r.updated_at)))
        .set(c"retryCount", object::number(env, f64::from(r.retry_count)))
        .set(c"error", object::string_or_null(env, r.error.as_deref()))
        .set(
            c"stuckReason",
            object::string_or_null(env, r.stuck_reason.as_deref()),
        )
        .set(
            c"stuckDetail",
            object::string_or_null(env, r.stuck_detail.as_deref()),
        )
        .set(c"version", object::number(env, r.version as f64))
        .set(c"term", object::number(env, r.term as f64));
    o.value()
}

pub(super) unsafe fn records_to_js(env: sys::napi_env, records: &[SagaRecord]) -> sys::napi_value {
    object::array(env, records.iter().map(|r| record_to_js(env, r)))
}

pub(super) unsafe fn statistics_to_js(env: sys::napi_env, s: &SagaStatistics) -> sys::napi_value {
    let o = Obj::new(env);
    o.set(c"active", object::number(env, s.active as f64))
        .set(c"completed", object::number(env, s.completed as f64))
        .set(c"failed", object::number(env, s.failed as f64))
        .set(c"compensated", object::number(env, s.compensated as f64))
        .set(
            c"averageDuration",
            object::number(env, s.average_duration_ms),
        );
    o.value()
}

// -- records: JavaScript → Rust --------------------------------------------------------------

/// A field that is not a time, as the validators take it; `null` is as good as absent (the
/// default applies), except for `id` and `type`, which are required.
fn plain<'a>(arg: &'static str, f: &'a Field) -> txcoord::Result<validate::Raw<'a>> {
    match f {
        Field::Date(_) => Ok(validate::Raw::Other("a Date")),
        Field::Value(Host::Null) => Ok(validate::Raw::Absent),
        Field::Value(h) => h.text(arg),
    }
}

/// A required field, as the validators take it (`null` is refused there).
fn given<'a>(arg: &'static str, f: &'a Field) -> txcoord::Result<validate::Raw<'a>> {
    match f {
        Field::Date(_) => Ok(validate::Raw::Other("a Date")),
        Field::Value(h) => h.text(arg),
    }
}

fn required<T>(arg: &'static str, what: &str, v: Option<T>) -> txcoord::Result<T> {
    v.ok_or_else(|| invalid_type(arg, format!("is required ({what})")))
}

/// A time field: a `Date`, or absent (`undefined` or `null`).
fn time(arg: &'static str, f: &Field) -> txcoord::Result<Option<SystemTime>> {
    match f {
        Field::Date(ms) => check::time_ms(arg, validate::Raw::Float(*ms)),
        Field::Value(Host::Absent | Host::Null) => Ok(None),
        Field::Value(other) => Err(invalid_type(
            arg,
            format!("must be a Date, got {}", raw::type_name(other)),
        )),
    }
}

/// The type of a value that should have been an object, for an error message.
pub(super) unsafe fn type_of(
    env: sys::napi_env,
    value: sys::napi_value,
) -> napi::Result<&'static str> {
    Ok(raw::type_name(&raw::read(env, value)?))
}

/// Reads the seed's `SagaRecord` from a JavaScript object. `id` and `type` are required; what
/// else is missing (or `null`) takes the core's defaults for a new saga (`SagaRecord::new`:
/// status `EXECUTING`, created now), `updatedAt` defaults to `createdAt`. The `Err` of the
/// outer result is an N-API failure; of the inner one, the record's.
///
/// # Safety
/// On the JavaScript thread of `env` with a live handle; property getters may run JavaScript.
pub(crate) unsafe fn read_record(
    env: sys::napi_env,
    value: sys::napi_value,
) -> napi::Result<txcoord::Result<SagaRecord>> {
    if !object::is_object(env, value)? {
        return Ok(Err(invalid_type(
            "saga",
            format!(
                "must be a saga record (an object), got {}",
                type_of(env, value)?
            ),
        )));
    }
    let get = |name: &CStr| object::field(env, value, name);
    let (id, saga_type) = (get(c"id")?, get(c"type")?);
    let (status, priority) = (get(c"status")?, get(c"priority")?);
    let (created, updated, retries) = (get(c"createdAt")?, get(c"updatedAt")?, get(c"retryCount")?);
    let (error, stuck_reason, stuck_detail) =
        (get(c"error")?, get(c"stuckReason")?, get(c"stuckDetail")?);
    let (version, term) = (get(c"version")?, get(c"term")?);
    let text = |arg: &'static str, f: &Field| -> txcoord::Result<Option<String>> {
        Ok(check::optional_text(arg, plain(arg, f)?)?.map(str::to_string))
    };
    Ok((|| {
        let mut r = SagaRecord::new(
            check::saga_id("id", given("id", &id)?)?,
            check::saga_type("type", given("type", &saga_type)?)?,
        );
        if let Some(s) = check::status("status", plain("status", &status)?)? {
            r.status = s;
        }
        if let Some(p) = validate::priority("priority", plain("priority", &priority)?)? {
            r.priority = p;
        }
        if let Some(t) = time("createdAt", &created)? {
            r.created_at = t;
        }
        r.updated_at = time("updatedAt", &updated)?.unwrap_or(r.created_at);
        if let Some(n) = check::count(
            "retryCount",
            plain("retryCount", &retries)?,
            u32::MAX.into(),
        )? {
            r.retry_count = n as u32;
        }
        r.error = text("error", &error)?;
        r.stuck_reason = text("stuckReason", &stuck_reason)?;
        r.stuck_detail = text("stuckDetail", &stuck_detail)?;
        if let Some(v) = check::count("version", plain("version", &version)?, MAX_SAFE)? {
            r.version = v;
        }
        if let Some(t) = check::count("term", plain("term", &term)?, MAX_SAFE)? {
            r.term = t;
        }
        Ok(r)
    })())
}

/// The condition of a conditional save: `{ expectedVersion, term, guardFinished }`.
pub(super) unsafe fn read_save_options(
    env: sys::napi_env,
    value: sys::napi_value,
) -> napi::Result<txcoord::Result<SaveOptions>> {
    if !object::is_object(env, value)? {
        return Ok(Err(invalid_type(
            "options",
            format!("must be an object, got {}", type_of(env, value)?),
        )));
    }
    let get = |name: &CStr| object::field(env, value, name);
    let (expected, term, guard) = (
        get(c"expectedVersion")?,
        get(c"term")?,
        get(c"guardFinished")?,
    );
    Ok((|| {
        Ok(SaveOptions {
            expected_version: check::count(
                "expectedVersion",
                plain("expectedVersion", &expected)?,
                MAX_SAFE,
            )?,
            term: check::count("term", plain("term", &term)?, MAX_SAFE)?,
            guard_finished: validate::flag("guardFinished", plain("guardFinished", &guard)?)?
                .unwrap_or(false),
        })
    })())
}

/// `getStatistics()`'s result: `active`, `completed`, `failed` and `averageDuration` (ms) are
/// required, `compensated` defaults to 0.
pub(super) unsafe fn read_statistics(
    env: sys::napi_env,
    value: sys::napi_value,
) -> napi::Result<txcoord::Result<SagaStatistics>> {
    if !object::is_object(env, value)? {
        return Ok(Err(invalid_type(
            "statistics",
            format!("must be an object, got {}", type_of(env, value)?),
        )));
    }
    let get = |name: &CStr| object::field(env, value, name);
    let fields = [
        get(c"active")?,
        get(c"completed")?,
        get(c"failed")?,
        get(c"compensated")?,
    ];
    let average = get(c"averageDuration")?;
    Ok((|| {
        let names = ["active", "completed", "failed", "compensated"];
        let mut counts = [0u64; 4];
        for (i, (name, f)) in names.iter().zip(fields.iter()).enumerate() {
            let n = check::count(name, plain(name, f)?, MAX_SAFE)?;
            counts[i] = if i == 3 {
                n.unwrap_or(0)
            } else {
                required(name, "an integer", n)?
            };
        }
        let average_duration_ms = match &average {
            Field::Value(Host::Num(f)) if f.is_finite() && *f >= 0.0 => *f,
            Field::Value(Host::Num(f)) => {
                return Err(invalid_argument(
                    "averageDuration",
                    format!("must be a finite number of ms, at least 0, got {f}"),
                ))
            }
            Field::Value(Host::Absent) => {
                return Err(invalid_type(
                    "averageDuration",
                    "is required (a number of ms)",
                ))
            }
            Field::Date(_) => {
                return Err(invalid_type(
                    "averageDuration",
                    "must be a number of ms, got a Date",
                ))
            }
            Field::Value(other) => {
                return Err(invalid_type(
                    "averageDuration",
                    format!("must be a number of ms, got {}", raw::type_name(other)),
                ))
            }
        };
        Ok(SagaStatistics {
            active: counts[0],
            completed: counts[1],
            failed: counts[2],
            compensated: counts[3],
            average_duration_ms,
        })
    })())
}
