//! `e2e`: end to end through the real Intel VT-d driver.
//!
//! A QEMU built by the workbench ([`qemu`]: Debian's 10.2.2 with the
//! project's VT-d patch and its PCIe test device `iopf-testdev`, which has
//! PASID, ATS and PRI) boots each kernel variant on a q35 machine with a
//! scalable-mode Intel IOMMU that reports page requests (`x-prs=on`). In
//! the guest, a user-space test ([`guest`]) binds the device to its address
//! space through the driver `samples/rust/rust_iopf_testdev` and runs jobs
//! in which the device faults on anonymous and file-backed memory, on
//! read-only and unmapped addresses, in a burst of thousands of faults, and
//! while the PASID is unbound or the device removed. Page requests go from
//! the device through the VT-d model's page request queue, `prq.c`, the
//! IOPF framework (io-pgfault.c or the Rust core) and the SVA fault
//! handler, and the responses back through the VT-d driver's invalidation
//! queue to the device, which counts them.
//!
//! The test kernels carry the debug checkers; `--bench` also boots the
//! benchmark kernels for the time per fault. The command ends with one
//! summary line and fails on any miss: a failed or missing case, a lost,
//! duplicated or wrong answer, a kernel report, a trace count that differs
//! from the device's, outcomes that differ between the kernels.

mod guest;
mod qemu;
mod report;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::cli::{Arch, E2eArgs, Variant};
use crate::judge::{self, Machine, Rules};
use crate::kernel::{self, Built, Profile};
use crate::paths::Workspace;
use crate::qemu::Boot;
use crate::toolchain;

use guest::Mode;
use report::{Run, Totals};

/// The guest kernel's arguments: no KUnit (`test` runs it) and no power-off
/// after it, the Intel IOMMU in scalable mode (off by default in 7.3).
const CMDLINE: &str = "kunit.enable=0 kunit_shutdown=none intel_iommu=on,sm_on";

/// The IOMMU: scalable mode with first-stage tables (the CPU's, for SVA),
/// PASIDs, ATS (`device-iotlb`) and page requests (`x-prs`, the project's
/// patch: ECAP.PRS, SMPWC and PDS).
const IOMMU: &str =
    "intel-iommu,x-scalable-mode=on,x-flts=on,x-pasid-mode=on,device-iotlb=on,x-prs=on";

/// QEMU arguments of the machine: the IOMMU before the PCI devices.
fn machine_args() -> Vec<&'static str> {
    vec![
        "-machine",
        "q35",
        "-L",
        qemu::FIRMWARE_DIR,
        "-device",
        IOMMU,
        "-device",
        "iopf-testdev",
    ]
}

/// `cargo xtask e2e`.
pub fn command(args: &E2eArgs) -> Result<()> {
    if args.target.arch != Arch::X86_64 {
        bail!("the VT-d end-to-end test runs on x86_64 only (QEMU's Intel IOMMU)");
    }
    let ws = Workspace::discover()?;
    let jobs = args.target.jobs.unwrap_or_else(toolchain::default_jobs);
    let start = Instant::now();
    let qemu = qemu::ensure(&ws, jobs)?;
    if args.qemu_only {
        return Ok(());
    }
    let variants = args.variants();
    let timeout = Duration::from_secs(args.timeout);

    let mut built = Vec::new();
    for &variant in &variants {
        built.push(kernel::build_with_jobs(
            &ws,
            args.target.arch,
            variant,
            jobs,
        )?);
    }
    let runs = boot_cases(&ws, &qemu.binary, &built, timeout)?;

    // The benchmark kernels: `runs` boots of each, alternating, so that
    // the host's slow phases fall on both.
    let mut bench = Vec::new();
    if args.bench {
        let mut kernels = Vec::new();
        for &variant in &variants {
            let built =
                kernel::build_profile(&ws, args.target.arch, variant, Profile::Bench, jobs)?;
            let initrd = guest::initramfs(
                &ws,
                &built,
                Mode::Bench {
                    rounds: BENCH_ROUNDS,
                },
            )?;
            kernels.push((built, initrd));
        }
        for round in 0..args.runs {
            for (built, initrd) in &kernels {
                let (run, took) = boot_one(&ws, &qemu.binary, built, initrd, "-bench", timeout)?;
                eprintln!(
                    "==> {}-bench boot {}/{}: {} timing jobs in {:.0}s",
                    built.variant.name(),
                    round + 1,
                    args.runs,
                    run.bench.len(),
                    took.as_secs_f64()
                );
                bench.push((built.variant, run));
            }
        }
    }

    let mut verdict = verdict(&ws, &runs);
    print_times(&runs, &bench);
    for (variant, run) in &bench {
        for f in bench_problems(*variant, run) {
            eprintln!("e2e: {f}");
            verdict.failures.push(f);
        }
    }
    eprintln!(
        "==> e2e took {:.0}s (QEMU build {:.0}s)",
        start.elapsed().as_secs_f64(),
        qemu.seconds
    );
    println!("{}", verdict.line);
    verdict.check()
}

