//! The planner's rules about what travels, once the groups are walked:
//! warnings per travelling function, cards split across groups, facts the
//! source does not give, and other domains' use.

use super::findings::Code;
use super::planner::{Planner, To};
use crate::address::PciAddress;
use crate::host::{Device, Kind};
use crate::pciids::builtin_class_name;
use std::collections::BTreeSet;

impl Planner<'_> {
    /// The warnings about each travelling function, in address order:
    /// `unrelated-device`, `no-reset` and `sriov-pf-active-vfs` per
    /// function, then one `host-driver` for all of them (the same thing
    /// happens to each).
    pub(super) fn travelling_warnings(&mut self) {
        let host = self.host;
        let mut on_host_drivers: Vec<(PciAddress, &str)> = Vec::new();
        for a in self.travels.clone() {
            let Some(d) = host.device(&a) else { continue };
            self.unrelated_device(&a, d);
            self.no_reset(&a, d);
            if let Some(drv) = d.driver.as_deref() {
                if !d.driver_is_vfio_safe() {
                    on_host_drivers.push((a, drv));
                }
            }
            self.sriov_pf(&a, d);
        }
        self.host_drivers(&on_host_drivers);
    }

    /// `unrelated-device` (warning): a function that travels only because
    /// it shares the IOMMU group (neither requested nor of a requested
    /// card). VFIO takes the whole group (docs/libvirt.md §3), so it leaves
    /// the host too, and its host driver with it.
    fn unrelated_device(&mut self, a: &PciAddress, d: &Device) {
        if self.req.contains(a) || self.req_slots.contains(&a.slot_of()) {
            return;
        }
        self.say(To::Warnings, Code::UnrelatedDevice, Some(a), || {
            let class = builtin_class_name(d.class16());
            (
                format!(
                    "{a} ({class}) shares the IOMMU group and leaves the host with the requested device{}",
                    if d.driver.is_some() && !d.driver_is_vfio_safe() {
                        format!(", taking it away from `{}`", d.driver.as_deref().unwrap_or(""))
                    } else {
                        String::new()
                    }
                ),
                Some("check that the host does not need it; a slot with its own IOMMU group avoids this".into()),
            )
        });
    }

    /// `no-reset` (warning): a travelling function with no reset method.
    /// libvirt resets with FLR, a PM reset or a secondary bus reset and
    /// otherwise fails with "Unable to reset PCI device …: no FLR, PM reset
    /// or bus reset available" (`virPCIDeviceReset`, `src/util/virpci.c`,
    /// docs/libvirt.md §4); state can leak between guest and host.
    fn no_reset(&mut self, a: &PciAddress, d: &Device) {
        if d.can_reset() != Some(false) {
            return;
        }
        let host = self.host;
        self.say(To::Warnings, Code::NoReset, Some(a), || (
            format!("{a} has no reset method (no FLR, PM or bus reset): its state can leak between guest and host, and libvirt may fail with \"Unable to reset PCI device {a}: no FLR, PM reset or bus reset available\""),
            Some(format!("avoid returning it to the host between guests; `{}` shows what reset would affect", host.suggest(&format!("check {a}")))),
        ));
    }

    /// `sriov-pf-active-vfs` (warning): a travelling SR-IOV physical
    /// function with active VFs (`sriov_numvfs`, `virtfnN`, docs/sysfs.md
    /// §2); the VFs depend on the PF's host driver and vanish when it is
    /// unbound.
    fn sriov_pf(&mut self, a: &PciAddress, d: &Device) {
        let vfs = d.sriov_numvfs.unwrap_or(0).max(d.virtfns.len() as u32);
        if vfs == 0 {
            return;
        }
        self.say(To::Warnings, Code::SriovPfActiveVfs, Some(a), || (
            format!("{a} is an SR-IOV physical function with {vfs} active VFs; they depend on the PF's host driver and disappear when it is unbound"),
            Some("pass a VF instead, or set sriov_numvfs to 0 first".into()),
        ));
    }

    /// `host-driver` (warning), one for all travelling functions bound to a
    /// host driver: they will be unbound — by libvirt at start for
    /// `managed='yes'`, by `virt-pci detach` before it for `managed='no'`
    /// (docs/libvirt.md §3, step 3).
    fn host_drivers(&mut self, bound: &[(PciAddress, &str)]) {
        let Some((first, _)) = bound.first() else {
            return;
        };
        self.say(To::Warnings, Code::HostDriver, Some(first), || {
            let list: Vec<String> = bound.iter().map(|(a, d)| format!("{a} (`{d}`)")).collect();
            let one = bound.len() == 1;
            (
                format!(
                    "{} {} bound to {}host driver{}; {} will be unbound (managed='yes' does this at start, managed='no' needs `virt-pci detach` first)",
                    list.join(", "),
                    if one { "is" } else { "are" },
                    if one { "a " } else { "" },
                    if one { "" } else { "s" },
                    if one { "it" } else { "they" },
                ),
                None,
            )
        });
    }

    /// `split-card` (warning): a card split across IOMMU groups (a GPU and
    /// its HDMI audio in separate groups, common on AMD and behind
    /// ACS-capable switch ports). The other functions of a requested card
    /// do not travel with it unless named, and a guest driver usually
    /// expects the whole card. Say so, and name the slot.
    pub(super) fn split_cards(&mut self) {
        let host = self.host;
        let mut seen = BTreeSet::new();
        for a in self.p.requested.clone() {
            if !seen.insert(a.slot_of()) {
                continue;
            }
            let g = host.device(&a).and_then(|d| d.iommu_group);
            let apart: Vec<&Device> = host
                .siblings(&a)
                .into_iter()
                .filter(|s| *s != a && !self.p.travels.contains(s))
                .filter_map(|s| host.device(&s))
                .filter(|d| d.kind() == Kind::Endpoint && d.iommu_group != g)
                .collect();
            if apart.is_empty() {
                continue;
            }
            self.say(To::Warnings, Code::SplitCard, Some(&a), || {
                let apart: Vec<String> = apart
                    .iter()
                    .map(|d| {
                        let group = d.iommu_group.map(|x| x.to_string());
                        format!(
                            "{} ({}, IOMMU group {})",
                            d.address,
                            builtin_class_name(d.class16()),
                            group.as_deref().unwrap_or("none")
                        )
                    })
                    .collect();
                let slot = a.slot_of();
                let short = if slot.domain == 0 {
                    format!("{:02x}:{:02x}", slot.bus, slot.slot)
                } else {
                    slot.to_string()
                };
                (
                    format!(
                        "the card {short} is split across IOMMU groups: {} {} not travel with {a}{}",
                        apart.join(", "),
                        if apart.len() == 1 { "does" } else { "do" },
                        g.map(|x| format!(" (group {x})")).unwrap_or_default()
                    ),
                    Some(format!(
                        "pass the whole card by naming its slot `{short}`: `{}`",
                        host.suggest(&format!("snippet {short}"))
                    )),
                )
            });
        }
    }

    /// `fact-unknown` (unverified): a travelling function whose
    /// host-critical facts the source does not give (see
    /// [`crate::host::Host::unknown_facts`]). "ok" would claim the host
    /// keeps its root disk, network and console without knowing which
    /// functions those are.
    pub(super) fn unknown_facts(&mut self) {
        let host = self.host;
        for a in self.p.travels.clone() {
            let Some(d) = host.device(&a) else { continue };
            let unknown = host.unknown_facts(d);
            if unknown.is_empty() {
                continue;
            }
            self.say(To::Unverified, Code::FactUnknown, Some(&a), || {
                let what: Vec<&str> = unknown.iter().map(|f| f.describe()).collect();
                let how: BTreeSet<&str> = unknown.iter().map(|f| host.fact(*f).as_str()).collect();
                let how: Vec<&str> = how.into_iter().collect();
                (
                    format!(
                        "{a} ({}) could be {}: {} does not say ({})",
                        builtin_class_name(d.class16()),
                        join_or(&what),
                        host.source,
                        how.join(", ")
                    ),
                    Some(super::HOW_TO_VERIFY.into()),
                )
            });
        }
    }

    /// Use by other domains: a travelling function that a running domain
    /// holds blocks (`in-use`; libvirt refuses it at start with "PCI device
    /// … is in use by driver QEMU, domain …", `virhostdev.c:77-109`,
    /// docs/libvirt.md §3); one that a defined, shut-off domain lists is a
    /// warning (`assigned-elsewhere`: several VMs that run one at a time
    /// may share a device). The domain the plan is for
    /// ([`super::PlanOptions::for_domain`]) is no conflict.
    pub(super) fn domain_use(&mut self) {
        let host = self.host;
        for a in self.p.travels.clone() {
            for u in host.used_by(&a) {
                if self.opts.for_domain.as_deref() == Some(u.domain.as_str()) {
                    continue;
                }
                if u.running {
                    self.say(To::Blockers, Code::InUse, Some(&a), || (
                        format!("{a} is assigned to the running domain `{}`", u.domain),
                        Some(format!(
                            "shut `{}` down first (`virsh shutdown {}`), or take the device from it (`{}`)",
                            u.domain,
                            u.domain,
                            host.suggest(&format!(
                                "remove --domain {} {a}",
                                crate::address::shell_word(&u.domain)
                            ))
                        )),
                    ));
                } else {
                    self.say(To::Warnings, Code::AssignedElsewhere, Some(&a), || (
                        format!(
                            "{a} is also assigned to the domain `{}` (shut off): only one of them can run at a time",
                            u.domain
                        ),
                        None,
                    ));
                }
            }
        }
    }
}

