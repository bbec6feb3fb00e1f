//! The differential test: the same random streams of IOPF operations
//! through both kernels, with identical observable results.
//!
//! The KUnit suite `iopf_diff` (`tests/kunit/iopf_diff.c`) generates each
//! stream from a seed, runs it, and prints its log's digest every few
//! thousand operations and at its end:
//!
//! ```text
//! # iopf_diff: mode=seq seed=S dev=-1 at=4096 digest=H
//! # iopf_diff: mode=seq seed=S dev=-1 ops=N done=N records=N digest=H end
//! ```
//!
//! `cargo xtask test` boots both debug kernels with the same seeds and
//! compares the digests stream by stream (mode, seed and, in the concurrent
//! mode, device). Where they differ, both kernels are booted again with
//! `iopf_kunit.diff_replay`, which prints the records of the first chunk of
//! operations that differs, one line each, and the first pair of lines that
//! differ is shown with its seed and operation index. The seed is then kept
//! as a regression seed in `tests/kunit/iopf_diff_seeds.h`, which the suite
//! runs first on every boot.
//!
//! `cargo xtask diff --ops N` is the long run: N operations per kernel on
//! the non-debug (bench) kernels.
//!
//! The documented differences between the two cores are normalised in the
//! kernel, in one table (`diff_rules[]` in `iopf_diff.c`), which the suite
//! prints (`# iopf_diff: normalised NAME: ...`) and this lists.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use crate::cli::{DiffArgs, Variant};
use crate::judge::{self, Machine, Rules, Want};
use crate::kernel::{self, Built, Profile};
use crate::ktap::{self, Fields};
use crate::paths::Workspace;
use crate::qemu::Boot;

/// The KUnit suite.
pub const SUITE: &str = "iopf_diff";
/// Marks the lines a replay prints (`# iopf_diff_line: ...`); the suite's
/// own lines are marked with its name (`# iopf_diff: ...`).
const LINE_MARK: &str = "iopf_diff_line";
/// Where the regression seeds live, and the line before which new ones go.
const SEEDS_FILE: &str = "tests/kunit/iopf_diff_seeds.h";
const SEEDS_END: &str = "/* iopf_diff seeds end */";
/// Operations between two digests of a stream (`DIFF_CHECKPOINT`).
const CHECKPOINT: u32 = 4096;
/// Sets the base seed of a run instead of a random one.
pub const SEED_ENV: &str = "IOPF_DIFF_SEED";

/// How many streams of how many operations a kernel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Sequential streams, and operations in each.
    pub seeds: u64,
    pub ops: u64,
    /// Concurrent runs (4 streams each, one per thread), and operations
    /// per thread.
    pub conc_seeds: u64,
    pub conc_ops: u64,
}

/// Threads of a concurrent run (`DIFF_CONC_THREADS`).
const CONC_THREADS: u64 = 4;

/// What every `cargo xtask test` runs on the debug kernels: 100,000
/// sequential operations and 10,000 concurrent ones per kernel.
pub const TEST_PLAN: Plan = Plan {
    seeds: 10,
    ops: 10_000,
    conc_seeds: 1,
    conc_ops: 2_500,
};

impl Plan {
    /// The long run of `cargo xtask diff --ops N`: N sequential operations
    /// in streams of `stream_ops`, and a tenth of that concurrently.
    pub fn long(total: u64, stream_ops: u64) -> Self {
        let stream_ops = stream_ops.max(1);
        let seeds = total.div_ceil(stream_ops).max(1);
        let conc_ops = stream_ops / CONC_THREADS / 10 * 10;
        Self {
            seeds,
            ops: stream_ops,
            conc_seeds: (total / 10).div_ceil(conc_ops.max(1) * CONC_THREADS).max(1),
            conc_ops: conc_ops.max(1),
        }
    }

    /// Random operations per kernel (the streams' drains come on top).
    pub fn operations(&self) -> u64 {
        self.seeds * self.ops + self.conc_seeds * CONC_THREADS * self.conc_ops
    }

