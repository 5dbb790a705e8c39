//! Writing a fake sysfs tree from a [`Host`], laid out as the kernel lays
//! out the real one (docs/sysfs.md §7).
//!
//! Tests, benchmarks and the demo need whole machines they can read, detach
//! and reset without touching this machine's devices. The tree is written
//! under any directory (`DIR/sys`, `DIR/proc`) and read back with the same
//! [`sysfs::read`](super::sysfs::read) that reads `/`, so the reader is tested
//! on real machines' shapes, and `lspci -A linux-sysfs -O sysfs.path=DIR/sys`
//! reads the same tree (each function has a 256-byte `config`).
//!
//! What the kernel would show and the model does not know is written the way
//! the kernel shows absence: no `reset`/`reset_method` file when the reset
//! methods are unknown or empty (as for a device without reset), no
//! `boot_vga` unless known. Things the listings do not place:
//! mdev members go under `sys/devices/virtual/mdev/`, platform members under
//! `sys/devices/platform/`, bridges the model does not hold but paths name
//! (`0000:50:01.2` in sample 020) become plain directories.
//!
//! Below a function, block and net devices sit where their drivers put
//! them (`nvme/nvme0/nvme0n1`, `ata1/host0/target0:0:0/0:0:0:0/block/sda`,
//! `virtioN/block/vda` with N = slot − 1 as on the captured microVM, `net/IF`);
//! the root filesystem is mounted from partition 2 (`sda2` = 8:2,
//! `nvme0n1p2` = 259:2) unless the model names a whole disk (`vda` = 254:0),
//! and `proc/net/route` carries one default route. Unknown subsystem ids are
//! written `0x0000` and unknown NUMA nodes `-1`, as the kernel writes them.
//!
//! Everything written is a regular file, directory or relative symlink whose
//! `../` depth matches its place, so `readlink -f` resolves as on a host.

use super::{Critical, Device, GroupMember, Host};
use crate::address::PciAddress;
use crate::host::listing::disk_of;
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

/// Can `name` become one path component of a tree? Not empty, not `.` or
/// `..`, no `/`, NUL or control character, at most 255 bytes (NAME_MAX).
/// Names from snapshots and listings (drivers, non-PCI group members,
/// block devices, interfaces) are checked with this before any is joined
/// to a path: `../../etc` as a driver name must not write outside the tree.
pub(crate) fn check_name(kind: &str, name: &str) -> Result<(), String> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.len() > 255
        || name.chars().any(|c| c == '/' || c.is_control());
    if bad {
        Err(format!(
            "{kind} name \"{}\" cannot be a file name (empty, `.`, `..`, or holding `/` or a control character)",
            crate::text::shorten(name)
        ))
    } else {
        Ok(())
    }
}

/// Every name of `host` that [`write`] turns into a path, checked.
pub(crate) fn check_names(host: &Host) -> Result<(), String> {
    for d in host.devices.values() {
        if let Some(drv) = &d.driver {
            check_name("driver", drv).map_err(|e| format!("{}: {e}", d.address))?;
        }
        for c in &d.critical {
            match c {
                // `mapper/vg-root`: a relative path, each part a name.
                Critical::RootFilesystem { block: Some(block) } => block
                    .split('/')
                    .chain(disk_of(block).split('/'))
                    .try_for_each(|part| check_name("block device", part))
                    .map_err(|e| format!("{}: {e}", d.address))?,
                Critical::DefaultRoute {
                    interface: Some(interface),
                } => {
                    check_name("interface", interface).map_err(|e| format!("{}: {e}", d.address))?
                }
                _ => {}
            }
        }
    }
    for (g, members) in &host.groups {
        for m in members {
            if let GroupMember::Other(n) = m {
                check_name("group member", n).map_err(|e| format!("IOMMU group {g}: {e}"))?;
            }
        }
    }
    Ok(())
}

