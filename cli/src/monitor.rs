// SPDX-License-Identifier: MIT OR Apache-2.0
//! `txcoord monitor`: the saga monitor as a sidecar. Every monitor started with the same
//! election name competes for leadership; the leader runs the passes (long-running and stuck
//! sagas, recovery, deadlocks, metrics), the others wait to take over. Metrics are served on
//! `/metrics`; alerts go to the given Alertmanagers, or to the log.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use txcoord::{
    AlertSink, AlertmanagerOptions, AlertmanagerSink, DetectorOptions, LogAlertSink, MetricNames,
    MetricsOptions, MonitorOptions, RedisSagaRepository, SagaDeadlockDetector, SagaMonitor,
    TracingLogger, TransactionMetricsCollector,
};

use crate::Outcome;

#[derive(clap::Args)]
pub struct Args {
    /// Seconds between passes.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    interval: u64,
    /// The election's name: monitors with the same name elect one leader.
    #[arg(long, default_value = "saga-monitor")]
    election: String,
    /// This monitor's name in the election (default: a random one).
    #[arg(long)]
    candidate_id: Option<String>,
    /// The leader's lease in milliseconds: another monitor takes over within about this long
    /// after the leader dies.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    leader_ttl_ms: u64,
    /// The longest a saga of TYPE may run before it is reported, as TYPE=SECONDS (repeatable;
    /// the seed's limits for its types otherwise, 300 s for the rest).
    #[arg(long = "limit", value_name = "TYPE=SECONDS", value_parser = parse_limit)]
    limits: Vec<(String, u64)>,
    /// How long a saga of TYPE may go without an update before it counts as stuck, as
    /// TYPE=SECONDS (repeatable), or SECONDS for the types without their own (the seed's
    /// limits for its types otherwise, 300 s for the rest).
    #[arg(long = "stuck-after", value_name = "[TYPE=]SECONDS", value_parser = parse_stuck_after)]
    stuck_after: Vec<(Option<String>, u64)>,
    /// How many times a stuck saga is retried before it is compensated.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=1_000))]
    max_retries: u32,
    /// Where to serve /metrics (host:port; port 0 picks a free one). `off` serves nothing.
    #[arg(long, default_value = "127.0.0.1:9464")]
    metrics_addr: String,
    /// Names of the monitor's gauges: the seed's (legacy), Prometheus-conventional, or both.
    #[arg(long, default_value = "legacy", value_parser = ["legacy", "convention", "both"])]
    metric_names: String,
    /// An Alertmanager to send alerts to (its base URL, e.g. http://127.0.0.1:9093;
    /// repeatable: every replica gets every alert). Without one, alerts are logged.
    #[arg(long = "alertmanager", value_name = "URL")]
    alertmanagers: Vec<String>,
    /// Stop after this many passes (0: run until SIGINT or SIGTERM).
    #[arg(long, default_value_t = 0)]
    passes: u64,
}

fn parse_limit(s: &str) -> Result<(String, u64), String> {
    let (kind, secs) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not TYPE=SECONDS"))?;
    let secs: u64 = secs
        .parse()
        .map_err(|_| format!("{secs:?} is not a whole number of seconds"))?;
    if kind.is_empty() || secs == 0 {
        return Err(format!(
            "{s:?}: the type must be named and the limit above 0"
        ));
    }
    Ok((kind.to_string(), secs))
}

/// `TYPE=SECONDS` (one type's limit) or `SECONDS` (the limit of the types without their own).
fn parse_stuck_after(s: &str) -> Result<(Option<String>, u64), String> {
    if s.contains('=') {
        return parse_limit(s).map(|(kind, secs)| (Some(kind), secs));
    }
    match s.parse::<u64>() {
        Ok(secs) if secs > 0 => Ok((None, secs)),
        _ => Err(format!(
            "{s:?} is neither TYPE=SECONDS nor a whole number of seconds above 0"
        )),
    }
}

/// SIGINT or SIGTERM, whichever comes first.
async fn shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

pub async fn run(client: &txcoord::Client, args: Args) -> Outcome {
    let names =
        MetricNames::parse("metric-names", &args.metric_names).map_err(|e| e.to_string())?;
    let collector =
        TransactionMetricsCollector::with_options(MetricsOptions::new().set_names(names));
    collector.watch_client(client);
    let server = match args.metrics_addr.as_str() {
        "off" => None,
        addr => {
            let addr: SocketAddr = addr
                .parse()
                .map_err(|_| format!("--metrics-addr {addr:?} is not host:port (or off)"))?;
            let server = txcoord::serve_metrics(addr, collector.clone())
                .await
                .map_err(|e| e.to_string())?;
            println!("metrics: {}", server.url());
            Some(server)
        }
    };
    let alerts: Arc<dyn AlertSink> = if args.alertmanagers.is_empty() {
        Arc::new(LogAlertSink)
    } else {
        let sink = AlertmanagerSink::new(
            &args.alertmanagers,
            AlertmanagerOptions::new()
                .set_metrics(&collector)
                .set_label("monitor", args.election.clone()),
        )
        .map_err(|e| e.to_string())?;
        Arc::new(sink)
    };
    let mut repo = RedisSagaRepository::new(client);
    for (kind, secs) in args.stuck_after {
        let after = Duration::from_secs(secs);
        repo = match kind {
            Some(kind) => repo.set_stuck_after(kind, after),
            None => repo.set_default_stuck_after(after),
        };
    }
    let repo = Arc::new(repo);
    let detector = SagaDeadlockDetector::new(
        repo.clone(),
        Arc::new(TracingLogger),
        DetectorOptions::new().set_metrics(Arc::new(collector.clone())),
    )
    .map_err(|e| e.to_string())?;
    let mut options = MonitorOptions::new()
        .set_interval(Duration::from_secs(args.interval))
        .set_election_name(args.election)
        .set_leader_ttl(Duration::from_millis(args.leader_ttl_ms))
        .set_max_retries(args.max_retries)
        .set_start(false);
    if let Some(id) = args.candidate_id {
        options = options.set_candidate_id(id);
    }
    for (kind, secs) in args.limits {
        options = options.set_limit(kind, Duration::from_secs(secs));
    }
    let monitor = SagaMonitor::new(repo, Arc::new(collector), alerts, detector, options)
        .map_err(|e| e.to_string())?;
    println!("monitor: candidate {}", monitor.candidate_id());
    let stop = shutdown();
    tokio::pin!(stop);
    let mut passes = 0u64;
    loop {
        let report = tokio::select! {
            report = monitor.tick() => report,
            _ = &mut stop => break,
        };
        println!(
            "pass: leader={} term={} long_running={} stuck={} retried={} compensated={} deadlocks={} errors={:?}",
            report.leader,
            monitor.term().map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
            report.long_running, report.stuck, report.retried,
            report.compensated, report.deadlocks, report.errors
        );
        passes += 1;
        if args.passes > 0 && passes >= args.passes {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(monitor.interval()) => {}
            _ = &mut stop => break,
        }
    }
    monitor.stop().await;
    if let Some(server) = server {
        server.shutdown().await;
    }
    Ok(0)
}
