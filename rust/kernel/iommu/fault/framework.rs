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
//! state, such as its counters.
//!
//! A group's life:
//!
//! 1. [`NewGroup::new`] allocates it for the last request of a group, with a reference to its
//!    device's data. It is the framework's alone.
//! 2. [`NewGroup::enqueue`] completes it with the requests of its group that came before its last
//!    one, which the framework held, and puts it on the device's pending list, under the fault
//!    lock.
//! 3. [`Owned::hand_to`] calls the domain's fault handler, which owns the group if it accepts it.
//!    From then on C calls the framework with the group's pointer: [`Handed`] answers
//!    (`iopf_group_response()`), dequeues (`iopf_group_dequeue()`) or defers it
//!    (`iopf_queue_work()`), and [`Owned`] frees it (`iopf_free_group()`).
//! 4. Removing the device from its queue answers the groups still pending
//!    ([`DeviceFaults::answer_oldest`]) but does not free them: they stay their handlers', who
//!    free them when they are done, whether their work item has run yet or not.
//!
//! Every group is answered exactly once: by its handler, by the removal of its device, or, when it
//! is freed unanswered, by [`Owned::free`], `IOMMU_PAGE_RESP_INVALID`. Answers are sent under the
//! fault lock, through [`FaultOwner::page_response`].
//!
//! # Examples
//!
//! A framework's data for a device: its fault lock, whose state here counts the answers sent.
//!
//! ```
//! use kernel::iommu::fault::{DeviceFaults, Fault, FaultOwner};
//! use kernel::{new_mutex, prelude::*, sync::{Arc, Mutex}};
//!
//! #[pin_data]
//! struct Device {
//!     #[pin]
//!     faults: Mutex<DeviceFaults<Device>>,
//! }
//!
//! impl FaultOwner for Device {
//!     /// Answers sent.
//!     type State = u64;
//!
//!     fn faults(&self) -> &Mutex<DeviceFaults<Self>> {
//!         &self.faults
//!     }
//!
//!     fn page_response(&self, sent: &mut u64, _last: &Fault, _tag: u32, _code: u32) {
//!         // A real framework calls the IOMMU driver's `page_response` op here.
//!         *sent += 1;
//!     }
//! }
//!
//! let dev = Arc::pin_init(
//!     pin_init!(Device { faults <- new_mutex!(DeviceFaults::new(0)) }),
//!     GFP_KERNEL,
//! )?;
//! let mut faults = dev.faults().lock();
//! // Removing the device answers its pending groups: it has none yet.
//! assert!(faults.as_mut().answer_oldest(0, &dev).is_none());
//! assert_eq!(*faults.as_mut().state(), 0);
//! # drop(faults);
//! # Ok::<(), Error>(())
//! ```

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

    /// Sends the page response `code` for the group whose last request is `last`, and whose
    /// framework's tag (see [`NewGroup::enqueue`]) is `tag`.
    ///
    /// Called with the fault lock held, which protects `state`, once for each group.
    fn page_response(&self, state: &mut Self::State, last: &Fault, tag: u32, code: u32);
}

