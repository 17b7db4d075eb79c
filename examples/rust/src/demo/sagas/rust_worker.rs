// SPDX-License-Identifier: MIT OR Apache-2.0
//! The Rust saga worker, in the demo's own process. It takes the same JSON commands as the
//! Python and Node workers (`examples/demo/saga_worker.py`, `saga_worker.js`) and reports the
//! same events; read one of the three to know them all:
//!
//! - `mix {sagas, concurrency}`: runs the sagas, `concurrency` at a time;
//! - `stall {saga, hang_at, poll_ms, give_up_ms}`: runs the steps before `hang_at`, then hangs
//!   and only watches its record; compensates once the monitor marks it `COMPENSATING`;
//! - `dl_hold {saga}` / `dl_wait {id}`: takes the first step's lock, later waits for the
//!   second's (the deadlock scene).
//!
//! Each saga is a record in the built-in repository (created `EXECUTING`, saved after each
//! step, `COMPLETED`, `COMPENSATED` or `FAILED` at the end), and its locks are taken with the
//! saga id as the owner id, so the lock registry knows which saga holds and which waits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::Semaphore;
use txcoord::{
    AcquireOptions, Client, DistributedLock, Error, LockManager, RedisSagaRepository, SagaRecord,
    SagaRepository, SagaStatus, SaveOptions,
};

use crate::demo::event::{now_ms, Event, Who};

/// A lock's TTL (renewed while held) and how long a step waits for it.
const TTL: Duration = Duration::from_secs(10);
const LOCK_TIMEOUT: Duration = Duration::from_secs(15);

type Res<T> = Result<T, String>;

/// A saga between two commands (the deadlock scene).
struct Open {
    record: SagaRecord,
    spec: Value,
    locks: Vec<DistributedLock>,
    started: f64,
}

struct Inner {
    tx: UnboundedSender<Event>,
    manager: LockManager,
    repo: RedisSagaRepository,
    // A std mutex: map updates only, never held across an await.
    open: Mutex<HashMap<String, Open>>,
}

