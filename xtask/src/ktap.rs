//! Parser for KTAP (KUnit) and kselftest TAP results in a QEMU serial log.
//!
//! The console interleaves test output with kernel messages and printk
//! timestamps, and a crashing kernel just stops talking, so parsing never
//! fails: it keeps every result it finds and records anything suspicious as
//! a problem. Nesting follows indentation, as KTAP requires, so unindented
//! kernel noise cannot close a test. See `Documentation/dev-tools/ktap.rst`
//! and `tools/testing/kunit/kunit_parser.py` in the kernel tree.

use std::mem;

/// Result of a test; TODO and XFAIL count as Skip, being neither pass nor fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail,
    Skip,
}

/// One reported test, with its own subtests (e.g. the parameters of a
/// parameterized KUnit case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCase {
    /// `<missing N>` stands in for a planned test that never reported (it
    /// failed), `<unnamed N>` for a result line without a description.
    pub name: String,
    pub outcome: Outcome,
    /// Text after `#` on the result line minus a `SKIP` keyword: the skip
    /// reason, `TIMEOUT 30 seconds`, ...
    pub reason: Option<String>,
    /// Lines printed for this test, verbatim (`#` diagnostics and interleaved
    /// kernel messages such as an Oops), so that failures can be explained.
    pub diagnostics: Vec<String>,
    pub subtests: Vec<TestCase>,
}

/// A KUnit suite, or one kselftest TAP stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suite {
    pub name: String,
    /// Fail on a failed case, a crash or a plan mismatch, whatever the
    /// suite's own result line says.
    pub outcome: Outcome,
    pub cases: Vec<TestCase>,
    /// `N` from the `1..N` plan line.
    pub planned: Option<usize>,
    /// Crashes, plan and numbering trouble, here or in nested tests.
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    pub suites: Vec<Suite>,
    /// Problems not tied to one suite, e.g. no test output at all.
    pub problems: Vec<String>,
}

/// Leaf tests by outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl Counts {
    /// Adds the leaves below a test, or the test itself if it has none. A
    /// failed test whose leaves all passed adds a failure of its own (as
    /// kunit.py does), so `failed == 0` really means nothing failed.
    fn add(&mut self, outcome: Outcome, children: &[TestCase]) {
        let failed_before = self.failed;
        for child in children {
            self.add(child.outcome, &child.subtests);
        }
        if children.is_empty() || (outcome == Outcome::Fail && self.failed == failed_before) {
            match outcome {
                Outcome::Pass => self.passed += 1,
                Outcome::Fail => self.failed += 1,
                Outcome::Skip => self.skipped += 1,
            }
        }
    }
}

impl Report {
    /// Counts leaf test cases (a case with subtests counts its leaves, a
    /// suite without cases, e.g. one that failed to initialize, itself).
    pub fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for suite in &self.suites {
            counts.add(suite.outcome, &suite.cases);
        }
        counts
    }

    /// The first suite called `name`.
    pub fn suite(&self, name: &str) -> Option<&Suite> {
        self.suites.iter().find(|s| s.name == name)
    }
}

/// Parses every KTAP/TAP stream in a console log.
///
/// A `KTAP version` stream, or one whose results nest streams (KUnit),
/// gives a suite per result; a flat `TAP version` stream (kselftest) is one
/// suite, named by a preceding `# selftest: NAME` line or else `kselftest`.
/// A panic, `reboot:` or `Bail out!` ends all open streams; an `Oops` does
/// not, since KUnit survives faults in test threads: it is a diagnostic.
pub fn parse(log: &str) -> Report {
    let mut parser = Parser::default();
    log.lines().for_each(|line| parser.line(line));
    parser.unwind("log ended", |_| true);
    parser.report()
}

/// A test as read so far: a bare result line, or a stream of subtests.
#[derive(Debug, Default)]
struct Node {
    /// Empty until known; see [`Frame::adopt`].
    name: String,
    /// `None` for top-level streams and for tests cut off by a crash.
    result: Option<Outcome>,
    reason: Option<String>,
    diagnostics: Vec<String>,
    children: Vec<Node>,
    plan: Option<usize>,
    /// Opened by its own `KTAP version` or `# Subtest:` header.
    nested: bool,
    /// Stands in for a planned test that never reported.
    missing: bool,
    /// Why it ended without its result line or planned tests.
    crash: Option<String>,
    problems: Vec<String>,
}

