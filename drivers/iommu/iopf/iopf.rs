// SPDX-License-Identifier: GPL-2.0

//! I/O page fault handling: the Rust implementation of `io-pgfault.c`.
//!
//! IOMMU drivers report page requests from devices (PCIe PRI, SMMU stall) with
//! `iommu_report_device_fault()`. Requests without the Last Page flag are held per device until
//! the last request of their page request group arrives; the group is then handed to the
//! `iopf_handler` of the domain attached to the device (or the PASID), which answers it with
//! `iopf_group_response()` and frees it with `iopf_free_group()`.
//!
//! The C API of `<linux/iommu.h>` is kept as it is. [`ffi`] is its only door: the one module
//! allowed `unsafe`, where pointers from C become the safe types of `kernel::iommu::fault`, which
//! own the C layouts (`struct iopf_group`, `struct iopf_fault`). The rest is safe Rust:
//!
//! - [`queue::Queue`] (`struct iopf_queue`) owns its workqueue and a reference to the fault data
//!   of each device added to it;
//! - [`fault_param::FaultParam`] (`struct iommu_fault_param`) is a device's fault data, published
//!   in `dev->iommu->fault_param` under RCU; every group of the device holds a reference to it;
//! - [`partial::Partials`] holds the requests of incomplete groups, indexed by group, bounded;
//! - [`report`] is the path of a page request, from the driver to the domain's handler;
//! - [`stats::Stats`] counts what a device's requests came to, for debugfs; the tracepoints of
//!   each step are `kernel::iommu::fault::trace`.
//!
//! See `Documentation/iommu/iopf-rust.rst` for the ownership, lifetimes and lock order.

#![deny(unsafe_code)]

/// The prefix of `pr_*!` messages (`module!` defines it for modules; this crate is built in).
const __LOG_PREFIX: &[u8] = b"iopf\0";

mod fault_param;
#[allow(unsafe_code)]
pub mod ffi; // `pub`: its functions are called from C.
mod partial;
mod queue;
mod report;
mod stats;
