//! `run`: the demo. Boots the Rust-IOPF kernel with the Rust IOPF sample
//! (`samples/rust/rust_iopf`), injects a script of page requests through its
//! debugfs from a tiny busybox initramfs, and shows what happened to each:
//! reported, grouped, handled, answered, with which code and how fast.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::cli::{Arch, RunArgs, Variant};
use crate::initramfs;
use crate::judge::{self, Machine, Rules};
use crate::kernel;
use crate::ktap;
use crate::observe::{self, Event, Snapshots};
use crate::paths::Workspace;
use crate::qemu::Boot;
use crate::selftest;
use crate::toolchain;

/// Prefix of the lines the demo's `/init` prints, told apart from the kernel's.
const MARK: &str = "@@rust_iopf";

/// Where the sample's debugfs files are in the guest.
const DEBUGFS: &str = "/sys/kernel/debug/rust_iopf";

/// KUnit suites stay off: the demo is about the sample.
const CMDLINE: &str = "kunit.enable=0 kunit_shutdown=none";

/// The answer a group should get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    Success,
    Invalid,
    Failure,
}

impl Code {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "success" => Some(Self::Success),
            "invalid" => Some(Self::Invalid),
            "failure" => Some(Self::Failure),
            _ => None,
        }
    }

    fn word(self) -> &'static str {
        match self {
            Self::Success => "SUCCESS",
            Self::Invalid => "INVALID",
            Self::Failure => "FAILURE",
        }
    }
}

/// One step of the script: an `inject` command and what it must lead to.
#[derive(Clone, Debug)]
pub struct Step {
    /// What the step shows, in words.
    pub what: &'static str,
    /// The command written to `inject`.
    pub command: &'static str,
    /// Groups the command injects.
    pub groups: usize,
    /// Requests in each group, as the consumer must receive them (0: the
    /// group never reaches the consumer).
    pub pages: usize,
    /// The return value of the last `report()` of each group.
    pub report: i32,
    /// The answer each group must get.
    pub code: Code,
    /// Requests the command reports for each group.
    pub requests: usize,
    /// Partial requests of each group the Rust core holds (`iopf_hold`).
    pub holds: usize,
    /// Partial requests of each group it drops, all at once (`iopf_drop`):
    /// those it held, and the one that went past the bound.
    pub dropped: usize,
    /// Why the Rust core answers each group itself (`iopf_abort`), if it does.
    pub abort: Option<&'static str>,
}

/// The Rust core's bound on held partial requests, as the test kernels set
/// it (`CONFIG_IOMMU_IOPF_RUST_MAX_PARTIAL`): the script's last step goes
/// past it.
pub const BOUND: usize = 2048;

const EINVAL: i32 = -22;

/// The script. Endpoint 0 has the consumer's domain attached, endpoint 1 none.
pub const SCRIPT: &[Step] = &[
    Step {
        what: "one page, read+write: the consumer maps it from its work item",
        command: "page 0 0x1000 rw",
        groups: 1,
        pages: 1,
        report: 0,
        code: Code::Success,
        requests: 1,
        holds: 0,
        dropped: 0,
        abort: None,
    },
    Step {
        what: "a group of 4 pages: 3 held by the framework until the last arrives",
        command: "group 0 4 0x10000 rw",
        groups: 1,
        pages: 4,
        report: 0,
        code: Code::Success,
        requests: 4,
        holds: 3,
        dropped: 0,
        abort: None,
    },
    Step {
        what: "an exec request: the consumer answers Invalid",
        command: "page 0 0x2000 rx",
        groups: 1,
        pages: 1,
        report: 0,
        code: Code::Invalid,
        requests: 1,
        holds: 0,
        dropped: 0,
        abort: None,
    },
    Step {
        what: "a privileged request: the handler refuses it, the framework answers Failure",
        command: "page 0 0x3000 rp",
        groups: 1,
        pages: 1,
        report: 0,
        code: Code::Failure,
        requests: 1,
        holds: 0,
        dropped: 0,
        abort: Some("handler"),
    },
    Step {
        what: "endpoint 1, no domain attached: the framework answers Invalid, report() fails",
        command: "page 1 0x1000 r",
        groups: 1,
        pages: 0,
        report: EINVAL,
        code: Code::Invalid,
        requests: 1,
        holds: 0,
        dropped: 0,
        abort: None,
    },
    Step {
        what: "a flood of 500 one-page groups",
        command: "flood 0 500",
        groups: 500,
        pages: 1,
        report: 0,
        code: Code::Success,
        requests: 1,
        holds: 0,
        dropped: 0,
        abort: None,
    },
    Step {
        what: "a group of 2050 pages: past the bound of 2048 held partials the framework drops \
               them, and answers the last Invalid without calling the handler",
        command: "group 0 2050 0x400000 r",
        groups: 1,
        pages: 0,
        report: 0,
        code: Code::Invalid,
        requests: BOUND + 2,
        holds: BOUND,
        dropped: BOUND + 1,
        abort: Some("incomplete"),
    },
];

