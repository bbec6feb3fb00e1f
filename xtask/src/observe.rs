//! The Rust core's trace events and debugfs files, as the demo's guest
//! records them: the shell that turns them on and prints them, the parser of
//! what it printed, and the checks of each step's events and of the
//! counters against what the sample's mock IOMMU recorded.
//!
//! The events (`drivers/iommu/iopf/iopf_trace.h`) are printed from tracefs
//! after each step; the files `/sys/kernel/debug/iopf/<queue>/<device>/`
//! before the first step and after the last, so that the checks read the
//! differences (the sample's KUnit suite may have run first).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::demo::{Code, Step};
use crate::ktap;

/// The events, in the `iommu` trace system.
pub const EVENTS: [&str; 6] = [
    "iopf_report",
    "iopf_hold",
    "iopf_drop",
    "iopf_handle",
    "iopf_answer",
    "iopf_abort",
];

/// The debugfs directory of the sample's queue, named after its IOMMU.
const QUEUE_DIR: &str = "/sys/kernel/debug/iopf/rust_iopf";

/// Shell that mounts tracefs and enables the events, if the kernel has them
/// (the Rust core's); `$TRACE` is then the tracefs directory, or empty.
pub fn setup_script() -> String {
    let mut s = String::from(
        "mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null\n\
         TRACE=/sys/kernel/tracing\n\
         [ -d $TRACE/events/iommu/iopf_report ] || TRACE=\n\
         if [ -n \"$TRACE\" ]; then\n\
         \techo 8192 > $TRACE/buffer_size_kb\n",
    );
    for e in EVENTS {
        let _ = writeln!(s, "\techo 1 > $TRACE/events/iommu/{e}/enable");
    }
    s.push_str("fi\n");
    s
}

/// Shell that empties the trace buffer before a step.
pub const CLEAR_SCRIPT: &str = "[ -z \"$TRACE\" ] || echo > $TRACE/trace\n";

/// Shell that prints the events of a step, each line after `mark trace `.
pub fn print_trace_script(mark: &str) -> String {
    format!("[ -z \"$TRACE\" ] || grep ' iopf_' $TRACE/trace | sed 's/^/{mark} trace /'\n")
}

/// Shell that prints the queue's debugfs files, each line after
/// `mark iopf <when> <device> <file> `.
pub fn print_files_script(mark: &str, when: &str) -> String {
    format!(
        "for f in {QUEUE_DIR}/*/stats {QUEUE_DIR}/*/latency; do\n\
         \t[ -e $f ] || continue\n\
         \td=${{f%/*}}; d=${{d##*/}}\n\
         \tsed \"s|^|{mark} iopf {when} $d ${{f##*/}} |\" $f\n\
         done\n"
    )
}

/// One trace event, as tracefs printed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub name: String,
    pub fields: BTreeMap<String, String>,
    /// The line, from the task that fired the event on.
    pub line: String,
}

impl Event {
    /// The event of a tracefs line: `task-pid [cpu] flags time: name: key=value ...`.
    pub fn parse(line: &str) -> Option<Self> {
        let at = line.find(": iopf_")?;
        let rest = &line[at + 2..];
        let (name, fields) = rest.split_once(": ")?;
        let fields = ktap::Fields::parse(fields)
            .pairs
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Some(Self {
            name: name.to_string(),
            fields,
            line: line.trim().to_string(),
        })
    }

    fn field(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }

    fn number(&self, key: &str) -> Option<i64> {
        let v = self.field(key)?;
        match v.strip_prefix("0x") {
            Some(hex) => i64::from_str_radix(hex, 16).ok(),
            None => v.parse().ok(),
        }
    }
}

/// A device's `stats` and `latency` files, once.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Files {
    /// `(counter, value)`, in the file's order.
    pub stats: Vec<(String, u64)>,
    /// `(bucket, count)`, in the file's order.
    pub latency: Vec<(String, u64)>,
}

/// The debugfs files of each device, before the script and after it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Snapshots {
    pub before: BTreeMap<String, Files>,
    pub after: BTreeMap<String, Files>,
}

