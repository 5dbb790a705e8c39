//! The libvirt side: connections, host facts through the node-device API,
//! domains by name, the node-device actions, and the order of a domain edit
//! (define, then hot-plug).
//!
//! WHY this is thin: every decision (plan, XML reading) is in pure modules
//! ([`crate::host::nodedev`], [`crate::domain`]) that are tested without
//! libvirt; `linked.rs` (feature `libvirt`) only moves strings in and out of
//! the `virt` crate (=0.5.0), and keeps its pitfalls in one place
//! (docs/libvirt.md §6–7):
//! - `list_all_node_devices` gets ONLY `CAP_PCI_DEV`: the test driver
//!   rejects ACTIVE/INACTIVE flags (virsh's `nodedev-list` fails there);
//! - `Domain::attach_device` drops libvirt's error: only the `_flags`
//!   variants are used;
//! - libvirt prints every error on stderr unless the callback is cleared:
//!   we report errors ourselves, once, in rustc's shape;
//! - the crate's `CString::new(..).unwrap()` panics on a NUL byte: strings are
//!   checked first.
//!
//! WHY one face for both builds: the command line is the same code with and
//! without libvirt. This module's types ([`Conn`], [`open`], [`LibvirtError`])
//! exist in both; without the feature (`absent.rs`) a [`Conn`] cannot be
//! made (it holds an uninhabited field) and [`open`] says the binary was
//! built without libvirt support. The lean `virt-pci` hands over to
//! `virt-pci-libvirt` before any of this runs whenever the resolved
//! invocation reads or acts through libvirt
//! ([`crate::invocation::Invocation::needs_libvirt`]), so that error is
//! seen only when the companion is not installed, or for the best-effort
//! reads the invocation does not count on (this machine's domains while
//! acting through sysfs, `--backend auto`'s libvirt-else-sysfs).

#[cfg(not(feature = "libvirt"))]
mod absent;
mod edit;
#[cfg(feature = "libvirt")]
mod linked;

#[cfg(not(feature = "libvirt"))]
use absent as imp;
#[cfg(feature = "libvirt")]
use linked as imp;

pub use edit::{commit_edit, Change, CommitError, Committed};
pub use imp::{open, Conn};

use crate::host::{nodedev, Host};
use std::fmt;

/// A libvirt call failed: what we tried, and libvirt's own message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LibvirtError {
    /// What virt-pci was doing ("detach pci_0000_01_00_0").
    pub action: String,
    /// libvirt's message, verbatim (users search for it).
    pub message: String,
    /// libvirt's `virErrorNumber` (3 = not supported by the driver).
    pub code: u32,
    /// A fix, when we know one.
    pub help: Option<String>,
}

/// `VIR_ERR_NO_SUPPORT`: the driver (e.g. the test driver) lacks the call.
pub(crate) const ERR_NO_SUPPORT: u32 = 3;
/// Not a libvirt code: this binary was built without libvirt.
pub(crate) const ERR_NOT_LINKED: u32 = u32::MAX;

impl LibvirtError {
    /// The driver does not implement the call (the test driver cannot
    /// detach, reset, reattach, attach or detach devices).
    pub fn is_not_supported(&self) -> bool {
        self.code == ERR_NO_SUPPORT
    }

    /// This binary was built without libvirt (and the companion that has it
    /// is not installed).
    pub fn is_not_linked(&self) -> bool {
        self.code == ERR_NOT_LINKED
    }
}

impl fmt::Display for LibvirtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.action, self.message)
    }
}

impl std::error::Error for LibvirtError {}

pub type Result<T> = std::result::Result<T, LibvirtError>;

/// Which side of a domain a device change affects (`--config`, `--live`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Impact {
    pub config: bool,
    pub live: bool,
}

impl Impact {
    pub const LIVE: Impact = Impact {
        config: false,
        live: true,
    };
    pub const BOTH: Impact = Impact {
        config: true,
        live: true,
    };
}

