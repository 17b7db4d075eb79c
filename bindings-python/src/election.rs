// SPDX-License-Identifier: MIT OR Apache-2.0
//! `LeaderElection` (async and blocking, from one definition: see `twin`) over the core's
//! `LeaderElection`, with `on_elected(term)` / `on_revoked(term)` callbacks (`on_revoked` when
//! the leadership of `term` ends: resigned, or its lease lost).
//!
//! The callbacks are owned by the Python object (in slots it reports to the garbage collector,
//! as `on_lost` callbacks are); the runtime task that watches the leadership holds only `Weak`
//! handles to the slots, and stops when the object goes. Async elections call them on the event
//! loop of the first campaign (a coroutine they return runs as a task); blocking ones on a
//! runtime blocking thread, one after the other.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyBool;
use pyo3::{PyTraverseError, PyVisit};
use tokio::task::AbortHandle;
use txcoord::binding::validate;
use txcoord::{ElectionOptions, Leader, LeaderElection};

use crate::bridge::{self, OnCancel};
use crate::client::{resolve, ClientHandle};
use crate::convert::{type_description, Arg, OwnedRaw};
use crate::error::{guard, IntoPyResult};
use crate::on_lost::{is_awaitable, keep_running, Notifier, Slot};
use crate::runtime::{self, ForkSafe};
use crate::twin::{twins, Async, Blocking, Flavour};

/// A campaign without a timeout waits this long: the longest wait accepted (about 24.8 days).
const NO_LIMIT: Duration = Duration::from_millis(validate::MAX_MS);

/// What a Python election keeps.
pub(crate) struct ElectionShared {
    client: Arc<ClientHandle>,
    name: String,
    ttl: Duration,
    /// The candidate id given (a forked child otherwise gets a new one: two processes must
    /// never campaign as one candidate, which would re-enter each other's leadership).
    candidate_id: Option<String>,
    election: ForkSafe<LeaderElection>,
    on_elected: Option<Arc<Slot>>,
    on_revoked: Option<Arc<Slot>>,
    // A std mutex: replaced or taken, never held across an await.
    watcher: Mutex<Option<(u32, AbortHandle)>>,
}

impl Drop for ElectionShared {
    fn drop(&mut self) {
        let watcher = self
            .watcher
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some((pid, w)) = watcher {
            if pid == std::process::id() {
                w.abort();
            }
        }
    }
}

fn build(
    client: &txcoord::Client,
    name: &str,
    ttl: Duration,
    candidate_id: Option<&str>,
) -> txcoord::Result<LeaderElection> {
    let mut options = ElectionOptions::new().set_ttl(ttl);
    if let Some(id) = candidate_id {
        options = options.set_candidate_id(id);
    }
    LeaderElection::new(client, name, options)
}

/// Gives up a leadership won by a campaign whose awaitable was cancelled meanwhile.
fn resign_in_background(election: LeaderElection) {
    if let Ok(handle) = runtime::handle() {
        handle.spawn(async move {
            if let Err(e) = election.resign().await {
                tracing::warn!(target: "txcoord", "txcoord: resign after a cancelled campaign: {e}");
            }
        });
    }
}

/// Calls `on_elected(term)` or `on_revoked(term)` (whichever `slot` holds) through `notifier`.
async fn deliver(notifier: &Notifier, slot: &Option<Weak<Slot>>, term: u64) {
    let Some(slot) = slot.clone() else {
        return;
    };
    let call = move |py: Python<'_>| -> PyResult<()> {
        let Some(cb) = slot.upgrade().and_then(|s| s.get(py)) else {
            return Ok(());
        };
        let out = cb.bind(py).call1((term,))?;
        if is_awaitable(py, &out)? {
            keep_running(py, &out)?;
        }
        Ok(())
    };
    match notifier {
        Notifier::Loop(queue) => queue.call(Box::new(call)),
        Notifier::Thread => {
            let done = tokio::task::spawn_blocking(move || {
                Python::try_attach(|py| {
                    if let Err(e) = call(py) {
                        e.write_unraisable(py, None);
                    }
                });
            });
            let _ = done.await;
        }
    }
}