/// The `/init` script: the trace events on (if the kernel has them) and the
/// debugfs files printed; for each step, clear the events and the trace,
/// inject, wait for the consumer's work items, print the events and the
/// trace; then the counters, the debugfs files again and the kernel's
/// messages of the script's time, and `then`.
pub fn init_script(script: &[Step], then: &str) -> String {
    let mut s = String::from(
        "#!/bin/sh\n\
         export PATH=/bin:/sbin:/usr/bin:/usr/sbin\n\
         mount -t proc proc /proc\n\
         mount -t sysfs sysfs /sys\n\
         mount -t debugfs debugfs /sys/kernel/debug\n",
    );
    // A kernel warning printed to the console while a line of the script is
    // being written splits that line. Keep warnings and lesser messages in
    // the log until the script is done (errors still reach the console);
    // the log is cleared first, so what it holds then is the script's time.
    s.push_str(
        "dmesg -c > /dev/null\n\
         read -r LEVEL _ < /proc/sys/kernel/printk\n\
         echo 4 > /proc/sys/kernel/printk\n",
    );
    let _ = writeln!(s, "D={DEBUGFS}");
    let _ = writeln!(
        s,
        "[ -d $D ] || echo \"{MARK} missing $D (CONFIG_SAMPLE_RUST_IOPF)\""
    );
    s.push_str(&observe::setup_script());
    s.push_str(&observe::print_files_script(MARK, "before"));
    for (n, step) in script.iter().enumerate() {
        let _ = writeln!(s, "echo x > $D/clear");
        s.push_str(observe::CLEAR_SCRIPT);
        let _ = writeln!(
            s,
            "echo '{}' > $D/inject || echo \"{MARK} inject failed\"",
            step.command
        );
        let _ = writeln!(s, "echo 'flush 0' > $D/inject");
        let _ = writeln!(s, "echo \"{MARK} step {n}\"");
        let _ = writeln!(s, "sed 's/^/{MARK} event /' $D/events");
        s.push_str(&observe::print_trace_script(MARK));
    }
    let _ = writeln!(s, "sed 's/^/{MARK} stat /' $D/stats");
    s.push_str(&observe::print_files_script(MARK, "after"));
    s.push_str("echo $LEVEL > /proc/sys/kernel/printk\n");
    let _ = writeln!(s, "dmesg | sed 's/^/{MARK} kmsg /'");
    let _ = writeln!(s, "echo \"{MARK} done\"");
    s.push_str(then);
    s
}

/// What the events say about one group.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Group {
    pub seq: u64,
    pub endpoint: Option<u32>,
    /// The group index the mock reported it with.
    pub grpid: Option<u32>,
    pub report: Option<i32>,
    pub grouped: Option<usize>,
    pub refused: bool,
    pub handled: Option<Code>,
    pub answers: Vec<Code>,
    /// Nanoseconds from the injection of the group's last request to its answer.
    pub answered_ns: Option<i64>,
}

