//! Consent entries around `add --force` and `remove`: which entries
//! (`virt_pci::guard::consent_needed`) and the splice (`virt_pci::domain::consent`)
//! live in the library; this only reads the host and prints what changed.

use super::Context;
use virt_pci::domain::consent;
use virt_pci::domain::edit::{Edit, EditError};

/// `add --force`: record consent for every rule the forced domain breaks,
/// in the same edit.
pub(super) fn record(
    ctx: &Context,
    name: &str,
    edit: &mut Edit,
    reason: Option<&str>,
) -> Result<(), EditError> {
    let Ok(host) = ctx.host() else {
        // The plan already read it; a second read failing is not worth
        // losing the edit over. Say so.
        eprintln!(
            "{}{} could not read the host again; no consent recorded in {name}",
            ctx.err.yellow("warning"),
            ctx.err.bold(":")
        );
        return Ok(());
    };
    let reason = reason.unwrap_or("forced with `virt-pci add --force`");
    let entries = virt_pci::guard::consent_needed(&host, &edit.text, reason)?;
    if entries.is_empty() {
        return Ok(());
    }
    edit.text = consent::insert(&edit.text, &entries)?;
    for e in &entries {
        eprintln!(
            "recording consent in {name}: {} may start despite rule `{}` (virt-pci guard honours it)",
            e.device, e.rule
        );
    }
    Ok(())
}

/// `remove`: consent entries of the removed devices go with them.
pub(super) fn forget(name: &str, edit: &mut Edit) -> Result<(), EditError> {
    if edit.removed.is_empty() {
        return Ok(());
    }
    let new = consent::remove_for(&edit.text, &edit.removed)?;
    if new != edit.text {
        eprintln!("removing from {name}: the consent entries of the removed devices");
        edit.text = new;
    }
    Ok(())
}
