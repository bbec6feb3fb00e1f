//! `bench`: the IOPF path of both implementations, side by side.
//!
//! Builds the bench kernels (`bench.config` in place of `debug.config`, in
//! their own build dirs), boots each several times under QEMU TCG with the
//! same flags and `iopf_bench=1`, reads the `# iopf_bench:` lines that the
//! KUnit suite `iopf_bench` (tests/kunit/iopf_bench.c) prints, and reports
//! the median of each measurement over the boots: a table on stdout and in
//! a text file, a CSV, and a PNG of last-page latency against held partials.
//!
//! A bench line is `# iopf_bench: scenario=S [PARAM=V ...] metric=M STAT=V
//! [STAT=V ...]`: the scenario and its parameters identify the measurement,
//! the metric names the quantity, the stats are its values.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use comfy_table::{presets::ASCII_MARKDOWN, CellAlignment};

use crate::cli::{Arch, BenchArgs, Variant};
use crate::judge::{self, Judged, Machine, Rules, Want};
use crate::kernel::{self, Built, Profile};
use crate::ktap;
use crate::observe_cost;
use crate::paths::Workspace;
use crate::qemu::Boot;
use crate::toolchain;

/// The suite, which marks its lines `# iopf_bench: `, and the command line
/// that makes it run (and only it).
const SUITE: &str = "iopf_bench";
const CMDLINE: &str = "iopf_bench=1 kunit.filter_glob=iopf_bench";
/// QEMU arguments of the instruction-count boots: with `shift=0` the guest
/// clock advances 1 ns per instruction, so ns read as instructions.
const ICOUNT: &[&str] = &["-icount", "shift=0,sleep=off,align=off"];
const VARIANTS: [Variant; 2] = [Variant::C, Variant::Rust];
/// A TrueType font for the plot's text, if the machine has one.
const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// One bench line.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub scenario: String,
    /// Parameters, in the order printed.
    pub params: Vec<(String, String)>,
    pub metric: String,
    /// Stats, in the order printed.
    pub values: Vec<(String, String)>,
}

impl Record {
    /// The parameters as printed, e.g. `layout=pcie n=512`.
    pub fn params_text(&self) -> String {
        let p: Vec<String> = self
            .params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        p.join(" ")
    }

    pub fn value(&self, stat: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(k, _)| k == stat)
            .map(|(_, v)| v.as_str())
    }

    pub fn number(&self, stat: &str) -> Option<f64> {
        self.value(stat)?.parse().ok()
    }
}

/// Parses one console line; `None` if it is not a well-formed bench line.
/// Anything before the marker (printk prefix, KTAP indentation) is ignored.
pub fn parse_line(line: &str) -> Option<Record> {
    let fields = ktap::Fields::parse(ktap::marked(line, SUITE)?);
    if !fields.strict() {
        return None;
    }
    let mut scenario = None;
    let mut metric = None;
    let mut params = Vec::new();
    let mut values = Vec::new();
    for (k, v) in fields.pairs {
        match (k, &scenario, &metric) {
            ("scenario", None, None) => scenario = Some(v.to_string()),
            ("metric", Some(_), None) => metric = Some(v.to_string()),
            ("scenario" | "metric", _, _) => return None,
            (_, Some(_), None) => params.push((k.to_string(), v.to_string())),
            (_, Some(_), Some(_)) => values.push((k.to_string(), v.to_string())),
            _ => return None,
        }
    }
    Some(Record {
        scenario: scenario?,
        params,
        metric: metric?,
        values,
    })
}

/// Every bench line of a console log, in order.
pub fn parse_console(text: &str) -> Vec<Record> {
    text.lines().filter_map(parse_line).collect()
}

/// Stats shown for a metric; the CSV has the same.
pub(crate) fn shown_stats(metric: &str) -> &'static [&'static str] {
    match metric {
        "faults_per_s" | "held_max" => &["value"],
        "allocs" => &["allocs", "frees", "alloc_bytes"],
        m if m.ends_with("_ns") => &["p50", "p99"],
        _ => &[],
    }
}

/// What the project aims at for a row, as a bound on Rust/C.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Goal {
    AtLeast(f64),
    AtMost(f64),
}

/// How far past its bound a ratio may be and still meet it: TCG's noise.
const TOLERANCE: f64 = 0.02;

