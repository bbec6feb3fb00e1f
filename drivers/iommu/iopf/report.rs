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
        trace::{
            self,
            Abort, //
        },
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
    trace::report(dev.dev(), fault);
    if !fault.is_page_request() {
        warn_ratelimited!(dev.dev(), "iopf: unsupported fault type {}\n", fault.kind());
        return Err(EINVAL);
    }
    let param = FaultParam::get(dev);
    let Some(handler) = handler else {
        let Some(param) = param else {
            // A driver bug: reporting for a device it never added to a queue.
            warn_ratelimited!(dev.dev(), "iopf: page request for a device on no queue\n");
            if let Some(respond) = dev.endpoint.page_response_op() {
                respond.send(dev.dev(), fault, RESP_INVALID);
            }
            return Err(EINVAL);
        };
        // No fault-capable domain, e.g. a race with unbinding the PASID.
        warn_ratelimited!(
            dev.dev(),
            "iopf: no fault handler for pasid {} group {}, answered invalid\n",
            fault.pasid(),
            fault.grpid()
        );
        let mut faults = param.faults().lock();
        let state = faults.as_mut().state();
        state.stats.requests += 1;
        param.answer(state, fault, 0, RESP_INVALID);
        return Err(EINVAL);
    };
    let Some(param) = param else {
        // A fault-capable domain is attached, but the device is on no queue.
        warn_ratelimited!(
            dev.dev(),
            "iopf: page request for a device without fault data\n"
        );
        if let Some(respond) = dev.endpoint.page_response_op() {
            respond.send(dev.dev(), fault, RESP_INVALID);
        }
        return Err(EINVAL);
    };
    if fault.is_last() {
        complete(dev, param, fault, handler);
        Ok(())
    } else {
        hold(&param, fault)
    }
}

/// Holds a partial request, which needs no response, for its group.
fn hold(param: &FaultParam, fault: &Fault) -> Result {
    let partial = fault.to_owned(GFP_KERNEL)?;
    let mut faults = param.faults().lock();
    let state = faults.as_mut().state();
    state.stats.requests += 1;
    let held = state.partials.hold(partial);
    let count = state.partials.held();
    drop(faults);
    match held {
        Hold::Held => trace::hold(param.dev(), fault, count),
        Hold::Evicted {
            grpid,
            count: dropped,
        } => {
            trace::drop_group(param.dev(), grpid, dropped, count);
            warn_ratelimited!(
                param.dev(),
                "iopf: too many partial page requests, dropped the {} of group {}\n",
                dropped,
                grpid
            );
        }
        Hold::Dropped => trace::drop_group(param.dev(), fault.grpid(), 1, count),
    }
    Ok(())
}

/// Completes the group of the last request `fault` and hands it to its domain's handler.
fn complete(
    dev: &FaultDevice<'_>,
    param: Arc<FaultParam>,
    fault: &Fault,
    handler: FaultHandler<'_>,
) {
    let grpid = fault.grpid();
    let group = match NewGroup::new(fault, handler.handle, param, GFP_KERNEL) {
        Ok(group) => group,
        Err(param) => {
            // No memory for the group: drop its partials, and answer FAILURE.
            warn_ratelimited!(param.dev(), "iopf with pasid {} aborted\n", fault.pasid());
            let mut faults = param.faults().lock();
            let state = faults.as_mut().state();
            state.stats.requests += 1;
            state.stats.alloc_failures += 1;
            let _ = state.partials.take(grpid);
            trace::abort(param.dev(), fault, Abort::NoMemory);
            param.answer(state, fault, 0, RESP_FAILURE);
            return;
        }
    };
    let group = group.enqueue(|state| {
        state.stats.requests += 1;
        let partials = state.partials.take(grpid);
        partials.map(|partials| (partials, state.stats.new_group()))
    });
    let group = match group {
        Ok(group) => group,
        Err((group, _)) => {
            // The group lost requests to the bound: no handler sees an incomplete group.
            let param = group.owner();
            warn_ratelimited!(
                param.dev(),
                "iopf: group {} lost requests to the bound, answered invalid\n",
                grpid
            );
            trace::abort(param.dev(), fault, Abort::Incomplete);
            let mut faults = param.faults().lock();
            param.answer(faults.as_mut().state(), group.last(), 0, RESP_INVALID);
            return;
        }
    };
    // After a successful hand-off the group may be gone: its handler owns it.
    let faults = group.len();
    match group.hand_to(handler.handler) {
        Ok(()) => trace::handle(dev.dev(), fault, faults, 0),
        Err((group, ret)) => {
            // The handler gave the group back: answered, then freed when it is dropped.
            trace::handle(dev.dev(), fault, faults, ret);
            warn_ratelimited!(dev.dev(), "iopf with pasid {} aborted\n", fault.pasid());
            let group = group.handed();
            group
                .owner()
                .faults()
                .lock()
                .as_mut()
                .state()
                .stats
                .handler_failures += 1;
            trace::abort(dev.dev(), fault, Abort::Handler);
            let _ = group.respond(RESP_FAILURE);
        }
    }
}
