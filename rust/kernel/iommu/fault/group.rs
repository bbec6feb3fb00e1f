// SPDX-License-Identifier: GPL-2.0

//! Page request groups, and the fault handlers that receive them.
//!
//! C header: [`include/linux/iommu.h`](srctree/include/linux/iommu.h)

use core::{
    marker::PhantomData,
    mem::ManuallyDrop,
    ops::Deref,
    ptr::NonNull, //
};

use crate::{
    bindings,
    prelude::*,
    types::Opaque, //
};

use super::{
    Domain,
    Fault,
    PageRequest,
    ResponseCode, //
};

/// A complete page request group (`struct iopf_group`), as fault handlers see it.
///
/// This is the view that the IOPF framework, the fault handlers written in Rust and the SVA
/// handler share: a group owned by someone else, borrowed. Who owns it decides what else can be
/// done with it: [`Incoming`] and [`Group`] for a fault handler, [`super::NewGroup`] for the
/// framework.
///
/// # Invariants
///
/// The group was completed by the IOPF framework: `last_fault` holds its last request, `faults`
/// lists its [`Fault`]s in the order they were reported (the last one last), `fault_count`
/// counts them and `attach_handle` is the handle of the domain it was reported for. None of these
/// change while the group is borrowed.
#[repr(transparent)]
pub struct IopfGroup(Opaque<bindings::iopf_group>);

// SAFETY: `&IopfGroup` only reads members that do not change while it is borrowed.
unsafe impl Sync for IopfGroup {}

impl IopfGroup {
    /// Views the group at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a group completed by the IOPF framework that stays live for `'a`.
    #[inline]
    pub unsafe fn from_raw<'a>(ptr: *mut bindings::iopf_group) -> &'a Self {
        // CAST: `IopfGroup` is `repr(transparent)` over `Opaque<iopf_group>`.
        // SAFETY: Guaranteed by the caller.
        unsafe { &*ptr.cast::<Self>() }
    }

    /// The C `struct iopf_group`.
    #[inline]
    pub fn as_raw(&self) -> *mut bindings::iopf_group {
        self.0.get()
    }

    /// The last request of the group, whose arrival completed it.
    #[inline]
    pub fn last(&self) -> &Fault {
        // SAFETY: By the type invariant `last_fault` is initialised and does not change while
        // `self` is borrowed.
        unsafe { Fault::from_raw(&raw const (*self.as_raw()).last_fault) }
    }

    /// The number of requests in the group, the last one included.
    #[inline]
    pub fn len(&self) -> usize {
        // SAFETY: By the type invariant `fault_count` is initialised and does not change.
        unsafe { (*self.as_raw()).fault_count }
    }

    /// Whether the group has no request; never true for a group of the framework.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The requests of the group, in the order they were reported: the last one last.
    pub fn faults(&self) -> Faults<'_> {
        // SAFETY: Only computes the address of a member.
        let head = unsafe { &raw mut (*self.as_raw()).faults };
        // INVARIANT: `faults` is a valid list (type invariant), `next` its first node.
        Faults {
            head,
            // SAFETY: `head` is a valid list head.
            next: unsafe { (*head).next },
            _group: PhantomData,
        }
    }

    /// The requests of the group as typed values, in the order they were reported.
    pub fn requests(&self) -> impl Iterator<Item = PageRequest> + '_ {
        self.faults().map(Fault::request)
    }

    /// The domain the group was reported for.
    ///
    /// Only for the handlers that may rely on the domain staying attached: see [`Incoming`].
    fn domain(&self) -> &Domain {
        // SAFETY: By the type invariant `attach_handle` is the handle of the domain the group was
        // reported for; the callers (`Incoming` and the work of a fault queue) borrow it only
        // while the domain is attached.
        unsafe { Domain::from_raw((*(*self.as_raw()).attach_handle).domain) }
    }
}

/// The requests of an [`IopfGroup`]; see [`IopfGroup::faults`].
///
/// # Invariants
///
/// `head` is the `faults` list of a group borrowed for `'a`; `next` is `head` or one of its nodes.
pub struct Faults<'a> {
    head: *mut bindings::list_head,
    next: *mut bindings::list_head,
    _group: PhantomData<&'a IopfGroup>,
}

