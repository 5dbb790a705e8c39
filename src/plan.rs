//! The plan for passing devices through: which functions travel together,
//! which stay on the host, what blocks and what warns.
//!
//! Every command that changes something (`snippet`, `add`, `detach`, ...)
//! computes a plan first and acts on nothing else, so `--dry-run` and `--json`
//! can show exactly what will happen. The rules follow the kernel's VFIO
//! viability rule (docs/libvirt.md §3): every *endpoint* of an IOMMU
//! group must leave the host drivers before a guest can open the group
//! ("group N is not viable"), while bridges and root ports may stay on
//! `pcieport`. libvirt itself checks none of this before start.

use crate::address::PciAddress;
use crate::host::{Critical, GroupMember, Host, IommuState, Kind};
use serde::Serialize;
use std::collections::BTreeSet;

#[derive(Clone, Copy, Debug)]
pub struct PlanOptions {
    /// Pass the whole IOMMU group (the default). `false` is qvm-pci's
    /// no-strict-reset: only the named functions, with a loud warning.
    pub strict_group: bool,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions { strict_group: true }
    }
}

/// What happens to one member of a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Goes to the guest (a `<hostdev>` is emitted for it).
    Travels,
    /// Stays on the host without affecting the group (bridges, driverless
    /// host bridges).
    Stays,
    /// An endpoint left on the host by `--no-strict-group`.
    LeftBehind,
    /// Cannot follow, and so blocks the group.
    Blocks,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Member {
    /// The PCI address, or the kernel's name of a non-PCI member.
    pub member: String,
    pub role: Role,
    pub requested: bool,
    pub reason: String,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct GroupPlan {
    /// The IOMMU group, `None` when the device has none.
    pub group: Option<u32>,
    pub members: Vec<Member>,
}

/// A blocker or warning with a stable code.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Finding {
    pub code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Plan {
    pub requested: Vec<PciAddress>,
    pub strict_group: bool,
    /// Every function that goes to the guest, in address order.
    pub travels: Vec<PciAddress>,
    pub groups: Vec<GroupPlan>,
    pub blockers: Vec<Finding>,
    pub warnings: Vec<Finding>,
}

impl Plan {
    /// Something blocks the plan; acting on it needs `--force`.
    pub fn is_blocked(&self) -> bool {
        !self.blockers.is_empty()
    }
}

fn finding(
    code: &'static str,
    a: Option<&dyn ToString>,
    message: String,
    help: Option<&str>,
) -> Finding {
    Finding {
        code,
        address: a.map(|a| a.to_string()),
        message,
        help: help.map(str::to_string),
    }
}

/// The name libvirt's non-endpoint error uses, for messages users search for.
const LIBVIRT_NON_ENDPOINT: &str =
    "libvirt refuses it: \"Non-endpoint PCI devices cannot be assigned to guests\"";

/// The one `group-split` warning for a group `--no-strict-group` splits.
/// The kernel's viability rule (`vfio_dev_viable` in the kernel's
/// `drivers/vfio/vfio.c`, docs/libvirt.md): a member with no driver, or on
/// vfio-pci/pci-stub, keeps the group viable; one on a host driver makes the
/// guest fail to start with QEMU's "group N is not viable". A driverless
/// member is therefore not told to "be unbound": it is, and stays viable
/// only until a driver binds it.
/// An endpoint `--no-strict-group` leaves on the host, and its driver.
struct LeftBehind {
    address: PciAddress,
    driver: Option<String>,
    /// No driver, or vfio-pci/pci-stub: the group stays viable.
    viable: bool,
}

fn split_warning(gid: u32, left: &[LeftBehind]) -> Option<Finding> {
    let first = left.first()?;
    let list = |viable: bool| -> Vec<String> {
        left.iter()
            .filter(|x| x.viable == viable)
            .map(|x| match &x.driver {
                Some(d) => format!("{} (`{d}`)", x.address),
                None => x.address.to_string(),
            })
            .collect()
    };
    let bound = list(false);
    let idle = list(true);
    let mut msg = format!("IOMMU group {gid} is split: ");
    if !bound.is_empty() {
        msg.push_str(&format!(
            "{} stay{} on host drivers, so the VM will not start under VFIO (\"group {gid} is not viable\") until {} unbound or bound to vfio-pci",
            bound.join(", "),
            if bound.len() == 1 { "s" } else { "" },
            if bound.len() == 1 { "it is" } else { "they are" },
        ));
        if !idle.is_empty() {
            msg.push_str("; ");
        }
    }
    if !idle.is_empty() {
        msg.push_str(&format!(
            "{} stay{} on the host without a host driver, which keeps the group viable only as long as no host driver binds {}",
            idle.join(", "),
            if idle.len() == 1 { "s" } else { "" },
            if idle.len() == 1 { "it" } else { "them" },
        ));
    }
    Some(finding(
        "group-split",
        Some(&first.address),
        msg,
        Some("drop --no-strict-group to pass the whole group, or keep the rest of the group on vfio-pci (`virt-pci detach`) while the guest runs"),
    ))
}

/// Compute the plan for passing `requested` through.
///
/// Every address must be present on `host` (resolve specs first).
pub fn plan(host: &Host, requested: &[PciAddress], opts: PlanOptions) -> Plan {
    let mut p = Plan {
        requested: requested.to_vec(),
        strict_group: opts.strict_group,
        travels: Vec::new(),
        groups: Vec::new(),
        blockers: Vec::new(),
        warnings: Vec::new(),
    };
    let req: BTreeSet<PciAddress> = requested.iter().copied().collect();
    let req_slots: BTreeSet<_> = requested.iter().map(|a| a.slot_of()).collect();
    let mut travels: BTreeSet<PciAddress> = BTreeSet::new();
    let mut seen_groups: BTreeSet<u32> = BTreeSet::new();

    for a in requested {
        let Some(d) = host.device(a) else {
            p.blockers.push(finding(
                "not-present",
                Some(a),
                format!("{a} is not present on {}", host.source),
                Some("run `virt-pci list` to see the devices of this host"),
            ));
            continue;
        };
        // The requested device itself.
        match d.kind() {
            Kind::HostBridge => p.blockers.push(finding(
                "host-bridge",
                Some(a),
                format!("{a} is the host bridge (root complex): the host cannot run without it"),
                Some("name the device behind it instead; `virt-pci list --tree` shows the topology"),
            )),
            Kind::Bridge => p.blockers.push(finding(
                "not-endpoint",
                Some(a),
                format!("{a} is a PCI bridge or root port and can never be a hostdev; {LIBVIRT_NON_ENDPOINT}"),
                Some("pass the endpoint devices behind it; the bridge stays on the host"),
            )),
            Kind::Endpoint => {}
        }

        if d.iommu_group.is_none() {
            let (code, msg, help) = match host.iommu {
                IommuState::Disabled => (
                    "no-iommu",
                    format!("{a} has no IOMMU group: the host has no IOMMU groups at all, and VFIO passthrough needs them"),
                    "enable VT-d (Intel) or AMD-Vi/IOMMU (AMD) in the firmware, and boot with intel_iommu=on (Intel) or amd_iommu=on (AMD)",
                ),
                IommuState::Enabled => (
                    "no-iommu-group",
                    format!("{a} has no IOMMU group: the IOMMU does not cover this device"),
                    "check the firmware's IOMMU settings for this root complex; the kernel log names uncovered devices",
                ),
                IommuState::Unknown => (
                    "group-unknown",
                    format!("{a}: the IOMMU group is not known from {}", host.source),
                    "read the host itself (or a snapshot of it) to plan with groups",
                ),
            };
            let f = finding(code, Some(a), msg, Some(help));
            if code == "group-unknown" {
                p.warnings.push(f);
                if d.kind() == Kind::Endpoint {
                    travels.insert(*a);
                }
            } else {
                p.blockers.push(f);
            }
            p.groups.push(GroupPlan {
                group: None,
                members: vec![Member {
                    member: a.to_string(),
                    role: if code == "group-unknown" {
                        Role::Travels
                    } else {
                        Role::Blocks
                    },
                    requested: true,
                    reason: "requested; no IOMMU group".into(),
                }],
            });
            continue;
        }
        let g = d.iommu_group;
        let gid = g.unwrap_or_default();
        if !seen_groups.insert(gid) {
            continue;
        }
        // Every requested function of this group goes through the same
        // rules, also when an inconsistent source (a partial listing, a
        // hand-made tree) does not list it among the group's members.
        let mut members = host.groups.get(&gid).cloned().unwrap_or_default();
        for r in requested {
            let in_group = host.device(r).and_then(|x| x.iommu_group) == g;
            if in_group && !members.contains(&GroupMember::Pci(*r)) {
                members.push(GroupMember::Pci(*r));
            }
        }
        let mut gp = GroupPlan {
            group: g,
            members: Vec::new(),
        };
        // Endpoints `--no-strict-group` leaves on the host: one warning for
        // the group, below.
        let mut left_behind: Vec<LeftBehind> = Vec::new();
        for m in &members {
            let GroupMember::Pci(ma) = m else {
                gp.members.push(Member {
                    member: m.to_string(),
                    role: Role::Blocks,
                    requested: false,
                    reason: "not a PCI function (mdev or platform device): cannot follow".into(),
                });
                p.blockers.push(finding(
                    "non-pci-member",
                    Some(m),
                    format!("IOMMU group {gid} also holds {m}, which is not a PCI function (an mdev or a platform device) and cannot go with the group"),
                    Some("remove the mdev (or unbind the platform device) first, or pick a device in another group"),
                ));
                continue;
            };
            let is_req = req.contains(ma);
            let Some(md) = host.device(ma) else {
                gp.members.push(Member {
                    member: ma.to_string(),
                    role: Role::Blocks,
                    requested: is_req,
                    reason: "listed in the group but not found on the PCI bus".into(),
                });
                p.blockers.push(finding(
                    "missing-member",
                    Some(ma),
                    format!("IOMMU group {gid} lists {ma}, which is not on the PCI bus"),
                    None,
                ));
                continue;
            };
            match md.kind() {
                Kind::Bridge => {
                    gp.members.push(Member {
                        member: ma.to_string(),
                        role: if is_req { Role::Blocks } else { Role::Stays },
                        requested: is_req,
                        reason: "PCI bridge or root port: stays on the host (VFIO allows bridges in a group)".into(),
                    });
                    continue;
                }
                Kind::HostBridge if !is_req => {
                    if md.driver.is_none() {
                        gp.members.push(Member {
                            member: ma.to_string(),
                            role: Role::Stays,
                            requested: false,
                            reason: "host bridge with no driver: stays on the host and does not block the group".into(),
                        });
                    } else {
                        let drv = md.driver.clone().unwrap_or_default();
                        gp.members.push(Member {
                            member: ma.to_string(),
                            role: Role::Blocks,
                            requested: false,
                            reason: format!(
                                "host bridge bound to `{drv}`: the group cannot be made viable"
                            ),
                        });
                        p.blockers.push(finding(
                            "host-bridge-in-group",
                            Some(ma),
                            format!("IOMMU group {gid} holds the host bridge {ma}, bound to `{drv}`; VFIO needs it unbound, and the host needs it"),
                            Some("this group cannot be passed through; an ACS-capable slot puts the device in a group of its own"),
                        ));
                    }
                    continue;
                }
                Kind::HostBridge => {
                    gp.members.push(Member {
                        member: ma.to_string(),
                        role: Role::Blocks,
                        requested: true,
                        reason: "the host bridge".into(),
                    });
                    continue;
                }
                Kind::Endpoint => {}
            }
            if !opts.strict_group && !is_req {
                gp.members.push(Member {
                    member: ma.to_string(),
                    role: Role::LeftBehind,
                    requested: false,
                    reason: "endpoint left on the host by --no-strict-group".into(),
                });
                left_behind.push(LeftBehind {
                    address: *ma,
                    driver: md.driver.clone(),
                    viable: md.driver_is_vfio_safe(),
                });
                continue;
            }
            let reason = if is_req {
                "requested".to_string()
            } else if req_slots.contains(&ma.slot_of()) {
                format!("another function of the same device; shares IOMMU group {gid}")
            } else {
                format!("shares IOMMU group {gid}: VFIO needs every endpoint of the group away from host drivers")
            };
            let mut role = Role::Travels;
            for c in &md.critical {
                role = Role::Blocks;
                let help = match c {
                    Critical::RootFilesystem { .. } => "the host would lose its root filesystem; move the root disk, or pass a device in another group",
                    Critical::DefaultRoute { .. } => "the host would lose its network; use another NIC for the host, or pass a device in another group",
                    Critical::BootVga => "the host would lose its console; switch the firmware's primary display, or use --force if the host runs headless",
                    Critical::IsaBridge => "the ISA/LPC bridge carries the TPM, super-I/O and firmware flash; this group cannot leave the host (an ACS override splits groups at a security cost)",
                };
                let what = if is_req {
                    format!("{ma} is the {c}")
                } else {
                    format!(
                        "{ma}, the {c}, shares IOMMU group {gid} and would have to leave the host"
                    )
                };
                p.blockers
                    .push(finding("host-critical", Some(ma), what, Some(help)));
            }
            gp.members.push(Member {
                member: ma.to_string(),
                role,
                requested: is_req,
                reason,
            });
            travels.insert(*ma);
        }
        if let Some(w) = split_warning(gid, &left_behind) {
            p.warnings.push(w);
        }
        p.groups.push(gp);
    }

    // Warnings about what travels. Functions on host drivers are one
    // warning: the same thing happens to all of them.
    let mut on_host_drivers: Vec<String> = Vec::new();
    let mut first_on_host_driver: Option<PciAddress> = None;
    for a in &travels {
        let Some(d) = host.device(a) else { continue };
        if !req.contains(a) && !req_slots.contains(&a.slot_of()) {
            let class = crate::pciids::builtin_class_name(d.class16());
            p.warnings.push(finding(
                "unrelated-device",
                Some(a),
                format!(
                    "{a} ({class}) shares the IOMMU group and leaves the host with the requested device{}",
                    if d.driver.is_some() && !d.driver_is_vfio_safe() {
                        format!(", taking it away from `{}`", d.driver.as_deref().unwrap_or(""))
                    } else {
                        String::new()
                    }
                ),
                Some("check that the host does not need it; a slot with its own IOMMU group avoids this"),
            ));
        }
        if d.can_reset() == Some(false) {
            p.warnings.push(finding(
                "no-reset",
                Some(a),
                format!("{a} has no reset method (no FLR, PM or bus reset): its state can leak between guest and host, and libvirt may fail with \"Unable to reset PCI device {a}: no FLR, PM reset or bus reset available\""),
                Some("avoid returning it to the host between guests; `virt-pci check` shows what reset would affect"),
            ));
        }
        if let Some(drv) = d.driver.as_deref() {
            if !d.driver_is_vfio_safe() {
                on_host_drivers.push(format!("{a} (`{drv}`)"));
                first_on_host_driver.get_or_insert(*a);
            }
        }
        let vfs = d.sriov_numvfs.unwrap_or(0).max(d.virtfns.len() as u32);
        if vfs > 0 {
            p.warnings.push(finding(
                "sriov-pf-active-vfs",
                Some(a),
                format!("{a} is an SR-IOV physical function with {vfs} active VFs; they depend on the PF's host driver and disappear when it is unbound"),
                Some("pass a VF instead, or set sriov_numvfs to 0 first"),
            ));
        }
    }
    if let Some(first) = first_on_host_driver {
        let one = on_host_drivers.len() == 1;
        p.warnings.push(finding(
            "host-driver",
            Some(&first),
            format!(
                "{} {} bound to {}host driver{}; {} will be unbound (managed='yes' does this at start, managed='no' needs `virt-pci detach` first)",
                on_host_drivers.join(", "),
                if one { "is" } else { "are" },
                if one { "a " } else { "" },
                if one { "" } else { "s" },
                if one { "it" } else { "they" },
            ),
            None,
        ));
    }
    p.travels = travels.into_iter().collect();
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Device;

    fn host() -> Host {
        let mut h = Host {
            source: "test".into(),
            iommu: IommuState::Enabled,
            ..Host::default()
        };
        let mut add = |a: PciAddress, class: u32, g: u32, drv: Option<&str>| {
            let mut d = Device::new(a, 0x10de, 0x1000 + u16::from(a.function), class);
            d.iommu_group = Some(g);
            d.driver = drv.map(str::to_string);
            d.reset_methods = Some(vec!["flr".into()]);
            d.reset = Some(true);
            h.devices.insert(a, d);
            h.groups.entry(g).or_default().push(GroupMember::Pci(a));
        };
        add(PciAddress::new(0, 0, 0, 0), 0x060000, 0, None);
        add(PciAddress::new(0, 0, 1, 0), 0x060400, 1, Some("pcieport"));
        add(PciAddress::new(0, 1, 0, 0), 0x030000, 1, Some("nouveau"));
        add(
            PciAddress::new(0, 1, 0, 1),
            0x040300,
            1,
            Some("snd_hda_intel"),
        );
        add(PciAddress::new(0, 0, 0x1f, 0), 0x060100, 2, None);
        add(
            PciAddress::new(0, 0, 0x1f, 3),
            0x040300,
            2,
            Some("snd_hda_intel"),
        );
        h.mark_intrinsic_critical();
        h
    }

    #[test]
    fn gpu_with_root_port_plans_cleanly() {
        let h = host();
        let p = plan(&h, &[PciAddress::new(0, 1, 0, 0)], PlanOptions::default());
        assert!(!p.is_blocked(), "{:?}", p.blockers);
        assert_eq!(
            p.travels,
            vec![PciAddress::new(0, 1, 0, 0), PciAddress::new(0, 1, 0, 1)]
        );
        let rp = &p.groups[0]
            .members
            .iter()
            .find(|m| m.member == "0000:00:01.0")
            .unwrap();
        assert_eq!(rp.role, Role::Stays);
    }

    #[test]
    fn lpc_bridge_blocks_onboard_audio() {
        let h = host();
        let p = plan(
            &h,
            &[PciAddress::new(0, 0, 0x1f, 3)],
            PlanOptions::default(),
        );
        assert!(p.is_blocked());
        assert_eq!(p.blockers[0].code, "host-critical");
        assert!(
            p.blockers[0].message.contains("ISA/LPC bridge"),
            "{}",
            p.blockers[0].message
        );
    }

    #[test]
    fn bridges_and_host_bridge_are_refused() {
        let h = host();
        let p = plan(&h, &[PciAddress::new(0, 0, 1, 0)], PlanOptions::default());
        assert_eq!(p.blockers[0].code, "not-endpoint");
        let p = plan(&h, &[PciAddress::new(0, 0, 0, 0)], PlanOptions::default());
        assert_eq!(p.blockers[0].code, "host-bridge");
        assert!(p.travels.is_empty());
    }

    #[test]
    fn no_strict_group_leaves_siblings_with_a_warning() {
        let h = host();
        let p = plan(
            &h,
            &[PciAddress::new(0, 1, 0, 0)],
            PlanOptions {
                strict_group: false,
            },
        );
        assert_eq!(p.travels, vec![PciAddress::new(0, 1, 0, 0)]);
        assert!(p
            .warnings
            .iter()
            .any(|w| w.code == "group-split" && w.message.contains("group 1 is not viable")));
    }

    #[test]
    fn a_device_its_group_does_not_list_is_still_checked() {
        let mut h = host();
        let gpu = PciAddress::new(0, 1, 0, 0);
        h.groups
            .get_mut(&1)
            .unwrap()
            .retain(|m| m != &GroupMember::Pci(gpu));
        h.devices.get_mut(&gpu).unwrap().boot_vga = Some(true);
        h.mark_intrinsic_critical();
        let p = plan(&h, &[gpu], PlanOptions::default());
        assert!(p.is_blocked(), "{:?}", p.groups);
        assert_eq!(p.blockers[0].code, "host-critical");
        assert!(p.groups[0]
            .members
            .iter()
            .any(|m| m.member == "0000:01:00.0" && m.requested));
    }

    #[test]
    fn no_iommu_is_a_blocker_with_a_hint() {
        let mut h = host();
        h.groups.clear();
        h.iommu = IommuState::Disabled;
        for d in h.devices.values_mut() {
            d.iommu_group = None;
        }
        let p = plan(&h, &[PciAddress::new(0, 1, 0, 0)], PlanOptions::default());
        assert_eq!(p.blockers[0].code, "no-iommu");
        assert!(p.blockers[0]
            .help
            .as_deref()
            .unwrap_or("")
            .contains("intel_iommu=on"));
    }
}
