// SPDX-License-Identifier: GPL-2.0

//! Page requests in the C layout that the IOPF framework and fault handlers share.
//!
//! C header: [`include/linux/iommu.h`](srctree/include/linux/iommu.h)
//!
//! A [`Fault`] is one `struct iopf_fault`: a page request and the `list` node that links it into a
//! group's `faults` list, which C fault handlers walk. A [`FaultChain`] owns the requests of one
//! page request group that arrived before its last one, linked through those same nodes, so that
//! holding a request costs the request alone and handing the chain to a group is one splice.

use core::ptr::NonNull;

use crate::{
    alloc::{
        AllocError,
        Flags, //
    },
    bindings,
    prelude::*,
    types::Opaque, //
};

use super::PageRequest;

/// One page request (`struct iopf_fault`).
///
/// # Invariants
///
/// - The `fault` member is initialised, and does not change while the [`Fault`] is borrowed.
/// - The `list` member belongs to the list that holds the request, if any: a [`FaultChain`] or the
///   `faults` list of a group. Nothing else reads or writes it.
#[repr(transparent)]
pub struct Fault(Opaque<bindings::iopf_fault>);

// SAFETY: A `Fault` is plain data; its `list` node is only used by the list that owns it.
unsafe impl Send for Fault {}

// SAFETY: `&Fault` only reads the `fault` member, which does not change while borrowed.
unsafe impl Sync for Fault {}

impl Fault {
    /// Views the request at `ptr`, as an IOMMU driver reports it.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a `struct iopf_fault` whose `fault` member is initialised and stays
    /// valid and unchanged for `'a`. Its `list` member may hold anything: it is never read.
    #[inline]
    pub unsafe fn from_raw<'a>(ptr: *const bindings::iopf_fault) -> &'a Self {
        // INVARIANT: The caller guarantees the `fault` member; `list` is not used through `&Self`.
        // CAST: `Fault` is `repr(transparent)` over `Opaque<iopf_fault>`, itself over `iopf_fault`.
        // SAFETY: The caller guarantees that `ptr` is valid for `'a`.
        unsafe { &*ptr.cast::<Self>() }
    }

    /// The C `struct iopf_fault`, for C functions that take one.
    #[inline]
    pub fn as_raw(&self) -> *mut bindings::iopf_fault {
        self.0.get()
    }

    /// `request`, in a new allocation, on no list.
    pub fn new(request: &PageRequest, flags: Flags) -> Result<KBox<Self>, AllocError> {
        // INVARIANT: `to_raw` initialises `fault`, and the new request is on no list.
        KBox::new(Self(Opaque::new(request.to_raw())), flags)
    }

    /// A copy of the request in a new allocation, on no list.
    #[inline]
    pub fn to_owned(&self, flags: Flags) -> Result<KBox<Self>, AllocError> {
        let fault = bindings::iopf_fault {
            fault: *self.raw(),
            // Not `list_head::default()`: bindgen's `Default` is not inlined into this crate, and
            // would be one more call on the path of every held request.
            list: bindings::list_head {
                next: core::ptr::null_mut(),
                prev: core::ptr::null_mut(),
            },
        };
        // INVARIANT: `fault` is initialised, and the new request is on no list.
        KBox::new(Self(Opaque::new(fault)), flags)
    }

    /// Makes this request a copy of `other`, on the list it is on, if any: so that the memory of a
    /// request that is no longer needed can hold another one.
    #[inline]
    pub fn copy_from(&mut self, other: &Fault) {
        // SAFETY: `&mut self` is the only reference to this request, so nothing reads its `fault`
        // member while it is written.
        // INVARIANT: `fault` is written with an initialised request; `list` is not touched.
        unsafe { (*self.0.get()).fault = *other.raw() };
    }

    #[inline]
    pub(crate) fn raw(&self) -> &bindings::iommu_fault {
        // SAFETY: By the type invariant, `fault` is initialised and unchanged while `self` is
        // borrowed.
        unsafe { &(*self.0.get()).fault }
    }

    #[inline]
    fn flags(&self) -> u32 {
        self.raw().prm.flags
    }

    /// The fault's type (`IOMMU_FAULT_*`).
    #[inline]
    pub fn kind(&self) -> u32 {
        self.raw().type_
    }

    /// Whether this is a page request (`IOMMU_FAULT_PAGE_REQ`), the only type of I/O page fault.
    #[inline]
    pub fn is_page_request(&self) -> bool {
        self.kind() == bindings::iommu_fault_type_IOMMU_FAULT_PAGE_REQ
    }

    /// Whether this is the last request of its group (`IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE`).
    #[inline]
    pub fn is_last(&self) -> bool {
        self.flags() & bindings::IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE != 0
    }

