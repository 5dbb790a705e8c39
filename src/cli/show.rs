//! `virt-pci show DEVICE`: one device, its group, and the plan for it.

use super::{device_name, print_json, CliResult, Context, Styles};
use clap::Args as ClapArgs;
use serde::Serialize;
use std::fmt::Write as _;
use std::process::ExitCode;
use virt_pci::host::{Device, Host};
use virt_pci::plan::{Plan, Role, Verdict};
use virt_pci::report::{self, DeviceView};
use virt_pci::PciAddress;

#[derive(ClapArgs, Debug)]
pub(super) struct Args {
    /// The device: 0000:03:00.0, 03:00.0, pci_0000_03_00_0, 03:00 (all functions), 10de:1f82, ...
    #[arg(required = true, value_name = "DEVICE")]
    devices: Vec<String>,
    /// Plan for the named functions only (qvm-pci's no-strict-reset), not the whole group.
    #[arg(long)]
    no_strict_group: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct ShowReport {
    devices: Vec<DeviceView>,
    plan: Plan,
}

pub(super) fn run(ctx: &Context, args: Args) -> CliResult {
    let opts = virt_pci::plan::PlanOptions {
        strict_group: !args.no_strict_group,
        for_domain: None,
    };
    let (host, addrs, p) = super::host_and_plan(ctx, &args.devices, opts)?;
    if args.json {
        let devices = addrs
            .iter()
            .filter_map(|a| host.device(a))
            .map(|d| report::device_view(&host, ctx.ids(), d))
            .collect();
        let code = blocked_code(p.needs_force());
        print_json(&ShowReport { devices, plan: p })?;
        return Ok(code);
    }
    let s = &ctx.out;
    let mut out = String::new();
    for a in &addrs {
        let Some(d) = host.device(a) else { continue };
        let _ = writeln!(out, "{}  {}", s.bold(&a.to_string()), device_name(ctx, d));
        device_facts(&mut out, ctx, &host, a, d);
        device_relations(&mut out, s, &host, a, d);
        out.push('\n');
    }
    out.push_str(&render_plan(&host, &p, s));
    super::emit(&out);
    Ok(blocked_code(p.needs_force()))
}

/// One `  key:            value` line; values come from the host source,
/// so they are escaped for printing.
fn kv(out: &mut String, k: &str, v: String) {
    let _ = writeln!(
        out,
        "  {:<16} {}",
        format!("{k}:"),
        virt_pci::text::escape(&v)
    );
}

/// What the function is: names, ids, driver, reset, group.
fn device_facts(out: &mut String, ctx: &Context, host: &Host, a: &PciAddress, d: &Device) {
    kv(out, "node device", a.node_name());
    kv(
        out,
        "class",
        format!("{} ({})", d.class, ctx.ids().class_name(d.class16())),
    );
    kv(out, "ids", format!("{}:{}", d.vendor_id, d.device_id));
    if let (Some(sv), Some(sd)) = (&d.subsystem_vendor_id, &d.subsystem_device_id) {
        kv(out, "subsystem", format!("{sv}:{sd}"));
    }
    if let Some(r) = &d.revision {
        kv(out, "revision", r.clone());
    }
    kv(out, "kind", format!("{:?}", d.kind()).to_lowercase());
    kv(
        out,
        "driver",
        d.driver.clone().unwrap_or_else(|| "none".into()),
    );
    if let Some(o) = &d.driver_override {
        kv(out, "driver_override", o.clone());
    }
    // The same words as `check`: one description of a reset.
    if let Some(r) = virt_pci::actions::check::reset_info(host, a) {
        kv(out, "reset", r.summary);
    }
    kv(
        out,
        "IOMMU group",
        d.iommu_group
            .map(|g| g.to_string())
            .unwrap_or_else(|| "none".into()),
    );
}

/// Where it sits and who holds it: parents, sibling functions, SR-IOV,
/// NUMA, host-critical roles (and facts not known), domains using it.
fn device_relations(out: &mut String, s: &Styles, host: &Host, a: &PciAddress, d: &Device) {
    if !d.parents.is_empty() {
        let chain: Vec<String> = d.parents.iter().map(|p| p.to_string()).collect();
        kv(out, "behind", chain.join(" -> "));
    }
    let sib = host.siblings(a);
    if sib.len() > 1 {
        let v: Vec<String> = sib
            .iter()
            .filter(|x| *x != a)
            .map(|x| x.to_string())
            .collect();
        kv(out, "other functions", v.join(", "));
    }
    if let Some(pf) = d.physfn {
        kv(out, "SR-IOV PF", pf.to_string());
    }
    if !d.virtfns.is_empty() {
        kv(out, "SR-IOV VFs", format!("{}", d.virtfns.len()));
    }
    if let Some(n) = d.numa_node {
        kv(out, "NUMA node", n.to_string());
    }
    for c in &d.critical {
        // Where the fact comes from, unless measured (the normal case).
        let how = c
            .fact()
            .map(|f| host.fact(f))
            .filter(|p| *p != virt_pci::host::Provenance::Measured)
            .map(|p| format!(" ({})", p.as_str()))
            .unwrap_or_default();
        kv(out, "host-critical", s.red(&format!("{c}{how}")));
    }
    for f in host.unknown_facts(d) {
        kv(
            out,
            "not known",
            s.yellow(&format!(
                "whether it is {} ({})",
                f.describe(),
                host.fact(f).as_str()
            )),
        );
    }
    for u in host.used_by(a) {
        kv(
            out,
            "used by",
            format!("{}{}", u.domain, if u.running { " (running)" } else { "" }),
        );
    }
}

/// The exit code of a command whose answer is a plan (`show`, `usb`,
/// `check`): 0 when it can go, 1 when it needs `--force` (blocked or
/// unverified) — exactly when `snippet`, `add` and the actions refuse it
/// with 1. Usage and I/O errors are 2.
pub(super) fn blocked_code(blocked: bool) -> ExitCode {
    if blocked {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// The plan in words: what travels, what stays, what blocks, what warns.
pub(super) fn render_plan(_host: &Host, p: &Plan, s: &Styles) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", s.bold("Passing through"));
    for g in &p.groups {
        match g.group {
            Some(id) => {
                let _ = writeln!(out, "  IOMMU group {id}:");
            }
            None => {
                let _ = writeln!(out, "  no IOMMU group:");
            }
        }
        for m in &g.members {
            let tag = match m.role {
                Role::Travels => s.green("travels    "),
                Role::Stays => s.dim("stays      "),
                Role::LeftBehind => s.yellow("left behind"),
                Role::Blocks => s.red("blocks     "),
            };
            let _ = writeln!(out, "    {tag} {}  {}", m.member, s.dim(&m.reason));
        }
    }
    let findings = [
        (s.red("blocker"), &p.blockers),
        (s.yellow("unverified"), &p.unverified),
        (s.yellow("warning"), &p.warnings),
    ];
    // Each help once: several findings often share one fix.
    let mut helped: Vec<&str> = Vec::new();
    for (tag, list) in findings {
        for f in list {
            let _ = writeln!(
                out,
                "{tag}{} {}",
                s.bold(&format!("[{}]:", f.code)),
                f.message
            );
            if let Some(h) = &f.help {
                if !helped.contains(&h.as_str()) {
                    helped.push(h);
                    let _ = writeln!(out, "  {}: {h}", s.cyan("help"));
                }
            }
        }
    }
    let list: Vec<String> = p.travels.iter().map(|a| a.to_string()).collect();
    let _ = match p.verdict() {
        Verdict::Blocked => writeln!(
            out,
            "verdict: {} (commands that act need --force)",
            s.red("blocked")
        ),
        Verdict::Unverified => writeln!(
            out,
            "verdict: {} — {} would travel together: {}; host facts it depends on are not known (commands that act need --force)",
            s.yellow("unverified"),
            p.travels.len(),
            list.join(" ")
        ),
        Verdict::Nothing => writeln!(out, "verdict: nothing to pass through"),
        Verdict::Ok => writeln!(
            out,
            "verdict: {} — {} travel together: {}",
            s.green("ok"),
            p.travels.len(),
            list.join(" ")
        ),
    };
    out
}
