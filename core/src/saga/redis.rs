// SPDX-License-Identifier: MIT OR Apache-2.0
//! `RedisSagaRepository`: the saga records, their indexes and running totals in Redis
//! (PROTOCOL.md, section 8). No query scans all sagas: active ones are read from their index,
//! long-running candidates from the index by creation time, stuck ones from the per-type index
//! by last update, statistics from the running totals.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use redis::{Script, Value};

use super::record::{
    from_ms, to_ms, FinishedSaga, SagaRecord, SagaStatistics, SagaStatus, SaveOptions, SaveOutcome,
};
use super::repository::{BoxFuture, SagaRepository};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::protocol::{array, bad_reply, int, text};

static SAVE: LazyLock<Script> = LazyLock::new(|| Script::new(&crate::protocol::SAGA_SAVE_LUA));

/// Records read per pipeline: the raw replies (some 2.5 KB a record before parsing) of one
/// pipeline are held at a time, not those of every active saga.
const RECORDS_PER_ROUND_TRIP: usize = 1_000;

/// How long a finished saga's record is kept by default: 7 days.
pub const DEFAULT_FINISHED_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// The seed's per-type limits (also how long a saga may go without an update before it counts
/// as stuck): CreateOrderSaga 5 min, ProcessRefundSaga 10 min, UserRegistrationSaga 2 min.
pub(crate) fn seed_limits() -> HashMap<String, Duration> {
    [
        ("CreateOrderSaga", 5 * 60),
        ("ProcessRefundSaga", 10 * 60),
        ("UserRegistrationSaga", 2 * 60),
    ]
    .into_iter()
    .map(|(t, s)| (t.to_string(), Duration::from_secs(s)))
    .collect()
}

/// The keys of the saga state, all in one Cluster slot.
struct Keys {
    base: String,
}

impl Keys {
    fn new(prefix: &str) -> Keys {
        // A prefix with its own hash tag decides the slot; otherwise the tag is ours.
        let base = if crate::lock::hash_tag(prefix).is_some() {
            format!("{prefix}txcoord:sagas")
        } else {
            format!("{prefix}{{txcoord:sagas}}")
        };
        Keys { base }
    }
    fn record(&self, id: &str) -> String {
        format!("{}:saga:{id}", self.base)
    }
    fn active(&self) -> String {
        format!("{}:active", self.base)
    }
    fn active_of(&self, saga_type: &str) -> String {
        format!("{}:active:{saga_type}", self.base)
    }
    fn started(&self) -> String {
        format!("{}:started", self.base)
    }
    fn types(&self) -> String {
        format!("{}:types", self.base)
    }
    fn totals(&self) -> String {
        format!("{}:totals", self.base)
    }
    fn finished(&self) -> String {
        format!("{}:finished", self.base)
    }
}

/// Saga records in Redis.
///
/// ## Behavior
///
/// - `save` writes the record as given (the seed's call); `save_if` writes only when the
///   stored version matches, no newer leader term wrote it, and (with the guard) it has not
///   finished — checked inside the record's own write, so it holds on Redis Cluster too.
/// - Every save increments the record's `version`, and keeps the active indexes, the types,
///   the running totals and the stream of finished sagas.
/// - A finished saga's record is kept for a retention period (7 days by default).
/// - Cloning is cheap: clones share the client.
#[derive(Clone)]
pub struct RedisSagaRepository {
    client: Client,
    keys: std::sync::Arc<Keys>,
    stuck_after: HashMap<String, Duration>,
    default_stuck_after: Duration,
    retention: Option<Duration>,
}

impl std::fmt::Debug for RedisSagaRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSagaRepository")
            .field("client", &self.client)
            .field("stuck_after", &self.stuck_after)
            .finish()
    }
}

impl RedisSagaRepository {
    /// A repository on `client`'s Redis.
    pub fn new(client: &Client) -> RedisSagaRepository {
        RedisSagaRepository {
            client: client.clone(),
            keys: std::sync::Arc::new(Keys::new(client.key_prefix())),
            stuck_after: seed_limits(),
            default_stuck_after: Duration::from_secs(5 * 60),
            retention: Some(DEFAULT_FINISHED_RETENTION),
        }
    }

