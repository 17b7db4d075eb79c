// SPDX-License-Identifier: MIT OR Apache-2.0
//! The tables of each scenario, printed as it ends.

use crate::config::{Config, B_TASKS, C2_PAUSE, C_HOLD, C_TASKS, D_LOCKS, D_TTL};
use crate::contention::{contention_table, print_contention_notes, Lib};
use crate::cost::Cost;
use crate::cycles::Cycles;
use crate::fmt::{dash, ms_opt, num, num_opt, percent, percentile, rate, secs, Table};
use crate::report::{c2_checks, c_checks, cost_checks, print_checks, Check, Report};

pub fn print_captured(r: &Report) {
    println!("## What txcoord sends for one uncontended lock (captured with MONITOR)\n");
    for (what, c) in [
        ("without an owner id", &r.plain),
        ("with an owner id", &r.owned),
    ] {
        match c {
            Ok(c) => {
                println!("- {what}:");
                for line in c.describe() {
                    println!("  - {line}");
                }
            }
            Err(e) => println!("- {what}: not captured: {e}"),
        }
    }
    println!(
        "\nLockManager::acquire_lock(r, 30 s, 10 s) (or acquire_lock_with an owner id) and \
         release_lock(r) on a free lock, as MONITOR showed them from the client's connection \
         (the commands scripts run are not listed), the lock key replaced by redis-benchmark's \
         random key and the hold's UUID by a fixed one.\n"
    );
}

pub fn print_cost(cost: &Cost, checks: &mut Vec<Check>) {
    println!(
        "## Server cost per uncontended cycle: {} acquire+release cycles on distinct resources, \
         {} runs per side, alternating\n",
        num(cost.cycles as f64),
        cost.reps
    );
    let mut t = Table::new(&[
        "side",
        "server CPU µs/cycle (median)",
        "runs",
        "ratio",
        "cmds sent/cycle",
        "cmds run/cycle (incl. scripts)",
        "in-command µs/cycle",
        "client cycles/s",
    ]);
    for s in &cost.sides {
        let runs = s
            .runs_us
            .iter()
            .map(|x| format!("{x:.2}"))
            .collect::<Vec<_>>()
            .join(" / ");
        t.row(vec![
            s.label.to_string(),
            s.median_us.map(|x| format!("{x:.2}")).unwrap_or_else(dash),
            if runs.is_empty() { dash() } else { runs },
            match s.ratio {
                Some(q) if s.id == s.baseline => format!("{q:.2}× (baseline)"),
                Some(q) => format!("{q:.2}× {}", s.baseline),
                None => dash(),
            },
            match (s.sent_per_cycle, s.sent_measured_per_cycle) {
                (0.0, _) => dash(),
                (x, Some(m)) => format!("{x:.0} (counted {m:.2})"),
                (x, None) => format!("{x:.0}"),
            },
            s.run_per_cycle
                .map(|x| format!("{x:.2}"))
                .unwrap_or_else(dash),
            s.in_command_us
                .map(|x| format!("{x:.2}"))
                .unwrap_or_else(dash),
            num_opt(s.cycles_per_s),
        ]);
    }
    println!("{}", t.render());
    for s in &cost.sides {
        let cmds: Vec<String> = s
            .per_command
            .iter()
            .map(|c| {
                format!(
                    "{}{} {:.2}/cycle {:.2} µs",
                    c.name,
                    if c.sent { "" } else { " (in scripts)" },
                    c.calls_per_cycle,
                    c.usec_per_call
                )
            })
            .collect();
        println!("- {}: {}", s.label, s.how);
        if !cmds.is_empty() {
            println!("  commandstats per cycle, µs per call: {}", cmds.join(", "));
        }
        for e in s.errors.iter().take(3) {
            println!("  error: {e}");
        }
    }
    println!(
        "\nserver CPU = Δ(used_cpu_user + used_cpu_sys) of the redis-server (INFO cpu, all its \
         threads) over the measured cycles, after {} warm-up cycles per run on a flushed server. \
         Ratios are to the seed's commands sent the same way (client tasks, or pipelined). cmds \
         sent = what the client writes per cycle (counted: those commands in INFO commandstats, \
         so a retry would show); run = every command INFO commandstats counted, with those \
         scripts ran; in-command µs = commandstats' own timing of the commands sent (an \
         EVALSHA's includes its script's commands); the rest of the CPU is reading, parsing, \
         replying and the event loop. The client shares the machine's cores with the server.\n",
        (cost.cycles / 20).clamp(100, 2_000)
    );
    let new = cost_checks(cost);
    print_checks(&new);
    checks.extend(new);
}

