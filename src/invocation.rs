//! One invocation, resolved once: where host facts come from, where domains
//! come from, which action backend acts, and whether libvirt is needed.
//!
//! WHY one place: before this module, the precedence between `--snapshot`,
//! `--root`, `-c`/`LIBVIRT_DEFAULT_URI` and this machine was re-derived by
//! the host reader, the action setup, `validate` and the hand-over to the
//! libvirt-linked companion, and the copies drifted (`remove` reads the host
//! to resolve a `vendor:device`; the hand-over did not know, so `-c URI
//! remove vm.xml 10de:1e84` failed and `LIBVIRT_DEFAULT_URI=… remove …` read
//! this machine's sysfs). Like ripgrep's `HiArgs`, [`Invocation::resolve`]
//! turns the parsed options plus what the command uses ([`Uses`]) into
//! decisions, and nothing else decides them.
//!
//! The rules:
//! - **Host facts** come from exactly one of `--snapshot FILE`, `--root DIR`
//!   (or `VIRT_PCI_ROOT`), a libvirt connection (`-c URI` or
//!   `LIBVIRT_DEFAULT_URI`), or this machine. `--snapshot` with `--root` is
//!   an error: two hosts named, none chosen silently.
//! - **Domains** (which domain holds which device, `--domain NAME`) come
//!   from the libvirt connection. Host facts and domains are separate
//!   choices: `-c URI --snapshot FILE` reads the devices' facts from the
//!   snapshot (made on that host) and the domains from `URI`. A
//!   `LIBVIRT_DEFAULT_URI` in the environment names the host only when no
//!   `--snapshot`/`--root` does (it is often set for virsh; it must not
//!   change what a snapshot says).
//! - **`validate`** names a host only when asked (`--snapshot`, `--root`, a
//!   typed `-c`, `--this-machine`), so the same files give the same verdict
//!   everywhere.
//! - **Backends** for actions: `libvirt` reads and acts through a connection
//!   (`-c`, else `qemu:///system`, never with `--snapshot`/`--root`);
//!   `sysfs` acts under `--root` (or `/`), never on a `-c` host; `auto` is
//!   libvirt for a `-c` host, libvirt-else-sysfs on this machine, sysfs
//!   under `--root`, and plans only for a snapshot.
//! - **libvirt is needed** exactly when one of the above reads or acts
//!   through a connection ([`Invocation::needs_libvirt`]); the lean
//!   `virt-pci` hands over to `virt-pci-libvirt` then, before any output.

use std::fmt;
use std::path::PathBuf;

/// The global options as given, with where each came from.
#[derive(Clone, Debug, Default)]
pub struct Given {
    pub snapshot: Option<PathBuf>,
    pub root: Option<PathBuf>,
    /// `--root` came from `VIRT_PCI_ROOT`.
    pub root_from_env: bool,
    pub connect: Option<String>,
    /// `-c` came from `LIBVIRT_DEFAULT_URI`.
    pub connect_from_env: bool,
}

/// How a command uses the host.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HostUse {
    /// Not at all (`completions`, `snapshot --from-listing`, `remove` by address).
    #[default]
    None,
    /// Always (`list`, `show`, `snippet`, `add`, …).
    Required,
    /// Only when one is named on the command line (`validate`).
    IfNamed,
}

/// The action backend asked for (`--backend`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendChoice {
    Auto,
    Libvirt,
    Sysfs,
}

/// What a command needs, declared by the command line per command.
#[derive(Clone, Copy, Debug, Default)]
pub struct Uses {
    pub host: HostUse,
    /// Domains by name through libvirt (`--domain`, `--all-domains`).
    pub domains_by_name: bool,
    /// The command acts on devices with this backend.
    pub backend: Option<BackendChoice>,
    /// `validate --this-machine`: this machine's sysfs is the host.
    pub this_machine: bool,
    /// Other hosts (`inventory`, `place`, `map check`, `retarget --to`)
    /// include a libvirt URI.
    pub fleet_uri: bool,
}

/// Where host facts come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostSource {
    /// The command reads no host.
    None,
    Snapshot(PathBuf),
    /// A sysfs tree under DIR (`--root`).
    Root(PathBuf),
    /// libvirt's node devices at this URI.
    Libvirt(String),
    /// This machine's `/sys` and `/proc`.
    ThisMachine,
}

/// Where domains come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DomainSource {
    /// Nowhere: no domain is known to hold anything.
    None,
    /// This libvirt connection (`None`: libvirt's default URI).
    Libvirt(Option<String>),
}

