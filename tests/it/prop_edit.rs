//! Property test: random edits on random well-formed domains.
//!
//! Domains vary in everything the splicer must leave alone or imitate: line
//! ends, indent unit, quote style, a BOM, an XML declaration, comments before
//! `<domain>`, entity references, CDATA, namespaced elements, existing PCI
//! and USB hostdevs and hostdev interfaces, a missing or empty `<devices>`.
//! For every random `add`: the result parses with exactly the old plus the
//! new hostdevs, requested devices already present are reported and not
//! duplicated, adding again changes nothing, and wherever
//! `domain::edit::reversible` holds, `remove` of what was added gives back the
//! original bytes. Random `remove`s take out exactly the named hostdevs.

use proptest::prelude::*;
use virt_pci::domain;
use virt_pci::domain::edit::Selection;
use virt_pci::domain::hostdev::HostdevOptions;
use virt_pci::{DeviceSpec, PciAddress};

#[derive(Debug, Clone)]
enum Item {
    Disk,
    Comment,
    PciHostdev(u8),
    UsbHostdev,
    HostdevInterface(u8),
    Cdata,
}

#[derive(Debug, Clone)]
struct Doc {
    crlf: bool,
    unit: &'static str,
    dq: bool,
    bom: bool,
    decl: bool,
    lead_comment: bool,
    devices: Option<Vec<Item>>,
    qemu_ns: bool,
    one_line: bool,
}

fn addr(i: u8) -> PciAddress {
    PciAddress::new(0, 1 + (i / 4), 0, i % 4)
}

fn render(d: &Doc) -> String {
    let nl = if d.one_line {
        ""
    } else if d.crlf {
        "\r\n"
    } else {
        "\n"
    };
    let u = if d.one_line { "" } else { d.unit };
    let q = if d.dq { '"' } else { '\'' };
    let mut s = String::new();
    if d.bom {
        s.push('\u{feff}');
    }
    if d.decl {
        s.push_str(&format!("<?xml version={q}1.0{q}?>{nl}"));
    }
    if d.lead_comment {
        s.push_str(&format!("<!-- generated; edit with care -->{nl}"));
    }
    let ns = if d.qemu_ns {
        format!(" xmlns:qemu={q}http://libvirt.org/schemas/domain/qemu/1.0{q}")
    } else {
        String::new()
    };
    s.push_str(&format!("<domain type={q}kvm{q}{ns}>{nl}"));
    s.push_str(&format!("{u}<name>vm &amp; &#x41;</name>{nl}"));
    if let Some(items) = &d.devices {
        if items.is_empty() {
            s.push_str(&format!("{u}<devices>{nl}{u}</devices>{nl}"));
        } else {
            s.push_str(&format!("{u}<devices>{nl}"));
            let i2 = format!("{u}{u}");
            let i3 = format!("{u}{u}{u}");
            let i4 = format!("{u}{u}{u}{u}");
            for it in items {
                match it {
                    Item::Disk => s.push_str(&format!(
                        "{i2}<disk type={q}file{q} device={q}disk{q}>{nl}{i3}<source file={q}/var/lib/a.qcow2{q}/>{nl}{i3}<target dev={q}vda{q} bus={q}virtio{q}/>{nl}{i2}</disk>{nl}"
                    )),
                    Item::Comment => s.push_str(&format!("{i2}<!-- a <hostdev> in a comment -->{nl}")),
                    Item::PciHostdev(i) => s.push_str(&format!(
                        "{i2}<hostdev mode={q}subsystem{q} type={q}pci{q} managed={q}yes{q}>{nl}{i3}<source>{nl}{i4}<address {}/>{nl}{i3}</source>{nl}{i2}</hostdev>{nl}",
                        addr(*i).libvirt_attrs(q)
                    )),
                    Item::UsbHostdev => s.push_str(&format!(
                        "{i2}<hostdev mode={q}subsystem{q} type={q}usb{q}>{nl}{i3}<source>{nl}{i4}<vendor id={q}0x046d{q}/>{nl}{i4}<product id={q}0xc52b{q}/>{nl}{i3}</source>{nl}{i2}</hostdev>{nl}"
                    )),
                    Item::HostdevInterface(i) => s.push_str(&format!(
                        "{i2}<interface type={q}hostdev{q}>{nl}{i3}<source>{nl}{i4}<address type={q}pci{q} {}/>{nl}{i3}</source>{nl}{i2}</interface>{nl}",
                        addr(*i).libvirt_attrs(q)
                    )),
                    Item::Cdata => s.push_str(&format!("{i2}<?pi data?><![CDATA[ <not-xml> ]]>{nl}")),
                }
            }
            s.push_str(&format!("{u}</devices>{nl}"));
        }
    }
    if d.qemu_ns {
        s.push_str(&format!("{u}<qemu:commandline>{nl}{u}{u}<qemu:arg value={q}-s{q}/>{nl}{u}</qemu:commandline>{nl}"));
    }
    s.push_str("</domain>");
    s.push_str(nl);
    s
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        Just(Item::Disk),
        Just(Item::Comment),
        (0u8..8).prop_map(Item::PciHostdev),
        Just(Item::UsbHostdev),
        (0u8..8).prop_map(Item::HostdevInterface),
        Just(Item::Cdata),
    ]
}

