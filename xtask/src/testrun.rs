//! `test` and `run`: boot the built kernels and judge what they printed.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Result};

use crate::bad_input;
use crate::checks;
use crate::cli::{Arch, RunArgs, TestArgs, Variant};
use crate::diff;
use crate::initramfs;
use crate::judge::{self, Judged, Machine, Rules, Splats, Want};
use crate::kernel::{self, Built};
use crate::ktap::{Counts, Outcome, Report};
use crate::kunitpy;
use crate::paths::Workspace;
use crate::qemu::Boot;
use crate::reliability;
use crate::selftest::{self, Selection};
use crate::toolchain;

/// KUnit suites each variant must run: a suite that is expected but absent
/// from the console (not built, or the boot died before it) fails the run.
const EXPECTED_SUITES: &[(&str, &[Variant])] = &[
    ("iopf", &[Variant::C, Variant::Rust]),
    ("iopf_rust_partial", &[Variant::Rust]),
    // The Rust core's trace events and debugfs files.
    ("iopf_observe", &[Variant::Rust]),
    ("iopf_sva", &[Variant::C, Variant::Rust]),
    // rust/kernel/ratelimit.rs, which the Rust core's warnings use.
    ("rust_kernel_ratelimit", &[Variant::C, Variant::Rust]),
    // The kernel crate's doc examples (CONFIG_RUST_KERNEL_DOCTESTS).
    ("rust_doctests_kernel", &[Variant::C, Variant::Rust]),
    (reliability::SUITE, &[Variant::C, Variant::Rust]),
    (diff::SUITE, &[Variant::C, Variant::Rust]),
];

/// Whether `variant` must run `suite`.
fn expected(suite: &str, variant: Variant) -> bool {
    EXPECTED_SUITES
        .iter()
        .any(|(name, variants)| *name == suite && variants.contains(&variant))
}

/// One variant's boot, judged.
struct Outcomes {
    variant: Variant,
    built: Built,
    judged: Judged,
}

impl Outcomes {
    fn failed(&self) -> bool {
        self.judged.failed()
    }
}

/// What a test boot of `variant` on `arch` must show: every expected
/// suite, no kernel report, no KTAP trouble.
fn rules(arch: Arch, variant: Variant) -> Rules {
    let mut wants: Vec<Want> = EXPECTED_SUITES
        .iter()
        .filter(|(suite, _)| expected(suite, variant))
        .map(|(suite, _)| Want::ran(suite))
        .collect();
    wants.extend(
        crate::demo::expected_suites(arch)
            .iter()
            .map(|suite| Want::Ran {
                suite: suite.to_string(),
                note: Some("the Rust IOPF sample".into()),
            }),
    );
    Rules {
        wants,
        splats: Splats::Every,
        ktap_problems: true,
    }
}

fn boot_and_judge(
    ws: &Workspace,
    built: Built,
    timeout: u64,
    cmdline: &str,
    initrd: Option<&Path>,
) -> Result<Outcomes> {
    let name = format!("{}-{}", built.arch.kbuild_name(), built.variant.name());
    eprintln!("==> booting {name} under QEMU");
    let log = ws.logs()?.join(format!("{name}.console.log"));
    let mut judged = judge::boot(
        &Boot {
            arch: built.arch,
            image: &built.image,
            initrd,
            cmdline,
            timeout: Duration::from_secs(timeout),
            log,
        },
        Machine::Default,
        &rules(built.arch, built.variant),
    )?;
    let text = &judged.console.text;
    let mut problems = Vec::new();
    if initrd.is_some() {
        problems.extend(reliability::leak_scan_problems(text));
        if built.variant == Variant::Rust {
            problems.extend(crate::demo::problems(text));
        }
    }
    problems.extend(bad_input::problems(&judged.report, built.variant));
    judged.problems.extend(problems);
    Ok(Outcomes {
        variant: built.variant,
        built,
        judged,
    })
}

