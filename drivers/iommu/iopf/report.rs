// SPDX-License-Identifier: GPL-2.0

//! The path of a page request: `iommu_report_device_fault()`.
//!
//! A partial request is held until its group's last request; the last request completes the group
//! and hands it to the domain's handler. Every last request gets exactly one response: from the
//! handler, or from here when there is no handler, no fault data, no memory, a handler error, or
//! when the group lost requests to the bound on held partials.

use kernel::{
    alloc::AllocError,
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
    sync::{
        rcu,
        Arc, //
    },
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
    let Some(handler) = handler else {
        let Some(param) = FaultParam::get(dev) else {
            // A driver bug: reporting for a device it never added to a queue.
            warn_ratelimited!(dev.dev(), "iopf: page request for a device on no queue\n");
            return refuse(dev, fault);
        };
        // No fault-capable domain, e.g. a race with unbinding the PASID.
        warn_ratelimited!(
            dev.dev(),
            "iopf: no fault handler for pasid {} group {}, answered invalid\n",
            fault.pasid(),
            fault.grpid()
        );
        let mut faults = param.faults().lock();
        let stats = faults.as_mut().state();
        stats.requests += 1;
        param.answer(stats, fault, 0, RESP_INVALID);
        return Err(EINVAL);
    };
    if !fault.is_last() {
        return hold(dev, fault);
    }
    let Some(param) = FaultParam::get(dev) else {
        return without_fault_data(dev, fault);
    };
    complete(dev, param, fault, handler);
    Ok(())
}

/// Answers `fault` from a device that has a fault-capable domain but no fault data.
fn without_fault_data(dev: &FaultDevice<'_>, fault: &Fault) -> Result {
    warn_ratelimited!(
        dev.dev(),
        "iopf: page request for a device without fault data\n"
    );
    refuse(dev, fault)
}

/// Answers `fault` `IOMMU_PAGE_RESP_INVALID` through the driver, with no fault data to count it.
fn refuse(dev: &FaultDevice<'_>, fault: &Fault) -> Result {
    if let Some(respond) = dev.endpoint.page_response_op() {
        respond.send(dev.dev(), fault, RESP_INVALID);
    }
    Err(EINVAL)
}

/// Holds a partial request, which needs no response, for its group.
///
/// The fault data is used under RCU, without a reference: the partials' lock does not sleep. So
/// the store allocates its copy of the request without reclaim; only if that fails is the copy
/// allocated with reclaim, here, and offered again.
fn hold(dev: &FaultDevice<'_>, fault: &Fault) -> Result {
    let mut owned = None;
    let (held, count) = loop {
        let guard = rcu::read_lock();
        let Some(param) = dev.published.dereference(&guard) else {
            drop(guard);
            return without_fault_data(dev, fault);
        };
        let held = param.with_partials(|partials| {
            let held = match owned.take() {
                Some(owned) => Ok(partials.hold_owned(owned)),
                None => partials.hold(fault),
            };
            held.map(|held| (held, partials.held()))
        });
        drop(guard);
        match held {
            Ok(held) => break held,
            // At most once: `hold_owned()` cannot fail.
            Err(AllocError) => owned = Some(fault.to_owned(GFP_KERNEL)?),
        }
    };
    match held {
        Hold::Held => trace::hold(dev.dev(), fault, count),
        Hold::Evicted {
            grpid,
            count: dropped,
            first,
        } => {
            trace::drop_group(dev.dev(), grpid, dropped, count);
            // One warning per flood; each drop is traced.
            if first {
                warn_ratelimited!(
                    dev.dev(),
                    "iopf: too many partial page requests, dropping the oldest groups\n"
                );
            }
        }
        Hold::Dropped => trace::drop_group(dev.dev(), fault.grpid(), 1, count),
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
    let Ok(partials) = param.take_partials(fault.grpid()) else {
        // The group lost requests to the bound: no handler sees an incomplete group.
        warn_ratelimited!(
            param.dev(),
            "iopf: group {} lost requests to the bound, answered invalid\n",
            fault.grpid()
        );
        trace::abort(param.dev(), fault, Abort::Incomplete);
        let mut faults = param.faults().lock();
        let stats = faults.as_mut().state();
        stats.requests += 1;
        param.answer(stats, fault, 0, RESP_INVALID);
        return;
    };
    let group = match NewGroup::new(fault, handler.handle, param, GFP_KERNEL) {
        Ok(group) => group,
        Err(param) => {
            // No memory for the group: its partials are dropped, and it is answered FAILURE.
            drop(partials);
            warn_ratelimited!(param.dev(), "iopf with pasid {} aborted\n", fault.pasid());
            let mut faults = param.faults().lock();
            let stats = faults.as_mut().state();
            stats.requests += 1;
            stats.alloc_failures += 1;
            trace::abort(param.dev(), fault, Abort::NoMemory);
            param.answer(stats, fault, 0, RESP_FAILURE);
            return;
        }
    };
    let group = group.enqueue(partials, |stats| {
        stats.requests += 1;
        stats.new_group()
    });
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
                .handler_failures += 1;
            trace::abort(dev.dev(), fault, Abort::Handler);
            let _ = group.respond(RESP_FAILURE);
        }
    }
}
