// SPDX-License-Identifier: MIT OR Apache-2.0
//! The client's one connection (a reconnecting multiplexed RESP3 `ConnectionManager`), and
//! running commands, pipelines and scripts on it within a time budget.

use std::sync::atomic::Ordering;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, PushInfo};

use super::Client;
use crate::error::{Error, Result};

impl Client {
    /// The connection, opened on first use (and named again after a reconnect).
    pub(super) async fn connection(&self) -> Result<ConnectionManager> {
        if self.is_closed() {
            return Err(Error::Closed { what: "client" });
        }
        let inner = &self.inner;
        let conn = inner
            .conn
            .get_or_try_init(|| async {
                let _ = inner.runtime.set(tokio::runtime::Handle::current());
                let shared = inner.shared.clone();
                let config = ConnectionManagerConfig::new()
                    .set_push_sender(move |info: PushInfo| -> std::result::Result<(), ()> {
                        shared.on_push(info);
                        Ok(())
                    })
                    .set_automatic_resubscription()
                    .set_connection_timeout(Some(inner.options.connect_timeout))
                    .set_response_timeout(Some(inner.options.response_timeout))
                    .set_number_of_retries(1)
                    .set_min_delay(Duration::from_millis(20))
                    .set_max_delay(Duration::from_millis(500))
                    .set_pipeline_buffer_size(1024);
                ConnectionManager::new_lazy_with_config(inner.redis.clone(), config)
                    .map_err(Error::from)
            })
            .await?
            .clone();
        if inner.shared.name_pending.swap(false, Ordering::SeqCst) {
            let mut c = conn.clone();
            let mut cmd = redis::cmd("CLIENT");
            cmd.arg("SETNAME").arg(&inner.name);
            if let Err(e) = cmd.query_async::<()>(&mut c).await {
                inner.shared.name_pending.store(true, Ordering::SeqCst);
                return Err(e.into());
            }
        }
        Ok(conn)
    }

    pub(crate) async fn query<T: FromRedisValue>(
        &self,
        cmd: redis::Cmd,
        budget: Duration,
    ) -> Result<T> {
        self.bounded(budget, async {
            let mut conn = self.connection().await?;
            cmd.query_async::<T>(&mut conn).await.map_err(Error::from)
        })
        .await
    }

    /// Runs a pipeline, failing with a connection error when no reply came within `budget`.
    pub(crate) async fn query_pipeline<T: FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
        budget: Duration,
    ) -> Result<T> {
        self.bounded(budget, async {
            let mut conn = self.connection().await?;
            pipe.query_async::<T>(&mut conn).await.map_err(Error::from)
        })
        .await
    }

    /// `SET key value NX PX ttl_ms` and `TIME` in one round trip (one write on the
    /// multiplexed connection): `Some(Redis time in µs)` read right after the key was set, or
    /// `None` when the key exists.
    pub(crate) async fn set_nx_with_time(
        &self,
        key: &str,
        value: &str,
        ttl_ms: u64,
        budget: Duration,
    ) -> Result<Option<u64>> {
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(key)
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms)
            .cmd("TIME");
        let (set, (secs, micros)): (Option<String>, (u64, u64)) =
            self.query_pipeline(&pipe, budget).await?;
        Ok(set.map(|_| secs * 1_000_000 + micros))
    }

    /// Runs one script (EVALSHA, falling back to EVAL when Redis lost its script cache).
    pub(crate) async fn run_script<T: FromRedisValue>(
        &self,
        script: &redis::Script,
        keys: &[&str],
        args: &[&str],
        budget: Duration,
    ) -> Result<T> {
        self.bounded(budget, async {
            let mut conn = self.connection().await?;
            let mut inv = script.prepare_invoke();
            for k in keys {
                inv.key(*k);
            }
            for a in args {
                inv.arg(*a);
            }
            inv.invoke_async::<T>(&mut conn).await.map_err(Error::from)
        })
        .await
    }

    pub(super) async fn bounded<T>(
        &self,
        budget: Duration,
        fut: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        if budget >= self.op_budget() {
            // The connection's own connect and response timeouts already bound this call.
            return fut.await;
        }
        match tokio::time::timeout(budget, fut).await {
            Ok(r) => r,
            Err(_) => Err(Error::connection(format!(
                "no reply from Redis within {} ms",
                budget.as_millis()
            ))),
        }
    }
}
