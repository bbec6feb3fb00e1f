// SPDX-License-Identifier: GPL-2.0

//! An RCU-protected pointer that owns what it points to.
//!
//! C header: [`include/linux/rcupdate.h`](srctree/include/linux/rcupdate.h)

use core::marker::PhantomData;

use crate::{
    ffi::c_void,
    sync::{
        atomic::{
            Atomic,
            Release, //
        },
        rcu::{
            self,
            Guard, //
        },
    },
    types::ForeignOwnable,
};

/// A pointer, annotated `__rcu` in C, that owns the `P` it points to.
///
/// Readers get a borrow of the current value with [`Rcu::dereference`] inside an RCU read-side
/// critical section (`rcu_dereference()`); the updater swaps in a new value with [`Rcu::replace`]
/// (`rcu_assign_pointer()`), and the old one is dropped only after a grace period, when no reader
/// can still hold it. With `P` an [`Arc`](crate::sync::Arc), a reader may take a reference of
/// its own, which outlives the critical section: the reference that the pointer owns keeps the
/// count above zero until every reader that could see it is gone.
///
/// This follows the `Rcu<P: ForeignOwnable>` posted for the kernel crate, with one difference:
/// the pointer is a field of a C structure (such as `dev->iommu->fault_param`), so it is viewed
/// in place with [`Rcu::from_raw`] rather than owned by a Rust structure, and it starts out NULL.
///
/// # Invariants
///
/// The pointer is NULL or comes from `P::into_foreign`, and the `P` it stands for is owned by
/// `self`. It is only changed through [`Rcu::replace`].
///
/// # Examples
///
/// ```
/// use core::ptr::null_mut;
/// use kernel::sync::{rcu::{self, Rcu}, Arc};
///
/// let mut field: *mut core::ffi::c_void = null_mut();
/// // SAFETY: `field` outlives `ptr`, holds NULL and is only used through `ptr`.
/// let ptr = unsafe { Rcu::<Arc<u32>>::from_raw(&raw mut field) };
///
/// drop(ptr.replace(Some(Arc::new(42, GFP_KERNEL)?)));
/// let value = {
///     let guard = rcu::read_lock();
///     // A reference of our own, which outlives the critical section.
///     ptr.dereference(&guard).map(Arc::from)
/// };
/// assert_eq!(value.as_deref(), Some(&42));
///
/// // Unpublished, then dropped after a grace period: `value` still holds it.
/// drop(ptr.replace(None));
/// assert_eq!(value.as_deref(), Some(&42));
/// # Ok::<(), Error>(())
/// ```
#[repr(transparent)]
pub struct Rcu<P: ForeignOwnable> {
    ptr: Atomic<*mut c_void>,
    _owns: PhantomData<P>,
}

// SAFETY: `Rcu<P>` hands out `P::Borrowed` to readers on any thread and drops `P` on whichever
// thread replaces it: as for a shared `P`.
unsafe impl<P: ForeignOwnable + Send + Sync> Sync for Rcu<P> {}

impl<P: ForeignOwnable> Rcu<P> {
    /// Views the C `__rcu` pointer at `ptr`.
    ///
    /// # Safety
    ///
    /// For `'a`, `ptr` must be valid and aligned, hold NULL or a pointer from `P::into_foreign`
    /// whose value the field owns, and be changed only through [`Rcu`] (C may read it with
    /// `rcu_dereference()`).
    pub unsafe fn from_raw<'a>(ptr: *mut *mut c_void) -> &'a Self {
        // INVARIANT: Guaranteed by the caller.
        // CAST: `Rcu<P>` is `repr(transparent)` over `Atomic<*mut c_void>`, itself over
        // `*mut c_void`.
        // SAFETY: The caller guarantees validity for `'a` and that only atomic accesses (this type,
        // or C's RCU accessors) are made meanwhile.
        unsafe { &*ptr.cast::<Self>() }
    }

    /// The current value, for a reader (`rcu_dereference()`).
    ///
    /// The borrow lasts as long as the read-side critical section of `_guard`.
    #[inline]
    pub fn dereference<'a>(&'a self, _guard: &'a Guard) -> Option<P::Borrowed<'a>> {
        // This `read_volatile` is intended to correspond to the READ_ONCE() of
        // `rcu_dereference()`, inline: `Atomic::load()` calls a C helper. The pointer is aligned
        // and only stored to atomically (`replace`), and the reader's accesses depend on its
        // address, which orders them after the load, as in C.
        // SAFETY: `self.ptr` is a valid, aligned pointer field.
        let ptr = unsafe { self.ptr.as_ptr().read_volatile() };
        // SAFETY: By the type invariant a non-NULL pointer stands for a `P` owned by `self`, which
        // is dropped only a grace period after it is replaced, so after `_guard` is released.
        (!ptr.is_null()).then(|| unsafe { P::borrow(ptr) })
    }

    /// Publishes `new` (`rcu_assign_pointer()`) and returns the value it replaces, which is
    /// dropped only after a grace period.
    pub fn replace(&self, new: Option<P>) -> RcuOld<P> {
        let new = new.map_or(core::ptr::null_mut(), P::into_foreign);
        // The release ordering makes the initialisation of `new` visible to the readers that load
        // it, as `rcu_assign_pointer()` does. An exchange keeps concurrent updaters from dropping
        // the same value twice.
        let old = self.ptr.xchg(new, Release);
        // INVARIANT: `self` owns the new value, `RcuOld` the old one.
        // SAFETY: By the type invariant `old` is NULL or came from `P::into_foreign`, and its value
        // was owned by `self`; it was swapped out, so nobody else takes it.
        RcuOld(unsafe { P::try_from_foreign(old) })
    }
}

/// A value unpublished by [`Rcu::replace`], dropped after a grace period (`synchronize_rcu()`),
/// when no RCU reader can still be using it.
pub struct RcuOld<P: ForeignOwnable>(Option<P>);

impl<P: ForeignOwnable> RcuOld<P> {
    /// The old value, if there was one.
    pub fn value(&self) -> Option<&P> {
        self.0.as_ref()
    }
}

impl<P: ForeignOwnable> Drop for RcuOld<P> {
    fn drop(&mut self) {
        if let Some(old) = self.0.take() {
            rcu::synchronize_rcu();
            drop(old);
        }
    }
}
