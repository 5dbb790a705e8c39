//! Structure (VP001) and the walk through one file.
//!
//! What a file is decides what is checked: a domain, a stream of hostdev
//! elements, well-formed XML of another kind (skipped and named in the
//! summary), or not well-formed XML (VP001, never skipped: a pre-commit
//! hook or CI that trusts a file must fail on a truncated one). Kept apart
//! from the rules because it is the one place that knows about the wrapper
//! and the parser's errors; the families of checks get nodes.
//!
//! A stream of hostdev elements (what `virt-pci snippet` prints, several
//! roots) is not a well-formed document; it is parsed once inside a wrapper
//! element inserted before the first element, and every position is mapped
//! back to the file ([`super::context::OffsetMap`]), so line, column and
//! caret stay exact.

use super::context::{push_at, Cx, OffsetMap};
use super::hostdev::is_pci_interface;
use super::{Code, Diagnostic, Source};
use crate::address::PciAddress;
use crate::domain::{child, is_el, XmlError};
use roxmltree::Node;
use std::ops::Range;

/// The wrapper around a multi-root snippet stream.
const WRAP: &str = "virt-pci-snippets";

/// What a file turned out to be.
pub(super) enum FileKind {
    /// A domain or a snippet stream: its PCI hostdevs, for cross checks.
    Unit(Unit),
    /// Well-formed XML of another kind (a network, a host interface, …):
    /// not checked. Holds the root element's name, for the summary.
    Skipped(String),
    /// Not readable or not well-formed (already reported).
    Broken,
}

/// A domain (or snippet file) and the host devices it uses.
#[derive(Clone, Debug)]
pub(super) struct Unit {
    /// Index into the sources.
    pub(super) file: usize,
    /// `<name>` of a domain; `None` for snippets.
    pub(super) name: Option<String>,
    pub(super) is_domain: bool,
    pub(super) hostdevs: Vec<UnitHostdev>,
}

/// A PCI host device as libvirt reads it, with where its `<address>` is.
#[derive(Clone, Debug)]
pub(super) struct UnitHostdev {
    pub(super) address: PciAddress,
    pub(super) range: Range<usize>,
}

impl Unit {
    /// How other findings name this unit: `domain 'vm' (vm.xml)`.
    pub(super) fn label(&self, src: &Source) -> String {
        match &self.name {
            Some(n) => format!("domain '{n}' ({})", src.path),
            None => src.path.clone(),
        }
    }
}

/// What is checked in a parsed file.
struct Shape<'a, 'i> {
    /// The parents of device elements: every `<devices>` of a domain, or
    /// the wrapper of a snippet stream.
    devices: Vec<Node<'a, 'i>>,
    /// `<name>` of a domain.
    name: Option<String>,
    is_domain: bool,
    /// An s390x domain: 0000:00:00.x is a zPCI device there, not the host
    /// bridge.
    s390: bool,
}

/// Check one file: well-formedness and everything inside it.
pub(super) fn check_file(index: usize, src: &Source, out: &mut Vec<Diagnostic>) -> FileKind {
    // Decide by parsing, never by a glance at the first tag: an empty file,
    // leading junk, an unterminated comment, a merge-conflict marker or a
    // truncated root tag is not well-formed, and a file a pre-commit hook
    // or CI trusts must fail then, not be skipped. Only well-formed XML of
    // another kind (a network, capabilities, …) is skipped.
    let (wrapped, map) = wrap_snippets(src);
    let text = wrapped.as_deref().unwrap_or(&src.text);
    let doc = match crate::domain::parse(text) {
        Ok(d) => d,
        Err(e) => {
            not_well_formed(src, text, map, &e, out);
            return FileKind::Broken;
        }
    };
    let shape = match shape_of(&doc) {
        Ok(s) => s,
        Err(root) => return FileKind::Skipped(root),
    };
    let mut cx = Cx { src, map, out };
    let hostdevs =
        super::hostdev::check_hostdevs(&mut cx, &shape.devices, shape.name.is_some(), shape.s390);
    for d in &shape.devices {
        super::guest::check_guest_addresses(&mut cx, *d);
    }
    if shape.is_domain {
        super::guest::check_guest_topology(&mut cx, &doc);
        super::consent::check_consent(&mut cx, &doc);
    }
    FileKind::Unit(Unit {
        file: index,
        name: shape.name,
        is_domain: shape.is_domain,
        hostdevs,
    })
}

