//! The messages the Rust core prints for bad input.
//!
//! The `iopf_reliability` KUnit cases check each bad input's error code and
//! that nothing is answered twice or lost; a test cannot see the console, so
//! each case that feeds the Rust core bad input states the warning it must
//! print, in its own output (`rel_expect_warning()` in
//! `tests/kunit/iopf_reliability.c`):
//!
//! ```text
//!     # iopf_rel_null_queue: # iopf_reliability: expect_warning: iopf: ... NULL queue
//! ```
//!
//! and this checks that the same case's output has another line holding
//! that text. The wording lives next to the case that provokes it, so a
//! message edited in the core is edited in its test, not here.
//!
//! Each call site has its own rate limit (10 messages per 5 s), and no site
//! checked here is hit more than 10 times in a whole boot (the most, 9, is
//! the unsupported fault type: 6 in this suite, 3 in suite `iopf`), so a
//! missing message is a missing message, not a rate-limited one; a
//! rate-limited one would leave a `iopf::<file>:<line>: N callbacks
//! suppressed` line on the console.

use crate::cli::Variant;
use crate::ktap::{self, Outcome, Report};
use crate::reliability::SUITE;

/// The word after the suite's mark that states an expected warning.
const EXPECT: &str = "expect_warning:";

/// The warning a diagnostic line says its case must print, if it says one.
fn expected(line: &str) -> Option<&str> {
    ktap::marked(line, SUITE)?
        .strip_prefix(EXPECT)
        .map(str::trim)
        .filter(|text| !text.is_empty())
}

/// The expected warnings missing from a console: for each case of
/// [`SUITE`] that passed, every text it stated must be on another line of
/// its output. A case that did not pass is judged by KUnit already. On the
/// Rust kernel the suite must state at least one, so that the check cannot
/// pass by checking nothing (the C kernel's cases state none: io-pgfault.c
/// words its messages otherwise).
pub fn problems(report: &Report, variant: Variant) -> Vec<String> {
    let Some(suite) = report.suite(SUITE) else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    let mut stated = 0;
    for case in &suite.cases {
        let wanted: Vec<&str> = case
            .diagnostics
            .iter()
            .filter_map(|l| expected(l))
            .collect();
        stated += wanted.len();
        if case.outcome != Outcome::Pass {
            continue;
        }
        for text in wanted {
            let printed = case
                .diagnostics
                .iter()
                .any(|line| expected(line).is_none() && line.contains(text));
            if !printed {
                problems.push(format!(
                    "{SUITE}.{}: bad input printed no message containing `{text}`",
                    case.name
                ));
            }
        }
    }
    if variant == Variant::Rust && stated == 0 && !suite.cases.is_empty() {
        problems.push(format!(
            "{SUITE}: no case stated the warning its bad input must print \
             (`# {SUITE}: {EXPECT} TEXT`)"
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cases and the warnings each states.
    const CASES: &[(&str, &[&str])] = &[
        (
            "iopf_rel_bad_fault_type",
            &[
                "iopf: unsupported fault type 0",
                "iopf: unsupported fault type 2",
            ],
        ),
        (
            "iopf_rel_flush_after_remove",
            &["iopf: flushing a device that is on no queue"],
        ),
        (
            "iopf_rel_remove_wrong_queue",
            &["iopf: removing a device that is not on this queue"],
        ),
        (
            "iopf_rel_null_arguments",
            &[
                "iopf: iommu_report_device_fault() called with a NULL event",
                "iopf: iopf_free_group() called with a NULL group",
            ],
        ),
        ("iopf_rel_stress", &[]),
    ];

    /// A console with the suite's cases, each stating its warnings and
    /// printing the kernel lines `printed(case)`.
    fn console(printed: impl Fn(&str) -> Vec<String>) -> String {
        let mut log = format!(
            "KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: {SUITE}\n    1..{}\n",
            CASES.len()
        );
        for (n, (case, texts)) in CASES.iter().enumerate() {
            for text in *texts {
                log.push_str(&format!(
                    "[   12.3] {}# {case}: # {SUITE}: {EXPECT} {text}\n",
                    "    "
                ));
            }
            for line in printed(case) {
                log.push_str(&format!("[   12.345678] {line}\n"));
            }
            log.push_str(&format!("    ok {} {case}\n", n + 1));
        }
        log.push_str(&format!("ok 1 {SUITE}\n"));
        log
    }

    fn messages(case: &str) -> Vec<String> {
        let (_, texts) = CASES.iter().find(|(c, _)| *c == case).unwrap();
        texts
            .iter()
            .map(|m| format!("iopf_mock iopf_mock.3: {m} group 1, answered invalid"))
            .collect()
    }

    fn problems_of(log: &str) -> Vec<String> {
        problems(&ktap::parse(log), Variant::Rust)
    }

    #[test]
    fn every_message_in_its_case_passes() {
        let report = ktap::parse(&console(messages));
        assert_eq!(report.counts().passed, CASES.len());
        assert_eq!(problems(&report, Variant::Rust), Vec::<String>::new());
    }

    #[test]
    fn a_missing_message_is_a_problem() {
        let found = problems_of(&console(|case| {
            let mut lines = messages(case);
            if case == "iopf_rel_null_arguments" {
                lines.remove(0);
            }
            lines
        }));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("NULL event"), "{found:?}");
        assert!(found[0].starts_with("iopf_reliability.iopf_rel_null_arguments:"));
    }

    #[test]
    fn a_console_without_any_message_fails_every_statement() {
        let found = problems_of(&console(|_| Vec::new()));
        let stated: usize = CASES.iter().map(|(_, t)| t.len()).sum();
        assert_eq!(found.len(), stated, "{found:?}");
    }

    #[test]
    fn the_statement_itself_is_not_the_message() {
        // The expect line holds the text too: it must not count.
        let found = problems_of(&console(|_| Vec::new()));
        assert!(found
            .iter()
            .any(|p| p.contains("iopf: unsupported fault type 0")));
    }

    #[test]
    fn a_message_printed_by_another_case_does_not_count() {
        let found = problems_of(&console(|case| match case {
            "iopf_rel_flush_after_remove" => Vec::new(),
            "iopf_rel_remove_wrong_queue" => {
                let mut lines = messages(case);
                lines.extend(messages("iopf_rel_flush_after_remove"));
                lines
            }
            _ => messages(case),
        }));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("iopf_rel_flush_after_remove"),
            "{found:?}"
        );
    }

    #[test]
    fn failed_or_absent_cases_are_left_to_kunit() {
        let log = console(|_| Vec::new()).replace("    ok 1 ", "    not ok 1 ");
        // Every case but the failed first one lacks its messages.
        assert_eq!(
            problems_of(&log).len(),
            CASES[1..].iter().map(|(_, m)| m.len()).sum()
        );
        assert!(problems_of("KTAP version 1\n1..0\n").is_empty());
    }

    #[test]
    fn the_rust_kernel_must_state_some_warning() {
        let silent = format!(
            "KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: {SUITE}\n    1..1\n\
             \x20   ok 1 iopf_rel_stress\nok 1 {SUITE}\n"
        );
        let found = problems_of(&silent);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("no case stated"), "{found:?}");
        // The C kernel's cases state none.
        assert!(problems(&ktap::parse(&silent), Variant::C).is_empty());
    }
}
