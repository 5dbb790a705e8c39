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

use crate::address::PciAddress;
use crate::domain::{child, device_nodes, is_el, read_pci_address};
use roxmltree::{Document, Node};
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

/// The machine family, from `<os><type machine=…>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Machine {
    Q35,
    /// pc / pc-i440fx-* (libvirt's x86 default when no machine is named).
    I440fx,
    /// Another architecture, machine or hypervisor (not `type='kvm'` or
    /// `'qemu'`): no implicit buses or reservations assumed.
    Other,
}

/// One guest PCI bus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bus {
    pub index: u8,
    /// The controller model (`pcie-root-port`), or `None` when not given.
    pub model: Option<String>,
    /// True for bus 0 when the domain does not list it (libvirt adds it).
    pub implicit: bool,
    /// The `<controller>` element, when there is one.
    pub range: Option<Range<usize>>,
}

/// The slots an endpoint device (a hostdev) may use on a bus of `model`.
pub fn slots_for_model(model: &str) -> Option<(u8, u8)> {
    match model {
        "pci-root" | "pcie-root" | "pci-bridge" | "pcie-to-pci-bridge" => Some((1, 31)),
        "dmi-to-pci-bridge" | "pci-expander-bus" => Some((0, 31)),
        "pcie-root-port" | "pcie-switch-downstream-port" => Some((0, 0)),
        _ => None,
    }
}

