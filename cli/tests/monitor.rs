// SPDX-License-Identifier: MIT OR Apache-2.0
//! `txcoord monitor` as a sidecar, two of them on a real redis-server: one leads and recovers
//! a stuck saga once, /metrics serves the monitor's and the locks' metrics, killing the leader
//! hands over to the other, SIGTERM stops cleanly.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant, SystemTime};

use txcoord::{RedisSagaRepository, SagaRecord, SagaRepository};
use txcoord_testkit::RedisServer;

/// A running `txcoord monitor` and its stdout lines.
struct Sidecar {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Sidecar {
    fn start(server: &RedisServer, id: &str) -> Sidecar {
        let mut child = Command::new(env!("CARGO_BIN_EXE_txcoord"))
            .env_remove("REDIS_URL")
            .args(["--redis", &server.url(), "monitor", "--interval", "1"])
            .args(["--leader-ttl-ms", "1500", "--metrics-addr", "127.0.0.1:0"])
            .args(["--candidate-id", id, "--limit", "PaymentSaga=60"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start txcoord monitor");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Sidecar {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first line (from now on) that `pred` accepts, waiting up to `limit`.
    fn wait_for(&mut self, limit: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let line = self.lines.recv_timeout(left).ok()?;
            self.seen.push(line.clone());
            if pred(&line) {
                return Some(line);
            }
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get(url: &str) -> String {
    let rest = url.strip_prefix("http://").unwrap();
    let (addr, path) = rest.split_once('/').unwrap();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /{path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

fn leads(line: &str) -> bool {
    line.starts_with("pass: leader=true")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sidecars_elect_one_leader_recover_once_and_hand_over_when_it_dies() {
    let server = RedisServer::start();
    let c = txcoord::Client::open(&server.url()).unwrap();
    let repo = RedisSagaRepository::new(&c);
    let mut stuck = SagaRecord::new("pay-1", "PaymentSaga");
    stuck.created_at = SystemTime::now() - Duration::from_secs(600);
    stuck.updated_at = stuck.created_at;
    repo.save(&stuck).await.unwrap();

    let mut a = Sidecar::start(&server, "side-a");
    let url = a
        .wait_for(Duration::from_secs(30), |l| l.starts_with("metrics: "))
        .expect("a serves /metrics");
    let url = url.trim_start_matches("metrics: ").to_string();
    a.wait_for(Duration::from_secs(30), leads)
        .expect("the only monitor leads");
    let mut b = Sidecar::start(&server, "side-b");
    let first = b
        .wait_for(Duration::from_secs(30), |l| l.starts_with("pass: "))
        .expect("b runs passes");
    assert!(first.starts_with("pass: leader=false"), "{first}");
    // the leader recovered the stuck saga once (a retry: it was never retried)
    let saga = repo.find_by_id("pay-1").await.unwrap().unwrap();
    assert_eq!(saga.retry_count, 1, "{saga:?}");
    assert!(
        a.seen.iter().any(|l| l.contains("retried=1")),
        "{:?}",
        a.seen
    );
    // the leader's /metrics: the monitor's gauges under the seed's names, lock metrics
    let body = get(&url);
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("\nsagas_active_total 1"), "{body}");
    assert!(
        body.contains("txcoord_lock_acquire_attempts_total"),
        "{body}"
    );
    // the leader dies: b leads within the lease and a pass or two
    a.signal("-KILL");
    let killed = Instant::now();
    b.wait_for(Duration::from_secs(15), leads)
        .expect("b takes over");
    assert!(
        killed.elapsed() < Duration::from_millis(1_500 + 2 * 1_000 + 3_000),
        "took {:?}",
        killed.elapsed()
    );
    // the same stuck episode is not recovered twice
    let saga = repo.find_by_id("pay-1").await.unwrap().unwrap();
    assert_eq!(saga.retry_count, 1, "{saga:?}");
    // SIGTERM: a clean stop, exit 0
    b.signal("-TERM");
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = b.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "b did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50)); // polling the exit with a deadline
    };
    assert_eq!(status.code(), Some(0));
}

/// `--stuck-after` and `--max-retries`: a saga of one type counts as stuck after a second
/// without an update (the default is minutes), and with no retries allowed the monitor moves it
/// straight to COMPENSATING; a saga of another type (default threshold) is left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_after_and_max_retries_shape_the_recovery() {
    let server = RedisServer::start();
    let c = txcoord::Client::open(&server.url()).unwrap();
    let repo = RedisSagaRepository::new(&c);
    repo.save(&SagaRecord::new("pay-2", "PaymentSaga"))
        .await
        .unwrap();
    repo.save(&SagaRecord::new("ship-2", "ShippingSaga"))
        .await
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_txcoord"))
        .env_remove("REDIS_URL")
        .args(["--redis", &server.url(), "monitor", "--interval", "1"])
        .args(["--metrics-addr", "off", "--stuck-after", "PaymentSaga=1"])
        .args(["--stuck-after", "600", "--max-retries", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start txcoord monitor");
    let deadline = Instant::now() + Duration::from_secs(30);
    let saga = loop {
        let saga = repo.find_by_id("pay-2").await.unwrap().unwrap();
        if saga.status != txcoord::SagaStatus::Executing {
            break saga;
        }
        assert!(Instant::now() < deadline, "never recovered: {saga:?}");
        tokio::time::sleep(Duration::from_millis(100)).await; // polling a condition with a deadline
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(saga.status, txcoord::SagaStatus::Compensating, "{saga:?}");
    assert_eq!(saga.retry_count, 0, "{saga:?}");
    assert_eq!(
        saga.stuck_reason.as_deref(),
        Some("no-progress"),
        "{saga:?}"
    );
    let other = repo.find_by_id("ship-2").await.unwrap().unwrap();
    assert_eq!(other.status, txcoord::SagaStatus::Executing, "{other:?}");
    assert_eq!(other.version, 1, "untouched: {other:?}");
}

#[test]
fn bad_monitor_flags_are_refused_with_exit_2() {
    for args in [
        &["--limit", "PaymentSaga"][..],
        &["--limit", "PaymentSaga=0"],
        &["--interval", "0"],
        &["--metric-names", "pretty"],
        &["--stuck-after", "PaymentSaga"],
        &["--stuck-after", "PaymentSaga=0"],
        &["--stuck-after", "PaymentSaga=soon"],
        &["--stuck-after", "=5"],
        &["--stuck-after", "0"],
        &["--stuck-after=-1"],
        &["--max-retries=-1"],
        &["--max-retries", "many"],
        &["--max-retries", "1001"],
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_txcoord"))
            .env_remove("REDIS_URL")
            .args(["--redis", "redis://127.0.0.1:1", "monitor"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        let flag = args[0].split('=').next().unwrap();
        assert!(err.contains(flag), "{args:?}: {err}");
    }
    let o = Command::new(env!("CARGO_BIN_EXE_txcoord"))
        .env_remove("REDIS_URL")
        .args([
            "--redis",
            "redis://127.0.0.1:1",
            "monitor",
            "--metrics-addr",
            "nowhere",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--metrics-addr"), "{err}");
}
