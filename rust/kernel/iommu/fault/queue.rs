// SPDX-License-Identifier: GPL-2.0

//! Fault queues and the devices registered on them.
//!
//! C header: [`include/linux/iommu.h`](srctree/include/linux/iommu.h)

use core::ptr::NonNull;

use crate::{
    bindings,
    device::Device,
    error::to_result,
    prelude::*,
    sync::{
        aref::ARef,
        Arc, //
    },
};

use super::PageRequest;

/// An I/O page fault queue (`struct iopf_queue`), one per IOMMU instance.
///
/// Fault handlers that defer their work (see [`super::Incoming::queue_work`]) run on the queue's
/// workqueue, so that a device's faults can be flushed before it goes away. Devices join the
/// queue with [`QueueDevice::new`], which needs the queue in an [`Arc`]: each registered device
/// holds a reference, so the queue outlives its devices.
///
/// # Invariants
///
/// `ptr` is a queue returned by `iopf_queue_alloc()`, not yet freed: `self` owns it.
///
/// # Examples
///
/// ```
/// use kernel::iommu::fault::FaultQueue;
/// use kernel::prelude::*;
/// use kernel::sync::Arc;
///
/// // What an IOMMU driver does when it probes an IOMMU that supports page requests.
/// let queue = Arc::new(FaultQueue::new(c"doctest-iommu")?, GFP_KERNEL)?;
/// // No device has been added: there is nothing to discard.
/// queue.discard_partial()?;
/// // Dropping the last reference frees the queue.
/// drop(queue);
/// # Ok::<(), Error>(())
/// ```
pub struct FaultQueue {
    ptr: NonNull<bindings::iopf_queue>,
}

// SAFETY: The IOPF functions that take a `struct iopf_queue` may be called from any thread.
unsafe impl Send for FaultQueue {}

// SAFETY: The IOPF functions that take a `struct iopf_queue` lock what they change, so they may be
// called concurrently through `&FaultQueue`.
unsafe impl Sync for FaultQueue {}

impl FaultQueue {
    /// Allocates a fault queue; `name` names its workqueue (`iopf_queue/<name>` in C).
    pub fn new(name: &CStr) -> Result<Self> {
        // SAFETY: `name` is a valid NUL-terminated string, which the callee copies.
        let ptr = unsafe { bindings::iopf_queue_alloc(name.as_char_ptr()) };
        // `iopf_queue_alloc()` returns NULL on failure, which it only has for lack of memory.
        // INVARIANT: `ptr` was just returned by `iopf_queue_alloc()`.
        Ok(Self {
            ptr: NonNull::new(ptr).ok_or(ENOMEM)?,
        })
    }

    /// Discards the page requests that wait for the rest of their group, on every device of the
    /// queue, without responding to them.
    ///
    /// A driver calls this when its hardware queue overflowed: the device will resend the
    /// requests whose group was cut, so the held ones are stale.
    pub fn discard_partial(&self) -> Result {
        // SAFETY: By the type invariant, `self.ptr` is a live queue.
        to_result(unsafe { bindings::iopf_queue_discard_partial(self.ptr.as_ptr()) })
    }

    fn as_raw(&self) -> *mut bindings::iopf_queue {
        self.ptr.as_ptr()
    }
}

impl Drop for FaultQueue {
    fn drop(&mut self) {
        // No device is left on the queue: each `QueueDevice` holds a reference to it.
        // SAFETY: By the type invariant, `self.ptr` is a live queue that `self` owns.
        unsafe { bindings::iopf_queue_free(self.ptr.as_ptr()) };
    }
}

