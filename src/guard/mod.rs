//! The guard: libvirt's `prepare begin` hook checks every VM start, whatever
//! tool edited the domain (`virsh edit`, virt-manager, cockpit, a script).
//!
//! libvirt runs `qemu.d/` hooks as `SCRIPT DOMAIN OPERATION SUB-OP EXTRA`
//! with the live domain XML on stdin; `prepare begin` comes before libvirt
//! detaches or resets any hostdev (`qemuProcessInit` → `qemuProcessStartHook`,
//! src/qemu/qemu_process.c), a non-zero exit stops the start, and the
//! hook's stderr becomes the end of `virsh start`'s error ("Hook script
//! execution failed: … unexpected exit status 1: …"; on success stderr only
//! reaches libvirt's debug log). The daemon waits for the hook, so it must
//! be quick and must never call libvirt (the start job holds the domain:
//! a call back would deadlock).
//!
//! So the guard reads only: the domain from stdin (bounded, [`MAX_INPUT`]),
//! the sysfs entries of the domain's own IOMMU groups
//! ([`crate::host::sysfs::read_groups_of`]), and libvirt's status files of
//! running domains ([`runstate`]). It plans with the same planner as `show`
//! ([`crate::plan::plan_for_start`]) and refuses when:
//!
//! | rule | when | consent? |
//! |---|---|---|
//! | `host-critical` (`root-filesystem`, `default-route`, `boot-vga`, `isa-bridge`) | a hostdev is host-critical | yes |
//! | `group-not-viable` | an endpoint of a hostdev's group is neither in the domain nor on vfio-pci, pci-stub or no driver | yes |
//! | `not-endpoint`, `host-bridge` | a hostdev is a bridge, root port or the host bridge | no |
//! | `in-use` | a hostdev or a member of its group is held by another running domain | no |
//! | `not-detached` | a `managed='no'` hostdev is not on vfio-pci (libvirt: "Unmanaged PCI device … must be manually detached") | no |
//! | `not-present`, `no-iommu`, … | the plan cannot be made at all | no |
//!
//! Consent (an entry in the domain's `<metadata>`, [`crate::domain::consent`]) lifts
//! the rules marked so; the others would fail later anyway, with a worse
//! message. Warnings of the plan (no reset method, unrelated devices) never
//! stop a start.
//!
//! Choices: a domain without PCI hostdevs passes at once, without reading
//! sysfs. Every operation other than `prepare begin` passes without reading
//! stdin (`release end` included: what a stopped domain leaves behind is
//! `virt-pci release`'s business, and a hook must not fail a stop). Input
//! that is not a libvirt domain blocks the start with the position of the
//! problem: libvirt always sends the XML it formatted itself, so garbage
//! means the hook was run by hand or something is badly wrong, and a guard
//! that cannot read the domain cannot vouch for it.

pub mod hook;
pub mod runstate;

use crate::address::PciAddress;
use crate::domain::consent::{self, Allow};
use crate::domain::DomainHostdev;
use crate::plan::{self, Code, Finding};
use std::path::Path;

/// The largest domain XML the guard reads (libvirt's own largest XML is
/// far below: a domain with hundreds of devices is a few hundred KiB).
pub const MAX_INPUT: usize = 16 << 20;

/// Whether the guard checks this hook invocation.
pub fn applies(operation: &str, sub_op: &str) -> bool {
    operation == "prepare" && sub_op == "begin"
}

/// One reason to stop the start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The rule (consent names it), e.g. `boot-vga`, `group-not-viable`.
    pub rule: String,
    /// The device the rule is about.
    pub device: Option<String>,
    pub message: String,
    pub help: Vec<String>,
    /// Whether a consent entry can lift it.
    pub consentable: bool,
}

/// A refusal lifted by a consent entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consented {
    pub refusal: Refusal,
    pub entry: Allow,
}

