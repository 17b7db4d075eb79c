// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `txcoord monitor` sidecars: started as an operator would run them, their lines turned
//! into events (`metrics`, `candidate`, `pass` on stdout; `alert` and `stderr` on stderr), and
//! their `/metrics` read over plain HTTP.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedSender;

use crate::demo::event::{Event, Who};
use crate::demo::process::Proc;

/// The sidecars' settings (short, so the story fits in a minute).
#[derive(Clone)]
pub struct Settings {
    pub interval_s: u64,
    pub leader_ttl_ms: u64,
    pub max_retries: u32,
    /// Per saga type: stuck after this long without an update; long-running after `limit_s`.
    pub stuck_after_s: u64,
    pub limit_s: u64,
    pub types: Vec<&'static str>,
}

/// The `txcoord` command: `$TXCOORD_CLI`, else next to this program (`target/debug/txcoord`
/// beside `target/debug/demo`).
pub fn program() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("TXCOORD_CLI") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    // tests run from target/debug/deps
    if dir.ends_with("deps") {
        dir.pop();
    }
    let cli = dir.join("txcoord");
    if cli.exists() {
        Ok(cli)
    } else {
        Err(format!(
            "{} is missing: build the CLI first (cargo build -p txcoord-cli; scripts/demo.sh \
             does), or set TXCOORD_CLI",
            cli.display()
        ))
    }
}

/// Starts one sidecar named `id` in the election `election`.
pub fn start(
    who: Who,
    cli: &Path,
    url: &str,
    election: &str,
    settings: &Settings,
    tx: &UnboundedSender<Event>,
) -> Result<Proc, String> {
    let mut cmd = Command::new(cli);
    cmd.env_remove("REDIS_URL")
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "warn,txcoord=info")
        .args(["--redis", url, "monitor", "--election", election])
        .args([
            "--candidate-id",
            who.name(),
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .args(["--interval", &settings.interval_s.to_string()])
        .args(["--leader-ttl-ms", &settings.leader_ttl_ms.to_string()])
        .args(["--max-retries", &settings.max_retries.to_string()]);
    for t in &settings.types {
        cmd.args(["--stuck-after", &format!("{t}={}", settings.stuck_after_s)]);
        cmd.args(["--limit", &format!("{t}={}", settings.limit_s)]);
    }
    Proc::spawn(who, &mut cmd, false, stdout_line, stderr_line, tx)
}

/// `metrics: URL`, `monitor: candidate ID`, `pass: leader=... term=... stuck=...`.
fn stdout_line(who: Who, line: &str) -> Event {
    if let Some(url) = line.strip_prefix("metrics: ") {
        return Event::new(who, "metrics", json!({ "url": url.trim() }));
    }
    if let Some(id) = line.strip_prefix("monitor: candidate ") {
        return Event::new(who, "candidate", json!({ "id": id.trim() }));
    }
    if let Some(rest) = line.strip_prefix("pass: ") {
        let (fields, errors) = rest.split_once(" errors=").unwrap_or((rest, "[]"));
        let mut v = json!({ "errors": errors });
        for pair in fields.split_whitespace() {
            if let Some((k, val)) = pair.split_once('=') {
                v[k] = match val {
                    "true" => json!(true),
                    "false" => json!(false),
                    n => n.parse::<u64>().map_or(json!(n), |n| json!(n)),
                };
            }
        }
        return Event::new(who, "pass", v);
    }
    Event::new(who, "output", json!({ "line": line }))
}

/// Drops ANSI escapes (colour codes), should a terminal setting bring them back.
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A log record: `<time> <LEVEL> <message>`; an alert of the log sink is
/// `[resolved: ]<summary> [<severity>]: <description> <metadata JSON>`.
fn stderr_line(who: Who, line: &str) -> Event {
    let line = plain(line);
    let word = |s: &str| -> (String, String) {
        let s = s.trim_start();
        let end = s.find(char::is_whitespace).unwrap_or(s.len());
        (s[..end].to_string(), s[end..].trim_start().to_string())
    };
    let (_time, rest) = word(&line);
    let (level, message) = word(&rest);
    let message = message.as_str();
    for severity in ["critical", "warning", "info"] {
        let tag = format!(" [{severity}]: ");
        let Some((summary, rest)) = message.split_once(&tag) else {
            continue;
        };
        let (description, metadata) = match rest.find(" {") {
            Some(i) => (
                &rest[..i],
                serde_json::from_str(&rest[i + 1..]).unwrap_or(Value::Null),
            ),
            None => (rest, Value::Null),
        };
        let resolved = summary.starts_with("resolved: ");
        return Event::new(
            who,
            "alert",
            json!({
                "severity": severity, "resolved": resolved,
                "summary": summary.trim_start_matches("resolved: "),
                "description": description, "metadata": metadata,
            }),
        );
    }
    Event::new(
        who,
        "stderr",
        json!({ "line": line, "level": level, "message": message }),
    )
}

/// `GET url` (a plain `http://host:port/path`), the body.
pub fn get(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: not http://"))?;
    let (addr, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut s = TcpStream::connect(addr).map_err(|e| format!("{url}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET /{path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("{url}: {e}"))?;
    let mut response = String::new();
    s.read_to_string(&mut response)
        .map_err(|e| format!("{url}: {e}"))?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "{url}: {}",
            head.lines().next().unwrap_or_default()
        ));
    }
    Ok(body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pass_lines_and_alerts() {
        let e = stdout_line(
            Who::MonitorA,
            "pass: leader=true term=2 long_running=1 stuck=1 retried=1 compensated=0 \
             deadlocks=0 errors=[]",
        );
        assert_eq!(e.ev, "pass");
        assert_eq!(e.v["leader"], true);
        assert_eq!(e.v["term"], 2);
        assert_eq!(e.v["retried"], 1);
        let e = stderr_line(
            Who::MonitorB,
            "2025-01-01T00:00:00.000000Z  WARN Stuck saga detected: OrderSaga [critical]: \
             Saga js-1 appears to be stuck in EXECUTING status (no-progress: no update for \
             3012 ms) {\"sagaId\":\"js-1\",\"reason\":\"no-progress\"}",
        );
        assert_eq!(e.ev, "alert");
        assert_eq!(e.v["severity"], "critical");
        assert_eq!(e.v["summary"], "Stuck saga detected: OrderSaga");
        assert_eq!(e.v["metadata"]["sagaId"], "js-1");
        assert!(e.str("description").ends_with("3012 ms)"));
        let e = stderr_line(
            Who::MonitorB,
            "\u{1b}[2m2025\u{1b}[0m  INFO resolved: Long-running saga detected: OrderSaga \
             [warning]: Saga js-1 has been running for 9000ms {}",
        );
        assert_eq!(e.v["resolved"], true);
        assert_eq!(e.v["summary"], "Long-running saga detected: OrderSaga");
    }
}
