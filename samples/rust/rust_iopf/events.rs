// SPDX-License-Identifier: GPL-2.0

//! What happened to each injected page request group, for debugfs and the tests.
//!
//! Each group the mock injects gets a sequence number, carried to the consumer and back to the
//! driver's page response in the requests' `private_data` with the injection time, so that every
//! stage can say which group it saw and how long after injection.

use core::fmt;

use kernel::{
    iommu::fault::{
        PageRequest,
        ResponseCode, //
    },
    prelude::*,
    sync::atomic::{
        Atomic,
        Relaxed, //
    },
};

/// At most this many events are kept; the counters go on counting past it.
const CAPACITY: usize = 4096;

/// A stage of a group's life.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// The mock reported the group's requests; `ret` is the last report's return value.
    Reported {
        endpoint: u32,
        group: u32,
        pages: u32,
        ret: i32,
    },
    /// The consumer's fault handler received the complete group.
    Grouped { pages: usize },
    /// The consumer's handler gave the group back to the framework.
    Refused,
    /// The consumer's work item answered the group.
    Handled { code: ResponseCode },
    /// The mock's page response op sent the answer to the device.
    Answered { code: ResponseCode },
}

/// One event: a stage of group `seq`, `ns` after its injection.
#[derive(Clone, Copy)]
pub(crate) struct Event {
    pub(crate) seq: u64,
    pub(crate) ns: i64,
    pub(crate) stage: Stage,
}

/// The event log and the counters.
pub(crate) struct Log {
    events: KVec<Event>,
    dropped: usize,
}

impl Log {
    const fn new() -> Self {
        Self {
            events: KVec::new(),
            dropped: 0,
        }
    }
}

kernel::sync::global_lock! {
    // SAFETY: Initialised by `init()`, from the module's init, before any other use.
    unsafe(uninit) static LOG: SpinLock<Log> = Log::new();
}

/// Counters, kept past [`CAPACITY`].
pub(crate) struct Counters {
    pub(crate) reported: Atomic<u64>,
    pub(crate) report_errors: Atomic<u64>,
    pub(crate) grouped: Atomic<u64>,
    pub(crate) refused: Atomic<u64>,
    pub(crate) success: Atomic<u64>,
    pub(crate) invalid: Atomic<u64>,
    pub(crate) failure: Atomic<u64>,
}

pub(crate) static COUNTERS: Counters = Counters {
    reported: Atomic::new(0),
    report_errors: Atomic::new(0),
    grouped: Atomic::new(0),
    refused: Atomic::new(0),
    success: Atomic::new(0),
    invalid: Atomic::new(0),
    failure: Atomic::new(0),
};

/// The next group's sequence number; shared by every mock IOMMU instance.
static NEXT_SEQ: Atomic<u64> = Atomic::new(1);

/// Sets up the log. Called once, from the module's init.
pub(crate) fn init() {
    // SAFETY: Called once, before any other use of `LOG`.
    unsafe { LOG.init() };
}

/// Monotonic time in nanoseconds.
///
/// `kernel::time::Instant` keeps its raw value private, and the injection time has to travel in
/// a request's `private_data`, hence `ktime_get()`.
pub(crate) fn now_ns() -> i64 {
    // SAFETY: `ktime_get()` may be called from any context.
    unsafe { kernel::bindings::ktime_get() }
}

/// Allocates the sequence number of a new group.
pub(crate) fn next_seq() -> u64 {
    NEXT_SEQ.fetch_add(1, Relaxed)
}

/// The group a request belongs to, and when it was injected, from its `private_data`.
pub(crate) fn tag(request: &PageRequest) -> (u64, i64) {
    // CAST: the mock stored the injection time, a non-negative `i64`, as a `u64`.
    (request.private_data[0], request.private_data[1] as i64)
}

/// Records `stage` of the group `request` belongs to.
pub(crate) fn record(request: &PageRequest, stage: Stage) {
    let (seq, injected) = tag(request);
    let ns = now_ns() - injected;
    match stage {
        Stage::Reported { .. } => {}
        Stage::Grouped { .. } => COUNTERS.grouped.add(1, Relaxed),
        Stage::Refused => COUNTERS.refused.add(1, Relaxed),
        Stage::Handled { .. } => {}
        Stage::Answered { code } => match code {
            ResponseCode::Success => COUNTERS.success.add(1, Relaxed),
            ResponseCode::Invalid => COUNTERS.invalid.add(1, Relaxed),
            ResponseCode::Failure => COUNTERS.failure.add(1, Relaxed),
        },
    }
    let mut log = LOG.lock();
    if log.events.len() >= CAPACITY {
        log.dropped += 1;
        return;
    }
    // The capacity is reserved by `clear()`, so this does not allocate.
    if log
        .events
        .push(Event { seq, ns, stage }, GFP_ATOMIC)
        .is_err()
    {
        log.dropped += 1;
    }
}

/// Forgets the events, and reserves room for [`CAPACITY`] of them.
pub(crate) fn clear() -> Result {
    let mut events = KVec::with_capacity(CAPACITY, GFP_KERNEL)?;
    let mut log = LOG.lock();
    core::mem::swap(&mut log.events, &mut events);
    log.dropped = 0;
    drop(log);
    drop(events);
    Ok(())
}

/// The events of group `seq`, for the tests.
pub(crate) fn of(seq: u64) -> Result<KVec<Stage>> {
    let mut out = KVec::new();
    for e in LOG.lock().events.iter().filter(|e| e.seq == seq) {
        out.push(e.stage, GFP_ATOMIC)?;
    }
    Ok(out)
}

fn code_name(code: ResponseCode) -> &'static str {
    match code {
        ResponseCode::Success => "success",
        ResponseCode::Invalid => "invalid",
        ResponseCode::Failure => "failure",
    }
}

/// Writes the `events` debugfs file: one `key=value` line per event.
pub(crate) fn write_events(f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let log = LOG.lock();
    for e in log.events.iter() {
        write!(f, "seq={} t_ns={} ", e.seq, e.ns)?;
        match e.stage {
            Stage::Reported {
                endpoint,
                group,
                pages,
                ret,
            } => writeln!(
                f,
                "event=reported ep={endpoint} grpid={group} pages={pages} ret={ret}"
            )?,
            Stage::Grouped { pages } => writeln!(f, "event=grouped pages={pages}")?,
            Stage::Refused => writeln!(f, "event=refused")?,
            Stage::Handled { code } => writeln!(f, "event=handled code={}", code_name(code))?,
            Stage::Answered { code } => writeln!(f, "event=answered code={}", code_name(code))?,
        }
    }
    if log.dropped > 0 {
        writeln!(f, "dropped={}", log.dropped)?;
    }
    Ok(())
}

/// Writes the `stats` debugfs file.
pub(crate) fn write_stats(f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let c = &COUNTERS;
    writeln!(f, "requests_reported {}", c.reported.load(Relaxed))?;
    writeln!(f, "report_errors {}", c.report_errors.load(Relaxed))?;
    writeln!(f, "groups_handled {}", c.grouped.load(Relaxed))?;
    writeln!(f, "groups_refused {}", c.refused.load(Relaxed))?;
    writeln!(f, "responses_success {}", c.success.load(Relaxed))?;
    writeln!(f, "responses_invalid {}", c.invalid.load(Relaxed))?;
    writeln!(f, "responses_failure {}", c.failure.load(Relaxed))
}
