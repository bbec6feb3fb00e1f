//! `assertions`: how many KUnit assertions each IOPF case executes, with the
//! tests of a base revision and with the repo's, on the Rust kernel.
//!
//! A port of the tests (issue 17: one harness, families of cases as tables
//! and parameters) may lose no assertion and no case. Reading the diff cannot
//! show it: helpers moved into the harness, loops replaced copies. So this
//! counts what runs. `tests/assertions/kunit-count.patch` makes every
//! `KUNIT_EXPECT_*`/`KUNIT_ASSERT_*` (and `KUNIT_FAIL`) count itself in its
//! `struct kunit`, passed or failed, in whatever function and thread it
//! runs (harness and mock helpers included), and KUnit print the count of
//! each case and of each parameter:
//! `# kunit_assertions: suite=S case=C params=P count=N expects=E` and
//! `# kunit_assertions: suite=S case=C param=I count=N expects=E desc=D`
//! (`expects`: the `KUNIT_EXPECT_*` and `KUNIT_FAIL` among them).
//!
//! One kernel, in a tree and build directory of its own
//! (`assertions/` in the cache; the test kernels are not touched): the Rust
//! test configuration plus the `iopf_bench` suite. It is built and booted
//! with `tests/kunit/` as in the repo, then again with `tests/kunit/` as at
//! the base revision (the rest stays the repo's, so the second build is
//! incremental). The old cases are paired with the new ones by name, or by
//! `tests/assertions/port.map` for the renamed and the merged ones, and
//! the table says, per case, the assertions before and after.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use comfy_table::{presets::ASCII_MARKDOWN, CellAlignment, Table};

use crate::cli::{Arch, AssertionsArgs, Variant};
use crate::diff;
use crate::judge::{self, Machine, Rules, Splats, Want};
use crate::kconfig::Fragment;
use crate::kernel::{self, Profile, Tree};
use crate::ktap::{self, Fields, Outcome, Report};
use crate::overlay::{self, Plan};
use crate::paths::Workspace;
use crate::qemu::Boot;
use crate::reliability;
use crate::toolchain;

/// The mark of the counts KUnit prints with the patch.
pub const MARK: &str = "kunit_assertions";
/// The instrumentation of KUnit, applied to the pristine files.
const PATCH: &str = "tests/assertions/kunit-count.patch";
/// Old cases that have another name after the port.
const MAP: &str = "tests/assertions/port.map";
/// The tests, in the repo and in the kernel tree.
const TESTS: &str = "tests/kunit";
const KERNEL_TESTS: &str = "drivers/iommu/iopf/tests/kunit";
/// The suites both sides must run.
const SUITES: &[&str] = &["iopf", "iopf_sva", "iopf_reliability", "iopf_bench"];
/// The differential suite's streams, the same on every run.
const DIFF_SEED: u64 = 1;

/// Which tests a kernel carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side<'a> {
    /// `tests/kunit` as at this revision.
    Old(&'a str),
    /// `tests/kunit` as in the repo's work tree.
    New,
}

impl Side<'_> {
    fn name(self) -> &'static str {
        match self {
            Side::Old(_) => "old",
            Side::New => "new",
        }
    }
}

