//! `virt-pci snippet DEVICE...`: <hostdev> elements for virsh attach-device.

use super::{not_yet, CliResult, Context};
use clap::Args as ClapArgs;

#[derive(ClapArgs, Debug)]
pub struct Args {
    #[arg(required = true, value_name = "DEVICE")]
    pub devices: Vec<String>,
}

pub fn run(_ctx: &Context, _args: Args) -> CliResult {
    not_yet("snippet")
}
