// SPDX-License-Identifier: MIT OR Apache-2.0
//! Locks: `DistributedLock` (one key) and `LockManager` (locks by resource name), speaking the
//! lock scripts of PROTOCOL.md.
//!
//! - `handle.rs`: the lock handle, its status, extend, release;
//! - `acquire.rs`: one acquisition, its attempts and waits, and what it undoes when it ends
//!   without the lock;
//! - `renewal.rs`: keeping a held lock, and the loss signal;
//! - `manager.rs`: the seed's `LockManager`;
//! - `keys.rs`: the key scheme and the hash-tag rule;
//! - `scripts.rs`: the lock scripts behind typed calls (their Lua in `lua/`).

mod acquire;
mod handle;
pub(crate) mod keys;
mod manager;
mod renewal;
mod scripts;

use std::time::Duration;

pub(crate) use handle::is_host_exiting;
pub use handle::{host_exiting, DistributedLock, LockOptions, LockStatus, LossWatch};
pub use keys::{hash_tag, slot, LockKeys};
pub use manager::{AcquireOptions, LockManager, ManagerOptions};

/// The seed's default lock TTL: 30 000 ms.
pub const DEFAULT_TTL: Duration = Duration::from_millis(30_000);
/// The seed's default acquire timeout: 10 000 ms.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(10_000);
/// Longest a waiter sleeps between two checks of a lock whose txcoord holder will announce its
/// release (a safety net for lost notifications).
pub const DEFAULT_FALLBACK_POLL: Duration = Duration::from_millis(1_000);
/// How long a waiter's registry entry lives without being refreshed; a crashed waiter's entry
/// disappears after this.
pub const DEFAULT_WAITER_LEASE: Duration = Duration::from_millis(5_000);
/// How long an acquisition with an owner id waits before it probes for deadlocks through its
/// saga (PostgreSQL's `deadlock_timeout`).
pub const DEFAULT_DEADLOCK_TIMEOUT: Duration = Duration::from_millis(1_000);
