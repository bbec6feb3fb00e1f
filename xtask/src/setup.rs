//! `setup`: everything a fresh Debian 12 machine needs, installed idempotently.
//!
//! 1. Debian packages, pinned where the kernel is picky (Rust 1.85 with its
//!    library source, LLVM 19), QEMU from bookworm-backports.
//! 2. bindgen-cli 0.71.1 through `cargo install`.
//! 3. Linux 7.3.4: Debian's `linux-source-7.3` package, fetched through a
//!    private apt configuration (the system's apt sources are never
//!    changed), checked against its sha256 and unpacked into the cache.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::cli::SetupArgs;
use crate::paths::{Workspace, DEBIAN_TREE};
use crate::toolchain::{bindgen, BINDGEN_VERSION, RUST_VERSION};

/// Packages from the machine's own (bookworm) apt sources. `=` pins a version.
const PACKAGES: &[&str] = &[
    "clang-19",
    "lld-19",
    "llvm-19",
    "libclang-19-dev",
    "make",
    "bc",
    "flex",
    "bison",
    "patch",
    "rsync",
    "cpio",
    "xz-utils",
    "libelf-dev",
    "libssl-dev",
    "ccache",
    "busybox-static",
    "libcap-dev",
    // Tells that the selftests and busybox are static.
    "file",
    // `make htmldocs` (Documentation/sphinx/requirements.txt).
    "python3-sphinx",
    "python3-yaml",
    // The patch series: git format-patch and git am; checkpatch.pl's SPDX
    // check (scripts/spdxcheck.py).
    "git",
    "python3-ply",
    "python3-git",
];

/// Debian's Rust, pinned as a set: apt otherwise resolves a mismatched std.
const RUST_PACKAGES: &[&str] = &[
    "rustc-web",
    "rust-web-src",
    "libstd-rust-web-dev",
    "libstd-rust-web-1.85",
    "rust-web-clippy",
    "rustfmt-web",
];

/// QEMU comes from bookworm-backports: the machine image may already carry
/// backports' qemu-utils 10, which conflicts with bookworm's qemu-system 7.2.
const QEMU_PACKAGES: &[&str] = &["qemu-system-x86", "qemu-system-arm"];

const KERNEL_PACKAGE: &str = "linux-source-7.3";
const KERNEL_VERSION: &str = "7.3.4-1~bpo13+1";
const KERNEL_DEB: &str = "linux-source-7.3_7.3.4-1~bpo13+1_all.deb";
const KERNEL_SHA256: &str = "703e369ddd4cce971452f5a593ee55df3a5c10c83caf0fa0df039633ed181ee3";
pub(crate) const MIRROR: &str = "http://deb.debian.org/debian";
pub(crate) const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

pub fn run(args: &SetupArgs) -> Result<()> {
    let ws = Workspace::discover()?;
    if args.no_packages {
        step("skipping apt packages (--no-packages)");
    } else {
        install_packages(&ws)?;
    }
    install_bindgen()?;
    match &args.kernel_src {
        Some(dir) => use_kernel_tree(&ws, dir)?,
        None => fetch_kernel(&ws)?,
    }
    step(&format!(
        "ready: kernel source at {}",
        ws.pristine()?.display()
    ));
    Ok(())
}

pub(crate) fn step(what: &str) {
    eprintln!("==> {what}");
}

/// Runs a command, echoing it, with a clear error if it fails.
pub(crate) fn sh(cmd: &mut Command) -> Result<()> {
    eprintln!("    $ {}", format!("{cmd:?}").replace('"', ""));
    let status = cmd
        .status()
        .with_context(|| format!("starting {:?}", cmd.get_program()))?;
    if !status.success() {
        bail!("{:?} failed with {status}", cmd.get_program());
    }
    Ok(())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `apt-get`, through sudo unless we are root.
pub(crate) fn apt_get() -> Command {
    let mut cmd = if is_root() {
        Command::new("apt-get")
    } else {
        let mut c = Command::new("sudo");
        c.arg("apt-get");
        c
    };
    cmd.env("DEBIAN_FRONTEND", "noninteractive");
    cmd
}

/// Installed version of a Debian package, if any.
pub(crate) fn installed(pkg: &str) -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Status} ${Version}", pkg])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.strip_prefix("install ok installed ")
        .map(str::to_string)
}

