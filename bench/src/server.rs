// SPDX-License-Identifier: MIT OR Apache-2.0
//! The redis-server of the run (a throwaway one of our own, or `$BENCH_REDIS_URL`), what it
//! reports (INFO cpu, INFO commandstats), and facts about this machine and process.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use txcoord_testkit::RedisServer;

/// The redis-server of the run: a throwaway one started here, or the one `$BENCH_REDIS_URL`
/// names (scripts/bench.sh starts one and shares it with the Python and Node benchmarks).
pub enum Server {
    Own(RedisServer),
    /// `flush`: `BENCH_REDIS_FLUSH=1` confirmed the server is a throwaway one.
    External {
        host: String,
        port: u16,
        flush: bool,
    },
}

/// `redis://host:port` (a trailing `/db` or `?query` is ignored; credentials are refused: the
/// benchmark's MONITOR and redis-benchmark connections would need them too).
pub fn parse_redis_url(url: &str) -> Result<(String, u16), String> {
    let rest = url
        .strip_prefix("redis://")
        .ok_or_else(|| format!("{url:?} does not start with redis://"))?;
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(format!("{url:?}: credentials are not supported here"));
    }
    let (host, port) = match authority.strip_prefix('[') {
        // [::1]:port
        Some(v6) => {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{url:?}: unclosed ["))?;
            (h, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| format!("{url:?}: bad port {p:?}"))?,
        None => 6379,
    };
    if host.is_empty() {
        return Err(format!("{url:?}: no host"));
    }
    Ok((host.to_string(), port))
}

impl Server {
    pub fn from_env() -> Result<Server, String> {
        match std::env::var("BENCH_REDIS_URL") {
            Ok(url) if !url.trim().is_empty() => {
                let (host, port) = parse_redis_url(url.trim())?;
                let flush = std::env::var("BENCH_REDIS_FLUSH").is_ok_and(|v| v.trim() == "1");
                Ok(Server::External { host, port, flush })
            }
            _ => Ok(Server::Own(RedisServer::start())),
        }
    }

    pub fn host(&self) -> &str {
        match self {
            Server::Own(_) => "127.0.0.1",
            Server::External { host, .. } => host,
        }
    }

    pub fn port(&self) -> u16 {
        match self {
            Server::Own(s) => s.port(),
            Server::External { port, .. } => *port,
        }
    }

    pub fn url(&self) -> String {
        match self {
            Server::Own(s) => s.url(),
            Server::External { host, port, .. } if host.contains(':') => {
                format!("redis://[{host}]:{port}")
            }
            Server::External { host, port, .. } => format!("redis://{host}:{port}"),
        }
    }

    pub fn connection(&self) -> Result<redis::Connection, String> {
        match self {
            Server::Own(s) => Ok(s.connection()),
            Server::External { .. } => redis::Client::open(self.url())
                .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
                .map_err(|e| format!("cannot connect to BENCH_REDIS_URL {}: {e}", self.url())),
        }
    }

    /// Whether FLUSHALL may run on it: our own server, or one `BENCH_REDIS_FLUSH=1` vouched for.
    pub fn may_flush(&self) -> bool {
        match self {
            Server::Own(_) => true,
            Server::External { flush, .. } => *flush,
        }
    }

    /// Why the scenarios will not run on this server, if they will not.
    pub fn refusal(&self) -> Option<String> {
        (!self.may_flush()).then(|| {
            format!(
                "BENCH_REDIS_URL names {}, a redis-server this program did not start, and the \
                 scenarios run FLUSHALL and MONITOR on it. Refused: unset \
                 BENCH_REDIS_URL to run on a throwaway server of our own, or set \
                 BENCH_REDIS_FLUSH=1 to confirm that every key on it may be deleted.",
                self.url()
            )
        })
    }

    pub fn describe(&self) -> String {
        match self {
            Server::Own(s) => format!("a throwaway redis-server on 127.0.0.1:{}", s.port()),
            Server::External { .. } => {
                format!("the redis-server of BENCH_REDIS_URL, {}", self.url())
            }
        }
    }

    /// FLUSHALL, only on a server that may be flushed (see [`Server::may_flush`]).
    pub fn flushall(&self, admin: &mut redis::Connection) {
        if !self.may_flush() {
            eprintln!("FLUSHALL skipped on {}: not a throwaway server", self.url());
            return;
        }
        if let Err(e) = redis::cmd("FLUSHALL").arg("SYNC").query::<()>(admin) {
            eprintln!("FLUSHALL failed: {e}");
        }
    }
}

pub fn dbsize(admin: &mut redis::Connection) -> u64 {
    redis::cmd("DBSIZE").query(admin).unwrap_or(0)
}

/// The machine and the server, for the headings.
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub redis_version: String,
}

pub fn machine(admin: &mut redis::Connection) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let listed = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(listed.max(1));
    let cpu_model = cpuinfo
        .lines()
        .find(|l| {
            l.starts_with("model name") || l.starts_with("Hardware") || l.starts_with("cpu model")
        })
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let redis_version = info_fields(admin, "server")
        .remove("redis_version")
        .unwrap_or_else(|| "?".into());
    Machine {
        nproc,
        cpu_model,
        redis_version,
    }
}

