//! Reading a VT-d end-to-end boot's console, judging it, and the tables.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::cli::Variant;
use crate::ktap;
use crate::splat;

use super::guest::{BENCH_MARK, KMSG_MARK, MARK, RESULTS, RESULTS_END, TRACE_MARK};

/// The cases the test program runs, in order.
pub const CASES: &[&str] = &[
    "anon-single",
    "anon-groups",
    "file-read",
    "file-write",
    "write-readonly",
    "unmapped",
    "burst",
    "unbind-in-flight",
    "remove-in-flight",
];

/// Cases whose page request counts depend on timing (how far the device got
/// before the unbind or removal): only their verdict and accounting compare.
const TIMED_CASES: &[&str] = &["unbind-in-flight", "remove-in-flight"];

/// Fields of a case line that must be the same on every kernel.
const COMPARED: &[&str] = &[
    "err",
    "requests",
    "groups",
    "responses",
    "success",
    "invalid",
    "failure",
    "unexpected",
    "lost",
    "duplicated",
    "done",
    "pages_invalid",
    "pages_failure",
    "pages_error",
    "wrong",
];

/// One case's line: `# e2e: case NAME ok|FAIL key=value ...`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Case {
    pub name: String,
    pub ok: bool,
    pub values: BTreeMap<String, u64>,
    pub why: Option<String>,
}

impl Case {
    pub fn get(&self, key: &str) -> u64 {
        self.values.get(key).copied().unwrap_or(0)
    }
}

/// What one boot showed.
#[derive(Clone, Debug, Default)]
pub struct Run {
    pub cases: Vec<Case>,
    /// `# e2e: done N cases, N failed` was printed.
    pub done: bool,
    /// `(prq_report, page_grp_resp, overrun)` events in the trace buffer.
    pub trace: Option<(u64, u64, u64)>,
    /// Page requests in flight when each unbind started and after it, from
    /// the driver's log.
    pub unbinds: Vec<(u64, u64)>,
    /// Lines copied from the trace buffer.
    pub trace_lines: Vec<String>,
    /// The PRQ interrupt line of /proc/interrupts before and after.
    pub prq_irq: (Option<String>, Option<String>),
    pub kmemleak_done: bool,
    /// The kernel's reports, from the boot's judgement ([`crate::judge`]).
    pub splats: Vec<splat::Splat>,
    /// The boot's own problems, from its judgement: a timeout, each report.
    pub boot_problems: Vec<String>,
    /// The benchmark lines, as key=value maps.
    pub bench: Vec<BTreeMap<String, String>>,
}

fn marked<'a>(line: &'a str, mark: &str) -> Option<&'a str> {
    line.split_once(mark).map(|(_, rest)| rest.trim())
}

/// The `key=value` pairs of a marked line ([`ktap::Fields`]).
fn key_values(text: &str) -> impl Iterator<Item = (&str, &str)> {
    ktap::Fields::parse(text).pairs.into_iter()
}

/// The results section that `/init` prints at the end of the boot, whole
/// lines only (see `guest.rs`); empty if the boot did not get there.
fn results(console: &str) -> Vec<&str> {
    let lines: Vec<&str> = console.lines().collect();
    let Some(start) = lines.iter().rposition(|l| l.trim() == RESULTS) else {
        return Vec::new();
    };
    let rest = &lines[start + 1..];
    let end = rest
        .iter()
        .position(|l| l.trim() == RESULTS_END)
        .unwrap_or(rest.len());
    rest[..end].to_vec()
}

