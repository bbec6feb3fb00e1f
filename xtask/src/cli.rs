//! Command-line interface.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Build, boot and test the Rust IOPF kernel"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Install the toolchain and fetch the pristine kernel source (idempotent).
    Setup(SetupArgs),
    /// Lay the repo over a work copy of the kernel and build a variant.
    Build(BuildArgs),
    /// Build the variants, boot each under QEMU and report their KUnit results.
    Test(TestArgs),
    /// The demo: build the Rust-IOPF kernel, boot it and show IOPF at work.
    Run(RunArgs),
    /// rustfmt and clippy over the project's kernel Rust.
    Lint(LintArgs),
    /// Run the kernel's iommufd selftests on each variant and compare them.
    Selftest(SelftestArgs),
    /// Benchmark the IOPF path of both variants on non-debug kernels.
    Bench(BenchArgs),
    /// Count the guest instructions of one benchmark case per kernel
    /// function, C against Rust (a QEMU TCG plugin built from xtask/tbprof).
    Profile(ProfileArgs),
    /// End to end through the Intel VT-d driver: a PRI-capable QEMU test
    /// device faults on a user process's memory, on each variant.
    E2e(E2eArgs),
    /// Write the patch series (`git format-patch`, with a cover letter),
    /// check that `git am` applies it to the pristine tree and gives the
    /// overlay's tree, and run checkpatch on it.
    Patch(PatchArgs),
    /// The long differential run: the same random streams of IOPF
    /// operations through both non-debug kernels, their logs compared.
    Diff(DiffArgs),
    /// Count the KUnit assertions each IOPF case executes, with the tests of
    /// a base revision and with the repo's, on one Rust kernel of its own,
    /// and show, case by case, that a port of the tests lost none.
    Assertions(AssertionsArgs),
}

#[derive(Args)]
pub struct SetupArgs {
    /// Use this kernel tree (e.g. a mainline checkout) instead of Debian's
    /// linux-source-7.3 package.
    #[arg(long, value_name = "DIR")]
    pub kernel_src: Option<PathBuf>,
    /// Skip the apt packages (for machines where they are installed by other means).
    #[arg(long)]
    pub no_packages: bool,
}

/// Target architecture of the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Arch {
    #[value(name = "x86_64")]
    X86_64,
    Arm64,
}

impl Arch {
    /// Name as used by Kbuild's `ARCH=` and the config fragments.
    pub fn kbuild_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }
}

/// Which IOPF implementation the kernel is built with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Variant {
    /// Upstream drivers/iommu/io-pgfault.c: the baseline.
    C,
    /// CONFIG_IOMMU_IOPF_RUST=y: the Rust core in place of io-pgfault.c.
    Rust,
}

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Variant::C => "c",
            Variant::Rust => "rust",
        }
    }
}

#[derive(Args, Clone)]
pub struct Target {
    /// Architecture to build and boot.
    #[arg(long, value_enum, default_value = "x86_64")]
    pub arch: Arch,
    /// Parallel make jobs (default: number of CPUs).
    #[arg(long, short)]
    pub jobs: Option<usize>,
}

#[derive(Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub target: Target,
    /// Variants to build (repeatable); default: all.
    #[arg(long = "variant", value_enum)]
    pub variant: Vec<Variant>,
    /// Build the KCSAN kernels (configs/kcsan.config) that `test` boots for
    /// the stress case, instead of the test kernels.
    #[arg(long)]
    pub kcsan: bool,
    /// Build the benchmark kernels (configs/bench.config) that `bench`
    /// boots, instead of the test kernels.
    #[arg(long)]
    pub bench: bool,
}

impl BuildArgs {
    pub fn variants(&self) -> Vec<Variant> {
        variants_or_all(&self.variant)
    }
}

#[derive(Args)]
pub struct TestArgs {
    #[command(flatten)]
    pub target: Target,
    /// Variants to test (repeatable); default: all.
    #[arg(long = "variant", value_enum)]
    pub variant: Vec<Variant>,
    /// Seconds a boot may take before it counts as hung.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Run the KUnit suites only, not the iommufd selftests.
    #[arg(long)]
    pub kunit_only: bool,
    /// Seconds the iommufd selftests' boot (both programs) may take.
    #[arg(long, default_value_t = 1200)]
    pub selftest_timeout: u64,
    /// Also build and boot the KCSAN kernels (the stress case and the
    /// flood under the race detector; a cold build of each is ~15 min).
    #[arg(long)]
    pub kcsan: bool,
    /// Skip the VT-d end-to-end test (`cargo xtask e2e` on the same
    /// kernels; x86_64, not with --kunit-only).
    #[arg(long)]
    pub no_e2e: bool,
}

impl TestArgs {
    pub fn variants(&self) -> Vec<Variant> {
        variants_or_all(&self.variant)
    }
}

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub target: Target,
    /// Seconds the demo boot may take.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
}

#[derive(Args)]
pub struct LintArgs {
    #[command(flatten)]
    pub target: Target,
}

