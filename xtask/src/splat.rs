//! Kernel error reports ("splats") in a console log.
//!
//! Matched by their real headers: a debug kernel's normal boot log contains
//! words like "lockdep" and "Warning:", which are not reports.

/// Headers that start a report. Case matters: "WARNING:" is a report,
/// "Warning:" in a boot message is not.
const HEADERS: &[&str] = &[
    "WARNING: CPU:",
    "WARNING: possible",
    "WARNING: suspicious RCU usage",
    "WARNING: inconsistent lock state",
    "WARNING: bad unlock balance",
    "WARNING: lock held when returning",
    "WARNING: nested lock was not taken",
    "WARNING: held lock freed",
    "BUG:",
    "Oops",
    "Kernel panic",
    "KASAN:",
    "KCSAN:",
    "UBSAN:",
    "general protection fault",
    "kernel BUG at",
    "possible circular locking dependency",
    "possible recursive locking",
    "inconsistent lock state",
    "INFO: task ",
    "rcu: INFO:",
    "unreferenced object",
    "ODEBUG:",
    "Call Trace:",
    "refcount_t:",
    "list_add corruption",
    "list_del corruption",
    "kmemleak: Cannot allocate",
    KMEMLEAK_DISABLED,
];

/// What kmemleak prints when it stops. After an error that is a report (the
/// leak scan is void), but `kmemleak=off` on the command line prints it too.
const KMEMLEAK_DISABLED: &str = "kmemleak: Kernel memory leak detector disabled";

/// Names that place a report in the IOPF code: its functions (C and Rust
/// symbols alike start with `iopf` or are the report entry point), its
/// files, and the KUnit suites that drive it.
const IOPF_MARKERS: &[&str] = &[
    "iopf",
    "io-pgfault",
    "iommu_report_device_fault",
    "drivers/iommu/iopf/",
];

/// How far a report reaches past its header, at most: a report ends at the
/// next blank or separator line, or at the next report.
const REPORT_LINES: usize = 80;

/// One report found in a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Splat {
    /// 1-based line number in the log.
    pub line: usize,
    pub text: String,
}

/// Finds the first line of every report in `log`. Lines of one report that
/// follow each other (a WARNING and its Call Trace) count once.
pub fn find(log: &str) -> Vec<Splat> {
    let kmemleak_off = asked_for(log, "kmemleak=off");
    let mut found: Vec<Splat> = Vec::new();
    for (n, line) in log.lines().enumerate() {
        if kmemleak_off && line.contains(KMEMLEAK_DISABLED) {
            continue;
        }
        if HEADERS.iter().any(|h| line.contains(h)) {
            let adjacent = found.last().is_some_and(|s| n + 1 - s.line < 40);
            let trace = line.contains("Call Trace:");
            if !(adjacent && trace) {
                found.push(Splat {
                    line: n + 1,
                    text: line.trim().to_string(),
                });
            }
        }
    }
    found
}

/// Whether the kernel command line echoed in `log` ("Command line:" on x86,
/// "Kernel command line:" elsewhere) holds the parameter `param`.
fn asked_for(log: &str, param: &str) -> bool {
    log.lines()
        .filter_map(|line| line.split_once("ommand line:"))
        .any(|(_, params)| params.split_whitespace().any(|p| p == param))
}

/// The text of the report starting at `splat`: its header and the lines
/// that follow, up to a separator (`====`, `---[ end trace`), a blank line
/// or another report.
pub fn block(log: &str, splat: &Splat) -> String {
    let mut out = Vec::new();
    for (i, line) in log.lines().skip(splat.line - 1).enumerate() {
        let body = strip_timestamp(line);
        let ends = body.starts_with("====")
            || body.contains("---[ end trace")
            || (i > 0 && body.trim().is_empty())
            || (i > 0
                && HEADERS.iter().any(|h| body.starts_with(h))
                && !body.contains("Call Trace:"));
        if ends || i == REPORT_LINES {
            break;
        }
        out.push(body);
    }
    out.join("\n")
}

/// Whether the report starting at `splat` mentions the IOPF code.
pub fn mentions_iopf(log: &str, splat: &Splat) -> bool {
    let text = block(log, splat);
    IOPF_MARKERS.iter().any(|m| text.contains(m))
}

