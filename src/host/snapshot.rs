//! Saved hosts: the whole [`Host`] model as JSON.
//!
//! A snapshot taken on the hypervisor (`virt-pci snapshot -o host.json`) lets
//! CI and laptops plan, generate and validate offline with the same verdicts
//! as on the machine itself. The file carries a format name and version so a
//! future change of the model is detected instead of misread. The schema is
//! `schemas/snapshot.schema.json`.

use super::{Host, HostFacts, Provenance};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

pub const FORMAT: &str = "virt-pci-snapshot";
/// Version 2 added `facts` (where the host-critical facts come from).
/// Version 1 files are still read; see [`facts_of_version_1`].
pub const VERSION: u32 = 2;

#[derive(Serialize, Deserialize)]
struct Envelope {
    format: String,
    version: u32,
    #[serde(flatten)]
    host: Host,
}

/// The envelope's fields alone.
#[derive(Deserialize)]
struct Head {
    format: Option<String>,
    version: Option<u64>,
}

#[derive(Debug)]
pub struct SnapshotError {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(
                f,
                "{}:{}:{}: {}",
                self.path.display(),
                self.line,
                self.column,
                self.message
            )
        } else {
            write!(f, "{}: {}", self.path.display(), self.message)
        }
    }
}

impl std::error::Error for SnapshotError {}

/// Serialize a host as a snapshot document (pretty JSON, trailing newline).
pub fn to_string(host: &Host) -> String {
    let env = Envelope {
        format: FORMAT.into(),
        version: VERSION,
        host: host.clone(),
    };
    let mut s = serde_json::to_string_pretty(&env).unwrap_or_default();
    s.push('\n');
    s
}

/// The envelope as [`to_string`] writes it (`{"format": "virt-pci-snapshot",
/// "version": N,` at the start), read without scanning the rest of the
/// document: the general scan was a tenth of reading a fleet of snapshots.
/// `None` for any other layout, which then gets the general scan.
fn written_by_us(text: &str) -> Option<Head> {
    fn ws(s: &str) -> &str {
        s.trim_start_matches([' ', '\t', '\r', '\n'])
    }
    let s = ws(text).strip_prefix('{')?;
    let s = ws(s).strip_prefix("\"format\"")?;
    let s = ws(s).strip_prefix(':')?;
    let s = ws(s).strip_prefix(&format!("\"{FORMAT}\""))?;
    let s = ws(s).strip_prefix(',')?;
    let s = ws(s).strip_prefix("\"version\"")?;
    let s = ws(s).strip_prefix(':')?;
    let s = ws(s);
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let version: u64 = s[..digits].parse().ok()?;
    let rest = ws(&s[digits..]);
    (rest.starts_with(',') || rest.starts_with('}')).then(|| Head {
        format: Some(FORMAT.to_string()),
        version: Some(version),
    })
}

/// Parse a snapshot document.
pub fn from_str(text: &str, path: &Path) -> Result<Host, SnapshotError> {
    let err = |e: serde_json::Error| SnapshotError {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    };
    // The format and version first (a scan that allocates nothing), so a
    // file of another kind gets that message rather than a missing field.
    let head: Head = match written_by_us(text) {
        Some(h) => h,
        None => match serde_json::from_str(text) {
            Ok(h) => h,
            Err(_) => {
                // Not an object with string/number fields there: read it as
                // any JSON to say what it is (or where it is malformed).
                let v: serde_json::Value = serde_json::from_str(text).map_err(err)?;
                Head {
                    format: v.get("format").and_then(|f| f.as_str()).map(str::to_string),
                    version: v.get("version").and_then(|x| x.as_u64()),
                }
            }
        },
    };
    match head.format.as_deref() {
        Some(FORMAT) => {}
        other => {
            return Err(SnapshotError {
                path: path.to_path_buf(),
                line: 0,
                column: 0,
                message: format!(
                    "not a virt-pci snapshot (format is {}, expected \"{FORMAT}\"); make one with `virt-pci snapshot -o FILE`",
                    other.map(|s| format!("\"{s}\"")).unwrap_or_else(|| "missing".into())
                ),
            })
        }
    }
    let version = head.version.unwrap_or(0);
    if version != u64::from(VERSION) && version != 1 {
        return Err(SnapshotError {
            path: path.to_path_buf(),
            line: 0,
            column: 0,
            message: format!("snapshot version {version} is not supported (this virt-pci reads version {VERSION})"),
        });
    }
    // The host straight from the text: `Host` ignores the envelope's two
    // fields. (Reading `Envelope` with its `#[serde(flatten)]` buffers the
    // whole document first: five times slower on a fleet of snapshots,
    // BENCHMARKS.md "fleet".)
    let mut host: Host = serde_json::from_str(text).map_err(err)?;
    if version == 1 {
        host.facts = facts_of_version_1(&host);
    }
    // A group id listed twice: the later list replaced the earlier one while
    // reading, so the group's membership is not known. Only a document with
    // more `"id"` keys than groups read can hold one; only that one is read
    // again as plain JSON to find which.
    if text.matches("\"id\"").count() > host.groups.len() {
        let v: serde_json::Value = serde_json::from_str(text).map_err(err)?;
        let mut seen = std::collections::BTreeSet::new();
        for g in v
            .get("groups")
            .and_then(|g| g.as_array())
            .into_iter()
            .flatten()
        {
            if let Some(id) = g.get("id").and_then(|i| i.as_u64()) {
                if !seen.insert(id) {
                    if let Ok(id) = u32::try_from(id) {
                        host.facts.inconsistent_groups.insert(
                            id,
                            format!("{} lists IOMMU group {id} more than once", path.display()),
                        );
                    }
                }
            }
        }
    }
    host.check_group_consistency();
    host.link_groups();
    Ok(host)
}

/// Version 1 snapshots carry no provenance. Those made on a host by
/// `virt-pci snapshot` (source `sysfs:…`) measured everything; those made
/// from a listing (source `listing:…`) may hold flags the old converter
/// inferred by rules of thumb, so their facts are *assumed*; anything else
/// (libvirt) is unknown.
pub fn facts_of_version_1(host: &Host) -> HostFacts {
    if host.source.starts_with("sysfs:") {
        HostFacts::measured()
    } else if host.source.starts_with("listing:") {
        HostFacts {
            root_filesystem: Provenance::Assumed,
            default_route: Provenance::Assumed,
            boot_vga: Provenance::Assumed,
            drivers: Provenance::Unknown,
            ..HostFacts::default()
        }
    } else {
        HostFacts::default()
    }
}

/// Read a snapshot file.
pub fn load(path: &Path) -> Result<Host, SnapshotError> {
    let text = std::fs::read_to_string(path).map_err(|e| SnapshotError {
        path: path.to_path_buf(),
        line: 0,
        column: 0,
        message: format!("cannot read the snapshot: {e}"),
    })?;
    let mut h = from_str(&text, path)?;
    if h.source.is_empty() {
        h.source = format!("snapshot:{}", path.display());
    }
    Ok(h)
}
