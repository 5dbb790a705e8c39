//! One way to show a problem in a file: rustc's shape, by rustc's own
//! renderer (annotate-snippets, docs/dependencies.md §6).
//!
//! ```text
//! error: vm.xml: malformed XML: expected 'hostdev' tag, not 'devices'
//!  --> vm.xml:5:3
//!   |
//! 5 |   </devices>
//!   |   ^
//!   |
//!   = help: fix the XML …
//! ```
//!
//! `validate` renders each finding through [`Message::group`], and every
//! command that refuses a file at a position (`add`, `remove`, `retarget`,
//! `hostdevs`, the guard reading its stdin, a snapshot or mapping file) carries
//! a [`Located`] and renders through [`Located::render`], so a file error
//! looks the same wherever it comes from: the path, line and column, the
//! source line with a caret, then the help. Errors without a file position
//! (a bad argument, a host that cannot be read) stay one `error:` line and
//! `help:` lines; the CLI prints those.
//!
//! Where a `line:column` from a parser points is decided here once
//! ([`point`]): at the character there, or, when the file ended too early,
//! just after its last character (not at an empty line after the final
//! newline).

use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};
use std::ops::Range;

/// A span in a source text: 1-based line of its start, byte range, label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Mark<'a> {
    pub line: u32,
    pub bytes: Range<usize>,
    pub label: Option<&'a str>,
}

/// One diagnostic, borrowed from whoever owns it (a `validate` finding, a
/// [`Located`] CLI error).
pub(crate) struct Message<'a> {
    pub level: Level<'static>,
    /// `error[CODE]` when set.
    pub code: Option<&'a str>,
    pub title: &'a str,
    pub path: &'a str,
    /// The file's text and the primary span in it; without them only
    /// ` --> path` is shown.
    pub source: Option<(&'a str, Mark<'a>)>,
    /// Further spans, shown as context (`-` underlines with their labels).
    pub related: Vec<Mark<'a>>,
    pub help: Vec<&'a str>,
}

impl<'a> Message<'a> {
    /// The annotate-snippets group: title, the lines around the spans, help.
    pub(crate) fn group(&self) -> Group<'a> {
        let mut title = self.level.clone().primary_title(self.title);
        if let Some(c) = self.code {
            title = title.id(c);
        }
        let mut group = match &self.source {
            Some((t, primary)) => {
                // Only the lines around each span go to the renderer, with
                // their line number: handing it the whole file per
                // diagnostic was quadratic (8,000 diagnostics in a 1 MB
                // file, issue 11). A related span within 50 lines shares
                // the primary's snippet; a farther one gets its own.
                let near = |r: &Mark| r.line.abs_diff(primary.line) <= 50;
                let mut lo = primary.bytes.start;
                let mut hi = primary.bytes.end;
                let mut first_line = primary.line;
                for r in self.related.iter().filter(|r| near(r)) {
                    if r.bytes.start < lo {
                        lo = r.bytes.start;
                        first_line = r.line;
                    }
                    hi = hi.max(r.bytes.end);
                }
                let (ws, we) = window(t, lo, hi);
                let shift = |b: &Range<usize>, ws: usize| b.start - ws..b.end - ws;
                let mut main = AnnotationKind::Primary.span(shift(&primary.bytes, ws));
                if let Some(l) = primary.label {
                    main = main.label(l);
                }
                let mut snippet = Snippet::source(&t[ws..we])
                    .line_start(first_line as usize)
                    .path(self.path)
                    .annotation(main);
                for r in self.related.iter().filter(|r| near(r)) {
                    snippet = snippet.annotation(
                        AnnotationKind::Context
                            .span(shift(&r.bytes, ws))
                            .label(r.label),
                    );
                }
                let mut title = title.element(snippet);
                for r in self.related.iter().filter(|r| !near(r)) {
                    let (rs, re) = window(t, r.bytes.start, r.bytes.end);
                    title = title.element(
                        Snippet::source(&t[rs..re])
                            .line_start(r.line as usize)
                            .path(self.path)
                            .annotation(
                                AnnotationKind::Context
                                    .span(shift(&r.bytes, rs))
                                    .label(r.label),
                            ),
                    );
                }
                title
            }
            None => title.element(annotate_snippets::Origin::path(self.path)),
        };
        for h in &self.help {
            group = group.element(Level::HELP.message(*h));
        }
        group
    }

    /// The whole diagnostic as text (ANSI colours when `color`).
    pub fn render(&self, color: bool) -> String {
        renderer(color).render(&[self.group()])
    }
}