impl Goal {
    fn met(self, ratio: f64) -> bool {
        match self {
            Goal::AtLeast(b) => ratio >= b * (1.0 - TOLERANCE),
            Goal::AtMost(b) => ratio <= b * (1.0 + TOLERANCE),
        }
    }

    fn text(self) -> String {
        match self {
            Goal::AtLeast(b) => format!(">={b}"),
            Goal::AtMost(b) => format!("<={b}"),
        }
    }
}

/// The targets, each met within [`TOLERANCE`]: throughput at least C's
/// everywhere; on the single-threaded rows (all but `concurrent`), p50 and
/// p99 at most C's, for the whole path, a last page and holding a partial
/// (`partial_first_ns`, the one-time costs of a device's first partials, has
/// none); on the concurrent rows, p99 at most C's; 10x faster last-page
/// requests with 4096 partials held; and no more memory per held partial
/// than C.
pub fn goal(row: &Row) -> Option<Goal> {
    let n4096 = row.scenario == "held_partials" && row.params.contains("n=4096");
    let single = row.scenario != "concurrent";
    match (row.metric.as_str(), row.stat.as_str()) {
        ("faults_per_s", "value") => Some(Goal::AtLeast(1.0)),
        ("last_page_ns", "p50" | "p99") if n4096 => Some(Goal::AtMost(0.1)),
        ("latency_ns" | "last_page_ns" | "partial_ns", "p50") if single => Some(Goal::AtMost(1.0)),
        ("latency_ns" | "last_page_ns" | "partial_ns", "p99") => Some(Goal::AtMost(1.0)),
        ("allocs", "alloc_bytes") if row.params.contains("what=held_partial") => {
            Some(Goal::AtMost(1.0))
        }
        _ => None,
    }
}

/// One measured quantity: a row of the table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Row {
    pub scenario: String,
    pub params: String,
    pub metric: String,
    pub stat: String,
}

/// Each row's values per variant, one per boot, rows in first-seen order.
#[derive(Debug, Default)]
pub struct Table {
    pub rows: Vec<Row>,
    /// `values[row][variant index]`: the values of the boots.
    pub values: Vec<[Vec<f64>; 2]>,
}

impl Table {
    /// Adds the records of one boot of `variant`.
    pub fn add(&mut self, variant: Variant, records: &[Record]) {
        let vi = variant_index(variant);
        let mut index: HashMap<Row, usize> = self
            .rows
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, r)| (r, i))
            .collect();
        for rec in records {
            for stat in shown_stats(&rec.metric) {
                let Some(v) = rec.number(stat) else { continue };
                let row = Row {
                    scenario: rec.scenario.clone(),
                    params: rec.params_text(),
                    metric: rec.metric.clone(),
                    stat: stat.to_string(),
                };
                let i = *index.entry(row.clone()).or_insert_with(|| {
                    self.rows.push(row);
                    self.values.push([Vec::new(), Vec::new()]);
                    self.rows.len() - 1
                });
                self.values[i][vi].push(v);
            }
        }
    }

    /// Median of a row for a variant.
    pub fn median(&self, row: usize, variant: Variant) -> Option<f64> {
        median(&self.values[row][variant_index(variant)])
    }

    /// The row whose fields are these, if measured.
    pub fn find(&self, scenario: &str, params: &str, metric: &str, stat: &str) -> Option<usize> {
        self.rows.iter().position(|r| {
            r.scenario == scenario && r.params == params && r.metric == metric && r.stat == stat
        })
    }
}

fn variant_index(variant: Variant) -> usize {
    match variant {
        Variant::C => 0,
        Variant::Rust => 1,
    }
}

pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    })
}

fn number(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v.fract() == 0.0 || v.abs() >= 1000.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.3}"),
    }
}

/// A row's medians, ratio, goal and verdict.
struct Line {
    c: Option<f64>,
    rust: Option<f64>,
    ratio: Option<f64>,
    goal: Option<Goal>,
    verdict: &'static str,
}

fn line(table: &Table, i: usize) -> Line {
    let c = table.median(i, Variant::C);
    let rust = table.median(i, Variant::Rust);
    let ratio = match (c, rust) {
        (Some(c), Some(r)) if c != 0.0 => Some(r / c),
        (Some(c), Some(r)) if c == r => Some(1.0),
        _ => None,
    };
    let goal = goal(&table.rows[i]);
    let verdict = match (goal, ratio) {
        (Some(g), Some(r)) if g.met(r) => "ok",
        (Some(_), Some(_)) => "MISS",
        _ => "",
    };
    Line {
        c,
        rust,
        ratio,
        goal,
        verdict,
    }
}

