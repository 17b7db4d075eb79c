// SPDX-License-Identifier: MIT OR Apache-2.0
//! A user's own saga repository, written in Python, as the core's `SagaRepository`: the core
//! calls its methods from tokio (see `user`: coroutines run on the event loop captured when the
//! object was handed over, or later by the awaited call that uses it; methods that return
//! plain values are accepted too).
//!
//! An exception a user's method raises becomes a core error carrying its text (`the saga
//! repository's save() raised ...`), which the core reports (the detector logs it, the monitor
//! counts the step as failed).

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyTuple};
use pyo3::{PyTraverseError, PyVisit};
use txcoord::{BoxFuture, SagaRecord, SagaRepository, SagaStatistics, SaveOptions, SaveOutcome};

use super::record::{record_from_py, record_to_py, statistics_from_py};
use super::redis::{save_kwargs, PyRedisSagaRepository, PySyncRedisSagaRepository, RepoShared};
use crate::convert::type_description;
use crate::error::IntoPyResult;
use crate::user::{CallArgs, UserObject};

/// The core error for an exception a user's method raised, or a value it returned that cannot
/// be read: its text (the detector logs it).
fn carry(message: String) -> txcoord::Error {
    txcoord::Error::Internal(message)
}

/// Where a repository comes from: the built-in one, or a user's object.
#[derive(Clone)]
pub(crate) enum RepoSource {
    Redis(Arc<RepoShared>),
    User(Arc<PyRepository>),
}

impl RepoSource {
    /// A `saga_repository` argument: a `RedisSagaRepository` (either flavour), or any object
    /// with the seed's methods.
    pub(crate) fn from_py(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<RepoSource> {
        if let Ok(r) = obj.cast::<PyRedisSagaRepository>() {
            return Ok(RepoSource::Redis(r.get().shared.clone()));
        }
        if let Ok(r) = obj.cast::<PySyncRedisSagaRepository>() {
            return Ok(RepoSource::Redis(r.get().shared.clone()));
        }
        Ok(RepoSource::User(PyRepository::new(py, obj)?))
    }

    /// The core repository for this process.
    pub(crate) fn core(&self) -> txcoord::Result<Arc<dyn SagaRepository>> {
        Ok(match self {
            RepoSource::Redis(shared) => Arc::new(shared.repo()?),
            RepoSource::User(user) => user.clone(),
        })
    }

    /// Before an awaited call: a user's coroutines run on the loop of the caller.
    pub(crate) fn bind_loop(&self, py: Python<'_>) -> PyResult<()> {
        match self {
            RepoSource::User(user) => user.bind_loop(py),
            RepoSource::Redis(_) => Ok(()),
        }
    }

    pub(crate) fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        match self {
            RepoSource::User(user) => user.user.traverse(visit),
            RepoSource::Redis(_) => Ok(()),
        }
    }

    pub(crate) fn clear(&self) {
        if let RepoSource::User(user) = self {
            user.user.clear();
        }
    }
}

/// The seed's methods a repository object must have.
const METHODS: [&str; 5] = [
    "find_by_id",
    "save",
    "find_active_sagas",
    "find_stuck_sagas",
    "get_statistics",
];

/// A user's repository object as the core's `SagaRepository`.
pub(crate) struct PyRepository {
    /// Owned by the Python object that was given the repository (it reports it to the garbage
    /// collector).
    user: UserObject,
    /// Whether its `save` takes the condition (`expected_version`, `term`, `guard_finished`
    /// keywords, or `**kwargs`); otherwise a conditional save is the seed's plain `save`.
    conditional: bool,
}

/// Whether `save` accepts the keywords of a conditional save (read from its signature; `False`
/// when it has none Python can tell).
fn takes_condition(py: Python<'_>, save: &Bound<'_, PyAny>) -> bool {
    let read = || -> PyResult<bool> {
        let inspect = py.import("inspect")?;
        let params = inspect
            .call_method1("signature", (save,))?
            .getattr("parameters")?;
        let var_keyword = inspect.getattr("Parameter")?.getattr("VAR_KEYWORD")?;
        for p in params.call_method0("values")?.try_iter()? {
            if p?.getattr("kind")?.eq(&var_keyword)? {
                return Ok(true);
            }
        }
        for name in ["expected_version", "term", "guard_finished"] {
            if !params.contains(name)? {
                return Ok(false);
            }
        }
        Ok(true)
    };
    read().unwrap_or(false)
}

fn callable(obj: &Bound<'_, PyAny>, name: &str) -> bool {
    obj.getattr(name).is_ok_and(|m| m.is_callable())
}

