// SPDX-License-Identifier: GPL-2.0

//! Resolving page faults on behalf of someone else.
//!
//! The CPU's page fault handler resolves the faults of the task that took them. Some faults are
//! taken by another agent on an address space: a device that shares a process's address space
//! through its IOMMU (SVA) reports an I/O page fault, and the kernel resolves it as the CPU would
//! have, with `handle_mm_fault()`, before telling the device to retry.
//!
//! This module offers that under the mmap read lock: [`MmapReadGuard::handle_mm_fault`], the
//! [`FaultFlags`] that describe the access, the [`VmFaultResult`] it returns, and
//! [`VmaRef::permits`] to check an access against a vma's permissions first.
//!
//! C header: [`include/linux/mm.h`](srctree/include/linux/mm.h)
//!
//! # Examples
//!
//! Fault in a page for writing, as a device would ask for it:
//!
//! ```
//! use kernel::mm::{fault::FaultFlags, virt::flags, MmWithUser};
//!
//! fn fault_in_for_write(mm: &MmWithUser, addr: usize) -> Result {
//!     let guard = mm.mmap_read_lock();
//!     let vma = guard.vma_lookup(addr).ok_or(EFAULT)?;
//!     if !vma.permits(flags::READ | flags::WRITE) {
//!         return Err(EACCES);
//!     }
//!     let result = guard.handle_mm_fault(vma, addr, FaultFlags::REMOTE | FaultFlags::WRITE)?;
//!     if result.is_error() {
//!         return Err(EFAULT);
//!     }
//!     Ok(())
//! }
//! ```

use crate::{
    bindings,
    error::{code::EINVAL, Result},
    mm::{
        virt::{vm_flags_t, VmaRef},
        MmapReadGuard,
    },
};
use core::ops::{BitOr, BitOrAssign};

/// What a page fault is for: the `FAULT_FLAG_*` flags of `handle_mm_fault()`.
///
/// Only the flags that describe the access are offered. In particular there is no
/// `FAULT_FLAG_ALLOW_RETRY`, with which `handle_mm_fault()` may drop the mmap lock:
/// [`MmapReadGuard::handle_mm_fault`] relies on the lock still being held when it returns.
///
/// # Examples
///
/// ```
/// use kernel::mm::fault::FaultFlags;
///
/// let flags = FaultFlags::REMOTE | FaultFlags::WRITE;
/// assert!(flags.contains(FaultFlags::WRITE));
/// assert!(!flags.contains(FaultFlags::USER));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FaultFlags(bindings::fault_flag);

impl FaultFlags {
    /// A read fault on behalf of the kernel.
    pub const NONE: Self = Self(0);
    /// The fault is a write (`FAULT_FLAG_WRITE`).
    pub const WRITE: Self = Self(bindings::fault_flag_FAULT_FLAG_WRITE);
    /// The fault is on behalf of user space (`FAULT_FLAG_USER`).
    pub const USER: Self = Self(bindings::fault_flag_FAULT_FLAG_USER);
    /// The faulting agent is not the current task (`FAULT_FLAG_REMOTE`).
    pub const REMOTE: Self = Self(bindings::fault_flag_FAULT_FLAG_REMOTE);
    /// The fault is an instruction fetch (`FAULT_FLAG_INSTRUCTION`).
    pub const INSTRUCTION: Self = Self(bindings::fault_flag_FAULT_FLAG_INSTRUCTION);

    /// Whether every flag of `other` is set in `self`.
    #[inline]
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The raw `FAULT_FLAG_*` bits.
    #[inline]
    pub fn as_raw(self) -> bindings::fault_flag {
        self.0
    }
}

impl BitOr for FaultFlags {
    type Output = Self;

    #[inline]
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl BitOrAssign for FaultFlags {
    #[inline]
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

/// What `handle_mm_fault()` returned: a `vm_fault_t`.
///
/// # Examples
///
/// ```
/// use kernel::{bindings, mm::fault::VmFaultResult};
///
/// assert!(!VmFaultResult::from_raw(0).is_error());
/// assert!(VmFaultResult::from_raw(bindings::vm_fault_reason_VM_FAULT_SIGBUS).is_error());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct VmFaultResult(bindings::vm_fault_t);

impl VmFaultResult {
    /// Wraps a raw `vm_fault_t`.
    #[inline]
    pub fn from_raw(result: bindings::vm_fault_t) -> Self {
        Self(result)
    }

    /// The raw `VM_FAULT_*` bits.
    #[inline]
    pub fn as_raw(self) -> bindings::vm_fault_t {
        self.0
    }

    /// Whether the fault could not be resolved (`VM_FAULT_ERROR`: out of memory, `SIGBUS`,
    /// `SIGSEGV`, hardware poison, or a huge page fault that fell back).
    #[inline]
    pub fn is_error(self) -> bool {
        self.0 & bindings::VM_FAULT_ERROR != 0
    }
}

impl VmaRef {
    /// Whether the vma's flags allow every access in `access`.
    ///
    /// `access` is a combination of [`flags::READ`], [`flags::WRITE`] and [`flags::EXEC`]: a
    /// fault that needs an access the vma does not allow must not be resolved.
    ///
    /// [`flags::READ`]: crate::mm::virt::flags::READ
    /// [`flags::WRITE`]: crate::mm::virt::flags::WRITE
    /// [`flags::EXEC`]: crate::mm::virt::flags::EXEC
    #[inline]
    pub fn permits(&self, access: vm_flags_t) -> bool {
        access & !self.flags() == 0
    }
}

impl MmapReadGuard<'_> {
    /// Resolves a page fault at `address` of `vma` (`handle_mm_fault()`).
    ///
    /// The fault is resolved as the CPU's fault handler would: the page is allocated, read in or
    /// copied on write, and mapped. It does not check `vma`'s permissions: see
    /// [`VmaRef::permits`]. It may sleep. The mmap lock stays held throughout.
    ///
    /// Returns `EINVAL` if `vma` is not a vma of this guard's address space or `address` is
    /// outside it; otherwise what `handle_mm_fault()` returned.
    pub fn handle_mm_fault(
        &self,
        vma: &VmaRef,
        address: usize,
        flags: FaultFlags,
    ) -> Result<VmFaultResult> {
        if vma.mm().as_raw() != self.mm.as_raw() || address < vma.start() || address >= vma.end() {
            return Err(EINVAL);
        }
        // SAFETY:
        // - By the type invariants of `MmapReadGuard`, we hold the mmap read lock of the address
        //   space that `vma` belongs to (checked above), which is what `handle_mm_fault()` needs
        //   without `FAULT_FLAG_VMA_LOCK`; `address` is inside `vma`.
        // - `FaultFlags` cannot hold `FAULT_FLAG_ALLOW_RETRY`, so the lock is still held on
        //   return, as the guard expects.
        // - A NULL `regs` is allowed: the fault is not accounted to a task's registers.
        let result = unsafe {
            bindings::handle_mm_fault(vma.as_ptr(), address, flags.as_raw(), core::ptr::null_mut())
        };
        Ok(VmFaultResult(result))
    }
}
