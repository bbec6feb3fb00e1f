//! The kernel's own KUnit runner, `tools/testing/kunit/kunit.py`, on the
//! IOPF suites, as a kernel developer runs it:
//!
//! ```text
//! ./tools/testing/kunit/kunit.py run --kunitconfig=drivers/iommu/iopf \
//!     --arch=x86_64 --make_options LLVM=1
//! ```
//!
//! `cargo xtask test` proves both halves of that command without a second
//! kernel build: `kunit.py config` checks that `drivers/iommu/iopf/.kunitconfig`
//! configures (every option it asks for is set), and `kunit.py exec` runs the
//! IOPF suites of the Rust test kernel already built. QEMU is started by
//! `kunit.py` with `-accel kvm -accel hvf -accel tcg`; KVM is broken on the CI
//! machines, so `/dev/kvm` is hidden from it in a private mount namespace,
//! and QEMU falls back to TCG.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::paths::Workspace;
use crate::toolchain;

/// The `--kunitconfig` directory, in the kernel tree.
pub const KUNITCONFIG: &str = "drivers/iommu/iopf";
/// The suites run: every IOPF suite.
const FILTER: &str = "iopf*";
/// The debug kernels' shorter flood (see `reliability`).
const KERNEL_ARGS: &str = "iopf_kunit.flood=100000";

/// What `kunit.py exec` printed last: its summary line.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub summary: String,
    pub seconds: f64,
}

/// `--make_options` for the project's toolchain.
fn make_options() -> Vec<String> {
    [
        "LLVM=1".to_string(),
        format!("RUSTC={}", toolchain::RUSTC),
        format!("RUSTDOC={}", toolchain::RUSTDOC),
        format!("BINDGEN={}", toolchain::bindgen().display()),
    ]
    .iter()
    .map(|o| format!("--make_options={o}"))
    .collect()
}

fn kunit_py(ws: &Workspace) -> Command {
    let mut cmd = Command::new("python3");
    cmd.current_dir(ws.work_tree())
        .arg("tools/testing/kunit/kunit.py")
        .env("PATH", toolchain::path_with_llvm())
        .env("LIBCLANG_PATH", toolchain::LIBCLANG);
    cmd
}

/// The last line of `out` that starts with `Testing complete.`, if any.
fn summary(out: &str) -> Option<String> {
    out.lines()
        .rev()
        .find_map(|l| l.split_once("Testing complete.").map(|(_, s)| s.trim()))
        .map(str::to_string)
}

/// Configures a kernel from `.kunitconfig` with `kunit.py config`, in a
/// build directory of its own.
pub fn config(ws: &Workspace) -> Result<()> {
    let dir = ws.cache.join("kunit-config");
    fs::create_dir_all(&dir)?;
    let out = kunit_py(ws)
        .args([
            "config",
            "--arch=x86_64",
            &format!("--kunitconfig={KUNITCONFIG}"),
        ])
        .arg(format!("--build_dir={}", dir.display()))
        .args(make_options())
        .output()
        .context("running kunit.py config")?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    fs::write(dir.join("kunit-config.log"), &text)?;
    if !out.status.success() {
        bail!("kunit.py config --kunitconfig={KUNITCONFIG} failed:\n{text}");
    }
    eprintln!("==> kunit.py config --kunitconfig={KUNITCONFIG}: every option set");
    Ok(())
}

/// Runs the IOPF suites of the kernel built in `build_dir` with
/// `kunit.py exec`, `/dev/kvm` hidden; fails unless every test passed.
pub fn exec(ws: &Workspace, build_dir: &Path, timeout: u64) -> Result<Outcome> {
    let start = Instant::now();
    let mut script = format!(
        "mount --bind /dev/null /dev/kvm 2>/dev/null; exec python3 tools/testing/kunit/kunit.py \
         exec --arch=x86_64 --build_dir={} --timeout={timeout} --kernel_args={KERNEL_ARGS}",
        build_dir.display()
    );
    script.push_str(&format!(" '{FILTER}'"));
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .current_dir(ws.work_tree())
        .env("PATH", toolchain::path_with_llvm())
        .output()
        .context("running kunit.py exec in a private mount namespace (unshare)")?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let log = build_dir.join("kunit-exec.log");
    fs::write(&log, &text)?;
    let Some(summary) = summary(&text) else {
        bail!("kunit.py exec printed no summary; log at {}", log.display());
    };
    if !out.status.success() {
        bail!("kunit.py exec: {summary}; log at {}", log.display());
    }
    Ok(Outcome {
        summary,
        seconds: start.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_is_kunit_py_s_last_line() {
        let out = "[12:00:01] Starting KUnit Kernel (1/1)...\n\
                   [12:03:10] ============================================================\n\
                   [12:03:10] Testing complete. Ran 80 tests: passed: 80\n";
        assert_eq!(summary(out).as_deref(), Some("Ran 80 tests: passed: 80"));
        assert_eq!(summary("[12:00] Could not find any KTAP output.\n"), None);
    }

    #[test]
    fn the_toolchain_goes_to_make() {
        let opts = make_options();
        assert!(opts.contains(&"--make_options=LLVM=1".to_string()));
        assert!(opts.iter().any(|o| o.starts_with("--make_options=RUSTC=")));
    }
}
