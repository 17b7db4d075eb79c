// SPDX-License-Identifier: MIT OR Apache-2.0
//! What the Python and Node bindings need beyond the user API, in one place, so that neither
//! binding decides anything of its own:
//!
//! - [`validate`]: the judge of the raw values a host language hands over (so `-1`, `NaN`,
//!   `1.5`, `2**40` or `True` never slip through a silent conversion in a binding);
//! - [`options`]: every option of the API declared once, with its name in each language, its
//!   kind and default, read from the raw values a binding received;
//! - [`target`]: what a `redis` argument becomes: a URL string the process's shared client
//!   ([`crate::Client::shared`]), a foreign client (redis-py, ioredis) a URL and client
//!   options, or refused, the same way in both languages;
//! - [`scope`]: the scoped acquisition of a standalone lock;
//! - [`monitor`]: the options of the saga monitor, the Alertmanager sink and the metrics
//!   collector (in [`options`]' tables), the monitor's limits and the sink's labels;
//! - [`serve`]: the options of the `/metrics` endpoint a binding starts, and the endpoint;
//! - [`saga`]: the fields of a saga record, from the raw values a binding received;
//! - [`host_exiting`]: the host's shutdown on this thread, after which dropped locks are left
//!   to their TTLs.
//!
//! Nothing here is needed by a Rust user of the crate.

pub mod monitor;
pub mod options;
pub mod saga;
pub mod scope;
pub mod serve;
pub mod target;
pub mod validate;

pub use crate::lock::host_exiting;
