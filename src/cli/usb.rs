//! `virt-pci usb BUS|VENDOR:PRODUCT`: which PCI controller to pass for a USB
//! device, and what else goes with it (everything on that controller).

use super::{device_name, print_json, CliError, CliResult, Context};
use clap::Args as ClapArgs;
use serde::Serialize;
use std::fmt::Write as _;
use virt_pci::address::PciAddress;
use virt_pci::host::{Host, UsbBus};
use virt_pci::invocation::HostSource;
use virt_pci::plan::{self, Plan, PlanOptions};

#[derive(ClapArgs, Debug)]
pub(super) struct Args {
    /// A USB bus number (`3`, `003`) or a USB device's vendor:product (`046d:c52b`).
    #[arg(value_name = "BUS|VENDOR:PRODUCT")]
    what: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct UsbReport {
    controller: PciAddress,
    buses: Vec<UsbBus>,
    plan: Plan,
}

/// The buses `what` names.
/// `none_here`: what to say when the source holds no USB bus at all.
fn find_buses<'h>(
    host: &'h Host,
    what: &str,
    none_here: &str,
) -> Result<Vec<&'h UsbBus>, CliError> {
    let w = what.trim();
    let w = w.strip_prefix("bus").map(str::trim).unwrap_or(w);
    if !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()) {
        let n: u32 = w
            .parse()
            .map_err(|_| CliError::usage(format!("bad USB bus number `{what}`")))?;
        return match host.usb_bus(n) {
            Some(b) => Ok(vec![b]),
            None => {
                let have: Vec<String> = host.usb.iter().map(|b| b.bus.to_string()).collect();
                Err(
                    CliError::new(format!("no USB bus {n} on {}", host.source)).help(
                        if have.is_empty() {
                            none_here.to_string()
                        } else {
                            format!("USB buses here: {}", have.join(", "))
                        },
                    ),
                )
            }
        };
    }
    let (v, p) = w.split_once(':').ok_or_else(|| {
        CliError::usage(format!(
            "`{what}` is neither a USB bus number nor a vendor:product pair"
        ))
        .help("examples: `virt-pci usb 3`, `virt-pci usb 046d:c52b`")
    })?;
    let norm = |s: &str| s.trim_start_matches("0x").to_ascii_lowercase();
    let (v, p) = (norm(v), norm(p));
    if v.len() != 4 || p.len() != 4 || !v.bytes().chain(p.bytes()).all(|b| b.is_ascii_hexdigit()) {
        return Err(CliError::usage(format!(
            "`{what}`: a USB vendor:product is two 4-digit hex ids, e.g. 046d:c52b"
        )));
    }
    let buses: Vec<&UsbBus> = host
        .usb
        .iter()
        .filter(|b| {
            b.devices
                .iter()
                .any(|d| d.vendor_id == v && d.product_id == p)
        })
        .collect();
    if buses.is_empty() {
        return Err(
            CliError::new(format!("no USB device {v}:{p} on {}", host.source)).help(
                if host.usb.is_empty() {
                    none_here
                } else {
                    "`lsusb` lists the USB devices that are plugged in"
                },
            ),
        );
    }
    Ok(buses)
}

pub(super) fn run(ctx: &Context, args: Args) -> CliResult {
    let host = ctx.host()?;
    let none_here = match &ctx.inv.host {
        HostSource::Snapshot(p) => format!(
            "the snapshot {} holds no USB data (it was made from a listing without `lsusb` lines, or on a machine without USB); make one on the host with `virt-pci snapshot -o FILE`",
            p.display()
        ),
        HostSource::Libvirt(u) => format!(
            "{u} gives no USB bus data (libvirt's node devices do not say which PCI controller a bus hangs on); run `virt-pci usb` on that host"
        ),
        _ => "this host has no USB buses (no USB core, or no USB controllers)".to_string(),
    };
    let buses = find_buses(&host, &args.what, &none_here)?;
    let mut controllers: Vec<PciAddress> = buses.iter().filter_map(|b| b.controller).collect();
    controllers.sort();
    controllers.dedup();
    if controllers.is_empty() {
        return Err(CliError::new(format!(
            "USB bus {} is not behind a PCI controller (a platform or virtual controller); it cannot be passed as a PCI device",
            buses.first().map(|b| b.bus).unwrap_or(0)
        ))
        .help("pass the USB device itself with a <hostdev type='usb'> instead"));
    }
    let s = &ctx.out;
    let mut out = String::new();
    let mut reports = Vec::new();
    for c in controllers {
        let on: Vec<UsbBus> = host
            .usb
            .iter()
            .filter(|b| b.controller == Some(c))
            .cloned()
            .collect();
        let p = plan::plan(&host, &[c], PlanOptions::default());
        if !args.json {
            let name = host
                .device(&c)
                .map(|d| device_name(ctx, d))
                .unwrap_or_default();
            let _ = writeln!(out, "{}  {}", s.bold(&c.to_string()), name);
            for b in &on {
                let _ = writeln!(out, "  USB bus {:03}", b.bus);
                if b.devices.is_empty() {
                    let _ = writeln!(out, "    (nothing but the root hub)");
                }
                for d in &b.devices {
                    let _ = writeln!(
                        out,
                        "    {:03}:{:03} {}:{} {}",
                        d.bus,
                        d.device,
                        d.vendor_id,
                        d.product_id,
                        d.name.clone().unwrap_or_default()
                    );
                }
            }
            let _ = writeln!(
                out,
                "  everything on these buses goes to the guest with the controller"
            );
            out.push('\n');
            out.push_str(&super::show::render_plan(&host, &p, s));
        }
        reports.push(UsbReport {
            controller: c,
            buses: on,
            plan: p,
        });
    }
    let code = super::show::blocked_code(reports.iter().any(|r| r.plan.needs_force()));
    if args.json {
        print_json(&reports)?;
    } else {
        super::emit(&out);
    }
    Ok(code)
}
