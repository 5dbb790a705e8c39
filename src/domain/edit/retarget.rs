//! Rewriting hostdev source addresses in place: the splice behind
//! `virt-pci retarget`, which moves a VM definition to another host.
//!
//! Only the values of the `domain`, `bus`, `slot` and `function`
//! attributes of each moved hostdev's `<source><address>` change; every
//! other byte stays. A new value is written in the form of the old one
//! (`0x03` → `0x2b` with the same digit count and case, decimal stays
//! decimal, a leading-zero octal stays octal), so rewriting there and back
//! gives the original bytes. An attribute the file leaves out (libvirt
//! reads it as 0) stays out while the new value is 0; otherwise it is added
//! at the end of the element in libvirt's spelling, the one case that does
//! not round-trip byte for byte.

use super::{existing_list, parse_domain, verify, Edit, EditError};
use crate::address::{parse_libvirt_number, Field, NumberForm, PciAddress};
use std::collections::BTreeMap;
use std::ops::Range;

/// Write `value` the way `old` was written.
fn like(old: &str, value: u64) -> String {
    let Some(n) = parse_libvirt_number(old) else {
        return format!("0x{value:x}");
    };
    match n.form {
        NumberForm::Decimal => value.to_string(),
        NumberForm::Octal => format!("0{:0w$o}", value, w = old.len().saturating_sub(1)),
        NumberForm::Hex => {
            let (prefix, digits) = old.split_at(2);
            let upper = digits.chars().any(|c| c.is_ascii_uppercase());
            if upper {
                format!("{prefix}{:0w$X}", value, w = digits.len())
            } else {
                format!("{prefix}{:0w$x}", value, w = digits.len())
            }
        }
    }
}

/// Move the hostdevs (`<hostdev type='pci'>` and `<interface
/// type='hostdev'>`) at each `from` to its `to`. Every `from` must be in
/// the domain; the result is parsed again and checked.
pub fn retarget(text: &str, moves: &[(PciAddress, PciAddress)]) -> Result<Edit, EditError> {
    let doc = parse_domain(text)?;
    let map: BTreeMap<PciAddress, PciAddress> = moves.iter().copied().collect();
    let hostdevs = crate::domain::pci_hostdevs(&doc);
    let missing: Vec<String> = map
        .keys()
        .filter(|a| !hostdevs.iter().any(|h| h.address == Some(**a)))
        .map(|a| a.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(EditError::Absent {
            missing,
            interfaces: Vec::new(),
        });
    }
    let mut edits: Vec<(Range<usize>, String)> = Vec::new();
    let mut removed = Vec::new();
    let mut added = Vec::new();
    for h in &hostdevs {
        let Some(from) = h.address else { continue };
        let Some(to) = map.get(&from).copied() else {
            continue;
        };
        if to == from {
            continue;
        }
        let addr = source_address(&doc, h.range.clone(), from)?;
        edits.extend(address_edits(text, addr, to));
        removed.push(from);
        added.push(to);
    }
    let new_text = super::splice::apply(text, edits);
    let want: Vec<PciAddress> = existing_list(&doc)
        .into_iter()
        .map(|a| map.get(&a).copied().unwrap_or(a))
        .collect();
    drop(doc);
    check_distinct(&want)?;
    verify(&new_text, want)?;
    Ok(Edit {
        text: new_text,
        added,
        already_present: Vec::new(),
        removed,
        warnings: Vec::new(),
    })
}

/// The `<source><address>` of the hostdev element at `range`.
fn source_address<'a, 'i>(
    doc: &'a roxmltree::Document<'i>,
    range: Range<usize>,
    from: PciAddress,
) -> Result<roxmltree::Node<'a, 'i>, EditError> {
    let Some(node) = doc
        .descendants()
        .find(|n| n.is_element() && n.range() == range)
    else {
        return Err(EditError::Internal(format!(
            "hostdev {from} not found again"
        )));
    };
    node.children()
        .find(|c| c.has_tag_name("source"))
        .and_then(|s| s.children().find(|c| c.has_tag_name("address")))
        .ok_or_else(|| EditError::Internal(format!("hostdev {from} has no <source><address>")))
}

