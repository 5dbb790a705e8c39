//! What `remove` leaves behind: the advice after taking hostdevs out of a
//! domain, by the same viability rule as the plan (docs/libvirt.md §3).

use super::findings::{finding, Code, Finding};
use crate::address::PciAddress;
use crate::host::{Host, Kind};

/// After `remove`: a function that stays in the domain while another
/// endpoint of its IOMMU group left it makes the group non-viable when the
/// removed one returns to a host driver ("group N is not viable"). Only
/// members of the same group count; a sibling function in another group is
/// independent. Without a host the groups are not known, and a function of
/// the same device is named with that caveat.
pub fn removal_warnings(
    host: Option<&Host>,
    removed: &[PciAddress],
    kept: &[PciAddress],
) -> Vec<Finding> {
    let mut out = Vec::new();
    for k in kept {
        match host {
            Some(h) => {
                let g = h.device(k).and_then(|d| d.iommu_group);
                let Some(gid) = g else { continue };
                let same = removed.iter().find(|r| {
                    h.device(r).and_then(|d| d.iommu_group) == g
                        && h.device(r).is_some_and(|d| d.kind() == Kind::Endpoint)
                });
                if let Some(r) = same {
                    out.push(finding(
                        Code::GroupSplit,
                        Some(k),
                        format!("{k} stays in the domain while {r}, of the same IOMMU group {gid}, leaves it; the guest will not start under VFIO (\"group {gid} is not viable\") unless {r} stays on vfio-pci or no driver"),
                        Some(&format!("remove {k} too, or keep {r} on vfio-pci")),
                    ));
                }
            }
            None => {
                if let Some(r) = removed.iter().find(|r| r.slot_of() == k.slot_of()) {
                    out.push(finding(
                        Code::SiblingLeft,
                        Some(k),
                        format!("{k}, another function of the same device as {r}, stays in the domain; if they share an IOMMU group the guest will not start under VFIO unless {r} stays on vfio-pci"),
                        Some("name the host (--snapshot FILE, --root DIR or -c URI) to check the groups"),
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixture::*;
    use super::super::*;

    #[test]
    fn removal_warns_only_for_members_of_the_same_group() {
        let h = host();
        let w = removal_warnings(Some(&h), &[GPU], &[HDA]);
        assert_eq!(w.len(), 1);
        assert!(w[0].message.contains("same IOMMU group 1"));
        let mut h2 = host();
        h2.devices.get_mut(&HDA).unwrap().iommu_group = Some(7);
        assert!(removal_warnings(Some(&h2), &[GPU], &[HDA]).is_empty());
        // Without a host: the same device, with the caveat.
        let w = removal_warnings(None, &[GPU], &[HDA]);
        assert!(w[0].message.contains("if they share an IOMMU group"));
    }
}
