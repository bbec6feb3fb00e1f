//! The kernel's own checkers, run by `cargo xtask test` on the Rust kernel's
//! tree and printed as one table: `make rustfmtcheck`, clippy (`CLIPPY=1`)
//! over the project's Rust, `make htmldocs SPHINXDIRS=iommu`, and
//! `make rustdoc`. A finding in any of them fails the run.
//!
//! Clippy runs in the test kernel's own build (`CLIPPY=1`, see
//! [`crate::kernel`]), so it costs no extra build. An incremental build
//! prints the findings of the crates it recompiled only; each crate's last
//! findings are therefore kept in the build directory
//! ([`CLIPPY_FINDINGS`]), and replaced when the crate is compiled again.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::Result;
use comfy_table::{presets::ASCII_MARKDOWN, Table};

use crate::kernel;
use crate::paths::Workspace;
use crate::toolchain;

/// The crates built from the project's Rust, by object; each owns the
/// sources under its directory (the longest match wins).
pub const CLIPPY_CRATES: &[(&str, &str)] = &[
    ("rust/kernel.o", "rust/kernel/"),
    ("drivers/iommu/iopf/iopf.o", "drivers/iommu/iopf/"),
    (
        "drivers/iommu/iommu_sva_iopf.o",
        "drivers/iommu/iommu_sva_iopf.rs",
    ),
    (
        "samples/rust/rust_iopf/rust_iopf_main.o",
        "samples/rust/rust_iopf/",
    ),
    (
        "samples/rust/rust_iopf_testdev/rust_iopf_testdev.o",
        "samples/rust/rust_iopf_testdev/",
    ),
];

/// The file, in a build directory, of each crate's last clippy findings.
pub const CLIPPY_FINDINGS: &str = "clippy-findings.txt";

/// One checker's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    /// Findings that fail the run, one line each.
    pub findings: Vec<String>,
    /// What was checked, for the table.
    pub scope: String,
}

impl Check {
    pub fn clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// The table of verdicts.
pub fn render(checks: &[Check]) -> String {
    let mut table = Table::new();
    table.load_style(ASCII_MARKDOWN);
    table.set_header(["checker", "scope", "result"]);
    for c in checks {
        let result = if c.clean() {
            "clean".to_string()
        } else {
            format!("{} finding(s)", c.findings.len())
        };
        table.add_row([c.name.to_string(), c.scope.clone(), result]);
    }
    let mut out = format!("\nThe kernel's checkers:\n{table}\n");
    for c in checks.iter().filter(|c| !c.clean()) {
        for f in c.findings.iter().take(20) {
            out.push_str(&format!("  {}: {f}\n", c.name));
        }
    }
    out
}

/// The crate of source file `path` (kernel-relative), if it is the project's.
fn crate_of(path: &str) -> Option<&'static str> {
    CLIPPY_CRATES
        .iter()
        .filter(|(_, prefix)| path.starts_with(prefix))
        .max_by_key(|(_, prefix)| prefix.len())
        .map(|(object, _)| *object)
}

/// The diagnostics of rustc, clippy or rustdoc in `log` that are located in
/// the project's sources: each is its location (kernel-relative) and its
/// first line.
fn diagnostics(log: &str, tree: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut head: Option<&str> = None;
    for line in log.lines() {
        if line.starts_with("warning:") || line.starts_with("error:") {
            head = Some(line);
        } else if let (Some(h), Some(loc)) = (head, line.trim_start().strip_prefix("--> ")) {
            let loc = loc
                .strip_prefix(tree)
                .unwrap_or(loc)
                .trim_start_matches('/');
            if crate_of(loc).is_some() {
                out.push((loc.to_string(), h.to_string()));
            }
            head = None;
        }
    }
    out
}

/// The clippy diagnostics of a build log, by crate.
fn clippy_diagnostics(log: &str, tree: &str) -> BTreeMap<&'static str, Vec<String>> {
    let mut out: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for (loc, head) in diagnostics(log, tree) {
        if let Some(krate) = crate_of(&loc) {
            out.entry(krate).or_default().push(format!("{loc}: {head}"));
        }
    }
    out
}

