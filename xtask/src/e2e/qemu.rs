//! The QEMU of the VT-d end-to-end test.
//!
//! Debian's QEMU 10.2.2 source package (fetched through private apt lists
//! with a `deb-src` entry, sha256-checked; the copy in [`SHARED_COPY`] when
//! the archive no longer has it), Debian's own patches, then the project's
//! (`tests/vtd-e2e/qemu/`): the VT-d patch that gives the model page
//! requests behind `x-prs=on`, and the I/O page fault test device. Built for
//! `x86_64-softmmu` only, with the q35 board, the Intel IOMMU and the test
//! device (`iopf-e2e.mak`), no optional library, by meson and ninja from
//! PyPI (bookworm's meson 1.0 is older than the 1.5 QEMU needs) in a venv.
//!
//! Everything lives under `<cache>/qemu-vtd/`; the build is incremental: an
//! edit of the device source rebuilds one file, an edit of a patch unpacks
//! the source again and rebuilds it all.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::kernel;
use crate::paths::Workspace;
use crate::setup::{self, PrivateApt};

/// The Debian source package, as `apt-get source` names it.
pub const PACKAGE_VERSION: &str = "1:10.2.2+ds-1";
/// The directory the upstream tarball unpacks to.
const TREE: &str = "qemu-10.2.2";
/// Debian suite that has the source (sid keeps only a few versions).
const SUITE: &str = "sid";
/// The source package's files and their sha256.
const FILES: &[(&str, &str)] = &[
    (
        "qemu_10.2.2+ds-1.dsc",
        "f1684b3aa5ec500c3389d346c6501dee45041ea91656c6556d4da9023b7987dd",
    ),
    (
        "qemu_10.2.2+ds.orig.tar.xz",
        "be05230fe47a6937cd29f28f562932c8125f9c93c2a82c625198f7a4aa601dfb",
    ),
    (
        "qemu_10.2.2+ds-1.debian.tar.xz",
        "ddf75aceab4f8f77374f3cb34fc97b41514895aeb293ce8b2ddd5e072bb0f5c0",
    ),
];
/// A kept copy of the three files, used when the archive has dropped them
/// (it keeps few old source versions). `IOPF_QEMU_SOURCE` overrides it.
const SHARED_COPY: &str = "/work/shared/qemu";
const SOURCE_ENV: &str = "IOPF_QEMU_SOURCE";

/// Build tools from PyPI, pinned.
const PYPI: &[&str] = &["meson==1.9.0", "ninja==1.11.1.4"];

/// Debian packages the build needs (bookworm's own).
const PACKAGES: &[&str] = &[
    "gcc",
    "pkg-config",
    "python3-venv",
    "libglib2.0-dev",
    "zlib1g-dev",
    "xz-utils",
    "patch",
];

/// The project's files laid into the source tree: repo path, tree path.
const DEVICE_FILES: &[(&str, &str)] = &[
    ("iopf-testdev.c", "hw/misc/iopf-testdev.c"),
    (
        "iopf-e2e.mak",
        "configs/devices/x86_64-softmmu/iopf-e2e.mak",
    ),
];

/// `configure` arguments (the build directory is reconfigured when they
/// change).
const CONFIGURE: &[&str] = &[
    "--target-list=x86_64-softmmu",
    "--without-default-features",
    "--without-default-devices",
    "--with-devices-x86_64=iopf-e2e",
    "--disable-download",
    "--disable-install-blobs",
    "--disable-docs",
    "--disable-tools",
    "--disable-guest-agent",
    "--disable-rust",
    "--disable-debug-info",
    "--disable-werror",
];

/// The firmware and option ROMs (qboot, linuxboot_dma.bin) come from
/// Debian's qemu-system-data, installed by `cargo xtask setup`: the `+ds`
/// source has no prebuilt ROMs.
pub const FIRMWARE_DIR: &str = "/usr/share/qemu";

/// A built QEMU.
pub struct Built {
    pub binary: PathBuf,
    /// Seconds the build took in this run (0 when it was up to date).
    pub seconds: f64,
}

fn root(ws: &Workspace) -> PathBuf {
    ws.cache.join("qemu-vtd")
}

/// The repo directory of the QEMU patch and device.
fn project_dir(ws: &Workspace) -> PathBuf {
    ws.repo.join("tests/vtd-e2e/qemu")
}

