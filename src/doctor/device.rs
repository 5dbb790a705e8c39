//! The per-device checks (`doctor DEVICE`): the plan's verdict for the
//! device, then what the plan does not judge but decides whether passing
//! it through goes well — reset, the host driver, boot GPU, option ROM,
//! PCIe link. They read the [`Host`] model (any source) and, with a root,
//! the device's sysfs attributes.
//!
//! WHY the verdict comes from [`crate::plan`]: `doctor` must never say
//! PASS where `show` (and so `detach`, `add`) says blocked; the warnings
//! other checks here report (no reset, host driver) are not repeated.

use super::known;
use super::read::{check, dev_check, dev_unknown, Read, Reader};
use super::{Check, Evidence, Facts, Status};
use crate::address::PciAddress;
use crate::host::{Device, Host};
use crate::plan::{self, Code, PlanOptions};
use std::fs;
use std::io;

/// Where an attribute of `d` is (`/sys/DEVICE/NAME`), or the host source
/// when it has no sysfs path (a snapshot or listing).
fn attribute_path(host: &Host, d: &Device, name: &str) -> String {
    d.sysfs_path
        .as_ref()
        .map(|s| format!("/sys/{s}/{name}"))
        .unwrap_or_else(|| host.source.clone())
}

/// The plan's verdict for the device, computed exactly as `show` computes
/// it ([`crate::plan::plan`], whole group): `blocked` is FAIL, `unverified`
/// (a fact the plan needs is not known) is UNKNOWN, `ok` is PASS — or WARN
/// when a plan warning is not one another check reports itself.
pub fn device_plan(host: &Host, a: &PciAddress, strict_group: bool) -> Check {
    const ID: &str = "device-plan";
    const T: &str = "Passthrough plan";
    const RULE: &str = "src/plan/ (the kernel's VFIO group viability rule)";
    // Warnings another doctor check reports with its own status.
    const OWN_CHECK: [Code; 2] = [Code::HostDriver, Code::NoReset];
    let p = plan::plan(
        host,
        std::slice::from_ref(a),
        PlanOptions {
            strict_group,
            ..PlanOptions::default()
        },
    );
    let travels: Vec<String> = p.travels.iter().map(|t| t.to_string()).collect();
    let mut ev = vec![Evidence {
        path: host
            .device(a)
            .and_then(|d| d.sysfs_path.clone())
            .map(|s| format!("/sys/{s}/iommu_group"))
            .unwrap_or_else(|| host.source.clone()),
        content: host
            .device(a)
            .and_then(|d| d.iommu_group)
            .map(|g| format!("group {g}"))
            .unwrap_or_else(|| "no group".into()),
    }];
    for f in p.blockers.iter().chain(&p.unverified).chain(&p.warnings) {
        ev.push(Evidence {
            path: format!("plan [{}]", f.code),
            content: f.message.clone(),
        });
    }
    let (status, msg, fix) = if p.is_blocked() {
        let b = &p.blockers[0];
        (
            Status::Fail,
            format!("blocked: {}", b.message),
            b.help.clone(),
        )
    } else if let Some(u) = p.unverified.first() {
        // `unverified`: a fact the plan depends on is not known here.
        (
            Status::Unknown,
            format!("unverified: {}", u.message),
            u.help
                .clone()
                .or_else(|| Some(plan::HOW_TO_VERIFY.to_string())),
        )
    } else if travels.is_empty() {
        (Status::Unknown, "nothing to pass through".into(), None)
    } else if let Some(w) = p.warnings.iter().find(|w| !OWN_CHECK.contains(&w.code)) {
        (
            Status::Warn,
            format!("ok with warnings — travels together: {}", travels.join(" ")),
            w.help.clone(),
        )
    } else {
        (
            Status::Pass,
            format!("ok — travels together: {}", travels.join(" ")),
            None,
        )
    };
    dev_check(*a, check(ID, T, status, msg, ev, fix, RULE))
}

