// SPDX-License-Identifier: MIT OR Apache-2.0
//! The scoped acquisition of a standalone lock (Python's `async with DistributedLock(...)`):
//! waits up to a timeout and fails with the `Timeout` error kind, as the manager's scoped form
//! ([`crate::LockManager::lock`]) does.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::lock::DistributedLock;

/// Acquires `lock`, waiting up to `timeout`, or fails with the `Timeout` error kind (never
/// `false`).
pub async fn acquire(lock: &DistributedLock, timeout: Duration) -> Result<()> {
    let started = tokio::time::Instant::now();
    if lock.acquire_timeout(timeout).await? {
        Ok(())
    } else {
        Err(Error::Timeout {
            key: lock.key().to_string(),
            waited_ms: started.elapsed().as_millis() as u64,
        })
    }
}
