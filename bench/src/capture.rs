// SPDX-License-Identifier: MIT OR Apache-2.0
//! What txcoord's client really sends for one uncontended lock: captured with MONITOR while a
//! `LockManager` takes and releases a probe lock, then turned into templates (for
//! redis-benchmark, and for pipelines of the same commands on other keys).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

use txcoord::{AcquireOptions, Client, LockManager};

use crate::config::{AB_TIMEOUT, AB_TTL};

/// The hold id's UUID redis-benchmark sends in place of txcoord's random one.
pub const RB_UUID: &str = "6f1c2d3e-4b5a-4c6d-8e7f-908172635445";
/// The resource redis-benchmark locks: `__rand_int__` becomes a 12-digit number per call.
pub const RB_RESOURCE: &str = "bench:__rand_int__";

const MARK_BEGIN: &str = "txcoord-bench:capture:begin";
const MARK_ACQUIRED: &str = "txcoord-bench:capture:acquired";
const MARK_END: &str = "txcoord-bench:capture:end";

/// One MONITOR line, `<time> [<db> <client>] "ARG" "ARG" ...` (each argument quoted with
/// C-style escapes): the client (`127.0.0.1:5555`, or `lua` for commands run by a script) and
/// the arguments.
pub fn monitor_line(line: &str) -> Option<(String, Vec<Vec<u8>>)> {
    let open = line.find('[')?;
    let close = open + line[open..].find("] ")?;
    let client = line[open + 1..close]
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_string();
    let bytes = &line.as_bytes()[close + 2..];
    let mut args = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'"' {
            i += 1;
            continue;
        }
        i += 1;
        let mut arg = Vec::new();
        while i < bytes.len() && bytes[i] != b'"' {
            if bytes[i] == b'\\' && i + 1 < bytes.len() {
                i += 1;
                match bytes[i] {
                    b'n' => arg.push(b'\n'),
                    b'r' => arg.push(b'\r'),
                    b't' => arg.push(b'\t'),
                    b'a' => arg.push(7),
                    b'b' => arg.push(8),
                    b'x' if i + 2 < bytes.len() => {
                        let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                        arg.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                        i += 2;
                    }
                    other => arg.push(other),
                }
            } else {
                arg.push(bytes[i]);
            }
            i += 1;
        }
        args.push(arg);
        i += 1;
    }
    Some((client, args))
}

/// The commands one uncontended acquire and release sent, as MONITOR showed them (scripts as
/// `EVALSHA`), with what is needed to send them again for other locks.
#[derive(Clone, Debug)]
pub struct Captured {
    pub acquire: Vec<Vec<String>>,
    pub release: Vec<Vec<String>>,
    /// The probe's resource, its hold's UUID and the lock's value in Redis.
    resource: String,
    uuid: String,
    value: String,
}

/// `args` with every `from` replaced by `to`, in order.
fn substitute(cmds: &[Vec<String>], pairs: &[(&str, &str)]) -> Vec<Vec<String>> {
    cmds.iter()
        .map(|c| {
            c.iter()
                .map(|a| {
                    pairs
                        .iter()
                        .fold(a.clone(), |acc, (from, to)| acc.replace(from, to))
                })
                .collect()
        })
        .collect()
}

impl Captured {
    pub fn new(
        acquire: Vec<Vec<String>>,
        release: Vec<Vec<String>>,
        resource: &str,
        value: &str,
    ) -> Result<Captured, String> {
        let uuid = value
            .strip_prefix("2:")
            .and_then(|v| v.get(..36))
            .ok_or_else(|| format!("the lock value {value:?} does not start with 2:<uuid>"))?
            .to_string();
        if acquire.is_empty() || release.is_empty() {
            return Err(format!(
                "MONITOR showed {} acquire and {} release commands",
                acquire.len(),
                release.len()
            ));
        }
        Ok(Captured {
            acquire,
            release,
            resource: resource.to_string(),
            uuid,
            value: value.to_string(),
        })
    }

