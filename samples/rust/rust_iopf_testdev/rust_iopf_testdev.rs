// SPDX-License-Identifier: GPL-2.0

//! Driver of `iopf-testdev`, the PCIe test device of the VT-d end-to-end
//! test (`cargo xtask e2e`; the device's source is the iopf-rust project's
//! `tests/vtd-e2e/qemu/iopf-testdev.c`).
//!
//! The device has the PASID, ATS and PRI capabilities. Given a PASID and a
//! range of virtual addresses, it translates each page with ATS, sends PRI
//! page requests for the pages it cannot access, waits for the responses,
//! retries, and writes a pattern to each page or reads each page back and
//! compares it with the pattern. Its page requests go through the Intel
//! VT-d driver's page request queue (`drivers/iommu/intel/prq.c`) into the
//! IOPF framework and the SVA fault handler, which resolve them on the
//! process's address space.
//!
//! The driver gives user space `/dev/iopf-testdev`, whose ioctls bind the
//! device to the caller's address space ([`Sva::bind`]), run a job on it,
//! and read the device's counters. The job layout and the counters are the
//! device's registers (see [`regs`]).
//!
//! One process at a time holds the binding; closing the file, `UNBIND` or
//! the device going away (driver unbind, `remove` in sysfs) stops the
//! device and unbinds the PASID, with page requests in flight if a job was
//! running: the IOMMU driver then drains them. The driver logs how many
//! page requests were in flight before and after each unbind.

use kernel::{
    device::Core,
    devres::Devres,
    fs::File,
    io::Io,
    ioctl::{
        _IO,
        _IOC_SIZE,
        _IOR,
        _IOW, //
    },
    iommu::sva::Sva,
    miscdevice::{
        MiscDevice,
        MiscDeviceOptions,
        MiscDeviceRegistration, //
    },
    new_mutex,
    pci,
    prelude::*,
    sync::{
        aref::ARef,
        Arc,
        Mutex, //
    },
    time::{
        delay::fsleep,
        Delta,
        Instant,
        Monotonic, //
    },
    uaccess::{
        UserPtr,
        UserSlice, //
    }, //
};

/// The device's registers, as offsets in BAR 0 (all 64-bit).
mod regs {
    /// Size of BAR 0.
    pub(crate) const BAR_SIZE: usize = 0x8000;

    /// `"IOPF" << 32 | version`.
    pub(crate) const ID: usize = 0x000;
    pub(crate) const PASID: usize = 0x010;
    pub(crate) const ADDR: usize = 0x018;
    pub(crate) const LEN: usize = 0x020;
    pub(crate) const SEED: usize = 0x028;
    /// Bit 0: read and compare instead of write; bits 15:8: pages per group.
    pub(crate) const CTRL: usize = 0x030;
    pub(crate) const CMD: usize = 0x038;
    pub(crate) const STATUS: usize = 0x040;
    /// Page requests in flight.
    pub(crate) const OUTSTANDING: usize = 0x0b0;
    /// First group-index counter: 32 bytes for each of the 512 indexes.
    pub(crate) const PRG_BASE: usize = 0x1000;

    pub(crate) const ID_MAGIC: u64 = 0x4650_4f49;

    pub(crate) const CMD_START: u64 = 1;
    pub(crate) const CMD_ABORT: u64 = 2;
    pub(crate) const CMD_CLEAR: u64 = 3;

    pub(crate) const STATUS_BUSY: u64 = 1 << 0;
    pub(crate) const STATUS_DONE: u64 = 1 << 1;
    pub(crate) const STATUS_ABORTED: u64 = 1 << 2;
    pub(crate) const STATUS_REFUSED: u64 = 1 << 3;

    /// Registers copied by the `COUNTERS` ioctl, from offset 0.
    pub(crate) const COUNTERS: usize = 48;
    /// Group indexes (PRGI is 9 bits) and 32-bit words per index.
    pub(crate) const PRG_COUNT: usize = 512;
    pub(crate) const PRG_WORDS: usize = 8;
}

