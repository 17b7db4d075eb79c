// SPDX-License-Identifier: MIT OR Apache-2.0
//! A user's own repository object, as the core calls it: one threadsafe function per method
//! (weak, so it never keeps Node alive), called from tokio without blocking it; each returns
//! the promise of the user's method, whose result is read on the JavaScript thread and judged
//! before it reaches the core.

use napi::bindgen_prelude::*;
use napi::sys;
use napi::threadsafe_function::ThreadsafeFunction;
use txcoord::{
    BoxFuture, Error, SagaRecord, SagaRepository, SagaStatistics, SaveOptions, SaveOutcome,
};

use super::record::{invalid_type, read_record, read_statistics, record_to_js, type_of};
use crate::object::{self, Obj};
use crate::raw::{self, Host};

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

/// A record handed to the user's `save` (or to a monitor's recovery handler).
pub struct RecordArg(SagaRecord);

impl From<SagaRecord> for RecordArg {
    fn from(r: SagaRecord) -> Self {
        RecordArg(r)
    }
}

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
pub(super) type Method<T, R> = ThreadsafeFunction<T, Promise<Reply<R>>, T, Status, false, true>;

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
pub(super) struct ForeignRepository {
    pub(super) find_by_id: Method<String, Option<SagaRecord>>,
    pub(super) save: Method<FnArgs<(RecordArg, OptionsArg)>, Saved>,
    pub(super) find_active_sagas: Method<(), Vec<SagaRecord>>,
    pub(super) find_stuck_sagas: Method<(), Vec<SagaRecord>>,
    pub(super) get_statistics: Method<(), SagaStatistics>,
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
