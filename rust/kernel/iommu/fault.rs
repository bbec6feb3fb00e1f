// SPDX-License-Identifier: GPL-2.0

//! I/O page faults: page requests from devices, reported to the IOMMU core and answered.
//!
//! C header: [`include/linux/iommu.h`](srctree/include/linux/iommu.h)
//!
//! Devices behind an IOMMU with PCIe PRI, or an Arm SMMU in stall mode, ask the IOMMU for pages
//! they found missing. The IOMMU driver receives these *page requests* and reports them to the
//! IOMMU core's I/O page fault (IOPF) framework, which collects the requests of a *page request
//! group* until its last one arrives, hands the group to the fault handler of the domain attached
//! to the device, and sends the handler's answer back through the driver's `page_response` op.
//!
//! An IOMMU driver uses:
//!
//! - [`FaultQueue`]: one per IOMMU instance, it owns the C `struct iopf_queue` whose workqueue
//!   runs the fault handlers that defer their work;
//! - [`QueueDevice`]: a device registered on a queue, which may report page requests; it leaves
//!   the queue when dropped;
//! - [`QueueDevice::report`]: reports one [`PageRequest`];
//! - [`PageResponder`]: the driver's `page_response` op, which sends a [`PageResponse`] to the
//!   device; [`page_response_op`] makes the C function pointer for `struct iommu_ops`.
//!
//! A fault consumer, the owner of a domain's `iopf_handler`, uses:
//!
//! - [`Handler`]: receives each complete group as an [`Incoming`]; [`iopf_handler`] makes the C
//!   function pointer for `struct iommu_domain`;
//! - [`Incoming::queue_work`]: defers the group to the fault queue's workqueue ([`GroupWork`]);
//! - [`Group`]: owns a group until it is answered with [`Group::respond`], exactly once.
//!
//! The IOPF framework itself (the Rust implementation of `io-pgfault.c`) uses the requests in C
//! layout ([`Fault`], [`FaultChain`]), the devices and domains it finds them for ([`Endpoint`],
//! [`FaultHandler`]), and the life of a group from its allocation to its answer ([`NewGroup`],
//! [`Owned`], [`Handed`], [`DeviceFaults`]), and fires the framework's tracepoints ([`trace`], with
//! `CONFIG_IOMMU_IOPF_RUST`). All three see a group through one type, [`IopfGroup`].
//!
//! Every group gets exactly one response: a [`Group`] dropped without [`Group::respond`] is
//! answered [`ResponseCode::Invalid`].

mod chain;
mod device;
mod domain;
mod framework;
mod group;
mod queue;
mod request;
mod response;
#[cfg(CONFIG_IOMMU_IOPF_RUST)]
pub mod trace;

pub use self::chain::{
    ChainIter,
    Fault,
    FaultChain, //
};
pub use self::device::{
    Endpoint,
    PageResponseOp, //
};
pub use self::domain::{
    AttachHandle,
    Domain,
    FaultHandler,
    IopfHandler, //
};
pub use self::framework::{
    Answer,
    DeviceFaults,
    FaultOwner,
    Handed,
    NewGroup,
    Owned, //
};
pub use self::group::{
    handle,
    iopf_handler,
    Faults,
    Group,
    GroupWork,
    Handler,
    Incoming,
    IopfGroup, //
};
pub use self::queue::{
    FaultQueue,
    QueueDevice, //
};
pub use self::request::{
    PageRequest,
    PageResponse,
    Pasid,
    Permission,
    Permissions,
    ResponseCode, //
};
pub use self::response::{
    page_response_op,
    PageResponder, //
};