/// The ioctl type of this driver.
const IOC_TYPE: u32 = b'|' as u32;
/// Binds the device to the caller's address space; returns the PASID.
const IOPF_TESTDEV_BIND: u32 = _IO(IOC_TYPE, 0x90);
/// Stops the device and unbinds it from the caller's address space.
const IOPF_TESTDEV_UNBIND: u32 = _IO(IOC_TYPE, 0x91);
/// Runs a job, `[addr, len, seed, ctrl, timeout_ms]`, until it ends.
const IOPF_TESTDEV_RUN: u32 = _IOW::<[u64; 5]>(IOC_TYPE, 0x92);
/// Copies the first [`regs::COUNTERS`] registers.
const IOPF_TESTDEV_COUNTERS: u32 = _IOR::<[u64; regs::COUNTERS]>(IOC_TYPE, 0x93);
/// Copies the counters of the first `count` group indexes to `ptr`
/// (`[ptr, count]`), 8 words of 32 bits each.
const IOPF_TESTDEV_GROUPS: u32 = _IOW::<[u64; 2]>(IOC_TYPE, 0x94);
/// Clears the device's counters (refused while a job runs).
const IOPF_TESTDEV_CLEAR: u32 = _IO(IOC_TYPE, 0x95);

/// How often a waiting job polls the device's status.
const POLL: Delta = Delta::from_micros(100);
/// How long an aborted job may take to get its last responses.
const ABORT_GRACE: Delta = Delta::from_millis(10_000);

/// A binding of the device to a process's address space.
struct Binding {
    /// The session (open file) that made it.
    owner: usize,
    sva: Devres<Sva>,
    pasid: u32,
}

/// What the driver and the sessions share, under [`Testdev::state`].
struct State {
    /// The driver is bound to the device.
    ///
    /// While it is true, the PCI device is bound to this driver: the
    /// driver's `unbind` callback, which runs before the device is unbound,
    /// sets it to false first, under the same lock.
    bound: bool,
    binding: Option<Binding>,
}

/// One device, shared by the driver and the open files.
#[pin_data]
struct Testdev {
    pdev: ARef<pci::Device>,
    bar: pci::DevresBar<{ regs::BAR_SIZE }>,
    #[pin]
    state: Mutex<State>,
}

impl Testdev {
    /// Reads a register, or `None` once the device is gone.
    fn read(&self, offset: usize) -> Option<u64> {
        self.bar
            .try_access()
            .map(|bar| bar.try_read64(offset).unwrap_or(0))
    }

    /// Writes a register; `ENODEV` once the device is gone.
    fn write(&self, offset: usize, value: u64) -> Result {
        let bar = self.bar.try_access().ok_or(ENODEV)?;
        bar.try_write64(value, offset)
    }

    /// Stops the device's job, then unbinds `binding`.
    ///
    /// The device's page requests still in flight are drained by the IOMMU
    /// driver as part of the unbind; the log shows how many there were
    /// before the unbind and how many are left after it.
    fn stop_and_unbind(&self, binding: Binding) {
        let before = self
            .write(regs::CMD, regs::CMD_ABORT)
            .ok()
            .and_then(|()| self.read(regs::OUTSTANDING));
        dev_info!(
            self.pdev,
            "unbinding PASID {} with {} page requests in flight\n",
            binding.pasid,
            before.unwrap_or(0)
        );
        let Binding { sva, pasid, .. } = binding;
        drop(sva);
        match self.read(regs::OUTSTANDING) {
            Some(after) => dev_info!(
                self.pdev,
                "PASID {} unbound: {} page requests in flight\n",
                pasid,
                after
            ),
            None => dev_info!(self.pdev, "PASID {} unbound\n", pasid),
        }
    }
}

/// The driver data of a bound device.
#[pin_data(PinnedDrop)]
struct Probed {
    dev: Arc<Testdev>,
    /// Registered last, so that [`Session::open`] finds `dev` initialized.
    #[pin]
    misc: MiscDeviceRegistration<Session>,
}

#[pinned_drop]
impl PinnedDrop for Probed {
    fn drop(self: Pin<&mut Self>) {
        dev_dbg!(self.dev.pdev, "removed\n");
    }
}

struct TestdevDriver;

// 1af4:10f0, from the range QEMU keeps for experimental devices
// (QEMU's docs/specs/pci-ids.rst).
kernel::pci_device_table!(
    PCI_TABLE,
    <TestdevDriver as pci::Driver>::IdInfo,
    [(
        pci::DeviceId::from_id(pci::Vendor::REDHAT_QUMRANET, 0x10f0),
        ()
    )]
);

impl pci::Driver for TestdevDriver {
    type IdInfo = ();
    type Data<'bound> = Probed;

    const ID_TABLE: pci::IdTable<Self::IdInfo> = &PCI_TABLE;