fn error_note(errors: &[String]) -> String {
    if errors.is_empty() {
        String::new()
    } else {
        format!("; {} (first: {})", errors.len(), errors[0])
    }
}

fn cycles_row(t: &mut Table, name: &str, c: &Cycles, note: String) {
    t.row(vec![
        name.into(),
        num(c.rate()),
        ms_opt(percentile(&c.lat, 0.5)),
        ms_opt(percentile(&c.lat, 0.99)),
        c.sent_per_cycle
            .map(|x| format!("{x:.2}"))
            .unwrap_or_else(dash),
        format!("{note}{}", error_note(&c.errors)),
    ]);
}

const CYCLE_HEAD: [&str; 6] = [
    "client",
    "cycles/s",
    "cycle p50 ms",
    "cycle p99 ms",
    "cmds sent/cycle",
    "note",
];

pub fn print_a(r: &Report, cfg: &Config) {
    println!(
        "## (A) one task, acquire + release cycles, {}\n",
        secs(cfg.ab_secs)
    );
    let mut t = Table::new(&CYCLE_HEAD);
    cycles_row(
        &mut t,
        "txcoord",
        &r.tx_a,
        "LockManager::acquire_lock(r, 30 s, 10 s) + release_lock(r)".into(),
    );
    cycles_row(
        &mut t,
        "rslock",
        &r.rs_a,
        "lock(r, 30 s) + unlock(&lock)".into(),
    );
    if let Some(raw) = &r.raw_a {
        cycles_row(
            &mut t,
            "redis crate, by hand",
            raw,
            "txcoord's captured commands on a redis::aio::ConnectionManager (RESP3), the \
             acquire's in one write: the floor for a Rust client on this runtime"
                .into(),
        );
    }
    println!("{}", t.render());
    if let Some(raw) = r.raw_a.as_ref().filter(|raw| raw.rate() > 0.0) {
        println!(
            "txcoord runs at {} of the redis crate sending the same commands by hand.\n",
            percent(r.tx_a.rate() / raw.rate())
        );
    }
}

pub fn print_b(r: &Report, cfg: &Config) {
    println!(
        "## (B) {B_TASKS} tasks on their own keys, one client (one connection) per library, {}\n",
        secs(cfg.ab_secs)
    );
    let mut t = Table::new(&CYCLE_HEAD);
    cycles_row(
        &mut t,
        "txcoord",
        &r.tx_b,
        "one Client, one LockManager, acquire_lock + release_lock".into(),
    );
    cycles_row(
        &mut t,
        "rslock",
        &r.rs_b,
        "one LockManager, lock + unlock".into(),
    );
    for (id, name) in [
        ("txcoord", "ceiling, txcoord's commands"),
        ("seed", "ceiling, the seed's commands"),
    ] {
        t.row(vec![
            name.into(),
            num_opt(r.ceiling_of(id)),
            dash(),
            dash(),
            dash(),
            "redis-benchmark -c 50 -P 16, one command per run (see the ceiling table)".into(),
        ]);
    }
    println!("{}", t.render());
    if let Some(c) = r.ceiling_of("txcoord").filter(|c| *c > 0.0) {
        println!(
            "txcoord's B is {} of the pipelined ceiling of its commands.\n",
            percent(r.tx_b.rate() / c)
        );
    }
}

