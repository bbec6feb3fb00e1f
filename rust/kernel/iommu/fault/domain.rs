// SPDX-License-Identifier: GPL-2.0

//! Domains and their fault handlers, as the IOPF framework finds them for a page request.
//!
//! C header: [`include/linux/iommu.h`](srctree/include/linux/iommu.h)

use crate::{
    bindings,
    mm::Mm,
    prelude::*,
    types::Opaque, //
};

use super::{
    Endpoint,
    Fault, //
};

/// An IOMMU domain (`struct iommu_domain`), as the IOPF framework and fault handlers see it.
///
/// # Invariants
///
/// The domain is live, and its `type`, `iopf_handler` and (for SVA domains) `mm` do not change,
/// while it is borrowed.
#[repr(transparent)]
pub struct Domain(Opaque<bindings::iommu_domain>);

// SAFETY: `&Domain` only reads members that do not change while it is borrowed.
unsafe impl Sync for Domain {}

impl Domain {
    /// Views the domain at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a domain that stays live, and attached where it is, for `'a`.
    #[inline]
    pub unsafe fn from_raw<'a>(ptr: *mut bindings::iommu_domain) -> &'a Self {
        // CAST: `Domain` is `repr(transparent)` over `Opaque<iommu_domain>`.
        // SAFETY: Guaranteed by the caller.
        unsafe { &*ptr.cast::<Self>() }
    }

    #[inline]
    fn raw(&self) -> &bindings::iommu_domain {
        // SAFETY: By the type invariant the members read through this do not change.
        unsafe { &*self.0.get() }
    }

    /// The domain's fault handler, if it has one.
    #[inline]
    pub fn fault_handler(&self) -> Option<IopfHandler> {
        self.raw().iopf_handler.map(IopfHandler)
    }

    /// The address space that an SVA domain (`IOMMU_DOMAIN_SVA`) shares with the device.
    pub fn sva_mm(&self) -> Option<&Mm> {
        let domain = self.raw();
        if domain.type_ != bindings::IOMMU_DOMAIN_SVA {
            return None;
        }
        // SAFETY: `mm` is the live member of an SVA domain's union; the domain holds the address
        // space with `mmgrab()` from its allocation to its free, and lives while borrowed.
        Some(unsafe { Mm::from_raw(domain.__bindgen_anon_1.__bindgen_anon_2.mm) })
    }
}

/// A domain's `iopf_handler`: the C function that takes charge of a complete group.
#[derive(Clone, Copy)]
pub struct IopfHandler(pub(crate) unsafe extern "C" fn(*mut bindings::iopf_group) -> c_int);

/// The handle of a domain attached to a device or PASID (`struct iommu_attach_handle`).
///
/// # Invariants
///
/// The handle and its domain are live, and attached, while the handle is borrowed.
#[repr(transparent)]
pub struct AttachHandle(Opaque<bindings::iommu_attach_handle>);

// SAFETY: `&AttachHandle` only reads the domain pointer, which does not change.
unsafe impl Sync for AttachHandle {}

impl AttachHandle {
    /// The C `struct iommu_attach_handle`.
    #[inline]
    pub fn as_raw(&self) -> *mut bindings::iommu_attach_handle {
        self.0.get()
    }

    /// The attached domain.
    #[inline]
    pub fn domain(&self) -> &Domain {
        // SAFETY: By the type invariant the handle's domain is live and attached while `self` is
        // borrowed.
        unsafe { Domain::from_raw((*self.as_raw()).domain) }
    }
}

/// The domain that handles a page request, found by [`FaultHandler::find`].
///
/// # Examples
///
/// ```
/// use kernel::iommu::fault::{Endpoint, Fault, FaultHandler};
///
/// /// Whether a fault handler would take `fault`, from `dev`, right now.
/// fn handled(dev: &Endpoint, fault: &Fault) -> bool {
///     // SAFETY: The result is dropped before any domain of `dev` can be detached: the caller
///     // reports `dev`'s page requests, and its driver detaches only after flushing them.
///     unsafe { FaultHandler::find(dev, fault) }.is_some()
/// }
/// ```
pub struct FaultHandler<'a> {
    /// The attach handle of the domain.
    pub handle: &'a AttachHandle,
    /// The domain's fault handler.
    pub handler: IopfHandler,
}

#[expect(
    improper_ctypes,
    reason = "the handle is only passed back to C and read through bindings"
)]
extern "C" {
    // Declared in drivers/iommu/iommu-priv.h, which bindgen does not see.
    fn iommu_attach_handle_get(
        group: *mut bindings::iommu_group,
        pasid: u32,
        type_: c_uint,
    ) -> *mut bindings::iommu_attach_handle;
}

impl<'a> FaultHandler<'a> {
    /// The domain with a fault handler that `fault` from `dev` goes to (io-pgfault.c's
    /// `find_fault_handler()`).
    ///
    /// With a PASID, the handle attached to that PASID; failing that, if the IOMMU driver lets
    /// user space manage the PASID table, the nested domain attached to the device itself.
    /// Without a PASID, the handle attached to the device itself. A domain without a fault
    /// handler, like a device in no iommu group, counts as none.
    ///
    /// # Safety
    ///
    /// The domain found must stay attached for `'a`: the IOMMU driver must not detach a domain
    /// while it reports page requests for it (it flushes them first).
    #[inline]
    pub unsafe fn find(dev: &'a Endpoint, fault: &Fault) -> Option<Self> {
        let group = dev.iommu_group();
        if group.is_null() {
            return None;
        }
        let lookup = |pasid: u32, kind: u32| {
            // SAFETY: `group` is the device's live iommu group; the lookup takes its xarray lock
            // and checks the type of the entry it finds.
            let handle = unsafe { iommu_attach_handle_get(group, pasid, kind) };
            // `iommu_attach_handle_get()` returns an error pointer, never NULL, when there is no
            // handle; `IS_ERR()` without a call to a helper.
            let err = (handle as usize) >= (bindings::MAX_ERRNO as usize).wrapping_neg();
            // SAFETY: A handle returned by the lookup is live; the caller guarantees it stays
            // attached for `'a`.
            (!err && !handle.is_null()).then(|| unsafe { &*handle.cast::<AttachHandle>() })
        };
        let handle = if fault.has_pasid() {
            lookup(fault.pasid(), 0).or_else(|| {
                dev.user_pasid_table()
                    .then(|| lookup(bindings::IOMMU_NO_PASID, bindings::IOMMU_DOMAIN_NESTED))
                    .flatten()
            })?
        } else {
            lookup(bindings::IOMMU_NO_PASID, 0)?
        };
        Some(Self {
            handle,
            handler: handle.domain().fault_handler()?,
        })
    }
}
