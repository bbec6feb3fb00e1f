//! Laying the repository over a work copy of the pristine kernel tree.
//!
//! The overlay is the repo's mirrored files plus the results of the small
//! patches in `patches/`, applied to pristine contents. Applying it is
//! idempotent and incremental: a file is written only when its content
//! changes, so Kbuild rebuilds only what an edit touched; files that left the
//! overlay are restored from the pristine tree. The pristine tree is only read.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{bail, Context, Result};

use crate::series;

/// Repo directories copied to the same path in the kernel tree.
const MIRRORED: &[&str] = &["rust", "drivers", "samples", "Documentation"];

/// Repo paths installed elsewhere: the project's own build glue and tests
/// become the `drivers/iommu/iopf/` directory of the kernel.
const RELOCATED: &[(&str, &str)] = &[
    ("Kconfig", "drivers/iommu/iopf/Kconfig"),
    ("Kbuild", "drivers/iommu/iopf/Kbuild"),
    (".kunitconfig", "drivers/iommu/iopf/.kunitconfig"),
    ("tests/kunit", "drivers/iommu/iopf/tests/kunit"),
];

/// Lists, in the work tree, every file this overlay wrote last time.
const MANIFEST: &str = ".iopf-overlay";
/// Marks a completed copy of the pristine tree, naming its source.
const STAMP: &str = ".iopf-pristine";

/// What the overlay changes: kernel-relative path to wanted content.
pub type Plan = BTreeMap<PathBuf, Vec<u8>>;

/// Computes the overlay for `repo` against the `pristine` tree.
pub fn plan(repo: &Path, pristine: &Path) -> Result<Plan> {
    let mut plan = Plan::new();
    for (kernel, from) in installed(repo)? {
        let content = fs::read(repo.join(&from))
            .with_context(|| format!("reading {}", repo.join(&from).display()))?;
        plan.insert(kernel, content);
    }
    apply_patches(&repo.join("patches"), pristine, &mut plan)?;
    Ok(plan)
}

/// The repo files the overlay installs whole: kernel-relative path to
/// repo-relative path.
pub fn installed(repo: &Path) -> Result<BTreeMap<PathBuf, PathBuf>> {
    let mut files = BTreeMap::new();
    for dir in MIRRORED {
        collect(repo, Path::new(dir), Path::new(dir), &mut files)?;
    }
    for (from, to) in RELOCATED {
        collect(repo, Path::new(from), Path::new(to), &mut files)?;
    }
    Ok(files)
}

/// Adds the files under `repo/src` (a file or a directory) to `files`, at
/// `dest` in the kernel tree.
fn collect(
    repo: &Path,
    src: &Path,
    dest: &Path,
    files: &mut BTreeMap<PathBuf, PathBuf>,
) -> Result<()> {
    let full = repo.join(src);
    if full.is_file() {
        files.insert(dest.to_path_buf(), src.to_path_buf());
    } else if full.is_dir() {
        let mut entries = fs::read_dir(&full)?.collect::<std::io::Result<Vec<_>>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name();
            collect(repo, &src.join(&name), &dest.join(&name), files)?;
        }
    }
    Ok(())
}

/// Applies the series' hunks on the kernel's own files (`patches/*.patch`, in
/// name order) on top of their pristine contents. The hunks on files that the
/// repo installs are skipped: the repo holds those files in their final form
/// (see `series.rs`).
fn apply_patches(dir: &Path, pristine: &Path, plan: &mut Plan) -> Result<()> {
    let patches = series::load(dir)?;
    let installed: BTreeSet<PathBuf> = plan.keys().cloned().collect();
    let scratch = tempdir()?;
    let mut touched = BTreeSet::new();
    for patch in &patches {
        let sections: Vec<&series::Section> = patch
            .sections
            .iter()
            .filter(|s| !installed.contains(&s.path))
            .collect();
        if sections.is_empty() {
            continue;
        }
        for s in &sections {
            if touched.insert(s.path.clone()) {
                if let Ok(base) = fs::read(pristine.join(&s.path)) {
                    let at = scratch.join(&s.path);
                    fs::create_dir_all(at.parent().unwrap())?;
                    fs::write(at, base)?;
                }
            }
        }
        let diff = scratch.join(".diff");
        fs::write(
            &diff,
            sections.iter().map(|s| s.text.as_str()).collect::<String>(),
        )?;
        let patched = Command::new("patch")
            .args([
                "-p1",
                "--batch",
                "--forward",
                "--fuzz=0",
                "--silent",
                "--no-backup-if-mismatch",
                "-i",
            ])
            .arg(&diff)
            .current_dir(&scratch)
            .output()
            .context("running patch (apt-get install patch)")?;
        if !patched.status.success() {
            bail!(
                "patches/{} does not apply to kernel {}:\n{}{}",
                patch.name,
                pristine.display(),
                String::from_utf8_lossy(&patched.stdout),
                String::from_utf8_lossy(&patched.stderr)
            );
        }
    }
    for file in touched {
        match fs::read(scratch.join(&file)) {
            Ok(content) => plan.insert(file, content),
            Err(_) => plan.remove(&file),
        };
    }
    fs::remove_dir_all(&scratch)?;
    Ok(())
}