/// "a, b or c".
fn join_or(v: &[&str]) -> String {
    match v {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::*;
    use super::super::*;
    use crate::host::GroupMember;

    #[test]
    fn other_domains_block_when_running_and_warn_when_stopped() {
        let mut h = host();
        let use_ = |domain: &str, running| crate::host::DomainUse {
            domain: domain.into(),
            address: HDA,
            running,
            managed: true,
        };
        h.domains = vec![use_("win10", true)];
        let p = plan(&h, &[GPU], PlanOptions::default());
        assert_eq!(p.verdict(), Verdict::Blocked);
        assert_eq!(p.blockers[0].code, Code::InUse);
        assert!(p.blockers[0].message.contains("`win10`"));
        // The domain the plan is for holds it: no conflict.
        let own = PlanOptions {
            for_domain: Some("win10".into()),
            ..PlanOptions::default()
        };
        assert_eq!(plan(&h, &[GPU], own).verdict(), Verdict::Ok);
        h.domains = vec![use_("nas", false)];
        let p = plan(&h, &[GPU], PlanOptions::default());
        assert_eq!(p.verdict(), Verdict::Ok);
        assert!(p
            .warnings
            .iter()
            .any(|w| w.code == Code::AssignedElsewhere && w.message.contains("`nas`")));
    }

    #[test]
    fn a_card_split_across_groups_is_named_with_its_slot() {
        let mut h = host();
        h.devices.get_mut(&HDA).unwrap().iommu_group = Some(7);
        h.groups
            .get_mut(&1)
            .unwrap()
            .retain(|m| m != &GroupMember::Pci(HDA));
        h.groups.insert(7, vec![GroupMember::Pci(HDA)]);
        let p = plan(&h, &[GPU], PlanOptions::default());
        let w = p
            .warnings
            .iter()
            .find(|w| w.code == Code::SplitCard)
            .unwrap();
        assert!(
            w.message.contains("the card 01:00 is split"),
            "{}",
            w.message
        );
        assert!(w.help.as_deref().unwrap_or("").contains("snippet 01:00"));
        // Naming the slot takes both: no warning.
        let p = plan(&h, &[GPU, HDA], PlanOptions::default());
        assert!(!p.warnings.iter().any(|w| w.code == Code::SplitCard));
    }

    #[test]
    fn a_group_mate_from_another_card_is_unrelated() {
        // B550: the GPU shares group 13 with the chipset's USB and SATA.
        let h = sample("004-msi-b550m-mortar-turing-4fn.json");
        let p = plan(&h, &[a("0000:04:00.0")], PlanOptions::default());
        let unrelated: Vec<_> = p
            .warnings
            .iter()
            .filter(|w| w.code == Code::UnrelatedDevice)
            .filter_map(|w| w.address.as_deref())
            .collect();
        assert!(unrelated.contains(&"0000:02:00.0"), "{unrelated:?}");
        assert!(unrelated.contains(&"0000:02:00.1"), "{unrelated:?}");
        // The GPU's own functions are not unrelated.
        assert!(!unrelated.iter().any(|u| u.starts_with("0000:04:00.")));
        assert!(p.travels.contains(&a("0000:02:00.0")));
    }

    #[test]
    fn a_travelling_function_without_reset_warns() {
        let mut h = host();
        let d = h.devices.get_mut(&HDA).unwrap();
        d.reset_methods = Some(Vec::new());
        d.reset = Some(false);
        let p = plan(&h, &[GPU], PlanOptions::default());
        let w = one(&p.warnings, Code::NoReset);
        assert_eq!(w.address.as_deref(), Some("0000:01:00.1"));
        assert!(w
            .message
            .contains("no FLR, PM reset or bus reset available"));
        // What does not travel is not warned about.
        let p = plan(&h, &[GPU], loose());
        assert!(!codes(&p.warnings).contains(&Code::NoReset));
    }

    #[test]
    fn a_pf_with_active_vfs_warns() {
        let mut h = host();
        h.devices.get_mut(&GPU).unwrap().sriov_numvfs = Some(4);
        let p = plan(&h, &[GPU], PlanOptions::default());
        let w = one(&p.warnings, Code::SriovPfActiveVfs);
        assert!(w.message.contains("with 4 active VFs"), "{}", w.message);
        assert_eq!(p.verdict, Verdict::Ok);
    }

    #[test]
    fn functions_on_host_drivers_are_one_warning() {
        let mut h = host();
        let p = plan(&h, &[GPU], PlanOptions::default());
        let bound: Vec<_> = p
            .warnings
            .iter()
            .filter(|w| w.code == Code::HostDriver)
            .collect();
        assert_eq!(bound.len(), 1);
        assert!(bound[0].message.starts_with(
            "0000:01:00.0 (`nouveau`), 0000:01:00.1 (`snd_hda_intel`) are bound to host drivers"
        ));
        for a in [GPU, HDA] {
            h.devices.get_mut(&a).unwrap().driver = Some("vfio-pci".into());
        }
        let p = plan(&h, &[GPU], PlanOptions::default());
        assert!(!codes(&p.warnings).contains(&Code::HostDriver));
    }
}
