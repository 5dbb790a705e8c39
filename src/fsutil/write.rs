//! The atomic replace: a temporary file in the same directory, given the
//! original's mode and owner, synced, renamed over the original, the
//! directory synced; killed writers' temporary files cleaned up; backups
//! that never replace a file. See the guarantees in [`super`].

use super::resolve::{resolve, Resolved};
use super::{err, errno, euid, invalid, WriteError};
use rustix::fd::OwnedFd;
use rustix::fs::{AtFlags, FileType, FlockOperation, Mode, OFlags};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

/// Our temporary files older than this, and not locked, are a killed
/// writer's leftovers.
const STALE_TEMP_AGE: Duration = Duration::from_secs(60);

/// Replace (or create) the regular file at `path` with `data`, atomically.
/// With `backup`, the old file is kept as `PATH{backup}`.
///
/// On any error the original file is untouched and the temporary file is
/// removed. Paths that exist but are not regular files (`/dev/stdout`,
/// `/dev/full`, a FIFO) are written directly instead: they cannot be
/// replaced, and renaming over a device node would be wrong.
pub fn write_atomic(path: &Path, data: &[u8], backup: Option<&str>) -> Result<(), WriteError> {
    if let Some(s) = backup {
        if s.is_empty() || s.contains('/') || s.contains('\0') {
            return Err(err(path, "keep a backup at")(invalid(
                "the backup suffix must be non-empty and hold no `/` (e.g. --backup .orig)",
            )));
        }
    }
    let r = resolve(path)?;
    let target = r.path();
    let meta = match rustix::fs::statat(&r.dirfd, r.name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(m) => Some(m),
        Err(rustix::io::Errno::NOENT) => None,
        Err(e) => return Err(err(&target, "inspect")(errno(e))),
    };
    if let Some(m) = &meta {
        match FileType::from_raw_mode(m.st_mode) {
            FileType::RegularFile => {}
            FileType::Directory => {
                return Err(err(&target, "write")(io::Error::new(
                    io::ErrorKind::IsADirectory,
                    "it is a directory",
                )))
            }
            FileType::Symlink => {
                return Err(err(&target, "write")(io::Error::other(
                    "it was replaced by a symlink while we resolved it",
                )))
            }
            _ => return write_direct(&r, data),
        }
    }
    let backup_name = match (backup, &meta) {
        (Some(suffix), Some(_)) => {
            let mut b = r.name.clone();
            b.push(suffix);
            if rustix::fs::statat(&r.dirfd, b.as_os_str(), AtFlags::SYMLINK_NOFOLLOW).is_ok() {
                return Err(err(&r.dir.join(&b), "keep a backup at")(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "it exists already, and a backup never replaces a file",
                )));
            }
            Some(b)
        }
        _ => None,
    };
    remove_stale_temps(&r);
    let (tmp_name, tmp) = create_temp(&r)?;
    let cleanup = |e: WriteError| {
        let _ = rustix::fs::unlinkat(&r.dirfd, tmp_name.as_os_str(), AtFlags::empty());
        e
    };
    let tmp_path = r.dir.join(&tmp_name);
    let mut f = fs::File::from(tmp);
    f.write_all(data)
        .and_then(|()| f.flush())
        .map_err(|e| cleanup(err(&target, "write")(e)))?;
    if let Some(m) = &meta {
        let mode = Mode::from_raw_mode(m.st_mode & 0o7777);
        rustix::fs::fchmod(&f, mode)
            .map_err(|e| cleanup(err(&target, "copy the mode of")(errno(e))))?;
        let (uid, gid) = (m.st_uid, m.st_gid);
        let owner = (
            rustix::fs::Uid::from_raw(uid),
            rustix::fs::Gid::from_raw(gid),
        );
        match rustix::fs::fchown(&f, Some(owner.0), Some(owner.1)) {
            Ok(()) => {}
            // Not root: the file keeps our owner, as with any editor.
            Err(rustix::io::Errno::PERM) | Err(rustix::io::Errno::ACCESS) => {}
            Err(e) => return Err(cleanup(err(&target, "copy the owner of")(errno(e)))),
        }
        // fchown may clear setuid/setgid bits; set the mode again.
        rustix::fs::fchmod(&f, mode)
            .map_err(|e| cleanup(err(&target, "copy the mode of")(errno(e))))?;
    }
    f.sync_all()
        .map_err(|e| cleanup(err(&tmp_path, "sync")(e)))?;
    if let Some(b) = &backup_name {
        make_backup(&r, b).map_err(cleanup)?;
    }
    if let Err(e) =
        rustix::fs::renameat(&r.dirfd, tmp_name.as_os_str(), &r.dirfd, r.name.as_os_str())
    {
        if let Some(b) = &backup_name {
            let _ = rustix::fs::unlinkat(&r.dirfd, b.as_os_str(), AtFlags::empty());
        }
        return Err(cleanup(err(&target, "replace")(errno(e))));
    }
    drop(f);
    rustix::fs::fsync(&r.dirfd).map_err(|e| err(&r.dir, "sync the directory")(errno(e)))?;
    Ok(())
}