/// The guard's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No PCI hostdev: nothing to check.
    NoHostdevs,
    /// Checked: the start may go on.
    Pass {
        hostdevs: usize,
        groups: usize,
        consented: Vec<Consented>,
    },
    /// The start must stop.
    Refuse {
        refusals: Vec<Refusal>,
        consented: Vec<Consented>,
    },
}

/// The input could not be judged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuardError {
    /// Not a libvirt domain, with the position when there is one.
    Input {
        message: String,
        line: u32,
        column: u32,
    },
    /// sysfs under the root cannot be read.
    Host(String),
}

impl std::fmt::Display for GuardError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GuardError::Input {
                message,
                line,
                column,
            } => write!(f, "<stdin>:{line}:{column}: {message}"),
            GuardError::Host(m) => f.write_str(m),
        }
    }
}

/// Judge the start of `domain` (its XML in `xml`) on the host under `root`.
pub fn check(root: &Path, domain: &str, xml: &str) -> Result<Verdict, GuardError> {
    let doc = crate::domain::edit::parse_domain(xml).map_err(|e| {
        let (line, column) = e.position().unwrap_or((1, 1));
        GuardError::Input {
            message: e.to_string(),
            line,
            column,
        }
    })?;
    let hostdevs = crate::domain::pci_hostdevs(&doc);
    if hostdevs.is_empty() {
        return Ok(Verdict::NoHostdevs);
    }
    let mut addrs: Vec<PciAddress> = Vec::new();
    for h in &hostdevs {
        let Some(a) = h.address else {
            let p = doc.text_pos_at(h.range.start);
            return Err(GuardError::Input {
                message: "a PCI hostdev without a readable source address".into(),
                line: p.row,
                column: p.col,
            });
        };
        if !addrs.contains(&a) {
            addrs.push(a);
        }
    }
    let entries = consent::entries(&doc);
    let mut host = crate::host::sysfs::read_groups_of(root, &addrs)
        .map_err(|e| GuardError::Host(e.to_string()))?;
    host.domains = runstate::running_uses(root, domain);
    Ok(judge(&host, domain, &hostdevs, &entries))
}

/// The verdict on starting `domain` with `hostdevs` (and consent `entries`)
/// on `host`, whose `domains` hold the uses by other running domains.
/// `add --force` asks the same question to know which consent to write.
pub fn judge(
    host: &crate::host::Host,
    domain: &str,
    hostdevs: &[DomainHostdev],
    entries: &[Allow],
) -> Verdict {
    let mut addrs: Vec<PciAddress> = Vec::new();
    for a in hostdevs.iter().filter_map(|h| h.address) {
        if !addrs.contains(&a) {
            addrs.push(a);
        }
    }
    if addrs.is_empty() {
        return Verdict::NoHostdevs;
    }
    let p = plan::plan_for_start(host, &addrs);
    let mut refusals: Vec<Refusal> = Vec::new();
    for f in &p.blockers {
        refusals.extend(refusals_of(host, f, domain, &addrs));
    }
    for h in hostdevs {
        refusals.extend(unmanaged_on_host_driver(host, h, domain));
    }
    // The same finding may come once per group member; keep one.
    let mut seen = std::collections::BTreeSet::new();
    refusals.retain(|r| seen.insert((r.rule.clone(), r.device.clone(), r.message.clone())));

    let group_of = |a: &PciAddress| host.device(a).and_then(|d| d.iommu_group);
    let mut consented = Vec::new();
    let mut left = Vec::new();
    for r in refusals {
        let entry = consent_for(host, &r, &addrs)
            .and_then(|(dev, rule)| entries.iter().find(|e| e.allows(&dev, &rule)));
        match entry {
            Some(e) => consented.push(Consented {
                refusal: r,
                entry: e.clone(),
            }),
            None => left.push(r),
        }
    }
    if left.is_empty() {
        let groups: std::collections::BTreeSet<u32> = addrs.iter().filter_map(group_of).collect();
        Verdict::Pass {
            hostdevs: addrs.len(),
            groups: groups.len(),
            consented,
        }
    } else {
        Verdict::Refuse {
            refusals: left,
            consented,
        }
    }
}

