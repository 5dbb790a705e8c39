//! Against a host (VP050–VP058), through the plan.
//!
//! Whether a domain's devices may leave the host is decided once, by
//! [`crate::plan::plan`]; this family maps each of its findings to a
//! code, points it at the hostdev it is about, and adds the one rule the
//! plan does not state per device: an IOMMU group is viable only when every
//! endpoint on a host driver travels with it (VP051, the kernel's
//! `vfio_dev_viable`). A host also answers VP024's question (decimal or
//! lspci's hex?), so that warning is dropped here when it does.

use super::context::push_at;
use super::file::Unit;
use super::{Code, Diagnostic, Source};
use crate::address::PciAddress;
use crate::host::Host;
use crate::plan::{self, plan, GroupPlan, Plan, PlanOptions, Role};
use std::collections::BTreeSet;
use std::ops::Range;

/// Our code for a plan finding's code; `None` for what no VP code says.
fn plan_code(code: plan::Code) -> Option<Code> {
    use plan::Code as P;
    Some(match code {
        P::NotPresent => Code::Vp050,
        P::NotEndpoint => Code::Vp052,
        P::HostBridge => Code::Vp053,
        P::HostCritical => Code::Vp054,
        P::NoReset => Code::Vp055,
        P::HostBridgeInGroup
        | P::NonPciMember
        | P::NoIommu
        | P::NoIommuGroup
        | P::MissingMember => Code::Vp056,
        P::FactUnknown | P::GroupUnknown | P::GroupUnverified => Code::Vp057,
        P::InUse => Code::Vp058,
        // Said by no VP code: a file check has no start to judge, and the
        // rest are advice or belong to actions (listed, so that a new code
        // is a decision here, not a silent omission).
        P::GroupNotViable
        | P::GroupSplit
        | P::SiblingLeft
        | P::UnrelatedDevice
        | P::HostDriver
        | P::SriovPfActiveVfs
        | P::SplitCard
        | P::AssignedElsewhere
        | P::ResetMaySkip
        | P::NothingToPrepare
        | P::StateUnknown
        | P::ReturnedUnreset
        | P::ModuleUnknown
        | P::NotPersisted
        | P::InitramfsUnknown
        | P::NoInitramfsRebuild => return None,
    })
}

/// VP024 asks whether a decimal bus or slot was meant as lspci's hex. A
/// host answers it: when the number as libvirt reads it (decimal) names a
/// function of the host and the hex reading does not — virt-install and
/// virt-xml write `bus="43"` for 0000:2b:00.0 — the warning is dropped.
fn drop_vp024_the_host_answers(src: &Source, u: &Unit, host: &Host, out: &mut Vec<Diagnostic>) {
    out.retain(|d| {
        if d.code != Code::Vp024 || d.file != src.path {
            return true;
        }
        let Some(h) = u
            .hostdevs
            .iter()
            .find(|h| h.range.start <= d.byte_start && d.byte_end <= h.range.end)
        else {
            return true;
        };
        let (Some(field), Some(value)) = (
            d.message.split('=').next(),
            src.text.get(d.byte_start..d.byte_end),
        ) else {
            return true;
        };
        let Ok(hex) = u8::from_str_radix(value, 16) else {
            return true;
        };
        let mut other = h.address;
        match field {
            "bus" => other.bus = hex,
            "slot" if hex <= 0x1f => other.slot = hex,
            "slot" => return host.device(&h.address).is_none(),
            _ => return true,
        }
        !(host.device(&h.address).is_some() && host.device(&other).is_none())
    });
}

/// The domain's devices against the host, through the plan.
pub(super) fn check_against_host(
    sources: &[Source],
    u: &Unit,
    host: &Host,
    out: &mut Vec<Diagnostic>,
) {
    if u.hostdevs.is_empty() {
        return;
    }
    let src = &sources[u.file];
    drop_vp024_the_host_answers(src, u, host, out);
    let requested: Vec<PciAddress> = u
        .hostdevs
        .iter()
        .map(|h| h.address)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let p = plan(
        host,
        &requested,
        PlanOptions {
            for_domain: u.name.clone(),
            ..PlanOptions::default()
        },
    );
    let at = Locator { u, host };
    plan_findings(src, &p, &at, out);
    for g in &p.groups {
        group_viable(src, g, host, &at, out);
    }
}

