//! The one runner for the `virt-pci` binary in tests, and its guard.
//!
//! No test may read or change this machine's devices, so every run must name
//! its host explicitly — `--root DIR` (not `/`), `--snapshot FILE`,
//! `--from-listing FILE`, `-c test:///…`, or `VIRT_PCI_ROOT=DIR` set by the
//! test — or be a command that reads no host (`--help`, `--version`,
//! `completions`, `man`, `fake-sysfs`, `validate`, and `inventory`, `map`,
//! `place`, which read the hosts named as their arguments). A run naming a
//! real libvirt connection is refused in the libvirt build (in the default
//! build the binary cannot connect: it says so, and such a run tests that). The check runs when
//! the command runs (`assert`, `output`, `std_command`), so arguments added
//! after `vp()` count; a refusal panics with "test guard: …" (a harness error,
//! not a product one).
//!
//! The environment the binary sees is cleaned: `LIBVIRT_DEFAULT_URI`,
//! `VIRSH_DEFAULT_CONNECT_URI` and `VIRT_PCI_ROOT` removed (a test sets them
//! explicitly if it tests them), `NO_COLOR=1`, and `VIRT_PCI_NO_COMPANION=1`
//! (this binary, not an installed `virt-pci-libvirt`, answers).
//!
//! `bin_path()` is only for a binary another program runs (a libvirt hook
//! script, a shell's completion, README's shell sessions); those callers name
//! the host in that program's words and environment. `tests/it/main.rs`
//! checks that no other module starts the binary.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

/// The binary under test, for programs that run it themselves.
pub fn bin_path() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_virt-pci"))
}

/// A guarded `virt-pci` invocation (the `assert_cmd::Command` methods tests use).
pub struct Vp {
    cmd: assert_cmd::Command,
    args: Vec<OsString>,
    env_root: Option<OsString>,
    env_uri: Option<OsString>,
    /// What the test set or removed, replayed for `via`.
    envs: Vec<(OsString, Option<OsString>)>,
    dir: Option<PathBuf>,
}

/// `virt-pci` with a clean environment and no arguments yet.
pub fn vp() -> Vp {
    let mut cmd = assert_cmd::Command::new(bin_path());
    cmd.env("VIRT_PCI_NO_COMPANION", "1")
        .env("NO_COLOR", "1")
        .env_remove("LIBVIRT_DEFAULT_URI")
        .env_remove("VIRSH_DEFAULT_CONNECT_URI")
        .env_remove("VIRT_PCI_ROOT");
    Vp {
        cmd,
        args: Vec::new(),
        env_root: None,
        env_uri: None,
        envs: Vec::new(),
        dir: None,
    }
}

