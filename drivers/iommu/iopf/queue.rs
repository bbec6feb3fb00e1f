// SPDX-License-Identifier: GPL-2.0

//! An IOPF queue: `struct iopf_queue`.
//!
//! An IOMMU driver allocates one per IOMMU (or per event queue) and adds the
//! devices whose page requests it reports. The queue owns the workqueue on
//! which handlers defer their work, and the first reference to each added
//! device's fault data.

use kernel::{
    bindings, new_mutex,
    prelude::*,
    str::BStr,
    sync::Mutex,
    workqueue::{self, OwnedQueue},
};

use crate::{
    device::{warn_ratelimited, Device},
    fault_param::{FaultParam, FaultParamRef},
    group::Group,
    partial::PartialStore,
};

/// A fault queue and the devices on it.
#[pin_data]
pub(crate) struct Queue {
    wq: OwnedQueue,
    /// The queue's reference to the fault data of each device on it.
    #[pin]
    devices: Mutex<KVec<FaultParamRef>>,
}

impl Queue {
    /// Allocates a queue whose workqueue is named `iopf_queue/<name>`.
    ///
    /// The workqueue is unbound and unordered: requests within a group are
    /// ordered by the report path, and groups may be handled in any order.
    pub(crate) fn new(name: &CStr) -> Result<Pin<KBox<Self>>> {
        let name = BStr::from_bytes(name.to_bytes());
        let wq = OwnedQueue::new(fmt!("iopf_queue/{}", name), workqueue::UNBOUND, 0)?;
        KBox::pin_init(
            pin_init!(Self {
                wq,
                devices <- new_mutex!(KVec::new(), "iopf_queue::lock"),
            }),
            GFP_KERNEL,
        )
    }

    /// The queue's workqueue.
    pub(crate) fn workqueue(&self) -> *mut bindings::workqueue_struct {
        self.wq.as_raw()
    }

    /// Waits for the work queued so far (`iopf_queue_flush_dev()`).
    pub(crate) fn flush(&self) {
        self.wq.flush();
    }

    /// Adds `dev` to the queue and publishes its fault data
    /// (`iopf_queue_add_device()`).
    pub(crate) fn add_device(&self, dev: &Device) -> Result {
        if dev.ops().and_then(|ops| ops.page_response).is_none() {
            warn_ratelimited!(
                dev,
                "iopf: adding a device whose IOMMU has no page_response()\n"
            );
            return Err(ENODEV);
        }
        let (Some(iommu_lock), Some(slot)) = (dev.iommu_lock(), dev.fault_param_slot()) else {
            warn_ratelimited!(dev, "iopf: adding a device without IOMMU data\n");
            return Err(ENODEV);
        };
        // Lock order, as in C: queue, then dev->iommu->lock.
        let mut devices = self.devices.lock();
        let _iommu = iommu_lock.lock();
        if !slot.dereference_protected().is_null() {
            warn_ratelimited!(dev, "iopf: adding a device that is already on a queue\n");
            return Err(EBUSY);
        }
        let param = FaultParam::allocate(dev, self)?;
        let published = param.as_c();
        devices.push(param, GFP_KERNEL)?;
        slot.publish(published);
        Ok(())
    }

    /// Removes `dev` from the queue (`iopf_queue_remove_device()`).
    ///
    /// Answers every pending group with INVALID and frees it, drops the held
    /// partials, unpublishes the fault data and drops the queue's reference.
    pub(crate) fn remove_device(&self, dev: &Device) -> Result {
        let mut devices = self.devices.lock();
        self.remove_locked(&mut devices, dev)
    }

    fn remove_locked(&self, devices: &mut KVec<FaultParamRef>, dev: &Device) -> Result {
        let (Some(iommu_lock), Some(slot)) = (dev.iommu_lock(), dev.fault_param_slot()) else {
            warn_ratelimited!(dev, "iopf: removing a device without IOMMU data\n");
            return Err(ENODEV);
        };
        let _iommu = iommu_lock.lock();
        let published = slot
            .dereference_protected()
            .cast_const()
            .cast::<FaultParam>();
        let Some(index) = devices.iter().position(|p| p.as_ptr() == published) else {
            warn_ratelimited!(dev, "iopf: removing a device that is not on this queue\n");
            return Err(EINVAL);
        };
        let param = devices.remove(index).map_err(|_| EINVAL)?;

        {
            let mut faults = param.state.lock();
            faults.as_mut().project().partial.clear();
            let head = faults.pending();
            // SAFETY: `head` is the pending list, protected by the lock we hold.
            while let Some(node) = unsafe { first(head) } {
                // SAFETY: The node is on the pending list, so its group is live.
                let group = unsafe { Group::from_pending(node) };
                // SAFETY: We hold the fault lock of the group's device.
                unsafe {
                    group.respond_locked(bindings::iommu_page_response_code_IOMMU_PAGE_RESP_INVALID)
                };
                // The handler owned the group; the device is going away, so it
                // is freed here (the upstream fix for CVE-2025-21770). Being
                // answered, its destructor does not take the lock we hold.
                // SAFETY: Pending groups were given to C by the report path.
                drop(unsafe { Group::from_c_owned(group.as_c()) });
            }
        }
        slot.publish(core::ptr::null_mut());
        drop(param);
        Ok(())
    }

    /// Drops the held partials of every device (`iopf_queue_discard_partial()`).
    pub(crate) fn discard_partial(&self) {
        let devices = self.devices.lock();
        for param in devices.iter() {
            param.partials(PartialStore::clear);
        }
    }

    /// Removes every device still on the queue (from `iopf_queue_free()`).
    pub(crate) fn remove_all(&self) {
        let mut devices = self.devices.lock();
        while let Some(param) = devices.last() {
            let dev = param.dev() as *const Device;
            // SAFETY: A device on the queue is live (FaultParam invariant).
            if self.remove_locked(&mut devices, unsafe { &*dev }).is_err() {
                // Not published any more (a driver bug): just drop our reference.
                devices.pop();
            }
        }
    }
}

/// The first node of the C list at `head`, if any.
///
/// # Safety
///
/// `head` must be a valid list head, protected by a lock the caller holds.
unsafe fn first(head: *mut bindings::list_head) -> Option<*mut bindings::list_head> {
    // SAFETY: Guaranteed by the caller.
    let next = unsafe { (*head).next };
    (next != head).then_some(next)
}
