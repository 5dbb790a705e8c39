//! `remove`: the named `<hostdev>`s cut out with the indentation and line
//! end before each, so `remove` undoes `add` to the byte.

use super::{parse_domain, splice, verify, Edit, EditError, Selection};
use crate::address::{DeviceSpec, PciAddress};
use crate::domain;

fn spec_matches(spec: &DeviceSpec, a: &PciAddress) -> bool {
    match spec {
        DeviceSpec::Function(f) => f == a,
        DeviceSpec::Slot(s) => a.slot_of() == *s,
        DeviceSpec::Ids { .. } => false,
    }
}

/// Remove the PCI `<hostdev>` elements `sel` names from the domain in
/// `text`. Naming a device the domain does not have is an error (nothing
/// is removed then).
pub fn remove(text: &str, sel: &Selection) -> Result<Edit, EditError> {
    let doc = parse_domain(text)?;
    let all = domain::pci_hostdevs(&doc);
    if let Selection::Only(specs) = sel {
        if let Some(s) = specs.iter().find(|s| matches!(s, DeviceSpec::Ids { .. })) {
            return Err(EditError::Unsupported(format!(
                "`{s}` is a vendor:device id pair; the domain file names devices by address"
            )));
        }
        let mut missing = Vec::new();
        let mut interfaces = Vec::new();
        for s in specs {
            let in_hostdev = all
                .iter()
                .any(|h| !h.interface && h.address.is_some_and(|a| spec_matches(s, &a)));
            if !in_hostdev {
                missing.push(s.to_string());
                interfaces.extend(
                    all.iter()
                        .filter(|h| h.interface)
                        .filter_map(|h| h.address)
                        .filter(|a| spec_matches(s, a)),
                );
            }
        }
        if !missing.is_empty() {
            return Err(EditError::Absent {
                missing,
                interfaces,
            });
        }
    }
    let chosen: Vec<&domain::DomainHostdev> = all
        .iter()
        .filter(|h| !h.interface)
        .filter(|h| match sel {
            Selection::All => true,
            Selection::Only(specs) => h
                .address
                .is_some_and(|a| specs.iter().any(|s| spec_matches(s, &a))),
        })
        .collect();
    let edits: Vec<(std::ops::Range<usize>, String)> = chosen
        .iter()
        .map(|h| (splice::removal_range(text, &h.range), String::new()))
        .collect();
    let new_text = splice::apply(text, edits);
    let removed: Vec<PciAddress> = chosen.iter().filter_map(|h| h.address).collect();
    let kept: Vec<PciAddress> = all
        .iter()
        .filter(|h| !chosen.iter().any(|c| c.range == h.range))
        .filter_map(|h| h.address)
        .collect();
    // What the functions left behind mean for the guest depends on the
    // host's IOMMU groups: `crate::plan::removal_warnings`.
    let warnings = Vec::new();
    verify(&new_text, kept)?;
    Ok(Edit {
        text: new_text,
        added: Vec::new(),
        already_present: Vec::new(),
        removed,
        warnings,
    })
}
