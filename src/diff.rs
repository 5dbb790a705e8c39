//! Unified diffs of an edit, for `--diff`: what would change, before
//! anything is written. Plain text is `patch`-compatible; colour (on a
//! terminal) only paints lines, it never changes them.

use similar::{ChangeTag, TextDiff};
use std::fmt::Write as _;

/// A unified diff from `old` to `new` with three lines of context, labelled
/// `a/NAME` and `b/NAME`. Empty when the texts are equal.
pub fn unified(old: &str, new: &str, name: &str, color: bool) -> String {
    if old == new {
        return String::new();
    }
    let (skip, old, new) = changed_middle(old, new, CONTEXT);
    render(old, new, name, color, skip)
}

const CONTEXT: usize = 3;

/// The part of `old` and `new` a diff has to look at: from `context` lines
/// before the first differing line to `context` lines after the last one,
/// and how many lines come before it. Lines outside can only ever be equal,
/// and hashing all of them made `--diff` 40% of `add`'s time on a 10 MB
/// domain (BENCHMARKS.md, patch).
fn changed_middle<'a>(old: &'a str, new: &'a str, context: usize) -> (usize, &'a str, &'a str) {
    let (a, b) = (old.as_bytes(), new.as_bytes());
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let line_start = |s: &[u8], at: usize| {
        s[..at]
            .iter()
            .rposition(|&c| c == b'\n')
            .map_or(0, |i| i + 1)
    };
    let mut start = line_start(a, prefix);
    let first_diff_line = start;
    for _ in 0..context {
        if start == 0 {
            break;
        }
        start = line_start(a, start - 1);
    }
    // The common suffix may not reach into the line of the first difference.
    let room = a.len().min(b.len()) - first_diff_line;
    let suffix = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take(room)
        .take_while(|(x, y)| x == y)
        .count();
    let next_line = |at: usize| {
        a[at..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(a.len(), |i| at + i + 1)
    };
    let mut end = a.len() - suffix;
    if end > 0 && a[end - 1] != b'\n' {
        end = next_line(end);
    }
    for _ in 0..context {
        if end >= a.len() {
            break;
        }
        end = next_line(end);
    }
    let tail = a.len() - end;
    let skip = a[..start].iter().filter(|&&c| c == b'\n').count();
    // Both cut points are after a '\n' (or at an end), so they are char boundaries.
    (skip, &old[start..end], &new[start..new.len() - tail])
}

/// `@@ -A,B +C,D @@` with both starts moved down by `skip` lines.
fn shift_header(header: &str, skip: usize) -> String {
    if skip == 0 {
        return header.to_string();
    }
    header
        .split(' ')
        .map(|w| match (w.strip_prefix('-'), w.strip_prefix('+')) {
            (Some(r), _) | (_, Some(r)) => {
                let (n, rest) = r.split_once(',').map_or((r, ""), |(n, l)| (n, l));
                match n.parse::<usize>() {
                    Ok(n) if rest.is_empty() => format!("{}{}", &w[..1], n + skip),
                    Ok(n) => format!("{}{},{rest}", &w[..1], n + skip),
                    Err(_) => w.to_string(),
                }
            }
            _ => w.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn render(old: &str, new: &str, name: &str, color: bool, skip: usize) -> String {
    let diff = TextDiff::from_lines(old, new);
    let mut out = String::new();
    let paint = |style: anstyle::Style, s: &str| -> String {
        if color {
            format!("{}{s}{}", style.render(), style.render_reset())
        } else {
            s.to_string()
        }
    };
    let bold = anstyle::Style::new().bold();
    let _ = writeln!(out, "{}", paint(bold, &format!("--- a/{name}")));
    let _ = writeln!(out, "{}", paint(bold, &format!("+++ b/{name}")));
    for hunk in diff.unified_diff().context_radius(3).iter_hunks() {
        let _ = writeln!(
            out,
            "{}",
            paint(
                anstyle::AnsiColor::Cyan.on_default(),
                &shift_header(&hunk.header().to_string(), skip)
            )
        );
        for change in hunk.iter_changes() {
            let (sign, style) = match change.tag() {
                ChangeTag::Delete => ("-", anstyle::AnsiColor::Red.on_default()),
                ChangeTag::Insert => ("+", anstyle::AnsiColor::Green.on_default()),
                ChangeTag::Equal => (" ", anstyle::Style::new()),
            };
            let line = change.value();
            let body = line.strip_suffix('\n').unwrap_or(line);
            let _ = writeln!(out, "{}", paint(style, &format!("{sign}{body}")));
            if change.missing_newline() {
                let _ = writeln!(out, "\\ No newline at end of file");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn plain_unified_diff() {
        let d = super::unified("a\nb\n", "a\nc\nb\n", "vm.xml", false);
        assert_eq!(
            d,
            "--- a/vm.xml\n+++ b/vm.xml\n@@ -1,2 +1,3 @@\n a\n+c\n b\n"
        );
        assert_eq!(super::unified("x", "x", "f", false), "");
    }

    /// Diffing only the changed middle gives the same text as diffing all.
    #[test]
    fn trimmed_diff_equals_full_diff() {
        let base: Vec<String> = (0..200)
            .map(|i| format!("  <line n='{}'/>\n", i % 17))
            .collect();
        let text = |v: &[String]| v.concat();
        let old = text(&base);
        let mut cases: Vec<String> = Vec::new();
        for at in [0, 1, 2, 3, 5, 50, 196, 197, 198, 199, 200] {
            let mut v = base.clone();
            v.insert(at, "    <hostdev/>\n".into());
            cases.push(text(&v));
            if at < 200 {
                let mut v = base.clone();
                v.remove(at);
                cases.push(text(&v));
                let mut v = base.clone();
                v[at] = "  <changed/>\n".into();
                v.insert(at.min(150) + 40, "  <x/>\n".into());
                cases.push(text(&v));
            }
        }
        cases.push(old.trim_end().to_string()); // missing newline at the end
        cases.push(format!("{old}  <tail/>")); // new last line without newline
        cases.push(String::new());
        for new in &cases {
            for (o, n) in [(old.as_str(), new.as_str()), (new.as_str(), old.as_str())] {
                let full = super::render(o, n, "f", false, 0);
                assert_eq!(
                    super::unified(o, n, "f", false),
                    full,
                    "old={o:?}\nnew={n:?}"
                );
            }
        }
    }
}
