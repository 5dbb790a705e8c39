//! The three output forms of a [`Report`]:
//!
//! * human: rustc's own renderer through [`crate::diagnostic`] (the one
//!   every file error goes through), so `error[VP012]: …`, ` --> file:line:col`, the
//!   source line with a caret under the attribute value and `help:` look
//!   exactly like the compiler people already read;
//! * JSON: the [`Report`] itself (`schemas/validate.schema.json`);
//! * GitHub: workflow commands, which GitHub turns into annotations on the
//!   pull request's diff.

use super::{Diagnostic, Report, Severity, Source};
use crate::diagnostic::{renderer, Mark, Message};
use annotate_snippets::{Group, Level};
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
fn human(report: &Report, sources: &[Source], color: bool) -> String {
    let texts: HashMap<&str, &str> = sources
        .iter()
        .map(|s| (s.path.as_str(), s.text.as_str()))
        .collect();
    let renderer = renderer(color);
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
    let source = text.filter(|_| d.line > 0).map(|t| {
        let primary = Mark {
            line: d.line,
            bytes: d.byte_start..d.byte_end,
            label: d.label.as_deref(),
        };
        (t, primary)
    });
    let related = d.related.iter().map(|r| Mark {
        line: r.line,
        bytes: r.byte_start..r.byte_end,
        label: Some(r.label.as_str()),
    });
    let message = Message {
        level,
        code: Some(d.code.as_str()),
        title: &d.message,
        path: &d.file,
        source,
        related: related.collect(),
        help: d.help.iter().map(String::as_str).collect(),
    };
    vec![message.group()]
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
fn github(report: &Report) -> String {
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
