// SPDX-License-Identifier: MIT OR Apache-2.0
//! The detector's results as Python values: `DeadlockCycle` (explained: `str()` reads as the
//! explanation), `CycleEdge`, `DeadlockResult`, and the wait-for graph (`WaitForGraph`,
//! `SagaNode`, `GraphEdge`). Immutable, comparable, each with a `repr`.

use pyo3::prelude::*;
use pyo3::types::PyString;
use txcoord::{CycleEdge, DeadlockCycle, DeadlockResult, GraphEdge, SagaNode, WaitForGraph};

fn quoted(py: Python<'_>, s: &str) -> String {
    PyString::new(py, s)
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| format!("{s:?}"))
}

fn quoted_opt(py: Python<'_>, s: Option<&str>) -> String {
    s.map(|s| quoted(py, s)).unwrap_or_else(|| "None".into())
}

fn opt_int(v: Option<u64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "None".into())
}

/// One hop of a deadlock cycle: `waiter` has waited `waited_ms` for `lock_key`, held by
/// `holder` (with fencing token `holder_token`).
#[pyclass(name = "CycleEdge", module = "txcoord", frozen, eq)]
#[derive(Clone, PartialEq)]
pub(crate) struct PyCycleEdge {
    inner: CycleEdge,
}

#[pymethods]
impl PyCycleEdge {
    /// The waiting saga.
    #[getter]
    fn waiter(&self) -> &str {
        &self.inner.waiter
    }
    /// The saga holding the lock.
    #[getter]
    fn holder(&self) -> &str {
        &self.inner.holder
    }
    /// The lock's key (`lock:<resource>`).
    #[getter]
    fn lock_key(&self) -> &str {
        &self.inner.lock_key
    }
    /// The holder's fencing token.
    #[getter]
    fn holder_token(&self) -> Option<u64> {
        self.inner.holder_token
    }
    /// How long the waiter has waited, in ms.
    #[getter]
    fn waited_ms(&self) -> u64 {
        self.inner.waited_ms
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let e = &self.inner;
        format!(
            "CycleEdge(waiter={}, holder={}, lock_key={}, holder_token={}, waited_ms={})",
            quoted(py, &e.waiter),
            quoted(py, &e.holder),
            quoted(py, &e.lock_key),
            opt_int(e.holder_token),
            e.waited_ms
        )
    }
}

/// A deadlock cycle, explained: `sagas` in order (the first repeated at the end, the seed's
/// shape), one edge per hop, the `victim` once one was aborted, and an `id` that is the same
/// for the same cycle wherever and whenever it is found. `str()` reads as the explanation.
#[pyclass(name = "DeadlockCycle", module = "txcoord", frozen, eq)]
#[derive(Clone, PartialEq)]
pub(crate) struct PyDeadlockCycle {
    pub(crate) inner: DeadlockCycle,
}

/// A new Python `DeadlockCycle`.
pub(crate) fn cycle_to_py(py: Python<'_>, cycle: DeadlockCycle) -> PyResult<Py<PyAny>> {
    Ok(Py::new(py, PyDeadlockCycle { inner: cycle })?.into_any())
}

/// A list of new Python `DeadlockCycle`s.
pub(crate) fn cycles_to_py(py: Python<'_>, cycles: Vec<DeadlockCycle>) -> PyResult<Py<PyAny>> {
    let list = pyo3::types::PyList::empty(py);
    for c in cycles {
        list.append(cycle_to_py(py, c)?)?;
    }
    Ok(list.into_any().unbind())
}

#[pymethods]
impl PyDeadlockCycle {
    /// Stable: the same cycle (same sagas, same locks) always has the same id.
    #[getter]
    fn id(&self) -> &str {
        &self.inner.id
    }
    /// The sagas in order, the first repeated at the end (`["B", "C", "B"]`).
    #[getter]
    fn sagas(&self) -> Vec<String> {
        self.inner.sagas.clone()
    }
    /// One per hop, in the same order.
    #[getter]
    fn edges(&self) -> Vec<PyCycleEdge> {
        self.inner
            .edges
            .iter()
            .map(|e| PyCycleEdge { inner: e.clone() })
            .collect()
    }
    /// The saga aborted to break it, once one was.
    #[getter]
    fn victim(&self) -> Option<&str> {
        self.inner.victim.as_deref()
    }

    fn __str__(&self) -> String {
        self.inner.to_string()
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let sagas: Vec<String> = self.inner.sagas.iter().map(|s| quoted(py, s)).collect();
        format!(
            "DeadlockCycle(id={}, sagas=[{}], victim={})",
            quoted(py, &self.inner.id),
            sagas.join(", "),
            quoted_opt(py, self.inner.victim.as_deref())
        )
    }
}

/// The seed's `detectDeadlock()` result: `has_deadlock`, `cycles` (lists of saga ids, the
/// seed's shape), `affected_sagas` (every saga in a deadlock), and the same cycles explained.
#[pyclass(name = "DeadlockResult", module = "txcoord", frozen, eq)]
#[derive(Clone, PartialEq)]
pub(crate) struct PyDeadlockResult {
    pub(crate) inner: DeadlockResult,
}

