// SPDX-License-Identifier: GPL-2.0

//! The C API of `<linux/iommu.h>`: the only place where pointers from C become references.
//!
//! Each function checks what C could get wrong (NULL pointers, a device without IOMMU data), turns
//! the pointers into the safe types of `kernel::iommu::fault` under the contract of the C API, and
//! calls the safe core. `iopf_exports.c` exports them to modules; `#[export]` checks each
//! signature against the C prototype.

use kernel::{
    bindings,
    iommu::fault::{
        Answer,
        Endpoint,
        Fault,
        FaultHandler,
        Handed,
        Owned, //
    },
    prelude::*,
    sync::{
        Arc,
        ArcBorrow, //
    },
    types::ForeignOwnable,
};

use crate::{
    fault_param::{
        warn_ratelimited,
        FaultDevice,
        FaultParam, //
    },
    queue::Queue,
    report,
};

/// `non_null!(ptr: noun in func => ret)` returns `ret` if `ptr` is NULL where the C API needs a
/// pointer: a driver bug, reported (rate limited per call site) with the function and the noun.
macro_rules! non_null {
    ($ptr:ident: $noun:ident in $func:ident $(=> $ret:expr)?) => {
        if $ptr.is_null() {
            kernel::ratelimited!(pr_warn!(
                "{}() called with a NULL {}\n",
                stringify!($func),
                stringify!($noun)
            ));
            return $($ret)?;
        }
    };
}

fn to_c(result: Result) -> c_int {
    match result {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// The device of `endpoint` as the core sees it, or `None`, with a warning naming `func`, for a
/// device without IOMMU data.
fn fault_device<'a>(endpoint: Option<&'a Endpoint>, func: &str) -> Option<FaultDevice<'a>> {
    let Some(endpoint) = endpoint else {
        kernel::ratelimited!(pr_warn!(
            "{}() called for a device without IOMMU data\n",
            func
        ));
        return None;
    };
    Some(FaultDevice {
        endpoint,
        // SAFETY: This crate is the only owner of `dev->iommu->fault_param`: it stores there only
        // `Arc<FaultParam>`s, and only through `Rcu` (C code never reads it).
        published: unsafe { endpoint.fault_param::<Arc<FaultParam>>() },
    })
}

/// iommu_report_device_fault() - Report fault event to device driver
/// @dev: the device
/// @evt: fault event data
///
/// Called by IOMMU drivers when a fault is detected, typically in a threaded IRQ handler. If this
/// function fails then ops->page_response() was called to complete evt if required.
///
/// PASID Stop Markers must be discarded by the IOMMU driver before reporting. A request without
/// the Last Page flag is held until the last request of its group arrives; the group is then
/// passed to the iopf_handler of the domain attached to the PASID (or to the RID), which must call
/// iopf_group_response() and iopf_free_group(). With no handler or no fault data, a page request
/// is answered IOMMU_PAGE_RESP_INVALID and -EINVAL is returned; if the group cannot be allocated
/// or the handler fails, it is answered IOMMU_PAGE_RESP_FAILURE and 0 is returned. A fault type
/// other than IOMMU_FAULT_PAGE_REQ is rejected with -EINVAL and no response. At most
/// CONFIG_IOMMU_IOPF_RUST_MAX_PARTIAL partial requests are held per device; past that, the oldest
/// incomplete group is dropped, and its last request answered IOMMU_PAGE_RESP_INVALID.
///
/// Context: Process context; may sleep.
/// Return: 0 on success, or an error in case of a bad/failed iopf setup.
///
/// # Safety
///
/// `dev` must be a live device probed by the calling IOMMU driver, and `evt` a fault readable
/// during the call. The domain a request goes to stays attached during the call: the driver
/// flushes its page requests before it detaches a domain.
#[export]
pub unsafe extern "C" fn iommu_report_device_fault(
    dev: *mut bindings::device,
    evt: *mut bindings::iopf_fault,
) -> c_int {
    non_null!(dev: device in iommu_report_device_fault => EINVAL.to_errno());
    non_null!(evt: event in iommu_report_device_fault => EINVAL.to_errno());
    // SAFETY: The caller passes a live device, probed by its IOMMU driver.
    let endpoint = unsafe { Endpoint::from_raw(dev) };
    let Some(dev) = fault_device(endpoint, "iommu_report_device_fault") else {
        return EINVAL.to_errno();
    };
    // SAFETY: The caller passes a fault readable during the call; its `fault` member is set.
    let fault = unsafe { Fault::from_raw(evt) };
    // SAFETY: The domain found stays attached during the call (the driver's contract).
    let handler = unsafe { FaultHandler::find(dev.endpoint, fault) };
    to_c(report::report(&dev, fault, handler))
}

