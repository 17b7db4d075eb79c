// SPDX-License-Identifier: MIT OR Apache-2.0
//! `make demo` (`demo` or `demo locks`: the lock story). The story lives in
//! `txcoord_examples::demo`.

use std::process::ExitCode;

use txcoord_examples::demo;

#[tokio::main]
async fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        None | Some("locks") => demo::locks::main().await,
        Some(other) => {
            eprintln!("usage: demo [locks] (not {other:?})");
            ExitCode::from(2)
        }
    }
}
