// SPDX-License-Identifier: GPL-2.0

//! The IOPF framework's side of a group's life: building it, handing it to a fault handler, and
//! keeping it on its device's pending list until it is answered.
//!
//! C header: [`include/linux/iommu.h`](srctree/include/linux/iommu.h)
//!
//! This is for the implementation of the IOPF framework itself (the `iommu_report_device_fault()`
//! family of `<linux/iommu.h>`), not for IOMMU drivers or fault handlers. The framework keeps
//! some data per device, a [`FaultOwner`], whose lock (the device's *fault lock*) protects a
//! [`DeviceFaults`]: the groups handed to handlers and not answered yet, and the framework's own
//! state, such as the requests held for incomplete groups.
//!
//! A group's life:
//!
//! 1. [`NewGroup::new`] allocates it for the last request of a group, with a reference to its
//!    device's data. It is the framework's alone.
//! 2. [`NewGroup::enqueue`], under the fault lock, completes it with the requests held for it and
//!    puts it on the device's pending list.
//! 3. [`Owned::hand_to`] calls the domain's fault handler, which owns the group if it accepts it.
//!    From then on C calls the framework with the group's pointer: [`Handed`] answers
//!    (`iopf_group_response()`), dequeues (`iopf_group_dequeue()`) or defers it
//!    (`iopf_queue_work()`), and [`Owned`] frees it (`iopf_free_group()`).
//! 4. Removing the device from its queue answers the groups still pending
//!    ([`DeviceFaults::answer_pending`]) but does not free them: they stay their handlers', who
//!    free them when they are done, whether their work item has run yet or not.
//!
//! Every group is answered exactly once: by its handler, by the removal of its device, or, when it
//! is freed unanswered, [`Owned`] answers it `IOMMU_PAGE_RESP_INVALID`. Answers are sent under the
//! fault lock, through [`FaultOwner::page_response`].

use core::{
    cell::UnsafeCell,
    mem::ManuallyDrop,
    ops::Deref,
    pin::Pin,
    ptr::NonNull, //
};

use crate::{
    alloc::Flags,
    bindings,
    prelude::*,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
        Mutex, //
    },
    types::Opaque,
    workqueue::Queue, //
};

use super::{
    AttachHandle,
    Fault,
    FaultChain,
    IopfGroup,
    IopfHandler, //
};

const RESP_INVALID: u32 = bindings::iommu_page_response_code_IOMMU_PAGE_RESP_INVALID;

/// The IOPF framework's data for one device, to which the device's groups keep a reference.
pub trait FaultOwner: Send + Sync + Sized + 'static {
    /// What the device's fault lock protects besides the pending groups.
    type State: Send;

    /// The device's fault lock.
    fn faults(&self) -> &Mutex<DeviceFaults<Self>>;

    /// Sends the page response `code` for the group whose last request is `last`.
    ///
    /// Called with the fault lock held, once for each group.
    fn page_response(&self, last: &Fault, code: u32);
}

/// What a device's fault lock protects: the groups handed to handlers and not answered yet, and
/// the framework's own state.
///
/// # Invariants
///
/// `pending` heads a C list of the groups of `D` linked through their `pending_node`: every group
/// on it is live, has its `linked` state set, and belongs to the device whose lock protects this.
#[pin_data]
pub struct DeviceFaults<D: FaultOwner> {
    #[pin]
    pending: Opaque<bindings::list_head>,
    state: D::State,
}

// SAFETY: The groups on the list may be answered from any thread: the list is only changed with
// the lock held, and `D::State` is `Send`.
unsafe impl<D: FaultOwner> Send for DeviceFaults<D> {}

impl<D: FaultOwner> DeviceFaults<D> {
    /// No pending group, and `state`.
    pub fn new(state: D::State) -> impl PinInit<Self> {
        pin_init!(Self {
            // INVARIANT: An empty list: the head links to itself.
            pending <- Opaque::ffi_init(|head: *mut bindings::list_head| {
                // SAFETY: `head` is valid for writes and pinned.
                unsafe {
                    (*head).next = head;
                    (*head).prev = head;
                }
            }),
            state,
        })
    }

    /// The framework's own state.
    pub fn state(self: Pin<&mut Self>) -> &mut D::State {
        self.project().state
    }

    fn head(&self) -> *mut bindings::list_head {
        self.pending.get()
    }