/// The console, split by step: each step's groups, in sequence order, and
/// the counters.
#[derive(Debug, Default)]
pub struct Transcript {
    pub steps: Vec<Vec<Group>>,
    /// The trace events of each step (none on the C kernel).
    pub traces: Vec<Vec<Event>>,
    /// The Rust core's debugfs files, before the script and after it.
    pub files: Snapshots,
    pub stats: Vec<(String, u64)>,
    /// The kernel's messages while the script ran, printed after it.
    pub kernel: Vec<String>,
    pub done: bool,
    pub problems: Vec<String>,
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    ktap::Fields::parse(line).get(key)
}

pub fn parse(console: &str) -> Transcript {
    let mut t = Transcript::default();
    let mut current: Option<BTreeMap<u64, Group>> = None;
    let finish = |t: &mut Transcript, cur: Option<BTreeMap<u64, Group>>| {
        if let Some(groups) = cur {
            t.steps.push(groups.into_values().collect());
        }
    };
    for line in console.lines() {
        let Some(at) = line.find(MARK) else { continue };
        let rest = line[at + MARK.len()..].trim();
        if rest.starts_with("step ") {
            let prev = current.replace(BTreeMap::new());
            finish(&mut t, prev);
            t.traces.push(Vec::new());
        } else if let Some(line) = rest.strip_prefix("trace ") {
            match (t.traces.last_mut(), Event::parse(line)) {
                (Some(trace), Some(event)) => trace.push(event),
                _ => t.problems.push(format!("unreadable trace line: {line}")),
            }
        } else if let Some(line) = rest.strip_prefix("iopf ") {
            if let Err(e) = t.files.add(line) {
                t.problems.push(e);
            }
        } else if let Some(ev) = rest.strip_prefix("event ") {
            let (Some(groups), Some(seq)) = (
                current.as_mut(),
                field(ev, "seq").and_then(|s| s.parse::<u64>().ok()),
            ) else {
                if ev.starts_with("dropped=") {
                    t.problems.push(format!("the sample dropped events: {ev}"));
                }
                continue;
            };
            let g = groups.entry(seq).or_insert_with(|| Group {
                seq,
                ..Group::default()
            });
            let ns = field(ev, "t_ns").and_then(|s| s.parse::<i64>().ok());
            let code = field(ev, "code").and_then(Code::parse);
            match field(ev, "event") {
                Some("reported") => {
                    g.endpoint = field(ev, "ep").and_then(|s| s.parse().ok());
                    g.grpid = field(ev, "grpid").and_then(|s| s.parse().ok());
                    g.report = field(ev, "ret").and_then(|s| s.parse().ok());
                }
                Some("grouped") => g.grouped = field(ev, "pages").and_then(|s| s.parse().ok()),
                Some("refused") => g.refused = true,
                Some("handled") => g.handled = code,
                Some("answered") => {
                    g.answers.extend(code);
                    g.answered_ns = ns;
                }
                _ => t.problems.push(format!("unreadable event: {ev}")),
            }
        } else if let Some(stat) = rest.strip_prefix("stat ") {
            let prev = current.take();
            finish(&mut t, prev);
            if let Some((k, v)) = stat.split_once(' ') {
                if let Ok(v) = v.trim().parse() {
                    t.stats.push((k.to_string(), v));
                }
            }
        } else if let Some(message) = rest.strip_prefix("kmsg ") {
            t.kernel.push(message.to_string());
        } else if rest == "done" {
            let prev = current.take();
            finish(&mut t, prev);
            t.done = true;
        } else {
            t.problems.push(format!("guest: {rest}"));
        }
    }
    let prev = current.take();
    finish(&mut t, prev);
    t
}

/// Everything a step's groups got that the step did not expect.
pub fn check(step: &Step, groups: &[Group]) -> Vec<String> {
    let mut out = Vec::new();
    if groups.len() != step.groups {
        out.push(format!(
            "{} group(s) seen, {} injected",
            groups.len(),
            step.groups
        ));
    }
    for g in groups {
        let id = format!("group #{}", g.seq);
        match g.answers.as_slice() {
            [code] if *code == step.code => {}
            [] => out.push(format!("{id}: no answer")),
            [code] => out.push(format!(
                "{id}: answered {}, expected {}",
                code.word(),
                step.code.word()
            )),
            many => out.push(format!("{id}: answered {} times", many.len())),
        }
        if g.report != Some(step.report) {
            out.push(format!(
                "{id}: report() returned {:?}, expected {}",
                g.report, step.report
            ));
        }
        let grouped = g.grouped.unwrap_or(0);
        if grouped != step.pages {
            out.push(format!(
                "{id}: the consumer got {grouped} request(s), expected {}",
                step.pages
            ));
        }
    }
    out
}

