// SPDX-License-Identifier: MIT OR Apache-2.0
//! The Prometheus tools the metrics and alert tests run for real: `promtool`, a `prometheus`
//! server and `prometheus-alertmanager` servers, each started by the test on a free loopback
//! port in a temporary directory of its own, killed and reaped (and the directory removed) when
//! dropped — also on panic. Binaries from `PATH` (`scripts/install-deps.sh` installs them) or
//! `$TXCOORD_PROMTOOL`, `$TXCOORD_PROMETHEUS`, `$TXCOORD_ALERTMANAGER`.
#![allow(dead_code)]

pub mod sample;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The repository's root (the core crate's parent).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the core crate has a parent")
        .to_path_buf()
}

fn binary(var: &str, default: &str) -> String {
    let bin = std::env::var(var).unwrap_or_else(|_| default.to_string());
    let found = Command::new(&bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found,
        "{bin} not found: run scripts/install-deps.sh (Debian packages prometheus and \
         prometheus-alertmanager), or set {var}"
    );
    bin
}

pub fn promtool_bin() -> String {
    binary("TXCOORD_PROMTOOL", "promtool")
}

/// Runs `promtool ARGS`, with `stdin` as its standard input.
pub fn promtool(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(promtool_bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    let mut input = child.stdin.take().expect("promtool stdin");
    input
        .write_all(stdin.as_bytes())
        .expect("write promtool stdin");
    drop(input);
    child.wait_with_output().expect("promtool output")
}

pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    listener.local_addr().expect("local addr").port()
}

fn fresh_dir(what: &str) -> PathBuf {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    for _ in 0..100 {
        let dir = std::env::temp_dir().join(format!(
            "txcoord-{what}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        match std::fs::create_dir(&dir) {
            Ok(()) => return dir,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let _ = std::fs::remove_dir_all(&dir);
            }
            Err(e) => panic!("create {}: {e}", dir.display()),
        }
    }
    panic!("no fresh temporary directory for {what}");
}

/// A plain HTTP/1.0 request to a loopback address: the status and the body, or `None` when
/// nothing answered within 5 s.
pub fn http(addr: SocketAddr, method: &str, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut raw = Vec::new();
    s.take(64 << 20).read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// Percent-encodes a query parameter.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A server process of the test's own.
pub struct Server {
    child: Option<Child>,
    pub addr: SocketAddr,
    dir: PathBuf,
    what: &'static str,
    bin: String,
    args: Vec<String>,
}

impl Server {
    /// Starts `bin ARGS` (`{port}` and `{dir}` replaced) on a free port and waits until
    /// `GET /-/ready` answers 200.
    fn start(what: &'static str, bin: String, args: &[String], dir: PathBuf) -> Server {
        let mut server = Server {
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            dir,
            what,
            bin,
            args: args.to_vec(),
        };
        let mut last = String::new();
        for _ in 0..5 {
            server.addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            match server.spawn() {
                Ok(()) => return server,
                Err(e) => last = e,
            }
        }
        panic!("could not start {what}: {last}");
    }

    fn spawn(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| e.to_string())?;
        let args: Vec<String> = self
            .args
            .iter()
            .map(|a| {
                a.replace("{port}", &self.addr.port().to_string())
                    .replace("{dir}", &self.dir.display().to_string())
            })
            .collect();
        let child = Command::new(&self.bin)
            .args(&args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.bin))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return Err(format!(
                    "{} exited ({status}):\n{}",
                    self.what,
                    self.log_tail()
                ));
            }
            if let Some((200, _)) = http(self.addr, "GET", "/-/ready") {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
        Err(format!(
            "{} not ready within 60 s:\n{}",
            self.what,
            self.log_tail()
        ))
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// The end of the server's output.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Kills the process and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills it and starts it again on the same port, with the same directory.
    pub fn restart(&mut self) {
        self.kill();
        let mut last = String::new();
        for _ in 0..20 {
            match self.spawn() {
                Ok(()) => return,
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("could not restart {}: {last}", self.what);
    }

    /// `GET path` answered 200: its body as JSON.
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let (status, body) =
            http(self.addr, "GET", path).unwrap_or_else(|| panic!("{} did not answer", self.what));
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Prometheus Alertmanager with a null receiver, clustering off.
pub fn alertmanager() -> Server {
    let dir = fresh_dir("alertmanager");
    std::fs::write(
        dir.join("alertmanager.yml"),
        "route:\n  receiver: \"null\"\n  group_wait: 1s\nreceivers:\n  - name: \"null\"\n",
    )
    .expect("write alertmanager.yml");
    let args = [
        "--config.file={dir}/alertmanager.yml",
        "--storage.path={dir}/data",
        "--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
        "--log.level=warn",
    ]
    .map(String::from);
    Server::start(
        "alertmanager",
        binary("TXCOORD_ALERTMANAGER", "prometheus-alertmanager"),
        &args,
        dir,
    )
}

/// A Prometheus server scraping `target` (`/metrics`) every second, with `rule_files` loaded.
pub fn prometheus(target: SocketAddr, rule_files: &[PathBuf]) -> Server {
    let dir = fresh_dir("prometheus");
    let rules: String = rule_files
        .iter()
        .map(|p| format!("  - {:?}\n", p.display().to_string()))
        .collect();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n{rules}\
         scrape_configs:\n  - job_name: txcoord\n    static_configs:\n      - targets: [\"{target}\"]\n"
    );
    std::fs::write(dir.join("prometheus.yml"), config).expect("write prometheus.yml");
    let args = [
        "--config.file={dir}/prometheus.yml",
        "--storage.tsdb.path={dir}/data",
        "--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    .map(String::from);
    Server::start(
        "prometheus",
        binary("TXCOORD_PROMETHEUS", "prometheus"),
        &args,
        dir,
    )
}

/// Polls `f` every 100 ms until it gives `Some`, for at most `limit` (then panics naming
/// `what`).
pub fn poll<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
