// SPDX-License-Identifier: MIT OR Apache-2.0
//! What the Python and Node bindings need beyond the user API, in one place, so that neither
//! binding decides anything of its own:
//!
//! - [`validate`]: the judge of the raw values a host language hands over (so `-1`, `NaN`,
//!   `1.5`, `2**40` or `True` never slip through a silent conversion in a binding);
//! - [`options`]: every option of the API declared once, with its name in each language, its
//!   kind and default, read from the raw values a binding received;
//! - [`target`]: a foreign client (redis-py, ioredis) turned into a URL and client options,
//!   or refused, the same way in both languages;
//! - [`saga`]: the fields of a saga record, from the raw values a binding received.
//!
//! (URL strings become clients through [`crate::Client::shared`].) Nothing here is needed by a
//! Rust user of the crate.

pub mod options;
pub mod saga;
pub mod target;
pub mod validate;