impl Node {
    fn reported(&self) -> usize {
        self.children.iter().filter(|c| !c.missing).count()
    }

    /// Problems of this test itself: numbering, plan and crash.
    fn problems(&self, label: &str, require_plan: bool, out: &mut Vec<String>) {
        out.extend(self.problems.iter().map(|p| format!("{label}: {p}")));
        if require_plan && self.plan.is_none() {
            out.push(format!("{label}: missing plan line"));
        }
        let got = self.reported();
        if let Some(cause) = &self.crash {
            let after = match self.children.iter().rfind(|c| !c.missing) {
                Some(last) if last.crash.is_some() => format!("in test {}", last.name),
                Some(last) => format!("after test {}", last.name),
                None => "before its first test".to_owned(),
            };
            out.push(format!("{label}: crashed/incomplete {after} ({cause})"));
        } else if let Some(plan) = self.plan.filter(|&n| n != got) {
            out.push(format!("{label}: planned {plan} tests but {got} reported"));
        }
    }

    /// Problems of the streams nested below `path`; those need no plan, as
    /// KUnit prints none for most parameterized tests.
    fn nested_problems(&self, path: &str, out: &mut Vec<String>) {
        for child in self.children.iter().filter(|c| c.nested) {
            let path = format!("{path}.{}", child.name);
            child.problems(&format!("test {path}"), false, out);
            child.nested_problems(&path, out);
        }
    }

    /// Trusts the worst evidence: a crash, a broken plan, `not ok` or a
    /// failed subtest each make a test fail, whatever its result line says.
    fn into_case(self) -> TestCase {
        let broken = self.crash.is_some() || self.plan.is_some_and(|n| n != self.reported());
        let subtests: Vec<TestCase> = self.children.into_iter().map(Node::into_case).collect();
        let any = |o: Outcome| subtests.iter().any(|c| c.outcome == o);
        let outcome = match self.result {
            _ if broken || any(Outcome::Fail) => Outcome::Fail,
            Some(outcome) => outcome,
            // A top-level stream: nothing passed means all were skipped.
            None if any(Outcome::Pass) => Outcome::Pass,
            None => Outcome::Skip,
        };
        let (name, reason, diagnostics) = (self.name, self.reason, self.diagnostics);
        TestCase {
            name,
            outcome,
            reason,
            diagnostics,
            subtests,
        }
    }

    fn into_suite(self, name: String, require_plan: bool) -> Suite {
        let mut problems = Vec::new();
        self.problems(&format!("suite {name}"), require_plan, &mut problems);
        self.nested_problems(&name, &mut problems);
        let (planned, result, missing) = (self.plan, self.result, self.missing);
        // Say why a suite without cases failed, e.g. `# failed to initialize`.
        let why = match self.diagnostics.last() {
            Some(last) if self.children.is_empty() => format!(": {last}"),
            _ => String::new(),
        };
        let case = self.into_case();
        let unexplained = case.subtests.iter().all(|c| c.outcome != Outcome::Fail);
        if result == Some(Outcome::Fail) && !missing && unexplained {
            problems.push(format!("suite {name}: not ok without a failing test{why}"));
        }
        let (outcome, cases) = (case.outcome, case.subtests);
        Suite {
            name,
            outcome,
            cases,
            planned,
            problems,
        }
    }
}

/// An open stream: the test whose subtests are being read.
#[derive(Debug, Default)]
struct Frame {
    node: Node,
    /// Of the header; a result line indented less belongs to a parent.
    indent: usize,
    /// Diagnostics waiting for the result line they precede.
    pending: Vec<String>,
    ktap: bool,
    selftest: Option<String>,
}

impl Frame {
    /// Checks the numbering, and names the nameless after their number.
    fn adopt(&mut self, mut node: Node, number: Option<usize>) {
        let expected = self.node.children.len() + 1;
        if let Some(found) = number.filter(|&n| n != expected) {
            let msg = format!("expected test number {expected} but found {found}");
            self.node.problems.push(msg);
        }
        if node.name.is_empty() {
            // kselftest often prints no description: `ok 3 # SKIP ...`.
            node.name = format!("<unnamed {}>", number.unwrap_or(expected));
        }
        self.node.children.push(node);
    }
}

