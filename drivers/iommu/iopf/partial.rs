// SPDX-License-Identifier: GPL-2.0

//! Held partial page requests, indexed by page request group.
//!
//! io-pgfault.c keeps one list of partial requests per device and walks all of it on every last
//! request. Here a device's partials are kept per group, as a [`FaultChain`] (linked through the
//! requests' own C nodes, so a held request costs the request alone) in a small open-addressing
//! table keyed by group index: completing a group costs the same however many requests other
//! groups hold. The table takes 16 bytes a slot. It is allocated with the device's first partial,
//! 16 slots (256 bytes), and doubles whenever it would be more than half full, so a device's
//! memory grows with the most groups it held at once (at most 128 KiB with the default bound); it
//! never shrinks until the device leaves its queue. The kernel's index structures cost more here:
//! an XArray needs a 576-byte node for any group index but 0, an rbtree allocates a node for each
//! group (a second allocation on the first request of every group), and a maple tree may
//! allocate with GFP_KERNEL when an entry is erased, which here happens under a spinlock.
//! The store is under a spinlock of its own (see `fault_param.rs`), so the table grows, and the
//! copy of a request to hold is allocated, with GFP_NOWAIT: if the copy cannot be allocated so,
//! the caller allocates it with reclaim, outside the lock, and offers it again.
//!
//! The number of partials held per device is bounded by `CONFIG_IOMMU_IOPF_RUST_MAX_PARTIAL`: a
//! device that never sends the last request of its groups would otherwise grow kernel memory
//! without limit. Past the bound, the oldest group is dropped, whole (the table threads its
//! groups on a list in the order they started), and the memory of one of its requests holds the
//! request that made room: a device that floods the store with groups of one request allocates
//! and frees nothing. A group that lost requests is useless, and its index is remembered (for
//! PCIe indexes, below 512): its later partials are dropped, and its last request is answered
//! `IOMMU_PAGE_RESP_INVALID` without reaching a handler, so no group that lost requests to the
//! bound reaches a handler. Indexes from 512 up, which no PCIe device sends, are not remembered:
//! a group dropped there ends with a last request that forms a group of the requests that came
//! after the drop. A new group whose first request finds the table unable to grow is dropped the
//! same way, remembered or not by its index.

use core::mem;

use kernel::{
    alloc::AllocError,
    bindings,
    iommu::fault::{
        Fault,
        FaultChain, //
    },
    prelude::*,
};

/// Held partial requests per device: `CONFIG_IOMMU_IOPF_RUST_MAX_PARTIAL`.
const MAX_PARTIAL: usize = bindings::CONFIG_IOMMU_IOPF_RUST_MAX_PARTIAL as usize;
/// Slots of a new table: 256 bytes.
const MIN_SLOTS: usize = 16;
/// Slot numbers are `u16`, with [`NONE`] spare: at most 16,384 groups, at half load.
const MAX_SLOTS: usize = 1 << 15;
/// No slot.
const NONE: u16 = u16::MAX;
/// PCIe page request group indexes have 9 bits.
const PCIE_GROUPS: u32 = 512;

/// The held requests of one group, and its place on the list of groups by age.
#[derive(Default)]
struct Slot {
    /// Empty in a free slot.
    requests: FaultChain,
    count: u32,
    older: u16,
    newer: u16,
}

/// What [`Partials::hold`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Hold {
    /// The request is held.
    Held,
    /// The oldest group, `grpid`, was dropped with its `count` requests to stay within the bound,
    /// and the request is held; or, if that was the request's own group, the request went too
    /// (counted in `count`). `first` for the first group dropped since a group was last taken or
    /// the store cleared, so that a flood can be reported once.
    Evicted {
        grpid: u32,
        count: usize,
        first: bool,
    },
    /// The request was dropped: its group lost requests before, or the table could not grow.
    Dropped,
}

/// A group whose requests were dropped: its last request must be refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Incomplete;

