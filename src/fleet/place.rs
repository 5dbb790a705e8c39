//! Placement: on which hosts a domain's hostdevs can run, and what its
//! hostdev addresses become there.
//!
//! A domain names host addresses, which mean nothing on another host. So
//! each of its PCI hostdevs is first turned into what it *needs*, per
//! physical card (slot):
//!
//! 1. a **logical device** of the mapping ([`super::mapping`]) when the
//!    hostdev carries the user alias `ua-NAME` or `ua-NAME-N` of a mapped
//!    NAME (what `virt-pci add --alias NAME` writes), or when the source
//!    host's mapping entry covers its address;
//! 2. otherwise **the same card**: the vendor:device (and subsystem, where
//!    both hosts know it) of every function the domain uses on that slot,
//!    read from the source host; among several identical cards the n-th
//!    card of the source host maps to the n-th card of the target, so
//!    retargeting there and back gives the original addresses.
//!
//! Then, per host, [`resolve`] finds the functions that satisfy the needs,
//! and the planner ([`crate::plan::plan`]) decides, exactly as for one host,
//! whether they can leave it: present, the whole group clean (nothing
//! host-critical, no non-PCI member, an IOMMU group at all), and not held by
//! another domain. Functions the target's group adds (a card that shares
//! its group there) are reported, and `retarget` adds them.

use super::inventory::{plan_status, subsystem_of, Status};
use super::mapping::{check_entry, Ids, Mapping};
use super::FleetHost;
use crate::address::{PciAddress, PciSlot};
use crate::domain::edit::{self, EditError};
use crate::host::Host;
use crate::plan::{self, PlanOptions};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// One PCI hostdev of a domain file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hostdev {
    pub address: PciAddress,
    /// libvirt's `<alias name=...>`.
    pub alias: Option<String>,
    pub interface: bool,
}

/// The PCI hostdevs of a domain file, and its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainDevices {
    pub name: Option<String>,
    pub hostdevs: Vec<Hostdev>,
}

/// Read a domain file's PCI hostdevs (with their aliases).
pub fn read_domain(text: &str) -> Result<DomainDevices, EditError> {
    let doc = edit::parse_domain(text)?;
    let mut hostdevs = Vec::new();
    for h in crate::domain::pci_hostdevs(&doc) {
        let Some(address) = h.address else { continue };
        let node = doc
            .descendants()
            .find(|n| n.is_element() && n.range() == h.range);
        let alias = node
            .and_then(|n| n.children().find(|c| c.has_tag_name("alias")))
            .and_then(|a| a.attribute("name"))
            .map(str::to_string);
        hostdevs.push(Hostdev {
            address,
            alias,
            interface: h.interface,
        });
    }
    Ok(DomainDevices {
        name: crate::domain::domain_name(&doc),
        hostdevs,
    })
}

/// What one physical card of the domain needs on a host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Want {
    /// A logical device of the mapping.
    Logical { name: String },
    /// The same card: per function the ids (and subsystem when known);
    /// `ordinal` is the card's rank among identical cards on the source.
    Card {
        functions: Vec<(u8, String, Option<String>)>,
        ordinal: usize,
    },
}

/// One card of the domain (the hostdevs of one source slot).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Need {
    /// The domain's addresses on this slot, in document order.
    pub from: Vec<PciAddress>,
    pub want: Want,
}

impl Need {
    /// `10de:1e84+10de:10f8` or `logical device turing-gpu`, for messages.
    pub fn describe(&self) -> String {
        match &self.want {
            Want::Logical { name } => format!("logical device `{name}`"),
            Want::Card { functions, .. } => {
                let mut ids: Vec<String> = Vec::new();
                for (_, id, sub) in functions {
                    let s = match sub {
                        Some(s) => format!("{id} (subsystem {s})"),
                        None => id.clone(),
                    };
                    if !ids.contains(&s) {
                        ids.push(s);
                    }
                }
                ids.join(" + ")
            }
        }
    }
}