#[derive(Args)]
pub struct SelftestArgs {
    #[command(flatten)]
    pub target: Target,
    /// Variants to run (repeatable); default: all.
    #[arg(long = "variant", value_enum)]
    pub variant: Vec<Variant>,
    /// Seconds one boot (both selftest programs) may take.
    #[arg(long, default_value_t = 1200)]
    pub timeout: u64,
}

impl SelftestArgs {
    pub fn variants(&self) -> Vec<Variant> {
        variants_or_all(&self.variant)
    }
}

#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub target: Target,
    /// Boots of each kernel; the table shows the median over them.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Seconds one boot (the whole iopf_bench suite) may take.
    #[arg(long, default_value_t = 1200)]
    pub timeout: u64,
    /// Skip the extra boot of each kernel with QEMU's `-icount shift=0`,
    /// whose clock counts guest instructions (a measure free of host noise).
    #[arg(long)]
    pub no_icount: bool,
    /// Directory for the CSV and PNG files (default: `bench/` in the repo).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Do not build or boot: summarise the console logs kept by the last run.
    #[arg(long)]
    pub from_logs: bool,
    /// Compare C with a Rust kernel built with CONFIG_RUST_INLINE_HELPERS
    /// (the kernel's C helpers inlined into Rust through LLVM bitcode); its
    /// files are named `*-inline-helpers*`.
    #[arg(long)]
    pub inline_helpers: bool,
    /// Skip the cost of the Rust core's tracepoints and debugfs files (two
    /// more Rust kernels, and four short boots per run).
    #[arg(long)]
    pub no_observability: bool,
}

#[derive(Args)]
pub struct ProfileArgs {
    #[command(flatten)]
    pub target: Target,
    /// The iopf_bench case to profile (a KUnit case name).
    #[arg(long, default_value = "iopf_bench_fixed_cost")]
    pub case: String,
    /// Functions shown, the costliest first.
    #[arg(long, default_value_t = 40)]
    pub top: usize,
    /// Seconds one boot may take.
    #[arg(long, default_value_t = 1200)]
    pub timeout: u64,
    /// Directory for the table (default: `bench/` in the repo).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Args)]
pub struct E2eArgs {
    #[command(flatten)]
    pub target: Target,
    /// Variants to run (repeatable); default: all.
    #[arg(long = "variant", value_enum)]
    pub variant: Vec<Variant>,
    /// Seconds one boot (all the cases) may take.
    #[arg(long, default_value_t = 900)]
    pub timeout: u64,
    /// Also measure the time per fault on the non-debug benchmark kernels
    /// (`configs/bench.config`; built if needed, ~10 min each cold).
    #[arg(long)]
    pub bench: bool,
    /// Boots of each benchmark kernel for the time per fault, alternating
    /// between the kernels; each boot times 3 rounds of the jobs (the
    /// median over all rounds is shown).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Only fetch, patch and build the test QEMU.
    #[arg(long)]
    pub qemu_only: bool,
}

impl E2eArgs {
    pub fn variants(&self) -> Vec<Variant> {
        variants_or_all(&self.variant)
    }
}

#[derive(Args)]
pub struct PatchArgs {
    /// Directory for the series (default: `series/out` in the cache).
    #[arg(long, short, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Also build the kernel at each patch of the series, incrementally,
    /// with the test configuration of the `rust` variant (x86_64; a cold
    /// build first, then one per patch).
    #[arg(long)]
    pub check_bisect: bool,
    /// Parallel make jobs for --check-bisect (default: number of CPUs).
    #[arg(long, short)]
    pub jobs: Option<usize>,
}

#[derive(Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub target: Target,
    /// Sequential operations per kernel (a tenth more run concurrently).
    #[arg(long, default_value_t = 10_000_000)]
    pub ops: u64,
    /// Operations per sequential stream (seed).
    #[arg(long, default_value_t = 100_000)]
    pub stream_ops: u64,
    /// The base of the seeds (default: a new one, printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Seconds one kernel's boot may take.
    #[arg(long, default_value_t = 14_400)]
    pub timeout: u64,
}

#[derive(Args)]
pub struct AssertionsArgs {
    /// The revision whose `tests/kunit` is the "before" (the parent of the
    /// port to the shared harness, 382bf6e, by default).
    #[arg(long, default_value = "6fa1734")]
    pub base: String,
    /// Seconds one boot (every IOPF suite, the benchmark's too) may take.
    #[arg(long, default_value_t = 3600)]
    pub timeout: u64,
    /// Parallel make jobs (default: number of CPUs).
    #[arg(long, short)]
    pub jobs: Option<usize>,
    /// The table's file (default: `tests/assertions/port-<base>.txt`).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Do not build or boot: compare the console logs of the last run.
    #[arg(long)]
    pub from_logs: bool,
}

fn variants_or_all(chosen: &[Variant]) -> Vec<Variant> {
    if chosen.is_empty() {
        vec![Variant::C, Variant::Rust]
    } else {
        let mut v = chosen.to_vec();
        v.sort();
        v.dedup();
        v
    }
}
