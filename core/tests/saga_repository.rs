// SPDX-License-Identifier: MIT OR Apache-2.0
//! The built-in saga repository: the seed's interface, conditional saves (version, term,
//! finished guard), indexes and running totals instead of scans.

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use txcoord::{
    RedisSagaRepository, SagaRecord, SagaRepository, SagaStatus, SaveOptions, SaveOutcome,
};
use txcoord_testkit::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_interface_over_redis() {
    let server = RedisServer::start();
    let c = client(&server);
    let repo = RedisSagaRepository::new(&c);
    assert_eq!(repo.find_by_id("none").await.unwrap(), None);
    let mut s = SagaRecord::new("o-1", "CreateOrderSaga");
    s.priority = 4;
    repo.save(&s).await.unwrap();
    let got = repo.find_by_id("o-1").await.unwrap().unwrap();
    assert_eq!(got.version, 1);
    assert_eq!(
        (got.saga_type.as_str(), got.status, got.priority),
        ("CreateOrderSaga", SagaStatus::Executing, 4)
    );
    assert_eq!(
        got.created_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
        s.created_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
        "times kept to the millisecond"
    );
    let active = repo.find_active_sagas().await.unwrap();
    assert_eq!(active.len(), 1);
    // finishing: out of the active index, into the totals, once
    let done = SagaRecord {
        status: SagaStatus::Completed,
        updated_at: s.created_at + Duration::from_millis(1500),
        ..got.clone()
    };
    repo.save(&done).await.unwrap();
    repo.save(&done).await.unwrap();
    assert!(repo.find_active_sagas().await.unwrap().is_empty());
    let stats = repo.get_statistics().await.unwrap();
    assert_eq!((stats.active, stats.completed, stats.failed), (0, 1, 0));
    assert!(
        (stats.average_duration_ms - 1500.0).abs() < 1.0,
        "{stats:?}"
    );
    let finished = repo.finished(None, 10).await.unwrap();
    assert_eq!(finished.len(), 1, "counted when it first finished");
    assert_eq!(finished[0].id, "o-1");
    assert_eq!(finished[0].duration, Duration::from_millis(1500));
    assert!(repo
        .finished(Some(&finished[0].cursor), 10)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_saves_check_version_term_and_finished() {
    let server = RedisServer::start();
    let c = client(&server);
    let repo = RedisSagaRepository::new(&c);
    let s = SagaRecord::new("o-2", "CreateOrderSaga");
    let cond = |v: u64, term: Option<u64>| SaveOptions {
        expected_version: Some(v),
        term,
        guard_finished: true,
    };
    // created only if absent (version 0)
    assert!(repo
        .save_if(&s, &cond(0, None))
        .await
        .unwrap()
        .unwrap()
        .written());
    assert!(!repo
        .save_if(&s, &cond(0, None))
        .await
        .unwrap()
        .unwrap()
        .written());
    // a leader with term 7 writes; a deposed leader (term 5) cannot overwrite it
    let retry = SagaRecord {
        retry_count: 1,
        ..s.clone()
    };
    assert_eq!(
        repo.save_if(&retry, &cond(1, Some(7))).await.unwrap(),
        Some(SaveOutcome::Written { version: 2 })
    );
    let stale = repo
        .save_if(&retry, &cond(2, Some(5)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stale,
        SaveOutcome::Conflict {
            version: 2,
            term: 7,
            status: Some(SagaStatus::Executing)
        }
    );
    // the executor completes it; an automated change can no longer turn it into anything else
    let done = SagaRecord {
        status: SagaStatus::Completed,
        ..s.clone()
    };
    repo.save(&done).await.unwrap();
    let compensate = SagaRecord {
        status: SagaStatus::Compensating,
        ..s.clone()
    };
    let refused = repo
        .save_if(&compensate, &cond(3, Some(9)))
        .await
        .unwrap()
        .unwrap();
    assert!(!refused.written());
    assert_eq!(
        repo.find_by_id("o-2").await.unwrap().unwrap().status,
        SagaStatus::Completed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_sagas_per_type_limit_from_the_index() {
    let server = RedisServer::start();
    let c = client(&server);
    let repo = RedisSagaRepository::new(&c)
        .set_stuck_after("FastSaga", Duration::from_millis(500))
        .set_default_stuck_after(Duration::from_secs(3600));
    let old = SystemTime::now() - Duration::from_secs(60);
    for (id, t) in [("f-1", "FastSaga"), ("s-1", "SlowSaga")] {
        let mut s = SagaRecord::new(id, t);
        s.updated_at = old;
        repo.save(&s).await.unwrap();
    }
    let fresh = SagaRecord::new("f-2", "FastSaga");
    repo.save(&fresh).await.unwrap();
    let stuck: Vec<String> = repo
        .find_stuck_sagas()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(
        stuck,
        vec!["f-1"],
        "FastSaga's limit applies; SlowSaga's is an hour"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_records_are_refused_before_redis() {
    let server = RedisServer::start();
    let c = client(&server);
    let repo = RedisSagaRepository::new(&c);
    let before = commands_processed(&server);
    let e = repo.save(&SagaRecord::new("", "T")).await.unwrap_err();
    assert_eq!(e.argument(), Some("id"));
    let e = repo.save(&SagaRecord::new("x", "")).await.unwrap_err();
    assert_eq!(e.argument(), Some("type"));
    assert_eq!(commands_processed(&server), before, "nothing reached Redis");
    // a saga's type cannot change
    repo.save(&SagaRecord::new("x", "A")).await.unwrap();
    let e = repo.save(&SagaRecord::new("x", "B")).await.unwrap_err();
    assert_eq!(e.argument(), Some("type"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_sagas_are_read_whole_past_one_pipeline() {
    // More records than one read pipeline holds (1,000), and not a multiple of it.
    const N: usize = 2_345;
    let server = RedisServer::start();
    let c = client(&server);
    let repo = RedisSagaRepository::new(&c);
    for i in 0..N {
        let mut s = SagaRecord::new(format!("many-{i:05}"), "CreateOrderSaga");
        s.priority = (i % 7) as i32;
        repo.save(&s).await.unwrap();
    }
    let active = repo.find_active_sagas().await.unwrap();
    let mut ids: Vec<&str> = active.iter().map(|s| s.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!((active.len(), ids.len()), (N, N), "every saga once");
    assert_eq!(ids[0], "many-00000");
    assert_eq!(ids[N - 1], format!("many-{:05}", N - 1));
    assert!(
        active
            .iter()
            .all(|s| s.priority == s.id[5..].parse::<i32>().unwrap() % 7),
        "each record read as written"
    );
}

/// How many `HGETALL`s (record reads) the server ran so far.
fn record_reads(server: &RedisServer) -> u64 {
    let mut con = server.connection();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut con)
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_hgetall:calls="))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_running_candidates_come_from_the_index_by_creation_time() {
    const FRESH: usize = 300;
    let server = RedisServer::start();
    let c = client(&server);
    let repo = RedisSagaRepository::new(&c);
    let mut old = SagaRecord::new("old-1", "CreateOrderSaga");
    old.created_at = SystemTime::now() - Duration::from_secs(3600);
    repo.save(&old).await.unwrap();
    for i in 0..FRESH {
        repo.save(&SagaRecord::new(format!("fresh-{i}"), "CreateOrderSaga"))
            .await
            .unwrap();
    }
    let before = SystemTime::now() - Duration::from_secs(60);
    let reads = record_reads(&server);
    let found = repo.find_active_created_before(before).await.unwrap();
    let ids: Vec<&str> = found.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, vec!["old-1"], "the old saga, not the fresh ones");
    assert_eq!(
        record_reads(&server) - reads,
        1,
        "only the old saga's record is read, not the {FRESH} fresh ones"
    );
    // a later update keeps its creation time in the index
    let got = repo.find_by_id("old-1").await.unwrap().unwrap();
    repo.save(&SagaRecord {
        retry_count: 1,
        updated_at: SystemTime::now(),
        ..got.clone()
    })
    .await
    .unwrap();
    let found = repo.find_active_created_before(before).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].id.as_str(), found[0].retry_count), ("old-1", 1));
    // a finished saga leaves the index
    let got = repo.find_by_id("old-1").await.unwrap().unwrap();
    repo.save(&SagaRecord {
        status: SagaStatus::Completed,
        ..got
    })
    .await
    .unwrap();
    assert!(repo
        .find_active_created_before(before)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sagas_saved_before_the_creation_index_are_still_found() {
    let server = RedisServer::start();
    let c = client(&server);
    let repo = RedisSagaRepository::new(&c);
    let mut old = SagaRecord::new("legacy-1", "CreateOrderSaga");
    old.created_at = SystemTime::now() - Duration::from_secs(3600);
    repo.save(&old).await.unwrap();
    repo.save(&SagaRecord::new("fresh-1", "CreateOrderSaga"))
        .await
        .unwrap();
    // as a save made before the index by creation time existed left it
    let mut con = server.connection();
    let removed: i64 = redis::cmd("ZREM")
        .arg("{txcoord:sagas}:started")
        .arg("legacy-1")
        .query(&mut con)
        .unwrap();
    assert_eq!(removed, 1, "the index holds the saga");
    let found = repo
        .find_active_created_before(SystemTime::now() - Duration::from_secs(60))
        .await
        .unwrap();
    let ids: Vec<&str> = found.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, vec!["legacy-1"]);
}