pub fn run(args: &AssertionsArgs) -> Result<()> {
    let ws = Workspace::discover()?;
    let base = git(
        &ws.repo,
        &["rev-parse", "--short", &format!("{}^{{commit}}", args.base)],
    )
    .with_context(|| format!("{} is not a revision of the repo", args.base))?;
    let head = git(&ws.repo, &["rev-parse", "--short", "HEAD"])?;
    let dirty = !git(&ws.repo, &["status", "--porcelain", "--", TESTS])?.is_empty();
    let new_name = if dirty {
        format!("{head} + work tree")
    } else {
        head
    };
    let cmdline = cmdline();
    let mut reports = Vec::new();
    for side in [Side::New, Side::Old(&base)] {
        let log = ws.logs()?.join(format!(
            "assertions-x86_64-rust-{}.console.log",
            side.name()
        ));
        let text = if args.from_logs {
            fs::read_to_string(&log)
                .with_context(|| format!("no console log of a run: {}", log.display()))?
        } else {
            let image = build(&ws, side, args.jobs.unwrap_or_else(toolchain::default_jobs))?;
            boot(&image, &cmdline, args.timeout, &log)?
        };
        let measured = Measured::parse(&text)?;
        let report = ktap::parse(&text);
        for suite in SUITES {
            ensure!(
                measured.leaves.iter().any(|l| l.suite == *suite),
                "{} tests: no count of suite {suite} in {}",
                side.name(),
                log.display()
            );
        }
        reports.push((measured, report));
    }
    let (old, new) = (&reports[1], &reports[0]);
    let map =
        PortMap::parse(&fs::read_to_string(ws.repo.join(MAP))?).with_context(|| MAP.to_string())?;
    let cmp = compare(&old.0, &new.0, &map)?;
    let mut text = format!(
        "KUnit assertions executed per case (`cargo xtask assertions --base {}`)\n\
         old: tests/kunit at {base}; new: tests/kunit at {new_name}; both on the\n\
         Rust kernel (CONFIG_IOMMU_IOPF_RUST=y, the test configuration plus\n\
         CONFIG_IOMMU_IOPF_BENCH=y), booted under TCG with:\n  {cmdline}\n\
         A count (old, new) is every KUNIT_EXPECT_*/KUNIT_ASSERT_*/KUNIT_FAIL the\n\
         case ran, passed or failed, in harness and mock helpers and threads too;\n\
         old E and new E count the KUNIT_EXPECT_*/KUNIT_FAIL among them. Cases\n\
         count each parameter as one. Result: pass (p), fail (F), skip (s).\n\n",
        args.base
    );
    text.push_str(&cmp.render(&old.1, &new.1));
    print!("{text}");
    let out = args.out.clone().unwrap_or_else(|| {
        ws.repo
            .join("tests/assertions")
            .join(format!("port-{}.txt", args.base))
    });
    fs::write(&out, &text).with_context(|| format!("writing {}", out.display()))?;
    eprintln!("==> table written to {}", out.display());
    if !cmp.kept() {
        bail!("the port lost assertions or cases (see the table)");
    }
    Ok(())
}

/// Boot arguments: every IOPF suite, the benchmark's too, the test boot's
/// flood, and fixed differential streams.
fn cmdline() -> String {
    format!(
        "kunit.filter_glob=iopf* iopf_bench=1 {} {}",
        reliability::cmdline(false),
        diff::TEST_PLAN.cmdline(DIFF_SEED)
    )
}

/// The repo's overlay with KUnit instrumented and, for [`Side::Old`], the
/// tests of that revision; applied to the tree of `assertions/` and built.
fn build(ws: &Workspace, side: Side, jobs: usize) -> Result<PathBuf> {
    toolchain::check_build()?;
    let pristine = ws.pristine()?;
    let mut plan = overlay::plan(&ws.repo, &pristine)?;
    instrument(&ws.repo.join(PATCH), &pristine, &mut plan)?;
    if let Side::Old(rev) = side {
        swap_tests(&ws.repo, rev, &mut plan)?;
    }
    let dir = ws.cache.join("assertions");
    let work = dir.join("linux");
    let out = dir.join("build-x86_64-rust");
    let applied = overlay::apply(&pristine, &work, &plan)?;
    eprintln!(
        "==> {} tests: overlay {} file(s) written, {} restored",
        side.name(),
        applied.written.len(),
        applied.restored.len()
    );
    let (arch, variant) = (Arch::X86_64, Variant::Rust);
    let mut merged =
        kernel::merged_fragments(ws, &kernel::fragments(arch, variant, Profile::Test))?;
    merged.merge(&Fragment::parse("CONFIG_IOMMU_IOPF_BENCH=y\n")?);
    let tree = Tree {
        work: &work,
        out: &out,
        arch,
        jobs,
    };
    let name = format!("x86_64-rust with the {} tests", side.name());
    let image = kernel::configure_and_make(&tree, &name, &merged, None, false)?;
    kernel::check_iopf_objects(&out, variant)?;
    Ok(image)
}

