// SPDX-License-Identifier: GPL-2.0

//! Workqueues owned by their creator.
//!
//! C header: [`include/linux/workqueue.h`](srctree/include/linux/workqueue.h)

use core::{fmt, ops::Deref, ptr::NonNull};

use crate::{bindings, error::code::ENOMEM, prelude::*, workqueue::Queue};

/// Work items run unbound to any CPU (`WQ_UNBOUND`).
pub const UNBOUND: u32 = bindings::wq_flags_WQ_UNBOUND;

/// A workqueue allocated with `alloc_workqueue()` and destroyed on drop.
///
/// Dereferences to [`Queue`], so work items are enqueued as on the system
/// queues. Dropping it drains the queue (`destroy_workqueue()`), so the
/// owner must make sure no new work is queued by then.
///
/// # Invariants
///
/// `ptr` points to a workqueue returned by `alloc_workqueue()` that has not
/// been destroyed.
///
/// # Examples
///
/// ```
/// use kernel::workqueue::{self, OwnedQueue};
///
/// let wq = OwnedQueue::new(fmt!("example/{}", 1), workqueue::UNBOUND, 0)?;
/// wq.try_spawn(GFP_KERNEL, || pr_info!("hello from a work item\n"))?;
/// wq.flush();
/// drop(wq);
/// # Ok::<(), Error>(())
/// ```
pub struct OwnedQueue {
    ptr: NonNull<Queue>,
}

// SAFETY: A workqueue may be used and destroyed from any thread.
unsafe impl Send for OwnedQueue {}
// SAFETY: `Queue` is `Sync`, and `&OwnedQueue` gives only `&Queue` and `flush`.
unsafe impl Sync for OwnedQueue {}

impl OwnedQueue {
    /// Allocates a workqueue named `name` (at most 23 bytes are kept, as in C),
    /// with `WQ_*` `flags` and `max_active` (0 for the default).
    pub fn new(name: fmt::Arguments<'_>, flags: u32, max_active: i32) -> Result<Self> {
        // SAFETY: "%pA" formats the `fmt::Arguments` passed by pointer, which
        // lives across the call; the other arguments are plain values.
        let wq = unsafe {
            bindings::alloc_workqueue_noprof(
                c"%pA".as_char_ptr(),
                flags,
                max_active,
                core::ptr::from_ref(&name).cast::<c_void>(),
            )
        };
        let wq = NonNull::new(wq).ok_or(ENOMEM)?;
        // INVARIANT: `wq` was just allocated by `alloc_workqueue()`.
        Ok(Self { ptr: wq.cast() })
    }

    /// Waits until every work item queued before the call has finished
    /// (`flush_workqueue()`). Must be called from a context that may sleep.
    pub fn flush(&self) {
        // SAFETY: By the type invariant the workqueue is alive.
        unsafe { bindings::__flush_workqueue(self.as_raw()) }
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
        // SAFETY: By the type invariant the workqueue is alive; it is not used
        // after this, as `self` goes away.
        unsafe { bindings::destroy_workqueue(self.as_raw()) }
    }
}
