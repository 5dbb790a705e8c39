//! The model → libvirt XML: one node `<device>` in libvirt's node-device
//! format, and a whole test-driver file (`test:///abs/FILE.xml`: the host's
//! devices, the `computer` device the driver requires, and a small domain
//! per domain using a device), so tests put a real host behind the real
//! libvirt API (`virt-pci snapshot --format libvirt-test`).
//!
//! Text is escaped with the crate's one XML escaper
//! ([`crate::domain::hostdev::escape_attr`], single-quote flavour: `'` →
//! `&apos;`, as before; a `"` stays literal, which element text allows).

use crate::address::PciAddress;
use crate::domain::hostdev::escape_attr;
use crate::host::{Device, DomainUse, GroupMember, Host};
use std::fmt::Write as _;

fn addr_elem(a: &PciAddress) -> String {
    format!("<address {}/>", a.libvirt_attrs('\''))
}

/// One `<device>` element in libvirt's node-device format (schema order,
/// `nodedev.rng` `cappcidev`).
pub fn device_xml(host: &Host, d: &Device, indent: &str) -> String {
    let a = d.address;
    let mut s = String::new();
    let i2 = format!("{indent}  ");
    let i3 = format!("{indent}    ");
    let _ = writeln!(s, "{indent}<device>");
    let _ = writeln!(s, "{i2}<name>{}</name>", a.node_name());
    if let Some(p) = &d.sysfs_path {
        let _ = writeln!(s, "{i2}<path>/sys/{}</path>", escape_attr(p, '\''));
    }
    let parent = d
        .parents
        .last()
        .map(|p| p.node_name())
        .unwrap_or_else(|| "computer".to_string());
    let _ = writeln!(s, "{i2}<parent>{parent}</parent>");
    if let Some(drv) = &d.driver {
        let _ = writeln!(
            s,
            "{i2}<driver>\n{i3}<name>{}</name>\n{i2}</driver>",
            escape_attr(drv, '\'')
        );
    }
    let _ = writeln!(s, "{i2}<capability type='pci'>");
    let _ = writeln!(s, "{i3}<class>0x{:06x}</class>", d.class_code());
    let _ = writeln!(s, "{i3}<domain>{}</domain>", a.domain);
    let _ = writeln!(s, "{i3}<bus>{}</bus>", a.bus);
    let _ = writeln!(s, "{i3}<slot>{}</slot>", a.slot);
    let _ = writeln!(s, "{i3}<function>{}</function>", a.function);
    let named = |tag: &str, id: u16, name: &Option<String>| match name {
        Some(n) => format!(
            "{i3}<{tag} id='0x{id:04x}'>{}</{tag}>\n",
            escape_attr(n, '\'')
        ),
        None => format!("{i3}<{tag} id='0x{id:04x}'/>\n"),
    };
    s.push_str(&named("product", d.device(), &d.device_name));
    s.push_str(&named("vendor", d.vendor(), &d.vendor_name));
    if let Some(pf) = &d.physfn {
        let _ = writeln!(
            s,
            "{i3}<capability type='phys_function'>\n{i3}  {}\n{i3}</capability>",
            addr_elem(pf)
        );
    }
    if !d.virtfns.is_empty() {
        let max = d
            .sriov_totalvfs
            .map(|m| format!(" maxCount='{m}'"))
            .unwrap_or_default();
        let _ = writeln!(s, "{i3}<capability type='virt_functions'{max}>");
        for v in &d.virtfns {
            let _ = writeln!(s, "{i3}  {}", addr_elem(v));
        }
        let _ = writeln!(s, "{i3}</capability>");
    }
    match d.header_type.map(|h| h & 0x7f) {
        Some(1) => {
            let _ = writeln!(s, "{i3}<capability type='pci-bridge'/>");
        }
        Some(2) => {
            let _ = writeln!(s, "{i3}<capability type='cardbus-bridge'/>");
        }
        _ => {}
    }
    if let Some(g) = d.iommu_group {
        let members: Vec<PciAddress> = host
            .groups
            .get(&g)
            .map(|m| {
                m.iter()
                    .filter_map(|x| match x {
                        GroupMember::Pci(p) => Some(*p),
                        GroupMember::Other(_) => None,
                    })
                    .collect()
            })
            .unwrap_or_else(|| vec![a]);
        let _ = writeln!(s, "{i3}<iommuGroup number='{g}'>");
        for m in &members {
            let _ = writeln!(s, "{i3}  {}", addr_elem(m));
        }
        let _ = writeln!(s, "{i3}</iommuGroup>");
    }
    if let Some(n) = d.numa_node.filter(|n| *n >= 0) {
        let _ = writeln!(s, "{i3}<numa node='{n}'/>");
    }
    let _ = writeln!(s, "{i2}</capability>");
    let _ = writeln!(s, "{indent}</device>");
    s
}

/// A libvirt test-driver node file (`test:///abs/path.xml`) holding the
/// host's PCI devices, the `computer` system device the driver requires,
/// and one small domain per [`DomainUse`] domain, running or shut off.
pub fn test_driver_xml(host: &Host) -> String {
    let mut s = String::from("<node>\n");
    s.push_str(
        "  <device>\n    <name>computer</name>\n    <capability type='system'>\n      \
<hardware>\n        <vendor>virt-pci</vendor>\n        <version>test</version>\n        \
<serial>0</serial>\n        <uuid>e2a6c1f3-5b7d-4c39-9a0e-1f2d3c4b5a69</uuid>\n      \
</hardware>\n      <firmware/>\n    </capability>\n  </device>\n",
    );
    for d in host.devices.values() {
        s.push_str(&device_xml(host, d, "  "));
    }
    let mut names: Vec<&str> = Vec::new();
    for u in &host.domains {
        if !names.contains(&u.domain.as_str()) {
            names.push(&u.domain);
        }
    }
    for name in names {
        let uses: Vec<&DomainUse> = host.domains.iter().filter(|u| u.domain == name).collect();
        let running = uses.iter().any(|u| u.running);
        let _ = writeln!(
            s,
            "  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>"
        );
        let _ = writeln!(s, "    <name>{}</name>", escape_attr(name, '\''));
        s.push_str("    <memory unit='KiB'>1048576</memory>\n    <vcpu>1</vcpu>\n");
        s.push_str("    <os>\n      <type arch='x86_64'>hvm</type>\n    </os>\n    <devices>\n");
        for u in &uses {
            let _ = writeln!(
                s,
                "      <hostdev mode='subsystem' type='pci' managed='{}'>\n        <source>\n          {}\n        </source>\n      </hostdev>",
                if u.managed { "yes" } else { "no" },
                addr_elem(&u.address)
            );
        }
        s.push_str("    </devices>\n");
        // 1 = running, 5 = shut off (virDomainState).
        let _ = writeln!(
            s,
            "    <test:runstate>{}</test:runstate>",
            if running { 1 } else { 5 }
        );
        s.push_str("  </domain>\n");
    }
    s.push_str("</node>\n");
    s
}
