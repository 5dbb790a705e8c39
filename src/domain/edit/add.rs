//! `add`: new `<hostdev>`s spliced into a domain, in the file's own layout.
//!
//! Named steps, in order: which requested devices are new ([`partition`]),
//! options for devices already there are refused, not dropped
//! ([`refuse_options_for_present`]), the domain's guest side must have room
//! ([`fit_guest`]), then one splice puts the rendered elements after the last
//! `<hostdev>` of the `<devices>` libvirt would use ([`into_devices`]), or
//! creates `<devices>` ([`with_new_devices`]). [`reversible`] says where
//! `remove` then gives back the original bytes.

use super::{existing_list, parse_domain, splice, style, verify, Edit, EditError};
use crate::address::PciAddress;
use crate::domain;
use crate::domain::guest::Topology;
use crate::domain::hostdev::{self, HostdevOptions, Style};
use roxmltree::{Document, Node};
use std::collections::BTreeSet;

/// A byte range of the original text and what replaces it.
type Splice = (std::ops::Range<usize>, String);

/// Add `<hostdev>`s for `addrs` (in that order) to the domain in `text`.
///
/// Addresses the domain already uses (as `<hostdev>` or `<interface
/// type='hostdev'>`) are reported in `already_present` and not added again.
pub fn add(text: &str, addrs: &[PciAddress], opts: &HostdevOptions) -> Result<Edit, EditError> {
    add_parsed(parse_domain(text)?, text, addrs, opts)
}

/// [`add`] on `doc`, which the caller got from `parse_domain(text)`.
/// `virt-pci add` parses first, to refuse a bad file before it reads the
/// host; parsing again here was a third of the time on a 10 MB domain
/// (BENCHMARKS.md, patch). Takes `doc` by value so it is freed before the
/// result is parsed again to verify it: one tree at a time, not two.
pub fn add_parsed(
    doc: Document<'_>,
    text: &str,
    addrs: &[PciAddress],
    opts: &HostdevOptions,
) -> Result<Edit, EditError> {
    // One walk over the hostdevs serves the duplicate check and `verify`.
    let existing = existing_list(&doc);
    let (to_add, already_present) = partition(addrs, &existing);
    refuse_options_for_present(&doc, &already_present, opts)?;
    let mut edit = Edit {
        text: text.to_string(),
        added: Vec::new(),
        already_present,
        removed: Vec::new(),
        warnings: Vec::new(),
    };
    if to_add.is_empty() {
        return Ok(edit);
    }
    opts.check().map_err(EditError::Options)?;
    let guests = fit_guest(&doc, text, &to_add, opts)?;
    let devices = devices_of(&doc);
    let st = style::infer(text, &doc, devices);
    let block = element_block(&st, hostdev::render_placed(&to_add, opts, &st, guests));
    let splice = match devices {
        Some(d) => into_devices(text, d, &st, &block),
        None => with_new_devices(text, &doc, &st, &block),
    };
    edit.text = splice::apply(text, vec![splice]);
    edit.added = to_add;
    // Check the result: it parses, is a domain, and has exactly the old
    // hostdevs plus the new ones.
    let mut want = existing;
    want.extend(edit.added.iter().copied());
    drop(doc);
    verify(&edit.text, want)?;
    Ok(edit)
}

/// The requested addresses split into those to add and those the domain
/// already has (as `<hostdev>` or `<interface type='hostdev'>`), each once,
/// in the order given.
fn partition(addrs: &[PciAddress], existing: &[PciAddress]) -> (Vec<PciAddress>, Vec<PciAddress>) {
    let existing: BTreeSet<PciAddress> = existing.iter().copied().collect();
    let mut seen = BTreeSet::new();
    let mut to_add = Vec::new();
    let mut already_present = Vec::new();
    for a in addrs {
        if !seen.insert(*a) {
            continue;
        }
        if existing.contains(a) {
            already_present.push(*a);
        } else {
            to_add.push(*a);
        }
    }
    (to_add, already_present)
}

/// Options are never dropped: for a device already there they would be, so
/// refuse (nothing written), pointing at the first such hostdev.
fn refuse_options_for_present(
    doc: &Document<'_>,
    present: &[PciAddress],
    opts: &HostdevOptions,
) -> Result<(), EditError> {
    let given = opts.given();
    if present.is_empty() || given.is_empty() {
        return Ok(());
    }
    let first = domain::pci_hostdevs(doc)
        .into_iter()
        .find(|h| h.address.is_some_and(|a| present.contains(&a)));
    let pos = doc.text_pos_at(first.map_or(0, |h| h.range.start));
    Err(EditError::PresentWithOptions {
        present: present.to_vec(),
        options: given,
        line: pos.row,
        column: pos.col,
    })
}

