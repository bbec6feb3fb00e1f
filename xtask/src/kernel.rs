//! Building one kernel configuration: overlay, config, make.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use crate::checks;
use crate::cli::{Arch, Variant};
use crate::kconfig::Fragment;
use crate::overlay;
use crate::paths::Workspace;
use crate::toolchain;

/// A built kernel.
#[derive(Clone)]
pub struct Built {
    pub arch: Arch,
    pub variant: Variant,
    pub image: PathBuf,
    pub took: Duration,
}

/// What a kernel is for: the test kernels carry the debug checkers
/// (`debug.config`); the benchmark kernels (`bench.config`) replace them with
/// the `iopf_bench` suite and build in a directory of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    Test,
    Bench,
    /// KCSAN in place of KASAN (they exclude each other), for the stress case.
    Kcsan,
    /// A benchmark kernel whose Rust code inlines the kernel's C helpers
    /// (`CONFIG_RUST_INLINE_HELPERS`).
    BenchInlineHelpers,
    /// A benchmark kernel without the Rust core's debugfs files.
    BenchNoDebugfs,
    /// A benchmark kernel without tracing, so without tracepoints.
    BenchNoTracepoints,
}

impl Profile {
    /// The fragment applied after the arch's, before the variant's.
    fn fragment(self) -> &'static str {
        match self {
            Profile::Test => "debug",
            Profile::Bench
            | Profile::BenchInlineHelpers
            | Profile::BenchNoDebugfs
            | Profile::BenchNoTracepoints => "bench",
            Profile::Kcsan => "kcsan",
        }
    }

    /// A fragment applied to the finished configuration (`olddefconfig`),
    /// for options behind `EXPERT`: set in the `allnoconfig` stage, EXPERT
    /// would make ~80 default-y prompts visible, and `allnoconfig` would turn
    /// them all off (BUG, KALLSYMS, SHMEM...).
    fn late_fragment(self) -> Option<&'static str> {
        match self {
            Profile::BenchInlineHelpers => Some("inline-helpers.config"),
            Profile::BenchNoDebugfs => Some("no-debugfs.config"),
            Profile::BenchNoTracepoints => Some("no-tracepoints.config"),
            _ => None,
        }
    }

    /// Appended to `<arch>-<variant>` in the build directory's name.
    pub fn suffix(self) -> &'static str {
        match self {
            Profile::Test => "",
            Profile::Bench => "-bench",
            Profile::Kcsan => "-kcsan",
            Profile::BenchInlineHelpers => "-bench-inline-helpers",
            Profile::BenchNoDebugfs => "-bench-no-debugfs",
            Profile::BenchNoTracepoints => "-bench-no-tracepoints",
        }
    }
}

/// Config fragments of a configuration, in the order they are applied.
pub fn fragments(arch: Arch, variant: Variant, profile: Profile) -> Vec<String> {
    [
        "base",
        arch.kbuild_name(),
        profile.fragment(),
        variant.name(),
    ]
    .iter()
    .map(|f| format!("{f}.config"))
    .collect()
}

/// Lays the repo over the work tree and builds `variant` for `arch`.
pub fn build_with_jobs(ws: &Workspace, arch: Arch, variant: Variant, jobs: usize) -> Result<Built> {
    build_profile(ws, arch, variant, Profile::Test, jobs)
}