/// Parses a console log's results section; the boot's judgement fills in
/// the reports and the boot's problems.
pub fn parse(console: &str) -> Run {
    let mut run = Run::default();
    let mut whys = BTreeMap::new();
    let mut unbinding = None;
    for line in results(console) {
        if let Some(kmsg) = marked(line, KMSG_MARK) {
            if let Some(n) = number_between(kmsg, "with ", " page requests in flight") {
                if kmsg.contains("unbinding PASID") {
                    unbinding = Some(n);
                }
            } else if let Some(after) =
                number_between(kmsg, "unbound: ", " page requests in flight")
            {
                run.unbinds.push((unbinding.take().unwrap_or(0), after));
            }
        } else if let Some(rest) = marked(line, TRACE_MARK) {
            run.trace_lines.push(rest.to_string());
        } else if let Some(rest) = marked(line, BENCH_MARK) {
            if rest != "done" {
                run.bench.push(
                    key_values(rest)
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                );
            }
        } else if let Some(rest) = marked(line, MARK) {
            if let Some(case) = rest.strip_prefix("case ") {
                let mut words = case.split_whitespace();
                let name = words.next().unwrap_or_default().to_string();
                let ok = words.next() == Some("ok");
                let values = key_values(case)
                    .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
                    .collect();
                run.cases.push(Case {
                    name,
                    ok,
                    values,
                    why: None,
                });
            } else if let Some(why) = rest.strip_prefix("why ") {
                if let Some((name, text)) = why.split_once(": ") {
                    whys.insert(name.to_string(), text.to_string());
                }
            } else if rest.starts_with("done ") {
                run.done = true;
            } else if let Some(trace) = rest.strip_prefix("trace ") {
                let kv: BTreeMap<&str, u64> = key_values(trace)
                    .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
                    .collect();
                if let (Some(p), Some(r), Some(o)) = (
                    kv.get("prq_report"),
                    kv.get("page_grp_resp"),
                    kv.get("overrun"),
                ) {
                    run.trace = Some((*p, *r, *o));
                }
            } else if let Some(irq) = rest.strip_prefix("prq interrupts before:") {
                run.prq_irq.0 = Some(irq.trim().to_string());
            } else if let Some(irq) = rest.strip_prefix("prq interrupts after:") {
                run.prq_irq.1 = Some(irq.trim().to_string());
            } else if rest == "kmemleak done" || rest == "kmemleak unavailable" {
                run.kmemleak_done = true;
            }
        }
    }
    for case in &mut run.cases {
        case.why = whys.remove(&case.name);
    }
    run
}

fn number_between(line: &str, before: &str, after: &str) -> Option<u64> {
    let (_, rest) = line.split_once(before)?;
    let (n, _) = rest.split_once(after)?;
    n.trim().parse().ok()
}

/// Totals over the cases of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub cases: u64,
    pub requests: u64,
    pub responses: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub wrong: u64,
    pub splats: u64,
}

impl Totals {
    pub fn of(run: &Run) -> Self {
        let sum = |key: &str| run.cases.iter().map(|c| c.get(key)).sum();
        Self {
            cases: run.cases.len() as u64,
            requests: sum("requests"),
            responses: sum("responses"),
            lost: sum("lost"),
            duplicated: sum("duplicated"),
            wrong: sum("wrong"),
            splats: run.splats.len() as u64,
        }
    }

    pub fn add(&mut self, other: &Self) {
        self.cases += other.cases;
        self.requests += other.requests;
        self.responses += other.responses;
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.wrong += other.wrong;
        self.splats += other.splats;
    }
}

