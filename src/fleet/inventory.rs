//! `virt-pci inventory`: per host, the functions that could be passed
//! through, and whether each one's IOMMU group is clean, in use or blocked.
//!
//! A "passable" function is an endpoint (bridges and host bridges never are
//! hostdevs). Its status is the planner's verdict for its whole IOMMU group
//! ([`crate::plan::plan`] with every endpoint of the group requested), asked
//! once per group:
//!
//! - `blocked`: the plan has blockers (a host-critical member, a non-PCI
//!   member, no IOMMU group, ...); the first one is the reason;
//! - `in-use`: a libvirt domain holds a member of the group;
//! - `unverified`: the plan has no blockers, but the facts it rests on were
//!   not taken on the host (a libvirt URI without a snapshot: root disk,
//!   default route and boot VGA are unknown; or groups unknown);
//! - `clean`: the whole group can go to a guest.

use super::FleetHost;
use crate::address::PciAddress;
use crate::host::{GroupMember, Host, IommuState, Kind};
use crate::plan::{self, PlanOptions};
use serde::Serialize;
use std::collections::BTreeMap;

pub const FORMAT: &str = "virt-pci-inventory";
pub const VERSION: u32 = 1;

/// The verdict for a function's group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Clean,
    InUse,
    Unverified,
    Blocked,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Clean => "clean",
            Status::InUse => "in-use",
            Status::Unverified => "unverified",
            Status::Blocked => "blocked",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        [
            Status::Clean,
            Status::InUse,
            Status::Unverified,
            Status::Blocked,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// Which functions to show (all when every field is empty).
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Class prefixes as 2, 4 or 6 hex digits (`03`, `0300`, `0c0330`).
    pub classes: Vec<String>,
    /// `vendor` or `vendor:device`, 4 hex digits each.
    pub ids: Vec<(u16, Option<u16>)>,
    pub statuses: Vec<Status>,
}

/// Named class filters, as users say them.
pub const CLASS_NAMES: &[(&str, &str)] = &[
    ("gpu", "03"),
    ("display", "03"),
    ("audio", "0403"),
    ("usb", "0c03"),
    ("net", "02"),
    ("network", "02"),
    ("storage", "01"),
    ("nvme", "0108"),
    ("sata", "0106"),
    ("serial-bus", "0c"),
    ("accelerator", "12"),
];

impl Filter {
    /// Read a `--class` word: a name from [`CLASS_NAMES`] or hex digits.
    pub fn class_prefix(word: &str) -> Option<String> {
        let w = word.trim().to_ascii_lowercase();
        if let Some((_, p)) = CLASS_NAMES.iter().find(|(n, _)| *n == w) {
            return Some(p.to_string());
        }
        let w = w.strip_prefix("0x").unwrap_or(&w);
        (matches!(w.len(), 2 | 4 | 6) && w.chars().all(|c| c.is_ascii_hexdigit()))
            .then(|| w.to_string())
    }

    /// Read a `--id` word: `10de` or `10de:1e84`.
    pub fn id(word: &str) -> Option<(u16, Option<u16>)> {
        let hex4 = |s: &str| {
            (s.len() == 4)
                .then(|| u16::from_str_radix(s, 16).ok())
                .flatten()
        };
        match word.split_once(':') {
            Some((v, d)) => Some((hex4(v)?, Some(hex4(d)?))),
            None => Some((hex4(word)?, None)),
        }
    }

    /// The class and id filters (the status filter needs the verdict).
    pub fn keeps_ids(&self, class_code: u32, vendor: u16, device: u16) -> bool {
        (self.classes.is_empty()
            || self.classes.iter().any(|c| {
                let digits = c.len() as u32;
                u32::from_str_radix(c, 16).is_ok_and(|want| class_code >> (24 - 4 * digits) == want)
            }))
            && (self.ids.is_empty()
                || self
                    .ids
                    .iter()
                    .any(|(v, dev)| *v == vendor && dev.is_none_or(|x| x == device)))
    }
}

#[derive(Serialize, Debug, Clone)]
pub struct Inventory {
    pub format: &'static str,
    pub version: u32,
    pub hosts: Vec<HostInventory>,
}

