//! Boot a kernel, then judge its console: the one path of every command
//! that boots (`test`, `selftest`, `run`, `bench`, `diff`, `profile`,
//! `e2e`, the KCSAN boots).
//!
//! [`boot`] runs QEMU ([`crate::qemu`]) and [`judge`] reads what the kernel
//! printed: the timeout, the KTAP results, the kernel's own reports
//! (splats, [`crate::splat`]) and the suites and cases the caller requires
//! ([`Want`]). Each caller then adds the checks that are its own (the demo's
//! script, the selftests' programs, the bench's kernel) to the problems.

use std::path::Path;

use anyhow::Result;

use crate::ktap::{self, Outcome, Report};
use crate::qemu::{self, Boot, Console};
use crate::splat::{self, Splat};

/// Which QEMU runs the guest, and how.
#[derive(Clone, Copy, Debug)]
pub enum Machine<'a> {
    /// KVM where a probe boot showed it works, else TCG.
    Default,
    /// TCG whatever the host has, with extra QEMU arguments: a benchmark
    /// compares kernels on one machine model.
    Tcg(&'a [&'a str]),
    /// TCG with another QEMU binary and extra arguments (`e2e`'s build).
    Custom {
        qemu: &'a Path,
        extra: &'a [&'a str],
    },
}

/// Which kernel reports fail the boot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Splats {
    /// Every report on the console.
    #[default]
    Every,
    /// Only reports that mention the IOPF code ([`splat::mentions_iopf`]);
    /// the others are kept as [`Judged::unrelated`] notes.
    InIopf,
}

/// A suite or case the console must show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Want {
    /// The suite ran; the note says what it is, in the problem.
    Ran { suite: String, note: Option<String> },
    /// The suite ran and passed.
    Passed(String),
    /// The suite ran, and every case passed: none failed, none was skipped
    /// (a skipped case means the command line did not reach the kernel).
    AllPassed(String),
    /// This case of this suite passed.
    CasePassed { suite: String, case: String },
}

impl Want {
    pub fn ran(suite: &str) -> Self {
        Self::Ran {
            suite: suite.to_string(),
            note: None,
        }
    }

    pub fn case(suite: &str, case: &str) -> Self {
        Self::CasePassed {
            suite: suite.to_string(),
            case: case.to_string(),
        }
    }

    /// The problem, if the report does not show what is wanted.
    fn problem(&self, report: &Report) -> Option<String> {
        match self {
            Self::Ran { suite, note } => report.suite(suite).is_none().then(|| match note {
                Some(note) => format!("expected suite `{suite}` ({note}) did not run"),
                None => format!("expected suite `{suite}` did not run"),
            }),
            Self::Passed(suite) => match report.suite(suite) {
                Some(s) if s.outcome == Outcome::Pass => None,
                Some(_) => Some(format!("suite {suite} did not pass")),
                None => Some(format!("suite {suite} did not run")),
            },
            Self::AllPassed(suite) => {
                let Some(s) = report.suite(suite) else {
                    return Some(format!("suite {suite} did not run"));
                };
                let c = Report {
                    suites: vec![s.clone()],
                    problems: vec![],
                }
                .counts();
                (c.failed > 0 || c.skipped > 0 || c.passed == 0).then(|| {
                    format!(
                        "suite {suite}: {} passed, {} failed, {} skipped",
                        c.passed, c.failed, c.skipped
                    )
                })
            }
            Self::CasePassed { suite, case } => {
                let outcome = report
                    .suite(suite)
                    .and_then(|s| s.cases.iter().find(|c| c.name == *case))
                    .map(|c| c.outcome);
                (outcome != Some(Outcome::Pass))
                    .then(|| format!("{suite}.{case}: {outcome:?}, not passed"))
            }
        }
    }
}

/// What a boot must show.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    pub wants: Vec<Want>,
    pub splats: Splats,
    /// Whether the KTAP parser's own problems (crashes, plans, numbering)
    /// fail the boot, in every suite.
    pub ktap_problems: bool,
}

/// A boot, judged.
pub struct Judged {
    pub console: Console,
    pub report: Report,
    /// The reports that count against the boot.
    pub splats: Vec<Splat>,
    /// With [`Splats::InIopf`], the reports outside the IOPF code.
    pub unrelated: Vec<String>,
    /// Why the boot failed; empty if it did not. Callers add their own.
    pub problems: Vec<String>,
}

impl Judged {
    /// Whether the boot failed: a problem, or a failed test.
    pub fn failed(&self) -> bool {
        !self.problems.is_empty() || self.report.counts().failed > 0
    }
}

/// Boots `boot` on `machine` and judges the console by `rules`.
pub fn boot(boot: &Boot, machine: Machine, rules: &Rules) -> Result<Judged> {
    let console = match machine {
        Machine::Default => qemu::boot(boot)?,
        Machine::Tcg(extra) => qemu::boot_tcg(boot, extra)?,
        Machine::Custom { qemu, extra } => qemu::boot_custom(boot, qemu, extra)?,
    };
    Ok(judge(console, boot.timeout.as_secs(), rules))
}

