// SPDX-License-Identifier: MIT OR Apache-2.0
//! The registry scripts of PROTOCOL.md (inspect, the waiting index, the owner record, the
//! deadlock-victim mark), each behind a typed call.

use std::sync::LazyLock;
use std::time::Duration;

use redis::{Script, Value};

use crate::client::Client;
use crate::error::{Error, Result};
use crate::lock::LockKeys;
use crate::protocol::{self, PUBLISH};

static INSPECT: LazyLock<Script> = LazyLock::new(|| Script::new(&protocol::INSPECT_LUA));
static INDEX: LazyLock<Script> = LazyLock::new(|| Script::new(&protocol::INDEX_LUA));
static OWNER_INDEX: LazyLock<Script> = LazyLock::new(|| Script::new(&protocol::OWNER_INDEX_LUA));
static ABORT_WAITER: LazyLock<Script> = LazyLock::new(|| Script::new(&protocol::ABORT_WAITER_LUA));

/// The inspect script for one lock, as a command to pipeline.
fn inspect_cmd(keys: &LockKeys) -> redis::Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(INSPECT.get_hash()).arg(4);
    for k in keys.all() {
        cmd.arg(k);
    }
    cmd
}

/// One lock's raw state: `{value, pttl, holds, queue, waiter entries, now_ms}`.
pub(super) async fn inspect(client: &Client, keys: &LockKeys) -> Result<Value> {
    client
        .run_script(&INSPECT, &keys.all(), &[], client.op_budget())
        .await
}

/// Several locks' raw states in one pipeline (one round trip), loading the script once if the
/// server lost it.
pub(super) async fn inspect_many(client: &Client, keys: &[LockKeys]) -> Result<Vec<Value>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let budget = client.op_budget();
    let mut pipe = redis::pipe();
    for k in keys {
        pipe.add_command(inspect_cmd(k));
    }
    match client.query_pipeline(&pipe, budget).await {
        Err(Error::Redis(e))
            if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
        {
            let mut load = redis::cmd("SCRIPT");
            load.arg("LOAD").arg(protocol::INSPECT_LUA.as_str());
            let _: String = client.query(load, budget).await?;
            client.query_pipeline(&pipe, budget).await
        }
        other => other,
    }
}

/// Notes in `index` (the waiting index, or an owner record's sibling) that `lock` has a waiter
/// for `lease_ms`.
pub(super) async fn index(
    client: &Client,
    index: &str,
    lock: &str,
    lease_ms: u64,
    budget: Duration,
) -> Result<()> {
    let _: i64 = client
        .run_script(&INDEX, &[index], &[lock, &lease_ms.to_string()], budget)
        .await?;
    Ok(())
}

/// Notes in an owner's record that it waits on `lock` for `lease_ms` (and its age).
pub(super) async fn owner_index(
    client: &Client,
    owner_key: &str,
    lock: &str,
    lease_ms: u64,
    budget: Duration,
) -> Result<()> {
    let _: i64 = client
        .run_script(
            &OWNER_INDEX,
            &[owner_key],
            &[
                lock,
                &lease_ms.to_string(),
                &protocol::OWNER_RECORD_KEEP_MS.to_string(),
            ],
            budget,
        )
        .await?;
    Ok(())
}

/// Marks a waiter as a deadlock victim (with why, for its error) and wakes it; whether it was
/// marked now.
pub(super) async fn abort_waiter(
    client: &Client,
    keys: &LockKeys,
    waiter: &str,
    why: &str,
) -> Result<bool> {
    let n: i64 = client
        .run_script(
            &ABORT_WAITER,
            &[&keys.queue, &keys.waiters],
            &[waiter, &keys.channel, PUBLISH, why],
            client.op_budget(),
        )
        .await?;
    Ok(n == 1)
}
