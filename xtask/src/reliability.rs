//! The reliability part of `cargo xtask test`: a kmemleak scan after the
//! KUnit suites, the KCSAN kernels that run the stress case, and the one
//! summary line of the `iopf_reliability` suite.
//!
//! Each case of the suite prints
//! `# iopf_reliability: case=NAME scenarios=N faults=N injected=N lost=N duplicated=N ...`;
//! the summary sums them over every kernel booted, with the sanitizer
//! reports found on their consoles, and ends with the figures of the
//! differential test (`diff.rs`): its operations per kernel, its seeds and
//! the divergences between the kernels.

use std::time::Duration;

use anyhow::{bail, Result};

use crate::cli::{Arch, Variant};
use crate::judge::{self, Judged, Machine, Rules, Splats, Want};
use crate::kernel::{self, Profile};
use crate::ktap::{self, Fields};
use crate::paths::Workspace;
use crate::qemu::{Boot, Console};
use crate::splat;

/// The KUnit suite, and the prefix of its cases' figures.
pub const SUITE: &str = "iopf_reliability";

/// The cases the KCSAN kernels run (a KUnit glob): the stress and the
/// flood of 1,000,000 partial requests. Without KASAN and kmemleak, the
/// flood's peak memory is the IOPF code's own, and it runs in minutes.
const KCSAN_CASES: &str = "iopf_rel_[ps]*";
const KCSAN_EXPECTED: &[&str] = &["iopf_rel_partial_flood", "iopf_rel_stress"];

/// The flood of the debug kernels: 100,000 partial requests. Every request
/// costs tens of microseconds there under TCG (KASAN and kmemleak track
/// each allocation and free), so the full flood runs on the KCSAN kernels.
const DEBUG_FLOOD: &str = "iopf_kunit.flood=100000";

/// KASAN reports every bad access of the boot, not only its first: a
/// use-after-free on a kworker fails no KUnit case, only the run (through
/// its report), so an earlier report must not hide it.
const EVERY_REPORT: &str = "kasan_multi_shot";

/// Boot arguments of a test boot with the leak scan: no power-off after
/// KUnit, so that the initramfs' `/init` scans.
const LEAK_SCAN_CMDLINE: &str = "kunit_shutdown=none";

/// Extra boot arguments of the test kernels, for local runs (e.g.
/// `iopf_kunit.flood=100000` for a shorter flood).
pub const CMDLINE_ENV: &str = "IOPF_TEST_CMDLINE";

/// The boot arguments of a test (debug) kernel's boot: the shorter flood,
/// the leak scan's if `leak_scan`, and those of [`CMDLINE_ENV`].
pub fn cmdline(leak_scan: bool) -> String {
    let extra = std::env::var(CMDLINE_ENV).unwrap_or_default();
    let scan = if leak_scan { LEAK_SCAN_CMDLINE } else { "" };
    format!("{DEBUG_FLOOD} {EVERY_REPORT} {scan} {extra}")
        .trim()
        .to_string()
}

/// Marks `/init`'s own lines (`# iopf-kmemleak: ...`).
const LEAK_MARK: &str = "iopf-kmemleak";

/// The end of a test boot's `/init`, with debugfs mounted: waits until the
/// tests' objects are old enough to be reported (5 s), scans twice (a first
/// scan only records checksums: an object is reported once it stays
/// unreferenced and unchanged across scans), prints the report and powers
/// off.
pub const LEAK_SCAN: &str = r##"leaks=/sys/kernel/debug/kmemleak
if [ -e $leaks ]; then
	echo "# iopf-kmemleak: scanning"
	sleep 6
	echo scan > $leaks
	echo scan > $leaks
	cat $leaks
	echo "# iopf-kmemleak: done"
else
	echo "# iopf-kmemleak: unavailable"
fi
poweroff -f
"##;

