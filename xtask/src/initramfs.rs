//! The initramfs of every guest: busybox and its applets, an `/init`
//! script, and programs, packed with the kernel's own `gen_init_cpio`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// A `gen_init_cpio` list: the base directories, busybox with a symlink per
/// applet (paths as `busybox --list-full` prints them), `/init` and the
/// programs in `/bin`.
fn cpio_list(applets: &[String], init: &Path, programs: &[(String, PathBuf)]) -> String {
    let mut dirs: BTreeSet<String> = ["/bin", "/dev", "/proc", "/sys", "/tmp"]
        .iter()
        .map(|d| d.to_string())
        .collect();
    for applet in applets {
        let mut path = Path::new("/").join(applet);
        while path.pop() && path != Path::new("/") {
            dirs.insert(path.display().to_string());
        }
    }
    let mut list = String::new();
    for dir in &dirs {
        let _ = writeln!(list, "dir {dir} 0755 0 0");
    }
    list.push_str("nod /dev/console 0600 0 0 c 5 1\n");
    list.push_str("file /bin/busybox /bin/busybox 0755 0 0\n");
    for applet in applets {
        let path = format!("/{applet}");
        if path != "/bin/busybox" && !applet.contains(char::is_whitespace) {
            let _ = writeln!(list, "slink {path} /bin/busybox 0777 0 0");
        }
    }
    let _ = writeln!(list, "file /init {} 0755 0 0", init.display());
    for (name, bin) in programs {
        let _ = writeln!(list, "file /bin/{name} {} 0755 0 0", bin.display());
    }
    list
}

/// Packs busybox with its applets, `init` as `/init` and `programs` (as
/// `/bin/<name>`) into `out/initramfs.cpio` with the kernel's gen_init_cpio.
pub fn pack(
    gen_init_cpio: &Path,
    out: &Path,
    init: &str,
    programs: &[(String, PathBuf)],
) -> Result<PathBuf> {
    let listed = Command::new("/bin/busybox")
        .arg("--list-full")
        .output()
        .context("running busybox --list-full")?;
    let applets: Vec<String> = String::from_utf8(listed.stdout)?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    let init_path = out.join("init");
    fs::write(&init_path, init)?;
    let init = init_path;
    let list = out.join("initramfs.list");
    fs::write(&list, cpio_list(&applets, &init, programs))?;
    let cpio = out.join("initramfs.cpio");
    let status = Command::new(gen_init_cpio)
        .arg("-o")
        .arg(&cpio)
        .arg(&list)
        .status()
        .with_context(|| format!("running {}", gen_init_cpio.display()))?;
    if !status.success() {
        bail!("{} failed on {}", gen_init_cpio.display(), list.display());
    }
    Ok(cpio)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpio_list_has_busybox_applets_and_programs() {
        let applets = [
            "bin/sh".to_string(),
            "usr/sbin/chroot".into(),
            "bin/busybox".into(),
        ];
        let programs = [("iommufd".to_string(), PathBuf::from("/c/iommufd"))];
        let list = cpio_list(&applets, Path::new("/c/init"), &programs);
        for line in [
            "dir /usr 0755 0 0",
            "dir /usr/sbin 0755 0 0",
            "nod /dev/console 0600 0 0 c 5 1",
            "slink /bin/sh /bin/busybox 0777 0 0",
            "slink /usr/sbin/chroot /bin/busybox 0777 0 0",
            "file /init /c/init 0755 0 0",
            "file /bin/iommufd /c/iommufd 0755 0 0",
        ] {
            assert!(list.lines().any(|l| l == line), "{line} in\n{list}");
        }
        assert!(!list.contains("slink /bin/busybox"));
    }
}