/// Why a host cannot take a domain (or a need cannot be read).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Reason {
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

fn reason(code: &str, address: Option<String>, message: String, help: Option<String>) -> Reason {
    Reason {
        code: code.to_string(),
        address,
        message,
        help,
    }
}

/// The name an alias gives, when it is `ua-NAME` or `ua-NAME-N` of a
/// logical device in `m`.
fn logical_from_alias(alias: &str, m: &Mapping) -> Option<String> {
    let rest = alias.strip_prefix("ua-")?;
    if m.devices.contains_key(rest) {
        return Some(rest.to_string());
    }
    let (base, n) = rest.rsplit_once('-')?;
    (n.chars().all(|c| c.is_ascii_digit()) && m.devices.contains_key(base))
        .then(|| base.to_string())
}

/// Turn a domain's hostdevs into needs. `source` is the host the domain
/// runs on now (its name and facts); it is required for hostdevs that no
/// mapping names.
pub fn needs(
    dom: &DomainDevices,
    source: Option<&FleetHost>,
    mapping: Option<&Mapping>,
) -> Result<Vec<Need>, Reason> {
    let mut slots: BTreeMap<PciSlot, Vec<&Hostdev>> = BTreeMap::new();
    let mut order: Vec<PciSlot> = Vec::new();
    for h in &dom.hostdevs {
        let s = h.address.slot_of();
        if !slots.contains_key(&s) {
            order.push(s);
        }
        slots.entry(s).or_default().push(h);
    }
    let mut out = Vec::new();
    for s in order {
        let hs = &slots[&s];
        let from: Vec<PciAddress> = hs.iter().map(|h| h.address).collect();
        let logical = mapping.and_then(|m| {
            hs.iter()
                .find_map(|h| h.alias.as_deref().and_then(|a| logical_from_alias(a, m)))
                .or_else(|| {
                    let src = source?;
                    hs.iter()
                        .find_map(|h| m.device_at(&src.name, &h.address))
                        .map(|(n, _)| n.to_string())
                })
        });
        if let Some(name) = logical {
            out.push(Need {
                from,
                want: Want::Logical { name },
            });
            continue;
        }
        let Some(src) = source else {
            return Err(reason(
                "no-source-host",
                Some(from[0].to_string()),
                format!(
                    "hostdev {}: no mapping names it, and no source host says which card it is",
                    from[0]
                ),
                Some("give the host the domain runs on now (--snapshot FROM.json), or a mapping (--mapping FILE) whose entry or alias (ua-NAME) names it".into()),
            ));
        };
        let mut functions = Vec::new();
        for a in &from {
            let Some(d) = src.host.device(a) else {
                return Err(reason(
                    "not-on-source",
                    Some(a.to_string()),
                    format!(
                        "hostdev {a} is not on the source host {} ({})",
                        src.name, src.origin
                    ),
                    Some("give the snapshot of the host this domain was written for (--snapshot FROM.json)".into()),
                ));
            };
            functions.push((a.function, super::inventory::id_of(d), subsystem_of(d)));
        }
        let ordinal = card_slots(&src.host, &functions)
            .iter()
            .position(|x| *x == s)
            .unwrap_or(0);
        out.push(Need {
            from,
            want: Want::Card { functions, ordinal },
        });
    }
    Ok(out)
}

