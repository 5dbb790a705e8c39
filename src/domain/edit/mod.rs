//! Byte-exact edits of libvirt domain XML: add and remove `<hostdev>`s.
//!
//! Users judge an editor by what it leaves alone. Nothing here re-serialises
//! a document: the strict reader ([`crate::domain`], roxmltree) finds byte
//! ranges, and the edit is a splice on the original text. Comments (also
//! before `<domain>`), processing instructions, a BOM, CRLF line ends, entity
//! references, CDATA, attribute quote style and namespaced elements outside
//! the edit stay byte-identical. New elements follow the file's own layout
//! ([`style`]); a removal takes the element with the indentation and line end
//! before it, so `remove` undoes `add` to the byte. One exception: where
//! `add` had to create `<devices>`, `remove` leaves it (empty). An empty
//! `<devices>` is common in real files and must survive a removal, and the
//! two cannot be told apart afterwards.
//!
//! Both functions are pure (text in, text out): the CLI edits files with
//! them, and the libvirt backend edits the XML libvirt hands out. Each result
//! is parsed again and its hostdev set compared with what was intended; a
//! mismatch is an [`EditError::Internal`], never a silently wrong file.

mod add;
mod remove;
pub mod retarget;
pub mod splice;
pub mod style;

pub use add::{add, add_parsed, reversible};
pub use remove::remove;

use crate::address::{DeviceSpec, PciAddress};
use crate::domain::hostdev::OptionError;
use crate::domain::{self, XmlError};
use roxmltree::Document;
use std::fmt;

/// The result of an edit. `text` is the whole new document (the original
/// when nothing changed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edit {
    pub text: String,
    /// Hostdevs that were added.
    pub added: Vec<PciAddress>,
    /// Requested hostdevs that the domain already had (left untouched).
    pub already_present: Vec<PciAddress>,
    /// Hostdevs that were removed (one entry per removed element).
    pub removed: Vec<PciAddress>,
    /// Things the user should know (e.g. a sibling function left behind).
    pub warnings: Vec<String>,
}

impl Edit {
    pub fn changed(&self) -> bool {
        !self.added.is_empty() || !self.removed.is_empty()
    }

    /// The edit as data (`add`/`remove --json`, `schemas/edit.schema.json`):
    /// what a caller needs to report a change without parsing XML — the
    /// document before and after, and which functions moved. `before` is the
    /// text the edit was made on; `after` is what the target holds now (for a
    /// libvirt domain that was redefined: libvirt's persistent XML read back,
    /// with the guest addresses libvirt assigned), else the edit's text.
    /// `written`: the file was written or the domain defined.
    pub fn report<'a>(
        &'a self,
        target: &'a str,
        before: &'a str,
        after: Option<&'a str>,
        written: bool,
    ) -> EditReport<'a> {
        EditReport {
            target,
            changed: self.text != before,
            written,
            added: &self.added,
            already_present: &self.already_present,
            removed: &self.removed,
            warnings: &self.warnings,
            before,
            after: after.unwrap_or(&self.text),
        }
    }
}

/// [`Edit::report`]: one `add`/`remove` as JSON.
#[derive(Clone, Debug, serde::Serialize)]
pub struct EditReport<'a> {
    /// The document: a file name, `<stdin>` or `domain:NAME`.
    pub target: &'a str,
    /// The edit changes the document.
    pub changed: bool,
    /// The change was written (`-i`, `-o`) or defined (`--domain`);
    /// false for `--diff` (a dry run) and when nothing changed.
    pub written: bool,
    pub added: &'a [PciAddress],
    pub already_present: &'a [PciAddress],
    pub removed: &'a [PciAddress],
    pub warnings: &'a [String],
    pub before: &'a str,
    pub after: &'a str,
}

