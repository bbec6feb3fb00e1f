// SPDX-License-Identifier: GPL-2.0

//! A page request group: `struct iopf_group`, as handlers see it.
//!
//! The C structure is kept as is (handlers read `last_fault`, walk `faults`,
//! use `work`, `node` and `cookie`) and embedded first in [`Group`], which
//! adds what the Rust side owns: the reference to the device's fault data
//! and whether the group was answered.

use core::cell::UnsafeCell;

use kernel::{bindings, prelude::*, types::Opaque};

use crate::{device::warn_ratelimited, fault::Fault, fault_param::FaultParamRef};

/// A group of page requests with the same group id, ending with the last one.
///
/// # Invariants
///
/// - `c` is first, so a `*mut iopf_group` from C is a `*mut Group`.
/// - Once assembled, `c.faults` heads a list of the group's requests: the held
///   partials (`KBox<Fault>`s owned by the group) oldest first, then
///   `c.last_fault`. C consumers only read it.
/// - `c.fault_param` is `param`; `c.pending_node` is on `param`'s pending list
///   or self-linked, and only changes under `param.state`.
/// - `responded` is only accessed under `param.state` (or through `&mut`);
///   it becomes true when the one response of the group has been sent.
#[repr(C)]
pub(crate) struct Group {
    c: Opaque<bindings::iopf_group>,
    param: FaultParamRef,
    responded: UnsafeCell<bool>,
}

impl Group {
    /// Allocates a group for the last request `evt` of a group of `param`'s
    /// device; the group keeps the reference. On failure the reference is
    /// given back, so that the caller can still answer the request.
    pub(crate) fn new(
        param: FaultParamRef,
        evt: &bindings::iopf_fault,
    ) -> core::result::Result<KBox<Self>, FaultParamRef> {
        // Allocate first: a `Group` built and then dropped because the
        // allocation failed would run `Drop`, which answers the group. Zeroed,
        // as C's groups are, so that only the fields with a value are written.
        let Ok(mut group) = KBox::<Self>::new_uninit(GFP_KERNEL | __GFP_ZERO) else {
            return Err(param);
        };
        let raw = group.as_mut_ptr();
        // SAFETY: `raw` is valid for writes, at its final address. Zero is a
        // valid value for every field of `struct iopf_group` (null pointers,
        // counts, a work item initialised before use); the Rust fields are
        // written here.
        let group = unsafe {
            let c = Opaque::cast_into(&raw const (*raw).c);
            (*c).last_fault.fault = evt.fault;
            (*c).fault_param = param.as_c();
            // A self-linked node is on no list.
            bindings::INIT_LIST_HEAD(&raw mut (*c).pending_node);
            (&raw mut (*raw).param).write(param);
            (&raw mut (*raw).responded).write(UnsafeCell::new(false));
            group.assume_init()
        };
        Ok(group)
    }

    /// The group handed to C as `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must come from [`Group::into_c`] and not have been freed.
    pub(crate) unsafe fn from_c<'a>(ptr: *mut bindings::iopf_group) -> &'a Self {
        // CAST: By the type invariant `c` is the first field of a `repr(C)` `Group`.
        // SAFETY: The caller guarantees the group is live.
        unsafe { &*ptr.cast::<Self>() }
    }

    /// Gives the group to C (a handler); [`Group::from_c_owned`] takes it back.
    pub(crate) fn into_c(group: KBox<Self>) -> *mut bindings::iopf_group {
        KBox::into_raw(group).cast()
    }

    /// Takes back ownership of a group given to C.
    ///
    /// # Safety
    ///
    /// `ptr` must come from [`Group::into_c`], and nobody may use it afterwards.
    pub(crate) unsafe fn from_c_owned(ptr: *mut bindings::iopf_group) -> KBox<Self> {
        // SAFETY: The caller guarantees `ptr` is a `Group` leaked by `into_c`.
        unsafe { KBox::from_raw(ptr.cast()) }
    }

    /// The group whose `pending_node` is `node`.
    ///
    /// # Safety
    ///
    /// `node` must be on a pending list, whose groups are live.
    pub(crate) unsafe fn from_pending<'a>(node: *mut bindings::list_head) -> &'a Self {
        // SAFETY: Pending lists link groups through `pending_node`.
        let c = unsafe { kernel::container_of!(node, bindings::iopf_group, pending_node) };
        // SAFETY: The group is live, per the caller.
        unsafe { Self::from_c(c) }
    }

    /// The C view of the group, as handlers see it.
    pub(crate) fn as_c(&self) -> *mut bindings::iopf_group {
        self.c.get()
    }

