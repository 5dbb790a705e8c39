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
//!
//! **Beneath the root.** Every path (writes, the `driver` link, existence
//! checks) is opened with `openat2(2)` relative to the opened root
//! directory: under `--root DIR` with `RESOLVE_BENEATH`, so a symlink (or
//! `..`) that leads outside DIR fails with `EXDEV` and is refused with its
//! path; an absolute link such as `driver -> /sys/bus/pci/drivers/nvme` in
//! a copied tree is refused the same way instead of unbinding a real
//! device. On `/` with `RESOLVE_IN_ROOT` (identical to a normal lookup).
//! `RESOLVE_NO_MAGICLINKS` everywhere: `/proc/self/fd/N` links never count.
//! A write also needs the opened file to be a regular file (`O_NONBLOCK`,
//! then `fstat`): a FIFO planted as an attribute cannot hang us. openat2 is
//! Linux 5.6; without it, acting under `--root` is refused.

use super::{Backend, BackendError, Op};
use crate::address::PciAddress;
use rustix::fd::OwnedFd;
use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::fs;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

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

    /// Open `sys/<rel>` beneath the root (see the module docs).
    fn open_beneath(&self, rel: &str, flags: OFlags) -> Result<OwnedFd, Errno> {
        let rootfd = rustix::fs::open(
            &self.root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let resolve = if self.root == Path::new("/") {
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS
        } else {
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS
        };
        let rel = format!("sys/{rel}");
        loop {
            match rustix::fs::openat2(
                &rootfd,
                &rel,
                flags | OFlags::CLOEXEC,
                Mode::empty(),
                resolve,
            ) {
                // openat2 asks to retry when a rename raced the lookup.
                Err(Errno::AGAIN) => continue,
                r => return r,
            }
        }
    }

    /// Does `sys/<rel>` exist beneath the root (links followed in-root)?
    /// A path that leads outside is an error, not "missing".
    fn exists(&self, rel: &str) -> Result<bool, BackendError> {
        match self.open_beneath(rel, OFlags::PATH) {
            Ok(_) => Ok(true),
            Err(Errno::XDEV) | Err(Errno::LOOP) => Err(self.escape_error(rel)),
            Err(_) => Ok(false),
        }
    }

    fn escape_error(&self, rel: &str) -> BackendError {
        BackendError::new(format!(
            "{} leads outside {} through a symlink; refusing to act outside the root",
            crate::text::escape(&self.sys(rel).display().to_string()),
            self.root.display()
        ))
        .help("a tree for --root must hold only links that stay inside it (relative links, as the kernel writes them)")
    }

    /// The bound driver's name, from the `driver` link, resolved beneath
    /// the root. `Err` when the link leads outside it.
    fn driver(&self, a: &PciAddress) -> Result<Option<String>, BackendError> {
        let rel = format!("{}/driver", Self::dev(a));
        match self.open_beneath(&rel, OFlags::PATH | OFlags::DIRECTORY) {
            Ok(_) => {}
            Err(Errno::XDEV) | Err(Errno::LOOP) => return Err(self.escape_error(&rel)),
            Err(_) => return Ok(None),
        }
        let name =
            fs::read_link(self.sys(&rel))
                .ok()
                .and_then(|t| match t.components().next_back() {
                    Some(Component::Normal(n)) => Some(n.to_string_lossy().into_owned()),
                    _ => None,
                });
        Ok(name)
    }

    fn write(&mut self, rel: &str, value: &str) -> Result<(), BackendError> {
        // Unit tests of this crate never write to the real /sys.
        if cfg!(test) && self.root == Path::new("/") {
            return Err(BackendError::new("unit tests never write to the real /sys"));
        }
        let p = self.sys(rel);
        // Never create: a missing attribute means the kernel lacks it.
        let r = self
            .open_beneath(
                rel,
                OFlags::WRONLY | OFlags::TRUNC | OFlags::NONBLOCK | OFlags::NOCTTY,
            )
            .map_err(|e| std::io::Error::from_raw_os_error(e.raw_os_error()))
            .and_then(|fd| {
                let st = rustix::fs::fstat(&fd)
                    .map_err(|e| std::io::Error::from_raw_os_error(e.raw_os_error()))?;
                if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                    return Err(std::io::Error::other(
                        "not a regular file (sysfs attributes are)",
                    ));
                }
                fs::File::from(fd).write_all(value.as_bytes())
            });
        self.writes.push((format!("sys/{rel}"), value.to_string()));
        r.map_err(|e| {
            if matches!(e.raw_os_error(), Some(18) | Some(40)) {
                return self.escape_error(rel);
            }
            let shown = value.escape_debug();
            let mut err = BackendError::new(format!(
                "cannot write \"{shown}\" to {}: {e}",
                crate::text::escape(&p.display().to_string())
            ));
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                err = err.help("acting on devices needs root");
            } else if e.raw_os_error() == Some(25) && rel.ends_with("/reset") {
                // ENOTTY: the kernel's only method is a bus reset and another
                // function shares the bus (e2e-vm.md gotcha 4).
                err = err.help("the kernel refuses to reset one function while another shares its bus; reset the whole slot with its group, or use a device with FLR");
            } else if e.raw_os_error() == Some(38) {
                err = err.help("acting under --root needs openat2 (Linux 5.6 or later)");
            }
            err
        })
    }

    fn device_present(&self, a: &PciAddress) -> Result<(), BackendError> {
        let d = self.sys(&Self::dev(a));
        if self.exists(&Self::dev(a))? {
            Ok(())
        } else {
            Err(BackendError::new(format!(
                "{a} is not on the PCI bus ({} does not exist)",
                d.display()
            )))
        }
    }

    fn unbind_if_bound(&mut self, a: &PciAddress) -> Result<(), BackendError> {
        if self.driver(a)?.is_some() {
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
        if self
            .open_beneath("bus/pci/drivers/vfio-pci", OFlags::PATH | OFlags::DIRECTORY)
            .is_err()
        {
            return Err(BackendError::new(
                "the vfio-pci driver is not loaded (no /sys/bus/pci/drivers/vfio-pci)",
            )
            .help("load it with `modprobe vfio-pci`"));
        }
        // Resolve the driver link before the first write: a link that
        // leads outside the root refuses the step with nothing written.
        self.driver(a)?;
        let dev = Self::dev(a);
        self.write(&format!("{dev}/driver_override"), "vfio-pci")?;
        self.unbind_if_bound(a)?;
        self.write("bus/pci/drivers_probe", &a.to_string())?;
        if self.verify {
            match self.driver(a)? {
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
        self.driver(a)?;
        let dev = Self::dev(a);
        self.write(&format!("{dev}/driver_override"), "\n")?;
        self.unbind_if_bound(a)?;
        self.write("bus/pci/drivers_probe", &a.to_string())
    }

    fn reset(&mut self, a: &PciAddress) -> Result<(), BackendError> {
        self.device_present(a)?;
        let rel = format!("{}/reset", Self::dev(a));
        if !self.exists(&rel)? {
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
        fs::create_dir_all(t.path().join("sys/bus/pci/devices/0000:01:00.0")).unwrap();
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
