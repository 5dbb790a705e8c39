//! Reading a host from a sysfs tree under any root directory.
//!
//! `--root DIR` makes every path `DIR/sys/...` and `DIR/proc/...`, so tests
//! and benchmarks read fake trees laid out exactly as the kernel lays out the
//! real one (see docs/sysfs.md). Links are always resolved and
//! their last component taken; raw link strings are never compared, because
//! their `../` depth differs with the device's depth.
//!
//! This module only reads. Nothing here writes to sysfs.
//!
//! Here: the whole-host read and the small readers every part shares;
//! `device.rs` one function's directory, `groups.rs` the IOMMU groups (and
//! the guard's partial read), `usb.rs` USB buses, `critical.rs` the
//! root-filesystem and default-route tracing.

mod critical;
mod device;
mod groups;
mod usb;

pub(crate) use groups::read_groups_of;

use super::{Device, Host, Provenance};
use crate::address::PciAddress;
use std::fmt;
use std::fs;
use std::path::{Component, Path, PathBuf};

/// Reading the host failed in a way the user must fix (not "a file is
/// missing", which only makes a fact unknown).
#[derive(Debug)]
pub struct SysfsError {
    pub path: PathBuf,
    pub message: String,
    pub help: Option<String>,
}

impl fmt::Display for SysfsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for SysfsError {}

/// Parse a sysfs device name `DDDD:BB:SS.F` (domain of 4 or more hex digits).
pub(crate) fn parse_sysfs_bdf(name: &str) -> Option<PciAddress> {
    if let Some(a) = PciAddress::parse_canonical(name) {
        return Some(a);
    }
    let (dom, rest) = name.split_once(':')?;
    let (bus, rest) = rest.split_once(':')?;
    let (slot, func) = rest.split_once('.')?;
    let hex = |s: &str, min: usize, max: usize| {
        if s.len() >= min && s.len() <= max && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            u32::from_str_radix(s, 16).ok()
        } else {
            None
        }
    };
    PciAddress::from_fields(
        hex(dom, 4, 8)?,
        hex(bus, 2, 2)?,
        hex(slot, 2, 2)?,
        hex(func, 1, 1)?,
    )
}

/// The most we read of one sysfs attribute: 64 KiB. The kernel's
/// `sysfs_emit` writes at most one page (4 KiB on x86-64, 64 KiB with the
/// largest arm64/ppc64 pages); more means it is not an attribute (a link
/// to `/dev/zero` in a hand-made tree) and the read is refused.
pub(crate) const ATTR_MAX: u64 = 64 * 1024;

/// The most we read of `proc/self/mountinfo` or `proc/net/route`: 16 MiB
/// (a host with 10,000 mounts has ~1.5 MiB of mountinfo).
pub(crate) const PROC_MAX: u64 = 16 * 1024 * 1024;

/// A small file (USB attributes, `dm/name`), bounded and non-blocking
/// ([`crate::fsutil::read_limited`]: a FIFO or device is refused). Any
/// failure is "not there".
pub(super) fn read_trim(p: &Path) -> Option<String> {
    let b = crate::fsutil::read_limited(p, ATTR_MAX).ok()?;
    String::from_utf8(b)
        .ok()
        .map(|s| s.trim_end_matches('\n').trim().to_string())
}

/// A /proc file whose absence makes a fact unknown: the text, or why it
/// could not be read.
pub(super) fn read_proc(p: &Path) -> Result<String, String> {
    let b = crate::fsutil::read_limited(p, PROC_MAX).map_err(|e| e.to_string())?;
    String::from_utf8(b).map_err(|_| "not UTF-8".to_string())
}

pub(super) fn link_name(p: &Path) -> Option<String> {
    // The basename of the resolved link, as `readlink -f` would give it. One
    // readlink suffices when the target ends in a plain name (every sysfs
    // link: driver, iommu_group, physfn, virtfnN): that name is the
    // basename of the resolved path. Full resolution (a readlink per path
    // component, 60+ syscalls per device) made `list` on a 4,096-function
    // host 4x slower than lspci (BENCHMARKS.md), so it is kept for the odd
    // cases only: a target ending in `..`, or a path that is not a link.
    let full = || {
        fs::canonicalize(p)
            .ok()
            .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()))
    };
    match fs::read_link(p) {
        Ok(t) => match t.components().next_back() {
            Some(Component::Normal(n)) if p.exists() => Some(n.to_string_lossy().into_owned()),
            Some(Component::Normal(_)) => None, // dangling, as canonicalize would say
            _ => full(),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(_) => full(),
    }
}

/// The PCI functions along a resolved device path, root first.
pub(super) fn pci_components(p: &Path) -> Vec<PciAddress> {
    p.components()
        .filter_map(|c| parse_sysfs_bdf(&c.as_os_str().to_string_lossy()))
        .collect()
}