#[derive(Serialize, Debug, Clone)]
pub struct HostInventory {
    pub name: String,
    /// The snapshot file or URI.
    pub source: String,
    /// Where the host-critical facts come from, the weakest of root disk,
    /// default route and boot VGA: `measured` (the host's own sysfs),
    /// `stated` (by the user), or `unverified` (unknown or assumed: a
    /// listing without stated facts, libvirt node devices).
    pub facts: &'static str,
    pub iommu: IommuState,
    /// Every PCI function of the host.
    pub functions: usize,
    /// Endpoints: what could be a hostdev.
    pub passable: usize,
    /// Passable functions the class and id filters keep (all without them).
    pub matched: usize,
    /// How many passable functions have each status, among those the class
    /// and id filters keep (all of them without those filters).
    pub counts: BTreeMap<&'static str, usize>,
    /// The passable functions that pass the filter.
    pub devices: Vec<InventoryDevice>,
}

#[derive(Serialize, Debug, Clone)]
pub struct InventoryDevice {
    pub address: PciAddress,
    /// The 24-bit class, `0x030000`.
    pub class: String,
    /// `10de:1e84`.
    pub id: String,
    /// `1462:c729`, when the source knows it.
    pub subsystem: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub iommu_group: Option<u32>,
    /// Endpoints that travel with this function (its group), itself included.
    pub group_endpoints: usize,
    pub status: Status,
    /// Why the status is not `clean`: the first blocker, the domains, or
    /// what is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The blocker's stable code (`host-critical`, `non-pci-member`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub used_by: Vec<String>,
    #[serde(skip)]
    pub class_code: u32,
    #[serde(skip)]
    pub vendor: u16,
    #[serde(skip)]
    pub device: u16,
    #[serde(skip)]
    pub vendor_name: Option<String>,
}

/// The group verdict, computed once per group.
#[derive(Clone, Debug)]
struct Verdict {
    status: Status,
    reason: Option<String>,
    code: Option<String>,
    endpoints: usize,
    used_by: Vec<String>,
}

/// `vendor:device` of a function, four hex digits each.
pub(crate) fn id_of(d: &crate::host::Device) -> String {
    format!("{:04x}:{:04x}", d.vendor(), d.device())
}

/// `subvendor:subdevice`, when the source knows both.
pub(crate) fn subsystem_of(d: &crate::host::Device) -> Option<String> {
    let v = d.subsystem_vendor_id.as_deref()?;
    let s = d.subsystem_device_id.as_deref()?;
    Some(format!(
        "{:04x}:{:04x}",
        crate::host::parse_hex(v),
        crate::host::parse_hex(s)
    ))
}

/// The planner's verdict on a set of functions, as a status: the one
/// reading of a plan that `inventory` and `place` share. A running
/// domain's hold is the plan's `in-use` blocker; alone it makes the status
/// `in-use` rather than `blocked`.
pub(crate) fn plan_status(
    host: &Host,
    facts_from_host: bool,
    p: &plan::Plan,
) -> (Status, Option<String>, Option<String>, Vec<String>) {
    let mut users: Vec<String> = Vec::new();
    for a in &p.travels {
        for u in host.used_by(a) {
            let n = if u.running {
                format!("{} (running)", u.domain)
            } else {
                u.domain.clone()
            };
            if !users.contains(&n) {
                users.push(n);
            }
        }
    }
    let first = |v: &[plan::Finding]| {
        v.first()
            .map(|f| (Some(f.message.clone()), Some(f.code.to_string())))
            .unwrap_or((None, None))
    };
    match p.verdict() {
        plan::Verdict::Blocked => {
            let other = p.blockers.iter().find(|b| b.code != plan::Code::InUse);
            let (status, f) = match other {
                Some(b) => (Status::Blocked, b),
                None => (Status::InUse, &p.blockers[0]),
            };
            (status, Some(f.message.clone()), Some(f.code.to_string()), users)
        }
        plan::Verdict::Unverified => {
            let (r, c) = first(&p.unverified);
            (Status::Unverified, r, c, users)
        }
        _ if !facts_from_host => (
            Status::Unverified,
            Some("read through libvirt: the host's root disk, default route and boot GPU are not known; pass a snapshot taken on the host".into()),
            Some("unverified".into()),
            users,
        ),
        _ => (Status::Clean, None, None, users),
    }
}

