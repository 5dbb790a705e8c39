//! Writing (and reading) files without ever losing one or landing elsewhere.
//!
//! An in-place edit must leave either the old file or the new one, never a
//! half-written file, and must keep what the user set on the old file. The
//! recipe was measured with strace (docs/dependencies.md §9): resolve symlinks first (the link stays,
//! its target is edited), write a temporary file in the same directory, give
//! it the original's mode and owner, fsync it, rename it over the original,
//! fsync the directory. `tempfile`'s `persist` alone does none of the
//! mode/owner/fsync steps.
//!
//! The guarantees, and why each is done this way:
//!
//! - **Symlinks are followed only where the kernel would let us.** The path
//!   is resolved one component at a time, and a symlink in a sticky,
//!   world-writable directory (`/tmp`) is followed only if we own it or the
//!   directory's owner owns it: the rule of `may_follow_link` in Linux
//!   `fs/namei.c` (`fs.protected_symlinks=1`, the default on every major
//!   distribution). We apply it to every component and whatever the sysctl
//!   says: root writing `-o /tmp/o.xml` must never replace the file a
//!   planted link points to. Everything after the resolution is done relative
//!   to the opened directory (`openat`, `renameat`, `linkat`), so the
//!   directory cannot be swapped under us.
//! - **Writers of one file are serialised** ([`lock`]): an exclusive `flock`
//!   on the file itself, taken before it is read and held until the rename.
//!   Because the rename replaces the inode, the lock is re-checked against
//!   the path after it is granted (the file may have been replaced while we
//!   waited) and taken again on the new inode. Advisory: it orders virt-pci
//!   processes (and any tool that uses `flock`), not other editors.
//! - **New files follow the umask** (created `0666 & ~umask`, like `>`);
//!   replaced files keep their mode and owner.
//! - **Temporary files** are named `.virt-pci-XXXXXXXXXXXX.tmp` (26 bytes,
//!   whatever the target's name, so a 255-byte name can be edited) and are
//!   `flock`ed while written. A process killed between create and rename
//!   leaves one behind; the next write into that directory removes those of
//!   ours that nobody holds locked and that are older than
//!   [`STALE_TEMP_AGE`] (the age covers the instant between a writer's
//!   `open` and its `flock`). `O_TMPFILE` would hide them entirely, but
//!   linking it into place needs `CAP_DAC_READ_SEARCH` or `/proc`, and not
//!   every filesystem has it; one code path that works everywhere won.
//! - **A backup** (`--backup SUFFIX`) is a hard link to the old inode (same
//!   mode, owner, content), made just before the rename, so the path never
//!   goes missing; where hard links are not possible, a copy. It is created
//!   exclusively: an existing `PATH+SUFFIX` is never replaced (the edit is
//!   refused before anything is written, with the name). A failed rename
//!   removes the backup it just made. An empty suffix or one with `/` is
//!   refused.
//!
//! Reading: [`read_limited`] opens without blocking (a FIFO cannot hang us),
//! refuses what is not a regular file, and reads at most a given size.
//!
//! Not preserved: xattrs, SELinux labels and ACLs (libvirt's
//! /etc/libvirt/qemu may carry labels; `restorecon` after editing there).

use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{AtFlags, FileType, FlockOperation, Mode, OFlags};
use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// Our temporary files older than this, and not locked, are a killed
/// writer's leftovers.
pub const STALE_TEMP_AGE: Duration = Duration::from_secs(60);

/// The largest domain XML we read: virsh's `VSH_MAX_XML_FILE` (10 MiB,
/// libvirt `tools/vsh.h`, read through `virFileReadAll`, which fails with
/// EOVERFLOW above it). A larger file cannot have come from libvirt.
pub const MAX_XML_BYTES: u64 = 10 * 1024 * 1024;

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
            crate::text::escape(&self.path.display().to_string()),
            self.source
        )
    }
}

impl std::error::Error for WriteError {}

impl WriteError {
    /// True when nothing existed at the path before (so nothing "original"
    /// can have been kept).
    pub fn refused_before_writing(&self) -> bool {
        matches!(self.action, "follow" | "keep a backup at")
    }
}

fn err(path: &Path, action: &'static str) -> impl FnOnce(io::Error) -> WriteError {
    let path = path.to_path_buf();
    move |source| WriteError {
        path,
        action,
        source,
    }
}

fn errno(e: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.to_string())
}

/// A path resolved the way the kernel lets us: the (real, absolute)
/// directory, opened, and the last name in it.
pub struct Resolved {
    pub dir: PathBuf,
    pub name: OsString,
    dirfd: OwnedFd,
}