/// Why a run of the cases fails; empty when it passes.
pub fn problems(run: &Run) -> Vec<String> {
    let mut out = run.boot_problems.clone();
    if !run.done {
        out.push("the test program did not finish".into());
    }
    for name in CASES {
        match run.cases.iter().find(|c| c.name == *name) {
            None => out.push(format!("case {name} did not report")),
            Some(c) if !c.ok => out.push(format!(
                "case {name} failed: {}",
                c.why.as_deref().unwrap_or("(no reason printed)")
            )),
            Some(_) => {}
        }
    }
    let totals = Totals::of(run);
    if totals.lost > 0 || totals.duplicated > 0 || totals.wrong > 0 {
        out.push(format!(
            "{} lost, {} duplicated, {} wrong data",
            totals.lost, totals.duplicated, totals.wrong
        ));
    }
    match run.trace {
        None => out.push("no trace counts of the VT-d page request path".into()),
        Some((_, _, overrun)) if overrun > 0 => {
            out.push(format!("the trace buffer overran ({overrun} events lost)"))
        }
        Some((prq, resp, _)) => {
            if prq != totals.requests {
                out.push(format!(
                    "prq.c reported {prq} page requests, the device sent {}",
                    totals.requests
                ));
            }
            if resp != totals.responses {
                out.push(format!(
                    "the VT-d driver sent {resp} page group responses, the device received {}",
                    totals.responses
                ));
            }
        }
    }
    if run.unbinds.len() < 2 {
        out.push(format!(
            "{} unbinds logged by the driver, expected the two in-flight cases'",
            run.unbinds.len()
        ));
    }
    if !run.unbinds.iter().any(|(before, _)| *before > 0) {
        out.push("no unbind happened with page requests in flight".into());
    }
    for (before, after) in &run.unbinds {
        if *after > 0 {
            out.push(format!(
                "{after} of {before} page requests still in flight after an unbind"
            ));
        }
    }
    if !run.kmemleak_done {
        out.push("the kmemleak scan did not finish".into());
    }
    out
}

/// Differences between the outcomes of two kernels' runs.
pub fn differences(a: (Variant, &Run), b: (Variant, &Run)) -> Vec<String> {
    let mut out = Vec::new();
    for name in CASES {
        let (Some(x), Some(y)) = (
            a.1.cases.iter().find(|c| c.name == *name),
            b.1.cases.iter().find(|c| c.name == *name),
        ) else {
            continue;
        };
        if x.ok != y.ok {
            out.push(format!(
                "{name}: {} on {}, {} on {}",
                verdict(x.ok),
                a.0.name(),
                verdict(y.ok),
                b.0.name()
            ));
        }
        let keys: &[&str] = if TIMED_CASES.contains(name) {
            &["unexpected", "lost", "duplicated", "wrong"]
        } else {
            COMPARED
        };
        for key in keys {
            if x.get(key) != y.get(key) {
                out.push(format!(
                    "{name}: {key} {} on {}, {} on {}",
                    x.get(key),
                    a.0.name(),
                    y.get(key),
                    b.0.name()
                ));
            }
        }
    }
    out
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "FAIL"
    }
}

/// Nanoseconds per page request of a case, from the device's clock: the
/// whole job, and the mean request-to-response time of its groups.
pub fn per_fault(case: &Case) -> Option<(f64, f64)> {
    let (requests, groups) = (case.get("requests"), case.get("groups"));
    if requests == 0 || groups == 0 {
        return None;
    }
    Some((
        case.get("job_ns") as f64 / requests as f64,
        case.get("latency_sum_ns") as f64 / groups as f64,
    ))
}

