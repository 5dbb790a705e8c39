//! `virt-pci list`: every PCI function, grouped by IOMMU group (or as the
//! bus tree), optionally filtered. The selection, the per-group "can pass"
//! verdict and the tree are `virt_pci::report`; this file prints them.

use super::{device_name, print_json, CliResult, Context};
use clap::Args as ClapArgs;
use std::fmt::Write as _;
use std::process::ExitCode;
use virt_pci::host::{Device, GroupMember, Host, Kind};
use virt_pci::plan::Verdict;
use virt_pci::report::{self, Filter, TreeNode};

#[derive(ClapArgs, Debug)]
#[command(
    after_help = "Filters select functions; every filter given must match. A group is \
shown whole when one of its functions matches (the others travel with it); --tree keeps the \
bridges above a match. Text matches ignore case.\n\
Examples: --class 03 (display), --class usb, --vendor 10de, --vendor nvidia, --name 'RTX 3090', \
--group 14 --group 15, --driver vfio-pci, --driver none."
)]
pub(super) struct Args {
    /// Show the bus topology (bridges and what hangs below them) instead of groups.
    #[arg(long)]
    tree: bool,
    /// Print JSON (schemas/list.schema.json; with --tree schemas/list-tree.schema.json).
    #[arg(long)]
    json: bool,
    /// Class: a hex prefix of the class code (03, 0300, 0c03) or part of its name (vga, usb).
    #[arg(long, value_name = "CLASS")]
    class: Option<String>,
    /// Vendor: a vendor id (10de) or part of the vendor's name (nvidia).
    #[arg(long, value_name = "VENDOR")]
    vendor: Option<String>,
    /// Part of the device's name ("Vendor Device", as printed).
    #[arg(long, value_name = "TEXT")]
    name: Option<String>,
    /// The bound driver (`none`: no driver).
    #[arg(long, value_name = "DRIVER")]
    driver: Option<String>,
    /// Only this IOMMU group (repeatable).
    #[arg(long = "group", value_name = "N")]
    groups: Vec<u32>,
}

impl Args {
    fn filter(&self) -> Filter {
        Filter {
            class: self.class.clone(),
            vendor: self.vendor.clone(),
            name: self.name.clone(),
            driver: self.driver.clone(),
            groups: self.groups.clone(),
        }
    }
}

pub(super) fn run(ctx: &Context, args: Args) -> CliResult {
    let host = ctx.host()?;
    let filter = args.filter();
    if args.json && args.tree {
        return print_json(&report::tree_report(&host, ctx.ids(), &filter));
    }
    if args.json {
        return print_json(&report::list_report_filtered(&host, ctx.ids(), &filter));
    }
    let text = if args.tree {
        render_tree(ctx, &host, &filter)
    } else {
        render_groups(ctx, &host, &filter)
    };
    if text.is_empty() && !filter.is_empty() {
        eprintln!(
            "{}{} no function on {} matches the filters",
            ctx.err.yellow("note"),
            ctx.err.bold(":"),
            host.source
        );
    }
    super::emit(&text);
    Ok(ExitCode::SUCCESS)
}

/// One line for a function: address, class, name, ids, driver, reset, flags.
fn device_line(ctx: &Context, host: &Host, d: &Device) -> String {
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

fn render_groups(ctx: &Context, host: &Host, filter: &Filter) -> String {
    let s = &ctx.out;
    let mut out = String::new();
    let want = |d: &Device| filter.is_empty() || filter.matches(ctx.ids(), d);
    if host.groups.is_empty() {
        let _ = writeln!(
            out,
            "{}: {}",
            s.yellow("note"),
            report::hint(host)
                .unwrap_or_else(|| "IOMMU groups are not known for this host".to_string())
        );
        let _ = writeln!(out, "{}", s.bold("PCI functions (no IOMMU group)"));
        for d in host.devices.values().filter(|d| want(d)) {
            let _ = writeln!(out, "  {}", device_line(ctx, host, d));
        }
        return out;
    }
    for id in report::shown_groups(host, ctx.ids(), filter) {
        let members = &host.groups[&id];
        let v = report::group_verdict(host, id);
        let verdict = match v.verdict {
            Verdict::Ok => s.green(&v.text()),
            Verdict::Blocked => s.red(&v.text()),
            Verdict::Unverified => s.yellow(&v.text()),
            Verdict::Nothing => s.dim(&v.text()),
        };
        let _ = writeln!(
            out,
            "{}  can pass: {verdict}",
            s.bold(&format!("IOMMU group {id}"))
        );
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
        .filter(|d| want(d))
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
        .filter(|d| want(d))
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

fn render_tree(ctx: &Context, host: &Host, filter: &Filter) -> String {
    let mut out = String::new();
    fn walk(ctx: &Context, host: &Host, n: &TreeNode, depth: usize, out: &mut String) {
        let Some(d) = host.device(&n.device.address) else {
            return;
        };
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
        for c in &n.children {
            walk(ctx, host, c, depth + 1, out);
        }
    }
    for b in report::tree_report(host, ctx.ids(), filter).roots {
        let _ = writeln!(out, "{}", ctx.out.bold(&b.bus));
        for n in &b.devices {
            walk(ctx, host, n, 1, &mut out);
        }
    }
    out
}
