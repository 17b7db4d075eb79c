// SPDX-License-Identifier: MIT OR Apache-2.0
//! `Client` (async and blocking, from one definition: see `twin`): one shared, lazily connected
//! Redis connection; and the conversion of every `redis` argument (a URL, a `Client`, a
//! redis-py client) into one, as the core decides (`txcoord::binding::target`).

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString};
use txcoord::binding::options::{self, Host, CLIENT};
use txcoord::binding::target::{self, ForeignClient, Topology};
use txcoord::binding::validate;

use crate::bridge::{self, OnCancel};
use crate::convert::{type_description, Keywords, OwnedRaw};
use crate::error::{guard, invalid_argument, IntoPyResult};
use crate::runtime::ForkSafe;
use crate::twin::{twins, Async, Blocking, Flavour};

/// Where a client came from, to rebuild it in a forked child.
enum Source {
    /// A URL string given as `redis`: the core's shared client for that URL.
    Url(String),
    /// A `Client(...)` or a redis-py client: a client of its own.
    Own,
}

/// The core client of a Python `Client`, rebuilt in a forked child.
pub(crate) struct ClientHandle {
    client: ForkSafe<txcoord::Client>,
    source: Source,
}

impl ClientHandle {
    fn new(client: txcoord::Client, source: Source) -> Arc<Self> {
        Arc::new(ClientHandle {
            client: ForkSafe::new(client),
            source,
        })
    }

    /// The client for this process.
    pub(crate) fn get(&self) -> txcoord::Result<txcoord::Client> {
        self.client.get(|parent| match &self.source {
            Source::Url(url) => target::url_client(url),
            Source::Own => Ok(parent.reopen()),
        })
    }
}

/// `Client(url, **options)`: a client of its own (the options are the core's `CLIENT` table).
fn open(
    py: Python<'_>,
    url: &Bound<'_, PyAny>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<Arc<ClientHandle>> {
    let keywords = Keywords::new(options);
    keywords.refuse_unknown("Client", |name| {
        options::accepts(CLIENT, Host::Python, name)
    })?;
    let raw = OwnedRaw::from_value(url)?;
    let url = validate::string("url", raw.raw())
        .into_py(py)?
        .unwrap_or_default()
        .to_string();
    let options = keywords.read(CLIENT, &[])?.into_py(py)?;
    let client = txcoord::Client::with_options(&url, options).into_py(py)?;
    Ok(ClientHandle::new(client, Source::Own))
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
        #[pyo3(signature = (url, **options))]
        fn new(
            py: Python<'_>,
            url: &Bound<'_, PyAny>,
            options: Option<&Bound<'_, PyDict>>,
        ) -> PyResult<Self> {
            guard(py, || {
                Ok(Self {
                    handle: open(py, url, options)?,
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

/// The client behind a `redis` argument: a `Client` (either flavour), a URL (the core's shared
/// client for it), or a redis-py client (sync or asyncio), whose settings are read and judged
/// by the core.
pub(crate) fn resolve(py: Python<'_>, redis: &Bound<'_, PyAny>) -> PyResult<Arc<ClientHandle>> {
    if let Ok(c) = redis.cast::<PyClient>() {
        return Ok(c.get().handle.clone());
    }
    if let Ok(c) = redis.cast::<PySyncClient>() {
        return Ok(c.get().handle.clone());
    }
    if let Ok(s) = redis.cast::<PyString>() {
        let url = s.to_cow()?.into_owned();
        let client = target::url_client(&url).into_py(py)?;
        return Ok(ClientHandle::new(client, Source::Url(url)));
    }
    // A redis-py client: one txcoord client per redis-py client object (its own connection
    // pool is shared by its users), so the seed's `new DistributedLock(this.redis, ...)` per
    // acquisition does not open a connection per lock.
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
    let foreign = match redis_py_client(redis).into_py(py)? {
        Some(foreign) => foreign,
        None => {
            return Err(target::not_a_client(Host::Python, &type_description(redis))).into_py(py)
        }
    };
    let client = target::foreign_client(&foreign).into_py(py)?;
    let handle = ClientHandle::new(client, Source::Own);
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

fn class_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default()
}

/// The settings of a redis-py client (`connection_pool.connection_kwargs`, its connection
/// class, its type), or `None` if `obj` is not one. What is supported is the core's decision.
fn redis_py_client(obj: &Bound<'_, PyAny>) -> txcoord::Result<Option<ForeignClient>> {
    let py_err = |e: PyErr| {
        invalid_argument(
            "redis",
            format!("cannot read the redis-py client's settings: {e}"),
        )
    };
    let name = class_name(obj);
    let has = |attr: &str| obj.hasattr(attr).unwrap_or(false);
    let mut foreign = ForeignClient {
        library: "redis-py",
        class_name: name.clone(),
        ..ForeignClient::default()
    };
    if name.contains("Cluster") || has("nodes_manager") {
        foreign.topology = Topology::Cluster;
        return Ok(Some(foreign));
    }
    if name.contains("Sentinel") || (has("sentinels") && has("master_for")) {
        foreign.topology = Topology::Sentinel;
        return Ok(Some(foreign));
    }
    let Ok(pool) = obj.getattr("connection_pool") else {
        return Ok(None);
    };
    if class_name(&pool).contains("Sentinel") {
        foreign.topology = Topology::Sentinel;
        return Ok(Some(foreign));
    }
    let connection_class = pool
        .getattr("connection_class")
        .and_then(|c| c.getattr("__name__"))
        .and_then(|n| n.extract::<String>())
        .unwrap_or_default();
    if connection_class.contains("Unix") {
        foreign.topology = Topology::UnixSocket;
        return Ok(Some(foreign));
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
    foreign.host = get("host").map(text).transpose()?;
    if let Some(port) = get("port") {
        let port = text(port)?;
        foreign.port = Some(port.parse().map_err(|_| {
            invalid_argument(
                "redis",
                format!("the redis-py client's port {port:?} is not a port"),
            )
        })?);
    }
    if let Some(db) = get("db") {
        let db = text(db)?;
        foreign.db = Some(db.parse().map_err(|_| {
            invalid_argument(
                "redis",
                format!("the redis-py client's db {db:?} is not a number"),
            )
        })?);
    }
    foreign.username = get("username").map(text).transpose()?;
    foreign.password = get("password").map(text).transpose()?;
    if let Some(provider) = get("credential_provider") {
        let creds = provider.call_method0("get_credentials").map_err(py_err)?;
        let parts: Vec<String> = creds.extract().map_err(py_err)?;
        match parts.as_slice() {
            [p] => foreign.password = Some(p.clone()),
            [u, p] => {
                foreign.username = Some(u.clone());
                foreign.password = Some(p.clone());
            }
            _ => {}
        }
    }
    foreign.tls = connection_class.contains("SSL");
    if foreign.tls {
        foreign.tls_insecure = get("ssl_cert_reqs").is_some_and(|v| {
            v.extract::<String>()
                .is_ok_and(|s| s.eq_ignore_ascii_case("none"))
                || v.extract::<i64>().is_ok_and(|n| n == 0)
        });
        foreign.tls_material = [
            "ssl_ca_certs",
            "ssl_ca_path",
            "ssl_ca_data",
            "ssl_certfile",
            "ssl_keyfile",
        ]
        .into_iter()
        .find(|key| get(key).is_some())
        .map(str::to_string);
    }
    Ok(Some(foreign))
}
