// SPDX-License-Identifier: MIT OR Apache-2.0
//! `make demo` (`demo` or `demo sagas`: the saga story) and `make demo-locks` (`demo locks`:
//! the lock story). The stories live in `txcoord_examples::demo`.

use std::process::ExitCode;

use txcoord_examples::demo;

#[tokio::main]
async fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        None | Some("sagas") => demo::sagas::main().await,
        Some("locks") => demo::locks::main().await,
        Some(other) => {
            eprintln!("usage: demo [sagas|locks] (not {other:?})");
            ExitCode::from(2)
        }
    }
}