    /// Whether the request carries a PASID (`IOMMU_FAULT_PAGE_REQUEST_PASID_VALID`).
    #[inline]
    pub fn has_pasid(&self) -> bool {
        self.flags() & bindings::IOMMU_FAULT_PAGE_REQUEST_PASID_VALID != 0
    }

    /// The PASID field, meaningful if [`Fault::has_pasid`].
    #[inline]
    pub fn pasid(&self) -> u32 {
        self.raw().prm.pasid
    }

    /// The page request group index.
    #[inline]
    pub fn grpid(&self) -> u32 {
        self.raw().prm.grpid
    }

    /// The request as a typed value.
    pub fn request(&self) -> PageRequest {
        PageRequest::from_raw(&self.raw().prm)
    }

    /// The C message that answers this request's group with `code`, as `page_response` takes it.
    #[inline]
    pub(crate) fn response(&self, code: u32) -> bindings::iommu_page_response {
        bindings::iommu_page_response {
            pasid: self.pasid(),
            grpid: self.grpid(),
            code,
        }
    }

    /// The `list` node of the request at `fault`.
    #[inline]
    fn node(fault: NonNull<Self>) -> *mut bindings::list_head {
        // CAST: `Fault` is `repr(transparent)` over `Opaque<iopf_fault>`, itself over `iopf_fault`.
        let fault = fault.as_ptr().cast::<bindings::iopf_fault>();
        // SAFETY: Only computes the address of a member of a valid request.
        unsafe { &raw mut (*fault).list }
    }

    /// The request whose `list` node is `node`.
    ///
    /// # Safety
    ///
    /// `node` must be the `list` member of a `struct iopf_fault`.
    #[inline]
    pub(crate) unsafe fn from_node(node: *mut bindings::list_head) -> NonNull<Self> {
        // CAST: `Fault` is `repr(transparent)` over `iopf_fault`.
        // SAFETY: The caller guarantees that `node` is the `list` member of a request, whose
        // address `container_of!` then gives, and which is not null.
        unsafe {
            let fault = crate::container_of!(node, bindings::iopf_fault, list);
            NonNull::new_unchecked(fault.cast())
        }
    }
}

/// The page requests of one group that arrived before its last one, oldest first.
///
/// Each request is its own allocation, linked to the others through its `list` node into a ring
/// with no head: the chain keeps the oldest. So a chain costs nothing beyond its requests, can be
/// moved, and goes into a group's `faults` list in one splice.
///
/// # Invariants
///
/// `first` is `None`, or the oldest of the requests of the chain: [`Fault`]s allocated as
/// `KBox<Fault>` and owned by the chain, whose `list` nodes link them into a ring in the order
/// they were pushed (`next` leads to the next newer request, and from the newest to the oldest).
///
/// # Examples
///
/// ```
/// use kernel::iommu::fault::{Fault, FaultChain, PageRequest, Permission};
///
/// # fn fault(addr: u64) -> Result<KBox<Fault>> {
/// #     let request = PageRequest::new(addr, Permission::Read.into(), 3).partial();
/// #     Ok(Fault::new(&request, GFP_KERNEL)?)
/// # }
/// let mut chain = FaultChain::new();
/// assert!(chain.is_empty());
/// chain.push(fault(0x1000)?);
/// chain.push(fault(0x2000)?);
/// assert_eq!(chain.len(), 2);
/// // The oldest request stays first.
/// assert_eq!(chain.first().map(|f| f.request().addr), Some(0x1000));
/// // Until it is taken out; its memory can then hold another request.
/// let mut oldest = chain.pop_front().expect("two requests");
/// oldest.copy_from(&*fault(0x3000)?);
/// assert_eq!(oldest.request().addr, 0x3000);
/// assert_eq!(chain.first().map(|f| f.request().addr), Some(0x2000));
/// assert_eq!(chain.len(), 1);
/// // Dropping the chain frees its requests.
/// drop(chain);
/// # Ok::<(), Error>(())
/// ```
pub struct FaultChain {
    first: Option<NonNull<Fault>>,
}

// SAFETY: The chain owns its requests, which may be freed on any thread.
unsafe impl Send for FaultChain {}

// SAFETY: `&FaultChain` only reads the requests and their links.
unsafe impl Sync for FaultChain {}

impl FaultChain {
    /// An empty chain.
    pub const fn new() -> Self {
        // INVARIANT: An empty chain has no first request.
        Self { first: None }
    }

    /// Whether the chain holds no request.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    /// The oldest request of the chain.
    #[inline]
    pub fn first(&self) -> Option<&Fault> {
        // SAFETY: By the type invariant, `first` is a live request owned by the chain, which
        // lives as long as the chain is borrowed.
        self.first.map(|first| unsafe { first.as_ref() })
    }

