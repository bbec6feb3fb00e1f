// SPDX-License-Identifier: GPL-2.0

//! The fault consumer: the `iopf_handler` of the mock IOMMU's domain, and the work item that
//! answers each group.
//!
//! A real consumer (SVA, iommufd) resolves the faults against an address space. This one stands
//! for an address space where every page can be mapped for reading and writing, none for
//! execution, and privileged requests are not served at all:
//!
//! - a group with a privileged request is refused by the handler: the framework answers it
//!   `Failure`;
//! - otherwise the group goes to a work item on the fault queue, which answers `Invalid` if a
//!   request asks for execution, `Success` if not.

use kernel::{
    bindings,
    iommu::fault::{
        iopf_handler,
        Group,
        GroupWork,
        Handler,
        Permission,
        ResponseCode, //
    },
    prelude::*,
};

use crate::events::{
    self,
    Stage, //
};

// ANCHOR: consumer
/// The consumer.
pub(crate) struct Consumer;

impl Handler for Consumer {
    fn handle(group: Group) -> Result<(), Group> {
        let last = group.last();
        events::record(&last, Stage::Grouped { pages: group.len() });
        if group
            .requests()
            .any(|r| r.perm.contains(Permission::Privileged))
        {
            events::record(&last, Stage::Refused);
            // The framework answers `Failure`.
            return Err(group);
        }
        // Resolving faults may sleep: defer to the fault queue, whose flush waits for it.
        group.queue_work::<Consumer>()
    }
}

impl GroupWork for Consumer {
    fn run(group: Group) {
        let code = if group.requests().any(|r| r.perm.contains(Permission::Exec)) {
            ResponseCode::Invalid
        } else {
            ResponseCode::Success
        };
        events::record(&group.last(), Stage::Handled { code });
        group.respond(code);
    }
}
// ANCHOR_END: consumer

impl Consumer {
    /// The C function pointer for the domain's `iopf_handler`.
    pub(crate) fn iopf_handler() -> Option<unsafe extern "C" fn(*mut bindings::iopf_group) -> c_int>
    {
        iopf_handler::<Consumer>()
    }
}
