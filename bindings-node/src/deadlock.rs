// SPDX-License-Identifier: MIT OR Apache-2.0
//! `SagaDeadlockDetector`: the seed's detector on the core's, with the seed's `logger` (anything
//! with `warn` and `info`) and `metrics` (anything with `recordDeadlock`), and the explained
//! cycles as plain objects (also `err.cycle` of a deadlock victim's error).
//!
//! The logger and the metrics are called from tokio through weak threadsafe functions, never
//! waited for there; a `detectDeadlock()`/`resolveDeadlock()` promise settles only after the
//! calls its run made were delivered, so `await detector.detectDeadlock()` has logged, as the
//! seed's did.

use std::ptr;
use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi::sys;
use napi::threadsafe_function::ThreadsafeFunction;
use napi_derive::napi;
use txcoord::{
    DeadlockCycle, DeadlockMetrics, DeadlockResult, DetectorOptions, Logger, SagaDeadlockDetector,
    TracingLogger, WaitForGraph,
};

use crate::bridge::{self, Prep};
use crate::callback::Pending;
use crate::client::{unknown, JsClient};
use crate::error;
use crate::object::{self, Obj};
use crate::raw;
use crate::saga::{invalid_type, JsSagaRepository};
use txcoord::binding::saga as check;

// -- cycles as JavaScript objects ------------------------------------------------------------

/// `cycle.toString()`: its `message`.
unsafe extern "C" fn cycle_to_string(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    let mut this = ptr::null_mut();
    let mut argc = 0usize;
    sys::napi_get_cb_info(
        env,
        info,
        &mut argc,
        ptr::null_mut(),
        &mut this,
        ptr::null_mut(),
    );
    let mut out = ptr::null_mut();
    if !this.is_null() {
        sys::napi_get_named_property(env, this, c"message".as_ptr(), &mut out);
    }
    out
}

/// An explained cycle: `{ id, sagas, edges: [{ waiter, holder, lockKey, holderToken, waitedMs }],
/// victim, message }`, with a `toString()` (not enumerable) giving `message`.
///
/// # Safety
/// On the JavaScript thread of `env`, inside a handle scope.
pub(crate) unsafe fn cycle_to_js(env: sys::napi_env, c: &DeadlockCycle) -> sys::napi_value {
    let edges = object::array(
        env,
        c.edges.iter().map(|e| {
            let o = Obj::new(env);
            o.set(c"waiter", object::string(env, &e.waiter))
                .set(c"holder", object::string(env, &e.holder))
                .set(c"lockKey", object::string(env, &e.lock_key))
                .set(
                    c"holderToken",
                    match e.holder_token {
                        Some(t) => object::number(env, t as f64),
                        None => object::null(env),
                    },
                )
                .set(c"waitedMs", object::number(env, e.waited_ms as f64));
            o.value()
        }),
    );
    let o = Obj::new(env);
    o.set(c"id", object::string(env, &c.id))
        .set(c"sagas", object::strings(env, &c.sagas))
        .set(c"edges", edges)
        .set(c"victim", object::string_or_null(env, c.victim.as_deref()))
        .set(c"message", object::string(env, &c.to_string()));
    let to_string = sys::napi_property_descriptor {
        utf8name: c"toString".as_ptr(),
        name: ptr::null_mut(),
        method: Some(cycle_to_string),
        getter: None,
        setter: None,
        value: ptr::null_mut(),
        attributes: sys::PropertyAttributes::writable | sys::PropertyAttributes::configurable,
        data: ptr::null_mut(),
    };
    if !o.value().is_null() {
        sys::napi_define_properties(env, o.value(), 1, &to_string);
    }
    o.value()
}

unsafe fn result_to_js(env: sys::napi_env, r: &DeadlockResult) -> sys::napi_value {
    let o = Obj::new(env);
    o.set(c"hasDeadlock", object::boolean(env, r.has_deadlock))
        .set(
            c"cycles",
            object::array(env, r.cycles.iter().map(|c| object::strings(env, c))),
        )
        .set(c"affectedSagas", object::strings(env, &r.affected_sagas))
        .set(
            c"explained",
            object::array(env, r.explained.iter().map(|c| cycle_to_js(env, c))),
        );
    o.value()
}

