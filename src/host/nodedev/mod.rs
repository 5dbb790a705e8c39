//! libvirt node-device XML (`virsh nodedev-dumpxml`) turned into a
//! [`Host`](super::Host), and a [`Host`] turned back into a libvirt
//! test-driver node file.
//!
//! WHY pure XML here: a remote `qemu+ssh://` host has no local sysfs, but
//! libvirt's node-device driver re-reads the bound driver and the IOMMU group
//! from sysfs on every `GetXMLDesc` (docs/libvirt.md §5.1). Reading
//! that XML into the same model gives the same plan as sysfs would. The
//! conversion needs no libvirt at all, so it is tested in the default build
//! against libvirt's own corpus (`tests/nodedevschemadata/pci*.xml`); the
//! `libvirt` feature only fetches the strings ([`crate::libvirt`]).
//!
//! What the XML cannot say: reset methods (`reset_method` is not in the
//! node-device XML: left unknown, never "none"), boot VGA, and which device
//! holds the root filesystem or the default route. Those host-critical facts
//! therefore come only from a local sysfs read ([`merge_local_facts`]); on a
//! host read through libvirt alone they are *unknown*
//! ([`super::Provenance::Unknown`]), and a plan touching a function that
//! could be one of them says `unverified` (facts for such a host come from a
//! snapshot made on it: `-c URI --snapshot FILE`).
//!
//! The reverse direction, [`test_driver_xml`], writes a `<node>` file for
//! libvirt's test driver (`test:///abs/path.xml`) so tests can put a real
//! host (a sample snapshot) behind the real libvirt API. The test driver
//! drops `<driver>` (§7), so bound drivers do not survive that trip.

use super::{Device, DomainUse, GroupMember, Host, IommuState};
use crate::address::PciAddress;
use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Write as _;

/// A node-device document that cannot be read, with where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodedevError {
    /// The device name when known (`pci_0000_01_00_0`).
    pub device: Option<String>,
    pub message: String,
    /// 1-based line and column in the document, when known.
    pub line: u32,
    pub column: u32,
}

impl fmt::Display for NodedevError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.device {
            write!(f, "node device {d}: ")?;
        }
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for NodedevError {}

/// One PCI node device as read from its XML.
#[derive(Clone, Debug, PartialEq)]
pub struct PciNode {
    /// `<name>`, e.g. `pci_0000_01_00_0`.
    pub name: String,
    /// `<parent>` (another node name, or `computer`).
    pub parent: Option<String>,
    pub device: Device,
    /// `<iommuGroup number=…>` and its member addresses.
    pub group: Option<(u32, Vec<PciAddress>)>,
}

fn err_at(node: roxmltree::Node<'_, '_>, device: Option<&str>, message: String) -> NodedevError {
    let pos = node.document().text_pos_at(node.range().start);
    NodedevError {
        device: device.map(str::to_string),
        message,
        line: pos.row,
        column: pos.col,
    }
}

fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, tag: &str) -> Option<roxmltree::Node<'a, 'i>> {
    n.children().find(|c| c.has_tag_name(tag))
}

