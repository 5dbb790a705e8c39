//! One PCI function's facts from its sysfs directory.
//!
//! Kept apart from the whole-host reader because this is where the reader's
//! cost is (15 files per function on a 4,096-function host, BENCHMARKS.md):
//! a directory opened once with `O_PATH`, attributes read with one `read`,
//! ids from `uevent` in one open. Both the whole read and the guard's
//! partial read (`groups.rs`) use it, so they read a function the same way.

use super::{link_name, parse_sysfs_bdf, pci_components, SysfsError, ATTR_MAX};
use crate::address::PciAddress;
use crate::host::Device;
use std::fs;
use std::path::{Component, Path, PathBuf};

/// Why an attribute could not be read: it is not what sysfs holds.
enum AttrError {
    TooLarge,
    WouldBlock,
}

/// A sysfs attribute, trimmed. Attributes are at most one page and the
/// kernel hands them over in one read, so this is open + read + close;
/// `fs::read_to_string` adds a statx and a second read per file, which on a
/// 4,096-function host was a third of `list`'s syscalls (BENCHMARKS.md).
/// Bounded by [`ATTR_MAX`]; the file is opened `O_NONBLOCK`, so a FIFO
/// returns at once (empty, or `EAGAIN`) instead of hanging.
/// Not for /proc files: seq_file reads may come short before the end.
fn read_attr_from(mut f: fs::File) -> Result<Option<String>, AttrError> {
    use std::io::Read;
    let mut buf = [0u8; 4096];
    let mut v = Vec::new();
    loop {
        let n = match f.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return Err(AttrError::WouldBlock)
            }
            Err(_) => return Ok(None),
        };
        v.extend_from_slice(&buf[..n]);
        if v.len() as u64 > ATTR_MAX {
            return Err(AttrError::TooLarge);
        }
        if n < buf.len() {
            break;
        }
    }
    Ok(String::from_utf8(v)
        .ok()
        .map(|s| s.trim_end_matches('\n').trim().to_string()))
}

/// The real directory of `sys/bus/pci/devices/<BDF>`. The kernel writes
/// these links with a fixed prefix, `../../../devices/...` (sysfs.md §1),
/// and nothing below `sys/devices` is a link, so the target is `sys_real`
/// plus the part after the prefix; anything else is resolved fully.
fn device_dir(sys_real: &Path, link: &Path) -> PathBuf {
    if let Ok(t) = fs::read_link(link) {
        if let Ok(rest) = t.strip_prefix("../../../") {
            if rest.starts_with("devices")
                && rest.components().all(|c| matches!(c, Component::Normal(_)))
            {
                return sys_real.join(rest);
            }
        }
    }
    fs::canonicalize(link).unwrap_or_else(|_| link.to_path_buf())
}

/// A device directory opened once (`O_PATH`): each attribute and link is
/// then looked up by its name alone instead of walking the whole path
/// again. Path walking (`link_path_walk`, `__d_lookup_rcu`) was the largest
/// kernel cost of `list` on big hosts (BENCHMARKS.md, list at scale).
struct DeviceDir {
    fd: rustix::fd::OwnedFd,
    path: PathBuf,
    /// The first attribute that is not one (too large, a FIFO): the read
    /// of the host fails with it.
    bad: std::cell::RefCell<Option<SysfsError>>,
}

impl DeviceDir {
    fn open(path: PathBuf) -> Option<Self> {
        use rustix::fs::{Mode, OFlags};
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = rustix::fs::open(&path, flags, Mode::empty()).ok()?;
        Some(DeviceDir {
            fd,
            path,
            bad: std::cell::RefCell::new(None),
        })
    }