/// The table as text: one row per measurement, each scenario's rows
/// together, the numbers right-aligned.
pub fn render(table: &Table, title: &str) -> String {
    let mut t = comfy_table::Table::new();
    t.load_style(ASCII_MARKDOWN);
    t.set_header([
        "scenario", "params", "metric", "C", "Rust", "Rust/C", "target",
    ]);
    for (i, row) in table.rows.iter().enumerate() {
        let l = line(table, i);
        let target = match l.goal {
            Some(g) => format!("{} {}", g.text(), l.verdict),
            None => String::new(),
        };
        t.add_row([
            row.scenario.clone(),
            row.params.clone(),
            format!("{} {}", row.metric, row.stat),
            number(l.c),
            number(l.rust),
            l.ratio.map_or("-".into(), |r| format!("{r:.3}")),
            target,
        ]);
    }
    for column in 3..=5 {
        if let Some(c) = t.column_mut(column) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    format!("{title}\n{t}\n")
}

/// The table as CSV: one row per measurement, medians, and each boot's
/// value (`;`-separated).
pub fn csv(table: &Table) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "scenario",
        "params",
        "metric",
        "stat",
        "c",
        "rust",
        "rust_over_c",
        "target",
        "verdict",
        "c_runs",
        "rust_runs",
    ])?;
    for (i, row) in table.rows.iter().enumerate() {
        let l = line(table, i);
        let runs = |v: &[f64]| {
            v.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(";")
        };
        w.write_record([
            row.scenario.clone(),
            row.params.clone(),
            row.metric.clone(),
            row.stat.clone(),
            l.c.map_or(String::new(), |v| v.to_string()),
            l.rust.map_or(String::new(), |v| v.to_string()),
            l.ratio.map_or(String::new(), |r| format!("{r:.4}")),
            l.goal.map_or(String::new(), Goal::text),
            l.verdict.to_string(),
            runs(&table.values[i][0]),
            runs(&table.values[i][1]),
        ])?;
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}

/// What a bench boot must show: no kernel report, and the suite ran with
/// every case passed (a skipped case means the command line did not reach
/// the kernel).
fn rules() -> Rules {
    Rules {
        wants: vec![Want::AllPassed(SUITE.into())],
        ..Rules::default()
    }
}

/// Checks one judged boot, and that the kernel is the variant it should be.
fn check(judged: &Judged, variant: Variant, records: &[Record]) -> Result<()> {
    if !judged.problems.is_empty() {
        bail!("{}", judged.problems.join("; "));
    }
    let built = records
        .iter()
        .find(|r| r.scenario == "meta")
        .and_then(|r| r.value("impl"))
        .unwrap_or("unknown");
    if built != variant.name() {
        bail!(
            "expected the {} implementation, the kernel says {built}",
            variant.name()
        );
    }
    Ok(())
}

/// Judges a kept console log.
fn judge_log(text: &str, log: &Path) -> Judged {
    judge::judge(judge::console(text, false, log), 0, &rules())
}

/// Console log of boot `run` (or of the icount boot) of a variant.
/// The console log of one boot; `tag` tells the Rust kernel's flavour.
fn log_path(logs: &Path, arch: Arch, tag: &str, variant: Variant, run: Option<usize>) -> PathBuf {
    let which = run.map_or("icount".to_string(), |r| format!("run{}", r + 1));
    logs.join(format!(
        "bench-{}{tag}-{}-{which}.console.log",
        arch.kbuild_name(),
        variant.name()
    ))
}

/// The kernel a variant is benchmarked on: C is the same either way.
fn bench_profile(variant: Variant, inline_helpers: bool) -> Profile {
    match (variant, inline_helpers) {
        (Variant::Rust, true) => Profile::BenchInlineHelpers,
        _ => Profile::Bench,
    }
}

