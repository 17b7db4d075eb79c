// SPDX-License-Identifier: MIT OR Apache-2.0
//! The lock story's analysis, on the complete log and the store, and its summary.

use std::collections::{BTreeMap, HashMap};

use txcoord::Client;

use super::{Scene, LEDGER, RESOURCE, ROUNDS, SHORT_TTL_MS};
use crate::demo::event::{Event, Who};
use crate::demo::table::Table;

struct Hold {
    who: Who,
    asked: Option<f64>,
    acquired: f64,
    released: Option<f64>,
    token: u64,
}

/// The holds on `resource`, in acquisition order (each worker's acquisition paired with its
/// next release).
fn holds(events: &[Event], resource: &str) -> Vec<Hold> {
    let mut out: Vec<Hold> = Vec::new();
    let mut open: HashMap<Who, usize> = HashMap::new();
    for e in events.iter().filter(|e| e.on(resource)) {
        match e.ev.as_str() {
            "acquired" => {
                open.insert(e.who, out.len());
                out.push(Hold {
                    who: e.who,
                    asked: e.num("asked"),
                    acquired: e.t,
                    released: None,
                    token: e.token().unwrap_or(0),
                });
            }
            "release" => {
                if let Some(i) = open.remove(&e.who) {
                    out[i].released = Some(e.t);
                }
            }
            _ => {}
        }
    }
    out
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The writes the store accepted for `resource`: (writer, token), in order.
fn stored_writes(store: &redis::Client, resource: &str) -> Vec<(String, u64)> {
    let Ok(mut con) = store.get_connection() else {
        return Vec::new();
    };
    let entries: Vec<String> = redis::cmd("LRANGE")
        .arg(format!("demo:{resource}:log"))
        .arg(0)
        .arg(-1)
        .query(&mut con)
        .unwrap_or_default();
    entries
        .iter()
        .filter_map(|s| {
            let (who, token) = s.split_once(' ')?;
            Some((who.to_string(), token.parse().ok()?))
        })
        .collect()
}

fn accepted(e: Option<&Event>) -> Option<bool> {
    e.and_then(|e| e.v["accepted"].as_bool())
}

/// What the summary reads besides the log.
pub struct Inputs<'a> {
    pub store: &'a redis::Client,
    pub versions: &'a BTreeMap<Who, String>,
    pub paused: Who,
    pub taker: Who,
    pub scene: &'a Scene,
    pub rust_client: &'a Client,
}

