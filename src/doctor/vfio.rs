//! The VFIO checks: can this host hand a device to a guest at all — the
//! vfio-pci driver (loaded or loadable), the VFIO container device libvirt
//! looks for, libvirt's own answer (with `-c`), and whether the boot-time
//! bindings `detach --persist` wrote took effect.
//!
//! WHY apart from the IOMMU checks: these are the software side (modules,
//! device nodes, libvirt, our own files); a host can pass every IOMMU
//! check and still fail here, and the fixes are package and module ones.

use super::read::{check, kernel_release, unknown_in_snapshot, Read, Reader};
use super::{Check, Evidence, Facts, Status};
use crate::host::Host;
use crate::persist;

/// vfio-pci: loaded (`/sys/module/vfio_pci`, the driver directory
/// `/sys/bus/pci/drivers/vfio-pci`), or loadable (listed in the running
/// kernel's `modules.dep` or `modules.builtin` under
/// `/lib/modules/$(uname -r)`, as modprobe finds it: kmod's
/// libkmod/libkmod-module.c).
pub fn vfio_pci(facts: Facts) -> Check {
    const ID: &str = "vfio-pci";
    const T: &str = "vfio-pci driver";
    const RULE: &str =
        "drivers/vfio/pci/vfio_pci.c; modules.dep / modules.builtin (kmod, depmod(8))";
    let Facts::Root(root) = facts else {
        return unknown_in_snapshot(ID, T, "loaded modules", RULE);
    };
    let r = Reader { root };
    let drv = r.read("/sys/bus/pci/drivers/vfio-pci");
    let module = r.read("/sys/module/vfio_pci");
    let mut ev = vec![
        r.ev("/sys/bus/pci/drivers/vfio-pci", &drv),
        r.presence("/sys/module/vfio_pci", !matches!(module, Read::Missing)),
    ];
    if matches!(drv, Read::Dir(_)) {
        let bound: Vec<&String> = match &drv {
            Read::Dir(v) => v
                .iter()
                .filter(|n| crate::host::sysfs::parse_sysfs_bdf(n).is_some())
                .collect(),
            _ => Vec::new(),
        };
        ev[0].content = if bound.is_empty() {
            "(driver registered, no device bound)".into()
        } else {
            format!(
                "bound: {}",
                bound
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        };
        return check(ID, T, Status::Pass, "vfio-pci is loaded", ev, None, RULE);
    }
    let Some(rel) = kernel_release(&r) else {
        return check(ID, T, Status::Unknown, "vfio-pci is not loaded, and the kernel release (/proc/sys/kernel/osrelease) is unknown", ev, None, RULE);
    };
    let dep_p = format!("/lib/modules/{rel}/modules.dep");
    let bi_p = format!("/lib/modules/{rel}/modules.builtin");
    let dep = r.read(&dep_p);
    let bi = r.read(&bi_p);
    let has = |x: &Read| matches!(x, Read::Text(t) if t.lines().any(|l| l.split(':').next().is_some_and(|m| m.ends_with("/vfio-pci.ko") || m.contains("/vfio-pci.ko."))));
    let found = has(&dep) || has(&bi);
    let short = |x: &Read, p: &str| Evidence {
        path: r.full(p).display().to_string(),
        content: match x {
            Read::Text(_) if has(x) => "lists vfio-pci.ko".into(),
            Read::Text(_) => "(no vfio-pci.ko)".into(),
            other => r.ev(p, other).content,
        },
    };
    ev.push(short(&dep, &dep_p));
    ev.push(short(&bi, &bi_p));
    if found {
        check(ID, T, Status::Warn, format!("vfio-pci is not loaded, but kernel {rel} has it"), ev, Some("`modprobe vfio-pci` (libvirt loads it on a managed start; `detach --persist` loads it at boot)".into()), RULE)
    } else if matches!(dep, Read::Text(_)) {
        check(
            ID,
            T,
            Status::Fail,
            format!("kernel {rel} has no vfio-pci module"),
            ev,
            Some(
                "install the kernel's module package, or a kernel built with CONFIG_VFIO_PCI"
                    .into(),
            ),
            RULE,
        )
    } else {
        check(
            ID,
            T,
            Status::Unknown,
            format!("vfio-pci is not loaded and {dep_p} cannot be read"),
            ev,
            None,
            RULE,
        )
    }
}

/// `/dev/vfio/vfio`, the VFIO container device. libvirt decides "VFIO is
/// supported" by its existence (src/util/virhostdev.c,
/// `virHostdevHostSupportsPassthroughVFIO`) and otherwise refuses with
/// "VFIO device assignment is currently not supported on this system".
pub fn vfio_node(facts: Facts) -> Check {
    const ID: &str = "vfio-node";
    const T: &str = "/dev/vfio/vfio";
    const RULE: &str = "libvirt src/util/virhostdev.c: virHostdevHostSupportsPassthroughVFIO";
    let Facts::Root(root) = facts else {
        return unknown_in_snapshot(ID, T, "/dev", RULE);
    };
    let r = Reader { root };
    let exists = r.exists("/dev/vfio/vfio");
    let ev = vec![r.presence("/dev/vfio/vfio", exists)];
    if exists {
        check(
            ID,
            T,
            Status::Pass,
            "the VFIO container device exists",
            ev,
            None,
            RULE,
        )
    } else {
        check(ID, T, Status::Fail, "no /dev/vfio/vfio: libvirt says \"VFIO device assignment is currently not supported on this system\"", ev, Some("`modprobe vfio`; without systemd's kmod-static-nodes.service: `kmod static-nodes --format=tmpfiles --output=/run/static-nodes.conf && systemd-tmpfiles --create --boot /run/static-nodes.conf`".into()), RULE)
    }
}

/// Boot-time bindings written by `detach --persist`, and whether each
/// function is on vfio-pci this boot.
pub(crate) fn persistent_bindings(facts: Facts, host: &Host) -> Option<Check> {
    const ID: &str = "persistent-bindings";
    const T: &str = "Boot-time vfio-pci bindings (detach --persist)";
    const RULE: &str = "virt-pci's manifest (src/persist/manifest.rs)";
    let Facts::Root(root) = facts else {
        return None;
    };
    let path = root
        .join(persist::MANIFEST.trim_start_matches('/'))
        .display()
        .to_string();
    let m = match persist::read_manifest(root) {
        Ok(None) => return None,
        Ok(Some(m)) => m,
        Err(e) => {
            return Some(check(
                ID,
                T,
                Status::Fail,
                e.message.clone(),
                vec![Evidence {
                    path,
                    content: e.location.unwrap_or_default(),
                }],
                e.help.first().cloned(),
                RULE,
            ));
        }
    };
    let states = persist::binding_states(&m, host);
    let mut ev = vec![Evidence {
        path,
        content: states
            .iter()
            .map(|s| s.address.to_string())
            .collect::<Vec<_>>()
            .join(" "),
    }];
    for s in &states {
        ev.push(Evidence {
            path: format!(
                "{}/driver",
                root.join(format!("sys/bus/pci/devices/{}", s.address))
                    .display()
            ),
            content: s.driver.clone().unwrap_or_else(|| {
                if s.present {
                    "(none)".into()
                } else {
                    "(device missing)".into()
                }
            }),
        });
    }
    let not: Vec<String> = states
        .iter()
        .filter(|s| !s.in_effect)
        .map(|s| {
            format!(
                "{} ({})",
                s.address,
                s.driver
                    .as_deref()
                    .unwrap_or(if s.present { "unbound" } else { "missing" })
            )
        })
        .collect();
    Some(if not.is_empty() {
        check(
            ID,
            T,
            Status::Pass,
            format!(
                "{} function(s) bound to vfio-pci at boot, all in effect this boot",
                states.len()
            ),
            ev,
            None,
            RULE,
        )
    } else {
        check(ID, T, Status::Warn, format!("persisted but not on vfio-pci this boot: {}", not.join(", ")), ev, Some("reboot after `detach --persist`; if a host driver comes from the initramfs, rebuild it (`update-initramfs -u` or `dracut -f`, or `detach --persist --update-initramfs`)".into()), RULE)
    })
}

/// libvirt's QEMU driver's view: reachable, and its domain capabilities
/// list `<hostdev supported='yes'>` with `vfio` among the `pciBackend`
/// values (libvirt src/qemu/qemu_capabilities.c,
/// `virQEMUCapsFillDomainDeviceHostdevCaps`: vfio is offered only when
/// `virHostdevHostSupportsPassthroughVFIO()` holds). `caps` is the
/// `virConnectGetDomainCapabilities` XML, or the error getting it.
pub fn libvirt_view(uri: &str, caps: Result<&str, &str>) -> Check {
    const ID: &str = "libvirt-vfio";
    const T: &str = "libvirt QEMU driver: VFIO hostdevs";
    const RULE: &str =
        "libvirt src/qemu/qemu_capabilities.c: virQEMUCapsFillDomainDeviceHostdevCaps";
    let ev_path = format!("virConnectGetDomainCapabilities on {uri}");
    let xml = match caps {
        Err(e) => return check(ID, T, Status::Fail, format!("libvirt at {uri}: {e}"), vec![Evidence { path: ev_path, content: e.to_string() }], Some("start libvirtd (`systemctl start libvirtd` or the virtqemud socket) and check the URI and your permissions".into()), RULE),
        Ok(x) => x,
    };
    let doc = match roxmltree::Document::parse(xml) {
        Ok(d) => d,
        Err(e) => {
            return check(
                ID,
                T,
                Status::Unknown,
                format!("libvirt's domain capabilities are not XML: {e}"),
                Vec::new(),
                None,
                RULE,
            )
        }
    };
    let hostdev = doc.descendants().find(|n| {
        n.has_tag_name("hostdev") && n.parent().is_some_and(|p| p.has_tag_name("devices"))
    });
    let supported = hostdev.and_then(|h| h.attribute("supported"));
    let backends: Vec<String> = hostdev
        .into_iter()
        .flat_map(|h| h.children())
        .filter(|n| n.has_tag_name("enum") && n.attribute("name") == Some("pciBackend"))
        .flat_map(|e| e.children().filter(|v| v.has_tag_name("value")))
        .filter_map(|v| v.text().map(str::to_string))
        .collect();
    let ev = vec![Evidence {
        path: ev_path,
        content: format!(
            "<hostdev supported='{}'> pciBackend: {}",
            supported.unwrap_or("?"),
            if backends.is_empty() {
                "(none)".into()
            } else {
                backends.join(" ")
            }
        ),
    }];
    if supported == Some("yes") && backends.iter().any(|b| b == "vfio") {
        check(
            ID,
            T,
            Status::Pass,
            format!("libvirt at {uri} can assign PCI devices with VFIO"),
            ev,
            None,
            RULE,
        )
    } else {
        check(ID, T, Status::Fail, format!("libvirt at {uri} does not offer VFIO PCI assignment (\"host doesn't support VFIO PCI passthrough\" at start)"), ev, Some("libvirt offers vfio only when /dev/vfio/vfio exists: see vfio-node and iommu-kernel".into()), RULE)
    }
}