/// A device's held partial requests.
///
/// # Invariants
///
/// - `slots` is empty or has a power-of-two length, at most [`MAX_SLOTS`], more than twice
///   `groups`. A slot is used iff its `requests` are not empty; a used slot holds `count`
///   requests of one group, found by probing forward from the slot [`Partials::home`] gives its
///   group index, with no free slot in between.
/// - `oldest` and `newest` are the ends of the list of used slots by the age of their group,
///   linked by `older` and `newer` ([`NONE`] at the ends, or for both when no slot is used).
/// - `held` is the sum of `count`, at most `limit`; `groups` the number of used slots.
/// - `evicted` has the bits of the group indexes below [`PCIE_GROUPS`] that lost requests,
///   `incomplete` of them, and none of them is used in `slots`.
/// - `overflowing` is set when a group is dropped to stay within the bound, and cleared when a
///   group is taken or the store cleared.
pub(crate) struct Partials {
    slots: KVec<Slot>,
    shift: u32,
    groups: usize,
    held: usize,
    held_max: usize,
    requests: u64,
    limit: usize,
    oldest: u16,
    newest: u16,
    evicted: [u64; (PCIE_GROUPS / 64) as usize],
    incomplete: u32,
    dropped: u64,
    overflowing: bool,
}

impl Partials {
    /// An empty store, bounded by `CONFIG_IOMMU_IOPF_RUST_MAX_PARTIAL`.
    pub(crate) const fn new() -> Self {
        Self::with_limit(MAX_PARTIAL)
    }

    /// An empty store holding at most `limit` requests (at least 1).
    pub(crate) const fn with_limit(limit: usize) -> Self {
        Self {
            slots: KVec::new(),
            shift: 0,
            groups: 0,
            held: 0,
            held_max: 0,
            requests: 0,
            limit: if limit == 0 { 1 } else { limit },
            oldest: NONE,
            newest: NONE,
            evicted: [0; (PCIE_GROUPS / 64) as usize],
            incomplete: 0,
            dropped: 0,
            overflowing: false,
        }
    }

    /// Whether no request is held and no group is remembered as incomplete: then
    /// [`Partials::take`] has nothing to take, and nothing to refuse.
    pub(crate) fn is_empty(&self) -> bool {
        self.held == 0 && self.incomplete == 0
    }

    /// Number of requests held.
    pub(crate) fn held(&self) -> usize {
        self.held
    }

    /// The most requests held at once, ever.
    pub(crate) fn held_max(&self) -> usize {
        self.held_max
    }

    /// Number of requests offered to [`Partials::hold`], ever.
    pub(crate) fn requests(&self) -> u64 {
        self.requests
    }

    /// Number of requests dropped, ever: to stay within the bound, of a group that lost requests,
    /// or for want of memory.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Holds a copy of `fault`, a request that is not the last of its group, until the group's
    /// last one.
    ///
    /// The caller holds a spinlock, so the copy is allocated without reclaim. If that fails,
    /// nothing changes: the caller may allocate the copy itself, with reclaim, and pass it to
    /// [`Partials::hold_owned`]. Past the bound, and for a request to drop, nothing is allocated.
    #[inline]
    pub(crate) fn hold(&mut self, fault: &Fault) -> Result<Hold, AllocError> {
        if !self.has_room_for(fault.grpid()) {
            return Ok(self.hold_past_bound(fault));
        }
        let copy = fault.to_owned(GFP_NOWAIT | __GFP_NOWARN)?;
        self.requests += 1;
        Ok(self.place(copy, Hold::Held))
    }

    /// Holds `fault`, a copy that the caller allocated because [`Partials::hold`] could not.
    pub(crate) fn hold_owned(&mut self, fault: KBox<Fault>) -> Hold {
        if !self.has_room_for(fault.grpid()) {
            return self.hold_past_bound(&fault);
        }
        self.requests += 1;
        self.place(fault, Hold::Held)
    }

    /// Whether a request of group `grpid` is held in memory of its own: the store is within its
    /// bound, and the group lost no request before.
    #[inline]
    fn has_room_for(&self, grpid: u32) -> bool {
        self.held < self.limit && !self.is_evicted(grpid)
    }

