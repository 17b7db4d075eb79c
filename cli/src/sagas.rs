// SPDX-License-Identifier: MIT OR Apache-2.0
//! `txcoord sagas`: active sagas, or the stuck ones with why.

use std::time::SystemTime;

use serde_json::json;
use txcoord::SagaRepository;

use crate::{table, Outcome};

#[derive(clap::Args)]
pub struct Args {
    /// Only the stuck sagas (no update for longer than their type's limit).
    #[arg(long)]
    stuck: bool,
    /// JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn ago(t: SystemTime) -> String {
    let s = SystemTime::now()
        .duration_since(t)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("{s}s")
}

pub async fn run(client: &txcoord::Client, args: Args) -> Outcome {
    let repo = txcoord::RedisSagaRepository::new(client);
    let sagas = if args.stuck {
        repo.find_stuck_sagas().await
    } else {
        repo.find_active_sagas().await
    }
    .map_err(|e| e.to_string())?;
    if args.json {
        let out: Vec<_> = sagas
            .iter()
            .map(|s| {
                json!({
                    "id": s.id, "type": s.saga_type, "status": s.status.as_str(),
                    "priority": s.priority, "createdAt": ms(s.created_at),
                    "updatedAt": ms(s.updated_at), "retryCount": s.retry_count,
                    "error": s.error, "stuckReason": s.stuck_reason, "stuckDetail": s.stuck_detail,
                    "version": s.version, "term": s.term,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(out));
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = sagas
        .iter()
        .map(|s| {
            vec![
                s.id.clone(),
                s.saga_type.clone(),
                s.status.to_string(),
                ago(s.created_at),
                ago(s.updated_at),
                s.retry_count.to_string(),
                match (&s.stuck_reason, &s.stuck_detail) {
                    (Some(r), Some(d)) => format!("{r}: {d}"),
                    (Some(r), None) => r.clone(),
                    _ => String::new(),
                },
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(
            &["SAGA", "TYPE", "STATUS", "AGE", "IDLE", "RETRIES", "STUCK"],
            &rows
        )
    );
    Ok(0)
}
