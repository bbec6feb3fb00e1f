// SPDX-License-Identifier: GPL-2.0

//! The IOMMU driver's `page_response` op.
//!
//! C header: [`include/linux/iommu.h`](srctree/include/linux/iommu.h)

use core::marker::PhantomData;

use crate::{
    bindings,
    device::Device,
    prelude::*, //
};

use super::{
    PageRequest,
    PageResponse,
    ResponseCode, //
};

/// An IOMMU driver's way of sending a page response to a device (`iommu_ops::page_response`).
///
/// The IOPF framework calls it exactly once for each page request group that was reported with
/// its last request: when the fault handler answered, when no handler could take the group, or
/// when the device left its queue with the group still pending. It may be called from a
/// workqueue or from the thread that reported the request, with no lock of the driver held; it
/// must not sleep for long, and must not report page requests.
///
/// # Examples
///
/// ```
/// use kernel::device::Device;
/// use kernel::iommu::fault::{page_response_op, PageRequest, PageResponder, PageResponse};
/// use kernel::prelude::*;
///
/// struct MyIommu;
///
/// impl PageResponder for MyIommu {
///     fn page_response(dev: &Device, request: &PageRequest, response: &PageResponse) {
///         // A real driver writes a command to its hardware queue here.
///         dev_dbg!(dev, "group {} answered {:?}\n", request.group, response.code);
///     }
/// }
///
/// // The value for `struct iommu_ops`'s `page_response` field.
/// let op = page_response_op::<MyIommu>();
/// assert!(op.is_some());
/// ```
pub trait PageResponder {
    /// Sends `response` to `dev`; `request` is the last request of the group being answered.
    fn page_response(dev: &Device, request: &PageRequest, response: &PageResponse);
}

/// The C `page_response` op that calls `T::page_response`.
///
/// Responses with a code that [`ResponseCode`] does not know are dropped with a warning: the C
/// framework never sends them.
pub const fn page_response_op<T: PageResponder>() -> Option<
    unsafe extern "C" fn(
        *mut bindings::device,
        *mut bindings::iopf_fault,
        *mut bindings::iommu_page_response,
    ),
> {
    Some(Adapter::<T>::page_response)
}

struct Adapter<T>(PhantomData<T>);

impl<T: PageResponder> Adapter<T> {
    /// # Safety
    ///
    /// `dev` is a valid device, `evt` the valid last fault of the group being answered and `msg`
    /// a valid response, all for the duration of the call: the IOMMU core's contract for
    /// `iommu_ops::page_response`.
    unsafe extern "C" fn page_response(
        dev: *mut bindings::device,
        evt: *mut bindings::iopf_fault,
        msg: *mut bindings::iommu_page_response,
    ) {
        // SAFETY: By the function's safety requirements, `dev` is valid for the call.
        let dev: &Device = unsafe { Device::from_raw(dev) };
        // SAFETY: By the function's safety requirements, `evt` and `msg` are valid for the call;
        // they are only read.
        let (prm, msg) = unsafe { (&(*evt).fault.prm, &*msg) };
        let Some(code) = ResponseCode::from_raw(msg.code) else {
            dev_warn!(dev, "page response with unknown code {}\n", msg.code);
            return;
        };
        let response = PageResponse {
            pasid: msg.pasid,
            group: msg.grpid,
            code,
        };
        T::page_response(dev, &PageRequest::from_raw(prm), &response);
    }
}
