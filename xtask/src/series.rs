//! The patch series: `patches/NNNN-*.patch`, one commit each, in order.
//!
//! Each patch file holds a commit message, a `---` line, the repo paths whose
//! files the patch adds (`Adds:` lines; a path ending in `/` adds everything
//! under it), then a unified diff of kernel files that exist before the patch:
//! pristine ones, or ones an earlier patch added. The repo holds every file it
//! adds in its final form; the version a patch adds is that form with the
//! later patches' hunks on it undone (`patch -R`), so that the tests' Kconfig
//! symbols, say, arrive with the tests. See `patches/README`.
//!
//! The overlay (`overlay.rs`) lays the final files over the pristine tree and
//! applies the hunks on pristine files. [`states`] replays the series patch by
//! patch and checks that its end is the overlay's tree; `cargo xtask patch`
//! makes the commits with `git fast-import` in a git repository of the pristine
//! tree, writes them with `git format-patch`, and applies them there with
//! `git am`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};

use crate::checkpatch;
use crate::cli::PatchArgs;
use crate::cli::{Arch, Variant};
use crate::kconfig::Fragment;
use crate::kernel;
use crate::overlay;
use crate::paths::Workspace;
use crate::toolchain;

/// Separates the commit message from the rest of a patch file.
const SEPARATOR: &str = "---";
/// Names a repo path the patch adds.
const ADDS: &str = "Adds: ";
/// The cover letter's subject (first line) and text, in `patches/`.
pub const COVER_LETTER: &str = "cover-letter";

/// One patch of the series.
#[derive(Debug, Clone)]
pub struct Patch {
    /// File name in `patches/`.
    pub name: String,
    pub subject: String,
    /// The message after the subject and its blank line.
    pub body: String,
    /// Repo paths (files, or directories ending in `/`) the patch adds.
    pub adds: Vec<String>,
    /// The diff, one section per kernel file.
    pub sections: Vec<Section>,
}

impl Patch {
    /// The commit message, as `git commit` takes it.
    pub fn message(&self) -> String {
        if self.body.is_empty() {
            format!("{}\n", self.subject)
        } else {
            format!("{}\n\n{}\n", self.subject, self.body)
        }
    }
}

/// The part of a unified diff about one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Kernel-relative path, from the `+++ b/` line.
    pub path: PathBuf,
    /// The section's text: `---` and `+++` lines, then its hunks.
    pub text: String,
}

/// Reads the series: every `patches/*.patch`, in name order.
pub fn load(dir: &Path) -> Result<Vec<Patch>> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    files.retain(|p| p.extension().is_some_and(|e| e == "patch"));
    files.sort();
    files
        .iter()
        .map(|f| {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            let text = fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
            parse(&name, &text).with_context(|| format!("patches/{name}"))
        })
        .collect()
}

/// Parses one patch file (see the module's documentation).
pub fn parse(name: &str, text: &str) -> Result<Patch> {
    let mut lines = text.lines().peekable();
    let subject = lines.next().unwrap_or_default().trim_end().to_string();
    ensure!(!subject.is_empty(), "no subject on the first line");
    let mut body = Vec::new();
    let mut separated = false;
    for line in lines.by_ref() {
        if line == SEPARATOR {
            separated = true;
            break;
        }
        body.push(line);
    }
    ensure!(separated, "no `{SEPARATOR}` line after the commit message");
    ensure!(
        body.first().is_none_or(|l| l.is_empty()),
        "the subject must be followed by a blank line"
    );
    let body = body.join("\n").trim().to_string();

    let mut adds = Vec::new();
    while let Some(line) = lines.peek() {
        if line.starts_with("--- ") {
            break;
        }
        if let Some(path) = line.strip_prefix(ADDS) {
            let path = path.trim();
            ensure!(
                !path.is_empty() && !path.starts_with('/') && !path.contains(".."),
                "bad path in `{line}`"
            );
            adds.push(path.to_string());
        } else {
            ensure!(
                line.trim().is_empty(),
                "unexpected line before the diff: `{line}`"
            );
        }
        lines.next();
    }
    let rest: Vec<&str> = lines.collect();
    let sections = split_diff(&rest)?;
    ensure!(
        !adds.is_empty() || !sections.is_empty(),
        "the patch adds no file and has no diff"
    );
    Ok(Patch {
        name: name.to_string(),
        subject,
        body,
        adds,
        sections,
    })
}

/// Splits a unified diff into its file sections, counting each hunk's lines
/// so that a removed line starting with `-- ` is not taken for a header.
fn split_diff(lines: &[&str]) -> Result<Vec<Section>> {
    let mut sections: Vec<Section> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let (Some(old), Some(new)) = (
            lines[i].strip_prefix("--- "),
            lines.get(i + 1).and_then(|l| l.strip_prefix("+++ ")),
        ) else {
            bail!("expected a `--- a/FILE` line, found `{}`", lines[i]);
        };
        let Some(path) = header_path(new, "b/") else {
            bail!("expected `+++ b/FILE`, found `+++ {new}`");
        };
        ensure!(
            header_path(old, "a/").as_ref() == Some(&path),
            "the patch must modify a file in place: `--- {old}` against `+++ {new}`"
        );
        let mut text = format!("{}\n{}\n", lines[i], lines[i + 1]);
        i += 2;
        while i < lines.len() && lines[i].starts_with("@@ ") {
            let (mut old_left, mut new_left) = hunk_counts(lines[i])?;
            text.push_str(lines[i]);
            text.push('\n');
            i += 1;
            while old_left + new_left > 0 {
                let Some(line) = lines.get(i) else {
                    bail!("{}: the diff ends inside a hunk", path.display());
                };
                match line.chars().next() {
                    // GNU patch takes an empty line for an empty context line.
                    Some(' ') | None => {
                        old_left = old_left.checked_sub(1).context("hunk too long")?;
                        new_left = new_left.checked_sub(1).context("hunk too long")?;
                    }
                    Some('-') => old_left = old_left.checked_sub(1).context("hunk too long")?,
                    Some('+') => new_left = new_left.checked_sub(1).context("hunk too long")?,
                    Some('\\') => {}
                    _ => bail!("{}: unexpected line in a hunk: `{line}`", path.display()),
                }
                text.push_str(line);
                text.push('\n');
                i += 1;
            }
            if lines.get(i).is_some_and(|l| l.starts_with('\\')) {
                text.push_str(lines[i]);
                text.push('\n');
                i += 1;
            }
        }
        ensure!(
            text.lines().count() > 2,
            "{}: a file header without hunks",
            path.display()
        );
        ensure!(
            sections.iter().all(|s| s.path != path),
            "{} appears twice in one patch",
            path.display()
        );
        sections.push(Section { path, text });
    }
    Ok(sections)
}