impl<'a> Iterator for Faults<'a> {
    type Item = &'a Fault;

    fn next(&mut self) -> Option<&'a Fault> {
        if self.next == self.head {
            return None;
        }
        // SAFETY: By the type invariant `next` is a node of the group's `faults` list, the `list`
        // node of a `Fault` that lives as long as the group is borrowed.
        let fault = unsafe { Fault::from_node(self.next).as_ref() };
        // INVARIANT: The node after a node of the list is another node or the head.
        // SAFETY: As above.
        self.next = unsafe { (*self.next).next };
        Some(fault)
    }
}

/// A group that a fault handler owns, until it answers it with [`Group::respond`].
///
/// A `Group` dropped without an answer is answered [`ResponseCode::Invalid`], so that the device
/// never waits for ever. The framework no longer answers it when the device leaves its fault
/// queue: it is the handler's ([`Handler`] took it off the device's pending groups).
///
/// # Invariants
///
/// `ptr` is a group that the IOPF framework handed to an `iopf_handler` that accepted it and took
/// it off the pending list (`iopf_group_dequeue()`), not answered nor freed yet: `self` owns it.
pub struct Group {
    ptr: NonNull<bindings::iopf_group>,
}

// SAFETY: A group may be answered and freed from any thread; the framework locks what it changes.
unsafe impl Send for Group {}

// SAFETY: `&Group` only gives `&IopfGroup`, which is `Sync`.
unsafe impl Sync for Group {}

impl Group {
    /// Answers the group with `code` (`iopf_group_response()`) and frees it (`iopf_free_group()`).
    pub fn respond(self, code: ResponseCode) {
        let ptr = ManuallyDrop::new(self).ptr.as_ptr();
        // SAFETY: By the type invariant `ptr` is a live group that we own; `self` is not dropped,
        // so the group is answered and freed once, and not used afterwards.
        unsafe {
            bindings::iopf_group_response(ptr, code.to_raw());
            bindings::iopf_free_group(ptr);
        }
    }
}

impl Deref for Group {
    type Target = IopfGroup;

    fn deref(&self) -> &IopfGroup {
        // SAFETY: By the type invariant the group is live while `self` owns it.
        unsafe { IopfGroup::from_raw(self.ptr.as_ptr()) }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: By the type invariant `self.ptr` is a live group that we own; it is answered
        // and freed once, and not used afterwards.
        unsafe {
            bindings::iopf_group_response(self.ptr.as_ptr(), ResponseCode::Invalid.to_raw());
            bindings::iopf_free_group(self.ptr.as_ptr());
        }
    }
}

/// A group being handed to [`Handler::handle`].
///
/// While the framework's call lasts, the device is on its fault queue and the group's domain is
/// attached, so the group may be deferred to the queue's workqueue ([`Incoming::queue_work`]),
/// which the IOMMU driver flushes before it detaches the domain or removes the device. Kept past
/// the call, it becomes a plain [`Group`] ([`Incoming::keep`]).
pub struct Incoming<'a> {
    group: Group,
    _call: PhantomData<fn(&'a ()) -> &'a ()>,
}

impl Incoming<'_> {
    /// The domain the group was reported for, attached while the handler runs.
    pub fn domain(&self) -> &Domain {
        self.group.domain()
    }

    /// Answers the group and frees it; see [`Group::respond`].
    pub fn respond(self, code: ResponseCode) {
        self.group.respond(code)
    }

    /// Keeps the group beyond the handler's call.
    pub fn keep(self) -> Group {
        self.group
    }

    /// Hands the group to `W::run` on the fault queue's workqueue (`iopf_queue_work()`), where it
    /// may sleep: resolve the faults, then answer.
    ///
    /// The queue's flush (`iopf_queue_flush_dev()`) waits for it. Gives the group back if it could
    /// not be queued.
    pub fn queue_work<W: GroupWork>(self) -> Result<(), Self> {
        // SAFETY: By the type invariant of `Group` the group is live and ours, and the framework's
        // call is not over, so its device is on its fault queue. `run_work::<W>` takes the group
        // from its work item.
        let ret =
            unsafe { bindings::iopf_queue_work(self.group.ptr.as_ptr(), Some(run_work::<W>)) };
        if ret != 0 {
            return Err(self);
        }
        // The work item owns the group now.
        let _ = ManuallyDrop::new(self);
        Ok(())
    }
}