impl Resolved {
    /// The full resolved path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.name)
    }
}

fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// `may_follow_link` (Linux fs/namei.c): a symlink in a sticky
/// world-writable directory is followed only by its owner, or when the
/// directory's owner also owns the link.
fn may_follow(dir: &Path, link: &Path, link_uid: u32) -> Result<(), WriteError> {
    let d = rustix::fs::stat(dir).map_err(|e| err(dir, "inspect")(errno(e)))?;
    let sticky_ww = d.st_mode & 0o1002 == 0o1002;
    if sticky_ww && link_uid != euid() && d.st_uid != link_uid {
        return Err(WriteError {
            path: link.to_path_buf(),
            action: "follow",
            source: io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "it is a symlink owned by uid {link_uid} in a sticky world-writable directory \
                     owned by uid {}; the kernel refuses to follow it (fs.protected_symlinks), and so do we",
                    d.st_uid
                ),
            ),
        });
    }
    Ok(())
}

/// Resolve `path` for writing: every symlink on the way is followed (under
/// [`may_follow`]), `..` is taken physically, the last component may be
/// missing (a new file).
pub fn resolve(path: &Path) -> Result<Resolved, WriteError> {
    if path.as_os_str().is_empty() {
        return Err(err(path, "write")(invalid("empty path")));
    }
    let mut cur = if path.is_absolute() {
        PathBuf::from("/")
    } else {
        std::env::current_dir().map_err(err(Path::new("."), "resolve"))?
    };
    let mut todo: VecDeque<OsString> = VecDeque::new();
    let push_front = |todo: &mut VecDeque<OsString>, p: &Path| {
        let mut v: Vec<OsString> = Vec::new();
        for c in p.components() {
            match c {
                Component::Normal(n) => v.push(n.to_os_string()),
                Component::ParentDir => v.push("..".into()),
                _ => {}
            }
        }
        for c in v.into_iter().rev() {
            todo.push_front(c);
        }
    };
    push_front(&mut todo, path);
    let mut links = 0;
    let mut last: Option<OsString> = None;
    while let Some(c) = todo.pop_front() {
        if c == ".." {
            cur.pop();
            continue;
        }
        let p = cur.join(&c);
        let is_last = todo.is_empty();
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                use std::os::unix::fs::MetadataExt;
                may_follow(&cur, &p, m.uid())?;
                links += 1;
                if links > 40 {
                    return Err(err(path, "resolve")(io::Error::from_raw_os_error(40)));
                }
                let t = fs::read_link(&p).map_err(err(&p, "resolve"))?;
                if t.is_absolute() {
                    cur = PathBuf::from("/");
                }
                push_front(&mut todo, &t);
            }
            Ok(m) => {
                if is_last && !m.is_dir() {
                    last = Some(c);
                    break;
                }
                if !m.is_dir() {
                    return Err(err(&p, "write into")(io::Error::from_raw_os_error(20)));
                }
                cur = p;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && is_last => {
                last = Some(c);
                break;
            }
            Err(e) => {
                let parent = path.parent().unwrap_or(Path::new("."));
                return Err(err(parent, "write into")(e));
            }
        }
    }
    let name = match last {
        Some(n) => n,
        None => {
            // The path names a directory.
            return Err(err(path, "write")(io::Error::new(
                io::ErrorKind::IsADirectory,
                "it is a directory",
            )));
        }
    };
    let dirfd = rustix::fs::open(
        &cur,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| err(&cur, "write into")(errno(e)))?;
    Ok(Resolved {
        dir: cur,
        name,
        dirfd,
    })
}

/// Where a write to `path` really lands (see [`resolve`]).
pub fn resolve_target(path: &Path) -> Result<PathBuf, WriteError> {
    resolve(path).map(|r| r.path())
}

/// An exclusive advisory lock on a file, held until dropped.
pub struct FileLock {
    _file: fs::File,
}

