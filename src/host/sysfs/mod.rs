//! Reading a host from a sysfs tree under any root directory.
//!
//! `--root DIR` makes every path `DIR/sys/...` and `DIR/proc/...`, so tests
//! and benchmarks read fake trees laid out exactly as the kernel lays out the
//! real one (see docs/sysfs.md). Links are always resolved and
//! their last component taken; raw link strings are never compared, because
//! their `../` depth differs with the device's depth.
//!
//! This module only reads. Nothing here writes to sysfs.

use super::{Critical, Device, GroupMember, Host, IommuState, Provenance, UsbBus, UsbDevice};
use crate::address::PciAddress;
use std::collections::BTreeMap;
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
pub fn parse_sysfs_bdf(name: &str) -> Option<PciAddress> {
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
    let domain = hex(dom, 4, 8)?;
    let bus = hex(bus, 2, 2)?;
    let slot = hex(slot, 2, 2)?;
    let function = hex(func, 1, 1)?;
    if slot > 0x1f || function > 7 {
        return None;
    }
    Some(PciAddress::new(
        domain,
        bus as u8,
        slot as u8,
        function as u8,
    ))
}

/// The most we read of one sysfs attribute: 64 KiB. The kernel's
/// `sysfs_emit` writes at most one page (4 KiB on x86-64, 64 KiB with the
/// largest arm64/ppc64 pages); more means it is not an attribute (a link
/// to `/dev/zero` in a hand-made tree) and the read is refused.
pub const ATTR_MAX: u64 = 64 * 1024;

/// The most we read of `proc/self/mountinfo` or `proc/net/route`: 16 MiB
/// (a host with 10,000 mounts has ~1.5 MiB of mountinfo).
pub const PROC_MAX: u64 = 16 * 1024 * 1024;

/// A small file (USB attributes, `dm/name`), bounded and non-blocking
/// ([`crate::fsutil::read_limited`]: a FIFO or device is refused). Any
/// failure is "not there".
fn read_trim(p: &Path) -> Option<String> {
    let b = crate::fsutil::read_limited(p, ATTR_MAX).ok()?;
    String::from_utf8(b)
        .ok()
        .map(|s| s.trim_end_matches('\n').trim().to_string())
}

/// A /proc file whose absence makes a fact unknown: the text, or why it
/// could not be read.
fn read_proc(p: &Path) -> Result<String, String> {
    let b = crate::fsutil::read_limited(p, PROC_MAX).map_err(|e| e.to_string())?;
    String::from_utf8(b).map_err(|_| "not UTF-8".to_string())
}

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

fn link_name(p: &Path) -> Option<String> {
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

/// The PCI functions along a resolved device path, root first.
fn pci_components(p: &Path) -> Vec<PciAddress> {
    p.components()
        .filter_map(|c| parse_sysfs_bdf(&c.as_os_str().to_string_lossy()))
        .collect()
}

/// Read the whole host under `root` (`/` for this machine).
pub fn read(root: &Path) -> Result<Host, SysfsError> {
    let sys = root.join("sys");
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
    let sys_real = fs::canonicalize(&sys).unwrap_or_else(|_| sys.clone());

    let mut host = Host {
        source: format!("sysfs:{}", root.display()),
        ..Host::default()
    };

    let mut names: Vec<(PciAddress, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| parse_sysfs_bdf(&e.file_name().to_string_lossy()).map(|a| (a, e.path())))
        .collect();
    names.sort();

    // Devices are independent: read them on every core. On a big host the
    // reader is pure syscalls (15 files per function), and one thread per
    // core halves the wall time on 2 cores (BENCHMARKS.md, list at scale).
    let threads = if names.len() < 256 {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
    };
    let chunk = names.len().div_ceil(threads).max(1);
    let read_chunk = |part: &[(PciAddress, PathBuf)]| -> Result<Vec<Device>, SysfsError> {
        let mut v = Vec::with_capacity(part.len());
        for (addr, link) in part {
            if let Some(d) = read_device(&sys_real, *addr, link)? {
                v.push(d);
            }
        }
        Ok(v)
    };
    // IOMMU groups, with every member (PCI or not); read while the devices are.
    let gdir = sys.join("kernel/iommu_groups");
    // A group directory that cannot be read is an unknown membership, not
    // an empty group (the plan then says `unverified`).
    let read_groups = || {
        let mut groups: BTreeMap<u32, Vec<GroupMember>> = BTreeMap::new();
        let mut unreadable: BTreeMap<u32, String> = BTreeMap::new();
        let mut whole: Option<String> = None;
        match fs::read_dir(&gdir) {
            Ok(it) => {
                for e in it.filter_map(|e| e.ok()) {
                    let Ok(id) = e.file_name().to_string_lossy().parse::<u32>() else {
                        continue;
                    };
                    let mut members: Vec<GroupMember> = match fs::read_dir(e.path().join("devices"))
                    {
                        Ok(m) => m
                            .filter_map(|x| x.ok())
                            .map(|x| GroupMember::from_name(&x.file_name().to_string_lossy()))
                            .collect(),
                        Err(err) => {
                            unreadable.insert(
                                id,
                                format!("{}: {err}", e.path().join("devices").display()),
                            );
                            Vec::new()
                        }
                    };
                    members.sort();
                    groups.insert(id, members);
                }
            }
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                whole = Some(format!("{}: {err}", gdir.display()));
            }
            Err(_) => {}
        }
        (groups, unreadable, whole)
    };
    let (devices, groups): (Result<Vec<Device>, SysfsError>, _) = if threads == 1 {
        (read_chunk(&names), read_groups())
    } else {
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
    };
    for d in devices? {
        host.devices.insert(d.address, d);
    }

    let (groups, unreadable, whole) = groups;
    host.iommu = if whole.is_some() {
        IommuState::Unknown
    } else if groups.is_empty() {
        IommuState::Disabled
    } else {
        IommuState::Enabled
    };
    host.groups = groups;
    host.facts.inconsistent_groups = unreadable;
    host.facts.groups_unreadable = whole;
    host.check_group_consistency();
    host.link_groups();

    host.usb = read_usb(&sys);
    measure_host_facts(root, &mut host);
    Ok(host)
}

