//! `selftest`: the kernel's own iommufd selftests on every variant.
//!
//! `tools/testing/selftests/iommu` has two programs, `iommufd` and
//! `iommufd_fail_nth`, that drive iommufd's mock IOMMU driver
//! (CONFIG_IOMMUFD_TEST); its fault queue is fed by the IOPF framework. They
//! are built by kselftest's own make, statically, with the host's gcc against
//! the built kernel's UAPI headers, packed with busybox into an initramfs
//! whose `/init` runs them,
//! and booted on each variant; the two kselftest TAP streams are then
//! compared test by test.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::cli::{Arch, SelftestArgs, Variant};
use crate::judge::{self, Judged, Machine, Rules};
use crate::kernel::{self, Built};
use crate::ktap::{self, Counts, Outcome, Suite};
use crate::paths::Workspace;
use crate::qemu::{Boot, Console};
use crate::splat::Splat;
use crate::toolchain;

/// The selftest programs, in the order `/init` runs them.
pub const PROGRAMS: &[&str] = &["iommufd", "iommufd_fail_nth"];

/// Where the programs' sources live in the kernel tree.
const SOURCE_DIR: &str = "tools/testing/selftests/iommu";

/// Boot arguments: KUnit off (`test` runs it) and no power-off after it, so
/// that `/init` runs; 2 MiB huge pages for the MAP_HUGETLB variants, the
/// largest of which maps 128 MiB; kmemleak off. kmemleak is scanned after
/// the KUnit suites (`test`'s own boot); here nothing would read it, and its
/// bookkeeping made the selftests 3-4 times slower under TCG (access_rw 33 s
/// against 10 s, basic_fail_nth.device 38 s against 10 s), taking the two
/// programs to 18 minutes per kernel. KASAN, lockdep, UBSAN and debugobjects
/// stay on.
const CMDLINE: &str = "kunit.enable=0 kunit_shutdown=none hugepages=128 kmemleak=off";

/// Marks `/init`'s own lines: `# iopf-selftest: NAME exit=N took=S.Ss`.
const MARK: &str = "iopf-selftest";

/// Tests (`FIXTURE.TEST`, every variant) that fail on upstream 7.3.4
/// whatever the IOPF core, and why. A failure of one shows as `xfail` and
/// counts as skipped; a pass fails the run, so the list cannot go stale.
const KNOWN_FAILURES: &[(&str, &str)] = &[
    (
        "iommufd_ioas.dmabuf_simple",
        "selftest.c's IOMMU_TEST_OP_DMABUF_GET returns 0, not the dma-buf fd",
    ),
    (
        "iommufd_ioas.dmabuf_revoke",
        "selftest.c's IOMMU_TEST_OP_DMABUF_GET returns 0, not the dma-buf fd",
    ),
];

/// Host tools the programs and the initramfs need, and their packages.
const TOOLS: &[(&str, &str)] = &[
    ("/usr/bin/make", "make"),
    ("/usr/bin/gcc", "gcc"),
    ("/usr/bin/file", "file"),
    ("/usr/lib/x86_64-linux-gnu/libc.a", "libc6-dev"),
    ("/usr/lib/x86_64-linux-gnu/libcap.a", "libcap-dev"),
    ("/usr/bin/rsync", "rsync"),
    ("/bin/busybox", "busybox-static"),
];

/// Which tests each program runs: kselftest harness filter arguments
/// (`-f FIXTURE`, `-v VARIANT`, `-t TEST`, `-r FIXTURE.VARIANT.TEST`, and
/// their upper-case exclusions). A program without an entry runs all tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    pub args: BTreeMap<String, Vec<String>>,
}

/// One program's run, from `/init`'s mark line.
#[derive(Clone, Debug, PartialEq)]
struct Timing {
    program: String,
    exit: i32,
    seconds: f64,
}

/// One variant's boot, judged.
struct VariantRun {
    variant: Variant,
    console: Console,
    /// Each program's TAP stream, by program name.
    suites: BTreeMap<String, Suite>,
    timings: Vec<Timing>,
    splats: Vec<Splat>,
    problems: Vec<String>,
}

/// `cargo xtask selftest`.
pub fn command(args: &SelftestArgs) -> Result<()> {
    let ws = Workspace::discover()?;
    let jobs = args.target.jobs.unwrap_or_else(toolchain::default_jobs);
    let timeout = Duration::from_secs(args.timeout);
    let arch = args.target.arch;
    check_tools(arch)?;
    let mut built = Vec::new();
    for variant in args.variants() {
        built.push(kernel::build_with_jobs(&ws, arch, variant, jobs)?);
    }
    let verdict = run_on(&ws, &built, &Selection::default(), timeout)?;
    let c = verdict.counts_line();
    println!(
        "{} passed, {} failed, {} skipped",
        c.passed, c.failed, c.skipped
    );
    verdict.check()
}

