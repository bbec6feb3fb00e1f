// SPDX-License-Identifier: GPL-2.0

//! Devices whose page requests an IOMMU driver reports, as the IOPF framework sees them.
//!
//! C header: [`include/linux/iommu.h`](srctree/include/linux/iommu.h)

use crate::{
    bindings,
    device::Device,
    sync::{
        rcu::Rcu,
        Mutex, //
    },
    types::{
        ForeignOwnable,
        Opaque, //
    },
};

use super::Fault;

/// A device that an IOMMU driver probed: its IOMMU data (`dev->iommu`) is set.
///
/// # Examples
///
/// ```
/// use kernel::device::Device;
/// use kernel::iommu::fault::{Endpoint, Fault};
/// use kernel::prelude::*;
///
/// /// Answers `last` with `code` through `dev`'s IOMMU driver, as the framework does.
/// fn answer(dev: &Device, last: &Fault, code: u32) -> Result {
///     // SAFETY: `dev` stays probed by its IOMMU driver while this runs: the caller serves one
///     // of its page requests.
///     let endpoint = unsafe { Endpoint::from_device(dev) }.ok_or(ENODEV)?;
///     let respond = endpoint.page_response_op().ok_or(ENODEV)?;
///     respond.send(dev, last, code);
///     Ok(())
/// }
/// ```
///
/// # Invariants
///
/// `dev->iommu` is set, and it and the IOMMU driver's ops stay live while the `Endpoint` is
/// borrowed.
#[repr(transparent)]
pub struct Endpoint(Opaque<bindings::device>);

// SAFETY: `&Endpoint` reads members that do not change while it is borrowed, and locks what it
// changes.
unsafe impl Sync for Endpoint {}

impl Endpoint {
    /// Views the device at `dev`, if an IOMMU driver probed it.
    ///
    /// # Safety
    ///
    /// `dev` must point to a live device whose IOMMU data, if set, stays live for `'a`: the IOMMU
    /// driver calls the IOPF API only for devices it probed and has not released.
    #[inline]
    pub unsafe fn from_raw<'a>(dev: *mut bindings::device) -> Option<&'a Self> {
        // SAFETY: The caller guarantees that `dev` is live.
        if unsafe { (*dev).iommu }.is_null() {
            return None;
        }
        // INVARIANT: `dev->iommu` is set, and the caller guarantees it stays live.
        // CAST: `Endpoint` is `repr(transparent)` over `Opaque<device>`.
        // SAFETY: `dev` is live for `'a`.
        Some(unsafe { &*dev.cast::<Self>() })
    }

    /// Views `dev`, if an IOMMU driver probed it.
    ///
    /// # Safety
    ///
    /// As for [`Endpoint::from_raw`].
    #[inline]
    pub unsafe fn from_device(dev: &Device) -> Option<&Self> {
        // SAFETY: `dev` is live; the caller guarantees the rest.
        unsafe { Self::from_raw(dev.as_raw()) }
    }

    /// The device.
    #[inline]
    pub fn as_device(&self) -> &Device {
        // SAFETY: The device is live while `self` is borrowed.
        unsafe { Device::from_raw(self.0.get()) }
    }

    #[inline]
    fn dev_iommu(&self) -> *mut bindings::dev_iommu {
        // SAFETY: The device is live; by the type invariant `iommu` is set.
        unsafe { (*self.0.get()).iommu }
    }

    /// The device's iommu group, or NULL.
    #[inline]
    pub(crate) fn iommu_group(&self) -> *mut bindings::iommu_group {
        // SAFETY: The device is live.
        unsafe { (*self.0.get()).iommu_group }
    }

    #[inline]
    fn ops(&self) -> Option<&bindings::iommu_ops> {
        // SAFETY: By the type invariant `dev->iommu` is live, and so is the IOMMU driver's
        // `iommu_dev` and its ops, which outlive the devices the driver probed.
        unsafe {
            let iommu_dev = (*self.dev_iommu()).iommu_dev;
            if iommu_dev.is_null() {
                return None;
            }
            (*iommu_dev).ops.as_ref()
        }
    }

    /// The IOMMU driver's `page_response` op, if it has one.
    #[inline]
    pub fn page_response_op(&self) -> Option<PageResponseOp> {
        // INVARIANT: The op of the driver that probed the device.
        self.ops()?.page_response.map(PageResponseOp)
    }

    /// Whether the IOMMU driver lets user space manage the PASID table (`user_pasid_table`).
    #[inline]
    pub fn user_pasid_table(&self) -> bool {
        self.ops().is_some_and(|ops| ops.user_pasid_table() != 0)
    }

    /// `dev->iommu->lock`, which serialises changes of the device's fault data.
    #[inline]
    pub fn iommu_lock(&self) -> &Mutex<()> {
        // SAFETY: `dev->iommu->lock` is initialised with `dev->iommu` and lives as long as it,
        // which by the type invariant is at least as long as `self` is borrowed.
        unsafe { Mutex::from_raw(&raw mut (*self.dev_iommu()).lock) }
    }

    /// `dev->iommu->fault_param`, the device's fault data, published under RCU.
    ///
    /// # Safety
    ///
    /// The field must only ever hold NULL or a `P` from [`ForeignOwnable::into_foreign`], and only
    /// be changed through [`Rcu`] (the IOPF framework is the one owner of the field).
    #[inline]
    pub unsafe fn fault_param<P: ForeignOwnable>(&self) -> &Rcu<P> {
        // SAFETY: The field lives as long as `dev->iommu`, at least as long as `self` is borrowed
        // (type invariant); the caller guarantees what it holds and how it changes.
        unsafe { Rcu::from_raw((&raw mut (*self.dev_iommu()).fault_param).cast()) }
    }
}

/// An IOMMU driver's `page_response` op: sends a page response to a device.
///
/// # Invariants
///
/// The op of an IOMMU driver, which stays valid while the driver serves devices: the driver
/// removes its devices from their fault queues, and answers their groups, before it goes away.
#[derive(Clone, Copy)]
pub struct PageResponseOp(
    unsafe extern "C" fn(
        *mut bindings::device,
        *mut bindings::iopf_fault,
        *mut bindings::iommu_page_response,
    ),
);

impl PageResponseOp {
    /// Answers the group whose last request is `last`, from `dev`, with `code`.
    #[inline]
    pub fn send(&self, dev: &Device, last: &Fault, code: u32) {
        let mut msg = last.response(code);
        // SAFETY: By the type invariant the op is valid. It gets a live device, the group's last
        // request and the message, all valid for the duration of the call.
        unsafe { (self.0)(dev.as_raw(), last.as_raw(), &mut msg) };
    }
}