/// The initramfs of a test boot, whose `/init` runs after KUnit: on the Rust
/// kernel, the demo's script, whose trace events and debugfs files are
/// checked; then the kmemleak scan. x86_64 only (the host's busybox, and
/// the sample needs IOMMUFD_TEST).
fn test_initrd(ws: &Workspace, built: &Built) -> Result<Option<PathBuf>> {
    if built.arch != Arch::X86_64 {
        eprintln!("==> kmemleak scan and the demo's script: x86_64 only (the host's busybox)");
        return Ok(None);
    }
    selftest::check_busybox()?;
    let script = match built.variant {
        Variant::Rust => {
            crate::demo::check_bound(ws, built.arch)?;
            crate::demo::SCRIPT
        }
        // The script checks the Rust core's events, files and bound.
        Variant::C => &[],
    };
    let init = crate::demo::init_script(script, reliability::LEAK_SCAN);
    let out = ws.cache.join("test-initramfs").join(format!(
        "{}-{}",
        built.arch.kbuild_name(),
        built.variant.name()
    ));
    fs::create_dir_all(&out)?;
    let gen_init_cpio = ws
        .build_dir(built.arch, built.variant)
        .join("usr/gen_init_cpio");
    Ok(Some(initramfs::pack(&gen_init_cpio, &out, &init, &[])?))
}