    /// The boot arguments of the plan, with the base seed of the run.
    pub fn cmdline(&self, base: u64) -> String {
        format!(
            "iopf_kunit.diff_seed={base} iopf_kunit.diff_seeds={} iopf_kunit.diff_ops={} \
             iopf_kunit.diff_conc_seeds={} iopf_kunit.diff_conc_ops={}",
            self.seeds, self.ops, self.conc_seeds, self.conc_ops
        )
    }
}

/// The base seed of a run: `IOPF_DIFF_SEED`, or a new one each run, so that
/// every run explores streams nobody ran before.
pub fn base_seed() -> Result<u64> {
    if let Ok(s) = std::env::var(SEED_ENV) {
        return s
            .trim()
            .parse()
            .with_context(|| format!("{SEED_ENV}={s} is not a number"));
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?;
    // 31 bits: short to type, and far more than any run will cover.
    Ok((now.as_nanos() as u64 ^ u64::from(std::process::id()) << 20) & 0x7fff_ffff)
}

/// A stream: its mode, its seed, and its device in the concurrent mode (-1
/// for the sequential streams, which drive every device).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub mode: String,
    pub seed: u64,
    pub dev: i32,
}

impl Key {
    fn text(&self) -> String {
        if self.dev < 0 {
            format!("{} seed {}", self.mode, self.seed)
        } else {
            format!("{} seed {} device {}", self.mode, self.seed, self.dev)
        }
    }
}

/// The end of a stream, as a kernel printed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct End {
    /// The stream's random operations (what a replay asks for).
    pub ops: u32,
    /// All its operations, the drain included.
    pub done: u32,
    pub records: u64,
    pub digest: u64,
}

/// The digests of one stream on one kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stream {
    /// Digest after each `CHECKPOINT` operations, by operation count.
    pub checkpoints: BTreeMap<u32, u64>,
    pub end: Option<End>,
}

/// What one kernel's console says of the differential suite.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Run {
    pub streams: BTreeMap<Key, Stream>,
    /// Operations, streams (seeds) and anomalies, summed over the cases.
    pub ops: u64,
    pub seeds: u64,
    pub anomalies: u64,
    pub documented: u64,
    /// The normalisations the suite printed, once each.
    pub rules: Vec<String>,
}

fn key_of(f: &Fields) -> Option<Key> {
    Some(Key {
        mode: f.get("mode")?.to_string(),
        seed: f.number("seed")?,
        dev: f.number("dev")?,
    })
}

fn hex(f: &Fields, k: &str) -> Option<u64> {
    u64::from_str_radix(f.get(k)?, 16).ok()
}

/// Reads the suite's lines from a console log.
pub fn parse(console: &str) -> Run {
    let mut run = Run::default();
    for rest in ktap::marked_lines(console, SUITE) {
        if let Some(rule) = rest.strip_prefix("normalised ") {
            if !run.rules.iter().any(|r| r == rule) {
                run.rules.push(rule.to_string());
            }
            continue;
        }
        let f = Fields::parse(rest);
        if f.get("case").is_some() {
            run.ops += f.number::<u64>("ops").unwrap_or(0);
            run.seeds += f.number::<u64>("seeds").unwrap_or(0);
            run.anomalies += f.number::<u64>("anomalies").unwrap_or(0);
            run.documented += f.number::<u64>("documented").unwrap_or(0);
            continue;
        }
        let Some(key) = key_of(&f) else {
            continue;
        };
        let stream = run.streams.entry(key).or_default();
        if rest.ends_with(" end") {
            if let (Some(ops), Some(done), Some(records), Some(digest)) = (
                f.number("ops"),
                f.number("done"),
                f.number("records"),
                hex(&f, "digest"),
            ) {
                stream.end = Some(End {
                    ops,
                    done,
                    records,
                    digest,
                });
            }
        } else if let (Some(at), Some(digest)) = (f.number("at"), hex(&f, "digest")) {
            stream.checkpoints.insert(at, digest);
        }
    }
    run
}

