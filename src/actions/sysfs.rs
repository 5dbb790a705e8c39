//! The sysfs backend: what libvirt's `virPCIDeviceDetach`/`Reattach` do
//! (docs/libvirt.md §3), as plain file writes under a root directory.
//!
//! WHY: without libvirt (remote-less hosts, the e2e VM, the default build)
//! the same actions must still work, and under `--root DIR` they must act on
//! a fake tree only, so tests check the exact writes in a tempdir. No shell
//! is ever run; nothing is modprobed (a missing vfio-pci driver is an error
//! with the command to run).
//!
//! Detach: `vfio-pci` > driver_override, ADDR > driver/unbind (if bound),
//! ADDR > /sys/bus/pci/drivers_probe. Reattach: `\n` > driver_override
//! (clears it), ADDR > driver/unbind (if bound), ADDR > drivers_probe.
//! Reset: `1` > reset.
//!
//! A fake tree has no kernel behind it, so the result of a probe is only
//! checked when acting on `/` ([`SysfsBackend::verify`]).

use super::{Backend, BackendError, Op};
use crate::address::PciAddress;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes sysfs files under `root` (`/` on a real host).
pub struct SysfsBackend {
    root: PathBuf,
    /// After a detach probe, check that the driver link now names vfio-pci.
    pub verify: bool,
    /// Every write done, in order: (path under root, value).
    writes: Vec<(String, String)>,
}

impl SysfsBackend {
    pub fn new(root: &Path) -> SysfsBackend {
        SysfsBackend {
            root: root.to_path_buf(),
            verify: root == Path::new("/"),
            writes: Vec::new(),
        }
    }

    /// The writes done so far: `(path relative to the root, value)`.
    pub fn writes(&self) -> &[(String, String)] {
        &self.writes
    }

    fn sys(&self, rel: &str) -> PathBuf {
        self.root.join("sys").join(rel)
    }

    fn dev(a: &PciAddress) -> String {
        format!("bus/pci/devices/{a}")
    }

    /// The bound driver's name, read from the `driver` link now.
    fn driver(&self, a: &PciAddress) -> Option<String> {
        fs::canonicalize(self.sys(&format!("{}/driver", Self::dev(a))))
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
    }

    fn write(&mut self, rel: &str, value: &str) -> Result<(), BackendError> {
        // Unit tests of this crate never write to the real /sys.
        if cfg!(test) && self.root == Path::new("/") {
            return Err(BackendError::new("unit tests never write to the real /sys"));
        }
        let p = self.sys(rel);
        // Never create: a missing attribute means the kernel lacks it.
        let r = fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&p)
            .and_then(|mut f| f.write_all(value.as_bytes()));
        self.writes.push((format!("sys/{rel}"), value.to_string()));
        r.map_err(|e| {
            let shown = value.escape_debug();
            let mut err =
                BackendError::new(format!("cannot write \"{shown}\" to {}: {e}", p.display()));
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                err = err.help("acting on devices needs root");
            } else if e.raw_os_error() == Some(25) && rel.ends_with("/reset") {
                // ENOTTY: the kernel's only method is a bus reset and another
                // function shares the bus (e2e-vm.md gotcha 4).
                err = err.help("the kernel refuses to reset one function while another shares its bus; reset the whole slot with its group, or use a device with FLR");
            }
            err
        })
    }

    fn device_present(&self, a: &PciAddress) -> Result<(), BackendError> {
        let d = self.sys(&Self::dev(a));
        if d.exists() {
            Ok(())
        } else {
            Err(BackendError::new(format!(
                "{a} is not on the PCI bus ({} does not exist)",
                d.display()
            )))
        }
    }

    fn unbind_if_bound(&mut self, a: &PciAddress) -> Result<(), BackendError> {
        if self.driver(a).is_some() {
            self.write(&format!("{}/driver/unbind", Self::dev(a)), &a.to_string())?;
        }
        Ok(())
    }
}

impl Backend for SysfsBackend {
    fn name(&self) -> String {
        format!("sysfs ({})", self.root.display())
    }