/// Applies the patch at `patch` to the files it names, as the plan has them
/// (or as pristine), and puts the results in the plan.
fn instrument(patch: &Path, pristine: &Path, plan: &mut Plan) -> Result<()> {
    let text = fs::read_to_string(patch).with_context(|| format!("reading {}", patch.display()))?;
    let files: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.strip_prefix("+++ b/"))
        .map(|p| PathBuf::from(p.split('\t').next().unwrap_or(p)))
        .collect();
    ensure!(!files.is_empty(), "{} patches no file", patch.display());
    let scratch = overlay::tempdir()?;
    for file in &files {
        let base = match plan.get(file) {
            Some(content) => content.clone(),
            None => fs::read(pristine.join(file))
                .with_context(|| format!("reading {}", pristine.join(file).display()))?,
        };
        let at = scratch.join(file);
        fs::create_dir_all(at.parent().unwrap())?;
        fs::write(at, base)?;
    }
    let out = Command::new("patch")
        .args(["-p1", "--batch", "--forward", "--fuzz=0", "--silent"])
        .args(["--no-backup-if-mismatch", "-i"])
        .arg(patch)
        .current_dir(&scratch)
        .output()
        .context("running patch")?;
    ensure!(
        out.status.success(),
        "{} does not apply:\n{}{}",
        patch.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for file in files {
        plan.insert(file.clone(), fs::read(scratch.join(&file))?);
    }
    fs::remove_dir_all(&scratch)?;
    Ok(())
}

/// Replaces the tests in `plan` by `tests/kunit` as at `rev`.
fn swap_tests(repo: &Path, rev: &str, plan: &mut Plan) -> Result<()> {
    plan.retain(|path, _| !path.starts_with(KERNEL_TESTS));
    let files = git(repo, &["ls-tree", "-r", "--name-only", rev, "--", TESTS])?;
    ensure!(!files.is_empty(), "{rev} has no {TESTS}");
    for file in files.lines() {
        let rel = Path::new(file).strip_prefix(TESTS)?;
        let out = Command::new("git")
            .current_dir(repo)
            .args(["show", &format!("{rev}:{file}")])
            .output()?;
        ensure!(out.status.success(), "git show {rev}:{file} failed");
        plan.insert(Path::new(KERNEL_TESTS).join(rel), out.stdout);
    }
    Ok(())
}

