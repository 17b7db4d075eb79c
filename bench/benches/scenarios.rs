// SPDX-License-Identifier: MIT OR Apache-2.0
//! The txcoord benchmark program (see the `txcoord_bench` crate's documentation).

fn main() {
    std::process::exit(txcoord_bench::main());
}
