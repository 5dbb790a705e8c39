//! Many hosts at once: a fleet of host models, read from snapshots,
//! directories of snapshots or libvirt URIs, and the questions asked across
//! them — what can be passed through where ([`inventory`]), which host has
//! the card a VM needs ([`place`]), whether a logical-device mapping still
//! matches the machines ([`mapping`]) and how a VM definition's hostdevs
//! read on another host ([`place::resolve`], then `xml::retarget`).
//!
//! Why a layer of its own: users outgrow one machine (a homelab with three
//! hypervisors, a lab of GPU servers, a repository of VM definitions deployed
//! wherever the card is). Proxmox VE answers this with cluster "resource
//! mappings" (a logical PCI device mapped per node by path, vendor:device,
//! subsystem id and IOMMU group; `pve-guest-common`'s
//! `PVE/Mapping/PCI.pm`), KubeVirt with `permittedHostDevices`. libvirt has
//! nothing of the kind. Every per-host decision here is the planner's
//! ([`crate::plan::plan`]); this module only asks it once per host and
//! gathers the answers.
//!
//! Hosts are named by the file stem of their snapshot
//! (`samples/hosts/004-msi-b550m-mortar-turing-4fn.json` →
//! `004-msi-b550m-mortar-turing-4fn`), by the host part of a URI
//! (`qemu+ssh://hv1/system` → `hv1`), or explicitly as `NAME=SPEC`.
//! Mapping files use the same names.

pub mod inventory;
pub mod mapping;
pub mod place;

use crate::host::{snapshot, Host};
use std::fmt;
use std::path::{Path, PathBuf};

/// Where a fleet host's facts came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A snapshot file made by `virt-pci snapshot` on that host.
    Snapshot(PathBuf),
    /// libvirt node devices through a URI: no host-critical facts.
    Libvirt(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Snapshot(p) => write!(f, "{}", p.display()),
            Origin::Libvirt(u) => f.write_str(u),
        }
    }
}

/// One host of a fleet.
#[derive(Clone, Debug)]
pub struct FleetHost {
    /// The name mappings and reports use.
    pub name: String,
    pub origin: Origin,
    pub host: Host,
}

impl FleetHost {
    /// Whether the host's facts were taken on the host itself (a snapshot).
    /// Facts read through libvirt lack the host-critical devices (root
    /// disk, default route, boot VGA), so verdicts on them are `unverified`.
    pub fn facts_from_host(&self) -> bool {
        matches!(self.origin, Origin::Snapshot(_))
    }
}

/// A fleet host argument that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetError {
    pub message: String,
    pub help: Vec<String>,
}

impl fmt::Display for FleetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FleetError {}

fn ferr(message: impl Into<String>, help: &str) -> FleetError {
    FleetError {
        message: message.into(),
        help: vec![help.to_string()],
    }
}

/// A libvirt URI (`qemu:///system`, `test:///path.xml`, `qemu+ssh://hv/system`).
pub fn is_uri(s: &str) -> bool {
    match s.find("://") {
        Some(i) => {
            i > 0
                && s[..i]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-')
        }
        None => false,
    }
}

/// Split `NAME=SPEC`; a plain SPEC has no explicit name. A `=` inside a
/// path or URI (after a `/` or `:`) is not a name separator.
pub fn split_name(arg: &str) -> (Option<&str>, &str) {
    if let Some(i) = arg.find('=') {
        let name = &arg[..i];
        if !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return (Some(name), &arg[i + 1..]);
        }
    }
    (None, arg)
}

/// The name a host gets when none is given.
pub fn default_name(spec: &str) -> String {
    if is_uri(spec) {
        let rest = &spec[spec.find("://").map(|i| i + 3).unwrap_or(0)..];
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let host = authority.rsplit('@').next().unwrap_or("");
        let host = host.split(':').next().unwrap_or("");
        if !host.is_empty() {
            return host.to_string();
        }
        // test:///path/h.xml → h; qemu:///system → system
        let path = path.split('?').next().unwrap_or("");
        let stem = Path::new(path)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !stem.is_empty() {
            return stem;
        }
        return spec.to_string();
    }
    Path::new(spec)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| spec.to_string())
}

/// One host argument before reading: the snapshots it names (a directory
/// names each `*.json` in it, sorted) or a URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Snapshot { name: String, path: PathBuf },
    Libvirt { name: String, uri: String },
}

/// Expand host arguments into sources, without reading any snapshot.
pub fn sources(args: &[String]) -> Result<Vec<Source>, FleetError> {
    let mut out = Vec::new();
    for arg in args {
        let (name, spec) = split_name(arg);
        if is_uri(spec) {
            out.push(Source::Libvirt {
                name: name
                    .map(str::to_string)
                    .unwrap_or_else(|| default_name(spec)),
                uri: spec.to_string(),
            });
            continue;
        }
        let p = Path::new(spec);
        let meta = std::fs::metadata(p).map_err(|e| {
            ferr(
                format!("cannot read host {spec}: {e}"),
                "name a snapshot made by `virt-pci snapshot -o FILE`, a directory of them, or a libvirt URI",
            )
        })?;
        if meta.is_dir() {
            if name.is_some() {
                return Err(ferr(
                    format!("{arg}: a directory holds many hosts and cannot take one name"),
                    "drop NAME= (each snapshot is named by its file name), or name a single file",
                ));
            }
            let rd = std::fs::read_dir(p).map_err(|e| {
                ferr(
                    format!("cannot read directory {spec}: {e}"),
                    "check the path and its permissions",
                )
            })?;
            let mut files: Vec<PathBuf> = rd
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|f| f.extension().is_some_and(|x| x == "json") && f.is_file())
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(ferr(
                    format!("{spec} holds no snapshots (*.json)"),
                    "make one on each host with `virt-pci snapshot -o HOST.json` and collect them here",
                ));
            }
            for f in files {
                out.push(Source::Snapshot {
                    name: default_name(&f.to_string_lossy()),
                    path: f,
                });
            }
        } else {
            out.push(Source::Snapshot {
                name: name
                    .map(str::to_string)
                    .unwrap_or_else(|| default_name(spec)),
                path: p.to_path_buf(),
            });
        }
    }
    let mut seen = std::collections::BTreeMap::new();
    for s in &out {
        let (n, what) = match s {
            Source::Snapshot { name, path } => (name, path.display().to_string()),
            Source::Libvirt { name, uri } => (name, uri.clone()),
        };
        if let Some(prev) = seen.insert(n.clone(), what.clone()) {
            return Err(ferr(
                format!("two hosts are named `{n}`: {prev} and {what}"),
                "name them apart with NAME=SPEC (e.g. hv1=qemu+ssh://hv1/system)",
            ));
        }
    }
    if out.is_empty() {
        return Err(ferr(
            "no hosts given",
            "name snapshots, directories of snapshots or libvirt URIs",
        ));
    }
    Ok(out)
}