/// The figures of the reliability suite.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Figures {
    /// Cases that printed their figures.
    pub cases: u64,
    pub scenarios: u64,
    pub faults: u64,
    pub injected: u64,
    pub lost: u64,
    pub duplicated: u64,
    /// Sanitizer and checker reports (KASAN, UBSAN, KCSAN, lockdep,
    /// kmemleak, debugobjects, WARNING...) that count against the run.
    pub sanitizer_reports: u64,
    /// The differential test's figures, once its kernels are compared.
    pub diff: Option<DiffFigures>,
}

/// The differential test in the summary line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DiffFigures {
    /// Operations each kernel ran (the fewest, if they differ).
    pub ops: u64,
    /// Streams' seeds each kernel ran.
    pub seeds: u64,
    /// Streams whose logs differ between the kernels (None: one kernel).
    pub divergences: Option<u64>,
}

impl Figures {
    /// Sums the figures lines of a console log: the suite's marked lines
    /// with a `case=` (the others, e.g. `expect_warning:`, are not figures).
    pub fn parse(console: &str) -> Self {
        let mut out = Self::default();
        for rest in ktap::marked_lines(console, SUITE) {
            let f = Fields::parse(rest);
            if f.get("case").is_none() {
                continue;
            }
            out.cases += 1;
            let n = |key| f.number::<u64>(key).unwrap_or(0);
            out.scenarios += n("scenarios");
            out.faults += n("faults");
            out.injected += n("injected");
            out.lost += n("lost");
            out.duplicated += n("duplicated");
        }
        out
    }

    pub fn add(self, o: Self) -> Self {
        Self {
            cases: self.cases + o.cases,
            scenarios: self.scenarios + o.scenarios,
            faults: self.faults + o.faults,
            injected: self.injected + o.injected,
            lost: self.lost + o.lost,
            duplicated: self.duplicated + o.duplicated,
            sanitizer_reports: self.sanitizer_reports + o.sanitizer_reports,
            diff: self.diff.or(o.diff),
        }
    }

    /// Zero lost, zero duplicated, zero reports.
    pub fn clean(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.sanitizer_reports == 0
    }

    /// The summary line, naming the kernels it covers.
    pub fn line(&self, kernels: &[String]) -> String {
        let diff = match self.diff {
            Some(DiffFigures {
                ops,
                seeds,
                divergences: Some(d),
            }) => format!(
                ", {ops} differential operations per kernel over {seeds} seeds, {d} divergences"
            ),
            Some(DiffFigures { ops, seeds, .. }) => format!(
                ", {ops} differential operations over {seeds} seeds, not compared (one kernel)"
            ),
            None => String::new(),
        };
        format!(
            "reliability ({}): {} scenarios in {} cases, {} faults reported, {} allocation failures injected, \
             {} responses lost, {} duplicated responses, {} sanitizer reports{diff}",
            kernels.join(" "),
            self.scenarios,
            self.cases,
            self.faults,
            self.injected,
            self.lost,
            self.duplicated,
            self.sanitizer_reports
        )
    }
}

/// The figures of a debug kernel's boot: every report on its console counts.
pub fn debug_figures(console: &str) -> Figures {
    Figures {
        sanitizer_reports: splat::find(console).len() as u64,
        ..Figures::parse(console)
    }
}

/// Problems of a boot with the leak scan: the scan must have run to its end
/// (leaks themselves are reports, found by [`splat::find`]).
pub fn leak_scan_problems(console: &str) -> Vec<String> {
    let marks: Vec<&str> = ktap::marked_lines(console, LEAK_MARK).collect();
    if marks.contains(&"done") || marks.contains(&"unavailable") {
        Vec::new()
    } else if marks.contains(&"scanning") {
        vec!["the kmemleak scan did not finish".into()]
    } else {
        vec!["the kmemleak scan did not run (no /init after KUnit?)".into()]
    }
}

/// One KCSAN kernel's boot, judged.
pub struct KcsanRun {
    pub variant: Variant,
    pub console: Console,
    pub figures: Figures,
    /// Reasons the run fails: the case did not pass, a report mentions the
    /// IOPF code, a timeout.
    pub problems: Vec<String>,
    /// Reports that do not mention the IOPF code (the rest of the kernel).
    pub unrelated: Vec<String>,
}