/// The verdict over the kernels' runs of the cases.
pub struct Verdict {
    /// `e2e vtd (c rust): N cases, N page requests, ...`
    pub line: String,
    /// Every miss, one line each; empty when the test passed.
    pub failures: Vec<String>,
}

impl Verdict {
    /// Fails if anything was missed.
    pub fn check(&self) -> Result<()> {
        if self.failures.is_empty() {
            Ok(())
        } else {
            bail!(
                "{} problem(s) in the VT-d end-to-end test",
                self.failures.len()
            )
        }
    }
}

/// Runs the cases on the `built` test kernels (QEMU is built first if
/// needed), prints the tables and returns the verdict; for `cargo xtask
/// test`, which has built the kernels already.
pub fn run_on(ws: &Workspace, built: &[Built], timeout: Duration) -> Result<Verdict> {
    let qemu = qemu::ensure(ws, toolchain::default_jobs())?;
    let runs = boot_cases(ws, &qemu.binary, built, timeout)?;
    let verdict = verdict(ws, &runs);
    print_times(&runs, &[]);
    Ok(verdict)
}

/// Boots each of `built` with the cases.
fn boot_cases(
    ws: &Workspace,
    qemu: &Path,
    built: &[Built],
    timeout: Duration,
) -> Result<Vec<(Variant, Run)>> {
    let mut runs = Vec::new();
    for b in built {
        let initrd = guest::initramfs(ws, b, Mode::Cases)?;
        let (run, took) = boot_one(ws, qemu, b, &initrd, "", timeout)?;
        eprintln!(
            "==> {}: {} cases in {:.0}s",
            b.variant.name(),
            run.cases.len(),
            took.as_secs_f64()
        );
        runs.push((b.variant, run));
    }
    Ok(runs)
}

/// Prints the case table and the page request path of each run, and
/// collects every miss.
fn verdict(ws: &Workspace, runs: &[(Variant, Run)]) -> Verdict {
    let views: Vec<(Variant, &Run)> = runs.iter().map(|(v, r)| (*v, r)).collect();
    println!("{}", report::table(&views));
    print_evidence(runs);

    let mut failures = Vec::new();
    let mut totals = Totals::default();
    for (variant, run) in runs {
        totals.add(&Totals::of(run));
        for p in report::problems(run) {
            failures.push(format!("{}: {p}", variant.name()));
        }
    }
    for pair in views.windows(2) {
        for d in report::differences(pair[0], pair[1]) {
            failures.push(format!("c/rust differ: {d}"));
        }
    }
    for f in &failures {
        eprintln!("e2e: {f}");
    }
    if !failures.is_empty() {
        for (variant, _) in runs {
            if let Some(log) = run_log(ws, *variant, "") {
                eprintln!("{}: console log kept at {log}", variant.name());
            }
        }
    }
    let names: Vec<&str> = runs.iter().map(|(v, _)| v.name()).collect();
    let line = format!(
        "e2e vtd ({}): {} cases, {} page requests, {} responses, {} lost, {} duplicated, {} wrong data, {} splats",
        names.join(" "),
        totals.cases,
        totals.requests,
        totals.responses,
        totals.lost,
        totals.duplicated,
        totals.wrong,
        totals.splats
    );
    Verdict { line, failures }
}

fn run_log(ws: &Workspace, variant: Variant, suffix: &str) -> Option<String> {
    let log = ws
        .logs()
        .ok()?
        .join(format!("e2e-x86_64-{}{suffix}.log", variant.name()));
    log.exists().then(|| log.display().to_string())
}

/// Boots `built` with the test QEMU and reads its console: the results
/// section, and the boot's judgement (timeout, kernel reports).
fn boot_one(
    ws: &Workspace,
    qemu: &Path,
    built: &Built,
    initrd: &Path,
    suffix: &str,
    timeout: Duration,
) -> Result<(Run, Duration)> {
    let log = ws
        .logs()?
        .join(format!("e2e-x86_64-{}{suffix}.log", built.variant.name()));
    eprintln!(
        "==> booting {}{suffix} on q35 with the VT-d IOMMU and iopf-testdev",
        built.variant.name()
    );
    let machine = machine_args();
    let judged = judge::boot(
        &Boot {
            arch: built.arch,
            image: &built.image,
            initrd: Some(initrd),
            cmdline: CMDLINE,
            timeout,
            log,
        },
        Machine::Custom {
            qemu,
            extra: &machine,
        },
        // KUnit is off: the guest program's results section is the result.
        &Rules::default(),
    )?;
    let mut run = report::parse(&judged.console.text);
    run.splats = judged.splats;
    run.boot_problems = judged.problems;
    Ok((run, judged.console.took))
}

