// SPDX-License-Identifier: MIT OR Apache-2.0
//! `LeaderElection`: one candidate of an election (PROTOCOL.md, section 9). The JavaScript layer
//! adds the `'elected'`/`'revoked'` events and `signal`, woken by `nextChange`.

use std::time::Duration;

use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;
use txcoord::binding::validate;
use txcoord::{ElectionOptions, LeaderElection};

use crate::bridge::{self, Prep};
use crate::client::{unknown, JsClient};
use crate::error;
use crate::manager::{cancelled, CancelToken};
use crate::object::{self, Obj};
use crate::raw::{self, Host, Options};

/// A candidate in the leader election `name` (key `txcoord:election:<name>` after the client's
/// prefix): at most one candidate leads at a time, and every leadership has a term (its fencing
/// token) larger than every earlier one.
#[napi(js_name = "LeaderElection")]
pub struct JsLeaderElection {
    inner: LeaderElection,
}

fn build(
    env: sys::napi_env,
    client: &JsClient,
    name: &Unknown,
    options: &Unknown,
) -> std::result::Result<LeaderElection, Prep> {
    // SAFETY: on the JavaScript thread, inside the constructor, with live handles.
    let name = unsafe { raw::read(env, name.raw()) }?;
    let name = validate::resource("name", name.text("name")?)?;
    let options = unsafe { Options::new(env, options.raw(), "options") }??;
    let mut opts = ElectionOptions::new();
    let ttl = unsafe { options.get(c"ttl") }?;
    if let Some(ttl) = validate::ttl("ttl", ttl.raw())? {
        opts = opts.set_ttl(ttl);
    }
    let candidate = unsafe { options.get(c"candidateId") }?;
    if let Some(id) = validate::owner_id("candidateId", candidate.text("candidateId")?)? {
        opts = opts.set_candidate_id(id);
    }
    Ok(LeaderElection::new(&client.inner, name, opts)?)
}