    fn probe<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        _info: Option<&'bound Self::IdInfo>,
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
        pin_init::pin_init_scope(move || {
            pdev.enable_device_mem()?;
            pdev.set_master();
            let bar = pdev.iomap_region_sized::<{ regs::BAR_SIZE }>(0, c"iopf-testdev")?;
            let id = bar.try_read64(regs::ID)?;
            if id >> 32 != regs::ID_MAGIC {
                dev_err!(pdev, "not an iopf-testdev (ID {:#x})\n", id);
                return Err(ENODEV);
            }
            let dev = Arc::pin_init(
                try_pin_init!(Testdev {
                    pdev: pdev.into(),
                    bar: bar.into_devres()?,
                    state <- new_mutex!(State {
                        bound: true,
                        binding: None,
                    }),
                }),
                GFP_KERNEL,
            )?;
            dev_info!(pdev, "iopf-testdev version {}\n", id & 0xffff_ffff);
            Ok(try_pin_init!(Probed {
                dev,
                misc <- MiscDeviceRegistration::register(MiscDeviceOptions {
                    name: c"iopf-testdev",
                }),
            }))
        })
    }

    fn unbind<'bound>(_pdev: &'bound pci::Device<Core<'_>>, this: Pin<&Self::Data<'bound>>) {
        let binding = {
            let mut state = this.dev.state.lock();
            state.bound = false;
            state.binding.take()
        };
        match binding {
            Some(binding) => this.dev.stop_and_unbind(binding),
            None => {
                let _ = this.dev.write(regs::CMD, regs::CMD_ABORT);
            }
        }
    }
}

/// An open `/dev/iopf-testdev`.
struct Session {
    dev: Arc<Testdev>,
}

impl Session {
    /// Identifies the session in [`Binding::owner`].
    fn id(&self) -> usize {
        core::ptr::from_ref(self) as usize
    }

    fn bind(&self) -> Result<isize> {
        let task = kernel::current!();
        let mm = task.mm().ok_or(EINVAL)?;
        let mut state = self.dev.state.lock();
        if !state.bound {
            return Err(ENODEV);
        }
        if state.binding.is_some() {
            return Err(EBUSY);
        }
        // SAFETY: `state.bound` is true and the state lock is held, so the
        // driver's `unbind` callback has not started: the device stays bound
        // to this driver while `dev` is used, which ends with this scope.
        let dev = unsafe { self.dev.pdev.as_ref().as_bound() };
        let sva = Sva::bind(dev, mm)?;
        let pasid = sva.access(dev)?.pasid();
        dev_info!(
            self.dev.pdev,
            "bound to the address space of pid {} as PASID {}\n",
            task.pid(),
            pasid
        );
        state.binding = Some(Binding {
            owner: self.id(),
            sva,
            pasid,
        });
        Ok(pasid.try_into()?)
    }

    /// Unbinds the session's binding, if it has one.
    fn unbind(&self) -> Result<isize> {
        let binding = {
            let mut state = self.dev.state.lock();
            match &state.binding {
                Some(b) if b.owner == self.id() => state.binding.take(),
                Some(_) => return Err(EPERM),
                None => return Err(EINVAL),
            }
        };
        if let Some(binding) = binding {
            self.dev.stop_and_unbind(binding);
        }
        Ok(0)
    }

    /// Starts a job on the bound PASID and waits for its end.
    ///
    /// Returns 0 when the job is done (pages given up are in the counters),
    /// `ECANCELED` if it was aborted (unbind), `ETIMEDOUT` after
    /// `timeout_ms`, `ENODEV` if the device went away.
    fn run(&self, job: [u64; 5]) -> Result<isize> {
        let [addr, len, seed, ctrl, timeout_ms] = job;
        {
            let state = self.dev.state.lock();
            if !state.bound {
                return Err(ENODEV);
            }
            let pasid = match &state.binding {
                Some(b) if b.owner == self.id() => b.pasid,
                Some(_) => return Err(EPERM),
                None => return Err(EINVAL),
            };
            let bar = self.dev.bar.try_access().ok_or(ENODEV)?;
            if bar.try_read64(regs::STATUS)? & regs::STATUS_BUSY != 0 {
                return Err(EBUSY);
            }
            bar.try_write64(pasid.into(), regs::PASID)?;
            bar.try_write64(addr, regs::ADDR)?;
            bar.try_write64(len, regs::LEN)?;
            bar.try_write64(seed, regs::SEED)?;
            bar.try_write64(ctrl, regs::CTRL)?;
            bar.try_write64(regs::CMD_START, regs::CMD)?;
            if bar.try_read64(regs::STATUS)? & regs::STATUS_REFUSED != 0 {
                return Err(EINVAL);
            }
        }
        self.wait(Delta::from_millis(timeout_ms.try_into()?))
    }

