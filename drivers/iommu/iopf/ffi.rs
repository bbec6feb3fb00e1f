// SPDX-License-Identifier: GPL-2.0

//! The C API of `<linux/iommu.h>`: the only place where pointers from C
//! become references. Each function checks what C could get wrong (NULL
//! pointers) and calls the safe core. `iopf_exports.c` exports them to
//! modules; `#[export]` checks each signature against the C prototype.

use kernel::{bindings, prelude::*};

use crate::{device::Device, group::Group, queue::Queue, report, response};

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

/// `iommu_attach_handle_get()`: the handle attached to `pasid` of `group`,
/// or an `ERR_PTR`.
pub(crate) fn attach_handle_get(
    group: *mut bindings::iommu_group,
    pasid: u32,
    kind: u32,
) -> *mut bindings::iommu_attach_handle {
    // SAFETY: The lookup takes the group's mutex and checks its arguments;
    // a device that reports faults belongs to a group.
    unsafe { iommu_attach_handle_get(group, pasid, kind) }
}

/// A NULL where the C API needs a pointer: a driver bug, reported (rate
/// limited per call site) with the function and the argument.
macro_rules! null_argument {
    ($func:literal, $arg:literal) => {
        kernel::ratelimited!(pr_warn!("{}() called with a NULL {}\n", $func, $arg))
    };
}

