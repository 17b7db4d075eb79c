// SPDX-License-Identifier: MIT OR Apache-2.0
//! Sagas: `SagaRepository`, the native side of both the built-in Redis repository and a user's
//! own repository object written in JavaScript, with the seed's records as plain objects.
//!
//! - `record.rs`: records, conditions and statistics, between JavaScript and Rust;
//! - `repository.rs`: a user's repository object, as the core calls it.

mod record;
mod repository;

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;
use txcoord::binding::{saga as check, validate};
use txcoord::{RedisSagaRepository, SagaRecord, SagaRepository, SagaStatistics, SagaStatus};

pub(crate) use record::invalid_type;
use record::{read_record, read_save_options, record_to_js, records_to_js, statistics_to_js};
pub(crate) use repository::RecordArg;
use repository::{ForeignRepository, Method, OptionsArg, Saved};

use crate::bridge::{self, Prep};
use crate::client::{unknown, JsClient};
use crate::object;
use crate::raw::{self, Host};

/// The six saga statuses, in the core's order (the JavaScript layer builds `SagaStatus` from
/// them).
#[napi(js_name = "sagaStatuses", catch_unwind)]
pub fn saga_statuses() -> Vec<String> {
    SagaStatus::ALL
        .iter()
        .map(|s| s.as_str().to_string())
        .collect()
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