/// The host-critical facts of a tree just read, and their provenance: the
/// root filesystem's controller and the default-route NIC are traced; the
/// drivers were read; the kernel writes `boot_vga` for every VGA-class
/// function (and only for those), so that fact is measured when each of
/// them has it. Shared by the whole read and the guard's partial one.
fn measure_host_facts(root: &Path, host: &mut Host) {
    host.facts.root_filesystem = mark_root_fs(root, host);
    host.facts.default_route = mark_default_route(root, host);
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

/// Read only what a start of a domain using `addrs` depends on: those
/// functions, every member of their IOMMU groups, and the host-critical
/// marks (root filesystem, default route, boot VGA, ISA bridge) of what was
/// read. The guard (`virt-pci guard`, run by libvirt at every start) must
/// stay within a few milliseconds on a 4,096-function host, and a start
/// depends on nothing outside these groups (BENCHMARKS.md, guard).
///
/// A function that is not on the bus is simply absent from the result (the
/// plan reports it as `not-present`).
pub fn read_groups_of(root: &Path, addrs: &[PciAddress]) -> Result<Host, SysfsError> {
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
fn read_device(
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

fn read_usb(sys: &Path) -> Vec<UsbBus> {
    let dir = sys.join("bus/usb/devices");
    let Ok(it) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut buses: BTreeMap<u32, UsbBus> = BTreeMap::new();
    let mut devices: Vec<UsbDevice> = Vec::new();
    for e in it.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        let rd = |f: &str| read_trim(&path.join(f));
        if let Some(n) = name.strip_prefix("usb") {
            let Ok(bus) = n.parse::<u32>() else { continue };
            let real = fs::canonicalize(&path).unwrap_or(path.clone());
            let controller = pci_components(&real).last().copied();
            buses.insert(
                bus,
                UsbBus {
                    bus,
                    controller,
                    devices: Vec::new(),
                },
            );
        } else if !name.contains(':') {
            // A device (`1-2`, `1-2.3`); interfaces have a ':' and are skipped.
            let (Some(b), Some(dn), Some(v), Some(p)) =
                (rd("busnum"), rd("devnum"), rd("idVendor"), rd("idProduct"))
            else {
                continue;
            };
            let (Ok(bus), Ok(device)) = (b.parse(), dn.parse()) else {
                continue;
            };
            let name = match (rd("manufacturer"), rd("product")) {
                (Some(m), Some(p)) => Some(format!("{m} {p}")),
                (None, Some(p)) => Some(p),
                (Some(m), None) => Some(m),
                _ => None,
            };
            devices.push(UsbDevice {
                bus,
                device,
                vendor_id: v,
                product_id: p,
                name,
            });
        }
    }
    devices.sort_by_key(|d| (d.bus, d.device));
    for d in devices {
        if let Some(b) = buses.get_mut(&d.bus) {
            b.devices.push(d);
        }
    }
    buses.into_values().collect()
}

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
fn mark_root_fs(root: &Path, host: &mut Host) -> Provenance {
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
fn mark_default_route(root: &Path, host: &mut Host) -> Provenance {
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

    use super::*;

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