    /// The acquire and release commands for the lock of `resource`, hold UUID `uuid`. In the
    /// release, the lock's value becomes `value` when given (a value that carries a fencing
    /// token only known from the acquire's reply).
    pub fn instantiate(
        &self,
        resource: &str,
        uuid: &str,
        value: Option<&str>,
    ) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
        let pairs = [
            (self.resource.as_str(), resource),
            (self.uuid.as_str(), uuid),
        ];
        let acquire = substitute(&self.acquire, &pairs);
        let mut release = self.release.clone();
        if let Some(v) = value {
            for c in &mut release {
                for a in c.iter_mut() {
                    if *a == self.value {
                        *a = v.to_string();
                    }
                }
            }
        }
        (acquire, substitute(&release, &pairs))
    }

    /// The commands as redis-benchmark sends them: random lock keys, the hold UUID [`RB_UUID`].
    pub fn for_benchmark(&self) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
        self.instantiate(RB_RESOURCE, RB_UUID, None)
    }

    /// The value a held lock has in Redis when redis-benchmark releases it (see
    /// [`Captured::for_benchmark`]).
    pub fn benchmark_value(&self) -> String {
        self.value.replace(&self.uuid, RB_UUID)
    }

    /// Commands sent per cycle, by name (lower case).
    pub fn sent(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for c in self.acquire.iter().chain(&self.release) {
            *out.entry(c[0].to_ascii_lowercase()).or_insert(0) += 1;
        }
        out
    }

    /// The commands on one line each, for display.
    pub fn describe(&self) -> Vec<String> {
        let (a, r) = self.for_benchmark();
        let line = |c: &Vec<String>| crate::fmt::shell_line(c);
        vec![
            format!(
                "acquire: {}",
                a.iter().map(line).collect::<Vec<_>>().join(" + ")
            ),
            format!(
                "release: {}",
                r.iter().map(line).collect::<Vec<_>>().join(" + ")
            ),
        ]
    }
}

/// `EVAL <source> ...` as `EVALSHA <sha1> ...`: what the client sends once the script is cached.
fn as_evalsha(mut args: Vec<String>) -> Vec<String> {
    if args.len() > 1 && args[0].eq_ignore_ascii_case("EVAL") {
        args[1] = redis::Script::new(&args[1]).get_hash().to_string();
        args[0] = "EVALSHA".into();
    } else if !args.is_empty() {
        args[0] = args[0].to_ascii_uppercase();
    }
    args
}

