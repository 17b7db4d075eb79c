// SPDX-License-Identifier: MIT OR Apache-2.0
//! The seed's `SagaRepository`, as the detector and the monitor call it. The built-in
//! [`super::RedisSagaRepository`] implements it; so do the bindings' adapters around a user's
//! own repository object written in Python or JavaScript.

use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

use super::record::{FinishedSaga, SagaRecord, SagaStatistics, SaveOptions, SaveOutcome};
use crate::client::Client;
use crate::error::Result;

/// A boxed future, as the repository's methods return (the trait is used as `dyn`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where sagas are kept.
pub trait SagaRepository: Send + Sync {
    /// The seed's `findById(id)`.
    fn find_by_id<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<SagaRecord>>>;

    /// The seed's `save(saga)`: writes the record as given.
    fn save<'a>(&'a self, saga: &'a SagaRecord) -> BoxFuture<'a, Result<()>>;

    /// A conditional save (version, leader term, finished guard). `None` when the repository
    /// has no conditional form and wrote the record as given (the seed's `save`): the
    /// guarantees of the condition then do not hold (documented).
    fn save_if<'a>(
        &'a self,
        saga: &'a SagaRecord,
        options: &'a SaveOptions,
    ) -> BoxFuture<'a, Result<Option<SaveOutcome>>>;

    /// The seed's `findActiveSagas()`.
    fn find_active_sagas(&self) -> BoxFuture<'_, Result<Vec<SagaRecord>>>;

    /// The active sagas created at or before `before` (the monitor's long-running candidates).
    /// By default the active sagas filtered by `created_at`; a repository with an index by
    /// creation time reads only those.
    fn find_active_created_before(
        &self,
        before: SystemTime,
    ) -> BoxFuture<'_, Result<Vec<SagaRecord>>> {
        Box::pin(async move {
            let mut sagas = self.find_active_sagas().await?;
            sagas.retain(|s| s.created_at <= before);
            Ok(sagas)
        })
    }

    /// The seed's `findStuckSagas()`.
    fn find_stuck_sagas(&self) -> BoxFuture<'_, Result<Vec<SagaRecord>>>;

    /// The seed's `getStatistics()`.
    fn get_statistics(&self) -> BoxFuture<'_, Result<SagaStatistics>>;

    /// The sagas that finished after `cursor` (from the oldest kept when `None`), each once,
    /// at most `count`: the monitor observes each one's duration. `None` when the repository
    /// cannot list them (the monitor then records the seed's average).
    fn finished_since<'a>(
        &'a self,
        _cursor: Option<&'a str>,
        _count: usize,
    ) -> BoxFuture<'a, Result<Option<Vec<FinishedSaga>>>> {
        Box::pin(async { Ok(None) })
    }

    /// The client of the Redis this repository keeps its sagas in, if it is a Redis-backed
    /// one: the detector reads the lock registry there unless told otherwise.
    fn redis_client(&self) -> Option<Client> {
        None
    }
}
