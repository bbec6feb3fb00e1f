// SPDX-License-Identifier: GPL-2.0

//! Page requests and page responses, as typed values.
//!
//! C header: [`include/linux/iommu.h`](srctree/include/linux/iommu.h)

use crate::bindings;

crate::impl_flags!(
    /// The access permissions a page request asks for (`IOMMU_FAULT_PERM_*`).
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct Permissions(u32);

    /// One access permission of a page request.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Permission {
        /// The device wants to read the page.
        Read = bindings::IOMMU_FAULT_PERM_READ,

        /// The device wants to write to the page.
        Write = bindings::IOMMU_FAULT_PERM_WRITE,

        /// The device wants to execute from the page.
        Exec = bindings::IOMMU_FAULT_PERM_EXEC,

        /// The device asks for privileged (supervisor) access.
        Privileged = bindings::IOMMU_FAULT_PERM_PRIV,
    }
);

impl Permissions {
    /// The permissions of a C `perm` field; bits that name no permission are dropped.
    fn from_raw(raw: u32) -> Self {
        Self(raw & Self::all_bits())
    }
}

/// The PASID a page request was tagged with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pasid {
    /// The Process Address Space ID.
    pub id: u32,
    /// The page response must carry the same PASID
    /// (`IOMMU_FAULT_PAGE_RESPONSE_NEEDS_PASID`); when false it carries none.
    pub in_response: bool,
}

/// A page request, as the IOMMU received it from a device (`struct iommu_fault_page_request`).
///
/// Requests with the same [`group`](Self::group) form a page request group. The framework holds
/// the requests that are not [`last`](Self::last) until the group's last request arrives, then
/// hands the whole group to the domain's fault handler, and the group gets one response.
///
/// # Examples
///
/// ```
/// use kernel::iommu::fault::{PageRequest, Pasid, Permission};
///
/// // A device asks for two pages in group 7, on PASID 1.
/// let pasid = Pasid { id: 1, in_response: true };
/// let first = PageRequest::new(0x1000, Permission::Read | Permission::Write, 7)
///     .with_pasid(pasid)
///     .partial();
/// let last = PageRequest::new(0x2000, Permission::Read.into(), 7).with_pasid(pasid);
///
/// assert!(!first.last && last.last);
/// assert!(first.perm.contains(Permission::Write));
/// assert!(!last.perm.contains(Permission::Write));
/// assert_eq!(last.pasid.map(|p| p.id), Some(1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// The address of the page, in the device's I/O address space.
    pub addr: u64,
    /// The access the device asks for.
    pub perm: Permissions,
    /// The Page Request Group Index (PCIe PRI: 9 bits).
    pub group: u32,
    /// The last request of its group (`IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE`): the group is
    /// complete, and will be answered.
    pub last: bool,
    /// The PASID, if the request carries one (`IOMMU_FAULT_PAGE_REQUEST_PASID_VALID`).
    pub pasid: Option<Pasid>,
    /// Device-specific data the driver needs for its response, kept as is.
    pub private_data: [u64; 2],
}

impl PageRequest {
    /// A request for the page at `addr` that is the last of group `group`, without PASID.
    pub fn new(addr: u64, perm: Permissions, group: u32) -> Self {
        Self {
            addr,
            perm,
            group,
            last: true,
            pasid: None,
            private_data: [0; 2],
        }
    }

    /// The same request, but not the last of its group.
    #[must_use]
    pub fn partial(self) -> Self {
        Self {
            last: false,
            ..self
        }
    }

    /// The same request, tagged with `pasid`.
    #[must_use]
    pub fn with_pasid(self, pasid: Pasid) -> Self {
        Self {
            pasid: Some(pasid),
            ..self
        }
    }

    /// The C form of the request, ready for `iommu_report_device_fault()`.
    pub(crate) fn to_raw(self) -> bindings::iopf_fault {
        let mut flags = 0;
        if self.last {
            flags |= bindings::IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE;
        }
        if let Some(pasid) = self.pasid {
            flags |= bindings::IOMMU_FAULT_PAGE_REQUEST_PASID_VALID;
            if pasid.in_response {
                flags |= bindings::IOMMU_FAULT_PAGE_RESPONSE_NEEDS_PASID;
            }
        }
        bindings::iopf_fault {
            fault: bindings::iommu_fault {
                type_: bindings::iommu_fault_type_IOMMU_FAULT_PAGE_REQ,
                prm: bindings::iommu_fault_page_request {
                    flags,
                    pasid: self.pasid.map_or(0, |p| p.id),
                    grpid: self.group,
                    perm: self.perm.into(),
                    addr: self.addr,
                    private_data: self.private_data,
                },
            },
            ..Default::default()
        }
    }

    /// The request a C `struct iommu_fault_page_request` describes.
    ///
    /// `IOMMU_FAULT_PAGE_RESPONSE_NEEDS_PASID` only counts with a valid PASID.
    pub(crate) fn from_raw(prm: &bindings::iommu_fault_page_request) -> Self {
        let has = |flag| prm.flags & flag != 0;
        Self {
            addr: prm.addr,
            perm: Permissions::from_raw(prm.perm),
            group: prm.grpid,
            last: has(bindings::IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE),
            pasid: has(bindings::IOMMU_FAULT_PAGE_REQUEST_PASID_VALID).then(|| Pasid {
                id: prm.pasid,
                in_response: has(bindings::IOMMU_FAULT_PAGE_RESPONSE_NEEDS_PASID),
            }),
            private_data: prm.private_data,
        }
    }
}

/// The answer to a page request group (`enum iommu_page_response_code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseCode {
    /// The pages are mapped: the device retries the access ("Success" in PCIe PRI).
    Success,
    /// The request cannot be served: the device does not retry ("Invalid Request").
    Invalid,
    /// General error: the device may stop sending page requests ("Response Failure").
    Failure,
}

impl ResponseCode {
    /// The C value.
    pub(crate) fn to_raw(self) -> bindings::iommu_page_response_code {
        match self {
            Self::Success => bindings::iommu_page_response_code_IOMMU_PAGE_RESP_SUCCESS,
            Self::Invalid => bindings::iommu_page_response_code_IOMMU_PAGE_RESP_INVALID,
            Self::Failure => bindings::iommu_page_response_code_IOMMU_PAGE_RESP_FAILURE,
        }
    }

    /// The code a C value stands for, or `None` for a value the C enum does not have.
    pub(crate) fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            bindings::iommu_page_response_code_IOMMU_PAGE_RESP_SUCCESS => Some(Self::Success),
            bindings::iommu_page_response_code_IOMMU_PAGE_RESP_INVALID => Some(Self::Invalid),
            bindings::iommu_page_response_code_IOMMU_PAGE_RESP_FAILURE => Some(Self::Failure),
            _ => None,
        }
    }
}

/// A page response, as the IOMMU core asks the driver to send it (`struct iommu_page_response`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageResponse {
    /// The PASID to put in the response; meaningful only when the request's
    /// [`Pasid::in_response`] was set.
    pub pasid: u32,
    /// The Page Request Group Index being answered.
    pub group: u32,
    /// The answer.
    pub code: ResponseCode,
}
