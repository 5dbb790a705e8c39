//! The layout a file already uses, so new elements look like their
//! neighbours: line end, indentation unit, the indentation of `<devices>`
//! children, attribute quote, and whether the file is written on one line.

use super::splice::line_indent;
use crate::domain::hostdev::Style;
use roxmltree::{Document, Node};

/// The line end the file uses (`\r\n` when its first line ends so).
pub(crate) fn newline(text: &str) -> &'static str {
    match text.find('\n') {
        Some(i) if i > 0 && text.as_bytes()[i - 1] == b'\r' => "\r\n",
        _ => "\n",
    }
}

fn quote_counts<'a>(text: &str, nodes: impl Iterator<Item = Node<'a, 'a>>) -> (usize, usize) {
    let (mut single, mut double) = (0, 0);
    for n in nodes.filter(|n| n.is_element()) {
        for a in n.attributes() {
            let r = a.range_value();
            match r.start.checked_sub(1).and_then(|i| text.as_bytes().get(i)) {
                Some(b'\'') => single += 1,
                Some(b'"') => double += 1,
                _ => {}
            }
        }
    }
    (single, double)
}

/// The quote most attributes in `scope` use (else in the whole document,
/// else libvirt's single quote).
fn quote<'a>(text: &str, doc: &'a Document<'a>, scope: Option<Node<'a, 'a>>) -> char {
    let (mut s, mut d) = scope.map_or((0, 0), |n| quote_counts(text, n.descendants()));
    if s + d == 0 {
        (s, d) = quote_counts(text, doc.root().descendants());
    }
    if d > s {
        '"'
    } else {
        '\''
    }
}

fn indent_of<'a>(text: &'a str, n: Node<'_, '_>) -> Option<&'a str> {
    line_indent(text, n.range().start)
}

/// One nesting level: from an element child of `parent` and its own first
/// element child, else from `parent` and its first element child.
fn unit_from(text: &str, parent: Node<'_, '_>) -> Option<String> {
    let pi = indent_of(text, parent).unwrap_or("");
    for c in parent.children().filter(|c| c.is_element()) {
        let Some(ci) = indent_of(text, c) else {
            continue;
        };
        if let Some(g) = c.children().find(|g| g.is_element()) {
            if let Some(u) = indent_of(text, g).and_then(|gi| gi.strip_prefix(ci)) {
                if !u.is_empty() {
                    return Some(u.to_string());
                }
            }
        }
        if let Some(u) = ci.strip_prefix(pi) {
            if !u.is_empty() {
                return Some(u.to_string());
            }
        }
    }
    None
}

/// The style for elements placed as children of `devices` (or of a new
/// `<devices>` under the root when `devices` is `None`).
pub(crate) fn infer<'a>(text: &str, doc: &'a Document<'a>, devices: Option<Node<'a, 'a>>) -> Style {
    let root = doc.root_element();
    let nl = newline(text).to_string();
    let unit = devices
        .and_then(|d| unit_from(text, d))
        .or_else(|| unit_from(text, root))
        .unwrap_or_else(|| "  ".to_string());
    let root_content = &text[root.range()];
    let (compact, base) = match devices {
        Some(d) if d.children().any(|c| c.is_element()) => {
            let compact = !text[d.range()].contains('\n');
            let di = indent_of(text, d).unwrap_or("");
            let last_hostdev = d
                .children()
                .rfind(|c| crate::domain::is_el(*c, "hostdev"))
                .and_then(|c| indent_of(text, c));
            let first = d
                .children()
                .filter(|c| c.is_element())
                .find_map(|c| indent_of(text, c));
            let base = last_hostdev
                .or(first)
                .map(str::to_string)
                .unwrap_or_else(|| format!("{di}{unit}"));
            (compact, base)
        }
        Some(d) => {
            let di = indent_of(text, d).unwrap_or("");
            (!root_content.contains('\n'), format!("{di}{unit}"))
        }
        None => {
            let ri = indent_of(text, root).unwrap_or("");
            let child = root
                .children()
                .filter(|c| c.is_element())
                .find_map(|c| indent_of(text, c))
                .map(str::to_string)
                .unwrap_or_else(|| format!("{ri}{unit}"));
            (!root_content.contains('\n'), format!("{child}{unit}"))
        }
    };
    Style {
        base,
        unit,
        quote: quote(text, doc, devices),
        newline: nl,
        compact,
    }
}