impl Files {
    /// Counter `key`, if the file has it.
    pub fn stat(&self, key: &str) -> Option<u64> {
        self.stats.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
}

impl Snapshots {
    /// Takes one `<when> <device> <file> <line>` line.
    pub fn add(&mut self, line: &str) -> Result<(), String> {
        let mut words = line.splitn(4, ' ');
        let (Some(when), Some(dev), Some(file), Some(rest)) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            return Err(format!("unreadable debugfs line: {line}"));
        };
        let map = match when {
            "before" => &mut self.before,
            "after" => &mut self.after,
            _ => return Err(format!("unreadable debugfs line: {line}")),
        };
        let files = map.entry(dev.to_string()).or_default();
        if rest.starts_with('#') {
            return Ok(());
        }
        let Some((key, value)) = rest.rsplit_once(' ') else {
            return Err(format!("unreadable debugfs line: {line}"));
        };
        let Ok(value) = value.parse() else {
            return Err(format!("unreadable debugfs line: {line}"));
        };
        match file {
            "stats" => files.stats.push((key.to_string(), value)),
            "latency" => files.latency.push((key.to_string(), value)),
            _ => return Err(format!("unknown debugfs file: {line}")),
        }
        Ok(())
    }

    /// How many groups of `dev` were timed over the script.
    fn timed(&self, dev: &str) -> Option<u64> {
        let sum = |f: &Files| f.latency.iter().map(|(_, n)| n).sum::<u64>();
        let after = sum(self.after.get(dev)?);
        after.checked_sub(self.before.get(dev).map_or(0, sum))
    }

    /// How much counter `key` of `dev` grew over the script.
    fn delta(&self, dev: &str, key: &str) -> Option<u64> {
        let after = self.after.get(dev)?.stat(key)?;
        let before = self.before.get(dev).and_then(|f| f.stat(key)).unwrap_or(0);
        after.checked_sub(before)
    }
}

/// The endpoint a step injects on: the second word of its command.
fn endpoint(step: &Step) -> u32 {
    step.command
        .split_whitespace()
        .nth(1)
        .and_then(|w| w.parse().ok())
        .unwrap_or(0)
}

/// The device name of endpoint `ep` of the sample.
fn device(ep: u32) -> String {
    format!("rust_iopf_ep{ep}")
}

fn code_word(code: Code) -> &'static str {
    match code {
        Code::Success => "success",
        Code::Invalid => "invalid",
        Code::Failure => "failure",
    }
}

/// Whether a step's groups reach the consumer's handler, and so are counted
/// as groups and traced by `iopf_handle`.
fn handled(step: &Step) -> bool {
    step.pages > 0
}

/// Everything in a step's events that the step and the sample's record
/// (`grpids`: the group indexes the mock reported) do not lead to.
pub fn check_step(step: &Step, grpids: &[u32], events: &[Event]) -> Vec<String> {
    let mut out = Vec::new();
    let dev = device(endpoint(step));
    let of = |name: &str| -> Vec<&Event> { events.iter().filter(|e| e.name == name).collect() };
    let mut expect_count = |name: &str, count: usize| {
        let seen = of(name).len();
        if seen != count {
            out.push(format!("{seen} {name} event(s), expected {count}"));
        }
    };
    let groups = step.groups;
    expect_count("iopf_report", groups * step.requests);
    expect_count("iopf_hold", groups * step.holds);
    expect_count("iopf_drop", if step.dropped > 0 { groups } else { 0 });
    expect_count("iopf_handle", if handled(step) { groups } else { 0 });
    expect_count("iopf_answer", groups);
    expect_count("iopf_abort", if step.abort.is_some() { groups } else { 0 });

    for e in events {
        if e.field("dev") != Some(dev.as_str()) {
            out.push(format!("{}: not on {dev}: {}", e.name, e.line));
        }
    }
    let lasts: Vec<u32> = of("iopf_report")
        .iter()
        .filter(|e| e.field("last") == Some("1"))
        .filter_map(|e| e.number("grpid").map(|g| g as u32))
        .collect();
    let sorted = |mut v: Vec<u32>| {
        v.sort_unstable();
        v
    };
    let want = sorted(grpids.to_vec());
    if sorted(lasts) != want {
        out.push("the last requests reported are not the mock's groups".into());
    }
    let answered: Vec<u32> = of("iopf_answer")
        .iter()
        .filter_map(|e| e.number("grpid").map(|g| g as u32))
        .collect();
    if sorted(answered) != want {
        out.push("the groups answered are not the mock's groups".into());
    }
    for e in of("iopf_answer") {
        if e.field("code") != Some(code_word(step.code)) {
            out.push(format!("answer code: {}", e.line));
        }
        if e.number("latency_us").is_none() {
            out.push(format!("answer without a latency: {}", e.line));
        }
    }
    if let Some(last) = of("iopf_hold").last() {
        if last.number("held") != Some(step.holds as i64) {
            out.push(format!("last hold: held={}", step.holds));
        }
    }
    for e in of("iopf_drop") {
        if e.number("count") != Some(step.dropped as i64) {
            out.push(format!("drop: count={} expected: {}", step.dropped, e.line));
        }
    }
    let refused = step.abort == Some("handler");
    for e in of("iopf_handle") {
        let ret_ok = e.number("ret").is_some_and(|r| (r != 0) == refused);
        if e.number("faults") != Some(step.pages as i64) || !ret_ok {
            out.push(format!(
                "handle: faults={} refused={refused}: {}",
                step.pages, e.line
            ));
        }
    }
    for e in of("iopf_abort") {
        if e.field("reason") != step.abort {
            out.push(format!("abort reason {:?}: {}", step.abort, e.line));
        }
    }
    out
}

