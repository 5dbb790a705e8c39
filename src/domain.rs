//! Reading libvirt domain XML: which PCI functions a domain uses.
//!
//! The strict reader is roxmltree (it rejects every malformed document
//! quick-xml accepted, docs/dependencies.md §1–2) and gives byte
//! ranges, so the editor can splice and the validator can point a caret at
//! an attribute value. This module only reads; `xml` edits, `validate`
//! judges. Both `<hostdev type='pci'>` and `<interface type='hostdev'>` count:
//! libvirt folds both into one list when it checks for duplicates.

use crate::address::{parse_libvirt_number, PciAddress};
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

/// The most attributes one element may have. libvirt's elements have at
/// most ~20; roxmltree checks each new attribute against the element's
/// earlier ones, so 200,000 attributes on one element took minutes
/// (issue 11). With this cap the cost is linear in the file's size.
pub const MAX_ATTRIBUTES: usize = 256;

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

/// The source address of a `<hostdev>`/`<interface>` node, as libvirt reads it.
pub fn source_address(node: roxmltree::Node<'_, '_>) -> Option<PciAddress> {
    let src = node.children().find(|c| c.has_tag_name("source"))?;
    let addr = src.children().find(|c| c.has_tag_name("address"))?;
    let field = |name: &str, max: u64| -> Option<u64> {
        match addr.attribute(name) {
            None => Some(0),
            Some(v) => parse_libvirt_number(v)
                .map(|n| n.value)
                .filter(|n| *n <= max),
        }
    };
    Some(PciAddress::new(
        field("domain", u64::from(u32::MAX))? as u32,
        field("bus", 0xff)? as u8,
        field("slot", 0x1f)? as u8,
        field("function", 7)? as u8,
    ))
}

/// Every PCI hostdev of the domain in `doc`, in document order.
pub fn pci_hostdevs(doc: &roxmltree::Document<'_>) -> Vec<DomainHostdev> {
    pci_hostdevs_of(doc.root_element())
}

/// [`pci_hostdevs`] of a `<domain>` element anywhere in a document (libvirt's
/// status files wrap it in `<domstatus>`).
pub fn pci_hostdevs_of(root: roxmltree::Node<'_, '_>) -> Vec<DomainHostdev> {
    let mut out = Vec::new();
    let Some(devices) = root.children().find(|c| c.has_tag_name("devices")) else {
        return out;
    };
    for n in devices.children().filter(|n| n.is_element()) {
        let pci = if n.has_tag_name("hostdev") {
            n.attribute("type") == Some("pci")
                && n.attribute("mode").unwrap_or("subsystem") == "subsystem"
        } else if n.has_tag_name("interface") && n.attribute("type") == Some("hostdev") {
            n.children()
                .find(|c| c.has_tag_name("source"))
                .and_then(|s| s.children().find(|c| c.has_tag_name("address")))
                .and_then(|a| a.attribute("type"))
                == Some("pci")
        } else {
            false
        };
        if !pci {
            continue;
        }
        out.push(DomainHostdev {
            address: source_address(n),
            managed: n.attribute("managed").map(str::to_string),
            interface: n.has_tag_name("interface"),
            range: n.range(),
        });
    }
    out
}

/// The `<name>` of a domain document.
pub fn domain_name(doc: &roxmltree::Document<'_>) -> Option<String> {
    doc.root_element()
        .children()
        .find(|c| c.has_tag_name("name"))
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
