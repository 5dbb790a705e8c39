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
}

pub fn run(ctx: &Context, args: Args) -> CliResult {
    let host = ctx.host()?;
    let text = snapshot::to_string(&host);
    match args.output {
        None => print!("{text}"),
        Some(p) if p.as_os_str() == "-" => print!("{text}"),
        Some(p) => std::fs::write(&p, text)
            .map_err(|e| CliError::usage(format!("cannot write {}: {e}", p.display())))?,
    }
    Ok(ExitCode::SUCCESS)
}
