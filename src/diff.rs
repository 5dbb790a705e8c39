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
                &hunk.header().to_string()
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
}