/// iopf_group_response - Respond a group of page faults
/// @group: the group of faults with the same group id
/// @status: the response code
///
/// Sends the response through the IOMMU driver's page_response() and takes the group off its
/// device's pending list. A group is answered once: a second response is dropped, with a warning
/// unless the group was answered by the removal of its device (iopf_queue_remove_device()).
///
/// Context: Process context; takes the device's fault mutex.
///
/// # Safety
///
/// `group` must be a group passed to an iopf_handler and not yet freed, used by its owner.
#[export]
pub unsafe extern "C" fn iopf_group_response(
    group: *mut bindings::iopf_group,
    status: bindings::iommu_page_response_code,
) {
    non_null!(group: group in iopf_group_response);
    // SAFETY: The caller owns a live group of this crate.
    let group = unsafe { Handed::<FaultParam>::from_raw(group) };
    if group.respond(status) == Err(Answer::ByOwner) {
        let last = group.last();
        warn_ratelimited!(
            group.owner().dev(),
            "iopf group {} (pasid {}) answered twice, dropping code {}\n",
            last.grpid(),
            last.pasid(),
            status
        );
    }
}

/// iopf_group_dequeue - Dequeue a page fault group from the pending list
/// @group: the group to dequeue
///
/// The fault handler is responsible for responding to the group after this function returns:
/// iopf_queue_remove_device() no longer answers it.
///
/// Context: Process context; takes the device's fault mutex.
///
/// # Safety
///
/// `group` must be a group passed to an iopf_handler and not yet freed, used by its owner.
#[export]
pub unsafe extern "C" fn iopf_group_dequeue(group: *mut bindings::iopf_group) {
    non_null!(group: group in iopf_group_dequeue);
    // SAFETY: The caller owns a live group of this crate.
    unsafe { Handed::<FaultParam>::from_raw(group) }.dequeue();
}

/// iopf_free_group - Free a group of page faults
/// @group: the group, answered with iopf_group_response()
///
/// Frees the group, its partial requests and its reference to the device's fault data. A group
/// freed without a response is answered IOMMU_PAGE_RESP_INVALID first, with a warning, so that
/// the device does not wait for ever; that answer goes through the IOMMU driver's
/// page_response(), under the device's fault mutex.
///
/// Context: Process context; may sleep (it takes the device's fault mutex when the group was not
/// answered, or was answered by iopf_queue_remove_device()).
///
/// # Safety
///
/// `group` must be a group passed to an iopf_handler, used by its owner; it is not used after.
#[export]
pub unsafe extern "C" fn iopf_free_group(group: *mut bindings::iopf_group) {
    // C's might_sleep() checks the context only with CONFIG_DEBUG_ATOMIC_SLEEP; from Rust it is a
    // call to a helper on every free, so it is only made where it checks something.
    #[cfg(CONFIG_DEBUG_ATOMIC_SLEEP)]
    kernel::task::might_sleep();
    non_null!(group: group in iopf_free_group);
    // SAFETY: The caller gives back a group of this crate that it owned.
    unsafe { Owned::<FaultParam>::from_raw(group) }.free(|param, last| {
        warn_ratelimited!(
            param.dev(),
            "iopf group {} freed without a response, answering INVALID\n",
            last.grpid()
        );
    });
}

