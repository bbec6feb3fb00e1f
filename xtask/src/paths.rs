//! Where things live: the repo, and the cache that holds everything built.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::cli::{Arch, Variant};

/// Environment variable that moves the cache (kernel source, work tree,
/// build dirs, logs) away from the default `~/.cache/iopf-rust`.
pub const CACHE_ENV: &str = "IOPF_CACHE";

/// Directory name of the unpacked Debian kernel source.
pub const DEBIAN_TREE: &str = "linux-source-7.3";

pub struct Workspace {
    /// Root of this repository.
    pub repo: PathBuf,
    /// Root of the cache.
    pub cache: PathBuf,
}

impl Workspace {
    pub fn discover() -> Result<Self> {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .context("xtask has no parent directory")?
            .to_path_buf();
        let cache = match env::var_os(CACHE_ENV) {
            Some(dir) => PathBuf::from(dir),
            None => {
                let home = env::var_os("HOME").context("HOME is not set")?;
                PathBuf::from(home).join(".cache/iopf-rust")
            }
        };
        fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;
        Ok(Self { repo, cache })
    }

    /// File recording a user-chosen kernel tree (`setup --kernel-src`).
    pub fn kernel_src_choice(&self) -> PathBuf {
        self.cache.join("kernel-src")
    }

    /// The pristine kernel tree: never written to.
    pub fn pristine(&self) -> Result<PathBuf> {
        let choice = self.kernel_src_choice();
        let tree = if choice.exists() {
            PathBuf::from(fs::read_to_string(&choice)?.trim())
        } else {
            self.cache.join("src").join(DEBIAN_TREE)
        };
        if !tree.join("Makefile").exists() {
            bail!(
                "no kernel source at {}: run `cargo xtask setup` first",
                tree.display()
            );
        }
        Ok(tree)
    }

    pub fn downloads(&self) -> PathBuf {
        self.cache.join("downloads")
    }

    /// The work copy: pristine tree with the repo laid over it.
    pub fn work_tree(&self) -> PathBuf {
        self.cache.join("work").join("linux")
    }

    /// Out-of-tree (`O=`) build directory of one configuration.
    pub fn build_dir(&self, arch: Arch, variant: Variant) -> PathBuf {
        self.cache
            .join("build")
            .join(format!("{}-{}", arch.kbuild_name(), variant.name()))
    }

    /// Build directory of a build profile: [`Workspace::build_dir`] plus
    /// `suffix` (empty for the test kernels, `-bench` for the bench ones).
    pub fn profile_build_dir(&self, arch: Arch, variant: Variant, suffix: &str) -> PathBuf {
        let mut dir = self.build_dir(arch, variant).into_os_string();
        dir.push(suffix);
        PathBuf::from(dir)
    }

    /// The git repository of the pristine tree, where the patch series is
    /// made and checked with `git am`.
    pub fn series_repo(&self) -> PathBuf {
        self.cache.join("series").join("linux")
    }

    /// Where `cargo xtask patch` writes the series by default.
    pub fn series_out(&self) -> PathBuf {
        self.cache.join("series").join("out")
    }

    /// Where console logs of boots are kept.
    pub fn logs(&self) -> Result<PathBuf> {
        let dir = self.cache.join("logs");
        fs::create_dir_all(&dir)?;
        Ok(dir)
    }
}
