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
use crate::host::Host;
use serde::Serialize;

mod findings;
mod group;
mod planner;
mod remove;
mod start;
mod travelling;

pub use findings::{Code, Finding};
pub use remove::removal_warnings;
pub(crate) use start::plan_for_start;

#[derive(Clone, Debug)]
pub struct PlanOptions {
    /// Pass the whole IOMMU group (the default). `false` is qvm-pci's
    /// no-strict-reset: only the named functions, with a loud warning.
    pub strict_group: bool,
    /// The domain the devices are for (`add --domain NAME`, `prepare`):
    /// its own use of them is no conflict.
    pub for_domain: Option<String>,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            strict_group: true,
            for_domain: None,
        }
    }
}

/// The one-word answer of a plan, strongest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Something blocks it (see `blockers`).
    Blocked,
    /// Nothing known blocks it, but a fact it depends on is not known
    /// (see `unverified`): it may be blocked on the real host.
    Unverified,
    /// Every fact is measured or stated and nothing blocks it.
    Ok,
    /// No function would travel.
    Nothing,
}

/// How to make an `unverified` plan verifiable, for help lines.
pub(crate) const HOW_TO_VERIFY: &str = "run `virt-pci snapshot -o host.json` on that host and pass `--snapshot host.json`, or state the facts: `virt-pci snapshot --from-listing FILE --root-disk ADDR --default-nic ADDR --boot-vga ADDR -o host.json` (`none` where no PCI function is it)";

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

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Plan {
    pub requested: Vec<PciAddress>,
    pub strict_group: bool,
    /// Every function that goes to the guest, in address order.
    pub travels: Vec<PciAddress>,
    pub groups: Vec<GroupPlan>,
    pub blockers: Vec<Finding>,
    /// Facts the plan depends on that the source does not give (unknown
    /// host-critical facts, unknown or inconsistent IOMMU groups).
    pub unverified: Vec<Finding>,
    pub warnings: Vec<Finding>,
    /// `blocked`, `unverified`, `ok` or `nothing`; see [`Plan::verdict`].
    pub verdict: Verdict,
}

impl Plan {
    /// Something blocks the plan; acting on it needs `--force`.
    pub fn is_blocked(&self) -> bool {
        !self.blockers.is_empty()
    }

    /// Blocked or unverified: commands that write XML or act refuse it
    /// without `--force`.
    pub fn needs_force(&self) -> bool {
        self.is_blocked() || !self.unverified.is_empty()
    }

    /// Blocked, then unverified, then ok (or nothing to pass through).
    pub fn verdict(&self) -> Verdict {
        if self.is_blocked() {
            Verdict::Blocked
        } else if !self.unverified.is_empty() {
            Verdict::Unverified
        } else if self.travels.is_empty() {
            Verdict::Nothing
        } else {
            Verdict::Ok
        }
    }

    /// The findings that stop commands which write or act: blockers, then
    /// unverified facts.
    pub fn refusals(&self) -> impl Iterator<Item = &Finding> {
        self.blockers.iter().chain(self.unverified.iter())
    }

    /// The functions `snippet` and `add` write as hostdevs: what travels;
    /// under `--force` also what was asked for that the plan held back (a
    /// bridge, a function it could not place), in address order.
    pub fn hostdev_set(&self, force: bool) -> Vec<PciAddress> {
        let mut out = self.travels.clone();
        if force {
            for a in &self.requested {
                if !out.contains(a) {
                    out.push(*a);
                }
            }
            out.sort();
        }
        out
    }
}

/// Compute the plan for passing `requested` through: the rules, one per
/// method, are the `Planner`'s (`planner.rs`, `group.rs`, `travelling.rs`).
///
/// Every address must be present on `host` (resolve specs first).
pub fn plan(host: &Host, requested: &[PciAddress], opts: PlanOptions) -> Plan {
    planner::Planner::new(host, requested, opts).run()
}

/// The verdict of [`plan`] and the codes behind it — the blockers' when
/// blocked, the unknown facts' when unverified, none otherwise; in finding
/// order, each once — from the same rules, without writing the plan's
/// words. For callers that ask it of every group (`list`'s can-pass
/// column): formatting messages nobody reads was most of `list --json`'s
/// time on large hosts (BENCHMARKS.md, Findings).
pub fn verdict(host: &Host, requested: &[PciAddress], opts: PlanOptions) -> (Verdict, Vec<Code>) {
    let p = plan_without_words(host, requested, opts);
    let why = match p.verdict {
        Verdict::Blocked => &p.blockers,
        Verdict::Unverified => &p.unverified,
        Verdict::Ok | Verdict::Nothing => return (p.verdict, Vec::new()),
    };
    let mut codes: Vec<Code> = Vec::new();
    for f in why {
        if !codes.contains(&f.code) {
            codes.push(f.code);
        }
    }
    (p.verdict, codes)
}

/// [`plan`]'s verdict, travellers and findings' codes, from the same rules,
/// with no words: no messages, help lines or member reasons, and no
/// warnings. For callers that want the words only when the verdict is not
/// ok (`inventory`: the first blocker's message).
pub(crate) fn plan_without_words(host: &Host, requested: &[PciAddress], opts: PlanOptions) -> Plan {
    planner::Planner::new(host, requested, opts)
        .without_words()
        .run()
}

#[cfg(test)]
mod fixture;

#[cfg(test)]
mod tests {
    use super::fixture::*;
    use super::*;
    use crate::host::GroupMember;