/// The weakest provenance of the host-critical facts, in one word.
pub(crate) fn facts_word(fh: &FleetHost) -> &'static str {
    use crate::host::Provenance;
    let f = &fh.host.facts;
    let all = [f.root_filesystem, f.default_route, f.boot_vga];
    if !fh.facts_from_host()
        || all
            .iter()
            .any(|p| matches!(p, Provenance::Unknown | Provenance::Assumed))
    {
        "unverified"
    } else if all.contains(&Provenance::Stated) {
        "stated"
    } else {
        "measured"
    }
}

/// The inventory of one host. Verdicts are computed only for the groups
/// of functions the class and id filters keep (one plan per group).
pub fn host_inventory(fh: &FleetHost, filter: &Filter) -> HostInventory {
    let host = &fh.host;
    let from_host = fh.facts_from_host();
    let mut verdicts: BTreeMap<u32, Verdict> = BTreeMap::new();
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut devices = Vec::new();
    let mut passable = 0;
    let mut matched = 0;
    for d in host.devices.values() {
        if d.kind() != Kind::Endpoint {
            continue;
        }
        passable += 1;
        if !filter.keeps_ids(d.class_code(), d.vendor(), d.device()) {
            continue;
        }
        matched += 1;
        let v = match d.iommu_group {
            Some(g) => verdicts
                .entry(g)
                .or_insert_with(|| group_verdict(host, from_host, g, d.address))
                .clone(),
            None => {
                let p = plan::plan(host, &[d.address], PlanOptions::default());
                let (status, reason, code, used_by) = plan_status(host, from_host, &p);
                Verdict {
                    status,
                    reason,
                    code,
                    endpoints: p.travels.len().max(1),
                    used_by,
                }
            }
        };
        *counts.entry(v.status.as_str()).or_default() += 1;
        if !filter.statuses.is_empty() && !filter.statuses.contains(&v.status) {
            continue;
        }
        devices.push(InventoryDevice {
            address: d.address,
            class: d.class.clone(),
            id: id_of(d),
            subsystem: subsystem_of(d),
            name: d.device_name.clone(),
            iommu_group: d.iommu_group,
            group_endpoints: v.endpoints,
            status: v.status,
            reason: v.reason,
            code: v.code,
            used_by: v.used_by,
            class_code: d.class_code(),
            vendor: d.vendor(),
            device: d.device(),
            vendor_name: d.vendor_name.clone(),
        });
    }
    HostInventory {
        name: fh.name.clone(),
        source: fh.origin.to_string(),
        facts: facts_word(fh),
        matched,
        iommu: host.iommu,
        functions: host.devices.len(),
        passable,
        counts,
        devices,
    }
}

fn group_verdict(host: &Host, from_host: bool, g: u32, first: PciAddress) -> Verdict {
    let mut req: Vec<PciAddress> = host
        .groups
        .get(&g)
        .map(|m| {
            m.iter()
                .filter_map(|x| match x {
                    GroupMember::Pci(a) => Some(*a),
                    GroupMember::Other(_) => None,
                })
                .filter(|a| host.device(a).is_some_and(|d| d.kind() == Kind::Endpoint))
                .collect()
        })
        .unwrap_or_default();
    if !req.contains(&first) {
        req.push(first);
    }
    // A clean group's status needs no words (what travels and who uses
    // it), so the words are written only for a group whose message is
    // shown: planned twice, but the wordless pass is the cheap part. On 50
    // generated hosts with measured facts (mostly clean) `inventory --json`
    // took 1.86 G instructions with one full plan per group and 0.95 G this
    // way; with unknown facts (mostly unverified) 2.20 G against 2.41 G.
    let mut p = plan::plan_without_words(host, &req, PlanOptions::default());
    if !matches!(p.verdict, plan::Verdict::Ok | plan::Verdict::Nothing) {
        p = plan::plan(host, &req, PlanOptions::default());
    }
    let (status, reason, code, used_by) = plan_status(host, from_host, &p);
    Verdict {
        status,
        reason,
        code,
        endpoints: p.travels.len().max(1),
        used_by,
    }
}
