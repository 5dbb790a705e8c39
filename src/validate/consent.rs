//! Consent entries in a domain's `<metadata>` (VP060, VP061).
//!
//! `add --force` records that a device passes despite a rule, and the
//! guard honours the entry at every start ([`crate::domain::consent`]). A note
//! each (not counted) so a review sees what was forced, and a warning for
//! an entry the guard cannot use, which would otherwise fail only at the
//! next start.

use super::context::Cx;
use super::Code;

/// Consent entries (`crate::domain::consent`): a note each, so a review sees what
/// was forced; a warning for an entry the guard cannot use.
pub(super) fn check_consent(cx: &mut Cx<'_>, doc: &roxmltree::Document<'_>) {
    for e in crate::domain::consent::entries(doc) {
        let reason = e
            .reason
            .as_deref()
            .map_or("no reason given".to_string(), |r| format!("reason: {r}"));
        match e.problem() {
            None => {
                cx.push(
                    Code::Vp060,
                    e.range.clone(),
                    format!(
                        "consent: {} may start despite rule `{}` ({reason})",
                        e.device_text, e.rule
                    ),
                    Some("virt-pci guard lets the start through".into()),
                    None,
                );
            }
            Some(p) => {
                cx.push(
                    Code::Vp061,
                    e.range.clone(),
                    format!("consent entry the guard cannot use: {p}"),
                    None,
                    Some("see `virt-pci guard --help` for the entry's form and the rules".into()),
                );
            }
        }
    }
}