    fn last_fault(&self) -> *mut bindings::iopf_fault {
        // SAFETY: Only computes a field address.
        unsafe { &raw mut (*self.as_c()).last_fault }
    }

    /// The last request of the group.
    pub(crate) fn last(&self) -> &Fault {
        // SAFETY: `last_fault` is written at creation only.
        Fault::from_c(unsafe { &*self.last_fault() })
    }

    /// Builds the group's list from the held partials of its group id, and
    /// puts the group on the device's pending list. Called once, before the
    /// group is given to a handler.
    pub(crate) fn assemble(&self, handle: *mut bindings::iommu_attach_handle) {
        let c = self.as_c();
        let grpid = self.last().grpid();
        let mut faults = self.param.state.lock();
        let pending = faults.pending();
        // SAFETY: `c` is ours and not yet visible to anyone else: its `faults`
        // head is on no list and stays at its address, and the held partials
        // moved into it become the group's, freed by `Drop`. The pending list
        // is protected by the fault lock we hold.
        unsafe {
            let head = &raw mut (*c).faults;
            bindings::INIT_LIST_HEAD(head);
            let partials = faults.as_mut().project().partial.take_into(grpid, head);
            bindings::list_add_tail(&raw mut (*c).last_fault.list, head);
            (*c).fault_count = partials + 1;
            (*c).attach_handle = handle;
            bindings::list_add_tail(&raw mut (*c).pending_node, pending);
        }
    }

    /// Calls the domain's fault handler, which owns the group if it returns 0.
    ///
    /// On error the group is returned, so that the caller answers it.
    pub(crate) fn handle(
        group: KBox<Self>,
        handler: unsafe extern "C" fn(*mut bindings::iopf_group) -> c_int,
    ) -> core::result::Result<(), KBox<Self>> {
        let ptr = Self::into_c(group);
        // SAFETY: The handler gets a live, assembled group; on success it
        // takes it over and answers and frees it through the C API.
        match unsafe { handler(ptr) } {
            0 => Ok(()),
            // SAFETY: On error the handler did not take the group.
            _ => Err(unsafe { Self::from_c_owned(ptr) }),
        }
    }

    /// Sends the group's response with `code` (`iopf_group_response()`) and
    /// takes it off the pending list. A second response is dropped.
    pub(crate) fn respond(&self, code: u32) {
        let _faults = self.param.state.lock();
        // SAFETY: We hold the group's fault lock.
        unsafe { self.respond_locked(code) };
    }

    /// [`Group::respond`], with the device's fault lock held.
    ///
    /// # Safety
    ///
    /// The caller must hold `param.state`, the fault lock of the group's device.
    pub(crate) unsafe fn respond_locked(&self, code: u32) {
        // SAFETY: The caller holds the fault lock, which protects `responded`.
        let responded = unsafe { &mut *self.responded.get() };
        if *responded {
            let last = self.last();
            warn_ratelimited!(
                self.param.dev(),
                "iopf group {} (pasid {}) answered twice, dropping code {}\n",
                last.grpid(),
                last.pasid(),
                code
            );
        } else {
            *responded = true;
            self.param.dev().page_response(self.last_fault(), code);
        }
        // SAFETY: As above.
        unsafe { self.unlink_locked() };
    }

    /// Takes the group off the pending list (`iopf_group_dequeue()`): its
    /// handler remains responsible for answering it.
    pub(crate) fn dequeue(&self) {
        let _faults = self.param.state.lock();
        // SAFETY: We hold the group's fault lock.
        unsafe { self.unlink_locked() };
    }

    /// Takes the group off the pending list.
    ///
    /// # Safety
    ///
    /// The caller must hold `param.state`, the fault lock of the group's device.
    unsafe fn unlink_locked(&self) {
        // SAFETY: The caller holds `param.state`, which protects `pending_node`;
        // deleting a self-linked node is a no-op.
        unsafe { bindings::list_del_init(&raw mut (*self.as_c()).pending_node) };
    }