/// Write the tree for `host` under `root` (creating `root/sys`, `root/proc`).
/// `root` should be empty or absent. Names are checked first
/// ([`check_names`]); a bad one writes nothing.
pub fn write(host: &Host, root: &Path) -> io::Result<()> {
    check_names(host).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let sys = root.join("sys");
    for d in [
        "bus/pci/devices",
        "bus/pci/drivers",
        "kernel/iommu_groups",
        "class/iommu",
        "class/block",
        "class/net",
        "dev/block",
        "devices",
    ] {
        fs::create_dir_all(sys.join(d))?;
    }
    fs::write(sys.join("bus/pci/drivers_autoprobe"), "1\n")?;
    fs::write(sys.join("bus/pci/drivers_probe"), "")?;

    // Device directories, relative to sys/.
    let mut rel: BTreeMap<PciAddress, String> = BTreeMap::new();
    for d in host.devices.values() {
        rel.insert(d.address, device_rel_path(d));
    }
    for d in host.devices.values() {
        write_device(host, &sys, d, &rel)?;
    }

    // IOMMU groups with every member.
    for (g, members) in &host.groups {
        let gdir = sys.join("kernel/iommu_groups").join(g.to_string());
        fs::create_dir_all(gdir.join("devices"))?;
        fs::write(gdir.join("type"), "DMA\n")?;
        fs::write(gdir.join("reserved_regions"), "")?;
        for m in members {
            let (name, target) = match m {
                GroupMember::Pci(a) => match rel.get(a) {
                    Some(p) => (a.to_string(), p.clone()),
                    None => continue,
                },
                GroupMember::Other(n) => {
                    let p = if is_uuid(n) {
                        format!("devices/virtual/mdev/{n}")
                    } else {
                        format!("devices/platform/{n}")
                    };
                    fs::create_dir_all(sys.join(&p))?;
                    link(
                        &sys,
                        &format!("{p}/iommu_group"),
                        &format!("kernel/iommu_groups/{g}"),
                    )?;
                    (n.clone(), p)
                }
            };
            link(
                &sys,
                &format!("kernel/iommu_groups/{g}/devices/{name}"),
                &target,
            )?;
        }
    }

    write_usb(host, &sys, &rel)?;
    write_critical(host, root, &sys, &rel)?;
    Ok(())
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// `devices/pci0000:00/0000:00:01.0/0000:01:00.0`, from the parents.
fn device_rel_path(d: &Device) -> String {
    let top = d.parents.first().copied().unwrap_or(d.address);
    let mut p = format!("devices/pci{:04x}:{:02x}", top.domain, top.bus);
    for a in d.parents.iter().chain(std::iter::once(&d.address)) {
        p.push('/');
        p.push_str(&a.to_string());
    }
    p
}

/// A relative symlink at `sys/<at>` pointing at `sys/<to>`, with the `../`
/// depth the kernel uses.
fn link(sys: &Path, at: &str, to: &str) -> io::Result<()> {
    let at_path = sys.join(at);
    if let Some(parent) = at_path.parent() {
        fs::create_dir_all(parent)?;
    }
    let depth = at.matches('/').count();
    let target = format!("{}{}", "../".repeat(depth), to);
    let _ = fs::remove_file(&at_path);
    std::os::unix::fs::symlink(target, at_path)
}

fn hex_u16(s: &str) -> u16 {
    super::parse_hex(s) as u16
}

/// 256 bytes of type-0/1 config space with the ids, class and header type.
pub fn config_space(host: &Host, d: &Device) -> Vec<u8> {
    let mut c = vec![0u8; 256];
    c[0..2].copy_from_slice(&d.vendor().to_le_bytes());
    c[2..4].copy_from_slice(&d.device().to_le_bytes());
    let class = d.class_code();
    c[8] = d.revision.as_deref().map(hex_u16).unwrap_or(0) as u8;
    c[9] = (class & 0xff) as u8;
    c[10] = ((class >> 8) & 0xff) as u8;
    c[11] = ((class >> 16) & 0xff) as u8;
    let mut ht = d.header_type.unwrap_or(0) & 0x7f;
    if d.address.function == 0 && host.siblings(&d.address).len() > 1 {
        ht |= 0x80;
    }
    c[0x0e] = ht;
    if ht & 0x7f == 0 {
        if let (Some(sv), Some(sd)) = (&d.subsystem_vendor_id, &d.subsystem_device_id) {
            c[0x2c..0x2e].copy_from_slice(&hex_u16(sv).to_le_bytes());
            c[0x2e..0x30].copy_from_slice(&hex_u16(sd).to_le_bytes());
        }
    } else if ht & 0x7f == 1 {
        // Bus numbers: primary, secondary, subordinate.
        let children: Vec<u8> = host
            .devices
            .values()
            .filter(|x| x.parents.contains(&d.address))
            .map(|x| x.address.bus)
            .collect();
        c[0x18] = d.address.bus;
        if let (Some(lo), Some(hi)) = (children.iter().min(), children.iter().max()) {
            c[0x19] = *lo;
            c[0x1a] = *hi;
        }
    }
    c
}

/// One function's directory: its id attributes, its state files, and its
/// links, as the kernel lays them out (docs/sysfs.md).
fn write_device(
    host: &Host,
    sys: &Path,
    d: &Device,
    rel: &BTreeMap<PciAddress, String>,
) -> io::Result<()> {
    let p = &rel[&d.address];
    let dir = sys.join(p);
    fs::create_dir_all(&dir)?;
    write_ids(&dir, d)?;
    write_state(host, &dir, d)?;
    write_links(sys, p, d, rel)
}

/// `name` holding `v` and a newline, as sysfs prints an attribute.
fn attr(dir: &Path, name: &str, v: &str) -> io::Result<()> {
    fs::write(dir.join(name), format!("{v}\n"))
}

/// The identity attributes: ids, class, revision, subsystem ids, and the
/// `modalias` built from them (the kernel's `pci:v…d…sv…sd…bc…sc…i…`).
fn write_ids(dir: &Path, d: &Device) -> io::Result<()> {
    let w = |f: &str, v: &str| attr(dir, f, v);
    w("vendor", &d.vendor_id)?;
    w("device", &d.device_id)?;
    w("class", &d.class)?;
    if let Some(r) = &d.revision {
        w("revision", r)?;
    }
    w(
        "subsystem_vendor",
        d.subsystem_vendor_id.as_deref().unwrap_or("0x0000"),
    )?;
    w(
        "subsystem_device",
        d.subsystem_device_id.as_deref().unwrap_or("0x0000"),
    )?;
    let class = d.class_code();
    w(
        "modalias",
        &format!(
            "pci:v{:08X}d{:08X}sv{:08X}sd{:08X}bc{:02X}sc{:02X}i{:02X}",
            d.vendor(),
            d.device(),
            d.subsystem_vendor_id.as_deref().map(hex_u16).unwrap_or(0),
            d.subsystem_device_id.as_deref().map(hex_u16).unwrap_or(0),
            class >> 16,
            (class >> 8) & 0xff,
            class & 0xff
        ),
    )
}

/// The state files: `driver_override`, `numa_node`, `enable`, config
/// space, and the files the kernel creates only for some functions
/// (`boot_vga` for VGA, `reset_method`/`reset`, `sriov_*` for PFs).
fn write_state(host: &Host, dir: &Path, d: &Device) -> io::Result<()> {
    let w = |f: &str, v: &str| attr(dir, f, v);
    w(
        "driver_override",
        d.driver_override.as_deref().unwrap_or("(null)"),
    )?;
    w(
        "numa_node",
        &d.numa_node.map(|n| n.to_string()).unwrap_or("-1".into()),
    )?;
    w("enable", if d.driver.is_some() { "1" } else { "0" })?;
    fs::write(dir.join("config"), config_space(host, d))?;
    if let Some(b) = d.boot_vga {
        w("boot_vga", if b { "1" } else { "0" })?;
    }
    if let Some(m) = &d.reset_methods {
        if !m.is_empty() {
            w("reset_method", &m.join(" "))?;
        }
    }
    if d.can_reset() == Some(true) {
        fs::write(dir.join("reset"), "")?;
    }
    if let Some(n) = d.sriov_totalvfs {
        w("sriov_totalvfs", &n.to_string())?;
    }
    if let Some(n) = d.sriov_numvfs {
        w("sriov_numvfs", &n.to_string())?;
    }
    Ok(())
}

/// The links: `subsystem`, the `bus/pci/devices` entry, the bound driver
/// (with its driver directory), `iommu_group`, `physfn` and `virtfnN`.
fn write_links(
    sys: &Path,
    p: &str,
    d: &Device,
    rel: &BTreeMap<PciAddress, String>,
) -> io::Result<()> {
    link(sys, &format!("{p}/subsystem"), "bus/pci")?;
    link(sys, &format!("bus/pci/devices/{}", d.address), p)?;
    if let Some(drv) = &d.driver {
        let ddir = sys.join("bus/pci/drivers").join(drv);
        if !ddir.exists() {
            fs::create_dir_all(&ddir)?;
            for f in ["bind", "unbind", "new_id", "remove_id", "uevent"] {
                fs::write(ddir.join(f), "")?;
            }
        }
        link(
            sys,
            &format!("{p}/driver"),
            &format!("bus/pci/drivers/{drv}"),
        )?;
        link(sys, &format!("bus/pci/drivers/{drv}/{}", d.address), p)?;
    }
    if let Some(g) = d.iommu_group {
        link(
            sys,
            &format!("{p}/iommu_group"),
            &format!("kernel/iommu_groups/{g}"),
        )?;
    }
    if let Some(pf) = d.physfn {
        if let Some(pp) = rel.get(&pf) {
            link(sys, &format!("{p}/physfn"), pp)?;
        }
    }
    for (i, vf) in d.virtfns.iter().enumerate() {
        if let Some(vp) = rel.get(vf) {
            link(sys, &format!("{p}/virtfn{i}"), vp)?;
        }
    }
    Ok(())
}

fn write_usb(host: &Host, sys: &Path, rel: &BTreeMap<PciAddress, String>) -> io::Result<()> {
    if host.usb.is_empty() {
        return Ok(());
    }
    fs::create_dir_all(sys.join("bus/usb/devices"))?;
    for b in &host.usb {
        let base = match b.controller.and_then(|c| rel.get(&c)) {
            Some(p) => p.clone(),
            None => "devices/platform/usb-host".to_string(),
        };
        let hub = format!("{base}/usb{}", b.bus);
        let hd = sys.join(&hub);
        fs::create_dir_all(&hd)?;
        fs::write(hd.join("busnum"), format!("{}\n", b.bus))?;
        fs::write(hd.join("devnum"), "1\n")?;
        fs::write(hd.join("idVendor"), "1d6b\n")?;
        fs::write(hd.join("idProduct"), "0002\n")?;
        link(sys, &format!("bus/usb/devices/usb{}", b.bus), &hub)?;
        for (i, u) in b.devices.iter().enumerate() {
            let name = format!("{}-{}", b.bus, i + 1);
            let p = format!("{hub}/{name}");
            let ud = sys.join(&p);
            fs::create_dir_all(&ud)?;
            fs::write(ud.join("busnum"), format!("{}\n", u.bus))?;
            fs::write(ud.join("devnum"), format!("{}\n", u.device))?;
            fs::write(ud.join("idVendor"), format!("{}\n", u.vendor_id))?;
            fs::write(ud.join("idProduct"), format!("{}\n", u.product_id))?;
            if let Some(n) = &u.name {
                fs::write(ud.join("product"), format!("{n}\n"))?;
            }
            link(sys, &format!("bus/usb/devices/{name}"), &p)?;
        }
    }
    Ok(())
}

/// The block-device path below a PCI function, as its driver lays it out.
fn disk_path(d: &Device, disk: &str) -> String {
    if disk.starts_with("nvme") {
        let ctrl = disk.split('n').take(2).collect::<Vec<_>>().join("n");
        format!("nvme/{ctrl}/{disk}")
    } else if disk.starts_with("vd") {
        format!("virtio{}/block/{disk}", d.address.slot.saturating_sub(1))
    } else {
        format!("ata1/host0/target0:0:0/0:0:0:0/block/{disk}")
    }
}

fn write_critical(
    host: &Host,
    root: &Path,
    sys: &Path,
    rel: &BTreeMap<PciAddress, String>,
) -> io::Result<()> {
    let proc_self = root.join("proc/self");
    fs::create_dir_all(&proc_self)?;
    fs::create_dir_all(root.join("proc/net"))?;
    let mut mountinfo = String::new();
    let mut route = String::from(
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n",
    );
    let mut done_root = false;
    for d in host.devices.values() {
        for c in &d.critical {
            match c {
                Critical::RootFilesystem { block } if !done_root => {
                    done_root = true;
                    // A stated controller has no block name; the tree needs one.
                    let block = block.clone().unwrap_or_else(|| {
                        if d.class16() == 0x0108 {
                            "nvme0n1p2"
                        } else {
                            "sda2"
                        }
                        .to_string()
                    });
                    let block = &block;
                    let disk = disk_of(block);
                    let (major, minor) = if disk.starts_with("nvme") {
                        (259u32, 0u32)
                    } else if disk.starts_with("vd") {
                        (254, 0)
                    } else {
                        (8, 0)
                    };
                    let dpath = format!("{}/{}", rel[&d.address], disk_path(d, &disk));
                    fs::create_dir_all(sys.join(&dpath))?;
                    fs::write(sys.join(&dpath).join("dev"), format!("{major}:{minor}\n"))?;
                    link(sys, &format!("class/block/{disk}"), &dpath)?;
                    link(sys, &format!("dev/block/{major}:{minor}"), &dpath)?;
                    let (mm, _) = if block != &disk {
                        let ppath = format!("{dpath}/{block}");
                        let pd = sys.join(&ppath);
                        fs::create_dir_all(&pd)?;
                        fs::write(pd.join("partition"), "2\n")?;
                        let pminor = if major == 259 { 2 } else { minor + 2 };
                        fs::write(pd.join("dev"), format!("{major}:{pminor}\n"))?;
                        link(sys, &format!("class/block/{block}"), &ppath)?;
                        link(sys, &format!("dev/block/{major}:{pminor}"), &ppath)?;
                        (format!("{major}:{pminor}"), ())
                    } else {
                        (format!("{major}:{minor}"), ())
                    };
                    mountinfo.push_str(&format!(
                        "22 1 {mm} / / rw,relatime shared:1 - ext4 /dev/{block} rw\n"
                    ));
                }
                Critical::DefaultRoute { interface } => {
                    let interface = interface
                        .clone()
                        .unwrap_or_else(|| crate::host::listing::predictable_name(d));
                    let mid = if d.vendor() == 0x1af4 {
                        format!("virtio{}/", d.address.slot.saturating_sub(1))
                    } else {
                        String::new()
                    };
                    let npath = format!("{}/{mid}net/{interface}", rel[&d.address]);
                    fs::create_dir_all(sys.join(&npath))?;
                    link(sys, &format!("class/net/{interface}"), &npath)?;
                    route.push_str(&format!(
                        "{interface}\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
                    ));
                }
                _ => {}
            }
        }
    }
    // Unknown facts stay unknown in the tree: no mountinfo, no route table.
    // Known with no PCI function behind them: a root on tmpfs, no default route.
    if host.facts.root_filesystem.is_known() {
        if !done_root {
            mountinfo.push_str("22 1 0:20 / / rw,relatime shared:1 - tmpfs rootfs rw\n");
        }
        fs::write(proc_self.join("mountinfo"), mountinfo)?;
    }
    if host.facts.default_route.is_known() {
        fs::write(root.join("proc/net/route"), route)?;
    }
    Ok(())
}
