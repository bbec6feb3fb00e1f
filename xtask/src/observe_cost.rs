//! What the Rust core's tracepoints and debugfs files cost, in
//! `cargo xtask bench`: the `fixed_cost` case of `iopf_bench` (single-page
//! groups answered inline) on four flavours of the Rust bench kernel, booted
//! in turn, `runs` times each, and once each under `-icount`:
//!
//! - `default`: the bench kernel as configured, with its tracepoints
//!   compiled in and disabled, and its debugfs files;
//! - `traced`: the same kernel, booted with every `iommu:iopf_*` event on;
//! - `no-debugfs`: `CONFIG_IOMMU_IOPF_RUST_DEBUGFS=n`;
//! - `no-tracepoints`: no tracing in the kernel at all (`CONFIG_FTRACE=n`),
//!   so no tracepoint is compiled in.
//!
//! Each flavour's median is compared with `default`'s, and the run-to-run
//! noise of `default` is its boots' spread, `(max - min) / median`.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use comfy_table::{presets::ASCII_MARKDOWN, Table};

use crate::bench::{self, Record};
use crate::cli::{Arch, Variant};
use crate::kernel::{self, Built, Profile};
use crate::observe::EVENTS;
use crate::paths::Workspace;

/// The case measured, as a KUnit filter (with the suite's switch).
const CMDLINE: &str = "iopf_bench=1 kunit.filter_glob=iopf_bench.iopf_bench_fixed_cost";

/// A flavour of the Rust bench kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flavour {
    pub name: &'static str,
    pub profile: Profile,
    /// Whether it boots with every `iommu:iopf_*` event enabled.
    pub traced: bool,
}

pub const FLAVOURS: [Flavour; 4] = [
    Flavour {
        name: "default",
        profile: Profile::Bench,
        traced: false,
    },
    Flavour {
        name: "traced",
        profile: Profile::Bench,
        traced: true,
    },
    Flavour {
        name: "no-debugfs",
        profile: Profile::BenchNoDebugfs,
        traced: false,
    },
    Flavour {
        name: "no-tracepoints",
        profile: Profile::BenchNoTracepoints,
        traced: false,
    },
];

impl Flavour {
    /// The boot arguments.
    pub fn cmdline(self) -> String {
        if !self.traced {
            return CMDLINE.to_string();
        }
        let events: Vec<String> = EVENTS.iter().map(|e| format!("iommu:{e}")).collect();
        format!("{CMDLINE} trace_event={}", events.join(","))
    }

    /// Whether the kernel's build line says what the flavour needs.
    fn check(self, records: &[Record]) -> Result<()> {
        let meta = records.iter().find(|r| r.scenario == "meta");
        let tracepoints = meta.and_then(|r| r.value("tracepoints"));
        let want = if self.profile == Profile::BenchNoTracepoints {
            "0"
        } else {
            "1"
        };
        if tracepoints != Some(want) {
            bail!(
                "the {} kernel says tracepoints={tracepoints:?}, expected {want}",
                self.name
            );
        }
        Ok(())
    }
}

/// The rows measured: the fixed-cost throughput and latency.
fn rows(records: &[Record]) -> Vec<(String, f64)> {
    records
        .iter()
        .filter(|r| r.scenario == "fixed_cost" && r.metric != "allocs")
        .flat_map(|r| {
            bench::shown_stats(&r.metric)
                .iter()
                .filter_map(move |s| Some((format!("{} {s}", r.metric), r.number(s)?)))
        })
        .collect()
}

/// Each row's values per flavour, one per boot.
#[derive(Debug, Default)]
pub struct Costs {
    /// `values[row][flavour]`, rows in first-seen order.
    values: Vec<(String, [Vec<f64>; FLAVOURS.len()])>,
}

impl Costs {
    pub fn add(&mut self, flavour: usize, records: &[Record]) {
        for (row, v) in rows(records) {
            let i = match self.values.iter().position(|(r, _)| *r == row) {
                Some(i) => i,
                None => {
                    self.values.push((row, Default::default()));
                    self.values.len() - 1
                }
            };
            self.values[i].1[flavour].push(v);
        }
    }

