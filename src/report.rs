//! Machine-readable views of the host (`list --json`, `list --tree
//! --json`, `show --json`, `hostdevs --json`), and what `list` selects and
//! says per group.
//!
//! These are the stable, documented shapes (`schemas/*.schema.json`); the
//! internal model may grow without breaking scripts that read them. The
//! text views are printed from the same values, so text and JSON cannot
//! disagree.

use crate::address::PciAddress;
use crate::host::{Device, GroupMember, Host, IommuState, Kind};
use crate::pciids::PciIds;
use crate::plan::{self, Code, PlanOptions, Verdict};
use serde::Serialize;

#[derive(Serialize, Debug)]
pub struct ListReport {
    pub source: String,
    pub iommu: IommuState,
    pub devices: Vec<DeviceView>,
    pub groups: Vec<GroupView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

#[derive(Serialize, Debug)]
pub struct GroupView {
    pub id: u32,
    pub members: Vec<String>,
    /// Whether the group can go to a guest as a whole ([`group_verdict`]).
    pub can_pass: GroupVerdict,
}

/// `list`'s "can pass" column: the plan for every endpoint of the group.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct GroupVerdict {
    /// The plan's verdict; `nothing` when no member can be a hostdev
    /// (bridges, host bridges only).
    pub verdict: Verdict,
    /// Why not: the blockers' codes (`host-critical`, ...), or for
    /// `unverified` the codes of the facts that are not known.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub codes: Vec<Code>,
}

impl GroupVerdict {
    /// The column's text: `yes`, `no (host-critical)`,
    /// `unverified (fact-unknown)`, `- (no endpoint)`.
    pub fn text(&self) -> String {
        let codes = || {
            let v: Vec<&str> = self.codes.iter().map(|c| c.as_str()).collect();
            v.join(", ")
        };
        match self.verdict {
            Verdict::Ok => "yes".into(),
            Verdict::Blocked => format!("no ({})", codes()),
            Verdict::Unverified => format!("unverified ({})", codes()),
            Verdict::Nothing => "- (no endpoint)".into(),
        }
    }
}

/// Can IOMMU group `id` go to a guest? The plan (one place for the rules)
/// for all of its endpoints, with the whole group.
pub fn group_verdict(host: &Host, id: u32) -> GroupVerdict {
    let endpoints: Vec<PciAddress> = host
        .groups
        .get(&id)
        .into_iter()
        .flatten()
        .filter_map(|m| match m {
            GroupMember::Pci(a) => Some(*a),
            GroupMember::Other(_) => None,
        })
        .filter(|a| host.device(a).is_some_and(|d| d.kind() == Kind::Endpoint))
        .collect();
    if endpoints.is_empty() {
        return GroupVerdict {
            verdict: Verdict::Nothing,
            codes: Vec::new(),
        };
    }
    let (verdict, codes) = plan::verdict(host, &endpoints, PlanOptions::default());
    GroupVerdict { verdict, codes }
}

/// A device's display name: pci.ids, else the source's names, else ids.
pub fn display_name(ids: &PciIds, d: &Device) -> String {
    name_of(
        ids,
        d.vendor(),
        d.device(),
        d.vendor_name.as_deref(),
        d.device_name.as_deref(),
    )
}

/// [`display_name`] from the ids and the source's names (for views that
/// carry ids, not a [`Device`]). Not escaped: printing escapes.
pub fn name_of(
    ids: &PciIds,
    vendor_id: u16,
    device_id: u16,
    vendor_name: Option<&str>,
    device_name: Option<&str>,
) -> String {
    let vendor = ids
        .vendor(vendor_id)
        .map(str::to_string)
        .or_else(|| vendor_name.map(str::to_string));
    let device = ids
        .device(vendor_id, device_id)
        .map(str::to_string)
        .or_else(|| device_name.map(str::to_string));
    match (vendor, device) {
        // Listings give "Vendor Device" as one name.
        (Some(v), Some(dn)) if dn.starts_with(&v) => dn,
        (Some(v), Some(dn)) => format!("{v} {dn}"),
        (Some(v), None) => format!("{v} device {device_id:04x}"),
        (None, Some(dn)) => dn,
        (None, None) => format!("Device {vendor_id:04x}:{device_id:04x}"),
    }
}

