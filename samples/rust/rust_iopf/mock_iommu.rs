// SPDX-License-Identifier: GPL-2.0

//! The mock IOMMU driver: a fault queue, two endpoint devices registered on it, page requests
//! injected as if they came from the hardware, and the page responses sent back.
//!
//! Everything about I/O page faults goes through `kernel::iommu::fault`. The registration of the
//! IOMMU itself, which Rust in 7.3 does not wrap, is in `iommu_shim.c` (see why there).
//!
//! Endpoint 0 has the consumer's domain attached, so its page requests reach the consumer;
//! endpoint 1 has none, so the framework answers its requests itself.

use core::ptr::NonNull;

use kernel::{
    device::Device,
    error::{
        from_err_ptr,
        to_result, //
    },
    iommu::fault::{
        page_response_op,
        FaultQueue,
        PageRequest,
        PageResponder,
        PageResponse,
        Permission,
        Permissions,
        QueueDevice, //
    },
    prelude::*,
    sync::{
        aref::ARef,
        atomic::Relaxed,
        Arc, //
    },
};

use crate::{
    consumer::Consumer,
    events::{
        self,
        Stage,
        COUNTERS, //
    },
};

/// The shim's functions, as declared in `iommu_shim.h`.
mod shim {
    use kernel::{
        bindings,
        prelude::*, //
    };

    /// `struct rust_iopf_iommu`, opaque.
    #[repr(C)]
    pub(super) struct Iommu {
        _private: [u8; 0],
    }

    pub(super) type PageResponseFn = Option<
        unsafe extern "C" fn(
            *mut bindings::device,
            *mut bindings::iopf_fault,
            *mut bindings::iommu_page_response,
        ),
    >;
    pub(super) type HandlerFn = Option<unsafe extern "C" fn(*mut bindings::iopf_group) -> c_int>;

    // `bindings` types hold zero-sized C arrays, which the lint flags; bindgen's own extern
    // blocks allow it the same way.
    #[allow(improper_ctypes)]
    extern "C" {
        pub(super) fn rust_iopf_iommu_register(
            parent: *mut bindings::device,
            name: *const c_char,
            page_response: PageResponseFn,
        ) -> *mut Iommu;
        pub(super) fn rust_iopf_iommu_unregister(iommu: *mut Iommu);
        pub(super) fn rust_iopf_endpoint_add(
            iommu: *mut Iommu,
            index: c_uint,
        ) -> *mut bindings::device;
        pub(super) fn rust_iopf_endpoint_remove(dev: *mut bindings::device);
        pub(super) fn rust_iopf_domain_alloc(
            iommu: *mut Iommu,
            iopf_handler: HandlerFn,
        ) -> *mut bindings::iommu_domain;
        pub(super) fn rust_iopf_domain_free(domain: *mut bindings::iommu_domain);
        pub(super) fn rust_iopf_domain_attach(
            domain: *mut bindings::iommu_domain,
            dev: *mut bindings::device,
        ) -> c_int;
        pub(super) fn rust_iopf_domain_detach(
            domain: *mut bindings::iommu_domain,
            dev: *mut bindings::device,
        );
    }
}

/// The C `struct device` of `dev`, for the shim.
fn raw(dev: &Device) -> *mut kernel::bindings::device {
    // CAST: `Device` is `#[repr(transparent)]` over `Opaque<bindings::device>`, itself transparent
    // over the C struct: the cast `Device::from_raw` relies on, the other way round.
    core::ptr::from_ref(dev).cast_mut().cast()
}

// ANCHOR: page_response
/// The mock IOMMU's `page_response` op: a real driver would queue a response command to its
/// hardware; the mock records the answer.
struct Responder;

impl PageResponder for Responder {
    fn page_response(_dev: &Device, request: &PageRequest, response: &PageResponse) {
        events::record(
            request,
            Stage::Answered {
                code: response.code,
            },
        );
    }
}
// ANCHOR_END: page_response

/// The IOMMU, registered with the IOMMU core on a bus of its own.
///
/// # Invariants
///
/// `ptr` was returned by `rust_iopf_iommu_register()` and is not unregistered yet.
struct Registration {
    ptr: NonNull<shim::Iommu>,
}

