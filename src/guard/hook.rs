//! Installing the guard as a libvirt hook.
//!
//! libvirt (since 6.5) runs every executable in `/etc/libvirt/hooks/qemu.d/`,
//! sorted by name, after the single `/etc/libvirt/hooks/qemu`
//! (`virHookCall`, src/util/virhook.c). virt-pci manages one file there,
//! `virt-pci-guard`, and never the monolithic `qemu` script that many VFIO
//! guides install. The name sorts after the usual `NN-name` scripts, so the
//! guard sees the host as those scripts left it (a script that binds a GPU's
//! audio function to vfio-pci at `prepare begin` runs first).
//!
//! libvirt looks for hooks at start-up and on SIGHUP only
//! (`virHookInitialize`), so a new or removed hook takes effect after a
//! reload of the daemon that runs QEMU domains: `libvirtd`, or `virtqemud`
//! with the modular daemons.
//!
//! The file is [`SCRIPT`] with the binary's path filled in; its marker line
//! tells our file from someone else's, which is never overwritten or removed.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// The hook script template: `@VIRT_PCI@` is the virt-pci binary's path.
/// The Debian package ships the same file (`make deb`; see README).
pub const SCRIPT: &str = include_str!("hook.sh");
/// The file's name in `qemu.d/`.
pub const NAME: &str = "virt-pci-guard";
/// The line that marks the file as ours.
const MARKER: &str = "# virt-pci guard: ";

/// The hook file under `root` (`/` for this machine).
pub fn path(root: &Path) -> PathBuf {
    root.join("etc/libvirt/hooks/qemu.d").join(NAME)
}

/// The script for `binary`.
pub fn render(binary: &Path) -> Result<String, HookError> {
    let b = binary.to_string_lossy();
    if !binary.is_absolute() || b.contains('\'') || b.contains('\n') {
        return Err(HookError::BadBinary(binary.to_path_buf()));
    }
    Ok(SCRIPT.replace("@VIRT_PCI@", &b))
}

/// What is at the hook's path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    Absent,
    /// Ours, exactly as `render(binary)` would write it.
    Current {
        binary: PathBuf,
    },
    /// Ours, but another binary or an older template.
    Outdated {
        binary: Option<PathBuf>,
    },
    /// Someone else's file.
    Foreign,
}

#[derive(Debug)]
pub enum HookError {
    Io { path: PathBuf, source: io::Error },
    BadBinary(PathBuf),
    Foreign(PathBuf),
}

impl fmt::Display for HookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HookError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            HookError::BadBinary(p) => write!(
                f,
                "the hook cannot run `{}`: give an absolute path without quotes or line breaks",
                p.display()
            ),
            HookError::Foreign(p) => write!(
                f,
                "{} exists and was not written by virt-pci; leaving it alone",
                p.display()
            ),
        }
    }
}

impl std::error::Error for HookError {}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> HookError + '_ {
    move |source| HookError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The binary an installed script of ours runs.
fn binary_of(text: &str) -> Option<PathBuf> {
    text.lines()
        .find_map(|l| l.strip_prefix("VIRT_PCI='"))
        .and_then(|r| r.strip_suffix('\''))
        .map(PathBuf::from)
}

/// What is installed under `root`, compared with `render(binary)`.
pub fn state(root: &Path, binary: &Path) -> Result<State, HookError> {
    let p = path(root);
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(State::Absent),
        Err(e) => return Err(io_err(&p)(e)),
    };
    if !text.lines().any(|l| l.starts_with(MARKER)) {
        return Ok(State::Foreign);
    }
    let installed = binary_of(&text);
    let executable = is_executable(&p);
    if executable && render(binary).is_ok_and(|w| w == text) {
        Ok(State::Current {
            binary: binary.to_path_buf(),
        })
    } else {
        Ok(State::Outdated { binary: installed })
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// What `install`/`uninstall` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Installed,
    Updated,
    Unchanged,
    Removed,
    NotInstalled,
}

impl Change {
    /// Whether the daemon must reload to see the change.
    pub fn needs_reload(&self) -> bool {
        matches!(self, Change::Installed | Change::Updated | Change::Removed)
    }
}