/// Reset methods (`reset_method`, Documentation/ABI/testing/sysfs-bus-pci;
/// the methods the kernel tries in drivers/pci/pci.c `pci_reset_fn_methods`)
/// and the table of devices known to lack a working reset ([`known`]).
pub fn device_reset(host: &Host, a: &PciAddress) -> Check {
    const ID: &str = "device-reset";
    const T: &str = "Reset";
    const RULE: &str = "drivers/pci/pci.c pci_reset_fn_methods; gnif/vendor-reset src/device-db.h";
    let Some(d) = host.device(a) else {
        return dev_unknown(a, ID, T, "not present", RULE);
    };
    let ev = vec![Evidence {
        path: attribute_path(host, d, "reset_method"),
        content: match &d.reset_methods {
            Some(m) if m.is_empty() => "(none)".into(),
            Some(m) => m.join(" "),
            None => "(not recorded)".into(),
        },
    }];
    if let Some(family) = known::bad_reset(d.vendor(), d.device()) {
        return dev_check(*a, check(ID, T, Status::Warn, format!("{family}: known to lack a working reset (the AMD \"reset bug\"): after one guest used it, the next start may fail or hang until the host reboots"), ev, Some(known::BAD_RESET_REMEDY.replace("BDF", &a.to_string())), RULE));
    }
    let c = match (d.can_reset(), &d.reset_methods) {
        (None, _) => check(ID, T, Status::Unknown, "the source does not say which reset methods it has", ev, None, RULE),
        (Some(false), _) => check(ID, T, Status::Warn, "no reset method (no FLR, PM or bus reset): state a guest leaves in it reaches the next guest or the host", ev, Some("prefer a device with FLR for passthrough; virt-pci release keeps it on vfio-pci after use".into()), RULE),
        (Some(true), Some(m)) if m.iter().any(|x| x == "flr" || x == "af_flr" || x == "device_specific") => check(ID, T, Status::Pass, format!("function-level reset available ({})", m.join(" ")), ev, None, RULE),
        (Some(true), Some(m)) if m.iter().all(|x| x == "bus") => check(ID, T, Status::Warn, "only a bus reset: it resets every function behind the same bridge, so they must all be assigned or idle", ev, Some("pass the whole slot/bus through, or accept that siblings are reset too".into()), RULE),
        (Some(true), _) => check(ID, T, Status::Pass, "a reset method is available", ev, None, RULE),
    };
    dev_check(*a, c)
}

/// The host driver now: one known to hang or refuse unbinding at VM start
/// ([`known::HANGS_ON_UNBIND`]) should be replaced by a boot-time binding.
pub fn device_host_driver(facts: Facts, host: &Host, a: &PciAddress, persisted: bool) -> Check {
    const ID: &str = "device-host-driver";
    const T: &str = "Host driver";
    const RULE: &str =
        "Arch wiki \"PCI passthrough via OVMF\" §Isolating the GPU; src/doctor/known.rs";
    let Some(d) = host.device(a) else {
        return dev_unknown(a, ID, T, "not present", RULE);
    };
    let ev = vec![Evidence {
        path: attribute_path(host, d, "driver"),
        content: d.driver.clone().unwrap_or_else(|| "(none)".into()),
    }];
    let c = match d.driver.as_deref() {
        Some(drv) if drv.starts_with("vfio") || drv == "pci-stub" => check(ID, T, Status::Pass, format!("on {drv}{}", if persisted { " (bound at boot by virt-pci)" } else { "" }), ev, None, RULE),
        Some(drv) => match known::hangs_on_unbind(drv) {
            Some(why) if !persisted => check(ID, T, Status::Warn, format!("bound to {drv}: {why}"), ev, Some(format!("bind it to vfio-pci at boot instead: `virt-pci detach --persist {a}`"))
, RULE),
            _ => check(ID, T, Status::Pass, format!("bound to {drv}; libvirt unbinds it at start (managed) or `virt-pci detach` does"), ev, None, RULE),
        },
        // A snapshot (a published listing above all) may not record drivers.
        None if matches!(facts, Facts::Snapshot) && !host.facts.drivers.is_known() => check(ID, T, Status::Unknown, "no driver recorded (unbound, or the source does not say)", ev, None, RULE),
        None => check(ID, T, Status::Pass, "no driver bound", ev, None, RULE),
    };
    dev_check(*a, c)
}

/// The boot GPU (`boot_vga` = 1, drivers/pci/pci-sysfs.c; only VGA-class
/// functions have the file): passing the only GPU takes the host's console
/// away, and needs what virt-pci does not do — stop the display manager,
/// unbind the virtual consoles and the EFI framebuffer, often a ROM file.
pub fn device_boot_vga(host: &Host, a: &PciAddress) -> Option<Check> {
    const RULE: &str = "drivers/pci/pci-sysfs.c: boot_vga";
    let d = host.device(a)?;
    let Some(v) = d.boot_vga.filter(|_| host.facts.boot_vga.is_known()) else {
        // Only VGA-class functions can be the boot GPU; for them "not
        // recorded" is unknown, not "no".
        return d.class.starts_with("0x0300").then(|| {
            dev_check(
                *a,
                check(
                    "device-boot-vga",
                    "Boot GPU",
                    Status::Unknown,
                    format!("{} does not say whether this is the boot GPU", host.source),
                    Vec::new(),
                    None,
                    RULE,
                ),
            )
        });
    };
    let ev = vec![Evidence {
        path: attribute_path(host, d, "boot_vga"),
        content: if v { "1".into() } else { "0".into() },
    }];
    Some(dev_check(
        *a,
        if v {
            check("device-boot-vga", "Boot GPU", Status::Warn, "this is the boot GPU (the host's console): passing it through is single-GPU passthrough, which needs more than virt-pci does — stopping the display manager, unbinding the virtual consoles and the EFI/simple framebuffer, often a clean ROM — and leaves the host without a display", ev, Some("use a second GPU for the host (or the integrated one: select it as primary in the firmware), or follow a single-GPU passthrough guide for the hook scripts".into()), RULE)
        } else {
            check(
                "device-boot-vga",
                "Boot GPU",
                Status::Pass,
                "not the boot GPU",
                ev,
                None,
                RULE,
            )
        },
    ))
}