fn git(repo: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git").current_dir(repo).args(args).output()?;
    ensure!(
        out.status.success(),
        "git {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

/// Boots `image` under TCG and returns its console; fails if a suite is
/// missing, and says (without failing) what else went wrong.
fn boot(image: &Path, cmdline: &str, timeout: u64, log: &Path) -> Result<String> {
    eprintln!("==> booting {}", image.display());
    let judged = judge::boot(
        &Boot {
            arch: Arch::X86_64,
            image,
            initrd: None,
            cmdline,
            timeout: Duration::from_secs(timeout),
            log: log.to_path_buf(),
        },
        Machine::Tcg(&[]),
        &Rules {
            wants: SUITES.iter().map(|s| Want::ran(s)).collect(),
            splats: Splats::Every,
            ktap_problems: true,
        },
    )?;
    let c = judged.report.counts();
    eprintln!(
        "==> {:.0}s: {} passed, {} failed, {} skipped; console {}",
        judged.console.took.as_secs_f64(),
        c.passed,
        c.failed,
        c.skipped,
        log.display()
    );
    for p in &judged.problems {
        eprintln!("    problem: {p}");
    }
    if judged.problems.iter().any(|p| p.contains("did not run")) {
        bail!("a suite did not run: see {}", log.display());
    }
    Ok(judged.console.text)
}

/// The count of one case, or of one parameter of a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    pub suite: String,
    pub case: String,
    /// The parameter's description.
    pub param: Option<String>,
    /// Assertions and expectations.
    pub count: u64,
    /// Of those, expectations.
    pub expects: u64,
}

impl Counted {
    /// `case`, or `case[param]`: how the table and the map name it.
    pub fn key(&self) -> String {
        match &self.param {
            Some(p) => format!("{}[{p}]", self.case),
            None => self.case.clone(),
        }
    }
}

/// The counts of a boot, in console order.
#[derive(Debug, Default)]
pub struct Measured {
    /// Each case without parameters, and each parameter.
    pub leaves: Vec<Counted>,
    /// Each case with parameters, its parameters' counts and its own
    /// (`param_init`) together.
    pub families: Vec<Counted>,
}

impl Measured {
    pub fn parse(console: &str) -> Result<Self> {
        let mut m = Self::default();
        for rest in ktap::marked_lines(console, MARK) {
            // The description, last, may hold spaces.
            let (head, desc) = match rest.split_once(" desc=") {
                Some((head, desc)) => (head, Some(desc.trim().to_string())),
                None => (rest, None),
            };
            let f = Fields::parse(head);
            let field = |k: &str| f.get(k).with_context(|| format!("no {k}= in `{rest}`"));
            let count = f
                .number("count")
                .with_context(|| format!("no count= in `{rest}`"))?;
            let expects = f
                .number("expects")
                .with_context(|| format!("no expects= in `{rest}`"))?;
            let counted = Counted {
                suite: field("suite")?.to_string(),
                case: field("case")?.to_string(),
                param: None,
                count,
                expects,
            };
            if f.get("param").is_some() {
                m.leaves.push(Counted {
                    param: Some(desc.context("a parameter without desc=")?),
                    ..counted
                });
            } else if f.number::<u64>("params").context("no params=")? > 0 {
                m.families.push(counted);
            } else {
                m.leaves.push(counted);
            }
        }
        ensure!(
            !m.leaves.is_empty(),
            "no `# {MARK}:` line: was KUnit instrumented ({PATCH})?"
        );
        Ok(m)
    }

    fn suites(&self) -> Vec<&str> {
        let mut seen = Vec::new();
        for l in &self.leaves {
            if !seen.contains(&l.suite.as_str()) {
                seen.push(l.suite.as_str());
            }
        }
        seen
    }

    fn find(&self, suite: &str, key: &str) -> Option<&Counted> {
        self.leaves
            .iter()
            .find(|l| l.suite == suite && l.key() == key)
    }
}

/// `tests/assertions/port.map`: the new names of old cases, and the
/// explained losses.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PortMap {
    /// (suite, old case) to the new cases or parameters that check what it did.
    pub renamed: BTreeMap<(String, String), Vec<String>>,
    /// (suite, old case) whose count may drop, and why.
    pub fewer: BTreeMap<(String, String), String>,
}

impl PortMap {
    /// Lines `SUITE OLD = NEW [NEW...]` (a new name is `case` or
    /// `case[param]`) and `fewer SUITE OLD: REASON`; `#` starts a comment.
    pub fn parse(text: &str) -> Result<Self> {
        let mut map = Self::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(rest) = line.strip_prefix("fewer ") {
                let (what, why) = rest
                    .split_once(':')
                    .with_context(|| format!("line {}: `fewer SUITE CASE: REASON`", n + 1))?;
                let words: Vec<&str> = what.split_whitespace().collect();
                let [suite, case] = words[..] else {
                    bail!("line {}: `fewer SUITE CASE: REASON`", n + 1);
                };
                map.fewer
                    .insert((suite.into(), case.into()), why.trim().to_string());
            } else if let Some((old, new)) = line.split_once('=') {
                let words: Vec<&str> = old.split_whitespace().collect();
                let [suite, case] = words[..] else {
                    bail!("line {}: `SUITE OLD = NEW...`", n + 1);
                };
                let new: Vec<String> = new.split_whitespace().map(str::to_string).collect();
                ensure!(!new.is_empty(), "line {}: no new case", n + 1);
                map.renamed.insert((suite.into(), case.into()), new);
            } else {
                bail!("line {}: not a mapping: {line}", n + 1);
            }
        }
        Ok(map)
    }
}

