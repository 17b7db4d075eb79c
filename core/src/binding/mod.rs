// SPDX-License-Identifier: MIT OR Apache-2.0
//! What the Python and Node bindings need beyond the user API, in one place: the validator
//! that judges the raw values a host language hands over (so `-1`, `NaN`, `1.5`, `2**40` or
//! `True` never slip through a silent conversion in a binding). Nothing here is needed by a
//! Rust user of the crate.

pub mod validate;
