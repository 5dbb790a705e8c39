//! Which backend acts, and the host it acts on, from the resolved
//! invocation ([`crate::invocation::Backend`]).
//!
//! WHY here and not in the command line: the choice has consequences that
//! are safety rules, and they must not differ between commands:
//! - `libvirt` reads the host through the same connection that acts, so the
//!   plan and the steps see one host; on this machine the facts only sysfs
//!   knows are merged in ([`crate::libvirt::read_host`]); a remote host is
//!   said to be one (its root disk and default route are not known);
//! - `auto` on this machine is libvirt's system daemon when it answers,
//!   else sysfs on `/` (the lean build has no libvirt: sysfs);
//! - `sysfs` on this machine still asks libvirt (read-only, best effort)
//!   which domains use which device, so a device a running guest holds is
//!   refused here too;
//! - a snapshot is a file, not a host: plans and `--dry-run` only;
//! - `/dev/vfio/vfio` is checked under the sysfs root, or on this machine
//!   for a local connection (libvirt checks it on a remote host).

use super::libvirt::LibvirtBackend;
use super::sysfs::SysfsBackend;
use super::Backend;
use crate::host::Host;
use crate::invocation::{self, HostSource, Invocation, SYSTEM_URI};
use crate::libvirt::{self, LibvirtError};
use std::path::{Path, PathBuf};

/// The backend that acts, owning what it needs.
pub struct Acting(Chosen);

enum Chosen {
    Sysfs(SysfsBackend),
    Libvirt(LibvirtBackend),
}

impl Acting {
    pub fn backend(&mut self) -> &mut dyn Backend {
        match &mut self.0 {
            Chosen::Sysfs(b) => b,
            Chosen::Libvirt(b) => b,
        }
    }

    /// The connection, when libvirt acts (domains are then looked up there).
    pub fn conn(&self) -> Option<&libvirt::Conn> {
        match &self.0 {
            Chosen::Libvirt(b) => Some(&b.conn),
            Chosen::Sysfs(_) => None,
        }
    }
}

/// The host and the backend for one run.
pub struct Setup {
    pub host: Host,
    pub acting: Acting,
    /// Executing is allowed (false for snapshots: a file is not a host).
    pub can_execute: bool,
    /// Where `/dev/vfio/vfio` is checked (`None`: libvirt checks it remotely).
    pub vfio_root: Option<PathBuf>,
    /// What the user must know before acting (printed as warnings).
    pub warnings: Vec<String>,
}

impl Setup {
    /// The host and the backend, borrowed together for the plan builders.
    pub fn parts(&mut self) -> (&Host, &mut dyn Backend) {
        (&self.host, self.acting.backend())
    }
}

/// Why no setup could be made.
#[derive(Debug)]
pub enum SetupError<E> {
    /// The command does not act on devices.
    NoBackend,
    /// Reading the host from the invocation's source failed.
    Host(E),
    Libvirt(LibvirtError),
}

/// The setup the invocation chose. `read_host` reads the invocation's host
/// source (the command line's reader, with its messages); `read_only`:
/// nothing will be executed, so a read-only connection is enough.
pub fn setup<E>(
    inv: &Invocation,
    read_only: bool,
    read_host: &dyn Fn() -> Result<Host, E>,
) -> Result<Setup, SetupError<E>> {
    match &inv.backend {
        invocation::Backend::Sysfs { root, execute } => sysfs(inv, root, *execute, read_host),
        invocation::Backend::Libvirt(uri) => through_libvirt(inv, uri, read_only),
        invocation::Backend::LibvirtElseSysfs => through_libvirt(inv, SYSTEM_URI, read_only)
            .or_else(|_: SetupError<E>| sysfs(inv, Path::new("/"), true, read_host)),
        invocation::Backend::None => Err(SetupError::NoBackend),
    }
}

fn sysfs<E>(
    inv: &Invocation,
    root: &Path,
    execute: bool,
    read_host: &dyn Fn() -> Result<Host, E>,
) -> Result<Setup, SetupError<E>> {
    let mut host = read_host().map_err(SetupError::Host)?;
    match inv.host {
        HostSource::ThisMachine => local_domains(&mut host, root, true),
        HostSource::Root(_) => local_domains(&mut host, root, false),
        // A snapshot says who used what when it was taken; this machine's
        // domains are not its.
        _ => {}
    }
    Ok(Setup {
        host,
        acting: Acting(Chosen::Sysfs(SysfsBackend::new(root))),
        can_execute: execute,
        vfio_root: Some(root.to_path_buf()),
        warnings: Vec::new(),
    })
}