    /// Drops `fault` if its group lost requests before; otherwise drops the oldest group to stay
    /// within the bound, and holds a copy of `fault` in the memory of one of its requests.
    fn hold_past_bound(&mut self, fault: &Fault) -> Hold {
        self.requests += 1;
        if self.is_evicted(fault.grpid()) {
            self.dropped += 1;
            return Hold::Dropped;
        }
        match self.make_room(fault.grpid()) {
            Ok((evicted, mut memory)) => {
                memory.copy_from(fault);
                self.place(memory, evicted)
            }
            Err(dropped) => dropped,
        }
    }

    /// Adds `fault` to its group's requests, a new group if it has none held: `outcome`, or
    /// [`Hold::Dropped`] if the table cannot grow for a new group.
    #[inline]
    fn place(&mut self, fault: KBox<Fault>, outcome: Hold) -> Hold {
        let grpid = fault.grpid();
        let slot = match self.find(grpid) {
            Some(slot) => slot,
            None if (self.groups + 1) * 2 < self.slots.len() => self.insert(grpid),
            None => match self.grow_and_insert(grpid) {
                Some(slot) => slot,
                None => return Hold::Dropped,
            },
        };
        let slot = &mut self.slots[slot];
        slot.requests.push(fault);
        slot.count += 1;
        self.held += 1;
        self.held_max = self.held_max.max(self.held);
        outcome
    }

    /// Drops the oldest group, whole, to make room for a request of group `grpid`: `Ok` with what
    /// was dropped and the memory of one of its requests, or `Err` if that was `grpid`'s own group,
    /// which the request must follow. There must be a request held.
    fn make_room(&mut self, grpid: u32) -> Result<(Hold, KBox<Fault>), Hold> {
        let (mut requests, count) = self.remove(usize::from(self.oldest));
        self.held -= count;
        self.dropped += count as u64;
        let first = !mem::replace(&mut self.overflowing, true);
        let memory = requests.pop_front();
        let oldest = memory.as_ref().map_or(grpid, |fault| fault.grpid());
        self.set_evicted(oldest, true);
        match memory {
            Some(memory) if oldest != grpid || !self.is_evicted(grpid) => {
                let evicted = Hold::Evicted {
                    grpid: oldest,
                    count,
                    first,
                };
                Ok((evicted, memory))
            }
            _ => {
                self.dropped += 1;
                Err(Hold::Evicted {
                    grpid,
                    count: count + 1,
                    first,
                })
            }
        }
    }

    /// A slot for the new group `grpid`, in a table grown to fit it; `None` (with the group
    /// remembered as incomplete, and the request counted dropped) if it cannot grow.
    #[cold]
    fn grow_and_insert(&mut self, grpid: u32) -> Option<usize> {
        if self.grow().is_ok() {
            return Some(self.insert(grpid));
        }
        self.set_evicted(grpid, true);
        self.dropped += 1;
        None
    }

    /// Takes the requests held for group `grpid`, oldest first, for its last request to complete.
    ///
    /// Fails if the group lost requests: its last request must not reach a handler.
    pub(crate) fn take(&mut self, grpid: u32) -> Result<FaultChain, Incomplete> {
        if self.is_evicted(grpid) {
            self.set_evicted(grpid, false);
            return Err(Incomplete);
        }
        let Some(slot) = self.find(grpid) else {
            return Ok(FaultChain::new());
        };
        let (requests, count) = self.remove(slot);
        self.held -= count;
        self.overflowing = false;
        Ok(requests)
    }

    /// Drops every held request, and forgets the groups that lost requests: the device will send
    /// them again (`iopf_queue_discard_partial()`, device removal). The table stays: a device
    /// that held this many groups will likely again, and should not have to grow it (without
    /// reclaim, under a spinlock) every time.
    pub(crate) fn clear(&mut self) {
        for slot in self.slots.iter_mut() {
            *slot = Slot::default();
        }
        self.groups = 0;
        self.held = 0;
        self.oldest = NONE;
        self.newest = NONE;
        self.evicted = [0; (PCIE_GROUPS / 64) as usize];
        self.incomplete = 0;
        self.overflowing = false;
    }

