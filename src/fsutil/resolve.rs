//! Resolving a path for writing the way the kernel would let us follow
//! it (`may_follow_link`, fs/namei.c), ending in an opened directory that
//! every later step works relative to (`openat`, `renameat`, `linkat`), so
//! the directory cannot be swapped under a writer. See the guarantees in
//! [`super`].

use super::{err, errno, euid, invalid, WriteError};
use rustix::fd::OwnedFd;
use rustix::fs::{Mode, OFlags};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

/// A path resolved the way the kernel lets us: the (real, absolute)
/// directory, opened, and the last name in it.
pub(super) struct Resolved {
    pub(super) dir: PathBuf,
    pub(super) name: OsString,
    pub(super) dirfd: OwnedFd,
}

impl Resolved {
    /// The full resolved path.
    pub(super) fn path(&self) -> PathBuf {
        self.dir.join(&self.name)
    }
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
pub(super) fn resolve(path: &Path) -> Result<Resolved, WriteError> {
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
