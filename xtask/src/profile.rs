//! `profile`: where the guest instructions of one benchmark case go, per
//! kernel function, C against Rust.
//!
//! Boots each bench kernel twice under QEMU TCG with `-icount` (so that the
//! boots are deterministic) and the `tbprof` plugin (`xtask/tbprof`), which
//! counts how often each translation block ran: once with the `iopf_bench`
//! case requested, once with it skipped. The difference, mapped to the
//! symbols of `vmlinux` and divided by the number of calls of
//! `iommu_report_device_fault()` (the executions of its first block), is
//! what one page request costs in each function, the benchmark's own code
//! included. The table goes to stdout and to
//! `bench/iopf-profile-<arch>-<case>.txt`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::cli::{Arch, ProfileArgs, Variant};
use crate::judge::{self, Machine, Rules, Want};
use crate::kernel::{self, Built, Profile};
use crate::paths::Workspace;
use crate::qemu::Boot;
use crate::toolchain;

const VARIANTS: [Variant; 2] = [Variant::C, Variant::Rust];
/// The function whose calls normalise the counts: one per page request.
const PER: &str = "iommu_report_device_fault";
/// As the bench's instruction-count boot.
const ICOUNT: &[&str] = &["-icount", "shift=0,sleep=off,align=off"];

/// Instructions executed per symbol, executions of its translation blocks, and executions of
/// its first block.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Counts {
    pub insns: HashMap<String, i64>,
    pub blocks: HashMap<String, i64>,
    pub entries: HashMap<String, i64>,
}

/// A sorted symbol table: (address, name) of the text symbols.
pub struct Symbols(Vec<(u64, String)>);

impl Symbols {
    /// Parses `nm -n` output, keeping the text symbols.
    pub fn parse(nm: &str) -> Self {
        let mut syms: Vec<(u64, String)> = nm
            .lines()
            .filter_map(|line| {
                let mut parts = line.split_whitespace();
                let addr = u64::from_str_radix(parts.next()?, 16).ok()?;
                let kind = parts.next()?;
                let name = parts.next()?;
                "tTwW".contains(kind).then(|| (addr, name.to_string()))
            })
            .collect();
        syms.sort();
        Self(syms)
    }

    /// The symbol `addr` falls in, if any.
    fn find(&self, addr: u64) -> Option<&(u64, String)> {
        let i = self.0.partition_point(|(a, _)| *a <= addr);
        i.checked_sub(1).map(|i| &self.0[i])
    }
}

