//! Consent recorded in the VM definition: a device passed through *despite*
//! a rule, on purpose (single-GPU passthrough of the boot VGA, a split group
//! whose other member the user handles), written where every tool that
//! edits the domain keeps it and every reviewer sees it.
//!
//! The entry lives in the domain's `<metadata>`, under virt-pci's own
//! namespace:
//!
//! ```xml
//! <metadata>
//!   <virt-pci:consent xmlns:virt-pci='urn:virt-pci:consent:1'>
//!     <virt-pci:allow device='0000:2b:00.0' rule='boot-vga' reason='single-GPU passthrough; the host runs headless'/>
//!   </virt-pci:consent>
//! </metadata>
//! ```
//!
//! Why there: libvirt keeps an element of `<metadata>` only when it has a
//! namespace, one per namespace, the first wins (`virXMLNodeSanitizeNamespaces`,
//! src/util/virxml.c, called from src/conf/domain_postparse.c); it stores it
//! verbatim and hands it back in every `dumpxml` and to the `prepare begin`
//! hook, so the guard (`virt-pci guard`)
//! reads it from its stdin without calling libvirt. The namespace is a URN:
//! virt-pci has no web address to name, and a namespace is only a name.
//!
//! `device` is always one of the domain's own hostdevs (so `remove` of the
//! device removes its entries), `rule` one of [`RULES`]: a kind of
//! host-critical device (or `host-critical` for any kind), or
//! `group-not-viable` (the device's IOMMU group has members the domain does
//! not hold, left on host drivers). Rules that libvirt, QEMU or the kernel
//! enforce anyway (bridges, devices held by a running domain, `managed='no'`
//! on a host driver) cannot be consented to.
//!
//! Writing is a splice on the original bytes in the file's own layout
//! ([`crate::domain::edit::style`]), like every other edit; `remove_for` undoes
//! `insert` to the byte (an `<metadata>` that `insert` created goes with its
//! last entry).

use crate::address::PciAddress;
use crate::domain::edit::{parse_domain, splice, style, EditError};
use crate::domain::hostdev::{escape_attr, Style};
use roxmltree::{Document, Node};
use std::ops::Range;

/// virt-pci's metadata namespace.
pub(crate) const NAMESPACE: &str = "urn:virt-pci:consent:1";
/// The prefix new entries use (an existing element's own prefix wins).
pub(crate) const PREFIX: &str = "virt-pci";

/// Rules a consent entry may name, with what they allow.
pub const RULES: &[(&str, &str)] = &[
    (
        "host-critical",
        "any host-critical device (root disk, default route, boot VGA, ISA bridge)",
    ),
    (
        "root-filesystem",
        "the controller of the host's root filesystem",
    ),
    ("default-route", "the NIC carrying the host's default route"),
    ("boot-vga", "the boot VGA device (the host's console)"),
    (
        "isa-bridge",
        "the chipset ISA/LPC bridge (TPM, super-I/O, firmware flash)",
    ),
    (
        "group-not-viable",
        "the device's IOMMU group has endpoints outside the domain on host drivers",
    ),
];

/// The consent rule name of a host-critical kind.
pub(crate) fn critical_rule(c: &crate::host::Critical) -> &'static str {
    use crate::host::Critical;
    match c {
        Critical::RootFilesystem { .. } => "root-filesystem",
        Critical::DefaultRoute { .. } => "default-route",
        Critical::BootVga => "boot-vga",
        Critical::IsaBridge => "isa-bridge",
    }
}

/// One `<allow>` entry as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allow {
    /// The device, when `device` reads as a PCI address.
    pub device: Option<PciAddress>,
    /// `device` as written.
    pub device_text: String,
    pub rule: String,
    pub reason: Option<String>,
    /// Byte range of the element.
    pub range: Range<usize>,
}

impl Allow {
    /// Whether the entry is usable: a device address and a known rule.
    pub fn problem(&self) -> Option<String> {
        if self.device.is_none() {
            return Some(format!(
                "device='{}' is not a PCI address (write it as 0000:2b:00.0)",
                self.device_text
            ));
        }
        if !RULES.iter().any(|(r, _)| *r == self.rule) {
            return Some(format!(
                "rule='{}' is not a rule consent can lift (one of: {})",
                self.rule,
                RULES.iter().map(|(r, _)| *r).collect::<Vec<_>>().join(", ")
            ));
        }
        None
    }

    /// Whether this entry allows `rule` for `device`: the same rule, or
    /// `host-critical` for any host-critical kind.
    pub fn allows(&self, device: &PciAddress, rule: &str) -> bool {
        self.device.as_ref() == Some(device)
            && (self.rule == rule
                || (self.rule == "host-critical"
                    && matches!(
                        rule,
                        "root-filesystem" | "default-route" | "boot-vga" | "isa-bridge"
                    )))
    }
}

