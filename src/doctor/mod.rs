//! `virt-pci doctor`: is this host ready for PCI passthrough, and is this
//! device? Every check is one function, says PASS / WARN / FAIL / UNKNOWN,
//! shows the evidence it read (path and content) and the fix, and names in
//! its doc the upstream source of its rule.
//!
//! WHY a separate module and not more `validate` codes: these are facts of
//! a running host (firmware tables, kernel command line, loaded modules),
//! read-only, and most of them do not exist in a snapshot or a libvirt
//! node-device dump. Where a fact is missing the answer is UNKNOWN, never
//! PASS: `virt-host-validate` says "IOMMU enabled: WARN" on a host it cannot
//! read, and users cannot tell that from a real problem.
//!
//! Reads only: files under a root directory (`--root`, `/` on a host) and
//! the [`Host`] model; the per-device verdict is [`crate::plan`]'s, exactly
//! as `show` prints it.
//!
//! One file per check family: `iommu.rs` (firmware, kernel, interrupt
//! remapping, command-line options), `vfio.rs` (vfio-pci, `/dev/vfio`,
//! libvirt's view, boot-time bindings), `device.rs` (per device), `read.rs`
//! (the reader and the evidence every check shows), `known.rs` (documented
//! tables). This file holds the result types and the order checks run in.

mod device;
mod iommu;
pub(crate) mod known;
mod read;
mod vfio;

pub use device::{
    device_boot_vga, device_host_driver, device_link, device_plan, device_reset, device_rom,
};
pub use iommu::{
    acs_override, interrupt_remapping, iommu_firmware, iommu_kernel, iommu_passthrough_mode,
    unsafe_interrupts,
};
use vfio::persistent_bindings;
pub use vfio::{libvirt_view, vfio_node, vfio_pci};

use crate::address::PciAddress;
use crate::host::Host;
use crate::persist;
use serde::Serialize;
use std::path::Path;

/// The outcome of one check, worst last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Pass,
    Unknown,
    Warn,
    Fail,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::Unknown => "UNKNOWN",
        })
    }
}

/// A file (or directory) a check read, and what it held.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Evidence {
    /// The path on the host (`/sys/...`), under `--root` when given.
    pub path: String,
    /// Trimmed content; for a directory its entries; `(missing)`,
    /// `(unreadable: ...)`, or `(exists)` for a file not worth reading.
    pub content: String,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Check {
    /// Stable id (`iommu-firmware`, `device-reset`, ...).
    pub id: &'static str,
    pub title: &'static str,
    /// The PCI function a per-device check is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<PciAddress>,
    pub status: Status,
    pub message: String,
    pub evidence: Vec<Evidence>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// Where the rule comes from (kernel source, spec, libvirt source).
    pub rule: &'static str,
}

/// All checks of one run.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub source: String,
    pub checks: Vec<Check>,
    pub pass: usize,
    pub warn: usize,
    pub fail: usize,
    pub unknown: usize,
}

impl Report {
    pub fn new(source: String, checks: Vec<Check>) -> Report {
        let n = |s: Status| checks.iter().filter(|c| c.status == s).count();
        Report {
            source,
            pass: n(Status::Pass),
            warn: n(Status::Warn),
            fail: n(Status::Fail),
            unknown: n(Status::Unknown),
            checks,
        }
    }
    pub fn failed(&self) -> bool {
        self.fail > 0
    }
}

/// Where host files are read from: a root directory, or nowhere (a
/// snapshot records devices, not firmware tables or the command line).
#[derive(Clone, Copy, Debug)]
pub enum Facts<'a> {
    Root(&'a Path),
    Snapshot,
}

/// Every host check, in order.
pub fn host_checks(facts: Facts, host: &Host) -> Vec<Check> {
    let mut v = vec![
        iommu_firmware(facts, host),
        iommu_kernel(facts, host),
        iommu_passthrough_mode(facts),
        interrupt_remapping(facts),
        unsafe_interrupts(facts),
        acs_override(facts),
        vfio_pci(facts),
        vfio_node(facts),
    ];
    v.extend(persistent_bindings(facts, host));
    v
}

/// Every per-device check for `a`.
pub fn device_checks(facts: Facts, host: &Host, a: &PciAddress, strict_group: bool) -> Vec<Check> {
    let persisted = match facts {
        Facts::Root(root) => persist::read_manifest(root)
            .ok()
            .flatten()
            .is_some_and(|m| m.functions.iter().any(|e| e.address == *a)),
        Facts::Snapshot => false,
    };
    let mut v = vec![
        device_plan(host, a, strict_group),
        device_reset(host, a),
        device_host_driver(facts, host, a, persisted),
    ];
    v.extend(device_boot_vga(host, a));
    v.push(device_rom(facts, host, a));
    v.push(device_link(facts, host, a));
    v
}
