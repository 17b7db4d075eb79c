// SPDX-License-Identifier: MIT OR Apache-2.0
//! Peak RSS per library: this program again, in a child process, one library alone.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::config::{Config, B_TASKS, C2_PAUSE};
use crate::contention::{contend, contention_stats, Lib};
use crate::cycles::{rslock_cycles, txcoord_cycles};
use crate::fmt::{dash, secs, Table};
use crate::hold::{hold_rslock_using, hold_txcoord};
use crate::server::{clock_ticks_per_second, proc_status_kib, Server};

/// Lengths of A/B and of C, C2 and D in the RSS probe (shorter than the measured run: the
/// figure is the footprint of the library and its connections, not of a long run).
pub const PROBE_AB: Duration = Duration::from_secs(1);
pub const PROBE_SECS: Duration = Duration::from_secs(2);

/// Runs this program as `BENCH_RSS_PROBE=<lib>` and reads the peak RSS it prints.
pub fn run_rss_probe(lib: &str, url: &str) -> Result<u64, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut child = Command::new(exe)
        .args(std::env::args().skip(1))
        .env("BENCH_RSS_PROBE", lib)
        .env("BENCH_REDIS_URL", url)
        .env_remove("BENCH_JSON")
        .env_remove("BENCH_SOAK")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("spawning the probe: {e}"))?;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let limit = Duration::from_secs(180);
    let started = std::time::Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("the RSS probe ran longer than 180 s; killed".into());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("waiting for the probe: {e}")),
        }
    };
    let out = reader.join().unwrap_or_default();
    if !status.success() {
        return Err(format!("the RSS probe failed ({status}): {}", out.trim()));
    }
    out.lines()
        .find_map(|l| l.strip_prefix("BENCH_PEAK_RSS_KIB="))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("no BENCH_PEAK_RSS_KIB line in {:?}", out.trim()))
}

pub fn print_rss(rss: &[(&str, Result<u64, String>)], cfg: &Config) {
    println!("## Peak RSS\n");
    let mut t = Table::new(&["library", "peak RSS MiB", "note"]);
    for (lib, r) in rss {
        let (v, note) = match r {
            Ok(k) => (format!("{:.1}", *k as f64 / 1024.0), String::new()),
            Err(e) => (dash(), e.clone()),
        };
        t.row(vec![lib.to_string(), v, note]);
    }
    println!("{}", t.render());
    println!(
        "VmHWM of a child process of this program that runs A and B ({} each) and C, C2 and D \
         ({} each) for that library alone: the library, its connections, the tokio runtime and \
         the harness's latency samples (16 bytes per cycle).\n",
        secs(PROBE_AB.min(cfg.ab_secs)),
        secs(PROBE_SECS.min(cfg.secs))
    );
}

/// The child side of [`run_rss_probe`]: the scenarios for one library, then `VmHWM`.
pub fn rss_probe(lib: &str) -> i32 {
    let cfg = Config::from_env();
    let ab = PROBE_AB.min(cfg.ab_secs);
    let secs = PROBE_SECS.min(cfg.secs);
    let cfg = Config {
        secs,
        ab_secs: ab,
        ..cfg
    };
    let server = match Server::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rss probe: {e}");
            return 2;
        }
    };
    let url = server.url();
    let mut admin = match server.connection() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rss probe: {e}");
            return 2;
        }
    };
    let ticks = clock_ticks_per_second();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut errors: Vec<String> = Vec::new();
    let tag = format!("rss-{lib}");
    match lib {
        "txcoord" => {
            for tasks in [1, B_TASKS] {
                let c = rt.block_on(txcoord_cycles(&url, tasks, ab, &format!("{tag}-{tasks}")));
                errors.extend(c.errors);
            }
            for pause in [Duration::ZERO, C2_PAUSE] {
                for l in [Lib::TxDefault, Lib::TxFair] {
                    let key = format!("bench:{tag}:{}:{}", l.mode(), pause.as_millis());
                    let run = rt.block_on(contend(&cfg, &url, l, key, pause));
                    errors.extend(contention_stats(&run).errors);
                }
            }
            let h = hold_txcoord(&rt, &mut admin, &url, secs, ticks);
            errors.extend(h.errors);
        }
        "rslock" => {
            for tasks in [1, B_TASKS] {
                let c = rt.block_on(rslock_cycles(&url, tasks, ab, &format!("{tag}-{tasks}")));
                errors.extend(c.errors);
            }
            for pause in [Duration::ZERO, C2_PAUSE] {
                let key = format!("bench:{tag}:{}", pause.as_millis());
                let run = rt.block_on(contend(&cfg, &url, Lib::Rslock, key, pause));
                errors.extend(contention_stats(&run).errors);
            }
            let h = hold_rslock_using(&rt, &mut admin, &url, secs, ticks);
            errors.extend(h.errors);
        }
        other => {
            eprintln!("BENCH_RSS_PROBE={other:?}: not a library of this program");
            return 2;
        }
    }
    for e in errors.iter().take(5) {
        eprintln!("rss probe {lib}: {e}");
    }
    let peak = proc_status_kib("VmHWM").unwrap_or(0);
    rt.shutdown_timeout(Duration::from_secs(2));
    println!("BENCH_PEAK_RSS_KIB={peak}");
    0
}
