// SPDX-License-Identifier: MIT OR Apache-2.0
//! The options of the `/metrics` endpoint a binding starts (`serveMetrics(collector, { host,
//! port })` in JS, `serve_metrics(collector, host=..., port=...)` in Python), declared once
//! (see [`super::options`]), and the endpoint started from them.

use std::net::SocketAddr;

use super::options::{Kind, Spec, Value};
use crate::error::{Error, Result};
use crate::metrics::{serve_metrics, MetricsServer, TransactionMetricsCollector};

/// The address the endpoint listens on by default: loopback only.
pub const DEFAULT_METRICS_HOST: &str = "127.0.0.1";
/// The port the endpoint listens on by default (the Prometheus exporter port of
/// OpenTelemetry's Prometheus exporter, unclaimed by Prometheus' own list).
pub const DEFAULT_METRICS_PORT: u16 = 9464;

/// Where the `/metrics` endpoint listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeOptions {
    host: String,
    port: u16,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            host: DEFAULT_METRICS_HOST.to_string(),
            port: DEFAULT_METRICS_PORT,
        }
    }
}

impl ServeOptions {
    pub fn new() -> Self {
        Self::default()
    }
    /// The address or host name to listen on (a name is resolved; its first address is used).
    pub fn set_host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into();
        self
    }
    /// The port; 0 lets the system choose a free one.
    pub fn set_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }
    pub fn host(&self) -> &str {
        &self.host
    }
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// Options of `serveMetrics` / `serve_metrics`, beyond the collector.
pub static SERVE: &[Spec<ServeOptions>] = &[
    Spec {
        name: "host",
        python: "host",
        js: "host",
        kind: Kind::Text,
        default: DEFAULT_METRICS_HOST,
        doc: "the address to listen on (`0.0.0.0`: every interface, to be scraped from other \
              hosts)",
        apply: |o, v| match v {
            Value::Text(s) => o.set_host(s),
            _ => o,
        },
    },
    Spec {
        name: "port",
        python: "port",
        js: "port",
        kind: Kind::Count {
            min: 0,
            max: u16::MAX as u64,
        },
        default: "9464",
        doc: "the port to listen on (0: a free one, read back from the server)",
        apply: |o, v| match v {
            Value::Count(n) => o.set_port(u16::try_from(n).unwrap_or(DEFAULT_METRICS_PORT)),
            _ => o,
        },
    },
];

/// Serves `collector` at `http://HOST:PORT/metrics`: the host is resolved (its first address
/// is bound), then [`serve_metrics`]. Errors name `host` (unresolvable) or `addr` (cannot
/// listen there).
pub async fn serve(
    options: ServeOptions,
    collector: TransactionMetricsCollector,
) -> Result<MetricsServer> {
    if options.host.is_empty() {
        return Err(Error::invalid_argument("host", "must not be empty"));
    }
    let addr: SocketAddr = match options.host.parse::<std::net::IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, options.port),
        Err(_) => tokio::net::lookup_host((options.host.as_str(), options.port))
            .await
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| {
                Error::invalid_argument("host", format!("cannot resolve {:?}", options.host))
            })?,
    };
    serve_metrics(addr, collector).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binding::options::{read, Host};
    use crate::binding::validate::Raw;
    use crate::error::ErrorKind;

    #[test]
    fn defaults_and_ranges() {
        let o = read(Host::Node, SERVE, |_| Raw::Absent).unwrap();
        assert_eq!(o, ServeOptions::default());
        assert_eq!(SERVE[1].default, DEFAULT_METRICS_PORT.to_string());
        let o = read(Host::Python, SERVE, |s| match s.name {
            "host" => Raw::Str("0.0.0.0"),
            _ => Raw::Int(0),
        })
        .unwrap();
        assert_eq!((o.host(), o.port()), ("0.0.0.0", 0));
        let e = read(Host::Node, SERVE, |s| match s.name {
            "port" => Raw::Int(65_536),
            _ => Raw::Absent,
        })
        .unwrap_err();
        assert_eq!(
            (e.kind(), e.argument()),
            (ErrorKind::InvalidArgument, Some("port"))
        );
        let e = read(Host::Node, SERVE, |s| match s.name {
            "host" => Raw::Int(1),
            _ => Raw::Absent,
        })
        .unwrap_err();
        assert_eq!(
            (e.kind(), e.argument()),
            (ErrorKind::InvalidType, Some("host"))
        );
    }

    #[tokio::test]
    async fn serves_on_a_resolved_host() {
        let c = TransactionMetricsCollector::new();
        let s = serve(
            ServeOptions::new().set_host("localhost").set_port(0),
            c.clone(),
        )
        .await
        .unwrap();
        assert!(s.local_addr().ip().is_loopback());
        assert_ne!(s.local_addr().port(), 0);
        s.shutdown().await;
        let e = serve(ServeOptions::new().set_host("").set_port(0), c)
            .await
            .unwrap_err();
        assert_eq!(e.argument(), Some("host"));
    }
}