    /// The slot where the search for group `grpid` starts (Fibonacci hashing).
    fn home(&self, grpid: u32) -> usize {
        (grpid.wrapping_mul(0x9e37_79b9) >> self.shift) as usize
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// The slot of group `grpid`, if it holds requests.
    fn find(&self, grpid: u32) -> Option<usize> {
        if self.groups == 0 {
            return None;
        }
        let mut slot = self.home(grpid);
        loop {
            // A free slot ends the search: the table is never full.
            if self.slots[slot].requests.first()?.grpid() == grpid {
                return Some(slot);
            }
            slot = (slot + 1) & self.mask();
        }
    }

    /// A free slot for group `grpid`, put last on the list by age. There must be room.
    fn insert(&mut self, grpid: u32) -> usize {
        let mut slot = self.home(grpid);
        while !self.slots[slot].requests.is_empty() {
            slot = (slot + 1) & self.mask();
        }
        self.groups += 1;
        self.link_newest(slot);
        slot
    }

    /// Empties `slot` and returns its requests and their count.
    fn remove(&mut self, slot: usize) -> (FaultChain, usize) {
        self.unlink(slot);
        let removed = mem::take(&mut self.slots[slot]);
        self.groups -= 1;
        // Backward shift: the slots that follow, up to a free one, move into the hole when it
        // lies between their home and them, so that every search still finds them.
        let mask = self.mask();
        let mut hole = slot;
        let mut next = (slot + 1) & mask;
        while let Some(first) = self.slots[next].requests.first() {
            let home = self.home(first.grpid());
            if next.wrapping_sub(home) & mask >= next.wrapping_sub(hole) & mask {
                self.relocate(next, hole);
                hole = next;
            }
            next = (next + 1) & mask;
        }
        (removed.requests, removed.count as usize)
    }

    /// Moves the group of slot `from` to the free slot `to`, keeping its place by age.
    fn relocate(&mut self, from: usize, to: usize) {
        self.slots[to] = mem::take(&mut self.slots[from]);
        // `MAX_SLOTS` fits in `u16`.
        let (older, newer, to) = (self.slots[to].older, self.slots[to].newer, to as u16);
        self.set_newer(older, to);
        self.set_older(newer, to);
    }

    /// Puts `slot` last on the list by age.
    fn link_newest(&mut self, slot: usize) {
        let newest = mem::replace(&mut self.newest, slot as u16);
        (self.slots[slot].older, self.slots[slot].newer) = (newest, NONE);
        self.set_newer(newest, slot as u16);
    }

    /// Takes `slot` off the list by age.
    fn unlink(&mut self, slot: usize) {
        let (older, newer) = (self.slots[slot].older, self.slots[slot].newer);
        self.set_newer(older, newer);
        self.set_older(newer, older);
    }

    /// Makes `newer` the next newer group after `slot`, or the oldest if `slot` is [`NONE`].
    fn set_newer(&mut self, slot: u16, newer: u16) {
        match slot {
            NONE => self.oldest = newer,
            slot => self.slots[usize::from(slot)].newer = newer,
        }
    }

    /// Makes `older` the next older group before `slot`, or the newest if `slot` is [`NONE`].
    fn set_older(&mut self, slot: u16, older: u16) {
        match slot {
            NONE => self.newest = older,
            slot => self.slots[usize::from(slot)].older = older,
        }
    }

    /// Doubles the table (or allocates its first), without reclaim.
    fn grow(&mut self) -> Result {
        let len = (self.slots.len() * 2).max(MIN_SLOTS);
        if len > MAX_SLOTS {
            return Err(ENOSPC);
        }
        let flags = GFP_NOWAIT | __GFP_NOWARN;
        let mut slots = KVec::with_capacity(len, flags)?;
        for _ in 0..len {
            slots.push(Slot::default(), flags)?;
        }
        let mut old = mem::replace(&mut self.slots, slots);
        self.shift = 32 - len.trailing_zeros();
        // Every group again, oldest first, so that the new list by age is the old one.
        let mut next = mem::replace(&mut self.oldest, NONE);
        self.newest = NONE;
        self.groups = 0;
        while next != NONE {
            let group = mem::take(&mut old[usize::from(next)]);
            next = group.newer;
            if let Some(grpid) = group.requests.first().map(Fault::grpid) {
                let slot = self.insert(grpid);
                self.slots[slot].requests = group.requests;
                self.slots[slot].count = group.count;
            }
        }
        Ok(())
    }

    fn is_evicted(&self, grpid: u32) -> bool {
        grpid < PCIE_GROUPS && self.evicted[(grpid / 64) as usize] & (1 << (grpid % 64)) != 0
    }

    fn set_evicted(&mut self, grpid: u32, evicted: bool) {
        if grpid < PCIE_GROUPS {
            let (word, bit) = (&mut self.evicted[(grpid / 64) as usize], 1 << (grpid % 64));
            if (*word & bit != 0) != evicted {
                *word ^= bit;
                // INVARIANT: One more or one fewer bit set in `evicted`.
                self.incomplete = if evicted {
                    self.incomplete + 1
                } else {
                    self.incomplete - 1
                };
            }
        }
    }
}

#[cfg(CONFIG_IOMMU_IOPF_KUNIT_TEST)]
#[kunit_tests(iopf_rust_partial)]
mod tests {
    use super::*;
    use kernel::iommu::fault::{
        PageRequest,
        Permission, //
    };

