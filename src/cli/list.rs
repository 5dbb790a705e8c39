//! `virt-pci list`: every PCI function, grouped by IOMMU group.

use super::{device_name, print_json, CliResult, Context};
use clap::Args as ClapArgs;
use std::fmt::Write as _;
use std::process::ExitCode;
use virt_pci::host::{Device, GroupMember, Host, Kind};
use virt_pci::report;
use virt_pci::PciAddress;

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Show the bus topology (bridges and what hangs below them) instead of groups.
    #[arg(long)]
    pub tree: bool,
    /// Print JSON (schema: schemas/list.schema.json).
    #[arg(long)]
    pub json: bool,
}

pub fn run(ctx: &Context, args: Args) -> CliResult {
    let host = ctx.host()?;
    if args.json {
        return print_json(&report::list_report(&host, ctx.ids()));
    }
    let text = if args.tree {
        render_tree(ctx, &host)
    } else {
        render_groups(ctx, &host)
    };
    super::emit(&text);
    Ok(ExitCode::SUCCESS)
}

/// One line for a function: address, class, name, ids, driver, reset, flags.
pub fn device_line(ctx: &Context, host: &Host, d: &Device) -> String {
    let s = &ctx.out;
    let mut line = format!(
        "{} {} [{:04x}]: {} [{:04x}:{:04x}]",
        s.bold(&d.address.to_string()),
        ctx.ids().class_name(d.class16()),
        d.class16(),
        device_name(ctx, d),
        d.vendor(),
        d.device()
    );
    match &d.driver {
        Some(drv) => {
            let _ = write!(line, "  driver={}", s.green(&virt_pci::text::escape(drv)));
        }
        None => line.push_str("  driver=none"),
    }
    match (&d.reset_methods, d.can_reset()) {
        (Some(m), _) if !m.is_empty() => {
            let _ = write!(line, "  reset={}", virt_pci::text::escape(&m.join(",")));
        }
        (_, Some(true)) => line.push_str("  reset=yes"),
        (_, Some(false)) => {
            let _ = write!(line, "  {}", s.yellow("reset=none"));
        }
        _ => {}
    }
    match d.kind() {
        Kind::Bridge => {
            let _ = write!(line, "  {}", s.dim("[bridge]"));
        }
        Kind::HostBridge => {
            let _ = write!(line, "  {}", s.dim("[host bridge]"));
        }
        Kind::Endpoint => {}
    }
    for c in &d.critical {
        let _ = write!(line, "  {}", s.red(&format!("[host-critical: {c}]")));
    }
    let users = host.used_by(&d.address);
    if !users.is_empty() {
        let names: Vec<String> = users
            .iter()
            .map(|u| {
                let name = virt_pci::text::escape(&u.domain);
                format!("{name}{}", if u.running { " (running)" } else { "" })
            })
            .collect();
        let _ = write!(line, "  used by: {}", names.join(", "));
    }
    line
}

fn render_groups(ctx: &Context, host: &Host) -> String {
    let s = &ctx.out;
    let mut out = String::new();
    if host.groups.is_empty() {
        let _ = writeln!(
            out,
            "{}: {}",
            s.yellow("note"),
            report::hint(host)
                .unwrap_or_else(|| "IOMMU groups are not known for this host".to_string())
        );
        let _ = writeln!(out, "{}", s.bold("PCI functions (no IOMMU group)"));
        for d in host.devices.values() {
            let _ = writeln!(out, "  {}", device_line(ctx, host, d));
        }
        return out;
    }
    for (id, members) in &host.groups {
        let _ = writeln!(out, "{}", s.bold(&format!("IOMMU group {id}")));
        for m in members {
            match m {
                GroupMember::Pci(a) => match host.device(a) {
                    Some(d) => {
                        let _ = writeln!(out, "  {}", device_line(ctx, host, d));
                    }
                    None => {
                        let _ = writeln!(out, "  {a} (listed in the group, not on the PCI bus)");
                    }
                },
                GroupMember::Other(n) => {
                    let _ = writeln!(
                        out,
                        "  {n}  {}",
                        s.dim("[not a PCI function: mdev or platform device]")
                    );
                }
            }
        }
    }
    // A function whose group does not list it (an inconsistent source) is
    // shown under its group number rather than dropped.
    let unlisted: Vec<&Device> = host
        .devices
        .values()
        .filter(|d| {
            d.iommu_group.is_some_and(|g| {
                !host
                    .groups
                    .get(&g)
                    .is_some_and(|m| m.contains(&GroupMember::Pci(d.address)))
            })
        })
        .collect();
    for d in unlisted {
        let g = d.iommu_group.unwrap_or_default();
        let _ = writeln!(
            out,
            "{}",
            s.bold(&format!(
                "IOMMU group {g} (this function is not in the group's member list)"
            ))
        );
        let _ = writeln!(out, "  {}", device_line(ctx, host, d));
    }
    let orphans: Vec<&Device> = host
        .devices
        .values()
        .filter(|d| d.iommu_group.is_none())
        .collect();
    if !orphans.is_empty() {
        if let Some(h) = report::hint(host) {
            let _ = writeln!(out, "{}: {h}", s.yellow("note"));
        }
        let _ = writeln!(out, "{}", s.bold("No IOMMU group"));
        for d in orphans {
            let _ = writeln!(out, "  {}", device_line(ctx, host, d));
        }
    }
    out
}

fn render_tree(ctx: &Context, host: &Host) -> String {
    use std::collections::BTreeMap;
    let mut out = String::new();
    // Children by parent and roots by root bus, each built once: scanning
    // every device for every device's children took minutes at 100,000
    // functions (issue 11). A device whose parent bridge the source does
    // not hold (a partial listing) is shown at the top of its root bus
    // rather than dropped.
    let mut children: BTreeMap<PciAddress, Vec<&Device>> = BTreeMap::new();
    let mut roots: BTreeMap<(u32, u8), Vec<&Device>> = BTreeMap::new();
    for d in host.devices.values() {
        match d.parents.last() {
            Some(p) if host.devices.contains_key(p) => children.entry(*p).or_default().push(d),
            _ => {
                let top = d.parents.first().copied().unwrap_or(d.address);
                roots.entry((top.domain, top.bus)).or_default().push(d);
            }
        }
    }
    // Iterative, so a deep (or, from a bad source, cyclic) chain of
    // bridges can neither overflow the stack nor loop: each device once.
    let mut shown: std::collections::HashSet<PciAddress> = std::collections::HashSet::new();
    for ((dom, bus), top) in &roots {
        let _ = writeln!(out, "{}", ctx.out.bold(&format!("pci{dom:04x}:{bus:02x}")));
        let mut stack: Vec<(&Device, usize)> = top.iter().rev().map(|d| (*d, 1)).collect();
        while let Some((d, depth)) = stack.pop() {
            if !shown.insert(d.address) {
                continue;
            }
            let group = d
                .iommu_group
                .map(|g| format!("[group {g}] "))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "{}{}{}",
                "  ".repeat(depth),
                ctx.out.dim(&group),
                device_line(ctx, host, d)
            );
            if let Some(cs) = children.get(&d.address) {
                stack.extend(cs.iter().rev().map(|c| (*c, depth + 1)));
            }
        }
    }
    out
}