    /// Whether some group is pending.
    pub fn has_pending(&self) -> bool {
        let head = self.head();
        // SAFETY: By the type invariant `head` is a valid list head, changed only through
        // `&mut self`.
        unsafe { (*head).next != head }
    }

    /// Answers the oldest pending group with `code` through `send`, and takes it off the list.
    ///
    /// The group stays its handler's, to free; its handler's answer, if it comes, is dropped.
    /// Returns whether there was a pending group.
    pub fn answer_oldest(self: Pin<&mut Self>, code: u32, send: impl FnOnce(&Fault, u32)) -> bool {
        let head = self.head();
        // SAFETY: `head` is a valid list head, which we may change: we have `&mut self`.
        let node = unsafe { (*head).next };
        if node == head {
            return false;
        }
        // SAFETY: By the type invariant a node of the list is the `pending_node` of a live group
        // of `D`, whose state the fault lock that we hold protects.
        let group = unsafe { Alloc::<D>::from_pending(node).as_ref() };
        send(group.group.last(), code);
        // SAFETY: We hold the group's fault lock (we have its `DeviceFaults`), and the group is
        // linked, so not settled: its owner does not touch `linked` or `answer` without the lock.
        let state = unsafe { &mut *group.state.get() };
        state.answer = Answer::ByRemoval;
        // SAFETY: As above.
        unsafe { group.unlink_locked(state) };
        true
    }
}

/// Who answered a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Nobody yet.
    No,
    /// Its owner: the handler, or the framework when the handler failed or freed it unanswered.
    ByOwner,
    /// The removal of its device from its fault queue.
    ByRemoval,
}

/// The state of a group, in [`Alloc::state`].
struct State {
    /// On its device's pending list.
    linked: bool,
    answer: Answer,
    /// Its owner has seen, under the fault lock, that it is off the pending list: from then on
    /// `linked` and `answer` are the owner's alone.
    settled: bool,
    /// Its work item was initialised, by the first `iopf_queue_work()`.
    work_ready: bool,
}

/// A group as the framework allocates it: the C `struct iopf_group` first, then what the
/// framework keeps with it.
///
/// # Invariants
///
/// - `group` is complete once enqueued: its `faults` list holds `last_fault` and, before it, the
///   requests the group owns (each a `KBox<Fault>`); `attach_handle` is the handle of the domain
///   it is for; `pending_node` is on `owner`'s pending list exactly when `state.linked`.
/// - `state.linked` and `state.answer` change only with `owner`'s fault lock held; they are read
///   with it held, or by the group's owner once `state.settled`. `state.settled` and
///   `state.work_ready` are only used by the group's owner. `state.settled` implies
///   `!state.linked`, and stays set.
/// - The owner of the group is the holder of its [`NewGroup`] or [`Owned`], or, once a handler
///   accepted it, that handler (C code calling the framework with the group's pointer).
#[repr(C)]
struct Alloc<D: FaultOwner> {
    group: IopfGroup,
    owner: Arc<D>,
    state: UnsafeCell<State>,
}

impl<D: FaultOwner> Alloc<D> {
    /// The group whose `pending_node` is `node`.
    ///
    /// # Safety
    ///
    /// `node` must be the `pending_node` of a group of `D`.
    unsafe fn from_pending(node: *mut bindings::list_head) -> NonNull<Self> {
        // SAFETY: Guaranteed by the caller.
        let group = unsafe { crate::container_of!(node, bindings::iopf_group, pending_node) };
        // CAST: `group` is the first member of the `repr(C)` `Alloc`, and `IopfGroup` is
        // `repr(transparent)` over it.
        // SAFETY: Not null, as computed from a valid pointer.
        unsafe { NonNull::new_unchecked(group.cast()) }
    }

    /// The group's allocation, from the group's pointer.
    ///
    /// # Safety
    ///
    /// `ptr` must be a group of `D` that the framework allocated and did not free yet.
    unsafe fn from_group(ptr: *mut bindings::iopf_group) -> NonNull<Self> {
        // CAST: As in `from_pending`.
        // SAFETY: Guaranteed by the caller: a live group is not null.
        unsafe { NonNull::new_unchecked(ptr.cast()) }
    }

