//! `virt-pci doctor [DEVICE...]`: host and device readiness checks. The
//! checks are `virt_pci::doctor`'s; this file chooses the host source and
//! prints.

use super::{device_name, parse_specs, print_json, read_sysfs, CliError, CliResult, Context};
use clap::Args as ClapArgs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use virt_pci::doctor::{self, Check, Facts, Report, Status};
use virt_pci::invocation::HostSource;

#[derive(ClapArgs, Debug)]
pub(super) struct Args {
    /// Devices to check as well, in any address form (01:00.0, 10de:1c82, pci_0000_01_00_0).
    #[arg(value_name = "DEVICE")]
    devices: Vec<String>,
    /// Plan for the named functions only, not their whole IOMMU groups.
    #[arg(long)]
    no_strict_group: bool,
    /// Print JSON (schemas/doctor.schema.json).
    #[arg(long)]
    json: bool,
}

pub(super) fn run(ctx: &Context, args: Args) -> CliResult {
    // The checks read files of a machine: the root (or /), or nothing from
    // a snapshot. -c adds libvirt's view; it does not replace the host.
    let (host, root): (_, Option<PathBuf>) = match &ctx.inv.host {
        HostSource::Snapshot(_) => (ctx.host()?, None),
        HostSource::Root(r) => (read_sysfs(r)?, Some(r.clone())),
        HostSource::Libvirt(_) | HostSource::ThisMachine | HostSource::None => {
            (read_sysfs(Path::new("/"))?, Some(PathBuf::from("/")))
        }
    };
    let facts = match &root {
        Some(r) => Facts::Root(r),
        None => Facts::Snapshot,
    };
    let specs = parse_specs(&args.devices)?;
    let addrs = host.resolve_all(&specs)?;
    let mut checks = doctor::host_checks(facts, &host);
    if ctx.global.connect_on_command_line {
        if let Some(uri) = ctx.global.connect.clone() {
            checks.push(libvirt_check(ctx, &uri)?);
        }
    }
    for a in &addrs {
        checks.extend(doctor::device_checks(
            facts,
            &host,
            a,
            !args.no_strict_group,
        ));
    }
    let report = Report::new(host.source.clone(), checks);
    let code = if report.failed() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    };
    if args.json {
        print_json(&report)?;
        return Ok(code);
    }
    print_report(ctx, &host, &report);
    Ok(code)
}

fn libvirt_check(_ctx: &Context, uri: &str) -> Result<Check, CliError> {
    // Read-only connections may not read domain capabilities (libvirt: "read only
    // access prevents virConnectGetDomainCapabilities"); this call changes nothing.
    let caps = match virt_pci::libvirt::open(Some(uri), false) {
        // No libvirt here at all: not a finding about the host.
        Err(e) if e.is_not_linked() => {
            return Err(super::libvirt_error(e).help("or drop -c to check the host only"))
        }
        c => c.and_then(|c| c.domain_capabilities()),
    };
    Ok(match caps {
        Ok(x) => doctor::libvirt_view(uri, Ok(&x)),
        Err(e) => doctor::libvirt_view(uri, Err(&e.to_string())),
    })
}

fn print_report(ctx: &Context, host: &virt_pci::Host, r: &Report) {
    let s = &ctx.out;
    outln!("{} {}", s.bold("virt-pci doctor:"), r.source);
    let mut last_dev = None;
    for c in &r.checks {
        if c.device != last_dev {
            if let Some(a) = c.device {
                let name = host
                    .device(&a)
                    .map(|d| device_name(ctx, d))
                    .unwrap_or_default();
                outln!("\n{}  {name}", s.bold(&a.to_string()));
            }
            last_dev = c.device;
        }
        let tag = match c.status {
            Status::Pass => s.green("PASS   "),
            Status::Warn => s.yellow("WARN   "),
            Status::Fail => s.red("FAIL   "),
            Status::Unknown => s.dim("UNKNOWN"),
        };
        outln!("{tag} {}: {}", s.bold(c.title), c.message);
        for e in &c.evidence {
            outln!("          {}", s.dim(&format!("{}: {}", e.path, e.content)));
        }
        if c.status != Status::Pass {
            if let Some(f) = &c.fix {
                outln!("          {}: {f}", s.cyan("fix"));
            }
        }
    }
    outln!(
        "\n{} {} pass, {} warn, {} fail, {} unknown",
        s.bold("summary:"),
        r.pass,
        r.warn,
        r.fail,
        r.unknown
    );
}
