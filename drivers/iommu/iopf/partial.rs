// SPDX-License-Identifier: GPL-2.0

//! Held partial page requests, indexed by page request group.
//!
//! io-pgfault.c keeps one list of partial requests per device and walks all
//! of it on every last-page request. Here they are spread over a table of
//! [`BUCKETS`] lists by group id. PCIe page request group indexes have 9
//! bits, so a bucket holds the partials of at most two PCIe groups, and
//! completing a group walks only those, however many partials other groups
//! hold. A request is linked through its own `list` node, so holding it
//! costs the request and nothing more; the table is allocated once per
//! device, with its first partial (a device that only sends single-page
//! groups, as SMMU stall does, never needs it). A completed group's requests
//! are moved straight into the group's `faults` list.
//!
//! The number of partials held per device is bounded. A device that never
//! sends the last request of its groups would otherwise grow kernel memory
//! without limit; past the bound, the oldest incomplete group is dropped.
//! A group missing some of its requests is useless anyway: dropping whole
//! groups keeps every group that reaches a handler complete. "Oldest" is
//! tracked per bucket, in the order buckets became non-empty: exact when a
//! bucket holds one group, as with PCIe devices that use fewer than
//! [`BUCKETS`] group indexes at a time.

use kernel::{bindings, prelude::*, types::Opaque};

use crate::fault::Fault;

/// Lists in a device's table: half the PCIe group index space, so that the
/// table takes one 8 KiB slab object.
const BUCKETS: usize = 256;

/// The bucket of group `grpid`.
fn bucket_of(grpid: u32) -> usize {
    grpid as usize % BUCKETS
}

/// The held partials whose group id falls in one bucket.
///
/// # Invariants
///
/// `partials` heads a list, oldest first, of `KBox<Fault>`s owned by the
/// table, linked through their `list` nodes. While the list is not empty,
/// `older` and `newer` link the bucket into its table's age ring.
struct Bucket {
    partials: Opaque<bindings::list_head>,
    older: u16,
    newer: u16,
}

impl Bucket {
    fn head(&self) -> *mut bindings::list_head {
        self.partials.get()
    }

    fn is_empty(&self) -> bool {
        let head = self.head();
        // SAFETY: By the type invariant `head` is an initialised list head,
        // only changed by the table's owner, who has `&self`.
        unsafe { (*head).next == head }
    }

    /// Unlinks and passes to `f` every request of group `grpid`, oldest
    /// first, and returns how many there were.
    ///
    /// `f` takes ownership of the requests, as `KBox<Fault>`s; it may link
    /// each into another list.
    fn remove_group(&self, grpid: u32, mut f: impl FnMut(*mut bindings::list_head)) -> usize {
        let head = self.head();
        let mut removed = 0;
        // SAFETY: By the type invariant every node but `head` is the `list`
        // node of a fault the table owns; `next` is read before `node` is
        // unlinked and handed to `f`.
        unsafe {
            let mut node = (*head).next;
            while node != head {
                let next = (*node).next;
                if (*Fault::from_node(node)).grpid() == grpid {
                    bindings::list_del_init(node);
                    f(node);
                    removed += 1;
                }
                node = next;
            }
        }
        removed
    }
}

/// A device's buckets, and the ring that orders the non-empty ones by age.
///
/// # Invariants
///
/// `oldest` is `None` when every bucket is empty; otherwise it is the index
/// of the non-empty bucket that became non-empty first, and following
/// `newer` from it visits every non-empty bucket, in the order they became
/// non-empty, back to it (`older` is the reverse link).
struct Table {
    buckets: [Bucket; BUCKETS],
    oldest: Option<u16>,
}

// The table must fit the 8 KiB slab cache, not spill into pages of 16 KiB.
const _: () = assert!(core::mem::size_of::<Table>() <= 8192);

impl Table {
    /// An empty table.
    fn new() -> Result<KBox<Self>> {
        let mut table = KBox::<Self>::new_uninit(GFP_KERNEL)?;
        let raw = table.as_mut_ptr();
        for i in 0..BUCKETS {
            // SAFETY: `raw` is valid for writes and will not move: it is a
            // heap allocation that `table` keeps.
            unsafe {
                let bucket = &raw mut (*raw).buckets[i];
                bindings::INIT_LIST_HEAD(Opaque::cast_into(&raw mut (*bucket).partials));
                (&raw mut (*bucket).older).write(0);
                (&raw mut (*bucket).newer).write(0);
            }
        }
        // SAFETY: As above.
        unsafe { (&raw mut (*raw).oldest).write(None) };
        // INVARIANT: Every bucket is an empty, self-linked list, and so `oldest` is `None`.
        // SAFETY: Every field was initialised above.
        Ok(unsafe { table.assume_init() })
    }

