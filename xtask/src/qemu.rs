//! Booting a kernel under QEMU and capturing its serial console. Commands
//! boot through [`crate::judge`], which also judges what the kernel printed.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::cli::Arch;
use crate::toolchain;

/// How QEMU runs the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// Software emulation: slow but works everywhere.
    Tcg,
    /// Hardware virtualization, used only after a probe boot succeeded.
    Kvm,
}

/// One boot's request.
pub struct Boot<'a> {
    pub arch: Arch,
    pub image: &'a Path,
    pub initrd: Option<&'a Path>,
    /// Appended to the console and shutdown arguments.
    pub cmdline: &'a str,
    pub timeout: Duration,
    pub log: PathBuf,
}

/// What came out of a boot.
pub struct Console {
    pub text: String,
    pub timed_out: bool,
    pub took: Duration,
    pub log: PathBuf,
}

/// The same machine for every variant, so their results compare.
fn command(boot: &Boot, accel: Accel) -> Command {
    let (bin, _) = toolchain::qemu_binary(boot.arch);
    command_with(boot, accel, Path::new(bin))
}

/// [`command`] with the QEMU binary `bin`.
fn command_with(boot: &Boot, accel: Accel, bin: &Path) -> Command {
    let mut cmd = Command::new(bin);
    let console = match boot.arch {
        Arch::X86_64 => "ttyS0",
        Arch::Arm64 => "ttyAMA0",
    };
    match boot.arch {
        Arch::X86_64 => {
            if Path::new("/usr/share/qemu/qboot.rom").exists() {
                cmd.args(["-bios", "/usr/share/qemu/qboot.rom"]);
            }
        }
        Arch::Arm64 => {
            cmd.args(["-machine", "virt"]);
        }
    }
    match (accel, boot.arch) {
        (Accel::Kvm, _) => cmd.args(["-accel", "kvm", "-cpu", "host"]),
        // Emulating pointer authentication's QARMA cipher dominates TCG time.
        (Accel::Tcg, Arch::Arm64) => cmd.args(["-accel", "tcg", "-cpu", "max,pauth-impdef=on"]),
        // No 5-level paging: with LA57 a KASAN kernel under TCG reported a
        // "wild-memory-access" on its own per-CPU data in early boot (an
        // address of the 5-level direct map judged with the 4-level layout),
        // on either IOPF core. 4-level paging is what most machines run.
        (Accel::Tcg, Arch::X86_64) => cmd.args(["-accel", "tcg", "-cpu", "max,la57=off"]),
    };
    cmd.args(["-smp", "2", "-m", "2048", "-nodefaults", "-no-reboot"])
        .args(["-display", "none", "-monitor", "none", "-serial", "stdio"])
        .arg("-kernel")
        .arg(boot.image)
        .arg("-append")
        .arg(format!(
            "console={console} panic=-1 kunit.enable=1 kunit_shutdown=poweroff {}",
            boot.cmdline
        ));
    if let Some(initrd) = boot.initrd {
        cmd.arg("-initrd").arg(initrd);
    }
    cmd
}

/// Boots and returns the console output, killing QEMU after the timeout.
pub fn boot(boot: &Boot) -> Result<Console> {
    run(boot, accel(boot)?)
}

/// Boots under TCG even where KVM works, with `extra` QEMU arguments: a
/// benchmark compares kernels on one machine model, whatever the host has.
pub fn boot_tcg(boot: &Boot, extra: &[&str]) -> Result<Console> {
    run_with(boot, Accel::Tcg, extra)
}

fn run(boot: &Boot, accel: Accel) -> Result<Console> {
    run_with(boot, accel, &[])
}

/// Boots under TCG with the QEMU binary `qemu` in place of the installed
/// one, and `extra` QEMU arguments (a machine type, devices): `cargo xtask
/// e2e` runs its own QEMU build with a test device.
pub fn boot_custom(boot: &Boot, qemu: &Path, extra: &[&str]) -> Result<Console> {
    run_command(boot, command_with(boot, Accel::Tcg, qemu), extra)
}

fn run_with(boot: &Boot, accel: Accel, extra: &[&str]) -> Result<Console> {
    run_command(boot, command(boot, accel), extra)
}

fn run_command(boot: &Boot, mut cmd: Command, extra: &[&str]) -> Result<Console> {
    let start = Instant::now();
    let mut child = cmd
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting QEMU")?;
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut log = fs::File::create(&boot.log)?;
    let reader = thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stdout).split(b'\n').map_while(|l| l.ok()) {
            let line = String::from_utf8_lossy(&line).replace('\r', "");
            let _ = writeln!(log, "{line}");
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    let errors = thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
            text.push_str(&format!("qemu: {line}\n"));
        }
        text
    });

    let mut timed_out = false;
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if start.elapsed() > boot.timeout {
            timed_out = true;
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    let mut text = reader.join().expect("console reader panicked");
    text.push_str(&errors.join().expect("stderr reader panicked"));
    fs::write(&boot.log, &text)?;
    Ok(Console {
        text,
        timed_out,
        took: start.elapsed(),
        log: boot.log.clone(),
    })
}

/// KVM only if a short probe boot with it reaches the end of the tests:
/// on some hosts the guest dies with "KVM internal error ... emulation
/// failure", so TCG is the default.
fn accel(boot: &Boot) -> Result<Accel> {
    static PROBED: OnceLock<Accel> = OnceLock::new();
    if let Some(accel) = PROBED.get() {
        return Ok(*accel);
    }
    let usable = boot.arch == Arch::X86_64
        && std::env::var_os("IOPF_NO_KVM").is_none()
        && fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok();
    let accel = if usable {
        let probe = Boot {
            timeout: Duration::from_secs(60),
            log: boot.log.with_extension("kvm-probe.log"),
            ..*boot
        };
        let console = run(&probe, Accel::Kvm)?;
        let ok = !console.timed_out
            && console.text.contains("KTAP version")
            && !console.text.contains("KVM internal error");
        eprintln!(
            "==> KVM probe {}: using {}",
            if ok { "succeeded" } else { "failed" },
            if ok { "KVM" } else { "TCG" }
        );
        if ok {
            Accel::Kvm
        } else {
            Accel::Tcg
        }
    } else {
        Accel::Tcg
    };
    Ok(*PROBED.get_or_init(|| accel))
}
