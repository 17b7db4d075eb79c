// SPDX-License-Identifier: MIT OR Apache-2.0
//! The optional `/metrics` endpoint: HTTP/1.1 (hyper) on the address given, shut down cleanly.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::TransactionMetricsCollector;
use crate::error::{Error, Result};

/// How long a shutdown waits for requests in progress before it closes their connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// A connection that sends no complete request head within this is closed.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `/metrics` endpoint (see [`serve_metrics`]). Dropping it stops it too (without
/// waiting); [`shutdown`](Self::shutdown) stops it and waits until it has.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    // A std mutex: the task's handle, taken once by `shutdown`.
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// Serves `collector`'s metrics at `http://ADDR/metrics` (`GET` or `HEAD`; the text
/// exposition, `text/plain; version=0.0.4`) until the returned server is shut down or
/// dropped. Other paths answer 404, other methods 405. `addr` is bound as given: pass
/// `127.0.0.1:0` for a free loopback port (then read [`MetricsServer::local_addr`]), or
/// `0.0.0.0:9464` to be scraped from other hosts. Must be called within a tokio runtime.
pub async fn serve_metrics(
    addr: SocketAddr,
    collector: TransactionMetricsCollector,
) -> Result<MetricsServer> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| Error::invalid_argument("addr", format!("cannot listen on {addr}: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Internal(format!("metrics listener address: {e}")))?;
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(run(listener, collector, stopped));
    Ok(MetricsServer {
        addr,
        stop,
        task: Mutex::new(Some(task)),
    })
}

impl MetricsServer {
    /// The address it listens on (with the port the system chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL of the endpoint: `http://ADDR/metrics`.
    pub fn url(&self) -> String {
        format!("http://{}/metrics", self.addr)
    }

    /// Stops accepting connections, lets requests in progress finish (at most 5 s), closes
    /// every connection, and returns once the port is released.
    pub async fn shutdown(&self) {
        self.stop.send_replace(true);
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

async fn run(
    listener: TcpListener,
    collector: TransactionMetricsCollector,
    mut stopped: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let mut connections = tokio::task::JoinSet::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stopped.wait_for(|s| *s) => break,
        };
        // reap the connections that ended
        while connections.try_join_next().is_some() {}
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, or a connection reset before it was accepted: wait a
                // little rather than spin.
                tracing::debug!(target: "txcoord", "txcoord: metrics accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let collector = collector.clone();
        let service = service_fn(move |req| {
            let collector = collector.clone();
            async move { Ok::<_, Infallible>(respond(&collector, &req)) }
        });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        connections.spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(target: "txcoord", "txcoord: metrics connection: {e}");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!(target: "txcoord", "txcoord: metrics connections still open at shutdown");
    }
    // Those that did not finish within the grace period are closed.
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}

fn respond(
    collector: &TransactionMetricsCollector,
    req: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    };
    if req.uri().path() != "/metrics" {
        return text(
            StatusCode::NOT_FOUND,
            "not found: txcoord serves its metrics at /metrics\n".into(),
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n".into());
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let body = if req.method() == Method::HEAD {
        String::new()
    } else {
        collector.metrics()
    };
    let mut r = text(StatusCode::OK, body);
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}
