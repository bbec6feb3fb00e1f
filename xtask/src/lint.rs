//! `lint`: rustfmt and clippy over the project's kernel Rust.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::checks;
use crate::cli::{LintArgs, Variant};
use crate::kernel;
use crate::paths::Workspace;
use crate::toolchain;

/// The kernel's rustfmt (Debian's rustfmt-web, matching rustc 1.85).
pub const RUSTFMT: &str = "/usr/bin/rustfmt";

/// Repo directories whose `.rs` files are kernel code.
const KERNEL_RUST: &[&str] = &["rust", "drivers", "samples"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// Checks the project's kernel Rust with the kernel's rustfmt settings.
pub fn rustfmt(ws: &Workspace) -> Result<()> {
    let mut files = Vec::new();
    for dir in KERNEL_RUST {
        rust_files(&ws.repo.join(dir), &mut files)?;
    }
    files.sort();
    let config = ws.pristine()?.join(".rustfmt.toml");
    let out = Command::new(RUSTFMT)
        .args(["--check", "--edition", "2021", "--config-path"])
        .arg(&config)
        .args(&files)
        .output()
        .with_context(|| format!("running {RUSTFMT} (cargo xtask setup installs it)"))?;
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stdout));
        bail!(
            "rustfmt: {} file(s) checked, some need formatting",
            files.len()
        );
    }
    eprintln!("==> rustfmt: {} file(s) already formatted", files.len());
    Ok(())
}

/// The C API's entry points, as `ffi.rs` declares them.
const FFI: &str = "drivers/iommu/iopf/ffi.rs";

/// Checks the contract that the kernel-doc of the C API states: every entry point says in which
/// context it may be called (`Context:`), and `iopf_free_group()`, which may answer a group
/// under the device's fault mutex, says that it may sleep and checks it with `might_sleep()`.
pub fn ffi_contracts(repo: &Path) -> Result<()> {
    let text = fs::read_to_string(repo.join(FFI))?;
    let mut problems = Vec::new();
    let mut doc = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if let Some(d) = trimmed.strip_prefix("///") {
            doc.push(d.trim().to_string());
            continue;
        }
        let Some(name) = trimmed
            .strip_prefix("pub unsafe extern \"C\" fn ")
            .and_then(|rest| rest.split('(').next())
        else {
            if !trimmed.starts_with("#[") {
                doc.clear();
            }
            continue;
        };
        let context = doc.iter().find(|d| d.starts_with("Context:"));
        if context.is_none() {
            problems.push(format!("{name}: no `Context:` in its kernel-doc"));
        }
        if name == "iopf_free_group" {
            if !context.is_some_and(|c| c.contains("may sleep")) {
                problems.push(format!("{name}: its `Context:` does not say it may sleep"));
            }
            let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "}").collect();
            if !body.iter().any(|l| l.contains("might_sleep()")) {
                problems.push(format!("{name}: does not call might_sleep()"));
            }
        }
        doc.clear();
    }
    if !problems.is_empty() {
        bail!("{FFI}: {}", problems.join("; "));
    }
    Ok(())
}

/// rustfmt, the C API's contracts, and clippy, which compiles the Rust of the test kernel.
pub fn run(args: &LintArgs) -> Result<()> {
    let ws = Workspace::discover()?;
    rustfmt(&ws)?;
    ffi_contracts(&ws.repo)?;
    let arch = args.target.arch;
    let jobs = args.target.jobs.unwrap_or_else(toolchain::default_jobs);
    kernel::build_with_jobs(&ws, arch, Variant::Rust, jobs)?;
    let findings = checks::clippy(&ws.build_dir(arch, Variant::Rust)).findings;
    if !findings.is_empty() {
        bail!(
            "clippy: {} finding(s):\n  {}",
            findings.len(),
            findings.join("\n  ")
        );
    }
    eprintln!("==> clippy: clean");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_c_api_states_its_contexts() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        ffi_contracts(repo).unwrap();
    }

    #[test]
    fn a_missing_context_is_found() {
        let dir = std::env::temp_dir().join(format!("iopf-lint-{}", std::process::id()));
        let file = dir.join(FFI);
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(
            &file,
            "/// iopf_free_group - Free\n///\n/// Context: Process context; may sleep.\n\
             #[export]\npub unsafe extern \"C\" fn iopf_free_group(g: *mut G) {\n\
             }\n/// iopf_queue_alloc - Alloc\n#[export]\n\
             pub unsafe extern \"C\" fn iopf_queue_alloc() {\n}\n",
        )
        .unwrap();
        let err = ffi_contracts(&dir).unwrap_err().to_string();
        fs::remove_dir_all(&dir).unwrap();
        assert!(
            err.contains("iopf_free_group: does not call might_sleep()"),
            "{err}"
        );
        assert!(err.contains("iopf_queue_alloc: no `Context:`"), "{err}");
    }
}