/// The selftests' verdict over every variant.
pub struct Verdict {
    /// Test results over every variant.
    pub counts: Counts,
    /// Console logs of the variants whose run broke.
    pub kept_logs: Vec<(Variant, PathBuf)>,
}

impl Verdict {
    /// Counts for the summary line: a broken run without a failed test
    /// counts as one failure, so the line never reads all-green.
    pub fn counts_line(&self) -> Counts {
        let broken = !self.kept_logs.is_empty();
        Counts {
            failed: self.counts.failed + usize::from(broken && self.counts.failed == 0),
            ..self.counts
        }
    }

    /// Fails, naming the kept console logs, if any variant's run broke.
    pub fn check(&self) -> Result<()> {
        if self.kept_logs.is_empty() {
            return Ok(());
        }
        for (variant, log) in &self.kept_logs {
            eprintln!("{}: console log kept at {}", variant.name(), log.display());
        }
        bail!("iommufd selftests failed");
    }
}

/// Runs the iommufd selftests chosen by `selection` on each of the `built`
/// kernels and prints the comparison table and timings. The run breaks on a
/// test that passes on `c` but not on `rust` (any failure when `c` is alone
/// or absent), a kernel report in either console, a timeout, or a program
/// that did not finish; the caller prints the counts and judges.
pub fn run_on(
    ws: &Workspace,
    built: &[Built],
    selection: &Selection,
    timeout: Duration,
) -> Result<Verdict> {
    let Some(first) = built.first() else {
        bail!("no kernel to run the selftests on");
    };
    let arch = first.arch;
    check_tools(arch)?;
    let initrd = prepare(ws, first, selection)?;
    let iopf = iopf_tests(&ws.work_tree().join(SOURCE_DIR))?;

    let mut runs = Vec::new();
    for b in built {
        runs.push(boot_and_judge(ws, b, &initrd, timeout)?);
    }
    print!("{}", render(arch, &runs, &iopf));

    let regressions = regressions(&runs);
    let mut counts = Counts::default();
    for suite in runs.iter().flat_map(|r| r.suites.values()) {
        let c = ktap::Report {
            suites: vec![suite.clone()],
            problems: vec![],
        }
        .counts();
        counts.passed += c.passed;
        counts.failed += c.failed;
        counts.skipped += c.skipped;
    }
    let kept_logs = runs
        .iter()
        .filter(|r| !r.problems.is_empty() || !regressions.is_empty())
        .map(|r| (r.variant, r.console.log.clone()))
        .collect();
    Ok(Verdict { counts, kept_logs })
}

/// Fails with the package to install for the first missing host tool.
fn check_tools(arch: Arch) -> Result<()> {
    if arch != Arch::X86_64 {
        bail!("the iommufd selftests run on x86_64 only (IOMMUFD_TEST is in x86_64.config)");
    }
    toolchain::check_qemu(arch)?;
    for (path, package) in TOOLS {
        if !Path::new(path).exists() {
            bail!("missing {path}: run `cargo xtask setup` (or `apt-get install {package}`)");
        }
    }
    check_busybox()
}

/// Fails unless `/bin/busybox` is the static busybox an initramfs needs.
pub(crate) fn check_busybox() -> Result<()> {
    let busybox = Path::new("/bin/busybox");
    if !busybox.exists() {
        bail!(
            "missing /bin/busybox: run `cargo xtask setup` (or `apt-get install busybox-static`)"
        );
    }
    if !is_static(busybox)? {
        bail!("/bin/busybox is not statically linked: `apt-get install busybox-static`");
    }
    Ok(())
}

/// Whether `file` says the program at `path` is statically linked (the
/// initramfs has no dynamic loader and no libraries).
fn is_static(path: &Path) -> Result<bool> {
    let out = Command::new("file")
        .arg("-bL")
        .arg(path)
        .output()
        .context("running file (`apt-get install file`)")?;
    if !out.status.success() {
        bail!("file {} failed", path.display());
    }
    Ok(says_static(&String::from_utf8_lossy(&out.stdout)))
}

/// Whether a `file -b` description is that of a static executable.
fn says_static(description: &str) -> bool {
    description.starts_with("ELF ")
        && (description.contains("statically linked") || description.contains("static-pie linked"))
}

