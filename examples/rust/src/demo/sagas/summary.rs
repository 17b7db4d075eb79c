// SPDX-License-Identifier: MIT OR Apache-2.0
//! The saga story's summary, checked on the complete log, the records and `/metrics`: sagas
//! per language and final status, the stalled saga, the deadlock, the failover, the alerts,
//! a metrics excerpt and the wait-for graph. What did not happen as told goes to `broken`.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::printer::{aborted_by_probe, alert_key, WAIT_SHOWN_MS};
use super::Story;
use crate::demo::event::{Event, Who};
use crate::demo::table::Table;

/// The gauges of the seed (and txcoord's stuck-by-reason), as the excerpt shows them.
const METRICS: [&str; 7] = [
    "sagas_active_total",
    "sagas_completed_total",
    "sagas_failed_total",
    "saga_success_rate",
    "sagas_stuck_total",
    "txcoord_sagas_stuck_by_reason",
    "saga_duration_seconds_count",
];

const STATUSES: [&str; 3] = ["COMPLETED", "COMPENSATED", "FAILED"];

/// The complete log, time-ordered, and what the sections share.
struct Log<'a> {
    events: &'a [Event],
    story: &'a Story,
    /// Saga id -> its worker, the status it should end in, the status it ended in.
    sagas: BTreeMap<String, (Who, &'static str, String)>,
}

impl Log<'_> {
    fn find(&self, id: &str, ev: &str) -> Option<&Event> {
        self.events.iter().find(|e| e.ev == ev && e.str("id") == id)
    }

    /// Seconds since the story began.
    fn at(&self, t: f64) -> String {
        format!("{:.1} s", (t - self.story.start) / 1000.0)
    }

    fn count(&self, status: &str) -> usize {
        self.sagas.values().filter(|s| s.2 == status).count()
    }
}

pub(super) fn summary(events: &mut [Event], story: &Story, broken: &mut Vec<String>) {
    events.sort_by(|a, b| a.t.total_cmp(&b.t));
    let mut log = Log {
        events,
        story,
        sagas: BTreeMap::new(),
    };
    let expected = story
        .sagas
        .iter()
        .map(|(w, s)| (*w, s.id.clone(), s.expected()))
        .chain([
            (story.stalled.0, story.stalled.1.id.clone(), "COMPENSATED"),
            (
                story.deadlock.strong.0,
                story.deadlock.strong.1.id.clone(),
                "COMPLETED",
            ),
            (
                story.deadlock.weak.0,
                story.deadlock.weak.1.id.clone(),
                "FAILED",
            ),
        ]);
    for (who, id, want) in expected {
        let status = log.find(&id, "finished").map_or("-", |e| e.str("status"));
        if status != want {
            broken.push(format!("{id} ended {status}, expected {want}"));
        }
        match story.records.get(&id) {
            Some(r) if r.status.as_str() == status => {}
            Some(r) => broken.push(format!("{id}: its record says {}, not {status}", r.status)),
            None => broken.push(format!("{id}: no record in the repository")),
        }
        log.sagas.insert(id, (who, want, status.to_string()));
    }

    println!("\nsummary\n");
    print!("{}", sagas_table(&log, broken));
    println!();
    let mut t = Table::new(&["scene", "what happened"]);
    t.row(vec!["stalled saga".into(), stalled(&log, broken)]);
    t.row(vec!["deadlock".into(), deadlock(&log, broken)]);
    t.row(vec!["monitor failover".into(), failover(&log, broken)]);
    t.row(vec![
        "alerts (the sidecars' log)".into(),
        alerts(&log, broken),
    ]);
    print!("{}", t.render());
    metrics(&log, broken);
    graph(story);
}

/// Sagas per worker and final status; lock waits, and how many were behind a saga of another
/// language.
fn sagas_table(log: &Log, broken: &mut Vec<String>) -> String {
    let mut last_holder: HashMap<&str, &str> = HashMap::new();
    let mut waits: HashMap<Who, (usize, usize, f64)> = HashMap::new();
    for e in log.events.iter().filter(|e| e.ev == "locked") {
        let before = last_holder.insert(e.str("resource"), e.str("id"));
        let waited = e.num("waited_ms").unwrap_or(0.0);
        if waited >= WAIT_SHOWN_MS {
            let w = waits.entry(e.who).or_default();
            w.0 += 1;
            w.2 = w.2.max(waited);
            let holder = before.and_then(|h| log.sagas.get(h)).map(|s| s.0);
            if holder.is_some_and(|o| o != e.who) {
                w.1 += 1;
            }
        }
    }
    let mut t = Table::new(&[
        "worker",
        ">sagas",
        ">COMPLETED",
        ">COMPENSATED",
        ">FAILED",
        &format!(">lock waits ≥ {WAIT_SHOWN_MS:.0} ms"),
        ">behind another language",
        ">longest wait ms",
    ]);
    let mut cross = 0;
    for who in super::WORKERS {
        let mine: Vec<&str> = log
            .sagas
            .values()
            .filter(|s| s.0 == who)
            .map(|s| s.2.as_str())
            .collect();
        let (n, behind, longest) = waits.get(&who).copied().unwrap_or_default();
        cross += behind;
        let mut row = vec![log.story.versions[&who].clone(), mine.len().to_string()];
        row.extend(
            STATUSES
                .iter()
                .map(|s| mine.iter().filter(|m| *m == s).count().to_string()),
        );
        row.extend([n.to_string(), behind.to_string(), format!("{longest:.0}")]);
        t.row(row);
    }
    if cross == 0 {
        broken.push("no saga waited for a lock held by another language".into());
    }
    t.render()
}

