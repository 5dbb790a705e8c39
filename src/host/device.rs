//! One PCI function ([`Device`]): its ids as sysfs spells them, what it
//! is ([`Kind`]), and why the host may need it ([`Critical`]).
//!
//! Kept apart from [`Host`](super::Host): every source fills a `Device` the
//! same way, and every consumer reads one without the whole host.

use super::CriticalFact;
use crate::address::PciAddress;
use serde::{Deserialize, Serialize};
use std::fmt;

/// One PCI function.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Device {
    pub address: PciAddress,
    /// `0x8086`, as sysfs writes it.
    pub vendor_id: String,
    pub device_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subsystem_vendor_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subsystem_device_id: Option<String>,
    /// The 24-bit class, `0x0c0330`.
    pub class: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// PCI header type (0 endpoint, 1 PCI-to-PCI bridge, 2 CardBus) from
    /// config space when readable; otherwise derived from the class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_type: Option<u8>,
    pub driver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_override: Option<String>,
    pub iommu_group: Option<u32>,
    /// `reset_method` contents; `None` when the source does not say.
    #[serde(default)]
    pub reset_methods: Option<Vec<String>>,
    /// Whether a `reset` file exists; `None` when unknown.
    #[serde(default)]
    pub reset: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_vga: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numa_node: Option<i32>,
    /// SR-IOV: the PF of a VF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physfn: Option<PciAddress>,
    /// SR-IOV: the VFs of a PF.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub virtfns: Vec<PciAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sriov_totalvfs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sriov_numvfs: Option<u32>,
    /// Parent bridges from the root bus down to the direct parent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<PciAddress>,
    /// The sysfs path below `/sys`, when read from sysfs (`devices/pci0000:00/...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sysfs_path: Option<String>,
    /// Names given by the source (libvirt, a listing) when pci.ids is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
    /// Why the host needs this function (empty when it does not).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub critical: Vec<Critical>,
}

/// Why a function must stay with the host.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Critical {
    /// The controller behind the root filesystem (`block`: the device the
    /// source named, e.g. `sda2`; none when the user stated the controller).
    RootFilesystem {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        block: Option<String>,
    },
    /// The NIC that carries the default route (`interface` as the source
    /// named it; none when stated).
    DefaultRoute {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interface: Option<String>,
    },
    /// The firmware's boot VGA device (the host console).
    BootVga,
    /// The chipset ISA/LPC bridge (TPM, super-I/O, firmware flash).
    IsaBridge,
}

impl Critical {
    /// The whole-host fact this flag is an instance of (`None` for the
    /// ISA bridge, which follows from the class alone).
    pub fn fact(&self) -> Option<CriticalFact> {
        match self {
            Critical::RootFilesystem { .. } => Some(CriticalFact::RootFilesystem),
            Critical::DefaultRoute { .. } => Some(CriticalFact::DefaultRoute),
            Critical::BootVga => Some(CriticalFact::BootVga),
            Critical::IsaBridge => None,
        }
    }
}

impl fmt::Display for Critical {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Critical::RootFilesystem { block: Some(b) } => {
                let b = crate::text::escape(b);
                write!(f, "controller of the root filesystem (/dev/{b})")
            }
            Critical::RootFilesystem { block: None } => {
                write!(f, "controller of the root filesystem")
            }
            Critical::DefaultRoute { interface: Some(i) } => {
                let i = crate::text::escape(i);
                write!(f, "NIC carrying the default route ({i})")
            }
            Critical::DefaultRoute { interface: None } => {
                write!(f, "NIC carrying the default route")
            }
            Critical::BootVga => write!(f, "boot VGA device (the host's console)"),
            Critical::IsaBridge => {
                write!(f, "chipset ISA/LPC bridge (TPM, super-I/O, firmware flash)")
            }
        }
    }
}

/// What a function is, for planning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Header type 0: can be a hostdev.
    Endpoint,
    /// PCI-to-PCI bridge, root port, switch port, CardBus bridge: never a hostdev.
    Bridge,
    /// Class 0x0600: the host bridge (root complex).
    HostBridge,
}

impl Device {
    /// A minimal device for sources that know little (listings, tests).
    pub fn new(address: PciAddress, vendor: u16, device: u16, class: u32) -> Device {
        Device {
            address,
            vendor_id: format!("0x{vendor:04x}"),
            device_id: format!("0x{device:04x}"),
            subsystem_vendor_id: None,
            subsystem_device_id: None,
            class: format!("0x{class:06x}"),
            revision: None,
            header_type: None,
            driver: None,
            driver_override: None,
            iommu_group: None,
            reset_methods: None,
            reset: None,
            boot_vga: None,
            numa_node: None,
            physfn: None,
            virtfns: Vec::new(),
            sriov_totalvfs: None,
            sriov_numvfs: None,
            parents: Vec::new(),
            sysfs_path: None,
            vendor_name: None,
            device_name: None,
            critical: Vec::new(),
        }
    }

