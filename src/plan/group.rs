//! The planner's rules for one IOMMU group, member by member: what
//! travels, what stays, what blocks, and what `--no-strict-group` leaves
//! behind. VFIO assigns a group, not a device, and the kernel opens it only
//! when every endpoint is away from host drivers (`vfio_dev_viable`,
//! docs/libvirt.md §3).

use super::findings::Code;
use super::planner::{Planner, To};
use super::{GroupPlan, Member, Role};
use crate::address::PciAddress;
use crate::host::{Critical, Device, GroupMember, Host, Kind};

impl Planner<'_> {
    /// The members of group `gid` as the source lists them, plus every
    /// requested function the source puts in that group without listing it
    /// (an inconsistent source): every requested function goes through the
    /// same rules.
    fn members(&self, gid: u32) -> Vec<GroupMember> {
        let host = self.host;
        let mut members = host.groups.get(&gid).cloned().unwrap_or_default();
        for r in &self.p.requested {
            let in_group = host.device(r).and_then(|x| x.iommu_group) == Some(gid);
            if in_group && !members.contains(&GroupMember::Pci(*r)) {
                members.push(GroupMember::Pci(*r));
            }
        }
        members
    }

    /// One IOMMU group, member by member, and one `group-split` warning for
    /// what `--no-strict-group` leaves behind.
    pub(super) fn group(&mut self, gid: u32) {
        let mut gp = GroupPlan {
            group: Some(gid),
            members: Vec::new(),
        };
        let mut left_behind: Vec<LeftBehind> = Vec::new();
        for m in self.members(gid) {
            let member = self.member(gid, &m, &mut left_behind);
            gp.members.push(member);
        }
        if let Some(first) = left_behind.first() {
            let source = &self.host.source;
            self.say(To::Warnings, Code::GroupSplit, Some(&first.address), || {
                split_words(gid, &left_behind, source)
            });
        }
        self.p.groups.push(gp);
    }

    /// What happens to one member of a group. Bridges and root ports stay
    /// (the kernel's viability rule allows them on any driver,
    /// `vfio_dev_viable`, docs/libvirt.md §3); every endpoint travels,
    /// unless `--no-strict-group` leaves it behind.
    fn member(&mut self, gid: u32, m: &GroupMember, left: &mut Vec<LeftBehind>) -> Member {
        let host = self.host;
        let GroupMember::Pci(ma) = m else {
            return self.non_pci_member(gid, m);
        };
        let is_req = self.req.contains(ma);
        let Some(md) = host.device(ma) else {
            return self.missing_member(gid, ma, is_req);
        };
        match md.kind() {
            Kind::Bridge => {
                let role = if is_req { Role::Blocks } else { Role::Stays };
                return self.member_of(ma, role, is_req, || {
                    "PCI bridge or root port: stays on the host (VFIO allows bridges in a group)"
                        .into()
                });
            }
            Kind::HostBridge => return self.host_bridge_member(gid, md, is_req),
            Kind::Endpoint => {}
        }
        if !self.opts.strict_group && !is_req {
            left.push(LeftBehind::of(host, md));
            return self.member_of(ma, Role::LeftBehind, false, || {
                "endpoint left on the host by --no-strict-group".into()
            });
        }
        self.travelling_member(gid, md, is_req)
    }

    /// `non-pci-member` (blocker): an mdev or platform device in the group
    /// (sysfs `iommu_groups/N/devices` lists them too, docs/sysfs.md §4)
    /// cannot be a PCI hostdev, so the group cannot be made viable.
    fn non_pci_member(&mut self, gid: u32, m: &GroupMember) -> Member {
        self.say(To::Blockers, Code::NonPciMember, Some(m), || (
            format!("IOMMU group {gid} also holds {m}, which is not a PCI function (an mdev or a platform device) and cannot go with the group"),
            Some("remove the mdev (or unbind the platform device) first, or pick a device in another group".into()),
        ));
        self.member_of(m, Role::Blocks, false, || {
            "not a PCI function (mdev or platform device): cannot follow".into()
        })
    }

    /// `missing-member` (blocker): the group lists a function the PCI bus
    /// does not have; the plan cannot say what it is, so it cannot travel.
    fn missing_member(&mut self, gid: u32, ma: &PciAddress, is_req: bool) -> Member {
        self.say(To::Blockers, Code::MissingMember, Some(ma), || {
            (
                format!("IOMMU group {gid} lists {ma}, which is not on the PCI bus"),
                None,
            )
        });
        self.member_of(ma, Role::Blocks, is_req, || {
            "listed in the group but not found on the PCI bus".into()
        })
    }

    /// A host bridge in the group. Requested, it is the `host-bridge`
    /// blocker already. With no driver it stays and the group stays viable
    /// (the kernel allows driverless members, `vfio_dev_viable`); bound to a
    /// driver (`skl_uncore`, `amd64_edac`) it makes the group non-viable and
    /// the host needs it: `host-bridge-in-group` (blocker).
    fn host_bridge_member(&mut self, gid: u32, md: &Device, is_req: bool) -> Member {
        let ma = md.address;
        match (is_req, md.driver.as_deref()) {
            (true, _) => self.member_of(&ma, Role::Blocks, is_req, || "the host bridge".into()),
            (false, None) => self.member_of(&ma, Role::Stays, is_req, || {
                "host bridge with no driver: stays on the host and does not block the group".into()
            }),
            (false, Some(drv)) => {
                self.say(To::Blockers, Code::HostBridgeInGroup, Some(&ma), || (
                    format!("IOMMU group {gid} holds the host bridge {ma}, bound to `{drv}`; VFIO needs it unbound, and the host needs it"),
                    Some("this group cannot be passed through; an ACS-capable slot puts the device in a group of its own".into()),
                ));
                self.member_of(&ma, Role::Blocks, is_req, || {
                    format!("host bridge bound to `{drv}`: the group cannot be made viable")
                })
            }
        }
    }

    /// An endpoint that travels: requested, another function of a requested
    /// card, or a group member VFIO needs away from host drivers.
    fn travelling_member(&mut self, gid: u32, md: &Device, is_req: bool) -> Member {
        let ma = md.address;
        let same_card = self.req_slots.contains(&ma.slot_of());
        let role = if self.host_critical(gid, md, is_req) {
            Role::Blocks
        } else {
            Role::Travels
        };
        self.travels.insert(ma);
        self.member_of(&ma, role, is_req, || {
            if is_req {
                "requested".to_string()
            } else if same_card {
                format!("another function of the same device; shares IOMMU group {gid}")
            } else {
                format!("shares IOMMU group {gid}: VFIO needs every endpoint of the group away from host drivers")
            }
        })
    }

    /// `host-critical` (blocker), one per kind: a travelling function the
    /// host needs — the controller of its root filesystem, the NIC of its
    /// default route, its boot VGA device, the chipset's ISA/LPC bridge
    /// (how each is found: docs/sysfs.md §6, `host::Critical`). Whether it
    /// is requested or only shares the group, it would leave the host.
    /// Returns whether the function is one.
    fn host_critical(&mut self, gid: u32, md: &Device, is_req: bool) -> bool {
        let ma = md.address;
        for c in &md.critical {
            let help = match c {
                Critical::RootFilesystem { .. } => "the host would lose its root filesystem; move the root disk, or pass a device in another group",
                Critical::DefaultRoute { .. } => "the host would lose its network; use another NIC for the host, or pass a device in another group",
                Critical::BootVga => "the host would lose its console; switch the firmware's primary display, or use --force if the host runs headless",
                Critical::IsaBridge => "the ISA/LPC bridge carries the TPM, super-I/O and firmware flash; this group cannot leave the host (an ACS override splits groups at a security cost)",
            };
            self.say(To::Blockers, Code::HostCritical, Some(&ma), || {
                let what = if is_req {
                    format!("{ma} is the {c}")
                } else {
                    format!(
                        "{ma}, the {c}, shares IOMMU group {gid} and would have to leave the host"
                    )
                };
                (what, Some(help.into()))
            });
        }
        !md.critical.is_empty()
    }
}

