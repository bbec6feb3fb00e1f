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
//! - a group whose last request's address has [`KEEP`] set is kept, to be answered later with
//!   [`answer_kept`], as iommufd keeps groups for user space to answer;
//! - otherwise the group goes to a work item on the fault queue, which answers `Invalid` if a
//!   request asks for execution, `Success` if not.

use kernel::{
    bindings,
    iommu::fault::{
        iopf_handler,
        Domain,
        Group,
        GroupWork,
        Handler,
        Incoming,
        Permission,
        ResponseCode, //
    },
    prelude::*,
};

use crate::events::{
    self,
    Stage, //
};

/// The address bit of the requests whose group the consumer keeps, to answer later.
pub(crate) const KEEP: u64 = 1 << 40;

kernel::sync::global_lock! {
    // SAFETY: Initialised by `init()`, from the module's init, before any other use.
    unsafe(uninit) static KEPT: Mutex<KVec<Group>> = KVec::new();
}

/// Sets up the consumer. Called once, from the module's init.
pub(crate) fn init() {
    // SAFETY: Called once, before any other use of `KEPT`.
    unsafe { KEPT.init() };
}

/// Answers the groups the consumer kept with `code`; returns how many there were.
pub(crate) fn answer_kept(code: ResponseCode) -> usize {
    let kept = core::mem::take(&mut *KEPT.lock());
    let count = kept.len();
    for group in kept {
        events::record(&group.last().request(), Stage::Handled { code });
        group.respond(code);
    }
    count
}

// ANCHOR: consumer
/// The consumer.
pub(crate) struct Consumer;

impl Handler for Consumer {
    fn handle(group: Incoming<'_>) -> Result<(), Incoming<'_>> {
        let last = group.last().request();
        events::record(&last, Stage::Grouped { pages: group.len() });
        if group
            .requests()
            .any(|r| r.perm.contains(Permission::Privileged))
        {
            events::record(&last, Stage::Refused);
            // The framework answers `Failure`.
            return Err(group);
        }
        if last.addr & KEEP != 0 {
            // Answered later: the group is ours until then, whatever happens to the device.
            // Without memory to keep it, the group is dropped: answered `Invalid`.
            let _ = KEPT.lock().push(group.keep(), GFP_KERNEL);
            return Ok(());
        }
        // Resolving faults may sleep: defer to the fault queue, whose flush waits for it.
        group.queue_work::<Consumer>()
    }
}

impl GroupWork for Consumer {
    fn run(group: Group, _domain: &Domain) {
        let code = if group.requests().any(|r| r.perm.contains(Permission::Exec)) {
            ResponseCode::Invalid
        } else {
            ResponseCode::Success
        };
        events::record(&group.last().request(), Stage::Handled { code });
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
