// SPDX-License-Identifier: MIT OR Apache-2.0
//! What a `redis` argument becomes, the same way in both languages:
//!
//! - a URL string: the process's shared client for it ([`url_client`], over
//!   [`Client::shared`]);
//! - a foreign Redis client (redis-py, ioredis): the bindings read its settings into a
//!   [`ForeignClient`]; the core decides what is supported and builds the URL and the client
//!   options ([`foreign_target`], [`foreign_client`]);
//! - anything else: refused ([`not_a_client`]).

use super::options::Host;
use crate::client::{Client, ClientOptions};
use crate::error::{Error, Result};

/// How a foreign client reaches Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Topology {
    /// One server over TCP.
    #[default]
    Standalone,
    /// A Redis Cluster client.
    Cluster,
    /// A Sentinel-managed client.
    Sentinel,
    /// One server over a unix socket.
    UnixSocket,
}

/// The settings a binding read from a foreign client object.
#[derive(Debug, Clone, Default)]
pub struct ForeignClient {
    /// The library, for messages: `"redis-py"`, `"ioredis"`.
    pub library: &'static str,
    /// The client's class name, for messages.
    pub class_name: String,
    pub topology: Topology,
    /// Host name or address (default `localhost`).
    pub host: Option<String>,
    /// Port (default 6379).
    pub port: Option<u16>,
    /// Database number (default 0).
    pub db: Option<i64>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// TLS (`rediss://`).
    pub tls: bool,
    /// With TLS: the server certificate is not verified.
    pub tls_insecure: bool,
    /// With TLS: the client names its own CA, certificate or key (not supported yet: the
    /// system trust store is used). The setting that does (`tls.ca`, `ssl_certfile`, ...), for
    /// the message.
    pub tls_material: Option<String>,
    /// The client's key prefix (ioredis `keyPrefix`), if any.
    pub key_prefix: Option<String>,
}

/// Where a client connects, and how.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub options: ClientOptions,
}

/// The connection target of a foreign client, or the reason it is not supported. Errors name
/// the argument `redis` and have the `InvalidArgument` kind in every language.
pub fn foreign_target(c: &ForeignClient) -> Result<Target> {
    let what = if c.class_name.is_empty() {
        format!("a {} client", c.library)
    } else {
        format!("a {} client ({})", c.library, c.class_name)
    };
    let refuse = |why: String| Err(Error::invalid_argument("redis", why));
    match c.topology {
        Topology::Cluster => {
            return refuse(format!(
                "is {what} for Redis Cluster, which txcoord does not support yet: pass a \
                 redis:// URL of a single server"
            ))
        }
        Topology::Sentinel => {
            return refuse(format!(
                "is {what} in Sentinel mode, which txcoord does not support yet: pass a \
                 redis:// URL of the current master"
            ))
        }
        Topology::UnixSocket => {
            return refuse(format!(
                "is {what} on a unix socket; only TCP connections are supported: pass a \
                 redis:// URL"
            ))
        }
        Topology::Standalone => {}
    }
    if let Some(field) = &c.tls_material {
        return refuse(format!(
            "is {what} with custom TLS material ({field}), which is not supported yet (the \
             system trust store is used): pass a rediss:// URL"
        ));
    }
    let mut url = String::from(if c.tls { "rediss://" } else { "redis://" });
    match (&c.username, &c.password) {
        (Some(u), Some(p)) => {
            url.push_str(&format!("{}:{}@", percent_encode(u), percent_encode(p)))
        }
        (Some(u), None) => url.push_str(&format!("{}@", percent_encode(u))),
        (None, Some(p)) => url.push_str(&format!(":{}@", percent_encode(p))),
        (None, None) => {}
    }
    let host = c.host.as_deref().unwrap_or("localhost");
    if host.contains(':') && !host.starts_with('[') {
        url.push_str(&format!("[{host}]"));
    } else {
        url.push_str(host);
    }
    url.push_str(&format!(
        ":{}/{}",
        c.port.unwrap_or(6379),
        c.db.unwrap_or(0)
    ));
    if c.tls && c.tls_insecure {
        url.push_str("#insecure");
    }
    let mut options = ClientOptions::new();
    if let Some(prefix) = c.key_prefix.as_deref().filter(|p| !p.is_empty()) {
        options = options.set_key_prefix(prefix);
    }
    Ok(Target { url, options })
}

