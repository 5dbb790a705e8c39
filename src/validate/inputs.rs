//! Reading what to check: files, directories searched for `*.xml`, stdin.
//!
//! A file that cannot be read is a finding (VP000, exit code 2), as is one
//! that is not UTF-8 (VP001, where it stops being UTF-8): the run goes on
//! with the rest, so one bad file does not hide the findings of the others.
//! Reading is kept apart from checking because it is where the run meets
//! the file system: symlink loops, FIFOs named `vm.xml`, files too large
//! for virsh.

use super::{line_col, par_map, Code, Diagnostic};
use std::path::{Path, PathBuf};

/// One input file, read once.
#[derive(Clone, Debug)]
pub struct Source {
    /// The path as it is shown in messages.
    pub path: String,
    pub text: String,
}

/// The files to check, read once, and what went wrong reading them.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    pub sources: Vec<Source>,
    /// VP000 (unreadable) and VP001 (not UTF-8) for files not in `sources`.
    pub(crate) diagnostics: Vec<Diagnostic>,
    pub(crate) unreadable: usize,
    /// Entries of a searched directory passed over, with why (a FIFO or
    /// device named `*.xml`, a directory reached again through a symlink):
    /// not errors, said on stderr.
    pub notes: Vec<String>,
}

impl Inputs {
    /// No file was found (not even an unreadable one): a wrong path or an
    /// empty directory, which passes only when the caller allows it.
    pub fn nothing_to_check(&self) -> bool {
        self.sources.is_empty() && self.unreadable == 0
    }

    #[cfg(test)]
    pub(crate) fn from_sources(sources: Vec<Source>) -> Inputs {
        Inputs {
            sources,
            ..Inputs::default()
        }
    }
}

/// Read `paths` (files, or directories searched recursively for `*.xml`,
/// hidden directories skipped, in name order). Unreadable paths become VP000
/// diagnostics; the rest are read once, whole, up to
/// [`MAX_XML_BYTES`](crate::fsutil::MAX_XML_BYTES).
///
/// The directory search follows symlinks but visits each directory and
/// each file once (by device and inode): `a -> .` is a cycle, not an
/// endless walk, and a file reached by two paths is checked once. In a
/// searched directory only regular files are read: a FIFO named `vm.xml`
/// would block the walk forever, so it is passed over with a note. A path
/// named on the command line is read whatever it is (`<(cmd)` is a pipe).
pub fn read_inputs(paths: &[PathBuf]) -> Inputs {
    let mut sources = Vec::new();
    let mut diags = Vec::new();
    let mut notes = Vec::new();
    let take = |r: Read, sources: &mut Vec<Source>, diags: &mut Vec<Diagnostic>| match r {
        Read::Text(s) => sources.push(s),
        Read::Bad(d) => diags.push(d),
        Read::Dir(_) => {}
    };
    let mut seen = Seen::default();
    for r in par_map(paths, |_, p| read_one(p, false)) {
        match r {
            Read::Dir(dir) => {
                let mut files = Vec::new();
                if let Ok(m) = std::fs::metadata(&dir) {
                    use std::os::unix::fs::MetadataExt;
                    seen.dirs.insert((m.dev(), m.ino()));
                }
                walk(&dir, &mut files, &mut diags, &mut notes, &mut seen);
                for r in par_map(&files, |_, p| read_one(p, true)) {
                    take(r, &mut sources, &mut diags);
                }
            }
            r => take(r, &mut sources, &mut diags),
        }
    }
    Inputs {
        sources,
        unreadable: diags.len(),
        diagnostics: diags,
        notes,
    }
}

/// Directories and files already visited, as (device, inode).
#[derive(Default)]
struct Seen {
    dirs: std::collections::HashSet<(u64, u64)>,
    files: std::collections::HashSet<(u64, u64)>,
}

enum Read {
    Text(Source),
    Dir(PathBuf),
    Bad(Diagnostic),
}