    fn wait(&self, timeout: Delta) -> Result<isize> {
        let start = Instant::<Monotonic>::now();
        let mut deadline = timeout;
        let mut timed_out = false;
        loop {
            let status = self.dev.read(regs::STATUS).ok_or(ENODEV)?;
            if status & regs::STATUS_BUSY == 0 {
                return match status {
                    _ if timed_out => Err(ETIMEDOUT),
                    s if s & regs::STATUS_DONE != 0 => Ok(0),
                    s if s & regs::STATUS_ABORTED != 0 => Err(ECANCELED),
                    _ => Err(EIO),
                };
            }
            let elapsed = start.elapsed();
            if elapsed > deadline {
                if timed_out {
                    dev_err!(self.dev.pdev, "job still running after its abort\n");
                    return Err(ETIMEDOUT);
                }
                dev_warn!(self.dev.pdev, "job timed out, aborting it\n");
                self.dev.write(regs::CMD, regs::CMD_ABORT)?;
                timed_out = true;
                deadline = elapsed + ABORT_GRACE;
            }
            fsleep(POLL);
        }
    }

    fn counters(&self, arg: usize, size: usize) -> Result<isize> {
        let mut values = [0u64; regs::COUNTERS];
        for (i, value) in values.iter_mut().enumerate() {
            *value = self.dev.read(i * 8).ok_or(ENODEV)?;
        }
        UserSlice::new(UserPtr::from_addr(arg), size)
            .writer()
            .write(&values)?;
        Ok(0)
    }

    fn groups(&self, arg: usize, size: usize) -> Result<isize> {
        let [ptr, count] = UserSlice::new(UserPtr::from_addr(arg), size)
            .reader()
            .read::<[u64; 2]>()?;
        let count = usize::try_from(count)?.min(regs::PRG_COUNT);
        let words = count * regs::PRG_WORDS;
        let mut table = KVec::with_capacity(words, GFP_KERNEL)?;
        {
            let bar = self.dev.bar.try_access().ok_or(ENODEV)?;
            for i in 0..words {
                table.push(bar.try_read32(regs::PRG_BASE + 4 * i)?, GFP_KERNEL)?;
            }
        }
        UserSlice::new(UserPtr::from_addr(ptr.try_into()?), words * 4)
            .writer()
            .write_slice(table.as_slice().as_bytes())?;
        Ok(0)
    }
}

#[vtable]
impl MiscDevice for Session {
    type Ptr = Pin<KBox<Self>>;

    fn open(_file: &File, misc: &MiscDeviceRegistration<Self>) -> Result<Self::Ptr> {
        // SAFETY: This driver registers its misc device only as the `misc`
        // field of a `Probed`, which is pinned in the PCI device's driver
        // data and whose `dev` field is initialized before `misc`. The misc
        // core calls `open()` with the registration alive (`misc_mtx`, which
        // `misc_deregister()` takes), so the `Probed` is alive as well.
        let probed = unsafe { &*kernel::container_of!(core::ptr::from_ref(misc), Probed, misc) };
        Ok(KBox::pin(
            Session {
                dev: probed.dev.clone(),
            },
            GFP_KERNEL,
        )?)
    }

    fn release(session: Self::Ptr, _file: &File) {
        let _ = session.unbind();
    }

    fn ioctl(session: Pin<&Session>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        let size = _IOC_SIZE(cmd);
        match cmd {
            IOPF_TESTDEV_BIND => session.bind(),
            IOPF_TESTDEV_UNBIND => session.unbind(),
            IOPF_TESTDEV_RUN => {
                let job = UserSlice::new(UserPtr::from_addr(arg), size)
                    .reader()
                    .read::<[u64; 5]>()?;
                session.run(job)
            }
            IOPF_TESTDEV_COUNTERS => session.counters(arg, size),
            IOPF_TESTDEV_GROUPS => session.groups(arg, size),
            IOPF_TESTDEV_CLEAR => {
                session.dev.write(regs::CMD, regs::CMD_CLEAR)?;
                Ok(0)
            }
            _ => Err(ENOTTY),
        }
    }
}

kernel::module_pci_driver! {
    type: TestdevDriver,
    name: "rust_iopf_testdev",
    authors: ["The iopf-rust project"],
    description: "Driver of iopf-testdev, a QEMU PCIe device that makes I/O page faults",
    license: "GPL v2",
}
