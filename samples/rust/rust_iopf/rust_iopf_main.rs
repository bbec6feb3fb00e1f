// SPDX-License-Identifier: GPL-2.0

//! Rust I/O page fault sample: a mock IOMMU driver and a fault consumer, both written against
//! `kernel::iommu::fault`.
//!
//! At load it creates a faux device `rust_iopf` for the mock IOMMU, with a fault queue and two
//! endpoints (`rust_iopf_ep0`, with the consumer's domain attached, and `rust_iopf_ep1`, without),
//! and a debugfs directory `/sys/kernel/debug/rust_iopf/`:
//!
//! - `inject` (write) takes one command per line, and injects page requests as if the hardware
//!   had received them:
//!   - `page EP ADDR PERM`: a group of one page;
//!   - `group EP PAGES ADDR PERM`: a group of `PAGES` (at most 4096) consecutive pages, the last
//!     one last;
//!   - `flood EP COUNT`: `COUNT` groups of one page each, for reading;
//!   - `flush EP`: wait until the consumer's work items for endpoint `EP` have run.
//!
//!   `EP` is 0 or 1, `ADDR` a page address (decimal or `0x` hex), `PERM` letters among `r`ead,
//!   `w`rite, e`x`ec and `p`rivileged.
//! - `events` (read): one line per stage of each group: `reported` by the mock, `grouped` (the
//!   consumer's handler got the complete group), `refused` (it gave it back), `handled` (its
//!   work item answered), `answered` (the mock's page response op sent the answer), each with the
//!   nanoseconds since the group was injected.
//! - `stats` (read): counters.
//! - `clear` (write anything): forget the events.
//!
//! ```text
//! # echo 'group 0 4 0x10000 rw' > /sys/kernel/debug/rust_iopf/inject
//! # echo 'flush 0' > /sys/kernel/debug/rust_iopf/inject
//! # cat /sys/kernel/debug/rust_iopf/events
//! seq=1 t_ns=41000 event=grouped pages=4
//! seq=1 t_ns=52000 event=reported ep=0 grpid=1 pages=4 ret=0
//! seq=1 t_ns=90000 event=handled code=success
//! seq=1 t_ns=97000 event=answered code=success
//! ```

use kernel::{
    debugfs::{
        Dir,
        File, //
    },
    device::{
        Bound,
        Device, //
    },
    faux,
    prelude::*,
    uaccess::UserSliceReader, //
};

mod consumer;
mod events;
mod mock_iommu;

use mock_iommu::{
    parse_perm,
    MockIommu, //
};

module! {
    type: RustIopf,
    name: "rust_iopf",
    authors: ["The iopf-rust project"],
    description: "Rust I/O page fault sample: a mock IOMMU driver and a fault consumer",
    license: "GPL",
}

struct RustIopf {
    // Fields drop in declaration order: the debugfs files (the mock with them) before the
    // directory, and the mock IOMMU before its faux device.
    _inject: Pin<KBox<File<MockIommu>>>,
    _events: Pin<KBox<File<()>>>,
    _stats: Pin<KBox<File<()>>>,
    _clear: Pin<KBox<File<()>>>,
    _dir: Dir,
    _faux: faux::Registration,
}

impl kernel::Module for RustIopf {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        events::init();
        consumer::init();
        events::clear()?;
        let faux = faux::Registration::new(c"rust_iopf", None)?;
        let fdev: &faux::Device<Bound> = faux.as_ref();
        let bound: &Device<Bound> = fdev.as_ref();
        let parent: &Device = bound;
        let mock = MockIommu::new(Some(parent), c"rust_iopf")?;
        let dir = Dir::new(c"rust_iopf");
        let inject = KBox::pin_init(
            dir.write_callback_file(c"inject", mock, &inject),
            GFP_KERNEL,
        )?;
        let events = KBox::pin_init(
            dir.read_callback_file(c"events", (), &|(), f| events::write_events(f)),
            GFP_KERNEL,
        )?;
        let stats = KBox::pin_init(
            dir.read_callback_file(c"stats", (), &|(), f| events::write_stats(f)),
            GFP_KERNEL,
        )?;
        let clear = KBox::pin_init(
            dir.write_callback_file(c"clear", (), &|(), _| events::clear()),
            GFP_KERNEL,
        )?;
        Ok(Self {
            _inject: inject,
            _events: events,
            _stats: stats,
            _clear: clear,
            _dir: dir,
            _faux: faux,
        })
    }
}

