//! `virt-pci completions SHELL` and `virt-pci man`.

use super::{CliError, CliResult};
use clap::Args as ClapArgs;
use std::process::ExitCode;

#[derive(ClapArgs, Debug)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    pub shell: clap_complete::Shell,
}

pub fn completions(mut cmd: clap::Command, a: CompletionsArgs) -> CliResult {
    clap_complete::generate(a.shell, &mut cmd, "virt-pci", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

pub fn man(cmd: clap::Command) -> CliResult {
    clap_mangen::Man::new(cmd)
        .render(&mut std::io::stdout())
        .map_err(|e| CliError::usage(format!("cannot write the man page: {e}")))?;
    Ok(ExitCode::SUCCESS)
}
