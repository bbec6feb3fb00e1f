// SPDX-License-Identifier: GPL-2.0

//! Shared Virtual Addressing: a device bound to a process address space.
//!
//! A device that works on a process's virtual addresses (PCIe with PASID,
//! ATS and PRI, or a stall-capable platform device) is bound to the
//! process's `mm` with [`Sva::bind`]. The IOMMU then translates the device's
//! requests tagged with the binding's PASID through the process page tables,
//! and the device's I/O page faults are resolved on that `mm` by the IOPF
//! framework's SVA handler.
//!
//! C header: [`include/linux/iommu.h`](srctree/include/linux/iommu.h)

use core::ptr::NonNull;

use crate::{
    bindings,
    device::{
        Bound,
        Device, //
    },
    devres::Devres,
    error::from_err_ptr,
    mm::MmWithUser,
    prelude::*, //
};

/// A binding of a device to a process address space (`struct iommu_sva`).
///
/// [`Sva::bind`] returns it inside a [`Devres`]: the binding cannot outlive
/// the driver's binding to the device, since the IOMMU core tears down the
/// device's state (its group, its PASID table) when the device goes away,
/// and an unbind after that would use freed memory. Dropping the binding,
/// or the device being unbound from its driver, unbinds it.
///
/// Unbinding clears the PASID's translation, then the IOMMU driver drains
/// the page requests the device sent for the PASID and answers those still
/// pending, so the device driver stops the device's use of the PASID
/// first, and may unbind with page requests in flight.
///
/// # Invariants
///
/// `handle` was returned by a successful `iommu_sva_bind_device()` and has
/// not been passed to `iommu_sva_unbind_device()`.
///
/// # Examples
///
/// Bind a device to the address space of the calling process, as a driver
/// does in an `ioctl()`, and program the device with the PASID:
///
/// ```no_run
/// use kernel::{
///     device::{
///         Bound,
///         Device, //
///     },
///     devres::Devres,
///     iommu::sva::Sva,
///     prelude::*, //
/// };
///
/// fn bind_caller(dev: &Device<Bound>) -> Result<(Devres<Sva>, u32)> {
///     let task = kernel::current!();
///     let mm = task.mm().ok_or(EINVAL)?;
///     let sva = Sva::bind(dev, mm)?;
///     let pasid = sva.access(dev)?.pasid();
///     dev_info!(dev, "bound to PASID {pasid}\n");
///     // Dropping `sva`, or unbinding the driver, unbinds the PASID.
///     Ok((sva, pasid))
/// }
/// ```
pub struct Sva {
    handle: NonNull<bindings::iommu_sva>,
}

impl Sva {
    /// Binds `dev` to the address space `mm` (`iommu_sva_bind_device()`).
    ///
    /// Binding a device to an `mm` it is already bound to returns another
    /// reference to the same binding, with the same PASID; each is unbound
    /// on its own.
    ///
    /// # Errors
    ///
    /// `ENODEV` if `dev` has no IOMMU or its IOMMU has no SVA, `EBUSY` if
    /// the PASID of `mm` is taken on `dev`, and the IOMMU driver's errors
    /// (for example `EINVAL` when the device has not enabled PASID, ATS or
    /// PRI as the IOMMU driver requires).
    pub fn bind(dev: &Device<Bound>, mm: &MmWithUser) -> Result<Devres<Self>> {
        // SAFETY: `dev` is a valid, bound device and `mm` a valid address
        // space with users for the duration of the call.
        let handle = unsafe { bindings::iommu_sva_bind_device(dev.as_raw(), mm.as_raw()) };
        let handle = NonNull::new(from_err_ptr(handle)?).ok_or(ENODEV)?;
        // INVARIANT: `handle` was just returned by a successful bind.
        Devres::new(dev, Self { handle })
    }

    /// The PASID the device tags its requests with for this address space.
    pub fn pasid(&self) -> u32 {
        // SAFETY: By the type invariant, `handle` is a live binding.
        unsafe { bindings::iommu_sva_get_pasid(self.handle.as_ptr()) }
    }
}

impl Drop for Sva {
    fn drop(&mut self) {
        // SAFETY: By the type invariant, `handle` is a live binding, and
        // this is its only unbind.
        unsafe { bindings::iommu_sva_unbind_device(self.handle.as_ptr()) };
    }
}

// SAFETY: `iommu_sva_unbind_device()` and `iommu_sva_get_pasid()` may be
// called from any task; the binding is not tied to the task that made it.
unsafe impl Send for Sva {}

// SAFETY: `&Sva` only gives `pasid()`, which reads data that does not
// change while the binding lives.
unsafe impl Sync for Sva {}
