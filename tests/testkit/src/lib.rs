// SPDX-License-Identifier: MIT OR Apache-2.0
//! Throwaway `redis-server` processes for tests, examples and benchmarks.
//!
//! Each server runs in the foreground as a child of this process, on a free loopback port, with
//! no persistence, in its own temporary directory, writing its output to `redis.log` there (its
//! end is shown when the server does not start); it is killed and reaped, and the directory
//! removed, when the handle is dropped (also on panic, and when it never started). Nothing here
//! touches port 6379. The binary is `redis-server` from `PATH`, or `$TXCOORD_REDIS_SERVER`.

pub mod proxy;

pub use proxy::Proxy;

use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A running redis-server child process.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    extra_args: Vec<String>,
}

fn free_port() -> u16 {
    // Bind port 0 and let the kernel choose; the listener is dropped before redis binds it.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    listener.local_addr().expect("local addr").port()
}

fn binary() -> String {
    std::env::var("TXCOORD_REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_string())
}

/// A new empty directory of its own under the system temp dir.
fn fresh_dir() -> PathBuf {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    for _ in 0..100 {
        let dir = std::env::temp_dir().join(format!(
            "txcoord-redis-{}-{}-{nanos:08x}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        match std::fs::create_dir(&dir) {
            Ok(()) => return dir,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("create {}: {e}", dir.display()),
        }
    }
    panic!("no fresh temporary directory for redis-server");
}

/// The last `lines` lines of `path` (at most its last 64 KiB are read).
fn tail(path: &Path, lines: usize) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers PING.
    pub fn start() -> RedisServer {
        Self::start_with(&[])
    }

    /// Starts a server with extra `redis-server` arguments (e.g. `["--maxmemory", "10mb"]`).
    pub fn start_with(extra_args: &[&str]) -> RedisServer {
        // The handle owns the directory from here on: dropped (by the panic below, too), it
        // removes it.
        let mut server = RedisServer {
            child: None,
            port: 0,
            dir: fresh_dir(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
        };
        let mut last_err = String::new();
        for _ in 0..5 {
            server.port = free_port();
            match server.spawn() {
                Ok(()) => return server,
                Err(e) => last_err = e,
            }
        }
        panic!("could not start redis-server: {last_err}");
    }

    /// The server's temporary directory (its `--dir`; removed on drop).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server's output (`redis.log` in its directory), all starts and restarts.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    /// The last `lines` lines of the server's output.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log_path(), lines)
    }

    fn spawn(&mut self) -> Result<(), String> {
        let log_path = self.log_path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("open {}: {e}", log_path.display()))?;
        let log_err = log
            .try_clone()
            .map_err(|e| format!("{}: {e}", log_path.display()))?;
        let mut cmd = Command::new(binary());
        cmd.args([
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self.dir.to_str().expect("utf-8 temp dir"),
            "--enable-debug-command",
            "local",
            "--repl-diskless-sync-delay",
            "0",
            "--loglevel",
            "warning",
        ]);
        cmd.args(&self.extra_args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err));
        let child = cmd.spawn().map_err(|e| {
            format!(
                "cannot run {}: {e} (install redis-server, or run `make test` which does)",
                binary()
            )
        })?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!(
                        "redis-server on port {} exited early with {status}; the end of {}:\n{}",
                        self.port,
                        log_path.display(),
                        self.log_tail(20)
                    ));
                }
            }
            if self.ping_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill();
        Err(format!(
            "redis-server on port {} did not answer PING within 10 s (killed); the end of {}:\n{}",
            self.port,
            log_path.display(),
            self.log_tail(20)
        ))
    }

    /// Whether our child answers on the port (not another process that took the port first).
    fn ping_ok(&self) -> bool {
        let Some(pid) = self.pid() else {
            return false;
        };
        let Ok(client) = redis::Client::open(self.url()) else {
            return false;
        };
        let Ok(mut con) = client.get_connection_with_timeout(Duration::from_millis(200)) else {
            return false;
        };
        let Ok(info) = redis::cmd("INFO").arg("server").query::<String>(&mut con) else {
            return false;
        };
        info.lines()
            .find_map(|l| l.strip_prefix("process_id:"))
            .is_some_and(|p| p.trim() == pid.to_string())
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The child's pid (while running).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// A plain synchronous connection, for test set-up and checks.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .expect("url")
            .get_connection_with_timeout(Duration::from_secs(2))
            .expect("connect to test redis")
    }

    /// Kills the server (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (after [`RedisServer::kill`]); data is gone.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(e) if Instant::now() > deadline => panic!("restart redis-server: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Pauses the server process (SIGSTOP): connections stay open but nothing is answered.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Resumes a paused server (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.pid().expect("server running");
        let status = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {sig} {pid}");
    }

    /// All keys in the server (tests use small databases).
    pub fn keys(&self) -> Vec<String> {
        let mut con = self.connection();
        let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut con).expect("KEYS");
        keys.sort();
        keys
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // A paused server must be resumed before it can die cleanly.
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .args(["-CONT", &pid.to_string()])
                .status();
        }
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Several servers at once (quorum and cluster tests).
pub fn start_many(n: usize) -> Vec<RedisServer> {
    (0..n).map(|_| RedisServer::start()).collect()
}