/// The trace lines and interrupt counts that show the page requests
/// passing through the VT-d driver into the IOPF core, per kernel.
fn print_evidence(runs: &[(Variant, Run)]) {
    for (variant, run) in runs {
        println!("{}: the VT-d page request path", variant.name());
        if let Some((prq, resp, _)) = run.trace {
            println!(
                "  trace: {prq} intel_iommu:prq_report events (prq.c reported a page request), \
                 {resp} page group responses submitted (intel_iommu:qi_submit)"
            );
        }
        for (label, irq) in [("before", &run.prq_irq.0), ("after", &run.prq_irq.1)] {
            if let Some(irq) = irq {
                println!(
                    "  PRQ interrupt {label}: {}",
                    irq.split_whitespace().collect::<Vec<_>>().join(" ")
                );
            }
        }
        for line in &run.trace_lines {
            println!("  | {line}");
        }
    }
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    Some(values[values.len() / 2])
}

/// Timed rounds of the jobs in each benchmark boot, after a warm-up round.
const BENCH_ROUNDS: usize = 3;

/// Time per fault, from the device's clock (QEMU's virtual clock, which
/// follows the host's under TCG without `-icount`): on the debug kernels
/// from the burst case; on the benchmark kernels from the timing jobs, the
/// median over every round of every boot. `serial` has one page request
/// in flight at a time, so its request-to-response time is the latency of
/// one fault through the VT-d driver, the IOPF core and the SVA handler;
/// `burst` has up to the allocation (256) in flight, and its job time per
/// fault is the inverse of the throughput.
fn print_times(runs: &[(Variant, Run)], bench: &[(Variant, Run)]) {
    println!("time per fault (device clock, microseconds):");
    for (variant, run) in runs {
        if let Some((job, _)) = run
            .cases
            .iter()
            .find(|c| c.name == "burst")
            .and_then(report::per_fault)
        {
            println!(
                "  {:<11} burst of 8192 (debug kernel): {:.1} per fault over the job",
                variant.name(),
                job / 1000.0
            );
        }
    }
    let variants: Vec<Variant> = bench
        .iter()
        .map(|(v, _)| *v)
        .fold(Vec::new(), |mut acc, v| {
            if !acc.contains(&v) {
                acc.push(v);
            }
            acc
        });
    for variant in variants {
        let lines: Vec<&BTreeMap<String, String>> = bench
            .iter()
            .filter(|(v, _)| *v == variant)
            .flat_map(|(_, run)| &run.bench)
            .collect();
        let num = |b: &BTreeMap<String, String>, k: &str| -> f64 {
            b.get(k).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        };
        let of = |job: &'static str| {
            lines
                .iter()
                .filter(move |b| b.get("job").map(String::as_str) == Some(job))
                .copied()
        };
        let serial = median(
            of("serial")
                .map(|b| num(b, "latency_sum_ns") / num(b, "groups").max(1.0))
                .collect(),
        );
        let burst = median(
            of("burst")
                .map(|b| num(b, "job_ns") / num(b, "requests").max(1.0))
                .collect(),
        );
        if let (Some(serial), Some(burst)) = (serial, burst) {
            println!(
                "  {:<11} one fault in flight: {:.1} request to response; burst of 8192: {:.1} per fault over the job ({} rounds each)",
                format!("{}-bench", variant.name()),
                serial / 1000.0,
                burst / 1000.0,
                of("burst").count()
            );
        }
    }
}

/// Problems of a benchmark boot: every timing job ran, answered in full.
fn bench_problems(variant: Variant, run: &Run) -> Vec<String> {
    let name = format!("{}-bench", variant.name());
    // The timeout and the kernel's reports.
    let mut out: Vec<String> = run
        .boot_problems
        .iter()
        .map(|p| format!("{name}: {p}"))
        .collect();
    if run.bench.len() != 2 * BENCH_ROUNDS {
        out.push(format!(
            "{name}: {} timing jobs reported, expected {}",
            run.bench.len(),
            2 * BENCH_ROUNDS
        ));
    }
    for b in &run.bench {
        let get = |k: &str| b.get(k).map(String::as_str).unwrap_or("?");
        let clean = ["err", "lost", "duplicated", "wrong"]
            .iter()
            .all(|k| get(k) == "0");
        if !clean || get("requests") != get("pages") {
            out.push(format!(
                "{name}: job {} round {}: {:?}",
                get("job"),
                get("run"),
                b
            ));
        }
    }
    out
}
