// SPDX-License-Identifier: MIT OR Apache-2.0
//! Sagas: the seed's `SagaRecord` as a plain JavaScript object (`createdAt`/`updatedAt` are
//! `Date`s), and `SagaRepository`, the native side of both the built-in Redis repository and a
//! user's own repository object written in JavaScript.
//!
//! A user's repository is reached through one threadsafe function per method (weak, so it never
//! keeps Node alive): the core calls them from tokio, each call returns the promise of the
//! user's method, and its result is read on the JavaScript thread and judged by the core's
//! validators (`txcoord::binding::saga`) before it reaches the core. Nothing blocks tokio.

use std::ffi::CStr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use napi::bindgen_prelude::*;
use napi::sys;
use napi::threadsafe_function::ThreadsafeFunction;
use napi_derive::napi;
use txcoord::binding::{saga as check, validate};
use txcoord::{
    BoxFuture, Error, RedisSagaRepository, SagaRecord, SagaRepository, SagaStatistics, SagaStatus,
    SaveOptions, SaveOutcome,
};

use crate::bridge::{self, Prep};
use crate::client::{unknown, JsClient};
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

/// The six saga statuses, in the core's order (the JavaScript layer builds `SagaStatus` from
/// them).
#[napi(js_name = "sagaStatuses", catch_unwind)]
pub fn saga_statuses() -> Vec<String> {
    SagaStatus::ALL
        .iter()
        .map(|s| s.as_str().to_string())
        .collect()
}

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

unsafe fn records_to_js(env: sys::napi_env, records: &[SagaRecord]) -> sys::napi_value {
    object::array(env, records.iter().map(|r| record_to_js(env, r)))
}