/// Lock the file at `path` (resolved as [`resolve`] does) against other
/// virt-pci writers; blocks until granted. Take it before reading the file
/// and drop it after [`write_atomic`]. A missing file needs no lock
/// (`Ok(None)`).
pub fn lock(path: &Path) -> Result<Option<FileLock>, WriteError> {
    let r = resolve(path)?;
    let full = r.path();
    for _ in 0..1000 {
        let fd = match rustix::fs::openat(
            &r.dirfd,
            r.name.as_os_str(),
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(e) => return Err(err(&full, "open")(errno(e))),
        };
        let st = rustix::fs::fstat(&fd).map_err(|e| err(&full, "inspect")(errno(e)))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Ok(None);
        }
        rustix::fs::flock(&fd, FlockOperation::LockExclusive)
            .map_err(|e| err(&full, "lock")(errno(e)))?;
        // Still the file at the path? A writer may have renamed a new one
        // over it while we waited.
        match rustix::fs::statat(&r.dirfd, r.name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(now) if now.st_dev == st.st_dev && now.st_ino == st.st_ino => {
                return Ok(Some(FileLock {
                    _file: fs::File::from(fd),
                }))
            }
            Ok(_) => continue,
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(e) => return Err(err(&full, "inspect")(errno(e))),
        }
    }
    Err(err(&full, "lock")(io::Error::new(
        io::ErrorKind::WouldBlock,
        "the file kept being replaced while we waited for its lock",
    )))
}

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

/// Why [`read_limited`] failed.
#[derive(Debug)]
pub enum ReadError {
    Io(io::Error),
    /// Not a regular file (a FIFO, a device, a directory): reading it
    /// could block forever or never end.
    NotRegular(&'static str),
    /// Larger than the limit (bytes).
    TooLarge(u64),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::NotRegular(k) => write!(f, "it is {k}, not a regular file"),
            ReadError::TooLarge(max) => write!(f, "it is larger than {}", human(*max)),
        }
    }
}

/// `10 MiB`, `4 KiB`, `123 bytes`.
pub fn human(n: u64) -> String {
    if n >= 1024 * 1024 && n.is_multiple_of(1024 * 1024) {
        format!("{} MiB", n / (1024 * 1024))
    } else if n >= 1024 && n.is_multiple_of(1024) {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n} bytes")
    }
}

fn kind(mode: u32) -> &'static str {
    match FileType::from_raw_mode(mode) {
        FileType::Fifo => "a FIFO",
        FileType::Directory => "a directory",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Socket => "a socket",
        _ => "a special file",
    }
}

/// Read a regular file of at most `max` bytes: opened non-blocking (a FIFO
/// is refused, never waited on), checked with `fstat`, read up to `max + 1`
/// bytes so a file that grows while read is refused too.
pub fn read_limited(path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
    .map_err(|e| ReadError::Io(errno(e)))?;
    read_fd_limited(fd, max)
}

/// Like [`read_limited`], but a FIFO or character device (`<(cmd)`,
/// `/dev/stdin`) is read too, blocking, still at most `max` bytes: for a
/// file the user named, not one found in a tree.
pub fn read_any_limited(path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    let f = fs::File::open(path).map_err(ReadError::Io)?;
    let st = rustix::fs::fstat(&f).map_err(|e| ReadError::Io(errno(e)))?;
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        return Err(ReadError::NotRegular("a directory"));
    }
    let mut v = Vec::new();
    f.take(max + 1).read_to_end(&mut v).map_err(ReadError::Io)?;
    if v.len() as u64 > max {
        return Err(ReadError::TooLarge(max));
    }
    Ok(v)
}

/// [`read_limited`] on an opened file.
pub fn read_fd_limited(fd: OwnedFd, max: u64) -> Result<Vec<u8>, ReadError> {
    let st = rustix::fs::fstat(fd.as_fd()).map_err(|e| ReadError::Io(errno(e)))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(ReadError::NotRegular(kind(st.st_mode)));
    }
    if st.st_size as u64 > max {
        return Err(ReadError::TooLarge(max));
    }
    let mut v = Vec::with_capacity(st.st_size.max(0) as usize);
    fs::File::from(fd)
        .take(max + 1)
        .read_to_end(&mut v)
        .map_err(ReadError::Io)?;
    if v.len() as u64 > max {
        return Err(ReadError::TooLarge(max));
    }
    Ok(v)
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
        assert!(e.refused_before_writing());
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

    #[test]
    fn reads_are_bounded_and_never_wait_on_a_fifo() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("f.xml");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let e = read_limited(&fifo, 10).unwrap_err();
        assert!(e.to_string().contains("a FIFO"), "{e}");
        let big = d.path().join("big");
        fs::write(&big, vec![b'x'; 11]).unwrap();
        assert!(matches!(
            read_limited(&big, 10),
            Err(ReadError::TooLarge(10))
        ));
        assert_eq!(read_limited(&big, 11).unwrap().len(), 11);
        let e = read_limited(Path::new("/dev/zero"), 10).unwrap_err();
        assert!(e.to_string().contains("character device"), "{e}");
    }
}
