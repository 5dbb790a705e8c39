//! Inference rules: what a listing does not print, and how it is filled in.
//!
//! Unknown facts stay `None` (reset methods, NUMA node, boot VGA). Facts the
//! model needs to build a faithful sysfs tree are inferred, each by one
//! named rule below (parent bridges in `buses.rs`). Host-critical facts are
//! never inferred: the paste shows them or they stay unknown.
//!
//! Kept apart from the line recognisers so that each rule is read, tested
//! and changed in one place, whichever format the facts came from.

use super::builder::Builder;
use crate::address::PciAddress;
use crate::host::{Critical, Device, Host, IommuState, Provenance};

/// Devices that published pastes name without ids (plain `lspci`):
/// `(name as lspci prints it, vendor, device)`.
pub(crate) const KNOWN_NAMES: &[(&str, u16, u16)] = &[
    (
        "Broadcom Inc. and subsidiaries BCM2712 PCIe Bridge",
        0x14e4,
        0x2712,
    ),
    (
        "Intel Corporation I350 Gigabit Network Connection",
        0x8086,
        0x1521,
    ),
    ("Raspberry Pi Ltd RP1 PCIe 2.0 South Bridge", 0x1de4, 0x0001),
];

/// **Class prog-if**: listings print the 16-bit class; the low byte takes
/// the usual value: USB `0c03` → `30` (xHCI; `20` when the name says EHCI,
/// `10` OHCI, `00` UHCI), NVMe `0108` → `02`, SATA `0106` → `01` (AHCI),
/// VGA `0300` → `00`, everything else `00`.
pub(crate) fn default_prog_if(class16: u16, name: &str) -> u8 {
    match class16 {
        0x0c03 => {
            if name.contains("EHCI") {
                0x20
            } else if name.contains("OHCI") {
                0x10
            } else if name.contains("UHCI") {
                0x00
            } else {
                0x30
            }
        }
        0x0108 => 0x02,
        0x0106 => 0x01,
        _ => 0x00,
    }
}

/// **Header type** from the class: PCI bridge `0604`/`0609` → 1, CardBus
/// `0607` → 2, else 0.
pub(crate) fn header_from_class(class16: u16) -> u8 {
    match class16 {
        0x0604 | 0x0609 => 1,
        0x0607 => 2,
        _ => 0,
    }
}

/// Everything read becomes a [`Host`]: the rules below, in order, then the
/// parent bridges, the host-critical facts the paste shows, and the names
/// check (names become paths in fake trees).
pub(crate) fn finish(mut b: Builder, source: &str) -> Result<Host, (usize, String)> {
    b.flush_vmm();
    ids_from_names(&mut b);
    fill_incomplete(&mut b)?;
    for d in b.devices.values_mut() {
        if d.header_type.is_none() {
            d.header_type = Some(header_from_class(d.class16()));
        }
    }
    for v in b.groups.values_mut() {
        v.sort();
    }
    let mut host = Host {
        source: source.to_string(),
        provenance: b.provenance.clone(),
        iommu: iommu_state(&b),
        devices: std::mem::take(&mut b.devices),
        groups: std::mem::take(&mut b.groups),
        usb: std::mem::take(&mut b.usb).into_values().collect(),
        domains: Vec::new(),
        facts: Default::default(),
        invocation: None,
    };
    host.link_groups();
    super::buses::infer_parents(&mut host, &b.known_parents);
    mark_critical(&b, &mut host);
    host.mark_intrinsic_critical();
    // Names become paths in fake trees: a driver `../../etc` is an error.
    crate::host::fake::check_names(&host).map_err(|e| (0, e))?;
    Ok(host)
}

/// **Ids from a name** (plain `lspci`): the ids another line of the same
/// paste gives for the same name, else a small table of the devices seen
/// in published pastes without ids ([`KNOWN_NAMES`]).
fn ids_from_names(b: &mut Builder) {
    for (a, name) in std::mem::take(&mut b.unnamed) {
        let ids = b.names.get(&name).copied().or_else(|| {
            KNOWN_NAMES
                .iter()
                .find(|(n, _, _)| *n == name)
                .map(|(_, v, d)| (*v, *d))
        });
        if let (Some((v, d)), Some(dev)) = (ids, b.devices.get_mut(&a)) {
            if dev.vendor_id.is_empty() {
                dev.vendor_id = format!("0x{v:04x}");
                dev.device_id = format!("0x{d:04x}");
            }
        }
    }
}