fn text_of(n: roxmltree::Node<'_, '_>, tag: &str) -> Option<String> {
    child(n, tag)
        .and_then(|c| c.text())
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// An integer as libvirt writes node-device numbers: decimal elements,
/// `0x` hex attributes.
fn number(s: &str) -> Option<u64> {
    let t = s.trim();
    if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else {
        t.parse().ok()
    }
}

/// `<address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>`.
fn address_attrs(
    n: roxmltree::Node<'_, '_>,
    dev: Option<&str>,
) -> Result<PciAddress, NodedevError> {
    let f = |name: &str, max: u64| -> Result<u64, NodedevError> {
        let v = n
            .attribute(name)
            .ok_or_else(|| err_at(n, dev, format!("<address> has no `{name}` attribute")))?;
        number(v).filter(|x| *x <= max).ok_or_else(|| {
            err_at(
                n,
                dev,
                format!("<address {name}='{v}'> is not a number up to {max:#x}"),
            )
        })
    };
    Ok(PciAddress::new(
        f("domain", u64::from(u32::MAX))? as u32,
        f("bus", 0xff)? as u8,
        f("slot", 0x1f)? as u8,
        f("function", 7)? as u8,
    ))
}

/// Read one `<device>` document. `Ok(None)` when it is not a PCI device
/// (a `scsi_host`, `net`, `system`, ... node).
pub fn parse_device(xml: &str) -> Result<Option<PciNode>, NodedevError> {
    let doc = crate::domain::parse(xml).map_err(|e| NodedevError {
        device: None,
        message: e.message,
        line: e.line,
        column: e.column,
    })?;
    parse_device_node(doc.root_element())
}

fn parse_device_node(root: roxmltree::Node<'_, '_>) -> Result<Option<PciNode>, NodedevError> {
    if !root.has_tag_name("device") {
        return Err(err_at(
            root,
            None,
            format!(
                "expected a libvirt node device (<device>), found <{}>",
                root.tag_name().name()
            ),
        ));
    }
    let name = text_of(root, "name").unwrap_or_default();
    let dev = Some(name.as_str()).filter(|n| !n.is_empty());
    let Some(cap) = root
        .children()
        .find(|c| c.has_tag_name("capability") && c.attribute("type") == Some("pci"))
    else {
        return Ok(None);
    };
    let num = |tag: &str, max: u64| -> Result<u64, NodedevError> {
        let n = child(cap, tag)
            .ok_or_else(|| err_at(cap, dev, format!("the PCI capability has no <{tag}>")))?;
        let t = n.text().unwrap_or("").trim();
        number(t).filter(|v| *v <= max).ok_or_else(|| {
            err_at(
                n,
                dev,
                format!("<{tag}>{t}</{tag}> is not a number up to {max}"),
            )
        })
    };
    let address = PciAddress::new(
        num("domain", u64::from(u32::MAX))? as u32,
        num("bus", 0xff)? as u8,
        num("slot", 0x1f)? as u8,
        num("function", 7)? as u8,
    );
    let id_of = |tag: &str| -> Result<(u16, Option<String>), NodedevError> {
        let n = child(cap, tag)
            .ok_or_else(|| err_at(cap, dev, format!("the PCI capability has no <{tag}>")))?;
        let v = n.attribute("id").unwrap_or("");
        let id = number(v)
            .filter(|x| *x <= 0xffff)
            .ok_or_else(|| err_at(n, dev, format!("<{tag} id='{v}'> is not a 16-bit number")))?;
        let name = n
            .text()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        Ok((id as u16, name))
    };
    let (vendor, vendor_name) = id_of("vendor")?;
    let (product, device_name) = id_of("product")?;
    // libvirt omits <class> when udev did not report it.
    let class = match child(cap, "class") {
        Some(n) => {
            let t = n.text().unwrap_or("").trim();
            number(t).filter(|v| *v <= 0xff_ffff).ok_or_else(|| {
                err_at(n, dev, format!("<class>{t}</class> is not a 24-bit number"))
            })? as u32
        }
        None => 0xff_ffff,
    };
    let mut d = Device::new(address, vendor, product, class);
    d.vendor_name = vendor_name;
    d.device_name = device_name;
    d.driver = child(root, "driver").and_then(|n| text_of(n, "name"));
    d.numa_node = child(cap, "numa")
        .and_then(|n| n.attribute("node"))
        .and_then(|v| v.trim().parse().ok());
    let mut group = None;
    for c in cap.children().filter(|c| c.is_element()) {
        match (c.tag_name().name(), c.attribute("type")) {
            ("capability", Some("phys_function")) => {
                if let Some(a) = child(c, "address") {
                    d.physfn = Some(address_attrs(a, dev)?);
                }
            }
            ("capability", Some("virt_functions")) => {
                for a in c.children().filter(|x| x.has_tag_name("address")) {
                    d.virtfns.push(address_attrs(a, dev)?);
                }
                d.sriov_totalvfs = c.attribute("maxCount").and_then(|v| v.parse().ok());
                d.sriov_numvfs = Some(d.virtfns.len() as u32);
            }
            ("capability", Some("pci-bridge")) => d.header_type = Some(1),
            ("capability", Some("cardbus-bridge")) => d.header_type = Some(2),
            ("iommuGroup", _) => {
                let v = c.attribute("number").unwrap_or("");
                let g = v.trim().parse::<u32>().map_err(|_| {
                    err_at(
                        c,
                        dev,
                        format!("<iommuGroup number='{v}'> is not a group number"),
                    )
                })?;
                let mut members = Vec::new();
                for a in c.children().filter(|x| x.has_tag_name("address")) {
                    members.push(address_attrs(a, dev)?);
                }
                d.iommu_group = Some(g);
                group = Some((g, members));
            }
            _ => {}
        }
    }
    // The sysfs path gives the parent bridges, as the sysfs reader finds them.
    if let Some(p) = text_of(root, "path") {
        let rel = p.strip_prefix("/sys/").unwrap_or(&p).to_string();
        d.parents = rel
            .split('/')
            .filter_map(super::sysfs::parse_sysfs_bdf)
            .filter(|a| *a != address)
            .collect();
        d.sysfs_path = Some(rel);
    }
    let name = if name.is_empty() {
        address.node_name()
    } else {
        name
    };
    Ok(Some(PciNode {
        name,
        parent: text_of(root, "parent"),
        device: d,
        group,
    }))
}

/// Build a host from the XML of every node device (non-PCI ones are
/// skipped). `source` names the origin for messages (`libvirt:URI`).
pub fn host_from_xml<'a>(
    source: &str,
    xmls: impl IntoIterator<Item = &'a str>,
) -> Result<Host, NodedevError> {
    let mut nodes = Vec::new();
    for x in xmls {
        if let Some(n) = parse_device(x)? {
            nodes.push(n);
        }
    }
    Ok(host_from_nodes(source, nodes))
}

