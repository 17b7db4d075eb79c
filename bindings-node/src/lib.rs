// SPDX-License-Identifier: MIT OR Apache-2.0
//! Node binding of txcoord (work in progress).