/// The slots of `host` that hold the card `functions` describes, in
/// address order. Ids are compared as numbers: this runs for every
/// function of every host of a fleet.
fn card_slots(host: &Host, functions: &[(u8, String, Option<String>)]) -> Vec<PciSlot> {
    let want: Vec<(u8, Option<Ids>, Option<Ids>)> = functions
        .iter()
        .map(|(f, id, sub)| (*f, Ids::parse(id), sub.as_deref().and_then(Ids::parse)))
        .collect();
    let Some((f0, Some(id0), _)) = want.first().copied() else {
        return Vec::new();
    };
    let same = |d: &crate::host::Device, id: Ids, sub: Option<Ids>| {
        d.vendor() == id.0
            && d.device() == id.1
            && match (sub, &d.subsystem_vendor_id, &d.subsystem_device_id) {
                (Some(s), Some(v), Some(x)) => {
                    crate::host::parse_hex(v) == u32::from(s.0)
                        && crate::host::parse_hex(x) == u32::from(s.1)
                }
                _ => true,
            }
    };
    let mut slots: BTreeSet<PciSlot> = BTreeSet::new();
    for d in host.devices.values() {
        if d.address.function == f0 && d.vendor() == id0.0 && d.device() == id0.1 {
            slots.insert(d.address.slot_of());
        }
    }
    slots
        .into_iter()
        .filter(|s| {
            want.iter().all(|(f, id, sub)| {
                let Some(id) = id else { return false };
                host.device(&PciAddress::new(s.domain, s.bus, s.slot, *f))
                    .is_some_and(|d| same(d, *id, *sub))
            })
        })
        .collect()
}

/// The addresses the domain's hostdevs get on `target`: `(from, to)` in
/// the needs' order, or every reason it cannot.
pub fn resolve(
    needs: &[Need],
    target: &FleetHost,
    mapping: Option<&Mapping>,
) -> Result<Vec<(PciAddress, PciAddress)>, Vec<Reason>> {
    let mut out = Vec::new();
    let mut reasons = Vec::new();
    let mut taken: BTreeSet<PciSlot> = BTreeSet::new();
    for n in needs {
        let slot = match &n.want {
            Want::Logical { name } => {
                let entry = mapping
                    .and_then(|m| m.devices.get(name))
                    .and_then(|d| d.hosts.get(&target.name));
                let Some(e) = entry else {
                    reasons.push(reason(
                        "not-mapped",
                        None,
                        format!("logical device `{name}` has no entry for {}", target.name),
                        Some(format!(
                            "add one with the card's address on {} (README.md, \"Many hosts\")",
                            target.name
                        )),
                    ));
                    continue;
                };
                let problems: Vec<_> = check_entry(name, &target.name, e, &target.host)
                    .into_iter()
                    .filter(|p| p.error)
                    .collect();
                if let Some(p) = problems.first() {
                    reasons.push(reason(
                        p.code,
                        Some(p.address.clone()),
                        p.message.clone(),
                        p.help.clone(),
                    ));
                    continue;
                }
                e.path.slot()
            }
            Want::Card { functions, ordinal } => {
                let cands = card_slots(&target.host, functions);
                let pick = cands
                    .get(*ordinal)
                    .filter(|s| !taken.contains(s))
                    .or_else(|| cands.iter().find(|s| !taken.contains(s)));
                match pick {
                    Some(s) => *s,
                    None if cands.is_empty() => {
                        reasons.push(reason(
                            "not-present",
                            None,
                            format!("no {} on this host", n.describe()),
                            None,
                        ));
                        continue;
                    }
                    None => {
                        reasons.push(reason(
                            "not-enough",
                            None,
                            format!(
                                "{} has {} {}, and the domain needs one more",
                                target.name,
                                cands.len(),
                                n.describe()
                            ),
                            None,
                        ));
                        continue;
                    }
                }
            }
        };
        taken.insert(slot);
        for a in &n.from {
            let to = PciAddress::new(slot.domain, slot.bus, slot.slot, a.function);
            if target.host.device(&to).is_none() {
                reasons.push(reason(
                    "not-present",
                    Some(to.to_string()),
                    format!(
                        "{} has no function {to} (for the domain's {a}, {})",
                        target.name,
                        n.describe()
                    ),
                    None,
                ));
            }
            out.push((*a, to));
        }
    }
    if reasons.is_empty() {
        Ok(out)
    } else {
        Err(reasons)
    }
}