/// A fresh `.virt-pci-XXXXXXXXXXXX.tmp` in the directory, created
/// exclusively with mode 0666 (the kernel applies the umask) and locked.
fn create_temp(r: &Resolved) -> Result<(OsString, OwnedFd), WriteError> {
    use std::hash::{BuildHasher, Hasher};
    let mut last = None;
    for i in 0..100u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(i);
        h.write_u32(std::process::id());
        let name = OsString::from(format!(
            ".virt-pci-{:012x}.tmp",
            h.finish() & 0xffff_ffff_ffff
        ));
        match rustix::fs::openat(
            &r.dirfd,
            name.as_os_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o666),
        ) {
            Ok(fd) => {
                let _ = rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive);
                return Ok((name, fd));
            }
            Err(rustix::io::Errno::EXIST) => last = Some(rustix::io::Errno::EXIST),
            Err(e) => return Err(err(&r.dir, "create a temporary file in")(errno(e))),
        }
    }
    Err(err(&r.dir, "create a temporary file in")(errno(
        last.unwrap_or(rustix::io::Errno::EXIST),
    )))
}

fn is_our_temp(name: &OsStr) -> bool {
    let b = name.as_bytes();
    b.len() == 26
        && b.starts_with(b".virt-pci-")
        && b.ends_with(b".tmp")
        && b[10..22].iter().all(|c| c.is_ascii_hexdigit())
}

/// Remove our own temporary files that a killed writer left: ours by name
/// and owner, unlocked, older than [`STALE_TEMP_AGE`]. Best effort.
fn remove_stale_temps(r: &Resolved) {
    let Ok(it) = fs::read_dir(&r.dir) else { return };
    let now = std::time::SystemTime::now();
    for e in it.filter_map(|e| e.ok()) {
        let name = e.file_name();
        if !is_our_temp(&name) {
            continue;
        }
        let Ok(fd) = rustix::fs::openat(
            &r.dirfd,
            name.as_os_str(),
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        ) else {
            continue;
        };
        let Ok(st) = rustix::fs::fstat(&fd) else {
            continue;
        };
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile || st.st_uid != euid() {
            continue;
        }
        let age = std::time::UNIX_EPOCH + Duration::from_secs(st.st_mtime.max(0) as u64);
        if now.duration_since(age).unwrap_or_default() < STALE_TEMP_AGE {
            continue;
        }
        if rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive).is_err() {
            continue;
        }
        // Still the same file under that name?
        match rustix::fs::statat(&r.dirfd, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(now) if now.st_ino == st.st_ino && now.st_dev == st.st_dev => {
                let _ = rustix::fs::unlinkat(&r.dirfd, name.as_os_str(), AtFlags::empty());
            }
            _ => {}
        }
    }
}

