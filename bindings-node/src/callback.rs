// SPDX-License-Identifier: MIT OR Apache-2.0
//! Calls into a user's JavaScript objects (a logger, metrics, an alert sink, recovery
//! handlers) from tokio: fire-and-forget calls counted until delivered, so the promise of the
//! operation that made them settles after them; and the result of a call that is only waited
//! for.

use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi::sys;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use tokio::sync::watch;

/// How long a settling promise waits for its calls to be delivered (they are, as soon as the
/// JavaScript thread is free; this only bounds a torn-down environment).
const DELIVERY_LIMIT: Duration = Duration::from_secs(10);

/// Calls to JavaScript made and not delivered yet.
#[derive(Clone)]
pub(crate) struct Pending(Arc<watch::Sender<usize>>);

impl Pending {
    pub(crate) fn new() -> Self {
        Pending(Arc::new(watch::channel(0).0))
    }

    /// Calls `f` through `tsfn` (without waiting), counted until it was delivered.
    pub(crate) fn call<T: 'static + JsValuesTupleIntoVec>(
        &self,
        tsfn: &ThreadsafeFunction<T, Unknown<'static>, T, Status, false, true>,
        value: T,
    ) {
        self.0.send_modify(|n| *n += 1);
        let done = self.clone();
        let status = tsfn.call_with_return_value(
            value,
            ThreadsafeFunctionCallMode::NonBlocking,
            move |_, _| {
                done.0.send_modify(|n| *n = n.saturating_sub(1));
                Ok(())
            },
        );
        if status != Status::Ok {
            self.0.send_modify(|n| *n = n.saturating_sub(1));
        }
    }

    /// Resolves once every call made so far was delivered (or after [`DELIVERY_LIMIT`]).
    pub(crate) async fn delivered(&self) {
        let mut rx = self.0.subscribe();
        let _ = tokio::time::timeout(DELIVERY_LIMIT, rx.wait_for(|n| *n == 0)).await;
    }
}

/// What a user's function resolved to, when only its settling matters (an alert sink's
/// `send`, a recovery handler).
pub struct Ignored;

impl FromNapiValue for Ignored {
    unsafe fn from_napi_value(_: sys::napi_env, _: sys::napi_value) -> Result<Self> {
        Ok(Ignored)
    }
}