    /// Queues `func` on the group's IOPF queue (`iopf_queue_work()`).
    pub(crate) fn queue_work(&self, func: bindings::work_func_t) -> Result {
        // SAFETY: `work` belongs to the group and is not queued (checked by
        // `queue_work_on` below, which fails on a queued item).
        let work = unsafe { &raw mut (*self.as_c()).work };
        // SAFETY: `work` is valid; the class key is static.
        unsafe {
            bindings::init_work_with_key(
                work,
                func,
                false,
                c"iopf_group::work".as_char_ptr(),
                kernel::static_lock_class!().as_ptr(),
            )
        };
        let wq = self.param.queue().workqueue();
        // SAFETY: The workqueue and the work item are live; the handler keeps
        // the group alive until the work runs.
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

impl Drop for Group {
    fn drop(&mut self) {
        // The group is ours alone: `&mut` reads `responded` without the lock.
        if !*self.responded.get_mut() {
            // A group freed without a response would leave the device waiting
            // for ever: answer it, so every last request gets its response.
            warn_ratelimited!(
                self.param.dev(),
                "iopf group {} freed without a response, answering INVALID\n",
                self.last().grpid()
            );
            let _faults = self.param.state.lock();
            // SAFETY: We hold the group's fault lock.
            unsafe {
                self.respond_locked(bindings::iommu_page_response_code_IOMMU_PAGE_RESP_INVALID)
            };
        }

        let c = self.as_c();
        // SAFETY: By the type invariant every node of `faults` but `last_fault`
        // is a partial owned by the group. A group dropped before assembly
        // has an unlinked (null) `faults` head and owns no partial.
        unsafe {
            let head = &raw mut (*c).faults;
            let last = &raw mut (*c).last_fault.list;
            let mut node = (*head).next;
            while !node.is_null() && node != head {
                let next = (*node).next;
                if node != last {
                    drop(KBox::from_raw(Fault::from_node(node)));
                }
                node = next;
            }
        }
    }
}

#[cfg(CONFIG_IOMMU_IOPF_KUNIT_TEST)]
#[kunit_tests(iopf_rust_group)]
mod tests {
    use super::*;
    use crate::{device::Device, fault_param::FaultParam, queue::Queue};

    fn request(grpid: u32, addr: u64, last: bool) -> bindings::iopf_fault {
        let mut evt = bindings::iopf_fault::default();
        evt.fault.type_ = bindings::iommu_fault_type_IOMMU_FAULT_PAGE_REQ;
        evt.fault.prm.grpid = grpid;
        evt.fault.prm.addr = addr;
        if last {
            evt.fault.prm.flags = bindings::IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE;
        }
        evt
    }

    /// Addresses of the group's `faults` list, as a C consumer walks it.
    fn walk(group: &Group) -> Result<KVec<u64>> {
        let mut out = KVec::new();
        // SAFETY: The group is assembled and live; nothing changes its list.
        unsafe {
            let head = &raw mut (*group.as_c()).faults;
            let mut node = (*head).next;
            while node != head {
                out.push((*Fault::from_node(node)).0.fault.prm.addr, GFP_KERNEL)?;
                node = (*node).next;
            }
        }
        Ok(out)
    }

    #[test]
    fn assembly_takes_own_partials_oldest_first_then_last() -> Result {
        // A device with no IOMMU data: responses go nowhere, which is all
        // this test needs (it checks the group's lists, not the driver).
        let raw = KBox::new(bindings::device::default(), GFP_KERNEL)?;
        // SAFETY: `raw` lives until the end of the test.
        let dev = unsafe { Device::from_raw(KBox::into_raw(raw)) };
        let queue = Queue::new(c"iopf-kunit")?;
        let param = FaultParam::allocate(dev, &queue)?;
        for (grpid, addr) in [(3, 0x1000), (4, 0x2000), (3, 0x3000)] {
            param.partials(|held| held.hold(Fault::boxed(&request(grpid, addr, false))?))?;
        }

        let group = Group::new(param.new_ref(), &request(3, 0x4000, true)).map_err(|_| ENOMEM)?;
        group.assemble(core::ptr::null_mut());
        assert_eq!(&walk(&group)?[..], &[0x1000, 0x3000, 0x4000]);
        // SAFETY: Assembled groups have a valid `fault_count`.
        assert_eq!(unsafe { (*group.as_c()).fault_count }, 3);
        // Group 4's partial stays held; group 3's were taken.
        assert_eq!(param.partials(|held| held.held()), 1);
        {
            let faults = param.state.lock();
            // SAFETY: The pending list is protected by the lock we hold.
            assert_eq!(unsafe { (*faults.pending()).next }, unsafe {
                &raw mut (*group.as_c()).pending_node
            });
        }

        group.respond(bindings::iommu_page_response_code_IOMMU_PAGE_RESP_SUCCESS);
        let faults = param.state.lock();
        // SAFETY: As above.
        assert_eq!(unsafe { (*faults.pending()).next }, faults.pending());
        drop(faults);
        drop(group);
        drop(param);
        // SAFETY: The device was leaked above; the fault data, freed after a
        // grace period, does not use it when it is freed.
        drop(unsafe { KBox::from_raw(dev.as_raw()) });
        Ok(())
    }
}