/// A console line without its `[   12.345678] ` printk timestamp.
fn strip_timestamp(line: &str) -> &str {
    let trimmed = line.trim_start();
    match trimmed
        .strip_prefix('[')
        .and_then(|rest| rest.split_once("] "))
    {
        Some((stamp, rest)) if stamp.trim().parse::<f64>().is_ok() => rest,
        _ => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_debug_boot_has_no_splat() {
        let log = "[    0.1] RCU lockdep checking is enabled.\n\
                   [    0.2] ACPI Warning: something harmless\n\
                   [    0.3] Lock dependency validator: Copyright (c) 2006 Red Hat\n";
        assert!(find(log).is_empty());
    }

    #[test]
    fn warning_and_its_trace_are_one_report() {
        let log = "ok\n[ 1.0] WARNING: CPU: 0 PID: 1 at drivers/iommu/io-pgfault.c:400\n\
                   [ 1.0] Modules linked in:\n[ 1.0] Call Trace:\n[ 1.0]  <TASK>\n";
        let found = find(log);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].line, 2);
    }

    #[test]
    fn each_kind_of_report_is_found() {
        for header in [
            "BUG: KASAN: slab-use-after-free in x",
            "Kernel panic - not syncing",
            "WARNING: possible circular locking dependency detected",
            "Oops: 0000 [#1]",
            "unreferenced object 0xffff (size 64):",
        ] {
            assert_eq!(find(header).len(), 1, "{header}");
        }
    }

    #[test]
    fn kmemleak_disabled_on_request_is_not_a_report() {
        let disabled = "[ 0.0] kmemleak: Kernel memory leak detector disabled\n";
        for cmdline in [
            "[ 0.0] Command line: console=ttyS0 hugepages=128 kmemleak=off\n",
            "[ 0.0] Kernel command line: console=ttyAMA0 kmemleak=off panic=-1\n",
        ] {
            assert!(
                find(&format!("{cmdline}{disabled}")).is_empty(),
                "{cmdline}"
            );
        }
        // Disabled without being asked to (out of memory, a bad object):
        // the leak scan is void, which is a report.
        for cmdline in [
            "[ 0.0] Command line: console=ttyS0 hugepages=128\n",
            "[ 0.0] Command line: console=ttyS0 kmemleak=offx\n",
            "",
        ] {
            assert_eq!(find(&format!("{cmdline}{disabled}")).len(), 1, "{cmdline}");
        }
        // The error that disabled it is a report even when off was asked for.
        let log = "[ 0.0] Command line: kmemleak=off\n\
                   [ 0.0] kmemleak: Cannot allocate a kmemleak_object structure\n";
        assert_eq!(find(log).len(), 1);
    }

    #[test]
    fn a_lone_call_trace_is_a_report() {
        assert_eq!(find("[ 2.0] Call Trace:\n").len(), 1);
    }

    #[test]
    fn sanitizer_reports_of_every_kind_are_found() {
        for header in [
            "[ 3.1] UBSAN: array-index-out-of-bounds in drivers/iommu/io-pgfault.c:120:3",
            "[ 3.1] BUG: KCSAN: data-race in iopf_group_response / iopf_queue_remove_device",
            "[ 3.1] unreferenced object 0xffff888003a1c000 (size 128):",
            "[ 3.1] ODEBUG: free active (active state 0) object: 00000000a1b2c3d4 object type: work_struct hint: rel_work+0x0/0x40",
            "[ 3.1] kmemleak: Kernel memory leak detector disabled",
        ] {
            assert_eq!(find(header).len(), 1, "{header}");
        }
    }

    const KMEMLEAK: &str = "[  90.1] # iopf-kmemleak: scanning\n\
        unreferenced object 0xffff888005c3e000 (size 96):\n\
          comm \"kunit_try_catch\", pid 310, jiffies 4294903000\n\
          hex dump (first 32 bytes):\n\
            01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00  ................\n\
          backtrace (crc 1d2f3a4b):\n\
            __kmalloc_cache_noprof+0x2f0/0x4a0\n\
            iommu_report_device_fault+0x3c1/0x6a0\n\
            iopf_rel_partial_flood+0x220/0x700\n\
        \n\
        unreferenced object 0xffff888005c3f000 (size 32):\n\
          comm \"swapper/0\", pid 1, jiffies 4294892000\n\
          backtrace (crc 0):\n\
            kmalloc_trace+0x20/0x40\n\
            acpi_os_map_iomem+0x11/0x20\n";

    #[test]
    fn a_kmemleak_report_ends_at_the_blank_line() {
        let found = find(KMEMLEAK);
        assert_eq!(found.len(), 2);
        assert!(mentions_iopf(KMEMLEAK, &found[0]));
        assert!(
            !mentions_iopf(KMEMLEAK, &found[1]),
            "{}",
            block(KMEMLEAK, &found[1])
        );
    }

    #[test]
    fn a_kcsan_report_mentions_iopf_through_its_stacks() {
        let log = "[ 5.0] ==================================================================\n\
            [ 5.0] BUG: KCSAN: data-race in __flush_workqueue / process_one_work\n\
            [ 5.0] \n\
            [ 5.0] write to 0xffff8880 of 8 bytes by task 320 on cpu 1:\n";
        let found = find(log);
        assert_eq!(found.len(), 1);
        // The blank line right after the header ends the block.
        assert!(!mentions_iopf(log, &found[0]));

        let log = "[ 5.0] BUG: KCSAN: data-race in iopf_group_response / rel_work\n\
            [ 5.0] read to 0xffff8880 of 4 bytes by task 3 on cpu 0:\n\
            [ 5.0] ==================================================================\n\
            [ 5.1] iopf_queue_flush_dev+0x10/0x20\n";
        let found = find(log);
        assert!(mentions_iopf(log, &found[0]));
        assert_eq!(block(log, &found[0]).lines().count(), 2);
    }

    #[test]
    fn a_report_outside_iopf_does_not_mention_it() {
        let log = "[ 7.0] UBSAN: shift-out-of-bounds in lib/foo.c:10:5\n\
            [ 7.0] shift exponent 64 is too large\n\
            [ 7.0] Call Trace:\n\
            [ 7.0]  foo_init+0x10/0x20\n\
            [ 7.0] ---[ end trace ]---\n\
            [ 7.1] iopf: unrelated line after the report\n";
        let found = find(log);
        assert_eq!(found.len(), 1);
        assert!(!mentions_iopf(log, &found[0]));
    }

    #[test]
    fn timestamps_are_stripped() {
        assert_eq!(strip_timestamp("[   12.345678] BUG: x"), "BUG: x");
        assert_eq!(strip_timestamp("[x] y"), "[x] y");
        assert_eq!(strip_timestamp("plain"), "plain");
    }
}