fn to_c(result: Result) -> c_int {
    match result {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// iommu_report_device_fault() - Report fault event to device driver
/// @dev: the device
/// @evt: fault event data
///
/// Called by IOMMU drivers when a fault is detected, typically in a threaded
/// IRQ handler. If this function fails then ops->page_response() was called
/// to complete evt if required.
///
/// PASID Stop Markers must be discarded by the IOMMU driver before reporting.
/// A request without the Last Page flag is held until the last request of its
/// group arrives; the group is then passed to the iopf_handler of the domain
/// attached to the PASID (or to the RID), which must call
/// iopf_group_response() and iopf_free_group(). With no handler or no fault
/// data, a page request is answered IOMMU_PAGE_RESP_INVALID and -EINVAL is
/// returned; if the group cannot be allocated or the handler fails, it is
/// answered IOMMU_PAGE_RESP_FAILURE and 0 is returned. A fault type other than
/// IOMMU_FAULT_PAGE_REQ is rejected with -EINVAL and no response. At most
/// CONFIG_IOMMU_IOPF_RUST_MAX_PARTIAL partial requests are held per device;
/// past that, the oldest incomplete group is dropped.
///
/// Return: 0 on success, or an error in case of a bad/failed iopf setup.
///
/// # Safety
///
/// `dev` must be a live device and `evt` a fault readable during the call.
#[export]
pub unsafe extern "C" fn iommu_report_device_fault(
    dev: *mut bindings::device,
    evt: *mut bindings::iopf_fault,
) -> c_int {
    if dev.is_null() {
        null_argument!("iommu_report_device_fault", "device");
        return EINVAL.to_errno();
    }
    if evt.is_null() {
        null_argument!("iommu_report_device_fault", "event");
        return EINVAL.to_errno();
    }
    // SAFETY: The caller passes a live device.
    let dev = unsafe { Device::from_raw(dev) };
    to_c(report::report(dev, evt))
}

/// iopf_group_response - Respond a group of page faults
/// @group: the group of faults with the same group id
/// @status: the response code
///
/// Sends the response through the IOMMU driver's page_response() and takes
/// the group off its device's pending list. A group is answered once: a
/// second response is dropped with a warning.
///
/// # Safety
///
/// `group` must be a group passed to an iopf_handler and not yet freed.
#[export]
pub unsafe extern "C" fn iopf_group_response(
    group: *mut bindings::iopf_group,
    status: bindings::iommu_page_response_code,
) {
    if group.is_null() {
        null_argument!("iopf_group_response", "group");
        return;
    }
    // SAFETY: The caller passes a live group.
    response::respond(unsafe { Group::from_c(group) }, status);
}

/// iopf_group_dequeue - Dequeue a page fault group from the pending list
/// @group: the group to dequeue
///
/// The fault handler is responsible for responding to the group after this
/// function returns: iopf_queue_remove_device() no longer answers it.
///
/// # Safety
///
/// `group` must be a group passed to an iopf_handler and not yet freed.
#[export]
pub unsafe extern "C" fn iopf_group_dequeue(group: *mut bindings::iopf_group) {
    if group.is_null() {
        null_argument!("iopf_group_dequeue", "group");
        return;
    }
    // SAFETY: The caller passes a live group.
    response::dequeue(unsafe { Group::from_c(group) });
}

/// iopf_free_group - Free a group of page faults
/// @group: the group, answered with iopf_group_response()
///
/// Frees the group, its partial requests and its reference to the device's
/// fault data. A group freed without a response is answered
/// IOMMU_PAGE_RESP_INVALID first, so that the device does not wait for ever.
///
/// # Safety
///
/// `group` must be a group passed to an iopf_handler; it is not used after.
#[export]
pub unsafe extern "C" fn iopf_free_group(group: *mut bindings::iopf_group) {
    if group.is_null() {
        null_argument!("iopf_free_group", "group");
        return;
    }
    // SAFETY: The caller gives back a group it owned.
    response::free(unsafe { Group::from_c_owned(group) });
}

/// iopf_queue_work - Defer the handling of a fault group to its IOPF queue
/// @group: the group, as received by a domain's iopf_handler
/// @func: the work function; it gets &group->work
///
/// Return: 0 on success, -EBUSY if the group's work is already queued.
///
/// # Safety
///
/// `group` must be a group passed to an iopf_handler and not yet freed.
#[export]
pub unsafe extern "C" fn iopf_queue_work(
    group: *mut bindings::iopf_group,
    func: bindings::work_func_t,
) -> c_int {
    if group.is_null() || func.is_none() {
        null_argument!("iopf_queue_work", "group or function");
        return EINVAL.to_errno();
    }
    // SAFETY: The caller passes a live group.
    to_c(response::queue_work(unsafe { Group::from_c(group) }, func))
}

/// iopf_queue_flush_dev - Ensure that all queued faults have been processed
/// @dev: the endpoint whose faults need to be flushed.
///
/// The IOMMU driver calls this before releasing a PASID, to ensure that all
/// pending faults for this PASID have been handled, and won't hit the address
/// space of the next process that uses this PASID. The driver must make sure
/// that no new fault is added to the queue. In particular it must flush its
/// low-level queue before calling this function.
///
/// Return: 0 on success and <0 on error (-ENODEV if the device is on no queue).
///
/// # Safety
///
/// `dev` must be a live device.
#[export]
pub unsafe extern "C" fn iopf_queue_flush_dev(dev: *mut bindings::device) -> c_int {
    if dev.is_null() {
        null_argument!("iopf_queue_flush_dev", "device");
        return EINVAL.to_errno();
    }
    // SAFETY: The caller passes a live device.
    to_c(response::flush_dev(unsafe { Device::from_raw(dev) }))
}

/// The queue behind a pointer from iopf_queue_alloc().
///
/// # Safety
///
/// `queue` must be NULL or come from iopf_queue_alloc() and not be freed.
unsafe fn queue<'a>(queue: *mut bindings::iopf_queue) -> Option<&'a Queue> {
    // SAFETY: Guaranteed by the caller; `Queue::as_c` made the pointer.
    unsafe { queue.cast::<Queue>().as_ref() }
}

/// iopf_queue_alloc - Allocate and initialize a fault queue
/// @name: a unique string identifying the queue (for workqueue)
///
/// The queue's workqueue, iopf_queue/@name, is unbound and unordered: requests
/// within a group are ordered by the report path, groups may be handled in
/// any order.
///
/// Return: the queue on success and NULL on error.
///
/// # Safety
///
/// `name` must be NULL or a NUL-terminated string.
#[export]
pub unsafe extern "C" fn iopf_queue_alloc(name: *const c_char) -> *mut bindings::iopf_queue {
    if name.is_null() {
        null_argument!("iopf_queue_alloc", "name");
        return core::ptr::null_mut();
    }
    // SAFETY: The caller passes a NUL-terminated string.
    let name = unsafe { CStr::from_char_ptr(name) };
    match Queue::new(name) {
        // CAST: C only passes the pointer back; `queue()` casts it back.
        // SAFETY: The queue is never moved out of its box; iopf_queue_free() frees it.
        Ok(queue) => KBox::into_raw(unsafe { Pin::into_inner_unchecked(queue) }).cast(),
        Err(_) => core::ptr::null_mut(),
    }
}

/// iopf_queue_free - Free IOPF queue
/// @queue: queue to free
///
/// Counterpart to iopf_queue_alloc(). The driver must not be queuing faults
/// or adding/removing devices on this queue anymore. Devices still on the
/// queue are removed (their pending groups answered), then the workqueue is
/// drained and destroyed. A NULL @queue is ignored.
///
/// # Safety
///
/// `queue` must be NULL or come from iopf_queue_alloc(); it is not used after.
#[export]
pub unsafe extern "C" fn iopf_queue_free(queue: *mut bindings::iopf_queue) {
    // Silently, as kfree(NULL): drivers free a queue they may never have
    // allocated (amd_iommu_iopf_uninit() without PPR support).
    if queue.is_null() {
        return;
    }
    // SAFETY: The caller gives back a queue from iopf_queue_alloc(), a pinned
    // `KBox<Queue>` that is dropped in place.
    let queue = unsafe { Pin::new_unchecked(KBox::from_raw(queue.cast::<Queue>())) };
    queue.remove_all();
}

/// iopf_queue_add_device - Add producer to the fault queue
/// @queue: IOPF queue
/// @dev: device to add
///
/// Return: 0 on success and <0 on error: -ENODEV if the IOMMU driver has no
/// page_response(), -EBUSY if the device is already on a queue, -ENOMEM,
/// -EINVAL for a NULL @queue.
///
/// # Safety
///
/// `queue` must be NULL or a live queue, `dev` a live device.
#[export]
pub unsafe extern "C" fn iopf_queue_add_device(
    queue: *mut bindings::iopf_queue,
    dev: *mut bindings::device,
) -> c_int {
    // SAFETY: Guaranteed by the caller.
    let Some(queue) = (unsafe { self::queue(queue) }) else {
        null_argument!("iopf_queue_add_device", "queue");
        return EINVAL.to_errno();
    };
    if dev.is_null() {
        null_argument!("iopf_queue_add_device", "device");
        return EINVAL.to_errno();
    }
    // SAFETY: The caller passes a live device.
    to_c(queue.add_device(unsafe { Device::from_raw(dev) }))
}

/// iopf_queue_remove_device - Remove producer from fault queue
/// @queue: IOPF queue
/// @dev: device to remove
///
/// The recommended sequence: disable PRI reception in the IOMMU and flush its
/// page request queue; call this helper, which answers every outstanding
/// request group with IOMMU_PAGE_RESP_INVALID (exactly once) and frees it,
/// drops the held partial requests and unpublishes the device's fault data;
/// then disable PRI on the device. Groups dequeued by their handler are still
/// the handler's to answer. A device that is not on @queue is left alone,
/// with a rate-limited warning.
///
/// # Safety
///
/// `queue` must be NULL or a live queue, `dev` a live device.
#[export]
pub unsafe extern "C" fn iopf_queue_remove_device(
    queue: *mut bindings::iopf_queue,
    dev: *mut bindings::device,
) {
    // SAFETY: Guaranteed by the caller.
    let Some(queue) = (unsafe { self::queue(queue) }) else {
        null_argument!("iopf_queue_remove_device", "queue");
        return;
    };
    if dev.is_null() {
        null_argument!("iopf_queue_remove_device", "device");
        return;
    }
    // SAFETY: The caller passes a live device.
    let _ = queue.remove_device(unsafe { Device::from_raw(dev) });
}

/// iopf_queue_discard_partial - Remove all pending partial fault
/// @queue: the queue whose partial faults need to be discarded
///
/// When the hardware queue overflows, last page faults in a group may have
/// been lost and the IOMMU driver calls this to discard all partial faults.
/// The driver shouldn't be adding new faults to this queue concurrently.
///
/// Return: 0 on success and -EINVAL for a NULL @queue.
///
/// # Safety
///
/// `queue` must be NULL or a live queue.
#[export]
pub unsafe extern "C" fn iopf_queue_discard_partial(queue: *mut bindings::iopf_queue) -> c_int {
    // SAFETY: Guaranteed by the caller.
    let Some(queue) = (unsafe { self::queue(queue) }) else {
        null_argument!("iopf_queue_discard_partial", "queue");
        return EINVAL.to_errno();
    };
    queue.discard_partial();
    0
}
