// SPDX-License-Identifier: GPL-2.0

//! What a device's page requests came to, and the debugfs files that show it:
//! `/sys/kernel/debug/iopf/<queue>/<device>/{stats,latency}`.
//!
//! The counters live with the state they count, under the lock that each path takes anyway:
//! partial requests are counted by the partial store ([`crate::partial::Partials`]) under its
//! spinlock, the rest here under the fault lock. Counting adds no lock and no atomic operation.
//! A group's latency, from its last request to its answer, is timed for one group in [`SAMPLE`]
//! (two clock reads each), and for every group while the `iommu:iopf_answer` tracepoint is
//! enabled.

use kernel::{
    bindings,
    iommu::fault::trace,
    time::{
        Instant,
        Monotonic, //
    },
};
#[cfg(CONFIG_IOMMU_IOPF_RUST_DEBUGFS)]
use {
    crate::fault_param::FaultParam,
    core::fmt,
    kernel::{
        debugfs::{
            Dir,
            File, //
        },
        iommu::fault::FaultOwner,
        prelude::*,
        sync::{
            Arc,
            SetOnce, //
        },
    },
};

/// One group in this many has its latency timed.
const SAMPLE: u64 = 16;
/// Power-of-two latency buckets, in microseconds: `[0, 1)`, `[1, 2)`, `[2, 4)`, ... up to 8 s.
const BUCKETS: usize = 24;
/// The response codes counted one by one; others are counted together.
const CODES: [(&str, u32); 3] = [
    (
        "success",
        bindings::iommu_page_response_code_IOMMU_PAGE_RESP_SUCCESS,
    ),
    (
        "invalid",
        bindings::iommu_page_response_code_IOMMU_PAGE_RESP_INVALID,
    ),
    (
        "failure",
        bindings::iommu_page_response_code_IOMMU_PAGE_RESP_FAILURE,
    ),
];

/// What a device's page requests came to.
pub(crate) struct Stats {
    origin: Instant<Monotonic>,
    pub(crate) requests: u64,
    pub(crate) groups: u64,
    /// Groups handed to handlers and not answered yet.
    pub(crate) open: u64,
    responses: [u64; CODES.len() + 1],
    pub(crate) handler_failures: u64,
    pub(crate) alloc_failures: u64,
    latency: [u64; BUCKETS],
}

impl Stats {
    pub(crate) fn new() -> Self {
        Self {
            origin: Instant::now(),
            requests: 0,
            groups: 0,
            open: 0,
            responses: [0; CODES.len() + 1],
            handler_failures: 0,
            alloc_failures: 0,
            latency: [0; BUCKETS],
        }
    }

    /// Counts a new group, and returns its tag: when it started, in microseconds (wrapping), if
    /// it is timed, or 0.
    pub(crate) fn new_group(&mut self) -> u32 {
        self.groups += 1;
        self.open += 1;
        if self.groups % SAMPLE != 0 && !trace::answer_enabled() {
            return 0;
        }
        // CAST: Wraps every 71 minutes; only differences of nearby times are used.
        ((Instant::now() - self.origin).as_micros_ceil() as u32).max(1)
    }

    /// Counts the answer `code` to a group whose tag is `tag`, and returns its latency in
    /// microseconds (0 if it was not timed).
    pub(crate) fn answered(&mut self, code: u32, tag: u32) -> u32 {
        let index = CODES.iter().position(|&(_, c)| c == code);
        self.responses[index.unwrap_or(CODES.len())] += 1;
        if tag == 0 {
            return 0;
        }
        // CAST: As in `new_group`.
        let now = (Instant::now() - self.origin).as_micros_ceil() as u32;
        let latency = now.wrapping_sub(tag);
        let bucket = (u32::BITS - latency.leading_zeros()) as usize;
        self.latency[bucket.min(BUCKETS - 1)] += 1;
        latency
    }
}

/// The root of the IOPF debugfs directories, made with the first queue.
#[cfg(CONFIG_IOMMU_IOPF_RUST_DEBUGFS)]
static ROOT: SetOnce<Dir> = SetOnce::new();

/// A queue's debugfs directory, `iopf/<queue>`.
#[cfg(CONFIG_IOMMU_IOPF_RUST_DEBUGFS)]
pub(crate) fn queue_dir(name: &CStr) -> Dir {
    if ROOT.as_ref().is_none() {
        // Queues are made by IOMMU drivers as they probe, one after the other; if two raced, the
        // loser's `iopf` directory (a duplicate, not created) would be dropped.
        ROOT.populate(Dir::new(c"iopf"));
    }
    ROOT.as_ref()
        .map_or_else(|| Dir::new(name), |root| root.subdir(name))
}

/// A device's debugfs directory and files, `iopf/<queue>/<device>/`; they go when it is dropped.
#[cfg(CONFIG_IOMMU_IOPF_RUST_DEBUGFS)]
#[pin_data]
pub(crate) struct DeviceFiles {
    #[pin]
    stats: File<Arc<FaultParam>>,
    #[pin]
    latency: File<Arc<FaultParam>>,
    _dir: Dir,
}

#[cfg(CONFIG_IOMMU_IOPF_RUST_DEBUGFS)]
impl DeviceFiles {
    /// The files of the device of `param`, in the directory of its queue, `queue`.
    pub(crate) fn new(queue: &Dir, param: &Arc<FaultParam>) -> impl PinInit<Self> {
        let dir = queue.subdir(param.dev().name());
        let (stats, latency) = (param.clone(), param.clone());
        pin_init!(Self {
            stats <- dir.read_callback_file(c"stats", stats, &write_stats),
            latency <- dir.read_callback_file(c"latency", latency, &write_latency),
            _dir: dir,
        })
    }
}

/// `stats`: one `name value` line per counter.
#[cfg(CONFIG_IOMMU_IOPF_RUST_DEBUGFS)]
fn write_stats(param: &Arc<FaultParam>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let (partial_requests, held, held_max, dropped) =
        param.with_partials(|p| (p.requests(), p.held(), p.held_max(), p.dropped()));
    let mut faults = param.faults().lock();
    let stats = faults.as_mut().state();
    writeln!(f, "requests {}", stats.requests + partial_requests)?;
    writeln!(f, "groups {}", stats.groups)?;
    for (i, (name, _)) in CODES.iter().enumerate() {
        writeln!(f, "responses_{name} {}", stats.responses[i])?;
    }
    writeln!(f, "responses_other {}", stats.responses[CODES.len()])?;
    writeln!(f, "partials_held {held}")?;
    writeln!(f, "partials_held_max {held_max}")?;
    writeln!(f, "partials_dropped {dropped}")?;
    writeln!(f, "groups_pending {}", stats.open)?;
    writeln!(f, "handler_failures {}", stats.handler_failures)?;
    writeln!(f, "alloc_failures {}", stats.alloc_failures)
}

/// `latency`: `<low>-<high>us count` per bucket, for the groups timed.
#[cfg(CONFIG_IOMMU_IOPF_RUST_DEBUGFS)]
fn write_latency(param: &Arc<FaultParam>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let mut faults = param.faults().lock();
    let stats = faults.as_mut().state();
    writeln!(
        f,
        "# one group in {SAMPLE} is timed, or all while iommu:iopf_answer is traced"
    )?;
    for (bucket, count) in stats.latency.iter().enumerate() {
        let low = if bucket == 0 { 0 } else { 1u64 << (bucket - 1) };
        if bucket + 1 == BUCKETS {
            writeln!(f, "{low}-us {count}")?;
        } else {
            writeln!(f, "{low}-{}us {count}", 1u64 << bucket)?;
        }
    }
    Ok(())
}