/// Installs `built`'s UAPI headers, builds the programs against them and
/// packs the initramfs. Holds the build lock: it reads the work tree and
/// runs make in the build dir, which a concurrent build would change.
fn prepare(ws: &Workspace, built: &Built, selection: &Selection) -> Result<PathBuf> {
    let _lock = kernel::build_lock(ws)?;
    let build = ws.build_dir(built.arch, built.variant);
    let mut cmd = toolchain::make(
        &ws.work_tree(),
        &build,
        built.arch,
        toolchain::default_jobs(),
    );
    cmd.arg("headers_install");
    kernel::run_logged(cmd, &build.join("headers.log"), "installing UAPI headers")?;

    let out = ws.cache.join("selftest").join(built.arch.kbuild_name());
    fs::create_dir_all(&out)?;
    let source = ws.work_tree().join(SOURCE_DIR);
    build_programs(&source, &build.join("usr/include"), &out)?;
    let programs = PROGRAMS
        .iter()
        .map(|name| (name.to_string(), out.join(name)))
        .collect::<Vec<_>>();
    initramfs(&build.join("usr/gen_init_cpio"), &out, &programs, selection)
}

/// Per-test timeout of the kselftest harness, in seconds, for the guest.
///
/// The harness's own default, `TEST_TIMEOUT_DEFAULT` (30 s), is meant for
/// hardware. Under TCG with KASAN and lockdep the slowest tests come close
/// to it or pass it (`basic_fail_nth.map_two_domains` took 26 to 33 s on a
/// 2-core host, `access_rw` and `fork_gone` 30 s and more with kmemleak on),
/// and a timeout then reads as a failure that has nothing to do with IOPF.
/// The boot's own timeout still catches a test that hangs.
const HARNESS_TIMEOUT_S: u32 = 300;

/// A header force-included (`-include`, through kselftest's `USERCFLAGS`)
/// before each program: it includes the harness first and redefines its
/// default timeout, which the `TEST*()` macros expand where the tests are
/// defined. The harness's include guard keeps the program's own `#include`
/// from redefining it. (The harness defines the macro without `#ifndef`, so
/// a `-D` alone would be overridden.)
fn harness_timeout_header() -> String {
    format!(
        "/* Written by cargo xtask (selftest.rs): see HARNESS_TIMEOUT_S. */\n\
         #include \"kselftest_harness.h\"\n\
         #undef TEST_TIMEOUT_DEFAULT\n\
         #define TEST_TIMEOUT_DEFAULT {HARNESS_TIMEOUT_S}\n"
    )
}

/// The arguments of kselftest's make that build the programs of `source`
/// into `out`: against the kernel's UAPI headers in `include`, statically
/// linked (the initramfs has only busybox), with the harness timeout
/// header `timeout_header` force-included. `-B`: kselftest's rules do not
/// know the UAPI headers or these flags, so the programs are always rebuilt
/// (seconds, next to the boot's minutes).
fn make_args(source: &Path, include: &Path, out: &Path, timeout_header: &Path) -> Vec<String> {
    vec![
        "-B".into(),
        "-C".into(),
        source.display().to_string(),
        format!("OUTPUT={}", out.display()),
        format!("KHDR_INCLUDES=-isystem {}", include.display()),
        format!("USERCFLAGS=-include {}", timeout_header.display()),
        "USERLDFLAGS=-static".into(),
        format!("-j{}", toolchain::default_jobs()),
    ]
}

/// Builds [`PROGRAMS`] with kselftest's own make (`tools/testing/selftests/
/// iommu/Makefile` and `lib.mk`) into `out`, and checks with `file` that
/// each is static.
fn build_programs(source: &Path, include: &Path, out: &Path) -> Result<()> {
    let selftests = source.parent().context("selftest source has no parent")?;
    // The override only works while the harness defines the macro it uses.
    let harness = fs::read_to_string(selftests.join("kselftest_harness.h"))
        .context("reading kselftest_harness.h")?;
    if !harness.contains("#define TEST_TIMEOUT_DEFAULT") {
        bail!("kselftest_harness.h no longer defines TEST_TIMEOUT_DEFAULT: update harness_timeout_header()");
    }
    let timeout_header = out.join("harness_timeout.h");
    fs::write(&timeout_header, harness_timeout_header())?;
    let mut cmd = Command::new("make");
    cmd.args(make_args(source, include, out, &timeout_header));
    kernel::run_logged(
        cmd,
        &out.join("make.log"),
        "building the iommufd selftests (kselftest make)",
    )?;
    for name in PROGRAMS {
        let bin = out.join(name);
        if !bin.exists() {
            bail!("kselftest's make built no {}", bin.display());
        }
        if !is_static(&bin)? {
            bail!("{} is not statically linked", bin.display());
        }
    }
    Ok(())
}