unsafe fn statistics_to_js(env: sys::napi_env, s: &SagaStatistics) -> sys::napi_value {
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
unsafe fn type_of(env: sys::napi_env, value: sys::napi_value) -> napi::Result<&'static str> {
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
unsafe fn read_save_options(
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
unsafe fn read_statistics(
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

// -- a user's own repository -----------------------------------------------------------------

/// A value a user's repository method resolved to, read on the JavaScript thread: the judged
/// value, or what is wrong with it.
pub struct Reply<T>(txcoord::Result<T>);

/// Reads what one repository method resolves to.
trait FromJs: Sized + Send + 'static {
    /// # Safety
    /// As [`read_record`].
    unsafe fn from_js(
        env: sys::napi_env,
        value: sys::napi_value,
    ) -> napi::Result<txcoord::Result<Self>>;
}

impl<T: FromJs> FromNapiValue for Reply<T> {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> Result<Self> {
        Ok(Reply(match T::from_js(env, value) {
            Ok(r) => r,
            Err(e) => Err(Error::Internal(format!("reading the result failed: {e}"))),
        }))
    }
}

/// `findById`: a record, or `null`/`undefined` when there is none.
impl FromJs for Option<SagaRecord> {
    unsafe fn from_js(
        env: sys::napi_env,
        v: sys::napi_value,
    ) -> napi::Result<txcoord::Result<Self>> {
        Ok(match raw::read(env, v)? {
            Host::Absent | Host::Null => Ok(None),
            _ => read_record(env, v)?.map(Some),
        })
    }
}

/// `findActiveSagas`, `findStuckSagas`: an array of records.
impl FromJs for Vec<SagaRecord> {
    unsafe fn from_js(
        env: sys::napi_env,
        v: sys::napi_value,
    ) -> napi::Result<txcoord::Result<Self>> {
        let Some(items) = object::elements(env, v)? else {
            return Ok(Err(invalid_type(
                "sagas",
                format!("must be an array of saga records, got {}", type_of(env, v)?),
            )));
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            match read_record(env, item)? {
                Ok(r) => out.push(r),
                Err(e) => return Ok(Err(within(e, &format!("element {i} of the array")))),
            }
        }
        Ok(Ok(out))
    }
}

impl FromJs for SagaStatistics {
    unsafe fn from_js(
        env: sys::napi_env,
        v: sys::napi_value,
    ) -> napi::Result<txcoord::Result<Self>> {
        read_statistics(env, v)
    }
}

/// `save`: `true`/`false` from a repository that honoured the condition, anything else from
/// one that saved as the seed's `save(saga)` does.
pub struct Saved(Option<bool>);

impl FromJs for Saved {
    unsafe fn from_js(
        env: sys::napi_env,
        v: sys::napi_value,
    ) -> napi::Result<txcoord::Result<Self>> {
        Ok(Ok(Saved(match raw::read(env, v)? {
            Host::Bool(b) => Some(b),
            _ => None,
        })))
    }
}

/// A record handed to the user's `save`.
pub struct RecordArg(SagaRecord);

impl ToNapiValue for RecordArg {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> Result<sys::napi_value> {
        Ok(record_to_js(env, &val.0))
    }
}

/// The condition handed to the user's `save` (`undefined` for a plain save).
pub struct OptionsArg(Option<SaveOptions>);

impl ToNapiValue for OptionsArg {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> Result<sys::napi_value> {
        let Some(o) = val.0 else {
            return <()>::to_napi_value(env, ());
        };
        let out = Obj::new(env);
        let count = |n: Option<u64>| match n {
            Some(n) => object::number(env, n as f64),
            None => object::null(env),
        };
        out.set(c"expectedVersion", count(o.expected_version))
            .set(c"term", count(o.term))
            .set(c"guardFinished", object::boolean(env, o.guard_finished));
        Ok(out.value())
    }
}

/// The promise of one repository method, called from tokio. Weak: it never keeps Node alive.
type Method<T, R> = ThreadsafeFunction<T, Promise<Reply<R>>, T, Status, false, true>;

/// An error in what a repository method returned, with where it was.
fn within(e: Error, place: &str) -> Error {
    match e {
        Error::InvalidArgument { arg, message } => Error::InvalidArgument {
            arg,
            message: format!("{message} (in {place})"),
        },
        Error::InvalidType { arg, message } => Error::InvalidType {
            arg,
            message: format!("{message} (in {place})"),
        },
        other => other,
    }
}

/// Calls one method of the user's repository and waits for its promise.
async fn call<T: JsValuesTupleIntoVec + 'static, R: FromJs>(
    method: &Method<T, R>,
    name: &str,
    arg: T,
) -> txcoord::Result<R> {
    let failed = |e: napi::Error| {
        Error::Internal(format!(
            "the saga repository's {name}() failed: {}",
            e.reason
        ))
    };
    let promise = method.call_async(arg).await.map_err(failed)?;
    let reply = promise.await.map_err(failed)?;
    reply
        .0
        .map_err(|e| within(e, &format!("what the saga repository's {name}() returned")))
}

/// A user's repository object, as the core calls it.
struct ForeignRepository {
    find_by_id: Method<String, Option<SagaRecord>>,
    save: Method<FnArgs<(RecordArg, OptionsArg)>, Saved>,
    find_active_sagas: Method<(), Vec<SagaRecord>>,
    find_stuck_sagas: Method<(), Vec<SagaRecord>>,
    get_statistics: Method<(), SagaStatistics>,
}

impl SagaRepository for ForeignRepository {
    fn find_by_id<'a>(&'a self, id: &'a str) -> BoxFuture<'a, txcoord::Result<Option<SagaRecord>>> {
        Box::pin(call(&self.find_by_id, "findById", id.to_string()))
    }

    fn save<'a>(&'a self, saga: &'a SagaRecord) -> BoxFuture<'a, txcoord::Result<()>> {
        Box::pin(async move {
            let args = FnArgs::from((RecordArg(saga.clone()), OptionsArg(None)));
            call(&self.save, "save", args).await.map(|_| ())
        })
    }

    fn save_if<'a>(
        &'a self,
        saga: &'a SagaRecord,
        options: &'a SaveOptions,
    ) -> BoxFuture<'a, txcoord::Result<Option<SaveOutcome>>> {
        Box::pin(async move {
            let args = FnArgs::from((RecordArg(saga.clone()), OptionsArg(Some(options.clone()))));
            let Saved(reply) = call(&self.save, "save", args).await?;
            // A user's conditional form says only whether it wrote: the versions are the ones
            // the condition named.
            let version = options.expected_version.unwrap_or(saga.version);
            Ok(reply.map(|written| {
                if written {
                    SaveOutcome::Written {
                        version: version + 1,
                    }
                } else {
                    SaveOutcome::Conflict {
                        version,
                        term: options.term.unwrap_or(saga.term),
                        status: None,
                    }
                }
            }))
        })
    }

    fn find_active_sagas(&self) -> BoxFuture<'_, txcoord::Result<Vec<SagaRecord>>> {
        Box::pin(call(&self.find_active_sagas, "findActiveSagas", ()))
    }

    fn find_stuck_sagas(&self) -> BoxFuture<'_, txcoord::Result<Vec<SagaRecord>>> {
        Box::pin(call(&self.find_stuck_sagas, "findStuckSagas", ()))
    }

    fn get_statistics(&self) -> BoxFuture<'_, txcoord::Result<SagaStatistics>> {
        Box::pin(call(&self.get_statistics, "getStatistics", ()))
    }
}

