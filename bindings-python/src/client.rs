// SPDX-License-Identifier: MIT OR Apache-2.0
//! `Client` (async and blocking, from one definition: see `twin`): one shared, lazily connected
//! Redis connection; and the conversion of every `redis` argument (a URL, a `Client`, a
//! redis-py client) into one.

use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString};
use txcoord::binding::validate;

use crate::bridge::{self, OnCancel};
use crate::convert::{type_description, OwnedRaw};
use crate::error::{guard, invalid_argument, invalid_type, IntoPyResult};
use crate::runtime::ForkSafe;
use crate::twin::{twins, Async, Blocking, Flavour};

/// The core client of a Python `Client`, rebuilt with `Client::reopen` in a forked child.
pub(crate) struct ClientHandle {
    client: ForkSafe<txcoord::Client>,
}

impl ClientHandle {
    pub(crate) fn new(client: txcoord::Client) -> Arc<Self> {
        Arc::new(ClientHandle {
            client: ForkSafe::new(client),
        })
    }

    /// The client for this process.
    pub(crate) fn get(&self) -> txcoord::Result<txcoord::Client> {
        self.client.get(|parent| Ok(parent.reopen()))
    }
}

fn optional_str(
    arg: &'static str,
    value: Option<&Bound<'_, PyAny>>,
) -> txcoord::Result<Option<String>> {
    match value {
        None => Ok(None),
        Some(v) if v.is_none() => Ok(None),
        Some(v) => match v.cast::<PyString>() {
            Ok(s) => {
                Ok(Some(s.to_cow().map(|c| c.into_owned()).map_err(|_| {
                    invalid_argument(arg, "must be valid UTF-8 text")
                })?))
            }
            Err(_) => Err(invalid_type(
                arg,
                format!("must be a string, got {}", type_description(v)),
            )),
        },
    }
}

fn open(
    py: Python<'_>,
    url: &Bound<'_, PyAny>,
    key_prefix: Option<&Bound<'_, PyAny>>,
    client_name: Option<&Bound<'_, PyAny>>,
    connect_timeout_ms: Option<&Bound<'_, PyAny>>,
    response_timeout_ms: Option<&Bound<'_, PyAny>>,
) -> PyResult<Arc<ClientHandle>> {
    let url = match url.cast::<PyString>() {
        Ok(s) => s.to_cow()?.into_owned(),
        Err(_) => {
            return Err(invalid_type(
                "url",
                format!(
                    "must be a redis:// or rediss:// URL string, got {}",
                    type_description(url)
                ),
            ))
            .into_py(py)
        }
    };
    let mut options = txcoord::ClientOptions::new();
    if let Some(prefix) = optional_str("key_prefix", key_prefix).into_py(py)? {
        options = options.set_key_prefix(prefix);
    }
    if let Some(name) = optional_str("client_name", client_name).into_py(py)? {
        options = options.set_client_name(name);
    }
    let connect = OwnedRaw::from_optional(connect_timeout_ms)?;
    if let Some(ms) =
        validate::millis("connect_timeout_ms", connect.raw(), 1, validate::MAX_MS).into_py(py)?
    {
        options = options.set_connect_timeout(Duration::from_millis(ms));
    }
    let response = OwnedRaw::from_optional(response_timeout_ms)?;
    if let Some(ms) =
        validate::millis("response_timeout_ms", response.raw(), 1, validate::MAX_MS).into_py(py)?
    {
        options = options.set_response_timeout(Duration::from_millis(ms));
    }
    let client = txcoord::Client::with_options(&url, options).into_py(py)?;
    Ok(ClientHandle::new(client))
}

fn stats_dict<'py>(py: Python<'py>, s: txcoord::ClientStats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("attempts", s.attempts)?;
    d.set_item("acquired", s.acquired)?;
    d.set_item("released", s.released)?;
    d.set_item("renewals", s.renewals)?;
    d.set_item("renewal_errors", s.renewal_errors)?;
    d.set_item("lost", s.lost)?;
    d.set_item("wake_notified", s.wake_notified)?;
    d.set_item("wake_timer", s.wake_timer)?;
    d.set_item("sleeps", s.sleeps)?;
    d.set_item("messages", s.messages)?;
    d.set_item("disconnects", s.disconnects)?;
    d.set_item("subscribes", s.subscribes)?;
    d.set_item("unsubscribes", s.unsubscribes)?;
    Ok(d)
}

fn repr(handle: &ClientHandle, class: &str) -> String {
    match handle.get() {
        Ok(c) => format!(
            "<{class} name={:?} key_prefix={:?}>",
            c.name(),
            c.key_prefix()
        ),
        Err(_) => format!("<{class}>"),
    }
}