/// Which functions `list` shows. Every given criterion must match (AND);
/// several `--group`s are alternatives (OR). Text matches ignore case.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Hex prefix of the 24-bit class (`03` display, `0300` VGA, `0c03`
    /// USB), else a substring of the class name (`vga`, `usb`, `ethernet`).
    pub class: Option<String>,
    /// A vendor id (`10de`, `0x10de`), else a substring of the vendor name.
    pub vendor: Option<String>,
    /// A substring of the device's display name ("Vendor Device").
    pub name: Option<String>,
    /// The bound driver's name, exactly (`none` for no driver).
    pub driver: Option<String>,
    /// IOMMU groups.
    pub groups: Vec<u32>,
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn contains_ci(hay: &str, needle: &str) -> bool {
    hay.to_lowercase().contains(&needle.to_lowercase())
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.class.is_none()
            && self.vendor.is_none()
            && self.name.is_none()
            && self.driver.is_none()
            && self.groups.is_empty()
    }

    pub fn matches(&self, ids: &PciIds, d: &Device) -> bool {
        if !self.groups.is_empty() && !d.iommu_group.is_some_and(|g| self.groups.contains(&g)) {
            return false;
        }
        if let Some(c) = &self.class {
            let c = c.trim().trim_start_matches("0x");
            let hex = d.class.trim_start_matches("0x").to_ascii_lowercase();
            let ok = if is_hex(c) && c.len() % 2 == 0 && c.len() <= 6 {
                hex.starts_with(&c.to_ascii_lowercase())
            } else {
                contains_ci(&ids.class_name(d.class16()), c)
            };
            if !ok {
                return false;
            }
        }
        if let Some(v) = &self.vendor {
            let v = v.trim();
            let id = v.trim_start_matches("0x");
            let ok = if is_hex(id) && id.len() == 4 {
                u16::from_str_radix(id, 16).ok() == Some(d.vendor())
            } else {
                let name = ids
                    .vendor(d.vendor())
                    .map(str::to_string)
                    .or_else(|| d.vendor_name.clone())
                    .unwrap_or_else(|| display_name(ids, d));
                contains_ci(&name, v)
            };
            if !ok {
                return false;
            }
        }
        if let Some(n) = &self.name {
            if !contains_ci(&display_name(ids, d), n) {
                return false;
            }
        }
        if let Some(want) = &self.driver {
            let have = d.driver.as_deref().unwrap_or("none");
            if have != want {
                return false;
            }
        }
        true
    }
}

#[derive(Serialize, Debug)]
pub struct DeviceView {
    pub address: PciAddress,
    pub node_name: String,
    pub iommu_group: Option<u32>,
    pub vendor_id: String,
    pub device_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subsystem_vendor_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subsystem_device_id: Option<String>,
    pub class: String,
    pub class_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
    pub driver: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver_override: Option<String>,
    pub reset_methods: Vec<String>,
    /// `null` when the source does not say whether a reset exists.
    pub reset: Option<bool>,
    pub kind: Kind,
    pub bridge: bool,
    pub critical: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<PciAddress>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub physfn: Option<PciAddress>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub virtfns: Vec<PciAddress>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub numa_node: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot_vga: Option<bool>,
    pub used_by: Vec<String>,
}

/// The hint shown instead of an empty group table.
pub(crate) const NO_IOMMU_HINT: &str = "no IOMMU groups: the IOMMU is off. Enable VT-d (Intel) or AMD-Vi/IOMMU (AMD) in the firmware, and boot with intel_iommu=on (Intel) or amd_iommu=on (AMD); then /sys/kernel/iommu_groups fills";

pub fn device_view(host: &Host, ids: &PciIds, d: &Device) -> DeviceView {
    DeviceView {
        address: d.address,
        node_name: d.address.node_name(),
        iommu_group: d.iommu_group,
        vendor_id: d.vendor_id.clone(),
        device_id: d.device_id.clone(),
        subsystem_vendor_id: d.subsystem_vendor_id.clone(),
        subsystem_device_id: d.subsystem_device_id.clone(),
        class: d.class.clone(),
        class_name: ids.class_name(d.class16()),
        vendor_name: ids
            .vendor(d.vendor())
            .map(str::to_string)
            .or_else(|| d.vendor_name.clone()),
        device_name: ids
            .device(d.vendor(), d.device())
            .map(str::to_string)
            .or_else(|| d.device_name.clone()),
        driver: d.driver.clone(),
        driver_override: d.driver_override.clone(),
        reset_methods: d.reset_methods.clone().unwrap_or_default(),
        reset: d.can_reset(),
        kind: d.kind(),
        bridge: d.is_bridge(),
        critical: d.critical.iter().map(|c| c.to_string()).collect(),
        parents: d.parents.clone(),
        physfn: d.physfn,
        virtfns: d.virtfns.clone(),
        numa_node: d.numa_node,
        boot_vga: d.boot_vga,
        used_by: host
            .used_by(&d.address)
            .iter()
            .map(|u| u.domain.clone())
            .collect(),
    }
}

