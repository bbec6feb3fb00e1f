// SPDX-License-Identifier: GPL-2.0

//! The I/O page fault handler of SVA domains.
//!
//! `iommu-sva.c` binds a process's address space to a PASID of a device with an SVA domain
//! (`IOMMU_DOMAIN_SVA`, whose `mm` is the bound address space). With `CONFIG_IOMMU_IOPF_RUST`,
//! the `iopf_handler` it installs on those domains is [`iommu_sva_iopf_handler`], in place of its
//! C one; binding, unbinding and the domains stay in C.
//!
//! This is a consumer of the IOPF framework like any other: it uses only the C API of
//! `<linux/iommu.h>` (`iopf_queue_work()`, `iopf_group_response()`, `iopf_free_group()`) and
//! [`kernel::mm`]. Each fault group is handled from the IOPF queue's workqueue, since resolving
//! a fault sleeps and `iopf_queue_flush_dev()` must wait for it. The faults of the group are
//! resolved in order against the bound address space, as the CPU would resolve them for the
//! process; the first one that cannot be resolved answers the whole group
//! `IOMMU_PAGE_RESP_INVALID` and the rest are skipped. A group whose faults were all resolved is
//! answered `IOMMU_PAGE_RESP_SUCCESS`, and the device retries its accesses.

use core::{marker::PhantomData, ptr::NonNull};
use kernel::{
    bindings, container_of,
    mm::{
        fault::FaultFlags,
        virt::{flags, vm_flags_t},
        Mm,
    },
    prelude::*,
};

type ResponseCode = bindings::iommu_page_response_code;
const SUCCESS: ResponseCode = bindings::iommu_page_response_code_IOMMU_PAGE_RESP_SUCCESS;
const INVALID: ResponseCode = bindings::iommu_page_response_code_IOMMU_PAGE_RESP_INVALID;

/// iommu_sva_iopf_handler() - The iopf_handler of SVA domains
/// @group: a fault group on a PASID bound with iommu_sva_bind_device()
///
/// Queues @group on its IOPF queue, whose work resolves each fault against the
/// domain's mm and answers the group. The handler owns @group from a successful
/// return until the work has answered and freed it.
///
/// Context: the IOMMU driver's fault reporting context; does not sleep.
/// Return: 0 on success, -EBUSY if @group's work is already queued.
///
/// # Safety
///
/// `group` must be a group passed by the IOPF core to the `iopf_handler` of an SVA domain.
#[no_mangle]
pub unsafe extern "C" fn iommu_sva_iopf_handler(group: *mut bindings::iopf_group) -> c_int {
    // SAFETY: `group` is a live group handed to this handler (caller's contract);
    // `handle_iopf` gets `&group->work` and owns the group from then on.
    unsafe { bindings::iopf_queue_work(group, Some(handle_iopf)) }
}

// iommu-sva.c stores the handler in `iommu_domain::iopf_handler` through the prototype in
// iommu-priv.h, which bindgen does not see: this checks that it has that field's type.
const _: fn(&mut bindings::iommu_domain) = |domain| {
    domain.iopf_handler = Some(iommu_sva_iopf_handler);
};

/// The work function of a group queued by [`iommu_sva_iopf_handler`].
///
/// # Safety
///
/// `work` must be the `work` field of a group that [`iommu_sva_iopf_handler`] queued.
unsafe extern "C" fn handle_iopf(work: *mut bindings::work_struct) {
    // SAFETY: `work` is embedded in an `iopf_group` (caller's contract), which this handler
    // owns since it queued it.
    let group = unsafe { SvaGroup::from_raw(container_of!(work, bindings::iopf_group, work)) };
    let status = resolve(&group);
    group.respond_and_free(status);
}

/// Resolves the faults of `group` in order, stopping at the first that fails.
fn resolve(group: &SvaGroup) -> ResponseCode {
    let mm = group.mm();
    for fault in group.faults() {
        let status = handle_fault(&fault.prm, mm);
        if status != SUCCESS {
            return status;
        }
    }
    SUCCESS
}

/// Resolves one page request in `mm`, as the CPU would for the process.
///
/// INVALID if the request has no PASID, the address space has exited, the address is not
/// mapped, the mapping does not allow the access, or the fault could not be resolved.
fn handle_fault(request: &bindings::iommu_fault_page_request, mm: &Mm) -> ResponseCode {
    if request.flags & bindings::IOMMU_FAULT_PAGE_REQUEST_PASID_VALID == 0 {
        return INVALID;
    }
    // No vma can hold an address that does not fit in a pointer.
    let Ok(addr) = usize::try_from(request.addr) else {
        return INVALID;
    };
    // The domain holds `mm` (mmgrab), but its pages exist only while it has users.
    let Some(mm) = mm.mmget_not_zero() else {
        return INVALID;
    };
    // Dropped before `mm`: the lock is released before the user reference, as in C.
    let mmap = mm.mmap_read_lock();
    let Some(vma) = mmap.vma_lookup(addr) else {
        return INVALID;
    };
    let (access, fault_flags) = access_of(request.perm);
    if !vma.permits(access) {
        return INVALID;
    }
    match mmap.handle_mm_fault(vma, addr, fault_flags) {
        Ok(result) if !result.is_error() => SUCCESS,
        _ => INVALID,
    }
}

