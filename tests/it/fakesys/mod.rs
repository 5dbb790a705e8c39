//! Test helpers: a fake sysfs tree in a tempdir (laid out as the kernel lays
//! out the real one, docs/sysfs.md) and a guarded runner for the
//! binary.
//!
//! The guard (in [`crate::run`]): [`vp`] panics unless the arguments name a
//! fake host (`--root`, `--snapshot`) or libvirt's test driver
//! (`-c test:///...`), so no test can ever act on the real devices of the
//! machine it runs on.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// A relative link at `at` to `target` (both in the tree), as the kernel
/// writes every sysfs link: the tree stays valid wherever it is, and the
/// sysfs backend, which resolves beneath the root, accepts it.
pub fn rel_symlink(target: &Path, at: &Path) {
    let canon = |p: &Path| {
        let parent = fs::canonicalize(p.parent().expect("parent")).expect("canonical");
        parent.join(p.file_name().expect("name"))
    };
    let (t, a) = (canon(target), canon(at));
    let from: Vec<_> = a.parent().expect("parent").components().collect();
    let to: Vec<_> = t.components().collect();
    let common = from.iter().zip(&to).take_while(|(x, y)| x == y).count();
    let mut rel = PathBuf::new();
    for _ in common..from.len() {
        rel.push("..");
    }
    for c in &to[common..] {
        rel.push(c.as_os_str());
    }
    symlink(&rel, at).expect("link");
}

pub struct FakeSys {
    pub dir: TempDir,
}

pub struct Dev<'a> {
    pub addr: &'a str,
    /// Parent bridge address (None: on the root bus).
    pub parent: Option<&'a str>,
    pub vendor: &'a str,
    pub device: &'a str,
    pub class: &'a str,
    pub driver: Option<&'a str>,
    pub group: Option<u32>,
    /// reset_method contents ("" = none; also no `reset` file then).
    pub reset_method: &'a str,
}

impl FakeSys {
    pub fn new() -> FakeSys {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = FakeSys { dir };
        for d in [
            "sys/bus/pci/devices",
            "sys/bus/pci/drivers",
            "sys/kernel/iommu_groups",
            "sys/devices/pci0000:00",
            "dev/vfio",
            "proc",
        ] {
            fs::create_dir_all(f.path().join(d)).expect("mkdir");
        }
        // Measured host-critical facts: the root on tmpfs (no PCI function
        // behind it), no default route; `boot_vga` per VGA function in `add`.
        fs::create_dir_all(f.path().join("proc/self")).expect("mkdir");
        fs::create_dir_all(f.path().join("proc/net")).expect("mkdir");
        fs::write(
            f.path().join("proc/self/mountinfo"),
            "22 1 0:20 / / rw,relatime shared:1 - tmpfs rootfs rw\n",
        )
        .expect("write");
        fs::write(
            f.path().join("proc/net/route"),
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n",
        )
        .expect("write");
        fs::write(f.path().join("sys/bus/pci/drivers_probe"), "").expect("write");
        fs::write(f.path().join("dev/vfio/vfio"), "").expect("write");
        f.driver("vfio-pci");
        f
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn root(&self) -> String {
        self.path().to_string_lossy().into_owned()
    }

    pub fn driver(&self, name: &str) -> PathBuf {
        let d = self.path().join("sys/bus/pci/drivers").join(name);
        fs::create_dir_all(&d).expect("mkdir");
        for f in ["bind", "unbind", "new_id"] {
            if !d.join(f).exists() {
                fs::write(d.join(f), "").expect("write");
            }
        }
        d
    }

    fn dev_dir(&self, addr: &str, parent: Option<&str>) -> PathBuf {
        match parent {
            Some(p) => fs::canonicalize(self.path().join("sys/bus/pci/devices").join(p))
                .expect("parent first")
                .join(addr),
            None => self.path().join("sys/devices/pci0000:00").join(addr),
        }
    }

    pub fn add(&self, d: Dev<'_>) {
        let dir = self.dev_dir(d.addr, d.parent);
        fs::create_dir_all(&dir).expect("mkdir");
        fs::write(dir.join("vendor"), format!("{}\n", d.vendor)).expect("w");
        fs::write(dir.join("device"), format!("{}\n", d.device)).expect("w");
        fs::write(dir.join("class"), format!("{}\n", d.class)).expect("w");
        fs::write(dir.join("driver_override"), "(null)\n").expect("w");
        if d.class.starts_with("0x0300") {
            fs::write(dir.join("boot_vga"), "0\n").expect("w");
        }
        fs::write(dir.join("reset_method"), format!("{}\n", d.reset_method)).expect("w");
        if !d.reset_method.is_empty() {
            fs::write(dir.join("reset"), "").expect("w");
        }
        if let Some(drv) = d.driver {
            let dd = self.driver(drv);
            rel_symlink(&dd, &dir.join("driver"));
        }
        if let Some(g) = d.group {
            let gd = self
                .path()
                .join(format!("sys/kernel/iommu_groups/{g}/devices"));
            fs::create_dir_all(&gd).expect("mkdir");
            rel_symlink(&dir, &gd.join(d.addr));
            rel_symlink(gd.parent().expect("group dir"), &dir.join("iommu_group"));
        }
        rel_symlink(&dir, &self.path().join("sys/bus/pci/devices").join(d.addr));
    }

    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }
}