/// Link (or copy) the current file to `backup`, never replacing anything.
fn make_backup(r: &Resolved, backup: &OsStr) -> Result<(), WriteError> {
    let bpath = r.dir.join(backup);
    match rustix::fs::linkat(
        &r.dirfd,
        r.name.as_os_str(),
        &r.dirfd,
        backup,
        AtFlags::empty(),
    ) {
        Ok(()) => return Ok(()),
        Err(rustix::io::Errno::EXIST) => {
            return Err(err(&bpath, "keep a backup at")(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "it exists already, and a backup never replaces a file",
            )))
        }
        Err(_) => {}
    }
    // No hard links here (some filesystems): a copy, created exclusively.
    let copy = || -> io::Result<()> {
        let src = rustix::fs::openat(
            &r.dirfd,
            r.name.as_os_str(),
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno)?;
        let st = rustix::fs::fstat(&src).map_err(errno)?;
        let dst = rustix::fs::openat(
            &r.dirfd,
            backup,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(st.st_mode & 0o7777),
        )
        .map_err(errno)?;
        let mut src = fs::File::from(src);
        let mut dst = fs::File::from(dst);
        let res = io::copy(&mut src, &mut dst).and_then(|_| dst.sync_all());
        if res.is_err() {
            let _ = rustix::fs::unlinkat(&r.dirfd, backup, AtFlags::empty());
        }
        res
    };
    copy().map_err(err(&bpath, "keep a backup at"))
}

fn write_direct(r: &Resolved, data: &[u8]) -> Result<(), WriteError> {
    let target = r.path();
    let fd = rustix::fs::openat(
        &r.dirfd,
        r.name.as_os_str(),
        OFlags::WRONLY | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| err(&target, "open")(errno(e)))?;
    let mut f = fs::File::from(fd);
    f.write_all(data).map_err(err(&target, "write"))?;
    f.flush().map_err(err(&target, "write"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

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
        // A second write never replaces the backup: refused, nothing changed.
        let e = write_atomic(&link, b"newer", Some(".bak")).unwrap_err();
        assert!(e.to_string().contains("vm.xml.bak"), "{e}");
        assert!(e.to_string().contains("exists already"), "{e}");
        assert_eq!(fs::read_to_string(&bak).unwrap(), "old");
        assert_eq!(fs::read_to_string(&real).unwrap(), "new");
        // No temporary files are left behind.
        let names: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
    }

    #[test]
    fn an_existing_file_at_the_backup_name_is_never_clobbered() {
        let d = tempfile::tempdir().unwrap();
        let vm = d.path().join("vm");
        let other = d.path().join("vm.xml");
        fs::write(&vm, "old").unwrap();
        fs::write(&other, "precious").unwrap();
        let e = write_atomic(&vm, b"new", Some(".xml")).unwrap_err();
        assert_eq!(e.action, "keep a backup at", "refused before writing: {e}");
        assert_eq!(fs::read_to_string(&other).unwrap(), "precious");
        assert_eq!(fs::read_to_string(&vm).unwrap(), "old");
        for bad in ["", "/x", "a/b"] {
            let e = write_atomic(&vm, b"new", Some(bad)).unwrap_err();
            assert!(e.to_string().contains("backup suffix"), "{e}");
        }
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 2);
    }

    #[test]
    fn new_files_follow_the_umask_and_long_names_work() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("new.xml");
        let old = rustix::process::umask(Mode::from_raw_mode(0o027));
        let r = write_atomic(&p, b"x", None);
        rustix::process::umask(old);
        r.unwrap();
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o640);
        let long = d.path().join("v".repeat(250));
        fs::write(&long, "old").unwrap();
        write_atomic(&long, b"new", None).unwrap();
        assert_eq!(fs::read_to_string(&long).unwrap(), "new");
    }

    #[test]
    fn stale_temps_of_ours_are_removed_fresh_and_foreign_ones_kept() {
        let d = tempfile::tempdir().unwrap();
        let stale = d.path().join(".virt-pci-0123456789ab.tmp");
        let fresh = d.path().join(".virt-pci-ba9876543210.tmp");
        let foreign = d.path().join(".vm.xml.AbCdEf.tmp");
        for p in [&stale, &fresh, &foreign] {
            fs::write(p, "partial").unwrap();
        }
        let old = fs::File::options().write(true).open(&stale).unwrap();
        old.set_modified(std::time::SystemTime::now() - Duration::from_secs(3600))
            .unwrap();
        let f2 = fs::File::options().write(true).open(&foreign).unwrap();
        f2.set_modified(std::time::SystemTime::now() - Duration::from_secs(3600))
            .unwrap();
        write_atomic(&d.path().join("vm.xml"), b"x", None).unwrap();
        assert!(!stale.exists());
        assert!(fresh.exists());
        assert!(foreign.exists());
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