/// Read every source into memory. For one or a few hosts (`retarget`);
/// questions over a whole fleet use [`map_hosts`], which holds one host per
/// core at a time.
pub fn load(
    sources: Vec<Source>,
    libvirt: &dyn Fn(&str) -> Result<Host, FleetError>,
) -> Result<Vec<FleetHost>, FleetError> {
    map_hosts(sources, libvirt, &|h| h)
}

fn read_snapshot(name: String, path: PathBuf) -> Result<FleetHost, FleetError> {
    let host = snapshot::load(&path).map_err(|e| {
        ferr(
            e.to_string(),
            "make a snapshot on the host with `virt-pci snapshot -o FILE`",
        )
    })?;
    Ok(FleetHost {
        name,
        origin: Origin::Snapshot(path),
        host,
    })
}

/// Read each host and ask `f` about it, in the sources' order. Snapshots
/// are read and answered on all cores, each host dropped as soon as `f` is
/// done with it (a fleet of 1,000 large hosts does not fit in memory at
/// once); URIs go through `libvirt`, which the caller provides (the library
/// core does not link libvirt), one after another. The first source that
/// cannot be read is the error.
pub fn map_hosts<R: Send>(
    sources: Vec<Source>,
    libvirt: &dyn Fn(&str) -> Result<Host, FleetError>,
    f: &(dyn Fn(FleetHost) -> R + Sync),
) -> Result<Vec<R>, FleetError> {
    let n = sources.len();
    let mut out: Vec<Option<Result<R, FleetError>>> = (0..n).map(|_| None).collect();
    let files: Vec<(usize, String, PathBuf)> = sources
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match s {
            Source::Snapshot { name, path } => Some((i, name.clone(), path.clone())),
            Source::Libvirt { .. } => None,
        })
        .collect();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, files.len().max(1));
    let work = |(i, name, path): &(usize, String, PathBuf)| {
        (*i, read_snapshot(name.clone(), path.clone()).map(f))
    };
    if threads <= 1 {
        for w in &files {
            let (i, r) = work(w);
            out[i] = Some(r);
        }
    } else {
        // Workers take the next file from a shared counter, so one very
        // large host does not leave the other cores idle.
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results = std::thread::scope(|sc| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    sc.spawn(|| {
                        let mut mine = Vec::new();
                        loop {
                            let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some(w) = files.get(k) else { break };
                            mine.push(work(w));
                        }
                        mine
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().map_err(|_| ()))
                .collect::<Vec<_>>()
        });
        for r in results {
            match r {
                Ok(v) => {
                    for (i, x) in v {
                        out[i] = Some(x);
                    }
                }
                Err(()) => return Err(ferr("internal error while reading snapshots", "")),
            }
        }
    }
    for (i, s) in sources.into_iter().enumerate() {
        if let Source::Libvirt { name, uri } = s {
            out[i] = Some(libvirt(&uri).map(|host| {
                f(FleetHost {
                    name,
                    origin: Origin::Libvirt(uri),
                    host,
                })
            }));
        }
    }
    out.into_iter()
        .map(|r| r.unwrap_or_else(|| Err(ferr("internal error: a host was not read", ""))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_uris() {
        assert!(is_uri("qemu:///system"));
        assert!(is_uri("qemu+ssh://root@hv1:22/system"));
        assert!(is_uri("test:///tmp/h.xml"));
        assert!(!is_uri("samples/hosts/004.json"));
        assert!(!is_uri("://x"));
        assert_eq!(default_name("qemu+ssh://root@hv1:22/system"), "hv1");
        assert_eq!(default_name("test:///tmp/h.xml"), "h");
        assert_eq!(default_name("qemu:///system"), "system");
        assert_eq!(default_name("samples/hosts/004-x.json"), "004-x");
        assert_eq!(
            split_name("hv1=qemu:///system"),
            (Some("hv1"), "qemu:///system")
        );
        assert_eq!(split_name("a/b=c.json"), (None, "a/b=c.json"));
    }

    #[test]
    fn duplicate_names_are_an_error() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("h.json");
        std::fs::write(&f, "{}").unwrap();
        let s = f.to_string_lossy().to_string();
        let e = sources(&[s.clone(), s]).unwrap_err();
        assert!(e.message.contains("two hosts are named `h`"), "{e}");
        let e = sources(&[format!("x={}", d.path().display())]).unwrap_err();
        assert!(e.message.contains("cannot take one name"), "{e}");
    }
}