fn install_packages(ws: &Workspace) -> Result<()> {
    let mut wanted: Vec<String> = PACKAGES
        .iter()
        .filter(|p| installed(p).is_none())
        .map(|p| p.to_string())
        .collect();
    wanted.extend(
        RUST_PACKAGES
            .iter()
            .filter(|p| installed(p).as_deref() != Some(RUST_VERSION))
            .map(|p| format!("{p}={RUST_VERSION}")),
    );
    if wanted.is_empty() {
        step("Debian packages: all installed");
    } else {
        step(&format!("installing Debian packages: {}", wanted.join(" ")));
        sh(apt_get().arg("update").arg("-q"))?;
        sh(apt_get()
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&wanted))?;
    }

    let qemu: Vec<&str> = QEMU_PACKAGES
        .iter()
        .copied()
        .filter(|p| installed(p).is_none())
        .collect();
    if qemu.is_empty() {
        step("QEMU: installed");
        return Ok(());
    }
    step(&format!(
        "installing {} from bookworm-backports (private apt lists)",
        qemu.join(" ")
    ));
    let apt = PrivateApt::new(&ws.cache.join("apt-backports"), "bookworm-backports", true)?;
    sh(apt.cmd(apt_get()).arg("update").arg("-q"))?;
    sh(apt
        .cmd(apt_get())
        .args([
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            "-t",
            "bookworm-backports",
        ])
        .args(&qemu))?;
    Ok(())
}

fn install_bindgen() -> Result<()> {
    let bin = bindgen();
    let current = Command::new(&bin).arg("--version").output();
    if current.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(BINDGEN_VERSION)) {
        step(&format!("bindgen {BINDGEN_VERSION}: installed"));
        return Ok(());
    }
    step(&format!(
        "installing bindgen-cli {BINDGEN_VERSION} (about 2 minutes)"
    ));
    sh(Command::new("cargo").args([
        "install",
        "--locked",
        &format!("bindgen-cli@{BINDGEN_VERSION}"),
    ]))
}

/// An apt configuration with its own sources, lists and cache, so that
/// fetching from another suite leaves the system's apt setup untouched.
pub(crate) struct PrivateApt {
    dir: PathBuf,
}