/// Open once, and either read it whole or learn it is a directory: one path
/// lookup per file. On 1,000 small files the system calls cost about as much
/// as `cat` of the same files, and the parsing far less. `found` (from a
/// directory search): opened non-blocking, so a FIFO that slipped past the
/// walk's check is refused instead of waited on.
fn read_one(p: &Path, found: bool) -> Read {
    use crate::fsutil::MAX_XML_BYTES;
    use std::io::Read as _;
    if p.as_os_str() == "-" {
        // `-` is stdin, as for `add -` (the CLI allows it once).
        let mut bytes = Vec::new();
        if let Err(e) = std::io::stdin()
            .lock()
            .take(MAX_XML_BYTES + 1)
            .read_to_end(&mut bytes)
        {
            return Read::Bad(io_diag(STDIN, &e.to_string()));
        }
        if bytes.len() as u64 > MAX_XML_BYTES {
            return Read::Bad(too_large(STDIN));
        }
        return decode(STDIN.to_string(), bytes);
    }
    use std::os::unix::fs::OpenOptionsExt;
    let path = crate::text::escape(&p.display().to_string());
    let mut oo = std::fs::OpenOptions::new();
    oo.read(true);
    if found {
        oo.custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32);
    }
    let f = match oo.open(p) {
        Ok(f) => f,
        Err(e) => return Read::Bad(io_diag(&path, &e.to_string())),
    };
    // fstat on the open file, not a second path lookup; its length sizes
    // the buffer exactly (fewer page faults than growing it).
    let len = match f.metadata() {
        Ok(m) if m.is_dir() => return Read::Dir(p.to_path_buf()),
        Ok(m) if found && !m.is_file() => {
            return Read::Bad(io_diag(&path, "not a regular file"));
        }
        Ok(m) => m.len(),
        Err(_) => 0,
    };
    if len > MAX_XML_BYTES {
        return Read::Bad(too_large(&path));
    }
    let mut bytes = Vec::with_capacity(len as usize + 1);
    if let Err(e) = f.take(MAX_XML_BYTES + 1).read_to_end(&mut bytes) {
        return Read::Bad(io_diag(&path, &e.to_string()));
    }
    if bytes.len() as u64 > MAX_XML_BYTES {
        return Read::Bad(too_large(&path));
    }
    decode(path, bytes)
}

/// How stdin is named in messages (`validate -`).
pub(crate) const STDIN: &str = "<stdin>";

/// A file's bytes as text, or VP001 where it stops being UTF-8.
fn decode(path: String, bytes: Vec<u8>) -> Read {
    match String::from_utf8(bytes) {
        Ok(text) => Read::Text(Source { path, text }),
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
            let (line, column) = line_col(&text, at);
            // Shown as a well-formedness error: XML must be UTF-8 here.
            Read::Bad(Diagnostic {
                code: Code::Vp001,
                severity: Code::Vp001.severity(),
                message: "not UTF-8: libvirt reads domain XML as UTF-8".into(),
                file: path,
                line,
                column,
                byte_start: at,
                byte_end: at,
                label: None,
                help: Some("convert the file with `iconv -t UTF-8`".into()),
                related: Vec::new(),
            })
        }
    }
}

fn too_large(path: &str) -> Diagnostic {
    let mut d = io_diag(
        path,
        &format!(
            "it is larger than {}",
            crate::fsutil::human(crate::fsutil::MAX_XML_BYTES)
        ),
    );
    d.help = Some(
        "virsh refuses XML files over 10 MiB (VSH_MAX_XML_FILE); this is not a domain libvirt wrote"
            .into(),
    );
    d
}

fn io_diag(path: &str, err: &str) -> Diagnostic {
    Diagnostic {
        code: Code::Vp000,
        severity: Code::Vp000.severity(),
        message: format!("cannot read {path}: {err}"),
        file: path.to_string(),
        line: 0,
        column: 0,
        byte_start: 0,
        byte_end: 0,
        label: None,
        help: None,
        related: Vec::new(),
    }
}