/// Writes to `inject`: runs each line as a command.
fn inject(mock: &MockIommu, reader: &mut UserSliceReader) -> Result {
    let mut buf = [0u8; 512];
    let len = reader.len();
    let buf = buf.get_mut(..len).ok_or(EINVAL)?;
    reader.read_slice(buf)?;
    let text = core::str::from_utf8(buf).map_err(|_| EINVAL)?;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        run(mock, line)?;
    }
    Ok(())
}

/// Runs one `inject` command.
fn run(mock: &MockIommu, line: &str) -> Result {
    let mut words = line.split_whitespace();
    let cmd = words.next().ok_or(EINVAL)?;
    let mut next = || words.next().ok_or(EINVAL);
    let endpoint = number(next()?)?;
    let endpoint = u32::try_from(endpoint).map_err(|_| EINVAL)?;
    match cmd {
        "page" => {
            let addr = number(next()?)?;
            mock.inject(endpoint, addr, parse_perm(next()?)?, 1)?;
        }
        "group" => {
            let pages = u32::try_from(number(next()?)?).map_err(|_| EINVAL)?;
            let addr = number(next()?)?;
            mock.inject(endpoint, addr, parse_perm(next()?)?, pages)?;
        }
        "flood" => {
            let count = number(next()?)?;
            if count > 10_000 {
                return Err(EINVAL);
            }
            for i in 0..count {
                mock.inject(endpoint, 0x100000 + i * 4096, parse_perm("r")?, 1)?;
            }
        }
        "flush" => mock.flush(endpoint)?,
        _ => return Err(EINVAL),
    }
    Ok(())
}

/// Parses a decimal or `0x`-prefixed hexadecimal number.
fn number(word: &str) -> Result<u64> {
    let parsed = match word.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => word.parse(),
    };
    parsed.map_err(|_| EINVAL)
}

#[kunit_tests(rust_iopf_sample)]
mod tests {
    use super::*;
    use events::Stage;
    use kernel::iommu::fault::ResponseCode;
    use mock_iommu::{
        EP_WITHOUT_DOMAIN,
        EP_WITH_DOMAIN, //
    };

    /// The one answer group `seq` got: exactly one `Answered` event, with its code.
    fn answer(seq: u64) -> Result<ResponseCode> {
        let mut codes = events::of(seq)?.into_iter().filter_map(|s| match s {
            Stage::Answered { code } => Some(code),
            _ => None,
        });
        let code = codes.next().ok_or(ENOENT)?;
        if codes.next().is_some() {
            return Err(EEXIST);
        }
        Ok(code)
    }

    fn reported_ret(seq: u64) -> Result<i32> {
        events::of(seq)?
            .into_iter()
            .find_map(|s| match s {
                Stage::Reported { ret, .. } => Some(ret),
                _ => None,
            })
            .ok_or(ENOENT)
    }

    fn grouped_pages(seq: u64) -> Result<Option<usize>> {
        Ok(events::of(seq)?.into_iter().find_map(|s| match s {
            Stage::Grouped { pages } => Some(pages),
            _ => None,
        }))
    }