/// Build a host from parsed PCI nodes.
pub fn host_from_nodes(source: &str, nodes: Vec<PciNode>) -> Host {
    let mut host = Host {
        source: source.to_string(),
        ..Host::default()
    };
    // libvirt re-reads the bound driver from sysfs for every document; its
    // test driver drops `<driver>` (so there "none" is not known).
    if !source.starts_with("libvirt:test:") {
        host.facts.drivers = super::Provenance::Measured;
    }
    let mut groups: BTreeMap<u32, Vec<GroupMember>> = BTreeMap::new();
    let mut parent_of: BTreeMap<PciAddress, Option<String>> = BTreeMap::new();
    for n in nodes {
        if let Some((g, members)) = &n.group {
            let e = groups.entry(*g).or_default();
            for m in members.iter().chain(std::iter::once(&n.device.address)) {
                let gm = GroupMember::Pci(*m);
                if !e.contains(&gm) {
                    e.push(gm);
                }
            }
        }
        parent_of.insert(n.device.address, n.parent);
        host.devices.insert(n.device.address, n.device);
    }
    for m in groups.values_mut() {
        m.sort();
    }
    // Without <path>, the parents come from the <parent> chain.
    let by_name: BTreeMap<String, PciAddress> =
        host.devices.keys().map(|a| (a.node_name(), *a)).collect();
    let addrs: Vec<PciAddress> = host.devices.keys().copied().collect();
    for a in addrs {
        if host.devices.get(&a).is_some_and(|d| d.sysfs_path.is_some()) {
            continue;
        }
        let mut chain = Vec::new();
        let mut cur = parent_of.get(&a).cloned().flatten();
        while let Some(p) = cur {
            let Some(pa) = by_name.get(&p) else {
                // A parent libvirt did not list (filtered out, or a test
                // file): its name still says its address.
                if let Ok(crate::address::DeviceSpec::Function(pa)) =
                    crate::address::DeviceSpec::parse(&p)
                {
                    if p.starts_with("pci_") && !chain.contains(&pa) {
                        chain.push(pa);
                    }
                }
                break;
            };
            if chain.contains(pa) || chain.len() > 64 {
                break;
            }
            chain.push(*pa);
            cur = parent_of.get(pa).cloned().flatten();
        }
        chain.reverse();
        if let Some(d) = host.devices.get_mut(&a) {
            d.parents = chain;
        }
    }
    // libvirt prints no <iommuGroup> when the host has no IOMMU (§5.1).
    host.iommu = if !groups.is_empty() {
        IommuState::Enabled
    } else if host.devices.is_empty() {
        IommuState::Unknown
    } else {
        IommuState::Disabled
    };
    host.groups = groups;
    host.link_groups();
    host.mark_intrinsic_critical();
    host
}