    fn file(&self, name: &str) -> Option<fs::File> {
        use rustix::fs::{Mode, OFlags};
        rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY,
            Mode::empty(),
        )
        .ok()
        .map(fs::File::from)
    }

    fn attr(&self, name: &str) -> Option<String> {
        match read_attr_from(self.file(name)?) {
            Ok(v) => v,
            Err(e) => {
                let mut bad = self.bad.borrow_mut();
                if bad.is_none() {
                    *bad = Some(SysfsError {
                        path: self.path.join(name),
                        message: match e {
                            AttrError::TooLarge => format!(
                                "larger than {}: not a sysfs attribute (one page at most)",
                                crate::fsutil::human(ATTR_MAX)
                            ),
                            AttrError::WouldBlock => {
                                "a FIFO or device, not a sysfs attribute (reading it would block)"
                                    .to_string()
                            }
                        },
                        help: Some(
                            "a tree for --root must hold regular files where sysfs has attributes"
                                .into(),
                        ),
                    });
                }
                None
            }
        }
    }

    /// Like `Path::exists`: follows links, false on any error.
    fn exists(&self, name: &str) -> bool {
        rustix::fs::statat(&self.fd, name, rustix::fs::AtFlags::empty()).is_ok()
    }

    /// [`link_name`] of `path/name`, with one `readlinkat`. Unlike
    /// `link_name` it does not stat the target to rule out a dangling link:
    /// the kernel never leaves one in sysfs, and following each
    /// `../../../../kernel/iommu_groups/N` walked ten more path components
    /// per link (the largest kernel cost left in `list`, BENCHMARKS.md).
    fn link_name(&self, name: &str) -> Option<String> {
        use std::os::unix::ffi::OsStringExt;
        match rustix::fs::readlinkat(&self.fd, name, Vec::new()) {
            Ok(t) => {
                let t = PathBuf::from(std::ffi::OsString::from_vec(t.into_bytes()));
                match t.components().next_back() {
                    Some(Component::Normal(n)) => Some(n.to_string_lossy().into_owned()),
                    _ => link_name(&self.path.join(name)),
                }
            }
            Err(rustix::io::Errno::NOENT) => None,
            Err(_) => link_name(&self.path.join(name)),
        }
    }
}

/// Vendor, device, class, subsystem vendor and device from a PCI `uevent`
/// (`PCI_ID=15B3:1018`, `PCI_CLASS=20000`, `PCI_SUBSYS_ID=15B3:0007`), in
/// the spelling of the separate files (`0x15b3`, `0x020000`); `None` unless
/// all three lines are there and well-formed.
fn pci_uevent_ids(u: &str) -> Option<(String, String, String, String, String)> {
    let (mut id, mut class, mut sub) = (None, None, None);
    for line in u.lines() {
        if let Some(v) = line.strip_prefix("PCI_ID=") {
            id = Some(v);
        } else if let Some(v) = line.strip_prefix("PCI_CLASS=") {
            class = Some(v);
        } else if let Some(v) = line.strip_prefix("PCI_SUBSYS_ID=") {
            sub = Some(v);
        }
    }
    let pair = |v: &str| -> Option<(u16, u16)> {
        let (a, b) = v.split_once(':')?;
        Some((
            u16::from_str_radix(a, 16).ok()?,
            u16::from_str_radix(b, 16).ok()?,
        ))
    };
    let (v, d) = pair(id?)?;
    let (sv, sd) = pair(sub?)?;
    let c = u32::from_str_radix(class?, 16)
        .ok()
        .filter(|c| *c <= 0xff_ffff)?;
    Some((
        format!("0x{v:04x}"),
        format!("0x{d:04x}"),
        format!("0x{c:06x}"),
        format!("0x{sv:04x}"),
        format!("0x{sd:04x}"),
    ))
}

/// One function's facts from its directory; `None` when it has no `vendor`
/// (not a PCI function, or gone while we read).
pub(super) fn read_device(
    sys_real: &Path,
    addr: PciAddress,
    link: &Path,
) -> Result<Option<Device>, SysfsError> {
    let dir = device_dir(sys_real, link);
    let Some(at) = DeviceDir::open(dir.clone()) else {
        return Ok(None);
    };
    let d = read_device_at(sys_real, addr, &dir, &at);
    match at.bad.into_inner() {
        Some(e) => Err(e),
        None => Ok(d),
    }
}

