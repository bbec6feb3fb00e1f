//! `scripts/checkpatch.pl --strict --no-signoff` on every patch of the series.
//!
//! No error may remain. Every warning and check that remains is listed, with
//! its reason, in `patches/checkpatch-allowed`, one line per kind and file:
//!
//! ```text
//! TYPE FILE COUNT: reason
//! ```
//!
//! `TYPE` is checkpatch's (`--show-types`), `FILE` the file it names, `COUNT`
//! how many such findings the series has in that file. A finding that no line
//! lists fails the check, and so does a line whose count is not the series'
//! (a fixed finding must leave the list too). A reason that starts with
//! `to fix` marks findings that are known and not yet fixed; the summary
//! counts them apart.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

/// The list of findings that stay, in `patches/`.
pub const ALLOWED: &str = "checkpatch-allowed";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warning,
    Check,
}

/// One message of checkpatch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The patch file it is about.
    pub patch: String,
    /// The file of the kernel tree it names (or the patch, for its message).
    pub file: String,
    pub line: usize,
    pub level: Level,
    /// checkpatch's type, e.g. `LONG_LINE`.
    pub kind: String,
    pub message: String,
}

/// A line of `patches/checkpatch-allowed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    pub kind: String,
    pub file: String,
    pub count: usize,
    pub reason: String,
}

impl Allowed {
    fn to_fix(&self) -> bool {
        self.reason.starts_with("to fix")
    }
}

/// The result of a checkpatch run over the series.
#[derive(Debug)]
pub struct Summary {
    pub patches: usize,
    pub findings: Vec<Finding>,
    pub allowed: Vec<Allowed>,
}

impl Summary {
    fn count(&self, level: Level) -> usize {
        self.findings.iter().filter(|f| f.level == level).count()
    }

    /// Findings of `level` that a line of the list covers, and of those the
    /// ones to fix.
    fn listed(&self, level: Level) -> (usize, usize) {
        let counts = self.counts();
        let mut listed = (0, 0);
        for a in &self.allowed {
            let found = counts.get(&(a.kind.as_str(), a.file.as_str()));
            if let Some(&(n, l)) = found {
                if n == a.count && l == level {
                    listed.0 += n;
                    if a.to_fix() {
                        listed.1 += n;
                    }
                }
            }
        }
        listed
    }

    /// Findings per (type, file), with their level.
    fn counts(&self) -> BTreeMap<(&str, &str), (usize, Level)> {
        let mut counts: BTreeMap<(&str, &str), (usize, Level)> = BTreeMap::new();
        for f in &self.findings {
            let entry = counts
                .entry((f.kind.as_str(), f.file.as_str()))
                .or_insert((0, f.level));
            entry.0 += 1;
        }
        counts
    }

    /// What is wrong: errors, findings the list does not cover, and lines of
    /// the list that are out of date.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for f in self.findings.iter().filter(|f| f.level == Level::Error) {
            problems.push(format!(
                "{}: {}:{}: ERROR:{}: {}",
                f.patch, f.file, f.line, f.kind, f.message
            ));
        }
        let counts = self.counts();
        for (&(kind, file), &(n, level)) in &counts {
            if level == Level::Error {
                continue;
            }
            match self
                .allowed
                .iter()
                .find(|a| a.kind == kind && a.file == file)
            {
                None => problems.push(format!(
                    "{file}: {n} {kind} finding(s) not listed in patches/{ALLOWED}"
                )),
                Some(a) if a.count != n => problems.push(format!(
                    "{file}: {n} {kind} finding(s), patches/{ALLOWED} says {}",
                    a.count
                )),
                Some(_) => {}
            }
        }
        for a in &self.allowed {
            if !counts.contains_key(&(a.kind.as_str(), a.file.as_str())) {
                problems.push(format!(
                    "patches/{ALLOWED}: `{} {}` no longer happens: remove it",
                    a.kind, a.file
                ));
            }
        }
        problems
    }

    /// The one-line summary, for a results table.
    pub fn line(&self) -> String {
        let part = |level: Level, name: &str| {
            let n = self.count(level);
            let (listed, to_fix) = self.listed(level);
            let mut s = if listed == n {
                format!("{n} {name} (all listed")
            } else {
                format!("{n} {name} ({} not listed", n - listed)
            };
            if to_fix > 0 {
                let _ = write!(s, ", {to_fix} to fix");
            }
            s.push(')');
            s
        };
        format!(
            "checkpatch: {} patches, {} errors, {}, {}",
            self.patches,
            self.count(Level::Error),
            part(Level::Warning, "warnings"),
            part(Level::Check, "checks")
        )
    }

    /// Every finding, then the problems, for a human.
    pub fn details(&self) -> String {
        let mut out = String::new();
        for f in &self.findings {
            let level = match f.level {
                Level::Error => "ERROR",
                Level::Warning => "WARNING",
                Level::Check => "CHECK",
            };
            let _ = writeln!(
                out,
                "  {}:{}: {level}:{}: {}",
                f.file, f.line, f.kind, f.message
            );
        }
        for p in self.problems() {
            let _ = writeln!(out, "  PROBLEM: {p}");
        }
        out
    }

    /// Fails unless the run is clean: no error, every finding listed.
    pub fn check(&self) -> Result<()> {
        let problems = self.problems();
        ensure!(
            problems.is_empty(),
            "checkpatch:\n  {}",
            problems.join("\n  ")
        );
        Ok(())
    }
}