/// Boots `built` with `cmdline` and the QEMU arguments `extra`, checks the
/// console, and returns its bench lines.
pub(crate) fn boot_one(
    built: &Built,
    cmdline: &str,
    log: PathBuf,
    timeout: u64,
    extra: &[&str],
) -> Result<Vec<Record>> {
    let judged = judge::boot(
        &Boot {
            arch: built.arch,
            image: &built.image,
            initrd: None,
            cmdline,
            timeout: Duration::from_secs(timeout),
            log,
        },
        Machine::Tcg(extra),
        &rules(),
    )?;
    let console = &judged.console;
    let records = parse_console(&console.text);
    check(&judged, built.variant, &records)
        .with_context(|| format!("console log: {}", console.log.display()))?;
    eprintln!(
        "==> {}: {} measurements in {:.0}s",
        console.log.display(),
        records.len(),
        console.took.as_secs_f64()
    );
    Ok(records)
}

/// Reads back the kept logs: (timed runs, icount run) per variant.
fn read_logs(logs: &Path, arch: Arch, tag: &str) -> Result<(Table, Table, usize)> {
    let mut timed = Table::default();
    let mut icount = Table::default();
    let mut runs = 0;
    for variant in VARIANTS {
        let mut n = 0;
        while let Ok(text) = fs::read_to_string(log_path(logs, arch, tag, variant, Some(n))) {
            let log = log_path(logs, arch, tag, variant, Some(n));
            let records = parse_console(&text);
            check(&judge_log(&text, &log), variant, &records)
                .with_context(|| log.display().to_string())?;
            timed.add(variant, &records);
            n += 1;
        }
        if n == 0 {
            bail!(
                "no bench console log of {} in {}",
                variant.name(),
                logs.display()
            );
        }
        runs = if runs == 0 { n } else { runs.min(n) };
        if let Ok(text) = fs::read_to_string(log_path(logs, arch, tag, variant, None)) {
            icount.add(variant, &parse_console(&text));
        }
    }
    Ok((timed, icount, runs))
}

/// First line of a command's output, or "unknown".
fn first_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

fn host_cpu() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