/// Fetches, patches and builds QEMU if anything changed; returns the binary.
pub fn ensure(ws: &Workspace, jobs: usize) -> Result<Built> {
    let start = Instant::now();
    install_packages()?;
    let root = root(ws);
    fs::create_dir_all(&root)?;
    let venv = python_tools(&root)?;
    let downloads = fetch(ws, &root)?;
    let (tree, fresh) = source_tree(ws, &root, &downloads)?;
    let build = root.join("build");
    let binary = build.join("qemu-system-x86_64");
    let configured = configure(&root, &tree, &build, &venv, fresh)?;

    let mut cmd = Command::new(venv.join("bin/ninja"));
    cmd.arg("-C")
        .arg(&build)
        .arg(format!("-j{jobs}"))
        .arg("qemu-system-x86_64")
        .env("PATH", path_with(&venv));
    let before = fs::metadata(&binary).and_then(|m| m.modified()).ok();
    kernel::run_logged(
        cmd,
        &root.join("build.log"),
        &format!("building QEMU {PACKAGE_VERSION} (x86_64, VT-d x-prs, iopf-testdev)"),
    )?;
    let after = fs::metadata(&binary).and_then(|m| m.modified()).ok();
    let seconds = if configured || before != after {
        let s = start.elapsed().as_secs_f64();
        eprintln!("==> built QEMU in {s:.0}s: {}", binary.display());
        s
    } else {
        eprintln!("==> QEMU up to date: {}", binary.display());
        0.0
    };
    Ok(Built { binary, seconds })
}

/// PATH with the venv's tools first.
fn path_with(venv: &Path) -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    format!("{}:/usr/bin:{path}", venv.join("bin").display())
}

fn install_packages() -> Result<()> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .copied()
        .filter(|p| setup::installed(p).is_none())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    setup::step(&format!(
        "installing the QEMU build's Debian packages: {}",
        missing.join(" ")
    ));
    setup::sh(setup::apt_get().arg("update").arg("-q"))?;
    setup::sh(
        setup::apt_get()
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing),
    )
}

/// A venv with meson and ninja from PyPI, created once.
fn python_tools(root: &Path) -> Result<PathBuf> {
    let venv = root.join("venv");
    let stamp = venv.join(".iopf-tools");
    let wanted = PYPI.join(" ");
    if fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(venv);
    }
    setup::step(&format!(
        "installing {wanted} from PyPI into {}",
        venv.display()
    ));
    if venv.exists() {
        fs::remove_dir_all(&venv)?;
    }
    // Debian's python, not whatever python3 comes first on PATH.
    setup::sh(
        Command::new("/usr/bin/python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv),
    )?;
    setup::sh(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(PYPI),
    )?;
    fs::write(stamp, wanted)?;
    Ok(venv)
}

