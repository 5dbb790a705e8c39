//! Handing over to `virt-pci-libvirt` for the invocations that use libvirt.
//!
//! Why: a binary linked with libvirt pays about 9 ms of dynamic loading at
//! every start (57 shared libraries), measured in BENCHMARKS.md — more than
//! eight times the whole of a typical `validate`, `snippet` or `add` run, and
//! the pre-commit hook and scripts run those thousands of times. So the
//! `virt-pci` that `make build` produces is built without libvirt, and
//! `virt-pci-libvirt` (the same code with the `libvirt` feature) sits next
//! to it. `virt-pci` execs the companion, with the same arguments, exactly
//! when the libvirt-linked build would use libvirt: a connection URI (`-c`
//! or `LIBVIRT_DEFAULT_URI`) for a command that reads the host, `--domain`,
//! `--all-domains`, or acting on this machine's devices with the `auto` or
//! `libvirt` backend. Everything else never loads libvirt.
//!
//! Without a companion (a plain `cargo install`), nothing changes: the
//! command runs here and explains what needs libvirt. A build with the
//! feature never hands over. `VIRT_PCI_NO_COMPANION=1` turns the hand-over
//! off (the tests of the libvirt-free build use it).

// The libvirt-linked build never hands over; the decision code stays
// compiled (and tested) in both.
#![cfg_attr(feature = "libvirt", allow(dead_code))]

use super::actions::{ActOpts, BackendChoice};
use super::app::{Cli, Command};
use std::path::PathBuf;
use std::process::ExitCode;

/// The companion's file name, next to the running binary.
pub const COMPANION: &str = "virt-pci-libvirt";

/// Whether the libvirt-linked build would use libvirt for `cli`.
pub fn needs_libvirt(cli: &Cli) -> bool {
    let g = &cli.global;
    let no_fake_host = g.root.is_none() && g.snapshot.is_none();
    // A URI (flag or LIBVIRT_DEFAULT_URI) names the host, unless a fake
    // root or a snapshot does (they take precedence).
    let reads_via_libvirt = g.connect.is_some() && no_fake_host;
    let acts_via_libvirt = |act: &ActOpts| match act.backend {
        BackendChoice::Libvirt => true,
        BackendChoice::Sysfs => false,
        BackendChoice::Auto => no_fake_host,
    };
    match &cli.command {
        Command::List(_)
        | Command::Show(_)
        | Command::Hostdevs(_)
        | Command::Usb(_)
        | Command::Snippet(_) => reads_via_libvirt,
        Command::Snapshot(a) => a.from_listing.is_none() && reads_via_libvirt,
        Command::Add(a) => a.target.domain.is_some() || reads_via_libvirt,
        Command::Remove(a) => a.target.domain.is_some(),
        // validate names a host only with a -c typed on the command line.
        Command::Validate(a) => {
            !a.domains.is_empty()
                || a.all_domains
                || (g.connect.is_some() && no_fake_host && g.connect_on_command_line)
        }
        Command::Detach(a) => acts_via_libvirt(&a.common.act) || reads_via_libvirt,
        Command::Reattach(a) | Command::Reset(a) => acts_via_libvirt(&a.act) || reads_via_libvirt,
        Command::Check(a) => acts_via_libvirt(&a.act) || reads_via_libvirt,
        Command::Prepare(a) => acts_via_libvirt(&a.act) || reads_via_libvirt,
        Command::Release(a) => acts_via_libvirt(&a.common.act) || reads_via_libvirt,
        Command::Completions(_) | Command::Man | Command::FakeSysfs(_) => false,
    }
}

/// The companion next to the running binary, if there is one.
pub fn find() -> Option<PathBuf> {
    if std::env::var_os("VIRT_PCI_NO_COMPANION").is_some_and(|v| !v.is_empty()) {
        return None;
    }
    let me = std::env::current_exe().ok()?;
    let c = me.with_file_name(COMPANION);
    c.is_file().then_some(c)
}

/// In the libvirt-free build: exec the companion when `cli` needs libvirt.
/// Returns only when this process should go on itself (or the exec failed,
/// which is reported, and the command then runs here).
#[cfg(not(feature = "libvirt"))]
pub fn dispatch(cli: &Cli) -> Option<ExitCode> {
    use std::os::unix::process::CommandExt;
    if !needs_libvirt(cli) {
        return None;
    }
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
pub fn dispatch(_cli: &Cli) -> Option<ExitCode> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn needs(args: &[&str]) -> bool {
        let mut v = vec!["virt-pci"];
        v.extend_from_slice(args);
        needs_libvirt(&Cli::parse_from(v))
    }

    #[test]
    fn only_libvirt_invocations_hand_over() {
        // Never: offline work, fake roots, snapshots, sysfs backend.
        assert!(!needs(&["list"]) || std::env::var_os("LIBVIRT_DEFAULT_URI").is_some());
        assert!(!needs(&["--root", "/tmp/x", "list"]));
        assert!(!needs(&[
            "--snapshot",
            "h.json",
            "-c",
            "qemu:///system",
            "show",
            "01:00.0"
        ]));
        assert!(!needs(&["validate", "vms/"]));
        assert!(!needs(&["--root", "/tmp/x", "detach", "01:00.0"]));
        assert!(!needs(&["detach", "01:00.0", "--backend", "sysfs"]));
        assert!(!needs(&["completions", "bash"]));
        assert!(!needs(&["man"]));
        assert!(!needs(&[
            "snapshot",
            "--from-listing",
            "l.txt",
            "-c",
            "qemu:///system"
        ]));
        // Always: a URI for a host-reading command, domains by name, acting
        // on this machine with auto/libvirt.
        assert!(needs(&["-c", "qemu+ssh://hv/system", "list"]));
        assert!(needs(&["add", "--domain", "win11", "01:00.0"]));
        assert!(needs(&["remove", "--domain", "win11", "--all"]));
        assert!(needs(&["validate", "--all-domains"]));
        assert!(needs(&["detach", "01:00.0"]));
        assert!(needs(&["reset", "01:00.0", "--backend", "libvirt"]));
        assert!(needs(&["prepare", "win11"]));
    }
}
