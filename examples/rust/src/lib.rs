// SPDX-License-Identifier: MIT OR Apache-2.0
//! What the examples' binaries share: the cross-language demo behind `make demo` and
//! `make demo-locks` (its thin binary is `src/bin/demo.rs`).

pub mod demo;
