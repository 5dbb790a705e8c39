//! Reading libvirt domain XML: which PCI functions a domain uses.
//!
//! The strict reader is roxmltree (it rejects every malformed document
//! quick-xml accepted, docs/dependencies.md §1–2) and gives byte
//! ranges, so the editor can splice and the validator can point a caret at
//! an attribute value. This module only reads; `xml` edits, `validate`
//! judges. Both `<hostdev type='pci'>` and `<interface type='hostdev'>` count:
//! libvirt folds both into one list when it checks for duplicates.

pub mod consent;
pub mod edit;
pub mod guest;
pub mod hostdev;

use crate::address::read_pci_address;
use crate::address::PciAddress;
use std::fmt;
use std::ops::Range;

/// A document that is not well-formed XML, with where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XmlError {
    pub message: String,
    /// 1-based line and column (characters).
    pub line: u32,
    pub column: u32,
}

impl fmt::Display for XmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for XmlError {}

impl XmlError {
    /// The message without roxmltree's trailing ` at LINE:COLUMN` (the
    /// position is shown beside it, with the line and a caret).
    pub fn reason(&self) -> &str {
        let suffix = format!(" at {}:{}", self.line, self.column);
        self.message.strip_suffix(&suffix).unwrap_or(&self.message)
    }
}

/// The most attributes one element may have. libvirt's elements have at
/// most ~20; roxmltree checks each new attribute against the element's
/// earlier ones, so 200,000 attributes on one element took minutes
/// (issue 11). With this cap the cost is linear in the file's size.
pub(crate) const MAX_ATTRIBUTES: usize = 256;

/// The first start tag with more than [`MAX_ATTRIBUTES`] attributes: its
/// byte offset. One pass over the text, skipping comments, CDATA,
/// processing instructions and declarations; quotes are honoured inside
/// tags. A document this scan misreads is malformed, and the parser says
/// so next.
fn too_many_attributes(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(off) = b[i..].iter().position(|&c| c == b'<') {
        let at = i + off;
        let rest = &text[at..];
        let skip_to = |end: &str, from: usize| text[from..].find(end).map(|e| from + e + end.len());
        let next = if rest.starts_with("<!--") {
            skip_to("-->", at + 4)
        } else if rest.starts_with("<![CDATA[") {
            skip_to("]]>", at + 9)
        } else if rest.starts_with("<?") {
            skip_to("?>", at + 2)
        } else if rest.starts_with("<!") || rest.starts_with("</") {
            skip_to(">", at + 2)
        } else {
            // A start tag: count `=` outside quotes up to the closing `>`.
            let mut quote = 0u8;
            let mut count = 0usize;
            let mut j = at + 1;
            while j < b.len() {
                let c = b[j];
                if quote != 0 {
                    if c == quote {
                        quote = 0;
                    }
                } else if c == b'"' || c == b'\'' {
                    quote = c;
                } else if c == b'=' {
                    count += 1;
                    if count > MAX_ATTRIBUTES {
                        return Some(at);
                    }
                } else if c == b'>' {
                    break;
                }
                j += 1;
            }
            Some(j + 1)
        };
        match next {
            Some(n) if n > i => i = n.min(b.len()),
            _ => return None,
        }
    }
    None
}

/// Parse strictly (no DTD), keeping positions.
pub fn parse(text: &str) -> Result<roxmltree::Document<'_>, XmlError> {
    if let Some(at) = too_many_attributes(text) {
        let (line, column) = crate::validate::line_col(text, at);
        return Err(XmlError {
            message: format!(
                "an element with more than {MAX_ATTRIBUTES} attributes (libvirt's have at most about 20); refused"
            ),
            line,
            column,
        });
    }
    let opts = roxmltree::ParsingOptions {
        allow_dtd: false,
        ..roxmltree::ParsingOptions::default()
    };
    roxmltree::Document::parse_with_options(text, opts).map_err(|e| {
        let pos = e.pos();
        // roxmltree reports a DTD at 1:1; point at the declaration itself.
        let (line, column) = match (&e, text.find("<!DOCTYPE")) {
            (roxmltree::Error::DtdDetected, Some(at)) => crate::validate::line_col(text, at),
            _ => (pos.row, pos.col),
        };
        XmlError {
            message: e.to_string(),
            line,
            column,
        }
    })
}

/// One PCI device use in a domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainHostdev {
    /// The source address, when it is present and every field reads as
    /// libvirt would accept it (missing fields are 0, as in libvirt).
    pub address: Option<PciAddress>,
    /// `managed` as written (`yes`, `no`, or anything else).
    pub managed: Option<String>,
    /// True for `<interface type='hostdev'>`.
    pub interface: bool,
    /// Byte range of the whole element.
    pub range: Range<usize>,
}

impl DomainHostdev {
    /// libvirt reads only `yes` as managed (and `managed='true'` as no).
    pub fn is_managed(&self) -> bool {
        self.managed.as_deref() == Some("yes")
    }
}

