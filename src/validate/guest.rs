//! The guest side of a domain (VP031–VP035).
//!
//! Where the guest sees each device, as libvirt's QEMU driver lays it out
//! at define time ([`crate::domain::guest`]): two devices at one guest address,
//! built-in functions of the machine type, addresses a bus cannot hold,
//! boot orders and user aliases given twice. libvirt refuses each of these
//! at `define` (or QEMU at start); every message quotes libvirt's error.
//! The host side (which device) is [`super::hostdev`]'s.

use super::context::Cx;
use super::numbers::check_fields;
use super::Code;
use crate::address::{read_element, PciAddress};
use crate::domain::guest::{boot_order_value, slots_for_model, Machine, Occupant, Topology};
use crate::domain::is_el;
use roxmltree::Node;
use std::collections::HashMap;
use std::ops::Range;

/// Every guest `<address type='pci'>` of the domain's devices: ranges, and
/// no two devices at one address.
pub(super) fn check_guest_addresses(cx: &mut Cx<'_>, devices: Node<'_, '_>) {
    let mut seen: HashMap<PciAddress, (Range<usize>, String)> = HashMap::new();
    for a in devices.descendants().filter(|d| {
        is_el(*d, "address")
            && d.attribute("type") == Some("pci")
            // A source address is the host's; a <console> is libvirt's
            // alias of the first <serial> and repeats its address.
            && !d
                .parent()
                .is_some_and(|p| is_el(p, "source") || is_el(p, "console"))
    }) {
        let Some(v) = check_fields(cx, &read_element(a), false) else {
            continue;
        };
        if v.domain == 0 && v.bus == 0 && v.slot == 0 {
            // libvirt's "empty" address: it assigns one itself.
            continue;
        }
        let owner = a
            .parent()
            .filter(|p| p.is_element())
            .map(|p| match p.attribute("type") {
                Some(t) => format!("<{} type='{t}'>", p.tag_name().name()),
                None => format!("<{}>", p.tag_name().name()),
            })
            .unwrap_or_default();
        let addr = v;
        if let Some((prev, prev_owner)) = seen.get(&v) {
            let rel = cx.related(prev.clone(), format!("{prev_owner} is here"));
            let msg =
                format!("guest PCI address {addr} of {owner} is already used by {prev_owner}");
            cx.push(
                Code::Vp031,
                a.range(),
                msg,
                Some("the same guest address again".into()),
                Some("give one of them another slot, or remove its <address> and let libvirt assign one (libvirt: \"Attempted double use of PCI Address\")".into()),
            )
            .related
            .push(rel);
        } else {
            seen.insert(v, (a.range(), owner));
        }
    }
}

/// The domain's guest side as libvirt's QEMU driver builds it at define
/// time ([`crate::domain::guest`]): built-in functions of the machine (VP031),
/// duplicate boot orders (VP032), per-device boot next to `<os><boot dev>`
/// (VP033), guest addresses the bus cannot hold (VP034), duplicate user
/// aliases (VP035). Each message quotes libvirt's own error.
pub(super) fn check_guest_topology(cx: &mut Cx<'_>, doc: &roxmltree::Document<'_>) {
    let t = Topology::read(doc);
    if !matches!(doc.root_element().attribute("type"), Some("kvm" | "qemu")) {
        // Checked against libvirt's QEMU driver only.
        return;
    }
    for o in t.used.iter().filter(|o| o.endpoint) {
        check_occupant(cx, &t, o);
    }
    boot_orders_once(cx, &t);
    one_boot_style(cx, &t);
    aliases_once(cx, &t);
}

/// One endpoint's guest address: not a built-in function of the machine
/// (VP031), in domain 0, on a bus that has the slot (VP034).
fn check_occupant(cx: &mut Cx<'_>, t: &Topology, o: &Occupant) {
    let Some(r) = o.range.clone() else { return };
    let a = o.address;
    // The IDE/USB controller at its own PIIX3 address is no clash.
    let own_place = (a.function == 1 && o.what.starts_with("<controller type='ide' index='0'"))
        || (a.function == 2 && o.what.starts_with("<controller type='usb' index='0'"));
    if let Some(b) = t.built_in(a).filter(|_| !own_place) {
        cx.push(
            Code::Vp031,
            r,
            format!("guest PCI address {a} of {} is {b}", o.what),
            Some("always there on this machine type".into()),
            Some(format!("give the device another slot, or remove its <address> and let libvirt assign one (libvirt: \"Attempted double use of PCI Address {a}\")")),
        );
        return;
    }
    if t.machine == Machine::Other {
        return;
    }
    if a.domain != 0 {
        cx.push(
            Code::Vp034,
            r,
            format!("guest PCI address {a} of {} is in PCI domain 0x{:04x}; a QEMU guest has only domain 0", o.what, a.domain),
            None,
            Some(format!("write domain='0x0000' (libvirt: \"Invalid PCI address {a}. Only PCI domain 0 is available\")")),
        );
        return;
    }
    let Some((msg, libvirt)) = slot_problem(t, a) else {
        return;
    };
    cx.push(
        Code::Vp034,
        r,
        format!("guest PCI address {a} of {}: {msg}", o.what),
        None,
        Some(format!(
            "put the device on a bus with a free slot (buses: {}), or remove its <address> and let libvirt assign one (libvirt: \"{libvirt}\")",
            t.describe_buses()
        )),
    );
}

