//! The messages the Rust core prints for bad input.
//!
//! The `iopf_reliability` KUnit cases check each bad input's error code and
//! that nothing is answered twice or lost; a test cannot see the console, so
//! the message each input must print is checked here, in the output of the
//! case that fed it. Each call site has its own rate limit (10 messages per
//! 5 s), and no site checked here is hit more than 10 times in a whole boot
//! (the most, 9, is the unsupported fault type: 6 here, 3 in suite `iopf`),
//! so a missing message is a missing message, not a rate-limited one; a
//! rate-limited one would leave a `iopf::<file>:<line>: N callbacks
//! suppressed` line on the console.

use crate::ktap::{Outcome, Report};
use crate::reliability::SUITE;

/// Per case of [`SUITE`], the text each of its messages must contain.
pub const EXPECTED: &[(&str, &[&str])] = &[
    (
        "iopf_rel_bad_fault_type",
        &[
            "iopf: unsupported fault type 0",
            "iopf: unsupported fault type 2",
        ],
    ),
    (
        "iopf_rel_report_unattached",
        &["iopf: page request for a device on no queue"],
    ),
    (
        "iopf_rel_report_no_fault_data",
        &["iopf: page request for a device without fault data"],
    ),
    (
        "iopf_rel_report_no_iommu_group",
        &[
            "iopf: no fault handler for pasid 0 group 1, answered invalid",
            "iopf: no fault handler for pasid 3 group 2, answered invalid",
        ],
    ),
    (
        "iopf_rel_remove_wrong_queue",
        &["iopf: removing a device that is not on this queue"],
    ),
    (
        "iopf_rel_flush_after_remove",
        &["iopf: flushing a device that is on no queue"],
    ),
    (
        "iopf_rel_null_queue",
        &["iopf: iopf_queue_discard_partial() called with a NULL queue"],
    ),
    (
        "iopf_rel_null_arguments",
        &[
            "iopf: iopf_queue_add_device() called with a NULL queue",
            "iopf: iopf_queue_flush_dev() called with a NULL device",
            "iopf: iopf_queue_remove_device() called with a NULL queue",
            "iopf: iopf_queue_remove_device() called with a NULL device",
            "iopf: iommu_report_device_fault() called with a NULL event",
            "iopf: iommu_report_device_fault() called with a NULL device",
            "iopf: iopf_group_response() called with a NULL group",
            "iopf: iopf_group_dequeue() called with a NULL group",
            "iopf: iopf_free_group() called with a NULL group",
        ],
    ),
    (
        "iopf_rel_add_device_twice",
        &["iopf: adding a device that is already on a queue"],
    ),
];

/// The expected messages missing from the Rust kernel's console. A case
/// that did not pass is judged by KUnit already, and one absent is a
/// missing suite or case elsewhere; both are skipped here.
pub fn problems(report: &Report) -> Vec<String> {
    let Some(suite) = report.suite(SUITE) else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    for (case, messages) in EXPECTED {
        let Some(found) = suite.cases.iter().find(|c| c.name == *case) else {
            continue;
        };
        if found.outcome != Outcome::Pass {
            continue;
        }
        for message in *messages {
            if !found.diagnostics.iter().any(|line| line.contains(message)) {
                problems.push(format!(
                    "{SUITE}.{case}: bad input printed no message containing `{message}`"
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ktap;

    /// A console with the suite's cases, each printing `lines`.
    fn console(lines: impl Fn(&str) -> Vec<String>) -> String {
        let mut log = format!(
            "KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: {SUITE}\n    1..{}\n",
            EXPECTED.len()
        );
        for (n, (case, _)) in EXPECTED.iter().enumerate() {
            for line in lines(case) {
                log.push_str(&format!("[   12.345678] {line}\n"));
            }
            log.push_str(&format!("    ok {} {case}\n", n + 1));
        }
        log.push_str(&format!("ok 1 {SUITE}\n"));
        log
    }

    fn messages(case: &str) -> Vec<String> {
        let (_, messages) = EXPECTED.iter().find(|(c, _)| *c == case).unwrap();
        messages
            .iter()
            .map(|m| format!("iopf_mock iopf_mock.3: {m} group 1, answered invalid"))
            .collect()
    }

    #[test]
    fn every_message_in_its_case_passes() {
        let report = ktap::parse(&console(messages));
        assert_eq!(report.counts().passed, EXPECTED.len());
        assert_eq!(problems(&report), Vec::<String>::new());
    }

    #[test]
    fn a_missing_message_is_a_problem() {
        let report = ktap::parse(&console(|case| {
            let mut lines = messages(case);
            if case == "iopf_rel_null_arguments" {
                lines.remove(4);
            }
            lines
        }));
        let found = problems(&report);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("NULL event"), "{found:?}");
    }

    #[test]
    fn a_message_printed_by_another_case_does_not_count() {
        let report = ktap::parse(&console(|case| match case {
            "iopf_rel_flush_after_remove" => Vec::new(),
            "iopf_rel_remove_wrong_queue" => {
                let mut lines = messages(case);
                lines.extend(messages("iopf_rel_flush_after_remove"));
                lines
            }
            _ => messages(case),
        }));
        let found = problems(&report);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("iopf_rel_flush_after_remove"),
            "{found:?}"
        );
    }

    #[test]
    fn failed_or_absent_cases_are_left_to_kunit() {
        let log = console(|_| Vec::new()).replace("    ok 1 ", "    not ok 1 ");
        let report = ktap::parse(&log);
        // Every case but the failed first one lacks its messages.
        assert_eq!(
            problems(&report).len(),
            EXPECTED[1..].iter().map(|(_, m)| m.len()).sum()
        );
        assert!(problems(&ktap::parse("KTAP version 1\n1..0\n")).is_empty());
    }
}