impl Vp {
    pub fn arg(&mut self, a: impl AsRef<OsStr>) -> &mut Self {
        self.args.push(a.as_ref().to_owned());
        self.cmd.arg(a);
        self
    }

    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for a in args {
            self.arg(a);
        }
        self
    }

    pub fn env(&mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> &mut Self {
        match k.as_ref().to_str() {
            Some("VIRT_PCI_ROOT") => self.env_root = Some(v.as_ref().to_owned()),
            Some("LIBVIRT_DEFAULT_URI") => self.env_uri = Some(v.as_ref().to_owned()),
            _ => {}
        }
        self.envs
            .push((k.as_ref().to_owned(), Some(v.as_ref().to_owned())));
        self.cmd.env(k, v);
        self
    }

    pub fn env_remove(&mut self, k: impl AsRef<OsStr>) -> &mut Self {
        match k.as_ref().to_str() {
            Some("VIRT_PCI_ROOT") => self.env_root = None,
            Some("LIBVIRT_DEFAULT_URI") => self.env_uri = None,
            _ => {}
        }
        self.envs.push((k.as_ref().to_owned(), None));
        self.cmd.env_remove(k);
        self
    }

    pub fn current_dir(&mut self, d: impl AsRef<Path>) -> &mut Self {
        self.dir = Some(d.as_ref().to_owned());
        self.cmd.current_dir(d);
        self
    }

    pub fn write_stdin(&mut self, input: impl Into<Vec<u8>>) -> &mut Self {
        self.cmd.write_stdin(input);
        self
    }

    pub fn timeout(&mut self, t: std::time::Duration) -> &mut Self {
        self.cmd.timeout(t);
        self
    }

    /// Runs (after the guard) and returns assert_cmd's assertions.
    pub fn assert(&mut self) -> assert_cmd::assert::Assert {
        self.guard();
        self.cmd.assert()
    }

    /// Runs (after the guard) and returns the output.
    pub fn output(&mut self) -> std::io::Result<std::process::Output> {
        self.guard();
        self.cmd.output()
    }

    /// The same invocation as a `std::process::Command` (after the guard),
    /// for pipes, concurrent runs and stdio the test arranges itself.
    pub fn std_command(&mut self) -> std::process::Command {
        self.via(bin_path(), Vec::<OsString>::new())
    }

    /// The invocation run by a launcher (`setpriv … --`, `unshare … sh -c`):
    /// `LAUNCHER LAUNCHER_ARGS… virt-pci ARGS…`, after the guard.
    pub fn via<I, S>(
        &mut self,
        launcher: impl AsRef<OsStr>,
        launcher_args: I,
    ) -> std::process::Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.guard();
        let mut c = std::process::Command::new(launcher.as_ref());
        c.args(launcher_args);
        if launcher.as_ref() != bin_path().as_os_str() {
            c.arg(bin_path());
        }
        c.args(&self.args)
            .env("VIRT_PCI_NO_COMPANION", "1")
            .env("NO_COLOR", "1")
            .env_remove("LIBVIRT_DEFAULT_URI")
            .env_remove("VIRSH_DEFAULT_CONNECT_URI")
            .env_remove("VIRT_PCI_ROOT");
        for (k, v) in &self.envs {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        if let Some(d) = &self.dir {
            c.current_dir(d);
        }
        c
    }

    fn guard(&self) {
        let args: Vec<String> = self
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let env_root = self
            .env_root
            .as_ref()
            .map(|r| r.to_string_lossy().into_owned());
        let env_uri = self
            .env_uri
            .as_ref()
            .map(|r| r.to_string_lossy().into_owned());
        if let Err(why) = check(&args, env_root.as_deref(), env_uri.as_deref()) {
            panic!("test guard: {why}: virt-pci {args:?}");
        }
    }
}

/// Global options that take a value (the value is not the subcommand).
const VALUED: [&str; 6] = [
    "--root",
    "--snapshot",
    "-c",
    "--connect",
    "--pci-ids",
    "--color",
];

/// Commands that read no host (or only the hosts named as their arguments;
/// `place` reads a source host only when the usual options name one).
const HOST_FREE: [&str; 8] = [
    "completions",
    "man",
    "help",
    "fake-sysfs",
    "validate",
    "inventory",
    "map",
    "place",
];