/// A fresh scratch directory, unique within the process too.
pub fn tempdir() -> Result<PathBuf> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("iopf-overlay-{}-{n}", std::process::id()));
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Result of [`apply`]: which files changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub written: Vec<PathBuf>,
    pub restored: Vec<PathBuf>,
}

/// Makes `work` a copy of `pristine` (once) and brings it to `plan`.
pub fn apply(pristine: &Path, work: &Path, plan: &Plan) -> Result<Applied> {
    ensure_copy(pristine, work)?;

    let manifest_path = work.join(MANIFEST);
    let previous: BTreeSet<PathBuf> = fs::read_to_string(&manifest_path)
        .unwrap_or_default()
        .lines()
        .map(PathBuf::from)
        .collect();

    let mut applied = Applied::default();
    for gone in previous.iter().filter(|p| !plan.contains_key(*p)) {
        let target = work.join(gone);
        match fs::read(pristine.join(gone)) {
            Ok(original) => {
                if fs::read(&target).ok().as_deref() != Some(&original[..]) {
                    fs::write(&target, original)?;
                }
            }
            Err(_) => {
                let _ = fs::remove_file(&target);
            }
        }
        applied.restored.push(gone.clone());
    }
    for (path, content) in plan {
        let target = work.join(path);
        if fs::read(&target).ok().as_deref() != Some(&content[..]) {
            fs::create_dir_all(target.parent().unwrap())?;
            fs::write(&target, content).with_context(|| format!("writing {}", target.display()))?;
            applied.written.push(path.clone());
        }
    }
    let listing: String = plan.keys().map(|p| format!("{}\n", p.display())).collect();
    fs::write(manifest_path, listing)?;
    Ok(applied)
}

