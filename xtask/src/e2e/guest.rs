//! The guest side of the VT-d end-to-end test: the user-space test program
//! (`tests/vtd-e2e/guest/iopf_e2e.c`, built statically with the host's gcc)
//! and the initramfs whose `/init` runs it.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::initramfs;
use crate::kernel::Built;
use crate::paths::Workspace;

/// Marks `/init`'s and the test program's lines on the console.
pub const MARK: &str = "# e2e:";
/// Marks the benchmark lines.
pub const BENCH_MARK: &str = "# e2e-bench:";
/// Marks the lines copied from the trace buffer.
pub const TRACE_MARK: &str = "# e2e-trace:";
/// Marks the driver's lines, copied from the kernel log.
pub const KMSG_MARK: &str = "# e2e-kmsg:";
/// Starts and ends the results, printed again at the end of the boot.
pub const RESULTS: &str = "# e2e: results";
pub const RESULTS_END: &str = "# e2e: results end";

/// What the boot runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Every case, with the trace of the VT-d page request path and a
    /// kmemleak scan afterwards (the debug kernels).
    Cases,
    /// The timing jobs, `rounds` times after a warm-up round (the
    /// benchmark kernels).
    Bench { rounds: usize },
}

/// Mounts and settings common to both modes.
const INIT_HEAD: &str = r##"#!/bin/busybox sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t debugfs debugfs /sys/kernel/debug
mount -t tmpfs tmpfs /tmp
# One page per file fault, so that a file case's page requests are as
# many as its pages on every kernel (no fault-around).
echo 4096 > /sys/kernel/debug/fault_around_bytes
R=/tmp/e2e-results
"##;

/// The cases: the page request path traced at its two ends in the VT-d
/// driver (`intel_iommu:prq_report`, fired by prq.c for each page request
/// it reports to the IOPF framework, and `intel_iommu:qi_submit` for the
/// page group responses the IOPF framework sends back through it, with one
/// stack trace of such a response), the PRQ interrupt count, the test, and
/// a kmemleak scan. Everything the workbench reads also goes to a file,
/// printed at the end by [`INIT_TAIL`].
const INIT_CASES: &str = r##"T=/sys/kernel/tracing
mount -t tracefs tracefs $T
if [ -d $T/events/intel_iommu ]; then
	echo 16384 > $T/buffer_size_kb
	echo 1 > $T/events/intel_iommu/prq_report/enable
	# Page group response descriptors: type 9.
	echo 'qw0 & 1 && qw0 & 8' > $T/events/intel_iommu/qi_submit/filter
	echo 1 > $T/events/intel_iommu/qi_submit/enable
	echo 'stacktrace:1 if qw0 & 1 && qw0 & 8' > $T/events/intel_iommu/qi_submit/trigger
	echo "# e2e: tracing on"
else
	echo "# e2e: tracing unavailable"
fi
echo "# e2e: prq interrupts before: $(grep prq /proc/interrupts)" >> $R
{ /bin/iopf-e2e; echo "# e2e: exit=$?"; } | tee -a $R
echo "# e2e: prq interrupts after: $(grep prq /proc/interrupts)" >> $R
if [ -d $T/events/intel_iommu ]; then
	echo 0 > $T/tracing_on
	overrun=0
	for s in $T/per_cpu/cpu*/stats; do
		overrun=$((overrun + $(grep '^overrun:' $s | cut -d' ' -f2)))
	done
	echo "# e2e: trace prq_report=$(grep -c ' prq_report: ' $T/trace) page_grp_resp=$(grep -c ' page_grp_resp ' $T/trace) overrun=$overrun" >> $R
	grep -m 2 ' prq_report: ' $T/trace | sed 's/^/# e2e-trace: /' >> $R
	grep -m 2 ' page_grp_resp ' $T/trace | sed 's/^/# e2e-trace: /' >> $R
	grep -m 1 -A 30 '<stack trace>' $T/trace | grep -e '<stack trace>' -e '^ => ' | sed 's/^/# e2e-trace: /' >> $R
fi
leaks=/sys/kernel/debug/kmemleak
if [ -e $leaks ]; then
	echo "# e2e: kmemleak scanning"
	sleep 6
	echo scan > $leaks
	echo scan > $leaks
	cat $leaks
	echo "# e2e: kmemleak done" >> $R
