//! Machine-readable views of the host (`list --json`, `show --json`).
//!
//! These are the stable, documented shapes (`schemas/list.schema.json`);
//! the internal model may grow without breaking scripts that read them.

use crate::address::PciAddress;
use crate::host::{Device, Host, IommuState, Kind};
use crate::pciids::PciIds;
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
pub const NO_IOMMU_HINT: &str = "no IOMMU groups: the IOMMU is off. Enable VT-d (Intel) or AMD-Vi/IOMMU (AMD) in the firmware, and boot with intel_iommu=on (Intel) or amd_iommu=on (AMD); then /sys/kernel/iommu_groups fills";

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

pub fn list_report(host: &Host, ids: &PciIds) -> ListReport {
    ListReport {
        source: host.source.clone(),
        iommu: host.iommu,
        devices: host
            .devices
            .values()
            .map(|d| device_view(host, ids, d))
            .collect(),
        groups: host
            .groups
            .iter()
            .map(|(id, m)| GroupView {
                id: *id,
                members: m.iter().map(|x| x.to_string()).collect(),
            })
            .collect(),
        hint: hint(host),
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