/// Which hostdevs `remove` takes out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// Every PCI `<hostdev>` (not `<interface type='hostdev'>`).
    All,
    /// Functions, or all functions of a slot. `Ids` specs must be resolved
    /// against a host first.
    Only(Vec<DeviceSpec>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EditError {
    /// Not well-formed XML.
    Malformed(XmlError),
    /// Well-formed, but the root is not a libvirt `<domain>`.
    NotDomain {
        found: String,
        line: u32,
        column: u32,
    },
    /// Hostdev options libvirt would reject.
    Options(OptionError),
    /// `remove` named devices the domain does not have. `interfaces` are
    /// those found only as `<interface type='hostdev'>`.
    Absent {
        missing: Vec<String>,
        interfaces: Vec<PciAddress>,
    },
    /// A guest-side option that does not fit the domain (an occupied or
    /// impossible guest address, a boot order or alias already used).
    Guest(domain::guest::GuestError),
    /// Options for devices the domain already has: they would not be
    /// applied, so nothing is written. `line` is where the first one is.
    PresentWithOptions {
        present: Vec<PciAddress>,
        options: Vec<&'static str>,
        line: u32,
        column: u32,
    },
    /// A selection that cannot be read without a host (`vendor:device`).
    Unsupported(String),
    /// The edit did not produce what was intended (a bug; nothing written).
    Internal(String),
}

impl fmt::Display for EditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EditError::Malformed(e) => write!(f, "malformed XML: {}", e.reason()),
            EditError::NotDomain { found, .. } => {
                write!(
                    f,
                    "not a libvirt domain: the root element is <{found}>, not <domain>"
                )
            }
            EditError::Options(e) => e.fmt(f),
            EditError::Guest(e) => e.fmt(f),
            EditError::PresentWithOptions {
                present, options, ..
            } => write!(
                f,
                "{} {} already in the domain; {} would not be applied to {}",
                present
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                if present.len() == 1 { "is" } else { "are" },
                options.join(", "),
                if present.len() == 1 { "it" } else { "them" },
            ),
            EditError::Absent { missing, .. } => {
                write!(f, "not in the domain: {}", missing.join(", "))
            }
            EditError::Unsupported(m) => f.write_str(m),
            EditError::Internal(m) => write!(f, "internal error, nothing written: {m}"),
        }
    }
}

impl std::error::Error for EditError {}

impl EditError {
    /// 1-based line and column, where the error has one.
    pub fn position(&self) -> Option<(u32, u32)> {
        match self {
            EditError::Malformed(e) => Some((e.line, e.column)),
            EditError::NotDomain { line, column, .. } => Some((*line, *column)),
            EditError::PresentWithOptions { line, column, .. } => Some((*line, *column)),
            _ => None,
        }
    }

    /// What to do about it.
    pub fn help(&self) -> Option<String> {
        match self {
            EditError::Malformed(e) if e.message.contains("DTD") => Some("remove the <!DOCTYPE ...> declaration: libvirt never writes one, and DTDs are not read (no entity expansion); nothing was written".into()),
            EditError::Malformed(_) => Some("fix the XML (or get a fresh copy with `virsh dumpxml DOMAIN`); nothing was written".into()),
            EditError::NotDomain { .. } => Some("give a domain definition, as `virsh dumpxml DOMAIN` prints it; for a lone <hostdev> use `virt-pci snippet`".into()),
            EditError::Options(e) => e.help.clone(),
            EditError::Guest(e) => Some(e.help.clone()),
            EditError::PresentWithOptions { .. } => Some("virt-pci does not change a hostdev the domain already has: remove it first (`virt-pci remove`), then add it again with these options; nothing was written".into()),
            EditError::Absent { interfaces, .. } if !interfaces.is_empty() => Some(format!(
                "{} {} an <interface type='hostdev'> (a network VF); edit it with `virsh edit`",
                interfaces.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", "),
                if interfaces.len() == 1 { "is" } else { "are" }
            )),
            EditError::Absent { .. } => Some("`virt-pci remove FILE --all --diff` shows every PCI hostdev the domain has".into()),
            EditError::Unsupported(_) => Some("name the device by address: 0000:03:00.0".into()),
            EditError::Internal(_) => Some("please report this with the input file".into()),
        }
    }
}

/// Parse and check that the root is a libvirt `<domain>`.
pub fn parse_domain(text: &str) -> Result<Document<'_>, EditError> {
    let doc = domain::parse(text).map_err(EditError::Malformed)?;
    let root = doc.root_element();
    if root.tag_name().name() != "domain" || root.tag_name().namespace().is_some() {
        let pos = doc.text_pos_at(root.range().start);
        let found = match root.tag_name().namespace() {
            Some(ns) => format!("{} xmlns='{ns}'", root.tag_name().name()),
            None => root.tag_name().name().to_string(),
        };
        return Err(EditError::NotDomain {
            found,
            line: pos.row,
            column: pos.col,
        });
    }
    Ok(doc)
}

/// The PCI `<hostdev>` addresses a domain document has (not interfaces).
pub fn hostdev_addresses(text: &str) -> Result<Vec<PciAddress>, EditError> {
    let doc = parse_domain(text)?;
    Ok(domain::pci_hostdevs(&doc)
        .into_iter()
        .filter(|h| !h.interface)
        .filter_map(|h| h.address)
        .collect())
}

