//! Text that came from outside (snapshots, sysfs trees, domain files,
//! listings, arguments), made safe to print.
//!
//! WHY one place: a device name `GPU\nerror: fake` or an attribute holding
//! `\e]0;pwned\a` must not forge output lines or drive the terminal, and a
//! 120 KB argument must not flood an error message. Every message and
//! table cell that shows such a string goes through [`escape`] (or
//! [`shorten`], which escapes too); the escaping is Rust's `escape_debug`
//! for control characters only, so ordinary text (UTF-8 names included)
//! prints unchanged.
//!
//! Not XML: a value written into a document is escaped by
//! [`crate::domain::hostdev::escape_attr`] (entities and character
//! references), which is a different job with different rules.

/// Control characters (C0, DEL, C1) and Unicode bidi overrides written as
/// `\n`, `\u{1b}`, ...; everything else unchanged.
pub fn escape(s: &str) -> String {
    if !s.chars().any(needs_escape) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs_escape(c) {
            out.extend(c.escape_debug());
            // escape_debug leaves some controls (e.g. U+0085) unescaped.
            if !out.ends_with(|x: char| !needs_escape(x)) {
                out.pop();
                out.push_str(&format!("\\u{{{:x}}}", c as u32));
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// For the output sinks (`emit`, error reports): every control character
/// except newline, tab and our own colour codes (SGR, `ESC [ … m`) is
/// escaped, so no string that slipped past [`escape`] can move the cursor,
/// set the window title (`ESC ] 0 ; … BEL`) or clear the screen.
pub fn terminal_safe(s: &str) -> std::borrow::Cow<'_, str> {
    let needs = |c: char| needs_escape(c) && c != '\n' && c != '\t';
    // Printable ASCII, newline and tab need nothing: checked a byte at a
    // time first (an inventory of a fleet prints hundreds of megabytes).
    if s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) || b == b'\n' || b == b'\t')
    {
        return std::borrow::Cow::Borrowed(s);
    }
    if !s.chars().any(needs) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    let mut it = s.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        if c == '\u{1b}' {
            // SGR: ESC [ digits/semicolons m — ours; keep it.
            let rest = &s[i + 1..];
            if let Some(body) = rest.strip_prefix('[') {
                let n = body
                    .find(|x: char| !(x.is_ascii_digit() || x == ';'))
                    .unwrap_or(body.len());
                if body[n..].starts_with('m') {
                    out.push_str(&s[i..i + 2 + n + 1]);
                    for _ in 0..n + 2 {
                        it.next();
                    }
                    continue;
                }
            }
        }
        if needs(c) {
            out.push_str(&escape(c.encode_utf8(&mut [0u8; 4])));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The longest echoed input, in characters.
pub(crate) const ECHO_MAX: usize = 200;

/// [`escape`], then cut to [`ECHO_MAX`] characters with a note of how much
/// was left out.
pub fn shorten(s: &str) -> String {
    let e = escape(s);
    let n = e.chars().count();
    if n <= ECHO_MAX {
        return e;
    }
    let head: String = e.chars().take(ECHO_MAX).collect();
    format!("{head}… ({} more characters)", n - ECHO_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_and_the_rest_kept() {
        assert_eq!(escape("GPU\nerror: fake"), "GPU\\nerror: fake");
        assert_eq!(escape("\u{1b}]0;pwned\u{7}"), "\\u{1b}]0;pwned\\u{7}");
        assert_eq!(escape("a\u{85}b\u{202e}c"), "a\\u{85}b\\u{202e}c");
        assert_eq!(escape("NVIDIA GeForce — ü"), "NVIDIA GeForce — ü");
        assert_eq!(
            terminal_safe("\u{1b}[1mok\u{1b}[0m\n\u{1b}]0;pwned\u{7}\t"),
            "\u{1b}[1mok\u{1b}[0m\n\\u{1b}]0;pwned\\u{7}\t"
        );
        let long = "x".repeat(120_000);
        let s = shorten(&long);
        assert!(
            s.len() < 300 && s.ends_with("(119800 more characters)"),
            "{s}"
        );
    }
}