fn metadata_of<'a, 'i>(doc: &'a Document<'i>) -> Option<Node<'a, 'i>> {
    doc.root_element()
        .children()
        .find(|c| c.is_element() && c.has_tag_name("metadata"))
}

fn consent_of<'a, 'i>(meta: Node<'a, 'i>) -> Option<Node<'a, 'i>> {
    meta.children()
        .find(|c| c.is_element() && c.has_tag_name((NAMESPACE, "consent")))
}

/// Every consent entry of the domain in `doc`, in document order.
pub fn entries(doc: &Document<'_>) -> Vec<Allow> {
    let Some(consent) = metadata_of(doc).and_then(consent_of) else {
        return Vec::new();
    };
    consent
        .children()
        .filter(|c| c.is_element() && c.has_tag_name((NAMESPACE, "allow")))
        .map(|n| {
            let device_text = n.attribute("device").unwrap_or_default().to_string();
            Allow {
                device: PciAddress::parse(device_text.trim()).ok(),
                device_text,
                rule: n.attribute("rule").unwrap_or_default().trim().to_string(),
                reason: n.attribute("reason").map(str::to_string),
                range: n.range(),
            }
        })
        .collect()
}

/// An entry to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAllow {
    pub device: PciAddress,
    pub rule: String,
    pub reason: String,
}

/// The prefix (with `:`) an element's name is written with.
fn written_prefix<'t>(text: &'t str, n: Node<'_, '_>) -> &'t str {
    let start = n.range().start + 1;
    let name_end = text[start..]
        .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
        .map_or(start, |i| start + i);
    let name = &text[start..name_end];
    match name.rfind(':') {
        Some(i) => &text[start..start + i + 1],
        None => "",
    }
}

/// Insert `new` entries (those not already present) into the domain in
/// `text`, which must parse as a domain. Returns the new text (unchanged
/// when every entry is already there).
pub fn insert(text: &str, new: &[NewAllow]) -> Result<String, EditError> {
    let doc = parse_domain(text)?;
    let have = entries(&doc);
    let todo = not_there_yet(&have, new);
    if todo.is_empty() {
        return Ok(text.to_string());
    }
    let w = Writer {
        text,
        st: style::infer(text, &doc, None),
        todo: &todo,
    };
    let meta = metadata_of(&doc);
    let splice = match (meta, meta.and_then(consent_of)) {
        (_, Some(c)) => w.append_to_consent(c),
        (Some(m), None) => {
            let mi = splice::line_indent(text, m.range().start).unwrap_or("");
            let block = w.consent_block(mi);
            let last = m.children().rfind(|x| x.is_element());
            splice::append_children(text, m, last, mi, &block, "metadata", &w.st)
        }
        (None, None) => w.new_metadata(doc.root_element())?,
    };
    let out = splice::apply(text, vec![splice]);
    // Check: it parses, and holds the old entries plus the new ones.
    let check = parse_domain(&out).map_err(|e| {
        EditError::Internal(format!("the document with consent does not parse: {e}"))
    })?;
    let got = entries(&check).len();
    if got != have.len() + todo.len() {
        return Err(EditError::Internal(format!(
            "expected {} consent entries after the edit, found {got}",
            have.len() + todo.len()
        )));
    }
    Ok(out)
}

/// The entries of `new` the domain does not have yet (same device and
/// rule), each once.
fn not_there_yet<'n>(have: &[Allow], new: &'n [NewAllow]) -> Vec<&'n NewAllow> {
    let mut todo: Vec<&NewAllow> = Vec::new();
    for n in new {
        let dup = have
            .iter()
            .any(|h| h.device == Some(n.device) && h.rule == n.rule)
            || todo
                .iter()
                .any(|t| t.device == n.device && t.rule == n.rule);
        if !dup {
            todo.push(n);
        }
    }
    todo
}

/// New entries written in the file's own layout ([`Style`]).
struct Writer<'a> {
    text: &'a str,
    st: Style,
    todo: &'a [&'a NewAllow],
}