/// An endpoint `--no-strict-group` leaves on the host, and its driver.
pub(super) struct LeftBehind {
    address: PciAddress,
    driver: Option<String>,
    state: LeftState,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum LeftState {
    /// On a host driver: the group is not viable.
    HostDriver,
    /// No driver shown, and the source did not measure drivers.
    DriverUnknown,
    /// No driver (measured), vfio-pci or pci-stub: viable for now.
    Viable,
}

impl LeftBehind {
    fn of(host: &Host, md: &Device) -> LeftBehind {
        LeftBehind {
            address: md.address,
            driver: md.driver.clone(),
            state: if host.keeps_group_viable(md) {
                LeftState::Viable
            } else if md.driver.is_none() {
                LeftState::DriverUnknown
            } else {
                LeftState::HostDriver
            },
        }
    }
}

/// `group-split` (warning), one for a group `--no-strict-group` splits.
/// The kernel's viability rule (`vfio_dev_viable` in the kernel's
/// `drivers/vfio/vfio.c`, docs/libvirt.md §3): a member with no driver, or
/// on vfio-pci/pci-stub, keeps the group viable; one on a host driver makes
/// the guest fail to start with QEMU's "group N is not viable". A driverless
/// member is therefore not told to "be unbound": it is, and stays viable
/// only until a driver binds it.
/// The `group-split` warning's message and help for what is left behind.
fn split_words(gid: u32, left: &[LeftBehind], source: &str) -> (String, Option<String>) {
    let list = |state: LeftState| -> Vec<String> {
        left.iter()
            .filter(|x| x.state == state)
            .map(|x| match &x.driver {
                Some(d) => format!("{} (`{d}`)", x.address),
                None => x.address.to_string(),
            })
            .collect()
    };
    let verb = |n: &Vec<String>| if n.len() == 1 { "stays" } else { "stay" };
    let them = |n: &Vec<String>| if n.len() == 1 { "it is" } else { "they are" };
    let mut parts = Vec::new();
    let bound = list(LeftState::HostDriver);
    if !bound.is_empty() {
        parts.push(format!(
            "{} {} on host drivers, so the VM will not start under VFIO (\"group {gid} is not viable\") until {} unbound or bound to vfio-pci",
            bound.join(", "),
            verb(&bound),
            them(&bound),
        ));
    }
    let unknown = list(LeftState::DriverUnknown);
    if !unknown.is_empty() {
        parts.push(format!(
            "{} {} on the host and {source} does not say which driver {} on; on a host driver the VM will not start (\"group {gid} is not viable\")",
            unknown.join(", "),
            verb(&unknown),
            them(&unknown),
        ));
    }
    let idle = list(LeftState::Viable);
    if !idle.is_empty() {
        parts.push(format!(
            "{} {} on the host without a host driver, which keeps the group viable only as long as no host driver binds {}",
            idle.join(", "),
            verb(&idle),
            if idle.len() == 1 { "it" } else { "them" },
        ));
    }
    (
        format!("IOMMU group {gid} is split: {}", parts.join("; ")),
        Some("drop --no-strict-group to pass the whole group, or keep the rest of the group on vfio-pci (`virt-pci detach`) while the guest runs".into()),
    )
}

#[cfg(test)]
mod tests {
    use super::super::fixture::*;
    use super::super::*;
    use crate::host::GroupMember;