fn micros(ns: i64) -> String {
    format!("{:.0} µs", ns as f64 / 1000.0)
}

fn describe(step: &Step, g: &Group) -> [String; 4] {
    let reported = match g.report {
        Some(0) => "ok".to_string(),
        Some(e) if e == EINVAL => "-EINVAL".to_string(),
        Some(e) => format!("{e}"),
        None => "-".to_string(),
    };
    let grouped = match g.grouped {
        Some(1) => "1 page".to_string(),
        Some(n) => format!("{n} pages"),
        None => "no handler".to_string(),
    };
    let handled = if g.refused {
        "refused".to_string()
    } else {
        g.handled.map_or("-".to_string(), |c| c.word().to_string())
    };
    let answered = match g.answers.as_slice() {
        [code] => code.word().to_string(),
        [] => "NONE".to_string(),
        many => format!("{} answers", many.len()),
    };
    let _ = step;
    [reported, grouped, handled, answered]
}

/// The step whose trace the demo shows: the group of 4 pages.
const TRACED_STEP: usize = 1;
/// The device whose debugfs files the demo shows.
const SHOWN_DEVICE: &str = "rust_iopf_ep0";

/// The readable table, the trace of one step and the debugfs files; and the
/// number of mismatches (each step, and the files, count once).
pub fn render(script: &[Step], t: &Transcript) -> (String, usize) {
    let mut out = String::new();
    let mut mismatches = 0;
    let _ = writeln!(
        out,
        "  {:<3} {:<24} {:<9} {:<11} {:<9} {:<9} {:>10}",
        "#", "injected", "reported", "grouped", "handled", "answered", "took"
    );
    for (n, step) in script.iter().enumerate() {
        let groups = t.steps.get(n).map(Vec::as_slice).unwrap_or_default();
        let mut problems = check(step, groups);
        let grpids: Vec<u32> = groups.iter().filter_map(|g| g.grpid).collect();
        let trace = t.traces.get(n).map(Vec::as_slice).unwrap_or_default();
        problems.extend(observe::check_step(step, &grpids, trace));
        let verdict = if problems.is_empty() {
            "ok"
        } else {
            "MISMATCH"
        };
        if !problems.is_empty() {
            mismatches += 1;
        }
        let _ = writeln!(out, "\n      {}", step.what);
        if groups.len() <= 4 {
            for g in groups {
                let [rep, grp, hnd, ans] = describe(step, g);
                let took = g.answered_ns.map_or("-".to_string(), micros);
                let _ = writeln!(
                    out,
                    "  {:<3} {:<24} {rep:<9} {grp:<11} {hnd:<9} {ans:<9} {took:>10}   {verdict}",
                    n + 1,
                    step.command
                );
            }
        } else {
            let mut lat: Vec<i64> = groups.iter().filter_map(|g| g.answered_ns).collect();
            lat.sort_unstable();
            let answered = groups.iter().filter(|g| g.answers.len() == 1).count();
            let codes: BTreeMap<&str, usize> =
                groups
                    .iter()
                    .flat_map(|g| g.answers.iter())
                    .fold(BTreeMap::new(), |mut m, c| {
                        *m.entry(c.word()).or_default() += 1;
                        m
                    });
            let codes: Vec<String> = codes.iter().map(|(c, k)| format!("{k} {c}")).collect();
            let _ = writeln!(
                out,
                "  {:<3} {:<24} {} groups, {answered} answered once: {}   {verdict}",
                n + 1,
                step.command,
                groups.len(),
                codes.join(", ")
            );
            if let (Some(min), Some(max)) = (lat.first(), lat.last()) {
                let _ = writeln!(
                    out,
                    "      took: min {}, median {}, max {}",
                    micros(*min),
                    micros(lat[lat.len() / 2]),
                    micros(*max)
                );
            }
        }
        for p in problems {
            let _ = writeln!(out, "      MISMATCH: {p}");
        }
    }
    if !t.stats.is_empty() {
        let _ = writeln!(
            out,
            "\n  The sample's counters (/sys/kernel/debug/rust_iopf/stats):"
        );
        for (k, v) in &t.stats {
            let _ = writeln!(out, "    {k:<20} {v}");
        }
    }
    if let Some(step) = script.get(TRACED_STEP) {
        let trace = t.traces.get(TRACED_STEP).map(Vec::as_slice);
        let _ = writeln!(
            out,
            "\n  The trace events of step {} ({}), from /sys/kernel/tracing/trace:",
            TRACED_STEP + 1,
            step.command
        );
        out.push_str(&observe::render_trace(trace.unwrap_or_default()));
    }
    out.push_str(&observe::render_files(&t.files, SHOWN_DEVICE));
    let problems = observe::check_files(script, &t.files);
    if !problems.is_empty() {
        mismatches += 1;
    }
    for p in problems {
        let _ = writeln!(out, "    MISMATCH: {p}");
    }
    (out, mismatches)
}

