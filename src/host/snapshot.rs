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

/// The largest snapshot read: 256 MiB, room for ~400,000 functions
/// (a snapshot holds ~600 bytes per function); anything larger is refused
/// before it is read.
pub const MAX_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Serialize, Deserialize)]
struct Envelope {
    format: String,
    version: u32,
    #[serde(flatten)]
    host: Host,
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

/// Parse a snapshot document.
pub fn from_str(text: &str, path: &Path) -> Result<Host, SnapshotError> {
    let err = |e: serde_json::Error| SnapshotError {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    };
    let v: serde_json::Value = serde_json::from_str(text).map_err(err)?;
    match v.get("format").and_then(|f| f.as_str()) {
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
    // The value as written (`"1"`, `1.0`, `-1`), never a default of 0.
    let bad_version = |message: String| SnapshotError {
        path: path.to_path_buf(),
        line: 0,
        column: 0,
        message,
    };
    let version = match v.get("version") {
        Some(x) if x.as_u64() == Some(u64::from(VERSION)) || x.as_u64() == Some(1) => {
            x.as_u64().unwrap_or(0)
        }
        None => {
            return Err(bad_version(format!(
                "the snapshot has no \"version\" (this virt-pci reads versions 1 and {VERSION})"
            )))
        }
        Some(x) if x.is_number() => {
            return Err(bad_version(format!(
                "snapshot version {} is not supported (this virt-pci reads versions 1 and {VERSION})",
                crate::text::shorten(&x.to_string())
            )))
        }
        Some(x) => {
            return Err(bad_version(format!(
                "snapshot version {} is not a number (this virt-pci reads versions 1 and {VERSION}, written as a number)",
                crate::text::shorten(&x.to_string())
            )))
        }
    };
    let env: Envelope = serde_json::from_str(text).map_err(err)?;
    let mut host = env.host;
    if version == 1 {
        host.facts = facts_of_version_1(&host);
    }
    // A group id listed twice: the later list replaced the earlier one while
    // reading, so the group's membership is not known.
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
    // `-`: the snapshot comes on stdin (`ssh host virt-pci snapshot |
    // virt-pci --snapshot - list`), as a domain does for `add -`.
    let stdin = path.as_os_str() == "-";
    let shown = if stdin { Path::new("<stdin>") } else { path };
    let fail = |message: String| SnapshotError {
        path: shown.to_path_buf(),
        line: 0,
        column: 0,
        message,
    };
    let bytes = if stdin {
        let mut b = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(std::io::stdin().lock(), MAX_BYTES + 1),
            &mut b,
        )
        .map_err(|e| fail(format!("cannot read the snapshot: {e}")))?;
        if b.len() as u64 > MAX_BYTES {
            return Err(fail(format!("larger than {MAX_BYTES} bytes")));
        }
        b
    } else {
        crate::fsutil::read_any_limited(path, MAX_BYTES)
            .map_err(|e| fail(format!("cannot read the snapshot: {e}")))?
    };
    let text = String::from_utf8(bytes)
        .map_err(|e| fail(format!("not UTF-8 (byte {})", e.utf8_error().valid_up_to())))?;
    let mut h = from_str(&text, shown)?;
    if h.source.is_empty() {
        h.source = format!("snapshot:{}", shown.display());
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_version_is_reported_as_written() {
        for (v, shown) in [("\"1\"", "\"1\""), ("1.0", "1.0"), ("-1", "-1"), ("3", "3")] {
            let t = format!("{{\"format\":\"{FORMAT}\",\"version\":{v}}}");
            let e = from_str(&t, Path::new("s.json")).unwrap_err();
            assert!(
                e.message.contains(&format!("version {shown} ")),
                "{v}: {}",
                e.message
            );
            assert!(!e.message.contains("version 0"), "{}", e.message);
        }
        let t = format!("{{\"format\":\"{FORMAT}\"}}");
        let e = from_str(&t, Path::new("s.json")).unwrap_err();
        assert!(e.message.contains("no \"version\""), "{}", e.message);
    }
}