/// Builds the KCSAN kernel of each variant and boots it with the stress case
/// only.
pub fn kcsan(
    ws: &Workspace,
    arch: Arch,
    variants: &[Variant],
    jobs: usize,
    timeout: u64,
) -> Result<Vec<KcsanRun>> {
    let mut built = Vec::new();
    for &variant in variants {
        built.push(kernel::build_profile(
            ws,
            arch,
            variant,
            Profile::Kcsan,
            jobs,
        )?);
    }
    let extra = std::env::var(CMDLINE_ENV).unwrap_or_default();
    let cmdline = format!("kunit.filter_glob={SUITE}.{KCSAN_CASES} {extra}");
    let mut runs = Vec::new();
    for b in built {
        let name = format!("{}-{}-kcsan", arch.kbuild_name(), b.variant.name());
        eprintln!("==> booting {name} under QEMU ({SUITE}.{KCSAN_CASES} only)");
        let judged = judge::boot(
            &Boot {
                arch,
                image: &b.image,
                initrd: None,
                cmdline: &cmdline,
                timeout: Duration::from_secs(timeout),
                log: ws.logs()?.join(format!("{name}.console.log")),
            },
            Machine::Default,
            &kcsan_rules(),
        )?;
        runs.push(judge_kcsan(b.variant, judged));
    }
    Ok(runs)
}

/// A KCSAN boot must pass the cases it runs; only reports that mention the
/// IOPF code count (KCSAN finds races in the rest of the kernel too).
fn kcsan_rules() -> Rules {
    Rules {
        wants: KCSAN_EXPECTED
            .iter()
            .map(|case| Want::case(SUITE, case))
            .collect(),
        splats: Splats::InIopf,
        ktap_problems: false,
    }
}

fn judge_kcsan(variant: Variant, judged: Judged) -> KcsanRun {
    let figures = Figures {
        sanitizer_reports: judged.splats.len() as u64,
        ..Figures::parse(&judged.console.text)
    };
    KcsanRun {
        variant,
        console: judged.console,
        figures,
        problems: judged.problems,
        unrelated: judged.unrelated,
    }
}

