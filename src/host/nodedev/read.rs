//! Node-device XML → the model: one `<device>` document into a [`PciNode`],
//! and every node of a host into a [`Host`] (groups, parents, IOMMU state).
//!
//! Kept apart from the writer (`write.rs`): the reader must accept whatever
//! libvirt prints (libvirt's own corpus is its test), and locate every error
//! at its line and column, while the writer emits one fixed form.

use super::{NodedevError, PciNode};
use crate::address::{Field, PciAddress};
use crate::host::{Device, GroupMember, Host, IommuState};
use std::collections::BTreeMap;

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
    // The one reader of libvirt's <address> (address/xml.rs, strtoul as
    // libvirt's virPCIDeviceAddressParseXML reads it); libvirt writes all
    // four attributes here, so a missing one is an error.
    let e = crate::address::read_element(n);
    for (field, f) in Field::ALL.into_iter().zip(&e.fields) {
        let name = field.name();
        let Some(f) = f else {
            return Err(err_at(
                n,
                dev,
                format!("<address> has no `{name}` attribute"),
            ));
        };
        if f.read.is_err() {
            return Err(err_at(
                n,
                dev,
                format!(
                    "<address {name}='{}'> is not a number up to {:#x}",
                    f.text,
                    field.max()
                ),
            ));
        }
    }
    e.address()
        .ok_or_else(|| err_at(n, dev, "<address> is not a PCI address".to_string()))
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
    let mut d = pci_identity(cap, dev)?;
    d.driver = child(root, "driver").and_then(|n| text_of(n, "name"));
    d.numa_node = child(cap, "numa")
        .and_then(|n| n.attribute("node"))
        .and_then(|v| v.trim().parse().ok());
    let group = sub_capabilities(cap, dev, &mut d)?;
    parents_from_path(root, &mut d);
    let name = if name.is_empty() {
        d.address.node_name()
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

/// The PCI capability's address (decimal `<domain>`, `<bus>`, `<slot>`,
/// `<function>`), `<vendor>`/`<product>` ids and names, and `<class>`
/// (libvirt omits it when udev did not report it: read as `0xffffff`).
fn pci_identity(cap: roxmltree::Node<'_, '_>, dev: Option<&str>) -> Result<Device, NodedevError> {
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
    Ok(d)
}

/// The capabilities inside the PCI one: SR-IOV (`phys_function`,
/// `virt_functions`), bridge header types, and `<iommuGroup>` (returned,
/// with its member addresses).
fn sub_capabilities(
    cap: roxmltree::Node<'_, '_>,
    dev: Option<&str>,
    d: &mut Device,
) -> Result<Option<(u32, Vec<PciAddress>)>, NodedevError> {
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
    Ok(group)
}

/// The sysfs `<path>` gives the parent bridges, as the sysfs reader finds
/// them.
fn parents_from_path(root: roxmltree::Node<'_, '_>, d: &mut Device) {
    if let Some(p) = text_of(root, "path") {
        let rel = p.strip_prefix("/sys/").unwrap_or(&p).to_string();
        let address = d.address;
        d.parents = rel
            .split('/')
            .filter_map(crate::host::sysfs::parse_sysfs_bdf)
            .filter(|a| *a != address)
            .collect();
        d.sysfs_path = Some(rel);
    }
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
        host.facts.drivers = crate::host::Provenance::Measured;
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
        let chain = parent_chain(a, &parent_of, &by_name);
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

/// The bridges above `a` from libvirt's `<parent>` names, root first. A
/// parent libvirt did not list (filtered out, or a test file) still says
/// its address by its name, and ends the chain.
fn parent_chain(
    a: PciAddress,
    parent_of: &BTreeMap<PciAddress, Option<String>>,
    by_name: &BTreeMap<String, PciAddress>,
) -> Vec<PciAddress> {
    let mut chain = Vec::new();
    let mut cur = parent_of.get(&a).cloned().flatten();
    while let Some(p) = cur {
        let Some(pa) = by_name.get(&p) else {
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
    chain
}