/// [`build_with_jobs`] of a [`Profile`]; `Profile::Test` is the default build.
pub fn build_profile(
    ws: &Workspace,
    arch: Arch,
    variant: Variant,
    profile: Profile,
    jobs: usize,
) -> Result<Built> {
    toolchain::check_build()?;
    let pristine = ws.pristine()?;
    let work = ws.work_tree();
    // One build at a time: the overlay and the build dirs are shared. The
    // time reported is the build's, not the wait for another one.
    let _lock = build_lock(ws)?;
    let start = Instant::now();
    let plan = overlay::plan(&ws.repo, &pristine)?;
    let applied = overlay::apply(&pristine, &work, &plan)?;
    if !applied.written.is_empty() || !applied.restored.is_empty() {
        eprintln!(
            "==> overlay: {} file(s) written, {} restored",
            applied.written.len(),
            applied.restored.len()
        );
    }

    let out = ws.profile_build_dir(arch, variant, profile.suffix());
    let name = format!(
        "{}-{}{}",
        arch.kbuild_name(),
        variant.name(),
        profile.suffix()
    );
    let merged = merged_fragments(ws, &fragments(arch, variant, profile))?;
    let late = profile
        .late_fragment()
        .map(|late| read_fragment(ws, late))
        .transpose()?;
    // Clippy compiles the Rust of the test kernels, so that its findings cost no build of
    // their own; `checks` keeps them.
    let clippy = profile == Profile::Test;
    let tree = Tree {
        work: &work,
        out: &out,
        arch,
        jobs,
    };
    configure_and_make(&tree, &name, &merged, late.as_ref(), clippy)?;
    if clippy {
        let log = fs::read_to_string(out.join("build.log"))?;
        checks::update_clippy(&out, &log, &work.to_string_lossy())?;
    }
    check_iopf_objects(&out, variant)?;
    let took = start.elapsed();
    eprintln!("==> built {name} in {:.0}s", took.as_secs_f64());
    Ok(Built {
        arch,
        variant,
        image: image_path(&out, arch),
        took,
    })
}

/// A kernel tree and where to build it.
pub struct Tree<'a> {
    /// The source tree, the overlay applied.
    pub work: &'a Path,
    /// The build directory (`O=`).
    pub out: &'a Path,
    pub arch: Arch,
    pub jobs: usize,
}

/// A fragment of `configs/`, parsed.
pub fn read_fragment(ws: &Workspace, name: &str) -> Result<Fragment> {
    let path = ws.repo.join("configs").join(name);
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Fragment::parse(&text).with_context(|| path.display().to_string())
}

/// The fragments of `configs/` named by `names`, merged in order.
pub fn merged_fragments(ws: &Workspace, names: &[String]) -> Result<Fragment> {
    let mut merged = Fragment::default();
    for name in names {
        merged.merge(&read_fragment(ws, name)?);
    }
    Ok(merged)
}

/// The image `make` leaves in `out`.
pub fn image_path(out: &Path, arch: Arch) -> PathBuf {
    match arch {
        Arch::X86_64 => out.join("arch/x86/boot/bzImage"),
        Arch::Arm64 => out.join("arch/arm64/boot/Image"),
    }
}

/// Configures `tree.out` as `allnoconfig` plus `merged` (and `late`, set on
/// the finished configuration), checks that Kconfig honoured every symbol,
/// and builds the image and the modules, logging to `build.log` there
/// (`clippy`: through Clippy). Returns the image.
pub fn configure_and_make(
    tree: &Tree,
    name: &str,
    merged: &Fragment,
    late: Option<&Fragment>,
    clippy: bool,
) -> Result<PathBuf> {
    let Tree {
        work,
        out,
        arch,
        jobs,
    } = *tree;
    fs::create_dir_all(out)?;
    let mut merged = merged.clone();
    let allconfig = out.join("iopf.config");
    fs::write(&allconfig, merged.render())?;
    let mut cmd = toolchain::make(work, out, arch, jobs);
    cmd.arg(format!("KCONFIG_ALLCONFIG={}", allconfig.display()))
        .arg("allnoconfig");
    run_logged(cmd, &out.join("config.log"), &format!("configuring {name}"))?;
    if let Some(late) = late {
        // Later lines of a .config override earlier ones.
        let mut text = fs::read_to_string(out.join(".config"))?;
        text.push_str(&late.render());
        fs::write(out.join(".config"), text)?;
        let mut cmd = toolchain::make(work, out, arch, jobs);
        cmd.arg("olddefconfig");
        run_logged(
            cmd,
            &out.join("config-late.log"),
            &format!("configuring {name}: late fragment"),
        )?;
        merged.merge(late);
    }
    let dot_config = Fragment::parse(&fs::read_to_string(out.join(".config"))?)?;
    let wrong = merged.mismatches(&dot_config);
    if !wrong.is_empty() {
        bail!(
            "Kconfig did not honour {name}'s fragments (unmet dependencies?):\n  {}",
            wrong.join("\n  ")
        );
    }

    let target = match arch {
        Arch::X86_64 => "bzImage",
        Arch::Arm64 => "Image",
    };
    let mut cmd = toolchain::make(work, out, arch, jobs);
    // Modules too: modpost fails on a modular caller of an unexported symbol.
    cmd.args([target, "modules"]);
    if clippy {
        cmd.arg("CLIPPY=1")
            .arg(format!("CLIPPY_DRIVER={}", toolchain::CLIPPY_DRIVER));
    }
    run_logged(cmd, &out.join("build.log"), &format!("building {name}"))?;
    Ok(image_path(out, arch))
}

