//! Where each host-critical fact comes from ([`Provenance`]), which facts
//! there are ([`CriticalFact`]), and what a user may state about them.
//!
//! Kept apart from the model's shape because this is the part the "ok means
//! ok" rule rests on: a plan says `ok` only on measured or stated facts, and
//! every source and `--root-disk`/`--default-nic`/`--boot-vga` meet here.

use super::{Critical, Device, Host, ResolveError};
use crate::address::PciAddress;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where a fact comes from.
///
/// The plan's verdict is only as true as its facts: a fact read from the
/// host's own sysfs/proc is *measured*, one the user gave is *stated*, one a
/// rule of thumb produced is *assumed*, and one no source gave is *unknown*.
/// Only measured and stated facts let a plan say `ok`; the others make it
/// `unverified` (see [`crate::plan`]).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Provenance {
    /// Read from the host's sysfs/proc (directly, through a snapshot of it,
    /// or printed by the host in a published listing).
    Measured,
    /// Given by the user (`snapshot --from-listing … --root-disk ADDR`).
    Stated,
    /// A rule of thumb (older listing conversions): not to be trusted.
    Assumed,
    /// No source said.
    #[default]
    Unknown,
}

impl Provenance {
    /// Measured or stated: a plan may rely on it.
    pub(crate) fn is_known(self) -> bool {
        matches!(self, Provenance::Measured | Provenance::Stated)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Provenance::Measured => "measured",
            Provenance::Stated => "stated",
            Provenance::Assumed => "assumed",
            Provenance::Unknown => "unknown",
        }
    }
}

/// The host-critical facts a source establishes for the whole host.
///
/// "Known" is about the whole host: a measured root filesystem with no
/// device flagged [`Critical::RootFilesystem`] means no PCI function holds
/// it (root on a virtio-mmio disk, NFS over a non-PCI NIC, tmpfs), while an
/// unknown one means any function that could hold it might.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostFacts {
    /// Which function(s) hold the root filesystem.
    pub root_filesystem: Provenance,
    /// Which NIC(s) carry the default route.
    pub default_route: Provenance,
    /// Which function is the firmware's boot VGA device.
    pub boot_vga: Provenance,
    /// Whether `driver: null` means "no driver" (measured) or "the source
    /// does not say" (a listing without `Kernel driver in use:` lines).
    #[serde(default)]
    pub drivers: Provenance,
    /// IOMMU groups the source describes inconsistently (a device names a
    /// group the source does not list, a group id appears twice, the group
    /// directory cannot be read): id → why. Their membership is unknown.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inconsistent_groups: BTreeMap<u32, String>,
    /// The whole group table could not be read (e.g. an unreadable
    /// `/sys/kernel/iommu_groups`): every membership is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_unreadable: Option<String>,
}

impl HostFacts {
    /// Every host-critical fact measured (a host read from its own sysfs).
    pub fn measured() -> HostFacts {
        HostFacts {
            root_filesystem: Provenance::Measured,
            default_route: Provenance::Measured,
            boot_vga: Provenance::Measured,
            drivers: Provenance::Measured,
            ..HostFacts::default()
        }
    }
}

/// A host-critical fact, for asking which ones a device could be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CriticalFact {
    RootFilesystem,
    DefaultRoute,
    BootVga,
}

impl CriticalFact {
    pub const ALL: [CriticalFact; 3] = [
        CriticalFact::RootFilesystem,
        CriticalFact::DefaultRoute,
        CriticalFact::BootVga,
    ];