/// The `/init` script: mounts what the tests use, runs each program after a
/// `# selftest: NAME` line (which names its TAP stream), reports its exit
/// status and run time on a mark line, and powers off.
fn init_script(selection: &Selection) -> String {
    let mut script = String::from(
        "#!/bin/sh\n\
         # Written by `cargo xtask selftest`.\n\
         export PATH=/bin:/sbin:/usr/bin:/usr/sbin\n\
         mount -t proc proc /proc\n\
         mount -t sysfs sysfs /sys\n\
         mount -t devtmpfs devtmpfs /dev\n\
         mount -t debugfs debugfs /sys/kernel/debug\n\
         mount -t tmpfs tmpfs /tmp\n\
         # A kernel message printed while a result line is written splits it:\n\
         # keep the informational ones (~1,900 from the mock driver) off the\n\
         # console; warnings and worse, the reports, still print.\n\
         echo 6 > /proc/sys/kernel/printk\n\
         cd /tmp\n\
         now() { cut -d' ' -f1 /proc/uptime; }\n\
         run() {\n\
         \x20   name=$1\n\
         \x20   shift\n\
         \x20   start=$(now)\n\
         \x20   echo \"# selftest: $name\"\n\
         \x20   \"/bin/$name\" \"$@\"\n\
         \x20   rc=$?\n\
         \x20   took=$(awk -v a=\"$start\" -v b=\"$(now)\" 'BEGIN { printf \"%.1f\", b - a }')\n",
    );
    let _ = writeln!(
        script,
        "    echo \"# {MARK}: $name exit=$rc took=${{took}}s\"\n}}"
    );
    let _ = writeln!(
        script,
        "echo \"# {MARK}: start, $(cat /proc/sys/vm/nr_hugepages) huge pages\""
    );
    for program in PROGRAMS {
        let args = selection
            .args
            .get(*program)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let quoted: Vec<String> = args
            .iter()
            .map(|a| format!(" '{}'", a.replace('\'', "'\\''")))
            .collect();
        let _ = writeln!(script, "run {program}{}", quoted.concat());
    }
    let _ = writeln!(script, "echo \"# {MARK}: done\"\npoweroff -f");
    script
}

/// Writes `/init` and packs the initramfs with the kernel's gen_init_cpio.
fn initramfs(
    gen_init_cpio: &Path,
    out: &Path,
    programs: &[(String, PathBuf)],
    selection: &Selection,
) -> Result<PathBuf> {
    crate::initramfs::pack(gen_init_cpio, out, &init_script(selection), programs)
}

/// Turns the failures of [`KNOWN_FAILURES`] into skips (`XFAIL reason`)
/// and re-judges the suite; returns a problem for each listed test that
/// passed.
fn apply_known_failures(suite: &mut Suite) -> Vec<String> {
    let mut problems = Vec::new();
    for case in &mut suite.cases {
        let Some((_, why)) = KNOWN_FAILURES
            .iter()
            .find(|(test, _)| is_listed(&BTreeSet::from([test.to_string()]), &case.name))
        else {
            continue;
        };
        match case.outcome {
            Outcome::Fail => {
                case.outcome = Outcome::Skip;
                case.reason = Some(format!("XFAIL {why}"));
            }
            Outcome::Pass => problems.push(format!(
                "{}: {} passed but is listed in KNOWN_FAILURES",
                suite.name, case.name
            )),
            Outcome::Skip => {}
        }
    }
    let any = |o: Outcome| suite.cases.iter().any(|c| c.outcome == o);
    suite.outcome = if any(Outcome::Fail) || !suite.problems.is_empty() {
        Outcome::Fail
    } else if any(Outcome::Pass) {
        Outcome::Pass
    } else {
        Outcome::Skip
    };
    problems
}

/// `/init`'s mark lines: each program that finished, with its exit status
/// and run time. A program that crashed the kernel has none.
fn parse_timings(console: &str) -> Vec<Timing> {
    ktap::marked_lines(console, MARK)
        .filter_map(|rest| {
            let f = ktap::Fields::parse(rest);
            Some(Timing {
                program: f.words.first()?.to_string(),
                exit: f.number("exit")?,
                seconds: f.get("took")?.strip_suffix('s')?.parse().ok()?,
            })
        })
        .collect()
}

/// The tests that exercise the IOPF path, by `FIXTURE.TEST`: those whose
/// body triggers a fault (`test_cmd_trigger_iopf*`) or allocates a fault
/// queue (`IOMMU_FAULT_QUEUE_ALLOC` through `*_test_ioctl_fault_alloc`).
fn iopf_tests(source: &Path) -> Result<BTreeSet<String>> {
    let mut found = BTreeSet::new();
    for program in PROGRAMS {
        let path = source.join(format!("{program}.c"));
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        found.extend(scan_iopf_tests(&text));
    }
    Ok(found)
}

