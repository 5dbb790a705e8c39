//! `virt-pci add` / `virt-pci remove`: byte-exact edits of domain XML.

use super::{not_yet, CliResult, Context};
use clap::Args as ClapArgs;
use std::path::PathBuf;

#[derive(ClapArgs, Debug)]
pub struct AddArgs {
    /// The domain XML file (`-` for stdin).
    pub file: PathBuf,
    #[arg(required = true, value_name = "DEVICE")]
    pub devices: Vec<String>,
}

#[derive(ClapArgs, Debug)]
pub struct RemoveArgs {
    /// The domain XML file (`-` for stdin).
    pub file: PathBuf,
    #[arg(value_name = "DEVICE")]
    pub devices: Vec<String>,
    /// Remove every PCI hostdev.
    #[arg(long)]
    pub all: bool,
}

pub fn run_add(_ctx: &Context, _args: AddArgs) -> CliResult {
    not_yet("add")
}

pub fn run_remove(_ctx: &Context, _args: RemoveArgs) -> CliResult {
    not_yet("remove")
}
