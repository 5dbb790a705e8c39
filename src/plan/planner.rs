//! The planner: [`super::plan`] as named steps, one rule per method.
//!
//! The walk: each requested function ([`Planner::requested`]: present, an
//! endpoint, in a group), then its IOMMU group once, member by member
//! (`group.rs`), then the rules about what travels (`travelling.rs`). Each
//! rule's method says in its doc what the rule is and where it comes from.
//! The order of the calls is the order of the findings in the JSON output,
//! which scripts and the golden files rely on.

use super::findings::{Code, Finding};
use super::{GroupPlan, Member, Plan, PlanOptions, Role, Verdict};
use crate::address::{PciAddress, PciSlot};
use crate::host::{Device, Host, IommuState, Kind};
use std::collections::BTreeSet;

/// The name libvirt's non-endpoint error uses, for messages users search for.
const LIBVIRT_NON_ENDPOINT: &str =
    "libvirt refuses it: \"Non-endpoint PCI devices cannot be assigned to guests\"";

/// One plan being computed: the host, the request, and the plan so far.
pub(super) struct Planner<'h> {
    pub(super) host: &'h Host,
    pub(super) opts: PlanOptions,
    /// The requested functions.
    pub(super) req: BTreeSet<PciAddress>,
    /// The slots (cards) of the requested functions.
    pub(super) req_slots: BTreeSet<PciSlot>,
    /// What travels so far, in address order.
    pub(super) travels: BTreeSet<PciAddress>,
    /// Groups already walked (two requested functions of one group walk it once).
    seen_groups: BTreeSet<u32>,
    /// Write the plan's words (messages, help lines, members' reasons).
    /// `false` for [`super::verdict`]: the same rules run and the same
    /// codes come out, without formatting text nobody reads (`list` asks
    /// for every group's verdict; the text was most of its cost).
    words: bool,
    pub(super) p: Plan,
}

/// Which of the plan's lists a finding goes to.
#[derive(Clone, Copy)]
pub(super) enum To {
    Blockers,
    Unverified,
    Warnings,
}

impl<'h> Planner<'h> {
    pub(super) fn new(host: &'h Host, requested: &[PciAddress], opts: PlanOptions) -> Self {
        Planner {
            host,
            p: Plan {
                requested: requested.to_vec(),
                strict_group: opts.strict_group,
                travels: Vec::new(),
                groups: Vec::new(),
                blockers: Vec::new(),
                unverified: Vec::new(),
                warnings: Vec::new(),
                verdict: Verdict::Nothing,
            },
            opts,
            req: requested.iter().copied().collect(),
            req_slots: requested.iter().map(|a| a.slot_of()).collect(),
            travels: BTreeSet::new(),
            seen_groups: BTreeSet::new(),
            words: true,
        }
    }

    /// The same planner, writing no words (see [`Planner::words`]).
    pub(super) fn without_words(mut self) -> Self {
        self.words = false;
        self
    }

    /// Record a finding: `code` about `a`, with the message and help line
    /// `words` writes, called only when the plan has words (a plan without
    /// words keeps no warnings at all).
    pub(super) fn say(
        &mut self,
        to: To,
        code: Code,
        a: Option<&dyn ToString>,
        words: impl FnOnce() -> (String, Option<String>),
    ) {
        if !self.words && matches!(to, To::Warnings) {
            return;
        }
        let f = if self.words {
            let (message, help) = words();
            Finding {
                code,
                address: a.map(|a| a.to_string()),
                message,
                help,
            }
        } else {
            Finding {
                code,
                address: None,
                message: String::new(),
                help: None,
            }
        };
        match to {
            To::Blockers => self.p.blockers.push(f),
            To::Unverified => self.p.unverified.push(f),
            To::Warnings => self.p.warnings.push(f),
        }
    }

    /// A member of a group's plan; `reason` is called only when the plan
    /// has words.
    pub(super) fn member_of(
        &self,
        member: &dyn ToString,
        role: Role,
        requested: bool,
        reason: impl FnOnce() -> String,
    ) -> Member {
        let (member, reason) = if self.words {
            (member.to_string(), reason())
        } else {
            (String::new(), String::new())
        };
        Member {
            member,
            role,
            requested,
            reason,
        }
    }

