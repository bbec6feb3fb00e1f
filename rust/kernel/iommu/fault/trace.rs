// SPDX-License-Identifier: GPL-2.0

//! The tracepoints of the IOPF framework: one for each step of a page request's life.
//!
//! C header: [`drivers/iommu/iopf/iopf_trace.h`](srctree/drivers/iommu/iopf/iopf_trace.h)
//!
//! The events, in the `iommu` trace system, are declared in C and fired from here; a disabled
//! tracepoint costs a patched-out branch. Their names and fields are an interface, described in
//! the C header and in `Documentation/iommu/iopf-driver-guide.rst`.
//!
//! # Examples
//!
//! ```
//! use kernel::device::Device;
//! use kernel::iommu::fault::{trace, Fault};
//!
//! /// What the framework does when the handler of the group that ends with `last` fails.
//! fn handler_failed(dev: &Device, last: &Fault, faults: usize, ret: i32) {
//!     trace::handle(dev, last, faults, ret);
//!     trace::abort(dev, last, trace::Abort::Handler);
//! }
//!
//! // `iommu:iopf_abort` prints the reason by name, from the C header's values.
//! assert_eq!(trace::Abort::Handler as u32, kernel::bindings::IOPF_ABORT_HANDLER);
//! ```

use crate::{
    bindings,
    device::Device,
    ffi::c_int, //
};

use super::Fault;

// The kernel's macro declares each tracepoint as an `unsafe fn` without a `# Safety` section and
// expands its arguments in an `unsafe` block.
#[allow(clippy::missing_safety_doc, clippy::macro_metavars_in_unsafe)]
mod raw {
    use crate::{bindings, ffi::c_int, tracepoint::declare_trace};

    declare_trace! {
        pub(super) unsafe fn iopf_report(
            dev: *mut bindings::device,
            pasid: u32,
            grpid: u32,
            flags: u32,
            perm: u32,
            addr: u64,
        );
        pub(super) unsafe fn iopf_hold(
            dev: *mut bindings::device,
            pasid: u32,
            grpid: u32,
            held: u32,
        );
        pub(super) unsafe fn iopf_drop(
            dev: *mut bindings::device,
            grpid: u32,
            count: u32,
            held: u32,
        );
        pub(super) unsafe fn iopf_handle(
            dev: *mut bindings::device,
            pasid: u32,
            grpid: u32,
            faults: u32,
            ret: c_int,
        );
        pub(super) unsafe fn iopf_answer(
            dev: *mut bindings::device,
            pasid: u32,
            grpid: u32,
            code: u32,
            latency_us: u32,
        );
        pub(super) unsafe fn iopf_abort(
            dev: *mut bindings::device,
            pasid: u32,
            grpid: u32,
            reason: u32,
        );
    }
}

/// Why the framework answered a group itself ([`abort`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Abort {
    /// The device left its fault queue with the group pending.
    Removed = bindings::IOPF_ABORT_REMOVED,
    /// No memory for the group.
    NoMemory = bindings::IOPF_ABORT_NOMEM,
    /// The fault handler failed.
    Handler = bindings::IOPF_ABORT_HANDLER,
    /// The group lost requests to the bound on held partial requests.
    Incomplete = bindings::IOPF_ABORT_INCOMPLETE,
}

// The tracepoints read the device's name and plain values: they may be called with any live
// device, in any context where the framework runs.

/// A page request `fault` reported for `dev` (`iommu:iopf_report`).
#[inline]
pub fn report(dev: &Device, fault: &Fault) {
    let prm = &fault.raw().prm;
    // SAFETY: `dev` is a live device, the rest are values.
    unsafe {
        raw::iopf_report(
            dev.as_raw(),
            prm.pasid,
            prm.grpid,
            prm.flags,
            prm.perm,
            prm.addr,
        )
    }
}

/// The partial request `fault` held for its group; `held` partials are held now
/// (`iommu:iopf_hold`).
#[inline]
pub fn hold(dev: &Device, fault: &Fault, held: usize) {
    // SAFETY: As for `report`.
    unsafe { raw::iopf_hold(dev.as_raw(), fault.pasid(), fault.grpid(), clamp(held)) }
}

/// The `count` partials of group `grpid` dropped to stay within the bound; `held` are held now
/// (`iommu:iopf_drop`).
#[inline]
pub fn drop_group(dev: &Device, grpid: u32, count: usize, held: usize) {
    // SAFETY: As for `report`.
    unsafe { raw::iopf_drop(dev.as_raw(), grpid, clamp(count), clamp(held)) }
}

/// The group of `faults` requests that ends with `last` handed to a fault handler, which
/// returned `ret` (`iommu:iopf_handle`).
#[inline]
pub fn handle(dev: &Device, last: &Fault, faults: usize, ret: c_int) {
    // SAFETY: As for `report`.
    unsafe { raw::iopf_handle(dev.as_raw(), last.pasid(), last.grpid(), clamp(faults), ret) }
}

/// The group that ends with `last` answered `code`, `latency_us` after its last request was
/// reported (`iommu:iopf_answer`).
#[inline]
pub fn answer(dev: &Device, last: &Fault, code: u32, latency_us: u32) {
    // SAFETY: As for `report`.
    unsafe { raw::iopf_answer(dev.as_raw(), last.pasid(), last.grpid(), code, latency_us) }
}

/// Whether `iommu:iopf_answer` is enabled: the framework then times every group.
#[inline]
pub fn answer_enabled() -> bool {
    #[cfg(CONFIG_TRACEPOINTS)]
    {
        // SAFETY: It is always fine to query the static key of a tracepoint.
        unsafe {
            crate::jump_label::static_branch_unlikely!(
                bindings::__tracepoint_iopf_answer,
                bindings::tracepoint,
                key
            )
        }
    }
    #[cfg(not(CONFIG_TRACEPOINTS))]
    false
}

/// The group that ends with `last` answered by the framework for `reason` (`iommu:iopf_abort`).
#[inline]
pub fn abort(dev: &Device, last: &Fault, reason: Abort) {
    // SAFETY: As for `report`.
    unsafe { raw::iopf_abort(dev.as_raw(), last.pasid(), last.grpid(), reason as u32) }
}

fn clamp(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
