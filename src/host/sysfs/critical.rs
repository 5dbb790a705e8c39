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
use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The next device of a walk down to PCI functions: `sys/class/CLASS/NAME`
/// resolved, or `None` past depth 16, where the link does not resolve, or
/// where the walk has been (`seen`): a tree whose slaves or bridges form a
/// cycle with fan-out took minutes at depth 16 without it.
fn enter(
    sys: &Path,
    class: &str,
    name: &str,
    depth: u32,
    seen: &mut HashSet<String>,
) -> Option<PathBuf> {
    if depth > 16 || !seen.insert(name.to_string()) {
        return None;
    }
    fs::canonicalize(sys.join("class").join(class).join(name)).ok()
}

/// Add the PCI function `dev` sits under (the last on its path) to `out`,
/// once; false when it sits under none.
fn push_function(dev: &Path, out: &mut Vec<PciAddress>) -> bool {
    let Some(a) = pci_components(dev).last().copied() else {
        return false;
    };
    if !out.contains(&a) {
        out.push(a);
    }
    true
}

/// The names in a directory; none when it cannot be read.
fn names(dir: &Path) -> impl Iterator<Item = String> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
}

/// Follow a block device down to the PCI functions that hold it: through
/// partitions (parent directory), device-mapper/LVM/md (`slaves/`).
fn block_to_pci(
    sys: &Path,
    name: &str,
    depth: u32,
    seen: &mut HashSet<String>,
    out: &mut Vec<PciAddress>,
) {
    let Some(mut dev) = enter(sys, "block", name, depth, seen) else {
        return;
    };
    if dev.join("partition").exists() {
        if let Some(p) = dev.parent() {
            dev = p.to_path_buf();
        }
    }
    let slaves: Vec<String> = names(&dev.join("slaves")).collect();
    if !slaves.is_empty() {
        for s in slaves {
            block_to_pci(sys, &s, depth + 1, seen, out);
        }
        return;
    }
    push_function(&dev, out);
}

/// A `/proc` file's text; `None` when it cannot be read, with why the
/// `fact` is unknown kept in the host's provenance.
fn read_or_note(host: &mut Host, p: &Path, fact: &str) -> Option<String> {
    match read_proc(p) {
        Ok(t) => Some(t),
        Err(e) => {
            host.provenance.push(format!(
                "{fact} unknown: cannot read {}: {e}",
                crate::text::escape(&p.display().to_string())
            ));
            None
        }
    }
}

/// Add `c` to the host's functions among `found`, once each.
fn mark(host: &mut Host, found: Vec<PciAddress>, c: &Critical) {
    for a in found {
        if let Some(d) = host.devices.get_mut(&a) {
            if !d.critical.contains(c) {
                d.critical.push(c.clone());
            }
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
    let Some(info) = read_or_note(host, &p, "root filesystem controller") else {
        return Provenance::Unknown;
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
    let c = Critical::RootFilesystem { block: Some(shown) };
    mark(host, out, &c);
    Provenance::Measured
}

fn find_dm(sys: &Path, dm_name: &str) -> Option<String> {
    let blocks = sys.join("class/block");
    names(&blocks).find(|n| read_trim(&blocks.join(n).join("dm/name")).as_deref() == Some(dm_name))
}

/// Follow a network interface down to PCI functions: through bridges
/// (`brif/`), bonds and VLANs (`lower_*`).
fn net_to_pci(
    sys: &Path,
    iface: &str,
    depth: u32,
    seen: &mut HashSet<String>,
    out: &mut Vec<PciAddress>,
) {
    let Some(real) = enter(sys, "net", iface, depth, seen) else {
        return;
    };
    if push_function(&real, out) {
        return;
    }
    let lowers: Vec<String> = names(&real.join("brif"))
        .chain(names(&real).filter_map(|n| n.strip_prefix("lower_").map(str::to_string)))
        .collect();
    for l in lowers {
        net_to_pci(sys, &l, depth + 1, seen, out);
    }
}

/// Mark the NIC(s) behind the default route; unknown when the routing
/// table cannot be read (why is kept in the host's provenance).
pub(crate) fn mark_default_route(root: &Path, host: &mut Host) -> Provenance {
    let p = root.join("proc/net/route");
    let Some(route) = read_or_note(host, &p, "default-route NIC") else {
        return Provenance::Unknown;
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
        let c = Critical::DefaultRoute {
            interface: Some(iface.to_string()),
        };
        mark(host, out, &c);
    }
    Provenance::Measured
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// `sys/class/CLASS/NAME` → `sys/devices/DEV`, with DEV made.
    fn class_link(sys: &Path, class: &str, name: &str, dev: &str) -> PathBuf {
        let d = sys.join("devices").join(dev);
        fs::create_dir_all(&d).unwrap();
        fs::create_dir_all(sys.join("class").join(class)).unwrap();
        symlink(
            format!("../../devices/{dev}"),
            sys.join("class").join(class).join(name),
        )
        .unwrap();
        d
    }

    #[test]
    fn a_mapped_root_is_traced_through_dm_slaves_and_a_partition() {
        let t = tempfile::tempdir().unwrap();
        let sys = t.path();
        let disk = "pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda";
        class_link(sys, "block", "sda", disk);
        let part = class_link(sys, "block", "sda2", &format!("{disk}/sda2"));
        fs::write(part.join("partition"), "2\n").unwrap();
        let dm = class_link(sys, "block", "dm-0", "virtual/block/dm-0");
        fs::create_dir_all(dm.join("dm")).unwrap();
        fs::write(dm.join("dm/name"), "vg-root\n").unwrap();
        fs::create_dir_all(dm.join("slaves/sda2")).unwrap();
        assert_eq!(find_dm(sys, "vg-root").as_deref(), Some("dm-0"));
        assert_eq!(find_dm(sys, "vg-home"), None);
        let mut out = Vec::new();
        block_to_pci(sys, "dm-0", 0, &mut HashSet::new(), &mut out);
        assert_eq!(out, [PciAddress::new(0, 0, 0x17, 0)]);
    }

    #[test]
    fn a_vlan_on_a_bridge_on_a_bond_is_traced_to_its_nic_and_loops_end() {
        let t = tempfile::tempdir().unwrap();
        let sys = t.path();
        class_link(sys, "net", "eth0", "pci0000:00/0000:00:1f.6/net/eth0");
        let bond = class_link(sys, "net", "bond0", "virtual/net/bond0");
        fs::create_dir_all(bond.join("lower_eth0")).unwrap();
        let br = class_link(sys, "net", "br0", "virtual/net/br0");
        fs::create_dir_all(br.join("brif/bond0")).unwrap();
        let vlan = class_link(sys, "net", "br0.10", "virtual/net/br0.10");
        fs::create_dir_all(vlan.join("lower_br0")).unwrap();
        // A loop back to the VLAN: each interface is visited once.
        fs::create_dir_all(br.join("brif/br0.10")).unwrap();
        let mut out = Vec::new();
        net_to_pci(sys, "br0.10", 0, &mut HashSet::new(), &mut out);
        assert_eq!(out, [PciAddress::new(0, 0, 0x1f, 6)]);
        let mut none = Vec::new();
        net_to_pci(sys, "missing0", 0, &mut HashSet::new(), &mut none);
        assert!(none.is_empty());
    }
}