/// What a device's fault lock protects: the groups handed to handlers and not answered yet, and
/// the framework's own state.
///
/// # Invariants
///
/// `pending` heads a C list of groups of the device linked through their `pending_node`: each is
/// live and has `linked` set in its `Locked` state.
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
                unsafe { head.write(bindings::list_head { next: head, prev: head }) }
            }),
            state,
        })
    }

    /// The framework's own state.
    pub fn state(self: Pin<&mut Self>) -> &mut D::State {
        self.project().state
    }

    /// Links `node` last, or unlinks it (leaving it linked to itself), on the pending list.
    ///
    /// # Safety
    ///
    /// `node` is the `pending_node` of a live group of the device, on the list to unlink it and
    /// on no list to link it; it stays live while it is on the list.
    unsafe fn relink(&mut self, node: *mut bindings::list_head, link: bool) {
        let head = self.pending.get();
        // SAFETY: The list is valid (type invariant) and ours to change (`&mut self`), and `node`
        // is as the caller guarantees.
        unsafe {
            let (prev, next) = if link {
                ((*head).prev, head)
            } else {
                ((*node).prev, (*node).next)
            };
            (*prev).next = if link { node } else { next };
            (*next).prev = if link { node } else { prev };
            (*node).prev = if link { prev } else { node };
            (*node).next = if link { next } else { node };
        }
    }

    /// Answers the oldest pending group with `code`, through `owner` (the device's data), takes
    /// it off the list, and returns its last request.
    ///
    /// The group stays its handler's, to free; its handler's answer, if it comes, is dropped.
    /// The handler cannot free it while `self` is borrowed: freeing it takes the fault lock.
    pub fn answer_oldest(mut self: Pin<&mut Self>, code: u32, owner: &D) -> Option<&Fault> {
        let head = self.pending.get();
        // SAFETY: By the type invariant the list is valid, and a node of it is the
        // `pending_node` of a live group of the device, which its owner frees only once it is
        // off the list, with the lock held.
        let group = unsafe {
            let node = (*head).next;
            if node == head {
                return None;
            }
            Alloc::<D>::from_pending(node).as_ref()
        };
        let faults = self.as_mut().project_mut();
        let tag = u32::from_ne_bytes(group.locked(faults).tag);
        owner.page_response(&mut faults.state, group.group.last(), tag, code);
        group.locked(faults).answer = Answer::ByRemoval;
        group.unlink(faults);
        Some(group.group.last())
    }

    /// `&mut Self` for the list, which is pinned but not moved by anything here.
    fn project_mut(self: Pin<&mut Self>) -> &mut Self {
        // SAFETY: Nothing that takes `&mut Self` in this module moves `pending`.
        unsafe { self.get_unchecked_mut() }
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

/// The part of a group's state that the fault lock protects.
#[derive(Clone, Copy)]
struct Locked {
    /// On its device's pending list.
    linked: bool,
    answer: Answer,
    /// The framework's tag, for [`FaultOwner::page_response`]; in bytes, so that the state
    /// fits in the padding of the group's slab object (192 bytes).
    tag: [u8; 4],
}

/// The part of a group's state that only its owner uses.
struct OwnerState {
    /// The owner saw, under the fault lock, that the group is off the pending list: the
    /// `Locked` state is the owner's alone from then on.
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
///   it is for; `pending_node` is on the pending list of `owner` exactly when `locked.linked`.
/// - `locked` changes only with the fault lock of `owner` held; it is read with the lock held, or
///   by the group's owner once `owned.settled`.
/// - `owned` is only used by the group's owner: the holder of its [`NewGroup`] or [`Owned`], or,
///   once a handler accepted it, that handler (C code calling the framework with the group's
///   pointer, through [`Handed`]). `owned.settled` implies `!locked.linked`, and stays set.
#[repr(C)]
struct Alloc<D: FaultOwner> {
    group: IopfGroup,
    owner: Arc<D>,
    locked: UnsafeCell<Locked>,
    owned: UnsafeCell<OwnerState>,
}

impl<D: FaultOwner> Alloc<D> {
    /// The group whose `pending_node` is `node`.
    ///
    /// # Safety
    ///
    /// `node` must be the `pending_node` of a group of `D`.
    unsafe fn from_pending(node: *mut bindings::list_head) -> NonNull<Self> {
        // CAST: `group` is the first member of the `repr(C)` `Alloc`, and `IopfGroup` is
        // `repr(transparent)` over `iopf_group`.
        // SAFETY: Guaranteed by the caller; `container_of!` of a valid pointer is not null.
        unsafe {
            NonNull::new_unchecked(
                crate::container_of!(node, bindings::iopf_group, pending_node).cast(),
            )
        }
    }

    fn pending_node(&self) -> *mut bindings::list_head {
        // SAFETY: Only computes the address of a member.
        unsafe { &raw mut (*self.group.as_raw()).pending_node }
    }

    /// The state that the fault lock protects, shown to be held by `faults`.
    ///
    /// # Panics
    ///
    /// Panics if `faults` is not protected by the fault lock of the group's device.
    fn locked<'a>(&'a self, faults: &'a mut DeviceFaults<D>) -> &'a mut Locked {
        if !core::ptr::eq(faults, self.owner.faults().data.get()) {
            panic!("an IOPF group used under another device's fault lock");
        }
        // SAFETY: `faults` is the data of the group's fault lock, borrowed mutably: the lock is
        // held, by us.
        unsafe { &mut *self.locked.get() }
    }

    /// Takes the group off its device's pending list, if it is on it.
    fn unlink(&self, faults: &mut DeviceFaults<D>) {
        // INVARIANT: Off the list, with the lock held.
        if core::mem::replace(&mut self.locked(faults).linked, false) {
            // SAFETY: The node is on the pending list, whose lock `faults` shows we hold.
            unsafe { faults.relink(self.pending_node(), false) };
        }
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
        // A group takes one 192-byte slab object, as in C (lock debugging grows the work item).
        #[cfg(not(CONFIG_LOCKDEP))]
        const {
            assert!(core::mem::size_of::<Alloc<D>>() <= 192)
        };
        let Ok(mut alloc) = KBox::<Alloc<D>>::new_uninit(flags) else {
            return Err(owner);
        };
        let ptr = alloc.as_mut_ptr();
        // CAST: `group` is first in `repr(C)` `Alloc`, and `repr(transparent)` over `iopf_group`.
        let group = ptr.cast::<bindings::iopf_group>();
        let owner_ptr = Arc::as_ptr(&owner).cast_mut().cast();
        // Every member is written, as `kzalloc()` would leave it in C, without clearing the whole
        // group first; the lists are linked at their final addresses.
        // SAFETY: `ptr` is valid for writes, in its allocation, which does not move.
        // INVARIANT: On no list, owned by the new `NewGroup`.
        let alloc = unsafe {
            let lastnode = &raw mut (*group).last_fault.list;
            let faults = &raw mut (*group).faults;
            let pending = &raw mut (*group).pending_node;
            (&raw mut (*group).last_fault.fault).write((*last.as_raw()).fault);
            lastnode.write(bindings::list_head {
                next: faults,
                prev: faults,
            });
            faults.write(bindings::list_head {
                next: lastnode,
                prev: lastnode,
            });
            (&raw mut (*group).fault_count).write(1);
            pending.write(bindings::list_head {
                next: pending,
                prev: pending,
            });
            (&raw mut (*group).work).write_bytes(0, 1);
            (&raw mut (*group).attach_handle).write(handle.as_raw());
            // C never reads it: the framework's data is `Alloc::owner`.
            (&raw mut (*group).fault_param).write(owner_ptr);
            // Zeroed in place: bindgen's `Default` would be a call.
            (&raw mut (*group).node).write_bytes(0, 1);
            (&raw mut (*group).cookie).write(0);
            (&raw mut (*ptr).owner).write(owner);
            (&raw mut (*ptr).locked).write(UnsafeCell::new(Locked {
                linked: false,
                answer: Answer::No,
                tag: [0; 4],
            }));
            (&raw mut (*ptr).owned).write(UnsafeCell::new(OwnerState {
                settled: false,
                work_ready: false,
            }));
            NonNull::new_unchecked(KBox::into_raw(alloc.assume_init()))
        };
        Ok(Self(alloc))
    }

    fn alloc(&self) -> &Alloc<D> {
        // SAFETY: By the type invariant the allocation is live and ours.
        unsafe { self.0.as_ref() }
    }

    /// Completes the group with `partials`, the requests of its group that came before its last
    /// one, and puts it on its device's pending list, under the device's fault lock. `tag` gives,
    /// under that lock, a tag of the framework's choice that the group keeps for
    /// [`FaultOwner::page_response`] (a timestamp, say).
    pub fn enqueue(self, partials: FaultChain, tag: impl FnOnce(&mut D::State) -> u32) -> Owned<D> {
        let alloc = self.alloc();
        let count = 1 + partials.len();
        {
            let mut faults = alloc.owner.faults().lock();
            let faults = faults.as_mut().project_mut();
            let tag = tag(&mut faults.state);
            let group = alloc.group.as_raw();
            // SAFETY: The group is ours; its `last_fault` node is on its `faults` list, which
            // takes over the requests. Its pending node is on no list, and `faults` is its
            // device's: linked with the lock held, the group stays live while it is.
            unsafe {
                partials.splice_before(&raw mut (*group).last_fault.list);
                (*group).fault_count = count;
                faults.relink(alloc.pending_node(), true);
            }
            // INVARIANT: On the list, with the lock held.
            *alloc.locked(faults) = Locked {
                linked: true,
                answer: Answer::No,
                tag: tag.to_ne_bytes(),
            };
        }
        // INVARIANT: The same owner, now through `Owned`.
        Owned(ManuallyDrop::new(self).0)
    }
}

impl<D: FaultOwner> Drop for NewGroup<D> {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the allocation is a `KBox` that we own, on no list.
        drop(unsafe { KBox::from_raw(self.0.as_ptr()) });
    }
}

/// The owner's use of a group: the framework's before it hands the group to a handler, then,
/// for as long as a call from the handler lasts, the handler's.
///
/// # Invariants
///
/// `alloc` is a group of `D`, allocated by [`NewGroup::new`] and enqueued, live for `'a`, and
/// the holder of the `Handed` is its owner.
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
        // CAST: As in `Alloc::from_pending`.
        // SAFETY: Guaranteed by the caller.
        let alloc = unsafe { &*ptr.cast::<Alloc<D>>() };
        // INVARIANT: Guaranteed by the caller.
        Self { alloc }
    }

    /// The reference to the device's data that the group keeps.
    pub fn owner(&self) -> &'a Arc<D> {
        &self.alloc.owner
    }

    #[expect(clippy::mut_from_ref)]
    fn owned(&self) -> &mut OwnerState {
        // SAFETY: By the type invariant we are the owner, the only user of `owned`; the
        // references made here do not outlive the calls that make them.
        unsafe { &mut *self.alloc.owned.get() }
    }

    /// Who answered the group, if its owner may know without the lock.
    fn settled_answer(&self) -> Option<Answer> {
        if !self.owned().settled {
            return None;
        }
        // SAFETY: Once settled, `locked` is the owner's alone (type invariant of `Alloc`).
        Some(unsafe { (*self.alloc.locked.get()).answer })
    }

    /// Runs `f` with the group's fault lock held, then marks the group settled: `f` must leave
    /// it off the pending list.
    fn settle<R>(&self, f: impl FnOnce(&mut DeviceFaults<D>, &Alloc<D>) -> R) -> R {
        let mut faults = self.alloc.owner.faults().lock();
        let result = f(faults.as_mut().project_mut(), self.alloc);
        self.alloc.unlink(faults.as_mut().project_mut());
        // INVARIANT: Off the list, seen by the owner under the lock.
        self.owned().settled = true;
        result
    }

    /// Answers the group with `code` (`iopf_group_response()`), unless it was answered: then tells
    /// by whom.
    pub fn respond(&self, code: u32) -> Result<(), Answer> {
        match self.settled_answer() {
            Some(Answer::No) | None => {}
            Some(answer) => return Err(answer),
        }
        self.settle(|faults, alloc| {
            let Locked { answer, tag, .. } = *alloc.locked(faults);
            if answer != Answer::No {
                return Err(answer);
            }
            let tag = u32::from_ne_bytes(tag);
            alloc
                .owner
                .page_response(&mut faults.state, alloc.group.last(), tag, code);
            alloc.locked(faults).answer = Answer::ByOwner;
            Ok(())
        })
    }

    /// Takes the group off its device's pending list (`iopf_group_dequeue()`): removing the
    /// device will not answer it.
    pub fn dequeue(&self) {
        if self.settled_answer().is_none() {
            self.settle(|_, _| ());
        }
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
        // CAST: `Queue` is `repr(transparent)` over `Opaque<workqueue_struct>`.
        let wq = core::ptr::from_ref(wq)
            .cast_mut()
            .cast::<bindings::workqueue_struct>();
        // SAFETY: Only computes the address of a member.
        let work = unsafe { &raw mut (*self.alloc.group.as_raw()).work };
        let owned = self.owned();
        // SAFETY: The work item is initialised once, by its owner, before it is first queued;
        // afterwards its `data` is only accessed atomically, and its `func` changed only when it
        // is not queued (the workqueue reads it once queued). The workqueue and the group are
        // live, and the owner keeps the group until the work has run; `func` may take the work
        // item (caller's guarantee).
        let queued = unsafe {
            if !owned.work_ready {
                bindings::init_work_with_key(
                    work,
                    Some(func),
                    false,
                    c"iopf_group::work".as_char_ptr(),
                    crate::static_lock_class!().as_ptr(),
                );
                owned.work_ready = true;
            } else if Atomic::from_ptr(&raw mut (*work).data.counter).load(Relaxed)
                & (1 << bindings::work_bits_WORK_STRUCT_PENDING_BIT)
                != 0
            {
                return Err(EBUSY);
            } else {
                (*work).func = Some(func);
            }
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

/// A group that is, or was, enqueued, owned: the framework's before it hands the group to a
/// handler (or after the handler gave it back), then the handler's until it frees it. Dropping
/// it frees the group.
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
        // CAST: As in `Alloc::from_pending`.
        // SAFETY: A live group is not null.
        Self(unsafe { NonNull::new_unchecked(ptr.cast()) })
    }

    /// The owner's use of the group.
    pub fn handed(&self) -> Handed<'_, D> {
        // INVARIANT: We own the group, live while `self` is borrowed.
        Handed {
            // SAFETY: By the type invariant the allocation is live.
            alloc: unsafe { self.0.as_ref() },
        }
    }

    /// Calls `handler`, which owns the group if it accepts it (returns 0); otherwise the group is
    /// given back, to be answered and freed, with the handler's error.
    pub fn hand_to(self, handler: IopfHandler) -> Result<(), (Self, c_int)> {
        let this = ManuallyDrop::new(self);
        // SAFETY: The handler of the group's domain gets a complete, enqueued group. By the
        // `iopf_handler` contract it owns the group if it returns 0, and gives it back otherwise.
        match unsafe { (handler.0)(this.handed().as_raw()) } {
            0 => Ok(()),
            // INVARIANT: The handler gave the group back.
            ret => Err((Owned(this.0), ret)),
        }
    }

    /// Frees the group (`iopf_free_group()`), with the requests it holds and its reference to the
    /// device's data. A group that was not answered is answered `IOMMU_PAGE_RESP_INVALID` first,
    /// and `unanswered` is told, with the device's data and the group's last request.
    pub fn free(self, unanswered: impl FnOnce(&D, &Fault)) {
        let this = ManuallyDrop::new(self);
        let group = this.handed();
        if group
            .settled_answer()
            .is_none_or(|answer| answer == Answer::No)
            && group.respond(RESP_INVALID).is_ok()
        {
            unanswered(group.owner(), group.last());
        }
        // SAFETY: By the type invariant the allocation is a `KBox` that we own; it is off the
        // pending list (answering took it off), so nothing else refers to it.
        drop(unsafe { KBox::from_raw(this.0.as_ptr()) });
    }
}

impl<D: FaultOwner> Deref for Owned<D> {
    type Target = IopfGroup;

    fn deref(&self) -> &IopfGroup {
        // SAFETY: By the type invariant the allocation is live.
        &unsafe { self.0.as_ref() }.group
    }
}

impl<D: FaultOwner> Drop for Owned<D> {
    fn drop(&mut self) {
        // INVARIANT: `free` takes over the ownership; `self` is not used afterwards.
        Owned(self.0).free(|_, _| {});
    }
}
