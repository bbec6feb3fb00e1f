// SPDX-License-Identifier: GPL-2.0

//! Page request groups, as a domain's fault handler receives them.
//!
//! C header: [`include/linux/iommu.h`](srctree/include/linux/iommu.h)

use core::{
    marker::PhantomData,
    mem::ManuallyDrop,
    ptr::NonNull, //
};

use crate::{
    bindings,
    prelude::*, //
};

use super::{
    PageRequest,
    ResponseCode, //
};

/// A complete page request group, handed to a domain's fault handler (`struct iopf_group`).
///
/// The group holds the requests of one page request group, its last request among them. Whoever
/// holds the `Group` owns it, until it answers the group with [`Group::respond`], which sends the
/// page response through the IOMMU driver and frees the group. A `Group` dropped without an
/// answer is answered [`ResponseCode::Invalid`], so that the device never waits for ever.
///
/// The device's IOMMU driver must not remove the device from its fault queue while a `Group` of
/// it is held outside the queue's workqueue: see [`super::QueueDevice`].
///
/// # Invariants
///
/// `ptr` is a group that the IOPF framework handed to an `iopf_handler` that accepted it, not
/// answered nor freed yet: `self` owns it.
pub struct Group {
    ptr: NonNull<bindings::iopf_group>,
}

// SAFETY: A group may be answered and freed from any thread; the framework locks what it changes.
unsafe impl Send for Group {}

impl Group {
    /// The number of requests in the group.
    pub fn len(&self) -> usize {
        // SAFETY: By the type invariant, `self.ptr` is a live group, whose count does not change.
        unsafe { (*self.ptr.as_ptr()).fault_count }
    }

    /// Whether the group has no request; never true for a group from the framework.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The last request of the group: the one whose arrival completed it.
    pub fn last(&self) -> PageRequest {
        // SAFETY: By the type invariant, `self.ptr` is a live group; `last_fault` is not changed
        // while the group is owned.
        PageRequest::from_raw(unsafe { &(*self.ptr.as_ptr()).last_fault.fault.prm })
    }

    /// The requests of the group, the last one among them, in no particular order.
    pub fn requests(&self) -> Requests<'_> {
        // SAFETY: By the type invariant, `self.ptr` is a live group; its list is not changed
        // while the group is owned.
        let head = unsafe { &raw mut (*self.ptr.as_ptr()).faults };
        // SAFETY: `head` is an initialised list head.
        let next = unsafe { (*head).next };
        Requests {
            head,
            next,
            _group: PhantomData,
        }
    }

    /// Answers the group with `code` (`iopf_group_response()`) and frees it
    /// (`iopf_free_group()`).
    pub fn respond(self, code: ResponseCode) {
        let ptr = ManuallyDrop::new(self).ptr.as_ptr();
        // SAFETY: By the type invariant, `ptr` is a live group that we own; `self` is not dropped,
        // so the group is answered and freed once, and not used after.
        unsafe {
            bindings::iopf_group_response(ptr, code.to_raw());
            bindings::iopf_free_group(ptr);
        }
    }

    /// Hands the group to `W::run` on the fault queue's workqueue (`iopf_queue_work()`), where it
    /// may sleep: resolve the fault, then answer.
    ///
    /// The queue's flush (`iopf_queue_flush_dev()`, [`super::QueueDevice::flush`]) waits for it.
    /// Gives the group back if it could not be queued.
    pub fn queue_work<W: GroupWork>(self) -> Result<(), Self> {
        // SAFETY: By the type invariant, `self.ptr` is a live group that we own; its work item is
        // not queued, since only `queue_work` queues it and `W::run` is given the group after the
        // work started running.
        let ret = unsafe { bindings::iopf_queue_work(self.ptr.as_ptr(), Some(run_work::<W>)) };
        if ret != 0 {
            return Err(self);
        }
        // The work item owns the group now.
        let _ = ManuallyDrop::new(self);
        Ok(())
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: By the type invariant, `self.ptr` is a live group that we own; it is answered
        // and freed once, and not used after.
        unsafe {
            bindings::iopf_group_response(self.ptr.as_ptr(), ResponseCode::Invalid.to_raw());
            bindings::iopf_free_group(self.ptr.as_ptr());
        }
    }
}

