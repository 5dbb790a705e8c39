//! The guard's view: a domain judged as it is, at a start.
//!
//! [`super::plan`] says what *should* travel (the whole group);
//! [`plan_for_start`] takes the domain's hostdevs as they are and asks what
//! the kernel and libvirt will say when it starts. `virt-pci guard` runs it
//! at libvirt's `prepare begin` hook (docs/libvirt.md §9).

use super::findings::{finding, Code, Finding};
use super::{plan, GroupPlan, Plan, PlanOptions, Role};
use crate::address::PciAddress;
use crate::host::Host;

/// The plan for starting a domain that holds exactly `devices`, judged as
/// the kernel and libvirt will judge it at that start.
///
/// The named functions travel, and every other endpoint of their groups
/// stays where it is (the plan with `--no-strict-group`, without its
/// `group-split` advice: here the rules below decide). Per group, in this
/// order: [`critical_left_behind`], [`not_viable`], [`held_by_running`].
pub(crate) fn plan_for_start(host: &Host, devices: &[PciAddress]) -> Plan {
    let mut p = plan(
        host,
        devices,
        PlanOptions {
            strict_group: false,
            ..PlanOptions::default()
        },
    );
    p.warnings.retain(|w| w.code != Code::GroupSplit);
    let requested: Vec<String> = devices.iter().map(|a| a.to_string()).collect();
    let mut extra = Vec::new();
    for g in &p.groups {
        let gid = g.group.unwrap_or_default();
        let with: Vec<&str> = g
            .members
            .iter()
            .filter(|x| x.requested && x.role == Role::Travels)
            .map(|x| x.member.as_str())
            .collect();
        extra.extend(critical_left_behind(host, g, gid, &with));
        extra.extend(not_viable(host, g, gid, &with));
        extra.extend(held_by_running(host, &p.blockers, g, gid, &requested));
    }
    p.blockers.extend(extra);
    p
}

/// The endpoints of `g` the domain leaves behind, parsed and found.
fn left_behind<'h>(
    host: &'h Host,
    g: &GroupPlan,
) -> impl Iterator<Item = &'h crate::host::Device> + 'h {
    let members: Vec<PciAddress> = g
        .members
        .iter()
        .filter(|m| m.role == Role::LeftBehind)
        .filter_map(|m| PciAddress::parse(&m.member).ok())
        .collect();
    members.into_iter().filter_map(move |a| host.device(&a))
}

/// `host-critical` (blocker) for a member left behind: a host-critical
/// function stays the host's only if its group does not leave. While the
/// domain runs, the group's DMA mappings belong to the guest (VFIO assigns
/// groups, docs/libvirt.md §3), whatever the member's driver.
fn critical_left_behind(host: &Host, g: &GroupPlan, gid: u32, with: &[&str]) -> Vec<Finding> {
    let mut out = Vec::new();
    for md in left_behind(host, g) {
        let ma = md.address;
        for c in &md.critical {
            out.push(finding(
                Code::HostCritical,
                Some(&ma),
                format!("{ma}, the {c}, is in IOMMU group {gid} with this domain's {}; the host needs it, and the group cannot be split between host and guest", with.join(", ")),
                Some("pick a device in another group; an ACS-capable slot puts a device in a group of its own"),
            ));
        }
    }
    out
}

/// `group-not-viable` (blocker), one per group: endpoints left behind on a
/// host driver. A member keeps the group viable only on `vfio-pci`,
/// `pci-stub` or no driver (the kernel's `vfio_dev_viable`,
/// `drivers/vfio/vfio.c`; from 5.19 the same policy through
/// `driver_managed_dma`; docs/libvirt.md §3); on any other driver QEMU
/// fails with "group N is not viable". libvirt checks none of it. A
/// host-critical member is [`critical_left_behind`]'s, not this rule's.
fn not_viable(host: &Host, g: &GroupPlan, gid: u32, with: &[&str]) -> Option<Finding> {
    let bound: Vec<(PciAddress, String)> = left_behind(host, g)
        .filter(|md| !md.driver_is_vfio_safe() && md.critical.is_empty())
        .map(|md| (md.address, md.driver.clone().unwrap_or_default()))
        .collect();
    if bound.is_empty() || with.is_empty() {
        return None;
    }
    let list: Vec<String> = bound
        .iter()
        .map(|(a, d)| format!("{a} (on `{d}`)"))
        .collect();
    let (them, verb) = if bound.len() == 1 {
        ("it", "is")
    } else {
        ("them", "are")
    };
    Some(finding(
        Code::GroupNotViable,
        Some(&bound[0].0),
        format!(
            "IOMMU group {gid} is not viable for this domain: {} {verb} in the group with {} but not in the domain, and on host drivers; QEMU would fail with \"group {gid} is not viable\"",
            list.join(", "),
            with.join(", ")
        ),
        Some(&format!(
            "add {them} to the domain too (the whole group travels), or bind {them} to vfio-pci before the start"
        )),
    ))
}