    fn pending_node(&self) -> *mut bindings::list_head {
        // SAFETY: Only computes the address of a member.
        unsafe { &raw mut (*self.group.as_raw()).pending_node }
    }

    /// Takes the group off its device's pending list, if it is on it.
    ///
    /// # Safety
    ///
    /// The caller holds the group's fault lock, and `state` is the group's state.
    unsafe fn unlink_locked(&self, state: &mut State) {
        if !state.linked {
            return;
        }
        let node = self.pending_node();
        // SAFETY: The node is on the pending list, which the fault lock that the caller holds
        // protects; it is unlinked and left linking to itself.
        unsafe {
            let (prev, next) = ((*node).prev, (*node).next);
            (*prev).next = next;
            (*next).prev = prev;
            (*node).next = node;
            (*node).prev = node;
        }
        // INVARIANT: Off the list, with the lock held.
        state.linked = false;
    }

    /// The state, for the group's owner.
    ///
    /// # Safety
    ///
    /// The caller is the group's owner, with no other reference to the state alive. Only
    /// `settled` and `work_ready` may be used, and `linked` and `answer` if `settled`.
    #[expect(clippy::mut_from_ref)]
    unsafe fn owner_state(&self) -> &mut State {
        // SAFETY: Guaranteed by the caller.
        unsafe { &mut *self.state.get() }
    }

    /// Answers the group with `code`, unless it was answered.
    ///
    /// # Safety
    ///
    /// The caller is the group's owner.
    unsafe fn respond(&self, code: u32) -> Result<(), Answer> {
        // SAFETY: We are the owner; the reference is dropped before the lock is taken.
        let settled = unsafe { self.owner_state() }.settled;
        if settled {
            // SAFETY: The owner may read `answer` once settled.
            let answer = unsafe { self.owner_state() }.answer;
            if answer != Answer::No {
                return Err(answer);
            }
        }
        let _faults = self.owner.faults().lock();
        // SAFETY: We hold the fault lock and are the owner: nobody else uses the state now.
        let state = unsafe { &mut *self.state.get() };
        let answered = match state.answer {
            Answer::No => {
                self.owner.page_response(self.group.last(), code);
                state.answer = Answer::ByOwner;
                Ok(())
            }
            answer => Err(answer),
        };
        // SAFETY: We hold the fault lock.
        unsafe { self.unlink_locked(state) };
        // INVARIANT: Off the list, seen by the owner under the lock.
        state.settled = true;
        answered
    }

    /// Takes the group off its device's pending list.
    ///
    /// # Safety
    ///
    /// The caller is the group's owner.
    unsafe fn dequeue(&self) {
        // SAFETY: We are the owner.
        if unsafe { self.owner_state() }.settled {
            return;
        }
        let _faults = self.owner.faults().lock();
        // SAFETY: We hold the fault lock and are the owner.
        let state = unsafe { &mut *self.state.get() };
        // SAFETY: We hold the fault lock.
        unsafe { self.unlink_locked(state) };
        // INVARIANT: Off the list, seen by the owner under the lock.
        state.settled = true;
    }
}

impl<D: FaultOwner> Drop for Alloc<D> {
    fn drop(&mut self) {
        let group = self.group.as_raw();
        // SAFETY: By the type invariant every node of `faults` but `last_fault` is a request the
        // group owns; `next` is read before a request is freed.
        unsafe {
            let head = &raw mut (*group).faults;
            let last = &raw mut (*group).last_fault.list;
            let mut node = (*head).next;
            while node != head {
                let next = (*node).next;
                if node != last {
                    drop(KBox::from_raw(Fault::from_node(node).as_ptr()));
                }
                node = next;
            }
        }
    }
}

/// A group that the framework allocated and has not enqueued yet.
///
/// # Invariants
///
/// `0` is an `Alloc<D>` allocated as a `KBox` by [`NewGroup::new`], owned by `self`, on no list.
pub struct NewGroup<D: FaultOwner>(NonNull<Alloc<D>>);

// SAFETY: The group is plain data owned by `self`, and `Arc<D>` is `Send` since `D` is `Sync` and
// `Send`.
unsafe impl<D: FaultOwner> Send for NewGroup<D> {}

