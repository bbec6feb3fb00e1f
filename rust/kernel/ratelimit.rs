// SPDX-License-Identifier: GPL-2.0

//! Rate limiting, for messages that a caller can trigger at will.
//!
//! C header: [`include/linux/ratelimit.h`](srctree/include/linux/ratelimit.h)

use crate::{
    bindings,
    str::{CStr, CStrExt as _},
    sync::atomic::{Acquire, Atomic, Relaxed, Release},
    types::Opaque,
};

/// `init` before the C state is initialised.
const UNINIT: u32 = 0;
/// `init` while one thread initialises the C state.
const BUSY: u32 = 1;
/// `init` once the C state is ready.
const READY: u32 = 2;

/// A `struct ratelimit_state`: at most `DEFAULT_RATELIMIT_BURST` (10) events
/// are allowed per `DEFAULT_RATELIMIT_INTERVAL` (5 s).
///
/// Like C's `DEFINE_RATELIMIT_STATE()`, it can be a `static`: the C state
/// (whose spinlock cannot be initialised at compile time when lock debugging
/// is on) is initialised on first use. Give each call site its own, as C's
/// `pr_warn_ratelimited()` does, so that one noisy site cannot silence
/// another; [`ratelimited!`](crate::ratelimited) does that.
///
/// # Invariants
///
/// `init` only increases, from `UNINIT` through `BUSY` to `READY`;
/// `state` is initialised, and only used through `___ratelimit()`, once
/// `init` is `READY`.
///
/// # Examples
///
/// ```
/// use kernel::ratelimit::RateLimit;
///
/// static LIMIT: RateLimit = RateLimit::new();
///
/// // The default burst passes, the rest of the interval is suppressed.
/// let allowed = (0..20).filter(|_| LIMIT.allow(c"example")).count();
/// assert_eq!(allowed, 10);
/// ```
pub struct RateLimit {
    init: Atomic<u32>,
    state: Opaque<bindings::ratelimit_state>,
}

// SAFETY: The C state is protected by its own raw spinlock, and `init`
// hands its initialisation to exactly one thread.
unsafe impl Sync for RateLimit {}

// SAFETY: The C state holds no pointer to itself or to thread-local data.
unsafe impl Send for RateLimit {}

impl Default for RateLimit {
    fn default() -> Self {
        Self::new()
    }
}

impl RateLimit {
    /// A rate limit with the kernel's default interval and burst.
    pub const fn new() -> Self {
        // INVARIANT: `init` starts at `UNINIT`.
        Self {
            init: Atomic::new(UNINIT),
            state: Opaque::uninit(),
        }
    }

    /// Whether one more event is allowed now, counting it if so.
    ///
    /// When an interval ends with events suppressed, the next allowed one
    /// first prints `<site>: N callbacks suppressed`, as C's `__ratelimit()`
    /// does with the function name. Like `__ratelimit()` under contention,
    /// a call racing with the first one may be refused.
    pub fn allow(&self, site: &CStr) -> bool {
        if self.init.load(Acquire) != READY && !self.initialise() {
            return false;
        }
        // SAFETY: `init` is `READY`, so `state` is initialised (type
        // invariant); `___ratelimit()` takes the state's lock, and `site` is
        // a NUL-terminated string it only prints.
        unsafe { bindings::___ratelimit(self.state.get(), site.as_char_ptr()) != 0 }
    }

    /// Initialises the C state unless another thread is doing it; returns
    /// whether it is ready.
    #[cold]
    fn initialise(&self) -> bool {
        if self.init.cmpxchg(UNINIT, BUSY, Relaxed).is_err() {
            return self.init.load(Acquire) == READY;
        }
        // SAFETY: Winning the exchange gave this thread exclusive access to
        // `state`, which no other thread reads before `init` is `READY`.
        unsafe { bindings::ratelimit_default_init(self.state.get()) };
        // INVARIANT: `state` is initialised, and published by the release.
        self.init.store(READY, Release);
        true
    }
}

/// Evaluates its body at most as often as a [`RateLimit`] of its own allows.
///
/// The Rust counterpart of C's `*_ratelimited()` printing macros, which it
/// composes with any of them: each use has its own `static` state.
///
/// # Examples
///
/// ```
/// use kernel::ratelimited;
///
/// let mut printed = 0;
/// for _ in 0..20 {
///     ratelimited!({
///         pr_warn!("a caller can trigger this at will\n");
///         printed += 1;
///     });
/// }
/// assert_eq!(printed, 10);
/// ```
#[macro_export]
macro_rules! ratelimited {
    ($body:expr) => {{
        static LIMIT: $crate::ratelimit::RateLimit = $crate::ratelimit::RateLimit::new();
        if LIMIT.allow($crate::c_str!(::core::concat!(
            ::core::module_path!(),
            ":",
            ::core::line!()
        ))) {
            $body;
        }
    }};
}

#[macros::kunit_tests(rust_kernel_ratelimit)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_burst_then_refuses() {
        static LIMIT: RateLimit = RateLimit::new();
        let allowed = (0..25).filter(|_| LIMIT.allow(c"burst")).count();
        assert_eq!(allowed, 10);
    }

    #[test]
    fn each_limit_counts_alone() {
        static NOISY: RateLimit = RateLimit::new();
        static QUIET: RateLimit = RateLimit::new();
        for _ in 0..25 {
            NOISY.allow(c"noisy");
        }
        assert!(!NOISY.allow(c"noisy"));
        assert!(QUIET.allow(c"quiet"));
    }

    #[test]
    fn every_use_of_the_macro_has_its_own_limit() {
        let (mut first, mut second) = (0, 0);
        for _ in 0..25 {
            crate::ratelimited!(first += 1);
        }
        for _ in 0..3 {
            crate::ratelimited!(second += 1);
        }
        assert_eq!((first, second), (10, 3));
    }
}
