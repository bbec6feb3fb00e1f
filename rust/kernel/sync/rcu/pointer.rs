// SPDX-License-Identifier: GPL-2.0

//! Publishing and reading a C `__rcu` pointer.
//!
//! C header: [`include/linux/rcupdate.h`](srctree/include/linux/rcupdate.h)

use crate::sync::{
    atomic::{Atomic, Relaxed, Release},
    rcu::Guard,
};

/// A pointer field that C annotates `__rcu`.
///
/// The updater publishes a fully initialised object with [`RcuPointer::publish`]
/// (`rcu_assign_pointer()`); readers load it inside an RCU read-side critical
/// section with [`RcuPointer::dereference`] (`rcu_dereference()`). An object
/// that is unpublished must be freed only after a grace period (for example
/// with `call_rcu()`), so that it stays valid for every reader that may still
/// hold the old pointer.
///
/// This type only orders the accesses. What the pointer points to, and how
/// long it lives, is the owner's business: it hands out raw pointers.
///
/// # Examples
///
/// ```
/// use kernel::sync::rcu::{self, RcuPointer};
///
/// let mut value = 42u32;
/// let mut field: *mut u32 = core::ptr::null_mut();
/// // SAFETY: `field` outlives `ptr` and is accessed only through it here.
/// let ptr = unsafe { RcuPointer::from_raw(&raw mut field) };
///
/// ptr.publish(&raw mut value);
/// let guard = rcu::read_lock();
/// assert_eq!(ptr.dereference(&guard), &raw mut value);
/// drop(guard);
///
/// assert_eq!(ptr.publish(core::ptr::null_mut()), &raw mut value);
/// ```
#[repr(transparent)]
pub struct RcuPointer<T>(Atomic<*mut T>);

impl<T> RcuPointer<T> {
    /// Views the `__rcu` pointer at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must be valid and suitably aligned for the lifetime `'a`, and the
    /// pointer it holds must only be accessed atomically (through this type or
    /// C's RCU accessors) during that time.
    pub unsafe fn from_raw<'a>(ptr: *mut *mut T) -> &'a Self {
        // SAFETY: The caller guarantees validity and atomic-only access for `'a`.
        let atomic: &'a Atomic<*mut T> = unsafe { Atomic::from_ptr(ptr) };
        // CAST: `RcuPointer` is `repr(transparent)` over `Atomic<*mut T>`.
        // SAFETY: Same layout, same lifetime.
        unsafe { &*core::ptr::from_ref(atomic).cast::<Self>() }
    }

    /// Loads the pointer for a reader (`rcu_dereference()`).
    ///
    /// If the owner frees unpublished objects only after a grace period, the
    /// object returned stays valid while `_guard` is held.
    #[inline]
    pub fn dereference(&self, _guard: &Guard) -> *mut T {
        // A relaxed load is READ_ONCE(): the address dependency of the
        // reader's accesses orders them after this load.
        self.0.load(Relaxed)
    }

    /// Loads the pointer for the updater (`rcu_dereference_protected()`).
    ///
    /// Only meaningful while the caller holds whatever serialises updates.
    #[inline]
    pub fn dereference_protected(&self) -> *mut T {
        self.0.load(Relaxed)
    }

    /// Publishes `new` (`rcu_assign_pointer()`) and returns the old pointer.
    ///
    /// The release ordering makes the initialisation of `*new` visible to any
    /// reader that loads `new`. Updaters must be serialised by the caller.
    #[inline]
    pub fn publish(&self, new: *mut T) -> *mut T {
        let old = self.0.load(Relaxed);
        self.0.store(new, Release);
        old
    }
}