/// **Incomplete devices** (a sysfs link or a dmesg line to a device the
/// paste does not describe) read as absent hardware does: ids `0xffff`,
/// class `0xff0000`. A paste with nothing but those and no groups is not
/// a listing: an error.
fn fill_incomplete(b: &mut Builder) -> Result<(), (usize, String)> {
    let incomplete: Vec<PciAddress> = b
        .devices
        .values()
        .filter(|d| d.vendor_id.is_empty() || d.class.is_empty())
        .map(|d| d.address)
        .collect();
    if b.devices.len() == incomplete.len() && b.groups.is_empty() {
        return Err((
            0,
            "no PCI devices or IOMMU groups found: this does not look like an IOMMU group listing or lspci output".into(),
        ));
    }
    for a in incomplete {
        if let Some(d) = b.devices.get_mut(&a) {
            if d.vendor_id.is_empty() {
                d.vendor_id = "0xffff".into();
                d.device_id = "0xffff".into();
            }
            if d.class.is_empty() {
                d.class = "0xff0000".into();
            }
        }
    }
    Ok(())
}

/// **IOMMU state**: groups present → enabled; a sysfs dump showing
/// `iommu_group: absent` and no groups → disabled; otherwise unknown.
fn iommu_state(b: &Builder) -> IommuState {
    if !b.groups.is_empty() {
        IommuState::Enabled
    } else if b.no_group_evidence {
        IommuState::Disabled
    } else {
        IommuState::Unknown
    }
}

/// **Root-filesystem controller, default-route NIC, boot VGA, drivers**:
/// never inferred. The paste's own `findmnt`/block links, `ip route`/net
/// links, `boot_vga` attributes and driver lines make them *measured* (the
/// host printed them); otherwise they are *unknown* ([`Provenance`]), and a
/// plan touching a function that could be one of them is `unverified`.
/// Whoever knows the host states them: `virt-pci snapshot --from-listing
/// FILE --root-disk ADDR --default-nic ADDR --boot-vga ADDR` (`none` for
/// "no PCI function").
fn mark_critical(b: &Builder, host: &mut Host) {
    if let Some((a, block)) = root_disk(b) {
        if let Some(d) = host.devices.get_mut(&a) {
            d.critical
                .push(Critical::RootFilesystem { block: Some(block) });
            host.facts.root_filesystem = Provenance::Measured;
        }
    }
    if let Some((a, interface)) = default_nic(b) {
        if let Some(d) = host.devices.get_mut(&a) {
            d.critical.push(Critical::DefaultRoute {
                interface: Some(interface),
            });
            host.facts.default_route = Provenance::Measured;
        }
    }
    if b.saw_drivers {
        host.facts.drivers = Provenance::Measured;
    }
    // A raw sysfs dump shows `boot_vga` for VGA functions: measured when
    // it does for every one of them (and for at least one).
    let vga: Vec<&Device> = host
        .devices
        .values()
        .filter(|d| d.class16() == 0x0300)
        .collect();
    if !vga.is_empty() && vga.iter().all(|d| d.boot_vga.is_some()) {
        host.facts.boot_vga = Provenance::Measured;
    }
}

/// The root filesystem's controller: findmnt's `/dev/NAME` whose block link
/// (the partition's or its whole disk's) the paste shows.
fn root_disk(b: &Builder) -> Option<(PciAddress, String)> {
    let n = b.root_source.as_deref()?.strip_prefix("/dev/")?;
    let disk = disk_of(n);
    b.block_links
        .iter()
        .find(|(blk, _)| blk == n || blk == &disk)
        .map(|(_, a)| (*a, n.to_string()))
}

/// The default route's NIC: `ip route`'s `dev IF` whose net link the paste
/// shows.
fn default_nic(b: &Builder) -> Option<(PciAddress, String)> {
    let i = b.default_iface.as_deref()?;
    b.net_links
        .iter()
        .find(|(n, _)| n == i)
        .map(|(_, a)| (*a, i.to_string()))
}

/// The whole disk of a block device name (`nvme0n1p2` → `nvme0n1`, `sda2` → `sda`).
pub(crate) fn disk_of(name: &str) -> String {
    if name.starts_with("nvme") || name.starts_with("mmcblk") {
        if let Some(i) = name.rfind('p') {
            if i > 0 && name[i + 1..].bytes().all(|c| c.is_ascii_digit()) && i + 1 < name.len() {
                return name[..i].to_string();
            }
        }
        return name.to_string();
    }
    name.trim_end_matches(|c: char| c.is_ascii_digit())
        .to_string()
}

/// systemd's predictable interface name for a PCI NIC.
pub(crate) fn predictable_name(d: &Device) -> String {
    let prefix = if d.class16() == 0x0280 { "wl" } else { "en" };
    let a = d.address;
    let mut s = String::from(prefix);
    if a.domain != 0 {
        s.push_str(&format!("P{}", a.domain));
    }
    s.push_str(&format!("p{}s{}", a.bus, a.slot));
    if a.function > 0 {
        s.push_str(&format!("f{}", a.function));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(disk_of("nvme0n1p2"), "nvme0n1");
        assert_eq!(disk_of("sda2"), "sda");
        assert_eq!(disk_of("vda"), "vda");
        let d = Device::new(PciAddress::new(0, 0x2a, 0, 1), 0x10ec, 0x8125, 0x020000);
        assert_eq!(predictable_name(&d), "enp42s0f1");
    }
}