/// The splices that make `<address>` say `to`: each differing value
/// rewritten in its own form, and the attributes it leaves out that are
/// not 0 added before the end of the start tag (in the element's quote).
fn address_edits(text: &str, addr: roxmltree::Node, to: PciAddress) -> Vec<(Range<usize>, String)> {
    let mut edits = Vec::new();
    let quote = addr
        .attributes()
        .next()
        .and_then(|a| text.as_bytes().get(a.range_value().start.wrapping_sub(1)))
        .map(|b| *b as char)
        .filter(|c| *c == '"' || *c == '\'')
        .unwrap_or('\'');
    let mut append = String::new();
    // The one reader of libvirt's <address> (address/xml.rs): each
    // attribute's text, span and value as libvirt reads it.
    let e = crate::address::read_element(addr);
    for (field, f) in Field::ALL.into_iter().zip(&e.fields) {
        let value = field.of(to);
        match f {
            Some(f) => {
                if f.read.ok().map(|n| n.value) != Some(value) {
                    edits.push((f.span.clone(), like(f.text, value)));
                }
            }
            None if value == 0 => {}
            None => {
                append.push_str(&format!(
                    " {}={quote}{}{quote}",
                    field.name(),
                    field.libvirt_form(value)
                ));
            }
        }
    }
    if !append.is_empty() {
        // Before `/>` or `>` of the start tag.
        let r = addr.range();
        let end = super::splice::start_tag_end(text, r.start);
        let mut at = end - 1;
        if at > r.start && text.as_bytes()[at - 1] == b'/' {
            at -= 1;
        }
        let at = super::splice::skip_ws_back(text, at, r.start);
        edits.push((at..at, append));
    }
    edits
}

/// Two hostdevs moved onto one address (or onto one that stays) would be
/// a domain libvirt refuses.
fn check_distinct(want: &[PciAddress]) -> Result<(), EditError> {
    let mut sorted = want.to_vec();
    sorted.sort();
    let n = sorted.len();
    sorted.dedup();
    if sorted.len() != n {
        let mut all = want.to_vec();
        all.sort();
        return Err(EditError::Internal(format!(
            "retargeting would give two hostdevs the same address ({all:?})"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_keep_their_form_and_round_trip() {
        let x = "<domain type='kvm'><name>v</name><devices>\n\
<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x2b' slot='0x00' function='0x1'/></source></hostdev>\n\
<hostdev mode=\"subsystem\" type=\"pci\"><source><address bus=\"3\" slot=\"0X1F\"/></source></hostdev>\n\
</devices></domain>";
        let a = PciAddress::new(0, 0x2b, 0, 1);
        let b = PciAddress::new(0, 3, 0x1f, 0);
        let a2 = PciAddress::new(0, 0x41, 0, 1);
        let b2 = PciAddress::new(0, 0x42, 0x0a, 2);
        let e = retarget(x, &[(a, a2), (b, b2)]).unwrap();
        assert!(
            e.text.contains("bus='0x41' slot='0x00' function='0x1'"),
            "{}",
            e.text
        );
        assert!(
            e.text
                .contains("bus=\"66\" slot=\"0X0A\" function=\"0x2\"/>"),
            "{}",
            e.text
        );
        let back = retarget(&e.text, &[(a2, a), (b2, b)]).unwrap();
        // function='0x2' was added; going back to 0 leaves it (libvirt reads both as 0).
        assert_eq!(
            back.text,
            x.replace("slot=\"0X1F\"/>", "slot=\"0X1F\" function=\"0x0\"/>")
        );
        // A swap is one splice on the original.
        let s = retarget(x, &[(a, b), (b, a)]).unwrap();
        assert_eq!(
            crate::domain::edit::hostdev_addresses(&s.text).unwrap(),
            vec![b, a]
        );
    }

    #[test]
    fn errors_name_what_is_wrong() {
        let x = "<domain><devices><hostdev mode='subsystem' type='pci'><source><address bus='0x01'/></source></hostdev>\
<hostdev mode='subsystem' type='pci'><source><address bus='0x02'/></source></hostdev></devices></domain>";
        let one = PciAddress::new(0, 1, 0, 0);
        let two = PciAddress::new(0, 2, 0, 0);
        let e = retarget(x, &[(PciAddress::new(0, 9, 0, 0), one)]).unwrap_err();
        assert!(matches!(e, EditError::Absent { .. }), "{e}");
        let e = retarget(x, &[(one, two)]).unwrap_err();
        assert!(e.to_string().contains("same address"), "{e}");
        assert_eq!(like("010", 9), "011");
        assert_eq!(like("0x0000", 1), "0x0001");
    }
}