/// The IOMMU groups `list` shows under `filter`: each group with a matching
/// function, whole (its other members travel with it).
pub fn shown_groups(host: &Host, ids: &PciIds, filter: &Filter) -> Vec<u32> {
    host.groups
        .iter()
        .filter(|(_, m)| {
            filter.is_empty()
                || m.iter().any(|x| match x {
                    GroupMember::Pci(a) => host.device(a).is_some_and(|d| filter.matches(ids, d)),
                    GroupMember::Other(_) => false,
                })
        })
        .map(|(id, _)| *id)
        .collect()
}

/// `list --json` under a filter: the groups of [`shown_groups`], and the
/// devices of those groups plus matching devices without a group.
pub fn list_report_filtered(host: &Host, ids: &PciIds, filter: &Filter) -> ListReport {
    let groups = shown_groups(host, ids, filter);
    let shown = |d: &Device| {
        filter.is_empty()
            || d.iommu_group.is_some_and(|g| groups.contains(&g))
            || filter.matches(ids, d)
    };
    ListReport {
        source: host.source.clone(),
        iommu: host.iommu,
        devices: host
            .devices
            .values()
            .filter(|d| shown(d))
            .map(|d| device_view(host, ids, d))
            .collect(),
        groups: groups
            .iter()
            .map(|id| GroupView {
                id: *id,
                members: host.groups[id].iter().map(|x| x.to_string()).collect(),
                can_pass: group_verdict(host, *id),
            })
            .collect(),
        hint: hint(host),
    }
}

/// `list --tree --json`: the bus topology, one root per PCI root bus.
#[derive(Serialize, Debug)]
pub struct TreeReport {
    pub source: String,
    pub iommu: IommuState,
    pub roots: Vec<TreeBus>,
}

/// A root bus (`pci0000:00`) and the functions on it.
#[derive(Serialize, Debug)]
pub struct TreeBus {
    pub bus: String,
    pub devices: Vec<TreeNode>,
}

/// A function and what hangs below it (a bridge's secondary buses).
#[derive(Serialize, Debug)]
pub struct TreeNode {
    #[serde(flatten)]
    pub device: DeviceView,
    pub children: Vec<TreeNode>,
}

/// The topology under `filter`: a function is kept when it, or anything
/// below it, matches. A function whose parent bridge the source does not
/// hold (a partial listing) is placed at the top of its root bus rather
/// than dropped.
pub fn tree_report(host: &Host, ids: &PciIds, filter: &Filter) -> TreeReport {
    let roots: Vec<&Device> = host
        .devices
        .values()
        .filter(|d| {
            d.parents
                .last()
                .is_none_or(|p| !host.devices.contains_key(p))
        })
        .collect();
    let top = |d: &Device| d.parents.first().copied().unwrap_or(d.address);
    // Children by parent, built once: scanning every device for every
    // device's children took minutes at 100,000 functions (issue 11).
    let mut below: std::collections::BTreeMap<PciAddress, Vec<&Device>> = Default::default();
    for d in host.devices.values() {
        if let Some(p) = d.parents.last() {
            below.entry(*p).or_default().push(d);
        }
    }
    type Below<'h> = std::collections::BTreeMap<PciAddress, Vec<&'h Device>>;
    fn node(
        host: &Host,
        ids: &PciIds,
        filter: &Filter,
        below: &Below<'_>,
        d: &Device,
    ) -> Option<TreeNode> {
        let children: Vec<TreeNode> = below
            .get(&d.address)
            .into_iter()
            .flatten()
            .filter_map(|c| node(host, ids, filter, below, c))
            .collect();
        (filter.is_empty() || filter.matches(ids, d) || !children.is_empty()).then(|| TreeNode {
            device: device_view(host, ids, d),
            children,
        })
    }
    let mut buses: Vec<(u32, u8)> = roots.iter().map(|d| (top(d).domain, top(d).bus)).collect();
    buses.sort();
    buses.dedup();
    let roots = buses
        .into_iter()
        .filter_map(|(dom, bus)| {
            let devices: Vec<TreeNode> = roots
                .iter()
                .filter(|d| top(d).domain == dom && top(d).bus == bus)
                .filter_map(|d| node(host, ids, filter, &below, d))
                .collect();
            (!devices.is_empty()).then(|| TreeBus {
                bus: format!("pci{dom:04x}:{bus:02x}"),
                devices,
            })
        })
        .collect();
    TreeReport {
        source: host.source.clone(),
        iommu: host.iommu,
        roots,
    }
}