/// iopf_queue_work - Defer the handling of a fault group to its IOPF queue
/// @group: the group, as received by a domain's iopf_handler
/// @func: the work function; it gets &group->work
///
/// Fault handlers that may sleep run from the queue's workqueue, so that iopf_queue_flush_dev()
/// waits for them.
///
/// Context: Any context; does not sleep.
/// Return: 0 on success, -EBUSY if the group's work is already queued.
///
/// # Safety
///
/// `group` must be a group passed to an iopf_handler and not yet freed, used by its owner, and
/// `func` a work function that takes `&group->work`.
#[export]
pub unsafe extern "C" fn iopf_queue_work(
    group: *mut bindings::iopf_group,
    func: bindings::work_func_t,
) -> c_int {
    non_null!(group: group in iopf_queue_work => EINVAL.to_errno());
    let Some(func) = func else {
        kernel::ratelimited!(pr_warn!("iopf_queue_work() called with a NULL function\n"));
        return EINVAL.to_errno();
    };
    // SAFETY: The caller owns a live group of this crate.
    let group = unsafe { Handed::<FaultParam>::from_raw(group) };
    // SAFETY: The caller passes a work function for `&group->work`.
    to_c(unsafe { group.queue_work(group.owner().workqueue(), func) })
}

/// iopf_queue_flush_dev - Ensure that all queued faults have been processed
/// @dev: the endpoint whose faults need to be flushed.
///
/// The IOMMU driver calls this before releasing a PASID, to ensure that all pending faults for
/// this PASID have been handled, and won't hit the address space of the next process that uses
/// this PASID. The driver must make sure that no new fault is added to the queue. In particular
/// it must flush its low-level queue before calling this function.
///
/// Context: Process context; sleeps.
/// Return: 0 on success and <0 on error (-ENODEV if the device is on no queue).
///
/// # Safety
///
/// `dev` must be a live device probed by the calling IOMMU driver.
#[export]
pub unsafe extern "C" fn iopf_queue_flush_dev(dev: *mut bindings::device) -> c_int {
    non_null!(dev: device in iopf_queue_flush_dev => EINVAL.to_errno());
    // SAFETY: The caller passes a live device probed by its IOMMU driver.
    let endpoint = unsafe { Endpoint::from_raw(dev) };
    let Some(dev) = fault_device(endpoint, "iopf_queue_flush_dev") else {
        return ENODEV.to_errno();
    };
    let Some(param) = FaultParam::get(&dev) else {
        warn_ratelimited!(dev.dev(), "iopf: flushing a device that is on no queue\n");
        return ENODEV.to_errno();
    };
    param.workqueue().flush();
    0
}

/// The queue behind a pointer from iopf_queue_alloc().
///
/// # Safety
///
/// `queue` must come from iopf_queue_alloc() and not be freed during `'a`.
unsafe fn queue<'a>(queue: *mut bindings::iopf_queue) -> ArcBorrow<'a, Queue> {
    // SAFETY: Guaranteed by the caller: `iopf_queue_alloc()` made the pointer with
    // `Arc::into_foreign`, and the queue lives until `iopf_queue_free()`.
    unsafe { <Arc<Queue> as ForeignOwnable>::borrow(queue.cast()) }
}

/// iopf_queue_alloc - Allocate and initialize a fault queue
/// @name: a unique string identifying the queue (for workqueue)
///
/// The queue's workqueue, iopf_queue/@name, is unbound and unordered: requests within a group are
/// ordered by the report path, groups may be handled in any order.
///
/// Context: Process context; may sleep.
/// Return: the queue on success and NULL on error.
///
/// # Safety
///
/// `name` must be NULL or a NUL-terminated string.
#[export]
pub unsafe extern "C" fn iopf_queue_alloc(name: *const c_char) -> *mut bindings::iopf_queue {
    non_null!(name: name in iopf_queue_alloc => core::ptr::null_mut());
    // SAFETY: The caller passes a NUL-terminated string.
    let name = unsafe { CStr::from_char_ptr(name) };
    match Queue::new(name) {
        // CAST: C only passes the pointer back; `queue()` casts it back.
        Ok(queue) => queue.into_foreign().cast(),
        Err(_) => core::ptr::null_mut(),
    }
}