fn existing_list(doc: &Document<'_>) -> Vec<PciAddress> {
    domain::pci_hostdevs(doc)
        .into_iter()
        .filter_map(|h| h.address)
        .collect()
}

fn verify(new_text: &str, mut want: Vec<PciAddress>) -> Result<(), EditError> {
    let doc = parse_domain(new_text)
        .map_err(|e| EditError::Internal(format!("the edited document does not parse: {e}")))?;
    let mut got = existing_list(&doc);
    got.sort();
    want.sort();
    if got != want {
        return Err(EditError::Internal(format!(
            "the edited document has hostdevs {got:?}, expected {want:?}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::hostdev::HostdevOptions;

    const A: PciAddress = PciAddress::new(0, 1, 0, 0);
    const B: PciAddress = PciAddress::new(0, 1, 0, 1);

    fn rt(text: &str) -> String {
        let e = add(text, &[A, B], &HostdevOptions::default()).unwrap();
        assert_eq!(e.added, vec![A, B]);
        let r = remove(
            &e.text,
            &Selection::Only(vec![DeviceSpec::Function(A), DeviceSpec::Function(B)]),
        )
        .unwrap();
        assert_eq!(
            r.text, text,
            "round trip changed bytes; added text:\n{}",
            e.text
        );
        e.text
    }

    #[test]
    fn inserts_in_file_style_and_round_trips() {
        let t = "\u{feff}<?xml version=\"1.0\"?>\r\n<!-- made by hand -->\r\n<domain type=\"kvm\" xmlns:qemu=\"http://libvirt.org/schemas/domain/qemu/1.0\">\r\n\t<name>a&amp;b</name>\r\n\t<devices>\r\n\t\t<disk type=\"file\" device=\"disk\">\r\n\t\t\t<source file=\"/x\"/><![CDATA[ ]]>\r\n\t\t</disk>\r\n\t</devices>\r\n\t<qemu:commandline/>\r\n</domain>\r\n";
        let out = rt(t);
        assert!(out.contains("\t\t</disk>\r\n\t\t<hostdev mode=\"subsystem\" type=\"pci\" managed=\"yes\">\r\n\t\t\t<source>\r\n\t\t\t\t<address domain=\"0x0000\" bus=\"0x01\""), "{out}");
        assert!(out.contains("</hostdev>\r\n\t</devices>"), "{out}");
    }

    #[test]
    fn after_the_last_hostdev() {
        let t = "<domain type='kvm'>\n  <devices>\n    <hostdev mode='subsystem' type='usb'>\n      <source><vendor id='0x1'/><product id='0x2'/></source>\n    </hostdev>\n    <video/>\n  </devices>\n</domain>\n";
        let out = rt(t);
        let usb_end = out.find("</hostdev>").unwrap();
        assert!(
            out[usb_end..].starts_with("</hostdev>\n    <hostdev mode='subsystem' type='pci'"),
            "{out}"
        );
    }

    #[test]
    fn creates_devices_and_opens_self_closing() {
        let t = "<domain type='kvm'>\n  <name>x</name>\n</domain>";
        let e = add(t, &[A], &HostdevOptions::default()).unwrap();
        assert!(e.text.contains("  <name>x</name>\n  <devices>\n    <hostdev mode='subsystem' type='pci' managed='yes'>\n      <source>"), "{}", e.text);
        assert!(
            e.text.ends_with("    </hostdev>\n  </devices>\n</domain>"),
            "{}",
            e.text
        );
        let r = remove(&e.text, &Selection::All).unwrap();
        assert_eq!(
            r.text,
            "<domain type='kvm'>\n  <name>x</name>\n  <devices>\n  </devices>\n</domain>"
        );
        let t = "<domain type='kvm'>\n  <devices/>\n</domain>";
        let e = add(t, &[A], &HostdevOptions::default()).unwrap();
        assert!(e.text.contains("  <devices>\n    <hostdev"), "{}", e.text);
        assert!(
            e.text.contains("</hostdev>\n  </devices>\n</domain>"),
            "{}",
            e.text
        );
        // One-line documents stay on one line.
        let t = "<domain type='kvm'><devices><disk/></devices></domain>";
        let out = rt(t);
        assert!(!out.contains('\n'), "{out}");
    }

    #[test]
    fn idempotent_and_absent() {
        let t = "<domain type='kvm'>\n  <devices>\n    <interface type='hostdev'><source><address type='pci' bus='0x01' slot='0x00' function='0x1'/></source></interface>\n  </devices>\n</domain>";
        let e = add(t, &[A], &HostdevOptions::default()).unwrap();
        let again = add(&e.text, &[A, B], &HostdevOptions::default()).unwrap();
        assert_eq!(again.text, e.text);
        assert_eq!(again.already_present, vec![A, B]);
        assert!(again.added.is_empty());
        let err = remove(t, &Selection::Only(vec![DeviceSpec::Function(B)])).unwrap_err();
        let EditError::Absent {
            missing,
            interfaces,
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!(missing, &vec!["0000:01:00.1".to_string()]);
        assert_eq!(interfaces, &vec![B]);
        assert!(err.help().unwrap().contains("interface"));
    }

    #[test]
    fn remove_all_and_slots() {
        let t = "<domain type='kvm'>\n  <devices>\n    <disk/>\n  </devices>\n</domain>";
        let e = add(
            t,
            &[A, B, PciAddress::new(0, 2, 0, 0)],
            &HostdevOptions::default(),
        )
        .unwrap();
        let r = remove(&e.text, &Selection::All).unwrap();
        assert_eq!(r.text, t);
        assert_eq!(r.removed.len(), 3);
        let r = remove(&e.text, &Selection::Only(vec!["01:00".parse().unwrap()])).unwrap();
        assert_eq!(r.removed, vec![A, B]);
        let r = remove(&e.text, &Selection::Only(vec![DeviceSpec::Function(A)])).unwrap();
        assert_eq!(r.removed, vec![A]);
    }

    #[test]
    fn every_devices_element_as_libvirt_merges_them() {
        let hd =
            "<hostdev mode='subsystem' type='pci'><source><address bus='0x01'/></source></hostdev>";
        let t = format!(
            "<domain type='kvm'>\n  <devices>\n    <disk/>\n  </devices>\n  <devices>\n    {hd}\n  </devices>\n</domain>\n"
        );
        // Already there (in the second <devices>): nothing added.
        let e = add(&t, &[A], &HostdevOptions::default()).unwrap();
        assert_eq!(e.already_present, vec![A]);
        assert_eq!(e.text, t);
        // remove --all finds it.
        let r = remove(&t, &Selection::All).unwrap();
        assert_eq!(r.removed, vec![A]);
        // A new one goes next to the existing hostdev, in the second.
        let e = add(&t, &[B], &HostdevOptions::default()).unwrap();
        let second = e.text.rfind("<devices>").unwrap();
        assert!(e.text[second..].contains("bus='0x01' slot='0x00' function='0x1'"));
        assert_eq!(
            remove(&e.text, &Selection::Only(vec![DeviceSpec::Function(B)]))
                .unwrap()
                .text,
            t
        );
    }

    #[test]
    fn foreign_namespace_elements_are_not_libvirts() {
        let t = "<domain type='kvm'>\n  <x:devices xmlns:x='urn:x'>\n    <x:hostdev mode='subsystem' type='pci'><x:source><x:address bus='0x01'/></x:source></x:hostdev>\n  </x:devices>\n  <devices>\n    <disk/>\n  </devices>\n</domain>\n";
        let e = add(t, &[A], &HostdevOptions::default()).unwrap();
        // Not "already in": the foreign hostdev is not libvirt's.
        assert_eq!(e.added, vec![A]);
        // Inserted into libvirt's <devices>, not into <x:devices>.
        let ins = e.text.find("<hostdev mode").unwrap();
        assert!(ins > e.text.find("<devices>").unwrap(), "{}", e.text);
        assert!(remove(t, &Selection::All).unwrap().removed.is_empty());
    }

    #[test]
    fn numbers_read_as_strtoul() {
        let t = "<domain type='kvm'><devices><hostdev mode='subsystem' type='pci'><source><address bus='+0x01' slot=' 0x00'/></source></hostdev></devices></domain>";
        let e = add(t, &[A], &HostdevOptions::default()).unwrap();
        assert_eq!(e.already_present, vec![A]);
        let r = remove(t, &Selection::Only(vec![DeviceSpec::Function(A)])).unwrap();
        assert_eq!(r.removed, vec![A]);
    }

    #[test]
    fn refuses_non_domains_and_malformed() {
        let e = add("<!-- x -->\n<network/>", &[A], &HostdevOptions::default()).unwrap_err();
        assert_eq!(e.position(), Some((2, 1)));
        assert!(e.to_string().contains("<network>"));
        let e = add(
            "<domain>\n<devices>\n</domain>",
            &[A],
            &HostdevOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(e, EditError::Malformed(_)));
        assert_eq!(e.position().map(|p| p.0), Some(3));
    }
}