/// The consent entry (device, rule) that would lift `r`, when one can: the
/// device the rule is about, except for a group that is not viable, where it
/// is the domain's own device in that group (so that `remove` of the device
/// takes its consent along).
pub(crate) fn consent_for(
    host: &crate::host::Host,
    r: &Refusal,
    addrs: &[PciAddress],
) -> Option<(PciAddress, String)> {
    if !r.consentable {
        return None;
    }
    let dev = r
        .device
        .as_deref()
        .and_then(|d| PciAddress::parse(d).ok())?;
    if r.rule == "group-not-viable" {
        let g = host.device(&dev).and_then(|d| d.iommu_group)?;
        let mine = addrs
            .iter()
            .find(|a| host.device(a).and_then(|d| d.iommu_group) == Some(g))?;
        return Some((*mine, r.rule.clone()));
    }
    Some((dev, r.rule.clone()))
}

/// The consent entries that would let `text` (a domain) start on `host`:
/// one per refusal a consent can lift. `add --force` writes them, so that
/// what was forced once stays visible in the domain and the guard lets it
/// start.
pub fn consent_needed(
    host: &crate::host::Host,
    text: &str,
    reason: &str,
) -> Result<Vec<consent::NewAllow>, crate::domain::edit::EditError> {
    let doc = crate::domain::edit::parse_domain(text)?;
    let name = crate::domain::domain_name(&doc).unwrap_or_default();
    let hostdevs = crate::domain::pci_hostdevs(&doc);
    let addrs: Vec<PciAddress> = hostdevs.iter().filter_map(|h| h.address).collect();
    let Verdict::Refuse { refusals, .. } = judge(host, &name, &hostdevs, &[]) else {
        return Ok(Vec::new());
    };
    Ok(refusals
        .iter()
        .filter_map(|r| consent_for(host, r, &addrs))
        .map(|(device, rule)| consent::NewAllow {
            device,
            rule,
            reason: reason.to_string(),
        })
        .collect())
}

fn consent_help(domain: &str, device: &str, rule: &str, how: &str) -> String {
    format!(
        "if this is deliberate, record it in domain '{domain}': <virt-pci:allow device='{device}' rule='{rule}' reason='…'/> in its <metadata> (`{how}` writes it)"
    )
}

/// The refusals one plan blocker stands for.
fn refusals_of(
    host: &crate::host::Host,
    f: &Finding,
    domain: &str,
    addrs: &[PciAddress],
) -> Vec<Refusal> {
    let mut help: Vec<String> = f.help.iter().cloned().collect();
    match f.code {
        Code::HostCritical => {
            let a = f.address.as_deref().and_then(|s| PciAddress::parse(s).ok());
            let kinds: Vec<&'static str> = a
                .and_then(|a| host.device(&a))
                .map(|d| d.critical.iter().map(consent::critical_rule).collect())
                .unwrap_or_default();
            let rule = kinds.first().copied().unwrap_or("host-critical");
            if let Some(dev) = &f.address {
                help.push(consent_help(
                    domain,
                    dev,
                    rule,
                    &format!("virt-pci add --force --domain {domain} {dev}"),
                ));
            }
            vec![Refusal {
                rule: rule.to_string(),
                device: f.address.clone(),
                message: f.message.clone(),
                help,
                consentable: true,
            }]
        }
        Code::GroupNotViable => {
            if let Some(dev) = &f.address {
                help.clear();
                let group = PciAddress::parse(dev)
                    .ok()
                    .and_then(|a| host.device(&a))
                    .and_then(|d| d.iommu_group);
                let bound: Vec<String> = host
                    .devices
                    .values()
                    .filter(|d| {
                        d.iommu_group == group
                            && d.kind() == crate::host::Kind::Endpoint
                            && !addrs.contains(&d.address)
                            && !d.driver_is_vfio_safe()
                    })
                    .map(|d| d.address.to_string())
                    .collect();
                let list = if bound.is_empty() {
                    dev.clone()
                } else {
                    bound.join(" ")
                };
                help.push(format!(
                    "pass the whole group: `virt-pci add --domain {domain} {list}`, or bind the rest to vfio-pci: `virt-pci detach {list}`"
                ));
                let mine = addrs.iter().find(|a| {
                    host.device(a).and_then(|d| d.iommu_group) == group && group.is_some()
                });
                if let Some(m) = mine {
                    help.push(consent_help(
                        domain,
                        &m.to_string(),
                        Code::GroupNotViable.as_str(),
                        &format!("virt-pci add --force --no-strict-group --domain {domain} {m}"),
                    ));
                }
            }
            vec![Refusal {
                rule: f.code.to_string(),
                device: f.address.clone(),
                message: f.message.clone(),
                help,
                consentable: true,
            }]
        }
        code => vec![Refusal {
            rule: code.to_string(),
            device: f.address.clone(),
            message: f.message.clone(),
            help,
            consentable: false,
        }],
    }
}