    /// Whether no boot measured anything.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `(row, median per flavour, noise of default)`.
    fn medians(&self) -> Vec<(String, [Option<f64>; FLAVOURS.len()], Option<f64>)> {
        self.values
            .iter()
            .map(|(row, per)| {
                let medians = per.each_ref().map(|v| bench::median(v));
                (row.clone(), medians, spread(&per[0]))
            })
            .collect()
    }

    /// The table as text: medians, ratios to `default`, and its noise.
    pub fn render(&self, title: &str) -> String {
        let mut table = Table::new();
        table.load_style(ASCII_MARKDOWN);
        let mut header = vec!["fixed_cost".to_string()];
        header.extend(FLAVOURS.iter().map(|f| f.name.to_string()));
        header.extend(FLAVOURS[1..].iter().map(|f| format!("{}/default", f.name)));
        header.push("noise".into());
        table.set_header(header);
        for (row, medians, noise) in self.medians() {
            let mut cells = vec![row];
            cells.extend(
                medians
                    .iter()
                    .map(|m| m.map_or("-".into(), |v| format!("{v:.0}"))),
            );
            for m in &medians[1..] {
                cells.push(ratio(*m, medians[0]).map_or("-".into(), |r| format!("{r:.3}")));
            }
            cells.push(noise.map_or("-".into(), |n| format!("±{:.1}%", n * 50.0)));
            table.add_row(cells);
        }
        format!("{title}\n{table}\n")
    }

    /// The table as CSV: medians and each boot's value.
    pub fn csv(&self) -> Result<String> {
        let mut w = csv::Writer::from_writer(Vec::new());
        let mut header = vec!["row".to_string()];
        header.extend(FLAVOURS.iter().map(|f| f.name.to_string()));
        header.push("default_noise".into());
        header.extend(FLAVOURS.iter().map(|f| format!("{}_runs", f.name)));
        w.write_record(&header)?;
        for ((row, per), (_, medians, noise)) in self.values.iter().zip(self.medians()) {
            let mut rec = vec![row.clone()];
            rec.extend(
                medians
                    .iter()
                    .map(|m| m.map_or(String::new(), |v| v.to_string())),
            );
            rec.push(noise.map_or(String::new(), |n| n.to_string()));
            rec.extend(
                per.iter()
                    .map(|v| v.iter().map(f64::to_string).collect::<Vec<_>>().join(" ")),
            );
            w.write_record(&rec)?;
        }
        Ok(String::from_utf8(w.into_inner()?)?)
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => Some(a / b),
        _ => None,
    }
}

/// `(max - min) / median` of a row's boots, if there are two or more.
fn spread(values: &[f64]) -> Option<f64> {
    if values.len() < 2 {
        return None;
    }
    let max = values.iter().copied().fold(f64::MIN, f64::max);
    let min = values.iter().copied().fold(f64::MAX, f64::min);
    ratio(Some(max - min), bench::median(values))
}

/// Builds the flavours' kernels (`default` and `traced` share one).
pub fn build(ws: &Workspace, arch: Arch, jobs: usize) -> Result<Vec<Built>> {
    let mut built: Vec<Built> = Vec::new();
    for f in FLAVOURS {
        let b = match FLAVOURS.iter().position(|g| g.profile == f.profile) {
            Some(i) if i < built.len() => built[i].clone(),
            _ => kernel::build_profile(ws, arch, Variant::Rust, f.profile, jobs)?,
        };
        built.push(b);
    }
    Ok(built)
}

/// The console log of a flavour's boot `tag` (`run1`..., `icount`).
fn log_path(logs: &Path, arch: Arch, flavour: &Flavour, tag: &str) -> PathBuf {
    logs.join(format!(
        "bench-{}-observe-{}-{tag}.console.log",
        arch.kbuild_name(),
        flavour.name
    ))
}

/// Removes the logs of an earlier run, which must not mix with this one's.
pub fn remove_logs(logs: &Path, arch: Arch) -> Result<()> {
    for f in &FLAVOURS {
        let tags = (1..).map(|n| format!("run{n}"));
        for tag in tags.take_while(|t| log_path(logs, arch, f, t).exists()) {
            fs::remove_file(log_path(logs, arch, f, &tag))?;
        }
        let _ = fs::remove_file(log_path(logs, arch, f, "icount"));
    }
    Ok(())
}