/// The path of a `---` or `+++` header, without its `a/` or `b/` prefix.
fn header_path(header: &str, prefix: &str) -> Option<PathBuf> {
    header
        .split('\t')
        .next()
        .and_then(|p| p.trim().strip_prefix(prefix))
        .map(PathBuf::from)
}

/// Lines of the old and the new side announced by a hunk header.
fn hunk_counts(header: &str) -> Result<(usize, usize)> {
    let ranges = header
        .strip_prefix("@@ ")
        .and_then(|h| h.split(" @@").next())
        .with_context(|| format!("bad hunk header `{header}`"))?;
    let count = |range: &str, sign: char| -> Result<usize> {
        let range = range
            .strip_prefix(sign)
            .with_context(|| format!("bad hunk header `{header}`"))?;
        Ok(match range.split_once(',') {
            Some((_, n)) => n.parse()?,
            None => 1,
        })
    };
    let (old, new) = ranges
        .split_once(' ')
        .with_context(|| format!("bad hunk header `{header}`"))?;
    Ok((count(old, '-')?, count(new, '+')?))
}

/// For each patch, the kernel paths of the repo files it adds. Every file the
/// overlay installs must be added by exactly one patch.
pub fn claims(
    installed: &BTreeMap<PathBuf, PathBuf>,
    patches: &[Patch],
) -> Result<Vec<BTreeSet<PathBuf>>> {
    let mut owner: BTreeMap<&Path, Vec<&str>> = BTreeMap::new();
    let mut claims = Vec::new();
    let mut problems = Vec::new();
    for patch in patches {
        let mut mine = BTreeSet::new();
        for add in &patch.adds {
            let matched: Vec<(&PathBuf, &PathBuf)> = installed
                .iter()
                .filter(|(_, repo)| match add.strip_suffix('/') {
                    Some(dir) => repo.starts_with(dir),
                    None => repo.as_path() == Path::new(add),
                })
                .collect();
            if matched.is_empty() {
                problems.push(format!(
                    "{}: `{ADDS}{add}` names no file that the overlay installs",
                    patch.name
                ));
            }
            for (kernel, repo) in matched {
                owner.entry(repo).or_default().push(&patch.name);
                mine.insert(kernel.clone());
            }
        }
        claims.push(mine);
    }
    for repo in installed.values() {
        match owner.get(repo.as_path()).map(Vec::as_slice) {
            None | Some([]) => problems.push(format!(
                "{} is installed by the overlay but added by no patch (add an `{ADDS}` line)",
                repo.display()
            )),
            Some([_]) => {}
            Some(many) => problems.push(format!(
                "{} is added by more than one patch: {}",
                repo.display(),
                many.join(", ")
            )),
        }
    }
    if !problems.is_empty() {
        bail!(
            "the series does not match the overlay:\n  {}",
            problems.join("\n  ")
        );
    }
    Ok(claims)
}

/// What each patch changes: kernel path to its content after the patch.
pub type Change = BTreeMap<PathBuf, Vec<u8>>;

/// Replays the series over the pristine tree, patch by patch, and checks that
/// it ends where the overlay's `plan` does.
pub fn states(repo: &Path, pristine: &Path, patches: &[Patch]) -> Result<Vec<Change>> {
    let installed = overlay::installed(repo)?;
    let claims = claims(&installed, patches)?;
    let added_by: BTreeMap<&PathBuf, usize> = claims
        .iter()
        .enumerate()
        .flat_map(|(i, c)| c.iter().map(move |k| (k, i)))
        .collect();
    let scratch = overlay::tempdir()?;

    let mut state: BTreeMap<PathBuf, Vec<u8>> = BTreeMap::new();
    let mut changes = Vec::new();
    for (i, patch) in patches.iter().enumerate() {
        let mut change = Change::new();
        for kernel in &claims[i] {
            let repo_file = repo.join(&installed[kernel]);
            let mut content = fs::read(&repo_file)?;
            // Undo, latest first, the later patches' hunks on this file.
            for later in patches[i + 1..].iter().rev() {
                for s in later.sections.iter().filter(|s| &s.path == kernel) {
                    content = apply(&scratch, &content, s, true).with_context(|| {
                        format!(
                            "undoing {}'s hunks on {} to find the version {} adds",
                            later.name,
                            kernel.display(),
                            patch.name
                        )
                    })?;
                }
            }
            if pristine.join(kernel).exists() {
                bail!(
                    "{}: adds {}, which the kernel already has: diff it instead",
                    patch.name,
                    kernel.display()
                );
            }
            change.insert(kernel.clone(), content);
        }
        for s in &patch.sections {
            if let Some(&adder) = added_by.get(&s.path) {
                ensure!(
                    adder < i,
                    "{}: modifies {}, which {} adds: a patch may only modify what is there before it",
                    patch.name,
                    s.path.display(),
                    patches[adder].name
                );
            }
            let base = match state.get(&s.path) {
                Some(content) => content.clone(),
                None => fs::read(pristine.join(&s.path)).with_context(|| {
                    format!(
                        "{}: modifies {}, which is neither in the kernel nor added before",
                        patch.name,
                        s.path.display()
                    )
                })?,
            };
            let content = apply(&scratch, &base, s, false)
                .with_context(|| format!("{}: {}", patch.name, s.path.display()))?;
            change.insert(s.path.clone(), content);
        }
        state.extend(change.iter().map(|(k, v)| (k.clone(), v.clone())));
        changes.push(change);
    }
    fs::remove_dir_all(&scratch)?;

    let plan = overlay::plan(repo, pristine)?;
    let mut differ: Vec<String> = Vec::new();
    for path in plan.keys().chain(state.keys()).collect::<BTreeSet<_>>() {
        if plan.get(path) != state.get(path) {
            differ.push(path.display().to_string());
        }
    }
    ensure!(
        differ.is_empty(),
        "the series does not end at the overlay's tree; these files differ:\n  {}",
        differ.join("\n  ")
    );
    Ok(changes)
}