/// Where two kernels' logs of a stream first differ: a chunk of operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    pub key: Key,
    /// The stream's random operations, to replay it.
    pub ops: u32,
    /// The chunk whose digests differ: operations `from..to`.
    pub from: u32,
    pub to: u32,
    /// Why it is a divergence, when no chunk says (a stream one kernel
    /// did not finish).
    pub why: Option<String>,
}

/// Compares the streams of two kernels; a stream that one of them did not
/// run to its end counts too.
pub fn compare(c: &Run, rust: &Run) -> Vec<Divergence> {
    let keys: BTreeSet<&Key> = c.streams.keys().chain(rust.streams.keys()).collect();
    let mut out = Vec::new();
    for key in keys {
        let (a, b) = (c.streams.get(key), rust.streams.get(key));
        let ends = (a.and_then(|s| s.end), b.and_then(|s| s.end));
        let ops = ends.0.or(ends.1).map_or(0, |e| e.ops);
        let (Some(a), Some(b), (Some(ea), Some(eb))) = (a, b, ends) else {
            out.push(Divergence {
                key: key.clone(),
                ops,
                from: 0,
                to: u32::MAX,
                why: Some("the stream did not finish on both kernels".into()),
            });
            continue;
        };
        let mut prev = 0;
        let mut found = None;
        for (at, digest) in &a.checkpoints {
            if b.checkpoints.get(at) != Some(digest) {
                found = Some((prev, *at));
                break;
            }
            prev = *at;
        }
        if found.is_none() && (ea != eb || a.checkpoints.len() != b.checkpoints.len()) {
            found = Some((prev, ea.done.max(eb.done)));
        }
        if let Some((from, to)) = found {
            out.push(Divergence {
                key: key.clone(),
                ops,
                from,
                to,
                why: None,
            });
        }
    }
    out
}

impl Divergence {
    /// The boot arguments that replay the stream and print the chunk.
    pub fn replay_cmdline(&self) -> String {
        format!(
            "kunit.filter_glob={SUITE}.* iopf_kunit.diff_replay={}:{}:{}:{}:{}:{}",
            self.key.mode,
            self.key.seed,
            self.ops,
            self.from,
            self.to.min(self.from.saturating_add(CHECKPOINT)),
            self.key.dev
        )
    }
}

/// The lines a replay printed for a stream, without their printk prefix.
pub fn replay_lines(console: &str, key: &Key) -> Vec<String> {
    let want = format!("mode={} seed={} dev={} ", key.mode, key.seed, key.dev);
    console
        .lines()
        .filter_map(|l| ktap::marked(l, LINE_MARK))
        .filter_map(|rest| rest.strip_prefix(&want))
        .map(str::to_string)
        .collect()
}

/// The first pair of lines that differ between two replays, with the
/// operation index of the line: `(op, c, rust)`.
pub fn first_difference(c: &[String], rust: &[String]) -> Option<(Option<u32>, String, String)> {
    let n = c.len().max(rust.len());
    (0..n).find_map(|i| {
        let (a, b) = (c.get(i), rust.get(i));
        if a == b {
            return None;
        }
        let op = a
            .or(b)
            .and_then(|l| l.strip_prefix("op="))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok());
        let show = |l: Option<&String>| l.cloned().unwrap_or_else(|| "(no line)".into());
        Some((op, show(a), show(b)))
    })
}