/// The worker: each command runs as its own task.
#[derive(Clone)]
pub struct RustWorker {
    inner: Arc<Inner>,
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

impl RustWorker {
    pub fn new(client: &Client, tx: UnboundedSender<Event>) -> RustWorker {
        RustWorker {
            inner: Arc::new(Inner {
                tx,
                manager: LockManager::new(client),
                repo: RedisSagaRepository::new(client),
                open: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Runs one command in the background; `done` or `error` tells how it ended.
    pub fn send(&self, command: Value) {
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let name = text(&command, "cmd");
            let result = match name.as_str() {
                "mix" => inner.mix(&command).await,
                "stall" => inner.stall(&command).await,
                "dl_hold" => inner.dl_hold(&command["saga"]).await,
                "dl_wait" => inner.dl_wait(&text(&command, "id")).await,
                other => Err(format!("unknown command {other:?}")),
            };
            match result {
                Ok(()) => inner.emit("done", json!({ "cmd": name })),
                Err(e) => inner.emit("error", json!({ "cmd": name, "message": e })),
            }
        });
    }

    pub async fn close(&self) {
        let _ = self.inner.manager.close().await;
    }
}

impl Inner {
    fn emit(&self, ev: &str, v: Value) {
        let _ = self.tx.send(Event::new(Who::Rust, ev, v));
    }

    async fn save(&self, record: &mut SagaRecord) -> Res<()> {
        record.updated_at = SystemTime::now();
        self.repo
            .save(record)
            .await
            .map_err(|e| format!("save {}: {e}", record.id))
    }

    /// A new record, saved `EXECUTING`.
    async fn start(&self, spec: &Value) -> Res<SagaRecord> {
        let mut record = SagaRecord::new(text(spec, "id"), text(spec, "type"));
        record.priority = spec["priority"].as_i64().unwrap_or(0) as i32;
        self.save(&mut record).await?;
        self.emit(
            "started",
            json!({ "id": record.id, "type": record.saga_type }),
        );
        Ok(record)
    }

    /// The step's lock, with the saga id as owner id; `None` when it stayed busy.
    async fn lock(
        &self,
        record: &SagaRecord,
        resource: &str,
    ) -> Result<Option<DistributedLock>, Error> {
        let asked = now_ms();
        let options = AcquireOptions::new()
            .set_ttl(TTL)
            .set_timeout(LOCK_TIMEOUT)
            .set_owner_id(record.id.clone())
            .set_priority(record.priority);
        let lock = self.manager.acquire_lock_with(resource, options).await?;
        if let Some(lock) = &lock {
            self.emit(
                "locked",
                json!({ "id": record.id, "resource": resource, "token": lock.fencing_token(),
                        "waited_ms": now_ms() - asked }),
            );
        }
        Ok(lock)
    }

    async fn release(&self, id: &str, locks: &[DistributedLock]) -> Res<()> {
        let resources: Vec<String> = locks
            .iter()
            .map(|l| l.key().trim_start_matches("lock:").to_string())
            .collect();
        self.emit("released", json!({ "id": id, "resources": resources }));
        for lock in locks.iter().rev() {
            lock.release()
                .await
                .map_err(|e| format!("{id}: release: {e}"))?;
        }
        Ok(())
    }

    async fn finish(
        &self,
        mut record: SagaRecord,
        locks: &[DistributedLock],
        status: SagaStatus,
        error: Option<String>,
        started: f64,
    ) -> Res<()> {
        record.status = status;
        record.error = error.clone();
        self.save(&mut record).await?;
        self.release(&record.id, locks).await?;
        self.emit(
            "finished",
            json!({ "id": record.id, "type": record.saga_type, "status": status.as_str(),
                    "error": error, "ms": now_ms() - started }),
        );
        Ok(())
    }

    /// Undoes the steps done, in reverse, then ends `COMPENSATED`.
    async fn compensate(
        &self,
        mut record: SagaRecord,
        spec: &Value,
        done: usize,
        locks: &[DistributedLock],
        reason: &str,
        started: f64,
    ) -> Res<()> {
        record.status = SagaStatus::Compensating;
        record.error = Some(reason.to_string());
        self.save(&mut record).await?;
        self.emit(
            "compensating",
            json!({ "id": record.id, "reason": reason, "steps": done }),
        );
        for step in spec["steps"].as_array().into_iter().flatten().take(done) {
            let work = step["work_ms"].as_u64().unwrap_or(0) / 2;
            tokio::time::sleep(Duration::from_millis(work)).await;
        }
        self.finish(
            record,
            locks,
            SagaStatus::Compensated,
            Some(reason.to_string()),
            started,
        )
        .await
    }

    async fn run_saga(&self, spec: &Value) -> Res<()> {
        let started = now_ms();
        let mut record = self.start(spec).await?;
        let mut locks = Vec::new();
        let steps = spec["steps"].as_array().cloned().unwrap_or_default();
        for (i, step) in steps.iter().enumerate() {
            if let Some(resource) = step["resource"].as_str() {
                match self.lock(&record, resource).await {
                    Ok(Some(lock)) => locks.push(lock),
                    Ok(None) => {
                        let why = format!("{resource} stayed busy");
                        return self
                            .finish(record, &locks, SagaStatus::Failed, Some(why), started)
                            .await;
                    }
                    Err(e) => return Err(format!("{}: {resource}: {e}", record.id)),
                }
            }
            let work = step["work_ms"].as_u64().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(work)).await;
            if spec["decline_at"].as_u64() == Some(i as u64) {
                return self
                    .compensate(record, spec, i, &locks, super::plan::DECLINED, started)
                    .await;
            }
            self.save(&mut record).await?;
        }
        self.finish(record, &locks, SagaStatus::Completed, None, started)
            .await
    }

    async fn mix(self: &Arc<Self>, command: &Value) -> Res<()> {
        let sagas = command["sagas"].as_array().cloned().unwrap_or_default();
        let slots = Arc::new(Semaphore::new(
            command["concurrency"].as_u64().unwrap_or(1).max(1) as usize,
        ));
        let mut tasks = tokio::task::JoinSet::new();
        for spec in sagas {
            let permit = slots
                .clone()
                .acquire_owned()
                .await
                .map_err(|e| e.to_string())?;
            let me = self.clone();
            tasks.spawn(async move {
                let result = me.run_saga(&spec).await;
                drop(permit);
                result
            });
        }
        while let Some(result) = tasks.join_next().await {
            result.map_err(|e| e.to_string())??;
        }
        Ok(())
    }

    async fn stall(&self, command: &Value) -> Res<()> {
        let spec = &command["saga"];
        let started = now_ms();
        let mut record = self.start(spec).await?;
        let hang_at = command["hang_at"].as_u64().unwrap_or(0) as usize;
        let steps = spec["steps"].as_array().cloned().unwrap_or_default();
        let mut locks = Vec::new();
        for step in steps.iter().take(hang_at) {
            if let Some(resource) = step["resource"].as_str() {
                let lock = self
                    .lock(&record, resource)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("{resource} stayed busy"))?;
                locks.push(lock);
            }
            let work = step["work_ms"].as_u64().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(work)).await;
            self.save(&mut record).await?;
        }
        self.emit(
            "stalled",
            json!({ "id": record.id, "step": steps.get(hang_at).map(|s| text(s, "name")) }),
        );
        // The step hangs: nothing is saved from here on. Watch what the monitor does.
        let poll = Duration::from_millis(command["poll_ms"].as_u64().unwrap_or(200));
        let give_up = started + command["give_up_ms"].as_f64().unwrap_or(90_000.0);
        let mut seen = None;
        let current = loop {
            let current = self
                .repo
                .find_by_id(&record.id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("{}: the record is gone", record.id))?;
            if seen != Some((current.status, current.retry_count)) {
                seen = Some((current.status, current.retry_count));
                self.emit(
                    "record",
                    json!({ "id": current.id, "status": current.status.as_str(),
                            "retry_count": current.retry_count,
                            "stuck_reason": current.stuck_reason,
                            "stuck_detail": current.stuck_detail, "version": current.version }),
                );
            }
            if current.status == SagaStatus::Compensating {
                break current;
            }
            if current.status.is_finished() {
                return Err(format!("{} ended {} under it", current.id, current.status));
            }
            if now_ms() > give_up {
                return Err(format!(
                    "{}: never marked COMPENSATING (still {}, {} retries)",
                    current.id, current.status, current.retry_count
                ));
            }
            tokio::time::sleep(poll).await;
        };
        self.emit(
            "compensating",
            json!({ "id": current.id, "reason": current.stuck_reason, "steps": hang_at,
                    "retries": current.retry_count }),
        );
        self.release(&current.id, &locks).await?;
        // Conditional: the monitor's record, one version on (it may write meanwhile).
        let mut current = current;
        for _ in 0..5 {
            let mut done = current.clone();
            done.status = SagaStatus::Compensated;
            done.error = Some(format!(
                "stalled at {}; compensated after {} retries",
                steps
                    .get(hang_at)
                    .map(|s| text(s, "name"))
                    .unwrap_or_default(),
                current.retry_count
            ));
            done.updated_at = SystemTime::now();
            let options = SaveOptions {
                expected_version: Some(current.version),
                ..SaveOptions::default()
            };
            let written = self.repo.save_if(&done, &options).await;
            if matches!(written, Ok(Some(ref o)) if o.written()) {
                self.emit(
                    "finished",
                    json!({ "id": done.id, "type": done.saga_type, "status": "COMPENSATED",
                            "error": done.error, "ms": now_ms() - started }),
                );
                return Ok(());
            }
            current = self
                .repo
                .find_by_id(&current.id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("the record is gone")?;
        }
        Err(format!("{}: could not save COMPENSATED", current.id))
    }