impl<D: FaultOwner> NewGroup<D> {
    /// Allocates the group of the last request `last`, for the domain of `handle`, with the
    /// reference `owner` to its device's data.
    ///
    /// Gives `owner` back if the allocation fails.
    pub fn new(
        last: &Fault,
        handle: &AttachHandle,
        owner: Arc<D>,
        flags: Flags,
    ) -> Result<Self, Arc<D>> {
        let Ok(mut alloc) = KBox::<Alloc<D>>::new_uninit(flags) else {
            return Err(owner);
        };
        let ptr = alloc.as_mut_ptr();
        // Every member is written here, as C's `kzalloc()` would leave it, without clearing the
        // whole group first.
        // CAST: `group` is first in `repr(C)` `Alloc`, and `repr(transparent)` over `iopf_group`.
        let group = ptr.cast::<bindings::iopf_group>();
        // SAFETY: `group` is valid for writes and will not move (it is in its allocation); the
        // list members are linked to their final addresses.
        unsafe {
            (&raw mut (*group).last_fault.fault).write((*last.as_raw()).fault);
            let lastnode = &raw mut (*group).last_fault.list;
            let faults = &raw mut (*group).faults;
            (*faults).next = lastnode;
            (*faults).prev = lastnode;
            (*lastnode).next = faults;
            (*lastnode).prev = faults;
            (&raw mut (*group).fault_count).write(1);
            let pending = &raw mut (*group).pending_node;
            (*pending).next = pending;
            (*pending).prev = pending;
            (&raw mut (*group).work).write_bytes(0, 1);
            (&raw mut (*group).attach_handle).write(handle.as_raw());
            // C never reads it: the framework's data is `Alloc::owner`.
            (&raw mut (*group).fault_param).write(Arc::as_ptr(&owner).cast_mut().cast());
            (&raw mut (*group).node).write(bindings::list_head::default());
            (&raw mut (*group).cookie).write(0);
            (&raw mut (*ptr).owner).write(owner);
            (&raw mut (*ptr).state).write(UnsafeCell::new(State {
                linked: false,
                answer: Answer::No,
                settled: false,
                work_ready: false,
            }));
        }
        // SAFETY: Every member of `Alloc` was written above.
        let alloc = unsafe { alloc.assume_init() };
        // INVARIANT: Allocated as a `KBox`, on no list, and owned by the new `NewGroup`.
        // SAFETY: `KBox::into_raw` never returns null.
        Ok(Self(unsafe {
            NonNull::new_unchecked(KBox::into_raw(alloc))
        }))
    }

    fn alloc(&self) -> &Alloc<D> {
        // SAFETY: By the type invariant the allocation is live and ours.
        unsafe { self.0.as_ref() }
    }

    /// The reference to the device's data that the group keeps.
    pub fn owner(&self) -> &Arc<D> {
        &self.alloc().owner
    }

    /// Completes the group and puts it on its device's pending list, under the device's fault
    /// lock: `take_partials` hands over, from the framework's state, the requests that came before
    /// the group's last one.
    ///
    /// If `take_partials` fails, the group is given back with the error, on no list.
    pub fn enqueue<E>(
        self,
        take_partials: impl FnOnce(&mut D::State) -> Result<FaultChain, E>,
    ) -> Result<Owned<D>, (Self, E)> {
        let alloc = self.alloc();
        let mut faults = alloc.owner.faults().lock();
        let partials = match take_partials(faults.as_mut().state()) {
            Ok(partials) => partials,
            Err(e) => {
                drop(faults);
                return Err((self, e));
            }
        };
        let group = alloc.group.as_raw();
        let count = 1 + partials.len();
        let head = faults.head();
        let node = alloc.pending_node();
        // SAFETY: The group is ours and on no list; its `last_fault` node is on its `faults` list,
        // which takes over the partial requests. The pending list is protected by the lock we hold.
        unsafe {
            partials.splice_before(&raw mut (*group).last_fault.list);
            (*group).fault_count = count;
            let tail = (*head).prev;
            (*node).next = head;
            (*node).prev = tail;
            (*tail).next = node;
            (*head).prev = node;
        }
        // SAFETY: The group is ours alone until it is handed to a handler, and we hold its lock.
        // INVARIANT: On the list, with the lock held.
        unsafe { (*alloc.state.get()).linked = true };
        drop(faults);
        // INVARIANT: The same owner, now through `Owned`.
        Ok(Owned(ManuallyDrop::new(self).0))
    }
}