/// The per-case table, one column per kernel.
pub fn table(runs: &[(Variant, &Run)]) -> String {
    let mut out = String::new();
    let _ = write!(out, "{:<18}", "case");
    for (v, _) in runs {
        let _ = write!(out, " | {:<58}", v.name());
    }
    out.push('\n');
    for name in CASES {
        let _ = write!(out, "{name:<18}");
        for (_, run) in runs {
            let cell = match run.cases.iter().find(|c| c.name == *name) {
                None => "(no result)".to_string(),
                Some(c) => format!(
                    "{} req {} grp {} resp S{}/I{}/F{}",
                    verdict(c.ok),
                    c.get("requests"),
                    c.get("groups"),
                    c.get("success"),
                    c.get("invalid"),
                    c.get("failure")
                ),
            };
            let _ = write!(out, " | {cell:<58}");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
[    5.0] rust_iopf_testdev 0000:00:03.0: bound to the address space of pid 70 as PASID 1
# e2e: case anon-single ok err=0 requests=64 groups=6[    5.1] rust_iopf_testdev 0000:00:03.0: cut in
# e2e: results
# e2e: case anon-single ok err=0 requests=64 groups=64 responses=64 success=64 invalid=0 failure=0 unexpected=0 lost=0 duplicated=0 done=64 pages_invalid=0 pages_failure=0 pages_error=0 wrong=0 max_outstanding=64 alloc=256 job_ns=1000 latency_sum_ns=640 latency_max_ns=30
# e2e: case write-readonly FAIL err=0 requests=16 groups=4 responses=4 success=4 invalid=0 failure=0 unexpected=0 lost=0 duplicated=0 done=16 wrong=0
# e2e: why write-readonly: 4 SUCCESS responses
# e2e-kmsg: [    9.0] rust_iopf_testdev 0000:00:03.0: unbinding PASID 1 with 37 page requests in flight
# e2e-kmsg: [    9.1] rust_iopf_testdev 0000:00:03.0: PASID 1 unbound: 0 page requests in flight
# e2e: done 2 cases, 1 failed
# e2e: trace prq_report=80 page_grp_resp=68 overrun=0
# e2e-trace:  irq/25-dmar0-prq-80 [001] prq_report: dmar0/0000:00:03.0 seq# 1
# e2e-bench: job=serial run=0 err=0 pages=1024 requests=1024 job_ns=5
# e2e-bench: done
# e2e: kmemleak done
# e2e: results end
[   12.0] reboot: Power down
";

    #[test]
    fn a_console_log_is_parsed() {
        let run = parse(LOG);
        // The line cut by a kernel message, before the results, is not read.
        assert_eq!(run.cases.len(), 2);
        assert!(run.cases[0].ok);
        assert_eq!(run.cases[0].get("requests"), 64);
        assert!(!run.cases[1].ok);
        assert_eq!(run.cases[1].why.as_deref(), Some("4 SUCCESS responses"));
        assert!(run.done);
        assert_eq!(run.trace, Some((80, 68, 0)));
        assert_eq!(run.unbinds, vec![(37, 0)]);
        assert_eq!(run.trace_lines.len(), 1);
        assert_eq!(run.bench.len(), 1);
        assert_eq!(run.bench[0]["job"], "serial");
        assert!(run.kmemleak_done);
        let (job, latency) = per_fault(&run.cases[0]).unwrap();
        assert!((job - 15.625).abs() < 1e-9 && (latency - 10.0).abs() < 1e-9);
    }

    #[test]
    fn a_failed_case_a_missing_case_and_a_wrong_trace_count_are_problems() {
        let run = parse(LOG);
        let problems = problems(&run);
        let has = |s: &str| problems.iter().any(|p| p.contains(s));
        assert!(has("case write-readonly failed: 4 SUCCESS responses"));
        assert!(has("case burst did not report"));
        // 64 + 16 requests and 64 + 4 responses: the trace agrees.
        assert!(!has("prq.c reported"));
        assert!(!has("page group responses"));
        assert!(has("1 unbinds logged"));
    }

    #[test]
    fn without_the_results_section_nothing_is_read() {
        let cut = LOG.replace("# e2e: results\n", "");
        let run = parse(&cut);
        assert!(run.cases.is_empty() && !run.done && run.unbinds.is_empty());
        assert!(problems(&run)
            .iter()
            .any(|p| p == "the test program did not finish"));
    }

    #[test]
    fn kernels_that_differ_in_a_compared_field_are_told_apart() {
        let a = parse(LOG);
        let mut b = parse(LOG);
        b.cases[0].values.insert("requests".into(), 63);
        let diff = differences((Variant::C, &a), (Variant::Rust, &b));
        assert_eq!(diff, vec!["anon-single: requests 64 on c, 63 on rust"]);
    }
}