/// Parses `patches/checkpatch-allowed`.
pub fn parse_allowed(text: &str) -> Result<Vec<Allowed>> {
    let mut allowed: Vec<Allowed> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || {
            format!(
                "patches/{ALLOWED}:{}: expected `TYPE FILE COUNT: reason`",
                n + 1
            )
        };
        let (head, reason) = line.split_once(": ").with_context(bad)?;
        let fields: Vec<&str> = head.split_whitespace().collect();
        let [kind, file, count] = fields[..] else {
            bail!(bad());
        };
        let reason = reason.trim();
        ensure!(!reason.is_empty(), "{}: no reason", bad());
        ensure!(
            !allowed.iter().any(|a| a.kind == kind && a.file == file),
            "patches/{ALLOWED}:{}: `{kind} {file}` is listed twice",
            n + 1
        );
        allowed.push(Allowed {
            kind: kind.to_string(),
            file: file.to_string(),
            count: count.parse().with_context(bad)?,
            reason: reason.to_string(),
        });
    }
    Ok(allowed)
}

/// Parses checkpatch's `--terse --show-types --showfile` output for one
/// patch, and checks it against the totals it prints.
pub fn parse_output(patch: &str, text: &str) -> Result<Vec<Finding>> {
    let mut findings = Vec::new();
    let mut totals = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("total: ") {
            let n: Vec<usize> = rest
                .split(", ")
                .filter_map(|p| p.split_whitespace().next()?.parse().ok())
                .collect();
            totals = Some((n[0], n[1], n[2]));
            continue;
        }
        // FILE:LINE: LEVEL:TYPE: message
        let Some((place, rest)) = line.split_once(": ") else {
            continue;
        };
        let Some((file, line_no)) = place.rsplit_once(':') else {
            continue;
        };
        let Some((level, rest)) = rest.split_once(':') else {
            continue;
        };
        let level = match level {
            "ERROR" => Level::Error,
            "WARNING" => Level::Warning,
            "CHECK" => Level::Check,
            _ => continue,
        };
        let (kind, message) = rest.split_once(": ").unwrap_or((rest, ""));
        findings.push(Finding {
            patch: patch.to_string(),
            file: file.to_string(),
            line: line_no.parse().unwrap_or(0),
            level,
            kind: kind.to_string(),
            message: message.to_string(),
        });
    }
    // In terse mode, a clean patch gets no output at all.
    let (errors, warnings, checks) = totals.unwrap_or((0, 0, 0));
    let count = |l: Level| findings.iter().filter(|f| f.level == l).count();
    ensure!(
        (
            count(Level::Error),
            count(Level::Warning),
            count(Level::Check)
        ) == (errors, warnings, checks),
        "could not read every finding of checkpatch for {patch}:\n{text}"
    );
    Ok(findings)
}