/// A host like a desktop with a GPU passed through: root port 00:01.0 and
/// GPU + HDMI audio in group 1 (nouveau / snd_hda_intel), a USB controller
/// alone in group 2 already on vfio-pci, the chipset LPC bridge and SMBus
/// together in group 3 (host-critical), an NVMe behind root port 00:1c.0
/// in group 4 with only a bus reset and a second function on its bus.
pub fn desktop() -> FakeSys {
    let f = FakeSys::new();
    let dev = |addr, parent, class, driver, group, reset_method| Dev {
        addr,
        parent,
        vendor: "0x8086",
        device: "0x1234",
        class,
        driver,
        group,
        reset_method,
    };
    f.add(dev("0000:00:00.0", None, "0x060000", None, Some(0), ""));
    f.add(dev(
        "0000:00:01.0",
        None,
        "0x060400",
        Some("pcieport"),
        Some(1),
        "",
    ));
    f.add(Dev {
        vendor: "0x10de",
        device: "0x1c82",
        ..dev(
            "0000:01:00.0",
            Some("0000:00:01.0"),
            "0x030000",
            Some("nouveau"),
            Some(1),
            "flr bus",
        )
    });
    f.add(Dev {
        vendor: "0x10de",
        device: "0x0fb9",
        ..dev(
            "0000:01:00.1",
            Some("0000:00:01.0"),
            "0x040300",
            Some("snd_hda_intel"),
            Some(1),
            "flr",
        )
    });
    f.add(dev(
        "0000:00:14.0",
        None,
        "0x0c0330",
        Some("vfio-pci"),
        Some(2),
        "flr",
    ));
    f.add(dev("0000:00:1f.0", None, "0x060100", None, Some(3), ""));
    f.add(dev(
        "0000:00:1f.4",
        None,
        "0x0c0500",
        Some("i801_smbus"),
        Some(3),
        "",
    ));
    f.add(dev(
        "0000:00:1c.0",
        None,
        "0x060400",
        Some("pcieport"),
        Some(4),
        "",
    ));
    f.add(dev(
        "0000:02:00.0",
        Some("0000:00:1c.0"),
        "0x010802",
        Some("nvme"),
        Some(4),
        "bus",
    ));
    f.add(dev(
        "0000:02:00.1",
        Some("0000:00:1c.0"),
        "0x020000",
        Some("igb"),
        Some(4),
        "bus",
    ));
    f
}

/// The binary with these arguments, through the guarded runner
/// ([`crate::run`]: no run without a fake host or the test driver).
pub fn vp(args: &[&str]) -> crate::run::Vp {
    let mut c = crate::run::vp();
    c.args(args);
    c
}
