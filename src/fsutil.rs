//! Writing files without ever losing one.
//!
//! An in-place edit must leave either the old file or the new one, never a
//! half-written file, and must keep what the user set on the old file. The
//! recipe was measured with strace (docs/dependencies.md §9):
//! resolve symlinks first (the link stays, its target is edited), write a
//! temporary file in the same directory, give it the original's mode and
//! owner, fsync it, rename it over the original, fsync the directory.
//! `tempfile`'s `persist` alone does none of the mode/owner/fsync steps.
//! A backup is a hard link to the old inode (same mode, owner, content),
//! made before the rename, so the path never goes missing; where hard links
//! are not possible, a copy.
//!
//! Not preserved: xattrs, SELinux labels and ACLs (libvirt's
//! /etc/libvirt/qemu may carry labels; `restorecon` after editing there).

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// An I/O failure with the path it happened on and what we were doing.
#[derive(Debug)]
pub struct WriteError {
    pub path: PathBuf,
    pub action: &'static str,
    pub source: io::Error,
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot {} {}: {}",
            self.action,
            self.path.display(),
            self.source
        )
    }
}

impl std::error::Error for WriteError {}

/// tempfile wraps errors with its own path text; give back the plain OS
/// error (the path is in our message already).
fn plain(e: io::Error) -> io::Error {
    if e.raw_os_error().is_some() {
        return e;
    }
    let code = match e.kind() {
        io::ErrorKind::NotFound => 2,
        io::ErrorKind::PermissionDenied => 13,
        io::ErrorKind::ReadOnlyFilesystem => 30,
        io::ErrorKind::StorageFull => 28,
        io::ErrorKind::QuotaExceeded => 122,
        _ => return e,
    };
    io::Error::from_raw_os_error(code)
}

fn err(path: &Path, action: &'static str) -> impl FnOnce(io::Error) -> WriteError {
    let path = path.to_path_buf();
    move |source| WriteError {
        path,
        action,
        source: plain(source),
    }
}

/// Where a write to `path` really lands: symlinks resolved; for a file that
/// does not exist yet, its (resolved) directory and name.
pub fn resolve_target(path: &Path) -> Result<PathBuf, WriteError> {
    match fs::canonicalize(path) {
        Ok(p) => Ok(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let name = path.file_name().ok_or_else(|| WriteError {
                path: path.to_path_buf(),
                action: "write",
                source: io::Error::new(io::ErrorKind::InvalidInput, "not a file name"),
            })?;
            let parent = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            let dir = fs::canonicalize(parent).map_err(err(parent, "write into"))?;
            Ok(dir.join(name))
        }
        Err(e) => Err(err(path, "resolve")(e)),
    }
}

/// Replace (or create) the regular file at `path` with `data`, atomically.
/// With `backup`, the old file is kept as `PATH{backup}`.
///
/// On any error the original file is untouched and the temporary file is
/// removed. Paths that exist but are not regular files (`/dev/stdout`,
/// `/dev/full`, a FIFO) are written directly instead: they cannot be
/// replaced, and renaming over a device node would be wrong.
pub fn write_atomic(path: &Path, data: &[u8], backup: Option<&str>) -> Result<(), WriteError> {
    let target = resolve_target(path)?;
    let meta = match fs::metadata(&target) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(err(&target, "inspect")(e)),
    };
    if let Some(m) = &meta {
        if m.is_dir() {
            return Err(err(&target, "write")(io::Error::new(
                io::ErrorKind::IsADirectory,
                "it is a directory",
            )));
        }
        if !m.is_file() {
            return write_direct(&target, data);
        }
    }
    let dir = target.parent().unwrap_or(Path::new("/")).to_path_buf();
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(err(&dir, "create a temporary file in"))?;
    tmp.write_all(data).map_err(err(tmp.path(), "write"))?;
    tmp.flush().map_err(err(tmp.path(), "write"))?;
    if let Some(m) = &meta {
        let f = tmp.as_file();
        f.set_permissions(fs::Permissions::from_mode(m.mode() & 0o7777))
            .map_err(err(&target, "copy the mode of"))?;
        match std::os::unix::fs::fchown(f, Some(m.uid()), Some(m.gid())) {
            Ok(()) => {}
            // Not root: the file keeps our owner, as with any editor.
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {}
            Err(e) => return Err(err(&target, "copy the owner of")(e)),
        }
        // fchown may clear setuid/setgid bits; set the mode again.
        f.set_permissions(fs::Permissions::from_mode(m.mode() & 0o7777))
            .map_err(err(&target, "copy the mode of"))?;
    }
    tmp.as_file().sync_all().map_err(err(tmp.path(), "sync"))?;
    if let (Some(suffix), Some(_)) = (backup, &meta) {
        make_backup(&target, suffix)?;
    }
    tmp.persist(&target)
        .map_err(|e| err(&target, "replace")(e.error))?;
    fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(err(&dir, "sync the directory"))?;
    Ok(())
}

fn make_backup(target: &Path, suffix: &str) -> Result<(), WriteError> {
    let mut b = target.as_os_str().to_owned();
    b.push(suffix);
    let backup = PathBuf::from(b);
    let dir = target.parent().unwrap_or(Path::new("/"));
    // Link (or copy) to a temporary name, then rename over any old backup.
    let tmp = tempfile::Builder::new()
        .prefix(".virt-pci-backup.")
        .make_in(dir, |p| fs::hard_link(target, p))
        .or_else(|_| {
            tempfile::Builder::new()
                .prefix(".virt-pci-backup.")
                .make_in(dir, |p| {
                    fs::copy(target, p)?;
                    fs::File::open(p)?.sync_all()
                })
        })
        .map_err(err(&backup, "write the backup"))?;
    tmp.persist(&backup)
        .map_err(|e| err(&backup, "write the backup")(e.error))?;
    Ok(())
}

fn write_direct(target: &Path, data: &[u8]) -> Result<(), WriteError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(target)
        .map_err(err(target, "open"))?;
    f.write_all(data).map_err(err(target, "write"))?;
    f.flush().map_err(err(target, "write"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn keeps_mode_edits_symlink_target_and_backs_up() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("vm.xml");
        fs::write(&real, "old").unwrap();
        fs::set_permissions(&real, fs::Permissions::from_mode(0o640)).unwrap();
        let link = d.path().join("link.xml");
        symlink(&real, &link).unwrap();
        write_atomic(&link, b"new", Some(".bak")).unwrap();
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read_to_string(&real).unwrap(), "new");
        assert_eq!(fs::metadata(&real).unwrap().mode() & 0o7777, 0o640);
        let bak = d.path().join("vm.xml.bak");
        assert_eq!(fs::read_to_string(&bak).unwrap(), "old");
        assert_eq!(fs::metadata(&bak).unwrap().mode() & 0o7777, 0o640);
        // A second write replaces the backup.
        write_atomic(&link, b"newer", Some(".bak")).unwrap();
        assert_eq!(fs::read_to_string(&bak).unwrap(), "new");
        // No temporary files are left behind.
        let names: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
    }

    #[test]
    fn missing_directory_is_an_error_naming_it() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("no/such/dir/vm.xml");
        let e = write_atomic(&p, b"x", None).unwrap_err();
        assert!(e.to_string().contains("no/such/dir"), "{e}");
    }

    #[test]
    fn full_device_reports_no_space() {
        if !Path::new("/dev/full").exists() {
            return;
        }
        let e = write_atomic(Path::new("/dev/full"), b"x", None).unwrap_err();
        assert_eq!(e.source.raw_os_error(), Some(28), "{e}");
    }
}