pub fn run(args: &BenchArgs) -> Result<()> {
    let ws = Workspace::discover()?;
    let arch = args.target.arch;
    let logs = ws.logs()?;
    let out = args.out.clone().unwrap_or_else(|| ws.repo.join("bench"));
    let tag = if args.inline_helpers {
        "-inline-helpers"
    } else {
        ""
    };
    if !args.from_logs {
        if args.runs == 0 {
            bail!("--runs must be at least 1");
        }
        toolchain::check_qemu(arch)?;
        let jobs = args.target.jobs.unwrap_or_else(toolchain::default_jobs);
        let mut built = Vec::new();
        for variant in VARIANTS {
            built.push(kernel::build_profile(
                &ws,
                arch,
                variant,
                bench_profile(variant, args.inline_helpers),
                jobs,
            )?);
        }
        // Logs of an earlier run must not mix with this one's.
        for variant in VARIANTS {
            for run in (0..)
                .map(Some)
                .take_while(|r| log_path(&logs, arch, tag, variant, *r).exists())
            {
                fs::remove_file(log_path(&logs, arch, tag, variant, run))?;
            }
            let _ = fs::remove_file(log_path(&logs, arch, tag, variant, None));
        }
        // Variants alternate, so that slow phases of the host hit both.
        for run in 0..args.runs {
            for b in &built {
                eprintln!(
                    "==> bench boot {}/{} of {}",
                    run + 1,
                    args.runs,
                    b.variant.name()
                );
                boot_one(
                    b,
                    CMDLINE,
                    log_path(&logs, arch, tag, b.variant, Some(run)),
                    args.timeout,
                    &[],
                )?;
            }
        }
        if !args.no_icount {
            for b in &built {
                eprintln!("==> icount boot of {}", b.variant.name());
                boot_one(
                    b,
                    CMDLINE,
                    log_path(&logs, arch, tag, b.variant, None),
                    args.timeout,
                    ICOUNT,
                )?;
            }
        }
    }

    // The observability rows: the cost of the Rust core's tracepoints and
    // debugfs files, on the Rust kernel that --inline-helpers does not change.
    let observe = !args.no_observability && !args.inline_helpers;
    if observe && !args.from_logs {
        let jobs = args.target.jobs.unwrap_or_else(toolchain::default_jobs);
        let built = observe_cost::build(&ws, arch, jobs)?;
        observe_cost::remove_logs(&logs, arch)?;
        for run in 0..args.runs {
            let tag = format!("run{}", run + 1);
            observe_cost::boot_each(&built, &logs, &tag, args.timeout, &[])?;
        }
        if !args.no_icount {
            observe_cost::boot_each(&built, &logs, "icount", args.timeout, ICOUNT)?;
        }
    }

    let (timed, icount, runs) = read_logs(&logs, arch, tag)?;
    let (qemu_bin, _) = toolchain::qemu_binary(arch);
    let machine = format!(
        "host: {} ({} CPUs), measured {}; {}",
        host_cpu(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        // When the first boot's log was written, also with --from-logs.
        first_line(
            "date",
            &[
                "-u",
                "+%Y-%m-%d %H:%M UTC",
                "-r",
                &log_path(&logs, arch, tag, Variant::C, Some(0)).to_string_lossy(),
            ]
        ),
        first_line(qemu_bin, &["--version"]),
    );
    let mut text = render(
        &timed,
        &format!(
            "IOPF benchmark, {}{}: QEMU TCG -smp 2 -m 2048, median of {runs} boot(s) per kernel",
            arch.kbuild_name(),
            if args.inline_helpers {
                ", Rust with CONFIG_RUST_INLINE_HELPERS"
            } else {
                ""
            }
        ),
    );
    let _ = writeln!(text, "  {machine}");
    let _ = writeln!(
        text,
        "  TCG emulates the guest: times are not those of hardware; compare C with Rust only."
    );
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let stem = format!("iopf-bench-{}{tag}", arch.kbuild_name());
    fs::write(out.join(format!("{stem}.csv")), csv(&timed)?)?;
    if !icount.rows.is_empty() {
        let _ = writeln!(
            text,
            "\n{}",
            render(
                &icount,
                "Same, one boot with -icount shift=0: ns columns are guest instructions \
                 (faults_per_s: per 10^9 instructions)"
            )
        );
        fs::write(out.join(format!("{stem}-icount.csv")), csv(&icount)?)?;
    }
    if observe {
        let (costs, costs_icount) = observe_cost::read_logs(&logs, arch)?;
        let observe_stem = format!("{stem}-observability");
        let mut observed = costs.render(
            "\nThe Rust core's tracepoints and debugfs files: fixed_cost on four flavours of the \
             Rust kernel, median of each flavour's boots (noise: the spread of default's boots)",
        );
        fs::write(out.join(format!("{observe_stem}.csv")), costs.csv()?)?;
        // With --no-icount there is no -icount boot: no empty table.
        if !costs_icount.is_empty() {
            observed.push_str(&costs_icount.render(
                "\nSame, one boot each with -icount shift=0 (ns read as guest instructions)",
            ));
            fs::write(
                out.join(format!("{observe_stem}-icount.csv")),
                costs_icount.csv()?,
            )?;
        }
        text.push_str(&observed);
    }
    fs::write(out.join(format!("{stem}.txt")), &text)?;
    let png = out.join(format!("{stem}-held-partials.png"));
    let labelled = plot::held_partials(&timed, &png, "ns (median over boots)")?;
    if !icount.rows.is_empty() {
        let png = out.join(format!("{stem}-held-partials-icount.png"));
        plot::held_partials(&icount, &png, "guest instructions (-icount)")?;
    }
    print!("{text}");
    println!(
        "\nwrote {}/{stem}.{{txt,csv}}{} and {}{}",
        out.display(),
        if icount.rows.is_empty() {
            ""
        } else {
            ", the -icount CSV and PNG"
        },
        png.display(),
        if labelled {
            ""
        } else {
            " (no font found: drawn without text)"
        }
    );
    Ok(())
}

/// The plot: last-page latency against held partials, for both variants.
mod plot {
    use std::path::Path;

    use anyhow::{anyhow, Result};
    use plotters::prelude::*;

    use super::{Table, FONTS};
    use crate::cli::Variant;

    const HELD: [u32; 4] = [0, 64, 512, 4096];
    const LAYOUTS: [&str; 2] = ["pcie", "distinct"];

    /// Registers a font for the plot's text; false if the machine has none.
    fn font() -> bool {
        static FONT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *FONT.get_or_init(|| {
            FONTS.iter().any(|path| {
                std::fs::read(path).ok().is_some_and(|bytes| {
                    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
                })
            })
        })
    }

    /// (x index, median ns) of a layout's last-page stat for a variant.
    fn series(table: &Table, layout: &str, stat: &str, variant: Variant) -> Vec<(f64, f64)> {
        HELD.iter()
            .enumerate()
            .filter_map(|(i, n)| {
                let row = table.find(
                    "held_partials",
                    &format!("layout={layout} n={n}"),
                    "last_page_ns",
                    stat,
                )?;
                Some((i as f64, table.median(row, variant)?))
            })
            .collect()
    }

    /// Draws the PNG; returns whether it has text.
    pub fn held_partials(table: &Table, path: &Path, unit: &str) -> Result<bool> {
        let text = font();
        let root = BitMapBackend::new(path, (1200, 520)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e:?}"))?;
        let panels = root.split_evenly((1, 2));
        let all: Vec<f64> = LAYOUTS
            .iter()
            .flat_map(|l| {
                ["p50", "p99"].into_iter().flat_map(move |s| {
                    [Variant::C, Variant::Rust]
                        .into_iter()
                        .map(move |v| (l, s, v))
                })
            })
            .flat_map(|(l, s, v)| series(table, l, s, v))
            .map(|(_, y)| y)
            .collect();
        let lo = all.iter().copied().fold(f64::INFINITY, f64::min).max(1.0);
        let hi = all.iter().copied().fold(0.0, f64::max).max(lo * 10.0);
        let (lo, hi) = (lo / 1.5, hi * 1.5);
        let c_color = RGBColor(31, 119, 180);
        let rust_color = RGBColor(214, 39, 40);
        for (panel, layout) in panels.iter().zip(LAYOUTS) {
            let mut builder = ChartBuilder::on(panel);
            builder.margin(12);
            if text {
                builder
                    .caption(
                        format!("last-page latency vs held partials (layout={layout})"),
                        ("sans-serif", 20),
                    )
                    .x_label_area_size(40)
                    .y_label_area_size(70);
            }
            let mut chart = builder
                .build_cartesian_2d(-0.2f64..3.2f64, (lo..hi).log_scale())
                .map_err(|e| anyhow!("{e:?}"))?;
            let mut mesh = chart.configure_mesh();
            mesh.disable_x_mesh().light_line_style(WHITE).y_labels(8);
            if text {
                mesh.x_desc("partials of other groups held on the device (*: Rust holds <= 2048)")
                    .y_desc(unit)
                    .x_labels(4)
                    .x_label_formatter(&|x| {
                        let i = x.round();
                        match HELD.get(i as usize) {
                            _ if (x - i).abs() > 0.01 || i < 0.0 => String::new(),
                            Some(4096) => "4096*".into(),
                            Some(n) => n.to_string(),
                            None => String::new(),
                        }
                    })
                    .y_label_formatter(&|y| format!("{y:.0}"))
                    .label_style(("sans-serif", 14));
            } else {
                mesh.x_labels(0).y_labels(0);
            }
            mesh.draw().map_err(|e| anyhow!("{e:?}"))?;
            for (variant, color, name) in [
                (Variant::C, c_color, "C"),
                (Variant::Rust, rust_color, "Rust"),
            ] {
                for (stat, width) in [("p50", 3), ("p99", 1)] {
                    let points = series(table, layout, stat, variant);
                    let style = color.stroke_width(width);
                    let drawn = chart
                        .draw_series(LineSeries::new(points.clone(), style))
                        .map_err(|e| anyhow!("{e:?}"))?;
                    if text {
                        drawn.label(format!("{name} {stat}")).legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 20, y)], style)
                        });
                    }
                    chart
                        .draw_series(
                            points
                                .iter()
                                .map(|p| Circle::new(*p, width + 2, color.filled())),
                        )
                        .map_err(|e| anyhow!("{e:?}"))?;
                }
            }
            if text {
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::UpperLeft)
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .label_font(("sans-serif", 14))
                    .draw()
                    .map_err(|e| anyhow!("{e:?}"))?;
            }
        }
        root.present().map_err(|e| anyhow!("{e:?}"))?;
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
[    1.0] random kernel line
    # iopf_bench: scenario=meta metric=build impl=rust max_partial=2048 tracepoints=1
    # iopf_bench: scenario=fixed_cost metric=faults_per_s value=1000
    # iopf_bench: scenario=fixed_cost metric=latency_ns samples=10 p50=500 p99=900 mean=550 min=1 max=2
    # iopf_bench: scenario=held_partials layout=pcie n=4096 metric=last_page_ns samples=5 p50=100 p99=200
    # iopf_bench: scenario=memory what=held_partial layout=distinct n=1024 metric=allocs per=partial allocs=3.000 frees=0.000 alloc_bytes=192.000 freed_bytes=0.000
    # fixed_cost: unrelated diagnostic