/// Adds the divergence's stream to the regression seeds, unless it is there.
/// Returns whether the file changed.
pub fn keep_seed(repo: &Path, d: &Divergence) -> Result<bool> {
    let path = repo.join(SEEDS_FILE);
    let text = fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    let entry = format!("IOPF_DIFF_SEED({}, {}, {})", d.key.mode, d.key.seed, d.ops);
    if text.contains(&entry) {
        return Ok(false);
    }
    let Some(at) = text.find(SEEDS_END) else {
        bail!("{} has no `{SEEDS_END}` line", path.display());
    };
    let what = match d.key.dev {
        dev if dev >= 0 => format!("device {dev}, "),
        _ => String::new(),
    };
    let line = format!(
        "{entry}\t/* {what}operations {}..{}: found by cargo xtask, not explained yet */\n",
        d.from, d.to
    );
    let mut out = text.clone();
    out.insert_str(at, &line);
    fs::write(&path, out)?;
    Ok(true)
}

/// The outcome of comparing two kernels.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Comparison {
    /// Operations per kernel, as each printed them.
    pub ops: Vec<(Variant, u64)>,
    pub seeds: u64,
    pub divergences: u64,
    /// Problems that fail the run: divergences, anomalies, missing figures.
    pub problems: Vec<String>,
}

/// The diff suite's runs on each kernel, by variant.
pub struct Boots<'a> {
    pub built: &'a [Built],
    pub consoles: Vec<(Variant, &'a str)>,
}

/// Compares the kernels' streams, replays the first divergences to show
/// their lines, keeps their seeds, and prints the normalisations. `timeout`
/// bounds each replay boot.
pub fn check(ws: &Workspace, boots: &Boots, plan: &Plan, timeout: Duration) -> Result<Comparison> {
    let runs: Vec<(Variant, Run)> = boots
        .consoles
        .iter()
        .map(|(v, text)| (*v, parse(text)))
        .collect();
    let mut out = Comparison {
        ops: runs.iter().map(|(v, r)| (*v, r.ops)).collect(),
        seeds: runs.iter().map(|(_, r)| r.seeds).max().unwrap_or(0),
        ..Default::default()
    };
    for (v, r) in &runs {
        if r.ops < plan.operations() {
            out.problems.push(format!(
                "{}: {} differential operations, fewer than the {} planned",
                v.name(),
                r.ops,
                plan.operations()
            ));
        }
        if r.anomalies > 0 {
            out.problems.push(format!(
                "{}: {} operations did what the stream's model did not expect (ANOMALY)",
                v.name(),
                r.anomalies
            ));
        }
    }
    let (Some((_, c)), Some((_, rust))) = (
        runs.iter().find(|(v, _)| *v == Variant::C),
        runs.iter().find(|(v, _)| *v == Variant::Rust),
    ) else {
        println!("differential: one kernel only, nothing compared");
        return Ok(out);
    };
    if c.rules != rust.rules {
        out.problems
            .push("the two kernels list different normalisations".into());
    }
    println!("\nDifferential test (suite {SUITE}), normalised differences:");
    for rule in &rust.rules {
        println!("  {rule}");
    }
    let divergences = compare(c, rust);
    out.divergences = divergences.len() as u64;
    for d in divergences.iter().take(3) {
        out.problems.push(show_divergence(ws, boots, d, timeout)?);
        if keep_seed(&ws.repo, d)? {
            println!(
                "  kept {} as a regression seed in {SEEDS_FILE}: commit it with the fix",
                d.key.text()
            );
        }
    }
    if divergences.len() > 3 {
        out.problems.push(format!(
            "{} more diverging streams not shown",
            divergences.len() - 3
        ));
    }
    Ok(out)
}