/// `in-use` (blocker): a function or group member that a running domain
/// (in `host.domains`, other than this one) holds. libvirt's own check
/// says only "in use by driver QEMU, domain X" (`virHostdevIsPCINodeDeviceUsed`,
/// `src/hypervisor/virhostdev.c`, docs/libvirt.md §3): one IOMMU group
/// belongs to one running domain. What the plan already blocks as `in-use`
/// is said once.
fn held_by_running(
    host: &Host,
    blockers: &[Finding],
    g: &GroupPlan,
    gid: u32,
    requested: &[String],
) -> Vec<Finding> {
    let mut out = Vec::new();
    for m in &g.members {
        let Ok(ma) = PciAddress::parse(&m.member) else {
            continue;
        };
        let said = blockers
            .iter()
            .any(|b| b.code == Code::InUse && b.address.as_deref() == Some(m.member.as_str()));
        if said {
            continue;
        }
        for u in host.domains.iter().filter(|u| u.running && u.address == ma) {
            let rel = if requested.contains(&m.member) {
                format!("{ma} is assigned to the running domain `{}`", u.domain)
            } else {
                format!(
                    "{ma}, in IOMMU group {gid} with this domain's devices, is assigned to the running domain `{}`",
                    u.domain
                )
            };
            out.push(Finding {
                code: Code::InUse,
                address: Some(ma.to_string()),
                message: format!("{rel}; one IOMMU group can belong to one running domain only"),
                help: Some(format!("shut `{}` down first (`virsh shutdown {}`), or take the device from it (`virt-pci remove --domain {} {ma}`)", u.domain, u.domain, u.domain)),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixture::*;
    use super::super::*;

    #[test]
    fn plan_for_start_follows_the_kernels_viability_rule() {
        let mut h = host();
        let gpu = PciAddress::new(0, 1, 0, 0);
        let audio = PciAddress::new(0, 1, 0, 1);
        let p = plan_for_start(&h, &[gpu]);
        let b: Vec<_> = p.blockers.iter().map(|b| b.code).collect();
        assert_eq!(b, vec![Code::GroupNotViable]);
        assert!(p.blockers[0]
            .message
            .contains("0000:01:00.1 (on `snd_hda_intel`)"));
        assert!(!p.warnings.iter().any(|w| w.code == Code::GroupSplit));
        // On vfio-pci (or pci-stub, or no driver) the member keeps it viable.
        for drv in [Some("vfio-pci"), Some("pci-stub"), None] {
            h.devices.get_mut(&audio).unwrap().driver = drv.map(str::to_string);
            assert!(!plan_for_start(&h, &[gpu]).is_blocked(), "{drv:?}");
        }
        // Both in the domain: fine whatever the drivers.
        let h = host();
        assert!(!plan_for_start(&h, &[gpu, audio]).is_blocked());
    }

    #[test]
    fn plan_for_start_blocks_critical_members_left_behind_and_running_use() {
        let mut h = host();
        let audio = PciAddress::new(0, 0, 0x1f, 3);
        let p = plan_for_start(&h, &[audio]);
        assert_eq!(p.blockers.len(), 1, "{:?}", p.blockers);
        assert_eq!(p.blockers[0].code, Code::HostCritical);
        assert_eq!(p.blockers[0].address.as_deref(), Some("0000:00:1f.0"));
        let gpu = PciAddress::new(0, 1, 0, 0);
        let other = PciAddress::new(0, 1, 0, 1);
        h.domains.push(crate::host::DomainUse {
            domain: "gaming".into(),
            address: other,
            running: true,
            managed: true,
        });
        let p = plan_for_start(&h, &[gpu, other]);
        assert_eq!(p.blockers.len(), 1, "{:?}", p.blockers);
        assert_eq!(p.blockers[0].code, Code::InUse);
        assert!(p.blockers[0].message.contains("running domain `gaming`"));
        h.domains[0].running = false;
        assert!(!plan_for_start(&h, &[gpu, other]).is_blocked());
    }
}