#[pymethods]
impl PyDeadlockResult {
    #[getter]
    fn has_deadlock(&self) -> bool {
        self.inner.has_deadlock
    }
    /// One cycle per deadlocked group of sagas, the first saga repeated at the end.
    #[getter]
    fn cycles(&self) -> Vec<Vec<String>> {
        self.inner.cycles.clone()
    }
    /// Every saga in a deadlock (sorted).
    #[getter]
    fn affected_sagas(&self) -> Vec<String> {
        self.inner.affected_sagas.clone()
    }
    /// The same cycles, explained.
    #[getter]
    fn explained(&self) -> Vec<PyDeadlockCycle> {
        self.inner
            .explained
            .iter()
            .map(|c| PyDeadlockCycle { inner: c.clone() })
            .collect()
    }

    fn __repr__(&self) -> String {
        format!(
            "DeadlockResult(has_deadlock={}, cycles={:?}, affected_sagas={:?})",
            if self.inner.has_deadlock {
                "True"
            } else {
                "False"
            },
            self.inner.cycles,
            self.inner.affected_sagas
        )
    }
}

/// A saga in the wait-for graph, with what the victim rule reads.
#[pyclass(name = "SagaNode", module = "txcoord", frozen, eq)]
#[derive(Clone, PartialEq)]
pub(crate) struct PySagaNode {
    inner: SagaNode,
}

#[pymethods]
impl PySagaNode {
    /// The saga id (its lock owner id).
    #[getter]
    fn id(&self) -> &str {
        &self.inner.id
    }
    /// The lowest priority its waits carry.
    #[getter]
    fn priority(&self) -> i32 {
        self.inner.priority
    }
    /// Since when the registry has known it (Redis time, ms since the epoch).
    #[getter]
    fn since_ms(&self) -> u64 {
        self.inner.since_ms
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "SagaNode(id={}, priority={}, since_ms={})",
            quoted(py, &self.inner.id),
            self.inner.priority,
            self.inner.since_ms
        )
    }
}

/// One edge of the wait-for graph: `waiter` waits for `lock_key`, which `holder` holds.
#[pyclass(name = "GraphEdge", module = "txcoord", frozen, eq)]
#[derive(Clone, PartialEq)]
pub(crate) struct PyGraphEdge {
    inner: GraphEdge,
}

#[pymethods]
impl PyGraphEdge {
    #[getter]
    fn waiter(&self) -> &str {
        &self.inner.waiter
    }
    #[getter]
    fn holder(&self) -> &str {
        &self.inner.holder
    }
    #[getter]
    fn lock_key(&self) -> &str {
        &self.inner.lock_key
    }
    /// The waiter's id in the registry (what an abort marks).
    #[getter]
    fn waiter_id(&self) -> &str {
        &self.inner.waiter_id
    }
    /// How long it has waited, in ms.
    #[getter]
    fn waited_ms(&self) -> u64 {
        self.inner.waited_ms
    }
    /// The holder's fencing token.
    #[getter]
    fn holder_token(&self) -> Option<u64> {
        self.inner.holder_token
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let e = &self.inner;
        format!(
            "GraphEdge(waiter={}, holder={}, lock_key={}, waiter_id={}, waited_ms={}, holder_token={})",
            quoted(py, &e.waiter),
            quoted(py, &e.holder),
            quoted(py, &e.lock_key),
            quoted(py, &e.waiter_id),
            e.waited_ms,
            opt_int(e.holder_token)
        )
    }
}

/// The wait-for graph among sagas, as the lock registry shows it now (for tools).
#[pyclass(name = "WaitForGraph", module = "txcoord", frozen, eq)]
#[derive(Clone, PartialEq)]
pub(crate) struct PyWaitForGraph {
    pub(crate) inner: WaitForGraph,
}

#[pymethods]
impl PyWaitForGraph {
    #[getter]
    fn nodes(&self) -> Vec<PySagaNode> {
        self.inner
            .nodes
            .iter()
            .map(|n| PySagaNode { inner: n.clone() })
            .collect()
    }
    #[getter]
    fn edges(&self) -> Vec<PyGraphEdge> {
        self.inner
            .edges
            .iter()
            .map(|e| PyGraphEdge { inner: e.clone() })
            .collect()
    }

    fn __repr__(&self) -> String {
        format!(
            "<WaitForGraph: {} sagas, {} edges>",
            self.inner.nodes.len(),
            self.inner.edges.len()
        )
    }
}

/// Adds the value classes to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyCycleEdge>()?;
    m.add_class::<PyDeadlockCycle>()?;
    m.add_class::<PyDeadlockResult>()?;
    m.add_class::<PySagaNode>()?;
    m.add_class::<PyGraphEdge>()?;
    m.add_class::<PyWaitForGraph>()?;
    Ok(())
}
