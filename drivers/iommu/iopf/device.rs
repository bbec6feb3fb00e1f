// SPDX-License-Identifier: GPL-2.0

//! The device as the IOPF core sees it: its `dev_iommu`, the IOMMU driver's
//! ops and the device's iommu group.

use kernel::{
    bindings,
    sync::{rcu::RcuPointer, Mutex},
    types::Opaque,
};

use crate::fault::Fault;

/// A `struct device` that an IOMMU driver reports faults for.
#[repr(transparent)]
pub(crate) struct Device(Opaque<bindings::device>);

impl Device {
    /// # Safety
    ///
    /// `ptr` must point to a live `struct device` for the lifetime `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::device) -> &'a Self {
        // CAST: `Device` is `repr(transparent)` over `Opaque<device>`.
        // SAFETY: The caller guarantees `ptr` is live for `'a`.
        unsafe { &*ptr.cast::<Self>() }
    }

    pub(crate) fn as_raw(&self) -> *mut bindings::device {
        self.0.get()
    }

    /// The device for the kernel's printing macros.
    pub(crate) fn as_kernel(&self) -> &kernel::device::Device {
        // SAFETY: `self` is a live device for as long as the reference.
        unsafe { kernel::device::Device::from_raw(self.as_raw()) }
    }

    /// `dev->iommu`, or `None` for a device without IOMMU data.
    fn dev_iommu(&self) -> Option<*mut bindings::dev_iommu> {
        // SAFETY: The device is live; `iommu` is set before the device is
        // handed to an IOMMU driver and stays until it is released.
        let iommu = unsafe { (*self.as_raw()).iommu };
        (!iommu.is_null()).then_some(iommu)
    }

    /// The IOMMU driver's ops (`dev_iommu_ops()`), if the device has one.
    pub(crate) fn ops(&self) -> Option<&bindings::iommu_ops> {
        let iommu = self.dev_iommu()?;
        // SAFETY: `iommu` is live (see `dev_iommu`); an IOMMU device and its
        // ops outlive the devices it serves.
        unsafe {
            let iommu_dev = (*iommu).iommu_dev;
            if iommu_dev.is_null() {
                return None;
            }
            (*iommu_dev).ops.as_ref()
        }
    }

    /// `dev->iommu->fault_param`, the RCU-published fault data.
    pub(crate) fn fault_param_slot(&self) -> Option<&RcuPointer<bindings::iommu_fault_param>> {
        let iommu = self.dev_iommu()?;
        // SAFETY: The field lives as long as `dev->iommu`; it is only
        // accessed with RCU accessors.
        Some(unsafe { RcuPointer::from_raw(&raw mut (*iommu).fault_param) })
    }

    /// `dev->iommu->lock`, which serialises publishing the fault data.
    pub(crate) fn iommu_lock(&self) -> Option<&Mutex<()>> {
        let iommu = self.dev_iommu()?;
        // SAFETY: `dev->iommu->lock` is initialised with `dev->iommu` and
        // lives as long as it.
        Some(unsafe { Mutex::from_raw(&raw mut (*iommu).lock) })
    }

    /// `dev->iommu_group`.
    pub(crate) fn iommu_group(&self) -> *mut bindings::iommu_group {
        // SAFETY: The device is live.
        unsafe { (*self.as_raw()).iommu_group }
    }

    /// Sends the page response for the group whose last request is `evt`.
    ///
    /// Does nothing if the driver has no `page_response` (it cannot get
    /// here: `iopf_queue_add_device()` refuses such drivers).
    pub(crate) fn page_response(&self, evt: *mut bindings::iopf_fault, code: u32) {
        let Some(respond) = self.ops().and_then(|ops| ops.page_response) else {
            return;
        };
        // SAFETY: `evt` is a live fault, read by the driver during the call.
        let mut msg = Fault::from_c(unsafe { &*evt }).response(code);
        // SAFETY: The driver's callback takes the device, the fault and the
        // message, all valid for the duration of the call.
        unsafe { respond(self.as_raw(), evt, &mut msg) };
    }
}

/// `dev_warn_ratelimited()`: a warning about `dev`, rate limited per call
/// site, for what a driver (or a device) can trigger at will.
macro_rules! warn_ratelimited {
    ($dev:expr, $($f:tt)*) => {
        kernel::ratelimited!(kernel::dev_warn!($dev.as_kernel(), $($f)*))
    };
}
pub(crate) use warn_ratelimited;