/// Why guest bus `a.bus` cannot hold `a.slot`, and libvirt's words for it;
/// `None` when it can (or the bus's model is not known). A bus without a
/// `<controller>` is the model libvirt adds for it.
fn slot_problem(t: &Topology, a: PciAddress) -> Option<(String, String)> {
    let (model, missing) = match t.buses.get(&a.bus) {
        Some(b) => (b.model.as_deref()?.to_string(), false),
        None => (t.machine.default_bus_model()?.to_string(), true),
    };
    let what = if missing {
        format!(
            "guest bus 0x{:02x} has no <controller>, and the {model} libvirt adds for it",
            a.bus
        )
    } else {
        format!("guest bus 0x{:02x} is a {model} and", a.bus)
    };
    Some(match slots_for_model(&model) {
        None => (
            format!("{what} takes no endpoint device"),
            format!("The device at PCI address {a} cannot be plugged into the PCI controller with index='{}'", a.bus),
        ),
        Some((lo, _)) if a.slot < lo => (
            format!("{what} has no slot 0x{:02x} (slots start at 0x{lo:02x})", a.slot),
            format!("Invalid PCI address {a}. slot must be >= {lo}"),
        ),
        Some((_, hi)) if a.slot > hi => (
            format!(
                "{what} has {}",
                if hi == 0 { "only slot 0x00".to_string() } else { format!("slots up to 0x{hi:02x}") }
            ),
            format!("Invalid PCI address {a}. slot must be <= {hi}"),
        ),
        Some(_) => return None,
    })
}

/// VP032: one `<boot order>` value on two devices.
fn boot_orders_once(cx: &mut Cx<'_>, t: &Topology) {
    let mut first: HashMap<u64, Range<usize>> = HashMap::new();
    for b in &t.boot_orders {
        let Some(v) = boot_order_value(&b.value) else {
            continue;
        };
        if let Some(prev) = first.get(&v) {
            let rel = cx.related(prev.clone(), format!("boot order {v} first given here"));
            cx.push(
                Code::Vp032,
                b.range.clone(),
                format!("boot order {v} of {} is already given to another device", b.owner),
                Some("the same boot order again".into()),
                Some(format!("give each device its own boot order (libvirt: \"boot order '{v}' used for more than one device\")")),
            )
            .related
            .push(rel);
        } else {
            first.insert(v, b.range.clone());
        }
    }
}

/// VP033: per-device `<boot order>` next to `<os><boot dev>`.
fn one_boot_style(cx: &mut Cx<'_>, t: &Topology) {
    let (Some(os), Some(dev)) = (t.os_boot.first(), t.boot_orders.first()) else {
        return;
    };
    let rel = cx.related(os.range.clone(), "<os><boot dev> is here".into());
    cx.push(
        Code::Vp033,
        dev.range.clone(),
        format!(
            "{} has <boot order>, and the domain also boots with <os><boot dev='{}'/>",
            dev.owner, os.value
        ),
        Some("per-device boot order".into()),
        Some("use one style: remove the <os><boot dev=…/> lines, or every per-device <boot order> (libvirt: \"per-device boot elements cannot be used together with os/boot elements\")".into()),
    )
    .related
    .push(rel);
}

/// VP035: one user alias (`ua-…`) on two devices.
fn aliases_once(cx: &mut Cx<'_>, t: &Topology) {
    let mut seen: HashMap<&str, Range<usize>> = HashMap::new();
    for al in &t.aliases {
        if let Some(prev) = seen.get(al.value.as_str()) {
            let rel = cx.related(prev.clone(), format!("`{}` first used here", al.value));
            cx.push(
                Code::Vp035,
                al.range.clone(),
                format!(
                    "alias `{}` of {} is already used by another device",
                    al.value, al.owner
                ),
                Some("the same alias again".into()),
                Some(format!(
                    "give each device its own alias (libvirt: \"non unique alias detected: {}\")",
                    al.value
                )),
            )
            .related
            .push(rel);
        } else {
            seen.insert(&al.value, al.range.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::validate::testing::{codes, dom};

    #[test]
    fn console_repeats_the_serial_address() {
        let a = "<address type='pci' domain='0x0000' bus='0x00' slot='0x04' function='0x0'/>";
        let x = dom(
            "",
            &format!("<serial type='dev'>{a}</serial><console type='dev'>{a}</console>"),
        );
        assert!(codes(&x).is_empty());
        let x = dom(
            "",
            &format!("<serial type='dev'>{a}</serial><watchdog model='i6300esb'>{a}</watchdog>"),
        );
        assert_eq!(codes(&x), ["VP031"]);
    }

    #[test]
    fn empty_guest_address_is_auto_assigned() {
        let x = dom(
            "",
            "<controller type='usb'><address type='pci'/></controller><controller type='sata'><address type='pci'/></controller>",
        );
        assert!(codes(&x).is_empty());
    }
}
