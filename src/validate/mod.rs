//! The validator behind `virt-pci validate`: what libvirt's schema lets
//! through and the VM then pays for.
//!
//! `virt-xml-validate` passes a duplicate hostdev, an empty `<address/>`
//! (libvirt stores it as 0000:00:00.0, the host bridge), `managed='true'`
//! (silently read as `no`), `slot='1f'` (the schema allows it, libvirt's
//! `strtoul` rejects it) and `bus='010'` (octal 8 to libvirt, decimal 10 to
//! the schema); it knows nothing of IOMMU groups; and it costs a process and
//! a schema compilation per file (docs/peers.md §2.3,
//! libvirt.md §1–3). This module reads each file once, parses it once with
//! the strict reader in [`crate::domain`], and reports [`Diagnostic`]s with a
//! stable code, a byte range (for a caret under the offending attribute
//! value) and a fix.
//!
//! Checks that need a host are run only when the caller passes one, so the
//! same files give the same verdict on every machine unless a host is named.
//! Group rules come from [`crate::plan::plan`]: they live in one place.
//!
//! [`checks`] holds the per-file and cross-file rules; [`render`] the three
//! output forms (rustc-style, JSON, GitHub workflow annotations).

pub mod checks;
pub mod render;

use crate::host::Host;
use serde::Serialize;
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing, not a problem (consent entries); not counted.
    Note,
    Warning,
    Error,
}

/// A second place in the same file that explains the first (the earlier
/// duplicate, the other device at the same guest address).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Related {
    pub line: u32,
    pub column: u32,
    pub byte_start: usize,
    pub byte_end: usize,
    pub label: String,
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Stable code, `VP012`. See [`CHECKS`].
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    /// The path as given (or as found under a given directory).
    pub file: String,
    /// 1-based line and column (in characters); 0 when there is no position
    /// (an unreadable file).
    pub line: u32,
    pub column: u32,
    /// Byte range in the file of what the caret points at.
    pub byte_start: usize,
    pub byte_end: usize,
    /// Short text under the caret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<Related>,
}

impl Diagnostic {
    pub fn range(&self) -> Range<usize> {
        self.byte_start..self.byte_end
    }
}

/// Every check: code, default severity, one-line explanation. The README
/// lists the same table with an example each.
pub const CHECKS: &[(&str, Severity, &str)] = &[
    ("VP000", Severity::Error, "the file cannot be read (exit code 2)"),
    ("VP001", Severity::Error, "not well-formed XML"),
    ("VP010", Severity::Error, "hostdev `mode` is not `subsystem` or `capabilities`"),
    ("VP011", Severity::Error, "hostdev `type` is missing or unknown (or the source address of an <interface type='hostdev'> has no type)"),
    ("VP012", Severity::Error, "`managed` is not `yes` or `no` (libvirt silently reads anything else as `no`)"),
    ("VP013", Severity::Error, "PCI hostdev without <source> or without a source <address>"),
    ("VP014", Severity::Error, "empty source <address/>: libvirt reads it as 0000:00:00.0, the host bridge"),
    ("VP015", Severity::Error, "source address 0000:00:00.x: the host bridge (not checked for s390x zPCI domains)"),
    ("VP020", Severity::Error, "address field libvirt cannot read as a number (`slot='1f'`, `bus='ff'`, `09`)"),
    ("VP021", Severity::Error, "address field out of range (bus <= 0xff, slot <= 0x1f, function <= 7)"),
    ("VP022", Severity::Warning, "PCI domain above 0xffff (only Intel VMD domains look like this)"),
    ("VP023", Severity::Error, "leading zero: libvirt reads the number as octal (`010` is 8)"),
    ("VP024", Severity::Warning, "decimal bus or slot of 10 or more: lspci's numbers are hex"),
    ("VP030", Severity::Error, "the same host device twice in one domain (<hostdev> and <interface type='hostdev'>)"),
    ("VP031", Severity::Error, "two devices of one domain at the same guest PCI address"),
    ("VP040", Severity::Warning, "the same host device in several domains of the checked set (error with --deny shared)"),
    ("VP041", Severity::Warning, "members of one IOMMU group in several domains (needs a host; error with --deny shared)"),
    ("VP050", Severity::Error, "the host device is not present on the host"),
    ("VP051", Severity::Error, "IOMMU group not viable: an endpoint of the group is not in the same domain"),
    ("VP052", Severity::Error, "a PCI bridge or root port as hostdev"),
    ("VP053", Severity::Error, "the host bridge as hostdev"),
    ("VP054", Severity::Error, "a host-critical device (root disk, default-route NIC, boot VGA, ISA bridge) would leave the host"),
    ("VP055", Severity::Warning, "the device has no reset method"),
    ("VP056", Severity::Error, "the IOMMU group cannot be passed at all (no IOMMU, a bound host bridge or a non-PCI member in the group)"),
    ("VP057", Severity::Error, "unverified: a host fact the device depends on is not known (host-critical functions, IOMMU group membership)"),
    ("VP058", Severity::Error, "the host device is assigned to another domain that is running"),
    ("VP060", Severity::Note, "a consent entry in <metadata>: this domain passes a device despite a rule, on purpose (virt-pci guard honours it)"),
    ("VP061", Severity::Warning, "a consent entry the guard cannot use (device not a PCI address, or a rule consent cannot lift)"),
];

