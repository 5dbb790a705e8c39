//! Logical devices: one name ("a40-gpu", "x710-nic") for a card that sits
//! at a different address on each host.
//!
//! The file is JSON (serde_json is already a dependency; a JSON Schema is
//! `schemas/mapping.schema.json`) and its fields are those of Proxmox VE's
//! PCI resource mappings (`pve-guest-common`, `src/PVE/Mapping/PCI.pm`:
//! `node`, `path`, `id`, `subsystem-id`, `iommugroup`), so a Proxmox user
//! reads it at sight:
//!
//! ```json
//! {
//!   "format": "virt-pci-mapping",
//!   "version": 1,
//!   "devices": {
//!     "turing-gpu": {
//!       "description": "any 4-function Turing card",
//!       "hosts": {
//!         "hv1": { "path": "0000:2b:00", "id": "10de:1e84", "iommugroup": 14 }
//!       }
//!     }
//!   }
//! }
//! ```
//!
//! `path` is a function (`0000:2b:00.0`) or a whole slot (`0000:2b:00`,
//! every function, Proxmox's "multifunction"); `id` and `subsystem-id` are
//! those of the function (of function 0 for a slot). `subsystem-id` and
//! `iommugroup` are optional; when present they are checked.
//!
//! [`check_host`] compares each entry with the host's facts: the card moved (the
//! id now sits at another address), was replaced (another id or subsystem
//! at the path), or its group changed. Like Proxmox, which refuses a VM
//! start when a mapping no longer matches, virt-pci refuses to place or
//! retarget through a stale entry.

use crate::address::{DeviceSpec, PciAddress, PciSlot};
use crate::host::Host;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

mod check;
pub(crate) use check::check_entry;
pub use check::{check_host, report, Problem, Report};

pub const FORMAT: &str = "virt-pci-mapping";
pub const VERSION: u32 = 1;

/// A mapping file.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    pub format: String,
    pub version: u32,
    pub devices: BTreeMap<String, LogicalDevice>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogicalDevice {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Host name → where the device is there.
    pub hosts: BTreeMap<String, Entry>,
}

/// Where a logical device sits on one host.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub path: MapPath,
    pub id: Ids,
    #[serde(
        rename = "subsystem-id",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub subsystem_id: Option<Ids>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iommugroup: Option<u32>,
}

/// A function or a whole slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapPath {
    Function(PciAddress),
    Slot(PciSlot),
}

impl MapPath {
    /// The function whose ids the entry gives (function 0 of a slot).
    pub fn primary(&self) -> PciAddress {
        match self {
            MapPath::Function(a) => *a,
            MapPath::Slot(s) => PciAddress::new(s.domain, s.bus, s.slot, 0),
        }
    }

    pub fn slot(&self) -> PciSlot {
        self.primary().slot_of()
    }

    /// Whether a domain hostdev at `a` is this entry's device: the
    /// function itself, or any function of the slot (a GPU's audio
    /// function goes with the GPU).
    pub fn covers(&self, a: &PciAddress) -> bool {
        a.slot_of() == self.slot()
    }
}

impl fmt::Display for MapPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapPath::Function(a) => a.fmt(f),
            MapPath::Slot(s) => s.fmt(f),
        }
    }
}

impl Serialize for MapPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MapPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match DeviceSpec::parse(&s) {
            Ok(DeviceSpec::Function(a)) => Ok(MapPath::Function(a)),
            Ok(DeviceSpec::Slot(sl)) => Ok(MapPath::Slot(sl)),
            Ok(DeviceSpec::Ids { .. }) => Err(serde::de::Error::custom(format!(
                "path `{s}` is a vendor:device pair; give the address (0000:2b:00.0) or slot (0000:2b:00), and the ids as \"id\""
            ))),
            Err(e) => Err(serde::de::Error::custom(e.to_string())),
        }
    }
}

/// A `vendor:device` (or `subvendor:subdevice`) pair, four hex digits each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ids(pub u16, pub u16);