/// The PCI hostdevs of domain documents as [`DomainUse`]s: `(name, running,
/// xml)` for each domain. Unreadable documents are skipped (the caller
/// reports them); sources that cannot be read as addresses are skipped too.
pub fn domain_uses<'a>(
    domains: impl IntoIterator<Item = (&'a str, bool, &'a str)>,
) -> Vec<DomainUse> {
    let mut out = Vec::new();
    for (name, running, xml) in domains {
        let Ok(doc) = crate::domain::parse(xml) else {
            continue;
        };
        for h in crate::domain::pci_hostdevs(&doc) {
            if let Some(a) = h.address {
                let u = DomainUse {
                    domain: name.to_string(),
                    address: a,
                    running,
                    managed: h.is_managed(),
                };
                if !out.contains(&u) {
                    out.push(u);
                }
            }
        }
    }
    out
}

/// Whether a libvirt URI names this machine (`qemu:///system`,
/// `qemu+unix:///system`): no host part, and not the test driver (whose
/// host is a file, not this machine).
pub fn uri_is_local(uri: &str) -> bool {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return false;
    };
    let driver = scheme.split('+').next().unwrap_or("");
    let transport = scheme.split('+').nth(1).unwrap_or("");
    driver != "test" && (transport.is_empty() || transport == "unix") && rest.starts_with('/')
}

/// Add what only sysfs knows (host-critical flags, reset methods, driver
/// overrides, boot VGA) from `local` to a host read through libvirt on the
/// same machine. libvirt's facts (groups, drivers, domains) stay.
pub fn merge_local_facts(host: &mut Host, local: &Host) {
    for (a, d) in host.devices.iter_mut() {
        let Some(l) = local.devices.get(a) else {
            continue;
        };
        if l.vendor_id != d.vendor_id || l.device_id != d.device_id {
            continue;
        }
        for c in &l.critical {
            if !d.critical.contains(c) {
                d.critical.push(c.clone());
            }
        }
        d.critical.sort();
        d.reset_methods = d.reset_methods.take().or_else(|| l.reset_methods.clone());
        d.reset = d.reset.or(l.reset);
        d.boot_vga = d.boot_vga.or(l.boot_vga);
        d.driver_override = d
            .driver_override
            .take()
            .or_else(|| l.driver_override.clone());
        d.header_type = d.header_type.or(l.header_type);
        if d.subsystem_vendor_id.is_none() {
            d.subsystem_vendor_id = l.subsystem_vendor_id.clone();
            d.subsystem_device_id = l.subsystem_device_id.clone();
        }
    }
    host.usb = local.usb.clone();
    // This machine's own sysfs measured them.
    host.facts.root_filesystem = local.facts.root_filesystem;
    host.facts.default_route = local.facts.default_route;
    host.facts.boot_vga = local.facts.boot_vga;
    host.mark_intrinsic_critical();
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '\'' => o.push_str("&apos;"),
            '"' => o.push_str("&quot;"),
            c => o.push(c),
        }
    }
    o
}

