//! Which running domains hold which PCI functions, without asking libvirt.
//!
//! The guard runs inside libvirt's start job and must not call back into
//! the daemon (it would wait for itself). libvirt's QEMU driver keeps one
//! status file per running domain, `/run/libvirt/qemu/NAME.xml`
//! (`cfg->stateDir`, written by `virDomainObjSave` in
//! src/qemu/qemu_process.c once the domain is running, removed when it
//! stops): a `<domstatus>` around the live `<domain>`, hostdevs included.
//! These files are what libvirt itself reloads after a daemon restart to
//! rebuild its "active PCI devices" list (src/hypervisor/virhostdev.c).
//!
//! Files that do not parse are skipped: a stale or half-written status file
//! must not stop an unrelated start (libvirt's own check still runs later).

use crate::host::DomainUse;
use std::path::Path;

/// The status directory under `root`.
pub(crate) fn status_dir(root: &Path) -> std::path::PathBuf {
    root.join("run/libvirt/qemu")
}

/// The PCI functions held by running domains other than `except`.
pub(crate) fn running_uses(root: &Path, except: &str) -> Vec<DomainUse> {
    let mut out = Vec::new();
    let Ok(it) = std::fs::read_dir(status_dir(root)) else {
        return out;
    };
    let mut files: Vec<std::path::PathBuf> = it
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    files.sort();
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        // Most running domains have no hostdev: skip the parse.
        if !text.contains("hostdev") {
            continue;
        }
        let Ok(doc) = crate::domain::parse(&text) else {
            continue;
        };
        let root_el = doc.root_element();
        let dom = if root_el.has_tag_name("domain") {
            Some(root_el)
        } else {
            root_el.children().find(|c| c.has_tag_name("domain"))
        };
        let Some(dom) = dom else { continue };
        let name = dom
            .children()
            .find(|c| c.has_tag_name("name"))
            .and_then(|n| n.text())
            .map(|t| t.trim().to_string())
            .unwrap_or_default();
        if name.is_empty() || name == except {
            continue;
        }
        for h in crate::domain::pci_hostdevs_of(dom) {
            if let Some(a) = h.address {
                out.push(DomainUse {
                    domain: name.clone(),
                    address: a,
                    running: true,
                    managed: h.is_managed(),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::PciAddress;

    #[test]
    fn reads_status_files_and_skips_self_and_junk() {
        let d = tempfile::tempdir().unwrap();
        let s = status_dir(d.path());
        std::fs::create_dir_all(&s).unwrap();
        let st = |name: &str, bus: u8| {
            format!("<domstatus state='running' reason='booted' pid='42'>\n  <domain type='kvm' id='1'>\n    <name>{name}</name>\n    <devices>\n      <hostdev mode='subsystem' type='pci' managed='yes'>\n        <source>\n          <address domain='0x0000' bus='0x{bus:02x}' slot='0x00' function='0x0'/>\n          <origstates><unbind/></origstates>\n        </source>\n      </hostdev>\n    </devices>\n  </domain>\n</domstatus>\n")
        };
        std::fs::write(s.join("gaming.xml"), st("gaming", 0x2b)).unwrap();
        std::fs::write(s.join("me.xml"), st("me", 0x03)).unwrap();
        std::fs::write(s.join("broken.xml"), "<domstatus><hostdev").unwrap();
        std::fs::write(s.join("gaming.pid"), "42").unwrap();
        let u = running_uses(d.path(), "me");
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].domain, "gaming");
        assert_eq!(u[0].address, PciAddress::new(0, 0x2b, 0, 0));
        assert!(u[0].running && u[0].managed);
        assert!(running_uses(&d.path().join("nowhere"), "me").is_empty());
    }
}