    pub fn vendor(&self) -> u16 {
        parse_hex(&self.vendor_id) as u16
    }

    pub fn device(&self) -> u16 {
        parse_hex(&self.device_id) as u16
    }

    /// The 24-bit class code.
    pub fn class_code(&self) -> u32 {
        parse_hex(&self.class)
    }

    /// Base class and subclass (`0x0604` for a PCI bridge).
    pub fn class16(&self) -> u16 {
        (self.class_code() >> 8) as u16
    }

    pub fn kind(&self) -> Kind {
        if let Some(h) = self.header_type {
            if h & 0x7f == 1 || h & 0x7f == 2 {
                return Kind::Bridge;
            }
        }
        match self.class16() {
            0x0600 => Kind::HostBridge,
            // PCI-to-PCI (incl. subtractive), CardBus, semi-transparent, InfiniBand-to-PCI
            0x0604 | 0x0607 | 0x0609 => Kind::Bridge,
            _ => Kind::Endpoint,
        }
    }

    pub fn is_bridge(&self) -> bool {
        matches!(self.kind(), Kind::Bridge)
    }

    /// A driver that leaves an IOMMU group viable for VFIO (the kernel's
    /// `driver_managed_dma` drivers; see libvirt.md §3).
    pub(crate) fn driver_is_vfio_safe(&self) -> bool {
        match self.driver.as_deref() {
            None => true,
            Some(d) => d == "vfio-pci" || d.starts_with("vfio") || d == "pci-stub",
        }
    }

    /// What the source knows about resetting this function: `Some(true)` when
    /// a reset method exists, `Some(false)` when there is none, `None` when
    /// the source does not say.
    pub fn can_reset(&self) -> Option<bool> {
        match (&self.reset_methods, self.reset) {
            (Some(m), _) if !m.is_empty() => Some(true),
            (_, Some(r)) => Some(r),
            (Some(_), None) => Some(false),
            (None, None) => None,
        }
    }
}

/// Parse `0x8086` / `8086` as hex; 0 when unreadable (sources validate first).
pub(crate) fn parse_hex(s: &str) -> u32 {
    // The spelling sysfs and snapshots use, `0x` and up to 8 digits, read
    // directly: every device's ids and class are read this way, and the
    // general way (trim, prefixes, `from_str_radix`) was a twentieth of an
    // inventory over a fleet.
    if let Some(digits) = s.as_bytes().strip_prefix(b"0x") {
        if (1..=8).contains(&digits.len()) {
            let v = digits.iter().try_fold(0u32, |n, c| {
                char::from(*c).to_digit(16).map(|d| (n << 4) | d)
            });
            if let Some(v) = v {
                return v;
            }
        }
    }
    parse_hex_any(s)
}

/// Every spelling [`parse_hex`] reads: spaces around, `0x`, `0X` or none.
fn parse_hex_any(s: &str) -> u32 {
    let t = s.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    u32::from_str_radix(t, 16).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The short way reads what the general way reads.
    #[test]
    fn hex_is_read_one_way() {
        for s in [
            "0x8086",
            "0x0c0330",
            "0xFFFFFFFF",
            "0x100000000",
            "0x",
            "0x+1",
            "0x 1",
            " 0x10",
            "0X10",
            "10de",
            "0xg",
            "0x00000001",
            "",
            "0x-1",
        ] {
            assert_eq!(parse_hex(s), parse_hex_any(s), "{s:?}");
        }
        assert_eq!(parse_hex("0x0c0330"), 0x0c0330);
    }

    #[test]
    fn kinds_from_class_and_header() {
        let a = PciAddress::new(0, 0, 1, 0);
        assert_eq!(Device::new(a, 0x8086, 0x1, 0x060400).kind(), Kind::Bridge);
        assert_eq!(
            Device::new(a, 0x8086, 0x1, 0x060000).kind(),
            Kind::HostBridge
        );
        assert_eq!(Device::new(a, 0x8086, 0x1, 0x030000).kind(), Kind::Endpoint);
        let mut d = Device::new(a, 0x8086, 0x1, 0x088000);
        d.header_type = Some(0x81);
        assert_eq!(d.kind(), Kind::Bridge);
    }
}