impl Registration {
    fn new(parent: Option<&Device>, name: &'static CStr) -> Result<Self> {
        let parent = parent.map_or(core::ptr::null_mut(), raw);
        // SAFETY: `parent` is NULL or a valid device, `name` is a static string, and the op has
        // the `page_response` signature.
        let ptr = from_err_ptr(unsafe {
            shim::rust_iopf_iommu_register(
                parent,
                name.as_char_ptr(),
                page_response_op::<Responder>(),
            )
        })?;
        // INVARIANT: `ptr` was just registered.
        Ok(Self {
            ptr: NonNull::new(ptr).ok_or(ENOMEM)?,
        })
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: By the type invariant, the IOMMU is registered; its endpoints and domain are
        // gone, being fields of `MockIommu` declared before the registration.
        unsafe { shim::rust_iopf_iommu_unregister(self.ptr.as_ptr()) };
    }
}

/// A domain of the mock IOMMU, whose fault handler is the consumer's.
///
/// # Invariants
///
/// `ptr` was returned by `rust_iopf_domain_alloc()` and is not freed yet.
struct Domain {
    ptr: NonNull<kernel::bindings::iommu_domain>,
}

impl Domain {
    fn new(iommu: &Registration) -> Result<Self> {
        // SAFETY: By its type invariant, `iommu` is registered.
        let ptr =
            unsafe { shim::rust_iopf_domain_alloc(iommu.ptr.as_ptr(), Consumer::iopf_handler()) };
        // INVARIANT: `ptr`, if not NULL, was just allocated.
        Ok(Self {
            ptr: NonNull::new(ptr).ok_or(ENOMEM)?,
        })
    }
}

impl Drop for Domain {
    fn drop(&mut self) {
        // SAFETY: By the type invariant, the domain is live; it is attached nowhere, the
        // attachments being dropped with the endpoints, before the domain.
        unsafe { shim::rust_iopf_domain_free(self.ptr.as_ptr()) };
    }
}

/// An endpoint device on the mock IOMMU's bus; unregistered on drop.
struct EndpointDevice {
    dev: ARef<Device>,
}

impl EndpointDevice {
    fn new(iommu: &Registration, index: u32) -> Result<Self> {
        // SAFETY: By its type invariant, `iommu` is registered.
        let ptr = from_err_ptr(unsafe { shim::rust_iopf_endpoint_add(iommu.ptr.as_ptr(), index) })?;
        // SAFETY: `ptr` is a valid device, registered by the shim, of which we take a reference.
        let dev: &Device = unsafe { Device::from_raw(ptr) };
        let dev = dev.into();
        Ok(Self { dev })
    }
}

impl Drop for EndpointDevice {
    fn drop(&mut self) {
        // SAFETY: The device was added by `rust_iopf_endpoint_add()` and is removed once;
        // `self.dev` keeps it allocated until the reference is dropped.
        unsafe { shim::rust_iopf_endpoint_remove(raw(&self.dev)) };
    }
}

/// A domain attached to an endpoint; detached on drop.
struct Attachment {
    domain: NonNull<kernel::bindings::iommu_domain>,
    dev: ARef<Device>,
}

impl Attachment {
    fn new(domain: &Domain, dev: &Device) -> Result<Self> {
        // SAFETY: `domain` is a live domain of the endpoint's IOMMU, `dev` a live endpoint.
        to_result(unsafe { shim::rust_iopf_domain_attach(domain.ptr.as_ptr(), raw(dev)) })?;
        Ok(Self {
            domain: domain.ptr,
            dev: dev.into(),
        })
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        // SAFETY: The domain was attached to the device by `Attachment::new`, and outlives the
        // attachment (see `Domain`'s drop).
        unsafe { shim::rust_iopf_domain_detach(self.domain.as_ptr(), raw(&self.dev)) };
    }
}

// ANCHOR: endpoint
/// One endpoint, in its teardown order (fields drop in declaration order): the domain is
/// detached first, so no new group reaches the consumer; then the device leaves the fault queue,
/// which waits for the consumer's work items; then it is unregistered.
struct Endpoint {
    attachment: Option<Attachment>,
    registered: Option<QueueDevice>,
    _device: EndpointDevice,
}
// ANCHOR_END: endpoint

/// The mock IOMMU: what a Rust IOMMU driver's probe would set up, minus the hardware.
pub(crate) struct MockIommu {
    endpoints: KVec<Endpoint>,
    _domain: Domain,
    _registration: Registration,
    // Declared last: the queue outlives its devices (they also hold a reference).
    _queue: Arc<FaultQueue>,
}

// SAFETY: The raw pointers in the fields are to objects that the IOMMU core lets any thread use.
unsafe impl Send for MockIommu {}
// SAFETY: `&MockIommu` only reports page requests, which the IOPF framework serialises.
unsafe impl Sync for MockIommu {}

/// The most pages of an injected group: enough to go past the Rust core's bound on held partial
/// requests (2048 by default), which then drops the group.
pub(crate) const MAX_PAGES: u32 = 4096;