/// [`iopf_tests`] on one source file: a test's body runs from its
/// `TEST*(...)` line to the next one. `TEST(name)` belongs to the harness's
/// `global` fixture.
fn scan_iopf_tests(source: &str) -> BTreeSet<String> {
    const USES: &[&str] = &[
        "test_cmd_trigger_iopf",
        "test_ioctl_fault_alloc(",
        "IOMMU_FAULT_QUEUE_ALLOC",
    ];
    const FIXTURE_TESTS: &[&str] = &[
        "TEST_F(",
        "TEST_F_TIMEOUT(",
        "TEST_F_SIGNAL(",
        "TEST_FAIL_NTH(",
    ];
    let mut found = BTreeSet::new();
    let mut current: Option<String> = None;
    for line in source.lines() {
        let args = |rest: &str| -> Vec<String> {
            let inner = rest.split(')').next().unwrap_or_default();
            inner.split(',').map(|a| a.trim().to_string()).collect()
        };
        if let Some(rest) = line
            .strip_prefix("TEST(")
            .or(line.strip_prefix("TEST_SIGNAL("))
        {
            current = args(rest).first().map(|name| format!("global.{name}"));
        } else if let Some(rest) = FIXTURE_TESTS.iter().find_map(|h| line.strip_prefix(h)) {
            current = match args(rest).as_slice() {
                [fixture, name, ..] => Some(format!("{fixture}.{name}")),
                _ => None,
            };
        } else if USES.iter().any(|u| line.contains(u)) && !line.trim_start().starts_with('#') {
            found.extend(current.clone());
        }
    }
    found
}

/// Whether the harness's `FIXTURE[.VARIANT].TEST` result is one of `tests`
/// (given as `FIXTURE.TEST`).
fn is_listed(tests: &BTreeSet<String>, result: &str) -> bool {
    let parts: Vec<&str> = result.split('.').collect();
    match parts.as_slice() {
        [fixture, test] | [fixture, _, test] => tests.contains(&format!("{fixture}.{test}")),
        _ => false,
    }
}

fn boot_and_judge(
    ws: &Workspace,
    built: &Built,
    initrd: &Path,
    timeout: Duration,
) -> Result<VariantRun> {
    let name = format!("{}-{}", built.arch.kbuild_name(), built.variant.name());
    eprintln!("==> booting {name} with the iommufd selftests under QEMU");
    let judged = judge::boot(
        &Boot {
            arch: built.arch,
            image: &built.image,
            initrd: Some(initrd),
            cmdline: CMDLINE,
            timeout,
            log: ws.logs()?.join(format!("{name}.selftest.log")),
        },
        Machine::Default,
        // The programs' TAP streams are judged below, each on its own.
        &Rules::default(),
    )?;
    let Judged {
        console,
        report,
        splats,
        mut problems,
        ..
    } = judged;
    let timings = parse_timings(&console.text);
    let mut suites = BTreeMap::new();
    for program in PROGRAMS {
        match report.suite(program) {
            Some(suite) => {
                let mut suite = suite.clone();
                problems.extend(suite.problems.iter().cloned());
                problems.extend(apply_known_failures(&mut suite));
                suites.insert(program.to_string(), suite);
            }
            None => problems.push(format!("{program}: no TAP output")),
        }
        if !timings.iter().any(|t| t.program == *program) {
            problems.push(format!("{program}: did not finish"));
        }
    }
    Ok(VariantRun {
        variant: built.variant,
        console,
        suites,
        timings,
        splats,
        problems,
    })
}

fn outcome(run: &VariantRun, program: &str, test: &str) -> Option<(Outcome, Option<String>)> {
    let case = run
        .suites
        .get(program)?
        .cases
        .iter()
        .find(|c| c.name == test)?;
    Some((case.outcome, case.reason.clone()))
}

/// Tests that pass on `c` but not on another variant; when `c` is the only
/// variant or absent, every failed test.
fn regressions(runs: &[VariantRun]) -> Vec<String> {
    let baseline = runs
        .iter()
        .find(|r| r.variant == Variant::C)
        .filter(|_| runs.len() > 1);
    let result =
        |run: &VariantRun, program: &str, test: &str| outcome(run, program, test).map(|(o, _)| o);
    let mut found = Vec::new();
    for program in PROGRAMS {
        for test in union_of_tests(runs, program) {
            for run in runs
                .iter()
                .filter(|r| baseline.is_none() || r.variant != Variant::C)
            {
                let got = result(run, program, &test);
                let regressed = match baseline {
                    Some(c) => {
                        result(c, program, &test) == Some(Outcome::Pass)
                            && got != Some(Outcome::Pass)
                    }
                    None => got == Some(Outcome::Fail),
                };
                if regressed {
                    found.push(format!(
                        "{program}: {test} {} on {}",
                        word(got),
                        run.variant.name()
                    ));
                }
            }
        }
    }
    found
}

