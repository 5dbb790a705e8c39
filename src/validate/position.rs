//! Byte offsets to 1-based lines and columns (in characters), for many
//! positions in one text.
//!
//! The checks record byte ranges only; positions are computed once per
//! file at the end, from one [`LineIndex`], because a scan per finding was
//! quadratic (issue 11). One position at a time is
//! [`crate::diagnostic::line_col`]'s, which this index agrees with.

/// Line starts of a text, built once, for many positions: 8,000
/// diagnostics in a 1 MB file each rescanning it was quadratic (8,000
/// duplicate hostdevs took 7.7 s to validate, issue 11).
pub(crate) struct LineIndex {
    /// Byte offset of every line start.
    lines: Vec<usize>,
    /// Every 4 KiB of text: (byte offset on a char boundary, its column), so
    /// a column on a 2 MB single line is not a 2 MB scan.
    marks: Vec<(usize, usize)>,
}

impl LineIndex {
    pub(crate) fn new(text: &str) -> LineIndex {
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
    pub(crate) fn line_col(&self, text: &str, at: usize) -> (u32, u32) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostic::line_col;

    #[test]
    fn the_index_agrees_with_line_col() {
        let long = format!("{}é\n{}x", "a".repeat(10_000), "b".repeat(9_000));
        let idx = LineIndex::new(&long);
        for at in [0, 3, 4097, 10_000, 10_002, 10_003, 15_000, long.len()] {
            assert_eq!(idx.line_col(&long, at), line_col(&long, at), "{at}");
        }
    }
}
