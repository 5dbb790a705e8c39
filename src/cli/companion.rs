//! Handing over to `virt-pci-libvirt` for the invocations that use libvirt.
//!
//! Why: a binary linked with libvirt pays about 9 ms of dynamic loading at
//! every start (57 shared libraries), measured in BENCHMARKS.md — more than
//! eight times the whole of a typical `validate`, `snippet` or `add` run, and
//! the pre-commit hook and scripts run those thousands of times. So the
//! `virt-pci` that `make build` produces is built without libvirt, and
//! `virt-pci-libvirt` (the same code with the `libvirt` feature) sits next
//! to it. `virt-pci` execs the companion, with the same arguments, exactly
//! when the resolved invocation reads or acts through libvirt
//! ([`virt_pci::invocation::Invocation::needs_libvirt`], the one place that
//! decides it), before any output. Everything else never loads libvirt.
//!
//! Without a companion (a plain `cargo install`), nothing changes: the
//! command runs here and explains what needs libvirt. A build with the
//! feature never hands over. `VIRT_PCI_NO_COMPANION=1` turns the hand-over
//! off (the tests of the libvirt-free build use it).

// The libvirt-linked build never hands over; the decision code stays
// compiled (and tested) in both.
#![cfg_attr(feature = "libvirt", allow(dead_code))]

use std::path::PathBuf;
use std::process::ExitCode;

/// The companion's file name, next to the running binary.
pub(super) const COMPANION: &str = "virt-pci-libvirt";

/// The companion next to the running binary, if there is one.
fn find() -> Option<PathBuf> {
    if std::env::var_os("VIRT_PCI_NO_COMPANION").is_some_and(|v| !v.is_empty()) {
        return None;
    }
    let me = std::env::current_exe().ok()?;
    let c = me.with_file_name(COMPANION);
    c.is_file().then_some(c)
}

/// In the libvirt-free build: exec the companion (the caller asks only
/// when [`virt_pci::invocation::Invocation::needs_libvirt`]). Returns only
/// when this process should go on itself (no companion, or the exec
/// failed, which is reported, and the command then runs here).
#[cfg(not(feature = "libvirt"))]
pub(super) fn dispatch() -> Option<ExitCode> {
    use std::os::unix::process::CommandExt;
    let path = find()?;
    let err = std::process::Command::new(&path)
        .args(std::env::args_os().skip(1))
        .exec();
    eprintln!(
        "warning: cannot run {} ({err}); going on without libvirt",
        path.display()
    );
    None
}

/// The libvirt-linked build does everything itself.
#[cfg(feature = "libvirt")]
pub(super) fn dispatch() -> Option<ExitCode> {
    None
}
