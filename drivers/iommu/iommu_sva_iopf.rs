// SPDX-License-Identifier: GPL-2.0

//! The I/O page fault handler of SVA domains.
//!
//! `iommu-sva.c` binds a process's address space to a PASID of a device with an SVA domain
//! (`IOMMU_DOMAIN_SVA`, whose `mm` is the bound address space). With `CONFIG_IOMMU_IOPF_RUST`,
//! the `iopf_handler` it installs on those domains is [`iommu_sva_iopf_handler`], in place of its
//! C one; binding, unbinding and the domains stay in C.
//!
//! This is a fault handler like any other, written against `kernel::iommu::fault` and
//! [`kernel::mm`]. Each group is handled from the IOPF queue's workqueue, since resolving a fault
//! sleeps and `iopf_queue_flush_dev()` must wait for it. The faults of the group are resolved in
//! order against the bound address space, as the CPU would resolve them for the process; the
//! first one that cannot be resolved answers the whole group `Invalid` and the rest are skipped.
//! A group whose faults were all resolved is answered `Success`, and the device retries.

use kernel::{
    bindings,
    iommu::fault::{
        self,
        Domain,
        Group,
        GroupWork,
        Handler,
        Incoming,
        PageRequest,
        Permission,
        ResponseCode, //
    },
    mm::{
        fault::FaultFlags,
        virt::{
            flags,
            vm_flags_t, //
        },
        Mm,
    },
    prelude::*,
};

/// The fault handler of SVA domains.
struct Sva;

impl Handler for Sva {
    fn handle(group: Incoming<'_>) -> Result<(), Incoming<'_>> {
        group.queue_work::<Sva>()
    }
}

impl GroupWork for Sva {
    fn run(group: Group, domain: &Domain) {
        let code = match domain.sva_mm() {
            Some(mm) => resolve(group.requests(), mm),
            None => ResponseCode::Invalid,
        };
        group.respond(code);
    }
}

/// iommu_sva_iopf_handler() - The iopf_handler of SVA domains
/// @group: a fault group on a PASID bound with iommu_sva_bind_device()
///
/// Queues @group on its IOPF queue, whose work resolves each fault against the domain's mm and
/// answers the group. The handler owns @group from a successful return until the work has
/// answered and freed it.
///
/// Context: the IOMMU driver's fault reporting context; does not sleep.
/// Return: 0 on success, -EBUSY if @group's work could not be queued.
///
/// # Safety
///
/// `group` must be a group passed by the IOPF framework to the `iopf_handler` of an SVA domain.
#[no_mangle]
pub unsafe extern "C" fn iommu_sva_iopf_handler(group: *mut bindings::iopf_group) -> c_int {
    // SAFETY: The IOPF framework passes a complete group to the handler of its domain.
    unsafe { fault::handle::<Sva>(group) }
}

// iommu-sva.c stores the handler in `iommu_domain::iopf_handler` through the prototype in
// iommu-priv.h, which bindgen does not see: this checks that it has that field's type.
const _: fn(&mut bindings::iommu_domain) = |domain| {
    domain.iopf_handler = Some(iommu_sva_iopf_handler);
};

/// Resolves `requests` in order in `mm`, stopping at the first that fails.
fn resolve(requests: impl Iterator<Item = PageRequest>, mm: &Mm) -> ResponseCode {
    for request in requests {
        let code = handle_fault(&request, mm);
        if code != ResponseCode::Success {
            return code;
        }
    }
    ResponseCode::Success
}

/// Resolves one page request in `mm`, as the CPU would for the process.
///
/// `Invalid` if the request has no PASID, the address space has exited, the address is not
/// mapped, the mapping does not allow the access, or the fault could not be resolved.
fn handle_fault(request: &PageRequest, mm: &Mm) -> ResponseCode {
    if request.pasid.is_none() {
        return ResponseCode::Invalid;
    }
    // No vma can hold an address that does not fit in a pointer.
    let Ok(addr) = usize::try_from(request.addr) else {
        return ResponseCode::Invalid;
    };
    // The domain holds `mm` (mmgrab), but its pages exist only while it has users.
    let Some(mm) = mm.mmget_not_zero() else {
        return ResponseCode::Invalid;
    };
    // Dropped before `mm`: the lock is released before the user reference, as in C.
    let mmap = mm.mmap_read_lock();
    let Some(vma) = mmap.vma_lookup(addr) else {
        return ResponseCode::Invalid;
    };
    let (access, fault_flags) = access_of(request);
    if !vma.permits(access) {
        return ResponseCode::Invalid;
    }
    match mmap.handle_mm_fault(vma, addr, fault_flags) {
        Ok(result) if !result.is_error() => ResponseCode::Success,
        _ => ResponseCode::Invalid,
    }
}

/// The vma permissions that `request` needs, and the fault that it is.
///
/// A request without [`Permission::Privileged`] is a user access; every request is remote, since
/// the device, not the current task, takes the fault.
fn access_of(request: &PageRequest) -> (vm_flags_t, FaultFlags) {
    let mut access = flags::NONE;
    let mut fault = FaultFlags::REMOTE;
    if request.perm.contains(Permission::Read) {
        access |= flags::READ;
    }
    if request.perm.contains(Permission::Write) {
        access |= flags::WRITE;
        fault |= FaultFlags::WRITE;
    }
    if request.perm.contains(Permission::Exec) {
        access |= flags::EXEC;
        fault |= FaultFlags::INSTRUCTION;
    }
    if !request.perm.contains(Permission::Privileged) {
        fault |= FaultFlags::USER;
    }
    (access, fault)
}
