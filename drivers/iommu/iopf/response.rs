// SPDX-License-Identifier: GPL-2.0

//! The response path: what a handler does with a group it owns.

use kernel::{bindings, prelude::*};

use crate::{device::warn_ratelimited, fault_param::FaultParam, group::Group};

/// Answers the group (`iopf_group_response()`).
pub(crate) fn respond(group: &Group, code: bindings::iommu_page_response_code) {
    group.respond(code);
}

/// Takes the group off its device's pending list (`iopf_group_dequeue()`).
pub(crate) fn dequeue(group: &Group) {
    group.dequeue();
}

/// Frees the group (`iopf_free_group()`), its partial requests and its
/// reference to the fault data. A group that was never answered is answered
/// INVALID first.
pub(crate) fn free(group: KBox<Group>) {
    drop(group);
}

/// Defers handling to the group's queue (`iopf_queue_work()`).
pub(crate) fn queue_work(group: &Group, func: bindings::work_func_t) -> Result {
    group.queue_work(func)
}

/// Waits for the work queued on the device's queue (`iopf_queue_flush_dev()`).
pub(crate) fn flush_dev(dev: &crate::device::Device) -> Result {
    let Some(param) = FaultParam::get(dev) else {
        warn_ratelimited!(dev, "iopf: flushing a device that is on no queue\n");
        return Err(ENODEV);
    };
    param.queue().flush();
    Ok(())
}