    async fn dl_hold(&self, spec: &Value) -> Res<()> {
        let started = now_ms();
        let record = self.start(spec).await?;
        let first = spec["steps"][0]["resource"].as_str().unwrap_or_default();
        let lock = self
            .lock(&record, first)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{first} stayed busy"))?;
        let open = Open {
            record,
            spec: spec.clone(),
            locks: vec![lock],
            started,
        };
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(open.record.id.clone(), open);
        Ok(())
    }

    async fn dl_wait(&self, id: &str) -> Res<()> {
        let open = self
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
            .ok_or_else(|| format!("{id} holds nothing yet"))?;
        let Open {
            mut record,
            spec,
            mut locks,
            started,
        } = open;
        let second = spec["steps"][1]["resource"].as_str().unwrap_or_default();
        self.emit("waiting", json!({ "id": id, "resource": second }));
        match self.lock(&record, second).await {
            Ok(Some(lock)) => locks.push(lock),
            Ok(None) => {
                let why = Some(format!("{second} stayed busy"));
                return self
                    .finish(record, &locks, SagaStatus::Failed, why, started)
                    .await;
            }
            Err(Error::DeadlockVictim { cycle, .. }) => {
                let cycle = cycle.map(|c| *c);
                self.emit(
                    "victim",
                    json!({ "id": id, "code": "TXCOORD_DEADLOCK_VICTIM",
                            "cycle": cycle.as_ref().map(ToString::to_string),
                            "sagas": cycle.as_ref().map(|c| c.sagas.clone()),
                            "victim": cycle.as_ref().and_then(|c| c.victim.clone()) }),
                );
                let why = Some(format!(
                    "deadlock victim ({})",
                    cycle.map(|c| c.id).unwrap_or_default()
                ));
                return self
                    .finish(record, &locks, SagaStatus::Failed, why, started)
                    .await;
            }
            Err(e) => return Err(format!("{id}: {second}: {e}")),
        }
        tokio::time::sleep(Duration::from_millis(
            spec["steps"][1]["work_ms"].as_u64().unwrap_or(0),
        ))
        .await;
        self.save(&mut record).await?;
        self.finish(record, &locks, SagaStatus::Completed, None, started)
            .await
    }
}