/// One input file, read once.
#[derive(Clone, Debug)]
pub struct Source {
    /// The path as it is shown in messages.
    pub path: String,
    pub text: String,
}

/// What to check and how strictly.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Warnings become errors.
    pub deny_warnings: bool,
    /// A device (or group) shared between domains is an error.
    pub deny_shared: bool,
}

/// A well-formed file of another kind, not checked.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SkippedFile {
    pub file: String,
    /// The root element, e.g. `<network>`.
    pub root: String,
}

/// Everything found in one run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Files read (including unreadable ones).
    pub files_checked: usize,
    /// Files that hold neither a domain nor hostdev snippets (skipped).
    pub files_skipped: usize,
    /// Which files were skipped, and their root element (`<network>`).
    pub skipped: Vec<SkippedFile>,
    pub errors: usize,
    pub warnings: usize,
    pub diagnostics: Vec<Diagnostic>,
    /// Where host checks read the host (`None`: no host checks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

impl Report {
    /// An I/O problem happened (exit code 2).
    pub fn has_io_error(&self) -> bool {
        self.diagnostics.iter().any(|d| d.code == "VP000")
    }
    /// The summary line.
    pub fn summary(&self) -> String {
        let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
        let mut s = format!(
            "checked {}: {}, {}",
            plural(self.files_checked, "file"),
            plural(self.errors, "error"),
            plural(self.warnings, "warning")
        );
        if self.files_skipped > 0 {
            const SHOWN: usize = 3;
            let mut names: Vec<String> = self
                .skipped
                .iter()
                .take(SHOWN)
                .map(|k| format!("{} {}", k.file, k.root))
                .collect();
            if self.skipped.len() > SHOWN {
                names.push(format!("{} more", self.skipped.len() - SHOWN));
            }
            s.push_str(&format!(
                " ({} well-formed but not domain or hostdev XML, skipped: {})",
                self.files_skipped,
                names.join(", ")
            ));
        }
        s
    }
}

/// The files to check, read once, and what went wrong reading them.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    pub sources: Vec<Source>,
    /// VP000 (unreadable) and VP001 (not UTF-8) for files not in `sources`.
    pub diagnostics: Vec<Diagnostic>,
    pub unreadable: usize,
    /// Entries of a searched directory passed over, with why (a FIFO or
    /// device named `*.xml`, a directory reached again through a symlink):
    /// not errors, said on stderr.
    pub notes: Vec<String>,
}

impl Inputs {
    pub fn from_sources(sources: Vec<Source>) -> Inputs {
        Inputs {
            sources,
            ..Inputs::default()
        }
    }
}

