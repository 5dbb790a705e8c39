//! `virt-pci snapshot`: the whole host model as JSON.

use super::{CliError, CliResult, Context};
use clap::Args as ClapArgs;
use std::path::PathBuf;
use std::process::ExitCode;
use virt_pci::host::{listing, snapshot, CriticalFact};

#[derive(ClapArgs, Debug)]
pub(super) struct Args {
    /// Write to FILE instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    output: Option<PathBuf>,
    /// `json` (the model, read back with --snapshot) or `libvirt-test` (a
    /// libvirt test-driver node file: `virsh -c test:///abs/FILE.xml`).
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,
    /// Convert a published IOMMU listing (Arch-wiki script output, `lspci -nnk`,
    /// r15ch13 iommu.sh, `find /sys/kernel/iommu_groups`; `-` for stdin) instead of reading a host.
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub(super) from_listing: Option<PathBuf>,
    /// State which function controls the root filesystem's disk (repeatable;
    /// `none`: no PCI function). Recorded as *stated*, replacing what the
    /// source says; plans rely on it instead of saying `unverified`.
    #[arg(long, value_name = "ADDR|none")]
    root_disk: Vec<String>,
    /// State which NIC carries the default route (repeatable; `none`).
    #[arg(long, value_name = "ADDR|none")]
    default_nic: Vec<String>,
    /// State which function is the firmware's boot VGA device (`none`: the host
    /// has none, e.g. headless with a serial console).
    #[arg(long, value_name = "ADDR|none")]
    boot_vga: Vec<String>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Json,
    LibvirtTest,
}

pub(super) fn run(ctx: &Context, args: Args) -> CliResult {
    let host = match &args.from_listing {
        Some(p) if p.as_os_str() == "-" => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .map_err(|e| CliError::usage(format!("cannot read the listing from stdin: {e}")))?;
            listing::parse(&text, "listing:stdin")
                .map_err(|(_, m)| CliError::usage(format!("<stdin>: {m}")).help(listing::HELP))?
        }
        Some(p) => listing::load(p).map_err(|e| {
            let mut c = CliError::usage(e.to_string());
            if let Some(h) = e.help {
                c = c.help(h);
            }
            c
        })?,
        None => ctx.host()?,
    };
    let mut host = host;
    for (f, given, flag) in [
        (CriticalFact::RootFilesystem, &args.root_disk, "--root-disk"),
        (
            CriticalFact::DefaultRoute,
            &args.default_nic,
            "--default-nic",
        ),
        (CriticalFact::BootVga, &args.boot_vga, "--boot-vga"),
    ] {
        if given.is_empty() {
            continue;
        }
        let mut addrs = Vec::new();
        if !(given.len() == 1 && given[0] == "none") {
            let specs = super::parse_specs(given).map_err(|e| {
                let mut c = CliError::usage(format!("{flag}: {}", e.message));
                c.help = e.help;
                c.help
                    .push(format!("or `{flag} none` when no PCI function is it"));
                c
            })?;
            addrs = host.resolve_all(&specs)?;
        }
        host.state_fact(f, &addrs)?;
    }
    let text = match args.format {
        Format::Json => snapshot::to_string(&host),
        Format::LibvirtTest => virt_pci::host::nodedev::test_driver_xml(&host),
    };
    match args.output {
        None => super::emit(&text),
        Some(p) if p.as_os_str() == "-" => super::emit(&text),
        // The same atomic writer as `add -o`: a failed write (ENOSPC)
        // leaves the old snapshot, never truncated JSON.
        Some(p) => virt_pci::fsutil::write_atomic(&p, text.as_bytes(), None).map_err(|e| {
            CliError::usage(e.to_string()).help(if std::fs::metadata(&p).is_ok() {
                "the original file was not changed"
            } else {
                "nothing was written"
            })
        })?,
    }
    Ok(ExitCode::SUCCESS)
}