impl<D: FaultOwner> Deref for NewGroup<D> {
    type Target = IopfGroup;

    fn deref(&self) -> &IopfGroup {
        &self.alloc().group
    }
}

impl<D: FaultOwner> Drop for NewGroup<D> {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the allocation is a `KBox` that we own, on no list.
        drop(unsafe { KBox::from_raw(self.0.as_ptr()) });
    }
}

/// The owner's hold on a group that is, or was, enqueued: the framework's before it hands the
/// group to a handler (or after the handler gave it back), then the handler's. Dropping it frees
/// the group (`iopf_free_group()`).
///
/// # Invariants
///
/// `0` is an `Alloc<D>` allocated as a `KBox` by [`NewGroup::new`] and enqueued, not freed yet,
/// and `self` is its owner.
pub struct Owned<D: FaultOwner>(NonNull<Alloc<D>>);

// SAFETY: As for `NewGroup`; what other threads may touch (the pending link) is behind the lock.
unsafe impl<D: FaultOwner> Send for Owned<D> {}

impl<D: FaultOwner> Owned<D> {
    /// Takes back a group from its handler, to free it.
    ///
    /// # Safety
    ///
    /// `ptr` must be a group of `D` that the framework handed to a handler, which gives it back:
    /// nobody uses the pointer afterwards.
    pub unsafe fn from_raw(ptr: *mut bindings::iopf_group) -> Self {
        // INVARIANT: Guaranteed by the caller.
        // SAFETY: Guaranteed by the caller.
        Self(unsafe { Alloc::from_group(ptr) })
    }

    fn alloc(&self) -> &Alloc<D> {
        // SAFETY: By the type invariant the allocation is live.
        unsafe { self.0.as_ref() }
    }

    /// The reference to the device's data that the group keeps.
    pub fn owner(&self) -> &Arc<D> {
        &self.alloc().owner
    }

    /// Calls `handler`, which owns the group if it accepts it (returns 0); otherwise the group is
    /// given back, to be answered and freed.
    pub fn hand_to(self, handler: IopfHandler) -> Result<(), Self> {
        let this = ManuallyDrop::new(self);
        let group = this.alloc().group.as_raw();
        // SAFETY: The handler of the group's domain gets a complete, enqueued group. By the
        // `iopf_handler` contract it owns the group if it returns 0, and gives it back otherwise.
        match unsafe { (handler.0)(group) } {
            0 => Ok(()),
            // INVARIANT: The handler gave the group back.
            _ => Err(Owned(this.0)),
        }
    }

    /// Answers the group with `code` (`iopf_group_response()`), unless it was answered: then
    /// tells by whom.
    pub fn respond(&self, code: u32) -> Result<(), Answer> {
        // SAFETY: By the type invariant we own the group.
        unsafe { self.alloc().respond(code) }
    }

    /// Frees the group (`iopf_free_group()`), with the requests it holds and its reference to the
    /// device's data. A group that was not answered is answered `IOMMU_PAGE_RESP_INVALID` first,
    /// and `unanswered` is told, with the device's data and the group's last request.
    pub fn free(self, unanswered: impl FnOnce(&D, &Fault)) {
        let this = ManuallyDrop::new(self);
        let alloc = this.alloc();
        // SAFETY: We own the group; the reference is not kept.
        let state = unsafe { alloc.owner_state() };
        if !state.settled || state.answer == Answer::No {
            let faults = alloc.owner.faults().lock();
            // SAFETY: We hold the fault lock and are the owner.
            let state = unsafe { &mut *alloc.state.get() };
            let answered_here = state.answer == Answer::No;
            if answered_here {
                alloc.owner.page_response(alloc.group.last(), RESP_INVALID);
                state.answer = Answer::ByOwner;
            }
            // SAFETY: We hold the fault lock.
            unsafe { alloc.unlink_locked(state) };
            drop(faults);
            if answered_here {
                unanswered(&alloc.owner, alloc.group.last());
            }
        }
        // SAFETY: By the type invariant the allocation is a `KBox` that we own; it is off the
        // pending list, so nothing else refers to it.
        drop(unsafe { KBox::from_raw(this.0.as_ptr()) });
    }
}

impl<D: FaultOwner> Deref for Owned<D> {
    type Target = IopfGroup;

    fn deref(&self) -> &IopfGroup {
        &self.alloc().group
    }
}