/// The option ROM BAR (`rom`, drivers/pci/pci-sysfs.c; 0600, and reading
/// it needs `echo 1 > rom` first, which virt-pci does not do: read-only).
/// A GPU without a ROM BAR often needs a ROM file (`<rom file=.../>`) for
/// UEFI guests.
pub fn device_rom(facts: Facts, host: &Host, a: &PciAddress) -> Check {
    const ID: &str = "device-rom";
    const T: &str = "Option ROM";
    const RULE: &str = "drivers/pci/pci-sysfs.c: rom attribute (pci_create_rom)";
    let d = host.device(a);
    let (Facts::Root(root), Some(dir)) = (facts, d.and_then(|d| d.sysfs_path.clone())) else {
        return dev_unknown(a, ID, T, "the ROM BAR is not recorded here", RULE);
    };
    let r = Reader { root };
    let p = format!("/sys/{dir}/rom");
    let gpu = d.is_some_and(|d| d.class.starts_with("0x03"));
    let c = match fs::metadata(r.full(&p)) {
        Ok(m) => check(ID, T, Status::Pass, format!("has a ROM BAR of {} KiB (not read: that needs `echo 1 > rom`, a write)", m.len() / 1024), vec![Evidence { path: r.full(&p).display().to_string(), content: format!("(exists, {} bytes)", m.len()) }], None, RULE),
        Err(e) if e.kind() == io::ErrorKind::NotFound => check(ID, T, if gpu { Status::Warn } else { Status::Pass }, if gpu { "a GPU without a ROM BAR: a UEFI guest may show nothing until given a ROM file" } else { "no option ROM (not needed for this class)" }, vec![r.ev(&p, &Read::Missing)], gpu.then(|| "dump the ROM from a host where it is readable, or take the vendor's, and add <rom file='...'/> to the hostdev".to_string()), RULE),
        Err(e) => check(ID, T, Status::Unknown, format!("cannot stat the ROM BAR: {e}"), vec![r.ev(&p, &Read::Unreadable(e.to_string()))], None, RULE),
    };
    dev_check(*a, c)
}

/// PCIe link now vs capable (`current_link_speed`, `max_link_speed`,
/// `current_link_width`, `max_link_width`: Documentation/ABI/testing/
/// sysfs-bus-pci). A link running below what both ends can do is a slot,
/// riser or BIOS setting problem — or a GPU saving power while idle.
pub fn device_link(facts: Facts, host: &Host, a: &PciAddress) -> Check {
    const ID: &str = "device-link";
    const T: &str = "PCIe link";
    const RULE: &str =
        "Documentation/ABI/testing/sysfs-bus-pci: current_link_speed, max_link_speed, *_link_width";
    let d = host.device(a);
    let (Facts::Root(root), Some(dir)) = (facts, d.and_then(|d| d.sysfs_path.clone())) else {
        return dev_unknown(a, ID, T, "the link is not recorded here", RULE);
    };
    let r = Reader { root };
    let f = |n: &str| {
        let p = format!("/sys/{dir}/{n}");
        let v = r.read(&p);
        (
            r.ev(&p, &v),
            match v {
                Read::Text(t) => Some(t),
                _ => None,
            },
        )
    };
    let (e1, cs) = f("current_link_speed");
    let (e2, ms) = f("max_link_speed");
    let (e3, cw) = f("current_link_width");
    let (e4, mw) = f("max_link_width");
    let ev = vec![e1, e2, e3, e4];
    let c = match (cs, ms, cw, mw) {
        (Some(cs), Some(ms), Some(cw), Some(mw)) => {
            let gt = |s: &str| {
                s.split_whitespace()
                    .next()
                    .and_then(|x| x.parse::<f64>().ok())
            };
            let n = |s: &str| s.trim().parse::<u32>().ok();
            let slow = matches!((gt(&cs), gt(&ms)), (Some(c), Some(m)) if c < m);
            let narrow = matches!((n(&cw), n(&mw)), (Some(c), Some(m)) if c < m);
            let now = format!("{cs} x{cw}, capable of {ms} x{mw}");
            if slow || narrow {
                check(ID, T, Status::Warn, format!("running below its capability: {now}"), ev, Some("a GPU lowers its link speed when idle (check under load); otherwise check the slot's lanes, risers and the firmware's PCIe generation setting".into()), RULE)
            } else {
                check(ID, T, Status::Pass, now, ev, None, RULE)
            }
        }
        _ => check(
            ID,
            T,
            Status::Unknown,
            "no PCIe link attributes (conventional PCI, or not exposed)",
            ev,
            None,
            RULE,
        ),
    };
    dev_check(*a, c)
}
