// SPDX-License-Identifier: MIT OR Apache-2.0
//! Sagas as the detector and the monitor see them: [`SagaRecord`], [`SagaStatus`], the
//! [`SagaRepository`] interface of the seed, and [`RedisSagaRepository`], which keeps the
//! records in Redis with the indexes and running totals of PROTOCOL.md section 8.
//!
//! - `record.rs`: the record, its status, and what a conditional save is told;
//! - `repository.rs`: the interface (the seed's methods, plus a conditional save);
//! - `redis.rs`: the built-in repository (its Lua in `lua/`).

mod record;
mod redis;
mod repository;

pub(crate) use self::redis::seed_limits;
pub use self::redis::{RedisSagaRepository, DEFAULT_FINISHED_RETENTION};
pub use record::{FinishedSaga, SagaRecord, SagaStatistics, SagaStatus, SaveOptions, SaveOutcome};
pub use repository::{BoxFuture, SagaRepository};
