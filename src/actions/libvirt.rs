//! The libvirt node-device API as a backend: `virNodeDeviceDetachFlags`,
//! `ReAttach`, `Reset`, one function each (the group expansion and the
//! rollback are the action plan's and the executor's). It exists in both
//! builds: without libvirt no [`Conn`] can be opened, so it is never made.

use super::{sysfs, Backend, BackendError, Op};
use crate::address::PciAddress;
use crate::libvirt::{Conn, LibvirtError};

/// The libvirt node-device API as a backend.
///
/// Reset is the exception: libvirt 9.0's `virNodeDeviceReset` returns
/// success without resetting a function that has FLR ("KVM will perform FLR
/// when starting and stopping a guest") or that is bound to vfio-pci
/// ("bound to vfio-pci - skip reset"), as the e2e VM showed. On this machine
/// (a local connection) the reset therefore goes through the kernel's sysfs
/// `reset` file, which really resets; on a remote host libvirt is the only
/// way, and the plan says it may do nothing.
pub(crate) struct LibvirtBackend {
    pub(crate) conn: Conn,
    /// Set for a local connection: resets go through this host's sysfs.
    local_reset: Option<sysfs::SysfsBackend>,
}

impl LibvirtBackend {
    /// A backend for `conn`; resets go through `/sys` when the connection
    /// is to this machine (never for `test:///`, which is not a host).
    pub(crate) fn new(conn: Conn) -> LibvirtBackend {
        let local_reset = crate::host::nodedev::uri_is_local(conn.uri())
            .then(|| sysfs::SysfsBackend::new(std::path::Path::new("/")));
        LibvirtBackend { conn, local_reset }
    }
}

impl From<LibvirtError> for BackendError {
    fn from(e: LibvirtError) -> Self {
        BackendError {
            message: e.to_string(),
            help: e.help,
        }
    }
}

impl Backend for LibvirtBackend {
    fn name(&self) -> String {
        format!("libvirt ({})", self.conn.uri())
    }
    fn describe(&self, op: &Op, a: &PciAddress, _driver: Option<&str>) -> Vec<String> {
        let n = a.node_name();
        vec![match op {
            Op::Detach { driver } => format!("virNodeDeviceDetachFlags({n}, \"{driver}\", 0)"),
            Op::Reattach => format!("virNodeDeviceReAttach({n})"),
            Op::Reset => match &self.local_reset {
                Some(_) => format!(
                    "write 1 > /sys/bus/pci/devices/{a}/reset (libvirt's virNodeDeviceReset skips FLR-capable and vfio-bound functions)"
                ),
                None => format!("virNodeDeviceReset({n})"),
            },
        }]
    }
    fn detach(&mut self, a: &PciAddress, driver: &str) -> Result<(), BackendError> {
        Ok(self.conn.nodedev_detach(a, driver)?)
    }
    fn reattach(&mut self, a: &PciAddress) -> Result<(), BackendError> {
        Ok(self.conn.nodedev_reattach(a)?)
    }
    fn reset(&mut self, a: &PciAddress) -> Result<(), BackendError> {
        match &mut self.local_reset {
            Some(b) => b.reset(a),
            None => Ok(self.conn.nodedev_reset(a)?),
        }
    }
    fn reset_caveat(&self) -> Option<(String, String)> {
        if self.local_reset.is_some() {
            return None;
        }
        let uri = self.conn.uri();
        // libvirt's test driver has no node-device detach, reattach or
        // reset at all (src/test/test_driver.c: absent from its node-device
        // table; virsh says "this function is not supported by the
        // connection driver"): it is not a host, remote or otherwise.
        if uri.starts_with("test:") {
            return Some((
                format!("{uri} is libvirt's test driver, not a host: it cannot detach, reattach or reset devices (\"this function is not supported by the connection driver\")"),
                "use --dry-run to see the steps; act on a real host (qemu:///system) or with --backend sysfs and --root".into(),
            ));
        }
        Some((
            format!("{uri} is another machine: the reset goes through libvirt, whose reset does nothing for a function bound to vfio-pci or one with FLR (libvirt resets those when a guest starts and stops), and succeeds anyway"),
            "run virt-pci on that host itself: a local reset writes the kernel's `reset` file".into(),
        ))
    }
}
