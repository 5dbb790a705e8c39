//! `virt-pci validate PATH...`: the pre-commit and CI validator.

use super::{not_yet, CliResult, Context};
use clap::Args as ClapArgs;
use std::path::PathBuf;

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Files, or directories searched for *.xml.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

pub fn run(_ctx: &Context, _args: Args) -> CliResult {
    not_yet("validate")
}