    /// How long a saga of `saga_type` may go without an update before it counts as stuck
    /// (defaults: the seed's per-type limits, 5 min for other types).
    pub fn set_stuck_after(mut self, saga_type: impl Into<String>, after: Duration) -> Self {
        self.stuck_after.insert(saga_type.into(), after);
        self
    }

    /// The limit for types without their own.
    pub fn set_default_stuck_after(mut self, after: Duration) -> Self {
        self.default_stuck_after = after;
        self
    }

    /// How long a finished saga's record is kept (`None`: forever).
    pub fn set_finished_retention(mut self, retention: Option<Duration>) -> Self {
        self.retention = retention;
        self
    }

    /// The limit for one saga type.
    pub fn stuck_after(&self, saga_type: &str) -> Duration {
        self.stuck_after
            .get(saga_type)
            .copied()
            .unwrap_or(self.default_stuck_after)
    }

    /// The client this repository uses.
    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn write(&self, saga: &SagaRecord, options: &SaveOptions) -> Result<SaveOutcome> {
        crate::binding::validate::owner_id_str("id", &saga.id)?;
        if saga.saga_type.is_empty() {
            return Err(Error::invalid_argument("type", "must not be empty"));
        }
        let k = &self.keys;
        let v: Value = self
            .client
            .run_script(
                &SAVE,
                &[
                    &k.record(&saga.id),
                    &k.active(),
                    &k.active_of(&saga.saga_type),
                    &k.types(),
                    &k.totals(),
                    &k.finished(),
                    &k.started(),
                ],
                &[
                    &saga.id,
                    &saga.saga_type,
                    saga.status.as_str(),
                    &saga.priority.to_string(),
                    &to_ms(saga.created_at).to_string(),
                    &to_ms(saga.updated_at).to_string(),
                    &saga.retry_count.to_string(),
                    saga.error.as_deref().unwrap_or(""),
                    saga.stuck_reason.as_deref().unwrap_or(""),
                    saga.stuck_detail.as_deref().unwrap_or(""),
                    &options
                        .expected_version
                        .map(|v| v.to_string())
                        .unwrap_or_default(),
                    &options.term.map(|t| t.to_string()).unwrap_or_default(),
                    if options.guard_finished { "1" } else { "0" },
                    &self
                        .retention
                        .map(|r| r.as_millis().to_string())
                        .unwrap_or_default(),
                ],
                self.client.op_budget(),
            )
            .await?;
        let items = array(&v)?;
        let at = |i: usize| items.get(i).ok_or_else(|| bad_reply("more fields", &v));
        match int(at(0)?)? {
            1 => Ok(SaveOutcome::Written {
                version: int(at(1)?)? as u64,
            }),
            0 => Ok(SaveOutcome::Conflict {
                version: int(at(1)?)? as u64,
                term: int(at(2)?)? as u64,
                status: text(at(3)?)?.parse().ok(),
            }),
            -2 => Err(Error::Protocol {
                key: k.record(&saga.id),
                version: int(at(1)?)?,
            }),
            -3 => Err(Error::invalid_argument(
                "type",
                format!(
                    "saga {:?} is of type {:?}; a saga's type cannot change",
                    saga.id,
                    text(at(1)?)?
                ),
            )),
            _ => Err(bad_reply("a status of 1, 0, -2 or -3", &v)),
        }
    }