/// The vma permissions that a request's `perm` needs, and the fault that it is.
///
/// A request without `IOMMU_FAULT_PERM_PRIV` is a user access; every request is remote, since
/// the device, not the current task, takes the fault.
fn access_of(perm: u32) -> (vm_flags_t, FaultFlags) {
    let mut access = flags::NONE;
    let mut fault = FaultFlags::REMOTE;
    if perm & bindings::IOMMU_FAULT_PERM_READ != 0 {
        access |= flags::READ;
    }
    if perm & bindings::IOMMU_FAULT_PERM_WRITE != 0 {
        access |= flags::WRITE;
        fault |= FaultFlags::WRITE;
    }
    if perm & bindings::IOMMU_FAULT_PERM_EXEC != 0 {
        access |= flags::EXEC;
        fault |= FaultFlags::INSTRUCTION;
    }
    if perm & bindings::IOMMU_FAULT_PERM_PRIV == 0 {
        fault |= FaultFlags::USER;
    }
    (access, fault)
}

/// A fault group of an SVA domain, owned by its handler.
///
/// # Invariants
///
/// `group` points to a group that the IOPF core handed to [`iommu_sva_iopf_handler`], not yet
/// answered nor freed; this value owns it. Its `attach_handle` is the handle of an SVA domain
/// attached to the faulting PASID.
struct SvaGroup {
    group: NonNull<bindings::iopf_group>,
}

impl SvaGroup {
    /// Takes ownership of `group`.
    ///
    /// # Safety
    ///
    /// `group` must be a group queued by [`iommu_sva_iopf_handler`], owned by the caller, which
    /// gives it up.
    unsafe fn from_raw(group: *mut bindings::iopf_group) -> Self {
        // INVARIANT: Guaranteed by the caller.
        Self {
            // SAFETY: A live group is not NULL.
            group: unsafe { NonNull::new_unchecked(group) },
        }
    }

    fn c_group(&self) -> &bindings::iopf_group {
        // SAFETY: By the type invariants the group is live, and no one else writes to it while
        // its handler owns it.
        unsafe { self.group.as_ref() }
    }

    /// The bound address space.
    fn mm(&self) -> &Mm {
        // SAFETY: By the type invariants, the attach handle is that of an SVA domain: its
        // `mm` is the live member of the union, and the domain holds it with mmgrab() until it
        // is freed. The domain is freed only after it is detached from the PASID, and the IOMMU
        // driver flushes the PASID's faults (iopf_queue_flush_dev()) before that, which waits
        // for this group's work.
        unsafe {
            let domain = (*self.c_group().attach_handle).domain;
            Mm::from_raw((*domain).__bindgen_anon_1.__bindgen_anon_2.mm)
        }
    }

    /// The faults of the group, in the order the device reported them.
    fn faults(&self) -> Faults<'_> {
        let head = &self.c_group().faults;
        Faults {
            head,
            next: head.next,
            _group: PhantomData,
        }
    }

    /// Answers the group with `status` and frees it, as C does.
    fn respond_and_free(self, status: ResponseCode) {
        let group = self.group.as_ptr();
        // SAFETY: By the type invariants the group is live and ours to answer and free; it is
        // not used after.
        unsafe {
            bindings::iopf_group_response(group, status);
            bindings::iopf_free_group(group);
        }
    }
}

/// An iterator over the faults on `iopf_group::faults`.
///
/// # Invariants
///
/// `head` is the `faults` list of a group borrowed for `'a`, and `next` is `head` or a node of
/// that list.
struct Faults<'a> {
    head: *const bindings::list_head,
    next: *mut bindings::list_head,
    _group: PhantomData<&'a SvaGroup>,
}

impl<'a> Iterator for Faults<'a> {
    type Item = &'a bindings::iommu_fault;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next.cast_const() == self.head {
            return None;
        }
        // SAFETY: By the type invariants `next` is a node of the group's `faults` list, which
        // links `iopf_fault`s through their `list` field and does not change while the handler
        // owns the group.
        let fault = unsafe { &*container_of!(self.next, bindings::iopf_fault, list) };
        // INVARIANT: The node after a node of the list is another node or the head.
        self.next = fault.list.next;
        Some(&fault.fault)
    }
}