/// What went wrong with the script of a console where it ran after KUnit
/// (`cargo xtask test`): its mismatches, and whether it finished.
pub fn problems(console: &str) -> Vec<String> {
    let t = parse(console);
    let (table, mismatches) = render(SCRIPT, &t);
    let mut out = t.problems;
    if !t.done {
        out.push("the demo's script did not finish".into());
    }
    if mismatches > 0 {
        out.push(format!("the demo's script: {mismatches} mismatch(es)"));
        out.extend(
            table
                .lines()
                .filter(|l| l.contains("MISMATCH:"))
                .map(|l| format!("demo: {}", l.trim())),
        );
    }
    out
}

/// Checks that the Rust kernel of `arch` bounds held partial requests at
/// [`BOUND`], which the script goes past.
pub fn check_bound(ws: &Workspace, arch: Arch) -> Result<()> {
    let config = ws.build_dir(arch, Variant::Rust).join(".config");
    let text = fs::read_to_string(&config)?;
    let want = format!("CONFIG_IOMMU_IOPF_RUST_MAX_PARTIAL={BOUND}");
    if !text.lines().any(|l| l == want) {
        bail!("{}: the demo's script needs {want}", config.display());
    }
    Ok(())
}

/// Suites the sample adds to `cargo xtask test` on `arch` (the sample needs
/// IOMMUFD_TEST, which only x86_64.config enables).
pub fn expected_suites(arch: Arch) -> &'static [&'static str] {
    match arch {
        Arch::X86_64 => &["rust_iopf_sample"],
        Arch::Arm64 => &[],
    }
}