/// Boots each flavour once, in turn, with the QEMU arguments `qemu`, and
/// keeps its console log as boot `tag`.
pub fn boot_each(
    built: &[Built],
    logs: &Path,
    tag: &str,
    timeout: u64,
    qemu: &[&str],
) -> Result<()> {
    for (f, b) in FLAVOURS.iter().zip(built) {
        eprintln!("==> observability boot {tag} of rust ({})", f.name);
        let log = log_path(logs, b.arch, f, tag);
        let records = bench::boot_one(b, &f.cmdline(), log, timeout, qemu)?;
        f.check(&records)?;
    }
    Ok(())
}

/// Reads back the kept logs: the timed boots' costs and the `-icount` boot's.
pub fn read_logs(logs: &Path, arch: Arch) -> Result<(Costs, Costs)> {
    let mut timed = Costs::default();
    let mut icount = Costs::default();
    for (i, f) in FLAVOURS.iter().enumerate() {
        let read = |tag: &str| -> Result<Option<Vec<Record>>> {
            let path = log_path(logs, arch, f, tag);
            let Ok(text) = fs::read_to_string(&path) else {
                return Ok(None);
            };
            let records = bench::parse_console(&text);
            f.check(&records)
                .with_context(|| path.display().to_string())?;
            Ok(Some(records))
        };
        let mut n = 1;
        while let Some(records) = read(&format!("run{n}"))? {
            timed.add(i, &records);
            n += 1;
        }
        if let Some(records) = read("icount")? {
            icount.add(i, &records);
        }
    }
    Ok((timed, icount))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(tp: &str, per_s: f64, p99: f64) -> Vec<Record> {
        [
            format!("# iopf_bench: scenario=meta metric=build impl=rust tracepoints={tp}"),
            format!("# iopf_bench: scenario=fixed_cost metric=faults_per_s value={per_s}"),
            format!("# iopf_bench: scenario=fixed_cost metric=latency_ns p50=900 p99={p99}"),
            "# iopf_bench: scenario=fixed_cost metric=allocs allocs=1 frees=1 alloc_bytes=192"
                .to_string(),
        ]
        .iter()
        .filter_map(|l| bench::parse_line(l))
        .collect()
    }

    #[test]
    fn the_traced_flavour_enables_every_event() {
        let cmdline = FLAVOURS[1].cmdline();
        for e in EVENTS {
            assert!(cmdline.contains(&format!("iommu:{e}")), "{cmdline}");
        }
        assert!(!FLAVOURS[0].cmdline().contains("trace_event"));
    }

    #[test]
    fn a_flavour_must_have_the_tracepoints_it_says() {
        assert!(FLAVOURS[0].check(&records("1", 1.0, 1.0)).is_ok());
        assert!(FLAVOURS[0].check(&records("0", 1.0, 1.0)).is_err());
        assert!(FLAVOURS[3].check(&records("0", 1.0, 1.0)).is_ok());
        assert!(FLAVOURS[3].check(&records("1", 1.0, 1.0)).is_err());
    }

    #[test]
    fn ratios_are_to_default_and_noise_is_its_spread() {
        let mut costs = Costs::default();
        for per_s in [90.0, 100.0, 110.0] {
            costs.add(0, &records("1", per_s, 1000.0));
        }
        costs.add(1, &records("1", 50.0, 2000.0));
        assert!(Costs::default().is_empty());
        assert!(!costs.is_empty());
        let m = costs.medians();
        assert_eq!(m.len(), 3, "allocs are not rows: {m:?}");
        assert_eq!(m[0].0, "faults_per_s value");
        assert_eq!(m[0].1[0], Some(100.0));
        assert_eq!(m[0].2, Some(0.2));
        let text = costs.render("t");
        assert!(text.contains("| faults_per_s value"), "{text}");
        assert!(text.contains("0.500"), "{text}");
        assert!(text.contains("±10.0%"), "{text}");
        let csv = costs.csv().unwrap();
        assert!(csv.starts_with("row,default,traced,no-debugfs,no-tracepoints,default_noise"));
        assert!(
            csv.contains("faults_per_s value,100,50,,,0.2,90 100 110,50,,"),
            "{csv}"
        );
    }
}