fn doc() -> impl Strategy<Value = Doc> {
    (
        (
            any::<bool>(),
            prop_oneof![Just("  "), Just("    "), Just("\t"), Just(" ")],
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        ),
        prop::option::weighted(0.9, prop::collection::vec(item(), 0..7)),
        any::<bool>(),
        prop::bool::weighted(0.1),
    )
        .prop_map(
            |((crlf, unit, dq, bom, decl, lead_comment), devices, qemu_ns, one_line)| Doc {
                crlf,
                unit,
                dq,
                bom,
                decl,
                lead_comment,
                devices,
                qemu_ns,
                one_line,
            },
        )
}

fn pci_set(text: &str) -> Vec<PciAddress> {
    let d = domain::parse(text).unwrap();
    let mut v: Vec<_> = domain::pci_hostdevs(&d)
        .into_iter()
        .filter_map(|h| h.address)
        .collect();
    v.sort();
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn add_then_remove_is_byte_exact(d in doc(), picks in prop::collection::vec(0u8..8, 1..5), alias in any::<bool>()) {
        let text = render(&d);
        let before = pci_set(&text);
        let want: Vec<PciAddress> = picks.iter().map(|i| addr(*i)).collect();
        let opts = HostdevOptions { alias: alias.then(|| "ua-x".to_string()), ..HostdevOptions::default() };
        if alias && want.iter().any(|a| before.contains(a)) {
            // An option for a device the domain has would be dropped: refused.
            let err = domain::edit::add(&text, &want, &opts).unwrap_err();
            prop_assert!(matches!(err, domain::edit::EditError::PresentWithOptions { .. }), "{:?}", err);
            return Ok(());
        }
        let e = domain::edit::add(&text, &want, &opts).unwrap();
        for a in &e.already_present { prop_assert!(before.contains(a)); }
        for a in &e.added { prop_assert!(!before.contains(a)); }
        let mut after = before.clone();
        after.extend(e.added.iter().copied());
        after.sort();
        prop_assert_eq!(pci_set(&e.text), after);
        // Idempotent.
        let again = domain::edit::add(&e.text, &want, &HostdevOptions::default()).unwrap();
        prop_assert_eq!(&again.text, &e.text);
        // The original bytes survive around the insertion.
        if !e.added.is_empty() {
            let sel = Selection::Only(e.added.iter().map(|a| DeviceSpec::Function(*a)).collect());
            let r = domain::edit::remove(&e.text, &sel).unwrap();
            prop_assert_eq!(pci_set(&r.text), before.clone());
            if domain::edit::reversible(&text) {
                prop_assert_eq!(r.text, text.clone());
            }
            // New elements follow the file's quote style.
            let q = if d.dq { "mode=\"subsystem\" type=\"pci\" managed=\"yes\"" } else { "mode='subsystem' type='pci' managed='yes'" };
            prop_assert!(e.text.matches(q).count() >= e.added.len());
        }
        if d.devices.as_ref().is_some_and(|v| !v.is_empty()) && !d.one_line {
            prop_assert!(domain::edit::reversible(&text), "a file with a filled <devices> must round-trip");
        }
    }

    #[test]
    fn remove_takes_exactly_the_named(d in doc(), picks in prop::collection::vec(0u8..8, 1..4)) {
        let text = render(&d);
        let doc = domain::parse(&text).unwrap();
        let hostdevs: Vec<PciAddress> = domain::pci_hostdevs(&doc).into_iter().filter(|h| !h.interface).filter_map(|h| h.address).collect();
        let named: Vec<PciAddress> = picks.iter().map(|i| addr(*i)).collect();
        let sel = Selection::Only(named.iter().map(|a| DeviceSpec::Function(*a)).collect());
        match domain::edit::remove(&text, &sel) {
            Ok(r) => {
                prop_assert!(named.iter().all(|a| hostdevs.contains(a)));
                // Interfaces stay; hostdevs not named stay.
                let mut left: Vec<PciAddress> = domain::pci_hostdevs(&doc)
                    .into_iter()
                    .filter(|h| h.interface || h.address.is_some_and(|a| !named.contains(&a)))
                    .filter_map(|h| h.address)
                    .collect();
                left.sort();
                prop_assert_eq!(pci_set(&r.text), left);
            }
            Err(domain::edit::EditError::Absent { missing, .. }) => {
                prop_assert!(!missing.is_empty());
                prop_assert!(named.iter().any(|a| !hostdevs.contains(a)));
            }
            Err(e) => prop_assert!(false, "{e}"),
        }
    }
}
