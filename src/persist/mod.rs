//! Boot-time binding to vfio-pci: `detach --persist` and `reattach --persist`.
//!
//! WHY: some host drivers cannot let go of a device cleanly once they have it
//! (GPU drivers hang or crash on unbind, see [`crate::doctor::known`]), so the
//! device must come up on vfio-pci at boot, before its driver claims it. The
//! usual recipe — `vfio-pci.ids=VVVV:DDDD` — catches *every* card with those
//! ids; we bind **per address**, and the whole IOMMU group as
//! [`crate::plan`] says, refused for host-critical devices exactly like
//! `detach` (the refusals come from the same [`crate::actions::detach_plan`]).
//!
//! The mechanism, one file each, every one written by us alone, atomically
//! ([`crate::fsutil::write_atomic`]), and listed in a manifest so `reattach
//! --persist` removes exactly what was written:
//!
//! 1. `/etc/modprobe.d/virt-pci-vfio.conf`:
//!    - `softdep HOSTMODULE pre: vfio-pci` for each host driver module of the
//!      functions (modprobe.d(5): the soft dependency is loaded first), and
//!    - `install vfio-pci ...`: when vfio-pci is loaded, first write
//!      `vfio-pci` to `driver_override` of each persisted function, then
//!      load vfio-pci itself (`modprobe --ignore-install`). This is the Arch
//!      wiki's per-address recipe ("PCI passthrough via OVMF", *Using
//!      identical guest and host GPUs*, `vfio-pci-override.sh`). Because of
//!      the softdep, the overrides are in place before the host driver's
//!      module is loaded, whichever device's uevent loads it: a driver load
//!      probes every unbound device it matches, so an override written only
//!      by that device's own udev event could lose the race against a twin
//!      card's event. The kernel skips a driver whose name differs from
//!      `driver_override` (drivers/pci/pci-driver.c, `pci_match_device`).
//! 2. `/etc/udev/rules.d/05-virt-pci-vfio.rules`: on each function's `add`
//!    event, `ATTR{driver_override}="vfio-pci"` and a `drivers_probe` write
//!    (for a device that appears later, or a vfio-pci built into the kernel,
//!    where the install hook never runs). `05-` sorts before udev's
//!    `80-drivers.rules`, which loads driver modules by modalias.
//! 3. `/etc/modules-load.d/virt-pci-vfio.conf`: load vfio-pci early
//!    (modules-load.d(5)), which runs the install hook at boot.
//! 4. The initramfs, where host drivers may be loaded before the root
//!    filesystem is mounted: initramfs-tools includes `/etc/modprobe.d` and
//!    `/etc/udev/rules.d` only as its hooks decide, so for initramfs-tools a
//!    hook `/etc/initramfs-tools/hooks/virt-pci-vfio` adds the vfio modules,
//!    our modprobe.d file and our udev rule (initramfs-tools(7), HOOK
//!    SCRIPTS, `manual_add_modules`, `copy_file`); for dracut a
//!    `/etc/dracut.conf.d/virt-pci-vfio.conf` with `force_drivers+=` and
//!    `install_items+=` (dracut.conf(5)). Either needs a rebuild
//!    (`update-initramfs -u`, `dracut -f`), run only with `--update-initramfs`.
//!
//! driverctl (Debian `driverctl` 0.111) persists its own overrides as
//! `/etc/driverctl.d/BUS-ADDRESS` holding the driver name and re-applies them
//! from udev; an override there for one of our functions to another driver
//! would fight ours, so it is refused with the `driverctl unset-override`
//! that removes it. (We do not write driverctl files: one mechanism, ours,
//! whose files the manifest owns.)
//!
//! Nothing here touches a device: the binding takes effect at the next boot
//! (`virt-pci detach` does it now). `doctor` reports whether it took effect.
//! All paths are under a root directory (`--root` in tests; `/` on a host).

//!
//! The files: `plan.rs` (what changes, from the manifest and the action
//! plan, one rule a step), `files.rs` (the content of each file, per
//! target: udev, modprobe.d, modules-load.d, initramfs-tools, dracut),
//! `module.rs` (which kernel module drives a function, for the softdep),
//! `apply.rs` (all-or-nothing writes, ownership checks, undo on failure),
//! `manifest.rs` (what we wrote, read back by `reattach --persist` and
//! `doctor`).

mod apply;
mod files;
mod manifest;
mod module;
mod plan;

pub use apply::apply;
pub use files::Initramfs;
pub(crate) use manifest::{binding_states, read_manifest, Entry, Manifest, Written};
pub use plan::{plan, FileChange, PersistPlan};

use std::path::{Path, PathBuf};

/// The manifest: what virt-pci persisted and the exact files it wrote.
pub(crate) const MANIFEST: &str = "/var/lib/virt-pci/persist.json";
pub(crate) const UDEV_RULES: &str = "/etc/udev/rules.d/05-virt-pci-vfio.rules";
pub(crate) const MODPROBE_CONF: &str = "/etc/modprobe.d/virt-pci-vfio.conf";
pub(crate) const MODULES_LOAD: &str = "/etc/modules-load.d/virt-pci-vfio.conf";
pub(crate) const INITRAMFS_TOOLS_HOOK: &str = "/etc/initramfs-tools/hooks/virt-pci-vfio";
pub(crate) const DRACUT_CONF: &str = "/etc/dracut.conf.d/virt-pci-vfio.conf";

/// The first lines of every file we write.
const HEADER: &str = "# Written by virt-pci (detach --persist); `virt-pci reattach --persist` removes it.\n# Do not edit: virt-pci refuses to remove or rewrite a file that changed.\n";

/// A problem with the files under the root: message, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistError {
    pub message: String,
    /// `file:line:col` when a file's content is at fault.
    pub location: Option<String>,
    pub help: Vec<String>,
}

impl PersistError {
    pub(crate) fn new(message: impl Into<String>) -> PersistError {
        PersistError {
            message: message.into(),
            location: None,
            help: Vec::new(),
        }
    }
    pub(crate) fn help(mut self, h: impl Into<String>) -> PersistError {
        self.help.push(h.into());
        self
    }
}

impl std::fmt::Display for PersistError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// `abs` (a path on the target system) under the root.
fn under(root: &Path, abs: &str) -> PathBuf {
    root.join(abs.trim_start_matches('/'))
}