#[derive(Default)]
struct Parser {
    stack: Vec<Frame>,
    done: Vec<Frame>,
    /// From the latest `# selftest:` line, for the next top-level stream.
    selftest: Option<String>,
}

impl Parser {
    fn line(&mut self, raw: &str) {
        let body = strip_timestamps(raw.trim_matches('\r'));
        let text = body.trim();
        let indent = body.len() - body.trim_start().len();
        if text.is_empty() {
            return;
        }
        if let Some(ktap) = parse_version(text) {
            self.open(indent, ktap, "");
        } else if let Some(name) = text.strip_prefix("# Subtest:") {
            match self.stack.last_mut() {
                // Names the stream its `KTAP version` line just opened.
                Some(f)
                    if f.indent == indent && f.node.name.is_empty() && f.node.plan.is_none() =>
                {
                    f.node.name = name.trim().to_owned();
                }
                _ => self.open(indent, false, name.trim()),
            }
        } else if let (Some(plan), Some(f)) = (parse_plan(text), self.stack.last_mut()) {
            if f.node.plan.is_none() && f.node.children.is_empty() {
                f.node.plan = Some(plan);
                // Header lines such as `# module:` describe the stream.
                f.node.diagnostics.append(&mut f.pending);
            }
        } else if let Some((number, node)) = parse_result(text) {
            self.result(indent, number, node);
        } else {
            let selftest = text
                .strip_prefix("# selftests:")
                .or(text.strip_prefix("# selftest:"));
            if let Some(name) = selftest.map(str::trim).filter(|n| !n.is_empty()) {
                self.selftest = Some(name.to_owned());
            }
            if let Some(f) = self.stack.last_mut() {
                f.pending.push(text.to_owned());
            }
            let ends = ["Kernel panic - not syncing", "reboot: ", "Bail out!"];
            if ends.iter().any(|p| text.starts_with(p)) {
                self.unwind(text, |_| true);
            }
        }
    }

    /// Starts a stream; one indented no deeper than an open stream means
    /// that stream was cut off.
    fn open(&mut self, indent: usize, ktap: bool, name: &str) {
        self.unwind("a new KTAP/TAP header began", |f| f.indent >= indent);
        let mut frame = Frame {
            indent,
            ktap,
            ..Frame::default()
        };
        frame.node.name = name.to_owned();
        match self.stack.last_mut() {
            Some(parent) => {
                frame.node.nested = true;
                frame.node.diagnostics = mem::take(&mut parent.pending);
            }
            None => frame.selftest = self.selftest.take(),
        }
        self.stack.push(frame);
    }

    fn result(&mut self, indent: usize, number: usize, mut node: Node) {
        self.selftest = None;
        // A less indented result line reports the innermost deeper stream;
        // streams nested in that one never printed their own result line.
        while let Some(frame) = self.stack.pop_if(|f| f.indent > indent) {
            if self.stack.last().is_none_or(|p| p.indent <= indent) {
                return self.close(frame, Some((number, node)), "");
            }
            self.close(frame, None, "its result line is missing");
        }
        if let Some(parent) = self.stack.last_mut() {
            node.diagnostics = mem::take(&mut parent.pending);
            parent.adopt(node, Some(number));
        }
    }

    /// Closes the open streams matching `pred`, innermost first.
    fn unwind(&mut self, cause: &str, mut pred: impl FnMut(&Frame) -> bool) {
        while let Some(frame) = self.stack.pop_if(|f| pred(f)) {
            self.close(frame, None, cause);
        }
    }

    /// Files a popped stream under its parent, with planned tests that never
    /// reported added as failures.
    fn close(&mut self, mut frame: Frame, result: Option<(usize, Node)>, cause: &str) {
        let node = &mut frame.node;
        let seen = node.children.len();
        let number = result.map(|(number, line)| {
            if !line.name.is_empty() {
                node.name = line.name;
            }
            (node.result, node.reason) = (line.result, line.reason);
            number
        });
        if number.is_none() && (!self.stack.is_empty() || node.plan.is_some_and(|n| seen < n)) {
            node.crash = Some(cause.to_owned());
        }
        let expected = node
            .plan
            .unwrap_or(seen + usize::from(node.crash.is_some()));
        for n in seen + 1..=expected {
            let mut missing = Node {
                missing: true,
                result: Some(Outcome::Fail),
                ..Node::default()
            };
            missing.name = format!("<missing {n}>");
            missing.diagnostics = mem::take(&mut frame.pending);
            node.children.push(missing);
        }
        node.diagnostics.append(&mut frame.pending);
        match self.stack.last_mut() {
            Some(parent) => parent.adopt(frame.node, number),
            None => self.done.push(frame),
        }
    }

