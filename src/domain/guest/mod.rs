//! A domain's guest side, as libvirt 9.0's QEMU driver sees it at define
//! time: PCI buses (controllers, with the implicit root bus and the slots the
//! machine type reserves), every guest `<address type='pci'>`, `<boot
//! order>`, `<os><boot dev>` and user aliases.
//!
//! `add` asks this module where new hostdevs may go and whether its options
//! fit ([`Topology::place`], [`Topology::check_boot_order`],
//! [`Topology::check_alias`]); `validate` reads the same facts for VP031–VP035.
//! The rules are libvirt's, each confirmed with `virsh -c qemu:///session
//! define` (tests/suites/50-oracle.sh):
//!
//! * Slots per controller model (`virDomainPCIAddressBusSetModel`,
//!   `src/conf/domain_addr.c`): pci-root, pcie-root, pci-bridge and
//!   pcie-to-pci-bridge take slots 1–31; dmi-to-pci-bridge and
//!   pci-expander-bus 0–31; pcie-root-port and pcie-switch-downstream-port
//!   only slot 0; pcie-switch-upstream-port and pcie-expander-bus take no
//!   endpoint device. Only PCI domain 0 exists ("Only PCI domain 0 is
//!   available").
//! * Bus 0 always exists: pcie-root on q35, pci-root on the other x86
//!   machines. A guest address on a bus without a controller makes libvirt
//!   add controllers of the machine's default model up to that index
//!   (q35: pcie-root-port, slot 0 only; pc: pci-bridge, slots 1–31) — an
//!   address that does not fit that model is refused ("slot must be <= 0",
//!   "slot must be >= 1").
//! * Reserved by the machine (`qemuDomainValidateDevicePCISlotsPIIX3`/`Q35`,
//!   `src/qemu/qemu_domain_address.c`): on pc, slot 0x01 of bus 0 (PIIX3 ISA
//!   bridge .0, IDE .1, USB .2, ACPI .3); on q35, slot 0x1f of bus 0 (ICH9
//!   LPC .0, SATA .2, SMBus .3). Using them: "Attempted double use of PCI
//!   Address". virt-pci treats the whole slot as taken.
//! * `0000:00:00.x` is libvirt's "no address" (`virPCIDeviceAddressIsEmpty`):
//!   libvirt picks one itself, so it is never written as a placement.
//! * Boot: `<boot order='N'>` at most once per N ("boot order 'N' used for
//!   more than one device"), and never together with `<os><boot dev>`
//!   ("per-device boot elements cannot be used together with os/boot
//!   elements"), `virDomainDefParseBootXML`/`virDomainDefValidate`.
//! * Aliases: libvirt keeps only user aliases (`ua-…`) in a persistent
//!   definition and refuses two equal ones ("non unique alias detected").

mod place;
mod read;

use crate::address::PciAddress;
use roxmltree::Node;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

/// The machine family, from `<os><type machine=…>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Machine {
    Q35,
    /// pc / pc-i440fx-* (libvirt's x86 default when no machine is named).
    I440fx,
    /// Another architecture, machine or hypervisor (not `type='kvm'` or
    /// `'qemu'`): no implicit buses or reservations assumed.
    Other,
}

/// One guest PCI bus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Bus {
    pub index: u8,
    /// The controller model (`pcie-root-port`), or `None` when not given.
    pub model: Option<String>,
    /// True for bus 0 when the domain does not list it (libvirt adds it).
    pub implicit: bool,
    /// The `<controller>` element, when there is one.
    pub range: Option<Range<usize>>,
}

/// The slots an endpoint device (a hostdev) may use on a bus of `model`.
pub(crate) fn slots_for_model(model: &str) -> Option<(u8, u8)> {
    match model {
        "pci-root" | "pcie-root" | "pci-bridge" | "pcie-to-pci-bridge" => Some((1, 31)),
        "dmi-to-pci-bridge" | "pci-expander-bus" => Some((0, 31)),
        "pcie-root-port" | "pcie-switch-downstream-port" => Some((0, 0)),
        _ => None,
    }
}

impl Bus {
    /// Slots a hostdev may use here (`None`: none).
    pub(crate) fn slots(&self) -> Option<(u8, u8)> {
        self.model.as_deref().and_then(slots_for_model)
    }

    fn describe(&self) -> String {
        let m = self.model.as_deref().unwrap_or("no model");
        match self.slots() {
            Some((a, b)) if a == b => format!("0x{:02x} ({m}, slot 0x{a:02x})", self.index),
            Some((a, b)) => format!("0x{:02x} ({m}, slots 0x{a:02x}-0x{b:02x})", self.index),
            None => format!("0x{:02x} ({m}, takes no hostdev)", self.index),
        }
    }
}