impl<D: FaultOwner> Drop for Owned<D> {
    fn drop(&mut self) {
        // INVARIANT: `free` takes over the ownership; `self` is not used afterwards.
        Owned(self.0).free(|_, _| {});
    }
}

/// The owner's use of a group that a handler owns, for as long as a call from the handler lasts.
///
/// # Invariants
///
/// `group` is a group of `D` that the framework allocated, live for `'a`, whose owner is the
/// caller of the C function that made this.
pub struct Handed<'a, D: FaultOwner> {
    alloc: &'a Alloc<D>,
}

impl<'a, D: FaultOwner> Handed<'a, D> {
    /// The group at `ptr`, used by its owner.
    ///
    /// # Safety
    ///
    /// `ptr` must be a group of `D` that the framework handed to a handler, live for `'a`, and the
    /// caller must be its owner (the handler): nobody else answers, dequeues or frees it meanwhile.
    pub unsafe fn from_raw(ptr: *mut bindings::iopf_group) -> Self {
        // INVARIANT: Guaranteed by the caller.
        // SAFETY: Guaranteed by the caller.
        Self {
            alloc: unsafe { Alloc::from_group(ptr).as_ref() },
        }
    }

    /// The reference to the device's data that the group keeps.
    pub fn owner(&self) -> &'a Arc<D> {
        &self.alloc.owner
    }

    /// Answers the group with `code` (`iopf_group_response()`), unless it was answered: then tells
    /// by whom.
    pub fn respond(&self, code: u32) -> Result<(), Answer> {
        // SAFETY: By the type invariant the caller is the owner.
        unsafe { self.alloc.respond(code) }
    }

    /// Takes the group off its device's pending list (`iopf_group_dequeue()`): removing the
    /// device will not answer it.
    pub fn dequeue(&self) {
        // SAFETY: By the type invariant the caller is the owner.
        unsafe { self.alloc.dequeue() }
    }

    /// Queues the group's work item on `wq`, to run `func` (`iopf_queue_work()`).
    ///
    /// Fails with `EBUSY` if the work item is already queued, and leaves it alone.
    ///
    /// # Safety
    ///
    /// `func` must be a work function that may be called with the group's `work` member.
    pub unsafe fn queue_work(
        &self,
        wq: &Queue,
        func: unsafe extern "C" fn(*mut bindings::work_struct),
    ) -> Result {
        // SAFETY: By the type invariant the caller is the owner.
        let state = unsafe { self.alloc.owner_state() };
        // SAFETY: Only computes the address of a member.
        let work = unsafe { &raw mut (*self.alloc.group.as_raw()).work };
        if state.work_ready {
            // SAFETY: The work item was initialised; `data` is only accessed atomically.
            let data = unsafe { Atomic::from_ptr(&raw mut (*work).data.counter) };
            if data.load(Relaxed) & (1 << bindings::work_bits_WORK_STRUCT_PENDING_BIT) != 0 {
                return Err(EBUSY);
            }
            // SAFETY: The work item is not queued, and only its owner queues it: the workqueue
            // does not read `func` until it is queued again.
            unsafe { (*work).func = Some(func) };
        } else {
            // SAFETY: `work` is valid and was never queued; the lock class key is static.
            unsafe {
                bindings::init_work_with_key(
                    work,
                    Some(func),
                    false,
                    c"iopf_group::work".as_char_ptr(),
                    crate::static_lock_class!().as_ptr(),
                )
            };
            state.work_ready = true;
        }
        // CAST: `Queue` is `repr(transparent)` over `Opaque<workqueue_struct>`.
        let wq = core::ptr::from_ref(wq)
            .cast_mut()
            .cast::<bindings::workqueue_struct>();
        // SAFETY: The workqueue and the work item are live; the owner keeps the group alive
        // until the work has run, and `func` may take the work item (caller's guarantee).
        let queued = unsafe {
            bindings::queue_work_on(bindings::wq_misc_consts_WORK_CPU_UNBOUND as c_int, wq, work)
        };
        if queued {
            Ok(())
        } else {
            Err(EBUSY)
        }
    }
}

impl<D: FaultOwner> Deref for Handed<'_, D> {
    type Target = IopfGroup;

    fn deref(&self) -> &IopfGroup {
        &self.alloc.group
    }
}