/// The sidecars that reported `key` > 0 in a pass (`retried`, `compensated`).
fn passes_with(log: &Log, key: &str) -> String {
    let mut who: Vec<&str> = Vec::new();
    for e in log.events.iter().filter(|e| e.ev == "pass") {
        if e.v[key].as_u64().unwrap_or(0) > 0 && !who.contains(&e.who.name()) {
            who.push(e.who.name());
        }
    }
    if who.is_empty() {
        "?".into()
    } else {
        who.join(", ")
    }
}

/// The stalled saga: stuck for no progress, retried up to the limit, COMPENSATING, then
/// compensated by its worker.
fn stalled(log: &Log, broken: &mut Vec<String>) -> String {
    let (who, saga) = &log.story.stalled;
    let records: Vec<&Event> = log
        .events
        .iter()
        .filter(|e| e.ev == "record" && e.str("id") == saga.id)
        .collect();
    let first = records
        .iter()
        .find(|e| e.v["retry_count"].as_u64() == Some(1));
    if first.map(|e| e.str("stuck_reason")) != Some("no-progress") {
        broken.push(format!(
            "{}: not first found stuck for no-progress ({:?})",
            saga.id,
            first.map(|e| e.str("stuck_reason"))
        ));
    }
    let max = u64::from(log.story.settings.max_retries);
    let retries = records
        .iter()
        .filter_map(|e| e.v["retry_count"].as_u64())
        .max()
        .unwrap_or(0);
    let compensating = records.iter().find(|e| e.str("status") == "COMPENSATING");
    if retries != max || compensating.is_none() {
        broken.push(format!(
            "{}: {retries} retries (limit {max}), COMPENSATING seen: {}",
            saga.id,
            compensating.is_some()
        ));
    }
    format!(
        "{} ({}): stalled at {}; found stuck (no-progress) and retried by {} ({retries} \
         retries); marked COMPENSATING by {}, seen by its worker at {}; COMPENSATED by its \
         worker at {}",
        saga.id,
        who.name(),
        log.find(&saga.id, "stalled")
            .map_or("-".into(), |e| log.at(e.t)),
        passes_with(log, "retried"),
        passes_with(log, "compensated"),
        compensating.map_or("-".into(), |e| log.at(e.t)),
        log.find(&saga.id, "finished")
            .map_or("-".into(), |e| log.at(e.t)),
    )
}

/// The deadlock: one victim (the lower priority), how long breaking it took and who broke it.
fn deadlock(log: &Log, broken: &mut Vec<String>) -> String {
    let story = log.story;
    let (strong_who, strong) = &story.deadlock.strong;
    let (weak_who, weak) = &story.deadlock.weak;
    let victims: Vec<&Event> = log.events.iter().filter(|e| e.ev == "victim").collect();
    let victim = victims.first();
    if victims.len() != 1 || victim.map(|e| e.str("id")) != Some(weak.id.as_str()) {
        broken.push(format!(
            "deadlock victims: {:?}, expected {} alone",
            victims.iter().map(|e| e.str("id")).collect::<Vec<_>>(),
            weak.id
        ));
    }
    let took = match (story.deadlock_formed, victim) {
        (Some(formed), Some(v)) => format!("{:.2} s", (v.t - formed) / 1000.0),
        _ => "-".into(),
    };
    // A monitor pass that broke a deadlock while this one stood.
    let formed = story.deadlock_formed.unwrap_or(f64::INFINITY);
    let until = victim.map_or(f64::NEG_INFINITY, |v| v.t + 500.0);
    let by_monitor = log.events.iter().any(|e| {
        e.ev == "pass"
            && e.v["deadlocks"].as_u64().unwrap_or(0) > 0
            && (formed..=until).contains(&e.t)
    });
    let breaker = if by_monitor {
        "the monitor's sweep".to_string()
    } else {
        let probe = log
            .events
            .iter()
            .find(|e| e.ev == "log" && aborted_by_probe(e).is_some())
            .map_or(String::new(), |e| {
                format!(" (the probe in {}'s process)", e.who.name())
            });
        format!("the waiting acquisitions themselves{probe}")
    };
    let captured = story.graph.as_ref().is_some_and(|g| {
        g.cycles
            .iter()
            .any(|c| c.contains(&strong.id) && c.contains(&weak.id))
    });
    if !captured {
        broken.push("the wait-for graph was not captured with the deadlock in it".into());
    }
    format!(
        "{} ({}, priority {}) and {} ({}, priority {}): victim {}, broken {took} after the \
         second wait began, by {breaker}; {} {}",
        strong.id,
        strong_who.name(),
        strong.priority,
        weak.id,
        weak_who.name(),
        weak.priority,
        victim.map_or("NONE", |e| e.str("id")),
        strong.id,
        log.sagas.get(&strong.id).map_or("-", |s| s.2.as_str()),
    )
}