/// The backend that acts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The command does not act.
    None,
    /// sysfs writes under this root; `execute: false` for a snapshot (a
    /// file is not a host: plans and `--dry-run` only).
    Sysfs { root: PathBuf, execute: bool },
    /// libvirt's node-device API at this URI.
    Libvirt(String),
    /// This machine: libvirt's system daemon when it answers, else sysfs.
    LibvirtElseSysfs,
}

/// The URI used for this machine's libvirt: the system daemon (libvirt's
/// default would start a session daemon for a non-root user).
pub(crate) const SYSTEM_URI: &str = "qemu:///system";

/// The invocation, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invocation {
    pub host: HostSource,
    pub domains: DomainSource,
    pub backend: Backend,
    /// Hosts besides [`Invocation::host`] are read through libvirt.
    pub(crate) fleet_libvirt: bool,
}

/// Options that name two hosts, or a backend that cannot act on the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvocationError {
    pub message: String,
    pub help: Vec<String>,
}

impl fmt::Display for InvocationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for InvocationError {}

fn err(message: impl Into<String>, help: &[&str]) -> InvocationError {
    InvocationError {
        message: message.into(),
        help: help.iter().map(|h| h.to_string()).collect(),
    }
}

/// Which backend acts, from `--backend` and the host source: libvirt
/// reads the host from libvirt (so `--root`/`--snapshot` are refused and
/// the host becomes the connection); sysfs acts under the root (a
/// snapshot is never acted on; a typed `-c` is refused;
/// `LIBVIRT_DEFAULT_URI` alone does not outrank it); auto follows the host
/// source. `explicit`: `--root` or `--snapshot` named the host; `typed_uri`:
/// `-c` was typed.
fn backend(
    choice: Option<BackendChoice>,
    g: &Given,
    explicit: bool,
    typed_uri: bool,
    host: &mut HostSource,
) -> Result<Backend, InvocationError> {
    Ok(match choice {
        None => Backend::None,
        Some(BackendChoice::Libvirt) => {
            if explicit {
                return Err(err(
                    "--backend libvirt reads the host from libvirt, not from --root or --snapshot",
                    &["drop --root/--snapshot and give -c URI, or use --backend sysfs"],
                ));
            }
            let uri = g.connect.clone().unwrap_or_else(|| SYSTEM_URI.to_string());
            *host = HostSource::Libvirt(uri.clone());
            Backend::Libvirt(uri)
        }
        Some(BackendChoice::Sysfs) => {
            match &*host {
                HostSource::Libvirt(_) if typed_uri => return Err(err(
                    "--backend sysfs acts on this machine's sysfs, but the host was given with -c",
                    &["drop -c to act through sysfs, or use --backend libvirt"],
                )),
                h => match sysfs_on(h) {
                    Some(b) => b,
                    None => {
                        // LIBVIRT_DEFAULT_URI alone does not outrank an explicit
                        // --backend sysfs: act on this machine.
                        *host = HostSource::ThisMachine;
                        Backend::Sysfs {
                            root: PathBuf::from("/"),
                            execute: true,
                        }
                    }
                },
            }
        }
        Some(BackendChoice::Auto) => match &*host {
            HostSource::Libvirt(u) => Backend::Libvirt(u.clone()),
            h => sysfs_on(h).unwrap_or(Backend::LibvirtElseSysfs),
        },
    })
}

/// The sysfs backend for a host named by `--root` (acts under that root)
/// or `--snapshot` (plans only: a snapshot is never acted on); `None` for
/// any other source.
fn sysfs_on(host: &HostSource) -> Option<Backend> {
    match host {
        HostSource::Root(r) => Some(Backend::Sysfs {
            root: r.clone(),
            execute: true,
        }),
        HostSource::Snapshot(_) => Some(Backend::Sysfs {
            root: PathBuf::from("/"),
            execute: false,
        }),
        _ => None,
    }
}

/// Where domains come from: libvirt when the command names domains, when
/// the host is libvirt's, or when `-c` was typed beside a file or tree
/// (`-c URI --snapshot FILE`: facts from the file, domains from the URI).
fn domain_source(
    uses: &Uses,
    g: &Given,
    host: &HostSource,
    typed_uri: Option<String>,
) -> DomainSource {
    if uses.domains_by_name {
        DomainSource::Libvirt(g.connect.clone())
    } else if let HostSource::Libvirt(u) = host {
        DomainSource::Libvirt(Some(u.clone()))
    } else if *host != HostSource::None && typed_uri.is_some() {
        // `-c URI --snapshot FILE`: facts from the file, domains from URI.
        DomainSource::Libvirt(typed_uri)
    } else {
        DomainSource::None
    }
}