/// Replays a divergence on both kernels and describes its first lines.
fn show_divergence(
    ws: &Workspace,
    boots: &Boots,
    d: &Divergence,
    timeout: Duration,
) -> Result<String> {
    if let Some(why) = &d.why {
        return Ok(format!("divergence: {}: {why}", d.key.text()));
    }
    let cmdline = d.replay_cmdline();
    eprintln!(
        "==> divergence in {}, operations {}..{}: replaying on both kernels",
        d.key.text(),
        d.from,
        d.to
    );
    let mut lines = Vec::new();
    let mut lossy = Vec::new();
    for variant in [Variant::C, Variant::Rust] {
        let Some(built) = boots.built.iter().find(|b| b.variant == variant) else {
            bail!("no {} kernel to replay on", variant.name());
        };
        let name = format!(
            "diff-replay-{}-{}",
            built.arch.kbuild_name(),
            variant.name()
        );
        // Only the lines the replay prints count here: the boot that found
        // the divergence was judged already.
        let console = judge::boot(
            &Boot {
                arch: built.arch,
                image: &built.image,
                initrd: None,
                cmdline: &cmdline,
                timeout,
                log: ws.logs()?.join(format!("{name}.console.log")),
            },
            Machine::Default,
            &Rules::default(),
        )?
        .console;
        if console.text.contains("printk messages dropped") {
            lossy.push(variant.name());
        }
        lines.push(replay_lines(&console.text, &d.key));
    }
    let mut text = format!("divergence: {} (replay: {cmdline})", d.key.text());
    if !lossy.is_empty() {
        let _ = write!(
            text,
            "\n    the console of {} dropped lines: the lines below may not be the first that differ",
            lossy.join(" and ")
        );
    }
    match first_difference(&lines[0], &lines[1]) {
        Some((op, c, rust)) => {
            let op = op.map_or("?".to_string(), |o| o.to_string());
            let _ = write!(
                text,
                "\n    first difference at operation {op}:\n    c:    {c}\n    rust: {rust}"
            );
        }
        None => {
            let _ = write!(
                text,
                "\n    the replays printed the same {} lines: the divergence is outside the chunk or not reproducible",
                lines[0].len()
            );
        }
    }
    Ok(text)
}

/// `cargo xtask diff`: the long run on the non-debug (bench) kernels.
pub fn run(args: &DiffArgs) -> Result<()> {
    let ws = Workspace::discover()?;
    let arch = args.target.arch;
    crate::toolchain::check_qemu(arch)?;
    let jobs = args
        .target
        .jobs
        .unwrap_or_else(crate::toolchain::default_jobs);
    let plan = Plan::long(args.ops, args.stream_ops);
    let base = match args.seed {
        Some(s) => s,
        None => base_seed()?,
    };
    let mut built = Vec::new();
    for variant in [Variant::C, Variant::Rust] {
        built.push(kernel::build_profile(
            &ws,
            arch,
            variant,
            Profile::Bench,
            jobs,
        )?);
    }
    // A KUnit case may run for 3 x kunit.timeout (it is slow): let the
    // boot's own timeout be the one that counts.
    let cmdline = format!(
        "kunit.filter_glob={SUITE}.* kunit.timeout={} {}",
        args.timeout,
        plan.cmdline(base)
    );
    let mut texts = Vec::new();
    let mut took = Vec::new();
    for b in &built {
        let name = format!("diff-{}-{}", arch.kbuild_name(), b.variant.name());
        eprintln!(
            "==> booting {name}: {} operations in {} + {} streams, base seed {base}",
            plan.operations(),
            plan.seeds,
            plan.conc_seeds * CONC_THREADS
        );
        let start = Instant::now();
        let judged = judge::boot(
            &Boot {
                arch,
                image: &b.image,
                initrd: None,
                cmdline: &cmdline,
                timeout: Duration::from_secs(args.timeout),
                log: ws.logs()?.join(format!("{name}.console.log")),
            },
            Machine::Tcg(&[]),
            &Rules {
                wants: vec![Want::Passed(SUITE.into())],
                ..Rules::default()
            },
        )?;
        took.push(start.elapsed());
        let (console, problems) = (judged.console, judged.problems);
        if !problems.is_empty() {
            bail!(
                "{}: {} (console log: {})",
                b.variant.name(),
                problems.join("; "),
                console.log.display()
            );
        }
        texts.push((b.variant, console.text));
    }
    let boots = Boots {
        built: &built,
        consoles: texts.iter().map(|(v, t)| (*v, t.as_str())).collect(),
    };
    let outcome = check(&ws, &boots, &plan, Duration::from_secs(args.timeout))?;
    for ((variant, ops), took) in outcome.ops.iter().zip(&took) {
        println!(
            "  {:<5} {ops} operations in {:.0} s ({:.0} operations/s)",
            variant.name(),
            took.as_secs_f64(),
            *ops as f64 / took.as_secs_f64()
        );
    }
    println!("{}", outcome.line(base));
    for p in &outcome.problems {
        println!("  PROBLEM: {p}");
    }
    if !outcome.problems.is_empty() {
        bail!("the kernels diverged, or a stream did what its model did not expect");
    }
    Ok(())
}

