// SPDX-License-Identifier: MIT OR Apache-2.0
//! The two flavours of every class, and [`twins!`], which writes both from one definition.
//!
//! Each class exists twice: async in `txcoord` (methods return awaitables) and blocking in
//! `txcoord.sync` (methods block the calling thread, detached from Python). Their Python names,
//! signatures, defaults and docstrings are the same, and so is the work: only how a method's
//! future is run differs. So each method is written once, over a flavour `F`, and runs its
//! future with `bridge::run(py, F::RUN, ...)`: [`Async`] hands it to the asyncio bridge,
//! [`Blocking`] waits for it with `bridge::block`; both convert its value with the same
//! `deliver` function.

use std::sync::Arc;

use pyo3::prelude::*;

use crate::bridge::{self, LoopQueue, Run};
use crate::lock::{LockShared, PyDistributedLock, PySyncDistributedLock};
use crate::manager::{ManagerShared, Request};
use crate::on_lost::Notifier;
use crate::scope::{PyLockContext, PySyncLockContext};

/// What differs between an async class and its blocking twin.
pub(crate) trait Flavour {
    /// The module of this flavour's classes (`txcoord` or `txcoord.sync`), for `__repr__`.
    const MODULE: &'static str;
    /// How this flavour's methods run their futures.
    const RUN: Run;

    /// Who runs `on_lost` callbacks: the calling event loop, or a background thread.
    fn notifier(py: Python<'_>) -> PyResult<Notifier> {
        match Self::RUN {
            Run::Await => Ok(Notifier::Loop(LoopQueue::current(py)?)),
            Run::Block => Ok(Notifier::Thread),
        }
    }

    /// `value`, as `__aenter__` (an awaitable of it) or `__enter__` returns it.
    fn ready(py: Python<'_>, value: Py<PyAny>) -> PyResult<Bound<'_, PyAny>> {
        match Self::RUN {
            Run::Await => bridge::ready(py, value),
            Run::Block => Ok(value.into_bound(py)),
        }
    }

    /// A lock object of this flavour over `shared`.
    fn lock(py: Python<'_>, shared: Arc<LockShared>) -> PyResult<Py<PyAny>>;

    /// The `manager.lock(...)` context of this flavour.
    fn context(
        py: Python<'_>,
        manager: Arc<ManagerShared>,
        request: Request,
    ) -> PyResult<Py<PyAny>>;
}

/// The async classes of `txcoord`.
pub(crate) struct Async;

/// The blocking classes of `txcoord.sync`.
pub(crate) struct Blocking;

macro_rules! flavour {
    ($flavour:ty, $module:literal, $run:expr, $lock:ident, $context:ident) => {
        impl Flavour for $flavour {
            const MODULE: &'static str = $module;
            const RUN: Run = $run;

            fn lock(py: Python<'_>, shared: Arc<LockShared>) -> PyResult<Py<PyAny>> {
                Ok(Py::new(py, $lock { shared })?.into_any())
            }

            fn context(
                py: Python<'_>,
                manager: Arc<ManagerShared>,
                request: Request,
            ) -> PyResult<Py<PyAny>> {
                Ok(Py::new(py, $context::new(manager, request))?.into_any())
            }
        }
    };
}

flavour!(
    Async,
    "txcoord",
    Run::Await,
    PyDistributedLock,
    PyLockContext
);
flavour!(
    Blocking,
    "txcoord.sync",
    Run::Block,
    PySyncDistributedLock,
    PySyncLockContext
);

/// An async class and its blocking twin from one definition.
///
/// ```text
/// twins! {
///     /// (docstring of the async class)
///     #[pyclass(name = "X", module = "txcoord", frozen)]
///     pub(crate) struct PyX: Async;
///     /// (docstring of the blocking class)
///     #[pyclass(name = "X", module = "txcoord.sync", frozen)]
///     pub(crate) struct PySyncX: Blocking;
///     fields { (the fields of both) }
///     flavour F;
///     methods {
///         @async { /// (docstring, or attributes, of the async method only) }
///         @sync { #[pyo3(name = "...")] }
///         /// (docstring of both)
///         fn method<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
///             bridge::run(py, F::RUN, OnCancel::Finish, future, deliver)
///         }
///     }
///     impl { (Rust-only items of both, without a flavour) }
/// }
/// ```
///
/// Each method is generated in both classes: its flavour's own attributes (given first), then
/// the shared ones; inside its body, `F` (the name given after `flavour`) is the class's
/// [`Flavour`].
macro_rules! twins {
    // One class's `#[pymethods]`: each method with its flavour's own attributes, then the shared
    // ones, and `$fl` naming the flavour in its body.
    (@methods $ty:ident: $flavour:ty, $fl:ident, $({
        [$(#[$own:meta])*] $(#[$attr:meta])*
        fn $name:ident $(<$($lt:lifetime),+>)? ( $($params:tt)* ) $(-> $ret:ty)? $body:block
    })*) => {
        #[pymethods]
        impl $ty {
            $(
                $(#[$own])*
                $(#[$attr])*
                fn $name $(<$($lt),+>)? ( $($params)* ) $(-> $ret)? {
                    #[allow(dead_code)]
                    type $fl = $flavour;
                    $body
                }
            )*
        }
    };
    (
        $(#[$async_attr:meta])*
        $vis:vis struct $async_ty:ident : $async_fl:ty;
        $(#[$sync_attr:meta])*
        $svis:vis struct $sync_ty:ident : $sync_fl:ty;
        fields { $($fields:tt)* }
        flavour $fl:ident;
        methods {
            $(
                $(@async { $(#[$m_async:meta])* })?
                $(@sync { $(#[$m_sync:meta])* })?
                $(#[$m_attr:meta])*
                fn $name:ident $(<$($lt:lifetime),+>)? ( $($params:tt)* ) $(-> $ret:ty)? $body:block
            )*
        }
        $(impl { $($common:tt)* })?
    ) => {
        $(#[$async_attr])*
        $vis struct $async_ty { $($fields)* }

        $(#[$sync_attr])*
        $svis struct $sync_ty { $($fields)* }

        twins!(@methods $async_ty: $async_fl, $fl, $({ [$($(#[$m_async])*)?] $(#[$m_attr])*
            fn $name $(<$($lt),+>)? ($($params)*) $(-> $ret)? $body })*);
        twins!(@methods $sync_ty: $sync_fl, $fl, $({ [$($(#[$m_sync])*)?] $(#[$m_attr])*
            fn $name $(<$($lt),+>)? ($($params)*) $(-> $ret)? $body })*);

        $(
            impl $async_ty { $($common)* }
            impl $sync_ty { $($common)* }
        )?
    };
}

pub(crate) use twins;
