//! One host device (VP040), or one IOMMU group (VP041, with a host), in
//! several domains of the checked set.
//!
//! Only visible across files: each domain alone is fine, and only one of
//! them can run at a time. Warnings by default (a spare VM for the same
//! card is common), errors with `--deny shared`. Two files that define the
//! same domain name are two versions of one VM, not two VMs.

use super::context::push_at;
use super::file::{Unit, UnitHostdev};
use super::{line_col, Code, Diagnostic, Options, Severity, Source};
use crate::address::PciAddress;
use crate::host::Host;
use std::collections::{BTreeMap, BTreeSet};

/// One device (or, with a host, one IOMMU group) in several domains.
pub(super) fn check_shared(
    sources: &[Source],
    units: &[Unit],
    host: Option<&Host>,
    opts: Options,
    out: &mut Vec<Diagnostic>,
) {
    // The table's severity (a warning), or an error with --deny shared.
    let raise = |d: &mut Diagnostic| {
        if opts.deny_shared {
            d.severity = Severity::Error;
        }
    };
    let help = "only one of these domains can run at a time; if that is intended, this is fine (use --deny shared to make it an error)";
    let mut by_addr: BTreeMap<PciAddress, (usize, &UnitHostdev)> = BTreeMap::new();
    let mut by_group: BTreeMap<u32, (usize, &UnitHostdev)> = BTreeMap::new();
    for (ui, u) in units.iter().enumerate().filter(|(_, u)| u.is_domain) {
        let src = &sources[u.file];
        let mut reported: BTreeSet<PciAddress> = BTreeSet::new();
        for h in &u.hostdevs {
            match by_addr.get(&h.address) {
                Some((fu, fh)) if *fu != ui && !same_domain(&units[*fu], u) => {
                    if reported.insert(h.address) {
                        let (l, c) = line_col(&sources[units[*fu].file].text, fh.range.start);
                        let d = push_at(
                            src,
                            out,
                            Code::Vp040,
                            h.range.clone(),
                            format!(
                                "host device {} is also assigned to {} at line {l}:{c}",
                                h.address,
                                units[*fu].label(&sources[units[*fu].file])
                            ),
                            None,
                            Some(help.into()),
                        );
                        raise(d);
                    }
                    continue;
                }
                Some(_) => continue,
                None => {
                    by_addr.insert(h.address, (ui, h));
                }
            }
            // Only endpoints count: bridges in a group stay on the host.
            let Some(g) = host
                .and_then(|hs| hs.device(&h.address))
                .filter(|d| d.kind() == crate::host::Kind::Endpoint)
                .and_then(|d| d.iommu_group)
            else {
                continue;
            };
            match by_group.get(&g) {
                Some((fu, fh))
                    if *fu != ui && fh.address != h.address && !same_domain(&units[*fu], u) =>
                {
                    let (l, c) = line_col(&sources[units[*fu].file].text, fh.range.start);
                    let d = push_at(
                        src,
                        out,
                        Code::Vp041,
                        h.range.clone(),
                        format!(
                            "host device {} is in IOMMU group {g} with {}, which {} uses (line {l}:{c}): the group cannot be split between running domains",
                            h.address,
                            fh.address,
                            units[*fu].label(&sources[units[*fu].file])
                        ),
                        None,
                        Some(help.into()),
                    );
                    raise(d);
                }
                Some(_) => {}
                None => {
                    by_group.insert(g, (ui, h));
                }
            }
        }
    }
}

/// Two files that define the same domain name are two versions of one VM
/// (libvirt keeps one definition per name), not two VMs sharing a device.
fn same_domain(a: &Unit, b: &Unit) -> bool {
    a.name.is_some() && a.name == b.name
}

#[cfg(test)]
mod tests {
    use crate::validate::{validate, Inputs, Options, Source};

    #[test]
    fn two_versions_of_one_domain_do_not_share() {
        let hd =
            "<hostdev mode='subsystem' type='pci'><source><address bus='0x03'/></source></hostdev>";
        let src = |path: &str, name: &str| Source {
            path: path.into(),
            text: format!("<domain><name>{name}</name><devices>{hd}</devices></domain>"),
        };
        let run = |a: Source, b: Source| -> Vec<&'static str> {
            validate(&Inputs::from_sources(vec![a, b]), None, Options::default())
                .diagnostics
                .iter()
                .map(|d| d.code.as_str())
                .collect()
        };
        assert!(run(src("a.xml", "vm"), src("b.xml", "vm")).is_empty());
        assert_eq!(run(src("a.xml", "vm1"), src("b.xml", "vm2")), ["VP040"]);
    }
}