/// Checks every guarantee on the complete log (and the store) and prints the summary.
pub fn summary(events: &mut [Event], inputs: &Inputs, broken: &mut Vec<String>) {
    let Inputs {
        store,
        versions,
        paused,
        taker,
        scene,
        rust_client,
    } = *inputs;
    events.sort_by(|a, b| a.t.total_cmp(&b.t));
    let (pn, tn) = (paused.name(), taker.name());

    // Scene 1: mutual exclusion, tokens, handoffs, the store.
    let held = holds(events, RESOURCE);
    let expected = ROUNDS * 3;
    if held.len() != expected {
        broken.push(format!(
            "{} acquisitions of {RESOURCE}, expected {expected}",
            held.len()
        ));
    }
    let mut overlaps = 0;
    let mut tokens_increase = true;
    let mut handoffs: Vec<f64> = Vec::new();
    let mut directions: BTreeMap<(Who, Who), Vec<f64>> = BTreeMap::new();
    for pair in held.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        // Acquired = when the acquire call returned, released = when release was called: the
        // measured holds lie inside the real ones, so an overlap here is a real overlap.
        let released = a.released.unwrap_or(f64::INFINITY);
        if released > b.acquired {
            overlaps += 1;
            broken.push(format!(
                "{} acquired {RESOURCE} {:.3} ms before {} released it",
                b.who.name(),
                released - b.acquired,
                a.who.name()
            ));
        }
        if b.token <= a.token {
            tokens_increase = false;
            broken.push(format!(
                "{RESOURCE}: token {} ({}) after token {} ({})",
                b.token,
                b.who.name(),
                a.token,
                a.who.name()
            ));
        }
        // A handoff: the next holder, in another language, was already waiting at the release.
        if a.who != b.who && b.asked.is_some_and(|asked| asked < released) {
            handoffs.push(b.acquired - released);
            directions
                .entry((a.who, b.who))
                .or_default()
                .push(b.acquired - released);
        }
    }
    handoffs.sort_by(|a, b| a.total_cmp(b));
    let refused = events
        .iter()
        .filter(|e| e.ev == "write" && e.on(RESOURCE) && accepted(Some(e)) != Some(true))
        .count();
    if refused > 0 {
        broken.push(format!(
            "{refused} writes of current holders of {RESOURCE} were refused"
        ));
    }
    let stored = stored_writes(store, RESOURCE);
    let stored_in_order = stored.windows(2).all(|p| p[1].1 > p[0].1);
    if stored.len() != expected || !stored_in_order {
        broken.push(format!(
            "the store holds {} writes for {RESOURCE} (expected {expected}), in token order: \
             {stored_in_order}",
            stored.len()
        ));
    }

    // Scene 2: the lost lock.
    let find = |who: Who, ev: &str| events.iter().find(|e| e.on(LEDGER) && e.is(who, ev));
    let old_token = find(paused, "acquired").and_then(Event::token);
    let new_token = find(taker, "acquired").and_then(Event::token);
    let lost = find(paused, "lost");
    let stale_refused = accepted(find(paused, "write")) == Some(false);
    if !matches!((old_token, new_token), (Some(a), Some(b)) if b > a) {
        tokens_increase = false;
        broken.push(format!(
            "{LEDGER}: {tn}'s token {new_token:?} is not above {pn}'s {old_token:?}"
        ));
    }
    if lost.is_none() {
        broken.push(format!("{pn} was never told it lost the lock"));
    }
    if !stale_refused {
        broken.push(format!("{pn}'s stale write was not refused"));
    }
    if accepted(find(taker, "write")) != Some(true) {
        broken.push(format!("{tn}'s write as the new holder was refused"));
    }
    if stored_writes(store, LEDGER).iter().any(|(w, _)| w == pn) {
        broken.push(format!("the ledger holds a write from {pn}"));
    }

    println!("\nsummary");
    let mut workers = Table::new(&[
        "worker",
        "language",
        ">acquisitions",
        ">mean wait ms",
        ">max wait ms",
    ]);
    for who in [Who::Rust, Who::Python, Who::Node] {
        let waits: Vec<f64> = held
            .iter()
            .filter(|h| h.who == who)
            .filter_map(|h| h.asked.map(|a| h.acquired - a))
            .collect();
        let mean = waits.iter().sum::<f64>() / waits.len().max(1) as f64;
        let max = waits.iter().copied().fold(0.0, f64::max);
        workers.row(vec![
            format!("{} {}", who.name(), who.role()),
            versions[&who].clone(),
            waits.len().to_string(),
            format!("{mean:.1}"),
            format!("{max:.1}"),
        ]);
    }
    println!("{}", workers.render());
    let mut table = Table::new(&[
        "handoff (release -> waiter's acquire)",
        ">count",
        ">p50 ms",
        ">max ms",
    ]);
    for ((from, to), mut times) in directions {
        times.sort_by(|a, b| a.total_cmp(b));
        table.row(vec![
            format!("{} -> {}", from.name(), to.name()),
            times.len().to_string(),
            format!("{:.2}", percentile(&times, 0.5)),
            format!("{:.2}", times.last().copied().unwrap_or(0.0)),
        ]);
    }
    table.row(vec![
        "all".into(),
        handoffs.len().to_string(),
        format!("{:.2}", percentile(&handoffs, 0.5)),
        format!("{:.2}", handoffs.last().copied().unwrap_or(0.0)),
    ]);
    println!("{}", table.render());
    println!(
        "mutual exclusion: {}",
        if overlaps == 0 {
            format!("no overlapping holds ({} holds)", held.len())
        } else {
            format!("{overlaps} OVERLAPS")
        }
    );
    let show = |t: Option<u64>| t.map_or("-".to_string(), |t| t.to_string());
    println!(
        "fencing tokens strictly increasing: {} ({} tokens from 3 languages on lock:{RESOURCE}; \
         {} -> {} on lock:{LEDGER}); the store took {} writes, in token order: {}",
        if tokens_increase { "yes" } else { "NO" },
        held.len(),
        show(old_token),
        show(new_token),
        stored.len(),
        if stored_in_order { "yes" } else { "NO" }
    );
    println!(
        "lost lock: {pn} frozen {:.0} ms with a {SHORT_TTL_MS} ms ttl, {tn} took over; \
         {pn}'s lost-lock signal: {}; its stale write (token {}) fenced out: {}",
        scene.frozen_for.as_secs_f64() * 1000.0,
        match lost {
            Some(e) => format!(
                "\"{}\", {:.0} ms after resuming",
                e.str("reason"),
                // the signal can be logged a hair before the resume note: show 0, not -0
                (e.t - scene.resumed_at).max(0.0)
            ),
            None => "NONE".into(),
        },
        show(old_token),
        if stale_refused { "yes" } else { "NO" }
    );
    let stats = rust_client.stats();
    println!(
        "rust client: {} acquire attempts, {} waits woken by release notices, {} by timers",
        stats.attempts, stats.wake_notified, stats.wake_timer
    );
}