    /// Puts bucket `b`, which just became non-empty, last in the age ring.
    fn link_newest(&mut self, b: usize) {
        // `BUCKETS` fits in `u16`.
        let idx = b as u16;
        match self.oldest {
            None => {
                self.buckets[b].older = idx;
                self.buckets[b].newer = idx;
                self.oldest = Some(idx);
            }
            Some(oldest) => {
                let newest = self.buckets[usize::from(oldest)].older;
                self.buckets[b].older = newest;
                self.buckets[b].newer = oldest;
                self.buckets[usize::from(newest)].newer = idx;
                self.buckets[usize::from(oldest)].older = idx;
            }
        }
    }

    /// Takes bucket `b`, which just became empty, out of the age ring.
    fn unlink(&mut self, b: usize) {
        let (older, newer) = (self.buckets[b].older, self.buckets[b].newer);
        if usize::from(newer) == b {
            self.oldest = None;
            return;
        }
        self.buckets[usize::from(older)].newer = newer;
        self.buckets[usize::from(newer)].older = older;
        if self.oldest == Some(b as u16) {
            self.oldest = Some(newer);
        }
    }

    /// Removes the requests of group `grpid`, passing each to `f`.
    fn remove_group(&mut self, grpid: u32, f: impl FnMut(*mut bindings::list_head)) -> usize {
        let b = bucket_of(grpid);
        let removed = self.buckets[b].remove_group(grpid, f);
        if removed > 0 && self.buckets[b].is_empty() {
            self.unlink(b);
        }
        removed
    }
}

/// Frees a request unlinked from a bucket.
fn free(node: *mut bindings::list_head) {
    // SAFETY: Buckets hold `KBox<Fault>`s; `remove_group` gives up each one it
    // passes on, unlinked.
    drop(unsafe { KBox::from_raw(Fault::from_node(node)) });
}

/// What [`PartialStore::hold`] did to make room.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Evicted {
    /// Group whose partials were dropped.
    pub(crate) grpid: u32,
    /// How many partials it held.
    pub(crate) count: usize,
}

/// A device's held partial requests.
///
/// # Invariants
///
/// `held` is the number of requests in `table`'s buckets (0 without a table).
pub(crate) struct PartialStore {
    table: Option<KBox<Table>>,
    held: usize,
    limit: usize,
    dropped: u64,
}

// SAFETY: The store owns its requests, plain data that any thread may free;
// the list nodes are only reached through the store.
unsafe impl Send for PartialStore {}

