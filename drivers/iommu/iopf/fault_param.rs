// SPDX-License-Identifier: GPL-2.0

//! A device's fault data: `struct iommu_fault_param`.
//!
//! Created by `iopf_queue_add_device()` and published in `dev->iommu->fault_param`, where the
//! report path finds it under RCU. The queue holds one reference until
//! `iopf_queue_remove_device()` unpublishes it, and every group of the device holds one until it
//! is freed, so groups that their handlers keep after the removal still reach the device. A
//! partial request takes no reference: it is held under RCU and the partials' spinlock, which
//! does not sleep. A last request takes one for its group.

use kernel::{
    device::Device,
    iommu::fault::{
        trace,
        DeviceFaults,
        Endpoint,
        Fault,
        FaultChain,
        FaultOwner,
        PageResponseOp, //
    },
    new_mutex, new_spinlock,
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{
            Atomic,
            Relaxed, //
        },
        rcu::{
            self,
            Rcu, //
        },
        Arc,
        Mutex,
        SpinLock, //
    },
    workqueue::OwnedQueue,
};

use crate::{
    partial::{
        Incomplete,
        Partials, //
    },
    stats::Stats, //
};

/// A device that reports page requests, as the core sees it: the device, and the field of its
/// IOMMU data where its fault data is published (`dev->iommu->fault_param`).
pub(crate) struct FaultDevice<'a> {
    pub(crate) endpoint: &'a Endpoint,
    pub(crate) published: &'a Rcu<Arc<FaultParam>>,
}

impl FaultDevice<'_> {
    /// The device, for messages.
    pub(crate) fn dev(&self) -> &Device {
        self.endpoint.as_device()
    }
}

/// The fault data of one device.
#[pin_data]
pub(crate) struct FaultParam {
    dev: ARef<Device>,
    /// The IOMMU driver's `page_response` op, taken when the device was added.
    respond: PageResponseOp,
    /// The workqueue of the device's queue.
    wq: Arc<OwnedQueue>,
    /// The device's fault lock: its pending groups, and what its requests came to.
    #[pin]
    faults: Mutex<DeviceFaults<FaultParam>>,
    /// The device's held partial requests, under a spinlock that is never held with the fault
    /// lock: the report path holds a partial under RCU, without a reference.
    #[pin]
    partials: SpinLock<Partials>,
    /// Whether `partials` is not empty ([`Partials::is_empty`]), written under its lock when that
    /// changes, so that a last request on a device that holds nothing takes no lock to find it.
    partials_used: Atomic<i32>,
}

impl FaultOwner for FaultParam {
    type State = Stats;

    fn faults(&self) -> &Mutex<DeviceFaults<Self>> {
        &self.faults
    }

    fn page_response(&self, stats: &mut Stats, last: &Fault, tag: u32, code: u32) {
        // Called once for each group the core handed over (`Stats::new_group()`).
        stats.open = stats.open.saturating_sub(1);
        self.answer(stats, last, tag, code);
    }
}

impl FaultParam {
    /// Answers `last` with `code`, counted and traced, under the fault lock that protects
    /// `stats`: the last request of a group (whose tag is `tag`), or a request that formed no
    /// group (`tag` 0).
    pub(crate) fn answer(&self, stats: &mut Stats, last: &Fault, tag: u32, code: u32) {
        let latency = stats.answered(code, tag);
        trace::answer(&self.dev, last, code, latency);
        self.respond.send(&self.dev, last, code);
    }

    /// The fault data of `dev`, whose driver answers with `respond`, on a queue running `wq`.
    pub(crate) fn new(
        dev: &Endpoint,
        respond: PageResponseOp,
        wq: Arc<OwnedQueue>,
    ) -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                dev: dev.as_device().into(),
                respond,
                wq,
                faults <- new_mutex!(DeviceFaults::new(Stats::new()), "iommu_fault_param::lock"),
                partials <- new_spinlock!(Partials::new(), "iommu_fault_param::partials"),
                partials_used: Atomic::new(0),
            }),
            GFP_KERNEL,
        )
    }

    /// The published fault data of `dev`, with a reference of our own
    /// (`iopf_get_dev_fault_param()`).
    pub(crate) fn get(dev: &FaultDevice<'_>) -> Option<Arc<Self>> {
        let guard = rcu::read_lock();
        dev.published.dereference(&guard).map(Arc::from)
    }

    /// Runs `f` on the device's held partial requests, under their lock.
    #[inline]
    pub(crate) fn with_partials<R>(&self, f: impl FnOnce(&mut Partials) -> R) -> R {
        let mut partials = self.partials.lock();
        let was_empty = partials.is_empty();
        let ret = f(&mut partials);
        if partials.is_empty() != was_empty {
            self.partials_used
                .store(i32::from(!partials.is_empty()), Relaxed);
        }
        ret
    }

    /// Takes the requests held for group `grpid`, for its last request ([`Partials::take`]).
    ///
    /// A request held concurrently with this call may be missed, as it may in C: it belongs to
    /// the next group of that index. A request held before, by this thread or by one that the
    /// caller synchronised with, is seen.
    #[inline]
    pub(crate) fn take_partials(&self, grpid: u32) -> Result<FaultChain, Incomplete> {
        if self.partials_used.load(Relaxed) == 0 {
            return Ok(FaultChain::new());
        }
        self.with_partials(|partials| partials.take(grpid))
    }

    /// The device.
    pub(crate) fn dev(&self) -> &Device {
        &self.dev
    }

    /// The workqueue on which the device's groups are deferred.
    pub(crate) fn workqueue(&self) -> &OwnedQueue {
        &self.wq
    }
}

/// `dev_warn_ratelimited()`: a warning about `dev`, rate limited per call site, for what a driver
/// (or a device) can trigger at will.
macro_rules! warn_ratelimited {
    ($dev:expr, $($f:tt)*) => {
        kernel::ratelimited!(kernel::dev_warn!($dev, $($f)*))
    };
}
pub(crate) use warn_ratelimited;