/// Whether `n` is libvirt's element `name`: an element in no namespace.
///
/// libvirt finds elements with XPath over plain names (`./devices/hostdev`,
/// `virXPathNodeSet` in `src/conf/domain_conf.c`), which matches only
/// elements without a namespace. `<x:hostdev xmlns:x='urn:x'>` is someone
/// else's metadata to libvirt (it defines such a domain with 0 hostdevs,
/// checked with `virsh define`), and so it is here. roxmltree's
/// `has_tag_name("hostdev")` ignores the namespace, so every lookup of a
/// libvirt element goes through this function.
pub(crate) fn is_el(n: roxmltree::Node<'_, '_>, name: &str) -> bool {
    n.is_element() && n.tag_name().name() == name && n.tag_name().namespace().is_none()
}

/// The first child of `n` that is libvirt's element `name`.
pub fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    n.children().find(|c| is_el(*c, name))
}

/// Every `<devices>` of the domain, in document order.
///
/// libvirt 9.0 reads devices with `virXPathNodeSet("./devices/hostdev")`
/// and the like (`virDomainDefParseXML`, `src/conf/domain_conf.c`): the
/// path matches the children of *every* `<devices>` element, so a second
/// `<devices>` is merged into the first, not ignored.
pub(crate) fn devices_elements<'a, 'i>(
    doc: &'a roxmltree::Document<'i>,
) -> impl Iterator<Item = roxmltree::Node<'a, 'i>> {
    doc.root_element()
        .children()
        .filter(|c| is_el(*c, "devices"))
}

/// Every device element of the domain (children of all `<devices>`).
pub(crate) fn device_nodes<'a, 'i>(
    doc: &'a roxmltree::Document<'i>,
) -> impl Iterator<Item = roxmltree::Node<'a, 'i>> {
    devices_elements(doc).flat_map(|d| d.children().filter(|c| c.is_element()))
}

/// The source address of a `<hostdev>`/`<interface>` node, as libvirt reads it.
pub(crate) fn source_address(node: roxmltree::Node<'_, '_>) -> Option<PciAddress> {
    let src = child(node, "source")?;
    let addr = child(src, "address")?;
    read_pci_address(addr)
}

/// Whether `n` is a PCI hostdev as libvirt counts them: `<hostdev
/// mode='subsystem' type='pci'>` or `<interface type='hostdev'>` with a PCI
/// source address.
pub(crate) fn is_pci_hostdev(n: roxmltree::Node<'_, '_>) -> bool {
    if is_el(n, "hostdev") {
        n.attribute("type") == Some("pci")
            && n.attribute("mode").unwrap_or("subsystem") == "subsystem"
    } else if is_el(n, "interface") && n.attribute("type") == Some("hostdev") {
        child(n, "source")
            .and_then(|s| child(s, "address"))
            .and_then(|a| a.attribute("type"))
            == Some("pci")
    } else {
        false
    }
}

/// Every PCI hostdev of the domain in `doc`, in document order (over all
/// `<devices>` elements, as libvirt merges them).
pub fn pci_hostdevs(doc: &roxmltree::Document<'_>) -> Vec<DomainHostdev> {
    pci_hostdevs_of(doc.root_element())
}

/// [`pci_hostdevs`] of a `<domain>` element anywhere in a document (libvirt's
/// status files wrap it in `<domstatus>`).
pub(crate) fn pci_hostdevs_of(root: roxmltree::Node<'_, '_>) -> Vec<DomainHostdev> {
    let mut out = Vec::new();
    let nodes = root
        .children()
        .filter(|c| is_el(*c, "devices"))
        .flat_map(|d| d.children().filter(|c| c.is_element()));
    for n in nodes {
        let pci = is_pci_hostdev(n);
        if !pci {
            continue;
        }
        out.push(DomainHostdev {
            address: source_address(n),
            managed: n.attribute("managed").map(str::to_string),
            interface: is_el(n, "interface"),
            range: n.range(),
        });
    }
    out
}

/// The `<name>` of a domain document.
pub fn domain_name(doc: &roxmltree::Document<'_>) -> Option<String> {
    child(doc.root_element(), "name")
        .and_then(|n| n.text())
        .map(|t| t.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_hostdevs_and_hostdev_interfaces() {
        let x = "<domain type='kvm'><name>vm1</name><devices>\
<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x06' slot='0x12' function='0x5'/></source></hostdev>\
<hostdev mode='subsystem' type='usb'><source><vendor id='0x1234'/><product id='0xbeef'/></source></hostdev>\
<interface type='hostdev' managed='yes'><source><address type='pci' domain='0x0000' bus='0x00' slot='0x07' function='0x0'/></source></interface>\
<hostdev mode='subsystem' type='pci' managed='true'><source><address bus='010'/></source></hostdev>\
</devices></domain>";
        let doc = parse(x).unwrap();
        assert_eq!(domain_name(&doc).as_deref(), Some("vm1"));
        let h = pci_hostdevs(&doc);
        assert_eq!(h.len(), 3);
        assert_eq!(h[0].address, Some(PciAddress::new(0, 6, 0x12, 5)));
        assert!(h[0].is_managed());
        assert!(h[1].interface);
        assert_eq!(h[1].address, Some(PciAddress::new(0, 0, 7, 0)));
        // octal, as libvirt reads it; managed='true' is not managed
        assert_eq!(h[2].address, Some(PciAddress::new(0, 8, 0, 0)));
        assert!(!h[2].is_managed());
    }

    #[test]
    fn malformed_xml_has_a_position() {
        let e = parse("<domain>\n  <devices>\n</domain>").unwrap_err();
        assert_eq!(e.line, 3);
    }
}
