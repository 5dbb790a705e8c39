//! `virt-pci validate PATH...`: the pre-commit and CI validator.
//! Arguments and printing only; the checks are `virt_pci::validate`.

use super::{CliError, CliResult, Context};
use clap::{Args as ClapArgs, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use virt_pci::validate::{self, render::Format, Options};

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// rustc-style text with the source line and a caret.
    Human,
    /// One JSON document (schemas/validate.schema.json).
    Json,
    /// GitHub workflow annotations (::error file=…,line=…).
    Github,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Deny {
    /// Every warning is an error.
    Warnings,
    /// A device or IOMMU group shared between domains is an error.
    Shared,
}

#[derive(ClapArgs, Debug)]
#[command(
    after_help = "Host checks (device present, IOMMU group viable, bridges, host-critical \
devices, reset) run only when a host is named: --live, --root DIR, --snapshot FILE or -c URI.\n\
Exit status: 0 no errors, 1 errors (or warnings with --deny warnings), 2 usage or I/O problems."
)]
pub struct Args {
    /// Files, or directories searched for *.xml.
    #[arg(required = true, value_name = "PATH", value_hint = clap::ValueHint::AnyPath)]
    pub paths: Vec<PathBuf>,
    /// Also check against this machine (its sysfs).
    #[arg(long)]
    pub live: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human, value_name = "FORMAT")]
    pub format: OutputFormat,
    /// Make warnings (or only sharing between domains) errors; repeatable.
    #[arg(long, value_enum, value_name = "WHAT")]
    pub deny: Vec<Deny>,
}

pub fn run(ctx: &Context, args: Args) -> CliResult {
    // A host is named by --snapshot, --root (or VIRT_PCI_ROOT) or a -c on
    // the command line; LIBVIRT_DEFAULT_URI alone is set for virsh on many
    // hypervisors and must not change the verdict of the same files.
    let named = ctx.global.snapshot.is_some()
        || ctx.global.root.is_some()
        || (ctx.global.connect.is_some() && super::connect_given_on_command_line());
    if args.live && named {
        return Err(CliError::usage(
            "--live reads this machine; it cannot be combined with --root, --snapshot or -c",
        )
        .help("name one host"));
    }
    let host = if args.live {
        Some(super::read_sysfs(std::path::Path::new("/"))?)
    } else if named {
        Some(ctx.host()?)
    } else {
        None
    };
    let opts = Options {
        deny_warnings: args.deny.contains(&Deny::Warnings),
        deny_shared: args.deny.contains(&Deny::Shared),
    };
    let inputs = validate::read_inputs(&args.paths);
    let report = validate::validate(&inputs, host.as_ref(), opts);
    let format = match args.format {
        OutputFormat::Human => Format::Human,
        OutputFormat::Json => Format::Json,
        OutputFormat::Github => Format::Github,
    };
    print!(
        "{}",
        validate::render::render(&report, &inputs.sources, format, ctx.out.on)
    );
    Ok(if report.has_io_error() {
        ExitCode::from(2)
    } else if report.errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