impl ElectionShared {
    #[allow(clippy::too_many_arguments)]
    fn construct(
        py: Python<'_>,
        redis: &Bound<'_, PyAny>,
        name: &Bound<'_, PyAny>,
        ttl_ms: &Arg<'_>,
        candidate_id: Option<&Bound<'_, PyAny>>,
        on_elected: Option<&Bound<'_, PyAny>>,
        on_revoked: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Arc<Self>> {
        let raw = OwnedRaw::from_value(name)?;
        let name = validate::resource("name", raw.raw())
            .into_py(py)?
            .to_string();
        let raw = OwnedRaw::from_arg(ttl_ms)?;
        let ttl = validate::ttl("ttl_ms", raw.raw())
            .into_py(py)?
            .unwrap_or(txcoord::DEFAULT_LEADER_TTL);
        let raw = OwnedRaw::from_optional(candidate_id)?;
        let candidate_id = validate::owner_id("candidate_id", raw.raw())
            .into_py(py)?
            .map(str::to_string);
        let on_elected = callback(py, "on_elected", on_elected)?;
        let on_revoked = callback(py, "on_revoked", on_revoked)?;
        let client = resolve(py, redis)?;
        let election = build(
            &client.get().into_py(py)?,
            &name,
            ttl,
            candidate_id.as_deref(),
        )
        .into_py(py)?;
        Ok(Arc::new(ElectionShared {
            client,
            name,
            ttl,
            candidate_id,
            election: ForkSafe::new(election),
            on_elected,
            on_revoked,
            watcher: Mutex::new(None),
        }))
    }

    /// The core election for this process.
    fn election(&self) -> txcoord::Result<LeaderElection> {
        self.election.get(|_| {
            build(
                &self.client.get()?,
                &self.name,
                self.ttl,
                self.candidate_id.as_deref(),
            )
        })
    }

    /// Starts watching the leadership for the callbacks (once per process), before the first
    /// campaign, so that its election is seen.
    fn arm(
        &self,
        py: Python<'_>,
        election: &LeaderElection,
        notifier: impl FnOnce() -> PyResult<Notifier>,
    ) -> PyResult<()> {
        if self.on_elected.is_none() && self.on_revoked.is_none() {
            return Ok(());
        }
        let pid = std::process::id();
        let mut watcher = self.watcher.lock().unwrap_or_else(|p| p.into_inner());
        if watcher.as_ref().is_some_and(|(p, _)| *p == pid) {
            return Ok(());
        }
        let notifier = notifier()?;
        let elected = self.on_elected.as_ref().map(Arc::downgrade);
        let revoked = self.on_revoked.as_ref().map(Arc::downgrade);
        let mut rx = election.watch();
        let task = runtime::handle().into_py(py)?.spawn(async move {
            let mut last = *rx.borrow_and_update();
            while rx.changed().await.is_ok() {
                let now = *rx.borrow_and_update();
                if now == last {
                    continue;
                }
                if let Some(ended) = last {
                    deliver(&notifier, &revoked, ended).await;
                }
                if let Some(term) = now {
                    deliver(&notifier, &elected, term).await;
                }
                last = now;
            }
        });
        *watcher = Some((pid, task.abort_handle()));
        Ok(())
    }

    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        for slot in [&self.on_elected, &self.on_revoked].into_iter().flatten() {
            slot.traverse(visit)?;
        }
        Ok(())
    }

    fn clear(&self) {
        for slot in [&self.on_elected, &self.on_revoked].into_iter().flatten() {
            slot.clear();
        }
    }
}

