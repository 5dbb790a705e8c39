//! Reading a domain's guest side into a [`Topology`], in the order libvirt's
//! QEMU driver builds it at define time: the machine family, then every
//! device (PCI controllers become buses; `<boot order>`, `ua-` aliases and
//! guest `<address type='pci'>` are recorded with the device that holds
//! them), then what libvirt adds itself: bus 0 when the domain lists none,
//! and the slot the machine keeps for its own chipset.

use super::{describe, Bus, Held, Machine, Occupant, Topology};
use crate::address::read_pci_address;
use crate::address::PciAddress;
use crate::domain::{child, device_nodes, is_el};
use roxmltree::{Document, Node};
use std::collections::BTreeMap;

/// The machine family from `<domain type>` and `<os><type arch machine>`.
/// The rules are the QEMU driver's (bhyve, Xen, … have others).
fn machine_of(doc: &Document<'_>) -> Machine {
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
    /// The guest side of `doc`, as libvirt's QEMU driver builds it.
    pub(crate) fn read(doc: &Document<'_>) -> Topology {
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
            t.read_controller(dev);
            t.read_device_info(dev);
        }
        t.add_implicit_bus0();
        t.reserve_chipset_slot();
        t
    }

    /// A `<controller type='pci'>` is a bus (the first one per index
    /// counts); index-0 IDE and PIIX3 USB controllers sit in the pc
    /// chipset's slot ([`Topology::built_in`]).
    fn read_controller(&mut self, dev: Node<'_, '_>) {
        if !is_el(dev, "controller") {
            return;
        }
        if dev.attribute("type") == Some("pci") {
            if let Some(idx) = dev
                .attribute("index")
                .and_then(crate::address::parse_libvirt_number)
                .filter(|n| n.value <= 0xff)
            {
                self.buses.entry(idx.value as u8).or_insert(Bus {
                    index: idx.value as u8,
                    model: dev.attribute("model").map(str::to_string),
                    implicit: false,
                    range: Some(dev.range()),
                });
            }
        }
        if dev.attribute("index").map(str::trim) == Some("0") {
            match (dev.attribute("type"), dev.attribute("model")) {
                (Some("ide"), _) => self.piix3_ide = true,
                (Some("usb"), None | Some("piix3-uhci")) => self.piix3_usb = true,
                _ => {}
            }
        }
    }

    /// A device's `<boot order>`, user alias (`ua-…`) and guest PCI
    /// address, each recorded with the device that holds it. `0000:00:00.x`
    /// is libvirt's "no address"; an address libvirt cannot read is only
    /// counted (`validate` reports it).
    fn read_device_info(&mut self, dev: Node<'_, '_>) {
        let mut owner = describe(dev);
        if crate::domain::is_pci_hostdev(dev) {
            if let Some(a) = crate::domain::source_address(dev) {
                owner = format!("{owner} of host device {a}");
            }
        }
        for c in dev.children().filter(|c| c.is_element()) {
            if is_el(c, "boot") {
                if let Some(o) = c.attribute("order") {
                    self.boot_orders.push(Held {
                        value: o.trim().to_string(),
                        owner: owner.clone(),
                        range: c.range(),
                    });
                }
            } else if is_el(c, "alias") {
                if let Some(n) = c.attribute("name").filter(|n| n.starts_with("ua-")) {
                    self.aliases.push(Held {
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
                    Some(a) => self.used.push(Occupant {
                        address: a,
                        what: owner.clone(),
                        range: Some(c.range()),
                        endpoint: !(is_el(dev, "controller")
                            && dev.attribute("type") == Some("pci")),
                    }),
                    None => self.unreadable += 1,
                }
            }
        }
    }

    /// Bus 0 always exists: pcie-root on q35, pci-root elsewhere.
    fn add_implicit_bus0(&mut self) {
        if let std::collections::btree_map::Entry::Vacant(v) = self.buses.entry(0) {
            v.insert(Bus {
                index: 0,
                model: Some(
                    match self.machine {
                        Machine::Q35 => "pcie-root",
                        _ => "pci-root",
                    }
                    .into(),
                ),
                implicit: true,
                range: None,
            });
        }
    }

    /// The whole slot of the machine's chipset is taken: 00:01 (PIIX3) on
    /// pc, 00:1f (ICH9) on q35.
    fn reserve_chipset_slot(&mut self) {
        let reserved = match self.machine {
            Machine::I440fx => Some((1, "the machine's PIIX3 (ISA bridge, IDE, USB, ACPI)")),
            Machine::Q35 => Some((0x1f, "the machine's ICH9 (LPC bridge, SATA, SMBus)")),
            Machine::Other => None,
        };
        if let Some((slot, what)) = reserved {
            for f in 0..8 {
                self.used.push(Occupant {
                    address: PciAddress::new(0, 0, slot, f),
                    what: what.into(),
                    range: None,
                    endpoint: true,
                });
            }
        }
    }
}
