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
//!
//! One file per guarantee: `resolve.rs` (the symlink rule and the opened
//! directory), `lock.rs` (serialised writers), `write.rs` (the atomic
//! replace, temporary files, backups), `read.rs` (bounded reads). This
//! file holds the error every writer returns.

mod lock;
mod read;
mod resolve;
mod write;

pub use lock::{lock, FileLock};
pub(crate) use read::{human, read_limited};
pub use read::{read_any_limited, ReadError, MAX_XML_BYTES};
pub use write::write_atomic;

use std::io;
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
            crate::text::escape(&self.path.display().to_string()),
            self.source
        )
    }
}

impl std::error::Error for WriteError {}

/// A [`WriteError`] maker for `map_err`: what we were doing, where.
fn err(path: &Path, action: &'static str) -> impl FnOnce(io::Error) -> WriteError {
    let path = path.to_path_buf();
    move |source| WriteError {
        path,
        action,
        source,
    }
}

/// rustix's errno as the `io::Error` callers see.
fn errno(e: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.to_string())
}

/// Our effective uid (the owner the symlink rule and stale-temp cleanup compare).
fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}