impl Writer<'_> {
    /// The `<PREFIX:allow …/>` elements, each on its own line at `indent`.
    fn allows(&self, prefix: &str, indent: &str) -> String {
        let (nl, q) = (self.st.newline.as_str(), self.st.quote);
        let lead = if self.st.compact {
            String::new()
        } else {
            format!("{nl}{indent}")
        };
        self.todo
            .iter()
            .map(|n| {
                format!(
                    "{lead}<{prefix}allow device={q}{}{q} rule={q}{}{q} reason={q}{}{q}/>",
                    n.device,
                    escape_attr(&n.rule, q),
                    escape_attr(&n.reason, q)
                )
            })
            .collect()
    }

    /// Into the existing `<consent>` `c`, with the prefix the file bound
    /// to our namespace.
    fn append_to_consent(&self, c: Node<'_, '_>) -> (Range<usize>, String) {
        let prefix = written_prefix(self.text, c);
        let ci = splice::line_indent(self.text, c.range().start).unwrap_or("");
        let body = self.allows(prefix, &format!("{ci}{}", self.st.unit));
        let last = c.children().rfind(|x| x.is_element());
        let name = format!("{prefix}consent");
        splice::append_children(self.text, c, last, ci, &body, &name, &self.st)
    }

    /// A new `<virt-pci:consent>` for a `<metadata>` indented by `mi`.
    fn consent_block(&self, mi: &str) -> String {
        let (nl, q, unit) = (
            self.st.newline.as_str(),
            self.st.quote,
            self.st.unit.as_str(),
        );
        let ci = format!("{mi}{unit}");
        let body = self.allows("virt-pci:", &format!("{ci}{unit}"));
        let (lead, close) = if self.st.compact {
            (String::new(), String::new())
        } else {
            (format!("{nl}{ci}"), format!("{nl}{ci}"))
        };
        format!(
            "{lead}<{PREFIX}:consent xmlns:{PREFIX}={q}{NAMESPACE}{q}>{body}{close}</{PREFIX}:consent>"
        )
    }

    /// A new `<metadata>` in libvirt's order: name, uuid, genid, title,
    /// description, metadata, then the rest; so after the last of the first
    /// five, else first in `<domain>`.
    fn new_metadata(&self, root: Node<'_, '_>) -> Result<(Range<usize>, String), EditError> {
        let (text, nl) = (self.text, self.st.newline.as_str());
        if splice::is_self_closing(text, &root.range()) {
            return Err(EditError::Internal(
                "an empty <domain/> has no place for <metadata>".into(),
            ));
        }
        let after = root.children().rfind(|c| {
            c.is_element()
                && ["name", "uuid", "genid", "title", "description"]
                    .iter()
                    .any(|t| c.has_tag_name(*t))
        });
        // Children of <domain> are indented one unit less than `st.base`.
        let child = self
            .st
            .base
            .strip_suffix(self.st.unit.as_str())
            .unwrap_or("");
        let mi = after
            .and_then(|a| splice::line_indent(text, a.range().start))
            .unwrap_or(child);
        let b = self.consent_block(mi);
        let elem = if self.st.compact {
            format!("<metadata>{b}</metadata>")
        } else {
            format!("{nl}{mi}<metadata>{b}{nl}{mi}</metadata>")
        };
        let at = match after {
            Some(a) => a.range().end,
            None => splice::start_tag_end(text, root.range().start),
        };
        Ok((at..at, elem))
    }
}