    #[test]
    fn lpc_bridge_blocks_onboard_audio() {
        let h = host();
        let p = plan(
            &h,
            &[PciAddress::new(0, 0, 0x1f, 3)],
            PlanOptions::default(),
        );
        assert!(p.is_blocked());
        assert_eq!(p.blockers[0].code, Code::HostCritical);
        assert!(
            p.blockers[0].message.contains("ISA/LPC bridge"),
            "{}",
            p.blockers[0].message
        );
    }
    #[test]
    fn no_strict_group_leaves_siblings_with_a_warning() {
        let h = host();
        let p = plan(&h, &[PciAddress::new(0, 1, 0, 0)], loose());
        assert_eq!(p.travels, vec![PciAddress::new(0, 1, 0, 0)]);
        assert!(p
            .warnings
            .iter()
            .any(|w| w.code == Code::GroupSplit && w.message.contains("group 1 is not viable")));
    }
    /// The `group-split` message for GPU alone, with HDA's driver `drv`.
    fn split_message(drv: &str) -> String {
        let mut h = host();
        h.devices.get_mut(&HDA).unwrap().driver = Some(drv.into());
        one(&plan(&h, &[GPU], loose()).warnings, Code::GroupSplit)
            .message
            .clone()
    }
    #[test]
    fn vfio_bound_members_keep_a_split_group_viable() {
        let m = split_message("vfio-pci");
        assert!(m.contains("keeps the group viable"), "{m}");
        // A host driver does not.
        let m = split_message("snd_hda_intel");
        assert!(m.contains("will not start"), "{m}");
    }
    #[test]
    fn a_non_pci_member_blocks_the_group() {
        let mut h = host();
        let mdev = GroupMember::Other("8a5a2c2e-mdev".into());
        h.groups.get_mut(&1).unwrap().push(mdev.clone());
        let p = plan(&h, &[GPU], PlanOptions::default());
        assert_eq!(codes(&p.blockers), vec![Code::NonPciMember]);
        assert_eq!(p.blockers[0].address.as_deref(), Some("8a5a2c2e-mdev"));
        let m = p.groups[0]
            .members
            .iter()
            .find(|m| m.member == mdev.to_string());
        assert_eq!(m.map(|m| m.role), Some(Role::Blocks));
    }
    #[test]
    fn a_listed_member_missing_from_the_bus_blocks() {
        let mut h = host();
        let ghost = PciAddress::new(0, 1, 0, 2);
        h.groups.get_mut(&1).unwrap().push(GroupMember::Pci(ghost));
        let p = plan(&h, &[GPU], PlanOptions::default());
        assert_eq!(codes(&p.blockers), vec![Code::MissingMember]);
        assert!(p.blockers[0]
            .message
            .contains("0000:01:00.2, which is not on the PCI bus"));
        assert!(!p.travels.contains(&ghost));
    }
    #[test]
    fn a_host_bridge_in_the_group_stays_driverless_and_blocks_when_bound() {
        let mut h = host();
        let hb = PciAddress::new(0, 0, 0, 0);
        h.devices.get_mut(&hb).unwrap().iommu_group = Some(1);
        h.groups.remove(&0);
        h.groups.get_mut(&1).unwrap().push(GroupMember::Pci(hb));
        let role = |p: &Plan| {
            let m = p.groups[0]
                .members
                .iter()
                .find(|m| m.member == "0000:00:00.0");
            m.map(|m| m.role)
        };
        let p = plan(&h, &[GPU], PlanOptions::default());
        assert_eq!(p.verdict, Verdict::Ok, "{:?}", p.blockers);
        assert_eq!(role(&p), Some(Role::Stays));
        // Bound, as `skl_uncore` binds it on the Skylake samples.
        h.devices.get_mut(&hb).unwrap().driver = Some("skl_uncore".into());
        let p = plan(&h, &[GPU], PlanOptions::default());
        assert_eq!(codes(&p.blockers), vec![Code::HostBridgeInGroup]);
        assert!(p.blockers[0].message.contains("bound to `skl_uncore`"));
        assert_eq!(role(&p), Some(Role::Blocks));
        assert!(!p.travels.contains(&hb));
    }
}