    #[test]
    fn each_group_gets_the_consumers_answer() -> Result {
        let mut mock = MockIommu::new(None, c"rust_iopf_kunit")?;
        events::clear()?;
        let rw = mock.inject(EP_WITH_DOMAIN, 0x1000, parse_perm("rw")?, 1)?;
        let four = mock.inject(EP_WITH_DOMAIN, 0x10000, parse_perm("r")?, 4)?;
        let exec = mock.inject(EP_WITH_DOMAIN, 0x2000, parse_perm("rx")?, 1)?;
        let privileged = mock.inject(EP_WITH_DOMAIN, 0x3000, parse_perm("rp")?, 1)?;
        let no_domain = mock.inject(EP_WITHOUT_DOMAIN, 0x1000, parse_perm("r")?, 1)?;
        mock.flush(EP_WITH_DOMAIN)?;

        assert_eq!(answer(rw)?, ResponseCode::Success);
        assert_eq!(grouped_pages(rw)?, Some(1));
        assert_eq!(answer(four)?, ResponseCode::Success);
        assert_eq!(grouped_pages(four)?, Some(4));
        assert_eq!(answer(exec)?, ResponseCode::Invalid);
        // Refused by the handler: the framework answers Failure, and report() succeeds.
        assert_eq!(answer(privileged)?, ResponseCode::Failure);
        assert_eq!(reported_ret(privileged)?, 0);
        // No domain: the framework answers Invalid itself, and report() says EINVAL.
        assert_eq!(answer(no_domain)?, ResponseCode::Invalid);
        assert_eq!(grouped_pages(no_domain)?, None);
        assert_eq!(reported_ret(no_domain)?, EINVAL.to_errno());

        // Once the domain is detached, the consumer gets nothing more.
        mock.detach(EP_WITH_DOMAIN)?;
        let detached = mock.inject(EP_WITH_DOMAIN, 0x1000, parse_perm("r")?, 1)?;
        assert_eq!(answer(detached)?, ResponseCode::Invalid);
        assert_eq!(grouped_pages(detached)?, None);
        Ok(())
    }

    #[test]
    fn a_flood_is_answered_exactly_once_per_group() -> Result {
        let mock = MockIommu::new(None, c"rust_iopf_kunit_flood")?;
        events::clear()?;
        let mut seqs = KVec::new();
        for i in 0..300u64 {
            seqs.push(
                mock.inject(EP_WITH_DOMAIN, 0x100000 + i * 4096, parse_perm("r")?, 1)?,
                GFP_KERNEL,
            )?;
        }
        mock.flush(EP_WITH_DOMAIN)?;
        for seq in seqs {
            assert_eq!(answer(seq)?, ResponseCode::Success);
        }
        Ok(())
    }

    /// A group the consumer keeps stays the consumer's when its device leaves the fault queue:
    /// the framework neither answers nor frees it, and the consumer's answer, later, is the one
    /// the device gets. (On a KASAN kernel, a framework that freed it shows here.)
    #[test]
    fn a_kept_group_outlives_its_device_leaving_the_queue() -> Result {
        let mut mock = MockIommu::new(None, c"rust_iopf_kunit_keep")?;
        events::clear()?;
        let kept = mock.inject(
            EP_WITH_DOMAIN,
            consumer::KEEP | 0x1000,
            parse_perm("rw")?,
            2,
        )?;
        assert_eq!(grouped_pages(kept)?, Some(2));
        mock.leave_queue(EP_WITH_DOMAIN)?;
        assert_eq!(answer(kept), Err(ENOENT));
        assert_eq!(consumer::answer_kept(ResponseCode::Success), 1);
        assert_eq!(answer(kept)?, ResponseCode::Success);
        Ok(())
    }

    #[test]
    fn bad_commands_are_rejected() -> Result {
        let mock = MockIommu::new(None, c"rust_iopf_kunit_bad")?;
        assert_eq!(run(&mock, "page 0 0x1000 rq"), Err(EINVAL));
        assert_eq!(run(&mock, "page 7 0x1000 r"), Err(ENODEV));
        assert_eq!(run(&mock, "group 0 0 0x1000 r"), Err(EINVAL));
        assert_eq!(run(&mock, "jump 0"), Err(EINVAL));
        assert_eq!(run(&mock, "page 0"), Err(EINVAL));
        Ok(())
    }
}