/// The crates a build log shows compiled with clippy.
fn clippy_compiled(log: &str) -> Vec<&'static str> {
    CLIPPY_CRATES
        .iter()
        .map(|(object, _)| *object)
        .filter(|object| {
            log.lines().any(|l| {
                let l = l.trim_start();
                l.starts_with("CLIPPY") && l.split_whitespace().last() == Some(object)
            })
        })
        .collect()
}

/// Updates the kept findings of `dir`'s build with its log `log`: the
/// crates it compiled get their new findings. Returns every crate's.
pub fn update_clippy(dir: &Path, log: &str, tree: &str) -> Result<Vec<String>> {
    let path = dir.join(CLIPPY_FINDINGS);
    let mut kept: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in fs::read_to_string(&path).unwrap_or_default().lines() {
        if let Some((krate, finding)) = line.split_once('\t') {
            kept.entry(krate.to_string())
                .or_default()
                .push(finding.to_string());
        }
    }
    let mut new = clippy_diagnostics(log, tree);
    for krate in clippy_compiled(log) {
        kept.insert(krate.to_string(), new.remove(krate).unwrap_or_default());
    }
    let mut text = String::new();
    for (krate, findings) in &kept {
        for f in findings {
            text.push_str(&format!("{krate}\t{f}\n"));
        }
    }
    fs::write(&path, text)?;
    Ok(kept.into_values().flatten().collect())
}

/// Clippy's verdict on the last test build of the Rust kernel.
pub fn clippy(dir: &Path) -> Check {
    let findings = match fs::read_to_string(dir.join(CLIPPY_FINDINGS)) {
        Ok(text) => text
            .lines()
            .map(|l| l.split_once('\t').map_or(l, |(_, f)| f).to_string())
            .collect(),
        Err(e) => vec![format!(
            "no clippy findings file ({e}): not built with CLIPPY=1?"
        )],
    };
    Check {
        name: "make CLIPPY=1",
        findings,
        scope: format!("{} crates of the project's Rust", CLIPPY_CRATES.len()),
    }
}

/// Lines of a checker's output that are findings in the project's files.
fn findings_in(output: &str, needles: &[&str], ours: &[&str]) -> Vec<String> {
    output
        .lines()
        .filter(|l| needles.iter().any(|n| l.contains(n)))
        .filter(|l| ours.iter().any(|o| l.contains(o)))
        .map(str::to_string)
        .collect()
}

/// Runs make target `args` in the Rust kernel's build dir, logged to
/// `name.log`; returns whether it succeeded, and its output.
fn make(ws: &Workspace, dir: &Path, args: &[&str], name: &str) -> Result<(bool, String)> {
    let mut cmd = toolchain::make(&ws.work_tree(), dir, crate::cli::Arch::X86_64, 2);
    cmd.args(args);
    let log = dir.join(format!("{name}.log"));
    let ok = kernel::run_logged(cmd, &log, name).is_ok();
    Ok((ok, fs::read_to_string(&log).unwrap_or_default()))
}