fn walk(
    dir: &Path,
    files: &mut Vec<PathBuf>,
    diags: &mut Vec<Diagnostic>,
    notes: &mut Vec<String>,
    seen: &mut Seen,
) {
    use std::os::unix::fs::{DirEntryExt, MetadataExt};
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) => {
            diags.push(io_diag(&dir.display().to_string(), &e.to_string()));
            return;
        }
    };
    let dir_dev = std::fs::metadata(dir).map(|m| m.dev()).unwrap_or(0);
    #[derive(PartialEq)]
    enum Kind {
        Dir,
        File,
        Special(&'static str),
    }
    // The entry's own type (from readdir, no stat); a symlink is followed
    // (one stat), and so is anything that is a directory (for its inode).
    let mut entries: Vec<(std::ffi::OsString, PathBuf, Kind, (u64, u64))> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let p = e.path();
            // `validate .` (the pre-commit hooks) names files as
            // `vms/a.xml`, as git and pre-commit do, not `./vms/a.xml`.
            let p = match p.strip_prefix(".") {
                Ok(rel) if dir == Path::new(".") => rel.to_path_buf(),
                _ => p,
            };
            let ft = e.file_type().ok();
            let plain_file = ft.is_some_and(|t| t.is_file());
            if plain_file {
                let id = (dir_dev, e.ino());
                return Some((e.file_name(), p, Kind::File, id));
            }
            let m = std::fs::metadata(&p).ok()?;
            let t = m.file_type();
            let kind = if t.is_dir() {
                Kind::Dir
            } else if t.is_file() {
                Kind::File
            } else {
                use std::os::unix::fs::FileTypeExt;
                Kind::Special(if t.is_fifo() {
                    "a FIFO"
                } else if t.is_socket() {
                    "a socket"
                } else {
                    "a device"
                })
            };
            Some((e.file_name(), p, kind, (m.dev(), m.ino())))
        })
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, p, kind, id) in entries {
        let name = name.to_string_lossy();
        let is_xml = name
            .rsplit_once('.')
            .is_some_and(|(_, e)| e.eq_ignore_ascii_case("xml"));
        match kind {
            Kind::Dir => {
                if name.starts_with('.') {
                    continue;
                }
                if !seen.dirs.insert(id) {
                    // `a -> .`, or a second way into a directory: once only.
                    notes.push(format!(
                        "{}: a directory already searched (a symlink loop or a second path to it); not searched again",
                        crate::text::escape(&p.display().to_string())
                    ));
                    continue;
                }
                walk(&p, files, diags, notes, seen);
            }
            Kind::File if is_xml && seen.files.insert(id) => files.push(p),
            Kind::Special(what) if is_xml => notes.push(format!(
                "{}: {what}, not a regular file; skipped",
                crate::text::escape(&p.display().to_string())
            )),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_and_unreadable_paths() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b.xml"), "<domain/>").unwrap();
        std::fs::write(dir.path().join("a.XML"), "<domain/>").unwrap();
        std::fs::write(dir.path().join("c.txt"), "x").unwrap();
        std::fs::write(dir.path().join("bad.xml"), b"<domain>\xff</domain>").unwrap();
        let inputs = read_inputs(&[dir.path().to_path_buf(), dir.path().join("missing.xml")]);
        let names: Vec<_> = inputs
            .sources
            .iter()
            .map(|s| s.path.rsplit('/').next().unwrap_or_default().to_string())
            .collect();
        assert_eq!(names, ["a.XML", "b.xml"]);
        assert_eq!(inputs.unreadable, 2);
        assert_eq!(inputs.diagnostics[0].code, Code::Vp001);
        assert_eq!(
            (inputs.diagnostics[0].line, inputs.diagnostics[0].column),
            (1, 9)
        );
        assert_eq!(inputs.diagnostics[1].code, Code::Vp000);
    }
}