    /// The number of requests, counted along the ring.
    #[inline]
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// The requests, oldest first.
    pub fn iter(&self) -> ChainIter<'_> {
        ChainIter {
            chain: self,
            next: self.first,
        }
    }

    /// Removes the oldest request from the chain, and returns it.
    #[inline]
    pub fn pop_front(&mut self) -> Option<KBox<Fault>> {
        let first = self.first?;
        let node = Fault::node(first);
        // SAFETY: By the type invariant, the ring is valid and ours. If `node` is not alone, it is
        // taken out from between the newest request and the next newer one, which becomes the
        // oldest. Either way the request, allocated as `KBox<Fault>`, is then on no list and the
        // chain no longer owns it, so it is returned as such.
        // INVARIANT: The rest of the ring, if any, is linked in order, from its new oldest.
        unsafe {
            let (newest, next) = ((*node).prev, (*node).next);
            self.first = if next == node {
                None
            } else {
                (*newest).next = next;
                (*next).prev = newest;
                Some(Fault::from_node(next))
            };
            Some(KBox::from_raw(first.as_ptr()))
        }
    }

    /// Adds `fault` as the newest request of the chain.
    #[inline]
    pub fn push(&mut self, fault: KBox<Fault>) {
        let fault = NonNull::from(KBox::leak(fault));
        let node = Fault::node(fault);
        match self.first {
            None => {
                // SAFETY: `node` belongs to a request we own, on no list.
                unsafe {
                    (*node).next = node;
                    (*node).prev = node;
                }
                // INVARIANT: A ring of one request, which the chain now owns.
                self.first = Some(fault);
            }
            Some(first) => {
                let head = Fault::node(first);
                // SAFETY: By the type invariant the ring is valid and ours; the new node goes
                // between the newest (`head.prev`) and the oldest, making it the newest.
                // INVARIANT: The chain owns the request from now on.
                unsafe {
                    let newest = (*head).prev;
                    (*node).next = head;
                    (*node).prev = newest;
                    (*newest).next = node;
                    (*head).prev = node;
                }
            }
        }
    }

    /// Moves the requests, oldest first, into a C list, before `node`.
    ///
    /// # Safety
    ///
    /// `node` must be a node of a valid C list, which takes over the requests: whoever owns that
    /// list must free them as `KBox<Fault>`.
    #[inline]
    pub(crate) unsafe fn splice_before(self, node: *mut bindings::list_head) {
        let chain = core::mem::ManuallyDrop::new(self);
        let Some(first) = chain.first else {
            return;
        };
        let oldest = Fault::node(first);
        // SAFETY: The ring is valid (type invariant) and `node` is on a valid list (caller). The
        // ring is opened between its newest and oldest request and closed around `node`'s
        // predecessor and `node`.
        unsafe {
            let newest = (*oldest).prev;
            let before = (*node).prev;
            (*before).next = oldest;
            (*oldest).prev = before;
            (*newest).next = node;
            (*node).prev = newest;
        }
    }
}

/// The requests of a [`FaultChain`], oldest first; see [`FaultChain::iter`].
///
/// # Invariants
///
/// `next` is `None` or a request of `chain`.
pub struct ChainIter<'a> {
    chain: &'a FaultChain,
    next: Option<NonNull<Fault>>,
}

impl<'a> Iterator for ChainIter<'a> {
    type Item = &'a Fault;

    fn next(&mut self) -> Option<&'a Fault> {
        let fault = self.next?;
        // SAFETY: By the type invariants of `ChainIter` and `FaultChain`, `fault` is a live request
        // in a valid ring, owned by the chain, borrowed for `'a`.
        let newer = unsafe { Fault::from_node((*Fault::node(fault)).next) };
        // INVARIANT: The next newer request, unless the ring came back to the oldest.
        self.next = (Some(newer) != self.chain.first).then_some(newer);
        // SAFETY: As above.
        Some(unsafe { fault.as_ref() })
    }
}

impl Default for FaultChain {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for FaultChain {
    fn drop(&mut self) {
        let Some(first) = self.first.take() else {
            return;
        };
        let head = Fault::node(first);
        // SAFETY: By the type invariant, every node of the ring is the `list` node of a
        // `KBox<Fault>` that the chain owns; each `next` is read before its request is freed.
        unsafe {
            let mut node = (*head).next;
            while node != head {
                let next = (*node).next;
                drop(KBox::from_raw(Fault::from_node(node).as_ptr()));
                node = next;
            }
            drop(KBox::from_raw(first.as_ptr()));
        }
    }
}
