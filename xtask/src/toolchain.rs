//! The pinned toolchain (see ../shared/TOOLCHAIN.md) and how to call it.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Result};

use crate::cli::Arch;

/// Debian's Rust 1.85 (kernel 7.3's minimum) with its library source.
pub const RUST_VERSION: &str = "1.85.0+dfsg3-1~deb12u3";
pub const RUSTC: &str = "/usr/bin/rustc";
/// Its rustdoc, for the doctests and the docs (rustup's, first on PATH, reads
/// target specifications another way).
pub const RUSTDOC: &str = "/usr/bin/rustdoc";
/// Its clippy (Debian's rust-web-clippy); rustup's `clippy-driver`, first on
/// PATH, is built for another rustc.
pub const CLIPPY_DRIVER: &str = "/usr/bin/clippy-driver";
pub const LLVM_BIN: &str = "/usr/lib/llvm-19/bin";
pub const LIBCLANG: &str = "/usr/lib/llvm-19/lib";
pub const BINDGEN_VERSION: &str = "0.71.1";

/// bindgen-cli as installed by `cargo install` for this user.
pub fn bindgen() -> PathBuf {
    let home = env::var_os("HOME").unwrap_or_default();
    PathBuf::from(home).join(".cargo/bin/bindgen")
}

/// A tool the build needs: where it must be, and how to get it.
struct Tool {
    path: &'static str,
    how: &'static str,
}

const TOOLS: &[Tool] = &[
    Tool {
        path: "/usr/lib/llvm-19/bin/clang",
        how: "apt-get install clang-19",
    },
    Tool {
        path: "/usr/lib/llvm-19/bin/ld.lld",
        how: "apt-get install lld-19",
    },
    Tool {
        path: "/usr/lib/llvm-19/bin/llvm-ar",
        how: "apt-get install llvm-19",
    },
    Tool {
        path: "/usr/lib/llvm-19/lib/libclang.so",
        how: "apt-get install libclang-19-dev",
    },
    Tool {
        path: RUSTC,
        how: "apt-get install rustc-web=1.85.0+dfsg3-1~deb12u3",
    },
    Tool {
        path: "/usr/lib/rustlib/src/rust/library/core",
        how: "apt-get install rust-web-src=1.85.0+dfsg3-1~deb12u3",
    },
    Tool {
        path: "/usr/bin/make",
        how: "apt-get install make",
    },
    Tool {
        path: "/usr/bin/bc",
        how: "apt-get install bc",
    },
    Tool {
        path: "/usr/bin/flex",
        how: "apt-get install flex",
    },
    Tool {
        path: "/usr/bin/bison",
        how: "apt-get install bison",
    },
    Tool {
        path: "/usr/bin/patch",
        how: "apt-get install patch",
    },
    Tool {
        path: "/usr/bin/rsync",
        how: "apt-get install rsync",
    },
    Tool {
        path: "/usr/include/libelf.h",
        how: "apt-get install libelf-dev",
    },
    Tool {
        path: "/usr/include/openssl/ssl.h",
        how: "apt-get install libssl-dev",
    },
];

/// Checks that everything a kernel build needs is installed, failing with
/// one line that names the first missing tool and how to get it.
pub fn check_build() -> Result<()> {
    for tool in TOOLS {
        if !Path::new(tool.path).exists() {
            bail!(
                "missing {}: run `cargo xtask setup` (or `{}`)",
                tool.path,
                tool.how
            );
        }
    }
    let bindgen = bindgen();
    let version = Command::new(&bindgen).arg("--version").output();
    match version {
        Ok(out) if String::from_utf8_lossy(&out.stdout).contains(BINDGEN_VERSION) => {}
        _ => bail!(
            "missing bindgen {BINDGEN_VERSION} at {}: run `cargo xtask setup` \
             (or `cargo install --locked bindgen-cli@{BINDGEN_VERSION}`)",
            bindgen.display()
        ),
    }
    let rustc = Command::new(RUSTC).arg("--version").output()?;
    if !String::from_utf8_lossy(&rustc.stdout).starts_with("rustc 1.85.0") {
        bail!("{RUSTC} is not Rust 1.85.0: run `cargo xtask setup`");
    }
    Ok(())
}

/// Checks that QEMU for `arch` is installed.
pub fn check_qemu(arch: Arch) -> Result<()> {
    let (bin, pkg) = qemu_binary(arch);
    if !Path::new(bin).exists() {
        bail!("missing {bin}: run `cargo xtask setup` (or `apt-get install {pkg}`)");
    }
    Ok(())
}

pub fn qemu_binary(arch: Arch) -> (&'static str, &'static str) {
    match arch {
        Arch::X86_64 => ("/usr/bin/qemu-system-x86_64", "qemu-system-x86"),
        Arch::Arm64 => ("/usr/bin/qemu-system-aarch64", "qemu-system-arm"),
    }
}

/// A `make` command for the kernel in `src`, building into `out`.
/// `PATH` with LLVM 19's tools first, as the kernel's `LLVM=1` build wants.
pub fn path_with_llvm() -> String {
    let path = env::var("PATH").unwrap_or_default();
    format!("{LLVM_BIN}:{path}")
}

pub fn make(src: &Path, out: &Path, arch: Arch, jobs: usize) -> Command {
    let mut cmd = Command::new("make");
    cmd.current_dir(src)
        .env("PATH", path_with_llvm())
        .env("LIBCLANG_PATH", LIBCLANG)
        .arg(format!("O={}", out.display()))
        .arg(format!("ARCH={}", arch.kbuild_name()))
        .arg("LLVM=1")
        .arg(format!("RUSTC={RUSTC}"))
        .arg(format!("RUSTDOC={RUSTDOC}"))
        .arg(format!("BINDGEN={}", bindgen().display()))
        .arg(format!("-j{jobs}"));
    if has_ccache() {
        // Rust objects are rebuilt by Kbuild's own dependency tracking;
        // ccache only speeds up C after a config change or a new work tree.
        cmd.arg("CC=ccache clang");
    }
    cmd
}

fn has_ccache() -> bool {
    Path::new("/usr/bin/ccache").exists()
}

pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}