pub fn run(args: &RunArgs) -> Result<()> {
    let start = Instant::now();
    let ws = Workspace::discover()?;
    let arch = args.target.arch;
    if arch != Arch::X86_64 {
        bail!("the demo runs on x86_64 (the sample needs IOMMUFD_TEST, in x86_64.config)");
    }
    toolchain::check_qemu(arch)?;
    selftest::check_busybox()?;
    let jobs = args.target.jobs.unwrap_or_else(toolchain::default_jobs);
    let built = kernel::build_with_jobs(&ws, arch, Variant::Rust, jobs)?;

    let out = ws.cache.join("demo").join(arch.kbuild_name());
    fs::create_dir_all(&out)?;
    let gen_init_cpio = ws.build_dir(arch, Variant::Rust).join("usr/gen_init_cpio");
    check_bound(&ws, arch)?;
    let init = init_script(SCRIPT, "poweroff -f\n");
    let initrd = initramfs::pack(&gen_init_cpio, &out, &init, &[])?;

    eprintln!("==> booting the Rust IOPF kernel with the sample under QEMU");
    let judged = judge::boot(
        &Boot {
            arch,
            image: &built.image,
            initrd: Some(&initrd),
            cmdline: CMDLINE,
            timeout: Duration::from_secs(args.timeout),
            log: ws
                .logs()?
                .join(format!("{}-rust.demo.log", arch.kbuild_name())),
        },
        Machine::Default,
        // KUnit is off: the script's transcript is the result.
        &Rules::default(),
    )?;
    let console = &judged.console;
    let transcript = parse(&console.text);

    println!(
        "\nThe Rust IOPF core at work ({} kernel, QEMU). The sample's mock IOMMU driver\n\
         (samples/rust/rust_iopf) reports page requests from two endpoints: ep0 has\n\
         the consumer's domain attached, ep1 none. \"took\" runs from the report of a\n\
         group's last request to the page response sent back to the device.\n",
        arch.kbuild_name()
    );
    let (table, mismatches) = render(SCRIPT, &transcript);
    print!("{table}");
    if !transcript.kernel.is_empty() {
        println!("\n  The kernel's messages while the script ran:");
        for line in &transcript.kernel {
            println!("    {line}");
        }
    }

    let mut problems = transcript.problems.clone();
    if !console.timed_out && !transcript.done {
        problems.push("the script did not finish".into());
    }
    // The timeout and the kernel's reports.
    problems.extend(judged.problems.iter().cloned());
    for p in &problems {
        println!("  PROBLEM: {p}");
    }
    println!(
        "\n  {} of {} steps as expected; console log: {}   ({:.0}s in all)",
        SCRIPT.len() - mismatches,
        SCRIPT.len(),
        console.log.display(),
        start.elapsed().as_secs_f64()
    );
    if mismatches > 0 || !problems.is_empty() {
        bail!("the demo run failed");
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const CONSOLE: &str = "\
[    1.0] random kernel line
@@rust_iopf iopf before rust_iopf_ep0 stats requests 5
@@rust_iopf iopf before rust_iopf_ep0 stats groups 5
@@rust_iopf iopf before rust_iopf_ep0 stats responses_success 5
@@rust_iopf iopf before rust_iopf_ep0 stats responses_invalid 0
@@rust_iopf iopf before rust_iopf_ep0 stats responses_failure 0
@@rust_iopf iopf before rust_iopf_ep0 stats responses_other 0
@@rust_iopf iopf before rust_iopf_ep0 stats partials_held 0
@@rust_iopf iopf before rust_iopf_ep0 stats partials_held_max 3
@@rust_iopf iopf before rust_iopf_ep0 stats partials_dropped 0
@@rust_iopf iopf before rust_iopf_ep0 stats groups_pending 0
@@rust_iopf iopf before rust_iopf_ep0 stats handler_failures 0
@@rust_iopf iopf before rust_iopf_ep0 stats alloc_failures 0
@@rust_iopf iopf before rust_iopf_ep0 latency # one group in 16 is timed, or all while iommu:iopf_answer is traced
@@rust_iopf iopf before rust_iopf_ep0 latency 0-1us 0
@@rust_iopf iopf before rust_iopf_ep0 latency 8-16us 2
@@rust_iopf iopf before rust_iopf_ep1 stats requests 0
@@rust_iopf iopf before rust_iopf_ep1 stats groups 0
@@rust_iopf iopf before rust_iopf_ep1 stats responses_success 0
@@rust_iopf iopf before rust_iopf_ep1 stats responses_invalid 0
@@rust_iopf iopf before rust_iopf_ep1 stats responses_failure 0
@@rust_iopf iopf before rust_iopf_ep1 stats responses_other 0
@@rust_iopf iopf before rust_iopf_ep1 stats partials_held 0
@@rust_iopf iopf before rust_iopf_ep1 stats partials_held_max 0
@@rust_iopf iopf before rust_iopf_ep1 stats partials_dropped 0
@@rust_iopf iopf before rust_iopf_ep1 stats groups_pending 0
@@rust_iopf iopf before rust_iopf_ep1 stats handler_failures 0
@@rust_iopf iopf before rust_iopf_ep1 stats alloc_failures 0
@@rust_iopf iopf before rust_iopf_ep1 latency # one group in 16 is timed, or all while iommu:iopf_answer is traced
@@rust_iopf iopf before rust_iopf_ep1 latency 0-1us 0
@@rust_iopf iopf before rust_iopf_ep1 latency 8-16us 0
@@rust_iopf step 0
@@rust_iopf event seq=1 t_ns=1000 event=grouped pages=1
@@rust_iopf event seq=1 t_ns=2000 event=reported ep=0 grpid=1 pages=1 ret=0
@@rust_iopf event seq=1 t_ns=9000 event=handled code=success
[    1.1] rust_iopf: interleaved kernel line
@@rust_iopf event seq=1 t_ns=12000 event=answered code=success
@@rust_iopf trace               sh-1       [001] .....    10.001000: iopf_report: dev=rust_iopf_ep0 pasid=0 grpid=1 flags=0x1 perm=0x3 addr=0x1000 last=1
@@rust_iopf trace               sh-1       [001] .....    10.001010: iopf_handle: dev=rust_iopf_ep0 pasid=0 grpid=1 faults=1 ret=0
@@rust_iopf trace     kworker/u8:2-40      [000] .....    10.001020: iopf_answer: dev=rust_iopf_ep0 pasid=0 grpid=1 code=success latency_us=10
@@rust_iopf step 1
@@rust_iopf event seq=2 t_ns=3000 event=reported ep=1 grpid=2 pages=1 ret=-22
@@rust_iopf event seq=2 t_ns=2500 event=answered code=invalid
@@rust_iopf trace               sh-1       [001] .....    10.002000: iopf_report: dev=rust_iopf_ep1 pasid=0 grpid=2 flags=0x1 perm=0x1 addr=0x1000 last=1
@@rust_iopf trace               sh-1       [001] .....    10.002010: iopf_answer: dev=rust_iopf_ep1 pasid=0 grpid=2 code=invalid latency_us=0
@@rust_iopf stat responses_success 1
@@rust_iopf iopf after rust_iopf_ep0 stats requests 6
@@rust_iopf iopf after rust_iopf_ep0 stats groups 6
@@rust_iopf iopf after rust_iopf_ep0 stats responses_success 6
@@rust_iopf iopf after rust_iopf_ep0 stats responses_invalid 0
@@rust_iopf iopf after rust_iopf_ep0 stats responses_failure 0
@@rust_iopf iopf after rust_iopf_ep0 stats responses_other 0
@@rust_iopf iopf after rust_iopf_ep0 stats partials_held 0
@@rust_iopf iopf after rust_iopf_ep0 stats partials_held_max 3
@@rust_iopf iopf after rust_iopf_ep0 stats partials_dropped 0
@@rust_iopf iopf after rust_iopf_ep0 stats groups_pending 0
@@rust_iopf iopf after rust_iopf_ep0 stats handler_failures 0
@@rust_iopf iopf after rust_iopf_ep0 stats alloc_failures 0
@@rust_iopf iopf after rust_iopf_ep0 latency # one group in 16 is timed, or all while iommu:iopf_answer is traced
@@rust_iopf iopf after rust_iopf_ep0 latency 0-1us 0
@@rust_iopf iopf after rust_iopf_ep0 latency 8-16us 3
@@rust_iopf iopf after rust_iopf_ep1 stats requests 1
@@rust_iopf iopf after rust_iopf_ep1 stats groups 0
@@rust_iopf iopf after rust_iopf_ep1 stats responses_success 0
@@rust_iopf iopf after rust_iopf_ep1 stats responses_invalid 1
@@rust_iopf iopf after rust_iopf_ep1 stats responses_failure 0
@@rust_iopf iopf after rust_iopf_ep1 stats responses_other 0
@@rust_iopf iopf after rust_iopf_ep1 stats partials_held 0
@@rust_iopf iopf after rust_iopf_ep1 stats partials_held_max 0
@@rust_iopf iopf after rust_iopf_ep1 stats partials_dropped 0
@@rust_iopf iopf after rust_iopf_ep1 stats groups_pending 0
@@rust_iopf iopf after rust_iopf_ep1 stats handler_failures 0
@@rust_iopf iopf after rust_iopf_ep1 stats alloc_failures 0
@@rust_iopf iopf after rust_iopf_ep1 latency # one group in 16 is timed, or all while iommu:iopf_answer is traced
@@rust_iopf iopf after rust_iopf_ep1 latency 0-1us 0
@@rust_iopf iopf after rust_iopf_ep1 latency 8-16us 0
@@rust_iopf done
";

    pub(crate) fn steps() -> [Step; 2] {
        [SCRIPT[0].clone(), SCRIPT[4].clone()]
    }

    #[test]
    fn transcript_follows_each_group() {
        let t = parse(CONSOLE);
        assert!(t.done);
        assert!(t.problems.is_empty(), "{:?}", t.problems);
        assert_eq!(t.steps.len(), 2);
        let g = &t.steps[0][0];
        assert_eq!(g.grouped, Some(1));
        assert_eq!(g.handled, Some(Code::Success));
        assert_eq!(g.answers, vec![Code::Success]);
        assert_eq!(g.answered_ns, Some(12000));
        assert_eq!(t.steps[1][0].report, Some(EINVAL));
        assert_eq!(t.stats, vec![("responses_success".to_string(), 1)]);
        for (step, groups) in steps().iter().zip(&t.steps) {
            assert!(check(step, groups).is_empty(), "{:?}", check(step, groups));
        }
    }

    #[test]
    fn wrong_missing_and_double_answers_are_mismatches() {
        let mut t = parse(CONSOLE);
        let step = &steps()[0];
        t.steps[0][0].answers = vec![Code::Invalid];
        assert!(check(step, &t.steps[0])[0].contains("answered INVALID, expected SUCCESS"));
        t.steps[0][0].answers = vec![];
        assert!(check(step, &t.steps[0])[0].contains("no answer"));
        t.steps[0][0].answers = vec![Code::Success, Code::Success];
        assert!(check(step, &t.steps[0])[0].contains("answered 2 times"));
        assert!(check(step, &[])[0].contains("0 group(s) seen"));
        let (_, mismatches) = render(&steps(), &t);
        assert_eq!(mismatches, 1);
    }

    #[test]
    fn kernel_warnings_wait_until_the_script_is_done() {
        // A warning printed while the script echoed "step 3" once split that
        // line on the console, and the steps' records shifted.
        let s = init_script(SCRIPT, "poweroff -f\n");
        let quiet = s.find("echo 4 > /proc/sys/kernel/printk").expect("quiet");
        let first_step = s.find("@@rust_iopf step").unwrap();
        let restored = s
            .find("echo $LEVEL > /proc/sys/kernel/printk")
            .expect("restored");
        let shown = s
            .find("dmesg | sed 's/^/@@rust_iopf kmsg /'")
            .expect("shown");
        let done = s.find("echo \"@@rust_iopf done\"").unwrap();
        assert!(s.find("dmesg -c").unwrap() < quiet);
        assert!(quiet < s.find("before").unwrap() && first_step < restored);
        assert!(restored < shown && shown < done);

        let console = CONSOLE.replace(
            "@@rust_iopf done",
            "@@rust_iopf kmsg [  1.2] rust_iopf rust_iopf_ep0: iopf with pasid 0 aborted\n\
             @@rust_iopf done",
        );
        let t = parse(&console);
        assert!(t.problems.is_empty(), "{:?}", t.problems);
        assert_eq!(
            t.kernel,
            ["[  1.2] rust_iopf rust_iopf_ep0: iopf with pasid 0 aborted"]
        );
    }

    #[test]
    fn init_script_runs_every_step_and_powers_off() {
        let s = init_script(SCRIPT, "poweroff -f\n");
        for step in SCRIPT {
            assert!(s.contains(&format!("echo '{}' > $D/inject", step.command)));
        }
        assert_eq!(s.matches("@@rust_iopf step").count(), SCRIPT.len());
        assert!(s.trim_end().ends_with("poweroff -f"));
    }
}