/// Everything in the counters' growth over the script that the script does
/// not lead to, and what they must read when nothing is pending.
pub fn check_files(script: &[Step], files: &Snapshots) -> Vec<String> {
    let mut out = Vec::new();
    let mut expected: BTreeMap<(String, &str), u64> = BTreeMap::new();
    let mut held_max: BTreeMap<String, usize> = BTreeMap::new();
    for step in script {
        let dev = device(endpoint(step));
        let groups = step.groups as u64;
        let mut add = |key: &'static str, n: u64| {
            *expected.entry((dev.clone(), key)).or_default() += n;
        };
        add("requests", groups * step.requests as u64);
        add("groups", if handled(step) { groups } else { 0 });
        for code in [Code::Success, Code::Invalid, Code::Failure] {
            let n = if step.code == code { groups } else { 0 };
            add(
                match code {
                    Code::Success => "responses_success",
                    Code::Invalid => "responses_invalid",
                    Code::Failure => "responses_failure",
                },
                n,
            );
        }
        add("responses_other", 0);
        add("partials_dropped", groups * step.dropped as u64);
        add(
            "handler_failures",
            if step.abort == Some("handler") {
                groups
            } else {
                0
            },
        );
        add("alloc_failures", 0);
        let max = held_max.entry(dev).or_default();
        *max = (*max).max(step.holds);
    }
    for ((dev, key), want) in &expected {
        match files.delta(dev, key) {
            Some(got) if got == *want => {}
            got => out.push(format!("{dev}: {key} grew by {got:?}, expected {want}")),
        }
    }
    for (dev, files) in &files.after {
        for key in ["partials_held", "groups_pending"] {
            if files.stat(key) != Some(0) {
                out.push(format!(
                    "{dev}: {key} {:?} at the end, expected 0",
                    files.stat(key)
                ));
            }
        }
        let max = files.stat("partials_held_max").unwrap_or(0);
        let want = held_max.get(dev).copied().unwrap_or(0) as u64;
        if max < want {
            out.push(format!(
                "{dev}: partials_held_max {max}, expected at least {want}"
            ));
        }
    }
    // While iommu:iopf_answer is traced, every group handed to a handler is timed.
    for dev in held_max.keys() {
        let timed = files.timed(dev);
        let want = expected.get(&(dev.clone(), "groups")).copied();
        if timed != want {
            out.push(format!("{dev}: {timed:?} groups timed, expected {want:?}"));
        }
    }
    for dev in held_max.keys() {
        if !files.after.contains_key(dev) {
            out.push(format!("no debugfs files for {dev}"));
        }
    }
    out
}

/// The events, one line each, as tracefs printed them.
pub fn render_trace(events: &[Event]) -> String {
    let mut out = String::new();
    if events.is_empty() {
        out.push_str("    (no events)\n");
    }
    for e in events {
        let _ = writeln!(out, "    {}", e.line);
    }
    out
}