/// Read the whole host under `root` (`/` for this machine): every PCI
/// function, every IOMMU group (both at once, on every core for big hosts),
/// USB, then the host-critical facts.
pub fn read(root: &Path) -> Result<Host, SysfsError> {
    let sys = root.join("sys");
    let names = device_links(root, &sys)?;
    let sys_real = fs::canonicalize(&sys).unwrap_or_else(|_| sys.clone());
    let mut host = Host {
        source: format!("sysfs:{}", root.display()),
        ..Host::default()
    };
    let gdir = sys.join("kernel/iommu_groups");
    let (devices, groups) = read_devices_and_groups(&sys_real, &names, &gdir);
    for d in devices? {
        host.devices.insert(d.address, d);
    }
    groups::set_groups(&mut host, groups);
    host.usb = usb::read_usb(&sys);
    measure_host_facts(root, &mut host);
    Ok(host)
}

/// The functions of `sys/bus/pci/devices`, in address order, with their
/// links; a tree without that directory is an error saying what `--root`
/// must hold.
fn device_links(root: &Path, sys: &Path) -> Result<Vec<(PciAddress, PathBuf)>, SysfsError> {
    let devdir = sys.join("bus/pci/devices");
    let entries = fs::read_dir(&devdir).map_err(|e| SysfsError {
        path: devdir.clone(),
        message: format!("cannot read the PCI device list: {e}"),
        help: Some(if root == Path::new("/") {
            "is sysfs mounted? this machine may have no PCI bus".to_string()
        } else {
            format!(
                "--root {} must hold a sysfs tree (DIR/sys/bus/pci/devices)",
                root.display()
            )
        }),
    })?;
    let mut names: Vec<(PciAddress, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| parse_sysfs_bdf(&e.file_name().to_string_lossy()).map(|a| (a, e.path())))
        .collect();
    names.sort();
    Ok(names)
}

/// Read the devices and the groups. Devices are independent: read them on
/// every core. On a big host the reader is pure syscalls (15 files per
/// function), and one thread per core halves the wall time on 2 cores
/// (BENCHMARKS.md, list at scale); the groups are read meanwhile.
fn read_devices_and_groups(
    sys_real: &Path,
    names: &[(PciAddress, PathBuf)],
    gdir: &Path,
) -> (Result<Vec<Device>, SysfsError>, groups::GroupDirs) {
    let threads = if names.len() < 256 {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
    };
    let chunk = names.len().div_ceil(threads).max(1);
    let read_chunk = |part: &[(PciAddress, PathBuf)]| -> Result<Vec<Device>, SysfsError> {
        let mut v = Vec::with_capacity(part.len());
        for (addr, link) in part {
            if let Some(d) = device::read_device(sys_real, *addr, link)? {
                v.push(d);
            }
        }
        Ok(v)
    };
    let read_groups = || groups::read_group_dirs(gdir);
    if threads == 1 {
        return (read_chunk(names), read_groups());
    }
    std::thread::scope(|s| {
        let groups = s.spawn(read_groups);
        let handles: Vec<_> = names
            .chunks(chunk)
            .map(|part| s.spawn(move || read_chunk(part)))
            .collect();
        let devices = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect::<Result<Vec<Vec<Device>>, SysfsError>>()
            .map(|v| v.into_iter().flatten().collect());
        let groups = groups
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        (devices, groups)
    })
}

/// The host-critical facts of a tree just read, and their provenance: the
/// root filesystem's controller and the default-route NIC are traced; the
/// drivers were read; the kernel writes `boot_vga` for every VGA-class
/// function (and only for those), so that fact is measured when each of
/// them has it. Shared by the whole read and the guard's partial one.
pub(super) fn measure_host_facts(root: &Path, host: &mut Host) {
    host.facts.root_filesystem = critical::mark_root_fs(root, host);
    host.facts.default_route = critical::mark_default_route(root, host);
    host.facts.drivers = Provenance::Measured;
    host.facts.boot_vga = if host
        .devices
        .values()
        .all(|d| d.class16() != 0x0300 || d.boot_vga.is_some())
    {
        Provenance::Measured
    } else {
        Provenance::Unknown
    };
    host.mark_intrinsic_critical();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bdf_names() {
        assert_eq!(
            parse_sysfs_bdf("0000:00:1f.6"),
            Some(PciAddress::new(0, 0, 0x1f, 6))
        );
        assert_eq!(
            parse_sysfs_bdf("10000:02:05.0"),
            Some(PciAddress::new(0x10000, 2, 5, 0))
        );
        assert_eq!(parse_sysfs_bdf("pci0000:00"), None);
        assert_eq!(
            parse_sysfs_bdf("2d6f1e40-6b52-4bb8-9bde-000000000000"),
            None
        );
        assert_eq!(parse_sysfs_bdf("107c580000.hvs"), None);
        assert_eq!(parse_sysfs_bdf("0000:00:20.0"), None);
    }
}