/// Takes and releases a probe lock with a `LockManager` (with `owner` as its owner id, if
/// given) and returns what its client sent, as MONITOR saw it.
pub fn capture(
    rt: &tokio::runtime::Runtime,
    host: &str,
    port: u16,
    url: &str,
    admin: &mut redis::Connection,
    owner: Option<&str>,
) -> Result<Captured, String> {
    let resource = match owner {
        Some(_) => "bench:probe:owned",
        None => "bench:probe:plain",
    };
    let options = || {
        let o = AcquireOptions::new()
            .set_ttl(AB_TTL)
            .set_timeout(AB_TIMEOUT);
        match owner {
            Some(id) => o.set_owner_id(id),
            None => o,
        }
    };
    // A client that has connected, named its connection and loaded its scripts.
    let (client, mgr) = rt.block_on(async {
        let client = Client::open(url).map_err(|e| e.to_string())?;
        let mgr = LockManager::new(&client);
        for i in 0..3 {
            let warm = format!("bench:probe:warm:{i}");
            mgr.acquire_lock_with(&warm, options())
                .await
                .map_err(|e| e.to_string())?
                .ok_or("a free warm-up lock was busy")?;
            mgr.release_lock(&warm).await.map_err(|e| e.to_string())?;
        }
        Ok::<_, String>((client, mgr))
    })?;
    let mut mon = std::net::TcpStream::connect((host, port))
        .map_err(|e| format!("MONITOR connection: {e}"))?;
    mon.set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(|e| e.to_string())?;
    mon.write_all(b"MONITOR\r\n").map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(mon.try_clone().map_err(|e| e.to_string())?);
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .map_err(|e| format!("MONITOR: {e}"))?;
    if !line.starts_with("+OK") {
        return Err(format!("MONITOR answered {:?}", line.trim()));
    }
    let echo = |admin: &mut redis::Connection, mark: &str| {
        redis::cmd("ECHO")
            .arg(mark)
            .query::<String>(admin)
            .map_err(|e| format!("ECHO: {e}"))
    };
    echo(admin, MARK_BEGIN)?;
    let value = rt.block_on(async {
        let lock = mgr
            .acquire_lock_with(resource, options())
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the probe lock was busy")?;
        Ok::<_, String>(lock.value().unwrap_or_default())
    })?;
    echo(admin, MARK_ACQUIRED)?;
    rt.block_on(mgr.release_lock(resource))
        .map_err(|e| e.to_string())?;
    echo(admin, MARK_END)?;

    // Lines between the marks from the probe's client: not the marks' sender (this program's
    // admin connection), not `lua` (the commands scripts run).
    let (mut acquire, mut release) = (Vec::new(), Vec::new());
    let mut phase = 0;
    let mut admin_client = None::<String>;
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while phase < 3 && std::time::Instant::now() < until {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => return Err(format!("MONITOR: {e}")),
        }
        let Some((who, args)) = monitor_line(line.trim_end()) else {
            continue;
        };
        let args: Vec<String> = args
            .into_iter()
            .map(|a| String::from_utf8_lossy(&a).into_owned())
            .collect();
        let is_mark =
            |m: &str| args.len() == 2 && args[0].eq_ignore_ascii_case("ECHO") && args[1] == m;
        if is_mark(MARK_BEGIN) {
            phase = 1;
            admin_client = Some(who);
            continue;
        }
        if is_mark(MARK_ACQUIRED) {
            phase = 2;
            continue;
        }
        if is_mark(MARK_END) {
            phase = 3;
            continue;
        }
        if phase == 0 || who == "lua" || Some(&who) == admin_client.as_ref() || args.is_empty() {
            continue;
        }
        if phase == 1 {
            acquire.push(as_evalsha(args));
        } else {
            release.push(as_evalsha(args));
        }
    }
    let _ = mon.shutdown(std::net::Shutdown::Both);
    client.close();
    if phase < 3 {
        return Err("MONITOR did not show the end of the capture within 5 s".into());
    }
    Captured::new(acquire, release, resource, &value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_lines() {
        let (who, args) =
            monitor_line(r#"1700000000.123456 [0 127.0.0.1:51234] "SET" "k" "a\"b" "\x00\n" """#)
                .unwrap();
        assert_eq!(who, "127.0.0.1:51234");
        let want: Vec<Vec<u8>> = vec![
            b"SET".to_vec(),
            b"k".to_vec(),
            b"a\"b".to_vec(),
            vec![0, b'\n'],
            Vec::new(),
        ];
        assert_eq!(args, want);
        let (who, args) = monitor_line(r#"1.2 [0 lua] "GET" "k""#).unwrap();
        assert_eq!(who, "lua");
        assert_eq!(args.len(), 2);
        assert!(monitor_line("+OK").is_none());
    }

    fn cmd(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn templates() {
        let uuid = "0d5e2f4a-1111-4222-8333-944455566677";
        let value = format!("2:{uuid}:1750000000000000:0:saga-1");
        let c = Captured::new(
            vec![cmd(&[
                "EVALSHA",
                "abc",
                "4",
                "lock:bench:probe:owned",
                "{lock:bench:probe:owned}:~h",
                &format!("2:{uuid}"),
            ])],
            vec![cmd(&[
                "EVALSHA",
                "def",
                "1",
                "lock:bench:probe:owned",
                &value,
            ])],
            "bench:probe:owned",
            &value,
        )
        .unwrap();
        let (a, r) = c.for_benchmark();
        assert_eq!(a[0][3], "lock:bench:__rand_int__");
        assert_eq!(a[0][4], "{lock:bench:__rand_int__}:~h");
        assert_eq!(a[0][5], format!("2:{RB_UUID}"));
        assert_eq!(r[0][4], c.benchmark_value());
        assert_eq!(
            c.benchmark_value(),
            format!("2:{RB_UUID}:1750000000000000:0:saga-1")
        );
        let (_, r) = c.instantiate("x:1", "u", Some("2:u:17:0:saga-1"));
        assert_eq!(r[0][3], "lock:x:1");
        assert_eq!(r[0][4], "2:u:17:0:saga-1");
        assert_eq!(c.sent().get("evalsha"), Some(&2));
        assert!(Captured::new(vec![], vec![], "r", &value).is_err());
        assert!(Captured::new(a, r, "r", "no-version").is_err());
    }

    #[test]
    fn eval_becomes_evalsha() {
        let src = "return 1";
        let got = as_evalsha(cmd(&["eval", src, "0"]));
        assert_eq!(got[0], "EVALSHA");
        assert_eq!(got[1], redis::Script::new(src).get_hash());
        assert_eq!(as_evalsha(cmd(&["time"])), cmd(&["TIME"]));
    }
}