twins! {
    /// A connection to one Redis server (async API), shared by every lock built on it.
    ///
    /// Created without connecting; the first command connects. Safe to use in a process forked
    /// after its creation (the child gets its own connection).
    #[pyclass(name = "Client", module = "txcoord", frozen)]
    pub(crate) struct PyClient: Async;
    /// A connection to one Redis server (blocking API, `txcoord.sync.Client`).
    #[pyclass(name = "Client", module = "txcoord.sync", frozen)]
    pub(crate) struct PySyncClient: Blocking;
    fields {
        pub(crate) handle: Arc<ClientHandle>,
    }
    flavour F;
    methods {
        #[new]
        #[pyo3(signature = (url, *, key_prefix=None, client_name=None, connect_timeout_ms=None, response_timeout_ms=None))]
        fn new(
            py: Python<'_>,
            url: &Bound<'_, PyAny>,
            key_prefix: Option<&Bound<'_, PyAny>>,
            client_name: Option<&Bound<'_, PyAny>>,
            connect_timeout_ms: Option<&Bound<'_, PyAny>>,
            response_timeout_ms: Option<&Bound<'_, PyAny>>,
        ) -> PyResult<Self> {
            guard(py, || {
                Ok(Self {
                    handle: open(
                        py,
                        url,
                        key_prefix,
                        client_name,
                        connect_timeout_ms,
                        response_timeout_ms,
                    )?,
                })
            })
        }

        /// Connects if needed and checks that Redis answers.
        fn ping<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
            let client = self.handle.get().into_py(py)?;
            bridge::run(
                py,
                F::RUN,
                OnCancel::Abort,
                async move { client.ping().await },
                |py, ()| Ok(py.None()),
            )
        }

        /// The client's counters (attempts, acquired, wake_notified, ...).
        fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
            stats_dict(py, self.handle.get().into_py(py)?.stats())
        }

        /// Refuses further commands. Locks still held keep their keys until their TTL.
        fn close(&self, py: Python<'_>) -> PyResult<()> {
            self.handle.get().into_py(py)?.close();
            Ok(())
        }

        /// The key prefix put before every key.
        #[getter]
        fn key_prefix(&self, py: Python<'_>) -> PyResult<String> {
            Ok(self.handle.get().into_py(py)?.key_prefix().to_string())
        }

        /// The connection name given with CLIENT SETNAME.
        #[getter]
        fn name(&self, py: Python<'_>) -> PyResult<String> {
            Ok(self.handle.get().into_py(py)?.name().to_string())
        }

        /// Whether close() was called.
        #[getter]
        fn closed(&self, py: Python<'_>) -> PyResult<bool> {
            Ok(self.handle.get().into_py(py)?.is_closed())
        }

        fn __repr__(&self) -> String {
            repr(&self.handle, &format!("{}.Client", F::MODULE))
        }
    }
}

/// The client behind a `redis` argument: a `Client` (either flavour), a URL, or a redis-py
/// client (sync or asyncio), whose connection settings are read.
pub(crate) fn resolve(py: Python<'_>, redis: &Bound<'_, PyAny>) -> PyResult<Arc<ClientHandle>> {
    if let Ok(c) = redis.cast::<PyClient>() {
        return Ok(c.get().handle.clone());
    }
    if let Ok(c) = redis.cast::<PySyncClient>() {
        return Ok(c.get().handle.clone());
    }
    if let Ok(s) = redis.cast::<PyString>() {
        return open_url(py, &s.to_cow()?);
    }
    // A redis-py client: one txcoord client per redis-py client (as its own connection pool
    // is shared), so the seed's `new DistributedLock(this.redis, ...)` per acquisition does
    // not open a connection per lock.
    let cache = FOREIGN
        .get_or_try_init(py, || {
            py.import("weakref")?
                .getattr("WeakKeyDictionary")?
                .call0()
                .map(Bound::unbind)
        })?
        .bind(py);
    if let Ok(hit) = cache.call_method1("get", (redis,)) {
        if let Ok(c) = hit.cast::<PyClient>() {
            return Ok(c.get().handle.clone());
        }
    }
    let url = redis_py_url(redis).into_py(py)?;
    let handle = open_url(py, &url)?;
    // Objects that cannot be weakly referenced simply get a client per use.
    let _ = cache.set_item(
        redis,
        PyClient {
            handle: handle.clone(),
        },
    );
    Ok(handle)
}

static FOREIGN: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn open_url(py: Python<'_>, url: &str) -> PyResult<Arc<ClientHandle>> {
    let client = txcoord::Client::open(url)
        .map_err(|e| match e {
            // The Python parameter is `redis`, not `url`.
            txcoord::Error::InvalidArgument { message, .. } => invalid_argument("redis", message),
            other => other,
        })
        .into_py(py)?;
    Ok(ClientHandle::new(client))
}