impl Comparison {
    /// The figures of the reliability summary line.
    pub fn figures(&self) -> crate::reliability::DiffFigures {
        crate::reliability::DiffFigures {
            ops: self.ops.iter().map(|(_, n)| *n).min().unwrap_or(0),
            seeds: self.seeds,
            divergences: (self.ops.len() > 1).then_some(self.divergences),
        }
    }

    /// `differential (c rust): N operations per kernel over N seeds, N divergences (base seed S)`.
    pub fn line(&self, base: u64) -> String {
        let kernels: Vec<&str> = self.ops.iter().map(|(v, _)| v.name()).collect();
        let ops: Vec<String> = self.ops.iter().map(|(_, n)| n.to_string()).collect();
        format!(
            "differential ({}): {} operations per kernel over {} seeds, {} divergences (base seed {base})",
            kernels.join(" "),
            ops.join("/"),
            self.seeds,
            self.divergences
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: &str = "\
[ 1.0]     # iopf_diff: normalised second-response: Rust drops it; C's one response and Rust's none become one record
[ 2.0] # iopf_diff: mode=seq seed=7 dev=-1 at=4096 digest=00000000000000aa
[ 3.0] # iopf_diff: mode=seq seed=7 dev=-1 at=8192 digest=00000000000000bb
[ 4.0] # iopf_diff: mode=seq seed=7 dev=-1 ops=10000 done=10012 records=20000 digest=00000000000000cc end
[ 5.0] # iopf_diff: mode=conc seed=9 dev=2 ops=100 done=104 records=300 digest=0000000000000001 end
[ 6.0]     # iopf_diff: case=iopf_diff_sequential mode=seq seeds=1 ops=10012 records=20000 documented=3 anomalies=0 lost=0 duplicated=0
[ 7.0]     # iopf_diff: case=iopf_diff_concurrent mode=conc seeds=1 ops=416 records=900 documented=0 anomalies=0 lost=0 duplicated=0
";

    #[test]
    fn parses_streams_cases_and_rules() {
        let run = parse(C);
        assert_eq!(run.ops, 10012 + 416);
        assert_eq!(run.seeds, 2);
        assert_eq!(run.documented, 3);
        assert_eq!(run.rules.len(), 1);
        assert!(run.rules[0].starts_with("second-response: "));
        let key = Key {
            mode: "seq".into(),
            seed: 7,
            dev: -1,
        };
        let s = &run.streams[&key];
        assert_eq!(s.checkpoints.len(), 2);
        assert_eq!(s.checkpoints[&8192], 0xbb);
        assert_eq!(
            s.end,
            Some(End {
                ops: 10000,
                done: 10012,
                records: 20000,
                digest: 0xcc
            })
        );
        assert_eq!(run.streams.len(), 2);
    }

    #[test]
    fn identical_runs_do_not_diverge() {
        assert!(compare(&parse(C), &parse(C)).is_empty());
    }

    #[test]
    fn the_first_differing_chunk_is_found() {
        let rust = C.replace(
            "at=8192 digest=00000000000000bb",
            "at=8192 digest=00000000000000bd",
        );
        let d = compare(&parse(C), &parse(&rust));
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].from, d[0].to, d[0].ops), (4096, 8192, 10000));
        assert_eq!(
            d[0].replay_cmdline(),
            "kunit.filter_glob=iopf_diff.* iopf_kunit.diff_replay=seq:7:10000:4096:8192:-1"
        );