impl PartialStore {
    /// An empty store holding at most `limit` (at least 1) requests.
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            table: None,
            held: 0,
            limit: limit.max(1),
            dropped: 0,
        }
    }

    /// Number of requests held.
    pub(crate) fn held(&self) -> usize {
        self.held
    }

    /// Number of requests dropped to stay within the limit, ever.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Holds a partial request until its group's last request arrives.
    ///
    /// At the limit, the oldest incomplete group is dropped first and
    /// returned. If the device's table cannot be allocated the request is
    /// freed and nothing else changes.
    pub(crate) fn hold(&mut self, fault: KBox<Fault>) -> Result<Option<Evicted>> {
        if self.table.is_none() {
            self.table = Some(Table::new()?);
        }
        let evicted = if self.held >= self.limit {
            self.evict_oldest()
        } else {
            None
        };
        let Some(table) = self.table.as_mut() else {
            return Err(ENOMEM);
        };
        let b = bucket_of(fault.grpid());
        if table.buckets[b].is_empty() {
            table.link_newest(b);
        }
        let node = Fault::node(KBox::into_raw(fault));
        // SAFETY: `node` belongs to a fault on no list; adding it last keeps
        // the bucket oldest first, and the table owns it from now on.
        unsafe { bindings::list_add_tail(node, table.buckets[b].head()) };
        // INVARIANT: One more request in the buckets.
        self.held += 1;
        Ok(evicted)
    }

    fn evict_oldest(&mut self) -> Option<Evicted> {
        let table = self.table.as_mut()?;
        let head = table.buckets[usize::from(table.oldest?)].head();
        // SAFETY: The oldest bucket is not empty (`Table` invariant), so its
        // first node is the `list` node of a held fault.
        let grpid = unsafe { (*Fault::from_node((*head).next)).grpid() };
        let count = table.remove_group(grpid, free);
        // INVARIANT: `count` requests left the buckets.
        self.held -= count;
        self.dropped += count as u64;
        Some(Evicted { grpid, count })
    }

    /// Moves the held partials of group `grpid`, oldest first, to the end of
    /// the list headed by `head`, and returns how many there were.
    ///
    /// # Safety
    ///
    /// `head` must be an initialised list head that stays at its address
    /// while it holds the requests, whose new owner must free them as
    /// `KBox<Fault>`.
    #[inline]
    pub(crate) unsafe fn take_into(&mut self, grpid: u32, head: *mut bindings::list_head) -> usize {
        // Most groups have a single request: nothing held, nothing to walk.
        if self.held == 0 {
            return 0;
        }
        // SAFETY: Guaranteed by the caller.
        unsafe { self.take_held_into(grpid, head) }
    }

    /// [`PartialStore::take_into`] when some partials are held.
    ///
    /// # Safety
    ///
    /// As for [`PartialStore::take_into`].
    unsafe fn take_held_into(&mut self, grpid: u32, head: *mut bindings::list_head) -> usize {
        let Some(table) = self.table.as_mut() else {
            return 0;
        };
        let taken = table.remove_group(grpid, |node| {
            // SAFETY: `node` is unlinked, and `head` is valid (per the caller),
            // which takes over the request.
            unsafe { bindings::list_add_tail(node, head) }
        });
        // INVARIANT: `taken` requests left the buckets.
        self.held -= taken;
        taken
    }

    /// Frees the held partials of group `grpid` and returns how many there were.
    pub(crate) fn discard(&mut self, grpid: u32) -> usize {
        let Some(table) = self.table.as_mut() else {
            return 0;
        };
        let freed = table.remove_group(grpid, free);
        // INVARIANT: `freed` requests left the buckets.
        self.held -= freed;
        freed
    }

    /// Frees every held request and returns how many there were.
    pub(crate) fn clear(&mut self) -> usize {
        let held = self.held;
        if let Some(table) = self.table.as_mut() {
            while let Some(oldest) = table.oldest {
                let head = table.buckets[usize::from(oldest)].head();
                // SAFETY: A bucket in the ring is not empty (`Table` invariant).
                let grpid = unsafe { (*Fault::from_node((*head).next)).grpid() };
                table.remove_group(grpid, free);
            }
        }
        // INVARIANT: The buckets are empty.
        self.held = 0;
        held
    }
}

impl Drop for PartialStore {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(CONFIG_IOMMU_IOPF_KUNIT_TEST)]
#[kunit_tests(iopf_rust_partial)]
mod tests {
    use super::*;

    fn request(grpid: u32, addr: u64) -> KBox<Fault> {
        let mut evt = bindings::iopf_fault::default();
        evt.fault.type_ = bindings::iommu_fault_type_IOMMU_FAULT_PAGE_REQ;
        evt.fault.prm.grpid = grpid;
        evt.fault.prm.addr = addr;
        Fault::boxed(&evt).expect("allocating a fault")
    }

    /// Takes group `grpid` into a C list and returns its addresses, in list
    /// order, freeing the requests as a group does.
    fn take(store: &mut PartialStore, grpid: u32) -> Result<KVec<u64>> {
        let mut head = bindings::list_head::default();
        // SAFETY: `head` stays on the stack until the list is emptied below.
        unsafe { bindings::INIT_LIST_HEAD(&raw mut head) };
        // SAFETY: As above; the requests are freed below as `KBox<Fault>`.
        let taken = unsafe { store.take_into(grpid, &raw mut head) };
        let mut seen = KVec::new();
        while head.next != &raw mut head {
            let node = head.next;
            // SAFETY: Every node but the head is a taken fault, now ours.
            let fault = unsafe {
                bindings::list_del_init(node);
                KBox::from_raw(Fault::from_node(node))
            };
            seen.push(fault.0.fault.prm.addr, GFP_KERNEL)?;
        }
        assert_eq!(seen.len(), taken);
        Ok(seen)
    }

    #[test]
    fn groups_keep_arrival_order() -> Result {
        let mut store = PartialStore::new(64);
        for (grpid, addr) in [
            (1, 0x1000),
            (2, 0x2000),
            (1, 0x3000),
            (2, 0x4000),
            (1, 0x5000),
        ] {
            assert_eq!(store.hold(request(grpid, addr))?, None);
        }
        assert_eq!(store.held(), 5);
        assert_eq!(&take(&mut store, 1)?[..], &[0x1000, 0x3000, 0x5000]);
        assert_eq!(store.held(), 2);
        assert!(take(&mut store, 1)?.is_empty());
        assert_eq!(&take(&mut store, 2)?[..], &[0x2000, 0x4000]);
        assert_eq!(store.held(), 0);
        Ok(())
    }

