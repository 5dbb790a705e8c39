//! `virt-pci snippet DEVICE...`: <hostdev> elements for virsh attach-device.
//!
//! The elements go to stdout (one after another, no `<devices>` wrapper);
//! the plan, warnings and blockers go to stderr, so
//! `virt-pci snippet 01:00.0 > gpu.xml` captures only XML.

use super::{show::render_plan, CliError, CliResult, Context};
use clap::{Args as ClapArgs, ValueEnum};
use std::process::ExitCode;
use virt_pci::domain::hostdev::{self, Driver, HostdevOptions, Style};
use virt_pci::plan::Plan;
use virt_pci::PciAddress;

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum YesNo {
    Yes,
    No,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum OnOff {
    On,
    Off,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum DriverArg {
    Vfio,
    Xen,
}

/// The options of generated hostdevs (shared by `snippet` and `add`).
#[derive(ClapArgs, Debug, Clone)]
pub(super) struct HostdevArgs {
    /// managed='yes': libvirt detaches the devices at start and gives them back at stop.
    #[arg(long, value_enum, default_value_t = YesNo::Yes, value_name = "yes|no")]
    managed: YesNo,
    /// The backend: <driver name='vfio|xen'/> (default: libvirt picks VFIO on KVM).
    #[arg(long, value_enum, value_name = "vfio|xen")]
    driver: Option<DriverArg>,
    /// Xen only: <source writeFiltering='no'> (qvm-pci's permissive=true); unsafe, see the warning.
    #[arg(long)]
    permissive: bool,
    /// Expose the device's option ROM BAR to the guest: <rom bar='on|off'/> (all functions).
    #[arg(long, value_enum, value_name = "on|off")]
    rom_bar: Option<OnOff>,
    /// Give the guest this ROM image instead of the device's (absolute path; first device only).
    #[arg(long, value_name = "PATH", value_hint = clap::ValueHint::FilePath)]
    rom_file: Option<String>,
    /// Boot from the device: <boot order='N'/> (first device only).
    #[arg(long, value_name = "N")]
    boot_order: Option<u32>,
    /// User alias <alias name='ua-NAME'/>; further devices get ua-NAME-1, ua-NAME-2, ...
    #[arg(long, value_name = "ua-NAME")]
    alias: Option<String>,
    /// Guest PCI address of the first device (0000:06:00.0); further devices take the next slots.
    #[arg(long, value_name = "ADDR")]
    guest_address: Option<String>,
    /// Keep the functions of one physical device on one guest slot, multifunction='on' on function 0.
    #[arg(long, requires = "guest_address")]
    guest_multifunction: bool,
}

impl HostdevArgs {
    fn options(&self, primary: Option<PciAddress>) -> Result<HostdevOptions, CliError> {
        let guest_address = match &self.guest_address {
            Some(s) => Some(PciAddress::parse(s).map_err(|e| {
                CliError::usage(format!("--guest-address: {e}"))
                    .help("give one function, e.g. --guest-address 0000:06:00.0")
            })?),
            None => None,
        };
        Ok(HostdevOptions {
            managed: self.managed == YesNo::Yes,
            driver: self.driver.map(|d| match d {
                DriverArg::Vfio => Driver::Vfio,
                DriverArg::Xen => Driver::Xen,
            }),
            permissive: self.permissive,
            rom_bar: self.rom_bar.map(|b| b == OnOff::On),
            rom_file: self.rom_file.clone(),
            boot_order: self.boot_order,
            alias: self.alias.clone(),
            guest_address,
            guest_multifunction: self.guest_multifunction,
            primary,
        })
    }
}

/// Group options shared by `snippet` and `add`.
#[derive(ClapArgs, Debug, Clone)]
pub(super) struct GroupArgs {
    /// Pass only the named functions, not the whole IOMMU group (the VM will
    /// not start under VFIO unless the rest of the group is unbound).
    #[arg(long)]
    no_strict_group: bool,
    /// Go ahead although the plan is blocked (host-critical device, bridge, ...).
    #[arg(long)]
    pub(super) force: bool,
}

#[derive(ClapArgs, Debug)]
pub(super) struct Args {
    /// The devices: 0000:03:00.0, 03:00.0, pci_0000_03_00_0, 03:00 (all functions), 10de:1f82, ...
    #[arg(required = true, value_name = "DEVICE")]
    devices: Vec<String>,
    /// Write one file per <hostdev> into DIR (created if missing), named by
    /// node device: DIR/pci_0000_03_00_0.xml, for `virsh attach-device`;
    /// stdout lists the files.
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    split: Option<std::path::PathBuf>,
    #[command(flatten)]
    hostdev: HostdevArgs,
    #[command(flatten)]
    group: GroupArgs,
}

/// Check the options that need no host (spelling, boot order, alias, ROM
/// path, `--permissive` without Xen): before the host is read or anything
/// is printed.
pub(super) fn check_options_early(h: &HostdevArgs) -> Result<(), CliError> {
    h.options(None)?.check().map_err(option_error)
}

/// Resolve the devices on the host, plan, check the options against the
/// functions that travel, and only then print the plan (stderr), the
/// refusal of a blocked plan (unless `--force`) and the option warnings.
/// Returns the functions to write (requested first function = primary)
/// and the options for them.
pub(super) fn plan_hostdevs(
    ctx: &Context,
    devices: &[String],
    group: &GroupArgs,
    hostdev: &HostdevArgs,
    for_domain: Option<&str>,
    in_domain_file: bool,
) -> Result<(Vec<PciAddress>, HostdevOptions), CliError> {
    let plan_opts = virt_pci::plan::PlanOptions {
        strict_group: !group.no_strict_group,
        for_domain: for_domain.map(str::to_string),
    };
    let (host, addrs, p) = super::host_and_plan(ctx, devices, plan_opts)?;
    let out = p.hostdev_set(group.force);
    let primary = addrs.iter().find(|a| out.contains(a)).copied();
    let opts = hostdev.options(primary)?;
    opts.check().map_err(option_error)?;
    if for_domain.is_none() && !in_domain_file {
        // snippet: guest slots run on from --guest-address (add places
        // them in the domain instead).
        opts.check_guest_run(&out).map_err(option_error)?;
    }
    eprint!("{}", render_plan(&host, &p, &ctx.err));
    if p.needs_force() && !group.force {
        return Err(refusal(devices, &p));
    }
    if out.is_empty() {
        return Err(CliError::new("nothing to pass through"));
    }
    warn_options(ctx, &opts);
    Ok((out, opts))
}

/// Why a blocked or unverified plan is not written, with each finding's
/// help once.
fn refusal(devices: &[String], p: &Plan) -> CliError {
    let n = |v: usize, what: &str| format!("{v} {what}{}", if v == 1 { "" } else { "s" });
    let mut e = if p.is_blocked() {
        CliError::new(format!(
            "refusing: the plan for {} is blocked ({})",
            devices.join(" "),
            n(p.blockers.len(), "blocker")
        ))
    } else {
        CliError::new(format!(
            "refusing: the plan for {} is unverified ({} not known)",
            devices.join(" "),
            n(p.unverified.len(), "fact")
        ))
    };
    let mut seen = Vec::new();
    for h in p.refusals().filter_map(|b| b.help.clone()) {
        if !seen.contains(&h) {
            seen.push(h.clone());
            e = e.help(h);
        }
    }
    e.help("--force writes it anyway; the guest or the host may not survive it")
}

/// Print the option warnings on stderr.
fn warn_options(ctx: &Context, opts: &HostdevOptions) {
    for w in opts.warnings() {
        eprintln!("{}{} {w}", ctx.err.yellow("warning"), ctx.err.bold(":"));
    }
}

fn option_error(e: hostdev::OptionError) -> CliError {
    let mut c = CliError::usage(e.message);
    if let Some(h) = e.help {
        c = c.help(h);
    }
    c
}

pub(super) fn run(ctx: &Context, args: Args) -> CliResult {
    check_options_early(&args.hostdev)?;
    if let Some(dir) = &args.split {
        if dir.exists() && !dir.is_dir() {
            return Err(
                CliError::usage(format!("--split {}: not a directory", dir.display()))
                    .help("give a directory (it is created if missing)"),
            );
        }
    }
    let (addrs, opts) = plan_hostdevs(ctx, &args.devices, &args.group, &args.hostdev, None, false)?;
    let Some(dir) = &args.split else {
        super::emit(&hostdev::render(&addrs, &opts, &Style::default()));
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| CliError::usage(format!("cannot create {}: {e}", dir.display())))?;
    // Every element rendered before the first file is written; each file
    // is written atomically (a reader never sees half of one).
    for (a, xml) in hostdev::render_each(&addrs, &opts, &Style::default()) {
        let path = dir.join(hostdev::split_file_name(&a));
        virt_pci::fsutil::write_atomic(&path, xml.as_bytes(), None).map_err(|e| {
            CliError::usage(e.to_string()).help("files written before this one are complete")
        })?;
        super::emit(&format!("{}\n", path.display()));
    }
    Ok(ExitCode::SUCCESS)
}