/// Takes the exclusive build lock, waiting for other xtask processes: the
/// work tree and build dirs are shared by every command.
pub fn build_lock(ws: &Workspace) -> Result<fs::File> {
    let path = ws.cache.join("build.lock");
    let file = fs::File::create(&path)?;
    if file.try_lock().is_err() {
        eprintln!("==> waiting for another xtask build ({})", path.display());
        file.lock()?;
    }
    Ok(file)
}

/// The C API of the IOPF framework: the ten functions of io-pgfault.c and
/// `iopf_queue_work()`, which this project gives back to consumers.
pub const IOPF_API: &[&str] = &[
    "iommu_report_device_fault",
    "iopf_group_response",
    "iopf_group_dequeue",
    "iopf_free_group",
    "iopf_queue_alloc",
    "iopf_queue_free",
    "iopf_queue_add_device",
    "iopf_queue_remove_device",
    "iopf_queue_flush_dev",
    "iopf_queue_discard_partial",
    "iopf_queue_work",
];

/// Checks that the kernel links the IOPF implementation its variant names:
/// for `rust`, no io-pgfault.o, every API function defined by the Rust
/// object and exported; for `c`, io-pgfault.o.
pub fn check_iopf_objects(out: &Path, variant: Variant) -> Result<()> {
    // Linked, not merely present: a build directory reused across configs
    // (`cargo xtask patch --check-bisect`) keeps objects it no longer links.
    let c_object = Path::new("drivers/iommu/io-pgfault.o");
    let members = std::process::Command::new(format!("{}/llvm-ar", toolchain::LLVM_BIN))
        .current_dir(out)
        .args(["t", "drivers/iommu/built-in.a"])
        .output()
        .context("running llvm-ar")?;
    ensure!(
        members.status.success(),
        "llvm-ar t drivers/iommu/built-in.a failed in {}",
        out.display()
    );
    let c_linked = String::from_utf8_lossy(&members.stdout)
        .lines()
        .any(|m| Path::new(m).ends_with(c_object));
    let system_map = fs::read_to_string(out.join("System.map")).context("reading System.map")?;
    for sym in IOPF_API {
        if !system_map.contains(&format!(" __ksymtab_{sym}\n")) {
            bail!("{sym} is not exported (no __ksymtab_{sym} in System.map)");
        }
    }
    match variant {
        Variant::C => {
            if !c_linked {
                bail!("variant c was built without drivers/iommu/io-pgfault.o");
            }
        }
        Variant::Rust => {
            if c_linked {
                bail!("variant rust links {}", c_object.display());
            }
            let rust_object = out.join("drivers/iommu/iopf/iopf.o");
            let nm = std::process::Command::new(format!("{}/llvm-nm", toolchain::LLVM_BIN))
                .args(["--defined-only", "--format=just-symbols"])
                .arg(&rust_object)
                .output()
                .context("running llvm-nm")?;
            let defined = String::from_utf8_lossy(&nm.stdout);
            for sym in IOPF_API {
                if !defined.lines().any(|l| l == *sym) {
                    bail!("{sym} is not defined by {}", rust_object.display());
                }
            }
            // Kbuild exports the unmangled functions of iopf.o: the C API,
            // and nothing else.
            let generated = out.join("drivers/iommu/iopf/iopf_exports_generated.h");
            let text = fs::read_to_string(&generated)
                .with_context(|| format!("reading {}", generated.display()))?;
            let mut exported: Vec<&str> = text
                .lines()
                .filter_map(|l| l.strip_prefix("EXPORT_SYMBOL_GPL(")?.strip_suffix(");"))
                .collect();
            let mut api = IOPF_API.to_vec();
            exported.sort_unstable();
            api.sort_unstable();
            if exported != api {
                bail!(
                    "{} exports {exported:?}, not the C API {api:?}",
                    generated.display()
                );
            }
        }
    }
    Ok(())
}

