// SPDX-License-Identifier: GPL-2.0

//! I/O page fault handling: the Rust implementation of `io-pgfault.c`.
//!
//! IOMMU drivers report page requests from devices (PCIe PRI, SMMU stall)
//! with `iommu_report_device_fault()`. Requests without the Last Page flag
//! are held per device until the last request of their page request group
//! arrives; the group is then handed to the `iopf_handler` of the domain
//! attached to the device (or the PASID), which answers it with
//! `iopf_group_response()` and frees it with `iopf_free_group()`.
//!
//! The C API in `<linux/iommu.h>` is kept as is; [`ffi`] is the only place
//! where raw pointers from C become Rust references. Ownership:
//!
//! - [`queue::Queue`] (`struct iopf_queue`) owns its workqueue and one
//!   reference to the fault data of each device added to it;
//! - [`fault_param::FaultParam`] (`struct iommu_fault_param`) is the
//!   per-device data, published in `dev->iommu->fault_param` under RCU and
//!   freed after a grace period once its last reference is dropped;
//! - [`partial::PartialStore`] owns the held partial requests, indexed by
//!   group id and bounded in number;
//! - [`group::Group`] wraps the C `struct iopf_group` that handlers see and
//!   owns the requests of the group and a reference to the fault data.
//!
//! See `Documentation/iommu/iopf-rust.rst` for the lock order and lifetimes.

/// The prefix of `pr_*!` messages (`module!` defines it for modules; this
/// crate is built in).
const __LOG_PREFIX: &[u8] = b"iopf\0";

mod device;
mod fault;
mod fault_param;
pub mod ffi; // `pub`: its functions are called from C.
mod group;
mod partial;
mod queue;
mod report;
mod response;
