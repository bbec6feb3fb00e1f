// SPDX-License-Identifier: GPL-2.0

//! The report path: `iommu_report_device_fault()`.

use kernel::{bindings, error::from_err_ptr, prelude::*};

use crate::{
    device::{warn_ratelimited, Device},
    fault::Fault,
    fault_param::FaultParam,
    ffi,
    group::Group,
};

const RESP_INVALID: u32 = bindings::iommu_page_response_code_IOMMU_PAGE_RESP_INVALID;
const RESP_FAILURE: u32 = bindings::iommu_page_response_code_IOMMU_PAGE_RESP_FAILURE;

/// The attach handle whose domain handles `fault`, and its handler.
///
/// With a PASID, the handle attached to that PASID; failing that, if the
/// driver lets user space manage the PASID table, the nested domain on the
/// RID. Without a PASID, the RID's handle. A domain without `iopf_handler`
/// counts as no handler.
fn find_handler(
    dev: &Device,
    fault: &Fault,
) -> Option<(
    *mut bindings::iommu_attach_handle,
    unsafe extern "C" fn(*mut bindings::iopf_group) -> c_int,
)> {
    let group = dev.iommu_group();
    let lookup =
        |pasid: u32, kind: u32| from_err_ptr(ffi::attach_handle_get(group, pasid, kind)).ok();
    let handle = if fault.pasid_valid() {
        lookup(fault.pasid(), 0).or_else(|| {
            dev.ops()
                .filter(|ops| ops.user_pasid_table() != 0)
                .and_then(|_| lookup(bindings::IOMMU_NO_PASID, bindings::IOMMU_DOMAIN_NESTED))
        })?
    } else {
        lookup(bindings::IOMMU_NO_PASID, 0)?
    };
    // SAFETY: An attach handle and its domain live while they are attached,
    // and the IOMMU driver reports faults only for attached domains.
    let handler = unsafe { (*(*handle).domain).iopf_handler }?;
    Some((handle, handler))
}

/// Answers a page request that cannot be handled with INVALID, and fails.
fn reject(dev: &Device, evt: *mut bindings::iopf_fault) -> Result {
    dev.page_response(evt, RESP_INVALID);
    Err(EINVAL)
}

/// Reports a fault (`iommu_report_device_fault()`).
///
/// A partial request is held until its group's last request; the last
/// request completes the group and hands it to the domain's handler. Every
/// last request gets exactly one response: from the handler, or from here
/// when there is no handler, no fault data, no memory or a handler error.
pub(crate) fn report(dev: &Device, evt: *mut bindings::iopf_fault) -> Result {
    // SAFETY: The caller passes a live fault, read only during the call.
    let fault = Fault::from_c(unsafe { &*evt });
    if !fault.is_page_request() {
        warn_ratelimited!(
            dev,
            "iopf: unsupported fault type {}\n",
            fault.0.fault.type_
        );
        return Err(EINVAL);
    }
    let Some((handle, handler)) = find_handler(dev, fault) else {
        if FaultParam::get(dev).is_none() {
            // A driver bug: reporting for a device it never added to a queue.
            warn_ratelimited!(dev, "iopf: page request for a device on no queue\n");
        } else {
            // No fault-capable domain, e.g. a race with unbinding the PASID.
            warn_ratelimited!(
                dev,
                "iopf: no fault handler for pasid {} group {}, answered invalid\n",
                fault.pasid(),
                fault.grpid()
            );
        }
        return reject(dev, evt);
    };
    let Some(param) = FaultParam::get(dev) else {
        // A fault-capable domain is attached, but the device is on no queue.
        warn_ratelimited!(dev, "iopf: page request for a device without fault data\n");
        return reject(dev, evt);
    };

    if !fault.is_last() {
        // A partial request needs no response; a full store drops its oldest group.
        let partial = Fault::boxed(&fault.0)?;
        let evicted = param.partials(|held| held.hold(partial))?;
        if let Some(evicted) = evicted {
            warn_ratelimited!(
                dev,
                "iopf: too many partial page requests, dropped the {} of group {}\n",
                evicted.count,
                evicted.grpid
            );
        }
        return Ok(());
    }

    let group = match Group::new(param, &fault.0) {
        Ok(group) => group,
        Err(param) => {
            // No memory for the group: answer FAILURE and drop its partials.
            warn_ratelimited!(dev, "iopf with pasid {} aborted\n", fault.pasid());
            // Responses are sent under the fault lock, like every other.
            param.partials(|held| {
                held.discard(fault.grpid());
                dev.page_response(evt, RESP_FAILURE);
            });
            return Ok(());
        }
    };
    // The group now holds the reference to the fault data that `get` took.
    group.assemble(handle);
    if let Err(group) = Group::handle(group, handler) {
        warn_ratelimited!(dev, "iopf with pasid {} aborted\n", fault.pasid());
        group.respond(RESP_FAILURE);
    }
    Ok(())
}