pub fn print_c(r: &mut Report, cfg: &Config) {
    let title = format!(
        "## (C) {C_TASKS} tasks on one key, hold {} ms, {} (one client per task)",
        C_HOLD.as_millis(),
        secs(cfg.secs)
    );
    println!("{}", contention_table(&title, &r.c));
    print_contention_notes(&r.c, cfg);
    if let Some((_, s)) = r.c.iter().find(|(l, _)| *l == Lib::TxFair) {
        let new = c_checks(s);
        print_checks(&new);
        r.checks.extend(new);
    }
}

pub fn print_c2(r: &mut Report, cfg: &Config) {
    let title = format!(
        "## (C2) {C_TASKS} tasks on one key, hold {} ms, pause {} ms after each release, {}",
        C_HOLD.as_millis(),
        C2_PAUSE.as_millis(),
        secs(cfg.secs)
    );
    println!("{}", contention_table(&title, &r.c2));
    print_contention_notes(&r.c2, cfg);
    let new: Vec<Check> =
        r.c2.iter()
            .filter(|(l, _)| l.is_txcoord())
            .flat_map(|(l, s)| c2_checks(*l, s))
            .collect();
    print_checks(&new);
    r.checks.extend(new);
}

pub fn print_d(r: &mut Report, cfg: &Config, ticks: u64) {
    println!(
        "## (D) {D_LOCKS} locks, ttl {} ms, held {}\n",
        D_TTL.as_millis(),
        secs(cfg.secs)
    );
    let mut t = Table::new(&[
        "client",
        "renewal every",
        "held at end",
        "Redis cmds/s sent",
        "Redis cmds/s incl. in scripts",
        "client CPU % of one core",
    ]);
    for h in &r.d {
        t.row(vec![
            h.label.clone(),
            h.renewal.clone(),
            format!("{}/{D_LOCKS}", h.held_at_end),
            rate(h.top_level_per_s),
            rate(h.total_per_s),
            h.cpu_pct.map(|c| format!("{c:.2}%")).unwrap_or_else(dash),
        ]);
    }
    println!("{}", t.render());
    for h in &r.d {
        let cmds: Vec<String> = h
            .per_cmd
            .iter()
            .map(|(n, x)| format!("{n} {}", rate(*x)))
            .collect();
        println!(
            "- {}, calls/s per command over {}: {}",
            h.label,
            secs(h.window),
            if cmds.is_empty() {
                dash()
            } else {
                cmds.join(", ")
            }
        );
        for n in &h.notes {
            println!("  {n}");
        }
        for e in &h.errors {
            println!("  error: {e}");
        }
    }
    println!(
        "\n'sent' = the scripts the clients sent (EVALSHA, EVAL); 'incl. in scripts' adds the\n\
         commands the scripts ran inside Redis (INFO commandstats counts both; the benchmark's own\n\
         INFO is left out). CPU = user + system time of this whole process (/proc/self/stat,\n\
         {ticks} ticks/s, so ±{:.2}% over this window) while nothing but the renewals runs. rslock\n\
         renews by itself only inside using(), whose period is fixed; the last row renews by hand.\n",
        100.0 / ticks as f64 / cfg.secs.as_secs_f64().max(0.1)
    );
    let tx_cpu = r.d.first().and_then(|h| h.cpu_pct);
    let rs_cpu = r.d.get(1).and_then(|h| h.cpu_pct);
    let check = Check {
        scenario: "D".into(),
        target: "txcoord client CPU ≤ 2% of one core".into(),
        value: match tx_cpu {
            Some(c) => format!(
                "{c:.2}% (rslock using(): {})",
                rs_cpu.map(|c| format!("{c:.2}%")).unwrap_or_else(dash)
            ),
            None => "no CPU figure".into(),
        },
        met: tx_cpu.map(|c| c <= 2.0),
    };
    print_checks(std::slice::from_ref(&check));
    r.checks.push(check);
}
