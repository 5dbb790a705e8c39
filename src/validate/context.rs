//! Where a per-file check writes a finding.
//!
//! A stream of hostdev elements (what `virt-pci snippet` prints, several
//! roots) is parsed inside a wrapper element inserted before its first
//! element ([`super::file`]), so positions in the parsed text are not
//! positions in the file. Every check of one file writes through [`Cx`],
//! which maps each range back ([`OffsetMap`]) before it is stored: line,
//! column and caret stay exact, and no check has to know about the wrapper.

use super::{Code, Diagnostic, Related, Source};
use roxmltree::Node;
use std::ops::Range;

/// Positions in the parsed text (maybe wrapped) → positions in the file.
#[derive(Clone, Copy)]
pub(super) struct OffsetMap {
    pub(super) insert_at: usize,
    pub(super) shift: usize,
    pub(super) len: usize,
}

impl OffsetMap {
    /// The text is the file itself.
    pub(super) fn identity(len: usize) -> OffsetMap {
        OffsetMap {
            insert_at: usize::MAX,
            shift: 0,
            len,
        }
    }
    pub(super) fn pos(&self, p: usize) -> usize {
        let p = if p >= self.insert_at + self.shift {
            p - self.shift
        } else if p >= self.insert_at {
            self.insert_at
        } else {
            p
        };
        p.min(self.len)
    }
    pub(super) fn range(&self, r: Range<usize>) -> Range<usize> {
        self.pos(r.start)..self.pos(r.end)
    }
}

/// One file's findings go through here.
pub(super) struct Cx<'a> {
    pub(super) src: &'a Source,
    pub(super) map: OffsetMap,
    pub(super) out: &'a mut Vec<Diagnostic>,
}

impl Cx<'_> {
    /// A finding at `parsed` (a range in the parsed text), with the
    /// code's severity.
    pub(super) fn push(
        &mut self,
        code: Code,
        parsed: Range<usize>,
        message: String,
        label: Option<String>,
        help: Option<String>,
    ) -> &mut Diagnostic {
        let r = self.map.range(parsed);
        push_at(self.src, self.out, code, r, message, label, help)
    }

    /// A second place (at `parsed`) that explains a finding.
    pub(super) fn related(&self, parsed: Range<usize>, label: String) -> Related {
        let r = self.map.range(parsed);
        // Line and column are filled in by `validate` from one index per
        // file (a scan per diagnostic was quadratic).
        let (line, column) = (0, 0);
        Related {
            line,
            column,
            byte_start: r.start,
            byte_end: r.end,
            label,
        }
    }
}

/// A finding at `r`, a range in the file itself, with the code's severity.
pub(super) fn push_at<'o>(
    src: &Source,
    out: &'o mut Vec<Diagnostic>,
    code: Code,
    r: Range<usize>,
    message: String,
    label: Option<String>,
    help: Option<String>,
) -> &'o mut Diagnostic {
    // Filled in by `validate` from one index per file.
    let (line, column) = (0, 0);
    out.push(Diagnostic {
        code,
        severity: code.severity(),
        message,
        file: src.path.clone(),
        line,
        column,
        byte_start: r.start,
        byte_end: r.end,
        label,
        help,
        related: Vec::new(),
    });
    let last = out.len() - 1;
    &mut out[last]
}

/// The start-tag name of `n` (for a caret under `hostdev` in `<hostdev`).
pub(super) fn tag_span(n: Node<'_, '_>) -> Range<usize> {
    let s = n.range().start + 1;
    s..s + n.tag_name().name().len()
}

/// The value of attribute `name` of `n`.
pub(super) fn attr_span(n: Node<'_, '_>, name: &str) -> Option<Range<usize>> {
    n.attribute_node(name).map(|a| a.range_value())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_map_back_through_the_wrapper() {
        let m = OffsetMap {
            insert_at: 5,
            shift: 10,
            len: 20,
        };
        assert_eq!(m.pos(3), 3);
        assert_eq!(m.pos(7), 5);
        assert_eq!(m.pos(15), 5);
        assert_eq!(m.pos(16), 6);
        assert_eq!(m.pos(100), 20);
        assert_eq!(OffsetMap::identity(20).pos(7), 7);
    }
}