#[napi]
impl JsLeaderElection {
    /// A candidate on `client` in the election `name`. Options: `ttl` (the lease of a
    /// leadership in ms, renewed every third of it; default 10000) and `candidateId` (this
    /// candidate's id as observers see it; default the client's name and a random suffix).
    #[napi(
        constructor,
        catch_unwind,
        ts_args_type = "client: Client, name: string, options?: { ttl?: number, candidateId?: string }"
    )]
    pub fn new(env: Env, client: &JsClient, name: Unknown, options: Unknown) -> Result<Self> {
        match build(env.raw(), client, &name, &options) {
            Ok(inner) => Ok(JsLeaderElection { inner }),
            Err(Prep::Core(e)) => Err(error::throw(env.raw(), &e)),
            Err(Prep::Napi(e)) => Err(e),
        }
    }

    /// Waits up to `options.timeout` ms (default: without limit) until this candidate leads;
    /// `true` once it does (at once if it already does), `false` on timeout or when `cancel`
    /// was cancelled.
    #[napi(
        catch_unwind,
        ts_args_type = "options?: { timeout?: number }, cancel?: CancelToken | undefined | null",
        ts_return_type = "Promise<boolean>"
    )]
    pub fn campaign<'env>(
        &self,
        env: &'env Env,
        options: Unknown,
        cancel: Option<&CancelToken>,
    ) -> Result<Unknown<'env>> {
        let raw_env = env.raw();
        let election = self.inner.clone();
        let rx = cancel.map(CancelToken::subscribe);
        let p = bridge::promise(raw_env, true, || {
            // SAFETY: on the JavaScript thread with a live handle.
            let options = unsafe { Options::new(raw_env, options.raw(), "options") }??;
            let timeout = unsafe { options.get(c"timeout") }?;
            let timeout = validate::timeout("timeout", timeout.raw())?
                .unwrap_or(Duration::from_millis(validate::MAX_MS));
            Ok(async move {
                let result = tokio::select! {
                    r = election.campaign(timeout) => r,
                    _ = cancelled(rx) => Ok(false),
                };
                bridge::settle(result)
            })
        })?;
        Ok(unknown(raw_env, p))
    }

    /// Gives up the leadership, if this candidate leads: the waiting candidates are woken.
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn resign<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        let election = self.inner.clone();
        let p = bridge::promise(env.raw(), true, || {
            Ok::<_, Prep>(async move { bridge::settle(election.resign().await) })
        })?;
        Ok(unknown(env.raw(), p))
    }

    /// Whether this candidate leads now (and its lease's local deadline has not passed).
    #[napi(getter, catch_unwind)]
    pub fn is_leader(&self) -> bool {
        self.inner.is_leader()
    }

    /// The term of this candidate's leadership while it leads, else `null`.
    #[napi(getter, catch_unwind)]
    pub fn term(&self) -> Option<f64> {
        self.inner.term().map(|t| t as f64)
    }

    /// This candidate's id.
    #[napi(getter, catch_unwind)]
    pub fn candidate_id(&self) -> String {
        self.inner.candidate_id().to_string()
    }

    /// Who leads now, as any observer reads it: `{ candidateId, term, remainingMs }`, or `null`.
    #[napi(
        catch_unwind,
        ts_return_type = "Promise<{ candidateId: string, term: number, remainingMs: number } | null>"
    )]
    pub fn leader<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        let election = self.inner.clone();
        let p = bridge::promise(env.raw(), true, || {
            Ok::<_, Prep>(async move {
                let leader = election.leader().await;
                bridge::settle_with(leader, |env, l| {
                    // SAFETY: on the JavaScript thread (a settle closure).
                    Ok(unsafe {
                        match l {
                            None => object::null(env),
                            Some(l) => {
                                let o = Obj::new(env);
                                o.set(c"candidateId", object::string(env, &l.candidate_id))
                                    .set(c"term", object::number(env, l.term as f64))
                                    .set(
                                        c"remainingMs",
                                        object::number(env, l.remaining_ms as f64),
                                    );
                                o.value()
                            }
                        }
                    })
                })
            })
        })?;
        Ok(unknown(env.raw(), p))
    }

    /// Resolves at once with the term this candidate leads in (or `null`) if that differs from
    /// `seen`, else at its next change, with the new state; with `undefined` once the election
    /// is gone. The promise does not keep Node alive.
    #[napi(
        catch_unwind,
        ts_args_type = "seen: number | null",
        ts_return_type = "Promise<number | null | undefined>"
    )]
    pub fn next_change<'env>(&self, env: &'env Env, seen: Unknown) -> Result<Unknown<'env>> {
        let raw_env = env.raw();
        // Only the receiver goes into the future: a pending change never keeps the election
        // (and its lock) alive.
        let mut rx = self.inner.watch();
        let p = bridge::promise(raw_env, false, || {
            // SAFETY: on the JavaScript thread with a live handle.
            let seen = match unsafe { raw::read(raw_env, seen.raw()) }? {
                Host::Num(t) => Some(t),
                _ => None,
            };
            Ok::<_, Prep>(async move {
                let as_js = |term: Option<u64>| term.map(|t| t as f64);
                let now = as_js(*rx.borrow_and_update());
                let next = if now != seen {
                    Some(now)
                } else {
                    match rx.changed().await {
                        Ok(()) => Some(as_js(*rx.borrow_and_update())),
                        Err(_) => None,
                    }
                };
                bridge::settle_with(Ok(next), |env, next| {
                    // SAFETY: on the JavaScript thread (a settle closure).
                    Ok(unsafe {
                        match next {
                            Some(Some(t)) => object::number(env, t),
                            Some(None) => object::null(env),
                            None => std::ptr::null_mut(),
                        }
                    })
                })
            })
        })?;
        Ok(unknown(raw_env, p))
    }
}
