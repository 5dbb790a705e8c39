//! `virt-pci inventory HOST...`: what each host of a fleet can pass through.

use super::{name_of, print_json, CliError, CliResult, Context};
use clap::Args as ClapArgs;
use std::fmt::Write as _;
use std::process::ExitCode;
use virt_pci::fleet::inventory::{self, Filter, HostInventory, Status};

#[derive(ClapArgs, Debug)]
pub(super) struct Args {
    /// Hosts: snapshot files, directories of snapshots (*.json), or libvirt URIs
    /// (qemu+ssh://hv1/system); NAME=SPEC names one.
    #[arg(required = true, value_name = "HOST")]
    pub(super) hosts: Vec<String>,
    /// Only these classes: gpu, audio, usb, net, storage, nvme, sata, accelerator, or hex (03, 0c03).
    #[arg(long, value_name = "CLASS")]
    class: Vec<String>,
    /// Only these ids: vendor (10de) or vendor:device (10de:1e84).
    #[arg(long, value_name = "ID")]
    id: Vec<String>,
    /// Only functions whose group has this status.
    #[arg(long, value_name = "clean|in-use|unverified|blocked")]
    status: Vec<String>,
    /// Print JSON (schema: schemas/inventory.schema.json).
    #[arg(long)]
    json: bool,
}

fn filter(args: &Args) -> Result<Filter, CliError> {
    let mut f = Filter::default();
    for c in &args.class {
        f.classes.push(Filter::class_prefix(c).ok_or_else(|| {
            CliError::usage(format!("`{c}` is not a device class")).help(format!(
                "give a name ({}) or 2, 4 or 6 hex digits of the class code (03, 0c03, 0c0330)",
                inventory::CLASS_NAMES
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?);
    }
    for i in &args.id {
        f.ids.push(Filter::id(i).ok_or_else(|| {
            CliError::usage(format!("`{i}` is not a PCI id"))
                .help("give the vendor (10de) or vendor:device (10de:1e84), four hex digits each")
        })?);
    }
    for s in &args.status {
        f.statuses.push(Status::parse(s).ok_or_else(|| {
            CliError::usage(format!("`{s}` is not a status"))
                .help("give clean, in-use, unverified or blocked")
        })?);
    }
    Ok(f)
}

pub(super) fn run(ctx: &Context, args: Args) -> CliResult {
    let f = filter(&args)?;
    let hosts =
        super::fleet::map_hosts(ctx, &args.hosts, &|fh| inventory::host_inventory(&fh, &f))?;
    let inv = inventory::Inventory {
        format: inventory::FORMAT,
        version: inventory::VERSION,
        hosts,
    };
    if args.json {
        return print_json(&inv);
    }
    let mut out = String::new();
    for h in &inv.hosts {
        render_host(ctx, &mut out, h);
    }
    if inv.hosts.len() > 1 {
        let mut total: std::collections::BTreeMap<&str, usize> = Default::default();
        let mut passable = 0;
        for h in &inv.hosts {
            passable += h.passable;
            for (k, v) in &h.counts {
                *total.entry(k).or_default() += v;
            }
        }
        let _ = writeln!(
            out,
            "{} hosts, {passable} passable functions: {}",
            inv.hosts.len(),
            counts(&total)
        );
    }
    super::emit(&out);
    Ok(ExitCode::SUCCESS)
}

fn counts(m: &std::collections::BTreeMap<&str, usize>) -> String {
    let order = ["clean", "in-use", "unverified", "blocked"];
    let v: Vec<String> = order
        .iter()
        .filter_map(|k| m.get(k).map(|n| format!("{n} {k}")))
        .collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn render_host(ctx: &Context, out: &mut String, h: &HostInventory) {
    let s = &ctx.out;
    let _ = writeln!(
        out,
        "{}  ({}; facts {})",
        s.bold(&h.name),
        h.source,
        h.facts
    );
    if h.matched == h.passable {
        let _ = writeln!(
            out,
            "  {} functions, {} passable: {}",
            h.functions,
            h.passable,
            counts(&h.counts)
        );
    } else {
        let _ = writeln!(
            out,
            "  {} functions, {} passable, {} match: {}",
            h.functions,
            h.passable,
            h.matched,
            counts(&h.counts)
        );
    }
    if h.devices.is_empty() {
        let _ = writeln!(out, "  (no function matches)");
        return;
    }
    let _ = writeln!(
        out,
        "  {:<5}  {:<12}  {:<6}  {:<9}  {:<9}  {:<10}  NAME",
        "GROUP", "ADDRESS", "CLASS", "ID", "SUBSYSTEM", "STATUS"
    );
    let mut i = 0;
    while i < h.devices.len() {
        let g = h.devices[i].iommu_group;
        let mut j = i;
        while j < h.devices.len() && h.devices[j].iommu_group == g && (g.is_some() || j == i) {
            j += 1;
        }
        // Devices arrive in address order; a group's members may not be
        // adjacent, so each run is printed with its reason once.
        for d in &h.devices[i..j] {
            let status = match d.status {
                Status::Clean => s.green("clean"),
                Status::InUse | Status::Unverified => s.yellow(d.status.as_str()),
                Status::Blocked => s.red("blocked"),
            };
            let pad = 10usize.saturating_sub(d.status.as_str().len());
            let name = name_of(
                ctx,
                d.vendor,
                d.device,
                d.vendor_name.as_deref(),
                d.name.as_deref(),
            );
            let _ = writeln!(
                out,
                "  {:<5}  {}  {:<6}  {:<9}  {:<9}  {status}{}  {name}",
                g.map(|g| g.to_string()).unwrap_or_else(|| "-".into()),
                d.address,
                format!("{:04x}", d.class_code >> 8),
                d.id,
                d.subsystem.as_deref().unwrap_or("-"),
                " ".repeat(pad)
            );
        }
        let last = &h.devices[j - 1];
        if let Some(r) = &last.reason {
            let _ = writeln!(out, "         {} {r}", s.dim("└"));
        }
        i = j;
    }
}