/// Install (or update) the hook under `root` to run `binary`. Idempotent;
/// never replaces a file that is not ours.
pub fn install(root: &Path, binary: &Path) -> Result<Change, HookError> {
    use std::os::unix::fs::PermissionsExt;
    let text = render(binary)?;
    let change = match state(root, binary)? {
        State::Current { .. } => return Ok(Change::Unchanged),
        State::Foreign => return Err(HookError::Foreign(path(root))),
        State::Absent => Change::Installed,
        State::Outdated { .. } => Change::Updated,
    };
    let p = path(root);
    let dir = p.parent().unwrap_or(root).to_path_buf();
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    crate::fsutil::write_atomic(&p, text.as_bytes(), None).map_err(|e| HookError::Io {
        path: p.clone(),
        source: e.source,
    })?;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).map_err(io_err(&p))?;
    Ok(change)
}

/// Remove the hook under `root` when it is ours.
pub fn uninstall(root: &Path) -> Result<Change, HookError> {
    let p = path(root);
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Change::NotInstalled),
        Err(e) => return Err(io_err(&p)(e)),
    };
    if !text.lines().any(|l| l.starts_with(MARKER)) {
        return Err(HookError::Foreign(p));
    }
    std::fs::remove_file(&p).map_err(io_err(&p))?;
    Ok(Change::Removed)
}

/// The daemons that run QEMU domains and read the qemu hooks.
pub(crate) const DAEMONS: &[&str] = &["libvirtd", "virtqemud"];

/// A running daemon found from its pid file under `root`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Daemon {
    pub name: &'static str,
    pub pid: u32,
}

/// The daemons whose pid file under `root/run` names a live process.
pub fn running_daemons(root: &Path) -> Vec<Daemon> {
    DAEMONS
        .iter()
        .filter_map(|name| {
            let pid: u32 = std::fs::read_to_string(root.join("run").join(format!("{name}.pid")))
                .ok()?
                .trim()
                .parse()
                .ok()?;
            root.join("proc")
                .join(pid.to_string())
                .exists()
                .then_some(Daemon { name, pid })
        })
        .collect()
}

/// Whether the hook file is newer than the daemon's start: the daemon has
/// not seen it yet (`None` when either time is unknown).
pub fn newer_than_daemon(root: &Path, d: &Daemon) -> Option<bool> {
    let hook = std::fs::metadata(path(root)).ok()?.modified().ok()?;
    let started = std::fs::metadata(root.join("proc").join(d.pid.to_string()))
        .ok()?
        .modified()
        .ok()?;
    Some(hook > started)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_is_idempotent_and_leaves_foreign_files_alone() {
        let d = tempfile::tempdir().unwrap();
        let bin = Path::new("/usr/bin/virt-pci");
        assert_eq!(state(d.path(), bin).unwrap(), State::Absent);
        assert_eq!(install(d.path(), bin).unwrap(), Change::Installed);
        let text = std::fs::read_to_string(path(d.path())).unwrap();
        assert!(text.contains("VIRT_PCI='/usr/bin/virt-pci'"), "{text}");
        assert!(text.contains("exec \"$VIRT_PCI\" guard -- \"$@\""));
        assert!(is_executable(&path(d.path())));
        assert_eq!(
            state(d.path(), bin).unwrap(),
            State::Current {
                binary: bin.to_path_buf()
            }
        );
        assert_eq!(install(d.path(), bin).unwrap(), Change::Unchanged);
        let other = Path::new("/opt/virt-pci/bin/virt-pci");
        assert_eq!(
            state(d.path(), other).unwrap(),
            State::Outdated {
                binary: Some(bin.to_path_buf())
            }
        );
        assert_eq!(install(d.path(), other).unwrap(), Change::Updated);
        assert_eq!(uninstall(d.path()).unwrap(), Change::Removed);
        assert_eq!(uninstall(d.path()).unwrap(), Change::NotInstalled);
        // The monolithic hook and the directory's other scripts are not ours.
        std::fs::write(path(d.path()), "#!/bin/sh\nexit 0\n").unwrap();
        assert_eq!(state(d.path(), bin).unwrap(), State::Foreign);
        assert!(matches!(install(d.path(), bin), Err(HookError::Foreign(_))));
        assert!(matches!(uninstall(d.path()), Err(HookError::Foreign(_))));
        assert!(!d.path().join("etc/libvirt/hooks/qemu").exists());
        assert!(matches!(
            render(Path::new("virt-pci")),
            Err(HookError::BadBinary(_))
        ));
    }
}
