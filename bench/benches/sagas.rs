// SPDX-License-Identifier: MIT OR Apache-2.0
//! The saga benchmark program: the deadlock detector, the saga monitor and the saga repository
//! at scale (see `txcoord_bench::sagas`).

fn main() {
    std::process::exit(txcoord_bench::sagas::main());
}