/// A device registered on a [`FaultQueue`]: its page requests may be reported.
///
/// The device leaves the queue when this is dropped: the handlers deferred to the queue are
/// flushed, then the page requests held for incomplete groups are discarded and the groups still
/// pending are answered [`super::ResponseCode::Invalid`] and freed. Drop it after the device
/// stopped issuing page requests and the domains with fault handlers were detached, never from a
/// work item of the queue itself (see `Documentation/iommu/iopf-driver-guide.rst`).
///
/// # Invariants
///
/// `dev` was added to `queue` by `iopf_queue_add_device()` and not removed yet.
///
/// # Examples
///
/// ```
/// use kernel::device::Device;
/// use kernel::iommu::fault::{FaultQueue, PageRequest, Permission, QueueDevice};
/// use kernel::prelude::*;
/// use kernel::sync::Arc;
///
/// /// An IOMMU driver's threaded interrupt handler, which found one page request in its
/// /// hardware queue, from `dev` (a device it probed, with `dev->iommu` set).
/// fn page_request_irq(queue: &Arc<FaultQueue>, dev: &Device, addr: u64, group: u32) -> Result {
///     // Usually done once, when the device is probed or enables PRI.
///     let registered = QueueDevice::new(queue, dev)?;
///     let request = PageRequest::new(addr, Permission::Read | Permission::Write, group);
///     // On error, the core has already responded to the request if it needed a response.
///     registered.report(&request)
/// }
/// ```
pub struct QueueDevice {
    queue: Arc<FaultQueue>,
    dev: ARef<Device>,
}

impl QueueDevice {
    /// Registers `dev` on `queue`.
    ///
    /// Fails with `ENODEV` if the device has no IOMMU (`dev->iommu` is not set: the IOMMU core
    /// did not probe it), `EBUSY` if it is already on a queue, `ENOMEM`.
    pub fn new(queue: &Arc<FaultQueue>, dev: &Device) -> Result<Self> {
        // `iopf_queue_add_device()` dereferences `dev->iommu`, which the IOMMU core sets when it
        // probes the device and clears only when the device is released.
        // SAFETY: `dev` is a valid device; reading the pointer does not dereference it.
        if unsafe { (*dev.as_raw()).iommu }.is_null() {
            return Err(ENODEV);
        }
        // SAFETY: `queue` is live by its type invariant, and `dev` is a valid device with
        // `dev->iommu` set.
        to_result(unsafe { bindings::iopf_queue_add_device(queue.as_raw(), dev.as_raw()) })?;
        // INVARIANT: `dev` was just added to `queue`.
        Ok(Self {
            queue: queue.clone(),
            dev: dev.into(),
        })
    }

    /// Reports a page request from this device to the IOPF framework
    /// (`iommu_report_device_fault()`).
    ///
    /// May be called from a threaded interrupt handler; it does not sleep on the page fault
    /// itself, which the domain's handler resolves. Every request with [`PageRequest::last`] set
    /// is answered exactly once through the driver's [`super::PageResponder`], whether this
    /// returns `Ok` or not:
    ///
    /// - `Ok(())`: the request is held for its group, or its group was handed to the fault
    ///   handler of the domain attached to the device (or PASID), or the group could not be
    ///   allocated and was answered [`super::ResponseCode::Failure`];
    /// - `EINVAL`: no domain with a fault handler is attached to the device or PASID; the request
    ///   was answered [`super::ResponseCode::Invalid`] (in C even a non-last request is);
    /// - `ENOMEM`: a non-last request could not be held; the device will get no response for
    ///   its group unless it resends it.
    pub fn report(&self, request: &PageRequest) -> Result {
        let mut evt = request.to_raw();
        // SAFETY: `self.dev` is on a queue by the type invariant, and `evt` is a valid fault
        // event that the callee copies before returning.
        to_result(unsafe { bindings::iommu_report_device_fault(self.dev.as_raw(), &mut evt) })
    }

    /// Waits until the fault handlers working on this device's faults have returned
    /// (`iopf_queue_flush_dev()`).
    ///
    /// The driver calls this before it frees a PASID, after the device stopped issuing
    /// requests for it. Only handlers that deferred to the queue are waited for.
    pub fn flush(&self) -> Result {
        // SAFETY: `self.dev` is on a queue by the type invariant.
        to_result(unsafe { bindings::iopf_queue_flush_dev(self.dev.as_raw()) })
    }

    /// The registered device.
    pub fn device(&self) -> &Device {
        &self.dev
    }
}

impl Drop for QueueDevice {
    fn drop(&mut self) {
        // Let the deferred handlers finish first: removal answers and frees the groups still
        // pending, which a running handler would otherwise use after they are freed.
        let _ = self.flush();
        // SAFETY: By the type invariant, `self.dev` is on `self.queue`, which is live as long as
        // `self` holds a reference to it.
        unsafe { bindings::iopf_queue_remove_device(self.queue.as_raw(), self.dev.as_raw()) };
    }
}