/// Runs every checker on the built Rust kernel in `dir`.
pub fn run(ws: &Workspace, dir: &Path) -> Result<Vec<Check>> {
    let mut checks = Vec::new();

    let (ok, out) = make(
        ws,
        dir,
        &[&format!("RUSTFMT={}", crate::lint::RUSTFMT), "rustfmtcheck"],
        "rustfmtcheck",
    )?;
    // rustfmt checks a module once per crate that includes it: one line per place.
    let mut findings: Vec<String> = out
        .lines()
        .filter(|l| l.starts_with("Diff in"))
        .map(str::to_string)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if !ok && findings.is_empty() {
        findings.push(format!(
            "make rustfmtcheck failed: see {}",
            dir.join("rustfmtcheck.log").display()
        ));
    }
    checks.push(Check {
        name: "make rustfmtcheck",
        findings,
        scope: "every .rs file of the tree".into(),
    });

    checks.push(clippy(dir));

    // Not `toolchain::make`: the docs' Makefile has a `RUSTDOC` of its own.
    let docs = dir.join("htmldocs");
    let mut cmd = Command::new("make");
    cmd.current_dir(ws.work_tree())
        .arg(format!("O={}", docs.display()))
        .args(["SPHINXDIRS=iommu", "htmldocs"]);
    fs::create_dir_all(&docs)?;
    let log = docs.join("htmldocs.log");
    let ok = kernel::run_logged(cmd, &log, "htmldocs").is_ok();
    let out = fs::read_to_string(&log).unwrap_or_default();
    let mut findings = findings_in(&out, &["WARNING", "ERROR"], &["Documentation/iommu/"]);
    if !ok {
        findings.push(format!("make htmldocs failed: see {}", log.display()));
    }
    checks.push(Check {
        name: "make htmldocs SPHINXDIRS=iommu",
        findings,
        scope: "Documentation/iommu/".into(),
    });

    let (ok, out) = make(ws, dir, &["rustdoc"], "rustdoc")?;
    let tree = ws.work_tree();
    let mut findings: Vec<String> = diagnostics(&out, &tree.to_string_lossy())
        .into_iter()
        .filter(|(loc, _)| {
            // The new abstractions: the repo's files under `rust/`.
            let file = loc.split(':').next().unwrap_or(loc);
            file.starts_with("rust/") && ws.repo.join(file).is_file()
        })
        .map(|(loc, head)| format!("{loc}: {head}"))
        .collect();
    if !ok {
        findings.push(format!(
            "make rustdoc failed: see {}",
            dir.join("rustdoc.log").display()
        ));
    }
    checks.push(Check {
        name: "make rustdoc",
        findings,
        scope: "the kernel crate, the new abstractions' findings".into(),
    });
    Ok(checks)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
  CLIPPY L rust/kernel.o
warning: unsafe block missing a safety comment
   --> /tree/rust/kernel/iommu/fault/framework.rs:457:20
    |
  CLIPPY     drivers/iommu/iopf/iopf.o
warning: this boolean expression can be simplified
   --> /tree/drivers/iommu/iopf/queue.rs:178:16
warning: in someone else's driver
   --> /tree/drivers/gpu/nova/x.rs:1:1
";

    #[test]
    fn findings_go_to_the_crate_of_their_file() {
        let d = clippy_diagnostics(LOG, "/tree");
        assert_eq!(d.len(), 2, "{d:?}");
        assert_eq!(
            d["rust/kernel.o"],
            vec!["rust/kernel/iommu/fault/framework.rs:457:20: warning: unsafe block missing a safety comment"]
        );
        assert_eq!(
            crate_of("drivers/iommu/iommu_sva_iopf.rs"),
            Some("drivers/iommu/iommu_sva_iopf.o")
        );
        assert_eq!(
            crate_of("drivers/iommu/iopf/ffi.rs"),
            Some("drivers/iommu/iopf/iopf.o")
        );
        assert_eq!(crate_of("drivers/iommu/intel/x.rs"), None);
    }

    #[test]
    fn a_crate_keeps_its_findings_until_it_is_compiled_again() {
        let dir = tempfile::tempdir().unwrap();
        let all = update_clippy(dir.path(), LOG, "/tree").unwrap();
        assert_eq!(all.len(), 2);
        // Nothing recompiled: the findings stay.
        assert_eq!(update_clippy(dir.path(), "", "/tree").unwrap().len(), 2);
        // The core recompiled clean: only the kernel crate's finding stays.
        let all = update_clippy(
            dir.path(),
            "  CLIPPY     drivers/iommu/iopf/iopf.o\n",
            "/tree",
        )
        .unwrap();
        assert_eq!(all.len(), 1);
        assert!(all[0].starts_with("rust/kernel/iommu/fault/framework.rs"));
        assert!(!clippy(dir.path()).clean());
    }

    #[test]
    fn the_table_names_each_checker_and_its_findings() {
        let checks = [
            Check {
                name: "make rustfmtcheck",
                findings: vec![],
                scope: "all".into(),
            },
            Check {
                name: "make rustdoc",
                findings: vec!["warning: x".into()],
                scope: "k".into(),
            },
        ];
        let t = render(&checks);
        assert!(t.contains("| make rustfmtcheck | all   | clean"), "{t}");
        assert!(t.contains("1 finding(s)"), "{t}");
        assert!(t.contains("  make rustdoc: warning: x"), "{t}");
    }
}
