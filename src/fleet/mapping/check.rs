//! Checking a mapping against hosts' facts: for each entry, is the card
//! still at its path (or did it move, get replaced or removed), the same
//! board (subsystem) and in the same IOMMU group. A stale entry is an error
//! that names the host, the address and what differs, with the edit that
//! fixes the mapping when the change was meant.

use super::{Entry, MapPath, Mapping};
use crate::address::PciAddress;
use crate::fleet::inventory::{id_of, subsystem_of};
use crate::fleet::FleetHost;
use crate::host::Host;
use serde::Serialize;

/// What differs between a mapping entry and a host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// `moved`, `missing`, `replaced`, `subsystem-changed`, `group-changed`,
    /// `subsystem-unknown` (a warning: the host does not say).
    pub code: &'static str,
    pub device: String,
    pub host: String,
    pub address: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// False for warnings (the entry may still be right).
    pub error: bool,
}

/// Check one entry against one host: is the card at its path, then is it
/// still the same board in the same group.
pub(crate) fn check_entry(device: &str, host_name: &str, e: &Entry, host: &Host) -> Vec<Problem> {
    let c = Checking {
        device,
        host_name,
        e,
    };
    let here = host.device(&e.path.primary());
    if !here.is_some_and(|d| c.matches(d)) {
        if let Some(p) = c.not_at_path(host, here) {
            return vec![p];
        }
    }
    // Here: the entry's id at its path (perhaps with another subsystem).
    let Some(d) = here else { return Vec::new() };
    c.subsystem_problem(d)
        .into_iter()
        .chain(c.group_problem(d))
        .collect()
}

/// One entry being checked on one host.
struct Checking<'a> {
    device: &'a str,
    host_name: &'a str,
    e: &'a Entry,
}

impl Checking<'_> {
    fn problem(
        &self,
        code: &'static str,
        message: String,
        help: Option<String>,
        error: bool,
    ) -> Problem {
        Problem {
            code,
            device: self.device.to_string(),
            host: self.host_name.to_string(),
            address: self.e.path.to_string(),
            message,
            help,
            error,
        }
    }

    /// The entry's id (and subsystem, where both sides say it).
    fn matches(&self, d: &crate::host::Device) -> bool {
        let e = self.e;
        d.vendor() == e.id.0
            && d.device() == e.id.1
            && match (e.subsystem_id, subsystem_of(d)) {
                (Some(want), Some(have)) => want.to_string() == have,
                _ => true,
            }
    }

    /// The entry's card is not at its path: it moved (the same card sits
    /// elsewhere), was replaced (another id there) or removed. `None` when
    /// the same id is there with another subsystem (the caller reports that).
    fn not_at_path(&self, host: &Host, here: Option<&crate::host::Device>) -> Option<Problem> {
        let (device, host_name, e) = (self.device, self.host_name, self.e);
        let a = e.path.primary();
        let elsewhere: Vec<PciAddress> = host
            .devices
            .values()
            .filter(|d| d.address != a && d.address.function == a.function && self.matches(d))
            .map(|d| d.address)
            .collect();
        if let Some(now) = elsewhere.first() {
            let at_path = match here {
                Some(d) => format!("{a} is {}", id_of(d)),
                None => format!("no function at {a}"),
            };
            let new_path = match e.path {
                MapPath::Slot(_) => now.slot_of().to_string(),
                MapPath::Function(_) => now.to_string(),
            };
            return Some(self.problem(
                "moved",
                format!(
                    "`{device}` on {host_name}: {at_path}; {} is now at {} (card moved?)",
                    e.id,
                    elsewhere
                        .iter()
                        .map(|x| x.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Some(format!(
                    "set \"path\" to \"{new_path}\" for {host_name} if that is the same card"
                )),
                true,
            ));
        }
        let Some(d) = here else {
            return Some(self.problem(
                "missing",
                format!("`{device}` on {host_name}: no function at {a}, and no {} anywhere on the host (card removed?)", e.id),
                Some("remove the entry, or update it once the card is back".into()),
                true,
            ));
        };
        let id = id_of(d);
        (id != e.id.to_string()).then(|| {
            self.problem(
                "replaced",
                format!(
                    "`{device}` on {host_name}: {a} is {id}, the mapping says {} (card replaced?)",
                    e.id
                ),
                Some(format!(
                    "set \"id\" to \"{id}\" for {host_name} if the new card is meant"
                )),
                true,
            )
        })
    }

    fn subsystem_problem(&self, d: &crate::host::Device) -> Option<Problem> {
        let (device, host_name, a) = (self.device, self.host_name, d.address);
        match (self.e.subsystem_id, subsystem_of(d)) {
            (Some(want), Some(have)) if want.to_string() != have => Some(self.problem(
                "subsystem-changed",
                format!(
                    "`{device}` on {host_name}: {a} has subsystem {have}, the mapping says {want} (same model, another board: replaced?)"
                ),
                Some(format!("set \"subsystem-id\" to \"{have}\" for {host_name} if the new card is meant")),
                true,
            )),
            (Some(want), None) => Some(self.problem(
                "subsystem-unknown",
                format!(
                    "`{device}` on {host_name}: the host's facts do not say {a}'s subsystem, so {want} is not compared"
                ),
                Some("take the snapshot with `virt-pci snapshot` on the host (sysfs has the subsystem ids)".into()),
                false,
            )),
            _ => None,
        }
    }

    fn group_problem(&self, d: &crate::host::Device) -> Option<Problem> {
        let (device, host_name, a) = (self.device, self.host_name, d.address);
        let g = self.e.iommugroup?;
        (d.iommu_group != Some(g)).then(|| self.problem(
            "group-changed",
            format!(
                "`{device}` on {host_name}: {a} is in IOMMU group {}, the mapping says {g} (firmware update, another slot, or ACS settings changed)",
                d.iommu_group.map(|x| x.to_string()).unwrap_or_else(|| "none".into())
            ),
            Some(format!(
                "check the new group with `virt-pci --snapshot HOST.json show {a}`, then set \"iommugroup\" accordingly"
            )),
            true,
        ))
    }
}

/// The result of checking a mapping against a fleet.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub problems: Vec<Problem>,
    /// Entries checked (device, host).
    pub checked: usize,
    /// Entries whose host was not given.
    pub not_checked: Vec<(String, String)>,
}

impl Report {
    pub fn errors(&self) -> usize {
        self.problems.iter().filter(|p| p.error).count()
    }
}

/// Check the entries for one host; returns the problems and how many
/// entries were checked.
pub fn check_host(m: &Mapping, fh: &FleetHost) -> (Vec<Problem>, usize) {
    let mut problems = Vec::new();
    let mut n = 0;
    for (name, dev) in &m.devices {
        if let Some(e) = dev.hosts.get(&fh.name) {
            n += 1;
            problems.extend(check_entry(name, &fh.name, e, &fh.host));
        }
    }
    (problems, n)
}

/// Put per-host results together: `names` are the hosts that were given.
pub fn report(m: &Mapping, names: &[String], per_host: Vec<(Vec<Problem>, usize)>) -> Report {
    let mut r = Report::default();
    for (p, n) in per_host {
        r.problems.extend(p);
        r.checked += n;
    }
    for (name, dev) in &m.devices {
        for hn in dev.hosts.keys() {
            if !names.contains(hn) {
                r.not_checked.push((name.clone(), hn.clone()));
            }
        }
    }
    r
}