fn verified(dir: &Path) -> Result<bool> {
    for (name, sum) in FILES {
        let file = dir.join(name);
        if !file.exists() || setup::sha256(&file)? != *sum {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The three source files in `<root>/downloads`, checked: from the Debian
/// archive, else from the kept copy.
fn fetch(ws: &Workspace, root: &Path) -> Result<PathBuf> {
    let downloads = root.join("downloads");
    fs::create_dir_all(&downloads)?;
    if verified(&downloads)? {
        return Ok(downloads);
    }
    setup::step(&format!(
        "fetching the source of qemu={PACKAGE_VERSION} from Debian {SUITE}"
    ));
    let apt = PrivateApt::new_deb_src(&ws.cache.join("apt-sid-src"), SUITE)?;
    let fetched =
        setup::sh(apt.cmd(Command::new("apt-get")).arg("update").arg("-q")).and_then(|()| {
            setup::sh(
                apt.cmd(Command::new("apt-get"))
                    .args(["source", "--download-only", "-q"])
                    .arg(format!("qemu={PACKAGE_VERSION}"))
                    .current_dir(&downloads),
            )
        });
    if let Err(err) = &fetched {
        eprintln!("    the archive did not give it ({err:#})");
    }
    if fetched.is_ok() && verified(&downloads)? {
        setup::step("sha256 verified");
        return Ok(downloads);
    }
    let copy =
        std::env::var_os(SOURCE_ENV).map_or_else(|| PathBuf::from(SHARED_COPY), PathBuf::from);
    setup::step(&format!("using the kept copy in {}", copy.display()));
    for (name, _) in FILES {
        let from = copy.join(name);
        fs::copy(&from, downloads.join(name))
            .with_context(|| format!("copying {}", from.display()))?;
    }
    if !verified(&downloads)? {
        bail!(
            "the QEMU source files in {} do not match their sha256 (xtask/src/e2e/qemu.rs)",
            copy.display()
        );
    }
    setup::step("sha256 verified");
    Ok(downloads)
}

/// Hash of what the unpacked tree depends on: the source files and the
/// project's patches (not the device source, copied in on every run).
fn source_hash(ws: &Workspace) -> Result<String> {
    let mut hash = Sha256::new();
    for (name, sum) in FILES {
        hash.update(name.as_bytes());
        hash.update(sum.as_bytes());
    }
    for patch in project_patches(ws)? {
        hash.update(fs::read(&patch)?);
    }
    Ok(format!("{:x}", hash.finalize()))
}

fn project_patches(ws: &Workspace) -> Result<Vec<PathBuf>> {
    let mut patches: Vec<PathBuf> = fs::read_dir(project_dir(ws))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    patches.retain(|p| p.extension().is_some_and(|e| e == "patch"));
    patches.sort();
    Ok(patches)
}

fn patch(tree: &Path, file: &Path) -> Result<()> {
    let out = Command::new("patch")
        .args(["-p1", "--batch", "--forward", "--fuzz=0", "--silent", "-i"])
        .arg(file)
        .current_dir(tree)
        .output()
        .context("running patch")?;
    if !out.status.success() {
        bail!(
            "{} does not apply to QEMU {PACKAGE_VERSION}:\n{}{}",
            file.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The patched source tree; `true` when it was unpacked in this run.
fn source_tree(ws: &Workspace, root: &Path, downloads: &Path) -> Result<(PathBuf, bool)> {
    let tree = root.join("src").join(TREE);
    let stamp = tree.join(".iopf-source");
    let hash = source_hash(ws)?;
    let fresh = fs::read_to_string(&stamp).ok().as_deref() != Some(hash.as_str());
    if fresh {
        setup::step(&format!(
            "unpacking QEMU {PACKAGE_VERSION} with Debian's and the project's patches"
        ));
        let staging = root.join("src/.staging");
        if staging.exists() {
            fs::remove_dir_all(&staging)?;
        }
        fs::create_dir_all(&staging)?;
        let (orig, debian) = (&FILES[1].0, &FILES[2].0);
        setup::sh(
            Command::new("tar")
                .arg("-C")
                .arg(&staging)
                .arg("-xf")
                .arg(downloads.join(orig)),
        )?;
        let unpacked = staging.join(TREE);
        setup::sh(
            Command::new("tar")
                .arg("-C")
                .arg(&unpacked)
                .arg("-xf")
                .arg(downloads.join(debian)),
        )?;
        let series = fs::read_to_string(unpacked.join("debian/patches/series"))?;
        for name in series
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            patch(&unpacked, &unpacked.join("debian/patches").join(name))?;
        }
        for p in project_patches(ws)? {
            patch(&unpacked, &p)?;
        }
        if tree.exists() {
            fs::remove_dir_all(&tree)?;
        }
        fs::rename(&unpacked, &tree)?;
        fs::remove_dir_all(&staging)?;
        fs::write(&stamp, &hash)?;
    }
    // The device files: written when they differ, so ninja rebuilds them only.
    for (from, to) in DEVICE_FILES {
        let content = fs::read(project_dir(ws).join(from))?;
        let dest = tree.join(to);
        if fs::read(&dest).ok().as_deref() != Some(content.as_slice()) {
            fs::write(&dest, content)?;
        }
    }
    Ok((tree, fresh))
}

/// Runs `configure` when the build directory is new, the source was
/// unpacked again or the arguments changed; `true` if it ran.
fn configure(root: &Path, tree: &Path, build: &Path, venv: &Path, fresh: bool) -> Result<bool> {
    let stamp = build.join(".iopf-configure");
    let python = venv.join("bin/python3");
    let args: Vec<String> = CONFIGURE
        .iter()
        .map(|a| a.to_string())
        .chain([format!("--python={}", python.display())])
        .collect();
    let wanted = args.join(" ");
    if !fresh
        && build.join("build.ninja").exists()
        && fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str())
    {
        return Ok(false);
    }
    if build.exists() {
        fs::remove_dir_all(build)?;
    }
    fs::create_dir_all(build)?;
    let mut cmd = Command::new(tree.join("configure"));
    cmd.args(&args)
        .current_dir(build)
        .env("PATH", path_with(venv));
    kernel::run_logged(cmd, &root.join("configure.log"), "configuring QEMU")?;
    fs::write(stamp, wanted)?;
    Ok(true)
}
