//! The three output forms of a [`Report`]:
//!
//! * human: rustc's own renderer (annotate-snippets, docs/
//!   dependencies.md §6), so `error[VP012]: …`, ` --> file:line:col`, the
//!   source line with a caret under the attribute value and `help:` look
//!   exactly like the compiler people already read;
//! * JSON: the [`Report`] itself (`schemas/validate.schema.json`);
//! * GitHub: workflow commands, which GitHub turns into annotations on the
//!   pull request's diff.

use super::{Diagnostic, Report, Severity, Source};
use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};
use std::collections::HashMap;

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
    Github,
}

/// The JSON document: format name and version first, then the report.
#[derive(serde::Serialize)]
struct JsonReport<'a> {
    format: &'static str,
    version: u32,
    #[serde(flatten)]
    report: &'a Report,
}

/// Render the whole report (diagnostics and the summary line).
pub fn render(report: &Report, sources: &[Source], format: Format, color: bool) -> String {
    match format {
        Format::Human => human(report, sources, color),
        Format::Json => {
            let doc = JsonReport {
                format: "virt-pci-validate",
                version: 1,
                report,
            };
            let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
            s.push('\n');
            s
        }
        Format::Github => github(report),
    }
}

/// rustc-style text: one block per diagnostic, then the summary.
pub fn human(report: &Report, sources: &[Source], color: bool) -> String {
    let texts: HashMap<&str, &str> = sources
        .iter()
        .map(|s| (s.path.as_str(), s.text.as_str()))
        .collect();
    let renderer = if color {
        Renderer::styled()
    } else {
        Renderer::plain()
    };
    let mut out = String::new();
    for d in &report.diagnostics {
        out.push_str(&renderer.render(&diagnostic_groups(d, texts.get(d.file.as_str()).copied())));
        out.push_str("\n\n");
    }
    out.push_str(&report.summary());
    out.push('\n');
    out
}

fn diagnostic_groups<'a>(d: &'a Diagnostic, text: Option<&'a str>) -> Vec<Group<'a>> {
    let level = match d.severity {
        Severity::Error => Level::ERROR,
        Severity::Warning => Level::WARNING,
        Severity::Note => Level::NOTE,
    };
    let title = level.primary_title(d.message.as_str()).id(d.code.as_str());
    let mut group = match text {
        Some(t) if d.line > 0 => {
            // Only the lines around each span go to the renderer, with their
            // line number: handing it the whole file per diagnostic was
            // quadratic (8,000 diagnostics in a 1 MB file, issue 11). A
            // related span within 50 lines shares the primary's snippet;
            // a farther one gets its own.
            let near = |r: &crate::validate::Related| r.line.abs_diff(d.line) <= 50;
            let mut lo = d.byte_start;
            let mut hi = d.byte_end;
            let mut first_line = d.line;
            for r in d.related.iter().filter(|r| near(r)) {
                if r.byte_start < lo {
                    lo = r.byte_start;
                    first_line = r.line;
                }
                hi = hi.max(r.byte_end);
            }
            let (ws, we) = window(t, lo, hi);
            let mut primary = AnnotationKind::Primary.span(d.byte_start - ws..d.byte_end - ws);
            if let Some(l) = &d.label {
                primary = primary.label(l.as_str());
            }
            let mut snippet = Snippet::source(&t[ws..we])
                .line_start(first_line as usize)
                .path(d.file.as_str())
                .annotation(primary);
            for r in d.related.iter().filter(|r| near(r)) {
                snippet = snippet.annotation(
                    AnnotationKind::Context
                        .span(r.byte_start - ws..r.byte_end - ws)
                        .label(r.label.as_str()),
                );
            }
            let mut title = title.element(snippet);
            for r in d.related.iter().filter(|r| !near(r)) {
                let (rs, re) = window(t, r.byte_start, r.byte_end);
                title = title.element(
                    Snippet::source(&t[rs..re])
                        .line_start(r.line as usize)
                        .path(d.file.as_str())
                        .annotation(
                            AnnotationKind::Context
                                .span(r.byte_start - rs..r.byte_end - rs)
                                .label(r.label.as_str()),
                        ),
                );
            }
            title
        }
        _ => title.element(annotate_snippets::Origin::path(d.file.as_str())),
    };
    if let Some(h) = &d.help {
        group = group.element(Level::HELP.message(h.as_str()));
    }
    vec![group]
}

/// The whole lines holding `lo..hi` (byte offsets, clamped to char
/// boundaries): from the start of `lo`'s line to the end of `hi`'s.
fn window(t: &str, lo: usize, hi: usize) -> (usize, usize) {
    let mut lo = lo.min(t.len());
    while !t.is_char_boundary(lo) {
        lo -= 1;
    }
    let mut hi = hi.clamp(lo, t.len());
    while !t.is_char_boundary(hi) {
        hi += 1;
    }
    let ws = t[..lo].rfind('\n').map_or(0, |i| i + 1);
    let we = t[hi..].find('\n').map_or(t.len(), |i| hi + i);
    (ws, we)
}

/// Escape the data part of a workflow command.
fn gh_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escape a property value of a workflow command.
fn gh_prop(s: &str) -> String {
    gh_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// GitHub workflow annotations, one line per diagnostic, then the summary.
pub fn github(report: &Report) -> String {
    let mut out = String::new();
    for d in &report.diagnostics {
        let kind = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "notice",
        };
        let mut msg = d.message.clone();
        if let Some(h) = &d.help {
            msg.push_str("\nhelp: ");
            msg.push_str(h);
        }
        let mut props = format!("file={}", gh_prop(&d.file));
        if d.line > 0 {
            props.push_str(&format!(",line={},col={}", d.line, d.column));
        }
        props.push_str(&format!(",title={}", d.code));
        out.push_str(&format!("::{kind} {props}::{}\n", gh_data(&msg)));
    }
    out.push_str(&report.summary());
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_escapes() {
        assert_eq!(gh_prop("a:b,c%\n"), "a%3Ab%2Cc%25%0A");
        assert_eq!(gh_data("a:b\nc"), "a:b%0Ac");
    }
}
