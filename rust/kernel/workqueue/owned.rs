// SPDX-License-Identifier: GPL-2.0

//! Workqueues owned by their creator.
//!
//! C header: [`include/linux/workqueue.h`](srctree/include/linux/workqueue.h)
//!
//! This follows the shape posted for the kernel crate (an owned queue made by a builder that sets
//! its `WQ_*` flags and `max_active`): only the flags the IOPF framework needs are offered, and
//! the owner can flush and drain the queue as well as enqueue on it.

use core::{
    fmt,
    ops::Deref,
    ptr::NonNull, //
};

use crate::{
    bindings,
    error::code::ENOMEM,
    prelude::*,
    workqueue::Queue, //
};

/// A workqueue allocated with `alloc_workqueue()` and destroyed on drop.
///
/// Dereferences to [`Queue`], so work items are enqueued as on the system queues. Dropping it
/// drains the queue (`destroy_workqueue()`), so the owner must make sure that no new work is
/// queued by then, and must not drop it from one of its own work items.
///
/// # Invariants
///
/// `ptr` points to a workqueue returned by `alloc_workqueue()` that has not been destroyed.
///
/// # Examples
///
/// ```
/// use kernel::workqueue::OwnedQueue;
/// use kernel::sync::{Arc, atomic::{Atomic, Relaxed}};
///
/// let wq = OwnedQueue::builder().unbound().build(fmt!("example/{}", 1))?;
/// let ran = Arc::new(Atomic::new(0), GFP_KERNEL)?;
/// let seen = ran.clone();
/// wq.try_spawn(GFP_KERNEL, move || seen.store(1, Relaxed))?;
/// // The flush waits for the work item queued before it.
/// wq.flush();
/// assert_eq!(ran.load(Relaxed), 1);
/// # Ok::<(), Error>(())
/// ```
pub struct OwnedQueue {
    ptr: NonNull<Queue>,
}

// SAFETY: A workqueue may be used and destroyed from any thread.
unsafe impl Send for OwnedQueue {}
// SAFETY: `Queue` is `Sync`, and `&OwnedQueue` gives only `&Queue`, `flush` and `drain`.
unsafe impl Sync for OwnedQueue {}

/// The settings of a new [`OwnedQueue`]; see [`OwnedQueue::builder`].
pub struct QueueBuilder {
    flags: u32,
    max_active: i32,
}

impl QueueBuilder {
    /// Work items run on any CPU, not the one that queued them (`WQ_UNBOUND`).
    pub fn unbound(mut self) -> Self {
        self.flags |= bindings::wq_flags_WQ_UNBOUND;
        self
    }

    /// At most `max_active` work items run at once (0: the default).
    pub fn max_active(mut self, max_active: i32) -> Self {
        self.max_active = max_active;
        self
    }

    /// Allocates the workqueue, named `name` (at most 23 bytes are kept, as in C).
    pub fn build(self, name: fmt::Arguments<'_>) -> Result<OwnedQueue> {
        // SAFETY: "%pA" formats the `fmt::Arguments` passed by pointer, which lives across the
        // call; the other arguments are plain values.
        let wq = unsafe {
            bindings::alloc_workqueue_noprof(
                c"%pA".as_char_ptr(),
                self.flags,
                self.max_active,
                core::ptr::from_ref(&name).cast::<c_void>(),
            )
        };
        let wq = NonNull::new(wq).ok_or(ENOMEM)?;
        // INVARIANT: `wq` was just allocated by `alloc_workqueue()`.
        Ok(OwnedQueue { ptr: wq.cast() })
    }
}

impl OwnedQueue {
    /// The settings of a new workqueue: bound to CPUs, default `max_active`, until changed.
    pub fn builder() -> QueueBuilder {
        QueueBuilder {
            flags: 0,
            max_active: 0,
        }
    }

    /// Waits until every work item queued before the call has finished (`flush_workqueue()`).
    /// Must be called from a context that may sleep.
    pub fn flush(&self) {
        // SAFETY: By the type invariant the workqueue is alive.
        unsafe { bindings::__flush_workqueue(self.as_raw()) }
    }

    /// Waits until the queue is empty, including work queued by its own work items meanwhile
    /// (`drain_workqueue()`). Only work items of the queue may queue work on it meanwhile.
    pub fn drain(&self) {
        // SAFETY: By the type invariant the workqueue is alive.
        unsafe { bindings::drain_workqueue(self.as_raw()) }
    }

    /// The C `struct workqueue_struct`, for C APIs that take one.
    pub fn as_raw(&self) -> *mut bindings::workqueue_struct {
        self.ptr.as_ptr().cast()
    }
}

impl Deref for OwnedQueue {
    type Target = Queue;

    fn deref(&self) -> &Queue {
        // SAFETY: By the type invariant the workqueue is alive while `self` is.
        unsafe { Queue::from_raw(self.as_raw()) }
    }
}

impl Drop for OwnedQueue {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the workqueue is alive; it is not used after this, as
        // `self` goes away.
        unsafe { bindings::destroy_workqueue(self.as_raw()) }
    }
}