    #[test]
    fn groups_sharing_a_bucket_stay_apart() -> Result {
        let (a, b) = (5, 5 + BUCKETS as u32);
        assert_eq!(bucket_of(a), bucket_of(b));
        let mut store = PartialStore::new(64);
        for (grpid, addr) in [(a, 0x1000), (b, 0x2000), (a, 0x3000), (b, 0x4000)] {
            store.hold(request(grpid, addr))?;
        }
        assert_eq!(&take(&mut store, b)?[..], &[0x2000, 0x4000]);
        assert_eq!(&take(&mut store, a)?[..], &[0x1000, 0x3000]);
        assert_eq!(store.held(), 0);
        Ok(())
    }

    #[test]
    fn take_appends_after_what_the_list_holds() -> Result {
        let mut store = PartialStore::new(8);
        store.hold(request(7, 0xa000))?;
        store.hold(request(7, 0xb000))?;
        let mut first = bindings::iopf_fault::default();
        let mut head = bindings::list_head::default();
        // SAFETY: `head` and `first` outlive the list, emptied below.
        unsafe {
            bindings::INIT_LIST_HEAD(&raw mut head);
            bindings::list_add_tail(&raw mut first.list, &raw mut head);
        }
        // SAFETY: As above; the taken faults are freed below.
        assert_eq!(unsafe { store.take_into(7, &raw mut head) }, 2);
        let mut seen = KVec::new();
        // SAFETY: The list holds `first`, then the taken faults, ours to free.
        unsafe {
            bindings::list_del_init(&raw mut first.list);
            while head.next != &raw mut head {
                let node = head.next;
                bindings::list_del_init(node);
                let fault = KBox::from_raw(Fault::from_node(node));
                seen.push(fault.0.fault.prm.addr, GFP_KERNEL)?;
            }
        }
        assert_eq!(&seen[..], &[0xa000, 0xb000]);
        Ok(())
    }

    #[test]
    fn limit_drops_the_oldest_group() -> Result {
        let mut store = PartialStore::new(4);
        store.hold(request(1, 0x1000))?;
        store.hold(request(2, 0x2000))?;
        store.hold(request(1, 0x3000))?;
        store.hold(request(3, 0x4000))?;
        // Full: the next request evicts group 1, the oldest, with both partials.
        assert_eq!(
            store.hold(request(4, 0x5000))?,
            Some(Evicted { grpid: 1, count: 2 })
        );
        assert_eq!(store.held(), 3);
        assert_eq!(store.dropped(), 2);
        assert!(take(&mut store, 1)?.is_empty());
        // Group 2 is now the oldest.
        store.hold(request(5, 0x6000))?;
        assert_eq!(
            store.hold(request(5, 0x7000))?,
            Some(Evicted { grpid: 2, count: 1 })
        );
        assert_eq!(store.held(), 4);
        // Completing group 3 makes group 4 the oldest.
        assert_eq!(&take(&mut store, 3)?[..], &[0x4000]);
        store.hold(request(6, 0x8000))?;
        assert_eq!(
            store.hold(request(6, 0x9000))?,
            Some(Evicted { grpid: 4, count: 1 })
        );
        Ok(())
    }

    #[test]
    fn a_flood_of_one_group_stays_bounded() -> Result {
        let mut store = PartialStore::new(16);
        for i in 0..1000u64 {
            store.hold(request(9, i << 12))?;
            assert!(store.held() <= 16);
        }
        assert_eq!(store.dropped() + store.held() as u64, 1000);
        Ok(())
    }

    #[test]
    fn discard_frees_one_group() -> Result {
        let mut store = PartialStore::new(32);
        store.hold(request(1, 0x1000))?;
        store.hold(request(2, 0x2000))?;
        store.hold(request(1, 0x3000))?;
        assert_eq!(store.discard(1), 2);
        assert_eq!(store.discard(1), 0);
        assert_eq!(store.held(), 1);
        assert_eq!(&take(&mut store, 2)?[..], &[0x2000]);
        Ok(())
    }

    #[test]
    fn clear_frees_everything() -> Result {
        let mut store = PartialStore::new(32);
        for i in 0..20u32 {
            store.hold(request(i % 3 + (i % 2) * BUCKETS as u32, u64::from(i)))?;
        }
        assert_eq!(store.clear(), 20);
        assert_eq!(store.held(), 0);
        assert!(take(&mut store, 0)?.is_empty());
        // The store is usable again.
        store.hold(request(0, 1))?;
        assert_eq!(&take(&mut store, 0)?[..], &[1]);
        Ok(())
    }
}
