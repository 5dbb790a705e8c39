//! The shape of each PCI hostdev (VP010–VP015) and duplicates in one
//! domain (VP030).
//!
//! libvirt folds `<hostdev type='pci'>` and `<interface type='hostdev'>`
//! into one list, so both are checked here and a device named by each is
//! one duplicate. These are the mistakes libvirt's schema lets through
//! and libvirt then refuses, or worse reads as something else: an unknown
//! `mode` or `type`, `managed='true'` (read as `no`), a missing `<source>`,
//! an empty `<address/>` (0000:00:00.0, the host bridge). The numbers in
//! the address are [`super::numbers`]' part.

use super::context::{attr_span, tag_span, Cx};
use super::file::UnitHostdev;
use super::numbers::check_fields;
use super::Code;
use crate::address::{read_element, PciAddress};
use crate::domain::{child, is_el};
use roxmltree::Node;
use std::collections::HashMap;
use std::ops::Range;

/// `<interface type='hostdev'>`: a PCI hostdev when its source address is.
pub(super) fn is_pci_interface(n: Node<'_, '_>) -> bool {
    is_el(n, "interface") && n.attribute("type") == Some("hostdev")
}

/// Every hostdev among the children of `devices`; each PCI one that reads
/// as a host address, once (VP030 for the second). `named`: a domain (for
/// the message); `s390`: an s390x domain (VP015 does not apply).
pub(super) fn check_hostdevs(
    cx: &mut Cx<'_>,
    devices: &[Node<'_, '_>],
    named: bool,
    s390: bool,
) -> Vec<UnitHostdev> {
    let mut hostdevs: Vec<UnitHostdev> = Vec::new();
    let mut first_seen: HashMap<PciAddress, Range<usize>> = HashMap::new();
    for n in devices
        .iter()
        .flat_map(|d| d.children().filter(|n| n.is_element()))
    {
        let found = if is_el(n, "hostdev") {
            check_hostdev(cx, n, s390)
        } else if is_pci_interface(n) {
            check_interface(cx, n, s390)
        } else {
            None
        };
        let Some((a, parsed)) = found else { continue };
        if let Some(prev) = first_seen.get(&a) {
            let rel = cx.related(prev.clone(), format!("{a} first assigned here"));
            let what = if named { "domain" } else { "file" };
            cx.push(
                Code::Vp030,
                parsed.clone(),
                format!("host device {a} is assigned twice in this {what}"),
                Some("the same source address again".into()),
                Some("remove one of them; libvirt refuses the domain (\"Hostdev already exists in the domain configuration\")".into()),
            )
            .related
            .push(rel);
        } else {
            first_seen.insert(a, parsed.clone());
        }
        hostdevs.push(UnitHostdev {
            address: a,
            range: cx.map.range(parsed),
        });
    }
    hostdevs
}

fn check_managed(cx: &mut Cx<'_>, n: Node<'_, '_>) {
    let Some(attr) = n.attribute_node("managed") else {
        return;
    };
    let v = attr.value();
    if v == "yes" || v == "no" {
        return;
    }
    let fix = match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "on" | "yes" | "y" | "enabled" => Some("yes"),
        "false" | "0" | "off" | "no" | "n" | "disabled" => Some("no"),
        _ => None,
    };
    let help = match fix {
        Some("yes") => "write managed='yes' (libvirt then detaches the device from its host driver at start and gives it back at shutdown)".to_string(),
        Some(_) => "write managed='no'".to_string(),
        None => "write managed='yes' (libvirt detaches the device at start) or managed='no' (detach it yourself, e.g. `virt-pci detach`)".to_string(),
    };
    cx.push(
        Code::Vp012,
        attr.range_value(),
        format!("managed='{v}' is not `yes` or `no`: libvirt silently reads it as managed='no'"),
        Some("libvirt reads this as `no`".into()),
        Some(help),
    );
}

const SOURCE_HELP: &str = "write the host device's address as libvirt does, e.g. <address domain='0x0000' bus='0x03' slot='0x00' function='0x0'/>; `virt-pci snippet DEVICE` prints the whole hostdev";

fn check_hostdev(
    cx: &mut Cx<'_>,
    n: Node<'_, '_>,
    s390: bool,
) -> Option<(PciAddress, Range<usize>)> {
    match n.attribute("mode").unwrap_or("subsystem") {
        "subsystem" => {}
        "capabilities" => return None,
        other => {
            let span = attr_span(n, "mode").unwrap_or_else(|| tag_span(n));
            cx.push(
                Code::Vp010,
                span,
                format!("unknown hostdev mode='{other}'"),
                None,
                Some("PCI passthrough uses mode='subsystem' (or leave mode out)".into()),
            );
            return None;
        }
    }
    match n.attribute("type") {
        Some("pci") => {}
        Some("usb" | "scsi" | "scsi_host" | "mdev") => {
            check_managed(cx, n);
            return None;
        }
        Some(other) => {
            let span = attr_span(n, "type").unwrap_or_else(|| tag_span(n));
            cx.push(
                Code::Vp011,
                span,
                format!("unknown hostdev type='{other}'"),
                None,
                Some("PCI passthrough uses type='pci' (others: usb, scsi, scsi_host, mdev)".into()),
            );
            return None;
        }
        None => {
            cx.push(
                Code::Vp011,
                tag_span(n),
                "hostdev has no `type`: libvirt rejects it (\"missing source address type\")"
                    .into(),
                None,
                Some("add type='pci' for a PCI device".into()),
            );
            return None;
        }
    }
    check_managed(cx, n);
    let addr = source_address_node(cx, n)?;
    check_source_address(cx, addr, s390)
}

