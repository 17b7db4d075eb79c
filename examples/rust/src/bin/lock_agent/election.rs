// SPDX-License-Identifier: MIT OR Apache-2.0
//! The agent's election commands: `campaign`, `resign`, `leader`, `lead`, and the `elected`
//! and `revoked` lines of each candidate.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use txcoord::{ElectionOptions, LeaderElection};

use crate::line::{emit, now_us};
use crate::{arg, millis, Agent, Res};

/// This agent's candidate in one election.
#[derive(Clone)]
pub struct Candidate {
    pub election: LeaderElection,
    /// The ttl it was created with (`None`: the default).
    ttl: Option<Duration>,
    /// The term it was last elected with (kept after the leadership ends: a deposed leader
    /// that writes anyway writes with it).
    term: Arc<Mutex<Option<u64>>>,
}

impl Agent {
    /// This agent's candidate in the election `name` (candidate id: the agent's name), created
    /// by its first command on `name` (with the default ttl unless a campaign). Its changes of
    /// leadership are reported as `elected` and `revoked` lines.
    fn election(&self, name: &str, ttl: Option<Duration>) -> Res<Candidate> {
        let mut elections = self.elections.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(known) = elections.get(name) {
            if ttl.is_some() && ttl != known.ttl {
                return Err(format!(
                    "the election {name} was joined with ttl {:?}, not {ttl:?}",
                    known.ttl
                )
                .into());
            }
            return Ok(known.clone());
        }
        let mut options = ElectionOptions::new().set_candidate_id(self.name.as_str());
        if let Some(ttl) = ttl {
            options = options.set_ttl(ttl);
        }
        let candidate = Candidate {
            election: LeaderElection::new(&self.client, name, options)?,
            ttl,
            term: Arc::new(Mutex::new(None)),
        };
        let mut changes = candidate.election.watch();
        let last_term = candidate.term.clone();
        let election_name = name.to_string();
        tokio::spawn(async move {
            let mut last = *changes.borrow_and_update();
            while changes.changed().await.is_ok() {
                let now = *changes.borrow_and_update();
                if now == last {
                    continue;
                }
                if let Some(ended) = last {
                    emit(vec![
                        ("ev", "revoked".into()),
                        ("name", election_name.as_str().into()),
                        ("term", ended.into()),
                        ("t_us", now_us().into()),
                    ]);
                }
                if let Some(term) = now {
                    *last_term.lock().unwrap_or_else(|p| p.into_inner()) = Some(term);
                    emit(vec![
                        ("ev", "elected".into()),
                        ("name", election_name.as_str().into()),
                        ("term", term.into()),
                        ("t_us", now_us().into()),
                    ]);
                }
                last = now;
            }
        });
        elections.insert(name.to_string(), candidate.clone());
        Ok(candidate)
    }

    /// The election commands (`campaign`, `resign`, `leader`, `lead`); `Ok(false)` for
    /// another verb.
    pub async fn handle_election(&self, id: &str, verb: &str, args: &[&str]) -> Res<bool> {
        match verb {
            "campaign" => {
                let name = arg(args, 0, "name")?;
                let ttl = millis(args, 1, "ttl_ms")?;
                let timeout = millis(args, 2, "timeout_ms")?;
                let candidate = self.election(name, Some(ttl))?;
                let mut quit = self.quit.subscribe();
                let before = self.client.stats();
                let t0 = now_us();
                let ok = tokio::select! {
                    won = candidate.election.campaign(timeout) => won?,
                    _ = quit.wait_for(|q| *q) => return Err("the agent quits".into()),
                };
                let t = now_us();
                let after = self.client.stats();
                let term = candidate.election.term();
                if ok && term.is_some() {
                    *candidate.term.lock().unwrap_or_else(|p| p.into_inner()) = term;
                }
                emit(vec![
                    ("id", id.into()),
                    ("ev", "campaign".into()),
                    ("ok", ok.into()),
                    ("term", term.into()),
                    ("t0_us", t0.into()),
                    ("t_us", t.into()),
                    (
                        "wake_notified",
                        (after.wake_notified - before.wake_notified).into(),
                    ),
                    ("wake_timer", (after.wake_timer - before.wake_timer).into()),
                ]);
            }
            "resign" => {
                let candidate = self.election(arg(args, 0, "name")?, None)?;
                let t0 = now_us();
                candidate.election.resign().await?;
                emit(vec![
                    ("id", id.into()),
                    ("ev", "resign".into()),
                    ("t0_us", t0.into()),
                    ("t_us", now_us().into()),
                    ("is_leader", candidate.election.is_leader().into()),
                ]);
            }
            "leader" => {
                let candidate = self.election(arg(args, 0, "name")?, None)?;
                let leader = candidate.election.leader().await?;
                emit(vec![
                    ("id", id.into()),
                    ("ev", "leader".into()),
                    (
                        "candidate_id",
                        leader.as_ref().map(|l| l.candidate_id.clone()).into(),
                    ),
                    ("term", leader.as_ref().map(|l| l.term).into()),
                    (
                        "remaining_ms",
                        leader.as_ref().map(|l| l.remaining_ms).into(),
                    ),
                    ("is_leader", candidate.election.is_leader().into()),
                    ("own_term", candidate.election.term().into()),
                ]);
            }
            "lead" => {
                let candidate = self.election(arg(args, 0, "name")?, None)?;
                let witness_key = arg(args, 1, "witness_key")?;
                let force = args.get(2) == Some(&"force");
                // The leader's protected action: a candidate that does not believe it leads
                // stops here.
                let is_leader = candidate.election.is_leader();
                let current = if is_leader {
                    candidate.election.term()
                } else {
                    None
                };
                let term = current.or(*candidate.term.lock().unwrap_or_else(|p| p.into_inner()));
                // what an application following `watch()` believes
                let notified = *candidate.election.watch().borrow();
                let (done, accepted) = if is_leader || force {
                    (true, Some(self.fenced_write(witness_key, term).await?))
                } else {
                    (false, None)
                };
                emit(vec![
                    ("id", id.into()),
                    ("ev", "lead".into()),
                    ("done", done.into()),
                    ("accepted", accepted.into()),
                    ("is_leader", is_leader.into()),
                    ("term", term.into()),
                    ("current_term", current.into()),
                    ("notified_term", notified.into()),
                ]);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}