/// libvirt starts a `managed='no'` device only when it is already on
/// vfio-pci (or detached through libvirt, which puts it there):
/// src/hypervisor/virhostdev.c, "Unmanaged PCI device %s must be manually
/// detached from the host". pci-stub does not count for libvirt.
fn unmanaged_on_host_driver(
    host: &crate::host::Host,
    h: &DomainHostdev,
    domain: &str,
) -> Option<Refusal> {
    if h.is_managed() {
        return None;
    }
    let a = h.address?;
    let d = host.device(&a)?;
    if d.driver.as_deref() == Some("vfio-pci") {
        return None;
    }
    let now = match d.driver.as_deref() {
        Some(drv) => format!("is still bound to the host driver `{drv}`"),
        None => "has no driver (libvirt needs it on vfio-pci)".to_string(),
    };
    Some(Refusal {
        rule: "not-detached".into(),
        device: Some(a.to_string()),
        message: format!(
            "{a} is managed='no' and {now}; libvirt would refuse: \"Unmanaged PCI device {a} must be manually detached from the host\""
        ),
        help: vec![
            format!("detach it (and its IOMMU group) first: `virt-pci prepare {domain}`"),
            "or let libvirt do it at every start: managed='yes'".into(),
        ],
        consentable: false,
    })
}

/// The refusal as text for stderr (and so for `virsh start`'s error):
/// rustc's shape, one block per refusal.
pub fn render(domain: &str, refusals: &[Refusal], consented: &[Consented]) -> String {
    let mut s = format!(
        "virt-pci guard refused to start domain '{domain}' ({} problem{}; no device was touched):\n",
        refusals.len(),
        if refusals.len() == 1 { "" } else { "s" }
    );
    for r in refusals {
        s.push_str(&format!("error[{}]: {}\n", r.rule, r.message));
        if let Some(d) = &r.device {
            s.push_str(&format!("  --> domain '{domain}', device {d}\n"));
        }
        for h in &r.help {
            s.push_str(&format!("help: {h}\n"));
        }
    }
    for c in consented {
        s.push_str(&format!(
            "note: allowed by consent ({} for {}): {}\n",
            c.entry.rule, c.entry.device_text, c.refusal.message
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_prepare_begin_is_checked() {
        assert!(applies("prepare", "begin"));
        for (o, s) in [
            ("release", "end"),
            ("start", "begin"),
            ("started", "begin"),
            ("stopped", "end"),
            ("migrate", "begin"),
            ("prepare", "end"),
        ] {
            assert!(!applies(o, s), "{o} {s}");
        }
    }
}