unsafe fn graph_to_js(env: sys::napi_env, g: &WaitForGraph) -> sys::napi_value {
    let nodes = object::array(
        env,
        g.nodes.iter().map(|n| {
            let o = Obj::new(env);
            o.set(c"id", object::string(env, &n.id))
                .set(c"priority", object::number(env, f64::from(n.priority)))
                .set(c"sinceMs", object::number(env, n.since_ms as f64));
            o.value()
        }),
    );
    let edges = object::array(
        env,
        g.edges.iter().map(|e| {
            let o = Obj::new(env);
            o.set(c"waiter", object::string(env, &e.waiter))
                .set(c"holder", object::string(env, &e.holder))
                .set(c"lockKey", object::string(env, &e.lock_key))
                .set(c"waiterId", object::string(env, &e.waiter_id))
                .set(c"waitedMs", object::number(env, e.waited_ms as f64))
                .set(
                    c"holderToken",
                    match e.holder_token {
                        Some(t) => object::number(env, t as f64),
                        None => object::null(env),
                    },
                );
            o.value()
        }),
    );
    let o = Obj::new(env);
    o.set(c"nodes", nodes).set(c"edges", edges);
    o.value()
}

// -- the logger and the metrics --------------------------------------------------------------

/// `(level, message, fields as JSON)`: the JavaScript layer calls `logger[level](message,
/// JSON.parse(fields))`.
type LogFn = ThreadsafeFunction<
    FnArgs<(String, String, String)>,
    Unknown<'static>,
    FnArgs<(String, String, String)>,
    Status,
    false,
    true,
>;

/// `(resolutionMethod)`: the JavaScript layer calls `metrics.recordDeadlock(resolutionMethod)`.
type MetricsFn = ThreadsafeFunction<String, Unknown<'static>, String, Status, false, true>;

struct JsLogger {
    log: LogFn,
    pending: Pending,
}

impl JsLogger {
    fn send(&self, level: &str, message: &str, fields: &serde_json::Value) {
        let args = (level.to_string(), message.to_string(), fields.to_string());
        self.pending.call(&self.log, FnArgs::from(args));
    }
}

impl Logger for JsLogger {
    fn warn(&self, message: &str, fields: &serde_json::Value) {
        self.send("warn", message, fields);
    }
    fn info(&self, message: &str, fields: &serde_json::Value) {
        self.send("info", message, fields);
    }
}

struct JsMetrics {
    record: MetricsFn,
    pending: Pending,
}

impl DeadlockMetrics for JsMetrics {
    fn record_deadlock(&self, resolution_method: &str) {
        self.pending
            .call(&self.record, resolution_method.to_string());
    }
}

// -- the detector ----------------------------------------------------------------------------

/// The seed's `SagaDeadlockDetector(sagaRepository, logger)`, on the lock registry: finds every
/// deadlocked saga in three round trips whatever the graph's size, and breaks cycles by
/// aborting one victim per cycle (lowest priority, then youngest, then smallest id), marking its
/// saga `FAILED` without ever overwriting a finished one.
#[napi(js_name = "SagaDeadlockDetector")]
pub struct JsSagaDeadlockDetector {
    pub(crate) inner: SagaDeadlockDetector,
    /// The calls into the user's logger and metrics its runs make (a monitor's pass waits for
    /// them too).
    pub(crate) pending: Pending,
}