/// A snippet stream (first element `<hostdev>` or `<interface>`) wrapped
/// in one root, and how its positions map back; `None` for any other file,
/// parsed as it is.
fn wrap_snippets(src: &Source) -> (Option<String>, OffsetMap) {
    match first_element(&src.text) {
        Some((name, at)) if name == "hostdev" || name == "interface" => {
            let open = format!("<{WRAP}>");
            let wrapped = format!("{}{open}{}</{WRAP}>", &src.text[..at], &src.text[at..]);
            let map = OffsetMap {
                insert_at: at,
                shift: open.len(),
                len: src.text.len(),
            };
            (Some(wrapped), map)
        }
        _ => (None, OffsetMap::identity(src.text.len())),
    }
}

/// VP001 for a document the parser refused (`text` is what was parsed).
fn not_well_formed(
    src: &Source,
    text: &str,
    map: OffsetMap,
    e: &XmlError,
    out: &mut Vec<Diagnostic>,
) {
    if e.message.contains("DTD") {
        // Well-formed, but entity expansion is not something a
        // validator run on untrusted pull requests should do.
        let at = src.text.find("<!DOCTYPE").unwrap_or(0);
        push_at(
            src,
            out,
            Code::Vp001,
            at..at + "<!DOCTYPE".len().min(src.text.len() - at),
            "DOCTYPE declarations are not read (libvirt writes none)".into(),
            None,
            Some("remove the <!DOCTYPE …> line".into()),
        );
        return;
    }
    let at = crate::diagnostic::offset_of(text, e.line, e.column);
    let mut at = map.pos(at);
    if at >= src.text.len() {
        // The file ended too early: point just after its last
        // character, not at an empty line after the final newline.
        at = src.text.trim_end().len();
    }
    let end = src.text[at..]
        .chars()
        .next()
        .map_or(at, |c| at + c.len_utf8());
    push_at(
        src,
        out,
        Code::Vp001,
        at..end,
        format!("not well-formed XML: {}", xml_message(&e.message)),
        None,
        None,
    );
}

/// A domain or a snippet stream, or (`Err`) the root element of a file of
/// another kind, as the summary names it.
fn shape_of<'a, 'i>(doc: &'a roxmltree::Document<'i>) -> Result<Shape<'a, 'i>, String> {
    let root = doc.root_element();
    if is_el(root, "domain") {
        // Every `<devices>` (libvirt merges them); only libvirt's elements
        // (no namespace), as libvirt's XPath sees them.
        let s390 = child(root, "os")
            .and_then(|os| child(os, "type"))
            .and_then(|t| t.attribute("arch"))
            .is_some_and(|a| a.starts_with("s390"));
        return Ok(Shape {
            devices: crate::domain::devices_elements(doc).collect(),
            name: crate::domain::domain_name(doc),
            is_domain: true,
            s390,
        });
    }
    if root.has_tag_name(WRAP) {
        if !root
            .children()
            .any(|c| is_el(c, "hostdev") || is_pci_interface(c))
        {
            return Err("hostdev elements of no kind virt-pci checks".into());
        }
        return Ok(Shape {
            devices: vec![root],
            name: None,
            is_domain: false,
            s390: false,
        });
    }
    Err(match root.tag_name().namespace() {
        Some(ns) => format!("<{} xmlns='{ns}'>", root.tag_name().name()),
        None => format!("<{}>", root.tag_name().name()),
    })
}

