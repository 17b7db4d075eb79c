// SPDX-License-Identifier: MIT OR Apache-2.0
//! The txcoord benchmark: txcoord beside the `rslock` crate, beside the seed's own commands,
//! and beside `redis-benchmark` sending txcoord's real commands, all in one run against one
//! throwaway redis-server on a loopback port. The program is the `scenarios` bench target
//! (`benches/scenarios.rs`); this library holds its parts, one module per scenario.
//!
//! A second program, the `sagas` bench target (`benches/sagas.rs`, driven by [`sagas`]),
//! measures the deadlock detector ([`wait_graph`], [`registry_graph`], [`deadlock_latency`]),
//! the saga monitor ([`monitor_tick`]) and the saga repository ([`saga_save`]) at scale.
//!
//! ```text
//! cargo bench -p txcoord-bench --bench scenarios                   # full run, about 4 minutes
//! BENCH_SECONDS=20 cargo bench -p txcoord-bench --bench scenarios  # longer C, C2 and D
//! BENCH_QUICK=1 cargo bench -p txcoord-bench --bench scenarios     # smoke run, under a minute
//! ```
//!
//! Scenarios, in the order they run:
//! - **server cost** ([`cost`]): the redis-server's CPU per uncontended acquire+release cycle
//!   (Δ `used_cpu_user + used_cpu_sys` of `INFO cpu`) over a fixed number of cycles on distinct
//!   resources, for the seed's commands, txcoord's `LockManager` with and without an owner id,
//!   and the same commands pipelined; each side several times, alternating; medians, ratios to
//!   the seed, and the commands per cycle `INFO commandstats` counted. The commands txcoord
//!   sends are first captured with MONITOR ([`capture`]).
//! - **the pipelined ceiling** ([`rbench`]): `redis-benchmark -c 50 -P 16` sending each side's
//!   real commands, one command per run, combined as cycles/s = 1/Σ(1/rate).
//! - (A) one task, acquire+release cycles; (B) 50 tasks on their own keys ([`cycles`]).
//! - (C) 8 tasks on one key holding it 1 ms, default and fair mode; (C2) the same with a 50 ms
//!   pause after each release ([`contention`]).
//! - (D) 200 locks with ttl 1000 ms held (and renewed) for `BENCH_SECONDS` ([`hold`]).
//!
//! Knobs: `BENCH_SECONDS` (length of C, C2 and D; default 10, 1 in quick mode), `BENCH_QUICK=1`
//! (every scenario about 1 s, small redis-benchmark runs, 3,000 server-cost cycles),
//! `BENCH_AB_SECONDS` (length of A and B; default 5, or BENCH_SECONDS if shorter; 1 in quick
//! mode), `BENCH_COST_CYCLES` (default 200,000), `BENCH_COST_REPS` (runs per side, default 3),
//! `BENCH_COST_TASKS` (default 200), `BENCH_RSLOCK_RETRY_MS` (rslock's retry delay while
//! waiting, default 10). Run without cargo's `--bench` flag (as `cargo test --bench scenarios`
//! does) the program runs in quick mode unless `BENCH_QUICK=0`. The redis-server binary is
//! `$TXCOORD_REDIS_SERVER` (default `redis-server` from `PATH`), redis-benchmark
//! `$REDIS_BENCHMARK` (default `redis-benchmark`).
//!
//! Used by `scripts/bench.sh` (the side-by-side tables with the Python and Node benchmarks, on
//! one server), the program also takes:
//! - `BENCH_REDIS_URL=redis://host:port`: use that redis-server instead of starting one. It
//!   must be a throwaway server: the program runs FLUSHALL and MONITOR on it, so the scenarios
//!   refuse to run on it unless `BENCH_REDIS_FLUSH=1` confirms that its data may be deleted
//!   (scripts/bench.sh sets both for the server it starts). The soak does not flush.
//! - `BENCH_JSON=path`: also write the figures as JSON (the schema of `bench/report.py`), with
//!   each library's peak RSS, measured in a child process of this program that runs A, B, C, C2
//!   and D (shortened) for that library alone.
//! - `BENCH_SOAK=cycles` (1 means 1,000,000): instead of the scenarios, a soak: that many
//!   acquire+release cycles (50 tasks, one `LockManager`, a new resource name each cycle),
//!   printing RSS along the way, open fds and `Client::scheduled_renewals()` at the end; exit
//!   status 3 when RSS at the end is more than max(5%, 10 MiB) above RSS at 1/5 of the cycles.
//!   `scripts/soak.sh` runs it beside the Python and Node soaks.
//!
//! Targets are printed as met/missed; they are not asserted. The exit status is non-zero only
//! when txcoord itself misbehaved (an error, a hang, two holders at once, a fencing token going
//! backwards, keys left behind by uncontended cycles), so a smoke run can guard the program and
//! the core against rot.

pub mod capture;
pub mod config;
pub mod contention;
pub mod cost;
pub mod cycles;
pub mod deadlock_latency;
pub mod fmt;
pub mod hold;
pub mod json;
pub mod monitor_tick;
pub mod output;
pub mod rbench;
pub mod registry_graph;
pub mod report;
pub mod rss;
pub mod run;
pub mod saga_save;
pub mod sagas;
pub mod server;
pub mod soak;
pub mod summary;
pub mod wait_graph;

/// The program: the RSS probe child, the soak, or the scenarios; its exit status.
pub fn main() -> i32 {
    if let Ok(lib) = std::env::var("BENCH_RSS_PROBE") {
        rss::rss_probe(&lib)
    } else if let Some(n) = config::env_number("BENCH_SOAK").filter(|&n| n > 0.0) {
        let cycles = if n <= 1.0 { 1_000_000 } else { n as u64 };
        soak::soak(cycles)
    } else {
        run::run()
    }
}