fn check_interface(
    cx: &mut Cx<'_>,
    n: Node<'_, '_>,
    s390: bool,
) -> Option<(PciAddress, Range<usize>)> {
    check_managed(cx, n);
    let addr = source_address_node(cx, n)?;
    match addr.attribute("type") {
        Some("pci") => check_source_address(cx, addr, s390),
        Some(_) => None,
        None => {
            cx.push(
                Code::Vp011,
                tag_span(addr),
                "the source <address> of an <interface type='hostdev'> has no `type`: libvirt rejects it (\"missing source address type\")".into(),
                None,
                Some("add type='pci' to the <address>".into()),
            );
            None
        }
    }
}

fn source_address_node<'a, 'i>(cx: &mut Cx<'_>, n: Node<'a, 'i>) -> Option<Node<'a, 'i>> {
    let Some(src) = child(n, "source") else {
        cx.push(
            Code::Vp013,
            tag_span(n),
            format!(
                "PCI <{}> without <source>: libvirt rejects it (\"Missing <source> element in hostdev device\")",
                n.tag_name().name()
            ),
            None,
            Some(SOURCE_HELP.into()),
        );
        return None;
    };
    let Some(addr) = child(src, "address") else {
        cx.push(
            Code::Vp013,
            tag_span(src),
            "<source> has no <address>: libvirt stores the hostdev as 0000:00:00.0, the host bridge".into(),
            None,
            Some(SOURCE_HELP.into()),
        );
        return None;
    };
    Some(addr)
}

fn check_source_address(
    cx: &mut Cx<'_>,
    addr: Node<'_, '_>,
    s390: bool,
) -> Option<(PciAddress, Range<usize>)> {
    let span = addr.range();
    let e = read_element(addr);
    if e.is_empty() {
        cx.push(
            Code::Vp014,
            span,
            "empty source <address/>: libvirt reads it as 0000:00:00.0, the host bridge".into(),
            Some("no domain, bus, slot or function".into()),
            Some(SOURCE_HELP.into()),
        );
        return None;
    }
    let a = check_fields(cx, &e, true)?;
    if a.domain == 0 && a.bus == 0 && a.slot == 0 && !s390 {
        cx.push(
            Code::Vp015,
            span,
            format!("source address {a} is the host bridge (root complex), which can never be passed through"),
            Some("libvirt treats an all-zero address as empty and does not check it".into()),
            Some("write the address of the device you mean; `virt-pci list` shows the devices".into()),
        );
        return None;
    }
    Some((a, span))
}

#[cfg(test)]
mod tests {
    use crate::validate::testing::{codes, dom};

    const HB: &str = "<hostdev mode='subsystem' type='pci'><source><address domain='0x0000' bus='0x00' slot='0x00' function='0x0'/></source></hostdev>";

    #[test]
    fn host_bridge_address_is_fine_on_s390x_zpci() {
        assert_eq!(codes(&dom("<type arch='x86_64'>hvm</type>", HB)), ["VP015"]);
        assert!(codes(&dom(
            "<type arch='s390x' machine='s390-ccw-virtio'>hvm</type>",
            HB
        ))
        .is_empty());
    }

    #[test]
    fn non_pci_hostdevs_are_only_checked_for_managed() {
        let usb = "<hostdev mode='subsystem' type='usb' managed='true'><source><vendor id='0x1234'/></source></hostdev>";
        assert_eq!(codes(&dom("", usb)), ["VP012"]);
        let caps = "<hostdev mode='capabilities' type='storage'><source><block>/dev/sda</block></source></hostdev>";
        assert!(codes(&dom("", caps)).is_empty());
        let usb_if = "<interface type='hostdev'><source><address type='usb' bus='1' device='2'/></source></interface>";
        assert!(codes(&dom("", usb_if)).is_empty());
        let no_type_if =
            "<interface type='hostdev'><source><address bus='0x03'/></source></interface>";
        assert_eq!(codes(&dom("", no_type_if)), ["VP011"]);
    }

    #[test]
    fn every_devices_element_counts_and_foreign_elements_do_not() {
        let hd = |b: &str| {
            format!("<hostdev mode='subsystem' type='pci'><source><address bus='{b}'/></source></hostdev>")
        };
        // libvirt merges a second <devices>: the duplicate is found.
        let x = format!(
            "<domain><name>v</name><devices>{}</devices><devices>{}</devices></domain>",
            hd("0x2b"),
            hd("0x2b")
        );
        assert_eq!(codes(&x), ["VP030"]);
        // A foreign-namespace hostdev or devices is not libvirt's.
        let x = format!(
            "<domain><name>v</name><devices>{}<x:hostdev xmlns:x='urn:x' mode='subsystem' type='pci'><x:source><x:address bus='0x2b'/></x:source></x:hostdev></devices><x:devices xmlns:x='urn:x'>{}</x:devices></domain>",
            hd("0x2b"),
            hd("0x2b")
        );
        assert!(codes(&x).is_empty(), "{:?}", codes(&x));
        // strtoul: leading space and `+` read as libvirt does.
        let x = format!(
            "<domain><name>v</name><devices>{}{}</devices></domain>",
            hd(" 0x2b"),
            hd("+0x2b")
        );
        assert_eq!(codes(&x), ["VP030"]);
    }
}