/// Who holds a guest address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Occupant {
    pub address: PciAddress,
    /// `<controller type='pci'>`, or the machine's built-in device.
    pub what: String,
    /// The `<address>` element (`None` for the machine's own devices).
    pub range: Option<Range<usize>>,
    /// False for a `<controller type='pci'>` (it plugs into its bus with
    /// rules of its own); true for every other device.
    pub endpoint: bool,
}

/// A `<boot>` or `<alias>` element and the device that holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Held {
    pub value: String,
    /// The device element, e.g. `<disk type='file'>`.
    pub owner: String,
    pub range: Range<usize>,
}

/// Everything about a domain's guest side that `add` and `validate` need.
#[derive(Clone, Debug)]
pub(crate) struct Topology {
    pub machine: Machine,
    pub buses: BTreeMap<u8, Bus>,
    /// Explicit guest addresses (and the machine's reserved ones).
    pub used: Vec<Occupant>,
    /// Guest addresses libvirt cannot read (left to `validate`'s VP020/21).
    pub unreadable: usize,
    /// Per-device `<boot order='N'>`.
    pub boot_orders: Vec<Held>,
    /// `<os><boot dev='…'>`.
    pub os_boot: Vec<Held>,
    /// `<alias name='ua-…'>` (other aliases libvirt drops).
    pub aliases: Vec<Held>,
    /// pc only: the first IDE controller and the PIIX3 USB controller
    /// (index 0, no model or piix3-uhci) live at 00:01.1 and 00:01.2.
    pub piix3_ide: bool,
    pub piix3_usb: bool,
}

/// A start tag in short: `<disk type='file'>`.
pub(crate) fn describe(n: Node<'_, '_>) -> String {
    let name = n.tag_name().name();
    match (n.attribute("type"), n.attribute("index")) {
        (Some(t), Some(i)) => format!("<{name} type='{t}' index='{i}'>"),
        (Some(t), None) => format!("<{name} type='{t}'>"),
        _ => format!("<{name}>"),
    }
}

impl Machine {
    /// The controller model libvirt adds for a guest bus a device names
    /// but the domain lacks (q35: pcie-root-port; pc: pci-bridge).
    pub(crate) fn default_bus_model(self) -> Option<&'static str> {
        match self {
            Machine::Q35 => Some("pcie-root-port"),
            Machine::I440fx => Some("pci-bridge"),
            Machine::Other => None,
        }
    }
}

impl Topology {
    /// Guest functions the machine itself uses, whatever the domain
    /// lists (`qemuDomainValidateDevicePCISlotsPIIX3`/`Q35`): PIIX3 ISA
    /// 00:01.0 and ACPI 00:01.3 on pc, plus IDE 00:01.1 and USB 00:01.2
    /// when the domain has those controllers; ICH9 LPC 00:1f.0 and SMBus
    /// 00:1f.3 on q35 (libvirt: "Attempted double use of PCI Address").
    pub(crate) fn built_in(&self, a: PciAddress) -> Option<&'static str> {
        match (self.machine, a.domain, a.bus, a.slot, a.function) {
            (Machine::I440fx, 0, 0, 1, 0) => Some("the machine's PIIX3 ISA bridge"),
            (Machine::I440fx, 0, 0, 1, 1) if self.piix3_ide => {
                Some("the first IDE controller's place (PIIX3 IDE)")
            }
            (Machine::I440fx, 0, 0, 1, 2) if self.piix3_usb => {
                Some("the first USB controller's place (PIIX3 UHCI)")
            }
            (Machine::I440fx, 0, 0, 1, 3) => Some("the machine's PIIX3 ACPI function"),
            (Machine::Q35, 0, 0, 0x1f, 0) => Some("the machine's ICH9 LPC bridge"),
            (Machine::Q35, 0, 0, 0x1f, 3) => Some("the machine's ICH9 SMBus controller"),
            _ => None,
        }
    }
}

/// A boot order as libvirt reads it (`strtoul` base 10: leading space and
/// `+` allowed, `01` is 1).
pub(crate) fn boot_order_value(v: &str) -> Option<u64> {
    let t = v.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let t = t.strip_prefix('+').unwrap_or(t);
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

/// 1-based line of byte offset `at`.
pub(crate) fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// A guest-side option that does not fit the domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestError {
    pub message: String,
    pub help: String,
}

impl GuestError {
    fn new(message: String, help: String) -> Self {
        GuestError { message, help }
    }
}