else
	echo "# e2e: kmemleak unavailable" >> $R
fi
"##;

/// The end of every boot: the results printed again, whole lines only.
/// Kernel messages and user-space output share the console and can cut
/// into each other's lines (printk runs asynchronously); with the console
/// log level at its lowest, nothing cuts into these. The driver's own
/// lines come from the kernel log. Reports (splats) were on the console
/// already, while the test ran.
const INIT_TAIL: &str = r##"dmesg | grep 'rust_iopf_testdev' | sed 's/^/# e2e-kmsg: /' >> $R
dmesg -n 1
sleep 1
echo "# e2e: results"
cat $R
echo "# e2e: results end"
poweroff -f
"##;

fn init_script(mode: Mode) -> String {
    let mut init = INIT_HEAD.to_string();
    match mode {
        Mode::Cases => init.push_str(INIT_CASES),
        Mode::Bench { rounds } => {
            let _ = writeln!(
                init,
                "{{ /bin/iopf-e2e --bench {rounds}; echo \"# e2e: exit=$?\"; }} | tee -a $R"
            );
        }
    }
    init.push_str(INIT_TAIL);
    init
}

/// Builds the test program (when its source changed) and the initramfs
/// for `mode`; returns the initramfs.
pub fn initramfs(ws: &Workspace, built: &Built, mode: Mode) -> Result<PathBuf> {
    let out = ws.cache.join("e2e");
    fs::create_dir_all(&out)?;
    let program = compile(ws, &out)?;
    let name = match mode {
        Mode::Cases => "cases",
        Mode::Bench { .. } => "bench",
    };
    let dir = out.join(name);
    fs::create_dir_all(&dir)?;
    // The kernel's own packer, built with it.
    let gen_init_cpio = built
        .image
        .ancestors()
        .nth(4)
        .context("the kernel image is not in a build tree")?
        .join("usr/gen_init_cpio");
    initramfs::pack(
        &gen_init_cpio,
        &dir,
        &init_script(mode),
        &[("iopf-e2e".to_string(), program)],
    )
}

fn compile(ws: &Workspace, out: &Path) -> Result<PathBuf> {
    let source = ws.repo.join("tests/vtd-e2e/guest/iopf_e2e.c");
    let bin = out.join("iopf-e2e");
    let stamp = out.join("iopf-e2e.source");
    let text = fs::read(&source).with_context(|| format!("reading {}", source.display()))?;
    if bin.exists() && fs::read(&stamp).ok().as_deref() == Some(text.as_slice()) {
        return Ok(bin);
    }
    for (path, package) in [
        ("/usr/bin/gcc", "gcc"),
        ("/usr/lib/x86_64-linux-gnu/libc.a", "libc6-dev"),
        ("/bin/busybox", "busybox-static"),
    ] {
        if !Path::new(path).exists() {
            bail!("missing {path}: run `cargo xtask setup` (or `apt-get install {package}`)");
        }
    }
    eprintln!("==> compiling {}", source.display());
    let output = Command::new("gcc")
        .args(["-static", "-O2", "-Wall", "-pthread", "-o"])
        .arg(&bin)
        .arg(&source)
        .output()
        .context("running gcc")?;
    if !output.status.success() {
        eprint!("{}", String::from_utf8_lossy(&output.stderr));
        bail!("compiling {} failed", source.display());
    }
    fs::write(stamp, text)?;
    Ok(bin)
}

/// A `gen_init_cpio` list: busybox (its applets linked by `/init`), the
/// test program and `/init`.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bench_init_runs_the_timing_jobs_without_tracing() {
        let init = init_script(Mode::Bench { rounds: 3 });
        assert!(init.contains("/bin/iopf-e2e --bench 3;"));
        assert!(!init.contains("tracing"));
        assert!(init.ends_with("poweroff -f\n"));
    }

    #[test]
    fn the_cases_init_traces_both_ends_and_scans_for_leaks() {
        let init = init_script(Mode::Cases);
        assert!(init.contains("prq_report/enable"));
        assert!(init.contains("qi_submit/trigger"));
        assert!(init.contains("echo scan > $leaks"));
        assert!(init.ends_with("poweroff -f\n"));
    }
}
