//! `e2e`: end to end through the real Intel VT-d driver.

mod qemu;

use anyhow::Result;

use crate::cli::E2eArgs;
use crate::paths::Workspace;
use crate::toolchain;

/// `cargo xtask e2e`.
pub fn command(args: &E2eArgs) -> Result<()> {
    let ws = Workspace::discover()?;
    let jobs = args.target.jobs.unwrap_or_else(toolchain::default_jobs);
    let built = qemu::ensure(&ws, jobs)?;
    if args.qemu_only {
        return Ok(());
    }
    let _ = built;
    Ok(())
}