    /// Reads records by id, a pipeline of [`RECORDS_PER_ROUND_TRIP`] at a time (so the raw
    /// replies of only one pipeline are held at once); absent ones are skipped.
    async fn records(&self, ids: &[String]) -> Result<Vec<SagaRecord>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(RECORDS_PER_ROUND_TRIP) {
            let mut pipe = redis::pipe();
            for id in chunk {
                pipe.cmd("HGETALL").arg(self.keys.record(id));
            }
            let replies: Vec<Value> = self
                .client
                .query_pipeline(&pipe, self.client.op_budget())
                .await?;
            for v in &replies {
                if let Some(r) = parse_record(v)? {
                    out.push(r);
                }
            }
        }
        Ok(out)
    }

    async fn ids_updated_before(&self, index: &str, before_ms: Option<u64>) -> Result<Vec<String>> {
        let mut cmd = redis::cmd("ZRANGE");
        cmd.arg(index).arg("-inf");
        match before_ms {
            Some(ms) => cmd.arg(format!("({ms}")),
            None => cmd.arg("+inf"),
        };
        cmd.arg("BYSCORE");
        self.client.query(cmd, self.client.op_budget()).await
    }

    /// The Redis time, in ms.
    async fn now_ms(&self) -> Result<u64> {
        let (secs, micros): (u64, u64) = self
            .client
            .query(redis::cmd("TIME"), self.client.op_budget())
            .await?;
        Ok(secs * 1000 + micros / 1000)
    }

    /// Finished sagas after the stream entry `after` (`None`: from the oldest kept), at most
    /// `count`. The monitor observes each finished saga's duration from here.
    pub async fn finished(&self, after: Option<&str>, count: usize) -> Result<Vec<FinishedSaga>> {
        let mut cmd = redis::cmd("XRANGE");
        cmd.arg(self.keys.finished())
            .arg(after.map(|a| format!("({a}")).unwrap_or_else(|| "-".into()))
            .arg("+")
            .arg("COUNT")
            .arg(count);
        let v: Value = self.client.query(cmd, self.client.op_budget()).await?;
        let mut out = Vec::new();
        for entry in array(&v)? {
            let parts = array(entry)?;
            let (Some(id), Some(fields)) = (parts.first(), parts.get(1)) else {
                continue;
            };
            let fields: HashMap<String, String> = pairs(fields)?.into_iter().collect();
            let status = fields.get("status").and_then(|s| s.parse().ok());
            if let (Some(saga), Some(t), Some(status), Some(d)) = (
                fields.get("id"),
                fields.get("type"),
                status,
                fields.get("durationMs").and_then(|d| d.parse::<u64>().ok()),
            ) {
                out.push(FinishedSaga {
                    cursor: text(id)?,
                    id: saga.clone(),
                    saga_type: t.clone(),
                    status,
                    duration: Duration::from_millis(d),
                });
            }
        }
        Ok(out)
    }
}

fn pairs(v: &Value) -> Result<Vec<(String, String)>> {
    match v {
        Value::Map(m) => m.iter().map(|(k, v)| Ok((text(k)?, text(v)?))).collect(),
        other => array(other)?
            .chunks(2)
            .map(|c| Ok((text(&c[0])?, text(c.get(1).unwrap_or(&Value::Nil))?)))
            .collect(),
    }
}