    fn report(self) -> Report {
        let mut report = Report::default();
        if self.done.is_empty() {
            report.problems.push("no KTAP/TAP output found".to_owned());
        }
        for frame in self.done {
            let node = frame.node;
            let flat = !frame.ktap && !node.children.iter().any(|c| c.nested);
            if frame.selftest.is_some() || node.result.is_some() || !node.name.is_empty() || flat {
                let name = match (frame.selftest, node.name.as_str()) {
                    (Some(selftest), _) => selftest,
                    (None, "") => "kselftest".to_owned(),
                    (None, name) => name.to_owned(),
                };
                report.suites.push(node.into_suite(name, true));
            } else {
                node.problems("KTAP output", true, &mut report.problems);
                for child in node.children {
                    let (name, nested) = (child.name.clone(), child.nested);
                    report.suites.push(child.into_suite(name, nested));
                }
            }
        }
        report
    }
}

/// `ok N [-] [name] [# [directive] [text]]`. SKIP, TODO and XFAIL neither
/// pass nor fail, so they map to Skip; other directives (TIMEOUT, ERROR)
/// keep the ok / not ok result.
fn parse_result(text: &str) -> Option<(usize, Node)> {
    let (ok, rest) = match text.strip_prefix("not ok ") {
        Some(rest) => (false, rest),
        None => (true, text.strip_prefix("ok ")?),
    };
    let (number, rest) = leading_number(rest.trim_start())?;
    let (desc, comment) = rest.split_once('#').unwrap_or((rest, ""));
    let (desc, comment) = (desc.trim(), comment.trim());
    let (keyword, after) = comment.split_once(' ').unwrap_or((comment, ""));
    let (outcome, reason) = match keyword.to_ascii_uppercase().as_str() {
        k if k.starts_with("SKIP") => (Outcome::Skip, after.trim()),
        "TODO" | "XFAIL" => (Outcome::Skip, comment),
        _ if ok => (Outcome::Pass, comment),
        _ => (Outcome::Fail, comment),
    };
    let mut node = Node {
        result: Some(outcome),
        ..Node::default()
    };
    node.name = desc.strip_prefix("- ").unwrap_or(desc).to_owned();
    node.reason = (!reason.is_empty()).then(|| reason.to_owned());
    Some((number, node))
}

/// `1..N`, possibly followed by a directive.
fn parse_plan(text: &str) -> Option<usize> {
    leading_number(text.strip_prefix("1..")?).map(|(plan, _)| plan)
}

/// `KTAP version N` gives `Some(true)`, `TAP version N` `Some(false)`.
fn parse_version(text: &str) -> Option<bool> {
    let rest = text
        .strip_prefix('K')
        .unwrap_or(text)
        .strip_prefix("TAP version ")?;
    let number = !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit());
    number.then(|| text.starts_with('K'))
}

/// A decimal number ending at a word boundary, and the text after it.
fn leading_number(s: &str) -> Option<(usize, &str)> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let rest = &s[end..];
    let boundary = matches!(rest.chars().next(), None | Some(' ' | '\t' | '#'));
    Some((s[..end].parse().ok().filter(|_| boundary)?, rest))
}

/// Strips printk prefixes, `[    1.234567] ` and caller ids like `[   T42] `,
/// keeping the indentation that follows them.
fn strip_timestamps(mut s: &str) -> &str {
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    while let Some((inner, after)) = s.strip_prefix('[').and_then(|r| r.split_once(']')) {
        let inner = inner.trim();
        let stamp = inner
            .split_once('.')
            .is_some_and(|(a, b)| digits(a) && digits(b));
        if !stamp && !inner.strip_prefix(['T', 'C']).is_some_and(digits) {
            break;
        }
        s = after.strip_prefix(' ').unwrap_or(after);
    }
    s
}

