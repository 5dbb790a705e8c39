//! IOMMU groups: every group directory of a whole read, and the guard's
//! partial read of only the groups a domain's start depends on.
//!
//! A group directory that cannot be read is an unknown membership, not an
//! empty group (the plan then says `unverified`): that rule lives here once
//! for both readers.

use super::device::read_device;
use super::{measure_host_facts, SysfsError};
use crate::address::PciAddress;
use crate::host::{GroupMember, Host, IommuState};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

/// What `sys/kernel/iommu_groups` held: each group's members, the groups
/// whose `devices/` could not be read (and why), and why the whole
/// directory could not be read (absent is no IOMMU, not unreadable).
pub(super) struct GroupDirs {
    groups: BTreeMap<u32, Vec<GroupMember>>,
    unreadable: BTreeMap<u32, String>,
    whole: Option<String>,
}

/// Every group directory under `gdir`, with every member (PCI or not).
pub(super) fn read_group_dirs(gdir: &Path) -> GroupDirs {
    let mut g = GroupDirs {
        groups: BTreeMap::new(),
        unreadable: BTreeMap::new(),
        whole: None,
    };
    match fs::read_dir(gdir) {
        Ok(it) => {
            for e in it.filter_map(|e| e.ok()) {
                let Ok(id) = e.file_name().to_string_lossy().parse::<u32>() else {
                    continue;
                };
                let mut members: Vec<GroupMember> = match fs::read_dir(e.path().join("devices")) {
                    Ok(m) => m
                        .filter_map(|x| x.ok())
                        .map(|x| GroupMember::from_name(&x.file_name().to_string_lossy()))
                        .collect(),
                    Err(err) => {
                        g.unreadable
                            .insert(id, format!("{}: {err}", e.path().join("devices").display()));
                        Vec::new()
                    }
                };
                members.sort();
                g.groups.insert(id, members);
            }
        }
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            g.whole = Some(format!("{}: {err}", gdir.display()));
        }
        Err(_) => {}
    }
    g
}

/// The groups of a whole read into the host: the IOMMU is unknown when the
/// group directory could not be read, disabled when it holds no group,
/// else enabled; then the devices' groups are checked against the
/// directories and linked.
pub(super) fn set_groups(host: &mut Host, g: GroupDirs) {
    host.iommu = if g.whole.is_some() {
        IommuState::Unknown
    } else if g.groups.is_empty() {
        IommuState::Disabled
    } else {
        IommuState::Enabled
    };
    host.groups = g.groups;
    host.facts.inconsistent_groups = g.unreadable;
    host.facts.groups_unreadable = g.whole;
    host.check_group_consistency();
    host.link_groups();
}

/// Read only what a start of a domain using `addrs` depends on: those
/// functions, every member of their IOMMU groups, and the host-critical
/// marks (root filesystem, default route, boot VGA, ISA bridge) of what was
/// read. The guard (`virt-pci guard`, run by libvirt at every start) must
/// stay within a few milliseconds on a 4,096-function host, and a start
/// depends on nothing outside these groups (BENCHMARKS.md, guard).
///
/// A function that is not on the bus is simply absent from the result (the
/// plan reports it as `not-present`).
pub(crate) fn read_groups_of(root: &Path, addrs: &[PciAddress]) -> Result<Host, SysfsError> {
    let sys = root.join("sys");
    let devdir = sys.join("bus/pci/devices");
    if !devdir.is_dir() {
        return Err(SysfsError {
            path: devdir,
            message: "cannot read the PCI device list".into(),
            help: Some(format!(
                "--root {} must hold a sysfs tree (DIR/sys/bus/pci/devices)",
                root.display()
            )),
        });
    }
    let sys_real = fs::canonicalize(&sys).unwrap_or_else(|_| sys.clone());
    let mut host = Host {
        source: format!("sysfs:{}", root.display()),
        ..Host::default()
    };
    let gdir = sys.join("kernel/iommu_groups");
    let mut todo: Vec<PciAddress> = addrs.to_vec();
    let mut seen_groups: BTreeMap<u32, ()> = BTreeMap::new();
    while let Some(a) = todo.pop() {
        if host.devices.contains_key(&a) {
            continue;
        }
        let link = devdir.join(a.to_string());
        let Some(d) = read_device(&sys_real, a, &link)? else {
            continue;
        };
        if let Some(g) = d.iommu_group {
            if seen_groups.insert(g, ()).is_none() {
                let mut members: Vec<GroupMember> =
                    fs::read_dir(gdir.join(g.to_string()).join("devices"))
                        .map(|m| {
                            m.filter_map(|x| x.ok())
                                .map(|x| GroupMember::from_name(&x.file_name().to_string_lossy()))
                                .collect()
                        })
                        .unwrap_or_default();
                members.sort();
                for m in &members {
                    if let GroupMember::Pci(ma) = m {
                        todo.push(*ma);
                    }
                }
                host.groups.insert(g, members);
            }
        }
        host.devices.insert(a, d);
    }
    host.iommu =
        if !host.groups.is_empty() || fs::read_dir(&gdir).is_ok_and(|mut it| it.next().is_some()) {
            IommuState::Enabled
        } else {
            IommuState::Disabled
        };
    host.link_groups();
    // The same provenance as a whole read: what was read was measured.
    measure_host_facts(root, &mut host);
    Ok(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::sysfs::read;

    #[test]
    fn read_groups_of_reads_only_the_groups_asked_for() {
        let full = crate::host::snapshot::load(Path::new("tests/fixtures/host-gpu.json")).unwrap();
        let d = tempfile::tempdir().unwrap();
        crate::host::fake::write(&full, d.path()).unwrap();
        // The reference: the whole tree, read by the same reader.
        let full = read(d.path()).unwrap();
        let gpu = PciAddress::new(0, 1, 0, 0);
        let h = read_groups_of(d.path(), &[gpu]).unwrap();
        // Group 1: the root port and four functions; nothing else.
        let got: Vec<String> = h.devices.keys().map(|a| a.to_string()).collect();
        assert_eq!(
            got,
            vec![
                "0000:00:01.0",
                "0000:01:00.0",
                "0000:01:00.1",
                "0000:01:00.2",
                "0000:01:00.3"
            ]
        );
        assert_eq!(h.groups.keys().copied().collect::<Vec<_>>(), vec![1]);
        assert_eq!(h.iommu, IommuState::Enabled);
        for a in h.devices.keys() {
            assert_eq!(h.devices[a], full.devices[a], "{a} read differently");
        }
        // The root filesystem mark comes along with its group.
        let nvme = PciAddress::new(0, 2, 0, 0);
        let h = read_groups_of(d.path(), &[nvme]).unwrap();
        assert_eq!(h.devices[&nvme].critical, full.devices[&nvme].critical);
        assert!(!h.devices[&nvme].critical.is_empty());
        // Absent functions are simply absent.
        let h = read_groups_of(d.path(), &[PciAddress::new(0, 9, 0, 0)]).unwrap();
        assert!(h.devices.is_empty());
        assert!(read_groups_of(&d.path().join("none"), &[gpu]).is_err());
    }
}