/// What to tell a user whose host lacks groups: none at all (the IOMMU is
/// off), or groups that leave PCI functions out (an IOMMU that does not
/// cover a PCIe controller, as on the Raspberry Pi 5, sample 025).
pub fn hint(host: &Host) -> Option<String> {
    if host.groups.is_empty() {
        return (host.iommu != IommuState::Unknown).then(|| NO_IOMMU_HINT.to_string());
    }
    let n = host
        .devices
        .values()
        .filter(|d| d.iommu_group.is_none())
        .count();
    (n > 0).then(|| {
        format!(
            "{n} PCI function{} no IOMMU group: the IOMMU does not cover {} (common for PCIe controllers on ARM boards), so VFIO cannot pass {} through; the groups here hold other devices",
            if n == 1 { " has" } else { "s have" },
            if n == 1 { "it" } else { "them" },
            if n == 1 { "it" } else { "them" },
        )
    })
}

/// `hostdevs FILE`: a domain's PCI host devices, named from a host.
#[derive(Serialize, Debug)]
pub struct HostdevsReport {
    /// The file as given (`<stdin>` for `-`).
    pub file: String,
    /// The domain's `<name>`; `null` for a file without one (snippets).
    pub domain: Option<String>,
    /// Where the names and groups come from.
    pub host: String,
    pub hostdevs: Vec<HostdevView>,
}

/// One `<hostdev type='pci'>` or `<interface type='hostdev'>`.
#[derive(Serialize, Debug)]
pub struct HostdevView {
    /// `hostdev` or `interface`.
    pub element: &'static str,
    /// 1-based line of the element in the file.
    pub line: usize,
    /// The source address as libvirt reads it; `null` when libvirt cannot
    /// read it (`virt-pci validate` says why).
    pub address: Option<PciAddress>,
    /// libvirt reads only `managed='yes'` as managed.
    pub managed: bool,
    /// The function is on the host.
    pub present: bool,
    /// The host's facts about it; absent when it is not present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceView>,
    /// Endpoints of its IOMMU group that the domain does not have (the
    /// guest does not start under VFIO until they are off host drivers).
    pub group_missing: Vec<PciAddress>,
}

/// The report for a domain document (`text`), against `host`.
pub fn hostdevs_report(
    file: &str,
    text: &str,
    host: &Host,
    ids: &PciIds,
) -> Result<HostdevsReport, crate::domain::XmlError> {
    let doc = crate::domain::parse(text)?;
    let found = crate::domain::pci_hostdevs(&doc);
    let ours: Vec<PciAddress> = found.iter().filter_map(|h| h.address).collect();
    let hostdevs = found
        .iter()
        .map(|h| {
            let device = h
                .address
                .and_then(|a| host.device(&a))
                .map(|d| device_view(host, ids, d));
            let group_missing = match h.address {
                Some(a) if device.is_some() => host
                    .group_of(&a)
                    .iter()
                    .filter_map(|m| match m {
                        GroupMember::Pci(p) => Some(*p),
                        GroupMember::Other(_) => None,
                    })
                    .filter(|p| {
                        !ours.contains(p)
                            && host.device(p).is_some_and(|d| d.kind() == Kind::Endpoint)
                    })
                    .collect(),
                _ => Vec::new(),
            };
            HostdevView {
                element: if h.interface { "interface" } else { "hostdev" },
                line: text[..h.range.start].matches('\n').count() + 1,
                address: h.address,
                managed: h.is_managed(),
                present: device.is_some(),
                device,
                group_missing,
            }
        })
        .collect();
    Ok(HostdevsReport {
        file: file.to_string(),
        domain: crate::domain::domain_name(&doc),
        host: host.source.clone(),
        hostdevs,
    })
}