/// The built-in repository with the options of `new RedisSagaRepository(redis, options)`.
unsafe fn redis_repository(
    env: sys::napi_env,
    client: &txcoord::Client,
    options: sys::napi_value,
) -> napi::Result<txcoord::Result<RedisSagaRepository>> {
    let mut repo = RedisSagaRepository::new(client);
    let object = options;
    let options = match raw::Options::new(env, options, "options")? {
        Ok(o) => o,
        Err(e) => return Ok(Err(e)),
    };
    let millis = |arg: &'static str, host: &Host| {
        validate::millis(arg, host.raw(), 1, validate::MAX_MS)
            .map(|ms| ms.map(std::time::Duration::from_millis))
    };
    let limits = options.get(c"stuckAfter")?;
    match limits {
        Host::Absent => {}
        Host::Other("an object") => {
            let limits = object::property(env, object, c"stuckAfter")?;
            for (key, value) in object::entries(env, limits)? {
                let ms = raw::read(env, value)?;
                let limit = key.text("stuckAfter").and_then(|t| {
                    let t = check::saga_type("stuckAfter", t)?.to_string();
                    Ok((t, millis("stuckAfter", &ms)?))
                });
                match limit {
                    Ok((t, Some(d))) => repo = repo.set_stuck_after(t, d),
                    Ok((_, None)) => {
                        return Ok(Err(invalid_type(
                            "stuckAfter",
                            "must map saga types to numbers of ms, got undefined",
                        )))
                    }
                    Err(e) => return Ok(Err(e)),
                }
            }
        }
        other => {
            return Ok(Err(invalid_type(
                "stuckAfter",
                format!(
                    "must be an object mapping saga types to ms, got {}",
                    raw::type_name(&other)
                ),
            )))
        }
    }
    match millis("defaultStuckAfter", &options.get(c"defaultStuckAfter")?) {
        Ok(Some(d)) => repo = repo.set_default_stuck_after(d),
        Ok(None) => {}
        Err(e) => return Ok(Err(e)),
    }
    match options.get(c"finishedRetention")? {
        Host::Null => repo = repo.set_finished_retention(None),
        other => match millis("finishedRetention", &other) {
            Ok(Some(d)) => repo = repo.set_finished_retention(Some(d)),
            Ok(None) => {}
            Err(e) => return Ok(Err(e)),
        },
    }
    Ok(Ok(repo))
}

// -- the native class ------------------------------------------------------------------------

/// Where sagas are kept, as the detector calls it: the built-in Redis repository
/// (`SagaRepository.redis(client)`) or a user's own (`SagaRepository.foreign(...)`, made by the
/// JavaScript layer from the object's methods). The JavaScript class `RedisSagaRepository`
/// wraps the first.
#[napi(js_name = "SagaRepository")]
pub struct JsSagaRepository {
    pub(crate) inner: Arc<dyn SagaRepository>,
}