    fn describe(&self, op: &Op, a: &PciAddress, driver: Option<&str>) -> Vec<String> {
        let root = self.root.join("sys");
        let r = root.display();
        let dev = format!("{r}/bus/pci/devices/{a}");
        let unbind = match driver {
            Some(d) => format!("write {a} > {dev}/driver/unbind  (bound to {d})"),
            None => "(no driver bound: nothing to unbind)".to_string(),
        };
        match op {
            Op::Detach { .. } => vec![
                format!("write vfio-pci > {dev}/driver_override"),
                unbind,
                format!("write {a} > {r}/bus/pci/drivers_probe"),
            ],
            Op::Reattach => vec![
                format!("write \\n > {dev}/driver_override"),
                unbind,
                format!("write {a} > {r}/bus/pci/drivers_probe"),
            ],
            Op::Reset => vec![format!("write 1 > {dev}/reset")],
        }
    }

    fn detach(&mut self, a: &PciAddress, driver: &str) -> Result<(), BackendError> {
        if driver != "vfio" && driver != "vfio-pci" {
            return Err(BackendError::new(format!(
                "the sysfs backend detaches to vfio-pci only, not `{driver}`"
            ))
            .help("use --driver vfio"));
        }
        self.device_present(a)?;
        if !self.sys("bus/pci/drivers/vfio-pci").is_dir() {
            return Err(BackendError::new(
                "the vfio-pci driver is not loaded (no /sys/bus/pci/drivers/vfio-pci)",
            )
            .help("load it with `modprobe vfio-pci`"));
        }
        let dev = Self::dev(a);
        self.write(&format!("{dev}/driver_override"), "vfio-pci")?;
        self.unbind_if_bound(a)?;
        self.write("bus/pci/drivers_probe", &a.to_string())?;
        if self.verify {
            match self.driver(a) {
                Some(d) if d == "vfio-pci" => {}
                other => {
                    return Err(BackendError::new(format!(
                        "{a} was probed but is bound to {} instead of vfio-pci",
                        other.unwrap_or_else(|| "no driver".into())
                    ))
                    .help("the kernel log (`dmesg`) says why vfio-pci did not take it"))
                }
            }
        }
        Ok(())
    }

    fn reattach(&mut self, a: &PciAddress) -> Result<(), BackendError> {
        self.device_present(a)?;
        let dev = Self::dev(a);
        self.write(&format!("{dev}/driver_override"), "\n")?;
        self.unbind_if_bound(a)?;
        self.write("bus/pci/drivers_probe", &a.to_string())
    }

    fn reset(&mut self, a: &PciAddress) -> Result<(), BackendError> {
        self.device_present(a)?;
        let rel = format!("{}/reset", Self::dev(a));
        if !self.sys(&rel).exists() {
            return Err(BackendError::new(format!(
                "{a} has no reset method (no `reset` file): no FLR, PM or bus reset"
            )));
        }
        self.write(&rel, "1")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_tests_cannot_write_the_real_sys() {
        let mut b = SysfsBackend::new(Path::new("/"));
        assert!(b.verify, "on / the probe result is checked");
        let e = b
            .write("bus/pci/drivers_probe", "0000:00:00.0")
            .unwrap_err();
        assert!(e.message.contains("never write"));
    }

    #[test]
    fn missing_attributes_are_not_created() {
        let t = tempfile::tempdir().unwrap();
        let mut b = SysfsBackend::new(t.path());
        let a = PciAddress::new(0, 1, 0, 0);
        let e = b.reattach(&a).unwrap_err();
        assert!(e.message.contains("not on the PCI bus"), "{e}");
        std::fs::create_dir_all(t.path().join("sys/bus/pci/devices/0000:01:00.0")).unwrap();
        let e = b.reattach(&a).unwrap_err();
        assert!(e.message.contains("driver_override"), "{e}");
        assert!(!t
            .path()
            .join("sys/bus/pci/devices/0000:01:00.0/driver_override")
            .exists());
        let e = b.reset(&a).unwrap_err();
        assert!(e.message.contains("no reset method"), "{e}");
        let e = b.detach(&a, "kvm").unwrap_err();
        assert!(e.help.unwrap().contains("--driver vfio"));
    }
}
