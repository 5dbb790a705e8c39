//! `detach`, `reattach`, `reset`, `check`, `prepare`, `release`: acting on
//! devices through libvirt's node-device APIs or sysfs.

use super::{not_yet, CliResult, Context};
use clap::Args as ClapArgs;

#[derive(ClapArgs, Debug)]
pub struct DetachArgs {
    #[command(flatten)]
    pub common: DeviceActionArgs,
}

#[derive(ClapArgs, Debug)]
pub struct DeviceActionArgs {
    #[arg(required = true, value_name = "DEVICE")]
    pub devices: Vec<String>,
    /// Print what would be done, do nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(ClapArgs, Debug)]
pub struct CheckArgs {
    #[arg(value_name = "DEVICE")]
    pub device: String,
}

#[derive(ClapArgs, Debug)]
pub struct DomainActionArgs {
    #[arg(value_name = "DOMAIN")]
    pub domain: String,
    /// Print what would be done, do nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(ClapArgs, Debug)]
pub struct ReleaseArgs {
    #[command(flatten)]
    pub common: DomainActionArgs,
}

pub fn run_detach(_ctx: &Context, _a: DetachArgs) -> CliResult {
    not_yet("detach")
}
pub fn run_reattach(_ctx: &Context, _a: DeviceActionArgs) -> CliResult {
    not_yet("reattach")
}
pub fn run_reset(_ctx: &Context, _a: DeviceActionArgs) -> CliResult {
    not_yet("reset")
}
pub fn run_check(_ctx: &Context, _a: CheckArgs) -> CliResult {
    not_yet("check")
}
pub fn run_prepare(_ctx: &Context, _a: DomainActionArgs) -> CliResult {
    not_yet("prepare")
}
pub fn run_release(_ctx: &Context, _a: ReleaseArgs) -> CliResult {
    not_yet("release")
}