/// The leader killed, and how long the other sidecar took to lead.
fn failover(log: &Log, broken: &mut Vec<String>) -> String {
    let story = log.story;
    match &story.survivor_exit {
        Some(Ok(0)) => {}
        other => broken.push(format!(
            "the surviving sidecar's exit on SIGTERM: {other:?}"
        )),
    }
    match (story.killed, story.took_over) {
        (Some((k, kt)), Some((h, ht))) => format!(
            "{} (the leader) killed at {}; {} led {:.1} s later (lease {} ms, passes every {} s)",
            k.name(),
            log.at(kt),
            h.name(),
            (ht - kt) / 1000.0,
            story.settings.leader_ttl_ms,
            story.settings.interval_s
        ),
        _ => {
            broken.push("no failover".into());
            "NONE".into()
        }
    }
}

/// The alerts the sidecars logged, by kind.
fn alerts(log: &Log, broken: &mut Vec<String>) -> String {
    let stall = &log.story.stalled.1.id;
    let alerts: Vec<&Event> = log.events.iter().filter(|e| e.ev == "alert").collect();
    let mut kinds: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut distinct = HashSet::new();
    for a in &alerts {
        let k = kinds.entry(a.str("summary")).or_default();
        if a.v["resolved"] == true {
            k.1 += 1;
        } else {
            k.0 += 1;
        }
        distinct.insert(alert_key(a));
    }
    let alerted = alerts.iter().any(|a| {
        let m = &a.v["metadata"];
        m["sagaId"] == stall.as_str() && m["reason"] == "no-progress"
    });
    if !alerted {
        broken.push(format!("no stuck-saga alert (no-progress) for {stall}"));
    }
    let kinds: Vec<String> = kinds
        .iter()
        .map(|(k, (sent, resolved))| format!("{k}: {sent} sent, {resolved} resolved"))
        .collect();
    format!(
        "{} alert lines, {} shown above (an alert sent again while it fires is shown once): {}",
        alerts.len(),
        distinct.len(),
        kinds.join("; ")
    )
}

/// The sample lines of `names` in a Prometheus text exposition.
fn excerpt(body: &str, names: &[&str]) -> Vec<String> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| names.contains(&l.split(['{', ' ']).next().unwrap_or_default()))
        .map(str::to_string)
        .collect()
}

/// A sample's value (the line of `name` without labels).
fn sample(lines: &[String], name: &str) -> Option<f64> {
    lines.iter().find_map(|l| {
        let (n, v) = l.split_once(' ')?;
        (n == name).then(|| v.trim().parse().ok())?
    })
}

/// The surviving sidecar's /metrics: the excerpt, and the totals checked against the sagas
/// (on the demo's own redis-server, which holds this run's sagas only).
fn metrics(log: &Log, broken: &mut Vec<String>) {
    let story = log.story;
    let body = match &story.metrics {
        Ok(body) => body,
        Err(e) => return broken.push(format!("/metrics: {e}")),
    };
    let lines = excerpt(body, &METRICS);
    let surviving = story.took_over.map_or("?", |(w, _)| w.name());
    println!("\n/metrics of {surviving} (excerpt):");
    for l in &lines {
        println!("  {l}");
    }
    for name in METRICS {
        if name != "txcoord_sagas_stuck_by_reason" && !lines.iter().any(|l| l.starts_with(name)) {
            broken.push(format!("/metrics has no {name}"));
        }
    }
    if story.own_server {
        for (name, want) in [
            ("sagas_completed_total", log.count("COMPLETED")),
            ("sagas_failed_total", log.count("FAILED")),
            ("sagas_active_total", 0),
            ("saga_duration_seconds_count", log.sagas.len()),
        ] {
            let got = sample(&lines, name);
            if got != Some(want as f64) {
                broken.push(format!("/metrics: {name} is {got:?}, expected {want}"));
            }
        }
    }
}

/// The wait-for graph: the DOT text, and where the files are.
fn graph(story: &Story) {
    let Some(g) = &story.graph else {
        return println!("\nthe wait-for graph: not captured");
    };
    println!(
        "\nthe wait-for graph while the deadlock stood ({}, drawn by `txcoord graph --from`):",
        g.dot_path.display()
    );
    for l in g.dot.as_deref().unwrap_or("(not drawn)\n").lines() {
        println!("  {l}");
    }
    match &g.svg {
        Ok(svg) => println!("picture: {}", svg.display()),
        Err(why) => println!("picture: none: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_excerpt_keeps_the_named_samples() {
        let body = "# HELP sagas_active_total x\nsagas_active_total 0\nother 1\n\
                    txcoord_sagas_stuck_by_reason{reason=\"no-progress\"} 0\n\
                    saga_duration_seconds_count 12\n";
        let lines = excerpt(body, &METRICS);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(sample(&lines, "saga_duration_seconds_count"), Some(12.0));
    }
}
