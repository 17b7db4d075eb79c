// SPDX-License-Identifier: MIT OR Apache-2.0
//! Deadlocks between sagas, found on the lock registry and broken in about a second.
//!
//! - `graph.rs`: the wait-for graph, its cycles (iterative Tarjan) and the victim rule;
//! - `cycle.rs`: a cycle explained, with a stable id;
//! - `read.rs`: reading the graph from the registry (all of it, or the part reachable from
//!   some sagas);
//! - `resolve.rs`: re-checking and breaking cycles, the same way wherever it runs;
//! - `probe.rs`: waiting acquisitions that probe for cycles through their own saga;
//! - `detector.rs`: the seed's `SagaDeadlockDetector`.

mod cycle;
mod detector;
mod graph;
pub(crate) mod probe;
mod read;
mod resolve;

pub use cycle::{CycleEdge, DeadlockCycle};
pub use detector::{
    DeadlockMetrics, DeadlockResult, DetectorOptions, Logger, SagaDeadlockDetector, TracingLogger,
    ABORT_ERROR,
};
pub use graph::{GraphEdge, SagaNode, WaitForGraph};