/// The client of a foreign client object: a client of its own (the binding keeps one per
/// foreign object, as the object's own connection pool is shared by its users), or the reason
/// it is not supported.
pub fn foreign_client(c: &ForeignClient) -> Result<Client> {
    let target = foreign_target(c)?;
    Client::with_options(&target.url, target.options).map_err(|e| match e {
        Error::InvalidArgument { message, .. } => Error::invalid_argument(
            "redis",
            format!("gives settings txcoord cannot use: {message}"),
        ),
        other => other,
    })
}

/// The client of a `redis` argument given as a URL string: the process's shared client for
/// that URL ([`Client::shared`]: one per URL while in use, closed once nobody uses it, never
/// a forked parent's), so that code building a manager or a lock per call does not open a
/// connection per call. Errors name the argument `redis`.
pub fn url_client(url: &str) -> Result<Client> {
    Client::shared(url, ClientOptions::new()).map_err(|e| match e {
        Error::InvalidArgument { arg, message } if arg == "url" => {
            Error::invalid_argument("redis", message)
        }
        other => other,
    })
}

/// The error for a `redis` argument that is none of what `host` accepts; `got` describes it
/// (`a number`, `an object of type list`).
pub fn not_a_client(host: Host, got: &str) -> Error {
    let foreign = match host {
        Host::Python => "a redis-py client (redis.Redis, redis.asyncio.Redis)",
        Host::Node => "an ioredis instance",
    };
    Error::invalid_type(
        "redis",
        format!("must be a redis:// URL, a txcoord Client or {foreign}, got {got}"),
    )
}

/// Percent-encodes what a URL's user-info part cannot hold as is.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn ioredis() -> ForeignClient {
        ForeignClient {
            library: "ioredis",
            class_name: "Redis".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_plain_client_becomes_a_url() {
        let t = foreign_target(&ioredis()).unwrap();
        assert_eq!(t.url, "redis://localhost:6379/0");
        let t = foreign_target(&ForeignClient {
            host: Some("::1".into()),
            port: Some(7000),
            db: Some(3),
            username: Some("svc".into()),
            password: Some("s3cr:t@x".into()),
            tls: true,
            tls_insecure: true,
            key_prefix: Some("app:".into()),
            ..ioredis()
        })
        .unwrap();
        assert_eq!(t.url, "rediss://svc:s3cr%3At%40x@[::1]:7000/3#insecure");
        assert_eq!(t.options.key_prefix(), "app:");
        assert!(
            crate::Client::open(&t.url).is_ok(),
            "the core accepts its own URL"
        );
    }

    #[test]
    fn unsupported_topologies_are_refused_alike() {
        for topology in [Topology::Cluster, Topology::Sentinel, Topology::UnixSocket] {
            for library in ["ioredis", "redis-py"] {
                let e = foreign_target(&ForeignClient {
                    library,
                    topology,
                    ..Default::default()
                })
                .unwrap_err();
                assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{topology:?}");
                assert_eq!(e.argument(), Some("redis"));
            }
        }
        let e = foreign_target(&ForeignClient {
            tls: true,
            tls_material: Some("tls.ca".into()),
            ..ioredis()
        })
        .unwrap_err();
        assert!(e.to_string().contains("TLS material (tls.ca)"), "{e}");
        assert_eq!(e.argument(), Some("redis"));
        let e = foreign_client(&ForeignClient {
            topology: Topology::Cluster,
            ..ioredis()
        })
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        let e = foreign_client(&ForeignClient {
            key_prefix: Some("a\0b".into()),
            ..ioredis()
        })
        .unwrap_err();
        assert_eq!(e.argument(), Some("redis"), "{e}");
    }

    #[test]
    fn urls_are_shared_and_named_redis() {
        let a = url_client("redis://127.0.0.1:1/7").unwrap();
        let b = url_client("redis://127.0.0.1:1/7").unwrap();
        assert_eq!(a.name(), b.name(), "one client per URL while in use");
        let e = url_client("http://localhost").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert_eq!(e.argument(), Some("redis"));
        for host in [Host::Python, Host::Node] {
            let e = not_a_client(host, "a number");
            assert_eq!(e.kind(), ErrorKind::InvalidType);
            assert_eq!(e.argument(), Some("redis"));
            assert!(e.to_string().contains("got a number"), "{e}");
        }
    }
}