/// Judges a console (a fresh boot's, or a kept log's) by `rules`;
/// `timeout` is the boot's, in seconds, for the problem's words.
pub fn judge(console: Console, timeout: u64, rules: &Rules) -> Judged {
    let report = ktap::parse(&console.text);
    let mut problems = Vec::new();
    if console.timed_out {
        problems.push(format!("timed out after {timeout}s"));
    }
    let mut splats = Vec::new();
    let mut unrelated = Vec::new();
    for s in splat::find(&console.text) {
        let at = format!("console line {}: {}", s.line, s.text);
        match rules.splats {
            Splats::Every => {
                problems.push(format!("kernel report at {at}"));
                splats.push(s);
            }
            Splats::InIopf if splat::mentions_iopf(&console.text, &s) => {
                problems.push(format!("report in the IOPF code at {at}"));
                splats.push(s);
            }
            Splats::InIopf => unrelated.push(at),
        }
    }
    problems.extend(rules.wants.iter().filter_map(|w| w.problem(&report)));
    if rules.ktap_problems {
        problems.extend(report.problems.iter().cloned());
        for suite in &report.suites {
            problems.extend(suite.problems.iter().cloned());
        }
    }
    Judged {
        console,
        report,
        splats,
        unrelated,
        problems,
    }
}

/// A console of `text`, as if booted and kept at `log`: for kept logs and
/// for tests.
pub fn console(text: &str, timed_out: bool, log: &Path) -> Console {
    Console {
        text: text.to_string(),
        timed_out,
        took: std::time::Duration::ZERO,
        log: log.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASS: &str = "KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: s\n    1..2\n\
                        \x20   ok 1 a\n    ok 2 b\nok 1 s\n";

    fn run(text: &str, timed_out: bool, rules: &Rules) -> Judged {
        judge(console(text, timed_out, Path::new("/dev/null")), 60, rules)
    }

    #[test]
    fn a_clean_boot_has_no_problem() {
        let rules = Rules {
            wants: vec![
                Want::ran("s"),
                Want::Passed("s".into()),
                Want::AllPassed("s".into()),
                Want::case("s", "b"),
            ],
            ktap_problems: true,
            ..Rules::default()
        };
        let j = run(PASS, false, &rules);
        assert!(j.problems.is_empty(), "{:?}", j.problems);
        assert!(!j.failed());
        assert_eq!(j.report.counts().passed, 2);
    }

    #[test]
    fn timeout_and_reports_are_problems() {
        let text = format!("{PASS}[ 9.0] BUG: KASAN: slab-use-after-free in foo\n");
        let j = run(&text, true, &Rules::default());
        assert_eq!(
            j.problems,
            [
                "timed out after 60s",
                "kernel report at console line 9: [ 9.0] BUG: KASAN: slab-use-after-free in foo"
            ]
        );
        assert_eq!(j.splats.len(), 1);
    }

    #[test]
    fn only_reports_in_the_iopf_code_count_when_asked() {
        let rules = Rules {
            splats: Splats::InIopf,
            ..Rules::default()
        };
        let other = format!("{PASS}[ 9.0] BUG: KCSAN: data-race in tick_sched_do_timer / x\n");
        let j = run(&other, false, &rules);
        assert!(j.problems.is_empty());
        assert_eq!(j.unrelated.len(), 1);
        let ours = format!("{PASS}[ 9.0] BUG: KCSAN: data-race in iopf_group_response / x\n");
        let j = run(&ours, false, &rules);
        assert_eq!(j.problems.len(), 1);
        assert!(j.problems[0].starts_with("report in the IOPF code at console line 9"));
        assert!(j.unrelated.is_empty());
    }

    #[test]
    fn missing_failed_and_skipped_suites_and_cases_are_problems() {
        let rules = Rules {
            wants: vec![
                Want::Ran {
                    suite: "gone".into(),
                    note: Some("a sample".into()),
                },
                Want::Passed("gone".into()),
                Want::AllPassed("s".into()),
                Want::case("s", "a"),
                Want::case("s", "c"),
            ],
            ..Rules::default()
        };
        let text = PASS.replace("ok 1 a", "ok 1 a # SKIP off");
        let j = run(&text, false, &rules);
        assert_eq!(
            j.problems,
            [
                "expected suite `gone` (a sample) did not run",
                "suite gone did not run",
                "suite s: 1 passed, 0 failed, 1 skipped",
                "s.a: Some(Skip), not passed",
                "s.c: None, not passed",
            ]
        );
        let failed = PASS.replace("ok 2 b", "not ok 2 b");
        let j = run(&failed, false, &Rules::default());
        assert!(j.problems.is_empty() && j.failed());
        let rules = Rules {
            wants: vec![Want::Passed("s".into())],
            ..Rules::default()
        };
        assert_eq!(
            run(&failed, false, &rules).problems,
            ["suite s did not pass"]
        );
    }

    #[test]
    fn ktap_problems_count_only_when_asked() {
        let cut =
            "KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: s\n    1..2\n    ok 1 a\n";
        assert!(run(cut, false, &Rules::default()).problems.is_empty());
        let rules = Rules {
            ktap_problems: true,
            ..Rules::default()
        };
        let j = run(cut, false, &rules);
        assert!(!j.problems.is_empty());
        assert!(j.problems.iter().any(|p| p.contains("crashed/incomplete")));
    }
}