impl PyRepository {
    fn new(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<Arc<Self>> {
        if let Some(missing) = METHODS.iter().find(|m| !callable(obj, m)) {
            return Err(txcoord::Error::invalid_type(
                "saga_repository",
                format!(
                    "must be a RedisSagaRepository or an object with the seed's methods ({}); \
                     {} has no {missing}()",
                    METHODS.join(", "),
                    type_description(obj)
                ),
            ))
            .into_py(py);
        }
        Ok(Arc::new(PyRepository {
            user: UserObject::new(py, obj, "the saga repository")?,
            conditional: takes_condition(py, &obj.getattr("save")?),
        }))
    }

    /// Captures the running event loop, for the coroutines of the repository's methods.
    fn bind_loop(&self, py: Python<'_>) -> PyResult<()> {
        self.user.bind_loop(py)
    }

    /// Calls `method` with what `args` builds, and awaits its coroutine on the captured loop.
    async fn call(
        &self,
        method: &'static str,
        args: impl FnOnce(Python<'_>) -> PyResult<CallArgs<'_>>,
    ) -> txcoord::Result<Py<PyAny>> {
        self.user.call(Some(method), args).await.map_err(|err| {
            let message = Python::try_attach(|py| {
                format!("the saga repository's {method}() raised {}", err.value(py))
            })
            .unwrap_or_else(|| format!("the saga repository's {method}() raised"));
            carry(message)
        })
    }

    /// Reads what `method` returned with `read`.
    fn read<T>(
        &self,
        method: &'static str,
        value: Py<PyAny>,
        read: impl FnOnce(&Bound<'_, PyAny>) -> PyResult<T>,
    ) -> txcoord::Result<T> {
        Python::try_attach(|py| {
            read(value.bind(py)).map_err(|cause| {
                carry(format!(
                    "the saga repository's {method}() returned a value txcoord cannot read: {}",
                    cause.value(py)
                ))
            })
        })
        .unwrap_or_else(|| Err(txcoord::Error::Internal("Python is shutting down".into())))
    }

    fn records(&self, method: &'static str, value: Py<PyAny>) -> txcoord::Result<Vec<SagaRecord>> {
        self.read(method, value, |v| {
            v.try_iter()?
                .map(|r| record_from_py("record", &r?))
                .collect()
        })
    }
}

fn record_args<'py>(py: Python<'py>, saga: &SagaRecord) -> PyResult<Bound<'py, PyTuple>> {
    PyTuple::new(py, [record_to_py(py, saga.clone())?])
}

impl SagaRepository for PyRepository {
    fn find_by_id<'a>(&'a self, id: &'a str) -> BoxFuture<'a, txcoord::Result<Option<SagaRecord>>> {
        Box::pin(async move {
            let v = self
                .call("find_by_id", |py| Ok((PyTuple::new(py, [id])?, None)))
                .await?;
            self.read("find_by_id", v, |v| {
                if v.is_none() {
                    Ok(None)
                } else {
                    record_from_py("record", v).map(Some)
                }
            })
        })
    }

    fn save<'a>(&'a self, saga: &'a SagaRecord) -> BoxFuture<'a, txcoord::Result<()>> {
        Box::pin(async move {
            self.call("save", |py| Ok((record_args(py, saga)?, None)))
                .await?;
            Ok(())
        })
    }

    fn save_if<'a>(
        &'a self,
        saga: &'a SagaRecord,
        options: &'a SaveOptions,
    ) -> BoxFuture<'a, txcoord::Result<Option<SaveOutcome>>> {
        Box::pin(async move {
            if !self.conditional {
                self.save(saga).await?;
                return Ok(None);
            }
            let v = self
                .call("save", |py| {
                    Ok((record_args(py, saga)?, Some(save_kwargs(py, options)?)))
                })
                .await?;
            // True or False: the condition was honoured (written or not); anything else: saved
            // unconditionally. The versions it does not report are inferred (the detector only
            // asks whether it was written).
            let next = options.expected_version.unwrap_or(saga.version) + 1;
            self.read("save", v, |v| {
                let Ok(written) = v.cast::<PyBool>() else {
                    return Ok(None);
                };
                Ok(Some(if written.is_true() {
                    SaveOutcome::Written { version: next }
                } else {
                    SaveOutcome::Conflict {
                        version: saga.version,
                        term: 0,
                        status: None,
                    }
                }))
            })
        })
    }

    fn find_active_sagas(&self) -> BoxFuture<'_, txcoord::Result<Vec<SagaRecord>>> {
        Box::pin(async move {
            let v = self
                .call("find_active_sagas", |py| Ok((PyTuple::empty(py), None)))
                .await?;
            self.records("find_active_sagas", v)
        })
    }

    fn find_stuck_sagas(&self) -> BoxFuture<'_, txcoord::Result<Vec<SagaRecord>>> {
        Box::pin(async move {
            let v = self
                .call("find_stuck_sagas", |py| Ok((PyTuple::empty(py), None)))
                .await?;
            self.records("find_stuck_sagas", v)
        })
    }

    fn get_statistics(&self) -> BoxFuture<'_, txcoord::Result<SagaStatistics>> {
        Box::pin(async move {
            let v = self
                .call("get_statistics", |py| Ok((PyTuple::empty(py), None)))
                .await?;
            self.read("get_statistics", v, statistics_from_py)
        })
    }
}