impl Invocation {
    /// Decide everything from the options and what the command uses.
    pub fn resolve(g: &Given, uses: Uses) -> Result<Invocation, InvocationError> {
        if let (Some(_), Some(_)) = (&g.snapshot, &g.root) {
            let root = if g.root_from_env {
                "VIRT_PCI_ROOT (in the environment)"
            } else {
                "--root"
            };
            return Err(err(
                format!("--snapshot and {root} both name a host; give one"),
                &["--snapshot reads a saved host, --root a sysfs tree; unset VIRT_PCI_ROOT or drop one option"],
            ));
        }
        let typed_uri = g.connect.clone().filter(|_| !g.connect_from_env);
        let explicit = if let Some(s) = &g.snapshot {
            Some(HostSource::Snapshot(s.clone()))
        } else {
            g.root.clone().map(HostSource::Root)
        };
        if uses.this_machine && (explicit.is_some() || typed_uri.is_some()) {
            return Err(err(
                "--this-machine reads this machine; it cannot be combined with --root, --snapshot or -c",
                &["name one host"],
            ));
        }
        // The connection that names the host when no file or tree does.
        let host_uri = match uses.host {
            HostUse::IfNamed => typed_uri.clone(),
            _ => g.connect.clone(),
        };
        let mut host = match uses.host {
            HostUse::None => HostSource::None,
            _ if uses.this_machine => HostSource::ThisMachine,
            _ => match (&explicit, &host_uri) {
                (Some(h), _) => h.clone(),
                (None, Some(u)) => HostSource::Libvirt(u.clone()),
                (None, None) if uses.host == HostUse::Required => HostSource::ThisMachine,
                (None, None) => HostSource::None,
            },
        };
        let backend = backend(
            uses.backend,
            g,
            explicit.is_some(),
            typed_uri.is_some(),
            &mut host,
        )?;
        let domains = domain_source(&uses, g, &host, typed_uri);
        Ok(Invocation {
            host,
            domains,
            backend,
            fleet_libvirt: uses.fleet_uri,
        })
    }

    /// Reads nothing, acts on nothing (for reporting an error before the
    /// invocation could be resolved).
    pub fn empty() -> Invocation {
        Invocation {
            host: HostSource::None,
            domains: DomainSource::None,
            backend: Backend::None,
            fleet_libvirt: false,
        }
    }

    /// Whether anything here reads or acts through libvirt.
    pub fn needs_libvirt(&self) -> bool {
        self.fleet_libvirt
            || matches!(self.host, HostSource::Libvirt(_))
            || matches!(self.domains, DomainSource::Libvirt(_))
            || matches!(
                self.backend,
                Backend::Libvirt(_) | Backend::LibvirtElseSysfs
            )
    }

