//! `cargo xtask`: the project's workbench.
//!
//! Takes a machine with nothing installed to a Linux 7.3.4 kernel with this
//! repository laid over it, built, booted under QEMU and tested:
//!
//! - `setup`   installs the toolchain and fetches the pristine kernel source;
//! - `build`   overlays the repo on a work copy and builds a variant out of tree;
//! - `test`    boots each variant, parses its KTAP and compares the variants;
//! - `run`     the demo: the Rust-IOPF kernel at work;
//! - `lint`    rustfmt and clippy over the kernel Rust of this repo;
//! - `selftest` the kernel's iommufd selftests on each variant, compared;
//! - `bench`   the IOPF path of both variants, measured on non-debug kernels;
//! - `e2e`     a QEMU PCIe device faults through the Intel VT-d driver;
//! - `patch`   the patch series: `git format-patch`, checked with `git am` and checkpatch.
//! - `diff`    the long differential run: random streams through both kernels.
//! - `assertions` the KUnit assertions each case runs, before and after a port of the tests.

mod assertions;
mod bad_input;
mod bench;
mod checkpatch;
mod checks;
mod cli;
mod demo;
mod diff;
mod e2e;
mod initramfs;
mod judge;
mod kconfig;
mod kernel;
mod ktap;
mod kunitpy;
mod lint;
mod observe;
mod observe_cost;
mod overlay;
mod paths;
mod profile;
mod qemu;
mod reliability;
mod selftest;
mod series;
mod setup;
mod splat;
mod testrun;
mod toolchain;

use anyhow::Result;
use clap::Parser;

fn main() -> Result<()> {
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Setup(args) => setup::run(&args),
        cli::Command::Build(args) => {
            let ws = paths::Workspace::discover()?;
            let jobs = args.target.jobs.unwrap_or_else(toolchain::default_jobs);
            let profile = match (args.kcsan, args.bench) {
                (true, true) => anyhow::bail!("--kcsan and --bench are different kernels"),
                (true, false) => kernel::Profile::Kcsan,
                (false, true) => kernel::Profile::Bench,
                (false, false) => kernel::Profile::Test,
            };
            for variant in args.variants() {
                kernel::build_profile(&ws, args.target.arch, variant, profile, jobs)?;
            }
            Ok(())
        }
        cli::Command::Test(args) => testrun::test(&args),
        cli::Command::Run(args) => testrun::demo(&args),
        cli::Command::Lint(args) => lint::run(&args),
        cli::Command::Selftest(args) => selftest::command(&args),
        cli::Command::Bench(args) => bench::run(&args),
        cli::Command::Profile(args) => profile::run(&args),
        cli::Command::E2e(args) => e2e::command(&args),
        cli::Command::Patch(args) => series::command(&args),
        cli::Command::Diff(args) => diff::run(&args),
        cli::Command::Assertions(args) => assertions::run(&args),
    }
}