    /// `verdict` skips the words, not the rules: on every sample host, for
    /// every group and every endpoint alone, strict and not, it says what
    /// the full plan says.
    #[test]
    fn the_verdict_without_words_is_the_plans() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/hosts");
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".json"))
            .collect();
        names.sort();
        assert!(names.len() >= 20, "{names:?}");
        let mut hosts: Vec<Host> = names.iter().map(|n| sample(n)).collect();
        // The fixture with a running and a shut-off domain (in-use blocks).
        let mut h = host();
        let use_ = |domain: &str, address, running| crate::host::DomainUse {
            domain: domain.into(),
            address,
            running,
            managed: true,
        };
        h.domains = vec![use_("win10", GPU, true), use_("nas", HDA, false)];
        hosts.push(h);
        let (mut blocked, mut unverified, mut ok) = (0, 0, 0);
        for h in &hosts {
            let mut requests: Vec<Vec<PciAddress>> = h
                .groups
                .values()
                .map(|m| {
                    m.iter()
                        .filter_map(|m| match m {
                            GroupMember::Pci(a) => Some(*a),
                            GroupMember::Other(_) => None,
                        })
                        .collect()
                })
                .collect();
            requests.extend(h.devices.keys().map(|a| vec![*a]));
            for req in &requests {
                for strict_group in [true, false] {
                    let opts = PlanOptions {
                        strict_group,
                        for_domain: None,
                    };
                    let p = plan(h, req, opts.clone());
                    let why = match p.verdict {
                        Verdict::Blocked => codes(&p.blockers),
                        Verdict::Unverified => codes(&p.unverified),
                        Verdict::Ok | Verdict::Nothing => Vec::new(),
                    };
                    let mut want: Vec<Code> = Vec::new();
                    for c in why {
                        if !want.contains(&c) {
                            want.push(c);
                        }
                    }
                    // inventory counts the travellers of a wordless plan
                    assert_eq!(
                        plan_without_words(h, req, opts.clone()).travels,
                        p.travels,
                        "{} {req:?}",
                        h.source
                    );
                    assert_eq!(
                        verdict(h, req, opts),
                        (p.verdict, want),
                        "{} {req:?}",
                        h.source
                    );
                    match p.verdict {
                        Verdict::Blocked => blocked += 1,
                        Verdict::Unverified => unverified += 1,
                        Verdict::Ok => ok += 1,
                        Verdict::Nothing => {}
                    }
                }
            }
        }
        // The comparison saw every kind of verdict.
        assert!(
            blocked > 0 && unverified > 0 && ok > 0,
            "{blocked} {unverified} {ok}"
        );
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
        assert_eq!(p.blockers[0].code, Code::HostCritical);
        assert!(p.groups[0]
            .members
            .iter()
            .any(|m| m.member == "0000:01:00.0" && m.requested));
    }

    #[test]
    fn unknown_facts_make_the_plan_unverified_never_ok() {
        let mut h = host();
        h.facts.boot_vga = crate::host::Provenance::Unknown;
        let p = plan(&h, &[GPU], PlanOptions::default());
        assert_eq!(p.verdict(), Verdict::Unverified);
        assert_eq!(p.verdict, Verdict::Unverified);
        assert!(p.needs_force() && !p.is_blocked());
        assert_eq!(p.unverified.len(), 1, "{:?}", p.unverified);
        assert_eq!(p.unverified[0].code, Code::FactUnknown);
        assert!(p.unverified[0]
            .message
            .contains("could be the boot VGA device"));
        // The audio function cannot be any host-critical function.
        let p = plan(&h, &[HDA], loose());
        assert_eq!(p.verdict(), Verdict::Ok, "{:?}", p.unverified);
        // Assumed is not known either.
        h.facts.boot_vga = crate::host::Provenance::Assumed;
        assert_eq!(
            plan(&h, &[GPU], PlanOptions::default()).verdict(),
            Verdict::Unverified
        );
    }

    #[test]
    fn stated_facts_count_as_stated() {
        let mut h = host();
        h.facts = crate::host::HostFacts::default();
        h.state_fact(crate::host::CriticalFact::BootVga, &[GPU])
            .unwrap();
        h.state_fact(crate::host::CriticalFact::RootFilesystem, &[])
            .unwrap();
        h.state_fact(crate::host::CriticalFact::DefaultRoute, &[])
            .unwrap();
        let p = plan(&h, &[GPU], PlanOptions::default());
        assert_eq!(p.verdict(), Verdict::Blocked);
        assert!(p.unverified.is_empty(), "{:?}", p.unverified);
        assert!(p.blockers[0].message.contains("boot VGA"));
        h.state_fact(crate::host::CriticalFact::BootVga, &[])
            .unwrap();
        assert_eq!(
            plan(&h, &[GPU], PlanOptions::default()).verdict(),
            Verdict::Ok
        );
    }

    #[test]
    fn force_adds_what_was_asked_for_and_the_plan_held_back() {
        let p = Plan {
            requested: vec![PciAddress::new(0, 0, 1, 0), PciAddress::new(0, 1, 0, 0)],
            strict_group: true,
            travels: vec![PciAddress::new(0, 1, 0, 0), PciAddress::new(0, 1, 0, 1)],
            groups: Vec::new(),
            blockers: Vec::new(),
            unverified: Vec::new(),
            warnings: Vec::new(),
            verdict: Verdict::Ok,
        };
        assert_eq!(p.hostdev_set(false), p.travels);
        assert_eq!(
            p.hostdev_set(true),
            vec![
                PciAddress::new(0, 0, 1, 0),
                PciAddress::new(0, 1, 0, 0),
                PciAddress::new(0, 1, 0, 1)
            ]
        );
    }
}
