//! The host model: what a machine has, independent of where it was read.
//!
//! Every source of host facts — a sysfs tree under any root ([`sysfs`]), a
//! saved snapshot ([`snapshot`]), libvirt's node-device XML ([`nodedev`]) or a
//! published IOMMU listing ([`listing`]) — produces one [`Host`]. Everything
//! downstream (the plan, the hostdev generator, the validator, the actions)
//! reads only this model, so a remote host, a CI snapshot and the live machine
//! give the same answers.
//!
//! Values keep the spelling sysfs uses where users compare them with sysfs
//! (`vendor_id` is `0x8086`, `class` is `0x0c0330`), and unknown is `None`,
//! never a guessed default: a listing does not say which reset methods a
//! device has, and the plan must not pretend it has none.
//!
//! Here: [`Host`] and its groups, USB buses and domain users; `device.rs`
//! one function; `facts.rs` the provenance of host-critical facts;
//! `resolve.rs` user specs → addresses.

mod device;
mod facts;
pub mod fake;
pub mod listing;
pub mod nodedev;
mod resolve;
pub mod snapshot;
pub mod sysfs;

pub(crate) use device::parse_hex;
pub use device::{Critical, Device, Kind};
pub use facts::{CriticalFact, HostFacts, IommuState, Provenance};
pub use resolve::ResolveError;

use crate::address::PciAddress;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A whole host.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Host {
    /// Where the facts came from (`sysfs:/`, `snapshot:FILE`, `libvirt:URI`,
    /// `listing:FILE`), for messages.
    pub source: String,
    /// Free-form provenance, e.g. the `# source:` line of a published listing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provenance: Vec<String>,
    /// IOMMU state as far as it is known.
    pub iommu: IommuState,
    /// Every PCI function, by address.
    #[serde(with = "device_list")]
    pub devices: BTreeMap<PciAddress, Device>,
    /// IOMMU groups by number, with every member (PCI or not).
    #[serde(with = "group_list")]
    pub groups: BTreeMap<u32, Vec<GroupMember>>,
    /// USB buses and the PCI controller behind each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usb: Vec<UsbBus>,
    /// Domains (VMs) that use devices, when the source knows (libvirt).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<DomainUse>,
    /// Where the host-critical facts come from (see [`HostFacts`]).
    #[serde(default)]
    pub facts: HostFacts,
    /// The global options that name this host (and the libvirt connection)
    /// on a command line, e.g. `--snapshot h.json` or `-c URI --root DIR`,
    /// so suggested commands run as printed. Set by whoever read the host
    /// for a command line; see [`Host::suggest`].
    #[serde(skip)]
    pub invocation: Option<String>,
}

/// A member of an IOMMU group: a PCI function, or something else the kernel
/// put there (an mdev UUID, a platform device). Non-PCI members are kept:
/// they decide whether a group can be passed through at all.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GroupMember {
    Pci(PciAddress),
    Other(String),
}

impl fmt::Display for GroupMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupMember::Pci(a) => a.fmt(f),
            GroupMember::Other(s) => f.write_str(&crate::text::escape(s)),
        }
    }
}

impl GroupMember {
    /// A group member as the kernel names it in `iommu_groups/N/devices`.
    pub(crate) fn from_name(name: &str) -> GroupMember {
        match sysfs::parse_sysfs_bdf(name) {
            Some(a) => GroupMember::Pci(a),
            None => GroupMember::Other(name.to_string()),
        }
    }
}

impl Serialize for GroupMember {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GroupMember {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::address::with_str(d, |s| Ok(GroupMember::from_name(s)))
    }
}

/// A USB bus (root hub) and what is plugged into it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct UsbBus {
    pub bus: u32,
    /// The PCI controller that owns the bus (`None` for non-PCI controllers).
    pub controller: Option<PciAddress>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<UsbDevice>,
}

/// One USB device.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct UsbDevice {
    pub bus: u32,
    pub device: u32,
    /// `046d`, as sysfs `idVendor` writes it.
    pub vendor_id: String,
    pub product_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A libvirt domain's use of one PCI function.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DomainUse {
    pub domain: String,
    pub address: PciAddress,
    pub running: bool,
    pub managed: bool,
}

impl Host {
    pub fn device(&self, a: &PciAddress) -> Option<&Device> {
        self.devices.get(a)
    }

    /// The members of the group of `a` (empty when it has none).
    pub fn group_of(&self, a: &PciAddress) -> &[GroupMember] {
        self.devices
            .get(a)
            .and_then(|d| d.iommu_group)
            .and_then(|g| self.groups.get(&g))
            .map(|v| v.as_slice())
            .unwrap_or(&[])
    }

    /// Domains that use `a`.
    pub fn used_by(&self, a: &PciAddress) -> Vec<&DomainUse> {
        self.domains.iter().filter(|u| &u.address == a).collect()
    }

    /// Functions in the same slot (multifunction siblings), including `a`.
    /// A range of the ordered map (a slot's functions are adjacent keys), so
    /// asking it once per group stays linear on hosts of 16,384 functions.
    pub fn siblings(&self, a: &PciAddress) -> Vec<PciAddress> {
        let first = PciAddress::new(a.domain, a.bus, a.slot, 0);
        let last = PciAddress::new(a.domain, a.bus, a.slot, u8::MAX);
        self.devices.range(first..=last).map(|(k, _)| *k).collect()
    }

