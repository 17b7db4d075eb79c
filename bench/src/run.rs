// SPDX-License-Identifier: MIT OR Apache-2.0
//! One run of every scenario, in order, on one server.

use std::time::Duration;

use txcoord::protocol;

use crate::capture::capture;
use crate::config::{Config, B_TASKS, C2_PAUSE};
use crate::contention::{contend, contention_stats, Lib};
use crate::cost;
use crate::cycles::{cycles_pair, raw_cycles};
use crate::fmt::secs;
use crate::hold::{hold_rslock_manual, hold_rslock_using, hold_txcoord};
use crate::json::report_json;
use crate::output::{print_a, print_b, print_c, print_c2, print_captured, print_cost, print_d};
use crate::rbench::{self, print_ceiling};
use crate::report::{print_targets, Failures, Report};
use crate::rss::{print_rss, run_rss_probe, PROBE_AB, PROBE_SECS};
use crate::server::{clock_ticks_per_second, machine, Server};
use crate::summary::print_summary;

/// The owner id of the probe lock taken with an owner id (a saga's id, in practice).
const PROBE_OWNER: &str = "bench-saga";

pub fn run() -> i32 {
    let began = std::time::Instant::now();
    let cfg = Config::from_env();
    let server = match Server::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("BENCH_REDIS_URL: {e}");
            return 2;
        }
    };
    if let Some(why) = server.refusal() {
        eprintln!("{why}");
        return 2;
    }
    let url = server.url();
    let mut admin = match server.connection() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let m = machine(&mut admin);
    let ticks = clock_ticks_per_second();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut failures = Failures::default();
    let mut json_failed = false;

    println!("# txcoord benchmark scenarios\n");
    println!(
        "machine: {} × {}, Redis {} ({}), tokio multi-thread runtime ({} workers)",
        m.nproc,
        m.cpu_model,
        m.redis_version,
        server.describe(),
        m.nproc
    );
    println!(
        "mode: {} ({}); server cost {} cycles × {} runs per side, {} tasks; C, C2 and D run {} \
         each, A and B {} each\n",
        if cfg.quick { "quick" } else { "full" },
        cfg.mode_reason,
        cfg.cost_cycles,
        cfg.cost_reps,
        cfg.cost_tasks,
        secs(cfg.secs),
        secs(cfg.ab_secs),
    );
    if cfg!(debug_assertions) {
        println!(
            "build: unoptimised (as `cargo test` builds it): the figures below only show that \
             the program runs; use `cargo bench` for measurements\n"
        );
    }

    // Every txcoord script in the server's cache, so no scenario pays a NOSCRIPT round trip.
    for src in [
        &*protocol::ACQUIRE_LUA,
        &*protocol::RELEASE_LUA,
        &*protocol::RELEASE_HOLD_LUA,
        &*protocol::EXTEND_LUA,
        &*protocol::CANCEL_LUA,
        &*protocol::INDEX_LUA,
        &*protocol::OWNER_INDEX_LUA,
        rbench::SEED_RELEASE_LUA,
    ] {
        let loaded: redis::RedisResult<String> =
            redis::cmd("SCRIPT").arg("LOAD").arg(src).query(&mut admin);
        if let Err(e) = loaded {
            eprintln!("SCRIPT LOAD failed: {e}");
        }
    }

    let (host, port) = (server.host().to_string(), server.port());
    let plain = capture(&rt, &host, port, &url, &mut admin, None);
    let owned = capture(&rt, &host, port, &url, &mut admin, Some(PROBE_OWNER));
    for (what, c) in [
        ("without an owner id", &plain),
        ("with an owner id", &owned),
    ] {
        if let Err(e) = c {
            failures.add(format!("capturing an uncontended lock {what}: {e}"));
        }
    }

    let sides = cost::sides(cfg.cost_tasks, plain.as_ref().ok(), owned.as_ref().ok());
    let cost = cost::measure(&rt, &server, &mut admin, &url, &cfg, &sides);
    for s in cost.sides.iter().filter(|s| s.id.starts_with("txcoord")) {
        for e in &s.errors {
            failures.add(format!("server cost, {}: {e}", s.label));
        }
    }

    let mut ceiling_sides = vec![rbench::seed_side()];
    if let Ok(c) = &plain {
        ceiling_sides.push(rbench::captured_side("txcoord", "txcoord", c));
    }
    if let Ok(c) = &owned {
        ceiling_sides.push(rbench::captured_side(
            "txcoord-owner",
            "txcoord, owner id",
            c,
        ));
    }
    let ceiling = rbench::ceiling(&cfg, &server, &mut admin, &ceiling_sides, cfg.cost_reps);

    let (tx_sent, rs_sent): (Vec<String>, Vec<&str>) = (
        match &plain {
            Ok(c) => c.sent().into_keys().collect(),
            Err(_) => ["set", "time", "evalsha", "eval"]
                .map(String::from)
                .to_vec(),
        },
        vec!["set", "evalsha", "eval"],
    );
    let tx_sent: Vec<&str> = tx_sent.iter().map(String::as_str).collect();
    let (tx_a, rs_a) = cycles_pair(
        &rt,
        &mut admin,
        &url,
        1,
        cfg.ab_secs,
        "a",
        &tx_sent,
        &rs_sent,
    );
    let raw_a = plain
        .as_ref()
        .ok()
        .map(|c| rt.block_on(raw_cycles(&url, c, cfg.ab_secs)));
    let (tx_b, rs_b) = cycles_pair(
        &rt,
        &mut admin,
        &url,
        B_TASKS,
        cfg.ab_secs,
        "b",
        &tx_sent,
        &rs_sent,
    );
    for e in &tx_a.errors {
        failures.add(format!("A: {e}"));
    }
    for e in &tx_b.errors {
        failures.add(format!("B: {e}"));
    }
    let mut report = Report {
        plain,
        owned,
        cost,
        ceiling,
        raw_a,
        tx_a,
        rs_a,
        tx_b,
        rs_b,
        c: Vec::new(),
        c2: Vec::new(),
        d: Vec::new(),
        checks: Vec::new(),
    };
    print_captured(&report);
    print_cost(&report.cost, &mut report.checks);
    print_ceiling(&report.ceiling);
    print_a(&report, &cfg);
    print_b(&report, &cfg);

    for pause in [Duration::ZERO, C2_PAUSE] {
        let tag = if pause.is_zero() { "C" } else { "C2" };
        let mut results = Vec::new();
        for lib in [Lib::TxDefault, Lib::TxFair, Lib::Rslock] {
            let key = format!("bench:{tag}:{}", lib.label().replace(' ', "-"));
            let run = rt.block_on(contend(&cfg, &url, lib, key, pause));
            let s = contention_stats(&run);
            if lib.is_txcoord() {
                let who = format!("{tag} {}", lib.label());
                for e in &s.errors {
                    failures.add(format!("{who}: {e}"));
                }
                if s.overlaps > 0 {
                    failures.add(format!(
                        "{who}: {} acquisitions overlapped the previous holder",
                        s.overlaps
                    ));
                }
                if s.token_regressions > 0 {
                    failures.add(format!(
                        "{who}: {} fencing tokens did not increase",
                        s.token_regressions
                    ));
                }
            }
            results.push((lib, s));
        }
        if pause.is_zero() {
            report.c = results;
            print_c(&mut report, &cfg);
        } else {
            report.c2 = results;
            print_c2(&mut report, &cfg);
        }
    }

    // Let the C/C2 clients' lingering unsubscribes finish before measuring CPU.
    std::thread::sleep(Duration::from_millis(2_500));
    report.d = vec![
        hold_txcoord(&rt, &mut admin, &url, cfg.secs, ticks),
        hold_rslock_using(&rt, &mut admin, &url, cfg.secs, ticks),
        hold_rslock_manual(&rt, &mut admin, &url, cfg.secs, ticks),
    ];
    for e in &report.d[0].errors {
        failures.add(format!("D: {e}"));
    }
    print_d(&mut report, &cfg, ticks);

    print_targets(&report);
    print_summary(&report, &cfg, &m);

    if let Ok(path) = std::env::var("BENCH_JSON") {
        if !path.is_empty() {
            let rss: Vec<(&str, Result<u64, String>)> = ["txcoord", "rslock"]
                .into_iter()
                .map(|lib| (lib, run_rss_probe(lib, &url)))
                .collect();
            print_rss(&rss, &cfg);
            let rss_note = format!(
                "peak RSS (VmHWM) of a child process running A and B for {} and C, C2, D for {} \
                 with that library alone",
                secs(PROBE_AB.min(cfg.ab_secs)),
                secs(PROBE_SECS.min(cfg.secs))
            );
            let json = report_json(&report, &cfg, &m, &rss, &server, rss_note);
            match std::fs::write(&path, json) {
                Ok(()) => println!("figures written to {path}\n"),
                Err(e) => {
                    eprintln!("cannot write BENCH_JSON {path}: {e}");
                    json_failed = true;
                }
            }
        }
    }

    println!("total run time: {:.0} s", began.elapsed().as_secs_f64());
    drop(admin);
    rt.shutdown_timeout(Duration::from_secs(2));
    drop(server);
    if failures.0.is_empty() {
        if json_failed {
            2
        } else {
            0
        }
    } else {
        println!("\ntxcoord problems seen during the run:");
        for f in &failures.0 {
            println!("- {f}");
        }
        1
    }
}