/// A record from `HGETALL`; `None` when it does not exist.
fn parse_record(v: &Value) -> Result<Option<SagaRecord>> {
    let f: HashMap<String, String> = pairs(v)?.into_iter().collect();
    if f.is_empty() {
        return Ok(None);
    }
    if f.get("pv").map(String::as_str) != Some("2") {
        return Err(Error::Protocol {
            key: format!("saga {:?}", f.get("id").cloned().unwrap_or_default()),
            version: f.get("pv").and_then(|p| p.parse().ok()).unwrap_or(0),
        });
    }
    let num = |k: &str| f.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let opt = |k: &str| f.get(k).filter(|v| !v.is_empty()).cloned();
    Ok(Some(SagaRecord {
        id: f.get("id").cloned().unwrap_or_default(),
        saga_type: f.get("type").cloned().unwrap_or_default(),
        status: f
            .get("status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(SagaStatus::Executing),
        priority: f.get("priority").and_then(|p| p.parse().ok()).unwrap_or(0),
        created_at: from_ms(num("createdAt")),
        updated_at: from_ms(num("updatedAt")),
        retry_count: num("retryCount") as u32,
        error: opt("error"),
        stuck_reason: opt("stuckReason"),
        stuck_detail: opt("stuckDetail"),
        version: num("version"),
        term: num("term"),
    }))
}

impl SagaRepository for RedisSagaRepository {
    fn find_by_id<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<SagaRecord>>> {
        Box::pin(async move {
            let mut cmd = redis::cmd("HGETALL");
            cmd.arg(self.keys.record(id));
            let v: Value = self.client.query(cmd, self.client.op_budget()).await?;
            parse_record(&v)
        })
    }

    fn save<'a>(&'a self, saga: &'a SagaRecord) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.write(saga, &SaveOptions::default()).await?;
            Ok(())
        })
    }

    fn save_if<'a>(
        &'a self,
        saga: &'a SagaRecord,
        options: &'a SaveOptions,
    ) -> BoxFuture<'a, Result<Option<SaveOutcome>>> {
        Box::pin(async move { self.write(saga, options).await.map(Some) })
    }

    fn find_active_sagas(&self) -> BoxFuture<'_, Result<Vec<SagaRecord>>> {
        Box::pin(async move {
            let ids = self.ids_updated_before(&self.keys.active(), None).await?;
            self.records(&ids).await
        })
    }

    fn find_active_created_before(
        &self,
        before: SystemTime,
    ) -> BoxFuture<'_, Result<Vec<SagaRecord>>> {
        Box::pin(async move {
            let before_ms = to_ms(before);
            let mut pipe = redis::pipe();
            pipe.cmd("ZCARD")
                .arg(self.keys.active())
                .cmd("ZCARD")
                .arg(self.keys.started())
                .cmd("ZRANGE")
                .arg(self.keys.started())
                .arg("-inf")
                .arg(before_ms)
                .arg("BYSCORE");
            let (active, started, ids): (u64, u64, Vec<String>) = self
                .client
                .query_pipeline(&pipe, self.client.op_budget())
                .await?;
            if active == started {
                return self.records(&ids).await;
            }
            // Sagas last saved before the index by creation time existed are in `active` only:
            // read every active saga until each has been saved again.
            let mut sagas = self.find_active_sagas().await?;
            sagas.retain(|s| s.created_at <= before);
            Ok(sagas)
        })
    }

    fn find_stuck_sagas(&self) -> BoxFuture<'_, Result<Vec<SagaRecord>>> {
        Box::pin(async move {
            let now = self.now_ms().await?;
            let mut cmd = redis::cmd("SMEMBERS");
            cmd.arg(self.keys.types());
            let mut types: Vec<String> = self.client.query(cmd, self.client.op_budget()).await?;
            types.sort();
            let mut ids = Vec::new();
            for t in types {
                let limit = self.stuck_after(&t).as_millis() as u64;
                let before = now.saturating_sub(limit);
                ids.extend(
                    self.ids_updated_before(&self.keys.active_of(&t), Some(before))
                        .await?,
                );
            }
            self.records(&ids).await
        })
    }

    fn get_statistics(&self) -> BoxFuture<'_, Result<SagaStatistics>> {
        Box::pin(async move {
            let mut pipe = redis::pipe();
            pipe.cmd("ZCARD")
                .arg(self.keys.active())
                .cmd("HGETALL")
                .arg(self.keys.totals());
            let (active, totals): (u64, Value) = self
                .client
                .query_pipeline(&pipe, self.client.op_budget())
                .await?;
            let t: HashMap<String, String> = pairs(&totals)?.into_iter().collect();
            let n = |k: &str| t.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            let count = n("durationCount");
            Ok(SagaStatistics {
                active,
                completed: n("completed"),
                failed: n("failed"),
                compensated: n("compensated"),
                average_duration_ms: if count == 0 {
                    0.0
                } else {
                    n("durationMsSum") as f64 / count as f64
                },
            })
        })
    }

    fn finished_since<'a>(
        &'a self,
        cursor: Option<&'a str>,
        count: usize,
    ) -> BoxFuture<'a, Result<Option<Vec<FinishedSaga>>>> {
        Box::pin(async move { self.finished(cursor, count).await.map(Some) })
    }

    fn redis_client(&self) -> Option<Client> {
        Some(self.client.clone())
    }
}