/// The endpoint with the consumer's domain attached.
pub(crate) const EP_WITH_DOMAIN: u32 = 0;
/// The endpoint without a domain.
pub(crate) const EP_WITHOUT_DOMAIN: u32 = 1;

impl MockIommu {
    /// Registers the IOMMU named `name` (unique: it names a bus), a fault queue and its two
    /// endpoints.
    pub(crate) fn new(parent: Option<&Device>, name: &'static CStr) -> Result<Self> {
        // ANCHOR: probe
        let queue = Arc::new(FaultQueue::new(name)?, GFP_KERNEL)?;
        let registration = Registration::new(parent, name)?;
        let domain = Domain::new(&registration)?;
        let mut endpoints = KVec::new();
        for index in [EP_WITH_DOMAIN, EP_WITHOUT_DOMAIN] {
            let device = EndpointDevice::new(&registration, index)?;
            // A real driver registers the device on its queue when it enables PRI on it.
            let registered = Some(QueueDevice::new(&queue, &device.dev)?);
            // ANCHOR_END: probe
            let attachment = if index == EP_WITH_DOMAIN {
                Some(Attachment::new(&domain, &device.dev)?)
            } else {
                None
            };
            endpoints.push(
                Endpoint {
                    attachment,
                    registered,
                    _device: device,
                },
                GFP_KERNEL,
            )?;
        }
        Ok(Self {
            endpoints,
            _domain: domain,
            _registration: registration,
            _queue: queue,
        })
    }

    fn endpoint(&self, index: u32) -> Result<&Endpoint> {
        self.endpoints.get(index as usize).ok_or(ENODEV)
    }

    /// Injects one page request group of `pages` consecutive pages from `addr`, as endpoint
    /// `index`'s page requests, the last one last. Returns the group's sequence number.
    ///
    /// The result of reporting is recorded, not returned: a failed report is something the
    /// demo shows, not an error of the injection.
    pub(crate) fn inject(
        &self,
        index: u32,
        addr: u64,
        perm: Permissions,
        pages: u32,
    ) -> Result<u64> {
        let endpoint = self.endpoint(index)?;
        let registered = endpoint.registered.as_ref().ok_or(ENODEV)?;
        if pages == 0 || pages > MAX_PAGES {
            return Err(EINVAL);
        }
        let seq = events::next_seq();
        // PCIe PRI groups have a 9-bit index.
        // CAST: the modulo fits in 9 bits.
        let group = (seq % 512) as u32;
        let mut ret = 0;
        // ANCHOR: report
        for page in 0..pages {
            let mut request = PageRequest::new(addr + u64::from(page) * 4096, perm, group);
            if page + 1 < pages {
                request = request.partial();
            }
            // CAST: `now_ns()` is the non-negative monotonic clock.
            request.private_data = [seq, events::now_ns() as u64];
            COUNTERS.reported.add(1, Relaxed);
            if let Err(e) = registered.report(&request) {
                COUNTERS.report_errors.add(1, Relaxed);
                ret = e.to_errno();
            }
            if request.last {
                let stage = Stage::Reported {
                    endpoint: index,
                    group,
                    pages,
                    ret,
                };
                events::record(&request, stage);
            }
        }
        // ANCHOR_END: report
        Ok(seq)
    }

    /// Waits until the consumer's work items for endpoint `index` have run.
    pub(crate) fn flush(&self, index: u32) -> Result {
        self.endpoint(index)?
            .registered
            .as_ref()
            .ok_or(ENODEV)?
            .flush()
    }

    /// Takes endpoint `index` off the fault queue, as a driver does when it disables PRI.
    pub(crate) fn leave_queue(&mut self, index: u32) -> Result {
        let endpoint = self.endpoints.get_mut(index as usize).ok_or(ENODEV)?;
        endpoint.registered.take().ok_or(ENOENT).map(drop)
    }

    /// Detaches the consumer's domain from endpoint `index`.
    pub(crate) fn detach(&mut self, index: u32) -> Result {
        let endpoint = self.endpoints.get_mut(index as usize).ok_or(ENODEV)?;
        endpoint.attachment.take().ok_or(ENOENT).map(drop)
    }
}

/// Parses permissions written as letters: `r`ead, `w`rite, e`x`ec, `p`rivileged.
pub(crate) fn parse_perm(s: &str) -> Result<Permissions> {
    let mut perm = Permissions::empty();
    for c in s.chars() {
        perm |= match c {
            'r' => Permission::Read,
            'w' => Permission::Write,
            'x' => Permission::Exec,
            'p' => Permission::Privileged,
            _ => return Err(EINVAL),
        };
    }
    Ok(perm)
}