/// Sums a `tbprof` output (`vaddr insns executions` lines) by symbol.
pub fn count(tb: &str, syms: &Symbols) -> Counts {
    let mut counts = Counts::default();
    for line in tb.lines() {
        let mut parts = line.split_whitespace();
        let (Some(vaddr), Some(insns), Some(execs)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let (Ok(vaddr), Ok(insns), Ok(execs)) = (
            u64::from_str_radix(vaddr, 16),
            insns.parse::<i64>(),
            execs.parse::<i64>(),
        ) else {
            continue;
        };
        let Some((start, name)) = syms.find(vaddr) else {
            continue;
        };
        *counts.insns.entry(name.clone()).or_default() += insns * execs;
        *counts.blocks.entry(name.clone()).or_default() += execs;
        if *start == vaddr {
            *counts.entries.entry(name.clone()).or_default() += execs;
        }
    }
    counts
}

/// `a - b`, symbol by symbol.
pub fn subtract(a: &Counts, b: &Counts) -> Counts {
    let diff = |x: &HashMap<String, i64>, y: &HashMap<String, i64>| {
        let mut out = x.clone();
        for (k, v) in y {
            *out.entry(k.clone()).or_default() -= v;
        }
        out
    };
    Counts {
        insns: diff(&a.insns, &b.insns),
        blocks: diff(&a.blocks, &b.blocks),
        entries: diff(&a.entries, &b.entries),
    }
}

/// The side-by-side table: instructions per request of the `top` functions
/// that cost the most in either kernel, and the totals.
pub fn render(case: &str, per_variant: &[(Variant, Counts)], top: usize) -> Result<String> {
    let mut per_request = Vec::new();
    for (variant, counts) in per_variant {
        let calls = counts.entries.get(PER).copied().unwrap_or(0);
        if calls <= 0 {
            bail!("{}: {PER}() never ran in case {case}", variant.name());
        }
        per_request.push((*variant, calls, counts));
    }
    let mut names: Vec<&String> = per_request
        .iter()
        .flat_map(|(_, _, c)| c.insns.keys())
        .collect();
    names.sort();
    names.dedup();
    let cost = |c: &Counts, calls: i64, name: &str| {
        c.insns.get(name).copied().unwrap_or(0) as f64 / calls as f64
    };
    let mut rows: Vec<(String, Vec<f64>)> = names
        .into_iter()
        .map(|n| {
            let values = per_request
                .iter()
                .map(|(_, calls, c)| cost(c, *calls, n))
                .collect();
            (n.clone(), values)
        })
        .filter(|(_, v): &(String, Vec<f64>)| v.iter().any(|x| x.abs() >= 0.5))
        .collect();
    rows.sort_by(|a, b| {
        let key = |r: &(String, Vec<f64>)| r.1.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        key(b).total_cmp(&key(a))
    });

    let mut out = String::new();
    let _ = writeln!(
        out,
        "Guest instructions per page request, iopf_bench case {case} (QEMU TCG -icount, boot without the case subtracted)"
    );
    let _ = write!(out, "  {:<56}", "function");
    for (v, _, _) in &per_request {
        let _ = write!(out, " {:>9}", v.name());
    }
    out.push('\n');
    for (name, values) in rows.iter().take(top) {
        let _ = write!(out, "  {:<56}", short(name));
        for v in values {
            let _ = write!(out, " {v:>9.1}");
        }
        out.push('\n');
    }
    let _ = write!(out, "  {:<56}", "total, all functions");
    for (_, calls, c) in &per_request {
        let total: i64 = c.insns.values().sum();
        let _ = write!(out, " {:>9.1}", total as f64 / *calls as f64);
    }
    out.push('\n');
    // Under TCG, time follows blocks more than instructions: each block pays for its dispatch,
    // and a block reached by a return or an indirect jump, or by a jump to another page, for a
    // lookup of its translation. Function entries count the calls (and jumps to a function's
    // first instruction).
    let sums = |c: &Counts| {
        (
            c.blocks.values().sum::<i64>(),
            c.entries.values().sum::<i64>(),
        )
    };
    for (label, blocks) in [
        ("translation blocks executed", true),
        ("function entries", false),
    ] {
        let _ = write!(out, "  {label:<56}");
        for (_, calls, c) in &per_request {
            let (b, e) = sums(c);
            let total = if blocks { b } else { e };
            let _ = write!(out, " {:>9.1}", total as f64 / *calls as f64);
        }
        out.push('\n');
    }
    let _ = write!(out, "  {:<56}", format!("requests ({PER} calls)"));
    for (_, calls, _) in &per_request {
        let _ = write!(out, " {calls:>9}");
    }
    out.push('\n');

    // Calls into the kernel's C helpers (`rust_helper_*`, the out-of-line wrappers of what C
    // inlines), counted by their first block: each one a call and a return C does not pay.
    let mut helpers: Vec<&String> = per_request
        .iter()
        .flat_map(|(_, _, c)| c.entries.keys())
        .filter(|n| n.starts_with(HELPER))
        .collect();
    helpers.sort();
    helpers.dedup();
    let calls_of = |c: &Counts, calls: i64, name: &str| {
        c.entries.get(name).copied().unwrap_or(0) as f64 / calls as f64
    };
    let _ = writeln!(out, "Calls to C helpers per page request");
    for name in &helpers {
        let values: Vec<f64> = per_request
            .iter()
            .map(|(_, calls, c)| calls_of(c, *calls, name))
            .collect();
        if values.iter().all(|v| v.abs() < 0.05) {
            continue;
        }
        let _ = write!(out, "  {:<56}", name);
        for v in values {
            let _ = write!(out, " {v:>9.2}");
        }
        out.push('\n');
    }
    let _ = write!(out, "  {:<56}", "total helper calls");
    for (_, calls, c) in &per_request {
        let total: f64 = helpers.iter().map(|n| calls_of(c, *calls, n)).sum();
        let _ = write!(out, " {total:>9.2}");
    }
    out.push('\n');
    Ok(out)
}

/// The prefix of the kernel's C helpers for Rust (`rust/helpers/`).
const HELPER: &str = "rust_helper_";

/// A Rust symbol demangled, without its hash; C symbols as they are.
fn short(name: &str) -> String {
    let demangled = format!("{:#}", rustc_demangle::demangle(name));
    if demangled.len() > 56 {
        format!("...{}", &demangled[demangled.len() - 53..])
    } else {
        demangled
    }
}

/// Builds the plugin with the host toolchain and returns its path.
fn build_plugin(ws: &Workspace) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&ws.repo)
        .args(["build", "--quiet", "--release", "-p", "tbprof"])
        .status()
        .context("building the tbprof plugin")?;
    if !status.success() {
        bail!("building the tbprof plugin failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| ws.repo.join("target"));
    Ok(target.join("release/libtbprof.so"))
}

fn boot_counted(
    built: &Built,
    plugin: &Path,
    logs: &Path,
    case: &str,
    requested: bool,
    timeout: u64,
) -> Result<String> {
    let which = if requested { "case" } else { "base" };
    let name = format!(
        "profile-{}-{}-{which}",
        built.arch.kbuild_name(),
        built.variant.name()
    );
    let tb = logs.join(format!("{name}.tb"));
    let _ = fs::remove_file(&tb);
    let cmdline = format!(
        "{}kunit.filter_glob=iopf_bench.{case}",
        if requested { "iopf_bench=1 " } else { "" }
    );
    let plugin_arg = format!("{},out={}", plugin.display(), tb.display());
    let mut extra: Vec<&str> = ICOUNT.to_vec();
    extra.extend(["-plugin", &plugin_arg]);
    eprintln!("==> profile boot: {} {which}", built.variant.name());
    // The case boot must pass the case; the base boot only has to end.
    let wants = if requested {
        vec![Want::case("iopf_bench", case)]
    } else {
        Vec::new()
    };
    let judged = judge::boot(
        &Boot {
            arch: built.arch,
            image: &built.image,
            initrd: None,
            cmdline: &cmdline,
            timeout: Duration::from_secs(timeout),
            log: logs.join(format!("{name}.console.log")),
        },
        Machine::Tcg(&extra),
        &Rules {
            wants,
            ..Rules::default()
        },
    )?;
    if !judged.problems.is_empty() {
        bail!(
            "profile boot {which}: {}; log: {}",
            judged.problems.join("; "),
            judged.console.log.display()
        );
    }
    fs::read_to_string(&tb).with_context(|| format!("reading {}", tb.display()))
}

pub fn run(args: &ProfileArgs) -> Result<()> {
    let ws = Workspace::discover()?;
    let arch = args.target.arch;
    if arch != Arch::X86_64 {
        bail!("profile: x86_64 only for now");
    }
    toolchain::check_qemu(arch)?;
    let jobs = args.target.jobs.unwrap_or_else(toolchain::default_jobs);
    let logs = ws.logs()?;
    let plugin = build_plugin(&ws)?;
    let mut per_variant = Vec::new();
    for variant in VARIANTS {
        let built = kernel::build_profile(&ws, arch, variant, Profile::Bench, jobs)?;
        let vmlinux = ws
            .profile_build_dir(arch, variant, Profile::Bench.suffix())
            .join("vmlinux");
        let nm = Command::new(format!("{}/llvm-nm", toolchain::LLVM_BIN))
            .args(["-n", "--defined-only"])
            .arg(&vmlinux)
            .output()
            .context("running llvm-nm")?;
        if !nm.status.success() {
            bail!("llvm-nm failed on {}'s vmlinux", variant.name());
        }
        let syms = Symbols::parse(&String::from_utf8_lossy(&nm.stdout));
        let case = count(
            &boot_counted(&built, &plugin, &logs, &args.case, true, args.timeout)?,
            &syms,
        );
        let base = count(
            &boot_counted(&built, &plugin, &logs, &args.case, false, args.timeout)?,
            &syms,
        );
        per_variant.push((variant, subtract(&case, &base)));
    }
    let table = render(&args.case, &per_variant, args.top)?;
    print!("{table}");
    let out = args.out.clone().unwrap_or_else(|| ws.repo.join("bench"));
    fs::create_dir_all(&out)?;
    let path = out.join(format!(
        "iopf-profile-{}-{}.txt",
        arch.kbuild_name(),
        args.case
    ));
    fs::write(&path, table)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Counts {
        /// `self` with `name` entered `n` times.
        fn with(mut self, name: &str, n: i64) -> Self {
            self.entries.insert(name.to_string(), n);
            self
        }
    }

    const NM: &str = "\
ffffffff81000000 T _stext
ffffffff81000100 T iommu_report_device_fault
ffffffff81000200 t helper
ffffffff81000300 D some_data
ffffffff81000400 T _RNvMNtCs7ilKoA05s5D_4iopf5groupNtB2_5Group3new
";

    #[test]
    fn counts_by_symbol_and_entries_by_first_block() {
        let syms = Symbols::parse(NM);
        // Two blocks of the report function (the first at its address), one of
        // `helper`, one past the last symbol (counted in it).
        let tb = "ffffffff81000100 5 10\nffffffff81000120 3 4\nffffffff81000210 2 7\nffffffff81000500 1 1\n";
        let c = count(tb, &syms);
        assert_eq!(c.insns[PER], 5 * 10 + 3 * 4);
        assert_eq!(c.entries[PER], 10);
        assert_eq!(c.insns["helper"], 14);
        assert!(!c.entries.contains_key("helper"));
        assert!(!c.insns.contains_key("some_data"));
        assert_eq!(
            c.insns["_RNvMNtCs7ilKoA05s5D_4iopf5groupNtB2_5Group3new"],
            1
        );
    }

    #[test]
    fn table_is_per_request_after_subtracting_the_base() {
        let syms = Symbols::parse(NM);
        let case = count("ffffffff81000100 10 101\nffffffff81000200 4 100\n", &syms);
        let base = count("ffffffff81000100 10 1\n", &syms);
        let d = subtract(&case, &base);
        assert_eq!(d.entries[PER], 100);
        let text = render("x", &[(Variant::C, d.clone()), (Variant::Rust, d)], 10).unwrap();
        let row = |name: &str| {
            text.lines()
                .find(|l| l.trim_start().starts_with(name))
                .unwrap()
                .to_string()
        };
        assert!(row(PER).ends_with("10.0      10.0"), "{text}");
        assert!(row("helper").ends_with("4.0       4.0"), "{text}");
        assert!(row("total").ends_with("14.0      14.0"), "{text}");
        assert!(
            row("translation blocks").ends_with("2.0       2.0"),
            "{text}"
        );
        assert!(row("function entries").ends_with("2.0       2.0"), "{text}");
    }

    #[test]
    fn helper_calls_are_counted_per_request() {
        let nm = format!("{NM}ffffffff81000600 T rust_helper_refcount_inc\n");
        let syms = Symbols::parse(&nm);
        let case = count(
            "ffffffff81000100 10 4\nffffffff81000600 2 8\nffffffff81000610 1 8\n",
            &syms,
        );
        let text = render(
            "x",
            &[
                (Variant::C, Counts::default().with(PER, 4)),
                (Variant::Rust, case),
            ],
            10,
        );
        let text = text.unwrap();
        let row = |name: &str| {
            text.lines()
                .filter(|l| l.trim_start().starts_with(name))
                .last()
                .unwrap()
                .to_string()
        };
        assert!(
            row("rust_helper_refcount_inc").ends_with("0.00      2.00"),
            "{text}"
        );
        assert!(
            row("total helper calls").ends_with("0.00      2.00"),
            "{text}"
        );
    }

    #[test]
    fn no_reports_is_an_error() {
        assert!(render("x", &[(Variant::C, Counts::default())], 5).is_err());
    }

    #[test]
    fn rust_symbols_are_demangled() {
        assert_eq!(
            short("_RNvMNtCs7ilKoA05s5D_4iopf5groupNtB2_5Group3new"),
            "<iopf::group::Group>::new"
        );
        assert_eq!(short("kfree"), "kfree");
    }
}
