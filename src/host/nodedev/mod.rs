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
//!
//! `read.rs` holds XML → model, `write.rs` model → XML; this file what both
//! directions share (the error and node types) and how libvirt's facts meet
//! this machine's ([`merge_local_facts`], [`uri_is_local`]).

mod read;
mod write;

pub use read::{host_from_nodes, host_from_xml, parse_device};
pub use write::{device_xml, test_driver_xml};

use super::{Device, Host};
use crate::address::PciAddress;
use std::fmt;

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

/// The PCI hostdevs of domain documents as [`DomainUse`](super::DomainUse)s: `(name, running,
/// xml)` for each domain. Unreadable documents are skipped (the caller
/// reports them); sources that cannot be read as addresses are skipped too.
pub(crate) fn domain_uses<'a>(
    domains: impl IntoIterator<Item = (&'a str, bool, &'a str)>,
) -> Vec<super::DomainUse> {
    let mut out = Vec::new();
    for (name, running, xml) in domains {
        let Ok(doc) = crate::domain::parse(xml) else {
            continue;
        };
        for h in crate::domain::pci_hostdevs(&doc) {
            if let Some(a) = h.address {
                let u = super::DomainUse {
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