impl fmt::Display for Ids {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}:{:04x}", self.0, self.1)
    }
}

impl Ids {
    pub fn parse(s: &str) -> Option<Ids> {
        let (a, b) = s.split_once(':')?;
        let h = |x: &str| {
            (x.len() == 4 && x.chars().all(|c| c.is_ascii_hexdigit()))
                .then(|| u16::from_str_radix(x, 16).ok())
                .flatten()
        };
        Some(Ids(h(a)?, h(b)?))
    }
}

impl Serialize for Ids {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ids {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ids::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{s}` is not an id pair: write four hex digits, a colon and four hex digits (10de:1e84), as lspci -nn prints them"
            ))
        })
    }
}

/// A mapping file that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingError {
    pub path: PathBuf,
    /// 1-based; 0 when the error has no position.
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub help: Option<String>,
}

impl fmt::Display for MappingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for MappingError {}

/// Parse a mapping document.
pub(crate) fn from_str(text: &str, path: &Path) -> Result<Mapping, MappingError> {
    let m: Mapping = serde_json::from_str(text).map_err(|e| {
        // serde_json ends messages with " at line L column C"; the
        // position is reported separately.
        let msg = e.to_string();
        let msg = msg
            .rsplit_once(" at line ")
            .map(|(m, _)| m.to_string())
            .unwrap_or(msg);
        MappingError {
            path: path.to_path_buf(),
            line: e.line(),
            column: e.column(),
            message: format!("{}: {msg}", path.display()),
            help: Some(
                "the format is described in README.md (\"Many hosts\") and schemas/mapping.schema.json".into(),
            ),
        }
    })?;
    let bad = |message: String, help: &str| MappingError {
        path: path.to_path_buf(),
        line: 0,
        column: 0,
        message: format!("{}: {message}", path.display()),
        help: Some(help.to_string()),
    };
    if m.format != FORMAT {
        return Err(bad(
            format!(
                "not a virt-pci mapping (format is \"{}\", expected \"{FORMAT}\")",
                m.format
            ),
            "start the file with \"format\": \"virt-pci-mapping\", \"version\": 1",
        ));
    }
    if m.version != VERSION {
        return Err(bad(
            format!(
                "mapping version {} is not supported (this virt-pci reads version {VERSION})",
                m.version
            ),
            "write \"version\": 1",
        ));
    }
    for name in m.devices.keys() {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(bad(
                format!(
                    "logical device name `{name}` may hold only letters, digits, `-`, `_` and `.`"
                ),
                "the name becomes a libvirt user alias (ua-NAME), which allows no other characters",
            ));
        }
    }
    Ok(m)
}

/// Read a mapping file.
pub fn load(path: &Path) -> Result<Mapping, MappingError> {
    let text = std::fs::read_to_string(path).map_err(|e| MappingError {
        path: path.to_path_buf(),
        line: 0,
        column: 0,
        message: format!("cannot read mapping {}: {e}", path.display()),
        help: Some("give the path of a mapping file (README.md, \"Many hosts\")".into()),
    })?;
    from_str(&text, path)
}

impl Mapping {
    /// The logical device a host's function belongs to, by that host's entries.
    pub fn device_at(&self, host: &str, a: &PciAddress) -> Option<(&str, &Entry)> {
        self.devices.iter().find_map(|(n, d)| {
            d.hosts
                .get(host)
                .filter(|e| e.path.covers(a))
                .map(|e| (n.as_str(), e))
        })
    }
}

/// Where a logical device is on one host, checked against its facts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Resolved {
    pub name: String,
    pub host: String,
    /// The entry's path as written (a function or a slot).
    pub path: String,
    /// The functions it names on the host (every function of a slot).
    pub functions: Vec<PciAddress>,
    /// Warnings from the check (e.g. a subsystem the facts do not give).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Problem>,
}

/// Resolve logical device `name` on `host_name`: its entry, checked
/// against `host` (a stale entry is an error, as Proxmox refuses a start
/// through one).
pub fn resolve(
    m: &Mapping,
    name: &str,
    host_name: &str,
    host: &Host,
) -> Result<Resolved, Vec<Problem>> {
    let bad = |code: &'static str, message: String, help: String| {
        vec![Problem {
            code,
            device: name.to_string(),
            host: host_name.to_string(),
            address: String::new(),
            message,
            help: Some(help),
            error: true,
        }]
    };
    let Some(dev) = m.devices.get(name) else {
        let known: Vec<&str> = m.devices.keys().map(String::as_str).collect();
        return Err(bad(
            "unknown-device",
            format!("no logical device `{name}` in the mapping"),
            format!("the mapping names: {}", known.join(", ")),
        ));
    };
    let Some(e) = dev.hosts.get(host_name) else {
        let known: Vec<&str> = dev.hosts.keys().map(String::as_str).collect();
        return Err(bad(
            "not-mapped",
            format!("logical device `{name}` has no entry for {host_name}"),
            format!(
                "it is mapped on: {}; add an entry for {host_name}, or name the host with --from",
                known.join(", ")
            ),
        ));
    };
    let problems = check_entry(name, host_name, e, host);
    if problems.iter().any(|p| p.error) {
        return Err(problems.into_iter().filter(|p| p.error).collect());
    }
    let functions = match e.path {
        MapPath::Function(a) => vec![a],
        MapPath::Slot(s) => host
            .devices
            .keys()
            .filter(|a| a.slot_of() == s)
            .copied()
            .collect(),
    };
    Ok(Resolved {
        name: name.to_string(),
        host: host_name.to_string(),
        path: e.path.to_string(),
        functions,
        warnings: problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_have_positions_and_reasons() {
        let p = Path::new("m.json");
        let e = from_str(
            "{\"format\":\"virt-pci-mapping\",\"version\":1,\"devices\":{\"g\":{\"hosts\":{\"h\":{\n\"path\":\"2b:00.9\",\"id\":\"10de:1e84\"}}}}}",
            p,
        )
        .unwrap_err();
        assert_eq!(e.line, 2, "{e:?}");
        assert!(e.message.contains("not a PCI device address"), "{e}");
        let e = from_str(
            "{\"format\":\"virt-pci-mapping\",\"version\":1,\"devices\":{\"g\":{\"hosts\":{\"h\":{\"path\":\"2b:00\",\"id\":\"10de-1e84\"}}}}}",
            p,
        )
        .unwrap_err();
        assert!(e.message.contains("is not an id pair"), "{e}");
        let e = from_str(
            "{\"format\":\"virt-pci-mapping\",\"version\":1,\"devices\":{\"a b\":{\"hosts\":{}}}}",
            p,
        )
        .unwrap_err();
        assert!(e.message.contains("may hold only"), "{e}");
        let e = from_str("{\"format\":\"x\",\"version\":1,\"devices\":{}}", p).unwrap_err();
        assert!(e.message.contains("not a virt-pci mapping"), "{e}");
        let e = from_str(
            "{\"format\":\"virt-pci-mapping\",\"version\":1,\"devices\":{},\"extra\":1}",
            p,
        )
        .unwrap_err();
        assert!(e.message.contains("unknown field `extra`"), "{e}");
    }

    #[test]
    fn covers_slot_siblings() {
        let m = MapPath::Function(PciAddress::new(0, 0x2b, 0, 0));
        assert!(m.covers(&PciAddress::new(0, 0x2b, 0, 3)));
        assert!(!m.covers(&PciAddress::new(0, 0x2b, 1, 0)));
        assert_eq!(m.to_string(), "0000:2b:00.0");
        let s = MapPath::Slot(PciSlot {
            domain: 0,
            bus: 0x2b,
            slot: 0,
        });
        assert_eq!(s.to_string(), "0000:2b:00");
    }
}
