//! Host-critical functions traced from the running system: the root
//! filesystem's controller (`proc/self/mountinfo` → block device →
//! partitions, device-mapper/LVM/md slaves → PCI function) and the
//! default-route NIC (`proc/net/route` → bridges, bonds, VLANs → PCI
//! function).
//!
//! Kept apart from the device reader: these follow links across the whole
//! tree, read `/proc`, and decide a fact's provenance (measured, or unknown
//! with the reason kept), while the device reader only reads one directory.

use super::{link_name, pci_components, read_proc, read_trim};
use crate::address::PciAddress;
use crate::host::{Critical, Host, Provenance};
use std::fs;
use std::path::Path;

/// Follow a block device down to the PCI functions that hold it: through
/// partitions (parent directory), device-mapper/LVM/md (`slaves/`). Each
/// block device is visited once (`seen`): a tree whose slaves form a cycle
/// with fan-out took minutes at depth 16 without it.
fn block_to_pci(
    sys: &Path,
    name: &str,
    depth: u32,
    seen: &mut std::collections::HashSet<String>,
    out: &mut Vec<PciAddress>,
) {
    if depth > 16 || !seen.insert(name.to_string()) {
        return;
    }
    let link = sys.join("class/block").join(name);
    let Ok(real) = fs::canonicalize(&link) else {
        return;
    };
    let mut dev = real.clone();
    if dev.join("partition").exists() {
        if let Some(p) = dev.parent() {
            dev = p.to_path_buf();
        }
    }
    let slaves: Vec<String> = fs::read_dir(dev.join("slaves"))
        .map(|it| {
            it.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    if !slaves.is_empty() {
        for s in slaves {
            block_to_pci(sys, &s, depth + 1, seen, out);
        }
        return;
    }
    if let Some(a) = pci_components(&dev).last() {
        if !out.contains(a) {
            out.push(*a);
        }
    }
}

/// Mark the controller(s) behind `/`: measured when `mountinfo` shows the
/// root mount (whether or not a PCI function is behind it); *unknown* when
/// it cannot be read (missing, a FIFO, over [`PROC_MAX`]) or shows no root
/// mount — never "absent". Why it could not be read is kept in the host's
/// provenance.
pub(crate) fn mark_root_fs(root: &Path, host: &mut Host) -> Provenance {
    let sys = root.join("sys");
    let p = root.join("proc/self/mountinfo");
    let info = match read_proc(&p) {
        Ok(t) => t,
        Err(e) => {
            host.provenance.push(format!(
                "root filesystem controller unknown: cannot read {}: {e}",
                crate::text::escape(&p.display().to_string())
            ));
            return Provenance::Unknown;
        }
    };
    // Fields: id parent major:minor root mountpoint opts... - fstype source superopts
    let Some(line) = info
        .lines()
        .rfind(|l| l.split_whitespace().nth(4) == Some("/"))
    else {
        return Provenance::Unknown;
    };
    let fields: Vec<&str> = line.split_whitespace().collect();
    let majmin = fields.get(2).copied().unwrap_or("");
    let source = line
        .split(" - ")
        .nth(1)
        .and_then(|r| r.split_whitespace().nth(1))
        .unwrap_or("");
    // The block device's sysfs name: by major:minor, else by the source path.
    let mut name: Option<String> = link_name(&sys.join("dev/block").join(majmin));
    if name.is_none() {
        if let Some(dm) = source.strip_prefix("/dev/mapper/") {
            name = find_dm(&sys, dm);
        } else if let Some(n) = source.strip_prefix("/dev/") {
            name = Some(n.to_string());
        }
    }
    // A root that is no block device (tmpfs, NFS, 9p) holds no PCI function.
    let Some(name) = name else {
        return Provenance::Measured;
    };
    let mut out = Vec::new();
    block_to_pci(&sys, &name, 0, &mut Default::default(), &mut out);
    let shown = source.strip_prefix("/dev/").unwrap_or(&name).to_string();
    for a in out {
        if let Some(d) = host.devices.get_mut(&a) {
            let c = Critical::RootFilesystem {
                block: Some(shown.clone()),
            };
            if !d.critical.contains(&c) {
                d.critical.push(c);
            }
        }
    }
    Provenance::Measured
}

fn find_dm(sys: &Path, dm_name: &str) -> Option<String> {
    let it = fs::read_dir(sys.join("class/block")).ok()?;
    for e in it.filter_map(|e| e.ok()) {
        let n = e.file_name().to_string_lossy().into_owned();
        if read_trim(&e.path().join("dm/name")).as_deref() == Some(dm_name) {
            return Some(n);
        }
    }
    None
}

/// Follow a network interface down to PCI functions: through bridges
/// (`brif/`), bonds and VLANs (`lower_*`).
fn net_to_pci(
    sys: &Path,
    iface: &str,
    depth: u32,
    seen: &mut std::collections::HashSet<String>,
    out: &mut Vec<PciAddress>,
) {
    // Each interface once: bridges of bonds of bridges may loop in a tree.
    if depth > 16 || !seen.insert(iface.to_string()) {
        return;
    }
    let link = sys.join("class/net").join(iface);
    let Ok(real) = fs::canonicalize(&link) else {
        return;
    };
    if let Some(a) = pci_components(&real).last() {
        if !out.contains(a) {
            out.push(*a);
        }
        return;
    }
    let mut lowers: Vec<String> = Vec::new();
    if let Ok(it) = fs::read_dir(real.join("brif")) {
        lowers.extend(
            it.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned()),
        );
    }
    if let Ok(it) = fs::read_dir(&real) {
        lowers.extend(it.filter_map(|e| e.ok()).filter_map(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_prefix("lower_")
                .map(str::to_string)
        }));
    }
    for l in lowers {
        net_to_pci(sys, &l, depth + 1, seen, out);
    }
}

/// Mark the NIC(s) behind the default route; unknown when the routing
/// table cannot be read (why is kept in the host's provenance).
pub(crate) fn mark_default_route(root: &Path, host: &mut Host) -> Provenance {
    let p = root.join("proc/net/route");
    let route = match read_proc(&p) {
        Ok(t) => t,
        Err(e) => {
            host.provenance.push(format!(
                "default-route NIC unknown: cannot read {}: {e}",
                crate::text::escape(&p.display().to_string())
            ));
            return Provenance::Unknown;
        }
    };
    let sys = root.join("sys");
    for line in route.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 || f[1] != "00000000" || f[7] != "00000000" {
            continue;
        }
        let iface = f[0];
        let mut out = Vec::new();
        net_to_pci(&sys, iface, 0, &mut Default::default(), &mut out);
        for a in out {
            if let Some(d) = host.devices.get_mut(&a) {
                let c = Critical::DefaultRoute {
                    interface: Some(iface.to_string()),
                };
                if !d.critical.contains(&c) {
                    d.critical.push(c);
                }
            }
        }
    }
    Provenance::Measured
}