/// Prints the KCSAN runs' problems and unrelated reports; fails on a problem.
pub fn check_kcsan(runs: &[KcsanRun]) -> Result<()> {
    let mut failed = false;
    for r in runs {
        for u in &r.unrelated {
            println!(
                "  note [{}-kcsan]: report outside the IOPF code, not counted: {u}",
                r.variant.name()
            );
        }
        for p in &r.problems {
            println!("  PROBLEM [{}-kcsan]: {p}", r.variant.name());
            failed = true;
        }
        if !r.problems.is_empty() {
            eprintln!(
                "{}-kcsan: console log kept at {}",
                r.variant.name(),
                r.console.log.display()
            );
        }
    }
    if failed {
        bail!("the KCSAN run failed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONSOLE: &str = "\
[   10.1]     # iopf_reliability: case=iopf_rel_bad_fault_type scenarios=6 faults=14 injected=0 lost=0 duplicated=0
[   10.2]     ok 1 iopf_rel_bad_fault_type
[   11.0]     # iopf_reliability: case=iopf_rel_fail_nth_report scenarios=9 faults=63 injected=8 lost=0 duplicated=0 partial_enomem=3 groups_aborted=4
[   10.3]     # iopf_rel_null_queue: # iopf_reliability: expect_warning: iopf: x called with a NULL queue
[   10.4]     # iopf_reliability: pass:14 fail:0 skip:0 total:14
[   30.0]     # iopf_reliability: case=iopf_rel_partial_flood scenarios=1 faults=1000001 injected=0 lost=1 duplicated=2 flood=1000000 peak_slab_kb=1234
";

    #[test]
    fn figures_sum_every_case_and_ignore_extra_keys() {
        let f = Figures::parse(CONSOLE);
        assert_eq!(
            f,
            Figures {
                cases: 3,
                scenarios: 16,
                faults: 1_000_078,
                injected: 8,
                lost: 1,
                duplicated: 2,
                sanitizer_reports: 0,
                diff: None,
            }
        );
        assert!(!f.clean());
    }

    #[test]
    fn debug_figures_count_every_report() {
        let log = format!("{CONSOLE}[ 40.0] BUG: KASAN: slab-use-after-free in foo\n");
        assert_eq!(debug_figures(&log).sanitizer_reports, 1);
        assert_eq!(debug_figures(CONSOLE).sanitizer_reports, 0);
    }

    #[test]
    fn the_summary_line_names_every_figure() {
        let f = Figures {
            cases: 2,
            scenarios: 5,
            faults: 7,
            injected: 3,
            ..Default::default()
        };
        assert!(f.clean());
        assert_eq!(
            f.line(&["c".into(), "rust".into()]),
            "reliability (c rust): 5 scenarios in 2 cases, 7 faults reported, 3 allocation failures injected, \
             0 responses lost, 0 duplicated responses, 0 sanitizer reports"
        );
        assert_eq!(f.add(f).faults, 14);
    }

    #[test]
    fn the_summary_line_ends_with_the_differential_figures() {
        let mut f = Figures {
            diff: Some(DiffFigures {
                ops: 110_120,
                seeds: 11,
                divergences: Some(0),
            }),
            ..Default::default()
        };
        assert!(f.line(&["c".into(), "rust".into()]).ends_with(
            "0 sanitizer reports, 110120 differential operations per kernel over 11 seeds, 0 divergences"
        ));
        f.diff = Some(DiffFigures {
            divergences: None,
            ..f.diff.unwrap()
        });
        assert!(f
            .line(&["rust".into()])
            .ends_with("over 11 seeds, not compared (one kernel)"));
    }

    #[test]
    fn debug_kernels_flood_less_and_may_scan() {
        assert!(cmdline(true)
            .starts_with("iopf_kunit.flood=100000 kasan_multi_shot kunit_shutdown=none"));
        assert!(!cmdline(false).contains("kunit_shutdown"));
    }

    #[test]
    fn the_leak_scan_must_finish() {
        assert!(
            leak_scan_problems("# iopf-kmemleak: scanning\n# iopf-kmemleak: done\n").is_empty()
        );
        assert!(leak_scan_problems("[ 1.0] # iopf-kmemleak: unavailable\n").is_empty());
        assert_eq!(
            leak_scan_problems("# iopf-kmemleak: scanning\n"),
            vec!["the kmemleak scan did not finish"]
        );
        assert_eq!(leak_scan_problems("").len(), 1);
    }

    fn judged(text: &str) -> Judged {
        let console = judge::console(text, false, std::path::Path::new("/dev/null"));
        judge::judge(console, 60, &kcsan_rules())
    }

    const KTAP_PASS: &str = "KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: iopf_reliability\n    1..2\n    ok 1 iopf_rel_partial_flood\n    ok 2 iopf_rel_stress\nok 1 iopf_reliability\n";

    #[test]
    fn kcsan_fails_on_iopf_reports_only() {
        let clean = judge_kcsan(Variant::Rust, judged(KTAP_PASS));
        assert!(clean.problems.is_empty(), "{:?}", clean.problems);

        let other =
            format!("{KTAP_PASS}[ 9.0] BUG: KCSAN: data-race in tick_sched_do_timer / tick_nohz\n");
        let run = judge_kcsan(Variant::Rust, judged(&other));
        assert!(run.problems.is_empty());
        assert_eq!(run.unrelated.len(), 1);
        assert_eq!(run.figures.sanitizer_reports, 0);

        let ours =
            format!("{KTAP_PASS}[ 9.0] BUG: KCSAN: data-race in iopf_group_response / rel_work\n");
        let run = judge_kcsan(Variant::C, judged(&ours));
        assert_eq!(run.problems.len(), 1);
        assert_eq!(run.figures.sanitizer_reports, 1);
    }

    #[test]
    fn kcsan_fails_when_the_case_did_not_pass() {
        let run = judge_kcsan(Variant::Rust, judged("no tests\n"));
        assert_eq!(run.problems.len(), 2);
    }
}