/// A defined domain: name, whether it runs, and its XML (inactive, and live
/// when running).
#[derive(Clone, Debug)]
pub struct DomainInfo {
    pub name: String,
    pub running: bool,
    /// The persistent configuration (`VIR_DOMAIN_XML_INACTIVE`).
    pub inactive_xml: String,
    /// The live XML of a running domain.
    pub live_xml: Option<String>,
}

/// The host through `conn`; on this machine (`qemu:///system`) completed
/// with what only sysfs knows (host-critical devices, reset methods), so
/// acting through libvirt is as safe as through sysfs. A local sysfs that
/// cannot be read is returned beside the host: the facts stay unknown, and
/// the caller says so.
pub fn read_host(conn: &Conn) -> Result<(Host, Option<crate::host::sysfs::SysfsError>)> {
    let mut h = conn.read_host()?;
    let missed = complete_with_local(&mut h, conn.uri(), || {
        crate::host::sysfs::read(std::path::Path::new("/"))
    });
    Ok((h, missed))
}

/// Merge this machine's sysfs facts into a host read from `uri` when the
/// URI is this machine (never for another host or the test driver).
fn complete_with_local<E>(
    host: &mut Host,
    uri: &str,
    read_local: impl FnOnce() -> std::result::Result<Host, E>,
) -> Option<E> {
    if !nodedev::uri_is_local(uri) {
        return None;
    }
    match read_local() {
        Ok(local) => {
            nodedev::merge_local_facts(host, &local);
            None
        }
        Err(e) => Some(e),
    }
}

/// Which domains use which device: a running domain's live hostdevs count
/// as running uses; hostdevs only in a persistent config count as not
/// running (the device is free now, but the domain will want it at start).
pub fn domain_uses(domains: &[DomainInfo]) -> Vec<crate::host::DomainUse> {
    let mut list: Vec<(&str, bool, &str)> = Vec::new();
    for d in domains {
        if let Some(live) = &d.live_xml {
            list.push((&d.name, true, live));
        }
        list.push((&d.name, false, &d.inactive_xml));
    }
    let mut out: Vec<crate::host::DomainUse> = Vec::new();
    for u in nodedev::domain_uses(list) {
        if !out
            .iter()
            .any(|o| o.domain == u.domain && o.address == u.address)
        {
            out.push(u);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::PciAddress;
    use crate::host::Device;

    fn one_device(source: &str) -> Host {
        let mut h = Host {
            source: source.into(),
            ..Host::default()
        };
        let a = PciAddress::new(0, 1, 0, 0);
        h.devices
            .insert(a, Device::new(a, 0x10de, 0x1e84, 0x030000));
        h
    }

    #[test]
    fn only_a_local_connection_is_completed_from_sysfs() {
        let mut local = one_device("sysfs");
        let a = PciAddress::new(0, 1, 0, 0);
        local.devices.get_mut(&a).unwrap().reset_methods = Some(vec!["flr".into()]);
        local.devices.get_mut(&a).unwrap().reset = Some(true);
        for (uri, merged) in [
            ("qemu:///system", true),
            ("qemu+ssh://hv1/system", false),
            ("test:///h.xml", false),
        ] {
            let mut h = one_device(uri);
            let mut read = false;
            let missed = complete_with_local(&mut h, uri, || {
                read = true;
                Ok::<_, String>(local.clone())
            });
            assert!(missed.is_none());
            assert_eq!(read, merged, "{uri}");
            assert_eq!(h.device(&a).unwrap().reset == Some(true), merged, "{uri}");
        }
        // An unreadable local sysfs is said, not hidden.
        let mut h = one_device("qemu:///system");
        let missed = complete_with_local(&mut h, "qemu:///system", || Err("EACCES"));
        assert_eq!(missed, Some("EACCES"));
    }

    #[test]
    fn a_running_domain_counts_once_as_running() {
        let hd = "<hostdev mode='subsystem' type='pci'><source><address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></source></hostdev>";
        let xml = format!("<domain><name>vm</name><devices>{hd}</devices></domain>");
        let d = DomainInfo {
            name: "vm".into(),
            running: true,
            inactive_xml: xml.clone(),
            live_xml: Some(xml),
        };
        let u = domain_uses(&[d]);
        assert_eq!(u.len(), 1);
        assert!(u[0].running);
    }
}