/// Where to point for a finding about a device of the host.
struct Locator<'a> {
    u: &'a Unit,
    host: &'a Host,
}

impl Locator<'_> {
    /// The hostdev of `addr`, else a hostdev of the same group, else the
    /// domain's first.
    fn locate(&self, addr: Option<&str>) -> Range<usize> {
        let hostdevs = &self.u.hostdevs;
        let group_of = |a: &PciAddress| self.host.device(a).and_then(|d| d.iommu_group);
        if let Some(a) = addr.and_then(|s| PciAddress::parse(s).ok()) {
            if let Some(h) = hostdevs.iter().find(|h| h.address == a) {
                return h.range.clone();
            }
            let g = group_of(&a);
            if g.is_some() {
                if let Some(h) = hostdevs.iter().find(|h| group_of(&h.address) == g) {
                    return h.range.clone();
                }
            }
        }
        hostdevs[0].range.clone()
    }
}

/// The plan's blockers, unverified facts and warnings that have a code,
/// each (code, message) once.
fn plan_findings(src: &Source, p: &Plan, at: &Locator<'_>, out: &mut Vec<Diagnostic>) {
    let mut seen: BTreeSet<(Code, String)> = BTreeSet::new();
    for f in p
        .blockers
        .iter()
        .chain(p.unverified.iter())
        .chain(p.warnings.iter())
    {
        let Some(code) = plan_code(f.code) else {
            continue;
        };
        if !seen.insert((code, f.message.clone())) {
            continue;
        }
        push_at(
            src,
            out,
            code,
            at.locate(f.address.as_deref()),
            f.message.clone(),
            None,
            f.help.clone(),
        );
    }
}

/// VP051: an endpoint of the group that stays on a host driver makes the
/// group not viable. The kernel's rule (vfio_dev_viable,
/// drivers/vfio/group.c): a member on vfio-pci, pci-stub or no driver keeps
/// the group viable though the domain does not list it.
fn group_viable(
    src: &Source,
    g: &GroupPlan,
    host: &Host,
    at: &Locator<'_>,
    out: &mut Vec<Diagnostic>,
) {
    let missing: Vec<&str> = g
        .members
        .iter()
        .filter(|m| m.role == Role::Travels && !m.requested)
        .filter(|m| {
            PciAddress::parse(&m.member)
                .ok()
                .and_then(|a| host.device(&a))
                .is_none_or(|d| !host.keeps_group_viable(d))
        })
        .map(|m| m.member.as_str())
        .collect();
    if missing.is_empty() {
        return;
    }
    let Some(gid) = g.group else { return };
    let have: Vec<&str> = g
        .members
        .iter()
        .filter(|m| m.requested && m.role == Role::Travels)
        .map(|m| m.member.as_str())
        .collect();
    if have.is_empty() {
        // Only a bridge or the host bridge was named: VP052/VP053 say so.
        return;
    }
    let first = have.first().copied();
    let (them, verb) = if missing.len() == 1 {
        (missing[0].to_string(), "is")
    } else {
        (missing.join(", "), "are")
    };
    push_at(
        src,
        out,
        Code::Vp051,
        at.locate(first),
        format!(
            "IOMMU group {gid} is not viable for this domain: {them} {verb} in the group with {} but not in the domain",
            have.join(", ")
        ),
        Some(format!("QEMU fails to start: \"group {gid} is not viable\"")),
        Some(format!(
            "pass every endpoint of the group: `{}`",
            host.suggest(&format!(
                "add {} {}",
                match src.path.strip_prefix("domain:") {
                    Some(name) => format!("--domain {}", crate::address::shell_word(name)),
                    None => format!("-i {}", crate::address::shell_word(&src.path)),
                },
                missing.join(" ")
            ))
        )),
    );
}