/// How an old case fared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// As many assertions or more.
    Kept,
    /// Fewer, for the reason the map gives.
    Explained(String),
    /// Fewer, unexplained.
    Fewer,
    /// No new case checks it.
    Lost,
    /// A new case or parameter, with no old one.
    Added,
}

/// One row: an old case and what it became, or a new case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub suite: String,
    pub old: Option<Counted>,
    pub new: Vec<Counted>,
    pub status: Status,
}

/// One suite's totals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub suite: String,
    pub old_cases: usize,
    pub new_cases: usize,
    pub old_assertions: u64,
    pub new_assertions: u64,
    pub old_expects: u64,
    pub new_expects: u64,
}

#[derive(Debug, Default)]
pub struct Comparison {
    pub rows: Vec<Row>,
    pub totals: Vec<Totals>,
}

/// Pairs every old case with its new cases (same name, or the map's) and
/// lists the new cases nobody had.
pub fn compare(old: &Measured, new: &Measured, map: &PortMap) -> Result<Comparison> {
    let mut suites: Vec<&str> = old.suites();
    for s in new.suites() {
        if !suites.contains(&s) {
            suites.push(s);
        }
    }
    for (suite, case) in map.renamed.keys().chain(map.fewer.keys()) {
        ensure!(
            old.find(suite, case).is_some(),
            "{MAP}: {suite} {case} is no old case"
        );
    }
    let mut cmp = Comparison::default();
    for suite in suites {
        let mut used = BTreeSet::new();
        let mut totals = Totals {
            suite: suite.to_string(),
            ..Totals::default()
        };
        for o in old.leaves.iter().filter(|l| l.suite == suite) {
            totals.old_cases += 1;
            totals.old_assertions += o.count;
            totals.old_expects += o.expects;
            let id = (suite.to_string(), o.key());
            let targets = match map.renamed.get(&id) {
                Some(t) => t.clone(),
                None => vec![o.key()],
            };
            let found: Vec<Counted> = targets
                .iter()
                .filter_map(|t| new.find(suite, t).cloned())
                .collect();
            for t in &found {
                ensure!(
                    used.insert(t.key()),
                    "{suite} {}: counted for two old cases",
                    t.key()
                );
            }
            let sum: u64 = found.iter().map(|c| c.count).sum();
            let status = if found.len() < targets.len() {
                Status::Lost
            } else if sum >= o.count {
                Status::Kept
            } else if let Some(why) = map.fewer.get(&id) {
                Status::Explained(why.clone())
            } else {
                Status::Fewer
            };
            cmp.rows.push(Row {
                suite: suite.to_string(),
                old: Some(o.clone()),
                new: found,
                status,
            });
        }
        for n in new.leaves.iter().filter(|l| l.suite == suite) {
            totals.new_cases += 1;
            totals.new_assertions += n.count;
            totals.new_expects += n.expects;
            if !used.contains(&n.key()) {
                cmp.rows.push(Row {
                    suite: suite.to_string(),
                    old: None,
                    new: vec![n.clone()],
                    status: Status::Added,
                });
            }
        }
        cmp.totals.push(totals);
    }
    Ok(cmp)
}

impl Comparison {
    /// Whether no old case lost an assertion without a reason, and no
    /// suite lost a case.
    pub fn kept(&self) -> bool {
        self.rows.iter().all(|r| {
            matches!(
                r.status,
                Status::Kept | Status::Explained(_) | Status::Added
            )
        }) && self.totals.iter().all(|t| t.new_cases >= t.old_cases)
    }

    /// The suites in which no C assertion ran, before or after: Rust
    /// suites, whose `assert!`s KUnit does not see.
    fn uncounted(&self) -> Vec<&str> {
        self.totals
            .iter()
            .filter(|t| t.old_assertions == 0 && t.new_assertions == 0)
            .map(|t| t.suite.as_str())
            .collect()
    }