pub fn test(args: &TestArgs) -> Result<()> {
    let ws = Workspace::discover()?;
    let arch = args.target.arch;
    toolchain::check_qemu(arch)?;
    let jobs = args.target.jobs.unwrap_or_else(toolchain::default_jobs);
    crate::lint::rustfmt(&ws)?;
    crate::lint::ffi_contracts(&ws.repo)?;
    // The patch series: made, applied with git am to the pristine tree and
    // compared with the overlay (an error here stops the run), then checked
    // with checkpatch.pl, whose verdict is a row of the checkers' table.
    let (series, checkpatch) = crate::series::check(&ws)?;
    eprintln!("==> {}", series.line());
    eprintln!("==> {}", checkpatch.line());
    let series_checks = [
        checks::Check {
            name: "git am of the series",
            findings: Vec::new(),
            scope: format!(
                "{} patches on the pristine tree, against the overlay",
                series.patches
            ),
        },
        checks::Check {
            name: "checkpatch.pl --strict --no-signoff",
            findings: checkpatch.problems(),
            scope: format!(
                "{} patches, listed findings in patches/checkpatch-allowed",
                series.patches
            ),
        },
    ];
    if checkpatch.check().is_err() {
        eprint!("{}", checkpatch.details());
    }

    let mut built = Vec::new();
    for variant in args.variants() {
        built.push(kernel::build_with_jobs(&ws, arch, variant, jobs)?);
    }
    // The kernel's checkers, on the Rust kernel's tree.
    let mut checks = series_checks.to_vec();
    if built.iter().any(|b| b.variant == Variant::Rust) {
        checks.extend(checks::run(&ws, &ws.build_dir(arch, Variant::Rust))?);
    } else {
        eprintln!("==> the kernel's build checkers: not run (they check the Rust kernel's tree)");
    }
    // The same streams on both kernels, new ones on every run.
    let diff_seed = diff::base_seed()?;
    eprintln!(
        "==> differential streams: base seed {diff_seed} (set {} to run them again)",
        diff::SEED_ENV
    );
    let mut runs = Vec::new();
    for b in &built {
        let scan = test_initrd(&ws, b)?;
        let cmdline = format!(
            "{} {}",
            reliability::cmdline(scan.is_some()),
            diff::TEST_PLAN.cmdline(diff_seed)
        );
        runs.push(boot_and_judge(
            &ws,
            b.clone(),
            args.timeout,
            &cmdline,
            scan.as_deref(),
        )?);
    }
    print!("{}", render(arch, &runs));

    // The kernel's KUnit runner on the Rust kernel's IOPF suites.
    let has_rust = built.iter().any(|b| b.variant == Variant::Rust);
    let kunit_py = match arch {
        Arch::X86_64 if has_rust => {
            kunitpy::config(&ws)?;
            let dir = ws.build_dir(arch, Variant::Rust);
            let outcome = kunitpy::exec(&ws, &dir, args.timeout);
            match &outcome {
                Ok(o) => println!(
                    "\nkunit.py exec 'iopf*' (x86_64-rust, /dev/kvm hidden): {} ({:.0}s)",
                    o.summary, o.seconds
                ),
                Err(e) => println!("\nkunit.py exec 'iopf*' (x86_64-rust): FAILED: {e:#}"),
            }
            Some(outcome.is_ok())
        }
        _ => {
            eprintln!("==> kunit.py: not run (x86_64 Rust kernel only)");
            None
        }
    };
    let kunit = runs.iter().fold(Counts::default(), |acc, r| {
        add(acc, r.judged.report.counts())
    });
    let kunit = Counts {
        failed: kunit.failed + missing_failures(&runs),
        ..kunit
    };

    // The stress case again, on KCSAN kernels (KCSAN excludes KASAN).
    let kcsan = if !args.kcsan {
        eprintln!("==> KCSAN kernels: not run (add --kcsan)");
        Vec::new()
    } else {
        reliability::kcsan(&ws, arch, &args.variants(), jobs, args.timeout)?
    };

    // The iommufd selftests: IOPF end to end, from user space, on the same
    // kernels. Their mock driver (IOMMUFD_TEST) is configured on x86_64 only.
    let selftests = if args.kunit_only {
        eprintln!("==> iommufd selftests: not run (--kunit-only)");
        None
    } else if arch != Arch::X86_64 {
        eprintln!("==> iommufd selftests: not run (x86_64 only)");
        None
    } else {
        let timeout = Duration::from_secs(args.selftest_timeout);
        Some(selftest::run_on(
            &ws,
            &built,
            &Selection::default(),
            timeout,
        )?)
    };

    // What does not fit in the CI budget has its own command.
    for (what, command) in [
        (
            "differential long run (10^7 operations)",
            "cargo xtask diff",
        ),
        (
            "build of every patch of the series",
            "cargo xtask patch --check-bisect",
        ),
        (
            "assertion counts of the harness port",
            "cargo xtask assertions",
        ),
    ] {
        eprintln!("==> {what}: not run (opt-in: `{command}`)");
    }

    // The VT-d end-to-end test on the same kernels: a QEMU PCIe device
    // faulting through the Intel VT-d driver (see e2e.rs).
    let e2e = if args.kunit_only || args.no_e2e || arch != Arch::X86_64 {
        eprintln!("==> VT-d end-to-end test: not run (run it with `cargo xtask e2e`)");
        None
    } else {
        Some(crate::e2e::run_on(
            &ws,
            &built,
            Duration::from_secs(args.timeout),
        )?)
    };

    let mut total = kunit;
    if let Some(s) = &selftests {
        let c = s.counts_line();
        println!(
            "\nKUnit: {} passed, {} failed, {} skipped; iommufd selftests: {} passed, {} failed, {} skipped",
            kunit.passed, kunit.failed, kunit.skipped, c.passed, c.failed, c.skipped
        );
        total = add(total, c);
    }
    let comparison = diff::check(
        &ws,
        &diff::Boots {
            built: &built,
            consoles: runs
                .iter()
                .map(|r| (r.variant, r.judged.console.text.as_str()))
                .collect(),
        },
        &diff::TEST_PLAN,
        Duration::from_secs(args.timeout),
    )?;
    let mut reliability = runs
        .iter()
        .map(|r| reliability::debug_figures(&r.judged.console.text))
        .chain(kcsan.iter().map(|r| r.figures))
        .fold(reliability::Figures::default(), reliability::Figures::add);
    reliability.diff = Some(comparison.figures());
    let kernels: Vec<String> = runs
        .iter()
        .map(|r| r.variant.name().to_string())
        .chain(kcsan.iter().map(|r| format!("{}-kcsan", r.variant.name())))
        .collect();
    println!("{}", reliability.line(&kernels));
    if let Some(e) = &e2e {
        println!("{}", e.line);
    }
    println!("{}", series.line());
    println!("{}", checkpatch.line());
    println!(
        "{} passed, {} failed, {} skipped",
        total.passed, total.failed, total.skipped
    );
    let failed: Vec<&Outcomes> = runs.iter().filter(|r| r.failed()).collect();
    for r in &failed {
        eprintln!(
            "{}: console log kept at {}",
            r.variant.name(),
            r.judged.console.log.display()
        );
    }
    if !checks.is_empty() {
        print!("{}", checks::render(&checks));
    }
    for p in &comparison.problems {
        println!("  PROBLEM [differential]: {p}");
    }
    reliability::check_kcsan(&kcsan)?;
    if kunit_py == Some(false) {
        bail!("kunit.py exec failed: see above");
    }
    if checks.iter().any(|c| !c.clean()) {
        bail!("the kernel's checkers found problems: see above");
    }
    if !comparison.problems.is_empty() {
        bail!("differential test: the kernels diverged, or a stream did what its model did not expect");
    }
    if !reliability.clean() {
        bail!("responses lost or duplicated, or sanitizer reports: see above");
    }
    if let Some(s) = &selftests {
        s.check()?;
    }
    if let Some(e) = &e2e {
        e.check()?;
    }
    if !failed.is_empty() {
        bail!("tests failed");
    }
    Ok(())
}