    /// What it is, in words ("the controller of the root filesystem").
    pub fn describe(self) -> &'static str {
        match self {
            CriticalFact::RootFilesystem => "the controller of the root filesystem",
            CriticalFact::DefaultRoute => "the NIC carrying the default route",
            CriticalFact::BootVga => "the boot VGA device",
        }
    }

    /// Whether a function of this class can be it at all. A bound, not a
    /// guess: the kernel's boot VGA is a display (or pre-2.0 VGA-compatible)
    /// function; a root filesystem sits behind a storage, USB, SD, Thunderbolt
    /// or (NFS/iSCSI root) network function; a default route behind a
    /// network, wireless, InfiniBand, USB or Thunderbolt function.
    /// Unclassified (0x00, 0xff) functions can be anything.
    pub(crate) fn possible_for_class(self, class16: u16) -> bool {
        let base = class16 >> 8;
        if base == 0x00 || base == 0xff {
            return true;
        }
        match self {
            CriticalFact::BootVga => base == 0x03,
            CriticalFact::RootFilesystem => {
                matches!(base, 0x01 | 0x02) || matches!(class16, 0x0c03 | 0x0c04 | 0x0c0a | 0x0805)
            }
            CriticalFact::DefaultRoute => {
                matches!(base, 0x02 | 0x0d) || matches!(class16, 0x0c03 | 0x0c06 | 0x0c0a)
            }
        }
    }
}

/// Whether the host has an IOMMU with groups.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum IommuState {
    /// `/sys/kernel/iommu_groups` has groups.
    Enabled,
    /// The directory is empty (or the source says there is no IOMMU).
    Disabled,
    /// The source cannot tell (e.g. a plain `lspci` listing).
    #[default]
    Unknown,
}

impl Host {
    /// Where the host's fact `f` comes from.
    pub fn fact(&self, f: CriticalFact) -> Provenance {
        match f {
            CriticalFact::RootFilesystem => self.facts.root_filesystem,
            CriticalFact::DefaultRoute => self.facts.default_route,
            CriticalFact::BootVga => self.facts.boot_vga,
        }
    }

    fn fact_mut(&mut self, f: CriticalFact) -> &mut Provenance {
        match f {
            CriticalFact::RootFilesystem => &mut self.facts.root_filesystem,
            CriticalFact::DefaultRoute => &mut self.facts.default_route,
            CriticalFact::BootVga => &mut self.facts.boot_vga,
        }
    }

    /// Whether `d`, left on the host, keeps its IOMMU group viable: the
    /// kernel's rule (`vfio_dev_viable`, drivers/vfio/group.c) accepts a
    /// member on vfio-pci, pci-stub or no driver. "No driver" counts only
    /// where the source measured drivers.
    pub(crate) fn keeps_group_viable(&self, d: &Device) -> bool {
        d.driver_is_vfio_safe() && (d.driver.is_some() || self.facts.drivers.is_known())
    }

    /// The host-critical facts that are not known for `d`: the fact is
    /// unknown or assumed for this host, and `d`'s class could be it.
    pub fn unknown_facts(&self, d: &Device) -> Vec<CriticalFact> {
        CriticalFact::ALL
            .into_iter()
            .filter(|f| !self.fact(*f).is_known() && f.possible_for_class(d.class16()))
            .collect()
    }

    /// Record what the user states: `devices` hold fact `f` (an empty list
    /// states that no PCI function does). Replaces whatever the source
    /// said about `f`; the flags carry no device names (the user gave none).
    pub fn state_fact(
        &mut self,
        f: CriticalFact,
        devices: &[PciAddress],
    ) -> Result<(), ResolveError> {
        for a in devices {
            if !self.devices.contains_key(a) {
                return Err(self.not_found(&a.to_string(), |d| {
                    d.address.bus == a.bus && d.address.domain == a.domain
                }));
            }
        }
        for d in self.devices.values_mut() {
            d.critical.retain(|c| c.fact() != Some(f));
            if f == CriticalFact::BootVga && (d.class16() == 0x0300 || d.boot_vga.is_some()) {
                d.boot_vga = Some(false);
            }
            if devices.contains(&d.address) {
                d.critical.push(match f {
                    CriticalFact::RootFilesystem => Critical::RootFilesystem { block: None },
                    CriticalFact::DefaultRoute => Critical::DefaultRoute { interface: None },
                    CriticalFact::BootVga => {
                        d.boot_vga = Some(true);
                        Critical::BootVga
                    }
                });
                d.critical.sort();
            }
        }
        *self.fact_mut(f) = Provenance::Stated;
        Ok(())
    }
}
