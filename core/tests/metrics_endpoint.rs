// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `/metrics` endpoint: served, refused where it should be, shut down cleanly; and scraped by
//! a real Prometheus server loading the shipped alerting rules.

mod common;
mod tools;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use tools::sample::{collector, everything, monitor_pass};
use txcoord::{serve_metrics, LockManager, MetricNames};
use txcoord_testkit::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_endpoint_serves_the_text_and_shuts_down() {
    let c = everything(MetricNames::Both);
    let server = serve_metrics("127.0.0.1:0".parse().unwrap(), c.clone())
        .await
        .unwrap();
    let addr = server.local_addr();
    assert!(addr.ip().is_loopback() && addr.port() != 0);
    assert_eq!(server.url(), format!("http://{addr}/metrics"));
    let http = reqwest::Client::new();
    let reply = http.get(server.url()).send().await.unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(
        reply.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let body = reply.text().await.unwrap();
    assert_eq!(body, c.metrics());
    assert!(body.contains("# HELP saga_compensations_total Total number of saga compensations"));
    let other = http.get(format!("http://{addr}/")).send().await.unwrap();
    assert_eq!(other.status(), 404);
    let post = http.post(server.url()).send().await.unwrap();
    assert_eq!(post.status(), 405);
    assert_eq!(post.headers()["allow"], "GET, HEAD");
    // a second server on the same address is refused, naming it
    let e = serve_metrics(addr, c.clone()).await.unwrap_err();
    assert_eq!(e.argument(), Some("addr"));

    // an idle keep-alive connection does not hold the shutdown up
    let idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::time::timeout(ms(10_000), server.shutdown())
        .await
        .expect("shut down in time");
    drop(idle);
    let refused = tokio::net::TcpStream::connect(addr).await;
    assert!(refused.is_err(), "nothing listens after shutdown");
    // and the port is free again
    let again = serve_metrics(addr, c).await.unwrap();
    drop(again);
}

/// Queries Prometheus: the result vector of `query`, as (labels, value).
fn query(prom: &tools::Server, q: &str) -> Vec<(serde_json::Value, f64)> {
    let v = prom.get_json(&format!("/api/v1/query?query={}", tools::encode(q)));
    assert_eq!(v["status"], "success", "{q}: {v}");
    v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let value = r["value"][1].as_str().unwrap().parse().unwrap();
            (r["metric"].clone(), value)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_endpoint() {
    let redis = RedisServer::start();
    let c = collector(MetricNames::Both);
    let client = client(&redis);
    c.watch_client(&client);
    let manager = LockManager::new(&client);
    manager
        .acquire_lock("scraped", ms(30_000), ms(0))
        .await
        .unwrap()
        .unwrap();
    c.record_deadlock("abort_saga").unwrap();
    c.record_saga_execution("CreateOrderSaga", "completed", 3000.0)
        .unwrap();
    monitor_pass(&c);
    let server = serve_metrics("127.0.0.1:0".parse().unwrap(), c.clone())
        .await
        .unwrap();
    let target: SocketAddr = server.local_addr();
    let rules = tools::repo_root().join("ops/prometheus/txcoord-rules.yml");
    // the server answers from the runtime's workers while this blocking part waits
    tokio::task::spawn_blocking(move || {
        let prom = tools::prometheus(target, &[rules]);
        let limit = Duration::from_secs(60);
        tools::poll("the target up", limit, || {
            let up = query(&prom, "up{job=\"txcoord\"}");
            (up.first().map(|u| u.1) == Some(1.0)).then_some(())
        });
        let got = tools::poll("deadlocks_detected_total scraped", limit, || {
            query(&prom, "deadlocks_detected_total").into_iter().next()
        });
        assert_eq!(got.0["resolution_method"], "abort_saga");
        assert_eq!(got.1, 1.0);
        let bucket = query(
            &prom,
            "saga_execution_duration_seconds_bucket{saga_type=\"CreateOrderSaga\",le=\"5\"}",
        );
        assert_eq!(bucket.len(), 1);
        assert_eq!(bucket[0].1, 1.0);
        assert_eq!(query(&prom, "sagas_active_total")[0].1, 3.0);
        assert_eq!(query(&prom, "txcoord_sagas_active")[0].1, 3.0);
        assert_eq!(query(&prom, "txcoord_lock_acquired_total")[0].1, 1.0);
        assert_eq!(query(&prom, "sum(txcoord_sagas_stuck_by_reason)")[0].1, 2.0);
        // the shipped rules loaded and evaluate without error
        let rules = tools::poll("rules evaluated", limit, || {
            let v = prom.get_json("/api/v1/rules");
            let groups = v["data"]["groups"].as_array()?.clone();
            let rules: Vec<serde_json::Value> = groups
                .iter()
                .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
                .collect();
            let evaluated = !rules.is_empty()
                && rules.iter().all(|r| {
                    r["lastEvaluation"]
                        .as_str()
                        .is_some_and(|t| !t.starts_with("0001"))
                });
            evaluated.then_some(rules)
        });
        for r in &rules {
            assert_eq!(r["health"], "ok", "{r}");
        }
        // the stuck sagas recorded fire the stuck-saga alert (pending: it has a `for`)
        let alert = tools::poll("the stuck-saga alert pending", limit, || {
            let alerts = prom.get_json("/api/v1/alerts");
            alerts["data"]["alerts"]
                .as_array()?
                .iter()
                .find(|a| a["labels"]["alertname"] == "TxcoordSagasStuck")
                .cloned()
        });
        assert_eq!(alert["labels"]["severity"], "critical");
        assert_eq!(alert["labels"]["instance"], target.to_string());
        assert_eq!(
            alert["value"].as_str().map(|v| v.parse::<f64>().unwrap()),
            Some(2.0)
        );
    })
    .await
    .unwrap();
    server.shutdown().await;
}