    /// The functions behind a USB bus's controller.
    pub fn usb_bus(&self, bus: u32) -> Option<&UsbBus> {
        self.usb.iter().find(|b| b.bus == bus)
    }

    /// Note every IOMMU group the source describes inconsistently: a
    /// function that names a group the table lacks, or a group that lists a
    /// function which names another group. Their membership is unknown.
    pub(crate) fn check_group_consistency(&mut self) {
        for d in self.devices.values() {
            let Some(g) = d.iommu_group else { continue };
            match self.groups.get(&g) {
                None => {
                    self.facts.inconsistent_groups.entry(g).or_insert_with(|| {
                        format!(
                            "{} names IOMMU group {g}, which {} does not list",
                            d.address, self.source
                        )
                    });
                }
                Some(m) if !m.contains(&GroupMember::Pci(d.address)) => {
                    self.facts.inconsistent_groups.entry(g).or_insert_with(|| {
                        format!(
                            "{} names IOMMU group {g}, whose member list in {} leaves it out",
                            d.address, self.source
                        )
                    });
                }
                Some(_) => {}
            }
        }
        for (g, members) in &self.groups {
            for m in members {
                let GroupMember::Pci(a) = m else { continue };
                if let Some(other) = self.devices.get(a).and_then(|d| d.iommu_group) {
                    if other != *g {
                        self.facts.inconsistent_groups.entry(*g).or_insert_with(|| {
                            format!("{} lists {a}, which names IOMMU group {other}", self.source)
                        });
                    }
                }
            }
        }
    }

    /// Recompute the critical flags that follow from the device itself
    /// (boot VGA, ISA bridge); sources add root-fs and default-route flags.
    pub fn mark_intrinsic_critical(&mut self) {
        for d in self.devices.values_mut() {
            if d.boot_vga == Some(true) && !d.critical.contains(&Critical::BootVga) {
                d.critical.push(Critical::BootVga);
            }
            if d.class16() == 0x0601 && !d.critical.contains(&Critical::IsaBridge) {
                d.critical.push(Critical::IsaBridge);
            }
            d.critical.sort();
        }
    }

    /// Fill `Device::iommu_group` from `groups` (for sources that list
    /// groups only) and make sure every group member that is a PCI function
    /// points back at its group.
    pub(crate) fn link_groups(&mut self) {
        for (g, members) in &self.groups {
            for m in members {
                if let GroupMember::Pci(a) = m {
                    if let Some(d) = self.devices.get_mut(a) {
                        d.iommu_group = Some(*g);
                    }
                }
            }
        }
        if self.iommu == IommuState::Unknown && !self.groups.is_empty() {
            self.iommu = IommuState::Enabled;
        }
    }
}

mod device_list {
    use super::Device;
    use crate::address::PciAddress;
    use serde::{Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(
        m: &BTreeMap<PciAddress, Device>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let v: Vec<&Device> = m.values().collect();
        v.serialize(s)
    }

    /// Straight into the map, one device at a time: collecting a `Vec`
    /// first moved every (large) `Device` several times (growth, sort,
    /// bulk build), a fifth of reading a fleet of snapshots.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<PciAddress, Device>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = BTreeMap<PciAddress, Device>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of PCI devices")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut m = BTreeMap::new();
                while let Some(dev) = seq.next_element::<Device>()? {
                    m.insert(dev.address, dev);
                }
                Ok(m)
            }
        }
        d.deserialize_seq(V)
    }
}

mod group_list {
    use super::GroupMember;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    #[derive(Serialize, Deserialize)]
    struct Group {
        id: u32,
        members: Vec<GroupMember>,
    }

    pub fn serialize<S: Serializer>(
        m: &BTreeMap<u32, Vec<GroupMember>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let v: Vec<Group> = m
            .iter()
            .map(|(id, members)| Group {
                id: *id,
                members: members.clone(),
            })
            .collect();
        v.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<u32, Vec<GroupMember>>, D::Error> {
        GroupTable::deserialize(d).map(|t| t.groups)
    }

    /// The group list as written: each group straight into the map (a
    /// later group of the same id replaces the earlier one), and the ids
    /// that were given more than once, for the reader to report.
    pub(crate) struct GroupTable {
        pub groups: BTreeMap<u32, Vec<GroupMember>>,
        pub repeated: Vec<u32>,
    }

    impl<'de> Deserialize<'de> for GroupTable {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = GroupTable;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a sequence")
                }
                fn visit_seq<A: serde::de::SeqAccess<'de>>(
                    self,
                    mut seq: A,
                ) -> Result<GroupTable, A::Error> {
                    let mut t = GroupTable {
                        groups: BTreeMap::new(),
                        repeated: Vec::new(),
                    };
                    while let Some(g) = seq.next_element::<Group>()? {
                        if t.groups.insert(g.id, g.members).is_some() {
                            t.repeated.push(g.id);
                        }
                    }
                    Ok(t)
                }
            }
            d.deserialize_seq(V)
        }
    }
}

/// The device list as written, for readers that take a host's fields one
/// by one (the snapshot reader).
pub(crate) struct DeviceTable(pub BTreeMap<PciAddress, Device>);

impl<'de> Deserialize<'de> for DeviceTable {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        device_list::deserialize(d).map(DeviceTable)
    }
}

pub(crate) use group_list::GroupTable;