/// Applies (or, with `reverse`, undoes) one section to `content`, exactly:
/// no fuzz, as the overlay applies patches.
fn apply(scratch: &Path, content: &[u8], section: &Section, reverse: bool) -> Result<Vec<u8>> {
    let (input, diff, output) = (
        scratch.join("in"),
        scratch.join("diff"),
        scratch.join("out"),
    );
    fs::write(&input, content)?;
    fs::write(&diff, &section.text)?;
    let _ = fs::remove_file(&output);
    let mut cmd = Command::new("patch");
    // --force: never guess that a hunk is reversed; a hunk that does not
    // apply as written is an error.
    cmd.args(["--force", "--fuzz=0", "--silent", "--reject-file=-", "-o"])
        .arg(&output)
        .arg("-i")
        .arg(&diff)
        .arg(&input)
        .current_dir(scratch);
    if reverse {
        cmd.arg("-R");
    }
    let out = cmd
        .output()
        .context("running patch (apt-get install patch)")?;
    if !out.status.success() {
        bail!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(fs::read(&output)?)
}

/// Problems with a commit message, as a maintainer would see them.
pub fn message_problems(patch: &Patch) -> Vec<String> {
    let mut problems = Vec::new();
    let subject = &patch.subject;
    // `iommu: `, `iommu/iopf: `, `rust: iommu: `, `samples: rust: `...
    let prefixed = subject.split_once(": ").is_some_and(|(prefix, rest)| {
        !rest.is_empty()
            && prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/-_: ".contains(c))
    });
    if !prefixed {
        problems.push(format!("subject `{subject}` has no `subsystem: ` prefix"));
    }
    if subject.len() > 75 {
        problems.push(format!(
            "subject is {} characters long (max 75)",
            subject.len()
        ));
    }
    if subject.ends_with('.') {
        problems.push("subject ends with a period".into());
    }
    if patch.body.is_empty() {
        problems.push("no commit message body: say why".into());
    }
    for line in patch.body.lines() {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("signed-off-by:") || lower.starts_with("co-developed-by:") {
            problems.push(format!(
                "`{line}`: the sender signs off, not the series (see patches/README)"
            ));
        }
        if line.chars().count() > 75 && !line.contains("://") {
            problems.push(format!("message line longer than 75 characters: `{line}`"));
        }
    }
    problems
}

/// Every message problem of the series, named by patch.
pub fn check_messages(patches: &[Patch]) -> Result<()> {
    let problems: Vec<String> = patches
        .iter()
        .flat_map(|p| {
            message_problems(p)
                .into_iter()
                .map(move |m| format!("{}: {m}", p.name))
        })
        .collect();
    ensure!(
        problems.is_empty(),
        "commit messages:\n  {}",
        problems.join("\n  ")
    );
    Ok(())
}

/// A git repository with a work tree, driven through the `git` command.
pub struct Git {
    pub dir: PathBuf,
}

/// Who the commits of the series are from: git's identity where it has one
/// (the sender's), a placeholder that names no person otherwise.
#[derive(Debug, Clone)]
pub struct Ident {
    pub name: String,
    pub email: String,
    /// Seconds since the epoch, UTC.
    pub time: i64,
}

impl Ident {
    fn line(&self) -> String {
        format!("{} <{}> {} +0000", self.name, self.email, self.time)
    }

    /// The identity for commits made on behalf of `repo`'s user, dated by
    /// `repo`'s last commit so that the series does not change by itself.
    pub fn of(repo: &Path) -> Ident {
        let git = |args: &[&str]| {
            Command::new("git")
                .args(args)
                .current_dir(repo)
                .stderr(Stdio::null())
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        let ident = git(&["var", "GIT_AUTHOR_IDENT"]).and_then(|line| {
            let (name, rest) = line.split_once(" <")?;
            let (email, _) = rest.split_once('>')?;
            Some((name.to_string(), email.to_string()))
        });
        let (name, email) = ident.unwrap_or_else(|| {
            (
                "iopf-rust".to_string(),
                "iopf-rust@example.invalid".to_string(),
            )
        });
        let time = git(&["log", "-1", "--format=%ct"])
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        Ident { name, email, time }
    }
}

impl Git {
    /// A `git` command in this repository, with `ident` as author and committer.
    fn cmd(&self, ident: &Ident) -> Command {
        let mut cmd = Command::new("git");
        let date = format!("@{} +0000", ident.time);
        cmd.current_dir(&self.dir)
            .env("GIT_AUTHOR_NAME", &ident.name)
            .env("GIT_AUTHOR_EMAIL", &ident.email)
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_NAME", &ident.name)
            .env("GIT_COMMITTER_EMAIL", &ident.email)
            .env("GIT_COMMITTER_DATE", &date)
            // Never let a repository around the cache be found instead.
            .env(
                "GIT_CEILING_DIRECTORIES",
                self.dir.parent().unwrap_or(&self.dir),
            );
        cmd
    }

    /// Runs git with `args`; fails with its output unless it succeeds.
    fn run(&self, ident: &Ident, args: &[&str]) -> Result<String> {
        let out = self
            .cmd(ident)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("running git")?;
        if !out.status.success() {
            bail!(
                "git {} failed in {}:\n{}{}",
                args.join(" "),
                self.dir.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// A commit on `branch` per change, from `base`, through one `git
    /// fast-import`; returns the last commit.
    fn import(
        &self,
        ident: &Ident,
        branch: &str,
        base: &str,
        commits: &[(String, &Change)],
        pristine: &Path,
    ) -> Result<String> {
        let mut stream = Vec::new();
        writeln!(stream, "reset {branch}\nfrom {base}\n")?;
        for (message, change) in commits {
            writeln!(stream, "commit {branch}")?;
            writeln!(stream, "author {}", ident.line())?;
            writeln!(stream, "committer {}", ident.line())?;
            writeln!(stream, "data {}\n{message}", message.len())?;
            for (path, content) in *change {
                let p = path.to_str().context("non-UTF-8 path")?;
                ensure!(
                    !p.contains(|c: char| c.is_whitespace() || c == '"'),
                    "path `{p}` needs quoting"
                );
                // Keep a pristine file's executable bit, as the overlay does.
                let mode = match fs::metadata(pristine.join(path)) {
                    Ok(m)
                        if std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111
                            != 0 =>
                    {
                        "100755"
                    }
                    _ => "100644",
                };
                writeln!(stream, "M {mode} inline {p}\ndata {}", content.len())?;
                stream.extend_from_slice(content);
                stream.push(b'\n');
            }
            stream.push(b'\n');
        }
        stream.extend_from_slice(b"done\n");

        let mut child = self
            .cmd(ident)
            .args(["fast-import", "--quiet", "--force", "--done"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running git fast-import")?;
        child.stdin.take().unwrap().write_all(&stream)?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "git fast-import failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        self.run(ident, &["rev-parse", branch])
    }
}

/// The tag of the pristine tree's commit.
const PRISTINE_TAG: &str = "pristine";
/// The branch of the series, whose description is the cover letter.
const SERIES_BRANCH: &str = "iopf-series";
/// A commit with the overlay's tree, for comparisons.
const OVERLAY_REF: &str = "refs/iopf/overlay";
/// Marks a complete repository, naming the tree it was made from.
const STAMP: &str = "iopf-pristine";

/// The identity of the pristine repository's one commit.
fn pristine_ident() -> Ident {
    Ident {
        name: "iopf-rust".into(),
        email: "iopf-rust@example.invalid".into(),
        time: 0,
    }
}

/// Makes `dir` a git repository of `pristine` (a copy, committed and tagged
/// `pristine`) unless it is one already. Returns it and whether it was made.
pub fn pristine_repo(pristine: &Path, dir: &Path) -> Result<(Git, bool)> {
    let git = Git {
        dir: dir.to_path_buf(),
    };
    let identity = pristine.canonicalize()?.display().to_string();
    let stamp = dir.join(".git").join(STAMP);
    if fs::read_to_string(&stamp).ok().as_deref() == Some(&identity[..]) {
        return Ok((git, false));
    }
    eprintln!(
        "==> making a git repository of {} in {} (once)",
        pristine.display(),
        dir.display()
    );
    if dir.exists() {
        fs::remove_dir_all(dir)?;
    }
    fs::create_dir_all(dir)?;
    let status = Command::new("rsync")
        .args(["-a", "--exclude=/.git"])
        .arg(format!("{}/", pristine.display()))
        .arg(format!("{}/", dir.display()))
        .status()
        .context("running rsync (apt-get install rsync)")?;
    ensure!(status.success(), "copying the kernel tree failed");
    let ident = pristine_ident();
    git.run(&ident, &["init", "--quiet"])?;
    for (key, value) in [
        // Our own commands decide when to pack, not git gc --auto.
        ("gc.auto", "0"),
        ("core.autocrlf", "false"),
        ("advice.detachedHead", "false"),
        ("am.threeWay", "false"),
    ] {
        git.run(&ident, &["config", key, value])?;
    }
    // -f: the tree's .gitignore files must not keep files out of it.
    git.run(&ident, &["add", "--all", "--force", "."])?;
    git.run(
        &ident,
        &[
            "commit",
            "--quiet",
            "--no-verify",
            "-m",
            "The pristine kernel tree",
        ],
    )?;
    git.run(&ident, &["tag", PRISTINE_TAG])?;
    fs::write(&stamp, identity)?;
    Ok((git, true))
}

/// What `cargo xtask patch` made and checked.
pub struct Report {
    /// The `git format-patch` files, cover letter first.
    pub files: Vec<PathBuf>,
    pub patches: usize,
    /// Files the series changes in the kernel tree.
    pub files_changed: usize,
    pub took_repo: Option<std::time::Duration>,
    pub took_series: std::time::Duration,
    pub took_am: std::time::Duration,
}

impl Report {
    /// One line for a results table.
    pub fn line(&self) -> String {
        format!(
            "series: {} patches, git am on the pristine tree OK, identical to the overlay ({} files)",
            self.patches, self.files_changed
        )
    }
}

/// The series, written and checked: the commits are made in a git
/// repository of the pristine tree, written with `git format-patch` to
/// `out`, applied again with `git am` on the pristine commit, and the tree
/// that results must be the overlay's.
pub fn write_and_check(repo: &Path, pristine: &Path, git_dir: &Path, out: &Path) -> Result<Report> {
    let t0 = Instant::now();
    let (git, made) = pristine_repo(pristine, git_dir)?;
    let took_repo = made.then(|| t0.elapsed());

    let t1 = Instant::now();
    let patches = load(&repo.join("patches"))?;
    ensure!(
        !patches.is_empty(),
        "no patches in {}",
        repo.join("patches").display()
    );
    check_messages(&patches)?;
    let changes = states(repo, pristine, &patches)?;
    let cover = fs::read_to_string(repo.join("patches").join(COVER_LETTER))
        .with_context(|| format!("reading patches/{COVER_LETTER}"))?;
    let ident = Ident::of(repo);
    let base = git.run(
        &ident,
        &["rev-parse", &format!("{PRISTINE_TAG}^{{commit}}")],
    )?;
    let commits: Vec<(String, &Change)> =
        patches.iter().map(|p| p.message()).zip(&changes).collect();
    let head = git.import(
        &ident,
        &format!("refs/heads/{SERIES_BRANCH}"),
        &base,
        &commits,
        pristine,
    )?;
    // The overlay's tree, as one commit.
    let plan = overlay::plan(repo, pristine)?;
    let overlay_commit = git.import(
        &ident,
        OVERLAY_REF,
        &base,
        &[("The overlay\n".to_string(), &plan)],
        pristine,
    )?;
    let tree = |rev: &str| git.run(&ident, &["rev-parse", &format!("{rev}^{{tree}}")]);
    let overlay_tree = tree(&overlay_commit)?;
    ensure!(
        tree(&head)? == overlay_tree,
        "the series' last commit is not the overlay's tree"
    );

    git.run(
        &ident,
        &[
            "config",
            &format!("branch.{SERIES_BRANCH}.description"),
            &cover,
        ],
    )?;
    fs::create_dir_all(out)?;
    for entry in fs::read_dir(out)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "patch") {
            fs::remove_file(path)?;
        }
    }
    let out_str = out.to_str().context("non-UTF-8 output path")?;
    let listing = git.run(
        &ident,
        &[
            "format-patch",
            "--cover-letter",
            "--cover-from-description=subject",
            "--no-renames",
            "-o",
            out_str,
            &format!("{base}..{SERIES_BRANCH}"),
        ],
    )?;
    let files: Vec<PathBuf> = listing.lines().map(PathBuf::from).collect();
    ensure!(
        files.len() == patches.len() + 1,
        "git format-patch wrote {} files for {} patches and a cover letter",
        files.len(),
        patches.len()
    );
    let took_series = t1.elapsed();

    // git am, on the pristine commit, as someone with their own tree would.
    let t2 = Instant::now();
    let _ = git.run(&ident, &["am", "--abort"]);
    git.run(
        &ident,
        &["checkout", "--quiet", "--force", "--detach", PRISTINE_TAG],
    )?;
    git.run(&ident, &["clean", "-fdxq"])?;
    let mut am = vec!["am", "--quiet"];
    let patch_files: Vec<&str> = files[1..]
        .iter()
        .map(|f| f.to_str().context("non-UTF-8 path"))
        .collect::<Result<_>>()?;
    am.extend(patch_files);
    git.run(&ident, &am)
        .context("the series does not apply with git am")?;
    let applied = tree("HEAD")?;
    if applied != overlay_tree {
        let diff = git.run(&ident, &["diff", "--stat", &overlay_tree, &applied])?;
        bail!("after git am, the tree differs from the overlay's:\n{diff}");
    }
    let took_am = t2.elapsed();
    Ok(Report {
        files,
        patches: patches.len(),
        files_changed: plan.len(),
        took_repo,
        took_series,
        took_am,
    })
}

/// Takes the lock of the series' git repository: one user at a time.
fn lock(ws: &Workspace) -> Result<fs::File> {
    let path = ws.cache.join("series.lock");
    let file = fs::File::create(&path)?;
    if file.try_lock().is_err() {
        eprintln!("==> waiting for another user of {}", path.display());
        file.lock()?;
    }
    Ok(file)
}

/// Writes and checks the series for `cargo xtask test`: the line for the
/// results table, or the first problem.
pub fn check(ws: &Workspace) -> Result<(Report, checkpatch::Summary)> {
    let pristine = ws.pristine()?;
    let _lock = lock(ws)?;
    let report = write_and_check(&ws.repo, &pristine, &ws.series_repo(), &ws.series_out())?;
    let summary = checkpatch::run(&ws.series_repo(), &ws.repo, &report.files[1..])?;
    Ok((report, summary))
}

/// `cargo xtask patch`.
pub fn command(args: &PatchArgs) -> Result<()> {
    let ws = Workspace::discover()?;
    let pristine = ws.pristine()?;
    let _lock = lock(&ws)?;
    let out = args.output.clone().unwrap_or_else(|| ws.series_out());
    let report = write_and_check(&ws.repo, &pristine, &ws.series_repo(), &out)?;
    if let Some(t) = report.took_repo {
        eprintln!(
            "==> git repository of the pristine tree made in {:.0}s",
            t.as_secs_f64()
        );
    }
    eprintln!(
        "==> series written in {:.1}s, git am checked in {:.1}s",
        report.took_series.as_secs_f64(),
        report.took_am.as_secs_f64()
    );
    for f in &report.files {
        println!("{}", f.display());
    }
    println!("{}", report.line());
    let summary = checkpatch::run(&ws.series_repo(), &ws.repo, &report.files[1..])?;
    print!("{}", summary.details());
    println!("{}", summary.line());
    if args.check_bisect {
        let jobs = args.jobs.unwrap_or_else(toolchain::default_jobs);
        bisect(&ws, &report, jobs)?;
    }
    summary.check()
}

/// `--check-bisect`: builds the kernel at each commit of the series, in the
/// series' repository, one after the other in one build directory, with the
/// test configuration of the `rust` variant on x86_64. Symbols of the
/// configuration that a patch does not have yet are left out by Kconfig; at
/// the last patch, every one must be set.
fn bisect(ws: &Workspace, report: &Report, jobs: usize) -> Result<()> {
    let git = Git {
        dir: ws.series_repo(),
    };
    let ident = Ident::of(&ws.repo);
    let commits: Vec<String> = git
        .run(
            &ident,
            &[
                "rev-list",
                "--reverse",
                &format!("{PRISTINE_TAG}..{SERIES_BRANCH}"),
            ],
        )?
        .lines()
        .map(str::to_string)
        .collect();
    ensure!(
        commits.len() == report.patches,
        "{SERIES_BRANCH} has {} commits for {} patches",
        commits.len(),
        report.patches
    );
    let (arch, variant) = (Arch::X86_64, Variant::Rust);
    let out = ws.profile_build_dir(arch, variant, "-bisect");
    fs::create_dir_all(&out)?;
    let mut merged = Fragment::default();
    for name in kernel::fragments(arch, variant, kernel::Profile::Test) {
        let path = ws.repo.join("configs").join(&name);
        merged.merge(&Fragment::parse(&fs::read_to_string(&path)?).with_context(|| name.clone())?);
    }
    let allconfig = out.join("iopf.config");
    fs::write(&allconfig, merged.render())?;
    let _build = kernel::build_lock(ws)?;

    let mut rows = Vec::new();
    let mut failed = Vec::new();
    for (i, commit) in commits.iter().enumerate() {
        let subject = git.run(&ident, &["log", "-1", "--format=%s", commit])?;
        let n = i + 1;
        git.run(
            &ident,
            &["checkout", "--quiet", "--force", "--detach", commit],
        )?;
        let start = Instant::now();
        let mut cmd = toolchain::make(&git.dir, &out, arch, jobs);
        cmd.arg(format!("KCONFIG_ALLCONFIG={}", allconfig.display()))
            .arg("allnoconfig");
        kernel::run_logged(
            cmd,
            &out.join(format!("config-{n:04}.log")),
            &format!("configuring at patch {n}"),
        )?;
        let dot_config = Fragment::parse(&fs::read_to_string(out.join(".config"))?)?;
        let absent = merged.mismatches(&dot_config);
        let log = out.join(format!("build-{n:04}.log"));
        let mut cmd = toolchain::make(&git.dir, &out, arch, jobs);
        cmd.args(["bzImage", "modules"]);
        let built = kernel::run_logged(
            cmd,
            &log,
            &format!("building at patch {n}/{}", commits.len()),
        );
        let took = start.elapsed().as_secs_f64();
        let warnings = fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("warning:"))
            .count();
        let result = match &built {
            Ok(()) => format!("built in {took:.0}s, {warnings} compiler warning(s)"),
            Err(_) => {
                failed.push(format!("{n:04} {subject}: log at {}", log.display()));
                format!("FAILED after {took:.0}s")
            }
        };
        let absent = if absent.is_empty() {
            String::new()
        } else {
            let names: Vec<&str> = absent
                .iter()
                .map(|m| m.split(':').next().unwrap_or(m))
                .collect();
            format!("; not in Kconfig yet: {}", names.join(" "))
        };
        eprintln!("==> {n:04} {subject}: {result}{absent}");
        rows.push(format!("{n:04} {subject}: {result}{absent}"));
        if n == commits.len() && built.is_ok() {
            ensure!(
                absent.is_empty(),
                "at the last patch, Kconfig did not honour the test configuration{absent}"
            );
            kernel::check_iopf_objects(&out, variant)?;
        }
    }
    println!("\nBisect (x86_64, rust, test config, {}):", out.display());
    for r in &rows {
        println!("  {r}");
    }
    ensure!(
        failed.is_empty(),
        "patches that do not build:\n  {}",
        failed.join("\n  ")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
    }

    fn real_series() -> Vec<Patch> {
        load(&repo().join("patches")).unwrap()
    }

    const PATCH: &str = "\
rust: add foo

Foo is needed because bar.
---
Adds: rust/kernel/foo.rs
Adds: samples/rust/foo/

--- a/rust/kernel/lib.rs
+++ b/rust/kernel/lib.rs
@@ -1,3 +1,3 @@ some context
 pub mod a;
--- an old line that looks like a header
+pub mod foo;
 pub mod z;
\\ No newline at end of file
--- a/rust/Makefile
+++ b/rust/Makefile
@@ -2 +2 @@
-x
+y
";

    #[test]
    fn a_patch_is_read_into_message_adds_and_sections() {
        let p = parse("0001-foo.patch", PATCH).unwrap();
        assert_eq!(p.subject, "rust: add foo");
        assert_eq!(p.body, "Foo is needed because bar.");
        assert_eq!(p.message(), "rust: add foo\n\nFoo is needed because bar.\n");
        assert_eq!(p.adds, ["rust/kernel/foo.rs", "samples/rust/foo/"]);
        assert_eq!(p.sections.len(), 2);
        // A removed line starting with `-- ` stays in its hunk.
        assert_eq!(p.sections[0].path, Path::new("rust/kernel/lib.rs"));
        assert!(p.sections[0].text.contains("--- an old line"));
        assert!(p.sections[0]
            .text
            .ends_with("\\ No newline at end of file\n"));
        assert_eq!(p.sections[1].path, Path::new("rust/Makefile"));
        assert!(message_problems(&p).is_empty());
    }

    #[test]
    fn malformed_patches_are_refused() {
        let cases = [
            ("no separator", PATCH.replace("---\nAdds", "Adds")),
            ("no blank line", PATCH.replace("foo\n\nFoo", "foo\nFoo")),
            (
                "stray text",
                PATCH.replace("Adds: samples", "Also: samples"),
            ),
            ("short hunk", PATCH.replace("+pub mod foo;\n", "")),
            (
                "new file",
                PATCH.replace("--- a/rust/Makefile", "--- /dev/null"),
            ),
            ("empty", "rust: x\n\nWhy.\n---\n".to_string()),
        ];
        for (what, text) in cases {
            assert!(parse("p", &text).is_err(), "{what} was accepted");
        }
    }

    #[test]
    fn messages_must_be_prefixed_explained_and_unsigned() {
        let mut p = parse("p", PATCH).unwrap();
        p.body
            .push_str("\n\nSigned-off-by: Nobody <nobody@example.com>");
        assert!(message_problems(&p)[0].contains("sign"));
        p.subject = "Add foo.".into();
        p.body.clear();
        assert_eq!(message_problems(&p).len(), 3, "{:?}", message_problems(&p));
    }

    #[test]
    fn the_series_messages_are_well_formed() {
        let series = real_series();
        assert!(!series.is_empty());
        check_messages(&series).unwrap();
        for p in &series {
            assert!(
                !p.body.contains("Signed-off-by"),
                "{}: the sender signs off",
                p.name
            );
        }
    }

    #[test]
    fn every_installed_file_belongs_to_exactly_one_patch() {
        let installed = overlay::installed(repo()).unwrap();
        let claims = claims(&installed, &real_series()).unwrap();
        let total: usize = claims.iter().map(BTreeSet::len).sum();
        assert_eq!(total, installed.len());
    }

    #[test]
    fn unclaimed_and_doubly_claimed_files_are_found() {
        let installed: BTreeMap<PathBuf, PathBuf> = [
            ("drivers/iommu/iopf/Kbuild", "Kbuild"),
            ("rust/kernel/a.rs", "rust/kernel/a.rs"),
            ("rust/kernel/b.rs", "rust/kernel/b.rs"),
        ]
        .into_iter()
        .map(|(k, r)| (PathBuf::from(k), PathBuf::from(r)))
        .collect();
        let patch = |name: &str, adds: &[&str]| Patch {
            name: name.into(),
            subject: "rust: x".into(),
            body: "y".into(),
            adds: adds.iter().map(|a| a.to_string()).collect(),
            sections: vec![],
        };
        let ok = [patch("1", &["Kbuild", "rust/kernel/"])];
        assert_eq!(claims(&installed, &ok).unwrap()[0].len(), 3);
        let err = claims(&installed, &[patch("1", &["Kbuild", "rust/kernel/a.rs"])])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("rust/kernel/b.rs is installed by the overlay but added by no patch"),
            "{err}"
        );
        let err = claims(
            &installed,
            &[
                patch("1", &["Kbuild", "rust/"]),
                patch("2", &["rust/kernel/a.rs", "nothing.rs"]),
            ],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("rust/kernel/a.rs is added by more than one patch: 1, 2"),
            "{err}"
        );
        assert!(err.contains("`Adds: nothing.rs` names no file"), "{err}");
    }

    /// The index of the patch that adds `repo_path`.
    fn adder(series: &[Patch], repo_path: &str) -> usize {
        let installed = overlay::installed(repo()).unwrap();
        let claims = claims(&installed, series).unwrap();
        let kernel = installed
            .iter()
            .find(|(_, r)| r.as_path() == Path::new(repo_path))
            .map(|(k, _)| k)
            .unwrap_or_else(|| panic!("{repo_path} is not installed"));
        claims.iter().position(|c| c.contains(kernel)).unwrap()
    }

    #[test]
    fn the_series_is_in_review_order() {
        let series = real_series();
        // Numbered from 0001, without gaps.
        for (i, p) in series.iter().enumerate() {
            assert!(p.name.starts_with(&format!("{:04}-", i + 1)), "{}", p.name);
        }
        let at = |path| adder(&series, path);
        let touches = |file: &str| {
            series
                .iter()
                .position(|p| p.sections.iter().any(|s| s.path == Path::new(file)))
                .unwrap()
        };
        // The kernel crate's abstractions, then the core, the switch, the
        // SVA handler, the tests, the sample, the documents.
        let core = at("drivers/iommu/iopf/iopf.rs");
        for abstraction in [
            "rust/kernel/sync/rcu/pointer.rs",
            "rust/kernel/workqueue/owned.rs",
            "rust/kernel/ratelimit.rs",
            "rust/kernel/mm/fault.rs",
            "rust/kernel/iommu/fault.rs",
            "rust/kernel/iommu/fault/group.rs",
            "rust/kernel/iommu/fault/framework.rs",
            "rust/kernel/iommu/fault/trace.rs",
            "rust/kernel/iommu/sva.rs",
        ] {
            assert!(at(abstraction) < core, "{abstraction} comes after the core");
        }
        let switch = touches("drivers/iommu/Kconfig");
        let sva = at("drivers/iommu/iommu_sva_iopf.rs");
        let tests = at("tests/kunit/iopf_test.c");
        let sample = at("samples/rust/rust_iopf/rust_iopf_main.rs");
        let docs = at("Documentation/iommu/iopf-rust.rst");
        assert!(core < switch && switch < sva && sva < tests && tests < sample && sample < docs);
        // MAINTAINERS names the new files once they are all there.
        assert_eq!(touches("MAINTAINERS"), series.len() - 2);
        // The allocator change stands apart, last.
        let alloc = touches("rust/kernel/alloc/allocator.rs");
        assert_eq!(alloc, series.len() - 1);
        assert_eq!(
            series[alloc].sections.len(),
            2,
            "the allocator patch does only that"
        );
        assert!(series[alloc].adds.is_empty());
    }

    #[test]
    fn the_readme_lists_the_series_in_order() {
        let readme = fs::read_to_string(repo().join("README.md")).unwrap();
        for (i, p) in real_series().iter().enumerate() {
            let item = format!("{}. `{}`", i + 1, p.subject);
            assert!(readme.contains(&item), "README.md lacks `{item}`");
        }
    }

    fn write(root: &Path, rel: &str, content: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }

    /// A pristine tree and a repo whose second patch adds a line to a file
    /// that the first patch adds.
    fn fixture() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let (pristine, repo) = (tmp.path().join("pristine"), tmp.path().join("repo"));
        write(&pristine, "Makefile", "VERSION = 7\n");
        write(&pristine, "drivers/iommu/Makefile", "obj-y += iommu.o\n");
        write(&repo, "drivers/iommu/iopf/iopf.rs", "// core\n");
        write(&repo, "Kbuild", "obj-y += iopf.o\nobj-y += tests/\n");
        write(&repo, "tests/kunit/Makefile", "obj-y += t.o\n");
        write(
            &repo,
            "patches/cover-letter",
            "iommu: IOPF in Rust\n\nThe blurb.\n",
        );
        write(
            &repo,
            "patches/0001-core.patch",
            "iommu/iopf: Add the core\n\nWhy.\n---\n\
             Adds: Kbuild\nAdds: drivers/iommu/iopf/iopf.rs\n\n\
             --- a/drivers/iommu/Makefile\n+++ b/drivers/iommu/Makefile\n\
             @@ -1 +1,2 @@\n obj-y += iommu.o\n+obj-y += iopf/\n",
        );
        write(
            &repo,
            "patches/0002-tests.patch",
            "iommu/iopf: Add tests\n\nWhy.\n---\nAdds: tests/kunit/\n\n\
             --- a/drivers/iommu/iopf/Kbuild\n+++ b/drivers/iommu/iopf/Kbuild\n\
             @@ -1 +1,2 @@\n obj-y += iopf.o\n+obj-y += tests/\n",
        );
        (tmp, pristine, repo)
    }

    #[test]
    fn a_file_is_added_without_the_hunks_of_later_patches() {
        let (_tmp, pristine, repo) = fixture();
        let series = load(&repo.join("patches")).unwrap();
        let changes = states(&repo, &pristine, &series).unwrap();
        let kbuild = Path::new("drivers/iommu/iopf/Kbuild");
        assert_eq!(changes[0][kbuild], b"obj-y += iopf.o\n");
        assert_eq!(changes[1][kbuild], b"obj-y += iopf.o\nobj-y += tests/\n");
        assert!(changes[1].contains_key(Path::new("drivers/iommu/iopf/tests/kunit/Makefile")));
    }

    #[test]
    fn a_later_hunk_that_the_file_does_not_have_is_an_error() {
        let (_tmp, pristine, repo) = fixture();
        write(&repo, "Kbuild", "obj-y += iopf.o\n");
        let series = load(&repo.join("patches")).unwrap();
        let err = format!("{:#}", states(&repo, &pristine, &series).unwrap_err());
        assert!(err.contains("undoing 0002-tests.patch's hunks"), "{err}");
    }

    #[test]
    fn a_patch_may_not_modify_what_a_later_patch_adds() {
        let (_tmp, pristine, repo) = fixture();
        fs::rename(
            repo.join("patches/0002-tests.patch"),
            repo.join("patches/0000-tests.patch"),
        )
        .unwrap();
        let series = load(&repo.join("patches")).unwrap();
        let err = format!("{:#}", states(&repo, &pristine, &series).unwrap_err());
        assert!(
            err.contains("a patch may only modify what is there before it"),
            "{err}"
        );
    }

    #[test]
    fn the_series_applies_with_git_am_and_gives_the_overlay() {
        let (tmp, pristine, repo) = fixture();
        let (git_dir, out) = (tmp.path().join("git"), tmp.path().join("out"));
        let report = write_and_check(&repo, &pristine, &git_dir, &out).unwrap();
        assert!(
            report.took_repo.is_some(),
            "the pristine repository is made"
        );
        assert_eq!(report.patches, 2);
        assert_eq!(report.files.len(), 3);
        let cover = fs::read_to_string(&report.files[0]).unwrap();
        assert!(
            cover.contains("Subject: [PATCH 0/2] iommu: IOPF in Rust"),
            "{cover}"
        );
        assert!(cover.contains("The blurb."), "{cover}");
        let first = fs::read_to_string(&report.files[1]).unwrap();
        assert!(first.contains("Subject: [PATCH 1/2] iommu/iopf: Add the core"));
        assert!(
            first.contains("+++ b/drivers/iommu/iopf/Kbuild\n@@ -0,0 +1 @@\n+obj-y += iopf.o\n")
        );
        assert!(!first.contains("Signed-off-by"));

        // Again: the repository is reused, and the result is the same.
        let again = write_and_check(&repo, &pristine, &git_dir, &out).unwrap();
        assert!(again.took_repo.is_none());
        assert_eq!(fs::read_to_string(&again.files[1]).unwrap(), first);
    }
}
