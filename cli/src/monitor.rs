// SPDX-License-Identifier: MIT OR Apache-2.0
//! `txcoord monitor`: the saga monitor as a sidecar.

use std::sync::Arc;
use std::time::Duration;

use crate::Outcome;

#[derive(clap::Args)]
pub struct Args {
    /// Seconds between passes.
    #[arg(long, default_value_t = 30)]
    interval: u64,
    /// The election's name: monitors with the same name elect one leader.
    #[arg(long, default_value = "saga-monitor")]
    election: String,
    /// Stop after this many passes (0: run until SIGINT or SIGTERM).
    #[arg(long, default_value_t = 0)]
    passes: u64,
}

pub async fn run(client: &txcoord::Client, args: Args) -> Outcome {
    let repo = Arc::new(txcoord::RedisSagaRepository::new(client));
    let detector = txcoord::SagaDeadlockDetector::new(
        repo.clone(),
        Arc::new(txcoord::TracingLogger),
        txcoord::DetectorOptions::new(),
    )
    .map_err(|e| e.to_string())?;
    let monitor = txcoord::SagaMonitor::new(
        repo,
        Arc::new(NoMetrics),
        Arc::new(txcoord::LogAlertSink),
        detector,
        txcoord::MonitorOptions::new()
            .set_interval(Duration::from_secs(args.interval.max(1)))
            .set_election_name(args.election)
            .set_start(false),
    )
    .map_err(|e| e.to_string())?;
    let mut passes = 0u64;
    loop {
        let report = monitor.tick().await;
        println!(
            "pass: leader={} long_running={} stuck={} retried={} compensated={} deadlocks={} errors={:?}",
            report.leader, report.long_running, report.stuck, report.retried,
            report.compensated, report.deadlocks, report.errors
        );
        passes += 1;
        if args.passes > 0 && passes >= args.passes {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(monitor.interval()) => {}
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    monitor.stop().await;
    Ok(0)
}

struct NoMetrics;
impl txcoord::MonitorMetrics for NoMetrics {
    fn record_gauge(&self, _: &str, _: f64) {}
    fn record_histogram(&self, _: &str, _: f64) {}
}