/// rustc's renderer, coloured or plain.
pub(crate) fn renderer(color: bool) -> Renderer {
    if color {
        Renderer::styled()
    } else {
        Renderer::plain()
    }
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

/// The byte offset of 1-based `line` and `column` (characters) in `text`;
/// past the end, the end.
pub(crate) fn offset_of(text: &str, line: u32, column: u32) -> usize {
    let mut start = 0;
    for _ in 1..line {
        match text[start..].find('\n') {
            Some(i) => start += i + 1,
            None => return text.len(),
        }
    }
    let line_text = &text[start..];
    start
        + line_text
            .char_indices()
            .nth(column.saturating_sub(1) as usize)
            .map_or(line_text.len(), |(i, _)| i)
}

/// 1-based line and column (characters) of byte offset `at` in `text`.
pub(crate) fn line_col(text: &str, at: usize) -> (u32, u32) {
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

/// The span a parser's `line:column` points at: the character there; when
/// the file ended too early, just after its last character.
pub(crate) fn point(text: &str, line: u32, column: u32) -> Range<usize> {
    let mut at = offset_of(text, line, column);
    if at >= text.len() {
        at = text.trim_end().len();
    }
    let end = text[at..].chars().next().map_or(at, |c| at + c.len_utf8());
    at..end
}

/// A file error's place: the path as the user named it, and (when the
/// caller has it) the file's text with the span, so the error shows the
/// line with a caret. Attach it to an error; help lines go beside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    pub path: String,
    pub line: u32,
    pub column: u32,
    /// The text and the byte span in it.
    source: Option<(String, Range<usize>)>,
}

/// Files larger than this are not read again just to show a line.
const MAX_REREAD: u64 = 64 << 20;

impl Located {
    /// `line:column` (as a parser reports it) in `text`.
    pub fn at(path: impl Into<String>, text: &str, line: u32, column: u32) -> Located {
        Located::span(path, text, point(text, line, column))
    }

    /// A byte span in `text`.
    fn span(path: impl Into<String>, text: &str, bytes: Range<usize>) -> Located {
        let (line, column) = line_col(text, bytes.start);
        Located {
            path: path.into(),
            line,
            column,
            source: Some((text.to_string(), bytes)),
        }
    }

    /// `line:column` in a file the caller has not kept: the file is read
    /// again for the snippet (a file that is gone, unreadable, too large or
    /// not UTF-8 gives ` --> path:line:column` alone).
    pub fn in_file(path: &std::path::Path, line: u32, column: u32) -> Located {
        let shown = path.display().to_string();
        let text = std::fs::metadata(path)
            .ok()
            .filter(|m| m.is_file() && m.len() <= MAX_REREAD)
            .and_then(|_| std::fs::read_to_string(path).ok());
        match text {
            Some(t) => Located::at(shown, &t, line, column),
            None => Located {
                path: shown,
                line,
                column,
                source: None,
            },
        }
    }

    /// `error: TITLE`, the place with a caret, then `= help:` lines.
    pub fn render(&self, title: &str, help: &[String], color: bool) -> String {
        match &self.source {
            Some((text, bytes)) => Message {
                level: Level::ERROR,
                code: None,
                title,
                path: &self.path,
                source: Some((
                    text,
                    Mark {
                        line: self.line,
                        bytes: bytes.clone(),
                        label: None,
                    },
                )),
                related: Vec::new(),
                help: help.iter().map(String::as_str).collect(),
            }
            .render(color),
            None => {
                let origin = annotate_snippets::Origin::path(self.path.as_str())
                    .line(self.line as usize)
                    .char_column(self.column as usize);
                let mut group = Level::ERROR.primary_title(title).element(origin);
                for h in help {
                    group = group.element(Level::HELP.message(h.as_str()));
                }
                renderer(color).render(&[group])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_of_line_and_column() {
        let t = "ab\ncé\nx";
        assert_eq!(offset_of(t, 1, 1), 0);
        assert_eq!(offset_of(t, 2, 2), 4);
        assert_eq!(offset_of(t, 3, 1), 7);
        assert_eq!(offset_of(t, 9, 1), t.len());
    }

    #[test]
    fn line_col_counts_characters() {
        let t = "ab\ncé d";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 3), (2, 1));
        assert_eq!(line_col(t, 6), (2, 3));
        assert_eq!(line_col(t, 100), (2, 5));
    }

    #[test]
    fn a_point_past_the_end_is_after_the_last_character() {
        let t = "<a>\n  <b>\n\n";
        assert_eq!(point(t, 4, 1), 9..10);
        assert_eq!(point(t, 2, 3), 6..7);
    }

    #[test]
    fn a_located_error_shows_the_line_and_a_caret_then_help() {
        let t = "<domain>\n  <devices>\n    <hostdev>\n  </devices>\n</domain>\n";
        let l = Located::at("vm.xml", t, 4, 3);
        assert_eq!((l.line, l.column), (4, 3));
        assert_eq!(
            l.render("vm.xml: malformed XML", &["fix it".into()], false),
            "error: vm.xml: malformed XML
 --> vm.xml:4:3
  |
4 |   </devices>
  |   ^
  |
  = help: fix it"
        );
    }

    #[test]
    fn without_the_text_only_the_place() {
        let l = Located::in_file(std::path::Path::new("/nonexistent/x.json"), 2, 7);
        assert_eq!(
            l.render("bad", &[], false),
            "error: bad\n--> /nonexistent/x.json:2:7"
        );
    }
}