    fn request(grpid: u32, addr: u64) -> KBox<Fault> {
        let request = PageRequest::new(addr, Permission::Read.into(), grpid).partial();
        Fault::new(&request, GFP_KERNEL).expect("allocating a request")
    }

    /// Holds a partial request of group `grpid` for `addr`, as the report path does.
    fn hold(store: &mut Partials, grpid: u32, addr: u64) -> Hold {
        store
            .hold(&request(grpid, addr))
            .expect("allocating without reclaim")
    }

    /// The addresses of group `grpid`'s requests, in the order they are taken.
    fn take(store: &mut Partials, grpid: u32) -> Result<KVec<u64>, Incomplete> {
        let chain = store.take(grpid)?;
        let mut addrs = KVec::new();
        for fault in chain.iter() {
            addrs
                .push(fault.request().addr, GFP_KERNEL)
                .expect("no memory");
        }
        Ok(addrs)
    }

    #[test]
    fn groups_keep_arrival_order() {
        let mut store = Partials::with_limit(64);
        for (grpid, addr) in [
            (1, 0x1000),
            (2, 0x2000),
            (1, 0x3000),
            (2, 0x4000),
            (1, 0x5000),
        ] {
            assert_eq!(hold(&mut store, grpid, addr), Hold::Held);
        }
        assert_eq!(store.held(), 5);
        assert_eq!(&take(&mut store, 1).unwrap()[..], &[0x1000, 0x3000, 0x5000]);
        assert_eq!(store.held(), 2);
        assert!(take(&mut store, 1).unwrap().is_empty());
        assert_eq!(&take(&mut store, 2).unwrap()[..], &[0x2000, 0x4000]);
        assert_eq!(store.held(), 0);
    }

    #[test]
    fn many_groups_grow_the_table_and_stay_apart() {
        let mut store = Partials::with_limit(4096);
        // Enough groups to double the table several times, with colliding homes among them.
        for round in 0..2u64 {
            for grpid in 0..600u32 {
                hold(&mut store, grpid, u64::from(grpid) << 12 | round);
            }
        }
        assert_eq!(store.held(), 1200);
        // Every other group, so that removals shift the slots of the others.
        for grpid in (0..600u32).step_by(2) {
            let base = u64::from(grpid) << 12;
            assert_eq!(&take(&mut store, grpid).unwrap()[..], &[base, base | 1]);
        }
        for grpid in (1..600u32).step_by(2) {
            let base = u64::from(grpid) << 12;
            assert_eq!(&take(&mut store, grpid).unwrap()[..], &[base, base | 1]);
        }
        assert_eq!(store.held(), 0);
    }