/// Remove every entry whose `device` is one of `devices`; a consent element
/// left empty goes, and so does a `<metadata>` left without elements.
pub fn remove_for(text: &str, devices: &[PciAddress]) -> Result<String, EditError> {
    let doc = parse_domain(text)?;
    let Some(meta) = metadata_of(&doc) else {
        return Ok(text.to_string());
    };
    let Some(consent) = consent_of(meta) else {
        return Ok(text.to_string());
    };
    let all = entries(&doc);
    let gone: Vec<&Allow> = all
        .iter()
        .filter(|a| a.device.is_some_and(|d| devices.contains(&d)))
        .collect();
    if gone.is_empty() {
        return Ok(text.to_string());
    }
    let other_in_consent = consent.children().filter(|c| c.is_element()).count() > gone.len();
    let other_in_meta = meta.children().filter(|c| c.is_element()).count() > 1;
    let edits: Vec<(Range<usize>, String)> = if other_in_consent {
        gone.iter()
            .map(|a| (splice::removal_range(text, &a.range), String::new()))
            .collect()
    } else if other_in_meta {
        vec![(splice::removal_range(text, &consent.range()), String::new())]
    } else {
        vec![(splice::removal_range(text, &meta.range()), String::new())]
    };
    let out = splice::apply(text, edits);
    parse_domain(&out).map_err(|e| {
        EditError::Internal(format!("the document without consent does not parse: {e}"))
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GPU: PciAddress = PciAddress::new(0, 0x2b, 0, 0);

    fn boot_vga() -> NewAllow {
        NewAllow {
            device: GPU,
            rule: "boot-vga".into(),
            reason: "single GPU; host runs headless & <ssh>".into(),
        }
    }

    #[test]
    fn creates_metadata_after_the_header_and_round_trips() {
        let t = "<domain type='kvm'>\n  <name>w</name>\n  <uuid>u</uuid>\n  <memory>1</memory>\n  <devices>\n    <disk/>\n  </devices>\n</domain>\n";
        let out = insert(t, &[boot_vga()]).unwrap();
        assert_eq!(
            out,
            "<domain type='kvm'>\n  <name>w</name>\n  <uuid>u</uuid>\n  <metadata>\n    <virt-pci:consent xmlns:virt-pci='urn:virt-pci:consent:1'>\n      <virt-pci:allow device='0000:2b:00.0' rule='boot-vga' reason='single GPU; host runs headless &amp; &lt;ssh&gt;'/>\n    </virt-pci:consent>\n  </metadata>\n  <memory>1</memory>\n  <devices>\n    <disk/>\n  </devices>\n</domain>\n"
        );
        let doc = parse_domain(&out).unwrap();
        let e = entries(&doc);
        assert_eq!(e.len(), 1);
        assert_eq!(
            e[0].reason.as_deref(),
            Some("single GPU; host runs headless & <ssh>")
        );
        assert!(e[0].allows(&GPU, "boot-vga"));
        assert!(!e[0].allows(&GPU, "root-filesystem"));
        // Idempotent, and remove undoes it to the byte.
        assert_eq!(insert(&out, &[boot_vga()]).unwrap(), out);
        assert_eq!(remove_for(&out, &[GPU]).unwrap(), t);
        // Another device's removal leaves it.
        assert_eq!(
            remove_for(&out, &[PciAddress::new(0, 1, 0, 0)]).unwrap(),
            out
        );
    }

    #[test]
    fn joins_existing_metadata_and_consent_in_their_style() {
        let t = "<domain type=\"kvm\">\r\n\t<name>w</name>\r\n\t<metadata>\r\n\t\t<libosinfo:libosinfo xmlns:libosinfo=\"http://libosinfo.org/xmlns/libvirt/domain/1.0\">\r\n\t\t\t<libosinfo:os id=\"x\"/>\r\n\t\t</libosinfo:libosinfo>\r\n\t</metadata>\r\n</domain>";
        let out = insert(t, &[boot_vga()]).unwrap();
        assert!(out.contains("</libosinfo:libosinfo>\r\n\t\t<virt-pci:consent xmlns:virt-pci=\"urn:virt-pci:consent:1\">\r\n\t\t\t<virt-pci:allow device=\"0000:2b:00.0\" rule=\"boot-vga\""), "{out}");
        let two = insert(
            &out,
            &[NewAllow {
                device: PciAddress::new(0, 4, 0, 0),
                rule: "group-not-viable".into(),
                reason: "r".into(),
            }],
        )
        .unwrap();
        assert!(two.contains("/>\r\n\t\t\t<virt-pci:allow device=\"0000:04:00.0\" rule=\"group-not-viable\" reason=\"r\"/>\r\n\t\t</virt-pci:consent>"), "{two}");
        assert_eq!(
            remove_for(&two, &[PciAddress::new(0, 4, 0, 0)]).unwrap(),
            out
        );
        // The last entry takes the consent element, not the foreign metadata.
        assert_eq!(remove_for(&out, &[GPU]).unwrap(), t);
    }

    #[test]
    fn any_prefix_of_the_namespace_counts_and_bad_entries_say_why() {
        let t = "<domain><name>w</name><metadata><vp:consent xmlns:vp='urn:virt-pci:consent:1'><vp:allow device='2b:00.0' rule='host-critical'/><vp:allow device='nope' rule='boot-vga'/><vp:allow device='0000:01:00.0' rule='bridge'/></vp:consent><other:consent xmlns:other='urn:x'><other:allow device='0000:03:00.0' rule='boot-vga'/></other:consent></metadata></domain>";
        let doc = parse_domain(t).unwrap();
        let e = entries(&doc);
        assert_eq!(e.len(), 3);
        assert!(e[0].allows(&GPU, "boot-vga"));
        assert!(e[0].allows(&GPU, "root-filesystem"));
        assert!(!e[0].allows(&GPU, "group-not-viable"));
        assert!(e[0].problem().is_none());
        assert!(e[1].problem().unwrap().contains("not a PCI address"));
        assert!(e[2].problem().unwrap().contains("not a rule"));
        // One-line documents stay on one line; the entry joins vp:consent.
        let out = insert(t, &[boot_vga()]).unwrap();
        assert!(!out.contains('\n'));
        assert!(
            out.contains("rule='bridge'/><vp:allow device='0000:2b:00.0' rule='boot-vga'"),
            "{out}"
        );
    }
}