/// Every test name that any variant reported for `program`, in the order
/// first seen.
fn union_of_tests(runs: &[VariantRun], program: &str) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut names = Vec::new();
    for run in runs {
        for case in run
            .suites
            .get(program)
            .map(|s| s.cases.as_slice())
            .unwrap_or_default()
        {
            if seen.insert(case.name.clone()) {
                names.push(case.name.clone());
            }
        }
    }
    names
}

fn word(outcome: Option<Outcome>) -> &'static str {
    match outcome {
        Some(Outcome::Pass) => "pass",
        Some(Outcome::Fail) => "FAIL",
        Some(Outcome::Skip) => "skip",
        None => "-",
    }
}

/// The per-test table, the IOPF tests, timings and problems.
fn render(arch: Arch, runs: &[VariantRun], iopf: &BTreeSet<String>) -> String {
    let mut out = String::new();
    let variants: Vec<&str> = runs.iter().map(|r| r.variant.name()).collect();
    let _ = writeln!(
        out,
        "\niommufd selftests ({}): {}",
        arch.kbuild_name(),
        variants.join(" vs ")
    );
    let width = PROGRAMS
        .iter()
        .flat_map(|p| union_of_tests(runs, p))
        .map(|t| t.len())
        .max()
        .unwrap_or(4)
        + 2;
    for program in PROGRAMS {
        let _ = write!(out, "\n  {:<width$}", format!("{program}:"));
        for v in &variants {
            let _ = write!(out, " {v:<5}");
        }
        out.push('\n');
        for test in union_of_tests(runs, program) {
            let marker = if is_listed(iopf, &test) { '*' } else { ' ' };
            let results: Vec<_> = runs.iter().map(|r| outcome(r, program, &test)).collect();
            let _ = write!(out, "{marker} {test:<width$}");
            for r in &results {
                let cell = match r {
                    Some((_, Some(why))) if why.starts_with("XFAIL ") => "xfail",
                    r => word(r.as_ref().map(|(o, _)| *o)),
                };
                let _ = write!(out, " {cell:<5}");
            }
            let reasons: BTreeSet<&str> = results
                .iter()
                .filter_map(|r| r.as_ref().and_then(|(_, why)| why.as_deref()))
                .collect();
            if !reasons.is_empty() {
                let _ = write!(
                    out,
                    " {}",
                    reasons.into_iter().collect::<Vec<_>>().join(" | ")
                );
            }
            out.push('\n');
        }
    }
    let _ = writeln!(
        out,
        "  (* exercises IOPF: triggers a fault or allocates a fault queue)"
    );

    // The IOPF tests per variant, and every test whose result differs.
    let mut differing = Vec::new();
    let mut iopf_counts = vec![Counts::default(); runs.len()];
    for program in PROGRAMS {
        for test in union_of_tests(runs, program) {
            let results: Vec<_> = runs.iter().map(|r| outcome(r, program, &test)).collect();
            if is_listed(iopf, &test) {
                for (counts, r) in iopf_counts.iter_mut().zip(&results) {
                    match r.as_ref().map(|(o, _)| *o) {
                        Some(Outcome::Pass) => counts.passed += 1,
                        Some(Outcome::Skip) => counts.skipped += 1,
                        _ => counts.failed += 1,
                    }
                }
            }
            if results
                .windows(2)
                .any(|w| w[0].as_ref().map(|(o, _)| *o) != w[1].as_ref().map(|(o, _)| *o))
            {
                differing.push((*program, test));
            }
        }
    }
    let _ = write!(
        out,
        "
IOPF tests:"
    );
    for (r, c) in runs.iter().zip(&iopf_counts) {
        let _ = write!(
            out,
            "  {}: {} passed, {} failed, {} skipped;",
            r.variant.name(),
            c.passed,
            c.failed,
            c.skipped
        );
    }
    out.push('\n');
    if !differing.is_empty() {
        let _ = writeln!(out, "\nTests whose result differs between variants:");
    }
    for (program, test) in &differing {
        let _ = writeln!(out, "  {program}: {test}");
        for r in runs {
            let case = r
                .suites
                .get(*program)
                .and_then(|s| s.cases.iter().find(|c| c.name == *test));
            let said = case
                .map(|c| c.diagnostics.join("\n      "))
                .unwrap_or_default();
            let got = word(case.map(|c| c.outcome));
            let _ = writeln!(out, "    {} {got}:\n      {said}", r.variant.name());
        }
    }

    let _ = write!(
        out,
        "\nSelftest timings (s, QEMU TCG):\n  {:<20}",
        "program"
    );
    for v in &variants {
        let _ = write!(out, " {v:>12}");
    }
    out.push('\n');
    for program in PROGRAMS {
        let _ = write!(out, "  {program:<20}");
        for r in runs {
            let cell = match r.timings.iter().find(|t| t.program == *program) {
                Some(t) => format!("{:.1} (rc {})", t.seconds, t.exit),
                None => "unfinished".into(),
            };
            let _ = write!(out, " {cell:>12}");
        }
        out.push('\n');
    }
    let _ = write!(out, "  {:<20}", "whole boot");
    for r in runs {
        let _ = write!(out, " {:>12.1}", r.console.took.as_secs_f64());
    }
    out.push('\n');

    for regression in regressions(runs) {
        let _ = writeln!(out, "  REGRESSION: {regression}");
    }
    for r in runs {
        for p in &r.problems {
            let _ = writeln!(out, "  PROBLEM [{}]: {p}", r.variant.name());
        }
        for s in &r.splats {
            let excerpt: Vec<&str> = r.console.text.lines().skip(s.line - 1).take(12).collect();
            let _ = writeln!(
                out,
                "  [{}] console from line {}:\n    {}",
                r.variant.name(),
                s.line,
                excerpt.join("\n    ")
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn harness_timeout_header_includes_the_harness_then_redefines() {
        let h = harness_timeout_header();
        let include = h.find("#include \"kselftest_harness.h\"").unwrap();
        let undef = h.find("#undef TEST_TIMEOUT_DEFAULT").unwrap();
        let define = h
            .find(&format!(
                "#define TEST_TIMEOUT_DEFAULT {HARNESS_TIMEOUT_S}\n"
            ))
            .unwrap();
        assert!(include < undef && undef < define);
    }

    #[test]
    fn make_builds_static_against_the_uapi_headers_with_the_timeout() {
        let args = make_args(
            Path::new("/src/iommu"),
            Path::new("/b/usr/include"),
            Path::new("/out"),
            Path::new("/out/harness_timeout.h"),
        );
        for want in [
            "-B",
            "/src/iommu",
            "OUTPUT=/out",
            "KHDR_INCLUDES=-isystem /b/usr/include",
            "USERCFLAGS=-include /out/harness_timeout.h",
            "USERLDFLAGS=-static",
        ] {
            assert!(args.iter().any(|a| a == want), "{want}: {args:?}");
        }
    }

    #[test]
    fn file_tells_static_programs() {
        assert!(says_static(
            "ELF 64-bit LSB executable, x86-64, version 1 (GNU/Linux), statically linked, \
             BuildID[sha1]=0daa, for GNU/Linux 3.2.0, stripped"
        ));
        assert!(says_static(
            "ELF 64-bit LSB pie executable, x86-64, version 1 (SYSV), static-pie linked, stripped"
        ));
        assert!(!says_static(
            "ELF 64-bit LSB pie executable, x86-64, version 1 (SYSV), dynamically linked, \
             interpreter /lib64/ld-linux-x86-64.so.2, for GNU/Linux 3.2.0, stripped"
        ));
        assert!(!says_static("POSIX shell script, ASCII text executable"));
    }

    #[test]
    fn the_hosts_busybox_is_static() {
        // The same check on a real program, where the host has one.
        if Path::new("/bin/busybox").exists() && Path::new("/usr/bin/file").exists() {
            assert!(is_static(Path::new("/bin/busybox")).unwrap());
            assert!(!is_static(Path::new("/bin/sh")).unwrap_or(false));
        }
    }

    #[test]
    fn timings_from_mark_lines() {
        let console = "# iopf-selftest: start, 128 huge pages\n\
                       # selftest: iommufd\nTAP version 13\n\
                       # iopf-selftest: iommufd exit=1 took=812.3s\n\
                       [  9.1] random: noise # iopf-selftest: iommufd_fail_nth exit=0 took=5.0s\n\
                       # iopf-selftest: done\n";
        let want = vec![
            Timing {
                program: "iommufd".into(),
                exit: 1,
                seconds: 812.3,
            },
            Timing {
                program: "iommufd_fail_nth".into(),
                exit: 0,
                seconds: 5.0,
            },
        ];
        assert_eq!(parse_timings(console), want);
    }

    #[test]
    fn iopf_tests_are_found_by_their_calls() {
        let source = "#define test_cmd_trigger_iopf(a, b) x\n\
                      TEST_F(iommufd_ioas, alloc_hwpt_nested)\n{\n\
                      \ttest_ioctl_fault_alloc(&fault_id, &fault_fd);\n}\n\
                      TEST_F(iommufd_ioas, plain)\n{\n\tok();\n}\n\
                      TEST_FAIL_NTH(basic_fail_nth, device)\n{\n\
                      \tif (_test_ioctl_fault_alloc(self->fd, &fault_id, &fault_fd))\n}\n\
                      TEST(global_one)\n{\n\ttest_cmd_trigger_iopf_pasid(a, b, c);\n}\n\
                      TEST_F(iommufd_viommu, viommu_alloc_nested_iopf)\n{\n\
                      \ttest_cmd_trigger_iopf(dev_id, fault_fd);\n}\n";
        let found: Vec<String> = scan_iopf_tests(source).into_iter().collect();
        let want = [
            "basic_fail_nth.device",
            "global.global_one",
            "iommufd_ioas.alloc_hwpt_nested",
            "iommufd_viommu.viommu_alloc_nested_iopf",
        ];
        assert_eq!(found, want);
        let listed = scan_iopf_tests(source);
        assert!(is_listed(
            &listed,
            "iommufd_ioas.mock_domain.alloc_hwpt_nested"
        ));
        assert!(is_listed(&listed, "basic_fail_nth.device"));
        assert!(!is_listed(&listed, "iommufd_ioas.mock_domain.plain"));
    }

    #[test]
    fn known_failures_become_xfail_and_a_pass_is_a_problem() {
        let log = "# selftest: iommufd\nTAP version 13\n1..3\n\
                   ok 1 iommufd_ioas.no_domain.area\n\
                   not ok 2 iommufd_ioas.no_domain.dmabuf_simple\n\
                   ok 3 iommufd_ioas.mock_domain.dmabuf_revoke\n";
        let mut suite = ktap::parse(log).suites.remove(0);
        assert_eq!(suite.outcome, Outcome::Fail);
        let problems = apply_known_failures(&mut suite);
        assert_eq!(
            problems,
            ["iommufd: iommufd_ioas.mock_domain.dmabuf_revoke passed but is listed in KNOWN_FAILURES"]
        );
        let xfail = &suite.cases[1];
        assert_eq!(xfail.outcome, Outcome::Skip);
        assert!(xfail
            .reason
            .as_deref()
            .unwrap()
            .starts_with("XFAIL selftest.c"));
        assert_eq!(suite.outcome, Outcome::Pass);
        let counts = ktap::Report {
            suites: vec![suite],
            problems: vec![],
        }
        .counts();
        assert_eq!((counts.passed, counts.failed, counts.skipped), (2, 0, 1));
    }

    /// A run of `variant` whose `iommufd` stream is `results`.
    fn fake_run(variant: Variant, results: &str) -> VariantRun {
        let text = format!("# selftest: iommufd\nTAP version 13\n{results}");
        let suites = BTreeMap::from([("iommufd".to_string(), ktap::parse(&text).suites.remove(0))]);
        let console = Console {
            text,
            timed_out: false,
            took: Duration::ZERO,
            log: PathBuf::new(),
        };
        VariantRun {
            variant,
            console,
            suites,
            timings: vec![],
            splats: vec![],
            problems: vec![],
        }
    }

    #[test]
    fn regressions_are_c_passes_that_rust_does_not_pass() {
        let c = fake_run(
            Variant::C,
            "ok 1 a\nok 2 b\nnot ok 3 c\nok 4 d\nok 5 e # SKIP x\nok 6 gone\n",
        );
        let rust = fake_run(
            Variant::Rust,
            "ok 1 a\nnot ok 2 b\nnot ok 3 c\nok 4 d # SKIP y\nnot ok 5 e\n",
        );
        assert_eq!(
            regressions(&[c, rust]),
            [
                "iommufd: b FAIL on rust",
                "iommufd: d skip on rust",
                "iommufd: gone - on rust",
            ]
        );
        // Alone, a variant has no baseline: each failure counts.
        let c = fake_run(Variant::C, "ok 1 a\nnot ok 2 c\n");
        assert_eq!(regressions(&[c]), ["iommufd: c FAIL on c"]);
    }

    #[test]
    fn init_runs_every_program_with_its_filters() {
        let mut selection = Selection::default();
        selection
            .args
            .insert("iommufd_fail_nth".into(), vec!["-t".into(), "it's".into()]);
        let script = init_script(&selection);
        assert!(script.starts_with("#!/bin/sh\n"));
        assert!(script.contains("\nrun iommufd\n"));
        assert!(script.contains("\nrun iommufd_fail_nth '-t' 'it'\\''s'\n"));
        assert!(script.contains("echo \"# iopf-selftest: $name exit=$rc took=${took}s\""));
        assert!(script.ends_with("poweroff -f\n"));
        // The mock driver's ~1,900 informational messages per boot stay off
        // the console, where they could split a result line.
        let quiet = script.find("\necho 6 > /proc/sys/kernel/printk\n").unwrap();
        assert!(quiet < script.find("\nrun iommufd\n").unwrap());
    }
}