        // Only the end differs: the chunk runs from the last checkpoint on.
        let rust = C.replace("digest=00000000000000cc end", "digest=00000000000000cd end");
        let d = compare(&parse(C), &parse(&rust));
        assert_eq!((d[0].from, d[0].to), (8192, 10012));
    }

    #[test]
    fn a_stream_missing_on_one_kernel_diverges() {
        let rust: String = C
            .lines()
            .filter(|l| !l.contains("mode=conc seed=9"))
            .map(|l| format!("{l}\n"))
            .collect();
        let d = compare(&parse(C), &parse(&rust));
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].key.dev, 2);
        assert!(d[0].why.is_some());
    }

    #[test]
    fn replays_are_compared_line_by_line() {
        let c = "[ 1.0] # iopf_diff_line: mode=seq seed=7 dev=-1 op=4100 do report dev=1\n\
                 [ 1.1] # iopf_diff_line: mode=seq seed=7 dev=-1 op=4100 resp dev=1 code=0\n\
                 [ 1.2] # iopf_diff_line: mode=seq seed=8 dev=-1 op=1 resp dev=0 code=1\n";
        let rust = c.replace("op=4100 resp dev=1 code=0", "op=4100 resp dev=1 code=1");
        let key = Key {
            mode: "seq".into(),
            seed: 7,
            dev: -1,
        };
        let (a, b) = (replay_lines(c, &key), replay_lines(&rust, &key));
        assert_eq!(a.len(), 2);
        let (op, lc, lr) = first_difference(&a, &b).unwrap();
        assert_eq!(op, Some(4100));
        assert!(lc.ends_with("code=0") && lr.ends_with("code=1"));
        assert!(first_difference(&a, &a).is_none());
        let (_, _, missing) = first_difference(&a, &a[..1]).unwrap();
        assert_eq!(missing, "(no line)");
    }

    #[test]
    fn a_divergence_becomes_a_regression_seed_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SEEDS_FILE);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, format!("/* seeds */\n{SEEDS_END}\n")).unwrap();
        let d = Divergence {
            key: Key {
                mode: "conc".into(),
                seed: 42,
                dev: 3,
            },
            ops: 2500,
            from: 0,
            to: 4096,
            why: None,
        };
        assert!(keep_seed(dir.path(), &d).unwrap());
        assert!(!keep_seed(dir.path(), &d).unwrap());
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("IOPF_DIFF_SEED(conc, 42, 2500)\t/* device 3, operations 0..4096"));
        assert!(text.trim_end().ends_with(SEEDS_END));
    }

    #[test]
    fn the_seeds_file_of_the_repo_has_its_end_marker() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let text = fs::read_to_string(repo.join(SEEDS_FILE)).unwrap();
        assert!(text.contains(SEEDS_END));
    }

    #[test]
    fn plans_count_their_operations() {
        assert_eq!(TEST_PLAN.operations(), 110_000);
        assert!(TEST_PLAN
            .cmdline(5)
            .starts_with("iopf_kunit.diff_seed=5 iopf_kunit.diff_seeds=10 "));
        let long = Plan::long(10_000_000, 100_000);
        assert_eq!(long.seeds, 100);
        assert_eq!(long.conc_ops, 25_000);
        assert_eq!(long.conc_seeds, 10);
        assert_eq!(long.operations(), 11_000_000);
    }

    #[test]
    fn the_summary_line_names_the_figures() {
        let o = Comparison {
            ops: vec![(Variant::C, 110_100), (Variant::Rust, 110_100)],
            seeds: 11,
            divergences: 0,
            problems: vec![],
        };
        assert_eq!(
            o.line(5),
            "differential (c rust): 110100/110100 operations per kernel over 11 seeds, 0 divergences (base seed 5)"
        );
    }
}