/// A run that broke without a failing case (timeout, splat, missing suite)
/// still counts as one failure, so the counts line never reads all-green.
fn missing_failures(runs: &[Outcomes]) -> usize {
    runs.iter()
        .filter(|r| !r.judged.problems.is_empty() && r.judged.report.counts().failed == 0)
        .count()
}

fn add(a: Counts, b: Counts) -> Counts {
    Counts {
        passed: a.passed + b.passed,
        failed: a.failed + b.failed,
        skipped: a.skipped + b.skipped,
    }
}

fn outcome_word(outcome: Option<Outcome>) -> &'static str {
    match outcome {
        Some(Outcome::Pass) => "pass",
        Some(Outcome::Fail) => "FAIL",
        Some(Outcome::Skip) => "skip",
        None => "-",
    }
}

/// The side-by-side table: each suite's counts per variant, then every case
/// whose outcome differs between variants or that did not pass.
fn render(arch: Arch, runs: &[Outcomes]) -> String {
    let mut out = String::new();
    let suites: BTreeSet<&str> = runs
        .iter()
        .flat_map(|r| r.judged.report.suites.iter().map(|s| s.name.as_str()))
        .collect();
    let _ = writeln!(out, "\nKUnit results ({}):", arch.kbuild_name());
    let _ = write!(out, "  {:<32}", "suite");
    for r in runs {
        let _ = write!(out, " {:>22}", r.variant.name());
    }
    out.push('\n');
    for suite in &suites {
        let _ = write!(out, "  {suite:<32}");
        for r in runs {
            let cell = match r.judged.report.suite(suite) {
                Some(s) => {
                    let c = Report {
                        suites: vec![s.clone()],
                        problems: vec![],
                    }
                    .counts();
                    format!(
                        "{} {}/{}/{}",
                        outcome_word(Some(s.outcome)),
                        c.passed,
                        c.failed,
                        c.skipped
                    )
                }
                // Expected suites that did not run are problems already;
                // the others are simply not built into this variant.
                None if expected(suite, r.variant) => "MISSING".into(),
                None => "-".into(),
            };
            let _ = write!(out, " {cell:>22}");
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "  (cells: suite outcome passed/failed/skipped; -: not built in)"
    );

    // Cases worth a look: failed or skipped somewhere, or different between variants.
    let mut notes = Vec::new();
    for suite in &suites {
        let mut cases: BTreeSet<String> = BTreeSet::new();
        for r in runs {
            if let Some(s) = r.judged.report.suite(suite) {
                cases.extend(s.cases.iter().map(|c| c.name.clone()));
            }
        }
        for case in cases {
            // Only the variants that ran the suite have a say.
            let per: Vec<(Variant, Option<Outcome>, Option<String>)> = runs
                .iter()
                .filter(|r| r.judged.report.suite(suite).is_some())
                .map(|r| {
                    let c = r
                        .judged
                        .report
                        .suite(suite)
                        .and_then(|s| s.cases.iter().find(|c| c.name == case));
                    (
                        r.variant,
                        c.map(|c| c.outcome),
                        c.and_then(|c| c.reason.clone()),
                    )
                })
                .collect();
            let all_pass = per.iter().all(|(_, o, _)| *o == Some(Outcome::Pass));
            if !all_pass {
                let cells: Vec<String> = per
                    .iter()
                    .map(|(v, o, why)| match why {
                        Some(why) => format!("{}={} ({why})", v.name(), outcome_word(*o)),
                        None => format!("{}={}", v.name(), outcome_word(*o)),
                    })
                    .collect();
                notes.push(format!("  {suite}.{case}: {}", cells.join(", ")));
            }
        }
    }
    if !notes.is_empty() {
        let _ = writeln!(out, "\nCases not passing everywhere:");
        for n in notes {
            let _ = writeln!(out, "{n}");
        }
    }

    let _ = writeln!(out, "\nTimings:");
    for r in runs {
        let _ = writeln!(
            out,
            "  {:<6} build {:>6.1}s   boot+tests {:>6.1}s",
            r.variant.name(),
            r.built.took.as_secs_f64(),
            r.judged.console.took.as_secs_f64()
        );
    }
    for r in runs {
        for p in &r.judged.problems {
            let _ = writeln!(out, "  PROBLEM [{}]: {p}", r.variant.name());
        }
    }
    out
}

/// The demo: see `demo.rs`.
pub fn demo(args: &RunArgs) -> Result<()> {
    crate::demo::run(args)
}