/// The name and byte offset of the first element, skipping the XML
/// declaration, processing instructions, comments and a byte-order mark.
fn first_element(text: &str) -> Option<(&str, usize)> {
    let mut i = 0;
    let b = text.as_bytes();
    if text.starts_with('\u{feff}') {
        i = 3;
    }
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let rest = &text[i..];
        if rest.starts_with("<?") {
            i += rest.find("?>")? + 2;
        } else if rest.starts_with("<!--") {
            i += rest.find("-->")? + 3;
        } else if rest.starts_with("<!DOCTYPE") {
            // Skip it (an internal subset ends with `]>`) to see the root.
            let end = match (rest.find('['), rest.find('>')) {
                (Some(b), Some(g)) if b < g => rest.find("]>")? + 2,
                (_, Some(g)) => g + 1,
                _ => return None,
            };
            i += end;
        } else if rest.starts_with("<!") {
            return None;
        } else if let Some(r) = rest.strip_prefix('<') {
            let end = r
                .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
                .unwrap_or(r.len());
            return Some((&r[..end], i));
        } else {
            return None;
        }
    }
}

/// Strip roxmltree's trailing ` at 3:7` (the position is printed separately).
fn xml_message(m: &str) -> String {
    let m = match m.rsplit_once(" at ") {
        Some((head, pos))
            if pos
                .split(':')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) =>
        {
            head
        }
        _ => m,
    };
    m.replace(&format!("'{WRAP}'"), "the end of the file")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::testing::codes;
    use crate::validate::{validate, Inputs, Options};

    #[test]
    fn doctype_is_reported_not_skipped() {
        let x = "<?xml version='1.0'?>\n<!DOCTYPE domain [<!ENTITY a 'b'>]>\n<domain><name>x</name></domain>";
        assert_eq!(first_element(x).map(|f| f.0), Some("domain"));
        assert_eq!(codes(x), ["VP001"]);
    }

    #[test]
    fn only_well_formed_foreign_xml_is_skipped() {
        let src = |path: &str, text: &str| Source {
            path: path.into(),
            text: text.into(),
        };
        let inputs = Inputs::from_sources(vec![
            src("net.xml", "<network><name>default</name></network>"),
            src("iface.xml", "<interface type='ethernet' name='eth0'/>"),
        ]);
        let r = validate(&inputs, None, Options::default());
        assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
        assert_eq!(r.files_skipped, 2);
        assert_eq!(r.skipped[0].root, "<network>");
        assert!(
            r.summary()
                .contains("skipped: net.xml <network>, iface.xml"),
            "{}",
            r.summary()
        );
        // Not well-formed: an error, whatever the first tag looks like.
        let d = "<domain type='kvm'><name>vm</name><devices/></domain>\n";
        for broken in [
            String::new(),
            "   \n".to_string(),
            format!("junk{d}"),
            format!("<!-- unterminated\n{d}"),
            format!("<<<<<<< HEAD\n{d}=======\n{d}>>>>>>> other\n"),
            "<dom".to_string(),
            d[..d.len() / 2].to_string(),
            "<device/><device/>".to_string(),
        ] {
            assert_eq!(codes(&broken), ["VP001"], "{broken:?}");
        }
        // Every truncation of a domain before its end is an error.
        for cut in 0..d.len() - 1 {
            assert_eq!(codes(&d[..cut]), ["VP001"], "cut at {cut}: {:?}", &d[..cut]);
        }
    }

    #[test]
    fn first_element_skips_the_prolog() {
        assert_eq!(
            first_element("\u{feff}<?xml version='1.0'?>\n<!-- x -->\n<hostdev mode='subsystem'/>"),
            Some(("hostdev", 36))
        );
        assert_eq!(first_element("<domain>"), Some(("domain", 0)));
        assert_eq!(first_element("text"), None);
    }

    #[test]
    fn xml_messages_lose_the_position_and_the_wrapper() {
        assert_eq!(
            xml_message("expected 'hostdev' tag, not 'virt-pci-snippets' at 3:1"),
            "expected 'hostdev' tag, not the end of the file"
        );
        assert_eq!(xml_message("unknown token at x"), "unknown token at x");
    }
}