impl Bus {
    /// Slots a hostdev may use here (`None`: none).
    pub fn slots(&self) -> Option<(u8, u8)> {
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
pub struct Occupant {
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
pub struct Held {
    pub value: String,
    /// The device element, e.g. `<disk type='file'>`.
    pub owner: String,
    pub range: Range<usize>,
}

/// Everything about a domain's guest side that `add` and `validate` need.
#[derive(Clone, Debug)]
pub struct Topology {
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
pub fn describe(n: Node<'_, '_>) -> String {
    let name = n.tag_name().name();
    match (n.attribute("type"), n.attribute("index")) {
        (Some(t), Some(i)) => format!("<{name} type='{t}' index='{i}'>"),
        (Some(t), None) => format!("<{name} type='{t}'>"),
        _ => format!("<{name}>"),
    }
}

fn machine_of(doc: &Document<'_>) -> Machine {
    // The rules here are the QEMU driver's (bhyve, Xen, … have others).
    if !matches!(doc.root_element().attribute("type"), Some("kvm" | "qemu")) {
        return Machine::Other;
    }
    let ty = child(doc.root_element(), "os").and_then(|os| child(os, "type"));
    let arch = ty.and_then(|t| t.attribute("arch"));
    if arch.is_some_and(|a| a != "x86_64" && a != "i686") {
        return Machine::Other;
    }
    match ty.and_then(|t| t.attribute("machine")) {
        Some(m) if m == "q35" || m.starts_with("pc-q35") => Machine::Q35,
        None => Machine::I440fx,
        Some(m) if m == "pc" || m.starts_with("pc-i440fx") || m.starts_with("pc-") => {
            Machine::I440fx
        }
        Some(_) => Machine::Other,
    }
}

impl Topology {
    pub fn read(doc: &Document<'_>) -> Topology {
        let machine = machine_of(doc);
        let mut t = Topology {
            machine,
            buses: BTreeMap::new(),
            used: Vec::new(),
            unreadable: 0,
            boot_orders: Vec::new(),
            os_boot: Vec::new(),
            aliases: Vec::new(),
            piix3_ide: false,
            piix3_usb: false,
        };
        if let Some(os) = child(doc.root_element(), "os") {
            for b in os.children().filter(|c| is_el(*c, "boot")) {
                t.os_boot.push(Held {
                    value: b.attribute("dev").unwrap_or("").to_string(),
                    owner: "<os>".into(),
                    range: b.range(),
                });
            }
        }
        for dev in device_nodes(doc) {
            if is_el(dev, "controller") && dev.attribute("type") == Some("pci") {
                if let Some(idx) = dev
                    .attribute("index")
                    .and_then(crate::address::parse_libvirt_number)
                    .filter(|n| n.value <= 0xff)
                {
                    t.buses.entry(idx.value as u8).or_insert(Bus {
                        index: idx.value as u8,
                        model: dev.attribute("model").map(str::to_string),
                        implicit: false,
                        range: Some(dev.range()),
                    });
                }
            }
            if is_el(dev, "controller") && dev.attribute("index").map(str::trim) == Some("0") {
                match (dev.attribute("type"), dev.attribute("model")) {
                    (Some("ide"), _) => t.piix3_ide = true,
                    (Some("usb"), None | Some("piix3-uhci")) => t.piix3_usb = true,
                    _ => {}
                }
            }
            let mut owner = describe(dev);
            if crate::domain::is_pci_hostdev(dev) {
                if let Some(a) = crate::domain::source_address(dev) {
                    owner = format!("{owner} of host device {a}");
                }
            }
            for c in dev.children().filter(|c| c.is_element()) {
                if is_el(c, "boot") {
                    if let Some(o) = c.attribute("order") {
                        t.boot_orders.push(Held {
                            value: o.trim().to_string(),
                            owner: owner.clone(),
                            range: c.range(),
                        });
                    }
                } else if is_el(c, "alias") {
                    if let Some(n) = c.attribute("name").filter(|n| n.starts_with("ua-")) {
                        t.aliases.push(Held {
                            value: n.to_string(),
                            owner: owner.clone(),
                            range: c.range(),
                        });
                    }
                } else if is_el(c, "address") && c.attribute("type") == Some("pci") {
                    // A <console> repeats its <serial>'s address.
                    if is_el(dev, "console") {
                        continue;
                    }
                    match read_pci_address(c) {
                        Some(a) if a.domain == 0 && a.bus == 0 && a.slot == 0 => {}
                        Some(a) => t.used.push(Occupant {
                            address: a,
                            what: owner.clone(),
                            range: Some(c.range()),
                            endpoint: !(is_el(dev, "controller")
                                && dev.attribute("type") == Some("pci")),
                        }),
                        None => t.unreadable += 1,
                    }
                }
            }
        }
        if let std::collections::btree_map::Entry::Vacant(v) = t.buses.entry(0) {
            v.insert(Bus {
                index: 0,
                model: Some(
                    match machine {
                        Machine::Q35 => "pcie-root",
                        _ => "pci-root",
                    }
                    .into(),
                ),
                implicit: true,
                range: None,
            });
        }
        let reserved = match machine {
            Machine::I440fx => Some((1, "the machine's PIIX3 (ISA bridge, IDE, USB, ACPI)")),
            Machine::Q35 => Some((0x1f, "the machine's ICH9 (LPC bridge, SATA, SMBus)")),
            Machine::Other => None,
        };
        if let Some((slot, what)) = reserved {
            for f in 0..8 {
                t.used.push(Occupant {
                    address: PciAddress::new(0, 0, slot, f),
                    what: what.into(),
                    range: None,
                    endpoint: true,
                });
            }
        }
        t
    }

    /// Who uses any function of `(bus, slot)` in PCI domain 0.
    pub fn slot_user(&self, bus: u8, slot: u8) -> Option<&Occupant> {
        self.used
            .iter()
            .find(|o| o.address.domain == 0 && o.address.bus == bus && o.address.slot == slot)
    }

    /// Who uses exactly `a`.
    pub fn user(&self, a: PciAddress) -> Option<&Occupant> {
        self.used.iter().find(|o| o.address == a)
    }

    /// Slots of `bus` a hostdev may take that no device uses.
    pub fn free_slots(&self, bus: &Bus) -> Vec<u8> {
        let Some((lo, hi)) = bus.slots() else {
            return Vec::new();
        };
        (lo..=hi)
            .filter(|s| self.slot_user(bus.index, *s).is_none())
            .collect()
    }

    /// The buses and their free slots, for messages.
    pub fn describe_buses(&self) -> String {
        self.buses
            .values()
            .map(Bus::describe)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The first free guest slots, as `--guest-address` values.
    pub fn free_addresses(&self, n: usize) -> Vec<PciAddress> {
        self.buses
            .values()
            .flat_map(|b| {
                self.free_slots(b)
                    .into_iter()
                    .map(|s| PciAddress::new(0, b.index, s, 0))
            })
            .take(n)
            .collect()
    }

    fn free_help(&self) -> String {
        let free = self.free_addresses(4);
        if free.is_empty() {
            return "this domain has no free guest slot for a hostdev: add a <controller type='pci' model='pcie-root-port'/> (q35) or model='pci-bridge' (pc), or leave out --guest-address and let libvirt place the device".into();
        }
        format!(
            "free guest slots: {}; e.g. --guest-address {} (or leave out --guest-address and let libvirt choose)",
            free.iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            free[0]
        )
    }

    /// Why `a` cannot hold a new device's slot, if it cannot.
    fn refuse_slot(&self, a: PciAddress, text: &str) -> Option<GuestError> {
        if a.domain != 0 {
            return Some(GuestError::new(
                format!("guest address {a} is in PCI domain 0x{:04x}; libvirt's QEMU guests have only domain 0 (\"Only PCI domain 0 is available\")", a.domain),
                self.free_help(),
            ));
        }
        if a.bus == 0 && a.slot == 0 {
            return Some(GuestError::new(
                format!("guest address {a} is slot 0 of bus 0, the guest's host bridge (libvirt reads 0000:00:00.x as \"no address\" and would choose one itself)"),
                self.free_help(),
            ));
        }
        let Some(bus) = self.buses.get(&a.bus) else {
            return Some(GuestError::new(
                format!(
                    "guest bus 0x{:02x} does not exist in this domain; its buses: {}",
                    a.bus,
                    self.describe_buses()
                ),
                self.free_help(),
            ));
        };
        match bus.slots() {
            None => {
                return Some(GuestError::new(
                    format!(
                        "guest bus 0x{:02x} ({}) takes no endpoint device",
                        a.bus,
                        bus.model.as_deref().unwrap_or("a controller without model")
                    ),
                    self.free_help(),
                ))
            }
            Some((lo, hi)) if a.slot < lo || a.slot > hi => {
                let range = if lo == hi {
                    format!("only slot 0x{lo:02x}")
                } else {
                    format!("slots 0x{lo:02x}-0x{hi:02x}")
                };
                return Some(GuestError::new(
                    format!(
                        "guest address {a}: bus 0x{:02x} is a {} and has {range} (libvirt: \"Invalid PCI address {a}. slot must be {}\")",
                        a.bus,
                        bus.model.as_deref().unwrap_or("controller"),
                        if a.slot < lo { format!(">= {lo}") } else { format!("<= {hi}") }
                    ),
                    self.free_help(),
                ));
            }
            Some(_) => {}
        }
        if let Some(o) = self.slot_user(a.bus, a.slot) {
            let at = match &o.range {
                Some(r) => format!(" (line {})", line_of(text, r.start)),
                None => String::new(),
            };
            return Some(GuestError::new(
                format!(
                    "guest slot {:04x}:{:02x}:{:02x} is taken: {} uses {}{at}",
                    a.domain, a.bus, a.slot, o.what, o.address
                ),
                self.free_help(),
            ));
        }
        None
    }

    /// Guest addresses for new hostdevs `addrs` from `start`: the first
    /// physical device at `start`, each further one on the next free slot
    /// (same bus first, then the following buses). With `multifunction`,
    /// the functions of one physical device share its slot (host function
    /// numbers kept, `multifunction='on'` on function 0 when there are
    /// several). Every slot written is checked as libvirt will; `text` is
    /// the document, for line numbers.
    pub fn place(
        &self,
        addrs: &[PciAddress],
        start: PciAddress,
        multifunction: bool,
        text: &str,
    ) -> Result<Vec<(PciAddress, bool)>, GuestError> {
        // Units that each take one guest slot.
        let mut units: Vec<Vec<usize>> = Vec::new();
        if multifunction {
            let mut slots: Vec<crate::address::PciSlot> = Vec::new();
            for (i, a) in addrs.iter().enumerate() {
                match slots.iter().position(|s| *s == a.slot_of()) {
                    Some(k) => units[k].push(i),
                    None => {
                        slots.push(a.slot_of());
                        units.push(vec![i]);
                    }
                }
            }
        } else {
            units = (0..addrs.len()).map(|i| vec![i]).collect();
        }
        if let Some(e) = self.refuse_slot(start, text) {
            return Err(e);
        }
        let mut out = vec![(start, false); addrs.len()];
        let mut taken: Vec<(u8, u8)> = Vec::new();
        let mut cursor = (start.bus, start.slot);
        for (k, unit) in units.iter().enumerate() {
            let (bus, slot) = if k == 0 {
                cursor
            } else {
                match self.next_free(cursor, &taken) {
                    Some(p) => p,
                    None => {
                        return Err(GuestError::new(
                            format!(
                                "{} hostdevs need {} guest slots from {start}, and only {k} are free there; buses: {}",
                                addrs.len(),
                                units.len(),
                                self.describe_buses()
                            ),
                            "add PCI controllers (e.g. <controller type='pci' model='pcie-root-port'/> per device on q35), use --guest-multifunction to share one slot per device, or leave out --guest-address".to_string(),
                        ))
                    }
                }
            };
            taken.push((bus, slot));
            cursor = (bus, slot);
            let several = unit.len() > 1;
            for &i in unit {
                let f = if multifunction {
                    addrs[i].function
                } else if k == 0 {
                    start.function
                } else {
                    0
                };
                out[i] = (PciAddress::new(0, bus, slot, f), several && f == 0);
            }
        }
        Ok(out)
    }

    fn next_free(&self, after: (u8, u8), taken: &[(u8, u8)]) -> Option<(u8, u8)> {
        self.buses
            .values()
            .filter(|b| b.index >= after.0)
            .flat_map(|b| self.free_slots(b).into_iter().map(move |s| (b.index, s)))
            .find(|p| *p > after && !taken.contains(p))
    }

    /// Whether libvirt can place new hostdevs that have no guest address.
    ///
    /// When every slot of every bus is taken, libvirt 9.0 adds a bridge
    /// for them and then refuses its own result ("PCI controller at index 1
    /// (0x01) has bus='0x01', but index must be larger than bus", seen on
    /// libvirt's `pci-many.xml`); so this is refused before writing.
    pub fn check_room(&self) -> Result<(), GuestError> {
        if self.machine == Machine::Other || !self.free_addresses(1).is_empty() {
            return Ok(());
        }
        Err(GuestError::new(
            format!(
                "this domain has no free guest PCI slot for a new hostdev (buses: {}), and libvirt cannot add a bridge on a full bus 0",
                self.describe_buses()
            ),
            "free a guest slot (remove a device, or move one behind a <controller type='pci' model='pci-bridge'> that has a free slot), then add again".into(),
        ))
    }

    /// Whether boot order `n` can be given to a new device.
    pub fn check_boot_order(&self, n: u32, text: &str) -> Result<(), GuestError> {
        if let Some(b) = self.os_boot.first() {
            return Err(GuestError::new(
                format!(
                    "--boot-order {n}: this domain boots with <os><boot dev='{}'/> (line {}), and libvirt refuses per-device boot orders next to it (\"per-device boot elements cannot be used together with os/boot elements\")",
                    b.value,
                    line_of(text, b.range.start)
                ),
                "leave out --boot-order, or replace the <os><boot dev=…/> lines by <boot order='N'/> in the devices (disk first, e.g. <boot order='1'/> in the system <disk>), then add with --boot-order".to_string(),
            ));
        }
        let taken = |k: u32| {
            self.boot_orders.iter().find(|b| {
                crate::address::parse_libvirt_number(&b.value).map(|v| v.value)
                    == Some(u64::from(k))
            })
        };
        if let Some(b) = taken(n) {
            let free = (1..).find(|k| taken(*k).is_none()).unwrap_or(n + 1);
            return Err(GuestError::new(
                format!(
                    "--boot-order {n}: {} already has <boot order='{}'/> (line {}); libvirt refuses one boot order on two devices",
                    b.owner,
                    b.value,
                    line_of(text, b.range.start)
                ),
                format!("use a free boot order, e.g. --boot-order {free}, or change that device's <boot order>"),
            ));
        }
        Ok(())
    }

    /// Whether the user alias `name` is free.
    pub fn check_alias(&self, name: &str, text: &str) -> Result<(), GuestError> {
        if let Some(a) = self.aliases.iter().find(|a| a.value == name) {
            let mut k = 2;
            while self.aliases.iter().any(|a| a.value == format!("{name}{k}")) {
                k += 1;
            }
            return Err(GuestError::new(
                format!(
                    "alias `{name}` is already used by {} (line {}); libvirt refuses the domain (\"non unique alias detected\")",
                    a.owner,
                    line_of(text, a.range.start)
                ),
                format!("choose another alias, e.g. --alias {name}{k}"),
            ));
        }
        Ok(())
    }
}

impl Machine {
    /// The controller model libvirt adds for a guest bus a device names
    /// but the domain lacks (q35: pcie-root-port; pc: pci-bridge).
    pub fn default_bus_model(self) -> Option<&'static str> {
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
    pub fn built_in(&self, a: PciAddress) -> Option<&'static str> {
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
pub fn boot_order_value(v: &str) -> Option<u64> {
    let t = v.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let t = t.strip_prefix('+').unwrap_or(t);
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

/// 1-based line of byte offset `at`.
pub fn line_of(text: &str, at: usize) -> usize {
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
        assert!(t.user(PciAddress::new(0, 1, 0, 0)).is_some());
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
