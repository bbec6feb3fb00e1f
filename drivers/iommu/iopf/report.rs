// SPDX-License-Identifier: GPL-2.0

//! The path of a page request: `iommu_report_device_fault()`.
//!
//! A partial request is held until its group's last request; the last request completes the group
//! and hands it to the domain's handler. Every last request gets exactly one response: from the
//! handler, or from here when there is no handler, no fault data, no memory, a handler error, or
//! when the group lost requests to the bound on held partials.

use kernel::{
    bindings,
    iommu::fault::{
        Fault,
        FaultHandler,
        FaultOwner,
        NewGroup, //
    },
    prelude::*,
    sync::Arc,
};

use crate::{
    fault_param::{
        warn_ratelimited,
        FaultDevice,
        FaultParam, //
    },
    partial::Hold,
};

const RESP_INVALID: u32 = bindings::iommu_page_response_code_IOMMU_PAGE_RESP_INVALID;
const RESP_FAILURE: u32 = bindings::iommu_page_response_code_IOMMU_PAGE_RESP_FAILURE;

/// Reports `fault` from `dev`, whose domain with a fault handler, if any, is `handler`.
pub(crate) fn report(
    dev: &FaultDevice<'_>,
    fault: &Fault,
    handler: Option<FaultHandler<'_>>,
) -> Result {
    if !fault.is_page_request() {
        warn_ratelimited!(dev.dev(), "iopf: unsupported fault type {}\n", fault.kind());
        return Err(EINVAL);
    }
    let Some(handler) = handler else {
        if FaultParam::get(dev).is_none() {
            // A driver bug: reporting for a device it never added to a queue.
            warn_ratelimited!(dev.dev(), "iopf: page request for a device on no queue\n");
        } else {
            // No fault-capable domain, e.g. a race with unbinding the PASID.
            warn_ratelimited!(
                dev.dev(),
                "iopf: no fault handler for pasid {} group {}, answered invalid\n",
                fault.pasid(),
                fault.grpid()
            );
        }
        return reject(dev, fault);
    };
    let Some(param) = FaultParam::get(dev) else {
        // A fault-capable domain is attached, but the device is on no queue.
        warn_ratelimited!(
            dev.dev(),
            "iopf: page request for a device without fault data\n"
        );
        return reject(dev, fault);
    };
    if fault.is_last() {
        complete(param, fault, handler);
        Ok(())
    } else {
        hold(&param, fault)
    }
}

/// Answers a page request that no handler can take `IOMMU_PAGE_RESP_INVALID`, and fails.
fn reject(dev: &FaultDevice<'_>, fault: &Fault) -> Result {
    if let Some(respond) = dev.endpoint.page_response_op() {
        respond.send(dev.dev(), fault, RESP_INVALID);
    }
    Err(EINVAL)
}

/// Holds a partial request, which needs no response, for its group.
fn hold(param: &FaultParam, fault: &Fault) -> Result {
    let partial = fault.to_owned(GFP_KERNEL)?;
    let held = param.faults().lock().as_mut().state().hold(partial);
    if let Hold::Evicted { grpid, count } = held {
        warn_ratelimited!(
            param.dev(),
            "iopf: too many partial page requests, dropped the {} of group {}\n",
            count,
            grpid
        );
    }
    Ok(())
}

/// Completes the group of the last request `fault` and hands it to its domain's handler.
fn complete(param: Arc<FaultParam>, fault: &Fault, handler: FaultHandler<'_>) {
    let grpid = fault.grpid();
    let group = match NewGroup::new(fault, handler.handle, param, GFP_KERNEL) {
        Ok(group) => group,
        Err(param) => {
            // No memory for the group: drop its partials, and answer FAILURE.
            warn_ratelimited!(param.dev(), "iopf with pasid {} aborted\n", fault.pasid());
            let mut faults = param.faults().lock();
            let _ = faults.as_mut().state().take(grpid);
            param.page_response(fault, RESP_FAILURE);
            return;
        }
    };
    let group = match group.enqueue(|partials| partials.take(grpid)) {
        Ok(group) => group,
        Err((group, _)) => {
            // The group lost requests to the bound: no handler sees an incomplete group.
            let param = group.owner();
            warn_ratelimited!(
                param.dev(),
                "iopf: group {} lost requests to the bound, answered invalid\n",
                grpid
            );
            let _faults = param.faults().lock();
            param.page_response(group.last(), RESP_INVALID);
            return;
        }
    };
    if let Err(group) = group.hand_to(handler.handler) {
        // The handler gave the group back: answered, then freed when it is dropped.
        let group = group.handed();
        let dev = group.owner().dev();
        warn_ratelimited!(dev, "iopf with pasid {} aborted\n", fault.pasid());
        let _ = group.respond(RESP_FAILURE);
    }
}