/// The text after a `# NAME:` mark on a console line, trimmed: the
/// diagnostic lines that tests print for the workbench, e.g.
/// `# iopf_bench: scenario=fixed_cost metric=faults_per_s value=1000`.
/// Whatever precedes the mark (a printk timestamp, KTAP indentation, a
/// KUnit case's own `# CASE:` prefix) is ignored.
pub fn marked<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let mark = format!("# {name}:");
    let at = line.find(&mark)?;
    Some(line[at + mark.len()..].trim())
}

/// The text after the `# NAME:` mark of each console line that has one.
pub fn marked_lines<'a>(console: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    console.lines().filter_map(move |line| marked(line, name))
}

/// The words of a marked line: `key=value` pairs, in order, and the other
/// words. One parser for every `# NAME: key=value ...` line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields<'a> {
    pub pairs: Vec<(&'a str, &'a str)>,
    /// Words without `=`, in order.
    pub words: Vec<&'a str>,
}

impl<'a> Fields<'a> {
    pub fn parse(text: &'a str) -> Self {
        let mut fields = Self::default();
        for word in text.split_whitespace() {
            match word.split_once('=') {
                Some(pair) => fields.pairs.push(pair),
                None => fields.words.push(word),
            }
        }
        fields
    }

    /// The value of the first `key=`.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    /// The value of the first `key=`, parsed.
    pub fn number<T: std::str::FromStr>(&self, key: &str) -> Option<T> {
        self.get(key)?.parse().ok()
    }