/// Ok when the invocation names its host or reads none; else why not.
pub fn check(args: &[String], env_root: Option<&str>, env_uri: Option<&str>) -> Result<(), String> {
    let real_uri = |u: &str| u.contains("://") && !u.starts_with("test:///");
    let mut explicit = env_root.is_some_and(|r| !r.is_empty() && r != "/");
    let mut sub: Option<&str> = None;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        let next = args.get(i + 1).map(String::as_str);
        let (opt, val) = match a.split_once('=') {
            Some((o, v)) if o.starts_with("--") => (o, Some(v)),
            _ => (a, None),
        };
        let takes = VALUED.contains(&opt) || opt == "--from-listing";
        let val = val.or(if takes { next } else { None });
        match opt {
            "--root" => match val {
                Some("/") | Some("") | None => {
                    return Err("--root must name a fake tree, not /".into())
                }
                Some(_) => explicit = true,
            },
            "--snapshot" | "--from-listing" => explicit |= val.is_some_and(|v| !v.is_empty()),
            "-c" | "--connect" => match val {
                Some(u) if u.starts_with("test:///") => explicit = true,
                Some(u) if cfg!(feature = "libvirt") => {
                    return Err(format!("{u} is a real libvirt connection"))
                }
                // Without libvirt the binary refuses any connection (exit 2)
                // and reads nothing: the run tests that refusal.
                Some(_) => explicit = true,
                None => {}
            },
            "-h" | "--help" | "-V" | "--version" => return Ok(()),
            _ if !a.starts_with('-') && sub.is_none() => sub = Some(a),
            _ if cfg!(feature = "libvirt") && real_uri(a) => {
                return Err(format!("{a} is a real libvirt connection"))
            }
            _ => {}
        }
        if takes && !a.contains('=') {
            i += 1;
        }
        i += 1;
    }
    if cfg!(feature = "libvirt") && env_uri.is_some_and(real_uri) && !explicit {
        return Err("LIBVIRT_DEFAULT_URI names a real libvirt connection".into());
    }
    if explicit || sub.is_some_and(|s| HOST_FREE.contains(&s)) {
        Ok(())
    } else {
        Err("every run must name a fake host (--root DIR, --snapshot FILE, -c test:///…) or read none".into())
    }
}

#[test]
fn the_guard_refuses_runs_without_a_host_and_allows_named_ones() {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    for bad in [
        &["detach", "01:00.0"][..],
        &["list", "--json"],
        &["--root", "/", "list"],
        &["--root=/", "list"],
        &["--pci-ids", "validate", "list"],
        &["snippet", "--snapshot"],
    ] {
        assert!(check(&s(bad), None, None).is_err(), "{bad:?}");
    }
    // The environment's URI is no host (issue 12: it used to read sysfs).
    assert!(check(
        &s(&["remove", "vm.xml", "10de:1e84"]),
        None,
        Some("test:///x.xml")
    )
    .is_err());
    assert!(check(&s(&["list"]), Some("/"), None).is_err());
    for good in [
        &["--root", "/tmp/x", "list"][..],
        &["--snapshot=s.json", "show", "01:00.0"],
        &["detach", "--snapshot", "s.json", "01:00.0"],
        &["-c", "test:///default", "list"],
        &["--connect=test:///default", "list"],
        &["snapshot", "--from-listing", "l.txt"],
        &["validate", "vm.xml"],
        &["--color", "never", "validate", "vm.xml"],
        &["completions", "bash"],
        &["list", "--help"],
        &["inventory", "samples/hosts"],
    ] {
        assert_eq!(check(&s(good), None, None), Ok(()), "{good:?}");
    }
    assert_eq!(check(&s(&["list"]), Some("/tmp/x"), None), Ok(()));
    if cfg!(feature = "libvirt") {
        assert!(check(&s(&["-c", "qemu:///system", "list"]), None, None).is_err());
        assert!(check(
            &s(&["validate", "-c", "qemu:///system", "x.xml"]),
            None,
            None
        )
        .is_err());
        assert!(check(&s(&["inventory", "qemu+ssh://h/system"]), None, None).is_err());
    }
}

#[test]
fn no_test_starts_the_binary_except_through_this_runner() {
    // One runner: a new test file cannot bring back an unguarded one.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it");
    let mut files = vec![];
    let mut todo = vec![dir.clone()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    assert!(files.len() > 10, "{files:?}");
    let needles = [concat!("cargo", "_bin"), concat!("CARGO_BIN", "_EXE")];
    for f in files {
        if f.ends_with("run.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        for n in needles {
            assert!(
                !text.contains(n),
                "{} starts the binary itself ({n}); use crate::run::vp()",
                f.display()
            );
        }
    }
}