    /// The global options that name this host and connection again, for
    /// suggested commands (`--snapshot h.json`, `-c URI --root DIR`).
    pub fn host_args(&self) -> String {
        use crate::address::shell_word;
        let mut v: Vec<String> = Vec::new();
        if let DomainSource::Libvirt(Some(u)) = &self.domains {
            v.push(format!("-c {}", shell_word(u)));
        }
        match &self.host {
            HostSource::Snapshot(p) => v.push(format!(
                "--snapshot {}",
                shell_word(&p.display().to_string())
            )),
            HostSource::Root(p) => {
                v.push(format!("--root {}", shell_word(&p.display().to_string())))
            }
            HostSource::Libvirt(u) => {
                let c = format!("-c {}", shell_word(u));
                if !v.contains(&c) {
                    v.push(c);
                }
            }
            HostSource::ThisMachine | HostSource::None => {}
        }
        v.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(snapshot: bool, root: bool, uri: Option<(&str, bool)>) -> Given {
        Given {
            snapshot: snapshot.then(|| PathBuf::from("h.json")),
            root: root.then(|| PathBuf::from("/tmp/t")),
            root_from_env: false,
            connect: uri.map(|(u, _)| u.to_string()),
            connect_from_env: uri.is_some_and(|(_, env)| env),
        }
    }

    fn host() -> Uses {
        Uses {
            host: HostUse::Required,
            ..Uses::default()
        }
    }

    #[test]
    fn two_hosts_are_an_error_not_a_ranking() {
        let e = Invocation::resolve(&given(true, true, None), host()).unwrap_err();
        assert!(e.message.contains("--snapshot and --root"), "{e}");
        let mut g = given(true, true, None);
        g.root_from_env = true;
        let e = Invocation::resolve(&g, host()).unwrap_err();
        assert!(e.message.contains("VIRT_PCI_ROOT"), "{e}");
    }

    #[test]
    fn facts_and_domains_are_separate_choices() {
        let i = Invocation::resolve(&given(true, false, Some(("test:///h.xml", false))), host())
            .unwrap();
        assert_eq!(i.host, HostSource::Snapshot("h.json".into()));
        assert_eq!(
            i.domains,
            DomainSource::Libvirt(Some("test:///h.xml".into()))
        );
        assert!(i.needs_libvirt());
        assert_eq!(i.host_args(), "-c test:///h.xml --snapshot h.json");
        // LIBVIRT_DEFAULT_URI does not pull domains into a snapshot's plan.
        let i = Invocation::resolve(&given(true, false, Some(("qemu:///system", true))), host())
            .unwrap();
        assert_eq!(i.domains, DomainSource::None);
        assert!(!i.needs_libvirt());
    }

    #[test]
    fn a_uri_alone_names_the_host_from_flag_or_environment() {
        for env in [false, true] {
            let i = Invocation::resolve(&given(false, false, Some(("test:///h.xml", env))), host())
                .unwrap();
            assert_eq!(i.host, HostSource::Libvirt("test:///h.xml".into()));
            assert!(i.needs_libvirt());
        }
        let i = Invocation::resolve(&given(false, false, None), host()).unwrap();
        assert_eq!(i.host, HostSource::ThisMachine);
        assert!(!i.needs_libvirt());
    }

    #[test]
    fn validate_names_a_host_only_when_asked() {
        let v = Uses {
            host: HostUse::IfNamed,
            ..Uses::default()
        };
        let i =
            Invocation::resolve(&given(false, false, Some(("qemu:///system", true))), v).unwrap();
        assert_eq!(i.host, HostSource::None);
        assert!(!i.needs_libvirt());
        let i =
            Invocation::resolve(&given(false, false, Some(("test:///h.xml", false))), v).unwrap();
        assert_eq!(i.host, HostSource::Libvirt("test:///h.xml".into()));
        let me = Uses {
            this_machine: true,
            ..v
        };
        assert_eq!(
            Invocation::resolve(&given(false, false, None), me)
                .unwrap()
                .host,
            HostSource::ThisMachine
        );
        assert!(Invocation::resolve(&given(true, false, None), me).is_err());
    }

    #[test]
    fn backends() {
        let act = |b| Uses {
            host: HostUse::Required,
            backend: Some(b),
            ..Uses::default()
        };
        let i = Invocation::resolve(&given(false, true, None), act(BackendChoice::Auto)).unwrap();
        assert_eq!(
            i.backend,
            Backend::Sysfs {
                root: "/tmp/t".into(),
                execute: true
            }
        );
        assert!(!i.needs_libvirt());
        let i = Invocation::resolve(&given(true, false, None), act(BackendChoice::Auto)).unwrap();
        assert!(matches!(i.backend, Backend::Sysfs { execute: false, .. }));
        let i = Invocation::resolve(&given(false, false, None), act(BackendChoice::Auto)).unwrap();
        assert_eq!(i.backend, Backend::LibvirtElseSysfs);
        assert!(i.needs_libvirt());
        let i =
            Invocation::resolve(&given(false, false, None), act(BackendChoice::Libvirt)).unwrap();
        assert_eq!(i.backend, Backend::Libvirt(SYSTEM_URI.into()));
        assert!(
            Invocation::resolve(&given(true, false, None), act(BackendChoice::Libvirt)).is_err()
        );
        assert!(Invocation::resolve(
            &given(false, false, Some(("test:///h.xml", false))),
            act(BackendChoice::Sysfs)
        )
        .is_err());
        let i = Invocation::resolve(
            &given(false, false, Some(("qemu:///system", true))),
            act(BackendChoice::Sysfs),
        )
        .unwrap();
        assert_eq!(i.host, HostSource::ThisMachine);
        assert!(!i.needs_libvirt());
    }

    #[test]
    fn domains_by_name_need_libvirt_even_with_a_snapshot() {
        let u = Uses {
            host: HostUse::Required,
            domains_by_name: true,
            ..Uses::default()
        };
        let i = Invocation::resolve(&given(true, false, None), u).unwrap();
        assert_eq!(i.domains, DomainSource::Libvirt(None));
        assert!(i.needs_libvirt());
    }
}