/// Check the inputs (and, with `host`, against that host).
pub fn validate(inputs: &Inputs, host: Option<&Host>, opts: Options) -> Report {
    let sources = &inputs.sources;
    let mut report = Report {
        files_checked: sources.len() + inputs.unreadable,
        host: host.map(|h| h.source.clone()),
        diagnostics: inputs.diagnostics.clone(),
        ..Report::default()
    };
    let mut units = Vec::new();
    let per_file = par_map(sources, |i, s| {
        let mut d = Vec::new();
        let kind = checks::check_file(i, s, &mut d);
        (d, kind)
    });
    // par_map keeps the order of `sources`.
    for (i, (d, kind)) in per_file.into_iter().enumerate() {
        report.diagnostics.extend(d);
        match kind {
            checks::FileKind::Unit(u) => units.push(u),
            checks::FileKind::Skipped(root) => {
                report.files_skipped += 1;
                report.skipped.push(SkippedFile {
                    file: sources[i].path.clone(),
                    root,
                });
            }
            checks::FileKind::Broken => {}
        }
    }
    checks::check_shared(sources, &units, host, opts, &mut report.diagnostics);
    if let Some(h) = host {
        for u in &units {
            checks::check_against_host(sources, u, h, &mut report.diagnostics);
        }
    }
    // In the order of the files, then of the text.
    let order: HashMap<&str, usize> = sources
        .iter()
        .enumerate()
        .map(|(i, s)| (s.path.as_str(), i))
        .collect();
    // Positions: the checks record byte ranges; lines and columns are
    // computed here, with one index per file.
    let mut indexes: HashMap<usize, LineIndex> = HashMap::new();
    for d in &mut report.diagnostics {
        let Some(&i) = order.get(d.file.as_str()) else {
            continue;
        };
        if d.line != 0 {
            continue;
        }
        let text = &sources[i].text;
        let idx = indexes.entry(i).or_insert_with(|| LineIndex::new(text));
        (d.line, d.column) = idx.line_col(text, d.byte_start);
        for r in &mut d.related {
            if r.line == 0 {
                (r.line, r.column) = idx.line_col(text, r.byte_start);
            }
        }
    }
    report.diagnostics.sort_by_key(|d| {
        (
            order.get(d.file.as_str()).copied().unwrap_or(0),
            d.byte_start,
        )
    });
    for d in &mut report.diagnostics {
        if opts.deny_warnings && d.severity == Severity::Warning {
            d.severity = Severity::Error;
        }
        match d.severity {
            Severity::Error => report.errors += 1,
            Severity::Warning => report.warnings += 1,
            Severity::Note => {}
        }
    }
    report
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
pub const STDIN: &str = "<stdin>";

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
                code: "VP001",
                severity: Severity::Error,
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

/// `items.map(f)` in order, on the machine's cores when there are enough
/// items to be worth a thread (files are independent until the cross-file
/// checks).
fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(usize, &T) -> R + Sync) -> Vec<R> {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    if n < 2 || items.len() < 64 {
        return items.iter().enumerate().map(|(i, t)| f(i, t)).collect();
    }
    let chunk = items.len().div_ceil(n);
    std::thread::scope(|s| {
        let f = &f;
        let handles: Vec<_> = items
            .chunks(chunk)
            .enumerate()
            .map(|(c, part)| {
                s.spawn(move || {
                    part.iter()
                        .enumerate()
                        .map(|(j, t)| f(c * chunk + j, t))
                        .collect::<Vec<R>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(items.len());
        for h in handles {
            match h.join() {
                Ok(v) => out.extend(v),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

fn io_diag(path: &str, err: &str) -> Diagnostic {
    Diagnostic {
        code: "VP000",
        severity: Severity::Error,
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

/// Line starts of a text, built once, for many positions: 8,000
/// diagnostics in a 1 MB file each rescanning it was quadratic (8,000
/// duplicate hostdevs took 7.7 s to validate, issue 11).
pub struct LineIndex {
    /// Byte offset of every line start.
    lines: Vec<usize>,
    /// Every 4 KiB of text: (byte offset on a char boundary, its column), so
    /// a column on a 2 MB single line is not a 2 MB scan.
    marks: Vec<(usize, usize)>,
}

impl LineIndex {
    pub fn new(text: &str) -> LineIndex {
        let mut lines = vec![0];
        let mut marks = Vec::new();
        let mut col = 0usize;
        let mut next_mark = 4096;
        for (i, c) in text.char_indices() {
            if i >= next_mark {
                marks.push((i, col));
                next_mark = i + 4096;
            }
            if c == '\n' {
                lines.push(i + 1);
                col = 0;
            } else {
                col += 1;
            }
        }
        LineIndex { lines, marks }
    }

    /// 1-based line and column (characters) of byte offset `at` in `text`
    /// (the text this index was built from).
    pub fn line_col(&self, text: &str, at: usize) -> (u32, u32) {
        let mut at = at.min(text.len());
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        let line = self.lines.partition_point(|&s| s <= at);
        let start = self.lines[line - 1];
        let m = self.marks.partition_point(|&(o, _)| o <= at);
        let (from, base) = match m.checked_sub(1).map(|k| self.marks[k]) {
            Some((o, c)) if o >= start => (o, c),
            _ => (start, 0),
        };
        let column = base + text[from..at].chars().count() + 1;
        (line as u32, column as u32)
    }
}

/// 1-based line and column (characters) of byte offset `at` in `text`.
/// For one position; many positions in one text go through [`LineIndex`].
pub fn line_col(text: &str, at: usize) -> (u32, u32) {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = text[start..at].chars().count() + 1;
    (line as u32, column as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters() {
        let t = "ab\ncé d";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 3), (2, 1));
        assert_eq!(line_col(t, 6), (2, 3));
        assert_eq!(line_col(t, 100), (2, 5));
        let long = format!("{}é\n{}x", "a".repeat(10_000), "b".repeat(9_000));
        let idx = LineIndex::new(&long);
        for at in [0, 3, 4097, 10_000, 10_002, 10_003, 15_000, long.len()] {
            assert_eq!(idx.line_col(&long, at), line_col(&long, at), "{at}");
        }
    }

    #[test]
    fn par_map_keeps_order_and_indices() {
        let items: Vec<usize> = (0..1000).collect();
        let out = par_map(&items, |i, t| (i, *t * 2));
        assert_eq!(out.len(), 1000);
        assert!(out
            .iter()
            .enumerate()
            .all(|(k, (i, v))| *i == k && *v == k * 2));
    }

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
        assert_eq!(inputs.diagnostics[0].code, "VP001");
        assert_eq!(
            (inputs.diagnostics[0].line, inputs.diagnostics[0].column),
            (1, 9)
        );
        assert_eq!(inputs.diagnostics[1].code, "VP000");
    }

    #[test]
    fn codes_are_unique_and_sorted() {
        let codes: Vec<_> = CHECKS.iter().map(|c| c.0).collect();
        let mut sorted = codes.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(codes, sorted);
    }
}