";

    #[test]
    fn parses_a_line_with_params_and_stats() {
        let r = parse_line(
            "    # iopf_bench: scenario=held_partials layout=pcie n=512 metric=last_page_ns samples=512 p50=1200 p99=3400",
        )
        .unwrap();
        assert_eq!(r.scenario, "held_partials");
        assert_eq!(r.params_text(), "layout=pcie n=512");
        assert_eq!(r.metric, "last_page_ns");
        assert_eq!(r.number("p50"), Some(1200.0));
        assert_eq!(r.number("p99"), Some(3400.0));
        assert_eq!(r.number("mean"), None);
    }

    #[test]
    fn ignores_the_printk_prefix_and_reads_fractions() {
        let r = parse_line(
            "[   12.345678] # iopf_bench: scenario=fixed_cost metric=allocs per=fault allocs=1.000 frees=1.500",
        )
        .unwrap();
        assert!(r.params.is_empty());
        assert_eq!(r.value("per"), Some("fault"));
        assert_eq!(r.number("frees"), Some(1.5));
    }

    #[test]
    fn rejects_malformed_lines() {
        for bad in [
            "# fixed_cost: scenario=x metric=y value=1",
            "# iopf_bench: metric=y value=1",
            "# iopf_bench: scenario=x value=1",
            "# iopf_bench: scenario=x metric=y value",
            "# iopf_bench: scenario=x metric=y value=",
            "# iopf_bench: n=1 scenario=x metric=y value=1",
            "# iopf_bench: scenario=x metric=y metric=z value=1",
        ] {
            assert_eq!(parse_line(bad), None, "{bad}");
        }
    }

    #[test]
    fn parses_every_bench_line_of_a_console() {
        let records = parse_console(LOG);
        assert_eq!(records.len(), 5);
        assert_eq!(records[0].scenario, "meta");
        assert_eq!(records[0].value("impl"), Some("rust"));
        assert_eq!(
            records[4].params_text(),
            "what=held_partial layout=distinct n=1024"
        );
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    fn table() -> Table {
        let c = parse_console(&LOG.replace("impl=rust", "impl=c"));
        let rust_fast = LOG
            .replace("value=1000", "value=1500")
            .replace("p50=100 ", "p50=5 ");
        let mut t = Table::default();
        t.add(Variant::C, &c);
        t.add(Variant::C, &c);
        t.add(Variant::Rust, &parse_console(&rust_fast));
        t.add(Variant::Rust, &parse_console(LOG));
        t
    }

    #[test]
    fn table_keeps_order_and_takes_medians() {
        let t = table();
        let names: Vec<String> = t
            .rows
            .iter()
            .map(|r| format!("{} {}", r.metric, r.stat))
            .collect();
        assert_eq!(
            names,
            [
                "faults_per_s value",
                "latency_ns p50",
                "latency_ns p99",
                "last_page_ns p50",
                "last_page_ns p99",
                "allocs allocs",
                "allocs frees",
                "allocs alloc_bytes",
            ]
        );
        let rate = t.find("fixed_cost", "", "faults_per_s", "value").unwrap();
        assert_eq!(t.values[rate][0], [1000.0, 1000.0]);
        assert_eq!(t.median(rate, Variant::Rust), Some(1250.0));
    }

    /// The cells of the text table's row whose metric column is `metric`.
    fn cells(text: &str, metric: &str) -> Vec<String> {
        text.lines()
            .map(|l| {
                l.trim_matches('|')
                    .split('|')
                    .map(|c| c.trim().to_string())
                    .collect::<Vec<_>>()
            })
            .find(|c| c.len() == 7 && c[2] == metric)
            .unwrap_or_else(|| panic!("no row {metric} in\n{text}"))
    }

    #[test]
    fn single_threaded_rows_have_p50_goals_within_the_tolerance() {
        let row = |scenario: &str, params: &str, metric: &str, stat: &str| Row {
            scenario: scenario.into(),
            params: params.into(),
            metric: metric.into(),
            stat: stat.into(),
        };
        let partial = goal(&row(
            "held_partials",
            "layout=pcie n=64",
            "partial_ns",
            "p50",
        ));
        assert_eq!(partial, Some(Goal::AtMost(1.0)));
        assert!(partial.unwrap().met(1.019) && !partial.unwrap().met(1.021));
        let rate = goal(&row("group_size", "k=4 groups=8", "faults_per_s", "value")).unwrap();
        assert!(rate.met(0.981) && !rate.met(0.979));
        let first = row(
            "held_partials",
            "layout=pcie n=64",
            "partial_first_ns",
            "p99",
        );
        assert_eq!(goal(&first), None);
        let conc = "devs=separate threads=2";
        assert_eq!(goal(&row("concurrent", conc, "latency_ns", "p50")), None);
        assert!(goal(&row("concurrent", conc, "latency_ns", "p99")).is_some());
    }

    #[test]
    fn goals_and_verdicts() {
        let t = table();
        let text = render(&t, "title");
        assert!(text.starts_with("title\n"), "{text}");
        let header = cells(&text, "metric");
        assert_eq!(
            header,
            ["scenario", "params", "metric", "C", "Rust", "Rust/C", "target"]
        );
        assert_eq!(cells(&text, "faults_per_s value")[6], ">=1 ok", "{text}");
        assert_eq!(
            cells(&text, "faults_per_s value")[3..6],
            ["1000", "1250", "1.250"]
        );
        // Last-page p50 at 4096 held: (5+100)/2 vs 100 is not 10x.
        let last = cells(&text, "last_page_ns p50");
        assert_eq!(last[6], "<=0.1 MISS", "{text}");
        assert_eq!(last[1], "layout=pcie n=4096");
        assert_eq!(cells(&text, "allocs alloc_bytes")[6], "<=1 ok", "{text}");
        assert_eq!(cells(&text, "latency_ns p50")[5], "1.000", "{text}");
        assert_eq!(cells(&text, "latency_ns p50")[6], "<=1 ok", "{text}");
        // One line per row, plus the title, the header and its rule.
        assert_eq!(text.lines().count(), 3 + t.rows.len(), "{text}");
    }

    #[test]
    fn csv_has_a_header_and_one_line_per_row() {
        let t = table();
        let csv = csv(&t).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 1 + t.rows.len());
        assert_eq!(
            lines[0],
            "scenario,params,metric,stat,c,rust,rust_over_c,target,verdict,c_runs,rust_runs"
        );
        assert!(lines.iter().all(|l| l.split(',').count() == 11));
        assert!(
            lines.contains(
                &"fixed_cost,,faults_per_s,value,1000,1250,1.2500,>=1,ok,1000;1000,1500;1000"
            ),
            "{csv}"
        );
        // Read back by a CSV reader, the parameters keep their spaces.
        let mut r = csv::Reader::from_reader(csv.as_bytes());
        let params: Vec<String> = r.records().map(|rec| rec.unwrap()[1].to_string()).collect();
        assert!(params.contains(&"what=held_partial layout=distinct n=1024".to_string()));
    }

    #[test]
    fn check_wants_the_suite_passed_and_the_right_kernel() {
        let ok =
            "KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: iopf_bench\n    1..1\n    \
                  # iopf_bench: scenario=meta metric=build impl=c\n    ok 1 iopf_bench_fixed_cost\n\
                  ok 1 iopf_bench\n";
        let records = parse_console(ok);
        let judged = |text: &str, timed_out: bool| {
            judge::judge(judge::console(text, timed_out, Path::new("l")), 1, &rules())
        };
        assert!(check(&judged(ok, false), Variant::C, &records).is_ok());
        assert!(check(&judged(ok, false), Variant::Rust, &records).is_err());
        assert!(check(&judged(ok, true), Variant::C, &records).is_err());
        let skipped = ok.replace(
            "ok 1 iopf_bench_fixed_cost",
            "ok 1 iopf_bench_fixed_cost # SKIP not requested",
        );
        assert!(check(&judged(&skipped, false), Variant::C, &records).is_err());
        let splat = format!("{ok}[ 3.0] BUG: unable to handle page fault\n");
        assert!(check(&judged(&splat, false), Variant::C, &records).is_err());
        assert!(check(&judged("", false), Variant::C, &records).is_err());
    }

    #[test]
    fn plot_draws_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.png");
        plot::held_partials(&table(), &path, "ns").unwrap();
        let bytes = fs::read(&path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
    }
}