fn addr_elem(a: &PciAddress) -> String {
    format!(
        "<address domain='0x{:04x}' bus='0x{:02x}' slot='0x{:02x}' function='0x{:x}'/>",
        a.domain, a.bus, a.slot, a.function
    )
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
        let _ = writeln!(s, "{i2}<path>/sys/{}</path>", esc(p));
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
            esc(drv)
        );
    }
    let _ = writeln!(s, "{i2}<capability type='pci'>");
    let _ = writeln!(s, "{i3}<class>0x{:06x}</class>", d.class_code());
    let _ = writeln!(s, "{i3}<domain>{}</domain>", a.domain);
    let _ = writeln!(s, "{i3}<bus>{}</bus>", a.bus);
    let _ = writeln!(s, "{i3}<slot>{}</slot>", a.slot);
    let _ = writeln!(s, "{i3}<function>{}</function>", a.function);
    let named = |tag: &str, id: u16, name: &Option<String>| match name {
        Some(n) => format!("{i3}<{tag} id='0x{id:04x}'>{}</{tag}>\n", esc(n)),
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
        let _ = writeln!(s, "    <name>{}</name>", esc(name));
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

#[cfg(test)]
mod tests {
    use super::*;

    const GPU: &str = "<device>
  <name>pci_0000_01_00_0</name>
  <path>/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0</path>
  <parent>pci_0000_00_01_0</parent>
  <driver><name>nouveau</name></driver>
  <capability type='pci'>
    <class>0x030000</class>
    <domain>0</domain><bus>1</bus><slot>0</slot><function>0</function>
    <product id='0x1c82'>GP107 [GeForce GTX 1050 Ti]</product>
    <vendor id='0x10de'>NVIDIA Corporation</vendor>
    <iommuGroup number='1'>
      <address domain='0x0000' bus='0x00' slot='0x01' function='0x0'/>
      <address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>
      <address domain='0x0000' bus='0x01' slot='0x00' function='0x1'/>
    </iommuGroup>
    <numa node='0'/>
  </capability>
</device>";

    #[test]
    fn reads_a_gpu_with_its_group_driver_and_parents() {
        let n = parse_device(GPU).unwrap().unwrap();
        assert_eq!(n.name, "pci_0000_01_00_0");
        let d = &n.device;
        assert_eq!(d.address, PciAddress::new(0, 1, 0, 0));
        assert_eq!(d.vendor_id, "0x10de");
        assert_eq!(d.device_id, "0x1c82");
        assert_eq!(d.class, "0x030000");
        assert_eq!(d.driver.as_deref(), Some("nouveau"));
        assert_eq!(d.iommu_group, Some(1));
        assert_eq!(d.numa_node, Some(0));
        assert_eq!(d.parents, vec![PciAddress::new(0, 0, 1, 0)]);
        assert_eq!(
            d.sysfs_path.as_deref(),
            Some("devices/pci0000:00/0000:00:01.0/0000:01:00.0")
        );
        assert_eq!(d.reset_methods, None, "the XML does not say: unknown");
        assert_eq!(n.group.unwrap().1.len(), 3);
    }

    #[test]
    fn non_pci_devices_are_skipped_and_garbage_is_located() {
        let scsi = "<device><name>scsi_host0</name><capability type='scsi_host'><host>0</host></capability></device>";
        assert_eq!(parse_device(scsi).unwrap(), None);
        let bad = GPU.replace("<bus>1</bus>", "<bus>300</bus>");
        let e = parse_device(&bad).unwrap_err();
        assert!(e.message.contains("<bus>300</bus>"), "{e}");
        assert_eq!(e.line, 8);
        assert_eq!(e.device.as_deref(), Some("pci_0000_01_00_0"));
        let e = parse_device("<device><name>x</name>").unwrap_err();
        assert_eq!(e.line, 1);
        let e = parse_device("<domain/>").unwrap_err();
        assert!(e.message.contains("expected a libvirt node device"));
    }

    #[test]
    fn local_uris() {
        assert!(uri_is_local("qemu:///system"));
        assert!(uri_is_local("qemu+unix:///session"));
        assert!(!uri_is_local("qemu+ssh://hv1/system"));
        assert!(!uri_is_local("qemu://hv1/system"));
        assert!(!uri_is_local("test:///default"));
        assert!(!uri_is_local("garbage"));
    }

    #[test]
    fn local_facts_add_critical_flags_and_resets() {
        let mut h = host_from_xml("lv", [GPU]).unwrap();
        let mut local = h.clone();
        let a = PciAddress::new(0, 1, 0, 0);
        let l = local.devices.get_mut(&a).unwrap();
        l.critical.push(super::super::Critical::BootVga);
        l.reset_methods = Some(vec!["flr".into()]);
        merge_local_facts(&mut h, &local);
        let d = &h.devices[&a];
        assert_eq!(d.critical, vec![super::super::Critical::BootVga]);
        assert_eq!(d.reset_methods, Some(vec!["flr".into()]));
        assert_eq!(
            d.driver.as_deref(),
            Some("nouveau"),
            "libvirt's driver stays"
        );
        // a different device at the same address is not merged
        let mut h2 = host_from_xml("lv", [GPU]).unwrap();
        local.devices.get_mut(&a).unwrap().device_id = "0x9999".into();
        merge_local_facts(&mut h2, &local);
        assert!(h2.devices[&a].critical.is_empty());
    }

    #[test]
    fn round_trips_through_test_driver_format() {
        let h = host_from_xml("x", [GPU]).unwrap();
        let xml = test_driver_xml(&h);
        let doc = crate::domain::parse(&xml).unwrap();
        let devs: Vec<String> = doc
            .root_element()
            .children()
            .filter(|c| c.has_tag_name("device"))
            .map(|c| xml[c.range()].to_string())
            .collect();
        let back = host_from_xml("x", devs.iter().map(String::as_str)).unwrap();
        assert_eq!(back.devices, h.devices);
        assert_eq!(back.groups, h.groups);
    }
}
