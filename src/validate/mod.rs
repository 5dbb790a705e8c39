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
//! stable [`Code`], a byte range (for a caret under the offending attribute
//! value) and a fix.
//!
//! Checks that need a host are run only when the caller passes one, so the
//! same files give the same verdict on every machine unless a host is named.
//! Group rules come from [`crate::plan::plan`]: they live in one place.
//!
//! One file per family of checks, in the order of the codes:
//!
//! | file | codes | what |
//! |---|---|---|
//! | [`inputs`] | VP000, VP001 (UTF-8) | reading files and directories once |
//! | [`file`] | VP001 | well-formedness, what a file is, the per-file walk |
//! | [`hostdev`] | VP010–VP015, VP030 | the shape of each PCI hostdev, duplicates |
//! | [`numbers`] | VP020–VP024 | address numbers as libvirt's `strtoul` reads them |
//! | [`guest`] | VP031–VP035 | the guest side: addresses, boot orders, aliases |
//! | [`shared`] | VP040, VP041 | one device or group in several domains |
//! | [`host`] | VP050–VP058 | against a host, through the plan |
//! | [`consent`] | VP060, VP061 | consent entries in `<metadata>` |
//!
//! [`codes`] holds the table of codes, [`context`] where a per-file check
//! writes a finding, [`position`] lines and columns, [`render`] the output
//! forms (rustc-style, JSON, GitHub workflow annotations).

mod codes;
mod consent;
mod context;
mod file;
mod guest;
mod host;
mod hostdev;
mod inputs;
mod numbers;
mod position;
pub mod render;
mod shared;

pub(crate) use crate::diagnostic::line_col;
pub(crate) use codes::Code;
pub use inputs::{read_inputs, Inputs, Source};

use crate::host::Host;
use position::LineIndex;
use serde::Serialize;
use std::collections::HashMap;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Severity {
    /// Worth knowing, not a problem (consent entries); not counted.
    Note,
    Warning,
    Error,
}

/// A second place in the same file that explains the first (the earlier
/// duplicate, the other device at the same guest address).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Related {
    pub(crate) line: u32,
    pub(crate) column: u32,
    pub(crate) byte_start: usize,
    pub(crate) byte_end: usize,
    pub(crate) label: String,
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Diagnostic {
    /// Stable code, `VP012`.
    pub(crate) code: Code,
    pub(crate) severity: Severity,
    pub(crate) message: String,
    /// The path as given (or as found under a given directory).
    pub(crate) file: String,
    /// 1-based line and column (in characters); 0 when there is no position
    /// (an unreadable file).
    pub(crate) line: u32,
    pub(crate) column: u32,
    /// Byte range in the file of what the caret points at.
    pub(crate) byte_start: usize,
    pub(crate) byte_end: usize,
    /// Short text under the caret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) label: Option<String>,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) help: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) related: Vec<Related>,
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
pub(crate) struct SkippedFile {
    pub(crate) file: String,
    /// The root element, e.g. `<network>`.
    pub(crate) root: String,
}

/// Everything found in one run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Files read (including unreadable ones).
    pub(crate) files_checked: usize,
    /// Files that hold neither a domain nor hostdev snippets (skipped).
    pub(crate) files_skipped: usize,
    /// Which files were skipped, and their root element (`<network>`).
    pub(crate) skipped: Vec<SkippedFile>,
    pub(crate) errors: usize,
    pub(crate) warnings: usize,
    pub(crate) diagnostics: Vec<Diagnostic>,
    /// Where host checks read the host (`None`: no host checks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) host: Option<String>,
}

impl Report {
    /// The exit status of `virt-pci validate`: 2 when a file could not be
    /// read (VP000), 1 when there are errors (warnings count with `--deny
    /// warnings`), else 0.
    pub fn exit_status(&self) -> u8 {
        if self.diagnostics.iter().any(|d| d.code == Code::Vp000) {
            2
        } else if self.errors > 0 {
            1
        } else {
            0
        }
    }
    /// The summary line.
    pub(crate) fn summary(&self) -> String {
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

/// Check the inputs (and, with `host`, against that host).
pub fn validate(inputs: &Inputs, host: Option<&Host>, opts: Options) -> Report {
    let sources = &inputs.sources;
    let mut report = Report {
        files_checked: sources.len() + inputs.unreadable,
        host: host.map(|h| h.source.clone()),
        diagnostics: inputs.diagnostics.clone(),
        ..Report::default()
    };
    let units = check_each_file(sources, &mut report);
    shared::check_shared(sources, &units, host, opts, &mut report.diagnostics);
    if let Some(h) = host {
        for u in &units {
            host::check_against_host(sources, u, h, &mut report.diagnostics);
        }
    }
    // In the order of the files, then of the text.
    let order: HashMap<&str, usize> = sources
        .iter()
        .enumerate()
        .map(|(i, s)| (s.path.as_str(), i))
        .collect();
    fill_positions(sources, &order, &mut report.diagnostics);
    report.diagnostics.sort_by_key(|d| {
        (
            order.get(d.file.as_str()).copied().unwrap_or(0),
            d.byte_start,
        )
    });
    count(&mut report, opts);
    report
}

/// The per-file checks, on the machine's cores; the domains and snippet
/// files found, for the checks across files and against a host.
fn check_each_file(sources: &[Source], report: &mut Report) -> Vec<file::Unit> {
    let mut units = Vec::new();
    let per_file = par_map(sources, |i, s| {
        let mut d = Vec::new();
        let kind = file::check_file(i, s, &mut d);
        (d, kind)
    });
    // par_map keeps the order of `sources`.
    for (i, (d, kind)) in per_file.into_iter().enumerate() {
        report.diagnostics.extend(d);
        match kind {
            file::FileKind::Unit(u) => units.push(u),
            file::FileKind::Skipped(root) => {
                report.files_skipped += 1;
                report.skipped.push(SkippedFile {
                    file: sources[i].path.clone(),
                    root,
                });
            }
            file::FileKind::Broken => {}
        }
    }
    units
}

/// Lines and columns: the checks record byte ranges; they are computed
/// here, with one index per file.
fn fill_positions(sources: &[Source], order: &HashMap<&str, usize>, diags: &mut [Diagnostic]) {
    let mut indexes: HashMap<usize, LineIndex> = HashMap::new();
    for d in diags {
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
}

/// `--deny warnings`, then the counts of the summary line.
fn count(report: &mut Report, opts: Options) {
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

/// What the tests of each family share.
#[cfg(test)]
pub(crate) mod testing {
    use super::{validate, Inputs, Options, Source};

    /// The codes `validate` finds in one file, `t.xml`.
    pub(crate) fn codes(text: &str) -> Vec<&'static str> {
        let inputs = Inputs::from_sources(vec![Source {
            path: "t.xml".into(),
            text: text.into(),
        }]);
        validate(&inputs, None, Options::default())
            .diagnostics
            .iter()
            .map(|d| d.code.as_str())
            .collect()
    }

    /// A QEMU domain with `os` and `devices`.
    pub(crate) fn dom(os: &str, devices: &str) -> String {
        format!(
            "<domain type='kvm'><name>t</name><os>{os}</os><devices>{devices}</devices></domain>"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