/// Whether a host can take the domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fit {
    /// Everything checked, nothing stands in the way.
    Ok,
    /// Nothing known stands in the way, but the facts are not the host's own.
    Unverified,
    /// Cannot run there; the reasons say why.
    No,
}

#[derive(Clone, Debug, Serialize)]
pub struct HostFit {
    pub host: String,
    pub fit: Fit,
    /// The domain's addresses → this host's.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Moved>,
    /// Functions this host's IOMMU groups add (retarget adds hostdevs).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub adds: Vec<PciAddress>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<Reason>,
    /// The plan's warnings (codes and messages).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Reason>,
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub struct Moved {
    pub from: PciAddress,
    pub to: PciAddress,
}

#[derive(Clone, Debug, Serialize)]
pub struct Placement {
    pub format: &'static str,
    pub version: u32,
    pub domain: Option<String>,
    pub needs: Vec<Need>,
    pub hosts: Vec<HostFit>,
}

/// The plan on `target` for the resolved addresses, read as a fit: the
/// one decision `place` and `retarget` share.
pub fn fit_on(
    target: &FleetHost,
    moved: &[(PciAddress, PciAddress)],
    domain: Option<&str>,
) -> HostFit {
    let to: Vec<PciAddress> = moved.iter().map(|(_, t)| *t).collect();
    // The domain's own use of the devices (on the host it runs on) is no
    // conflict; another domain's is the plan's to judge.
    let opts = PlanOptions {
        for_domain: domain.map(str::to_string),
        ..PlanOptions::default()
    };
    let p = plan::plan(&target.host, &to, opts);
    let adds: Vec<PciAddress> = p
        .travels
        .iter()
        .filter(|a| !to.contains(a))
        .copied()
        .collect();
    let mut reasons: Vec<Reason> = p
        .blockers
        .iter()
        .map(|b| {
            reason(
                b.code.as_str(),
                b.address.clone(),
                b.message.clone(),
                b.help.clone(),
            )
        })
        .collect();
    let (status, why, code, _) = plan_status(&target.host, target.facts_from_host(), &p);
    let fit = match status {
        Status::Clean => Fit::Ok,
        Status::Unverified => {
            reasons.push(reason(
                code.as_deref().unwrap_or("unverified"),
                None,
                why.unwrap_or_default(),
                Some(plan::HOW_TO_VERIFY.to_string()),
            ));
            Fit::Unverified
        }
        Status::Blocked | Status::InUse => Fit::No,
    };
    let warnings = p
        .warnings
        .iter()
        .filter(|w| {
            use plan::Code::*;
            matches!(
                w.code,
                UnrelatedDevice | NoReset | GroupUnknown | AssignedElsewhere
            )
        })
        .map(|w| {
            reason(
                w.code.as_str(),
                w.address.clone(),
                w.message.clone(),
                w.help.clone(),
            )
        })
        .collect();
    HostFit {
        host: target.name.clone(),
        fit,
        addresses: moved
            .iter()
            .map(|(f, t)| Moved { from: *f, to: *t })
            .collect(),
        adds,
        reasons,
        warnings,
    }
}

/// Whether `target` can take the domain: its addresses there, then the plan.
pub fn fit(
    needs: &[Need],
    target: &FleetHost,
    mapping: Option<&Mapping>,
    domain: Option<&str>,
) -> HostFit {
    match resolve(needs, target, mapping) {
        Ok(moved) => fit_on(target, &moved, domain),
        Err(reasons) => HostFit {
            host: target.name.clone(),
            fit: Fit::No,
            addresses: Vec::new(),
            adds: Vec::new(),
            reasons,
            warnings: Vec::new(),
        },
    }
}

/// The report from per-host fits.
pub fn placement(dom: &DomainDevices, needs: Vec<Need>, hosts: Vec<HostFit>) -> Placement {
    Placement {
        format: "virt-pci-placement",
        version: 1,
        domain: dom.name.clone(),
        needs,
        hosts,
    }
}