    /// The per-case table, the totals and the verdict.
    pub fn render(&self, old: &Report, new: &Report) -> String {
        let mut t = Table::new();
        t.load_style(ASCII_MARKDOWN);
        t.set_header([
            "suite", "old case", "new case", "old", "new", "+/-", "old E", "new E", "result",
            "verdict",
        ]);
        let uncounted = self.uncounted();
        for r in self
            .rows
            .iter()
            .filter(|r| !uncounted.contains(&r.suite.as_str()))
        {
            let old_count = r.old.as_ref().map(|o| o.count);
            let new_count = (!r.new.is_empty()).then(|| r.new.iter().map(|c| c.count).sum::<u64>());
            let old_expects = r.old.as_ref().map(|o| o.expects);
            let new_expects =
                (!r.new.is_empty()).then(|| r.new.iter().map(|c| c.expects).sum::<u64>());
            let delta = match (old_count, new_count) {
                (Some(o), Some(n)) => format!("{:+}", n as i64 - o as i64),
                _ => String::new(),
            };
            let new_outcomes: String = r.new.iter().map(|n| outcome(new, n)).collect();
            let result = format!(
                "{}/{}",
                r.old.as_ref().map_or("-", |o| outcome(old, o)),
                if new_outcomes.is_empty() {
                    "-"
                } else {
                    &new_outcomes
                }
            );
            let verdict = match &r.status {
                Status::Kept if new_expects < old_expects => {
                    "kept (fewer EXPECTs, more ASSERTs)".to_string()
                }
                Status::Kept => "kept".to_string(),
                Status::Explained(why) => format!("fewer: {why}"),
                Status::Fewer => "FEWER".to_string(),
                Status::Lost => "LOST".to_string(),
                Status::Added => "new".to_string(),
            };
            let show = |n: Option<u64>| n.map_or("-".to_string(), |n| n.to_string());
            let mut row = vec![
                comfy_table::Cell::new(&r.suite),
                comfy_table::Cell::new(r.old.as_ref().map_or("-".to_string(), Counted::key)),
                comfy_table::Cell::new(if r.new.is_empty() {
                    "-".to_string()
                } else {
                    r.new
                        .iter()
                        .map(Counted::key)
                        .collect::<Vec<_>>()
                        .join(" + ")
                }),
            ];
            for cell in [
                show(old_count),
                show(new_count),
                delta,
                show(old_expects),
                show(new_expects),
            ] {
                row.push(comfy_table::Cell::new(cell).set_alignment(CellAlignment::Right));
            }
            row.push(comfy_table::Cell::new(result));
            row.push(comfy_table::Cell::new(verdict));
            t.add_row(row);
        }
        let mut s = Table::new();
        s.load_style(ASCII_MARKDOWN);
        s.set_header([
            "suite",
            "old cases",
            "new cases",
            "old assertions",
            "new assertions",
            "old EXPECTs",
            "new EXPECTs",
        ]);
        for x in self
            .totals
            .iter()
            .filter(|x| !uncounted.contains(&x.suite.as_str()))
        {
            let cells = [
                x.old_cases.to_string(),
                x.new_cases.to_string(),
                x.old_assertions.to_string(),
                x.new_assertions.to_string(),
                x.old_expects.to_string(),
                x.new_expects.to_string(),
            ];
            let mut row = vec![comfy_table::Cell::new(&x.suite)];
            row.extend(
                cells
                    .into_iter()
                    .map(|c| comfy_table::Cell::new(c).set_alignment(CellAlignment::Right)),
            );
            s.add_row(row);
        }
        let mut out = format!("{t}\n\nPer suite (cases: each parameter counts as one):\n{s}\n\n");
        if !uncounted.is_empty() {
            let _ = writeln!(
                out,
                "Not counted: {} (no C assertion ran on either side: Rust KUnit \
                 assertions do not go through the C macros).\n",
                uncounted.join(", ")
            );
        }
        let shown: Vec<&Row> = self
            .rows
            .iter()
            .filter(|r| !uncounted.contains(&r.suite.as_str()))
            .collect();
        let count = |f: fn(&Status) -> bool| shown.iter().filter(|r| f(&r.status)).count();
        let kept = count(|s| *s == Status::Kept);
        let explained = count(|s| matches!(s, Status::Explained(_)));
        let fewer = count(|s| *s == Status::Fewer);
        let lost = count(|s| *s == Status::Lost);
        let added = count(|s| *s == Status::Added);
        let shrunk: Vec<&str> = self
            .totals
            .iter()
            .filter(|t| t.new_cases < t.old_cases)
            .map(|t| t.suite.as_str())
            .collect();
        let _ = writeln!(
            out,
            "Verdict: {} old case(s): {kept} kept every assertion, {explained} fewer with a \
             reason, {fewer} fewer unexplained, {lost} lost; {added} new case(s); suites with \
             fewer cases: {}.",
            shown.len() - added,
            if shrunk.is_empty() {
                "none".to_string()
            } else {
                shrunk.join(", ")
            }
        );
        let _ = writeln!(
            out,
            "{}",
            if self.kept() {
                "The port lost no assertion and no case."
            } else {
                "The port LOST assertions or cases."
            }
        );
        out
    }
}