    #[test]
    fn the_bound_drops_the_oldest_group_and_refuses_it() {
        let mut store = Partials::with_limit(4);
        hold(&mut store, 1, 0x1000);
        hold(&mut store, 2, 0x2000);
        hold(&mut store, 1, 0x3000);
        hold(&mut store, 3, 0x4000);
        // Full: the next request evicts group 1, the oldest, with both of its partials.
        assert_eq!(
            hold(&mut store, 4, 0x5000),
            Hold::Evicted {
                grpid: 1,
                count: 2,
                first: true
            }
        );
        assert_eq!(store.held(), 3);
        assert_eq!(store.dropped(), 2);
        // Group 1 lost requests: its later partials are dropped, its last refused, once.
        assert_eq!(hold(&mut store, 1, 0x6000), Hold::Dropped);
        assert_eq!(take(&mut store, 1), Err(Incomplete));
        assert!(take(&mut store, 1).unwrap().is_empty());
        // Group 2 is now the oldest; completing group 3 leaves group 4 after it.
        assert_eq!(&take(&mut store, 3).unwrap()[..], &[0x4000]);
        hold(&mut store, 5, 0x7000);
        hold(&mut store, 5, 0x8000);
        assert_eq!(
            hold(&mut store, 6, 0x9000),
            Hold::Evicted {
                grpid: 2,
                count: 1,
                first: true
            }
        );
        assert_eq!(
            hold(&mut store, 6, 0xa000),
            Hold::Evicted {
                grpid: 4,
                count: 1,
                first: false
            }
        );
        assert_eq!(&take(&mut store, 5).unwrap()[..], &[0x7000, 0x8000]);
    }

    #[test]
    fn every_request_not_held_is_counted_as_dropped() {
        let mut store = Partials::with_limit(2);
        hold(&mut store, 1, 0x1000);
        hold(&mut store, 1, 0x2000);
        // Full: the oldest group is this request's own, and goes with it.
        assert_eq!(
            hold(&mut store, 1, 0x3000),
            Hold::Evicted {
                grpid: 1,
                count: 3,
                first: true
            }
        );
        assert_eq!(store.dropped(), 3);
        assert_eq!(hold(&mut store, 1, 0x4000), Hold::Dropped);
        assert_eq!(store.dropped(), 4);
        assert_eq!((store.held(), store.held_max()), (0, 2));
    }

    #[test]
    fn empty_until_nothing_is_held_or_remembered() {
        let mut store = Partials::with_limit(1);
        assert!(store.is_empty());
        hold(&mut store, 1, 0x1000);
        assert!(!store.is_empty());
        assert_eq!(&take(&mut store, 1).unwrap()[..], &[0x1000]);
        assert!(store.is_empty());
        // Group 2 is dropped for group 3: nothing of it is held, but its last must be refused.
        hold(&mut store, 2, 0x2000);
        hold(&mut store, 3, 0x3000);
        assert!(take(&mut store, 3).is_ok());
        assert_eq!(store.held(), 0);
        assert!(!store.is_empty());
        assert_eq!(take(&mut store, 2), Err(Incomplete));
        assert!(store.is_empty());
    }

    #[test]
    fn at_the_bound_a_request_takes_the_memory_of_one_dropped() {
        let mut store = Partials::with_limit(2);
        hold(&mut store, 1, 0x1000);
        hold(&mut store, 2, 0x2000);
        let oldest = &store.slots[usize::from(store.oldest)].requests;
        let memory = oldest.first().map(Fault::as_raw);
        assert_eq!(
            hold(&mut store, 3, 0x3000),
            Hold::Evicted {
                grpid: 1,
                count: 1,
                first: true
            }
        );
        let group = store.take(3).expect("group 3 lost nothing");
        assert_eq!(group.first().map(Fault::as_raw), memory);
        assert_eq!(
            group.first().map(|fault| fault.request().addr),
            Some(0x3000)
        );
        assert_eq!(&take(&mut store, 2).unwrap()[..], &[0x2000]);
    }