fn class_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default()
}

/// A `redis://` URL from a redis-py client's `connection_pool.connection_kwargs`.
fn redis_py_url(obj: &Bound<'_, PyAny>) -> txcoord::Result<String> {
    let py_err = |e: PyErr| {
        invalid_argument(
            "redis",
            format!("cannot read the redis-py client's settings: {e}"),
        )
    };
    let name = class_name(obj);
    let has = |attr: &str| obj.hasattr(attr).unwrap_or(false);
    if name.contains("Cluster") || has("nodes_manager") {
        return Err(invalid_argument(
            "redis",
            format!("a redis-py cluster client ({name}) is not supported yet: pass a redis:// URL of a single server"),
        ));
    }
    if name.contains("Sentinel") || (has("sentinels") && has("master_for")) {
        return Err(invalid_argument(
            "redis",
            format!("a redis-py Sentinel ({name}) is not supported yet: pass a redis:// URL of the master"),
        ));
    }
    let Ok(pool) = obj.getattr("connection_pool") else {
        return Err(invalid_type(
            "redis",
            format!(
                "must be a redis:// URL, a txcoord Client or a redis-py client, got {}",
                type_description(obj)
            ),
        ));
    };
    let pool_name = class_name(&pool);
    if pool_name.contains("Sentinel") {
        return Err(invalid_argument(
            "redis",
            format!("a redis-py Sentinel client ({pool_name}) is not supported yet: pass a redis:// URL of the master"),
        ));
    }
    let connection_class = pool
        .getattr("connection_class")
        .and_then(|c| c.getattr("__name__"))
        .and_then(|n| n.extract::<String>())
        .unwrap_or_default();
    if connection_class.contains("Unix") {
        return Err(invalid_argument(
            "redis",
            "a redis-py client on a unix socket is not supported: pass a redis:// URL",
        ));
    }
    let kwargs = pool.getattr("connection_kwargs").map_err(py_err)?;
    let kwargs = kwargs.cast::<PyDict>().map_err(|_| {
        invalid_argument(
            "redis",
            "the redis-py client's connection_kwargs is not a dict",
        )
    })?;
    let get = |key: &str| -> Option<Bound<'_, PyAny>> {
        kwargs.get_item(key).ok().flatten().filter(|v| !v.is_none())
    };
    let text = |v: Bound<'_, PyAny>| -> txcoord::Result<String> {
        Ok(v.str()
            .map_err(py_err)?
            .to_cow()
            .map_err(py_err)?
            .into_owned())
    };
    let host = match get("host") {
        Some(h) => text(h)?,
        None => "localhost".to_string(),
    };
    let port = match get("port") {
        Some(p) => text(p)?,
        None => "6379".to_string(),
    };
    let db = match get("db") {
        Some(d) => text(d)?,
        None => "0".to_string(),
    };
    let mut username = get("username").map(text).transpose()?;
    let mut password = get("password").map(text).transpose()?;
    if let Some(provider) = get("credential_provider") {
        let creds = provider.call_method0("get_credentials").map_err(py_err)?;
        let parts: Vec<String> = creds.extract().map_err(py_err)?;
        match parts.as_slice() {
            [p] => password = Some(p.clone()),
            [u, p] => {
                username = Some(u.clone());
                password = Some(p.clone());
            }
            _ => {}
        }
    }
    let tls = connection_class.contains("SSL");
    let insecure = tls
        && get("ssl_cert_reqs").is_some_and(|v| {
            v.extract::<String>()
                .is_ok_and(|s| s.eq_ignore_ascii_case("none"))
                || v.extract::<i64>().is_ok_and(|n| n == 0)
        });
    let mut url = String::from(if tls { "rediss://" } else { "redis://" });
    match (&username, &password) {
        (Some(u), Some(p)) => {
            url.push_str(&format!("{}:{}@", percent_encode(u), percent_encode(p)))
        }
        (Some(u), None) => url.push_str(&format!("{}@", percent_encode(u))),
        (None, Some(p)) => url.push_str(&format!(":{}@", percent_encode(p))),
        (None, None) => {}
    }
    if host.contains(':') && !host.starts_with('[') {
        url.push_str(&format!("[{host}]"));
    } else {
        url.push_str(&host);
    }
    url.push_str(&format!(":{port}/{db}"));
    if insecure {
        url.push_str("#insecure");
    }
    Ok(url)
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::percent_encode;

    #[test]
    fn credentials_are_percent_encoded() {
        assert_eq!(percent_encode("p@ss:w/rd"), "p%40ss%3Aw%2Frd");
        assert_eq!(percent_encode("plain-1.2_3~"), "plain-1.2_3~");
        assert_eq!(percent_encode("é"), "%C3%A9");
    }
}