/// The debugfs files of `dev` after the script (the latency histogram
/// without its empty buckets).
pub fn render_files(files: &Snapshots, dev: &str) -> String {
    let mut out = String::new();
    let Some(f) = files.after.get(dev) else {
        let _ = writeln!(out, "\n  No debugfs files for {dev}.");
        return out;
    };
    let _ = writeln!(out, "\n  {QUEUE_DIR}/{dev}/stats:");
    for (k, v) in &f.stats {
        let _ = writeln!(out, "    {k} {v}");
    }
    let _ = writeln!(
        out,
        "\n  {QUEUE_DIR}/{dev}/latency (empty buckets left out):"
    );
    for (bucket, n) in f.latency.iter().filter(|(_, n)| *n > 0) {
        let _ = writeln!(out, "    {bucket} {n}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::tests::{steps, CONSOLE};
    use crate::demo::{parse, Transcript};

    fn transcript() -> Transcript {
        let t = parse(CONSOLE);
        assert!(t.problems.is_empty(), "{:?}", t.problems);
        t
    }

    fn step_problems(t: &Transcript) -> Vec<String> {
        steps()
            .iter()
            .enumerate()
            .flat_map(|(n, step)| {
                let grpids: Vec<u32> = t.steps[n].iter().filter_map(|g| g.grpid).collect();
                check_step(step, &grpids, &t.traces[n])
            })
            .collect()
    }

    #[test]
    fn a_tracefs_line_is_an_event_with_its_fields() {
        let e = Event::parse(
            "  kworker/u8:2-40  [000] .....  10.001020: iopf_answer: dev=rust_iopf_ep0 pasid=0 \
             grpid=1 code=success latency_us=10",
        )
        .unwrap();
        assert_eq!(e.name, "iopf_answer");
        assert_eq!(e.field("code"), Some("success"));
        assert_eq!(e.number("latency_us"), Some(10));
        assert_eq!(Event::parse("  sh-1 [000] 1.0: sched_switch: a=b"), None);
    }

    #[test]
    fn the_fixture_passes_every_check() {
        let t = transcript();
        assert_eq!(t.traces.len(), 2);
        assert_eq!(t.traces[0].len(), 3);
        assert!(step_problems(&t).is_empty(), "{:?}", step_problems(&t));
        let files = check_files(&steps(), &t.files);
        assert!(files.is_empty(), "{files:?}");
    }

    #[test]
    fn a_missing_wrong_or_misplaced_event_is_a_problem() {
        let mut t = transcript();
        t.traces[0].retain(|e| e.name != "iopf_answer");
        assert!(step_problems(&t)
            .iter()
            .any(|p| p == "0 iopf_answer event(s), expected 1"));

        let mut t = transcript();
        t.traces[0][2]
            .fields
            .insert("code".into(), "invalid".into());
        assert!(step_problems(&t)[0].starts_with("answer code"));

        let mut t = transcript();
        t.traces[1][0]
            .fields
            .insert("dev".into(), "rust_iopf_ep0".into());
        assert!(step_problems(&t)[0].starts_with("iopf_report: not on rust_iopf_ep1"));

        let mut t = transcript();
        t.traces[0][0].fields.insert("grpid".into(), "7".into());
        assert_eq!(
            step_problems(&t),
            vec!["the last requests reported are not the mock's groups"]
        );

        let mut t = transcript();
        t.traces[0][1].fields.insert("ret".into(), "-5".into());
        assert!(step_problems(&t)[0].starts_with("handle: faults=1 refused=false"));
    }

    #[test]
    fn counters_that_did_not_grow_as_recorded_are_problems() {
        let mut t = transcript();
        let ep0 = t.files.after.get_mut("rust_iopf_ep0").unwrap();
        ep0.stats.retain(|(k, _)| k != "responses_success");
        ep0.stats.push(("responses_success".into(), 7));
        ep0.stats.retain(|(k, _)| k != "groups_pending");
        ep0.stats.push(("groups_pending".into(), 1));
        ep0.latency.push(("16-32us".into(), 1));
        let problems = check_files(&steps(), &t.files);
        assert_eq!(
            problems,
            vec![
                "rust_iopf_ep0: responses_success grew by Some(2), expected 1",
                "rust_iopf_ep0: groups_pending Some(1) at the end, expected 0",
                "rust_iopf_ep0: Some(2) groups timed, expected Some(1)",
            ]
        );
        t.files.after.remove("rust_iopf_ep1");
        assert!(check_files(&steps(), &t.files)
            .iter()
            .any(|p| p == "no debugfs files for rust_iopf_ep1"));
    }
}
