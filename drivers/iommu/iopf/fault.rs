// SPDX-License-Identifier: GPL-2.0

//! One page request, in the C layout drivers report and consumers read.

use kernel::{bindings, prelude::*};

/// `struct iopf_fault`: a page request and the list node that links it into
/// whichever list holds it (a group's held partials, then the group's
/// `faults` list).
#[repr(transparent)]
pub(crate) struct Fault(pub(crate) bindings::iopf_fault);

impl Fault {
    /// Copies a reported fault into a new heap allocation, not linked anywhere.
    pub(crate) fn boxed(evt: &bindings::iopf_fault) -> Result<KBox<Self>> {
        Ok(KBox::new(
            Self(bindings::iopf_fault {
                fault: evt.fault,
                list: bindings::list_head::default(),
            }),
            GFP_KERNEL,
        )?)
    }

    /// Views a C `struct iopf_fault` as a [`Fault`].
    pub(crate) fn from_c(evt: &bindings::iopf_fault) -> &Self {
        // CAST: `Fault` is `repr(transparent)` over `iopf_fault`.
        // SAFETY: Same layout, and the reference's lifetime carries over.
        unsafe { &*core::ptr::from_ref(evt).cast::<Self>() }
    }

    /// The [`Fault`] whose list node is `node`.
    ///
    /// # Safety
    ///
    /// `node` must be the `list` field of a live `iopf_fault`.
    pub(crate) unsafe fn from_node(node: *mut bindings::list_head) -> *mut Self {
        // SAFETY: The caller guarantees `node` is the `list` field of an `iopf_fault`.
        unsafe { kernel::container_of!(node, bindings::iopf_fault, list) }.cast()
    }

    /// The list node of the fault at `this`.
    pub(crate) fn node(this: *mut Self) -> *mut bindings::list_head {
        // SAFETY: Only computes a field address; nothing is read.
        unsafe { &raw mut (*this).0.list }
    }

    fn request(&self) -> &bindings::iommu_fault_page_request {
        &self.0.fault.prm
    }

    fn has_flag(&self, flag: u32) -> bool {
        self.request().flags & flag != 0
    }

    /// Whether this is a page request (the only fault type handled here).
    pub(crate) fn is_page_request(&self) -> bool {
        self.0.fault.type_ == bindings::iommu_fault_type_IOMMU_FAULT_PAGE_REQ
    }

    /// Whether this is the last request of its group.
    pub(crate) fn is_last(&self) -> bool {
        self.has_flag(bindings::IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE)
    }

    /// Whether the request carries a PASID.
    pub(crate) fn pasid_valid(&self) -> bool {
        self.has_flag(bindings::IOMMU_FAULT_PAGE_REQUEST_PASID_VALID)
    }

    pub(crate) fn pasid(&self) -> u32 {
        self.request().pasid
    }

    /// The page request group index.
    pub(crate) fn grpid(&self) -> u32 {
        self.request().grpid
    }

    /// The response message answering this request's group with `code`.
    /// C passes codes through unchecked, and so does this.
    pub(crate) fn response(
        &self,
        code: bindings::iommu_page_response_code,
    ) -> bindings::iommu_page_response {
        bindings::iommu_page_response {
            pasid: self.pasid(),
            grpid: self.grpid(),
            code,
        }
    }
}