/// The `field:value` lines of one INFO section.
pub fn info_fields(admin: &mut redis::Connection, section: &str) -> BTreeMap<String, String> {
    let info: String = match redis::cmd("INFO").arg(section).query(admin) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("INFO {section} failed: {e}");
            return BTreeMap::new();
        }
    };
    info.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// Calls and microseconds of one command, from `INFO commandstats`.
#[derive(Clone, Copy, Default, Debug, PartialEq)]
pub struct CmdStat {
    pub calls: u64,
    pub usec: u64,
}

/// `INFO commandstats`: per command (lower case; subcommands as `config|get`). It counts the
/// commands scripts run as well as those clients send.
pub type CmdStats = BTreeMap<String, CmdStat>;

pub fn parse_commandstats(info: &str) -> CmdStats {
    let mut out = BTreeMap::new();
    for line in info.lines() {
        let Some(rest) = line.strip_prefix("cmdstat_") else {
            continue;
        };
        let Some((name, stats)) = rest.split_once(':') else {
            continue;
        };
        let field = |key: &str| {
            stats
                .split(',')
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        if let Some(calls) = field("calls") {
            out.insert(
                name.to_ascii_lowercase(),
                CmdStat {
                    calls,
                    usec: field("usec").unwrap_or(0),
                },
            );
        }
    }
    out
}

pub fn commandstats(admin: &mut redis::Connection) -> CmdStats {
    match redis::cmd("INFO")
        .arg("commandstats")
        .query::<String>(admin)
    {
        Ok(s) => parse_commandstats(&s),
        Err(e) => {
            eprintln!("INFO commandstats failed: {e}");
            BTreeMap::new()
        }
    }
}

/// What happened between two snapshots, per command (our own INFO left out).
pub fn commandstats_delta(s0: &CmdStats, s1: &CmdStats) -> CmdStats {
    s1.iter()
        .filter(|(name, _)| name.as_str() != "info")
        .filter_map(|(name, b)| {
            let a = s0.get(name).copied().unwrap_or_default();
            let d = CmdStat {
                calls: b.calls.saturating_sub(a.calls),
                usec: b.usec.saturating_sub(a.usec),
            };
            (d.calls > 0).then(|| (name.clone(), d))
        })
        .collect()
}

/// Calls of the named commands between two snapshots.
pub fn calls_of(delta: &CmdStats, names: &[&str]) -> u64 {
    names
        .iter()
        .filter_map(|n| delta.get(*n))
        .map(|s| s.calls)
        .sum()
}

/// The server's CPU time so far (`used_cpu_user + used_cpu_sys` of `INFO cpu`, all its threads).
pub fn server_cpu(admin: &mut redis::Connection) -> Option<Duration> {
    let info = info_fields(admin, "cpu");
    let user: f64 = info.get("used_cpu_user")?.parse().ok()?;
    let sys: f64 = info.get("used_cpu_sys")?.parse().ok()?;
    Some(Duration::from_secs_f64(user + sys))
}

pub fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .stderr(Stdio::null())
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// CPU time (user + system) of this process so far, from /proc/self/stat.
pub fn process_cpu(ticks: u64) -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the command name: state is field 3 (index 0), utime field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_secs_f64(
        (utime + stime) as f64 / ticks as f64,
    ))
}

/// A `kB` field of /proc/self/status (VmRSS, VmHWM), in KiB.
pub fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

pub fn open_fds() -> Option<usize> {
    std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_redis_url("redis://127.0.0.1:7000/0"),
            Ok(("127.0.0.1".into(), 7000))
        );
        assert_eq!(
            parse_redis_url("redis://[::1]:7001"),
            Ok(("::1".into(), 7001))
        );
        assert_eq!(
            parse_redis_url("redis://localhost"),
            Ok(("localhost".into(), 6379))
        );
        assert!(parse_redis_url("redis://user:pw@h:1").is_err());
        assert!(parse_redis_url("http://h:1").is_err());
        assert!(parse_redis_url("redis://h:notaport").is_err());
    }

    #[test]
    fn commandstats_lines() {
        let info = "# Commandstats\r\n\
            cmdstat_set:calls=10,usec=25,usec_per_call=2.50,rejected_calls=0,failed_calls=0\r\n\
            cmdstat_config|get:calls=2,usec=4,usec_per_call=2.00,rejected_calls=0,failed_calls=0\r\n\
            cmdstat_info:calls=3,usec=90,usec_per_call=30.00,rejected_calls=0,failed_calls=0\r\n";
        let s = parse_commandstats(info);
        assert_eq!(
            s["set"],
            CmdStat {
                calls: 10,
                usec: 25
            }
        );
        assert_eq!(s["config|get"], CmdStat { calls: 2, usec: 4 });
        let mut later = s.clone();
        later.insert(
            "set".into(),
            CmdStat {
                calls: 15,
                usec: 40,
            },
        );
        later.insert(
            "info".into(),
            CmdStat {
                calls: 9,
                usec: 200,
            },
        );
        later.insert("time".into(), CmdStat { calls: 5, usec: 1 });
        let d = commandstats_delta(&s, &later);
        assert_eq!(
            d.len(),
            2,
            "unchanged commands and INFO are left out: {d:?}"
        );
        assert_eq!(d["set"], CmdStat { calls: 5, usec: 15 });
        assert_eq!(calls_of(&d, &["set", "time", "get"]), 10);
    }
}