/// Runs checkpatch on each patch, from `tree`, a git repository of the
/// kernel with the series applied (checkpatch reads its `MAINTAINERS` and
/// `LICENSES`, and runs `scripts/spdxcheck.py` in a git tree only).
pub fn run(tree: &Path, repo: &Path, patches: &[PathBuf]) -> Result<Summary> {
    let allowed_path = repo.join("patches").join(ALLOWED);
    let allowed = parse_allowed(
        &fs::read_to_string(&allowed_path)
            .with_context(|| format!("reading {}", allowed_path.display()))?,
    )?;
    let jobs = crate::toolchain::default_jobs().max(1);
    let outputs: Vec<Result<Vec<Finding>>> = std::thread::scope(|scope| {
        let chunks: Vec<Vec<&PathBuf>> = (0..jobs)
            .map(|j| patches.iter().skip(j).step_by(jobs).collect())
            .collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                scope.spawn(move || -> Vec<Result<Vec<Finding>>> {
                    chunk.into_iter().map(|p| run_one(tree, p)).collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("checkpatch thread panicked"))
            .collect()
    });
    let mut findings = Vec::new();
    for out in outputs {
        findings.extend(out?);
    }
    findings.sort_by(|a, b| (&a.patch, a.line).cmp(&(&b.patch, b.line)));
    Ok(Summary {
        patches: patches.len(),
        findings,
        allowed,
    })
}

fn run_one(tree: &Path, patch: &Path) -> Result<Vec<Finding>> {
    let name = patch.file_name().unwrap().to_string_lossy().into_owned();
    let path = std::env::var("PATH").unwrap_or_default();
    let out = Command::new("perl")
        .arg(tree.join("scripts/checkpatch.pl"))
        .args([
            "--strict",
            "--no-signoff",
            "--terse",
            "--show-types",
            "--showfile",
            "--color=never",
        ])
        .arg(format!("--root={}", tree.display()))
        .arg(patch)
        .current_dir(tree)
        // Debian's python3 first, which has spdxcheck.py's modules (python3-ply
        // and python3-git, installed by `cargo xtask setup`).
        .env("PATH", format!("/usr/bin:{path}"))
        .output()
        .context("running checkpatch.pl (perl)")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success() || stdout.contains("total: "),
        "checkpatch.pl failed on {name}:\n{stdout}{stderr}"
    );
    ensure!(
        stderr.trim().is_empty(),
        "checkpatch.pl on {name} printed on stderr (a missing tool?):\n{stderr}"
    );
    parse_output(&name, &stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "\
drivers/iommu/iopf/iopf_trace.h:47: CHECK:OPEN_ENDED_LINE: Lines should not end with a '('
rust/kernel/x.rs:12: WARNING:FILE_PATH_CHANGES: added, moved or deleted file(s), does MAINTAINERS need updating?
total: 0 errors, 1 warnings, 1 checks, 615 lines checked
";

    fn summary(allowed: &str) -> Summary {
        Summary {
            patches: 1,
            findings: parse_output("0001-x.patch", OUTPUT).unwrap(),
            allowed: parse_allowed(allowed).unwrap(),
        }
    }

    #[test]
    fn findings_are_read_and_checked_against_the_totals() {
        let f = parse_output("0001-x.patch", OUTPUT).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].file, "drivers/iommu/iopf/iopf_trace.h");
        assert_eq!(f[0].line, 47);
        assert_eq!(f[0].level, Level::Check);
        assert_eq!(f[0].kind, "OPEN_ENDED_LINE");
        assert_eq!(f[1].kind, "FILE_PATH_CHANGES");
        let short = OUTPUT.replace("1 warnings", "2 warnings");
        assert!(parse_output("0001-x.patch", &short).is_err());
    }

    #[test]
    fn every_finding_must_be_listed_with_its_count() {
        let all = "# comment\n\
                   OPEN_ENDED_LINE drivers/iommu/iopf/iopf_trace.h 1: TRACE_EVENT layout\n\
                   FILE_PATH_CHANGES rust/kernel/x.rs 1: to fix: add a MAINTAINERS entry\n";
        let s = summary(all);
        assert!(s.check().is_ok(), "{:?}", s.problems());
        assert_eq!(
            s.line(),
            "checkpatch: 1 patches, 0 errors, 1 warnings (all listed, 1 to fix), 1 checks (all listed)"
        );

        let s = summary("OPEN_ENDED_LINE drivers/iommu/iopf/iopf_trace.h 1: layout\n");
        assert!(s.check().is_err());
        assert!(
            s.line().contains("1 warnings (1 not listed)"),
            "{}",
            s.line()
        );

        let s = summary(&format!("{all}LONG_LINE a.c 2: stale\n"));
        assert!(s.problems()[0].contains("no longer happens"));

        let s = summary(&all.replace("iopf_trace.h 1", "iopf_trace.h 2"));
        assert!(s.problems()[0].contains("says 2"), "{:?}", s.problems());
    }

    #[test]
    fn errors_are_never_allowed() {
        let out = "a.c:1: ERROR:TRAILING_WHITESPACE: trailing whitespace\n\
                   total: 1 errors, 0 warnings, 0 checks, 3 lines checked\n";
        let s = Summary {
            patches: 1,
            findings: parse_output("p", out).unwrap(),
            allowed: parse_allowed("TRAILING_WHITESPACE a.c 1: no\n").unwrap(),
        };
        assert!(s.check().is_err());
        assert!(s.line().contains(" 1 errors"));
    }

    #[test]
    fn the_list_parses() {
        assert!(parse_allowed("LONG_LINE a.c: no count\n").is_err());
        assert!(parse_allowed("LONG_LINE a.c 1:\n").is_err());
        assert!(parse_allowed("LONG_LINE a.c 1: x\nLONG_LINE a.c 2: y\n").is_err());
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let text = fs::read_to_string(repo.join("patches").join(ALLOWED)).unwrap();
        parse_allowed(&text).unwrap();
    }
}