/// Fit the domain's guest side ([`crate::domain::guest`]): boot order and
/// aliases must be free, and each new hostdev gets its guest address (with
/// `--guest-address`) or, without one, the domain must have a free slot.
fn fit_guest(
    doc: &Document<'_>,
    text: &str,
    to_add: &[PciAddress],
    opts: &HostdevOptions,
) -> Result<Vec<Option<(PciAddress, bool)>>, EditError> {
    let topo = Topology::read(doc);
    if let Some(n) = opts.boot_order {
        topo.check_boot_order(n, text).map_err(EditError::Guest)?;
    }
    for al in opts.aliases(to_add) {
        topo.check_alias(&al, text).map_err(EditError::Guest)?;
    }
    match opts.guest_address {
        Some(start) => Ok(topo
            .place(to_add, start, opts.guest_multifunction, text)
            .map_err(EditError::Guest)?
            .into_iter()
            .map(Some)
            .collect()),
        None => {
            topo.check_room().map_err(EditError::Guest)?;
            Ok(vec![None; to_add.len()])
        }
    }
}

/// In pretty style every element goes on new lines: `\n` + lines, with no
/// line end after the last one (what follows the insertion point already
/// starts with its own line end).
fn element_block(st: &Style, rendered: String) -> String {
    if st.compact {
        rendered
    } else {
        format!(
            "{}{}",
            st.newline,
            rendered
                .strip_suffix(st.newline.as_str())
                .unwrap_or(&rendered)
        )
    }
}

/// The splice that puts `block` into the existing `<devices>` `d`: after its
/// last `<hostdev>`, else at the end of its content; `<devices/>` becomes
/// `<devices>...</devices>`.
fn into_devices(text: &str, d: Node<'_, '_>, st: &Style, block: &str) -> Splice {
    let di = splice::line_indent(text, d.range().start).unwrap_or("");
    let last_hostdev = d.children().rfind(|c| domain::is_el(*c, "hostdev"));
    splice::append_children(text, d, last_hostdev, di, block, "devices", st)
}

/// The splice that gives a domain without `<devices>` one holding `block`,
/// at the end of the root's content (a self-closing root is opened).
fn with_new_devices(text: &str, doc: &Document<'_>, st: &Style, block: &str) -> Splice {
    let root = doc.root_element();
    let ri = splice::line_indent(text, root.range().start).unwrap_or("");
    let di = st.base.strip_suffix(st.unit.as_str()).unwrap_or(ri);
    let nl = &st.newline;
    let new_devices = if st.compact {
        format!("<devices>{block}</devices>")
    } else {
        format!("{nl}{di}<devices>{block}{nl}{di}</devices>")
    };
    splice::append_children(text, root, None, ri, &new_devices, "domain", st)
}

/// The `<devices>` new hostdevs go into: the one holding the last
/// `<hostdev>` (libvirt merges every `<devices>`, [`domain::devices_elements`]),
/// else the first. Foreign-namespace elements (`<x:devices>`) are not libvirt's.
fn devices_of<'a>(doc: &'a Document<'a>) -> Option<Node<'a, 'a>> {
    domain::devices_elements(doc)
        .filter(|d| d.children().any(|c| domain::is_el(c, "hostdev")))
        .last()
        .or_else(|| domain::devices_elements(doc).next())
}

/// Whether `remove` is guaranteed to undo an `add` on `text` to the byte.
///
/// True for every well-formed domain except two layouts where `add` must
/// also write a line end the file did not have: a missing or self-closing
/// `<devices>` (created or opened; `remove` leaves it, empty), and a
/// multi-line document whose `</devices>` shares its line with the content
/// before it while no `<hostdev>` exists yet. The corpus test, the property
/// test and the fuzz target check the round trip wherever this holds.
pub fn reversible(text: &str) -> bool {
    let Ok(doc) = parse_domain(text) else {
        return false;
    };
    let Some(d) = devices_of(&doc) else {
        return false;
    };
    let r = d.range();
    if splice::is_self_closing(text, &r) {
        return false;
    }
    if d.children().any(|c| domain::is_el(c, "hostdev")) {
        return true;
    }
    let st = style::infer(text, &doc, Some(d));
    if st.compact {
        return true;
    }
    let at = splice::content_end(text, &r);
    text[at..splice::end_tag_start(text, &r)].contains('\n')
}