impl fmt::Display for GuestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for GuestError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn topo(x: &str) -> Topology {
        Topology::read(&crate::domain::parse(x).unwrap())
    }

    const Q35: &str = "<domain type='kvm'><os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os><devices>\
<controller type='pci' index='0' model='pcie-root'/>\
<controller type='pci' index='1' model='pcie-root-port'><address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0' multifunction='on'/></controller>\
<controller type='pci' index='2' model='pcie-root-port'><address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x1'/></controller>\
<disk type='file'><boot order='1'/><alias name='ua-disk'/><address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></disk>\
</devices></domain>";

    #[test]
    fn reads_buses_addresses_boot_and_aliases() {
        let t = topo(Q35);
        assert_eq!(t.machine, Machine::Q35);
        assert_eq!(t.buses.len(), 3);
        assert!(t
            .used
            .iter()
            .any(|o| o.address == PciAddress::new(0, 1, 0, 0)));
        assert!(t.slot_user(0, 0x1f).is_some(), "ICH9 reserved");
        assert_eq!(t.boot_orders.len(), 1);
        assert_eq!(t.aliases[0].value, "ua-disk");
        // Bus 0 implicit when not listed; pc reserves slot 1.
        let t =
            topo("<domain type='kvm'><os><type machine='pc'>hvm</type></os><devices/></domain>");
        assert!(t.buses[&0].implicit);
        assert_eq!(t.buses[&0].model.as_deref(), Some("pci-root"));
        assert!(t.slot_user(0, 1).is_some());
    }

    #[test]
    fn places_on_free_slots_and_refuses_what_libvirt_refuses() {
        let t = topo(Q35);
        let a = [
            PciAddress::new(0, 0x2b, 0, 0),
            PciAddress::new(0, 0x2b, 0, 1),
        ];
        // Taken: bus 1 slot 0 (the disk).
        let e = t
            .place(&a, PciAddress::new(0, 1, 0, 0), true, Q35)
            .unwrap_err();
        assert!(
            e.message
                .contains("is taken: <disk type='file'> uses 0000:01:00.0 (line 1)"),
            "{e}"
        );
        assert!(
            e.help.contains("--guest-address 0000:00:01.0"),
            "{}",
            e.help
        );
        // Free root port: both functions on its slot 0.
        let p = t.place(&a, PciAddress::new(0, 2, 0, 0), true, Q35).unwrap();
        assert_eq!(
            p,
            vec![
                (PciAddress::new(0, 2, 0, 0), true),
                (PciAddress::new(0, 2, 0, 1), false)
            ]
        );
        // Without multifunction the second function needs another slot:
        // bus 2 has only slot 0, so none is left after it.
        assert!(t
            .place(&a, PciAddress::new(0, 2, 0, 0), false, Q35)
            .is_err());
        // On bus 0 the next free slot is taken (slot 2 is the root ports').
        let p = t
            .place(&a, PciAddress::new(0, 0, 1, 0), false, Q35)
            .unwrap();
        assert_eq!(p[1].0, PciAddress::new(0, 0, 3, 0));
        // Missing bus, slot beyond a root port, domain 1, 00:00.0, ICH9.
        for bad in [
            PciAddress::new(0, 6, 0, 0),
            PciAddress::new(0, 2, 1, 0),
            PciAddress::new(1, 0, 3, 0),
            PciAddress::new(0, 0, 0, 0),
            PciAddress::new(0, 0, 0x1f, 4),
        ] {
            assert!(t.place(&a[..1], bad, false, Q35).is_err(), "{bad}");
        }
        let e = t
            .place(&a[..1], PciAddress::new(0, 6, 0, 0), false, Q35)
            .unwrap_err();
        assert!(
            e.message.contains("0x01 (pcie-root-port, slot 0x00)"),
            "{e}"
        );
    }

    #[test]
    fn boot_orders_and_aliases() {
        let t = topo(Q35);
        let e = t.check_boot_order(1, Q35).unwrap_err();
        assert!(
            e.message
                .contains("<disk type='file'> already has <boot order='1'/>"),
            "{e}"
        );
        assert!(e.help.contains("--boot-order 2"));
        t.check_boot_order(2, Q35).unwrap();
        let x = "<domain><os><type>hvm</type>\n<boot dev='hd'/></os><devices/></domain>";
        let e = topo(x).check_boot_order(2, x).unwrap_err();
        assert!(e.message.contains("<os><boot dev='hd'/> (line 2)"), "{e}");
        assert!(t
            .check_alias("ua-disk", Q35)
            .unwrap_err()
            .help
            .contains("ua-disk2"));
        t.check_alias("ua-gpu", Q35).unwrap();
    }
}