#[napi]
impl JsSagaRepository {
    /// The built-in repository on `client`'s Redis (PROTOCOL.md, section 8). Options:
    /// `stuckAfter` (saga type → ms: how long a saga of that type may go without an update
    /// before it counts as stuck; the seed's limits by default), `defaultStuckAfter` (ms, for
    /// the other types; default 300000), `finishedRetention` (ms a finished saga's record is
    /// kept, `null` for ever; default 7 days).
    #[napi(
        factory,
        catch_unwind,
        ts_args_type = "client: Client, options?: { stuckAfter?: Record<string, number>, defaultStuckAfter?: number, finishedRetention?: number | null }"
    )]
    pub fn redis(env: Env, client: &JsClient, options: Unknown) -> Result<Self> {
        // SAFETY: on the JavaScript thread, inside this #[napi] function, with a live handle.
        match unsafe { redis_repository(env.raw(), &client.inner, options.raw()) }? {
            Ok(repo) => Ok(JsSagaRepository {
                inner: Arc::new(repo),
            }),
            Err(e) => Err(crate::error::throw(env.raw(), &e)),
        }
    }

    /// A user's repository: one function per method of the seed's `SagaRepository`, each
    /// returning a promise. `save(saga, options)` receives `options` only for a conditional
    /// save, and resolves to `true`/`false` if it honoured the condition.
    #[napi(
        factory,
        catch_unwind,
        ts_args_type = "findById: (id: string) => Promise<unknown>, save: (saga: object, options: object | undefined) => Promise<unknown>, findActiveSagas: () => Promise<unknown>, findStuckSagas: () => Promise<unknown>, getStatistics: () => Promise<unknown>"
    )]
    pub fn foreign(
        find_by_id: Method<String, Option<SagaRecord>>,
        save: Method<FnArgs<(RecordArg, OptionsArg)>, Saved>,
        find_active_sagas: Method<(), Vec<SagaRecord>>,
        find_stuck_sagas: Method<(), Vec<SagaRecord>>,
        get_statistics: Method<(), SagaStatistics>,
    ) -> Self {
        JsSagaRepository {
            inner: Arc::new(ForeignRepository {
                find_by_id,
                save,
                find_active_sagas,
                find_stuck_sagas,
                get_statistics,
            }),
        }
    }

    /// The seed's `findById(id)`: the record, or `null`.
    #[napi(
        catch_unwind,
        ts_args_type = "id: string",
        ts_return_type = "Promise<object | null>"
    )]
    pub fn find_by_id<'env>(&self, env: &'env Env, id: Unknown) -> Result<Unknown<'env>> {
        let raw_env = env.raw();
        let repo = self.inner.clone();
        let p = bridge::promise(raw_env, true, || {
            // SAFETY: on the JavaScript thread with a live handle.
            let host = unsafe { raw::read(raw_env, id.raw()) }?;
            let id = check::saga_id("id", host.text("id")?)?.to_string();
            Ok(async move {
                let found = repo.find_by_id(&id).await;
                bridge::settle_with(found, |env, r| {
                    // SAFETY: on the JavaScript thread (a settle closure).
                    Ok(unsafe {
                        match r {
                            Some(r) => record_to_js(env, &r),
                            None => object::null(env),
                        }
                    })
                })
            })
        })?;
        Ok(unknown(raw_env, p))
    }

    /// The seed's `save(saga)`; with `options` (`expectedVersion`, `term`, `guardFinished`) a
    /// conditional save. Resolves to whether the record was written (always `true` without a
    /// condition, or from a repository that has no conditional form).
    #[napi(
        catch_unwind,
        ts_args_type = "saga: object, options?: object",
        ts_return_type = "Promise<boolean>"
    )]
    pub fn save<'env>(
        &self,
        env: &'env Env,
        saga: Unknown,
        options: Unknown,
    ) -> Result<Unknown<'env>> {
        let raw_env = env.raw();
        let repo = self.inner.clone();
        let p = bridge::promise(raw_env, true, || {
            // SAFETY: on the JavaScript thread with live handles.
            let record = unsafe { read_record(raw_env, saga.raw()) }??;
            let condition = match unsafe { raw::read(raw_env, options.raw()) }? {
                Host::Absent => None,
                _ => Some(unsafe { read_save_options(raw_env, options.raw()) }??),
            };
            Ok(async move {
                let written = match condition {
                    None => repo.save(&record).await.map(|()| true),
                    Some(c) => repo
                        .save_if(&record, &c)
                        .await
                        .map(|o| o.is_none_or(|o| o.written())),
                };
                bridge::settle(written)
            })
        })?;
        Ok(unknown(raw_env, p))
    }

    /// The seed's `findActiveSagas()`.
    #[napi(catch_unwind, ts_return_type = "Promise<object[]>")]
    pub fn find_active_sagas<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        let repo = self.inner.clone();
        records_promise(env, async move { repo.find_active_sagas().await })
    }

    /// The seed's `findStuckSagas()`.
    #[napi(catch_unwind, ts_return_type = "Promise<object[]>")]
    pub fn find_stuck_sagas<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        let repo = self.inner.clone();
        records_promise(env, async move { repo.find_stuck_sagas().await })
    }

    /// The seed's `getStatistics()`: `active`, `completed`, `failed`, `compensated`,
    /// `averageDuration` (ms).
    #[napi(catch_unwind, ts_return_type = "Promise<object>")]
    pub fn get_statistics<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        let repo = self.inner.clone();
        let p = bridge::promise(env.raw(), true, || {
            Ok::<_, Prep>(async move {
                let stats = repo.get_statistics().await;
                // SAFETY: on the JavaScript thread (a settle closure).
                bridge::settle_with(stats, |env, s| Ok(unsafe { statistics_to_js(env, &s) }))
            })
        })?;
        Ok(unknown(env.raw(), p))
    }
}

fn records_promise<'env>(
    env: &'env Env,
    fut: impl std::future::Future<Output = txcoord::Result<Vec<SagaRecord>>> + Send + 'static,
) -> Result<Unknown<'env>> {
    let p = bridge::promise(env.raw(), true, || {
        Ok::<_, Prep>(async move {
            let records = fut.await;
            // SAFETY: on the JavaScript thread (a settle closure).
            bridge::settle_with(records, |env, r| Ok(unsafe { records_to_js(env, &r) }))
        })
    })?;
    Ok(unknown(env.raw(), p))
}
