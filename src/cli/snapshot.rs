//! `virt-pci snapshot`: the whole host model as JSON.

use super::{CliError, CliResult, Context};
use clap::Args as ClapArgs;
use std::path::PathBuf;
use std::process::ExitCode;
use virt_pci::host::snapshot;

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Write to FILE instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub output: Option<PathBuf>,
    /// `json` (the model, read back with --snapshot) or `libvirt-test` (a
    /// libvirt test-driver node file: `virsh -c test:///abs/FILE.xml`).
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Json,
    LibvirtTest,
}

pub fn run(ctx: &Context, args: Args) -> CliResult {
    let host = ctx.host()?;
    let text = match args.format {
        Format::Json => snapshot::to_string(&host),
        Format::LibvirtTest => virt_pci::host::nodedev::test_driver_xml(&host),
    };
    match args.output {
        None => print!("{text}"),
        Some(p) if p.as_os_str() == "-" => print!("{text}"),
        Some(p) => std::fs::write(&p, text)
            .map_err(|e| CliError::usage(format!("cannot write {}: {e}", p.display())))?,
    }
    Ok(ExitCode::SUCCESS)
}