/// An `on_elected=`/`on_revoked=` argument: a callable or `None`.
fn callback(
    py: Python<'_>,
    arg: &'static str,
    value: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<Arc<Slot>>> {
    match value {
        None => Ok(None),
        Some(cb) if cb.is_none() => Ok(None),
        Some(cb) if cb.is_callable() => Ok(Some(Slot::new(cb.clone().unbind()))),
        Some(cb) => Err(txcoord::Error::invalid_type(
            arg,
            format!("must be a callable, got {}", type_description(cb)),
        ))
        .into_py(py),
    }
}

/// Who leads an election, as any observer reads it.
#[pyclass(name = "Leader", module = "txcoord", frozen, eq)]
#[derive(Clone, PartialEq)]
pub(crate) struct PyLeader {
    inner: Leader,
}

#[pymethods]
impl PyLeader {
    /// The leading candidate's id.
    #[getter]
    fn candidate_id(&self) -> &str {
        &self.inner.candidate_id
    }
    /// Its term (a fencing number, larger for every later leadership).
    #[getter]
    fn term(&self) -> u64 {
        self.inner.term
    }
    /// How long its lease has left, in ms.
    #[getter]
    fn remaining_ms(&self) -> i64 {
        self.inner.remaining_ms
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Leader(candidate_id={}, term={}, remaining_ms={})",
            pyo3::types::PyString::new(py, &self.inner.candidate_id).repr()?,
            self.inner.term,
            self.inner.remaining_ms
        ))
    }
}

