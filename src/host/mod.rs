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

pub mod fake;
pub mod listing;
pub mod nodedev;
pub mod snapshot;
pub mod sysfs;

use crate::address::{DeviceSpec, PciAddress};
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
    pub fn is_known(self) -> bool {
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
    pub fn possible_for_class(self, class16: u16) -> bool {
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
    pub fn from_name(name: &str) -> GroupMember {
        match crate::host::sysfs::parse_sysfs_bdf(name) {
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
    pub fn driver_is_vfio_safe(&self) -> bool {
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
pub fn parse_hex(s: &str) -> u32 {
    let t = s.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    u32::from_str_radix(t, 16).unwrap_or(0)
}

/// Resolving a user's device spec against a host failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolveError {
    pub spec: String,
    pub message: String,
    /// Candidates or a hint, one per line.
    pub help: Vec<String>,
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ResolveError {}

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

    /// Whether any IOMMU group exists.
    pub fn has_groups(&self) -> bool {
        !self.groups.is_empty()
    }

    /// Domains that use `a`.
    pub fn used_by(&self, a: &PciAddress) -> Vec<&DomainUse> {
        self.domains.iter().filter(|u| &u.address == a).collect()
    }

    /// Functions in the same slot (multifunction siblings), including `a`.
    pub fn siblings(&self, a: &PciAddress) -> Vec<PciAddress> {
        let slot = a.slot_of();
        self.devices
            .keys()
            .filter(|k| k.slot_of() == slot)
            .copied()
            .collect()
    }

    /// The functions behind a USB bus's controller.
    pub fn usb_bus(&self, bus: u32) -> Option<&UsbBus> {
        self.usb.iter().find(|b| b.bus == bus)
    }

    /// Turn a user's spec into functions present on this host.
    pub fn resolve(&self, spec: &DeviceSpec) -> Result<Vec<PciAddress>, ResolveError> {
        match spec {
            DeviceSpec::Function(a) => {
                if self.devices.contains_key(a) {
                    Ok(vec![*a])
                } else {
                    Err(self.not_found(&a.to_string(), |d| {
                        d.address.bus == a.bus && d.address.domain == a.domain
                    }))
                }
            }
            DeviceSpec::Slot(s) => {
                let v: Vec<PciAddress> = self
                    .devices
                    .keys()
                    .filter(|k| k.slot_of() == *s)
                    .copied()
                    .collect();
                if v.is_empty() {
                    Err(self.not_found(&s.to_string(), |d| {
                        d.address.bus == s.bus && d.address.domain == s.domain
                    }))
                } else {
                    Ok(v)
                }
            }
            DeviceSpec::Ids { vendor, device } => {
                let v: Vec<&Device> = self
                    .devices
                    .values()
                    .filter(|d| d.vendor() == *vendor && d.device() == *device)
                    .collect();
                match v.len() {
                    1 => Ok(vec![v[0].address]),
                    0 => Err(ResolveError {
                        spec: spec.to_string(),
                        message: format!(
                            "no PCI device with vendor:device {spec} on {}",
                            self.source
                        ),
                        help: vec![format!(
                            "`{}` shows the devices of this host",
                            self.suggest("list")
                        )],
                    }),
                    _ => Err(ResolveError {
                        spec: spec.to_string(),
                        message: format!(
                            "{} PCI devices match vendor:device {spec}; name one by address",
                            v.len()
                        ),
                        help: v
                            .iter()
                            .map(|d| format!("candidate: {}", d.address))
                            .collect(),
                    }),
                }
            }
        }
    }

    fn not_found(&self, what: &str, near: impl Fn(&Device) -> bool) -> ResolveError {
        let mut help: Vec<String> = self
            .devices
            .values()
            .filter(|d| near(d))
            .take(8)
            .map(|d| format!("on that bus: {}", d.address))
            .collect();
        if help.is_empty() {
            help.push(format!(
                "`{}` shows the devices of this host",
                self.suggest("list")
            ));
        }
        ResolveError {
            spec: what.to_string(),
            message: format!("no PCI device {what} on {}", self.source),
            help,
        }
    }

    /// Resolve several specs, keeping order and dropping repeats.
    pub fn resolve_all(&self, specs: &[DeviceSpec]) -> Result<Vec<PciAddress>, ResolveError> {
        let mut out = Vec::new();
        for s in specs {
            for a in self.resolve(s)? {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
        Ok(out)
    }

    /// A `virt-pci` command line for `rest` (`add vm.xml 01:00.1`) on this
    /// same host: with the options of [`Host::invocation`], else the ones its
    /// source implies (`--snapshot FILE`, `--root DIR`, `-c URI`).
    pub fn suggest(&self, rest: &str) -> String {
        let inv = match &self.invocation {
            Some(i) => i.clone(),
            None => {
                let quote = |s: &str| crate::address::shell_word(s);
                if let Some(f) = self.source.strip_prefix("snapshot:") {
                    format!("--snapshot {}", quote(f))
                } else if let Some(u) = self.source.strip_prefix("libvirt:") {
                    format!("-c {}", quote(u))
                } else if let Some(r) = self.source.strip_prefix("sysfs:") {
                    if r == "/" {
                        String::new()
                    } else {
                        format!("--root {}", quote(r))
                    }
                } else {
                    String::new()
                }
            }
        };
        if inv.is_empty() {
            format!("virt-pci {rest}")
        } else {
            format!("virt-pci {inv} {rest}")
        }
    }

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
    pub fn keeps_group_viable(&self, d: &Device) -> bool {
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

    /// Note every IOMMU group the source describes inconsistently: a
    /// function that names a group the table lacks, or a group that lists a
    /// function which names another group. Their membership is unknown.
    pub fn check_group_consistency(&mut self) {
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
    pub fn link_groups(&mut self) {
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
        let v: Vec<Group> = Vec::deserialize(d)?;
        Ok(v.into_iter().map(|g| (g.id, g.members)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn resolve_vendor_device_lists_candidates() {
        let mut h = Host {
            source: "test".into(),
            ..Host::default()
        };
        for f in 0..2 {
            let a = PciAddress::new(0, 1, 0, f);
            h.devices
                .insert(a, Device::new(a, 0x10de, 0x1f82, 0x030000));
        }
        let spec = DeviceSpec::parse("10de:1f82").unwrap();
        let e = h.resolve(&spec).unwrap_err();
        assert!(e.message.contains("2 PCI devices match"), "{e}");
        assert_eq!(
            e.help,
            vec!["candidate: 0000:01:00.0", "candidate: 0000:01:00.1"]
        );
        let e = h
            .resolve(&DeviceSpec::parse("8086:1234").unwrap())
            .unwrap_err();
        assert!(e
            .message
            .contains("no PCI device with vendor:device 8086:1234"));
        let slot = h.resolve(&DeviceSpec::parse("01:00").unwrap()).unwrap();
        assert_eq!(slot.len(), 2);
        let e = h
            .resolve(&DeviceSpec::parse("01:00.2").unwrap())
            .unwrap_err();
        assert_eq!(e.message, "no PCI device 0000:01:00.2 on test");
        assert!(e.help.contains(&"on that bus: 0000:01:00.0".to_string()));
    }
}
