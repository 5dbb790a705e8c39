//! Byte-level helpers for splicing into the original text.
//!
//! roxmltree gives the byte range of every element; these helpers find the
//! parts it does not name (where a start tag ends, where an end tag begins,
//! the indentation of a line) by looking at the original bytes, so an edit
//! never re-serialises anything it did not create.

use crate::domain::hostdev::Style;
use roxmltree::Node;
use std::ops::Range;

/// The indentation of the line `pos` is on, when only spaces and tabs
/// precede `pos` on that line.
pub(crate) fn line_indent(text: &str, pos: usize) -> Option<&str> {
    let ls = text[..pos].rfind('\n').map_or(0, |i| i + 1);
    let ws = &text[ls..pos];
    ws.bytes().all(|b| b == b' ' || b == b'\t').then_some(ws)
}

/// The end (one past `>`) of the start tag that begins at `start`.
pub(crate) fn start_tag_end(text: &str, start: usize) -> usize {
    let b = text.as_bytes();
    let mut quote: Option<u8> = None;
    let mut i = start;
    while i < b.len() {
        match (quote, b[i]) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, b'\'') | (None, b'"') => quote = Some(b[i]),
            (None, b'>') => return i + 1,
            _ => {}
        }
        i += 1;
    }
    b.len()
}

/// Whether the element at `range` is written `<x/>`.
pub(crate) fn is_self_closing(text: &str, range: &Range<usize>) -> bool {
    text[range.clone()].ends_with("/>")
}

/// The start of the end tag (`</x>`) of a non-self-closing element.
pub(crate) fn end_tag_start(text: &str, range: &Range<usize>) -> usize {
    text[range.clone()]
        .rfind("</")
        .map_or(range.end, |i| range.start + i)
}

/// Move back from `pos` over XML whitespace, not before `floor`.
pub(crate) fn skip_ws_back(text: &str, mut pos: usize, floor: usize) -> usize {
    let b = text.as_bytes();
    while pos > floor && matches!(b[pos - 1], b' ' | b'\t' | b'\r' | b'\n') {
        pos -= 1;
    }
    pos
}

/// Where the content of the non-self-closing element at `range` ends: before
/// the whitespace that precedes its end tag.
pub(crate) fn content_end(text: &str, range: &Range<usize>) -> usize {
    let content_start = start_tag_end(text, range.start);
    skip_ws_back(text, end_tag_start(text, range), content_start)
}

/// The splice that appends `body` (children already indented, each led by
/// its own line end unless the file is compact) to the element `el`, whose
/// end tag is `</close_name>` and whose start tag is indented `indent`:
/// right after its child `after` when given, else at the end of its
/// content. A self-closing `<x/>` becomes `<x>…</x>`; an end tag that would
/// share its line with the new children moves to a line of its own.
pub(crate) fn append_children(
    text: &str,
    el: Node<'_, '_>,
    after: Option<Node<'_, '_>>,
    indent: &str,
    body: &str,
    close_name: &str,
    st: &Style,
) -> (Range<usize>, String) {
    let r = el.range();
    let nl = &st.newline;
    if is_self_closing(text, &r) {
        let head = text[r.start..r.end - 2].trim_end_matches([' ', '\t', '\r', '\n']);
        let close = if st.compact {
            String::new()
        } else {
            format!("{nl}{indent}")
        };
        return (
            r.start + head.len()..r.end,
            format!(">{body}{close}</{close_name}>"),
        );
    }
    let at = match after {
        Some(a) => a.range().end,
        None => content_end(text, &r),
    };
    let end = end_tag_start(text, &r);
    let tail = if !st.compact && after.is_none() && !text[at..end].contains('\n') {
        format!("{nl}{indent}")
    } else {
        String::new()
    };
    (at..at, format!("{body}{tail}"))
}

/// The range to delete for an element: the element and the indentation and
/// one line end before it, so removing undoes exactly what an insert of
/// `newline + indent + element` did.
pub(crate) fn removal_range(text: &str, range: &Range<usize>) -> Range<usize> {
    let b = text.as_bytes();
    let mut w = range.start;
    while w > 0 && matches!(b[w - 1], b' ' | b'\t') {
        w -= 1;
    }
    if w > 0 && b[w - 1] == b'\n' {
        w -= 1;
        if w > 0 && b[w - 1] == b'\r' {
            w -= 1;
        }
    }
    w..range.end
}

/// Apply non-overlapping `(range, replacement)` edits to `text`.
pub fn apply(text: &str, mut edits: Vec<(Range<usize>, String)>) -> String {
    edits.sort_by_key(|(r, _)| (r.start, r.end));
    let mut out = String::with_capacity(text.len() + 256);
    let mut at = 0;
    for (r, s) in edits {
        let start = r.start.max(at);
        out.push_str(&text[at..start]);
        out.push_str(&s);
        at = r.end.max(start);
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_indents() {
        let t = "<a>\r\n  <b x='>'>hi</b >\n</a>";
        let b = t.find("<b").unwrap();
        assert_eq!(line_indent(t, b), Some("  "));
        assert_eq!(&t[start_tag_end(t, b)..start_tag_end(t, b) + 2], "hi");
        let r = b..t.find("\n</a>").unwrap();
        assert_eq!(&t[end_tag_start(t, &r)..r.end], "</b >");
        assert_eq!(&t[removal_range(t, &r)], "\r\n  <b x='>'>hi</b >");
        assert_eq!(skip_ws_back(t, b, 0), 3);
    }
}
