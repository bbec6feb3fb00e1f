// SPDX-License-Identifier: GPL-2.0

//! Per-device fault data: `struct iommu_fault_param`.
//!
//! Created by `iopf_queue_add_device()` and published in
//! `dev->iommu->fault_param`. The reporting path finds it under RCU and
//! takes a reference; every group holds one until it is freed; the queue
//! holds the first until `iopf_queue_remove_device()` unpublishes it. The
//! memory is freed a grace period after the last reference is dropped, so an
//! RCU reader that lost the race to a removal never touches freed memory.

use core::ptr::NonNull;

use kernel::{
    bindings,
    interop::list::CListHead,
    new_mutex,
    prelude::*,
    sync::{rcu, Mutex, Refcount},
    types::Opaque,
};

use crate::{device::Device, partial::PartialStore, queue::Queue};

/// Held partial requests per device: `CONFIG_IOMMU_IOPF_RUST_MAX_PARTIAL`.
const MAX_PARTIAL: usize = bindings::CONFIG_IOMMU_IOPF_RUST_MAX_PARTIAL as usize;

/// The fault state of a device, under [`FaultParam::state`].
#[pin_data]
pub(crate) struct DeviceFaults {
    pub(crate) partial: PartialStore,
    /// Groups reported and neither answered nor dequeued, linked through
    /// their `pending_node`.
    #[pin]
    pending: CListHead,
}

impl DeviceFaults {
    /// Head of the pending list.
    pub(crate) fn pending(&self) -> *mut bindings::list_head {
        self.pending.as_raw()
    }
}

/// The fault data of one device.
///
/// # Invariants
///
/// - Allocated by [`FaultParam::allocate`] in a pinned `KBox`, freed by
///   [`free_rcu`] one grace period after `users` dropped to zero.
/// - `dev` and `queue` are live while the device is on the queue; a group of
///   the device keeps using `dev` after removal, as in C (the IOMMU driver
///   removes the device from its queue before releasing it).
#[pin_data]
pub(crate) struct FaultParam {
    users: Refcount,
    rcu: Opaque<bindings::callback_head>,
    dev: NonNull<bindings::device>,
    queue: NonNull<Queue>,
    #[pin]
    pub(crate) state: Mutex<DeviceFaults>,
}

// SAFETY: The raw pointers are to a device and a queue that are shared by
// design (C uses them from any thread); the rest is synchronised.
unsafe impl Send for FaultParam {}
// SAFETY: As above; `state` is behind a mutex and `users` is atomic.
unsafe impl Sync for FaultParam {}

impl FaultParam {
    /// Allocates the fault data of `dev`, on `queue`, with one reference.
    pub(crate) fn allocate(dev: &Device, queue: &Queue) -> Result<FaultParamRef> {
        let dev = NonNull::new(dev.as_raw()).ok_or(EINVAL)?;
        let param = KBox::pin_init(
            pin_init!(Self {
                users: Refcount::new(1),
                rcu: Opaque::uninit(),
                dev,
                queue: NonNull::from(queue),
                state <- new_mutex!(
                    pin_init!(DeviceFaults {
                        partial: PartialStore::new(MAX_PARTIAL),
                        pending <- CListHead::new(),
                    }),
                    "iommu_fault_param::lock"
                ),
            }),
            GFP_KERNEL,
        )?;
        // SAFETY: The allocation is never moved out of; `free_rcu` drops it in place.
        let raw = KBox::into_raw(unsafe { Pin::into_inner_unchecked(param) });
        // INVARIANT: The reference created with `users` at 1.
        // SAFETY: `KBox::into_raw` never returns null.
        Ok(FaultParamRef(unsafe { NonNull::new_unchecked(raw) }))
    }

    /// Finds the published fault data of `dev` and takes a reference
    /// (`iopf_get_dev_fault_param()`).
    pub(crate) fn get(dev: &Device) -> Option<FaultParamRef> {
        let slot = dev.fault_param_slot()?;
        let guard = rcu::read_lock();
        let param = NonNull::new(slot.dereference(&guard).cast::<Self>())?;
        // SAFETY: Published fault data is freed only a grace period after it
        // is unpublished, and we are in a read-side critical section.
        if unsafe { param.as_ref() }.users.inc_not_zero() {
            // INVARIANT: `inc_not_zero` took the reference this owns.
            Some(FaultParamRef(param))
        } else {
            None
        }
    }

    /// Runs `f` on the device's held partial requests, under the fault lock.
    pub(crate) fn partials<R>(&self, f: impl FnOnce(&mut PartialStore) -> R) -> R {
        let mut faults = self.state.lock();
        f(faults.as_mut().project().partial)
    }

    /// The device this is the fault data of.
    pub(crate) fn dev(&self) -> &Device {
        // SAFETY: By the type invariant `dev` is live while it is used.
        unsafe { Device::from_raw(self.dev.as_ptr()) }
    }

    /// The queue the device was added to.
    pub(crate) fn queue(&self) -> &Queue {
        // SAFETY: By the type invariant the queue is live while the device is
        // on it, which the callers (flush, queue_work) rely on as in C.
        unsafe { self.queue.as_ref() }
    }

    /// The C view of this object, as stored in `dev->iommu->fault_param`
    /// and `group->fault_param`. C never dereferences it.
    pub(crate) fn as_c(&self) -> *mut bindings::iommu_fault_param {
        core::ptr::from_ref(self).cast_mut().cast()
    }
}

/// A counted reference to a [`FaultParam`].
///
/// # Invariants
///
/// Owns one count of `users` of a live [`FaultParam`].
pub(crate) struct FaultParamRef(NonNull<FaultParam>);

// SAFETY: `FaultParam` is `Sync`, and the count may be dropped on any thread.
unsafe impl Send for FaultParamRef {}
// SAFETY: Only gives `&FaultParam`, which is `Sync`.
unsafe impl Sync for FaultParamRef {}

impl FaultParamRef {
    /// Takes another reference.
    pub(crate) fn new_ref(&self) -> Self {
        self.users.inc();
        // INVARIANT: The count just taken.
        Self(self.0)
    }

    pub(crate) fn as_ptr(&self) -> *const FaultParam {
        self.0.as_ptr()
    }
}

impl core::ops::Deref for FaultParamRef {
    type Target = FaultParam;

    fn deref(&self) -> &FaultParam {
        // SAFETY: By the type invariant the object is live while we hold a count.
        unsafe { self.0.as_ref() }
    }
}

impl Drop for FaultParamRef {
    fn drop(&mut self) {
        if self.users.dec_and_test() {
            // SAFETY: The last reference is gone; `rcu` is unused until now and
            // the callback frees the object after a grace period.
            unsafe { bindings::call_rcu(self.rcu.get(), Some(free_rcu)) };
        }
    }
}

/// Frees a [`FaultParam`] whose last reference was dropped (`kfree_rcu()`).
///
/// # Safety
///
/// `head` must be the `rcu` field of a [`FaultParam`] with no references left.
unsafe extern "C" fn free_rcu(head: *mut bindings::callback_head) {
    // CAST: `Opaque<callback_head>` is `repr(transparent)`.
    let head = head.cast::<Opaque<bindings::callback_head>>();
    // SAFETY: The caller guarantees `head` is the `rcu` field of a `FaultParam`.
    let param = unsafe { kernel::container_of!(head, FaultParam, rcu) };
    // SAFETY: By the type invariant it was allocated by `FaultParam::allocate` as a
    // pinned `KBox`; no reference remains, and it is dropped in place.
    drop(unsafe { Pin::new_unchecked(KBox::from_raw(param)) });
}