    /// Every requested function and its group, then what travels.
    pub(super) fn run(mut self) -> Plan {
        for a in self.p.requested.clone() {
            self.requested(&a);
        }
        // Warnings decide neither the verdict nor its codes: a plan without
        // words skips the passes that find nothing else.
        if self.words {
            self.travelling_warnings();
        }
        self.p.travels = std::mem::take(&mut self.travels).into_iter().collect();
        if self.words {
            self.split_cards();
        }
        self.unknown_facts();
        self.domain_use();
        self.p.verdict = self.p.verdict();
        self.p
    }

    /// One requested function: present, an endpoint, in a group; then its
    /// group, once.
    fn requested(&mut self, a: &PciAddress) {
        let host = self.host;
        let Some(d) = host.device(a) else {
            self.not_present(a);
            return;
        };
        self.requested_kind(a, d);
        let Some(gid) = d.iommu_group else {
            self.without_group(a, d);
            return;
        };
        if !self.seen_groups.insert(gid) {
            return;
        }
        self.group_unverified(a, gid);
        self.group(gid);
    }

    /// `not-present` (blocker): a requested address the host does not have.
    /// libvirt skips such a hostdev silently at start and QEMU fails later
    /// (docs/libvirt.md §3, `virhostdev.c:237-238`), so we say it first.
    fn not_present(&mut self, a: &PciAddress) {
        let host = self.host;
        self.say(To::Blockers, Code::NotPresent, Some(a), || {
            (
                format!("{a} is not present on {}", host.source),
                Some(format!(
                    "`{}` shows the devices of this host",
                    host.suggest("list")
                )),
            )
        });
    }

    /// `host-bridge` and `not-endpoint` (blockers): only endpoints can be
    /// hostdevs. libvirt refuses any other header type with "Non-endpoint
    /// PCI devices cannot be assigned to guests" (`virhostdev.c:689-697`,
    /// docs/libvirt.md §3); the host bridge is, besides, the root complex
    /// the host runs on.
    fn requested_kind(&mut self, a: &PciAddress, d: &Device) {
        let host = self.host;
        match d.kind() {
            Kind::HostBridge => self.say(To::Blockers, Code::HostBridge, Some(a), || (
                format!("{a} is the host bridge (root complex): the host cannot run without it"),
                Some(format!("name the device behind it instead; `{}` shows the topology", host.suggest("list --tree"))),
            )),
            Kind::Bridge => self.say(To::Blockers, Code::NotEndpoint, Some(a), || (
                format!("{a} is a PCI bridge or root port and can never be a hostdev; {LIBVIRT_NON_ENDPOINT}"),
                Some("pass the endpoint devices behind it; the bridge stays on the host".into()),
            )),
            Kind::Endpoint => {}
        }
    }

    /// A requested function with no IOMMU group. VFIO assigns groups, not
    /// devices (docs/libvirt.md §3), so with no IOMMU at all (`no-iommu`)
    /// or none covering the device (`no-iommu-group`) it blocks. When the
    /// source does not say (`group-unknown`, a listing without groups) the
    /// function travels alone and the plan is unverified: a group is never
    /// assumed to be a function's own.
    fn without_group(&mut self, a: &PciAddress, d: &Device) {
        let host = self.host;
        let (code, msg, help) = match host.iommu {
            IommuState::Disabled => (
                Code::NoIommu,
                format!("{a} has no IOMMU group: the host has no IOMMU groups at all, and VFIO passthrough needs them"),
                "enable VT-d (Intel) or AMD-Vi/IOMMU (AMD) in the firmware, and boot with intel_iommu=on (Intel) or amd_iommu=on (AMD)",
            ),
            IommuState::Enabled => (
                Code::NoIommuGroup,
                format!("{a} has no IOMMU group: the IOMMU does not cover this device"),
                "check the firmware's IOMMU settings for this root complex; the kernel log names uncovered devices",
            ),
            IommuState::Unknown => (
                Code::GroupUnknown,
                format!("{a}: the IOMMU group is not known from {}", host.source),
                "read the host itself (or a snapshot of it) to plan with groups",
            ),
        };
        let unknown = code == Code::GroupUnknown;
        let to = if unknown {
            To::Unverified
        } else {
            To::Blockers
        };
        self.say(to, code, Some(a), || (msg, Some(help.into())));
        if unknown && d.kind() == Kind::Endpoint {
            self.travels.insert(*a);
        }
        let role = if unknown { Role::Travels } else { Role::Blocks };
        let member = self.member_of(a, role, true, || "requested; no IOMMU group".into());
        self.p.groups.push(GroupPlan {
            group: None,
            members: vec![member],
        });
    }