/// The requests of a [`Group`]; see [`Group::requests`].
pub struct Requests<'a> {
    head: *mut bindings::list_head,
    next: *mut bindings::list_head,
    _group: PhantomData<&'a Group>,
}

impl Iterator for Requests<'_> {
    type Item = PageRequest;

    fn next(&mut self) -> Option<PageRequest> {
        if self.next == self.head {
            return None;
        }
        // SAFETY: `self.next` is a node of the group's `faults` list, which holds the `list`
        // member of `struct iopf_fault`s; the group is borrowed, so the list is live and stable.
        let fault = unsafe { crate::container_of!(self.next, bindings::iopf_fault, list) };
        // SAFETY: As above, `fault` and its node are live.
        let (request, next) = unsafe {
            (
                PageRequest::from_raw(&(*fault).fault.prm),
                (*self.next).next,
            )
        };
        self.next = next;
        Some(request)
    }
}

/// A domain's I/O page fault handler (`iommu_domain::iopf_handler`).
///
/// The framework calls [`Handler::handle`] with each complete group for the domain, from the
/// thread that reported the group's last request (often the IOMMU driver's threaded interrupt
/// handler). It may sleep, but holds up the driver's page requests while it runs: long work goes
/// to [`Group::queue_work`].
///
/// # Examples
///
/// ```
/// use kernel::iommu::fault::{iopf_handler, Group, GroupWork, Handler, Permission, ResponseCode};
///
/// /// Serves reads and writes, refuses executable pages.
/// struct NoExec;
///
/// impl Handler for NoExec {
///     fn handle(group: Group) -> Result<(), Group> {
///         // Resolve the faults in process context.
///         group.queue_work::<NoExec>()
///     }
/// }
///
/// impl GroupWork for NoExec {
///     fn run(group: Group) {
///         let code = if group.requests().any(|r| r.perm.contains(Permission::Exec)) {
///             ResponseCode::Invalid
///         } else {
///             // A real handler maps the pages here.
///             ResponseCode::Success
///         };
///         group.respond(code);
///     }
/// }
///
/// // The value for `struct iommu_domain`'s `iopf_handler` field.
/// assert!(iopf_handler::<NoExec>().is_some());
/// ```
pub trait Handler {
    /// Takes charge of `group`, which will be answered by whoever ends up owning it.
    ///
    /// `Err(group)` gives the group back: the framework answers it [`ResponseCode::Failure`].
    fn handle(group: Group) -> Result<(), Group>;
}

/// Work on a [`Group`], run from the fault queue's workqueue; see [`Group::queue_work`].
pub trait GroupWork {
    /// Resolves the faults of `group` and answers it. Runs in process context.
    fn run(group: Group);
}

/// The C `iopf_handler` that calls `T::handle`.
pub const fn iopf_handler<T: Handler>(
) -> Option<unsafe extern "C" fn(*mut bindings::iopf_group) -> c_int> {
    Some(handle_group::<T>)
}

/// # Safety
///
/// `group` is a complete group, handed over by the IOPF framework: it is ours if we return 0, and
/// the framework's to answer and free otherwise.
unsafe extern "C" fn handle_group<T: Handler>(group: *mut bindings::iopf_group) -> c_int {
    // SAFETY: The framework passes a valid group.
    let ptr = unsafe { NonNull::new_unchecked(group) };
    // INVARIANT: The group is ours unless it is given back, below.
    match T::handle(Group { ptr }) {
        Ok(()) => 0,
        Err(group) => {
            // Returning an error gives the group back to the framework, which answers and frees
            // it: `group` must not.
            let _ = ManuallyDrop::new(group);
            EBUSY.to_errno()
        }
    }
}

/// # Safety
///
/// `work` is the `work` member of a group queued by [`Group::queue_work`], which passed the
/// group's ownership to this work item.
unsafe extern "C" fn run_work<W: GroupWork>(work: *mut bindings::work_struct) {
    // SAFETY: By the function's safety requirements, `work` is inside a live `struct iopf_group`.
    let group = unsafe { crate::container_of!(work, bindings::iopf_group, work) };
    // SAFETY: `group` is not NULL, being computed from a valid pointer.
    let ptr = unsafe { NonNull::new_unchecked(group) };
    // INVARIANT: The work item owned the group, and hands it to `W::run`.
    W::run(Group { ptr });
}