    /// Whether every word is a `key=value` pair with a key and a value.
    pub fn strict(&self) -> bool {
        self.words.is_empty()
            && self
                .pairs
                .iter()
                .all(|(k, v)| !k.is_empty() && !v.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders suites and cases as `name:Outcome(reason)[subtests]`.
    fn outline(report: &Report) -> String {
        fn cases(list: &[TestCase]) -> String {
            let one = |c: &TestCase| {
                let reason = c.reason.as_ref().map(|r| format!("({r})"));
                let subs = (!c.subtests.is_empty()).then(|| format!("[{}]", cases(&c.subtests)));
                let (reason, subs) = (reason.unwrap_or_default(), subs.unwrap_or_default());
                format!("{}:{:?}{reason}{subs}", c.name, c.outcome)
            };
            list.iter().map(one).collect::<Vec<_>>().join(" ")
        }
        let suite = |s: &Suite| format!("{}:{:?}[{}]", s.name, s.outcome, cases(&s.cases));
        report
            .suites
            .iter()
            .map(suite)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Parses `log` and checks its outline, every problem (report-level
    /// first) and the counts as `[passed, failed, skipped]`.
    fn check(log: &str, expected: &str, problems: &[&str], counts: [usize; 3]) -> Report {
        let report = parse(log);
        assert_eq!(outline(&report), expected);
        let suites = report.suites.iter().flat_map(|s| &s.problems);
        let found: Vec<_> = report.problems.iter().chain(suites).collect();
        assert_eq!(found, problems);
        let c = report.counts();
        assert_eq!([c.passed, c.failed, c.skipped], counts);
        report
    }

    /// KUnit output as QEMU's console shows it; the second suite has a
    /// parameterized case, whose parameters form a third level.
    const KUNIT: &str = "[    0.9] KTAP version 1
[    0.9] 1..2
[    0.9]     KTAP version 1
[    0.9]     # Subtest: iopf
[    0.9]     # module: iopf_kunit
[    0.9]     1..3
[    0.9]     ok 1 iopf_single_page
[    0.9]     # iopf_group_order: EXPECTATION FAILED at iopf_kunit.c:42
[    0.9]     not ok 2 iopf_group_order
[    0.9]     ok 3 iopf_arm_only # SKIP needs arm64
[    0.9] # iopf: pass:1 fail:1 skip:1 total:3
[    0.9] not ok 1 iopf
[    1.0]     KTAP version 1
[    1.0]     # Subtest: params
[    1.0]     1..2
[    1.0]         KTAP version 1
[    1.0]         # Subtest: sizes
[    1.0]         ok 1 4K
[    1.0]         # sizes: EXPECTATION FAILED
[    1.0]         not ok 2 2M
[    1.0]         ok 3 1G # SKIP too big
[    1.0]     # sizes: pass:1 fail:1 skip:1 total:3
[    1.0]     not ok 1 sizes
[    1.0]     ok 2 plain
[    1.0] ok 2 params
";

    /// The first `lines` lines of [`KUNIT`], then `tail`.
    fn kunit_cut(lines: usize, tail: &str) -> String {
        KUNIT.split_inclusive('\n').take(lines).collect::<String>() + tail
    }

    #[test]
    fn kunit_nesting_parameters_skips_failures_and_diagnostics() {
        // Parameterized cases without a plan are normal; `params` reports ok
        // but a parameter failed, and the cases are trusted.
        let expected = "iopf:Fail[iopf_single_page:Pass iopf_group_order:Fail \
                        iopf_arm_only:Skip(needs arm64)] \
                        params:Fail[sizes:Fail[4K:Pass 2M:Fail 1G:Skip(too big)] plain:Pass]";
        let report = check(KUNIT, expected, &[], [3, 2, 2]);
        let iopf = report.suite("iopf").unwrap();
        assert_eq!(iopf.planned, Some(3));
        let failure = "# iopf_group_order: EXPECTATION FAILED at iopf_kunit.c:42";
        assert_eq!(iopf.cases[1].diagnostics, [failure]);
        assert!(iopf.cases[0].diagnostics.is_empty());
        let sizes = &report.suite("params").unwrap().cases[0];
        assert_eq!(
            sizes.subtests[1].diagnostics,
            ["# sizes: EXPECTATION FAILED"]
        );
        assert_eq!(sizes.diagnostics, ["# sizes: pass:1 fail:1 skip:1 total:3"]);
        assert_eq!(report.suite("nope"), None);
    }

    #[test]
    fn panic_mid_suite_keeps_seen_cases_and_fails_missing_ones() {
        let panic = "Kernel panic - not syncing: Fatal exception";
        let log = kunit_cut(
            7,
            &format!("[    2.1] BUG: kernel NULL pointer dereference\n{panic}\n"),
        );
        // The second planned suite never started, so it fails as a whole.
        let expected = "iopf:Fail[iopf_single_page:Pass <missing 2>:Fail <missing 3>:Fail] \
                        <missing 2>:Fail[]";
        let problems = [
            format!("KTAP output: crashed/incomplete in test iopf ({panic})"),
            format!("suite iopf: crashed/incomplete after test iopf_single_page ({panic})"),
        ];
        let problems: Vec<_> = problems.iter().map(String::as_str).collect();
        let report = check(&log, expected, &problems, [1, 3, 0]);
        let diagnostics = &report.suites[0].cases[1].diagnostics;
        assert_eq!(
            diagnostics,
            &["BUG: kernel NULL pointer dereference", panic]
        );
    }

    #[test]
    fn log_ending_among_parameters_fails_every_open_level() {
        let expected = "iopf:Fail[iopf_single_page:Pass iopf_group_order:Fail \
                        iopf_arm_only:Skip(needs arm64)] \
                        params:Fail[sizes:Fail[4K:Pass <missing 2>:Fail] <missing 2>:Fail]";
        let problems = [
            "suite params: crashed/incomplete in test sizes (log ended)",
            "test params.sizes: crashed/incomplete after test 4K (log ended)",
        ];
        check(&kunit_cut(18, ""), expected, &problems, [2, 3, 1]);
    }

    #[test]
    fn log_ending_mid_suite_without_plan_fails_the_running_test() {
        let log = "KTAP version 1\n1..1\n  KTAP version 1\n  # Subtest: s\n  ok 1 a\n  # b: go\n";
        let problems = [
            "suite s: missing plan line",
            "suite s: crashed/incomplete after test a (log ended)",
        ];
        let report = check(log, "s:Fail[a:Pass <missing 2>:Fail]", &problems, [1, 1, 0]);
        assert_eq!(report.suites[0].cases[1].diagnostics, ["# b: go"]);
    }

    #[test]
    fn missing_plan_is_a_problem_but_parsing_goes_on() {
        let log = "KTAP version 1\n1..1\n  KTAP version 1\n  ok 1 a\n  ok 2 b\nok 1 s\n";
        let problems = ["suite s: missing plan line"];
        check(log, "s:Pass[a:Pass b:Pass]", &problems, [2, 0, 0]);
    }

    #[test]
    fn plan_disagreeing_with_results_fails_the_suite() {
        let log = "KTAP version 1\n1..1\n  KTAP version 1\n  1..3\n  ok 1 a\n  ok 2 b\nok 1 s\n";
        let problems = ["suite s: planned 3 tests but 2 reported"];
        check(
            log,
            "s:Fail[a:Pass b:Pass <missing 3>:Fail]",
            &problems,
            [2, 1, 0],
        );
        let problems = [
            "suite kselftest: expected test number 2 but found 3",
            "suite kselftest: planned 1 tests but 2 reported",
        ];
        let log = "TAP version 13\n1..1\nok 1 a\nok 3 b\n";
        check(log, "kselftest:Fail[a:Pass b:Pass]", &problems, [2, 1, 0]);
    }

    #[test]
    fn timestamps_and_interleaved_kernel_messages_are_tolerated() {
        // An Oops in a test thread is caught by KUnit, which carries on.
        let log = "[    0.000000] Linux version 7.3.0\r
[    0.500000][    T1] KTAP version 1\r
[    0.500000][    T1] 1..1\r
[    0.500001][    T1]     KTAP version 1\r
[    0.500002][    T1]     # Subtest: iopf\r
[    0.500003][   T42] random: crng init done\r
[    0.500004][    T1]     1..2\r
[    0.600000][   T57] Oops: general protection fault, probably for non-canonical address\r
[    0.600001][    T1]     # iopf_fault: try faulted\r
[    0.600002][    T1]     not ok 1 iopf_fault\r
[    0.700000] virtio_blk virtio0: [vda] 2048 512-byte logical blocks\r
    ok 2 second\r
[    0.800000] not ok 1 iopf\r
[    0.900000] reboot: Power down\r
";
        let report = check(
            log,
            "iopf:Fail[iopf_fault:Fail second:Pass]",
            &[],
            [1, 1, 0],
        );
        let cases = &report.suites[0].cases;
        assert_eq!(cases[0].diagnostics.len(), 2);
        assert!(cases[0].diagnostics[0].starts_with("Oops: general protection fault"));
        let noise = "virtio_blk virtio0: [vda] 2048 512-byte logical blocks";
        assert_eq!(cases[1].diagnostics, [noise]);
    }

    #[test]
    fn kselftest_streams_are_suites_named_by_selftest_lines() {
        let log = "# selftest: iommufd
TAP version 13
1..3
# Starting 3 tests from 1 test cases.
ok 1 iommufd.basic
# iommufd.c:123:fault:Expected 0 (0) == -1 (-1)
not ok 2 iommufd.fault
ok 3 # SKIP no IOPF capable device
# Totals: pass:1 fail:1 xfail:0 xpass:0 skip:1 error:0
$ ./other_test
TAP version 13
1..1
ok 1 - works
";
        let expected = "iommufd:Fail[iommufd.basic:Pass iommufd.fault:Fail \
                        <unnamed 3>:Skip(no IOPF capable device)] kselftest:Pass[works:Pass]";
        let report = check(log, expected, &[], [2, 1, 1]);
        let fault = "# iommufd.c:123:fault:Expected 0 (0) == -1 (-1)";
        assert_eq!(report.suites[0].cases[1].diagnostics, [fault]);
    }

    #[test]
    fn new_header_or_bail_out_cuts_off_a_stream() {
        let log = "# selftest: one\nTAP version 13\n1..3\nok 1 a\n\
                   # selftest: two\nTAP version 13\n1..2\nok 1 b\nBail out! no /dev/iommu\n";
        let expected = "one:Fail[a:Pass <missing 2>:Fail <missing 3>:Fail] \
                        two:Fail[b:Pass <missing 2>:Fail]";
        let problems = [
            "suite one: crashed/incomplete after test a (a new KTAP/TAP header began)",
            "suite two: crashed/incomplete after test b (Bail out! no /dev/iommu)",
        ];
        check(log, expected, &problems, [2, 3, 0]);
    }

    #[test]
    fn repeated_top_level_ktap_headers_are_all_collected() {
        let log = "KTAP version 1\n1..1\n  KTAP version 1\n  # Subtest: a\n  1..1\n\
                   \x20 ok 1 x\nok 1 a\nkunit: loading module\nKTAP version 1\n1..1\n\
                   \x20 KTAP version 1\n  1..1\n  ok 1 y # SKIP off\nok 1 b # SKIP off\n";
        check(log, "a:Pass[x:Pass] b:Skip[y:Skip(off)]", &[], [1, 0, 1]);
    }

    #[test]
    fn suite_without_cases_counts_as_one_test() {
        let log = "KTAP version 1\n1..2\n  # failed to initialize (-12)\nnot ok 1 iopf\n\
                   ok 2 arm # SKIP needs arm64\n";
        let problems = ["suite iopf: not ok without a failing test: # failed to initialize (-12)"];
        check(log, "iopf:Fail[] arm:Skip[]", &problems, [0, 1, 1]);
    }

    #[test]
    fn old_tap14_kunit_output_and_no_output() {
        let log = "TAP version 14\n1..1\n\t# Subtest: example\n\t1..2\n\tok 1 - simple\n\
                   \tnot ok 2 - broken\nnot ok 1 - example\n";
        check(log, "example:Fail[simple:Pass broken:Fail]", &[], [1, 1, 0]);
        let log = "[    0.1] Booting\n[    0.2] Kernel panic - not syncing: no init\n";
        check(log, "", &["no KTAP/TAP output found"], [0, 0, 0]);
    }

    #[test]
    fn line_forms_and_directives() {
        assert_eq!(parse_plan("1..0 # SKIP no iommu"), Some(0));
        assert_eq!(parse_plan("1..x"), None);
        assert_eq!(parse_version("TAP version 13"), Some(false));
        assert_eq!(parse_version("KTAP version 1 extra"), None);
        assert!(parse_result("ok 1x").is_none() && parse_result("okay 1 a").is_none());
        let (number, node) = parse_result("ok 5 check return code # rcode=0").unwrap();
        assert_eq!((number, node.name.as_str()), (5, "check return code"));
        assert_eq!(node.result, Some(Outcome::Pass));
        let directive = |line| parse_result(line).map(|(_, n)| (n.result.unwrap(), n.reason));
        let reason = |r: &str| Some(r.to_owned());
        assert_eq!(
            directive("ok 2 # XFAIL known"),
            Some((Outcome::Skip, reason("XFAIL known")))
        );
        let timeout = directive("not ok 1 slow # TIMEOUT 30 seconds");
        assert_eq!(timeout, Some((Outcome::Fail, reason("TIMEOUT 30 seconds"))));
        let skip = directive("ok 2 lower # skip no device");
        assert_eq!(skip, Some((Outcome::Skip, reason("no device"))));
        let todo = directive("not ok 3 later # TODO not written yet");
        assert_eq!(todo, Some((Outcome::Skip, reason("TODO not written yet"))));
        assert_eq!(strip_timestamps("[vda] 2048"), "[vda] 2048");
        assert_eq!(strip_timestamps("[ 12.5][  C3]   x"), "  x");
    }

    #[test]
    fn marked_lines_are_found_behind_any_prefix() {
        let log = "[   12.3] # iopf_bench: scenario=a metric=b value=1\n\
                   \x20   # iopf_rel_x: # iopf_reliability: expect_warning: iopf: x\n\
                   # iopf_bench_x: not the mark\n\
                   # iopf_benchmark: nor this\n";
        assert_eq!(
            marked(log.lines().next().unwrap(), "iopf_bench"),
            Some("scenario=a metric=b value=1")
        );
        assert_eq!(
            marked_lines(log, "iopf_reliability").collect::<Vec<_>>(),
            ["expect_warning: iopf: x"]
        );
        assert_eq!(marked_lines(log, "iopf_bench").count(), 1);
        assert_eq!(marked("# iopf_bench:", "iopf_bench"), Some(""));
    }

    #[test]
    fn fields_keep_order_and_tell_loose_words() {
        let f = Fields::parse("case=a n=3 x=0x10 end ratio=1.5 n=4");
        assert_eq!(f.get("case"), Some("a"));
        assert_eq!(f.number::<u64>("n"), Some(3), "the first of a key");
        assert_eq!(f.number::<f64>("ratio"), Some(1.5));
        assert_eq!(f.number::<u64>("x"), None);
        assert_eq!(f.get("missing"), None);
        assert_eq!(f.words, ["end"]);
        assert!(!f.strict());
        assert!(Fields::parse("a=1 b=2").strict());
        assert!(!Fields::parse("a=1 b=").strict());
        assert!(!Fields::parse("=1").strict());
        assert_eq!(Fields::parse("k=v=w").get("k"), Some("v=w"));
        assert_eq!(Fields::parse(""), Fields::default());
    }
}