/// Runs `cmd`, streaming its output to `log` and its last line to a spinner.
/// On failure, prints the log's errors (or its tail) and its path.
pub fn run_logged(mut cmd: std::process::Command, log: &Path, what: &str) -> Result<()> {
    let mut file = fs::File::create(log)?;
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template(
        "{spinner} {elapsed:>4} {prefix}: {wide_msg}",
    )?);
    bar.set_prefix(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(250));

    // One pipe for stdout and stderr keeps the log in order.
    let (reader, writer) = std::io::pipe()?;
    let mut child = cmd
        .stdout(writer.try_clone()?)
        .stderr(writer)
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("{what}: starting make"))?;
    drop(cmd);
    for line in BufReader::new(reader).lines() {
        let line = line?;
        writeln!(file, "{line}")?;
        bar.set_message(line);
    }
    let status = child.wait()?;
    bar.finish_and_clear();
    if status.success() {
        return Ok(());
    }
    let text = fs::read_to_string(log)?;
    let errors: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("error") || l.contains("Error"))
        .take(40)
        .collect();
    let shown = if errors.is_empty() {
        text.lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect()
    } else {
        errors
    };
    eprintln!("{}", shown.join("\n"));
    bail!("{what} failed; full log: {}", log.display())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    const PROFILES: [Profile; 4] = [
        Profile::Test,
        Profile::Bench,
        Profile::Kcsan,
        Profile::BenchInlineHelpers,
    ];

    fn configs() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs")
    }

    #[test]
    fn every_fragment_of_every_kernel_exists_and_parses() {
        for profile in PROFILES {
            for arch in [Arch::X86_64, Arch::Arm64] {
                for variant in [Variant::C, Variant::Rust] {
                    let late = profile.late_fragment().map(str::to_owned);
                    for frag in fragments(arch, variant, profile).into_iter().chain(late) {
                        let text = fs::read_to_string(configs().join(&frag))
                            .unwrap_or_else(|e| panic!("{frag}: {e}"));
                        Fragment::parse(&text).unwrap_or_else(|e| panic!("{frag}: {e}"));
                    }
                }
            }
        }
    }

    #[test]
    fn inline_helpers_come_late_and_only_for_their_bench_kernel() {
        let late = |p: Profile| p.late_fragment();
        assert_eq!(late(Profile::Test), None);
        assert_eq!(late(Profile::Bench), None);
        assert_eq!(late(Profile::Kcsan), None);
        let frag = late(Profile::BenchInlineHelpers).unwrap();
        let text = fs::read_to_string(configs().join(frag)).unwrap();
        let parsed = Fragment::parse(&text).unwrap();
        assert_eq!(parsed.get("EXPERT"), Some(&Some("y".to_owned())));
        assert_eq!(
            parsed.get("RUST_INLINE_HELPERS"),
            Some(&Some("y".to_owned()))
        );
        let suffixes: BTreeSet<_> = PROFILES.iter().map(|p| p.suffix()).collect();
        assert_eq!(suffixes.len(), PROFILES.len(), "build dirs must differ");
    }
}
