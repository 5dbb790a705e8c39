//! Bounded reads: a file found in a tree is opened without blocking (a
//! FIFO cannot hang us) and refused unless regular; a file the user named
//! may be a pipe (`<(cmd)`); both are read up to a limit.

use super::errno;
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{FileType, Mode, OFlags};
use std::fs;
use std::io::{self, Read};
use std::path::Path;

/// The largest domain XML we read: virsh's `VSH_MAX_XML_FILE` (10 MiB,
/// libvirt `tools/vsh.h`, read through `virFileReadAll`, which fails with
/// EOVERFLOW above it). A larger file cannot have come from libvirt.
pub const MAX_XML_BYTES: u64 = 10 * 1024 * 1024;

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
    // A regular file's size sizes the buffer: `take` hides it from
    // `read_to_end`, which would otherwise start at 32 bytes and double
    // (eleven reads for a 5 KB domain, and a 10 MiB one copied as it grows).
    let size = match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => (st.st_size.max(0) as u64).min(max),
        _ => 0,
    };
    let mut v = Vec::with_capacity(size as usize);
    f.take(max + 1).read_to_end(&mut v).map_err(ReadError::Io)?;
    if v.len() as u64 > max {
        return Err(ReadError::TooLarge(max));
    }
    Ok(v)
}

/// [`read_limited`] on an opened file.
fn read_fd_limited(fd: OwnedFd, max: u64) -> Result<Vec<u8>, ReadError> {
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
