//! The content of each file `detach --persist` writes, one function per
//! target (see the module doc of [`super`] for why each exists): the udev
//! rule, the modprobe.d softdeps and install hook, the modules-load.d
//! entry, and the initramfs-tools hook or dracut configuration.
//!
//! WHY rendered as whole strings: the manifest stores each file's exact
//! content, and a file is rewritten only when its content changes.

use super::{
    under, Entry, DRACUT_CONF, HEADER, INITRAMFS_TOOLS_HOOK, MODPROBE_CONF, MODULES_LOAD,
    UDEV_RULES,
};
use serde::Serialize;
use std::path::Path;

/// Which initramfs generator the system under the root uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Initramfs {
    InitramfsTools,
    Dracut,
    /// Neither found: nothing to add (the host driver may still be in an
    /// initramfs we do not know how to extend; the plan says so).
    Unknown,
}

impl Initramfs {
    pub(super) fn detect(root: &Path) -> Initramfs {
        if under(root, "/etc/initramfs-tools").is_dir() {
            Initramfs::InitramfsTools
        } else if under(root, "/etc/dracut.conf.d").is_dir() {
            Initramfs::Dracut
        } else {
            Initramfs::Unknown
        }
    }
    /// The rebuild command, as the user would type it.
    pub(crate) fn rebuild_command(self) -> Option<&'static str> {
        match self {
            Initramfs::InitramfsTools => Some("update-initramfs -u"),
            Initramfs::Dracut => Some("dracut -f"),
            Initramfs::Unknown => None,
        }
    }
}

fn render_udev(entries: &[Entry]) -> String {
    let mut s = String::from(HEADER);
    s.push_str("# Each function comes up with driver_override=vfio-pci; drivers_probe then lets\n# vfio-pci (when loaded) bind it. Per address, never per vendor:device id.\n");
    for e in entries {
        s.push_str(&format!(
            "ACTION==\"add\", SUBSYSTEM==\"pci\", KERNEL==\"{a}\", ATTR{{driver_override}}=\"vfio-pci\", RUN+=\"/bin/sh -c 'echo {a} > /sys/bus/pci/drivers_probe'\"\n",
            a = e.address
        ));
    }
    s
}

fn render_modprobe(entries: &[Entry]) -> String {
    let mut s = String::from(HEADER);
    let mut mods: Vec<&str> = entries.iter().filter_map(|e| e.module.as_deref()).collect();
    mods.sort();
    mods.dedup();
    s.push_str("# vfio-pci loads before each host driver below; loading it first sets driver_override\n# of the persisted functions, so the host driver skips them.\n");
    for m in mods {
        s.push_str(&format!("softdep {m} pre: vfio-pci\n"));
    }
    let list: Vec<String> = entries.iter().map(|e| e.address.to_string()).collect();
    s.push_str(&format!(
        "install vfio-pci for d in {}; do [ -e /sys/bus/pci/devices/$d/driver_override ] && echo vfio-pci > /sys/bus/pci/devices/$d/driver_override; done; /sbin/modprobe --ignore-install vfio-pci $CMDLINE_OPTS; for d in {}; do echo $d > /sys/bus/pci/drivers_probe; done 2>/dev/null; true\n",
        list.join(" "),
        list.join(" ")
    ));
    s
}

fn render_modules_load() -> String {
    format!("{HEADER}vfio-pci\n")
}

fn render_initramfs_tools_hook() -> String {
    format!(
        "#!/bin/sh\n{}# initramfs-tools hook (initramfs-tools(7)): the vfio modules, virt-pci's\n# modprobe.d file and udev rule go into the initramfs, so a host driver loaded there\n# also finds the functions already claimed for vfio-pci.\nPREREQ=\"\"\nprereqs() {{ echo \"$PREREQ\"; }}\ncase \"$1\" in prereqs) prereqs; exit 0 ;; esac\n. /usr/share/initramfs-tools/hook-functions\nmanual_add_modules vfio vfio_iommu_type1 vfio_pci\ncopy_file config {MODPROBE_CONF} {MODPROBE_CONF}\ncopy_file config {UDEV_RULES} {UDEV_RULES}\nexit 0\n",
        HEADER
    )
}

fn render_dracut() -> String {
    format!(
        "{HEADER}force_drivers+=\" vfio vfio_iommu_type1 vfio_pci \"\ninstall_items+=\" {MODPROBE_CONF} {UDEV_RULES} \"\n"
    )
}

/// Every file for a set of functions (empty set: no files).
pub(super) fn render_all(
    entries: &[Entry],
    initramfs: Initramfs,
) -> Vec<(&'static str, u32, String)> {
    if entries.is_empty() {
        return Vec::new();
    }
    let mut v = vec![
        (UDEV_RULES, 0o644, render_udev(entries)),
        (MODPROBE_CONF, 0o644, render_modprobe(entries)),
        (MODULES_LOAD, 0o644, render_modules_load()),
    ];
    match initramfs {
        Initramfs::InitramfsTools => {
            v.push((INITRAMFS_TOOLS_HOOK, 0o755, render_initramfs_tools_hook()))
        }
        Initramfs::Dracut => v.push((DRACUT_CONF, 0o644, render_dracut())),
        Initramfs::Unknown => {}
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::PciAddress;

    #[test]
    fn udev_rule_is_per_address() {
        let e = [Entry {
            address: PciAddress::new(0, 4, 0, 1),
            module: Some("e1000".into()),
        }];
        let r = render_udev(&e);
        assert!(r.contains("KERNEL==\"0000:04:00.1\""), "{r}");
        assert!(!r.contains("8086"), "never by id: {r}");
        let m = render_modprobe(&e);
        assert!(m.contains("softdep e1000 pre: vfio-pci\n"), "{m}");
        assert!(m.contains("for d in 0000:04:00.1;"), "{m}");
    }
}