/// Acting through sysfs: which domains use which device. On this machine,
/// libvirt is asked first (read-only, best effort: it also knows shut-off
/// domains); without an answer — no daemon, or the lean build, which has no
/// libvirt — the running domains are read from libvirt's status files under
/// `root` (`run/libvirt/qemu/*.xml`, as the guard reads them), so a device a
/// running guest holds is refused by either binary. A `--root` tree is read
/// the same way (never libvirt: its daemon is not that tree's).
fn local_domains(host: &mut Host, root: &Path, this_machine: bool) {
    if this_machine {
        if let Ok(conn) = libvirt::open(Some(SYSTEM_URI), true) {
            if let Ok(d) = conn.domains() {
                host.domains = libvirt::domain_uses(&d);
                return;
            }
        }
    }
    host.domains
        .extend(crate::guard::runstate::running_uses(root, ""));
}

fn through_libvirt<E>(
    inv: &Invocation,
    uri: &str,
    read_only: bool,
) -> Result<Setup, SetupError<E>> {
    let conn = libvirt::open(Some(uri), read_only).map_err(SetupError::Libvirt)?;
    let local = crate::host::nodedev::uri_is_local(conn.uri());
    let (mut host, missed) = libvirt::read_host(&conn).map_err(SetupError::Libvirt)?;
    host.invocation = Some(inv.host_args());
    let mut warnings: Vec<String> = missed
        .map(|e| {
            format!("cannot read this machine's sysfs ({e}); host-critical devices are not known")
        })
        .into_iter()
        .collect();
    if !local && !conn.uri().starts_with("test:") {
        warnings.push(format!(
            "{} is another machine: virt-pci cannot see which of its devices hold the root filesystem or the default route; check the plan before acting",
            conn.uri()
        ));
    }
    Ok(Setup {
        host,
        acting: Acting(Chosen::Libvirt(LibvirtBackend::new(conn))),
        can_execute: true,
        // libvirt checks VFIO on its host; on this one we can explain it first
        vfio_root: local.then(|| PathBuf::from("/")),
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invocation::{Backend as Asked, DomainSource};

    fn inv(host: HostSource, backend: Asked) -> Invocation {
        Invocation {
            host,
            domains: DomainSource::None,
            backend,
            fleet_libvirt: false,
        }
    }

    fn named(source: &str) -> Result<Host, String> {
        Ok(Host {
            source: source.into(),
            ..Host::default()
        })
    }

    #[test]
    fn a_root_acts_there_and_a_snapshot_only_plans() {
        let t = tempfile::tempdir().unwrap();
        let i = inv(
            HostSource::Root(t.path().into()),
            Asked::Sysfs {
                root: t.path().into(),
                execute: true,
            },
        );
        let s = setup(&i, false, &|| named("tree")).unwrap();
        assert!(s.can_execute && s.acting.conn().is_none());
        assert_eq!(s.vfio_root.as_deref(), Some(t.path()));
        assert_eq!(s.host.source, "tree");
        let i = inv(
            HostSource::Snapshot("h.json".into()),
            Asked::Sysfs {
                root: "/".into(),
                execute: false,
            },
        );
        let s = setup(&i, false, &|| named("snap")).unwrap();
        assert!(!s.can_execute);
        assert!(s.acting.conn().is_none());
    }

    #[test]
    fn reading_the_host_fails_as_the_reader_said_and_no_backend_is_said() {
        let t = tempfile::tempdir().unwrap();
        let i = inv(
            HostSource::Root(t.path().into()),
            Asked::Sysfs {
                root: t.path().into(),
                execute: true,
            },
        );
        let e = setup(&i, false, &|| Err::<Host, _>("no sys"))
            .err()
            .unwrap();
        assert!(matches!(e, SetupError::Host("no sys")));
        let i = inv(HostSource::None, Asked::None);
        assert!(matches!(
            setup(&i, true, &|| named("x")).err().unwrap(),
            SetupError::NoBackend
        ));
    }

    /// Without libvirt, `auto` on this machine is sysfs on `/` (the reader
    /// here is a stand-in: nothing reads the real `/sys`).
    #[cfg(not(feature = "libvirt"))]
    #[test]
    fn auto_without_libvirt_is_sysfs_on_this_machine() {
        let i = inv(HostSource::ThisMachine, Asked::LibvirtElseSysfs);
        let s = setup(&i, true, &|| named("this")).unwrap();
        assert!(s.acting.conn().is_none());
        assert_eq!(s.vfio_root.as_deref(), Some(Path::new("/")));
        let i = inv(
            HostSource::Libvirt("test:///default".into()),
            Asked::Libvirt("test:///default".into()),
        );
        let e = setup(&i, true, &|| named("x")).err().unwrap();
        assert!(matches!(e, SetupError::Libvirt(e) if e.is_not_linked()));
    }

    /// libvirt's test driver: the host comes from the connection that acts.
    #[cfg(feature = "libvirt")]
    #[test]
    fn libvirt_reads_the_host_through_the_acting_connection() {
        let i = inv(
            HostSource::Libvirt("test:///default".into()),
            Asked::Libvirt("test:///default".into()),
        );
        let s = setup(&i, true, &|| named("unused")).unwrap();
        assert!(s.acting.conn().is_some());
        assert!(s.host.source.starts_with("libvirt:test:///default"));
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        assert_eq!(s.vfio_root, None);
    }
}