    #[test]
    fn a_copy_allocated_by_the_caller_is_held_within_the_bound() {
        let mut store = Partials::with_limit(1);
        let copy = request(1, 0x1000);
        let memory = copy.as_raw();
        assert_eq!(store.hold_owned(copy), Hold::Held);
        let oldest = &store.slots[usize::from(store.oldest)].requests;
        assert_eq!(oldest.first().map(Fault::as_raw), Some(memory));
        // Past the bound, the dropped group's memory holds it, and the caller's copy is freed.
        assert_eq!(
            store.hold_owned(request(2, 0x2000)),
            Hold::Evicted {
                grpid: 1,
                count: 1,
                first: true
            }
        );
        let group = store.take(2).expect("group 2 lost nothing");
        assert_eq!(group.first().map(Fault::as_raw), Some(memory));
        assert_eq!(
            group.first().map(|fault| fault.request().addr),
            Some(0x2000)
        );
        assert_eq!((store.requests(), store.dropped()), (2, 1));
    }

    #[test]
    fn a_flood_is_first_once_until_a_group_completes() {
        let mut store = Partials::with_limit(2);
        let first = |held| match held {
            Hold::Evicted { first, .. } => first,
            held => panic!("{held:?} at the bound"),
        };
        hold(&mut store, 1, 0x1000);
        hold(&mut store, 2, 0x2000);
        assert!(first(hold(&mut store, 3, 0x3000)));
        assert!(!first(hold(&mut store, 4, 0x4000)));
        assert!(!first(hold(&mut store, 5, 0x5000)));
        assert_eq!(&take(&mut store, 4).unwrap()[..], &[0x4000]);
        hold(&mut store, 6, 0x6000);
        assert!(first(hold(&mut store, 7, 0x7000)));
        store.clear();
        hold(&mut store, 8, 0x8000);
        hold(&mut store, 9, 0x9000);
        assert!(first(hold(&mut store, 10, 0xa000)));
    }

    #[test]
    fn groups_beyond_pcie_are_not_remembered() {
        let mut store = Partials::with_limit(2);
        hold(&mut store, 1000, 0x1000);
        hold(&mut store, 1001, 0x2000);
        assert_eq!(
            hold(&mut store, 1001, 0x3000),
            Hold::Evicted {
                grpid: 1000,
                count: 1,
                first: true
            }
        );
        assert!(take(&mut store, 1000).unwrap().is_empty());
    }

    #[test]
    fn a_flood_stays_bounded_and_no_group_comes_incomplete() {
        const FLOOD: u32 = 20_000;
        let mut store = Partials::with_limit(64);
        for i in 0..FLOOD {
            hold(&mut store, i % 512, u64::from(i) << 12);
            assert!(store.held() <= 64);
        }
        // A group is refused, once, or comes with every request it sent.
        let (mut refused, mut whole) = (0, 0);
        for grpid in 0..512 {
            match take(&mut store, grpid) {
                Err(Incomplete) => {
                    refused += 1;
                    assert!(take(&mut store, grpid).unwrap().is_empty());
                }
                Ok(addrs) => {
                    whole += 1;
                    assert_eq!(addrs.len() as u32, (FLOOD - grpid).div_ceil(512));
                }
            }
        }
        assert!(refused > 0 && whole > 0);
        assert_eq!(store.held(), 0);
    }

    #[test]
    fn clear_frees_everything_and_forgets_evictions() {
        let mut store = Partials::with_limit(8);
        for i in 0..20u32 {
            hold(&mut store, i % 3, u64::from(i));
        }
        let table = store.slots.len();
        store.clear();
        // The table stays.
        assert_eq!(store.slots.len(), table);
        assert_eq!(store.held(), 0);
        for grpid in 0..3 {
            assert!(take(&mut store, grpid).unwrap().is_empty());
        }
        // The store is usable again.
        hold(&mut store, 0, 1);
        assert_eq!(&take(&mut store, 0).unwrap()[..], &[1]);
    }
}