twins! {
    /// A candidate in one leader election (async API): at most one candidate of an election
    /// leads at a time, each leadership with a term larger than every earlier one. Built on the
    /// lock `txcoord:election:<name>` (PROTOCOL.md, section 9).
    #[pyclass(name = "LeaderElection", module = "txcoord", frozen)]
    pub(crate) struct PyLeaderElection: Async;
    /// A candidate in one leader election (blocking API, `txcoord.sync.LeaderElection`).
    #[pyclass(name = "LeaderElection", module = "txcoord.sync", frozen)]
    pub(crate) struct PySyncLeaderElection: Blocking;
    fields {
        shared: Arc<ElectionShared>,
    }
    flavour F;
    methods {
        #[new]
        #[pyo3(
            signature = (redis, name, *, ttl_ms=Arg::Absent, candidate_id=None, on_elected=None, on_revoked=None),
            text_signature = "(redis, name, *, ttl_ms=10000, candidate_id=None, on_elected=None, on_revoked=None)"
        )]
        #[allow(clippy::too_many_arguments)]
        fn new(
            py: Python<'_>,
            redis: &Bound<'_, PyAny>,
            name: &Bound<'_, PyAny>,
            ttl_ms: Arg<'_>,
            candidate_id: Option<&Bound<'_, PyAny>>,
            on_elected: Option<&Bound<'_, PyAny>>,
            on_revoked: Option<&Bound<'_, PyAny>>,
        ) -> PyResult<Self> {
            guard(py, || {
                Ok(Self {
                    shared: ElectionShared::construct(
                        py,
                        redis,
                        name,
                        &ttl_ms,
                        candidate_id,
                        on_elected,
                        on_revoked,
                    )?,
                })
            })
        }

        /// Waits until this candidate leads, or at most `timeout_ms` (0 tries once; None: no
        /// limit); True once leading (at once if it already leads). Cancelling the wait gives
        /// up the campaign.
        #[pyo3(signature = (timeout_ms=None))]
        fn campaign<'py>(&self, py: Python<'py>, timeout_ms: Option<&Bound<'_, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
            let raw = OwnedRaw::from_optional(timeout_ms)?;
            let timeout = validate::timeout("timeout_ms", raw.raw())
                .into_py(py)?
                .unwrap_or(NO_LIMIT);
            let election = self.shared.election().into_py(py)?;
            self.shared.arm(py, &election, || F::notifier(py))?;
            let kept = election.clone();
            bridge::run_or_discard(
                py,
                F::RUN,
                OnCancel::Abort,
                async move { election.campaign(timeout).await },
                |py, won| Ok(PyBool::new(py, won).to_owned().into_any().unbind()),
                move |won| {
                    if won {
                        resign_in_background(kept);
                    }
                },
            )
        }

        /// Gives up the leadership (if this candidate leads): the waiting candidates are woken.
        fn resign<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
            let election = self.shared.election().into_py(py)?;
            bridge::run(
                py,
                F::RUN,
                OnCancel::Finish,
                async move { election.resign().await },
                |py, ()| Ok(py.None()),
            )
        }

        /// Who leads now, as any observer reads it (a `Leader`), or None.
        fn leader<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
            let election = self.shared.election().into_py(py)?;
            bridge::run(
                py,
                F::RUN,
                OnCancel::Abort,
                async move { election.leader().await },
                |py, leader| match leader {
                    Some(inner) => Ok(Py::new(py, PyLeader { inner })?.into_any()),
                    None => Ok(py.None()),
                },
            )
        }

        /// Whether this candidate leads now (False as soon as its lease's local deadline
        /// passed).
        #[getter]
        fn is_leader(&self, py: Python<'_>) -> PyResult<bool> {
            Ok(self.shared.election().into_py(py)?.is_leader())
        }

        /// The term of this candidate's leadership while it leads (a fencing number), else None.
        #[getter]
        fn term(&self, py: Python<'_>) -> PyResult<Option<u64>> {
            Ok(self.shared.election().into_py(py)?.term())
        }

        /// This candidate's id (as observers see the leader).
        #[getter]
        fn candidate_id(&self, py: Python<'_>) -> PyResult<String> {
            Ok(self.shared.election().into_py(py)?.candidate_id().to_string())
        }

        @async { #[pyo3(name = "__aenter__")] }
        @sync { #[pyo3(name = "__enter__")] }
        /// Campaigns until elected (cancellable), and gives the election.
        fn enter<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
            let py = slf.py();
            let shared = slf.get().shared.clone();
            let election = shared.election().into_py(py)?;
            shared.arm(py, &election, || F::notifier(py))?;
            let me = slf.into_any().unbind();
            let kept = election.clone();
            bridge::run_or_discard(
                py,
                F::RUN,
                OnCancel::Abort,
                async move {
                    let started = tokio::time::Instant::now();
                    if election.campaign(NO_LIMIT).await? {
                        Ok(())
                    } else {
                        Err(txcoord::Error::Timeout {
                            key: election.key().to_string(),
                            waited_ms: started.elapsed().as_millis() as u64,
                        })
                    }
                },
                move |_py, ()| Ok(me),
                move |()| resign_in_background(kept),
            )
        }

        @async { #[pyo3(name = "__aexit__")] }
        @sync { #[pyo3(name = "__exit__")] }
        /// Resigns.
        fn exit<'py>(
            &self,
            py: Python<'py>,
            _exc_type: &Bound<'_, PyAny>,
            _exc: &Bound<'_, PyAny>,
            _tb: &Bound<'_, PyAny>,
        ) -> PyResult<Bound<'py, PyAny>> {
            let election = self.shared.election().into_py(py)?;
            bridge::run(
                py,
                F::RUN,
                OnCancel::Finish,
                async move { election.resign().await },
                |py, ()| Ok(py.None()),
            )
        }

        fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
            self.shared.traverse(&visit)
        }

        fn __clear__(&self) {
            self.shared.clear();
        }

        fn __repr__(&self) -> String {
            let candidate = self
                .shared
                .election
                .peek()
                .map(|e| e.candidate_id().to_string())
                .unwrap_or_default();
            format!(
                "<{}.LeaderElection name={:?} candidate_id={:?}>",
                F::MODULE,
                self.shared.name,
                candidate
            )
        }
    }
}

/// Adds the election classes to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<PyLeader>()?;
    m.add_class::<PyLeaderElection>()?;
    m.add("SyncLeaderElection", py.get_type::<PySyncLeaderElection>())?;
    Ok(())
}