/// `p`, `F` or `s`: how the case (or its parameter) ended; `?` if the KTAP
/// does not show it.
fn outcome(report: &Report, c: &Counted) -> &'static str {
    let case = report
        .suite(&c.suite)
        .and_then(|s| s.cases.iter().find(|t| t.name == c.case));
    let test = match (&c.param, case) {
        (Some(p), Some(case)) => case.subtests.iter().find(|t| t.name == *p),
        (None, case) => case,
        (_, None) => None,
    };
    match test.map(|t| t.outcome) {
        Some(Outcome::Pass) => "p",
        Some(Outcome::Fail) => "F",
        Some(Outcome::Skip) => "s",
        None => "?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "\
    KTAP version 1
    # Subtest: s
    1..3
    # kunit_assertions: suite=s case=a params=0 count=10 expects=8
    ok 1 a
[    1.0] # kunit_assertions: suite=s case=b_x params=0 count=7 expects=5
    ok 2 b_x
    # kunit_assertions: suite=s case=b_y params=0 count=9 expects=7
    ok 3 b_y
    # kunit_assertions: suite=s case=c params=0 count=5 expects=3
    ok 4 c
ok 1 s
    # kunit_assertions: suite=r case=rust params=0 count=0 expects=0
";

    const NEW: &str = "\
    KTAP version 1
    # Subtest: s
    1..2
    # kunit_assertions: suite=s case=a params=0 count=12 expects=10
    ok 1 a
        KTAP version 1
        # Subtest: b
        # kunit_assertions: suite=s case=b param=1 count=8 expects=6 desc=x
        ok 1 x
        # kunit_assertions: suite=s case=b param=2 count=9 expects=7 desc=y and z
        ok 2 y and z
        # kunit_assertions: suite=s case=b param=3 count=1 expects=0 desc=w
        not ok 3 w
    # kunit_assertions: suite=s case=b params=3 count=18 expects=16
    not ok 2 b
    # kunit_assertions: suite=s case=c params=0 count=4 expects=2
    ok 3 c
ok 1 s
    # kunit_assertions: suite=r case=rust params=0 count=0 expects=0
";

    const MAP_TEXT: &str = "# renamed\ns b_x = b[x]\ns b_y = b[y and z]\n";

    #[test]
    fn counts_are_parsed_per_case_and_parameter() {
        let m = Measured::parse(NEW).unwrap();
        let keys: Vec<(String, u64)> = m.leaves.iter().map(|l| (l.key(), l.count)).collect();
        assert_eq!(
            keys,
            [
                ("a".into(), 12),
                ("b[x]".into(), 8),
                ("b[y and z]".into(), 9),
                ("b[w]".into(), 1),
                ("c".into(), 4),
                ("rust".into(), 0)
            ]
        );
        assert_eq!(m.families.len(), 1);
        assert_eq!(m.families[0].count, 18);
        assert!(Measured::parse("no counts\n").is_err());
    }

    #[test]
    fn an_expectation_turned_assertion_is_kept_and_said() {
        let line = |n, e| {
            format!("    # kunit_assertions: suite=s case=a params=0 count={n} expects={e}\n")
        };
        let old = Measured::parse(&line(5, 4)).unwrap();
        let new = Measured::parse(&line(6, 3)).unwrap();
        let cmp = compare(&old, &new, &PortMap::default()).unwrap();
        assert!(cmp.kept());
        let text = cmp.render(&Report::default(), &Report::default());
        assert!(
            text.contains("kept (fewer EXPECTs, more ASSERTs)"),
            "{text}"
        );
        assert!(text.contains("| ?/? "), "{text}");
    }

    #[test]
    fn the_map_parses_and_rejects_nonsense() {
        let map = PortMap::parse(&format!("{MAP_TEXT}fewer s c: a loop got shorter\n")).unwrap();
        assert_eq!(
            map.renamed[&("s".into(), "b_y".into())],
            ["b[y", "and", "z]"]
        );
        assert_eq!(map.fewer[&("s".into(), "c".into())], "a loop got shorter");
        assert!(PortMap::parse("s a b\n").is_err());
        assert!(PortMap::parse("fewer s: why\n").is_err());
    }

    #[test]
    fn old_cases_pair_with_new_ones_and_losses_show() {
        let old = Measured::parse(OLD).unwrap();
        let new = Measured::parse(NEW).unwrap();
        let map = PortMap::parse("s b_x = b[x]\n").unwrap();
        let cmp = compare(&old, &new, &map).unwrap();
        let status: Vec<(Option<String>, Status)> = cmp
            .rows
            .iter()
            .map(|r| (r.old.as_ref().map(Counted::key), r.status.clone()))
            .collect();
        assert_eq!(
            status,
            [
                (Some("a".into()), Status::Kept),
                (Some("b_x".into()), Status::Kept),
                // No name in NEW, and the map does not say.
                (Some("b_y".into()), Status::Lost),
                (Some("c".into()), Status::Fewer),
                (None, Status::Added),
                (None, Status::Added),
                (Some("rust".into()), Status::Kept),
            ]
        );
        assert_eq!(
            cmp.totals[0],
            Totals {
                suite: "s".into(),
                old_cases: 4,
                new_cases: 5,
                old_assertions: 31,
                new_assertions: 34,
                old_expects: 23,
                new_expects: 25,
            }
        );
        assert_eq!(cmp.totals.len(), 2);
        assert!(!cmp.kept());
        let text = cmp.render(&ktap::parse(OLD), &ktap::parse(NEW));
        assert!(text.contains("The port LOST"), "{text}");
        assert!(text.contains("Not counted: r "), "{text}");
        assert!(!text.contains("| rust "), "{text}");
    }

    #[test]
    fn an_explained_loss_keeps_the_verdict() {
        let old = Measured::parse(OLD).unwrap();
        let new = Measured::parse(NEW).unwrap();
        // A description with spaces cannot be named in the map (it splits
        // words), only in code.
        let mut map = PortMap::parse("s b_x = b[x]\nfewer s c: a shorter loop\n").unwrap();
        map.renamed.insert(
            ("s".into(), "b_y".into()),
            vec!["b[y and z]".into(), "b[w]".into()],
        );
        let cmp = compare(&old, &new, &map).unwrap();
        assert!(cmp.kept());
        assert_eq!(
            cmp.rows[3].status,
            Status::Explained("a shorter loop".into())
        );
        let text = cmp.render(&ktap::parse(OLD), &ktap::parse(NEW));
        assert!(text.contains("| b[y and z] + b[w] |"), "{text}");
        assert!(text.contains("The port lost no assertion and no case."));
        assert!(text.contains("| p/pF "), "{text}");
        // A map entry for a case that never was is an error.
        map.fewer.insert(("s".into(), "zz".into()), "?".into());
        assert!(compare(&old, &new, &map).is_err());
    }
}
