// SPDX-License-Identifier: MIT OR Apache-2.0
//! `txcoord`: the command for operators — the saga monitor as a sidecar, the locks held now
//! (like PostgreSQL's `pg_locks`), the wait-for graph, the active and stuck sagas.
//!
//! Errors are one line on stderr. Exit codes: 0 done, 1 the command failed (Redis unreachable,
//! ...), 2 bad usage, 3 `graph --fail-on-deadlock` found a deadlock.

mod graph;
mod locks;
mod monitor;
mod sagas;
mod table;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Saga transaction coordination over Redis: inspect locks, sagas and deadlocks, or run the
/// saga monitor as a sidecar.
#[derive(Parser)]
#[command(name = "txcoord", version, about, long_about = None)]
struct Cli {
    /// The Redis holding the locks and sagas (redis:// or rediss://; default: $REDIS_URL).
    #[arg(long, env = "REDIS_URL", global = true)]
    redis: Option<String>,
    /// A key prefix, as the services use (their client's key_prefix / ioredis keyPrefix).
    #[arg(long, default_value = "", global = true)]
    prefix: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The locks held now, with holders, waiters, TTLs and fencing tokens.
    Locks(locks::Args),
    /// The wait-for graph among sagas as DOT (cycles in red), or SVG with Graphviz.
    Graph(graph::Args),
    /// Active sagas, or the stuck ones with why they are stuck.
    Sagas(sagas::Args),
    /// Run the saga monitor: leader-elected among every monitor of the same name, serving
    /// /metrics and alerting to Alertmanager.
    Monitor(monitor::Args),
}

fn client(cli: &Cli, url: &str) -> txcoord::Result<txcoord::Client> {
    txcoord::Client::with_options(
        url,
        txcoord::ClientOptions::new()
            .set_key_prefix(cli.prefix.clone())
            .set_client_name("txcoord-cli"),
    )
}

/// Outcome of a command: `Ok(code)` or an error for one line on stderr.
type Outcome = Result<u8, String>;

impl Command {
    /// Whether the command talks to Redis (`graph --from FILE` does not).
    fn needs_redis(&self) -> bool {
        match self {
            Command::Graph(a) => a.needs_redis(),
            _ => true,
        }
    }
}

async fn run(cli: Cli) -> Outcome {
    let client = match &cli.redis {
        Some(url) => Some(client(&cli, url).map_err(|e| e.to_string())?),
        None => None,
    };
    let redis = || {
        client
            .as_ref()
            .ok_or_else(|| "--redis URL (or REDIS_URL) is required".to_string())
    };
    match cli.command {
        Command::Locks(a) => locks::run(redis()?, a).await,
        Command::Graph(a) => graph::run(client.as_ref(), a).await,
        Command::Sagas(a) => sagas::run(redis()?, a).await,
        Command::Monitor(a) => monitor::run(redis()?, a).await,
    }
}

/// Log records (alerts of the log sink, warnings) on stderr; `RUST_LOG` overrides the level
/// (`info` for txcoord by default, `warn` for the rest).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,txcoord=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    if cli.redis.is_none() && cli.command.needs_redis() {
        eprintln!("txcoord: --redis URL (or the environment variable REDIS_URL) is required");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("txcoord: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("txcoord: {message}");
            ExitCode::from(1)
        }
    }
}
