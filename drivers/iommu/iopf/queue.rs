// SPDX-License-Identifier: GPL-2.0

//! An IOPF queue: `struct iopf_queue`.
//!
//! An IOMMU driver allocates one per IOMMU (or per event queue) and adds the devices whose page
//! requests it reports. The queue owns the workqueue on which handlers defer their work (shared
//! with the devices' fault data, so that a group whose handler outlives the queue can still use
//! it), a reference to the fault data of each device added to it and, with
//! `CONFIG_IOMMU_IOPF_RUST_DEBUGFS`, their debugfs files.

use kernel::{
    bindings,
    device::Device,
    iommu::fault::{
        trace::{
            self,
            Abort, //
        },
        FaultOwner,
    },
    new_mutex,
    prelude::*,
    str::BStr,
    sync::{
        rcu,
        Arc,
        Mutex, //
    },
    workqueue::OwnedQueue,
};

#[cfg(CONFIG_IOMMU_IOPF_RUST_DEBUGFS)]
use crate::stats::{
    self,
    DeviceFiles, //
};
use crate::{
    fault_param::{
        warn_ratelimited,
        FaultDevice,
        FaultParam, //
    },
    partial::Partials,
};

const RESP_INVALID: u32 = bindings::iommu_page_response_code_IOMMU_PAGE_RESP_INVALID;

/// A device on a queue: the queue's reference to its fault data, and its debugfs files.
struct Member {
    param: Arc<FaultParam>,
    #[cfg(CONFIG_IOMMU_IOPF_RUST_DEBUGFS)]
    _files: Pin<KBox<DeviceFiles>>,
}

/// A fault queue and the devices on it.
#[pin_data]
pub(crate) struct Queue {
    wq: Arc<OwnedQueue>,
    #[cfg(CONFIG_IOMMU_IOPF_RUST_DEBUGFS)]
    dir: kernel::debugfs::Dir,
    #[pin]
    devices: Mutex<KVec<Member>>,
}

impl Queue {
    /// Allocates a queue whose workqueue is `iopf_queue/<name>`.
    ///
    /// The workqueue is unbound and unordered: requests within a group are ordered by the report
    /// path, and groups may be handled in any order.
    pub(crate) fn new(name: &CStr) -> Result<Arc<Self>> {
        let wq = OwnedQueue::builder()
            .unbound()
            .build(fmt!("iopf_queue/{}", BStr::from_bytes(name.to_bytes())))?;
        let wq = Arc::new(wq, GFP_KERNEL)?;
        Arc::pin_init(
            pin_init!(Self {
                wq,
                #[cfg(CONFIG_IOMMU_IOPF_RUST_DEBUGFS)]
                dir: stats::queue_dir(name),
                devices <- new_mutex!(KVec::new(), "iopf_queue::lock"),
            }),
            GFP_KERNEL,
        )
    }

    /// Adds `dev` to the queue and publishes its fault data (`iopf_queue_add_device()`).
    pub(crate) fn add_device(&self, dev: &FaultDevice<'_>) -> Result {
        let Some(respond) = dev.endpoint.page_response_op() else {
            warn_ratelimited!(
                dev.dev(),
                "iopf: adding a device whose IOMMU has no page_response()\n"
            );
            return Err(ENODEV);
        };
        // Lock order, as in C: queue, then dev->iommu->lock.
        let mut devices = self.devices.lock();
        let _iommu = dev.endpoint.iommu_lock().lock();
        if FaultParam::get(dev).is_some() {
            warn_ratelimited!(
                dev.dev(),
                "iopf: adding a device that is already on a queue\n"
            );
            return Err(EBUSY);
        }
        let param = FaultParam::new(dev.endpoint, respond, self.wq.clone())?;
        devices.push(
            Member {
                #[cfg(CONFIG_IOMMU_IOPF_RUST_DEBUGFS)]
                _files: KBox::pin_init(DeviceFiles::new(&self.dir, &param), GFP_KERNEL)?,
                param: param.clone(),
            },
            GFP_KERNEL,
        )?;
        drop(dev.published.replace(Some(param)));
        Ok(())
    }

    /// Removes `dev` from the queue (`iopf_queue_remove_device()`).
    ///
    /// Drops the held partials, answers every pending group `IOMMU_PAGE_RESP_INVALID` (the groups
    /// stay their handlers', to free), unpublishes the fault data and drops the queue's reference.
    pub(crate) fn remove_device(&self, dev: &FaultDevice<'_>) -> Result {
        let mut devices = self.devices.lock();
        let iommu = dev.endpoint.iommu_lock().lock();
        let index = {
            let guard = rcu::read_lock();
            dev.published.dereference(&guard).and_then(|published| {
                devices
                    .iter()
                    .position(|m| core::ptr::eq::<FaultParam>(&*m.param, &*published))
            })
        };
        let Some(index) = index else {
            warn_ratelimited!(
                dev.dev(),
                "iopf: removing a device that is not on this queue\n"
            );
            return Err(EINVAL);
        };
        let member = devices.remove(index).map_err(|_| EINVAL)?;
        let param = &member.param;
        param.with_partials(Partials::clear);
        {
            let mut faults = param.faults().lock();
            while let Some(last) = faults.as_mut().answer_oldest(RESP_INVALID, param) {
                trace::abort(param.dev(), last, Abort::Removed);
            }
        }
        let unpublished = dev.published.replace(None);
        drop(iommu);
        drop(devices);
        // Out of the locks: the debugfs files wait for their readers, and the fault data goes
        // once no RCU reader can be using it.
        drop(member);
        drop(unpublished);
        Ok(())
    }

    /// Drops the held partials of every device (`iopf_queue_discard_partial()`).
    pub(crate) fn discard_partial(&self) {
        for member in self.devices.lock().iter() {
            member.param.with_partials(Partials::clear);
        }
    }

    /// Removes the devices still on the queue, then waits for the work on its workqueue
    /// (`iopf_queue_free()`). `device` gives the view of a device on the queue.
    pub(crate) fn free(&self, device: impl for<'a> Fn(&'a Device) -> Option<FaultDevice<'a>>) {
        // Not `while let`: the lock must not be held while the device is removed.
        loop {
            let Some(param) = self.devices.lock().last().map(|m| m.param.clone()) else {
                break;
            };
            if device(param.dev()).is_none_or(|dev| self.remove_device(&dev).is_err()) {
                // Its fault data is not published any more (a driver bug): only drop our
                // reference.
                self.devices
                    .lock()
                    .retain(|m| !Arc::ptr_eq(&m.param, &param));
            }
        }
        self.wq.drain();
    }
}