/// Copies the pristine tree to `work` unless a complete copy of it is there.
fn ensure_copy(pristine: &Path, work: &Path) -> Result<()> {
    let identity = pristine.canonicalize()?.display().to_string();
    if fs::read_to_string(work.join(STAMP)).ok().as_deref() == Some(&identity[..]) {
        return Ok(());
    }
    eprintln!("==> copying {} to {}", pristine.display(), work.display());
    fs::create_dir_all(work)?;
    let status = Command::new("rsync")
        .args(["-a", "--delete", "--exclude=/.git"])
        .arg(format!("{}/", pristine.display()))
        .arg(format!("{}/", work.display()))
        .status()
        .context("running rsync (apt-get install rsync)")?;
    if !status.success() {
        bail!("copying the kernel tree failed");
    }
    // A fresh copy holds none of the overlay: forget the old manifest.
    let _ = fs::remove_file(work.join(MANIFEST));
    fs::write(work.join(STAMP), identity)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, content: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }

    fn read(root: &Path, rel: &str) -> String {
        fs::read_to_string(root.join(rel)).unwrap()
    }

    /// A pristine tree, a repo with a mirrored file, a relocated file and a
    /// patch, and an empty work dir.
    fn fixture() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let (pristine, repo, work) = (
            tmp.path().join("pristine"),
            tmp.path().join("repo"),
            tmp.path().join("work"),
        );
        write(&pristine, "Makefile", "VERSION = 7\n");
        write(&pristine, "drivers/iommu/Makefile", "obj-y += iommu.o\n");
        write(&repo, "drivers/iommu/iopf/iopf.rs", "// rust\n");
        write(&repo, "Kbuild", "obj-y += iopf.o\n");
        write(
            &repo,
            "patches/0001-hook.patch",
            "iommu: Build iopf/\n\nWhy.\n---\nAdds: drivers/iommu/iopf/iopf.rs\nAdds: Kbuild\n\n\
             --- a/drivers/iommu/Makefile\n+++ b/drivers/iommu/Makefile\n@@ -1 +1,2 @@\n obj-y += iommu.o\n+obj-y += iopf/\n",
        );
        (tmp, pristine, repo, work)
    }

    #[test]
    fn overlay_mirrors_relocates_and_patches() {
        let (_tmp, pristine, repo, work) = fixture();
        let applied = apply(&pristine, &work, &plan(&repo, &pristine).unwrap()).unwrap();
        assert_eq!(applied.written.len(), 3);
        assert_eq!(read(&work, "drivers/iommu/iopf/iopf.rs"), "// rust\n");
        assert_eq!(
            read(&work, "drivers/iommu/iopf/Kbuild"),
            "obj-y += iopf.o\n"
        );
        assert_eq!(
            read(&work, "drivers/iommu/Makefile"),
            "obj-y += iommu.o\nobj-y += iopf/\n"
        );
        assert_eq!(
            read(&pristine, "drivers/iommu/Makefile"),
            "obj-y += iommu.o\n"
        );
    }

    #[test]
    fn overlay_is_idempotent() {
        let (_tmp, pristine, repo, work) = fixture();
        apply(&pristine, &work, &plan(&repo, &pristine).unwrap()).unwrap();
        let mtime = fs::metadata(work.join("drivers/iommu/Makefile"))
            .unwrap()
            .modified()
            .unwrap();
        let again = apply(&pristine, &work, &plan(&repo, &pristine).unwrap()).unwrap();
        assert_eq!(again, Applied::default());
        let mtime2 = fs::metadata(work.join("drivers/iommu/Makefile"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(mtime, mtime2, "an unchanged file must not be rewritten");
    }

    #[test]
    fn overlay_rewrites_only_edited_files() {
        let (_tmp, pristine, repo, work) = fixture();
        apply(&pristine, &work, &plan(&repo, &pristine).unwrap()).unwrap();
        write(&repo, "drivers/iommu/iopf/iopf.rs", "// edited\n");
        let applied = apply(&pristine, &work, &plan(&repo, &pristine).unwrap()).unwrap();
        assert_eq!(
            applied.written,
            vec![PathBuf::from("drivers/iommu/iopf/iopf.rs")]
        );
    }

    #[test]
    fn files_leaving_the_overlay_are_restored_or_removed() {
        let (_tmp, pristine, repo, work) = fixture();
        apply(&pristine, &work, &plan(&repo, &pristine).unwrap()).unwrap();
        fs::remove_file(repo.join("patches/0001-hook.patch")).unwrap();
        fs::remove_file(repo.join("drivers/iommu/iopf/iopf.rs")).unwrap();
        let applied = apply(&pristine, &work, &plan(&repo, &pristine).unwrap()).unwrap();
        assert_eq!(applied.restored.len(), 2);
        assert_eq!(read(&work, "drivers/iommu/Makefile"), "obj-y += iommu.o\n");
        assert!(!work.join("drivers/iommu/iopf/iopf.rs").exists());
    }

    #[test]
    fn hunks_on_files_the_repo_installs_are_not_applied_again() {
        let (_tmp, pristine, repo, _work) = fixture();
        // The repo's Kbuild is final: it already has the line a later patch adds.
        write(&repo, "Kbuild", "obj-y += iopf.o\nobj-y += tests/\n");
        write(
            &repo,
            "patches/0002-tests.patch",
            "iommu/iopf: Add tests\n\nWhy.\n---\n\
             --- a/drivers/iommu/iopf/Kbuild\n+++ b/drivers/iommu/iopf/Kbuild\n\
             @@ -1 +1,2 @@\n obj-y += iopf.o\n+obj-y += tests/\n",
        );
        let plan = plan(&repo, &pristine).unwrap();
        assert_eq!(
            plan[Path::new("drivers/iommu/iopf/Kbuild")],
            b"obj-y += iopf.o\nobj-y += tests/\n"
        );
    }

    #[test]
    fn a_patch_that_does_not_apply_is_an_error() {
        let (_tmp, pristine, repo, _work) = fixture();
        write(&pristine, "drivers/iommu/Makefile", "something else\n");
        let err = plan(&repo, &pristine).unwrap_err();
        assert!(err.to_string().contains("does not apply"), "{err}");
    }
}