#[napi]
impl JsSagaDeadlockDetector {
    /// `repository`: the sagas; `log(level, message, fieldsJson)`: the logger (without one,
    /// txcoord's own log records: see `setLogger`); `redis`: the
    /// Redis of the lock registry (required when the repository is not the built-in one);
    /// `recordDeadlock(resolutionMethod)`: the metrics, if any.
    #[napi(
        constructor,
        catch_unwind,
        ts_args_type = "repository: SagaRepository, log: ((level: 'warn' | 'info', message: string, fields: string) => unknown) | undefined | null, redis?: Client | undefined | null, recordDeadlock?: ((resolutionMethod: string) => unknown) | undefined | null"
    )]
    pub fn new(
        env: Env,
        repository: &JsSagaRepository,
        log: Option<LogFn>,
        redis: Option<&JsClient>,
        record_deadlock: Option<MetricsFn>,
    ) -> Result<Self> {
        let pending = Pending::new();
        let mut options = DetectorOptions::new();
        if let Some(client) = redis {
            options = options.set_redis(&client.inner);
        }
        if let Some(record) = record_deadlock {
            options = options.set_metrics(Arc::new(JsMetrics {
                record,
                pending: pending.clone(),
            }));
        }
        let logger: Arc<dyn Logger> = match log {
            Some(log) => Arc::new(JsLogger {
                log,
                pending: pending.clone(),
            }),
            None => Arc::new(TracingLogger),
        };
        match SagaDeadlockDetector::new(repository.inner.clone(), logger, options) {
            Ok(inner) => Ok(JsSagaDeadlockDetector { inner, pending }),
            Err(e) => Err(error::throw(env.raw(), &e)),
        }
    }

    /// The seed's `detectDeadlock()`: `{ hasDeadlock, cycles, affectedSagas, explained }`.
    /// Logs `Deadlock detected` (warn) per cycle; changes nothing.
    #[napi(catch_unwind, ts_return_type = "Promise<object>")]
    pub fn detect_deadlock<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        let detector = self.inner.clone();
        let pending = self.pending.clone();
        let p = bridge::promise(env.raw(), true, || {
            Ok::<_, Prep>(async move {
                let result = detector.detect_deadlock().await;
                pending.delivered().await;
                // SAFETY: on the JavaScript thread (a settle closure).
                bridge::settle_with(result, |env, r| Ok(unsafe { result_to_js(env, &r) }))
            })
        })?;
        Ok(unknown(env.raw(), p))
    }

    /// The seed's `resolveDeadlock(cycles)`: breaks the deadlocks among the sagas of `cycles`
    /// (arrays of saga ids, explained cycles, or `detectDeadlock()`'s result) as they stand
    /// now; resolves to the cycles broken, each with its victim. Logs `Saga aborted to resolve
    /// deadlock` (info) per victim.
    #[napi(
        catch_unwind,
        ts_args_type = "cycles: Array<string[] | { sagas: string[] }> | { cycles: string[][] }",
        ts_return_type = "Promise<object[]>"
    )]
    pub fn resolve_deadlock<'env>(&self, env: &'env Env, cycles: Unknown) -> Result<Unknown<'env>> {
        let raw_env = env.raw();
        let detector = self.inner.clone();
        let pending = self.pending.clone();
        let p = bridge::promise(raw_env, true, || {
            // SAFETY: on the JavaScript thread with a live handle.
            let cycles = unsafe { read_cycles(raw_env, cycles.raw()) }??;
            Ok(async move {
                let broken = detector.resolve_deadlock(&cycles).await;
                pending.delivered().await;
                bridge::settle_with(broken, |env, b| {
                    // SAFETY: on the JavaScript thread (a settle closure).
                    Ok(unsafe { object::array(env, b.iter().map(|c| cycle_to_js(env, c))) })
                })
            })
        })?;
        Ok(unknown(raw_env, p))
    }

    /// The wait-for graph: `{ nodes: [{ id, priority, sinceMs }], edges: [{ waiter, holder,
    /// lockKey, waiterId, waitedMs, holderToken }] }`.
    #[napi(catch_unwind, ts_return_type = "Promise<object>")]
    pub fn wait_for_graph<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        let detector = self.inner.clone();
        let p = bridge::promise(env.raw(), true, || {
            Ok::<_, Prep>(async move {
                let graph = detector.wait_for_graph().await;
                // SAFETY: on the JavaScript thread (a settle closure).
                bridge::settle_with(graph, |env, g| Ok(unsafe { graph_to_js(env, &g) }))
            })
        })?;
        Ok(unknown(env.raw(), p))
    }
}

/// `cycles` as the seed passes them (an array of arrays of saga ids), or the explained cycles
/// (objects with `sagas`), or `detectDeadlock()`'s whole result (an object with `cycles`).
unsafe fn read_cycles(
    env: sys::napi_env,
    value: sys::napi_value,
) -> napi::Result<txcoord::Result<Vec<Vec<String>>>> {
    let bad = |got: &str| {
        invalid_type(
            "cycles",
            format!(
                "must be an array of cycles (arrays of saga ids, or explained cycles), or \
                 detectDeadlock()'s result, got {got}"
            ),
        )
    };
    let mut value = value;
    if object::is_object(env, value)? {
        value = object::property(env, value, c"cycles")?;
    }
    let Some(outer) = object::elements(env, value)? else {
        return Ok(Err(bad(raw::type_name(&raw::read(env, value)?))));
    };
    let mut cycles = Vec::with_capacity(outer.len());
    for mut item in outer {
        if object::is_object(env, item)? {
            item = object::property(env, item, c"sagas")?;
        }
        let Some(ids) = object::elements(env, item)? else {
            let what = raw::type_name(&raw::read(env, item)?);
            return Ok(Err(bad(&format!("an array holding {what}"))));
        };
        let mut cycle = Vec::with_capacity(ids.len());
        for id in ids {
            let host = raw::read(env, id)?;
            let checked = host
                .text("cycles")
                .and_then(|raw| check::saga_id("cycles", raw).map(str::to_string));
            match checked {
                Ok(id) => cycle.push(id),
                Err(e) => return Ok(Err(e)),
            }
        }
        cycles.push(cycle);
    }
    Ok(Ok(cycles))
}