fn read_device_at(sys_real: &Path, addr: PciAddress, dir: &Path, at: &DeviceDir) -> Option<Device> {
    let dir = dir.to_path_buf();
    let rd = |f: &str| at.attr(f);
    let mut d = Device::new(addr, 0, 0, 0);
    // `uevent` carries vendor, device, class and subsystem ids from the
    // same pci_dev fields as the separate files (kernel pci_uevent): one
    // open instead of five. Trees without it (hand-made fakes) use the files.
    if let Some(ids) = rd("uevent").as_deref().and_then(pci_uevent_ids) {
        [d.vendor_id, d.device_id, d.class] = [ids.0, ids.1, ids.2];
        d.subsystem_vendor_id = Some(ids.3);
        d.subsystem_device_id = Some(ids.4);
    } else {
        d.vendor_id = rd("vendor")?;
        d.device_id = rd("device").unwrap_or_else(|| "0x0000".into());
        d.class = rd("class").unwrap_or_else(|| "0x000000".into());
        d.subsystem_vendor_id = rd("subsystem_vendor");
        d.subsystem_device_id = rd("subsystem_device");
    }
    d.revision = rd("revision");
    d.driver = at.link_name("driver");
    d.driver_override = rd("driver_override").filter(|s| !s.is_empty() && s != "(null)");
    d.iommu_group = at.link_name("iommu_group").and_then(|n| n.parse().ok());
    d.reset_methods = match rd("reset_method") {
        Some(s) => Some(s.split_whitespace().map(str::to_string).collect()),
        None => Some(Vec::new()),
    };
    // `reset` and `reset_method` come and go together (sysfs.md §2): a
    // method list means the file is there, no stat needed.
    d.reset = Some(d.reset_methods.as_ref().is_some_and(|m| !m.is_empty()) || at.exists("reset"));
    // boot_vga exists only for VGA-class functions (sysfs.md §2).
    if d.class.starts_with("0x0300") || d.class.starts_with("0x0001") {
        d.boot_vga = rd("boot_vga").map(|s| s == "1");
    }
    d.numa_node = rd("numa_node").and_then(|s| s.parse().ok());
    d.physfn = at.link_name("physfn").and_then(|n| parse_sysfs_bdf(&n));
    // A VF cannot itself have VFs: skip the two files it never has.
    if d.physfn.is_none() {
        d.sriov_totalvfs = rd("sriov_totalvfs").and_then(|s| s.parse().ok());
        d.sriov_numvfs = rd("sriov_numvfs").and_then(|s| s.parse().ok());
    }
    // virtfnN links exist only on PFs, which have the sriov_* files:
    // listing every device's directory cost 4 getdents per function.
    let is_pf = d.sriov_totalvfs.is_some() || d.sriov_numvfs.is_some();
    let mut vfs: Vec<(u32, PciAddress)> = is_pf
        .then(|| fs::read_dir(&dir).ok())
        .flatten()
        .map(|it| {
            it.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    let i: u32 = n.strip_prefix("virtfn")?.parse().ok()?;
                    let t = link_name(&e.path())?;
                    Some((i, parse_sysfs_bdf(&t)?))
                })
                .collect()
        })
        .unwrap_or_default();
    vfs.sort();
    d.virtfns = vfs.into_iter().map(|(_, a)| a).collect();
    // Header type byte at offset 0x0e of config space.
    // (Only the first 64 bytes, the standard header: the whole file is
    // 4 KiB on PCIe devices.)
    if let Some(mut f) = at.file("config") {
        use std::io::Read;
        let mut cfg = [0u8; 64];
        if matches!(f.read(&mut cfg), Ok(n) if n > 0x0e) {
            d.header_type = Some(cfg[0x0e] & 0x7f);
        }
    }
    let comps = pci_components(&dir);
    d.parents = comps.iter().copied().filter(|a| *a != addr).collect();
    d.sysfs_path = dir
        .strip_prefix(sys_real)
        .ok()
        .map(|p| p.to_string_lossy().into_owned());
    Some(d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn uevent_ids_match_the_separate_files_spelling() {
        let u = "DRIVER=xhci_hcd\nPCI_CLASS=C0330\nPCI_ID=8086:A12F\nPCI_SUBSYS_ID=1849:A12F\nPCI_SLOT_NAME=0000:00:14.0\n";
        let ids = super::pci_uevent_ids(u).unwrap();
        assert_eq!(
            ids,
            (
                "0x8086".into(),
                "0xa12f".into(),
                "0x0c0330".into(),
                "0x1849".into(),
                "0xa12f".into()
            )
        );
        assert!(super::pci_uevent_ids("PCI_ID=8086:A12F\nPCI_CLASS=C0330\n").is_none());
        assert!(
            super::pci_uevent_ids("PCI_ID=8086\nPCI_CLASS=C0330\nPCI_SUBSYS_ID=0:0\n").is_none()
        );
    }
}
