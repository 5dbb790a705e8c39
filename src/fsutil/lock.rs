//! Serialising virt-pci writers of one file: an exclusive `flock` on the
//! file itself, re-checked against the path once granted (a writer's
//! rename replaces the inode while others wait).

use super::resolve::resolve;
use super::{err, errno, WriteError};
use rustix::fs::{AtFlags, FileType, FlockOperation, Mode, OFlags};
use std::fs;
use std::io;
use std::path::Path;

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