/// iopf_queue_free - Free IOPF queue
/// @queue: queue to free
///
/// Counterpart to iopf_queue_alloc(). The driver must not be queuing faults or adding/removing
/// devices on this queue anymore. Devices still on the queue are removed (their pending groups
/// answered), then the workqueue is drained; it is destroyed once no group that a handler still
/// holds can use it. A NULL @queue is ignored.
///
/// Context: Process context; sleeps.
///
/// # Safety
///
/// `queue` must be NULL or come from iopf_queue_alloc(); it is not used after.
#[export]
pub unsafe extern "C" fn iopf_queue_free(queue: *mut bindings::iopf_queue) {
    // Silently, as kfree(NULL): drivers free a queue they may never have allocated
    // (amd_iommu_iopf_uninit() without PPR support).
    if queue.is_null() {
        return;
    }
    // SAFETY: The caller gives back the queue that `iopf_queue_alloc()` made with `into_foreign`.
    let queue = unsafe { <Arc<Queue> as ForeignOwnable>::from_foreign(queue.cast()) };
    queue.free(|dev| {
        // SAFETY: A device on a queue is live and probed: its driver removes it from the queue
        // before releasing it.
        fault_device(unsafe { Endpoint::from_device(dev) }, "iopf_queue_free")
    });
}

/// iopf_queue_add_device - Add producer to the fault queue
/// @queue: IOPF queue
/// @dev: device to add
///
/// Context: Process context; sleeps.
/// Return: 0 on success and <0 on error: -ENODEV if the IOMMU driver has no page_response() or
/// the device no IOMMU data, -EBUSY if the device is already on a queue, -ENOMEM, -EINVAL for a
/// NULL @queue or @dev.
///
/// # Safety
///
/// `queue` must be NULL or a live queue, `dev` NULL or a live device probed by the calling IOMMU
/// driver.
#[export]
pub unsafe extern "C" fn iopf_queue_add_device(
    queue: *mut bindings::iopf_queue,
    dev: *mut bindings::device,
) -> c_int {
    non_null!(queue: queue in iopf_queue_add_device => EINVAL.to_errno());
    non_null!(dev: device in iopf_queue_add_device => EINVAL.to_errno());
    // SAFETY: The caller passes a live queue, and a live device probed by its IOMMU driver.
    let (queue, endpoint) = unsafe { (self::queue(queue), Endpoint::from_raw(dev)) };
    let Some(dev) = fault_device(endpoint, "iopf_queue_add_device") else {
        return ENODEV.to_errno();
    };
    to_c(queue.add_device(&dev))
}

/// iopf_queue_remove_device - Remove producer from fault queue
/// @queue: IOPF queue
/// @dev: device to remove
///
/// The recommended sequence: disable PRI reception in the IOMMU and flush its page request queue;
/// call this helper, which answers every outstanding request group with IOMMU_PAGE_RESP_INVALID
/// (exactly once), drops the held partial requests and unpublishes the device's fault data; then
/// disable PRI on the device. The groups stay their handlers', who free them: a handler's work
/// item that is still queued runs safely afterwards, and its own response is dropped. Groups
/// dequeued by their handler are the handler's to answer. A device that is not on @queue is left
/// alone, with a rate-limited warning.
///
/// Context: Process context; sleeps (it waits for an RCU grace period).
///
/// # Safety
///
/// `queue` must be NULL or a live queue, `dev` NULL or a live device probed by the calling IOMMU
/// driver.
#[export]
pub unsafe extern "C" fn iopf_queue_remove_device(
    queue: *mut bindings::iopf_queue,
    dev: *mut bindings::device,
) {
    non_null!(queue: queue in iopf_queue_remove_device);
    non_null!(dev: device in iopf_queue_remove_device);
    // SAFETY: The caller passes a live queue, and a live device probed by its IOMMU driver.
    let (queue, endpoint) = unsafe { (self::queue(queue), Endpoint::from_raw(dev)) };
    if let Some(dev) = fault_device(endpoint, "iopf_queue_remove_device") {
        let _ = queue.remove_device(&dev);
    }
}

/// iopf_queue_discard_partial - Remove all pending partial fault
/// @queue: the queue whose partial faults need to be discarded
///
/// When the hardware queue overflows, last page faults in a group may have been lost and the
/// IOMMU driver calls this to discard all partial faults. The driver shouldn't be adding new
/// faults to this queue concurrently.
///
/// Context: Process context; sleeps.
/// Return: 0 on success and -EINVAL for a NULL @queue.
///
/// # Safety
///
/// `queue` must be NULL or a live queue.
#[export]
pub unsafe extern "C" fn iopf_queue_discard_partial(queue: *mut bindings::iopf_queue) -> c_int {
    non_null!(queue: queue in iopf_queue_discard_partial => EINVAL.to_errno());
    // SAFETY: The caller passes a live queue.
    unsafe { self::queue(queue) }.discard_partial();
    0
}