impl PrivateApt {
    /// `with_system`: also include the system's sources (needed to resolve
    /// dependencies when installing, not when downloading one .deb).
    pub(crate) fn new(dir: &Path, suite: &str, with_system: bool) -> Result<Self> {
        let sources = dir.join("sources");
        fs::create_dir_all(&sources)?;
        fs::create_dir_all(dir.join("lists/partial"))?;
        fs::create_dir_all(dir.join("cache/archives/partial"))?;
        fs::write(
            sources.join("extra.sources"),
            format!(
                "Types: deb\nURIs: {MIRROR}\nSuites: {suite}\nComponents: main\nSigned-By: {KEYRING}\n"
            ),
        )?;
        if with_system {
            if let Ok(entries) = fs::read_dir("/etc/apt/sources.list.d") {
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().to_string();
                    if name.ends_with(".sources") || name.ends_with(".list") {
                        fs::copy(entry.path(), sources.join(format!("system-{name}")))?;
                    }
                }
            }
            if let Ok(list) = fs::read("/etc/apt/sources.list") {
                fs::write(sources.join("system-sources.list"), list)?;
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// Like [`PrivateApt::new`] without the system's sources, for source
    /// packages: one `deb-src` entry for `suite` (`apt-get source`).
    pub(crate) fn new_deb_src(dir: &Path, suite: &str) -> Result<Self> {
        let apt = Self::new(dir, suite, false)?;
        fs::write(
            dir.join("sources/extra.sources"),
            format!(
                "Types: deb-src\nURIs: {MIRROR}\nSuites: {suite}\nComponents: main\nSigned-By: {KEYRING}\n"
            ),
        )?;
        Ok(apt)
    }

    pub(crate) fn cmd(&self, mut cmd: Command) -> Command {
        let d = self.dir.display();
        cmd.args([
            "-o",
            "Dir::Etc::SourceList=/dev/null",
            "-o",
            &format!("Dir::Etc::SourceParts={d}/sources"),
            "-o",
            &format!("Dir::State::Lists={d}/lists"),
            "-o",
            &format!("Dir::Cache={d}/cache"),
        ]);
        cmd
    }
}

pub(crate) fn sha256(path: &Path) -> Result<String> {
    let mut hasher = Sha256::new();
    let mut file = fs::File::open(path)?;
    std::io::copy(&mut file, &mut hasher)?;
    Ok(format!("{:x}", hasher.finalize()))
}

fn fetch_kernel(ws: &Workspace) -> Result<()> {
    // A previous `--kernel-src` choice no longer applies.
    let _ = fs::remove_file(ws.kernel_src_choice());
    let tree = ws.cache.join("src").join(DEBIAN_TREE);
    let stamp = tree.join(".iopf-unpacked");
    if fs::read_to_string(&stamp).ok().as_deref() == Some(KERNEL_SHA256) {
        step(&format!(
            "Linux {KERNEL_VERSION}: unpacked at {}",
            tree.display()
        ));
        return Ok(());
    }

    let downloads = ws.downloads();
    fs::create_dir_all(&downloads)?;
    let deb = downloads.join(KERNEL_DEB);
    if !deb.exists() || sha256(&deb)? != KERNEL_SHA256 {
        step(&format!(
            "fetching {KERNEL_PACKAGE}={KERNEL_VERSION} from trixie-backports"
        ));
        let apt = PrivateApt::new(&ws.cache.join("apt-trixie"), "trixie-backports", false)?;
        sh(apt.cmd(Command::new("apt-get")).arg("update").arg("-q"))?;
        sh(apt
            .cmd(Command::new("apt-get"))
            .arg("download")
            .arg(format!("{KERNEL_PACKAGE}={KERNEL_VERSION}"))
            .current_dir(&downloads))?;
    }
    let sum = sha256(&deb)?;
    if sum != KERNEL_SHA256 {
        bail!(
            "{} has sha256 {sum}, expected {KERNEL_SHA256}",
            deb.display()
        );
    }
    step("sha256 verified");

    step(&format!("unpacking into {}", tree.display()));
    let staging = ws.cache.join("src/.staging");
    if staging.exists() {
        fs::remove_dir_all(&staging)?;
    }
    fs::create_dir_all(&staging)?;
    sh(Command::new("dpkg")
        .arg("-x")
        .arg(&deb)
        .arg(staging.join("deb")))?;
    let tarball = staging.join("deb/usr/src/linux-source-7.3.tar.xz");
    sh(Command::new("tar")
        .arg("-C")
        .arg(&staging)
        .arg("-xf")
        .arg(&tarball))?;
    if tree.exists() {
        fs::remove_dir_all(&tree)?;
    }
    fs::rename(staging.join(DEBIAN_TREE), &tree)?;
    fs::remove_dir_all(&staging)?;
    fs::write(stamp, KERNEL_SHA256)?;
    Ok(())
}

fn use_kernel_tree(ws: &Workspace, dir: &Path) -> Result<()> {
    let dir = dir
        .canonicalize()
        .with_context(|| format!("{} does not exist", dir.display()))?;
    let makefile = fs::read_to_string(dir.join("Makefile")).unwrap_or_default();
    if !makefile.contains("VERSION =") || !dir.join("drivers/iommu/io-pgfault.c").exists() {
        bail!(
            "{} is not a kernel tree with drivers/iommu/io-pgfault.c",
            dir.display()
        );
    }
    step(&format!("using the kernel tree at {}", dir.display()));
    fs::write(ws.kernel_src_choice(), dir.display().to_string())?;
    Ok(())
}