impl Deref for Incoming<'_> {
    type Target = IopfGroup;

    fn deref(&self) -> &IopfGroup {
        &self.group
    }
}

/// A domain's I/O page fault handler (`iommu_domain::iopf_handler`).
///
/// The framework calls [`Handler::handle`] with each complete group for the domain, from the
/// thread that reported the group's last request (often the IOMMU driver's threaded interrupt
/// handler). It may sleep, but holds up the driver's page requests while it runs: long work goes
/// to [`Incoming::queue_work`].
///
/// # Examples
///
/// ```
/// use kernel::iommu::fault::{
///     iopf_handler, Domain, Group, GroupWork, Handler, Incoming, Permission, ResponseCode,
/// };
///
/// /// Serves reads and writes, refuses executable pages.
/// struct NoExec;
///
/// impl Handler for NoExec {
///     fn handle(group: Incoming<'_>) -> Result<(), Incoming<'_>> {
///         // Resolve the faults in process context.
///         group.queue_work::<NoExec>()
///     }
/// }
///
/// impl GroupWork for NoExec {
///     fn run(group: Group, _domain: &Domain) {
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
    fn handle(group: Incoming<'_>) -> Result<(), Incoming<'_>>;
}

/// Work on a group, run from the fault queue's workqueue; see [`Incoming::queue_work`].
pub trait GroupWork {
    /// Resolves the faults of `group` and answers it. Runs in process context; the group's
    /// `domain` stays attached until it returns.
    fn run(group: Group, domain: &Domain);
}

/// The C `iopf_handler` that calls `T::handle`.
pub const fn iopf_handler<T: Handler>(
) -> Option<unsafe extern "C" fn(*mut bindings::iopf_group) -> c_int> {
    Some(handle_group::<T>)
}

/// # Safety
///
/// As for [`handle`]: the framework calls a domain's `iopf_handler` with a complete group.
unsafe extern "C" fn handle_group<T: Handler>(group: *mut bindings::iopf_group) -> c_int {
    // SAFETY: The framework calls a domain's `iopf_handler` with a complete group.
    unsafe { handle::<T>(group) }
}

/// Calls `T::handle` with `group`: the body of an `iopf_handler` that C calls by name.
///
/// Returns 0 if the handler took the group, `-EBUSY` if it gave it back: the framework then
/// answers and frees it.
///
/// # Safety
///
/// `group` must be a complete group that the IOPF framework hands to an `iopf_handler`: it is
/// ours if we return 0, and the framework's to answer and free otherwise.
pub unsafe fn handle<T: Handler>(group: *mut bindings::iopf_group) -> c_int {
    // Off the device's pending list, so that the framework does not answer, or free, a group
    // that a Rust handler owns when the device leaves its queue.
    // SAFETY: The framework passes a valid group, ours for the duration of the call.
    unsafe { bindings::iopf_group_dequeue(group) };
    // INVARIANT: The group is ours unless it is given back, below, and dequeued.
    let group = Group {
        // SAFETY: The framework passes a valid group.
        ptr: unsafe { NonNull::new_unchecked(group) },
    };
    match T::handle(Incoming {
        group,
        _call: PhantomData,
    }) {
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
/// `work` is the `work` member of a group queued by [`Incoming::queue_work`], which passed the
/// group's ownership to this work item.
unsafe extern "C" fn run_work<W: GroupWork>(work: *mut bindings::work_struct) {
    // SAFETY: By the function's safety requirements, `work` is inside a live `struct iopf_group`.
    let raw = unsafe { crate::container_of!(work, bindings::iopf_group, work) };
    // SAFETY: The IOMMU driver flushes the fault queue before it detaches the domain, so the
    // domain stays attached while this work runs; the reference does not outlive the call.
    let domain = unsafe { Domain::from_raw((*(*raw).attach_handle).domain) };
    // SAFETY: `raw` is not null, being computed from a valid pointer.
    let ptr = unsafe { NonNull::new_unchecked(raw) };
    // INVARIANT: The work item owned the group, dequeued by `handle_group`, and hands it on.
    let group = Group { ptr };
    W::run(group, domain);
}
