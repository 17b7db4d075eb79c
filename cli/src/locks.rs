// SPDX-License-Identifier: MIT OR Apache-2.0
//! `txcoord locks`: the locks held now.

use serde_json::json;

use crate::{table, Outcome};

#[derive(clap::Args)]
pub struct Args {
    /// JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// At most this many locks.
    #[arg(long, default_value_t = 10_000)]
    limit: usize,
}

pub async fn run(client: &txcoord::Client, args: Args) -> Outcome {
    let locks = txcoord::registry::held_locks(client, args.limit)
        .await
        .map_err(|e| e.to_string())?;
    if args.json {
        let out: Vec<_> = locks
            .iter()
            .map(|l| {
                json!({
                    "key": l.key,
                    "holder": l.holder.as_ref().map(|h| json!({
                        "ownerId": h.owner_id, "token": h.fencing_token, "holds": h.hold_count,
                        "priority": h.priority,
                    })),
                    "foreign": l.holder.is_none(),
                    "ttlMs": l.pttl_ms,
                    "waiters": l.waiters.iter().map(|w| json!({
                        "id": w.id, "ownerId": w.owner_id, "priority": w.priority,
                        "waitedMs": l.now_ms.saturating_sub(w.since_ms), "aborted": w.aborted,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(out));
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = locks
        .iter()
        .map(|l| {
            let (holder, token, holds) = match &l.holder {
                Some(h) => (
                    h.owner_id.clone().unwrap_or_else(|| "(no owner)".into()),
                    h.fencing_token
                        .map(|t| t.to_string())
                        .unwrap_or_else(|| "-".into()),
                    h.hold_count.to_string(),
                ),
                None => ("(foreign)".into(), "-".into(), "-".into()),
            };
            let waiters = l
                .waiters
                .iter()
                .map(|w| {
                    format!(
                        "{}:{}ms",
                        w.owner_id.as_deref().unwrap_or(&w.id),
                        l.now_ms.saturating_sub(w.since_ms)
                    )
                })
                .collect::<Vec<_>>()
                .join(" ");
            vec![
                l.key.clone(),
                holder,
                token,
                holds,
                l.pttl_ms.to_string(),
                waiters,
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(
            &["LOCK", "HOLDER", "TOKEN", "HOLDS", "TTL_MS", "WAITERS"],
            &rows
        )
    );
    Ok(0)
}
