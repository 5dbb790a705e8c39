//! `virt-pci fake-sysfs SNAPSHOT DIR` (hidden, for developers): write a
//! fake sysfs tree for a saved host, to run any command with `--root DIR`
//! or `lspci -A linux-sysfs -O sysfs.path=DIR/sys` against a real machine's
//! shape without touching this machine's devices.

use super::{CliError, CliResult, Context};
use clap::Args as ClapArgs;
use std::path::PathBuf;
use std::process::ExitCode;
use virt_pci::host::{fake, snapshot};

#[derive(ClapArgs, Debug)]
pub(super) struct Args {
    /// The snapshot to lay out (samples/hosts/*.json).
    #[arg(value_name = "SNAPSHOT", value_hint = clap::ValueHint::FilePath)]
    snapshot: PathBuf,
    /// An empty or absent directory; DIR/sys and DIR/proc are created.
    #[arg(value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    dir: PathBuf,
}

pub(super) fn run(_ctx: &Context, args: Args) -> CliResult {
    let host = snapshot::load(&args.snapshot).map_err(super::snapshot_error)?;
    if args.dir == std::path::Path::new("/") {
        return Err(CliError::usage("refusing to write a fake tree over /"));
    }
    if args.dir.join("sys").exists() {
        return Err(CliError::usage(format!(
            "{} already holds a sys/ directory",
            args.dir.display()
        ))
        .help("give an empty or absent directory"));
    }
    fake::write(&host, &args.dir).map_err(|e| {
        CliError::usage(format!(
            "cannot write the tree under {}: {e}",
            args.dir.display()
        ))
    })?;
    Ok(ExitCode::SUCCESS)
}
