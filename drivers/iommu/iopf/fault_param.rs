// SPDX-License-Identifier: GPL-2.0

//! A device's fault data: `struct iommu_fault_param`.
//!
//! Created by `iopf_queue_add_device()` and published in `dev->iommu->fault_param`, where the
//! report path finds it under RCU and takes a reference. The queue holds one reference until
//! `iopf_queue_remove_device()` unpublishes it, and every group of the device holds one until it
//! is freed, so groups that their handlers keep after the removal still reach the device.

use kernel::{
    device::Device,
    iommu::fault::{
        trace,
        DeviceFaults,
        Endpoint,
        Fault,
        FaultOwner,
        PageResponseOp, //
    },
    new_mutex,
    prelude::*,
    sync::{
        aref::ARef,
        rcu::{
            self,
            Rcu, //
        },
        Arc,
        Mutex, //
    },
    workqueue::OwnedQueue,
};

use crate::{
    partial::Partials,
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

/// What a device's fault lock protects besides its pending groups.
pub(crate) struct State {
    pub(crate) partials: Partials,
    pub(crate) stats: Stats,
}

/// The fault data of one device.
#[pin_data]
pub(crate) struct FaultParam {
    dev: ARef<Device>,
    /// The IOMMU driver's `page_response` op, taken when the device was added.
    respond: PageResponseOp,
    /// The workqueue of the device's queue.
    wq: Arc<OwnedQueue>,
    /// The device's fault lock: its pending groups and held partial requests.
    #[pin]
    faults: Mutex<DeviceFaults<FaultParam>>,
}

impl FaultOwner for FaultParam {
    type State = State;

    fn faults(&self) -> &Mutex<DeviceFaults<Self>> {
        &self.faults
    }

    fn page_response(&self, state: &mut State, last: &Fault, tag: u32, code: u32) {
        // Called once for each group the core handed over (`Stats::new_group()`).
        state.stats.open = state.stats.open.saturating_sub(1);
        self.answer(state, last, tag, code);
    }
}

impl FaultParam {
    /// Answers `last` with `code`, counted and traced, under the fault lock that protects
    /// `state`: the last request of a group (whose tag is `tag`), or a request that formed no
    /// group (`tag` 0).
    pub(crate) fn answer(&self, state: &mut State, last: &Fault, tag: u32, code: u32) {
        let latency = state.stats.answered(code, tag);
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
                faults <- new_mutex!(
                    DeviceFaults::new(State {
                        partials: Partials::new(),
                        stats: Stats::new(),
                    }),
                    "iommu_fault_param::lock"
                ),
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