    /// `group-unverified` (unverified): the source could not read the
    /// groups, or its groups contradict its devices (a partial listing, a
    /// hand-made tree). A membership the source cannot vouch for is never
    /// taken for a smaller group.
    fn group_unverified(&mut self, a: &PciAddress, gid: u32) {
        let facts = &self.host.facts;
        let why = facts
            .groups_unreadable
            .as_ref()
            .or_else(|| facts.inconsistent_groups.get(&gid));
        if let Some(why) = why {
            self.say(To::Unverified, Code::GroupUnverified, Some(a), || (
                format!("the members of IOMMU group {gid} are not known: {why}"),
                Some("read the host again (`virt-pci snapshot -o host.json` on it); a group is never taken to be smaller than the kernel says".into()),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::*;
    use super::super::*;
    use crate::host::IommuState;

    #[test]
    fn bridges_and_host_bridge_are_refused() {
        let h = host();
        let p = plan(&h, &[PciAddress::new(0, 0, 1, 0)], PlanOptions::default());
        assert_eq!(p.blockers[0].code, Code::NotEndpoint);
        let p = plan(&h, &[PciAddress::new(0, 0, 0, 0)], PlanOptions::default());
        assert_eq!(p.blockers[0].code, Code::HostBridge);
        assert!(p.travels.is_empty());
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
        assert_eq!(p.blockers[0].code, Code::NoIommu);
        assert!(p.blockers[0]
            .help
            .as_deref()
            .unwrap_or("")
            .contains("intel_iommu=on"));
    }
    #[test]
    fn inconsistent_or_unknown_groups_are_unverified() {
        let mut h = host();
        h.groups.remove(&1);
        h.check_group_consistency();
        let p = plan(&h, &[GPU], PlanOptions::default());
        assert_eq!(p.verdict(), Verdict::Unverified);
        assert!(p.unverified.iter().any(|f| f.code == Code::GroupUnverified));
        let mut h = host();
        h.facts.groups_unreadable = Some("iommu_groups: permission denied".into());
        assert_eq!(
            plan(&h, &[GPU], PlanOptions::default()).verdict(),
            Verdict::Unverified
        );
    }
    #[test]
    fn an_address_the_host_lacks_is_not_present() {
        let h = sample("001-asrock-z170-gaming-itx-gtx960.json");
        let p = plan(&h, &[a("0000:09:00.0")], PlanOptions::default());
        assert_eq!(codes(&p.blockers), vec![Code::NotPresent]);
        assert!(p.blockers[0].message.contains("is not present on"));
        assert!(p.groups.is_empty() && p.travels.is_empty());
    }
    #[test]
    fn no_group_blocks_where_the_iommu_is_on_and_is_unverified_where_unknown() {
        // An A40 whose physical function the IOMMU does not cover.
        let h = sample("020-a40-vgpu-sriov-vfs-and-mdev-groups.json");
        let p = plan(&h, &[a("0000:51:00.0")], PlanOptions::default());
        assert_eq!(codes(&p.blockers), vec![Code::NoIommuGroup]);
        assert_eq!(p.groups[0].members[0].role, Role::Blocks);
        assert!(p.travels.is_empty());
        // An lspci listing says nothing of groups: it travels, unverified.
        let h = sample("032-supermicro-h12ssw-epyc-7302p-lspci-knn.json");
        let usb = a("0000:00:14.0");
        let p = plan(&h, &[usb], PlanOptions::default());
        assert!(p.blockers.is_empty(), "{:?}", p.blockers);
        assert_eq!(
            one(&p.unverified, Code::GroupUnknown).address.as_deref(),
            Some("0000:00:14.0")
        );
        assert_eq!(p.travels, vec![usb]);
        assert_eq!(p.verdict, Verdict::Unverified);
    }
}
