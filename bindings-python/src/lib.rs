// SPDX-License-Identifier: MIT OR Apache-2.0
//! Python binding of txcoord (work in progress).
