//! The `VPnnn` codes: one table of code, default severity and summary.
//!
//! A check names its finding by a [`Code`] variant, not a string, so a
//! misspelt code is a compile error instead of a finding nobody matches
//! (`has_io_error` looks for VP000, the host checks drop VP024 by code),
//! and a finding's severity comes from the table unless the check has a
//! reason to change it (`--deny shared`, `--deny warnings`). Every output
//! form writes the code as today's string (`"VP012"`), so the JSON, the
//! GitHub annotations and the rustc-style `error[VP012]` do not change.
//! The README's table of checks lists the same codes with the same
//! severities; a test holds the two together.

use super::Severity;

/// Declares [`Code`] and its table from one list of
/// `Variant "VPnnn" Severity "summary"`.
macro_rules! codes {
    ($($(#[$doc:meta])* $v:ident $s:literal $sev:ident $sum:literal;)*) => {
        /// A check's stable code. See the table in [`Code::ALL`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code {
            $($(#[$doc])* $v,)*
        }

        impl Code {
            /// Every code, in the order of the table (and of the README),
            /// for the tests that hold the two together.
            #[cfg(test)]
            pub(crate) const ALL: &'static [Code] = &[$(Code::$v,)*];

            /// The code as printed and serialised: `VP012`.
            pub(crate) const fn as_str(self) -> &'static str {
                match self {
                    $(Code::$v => $s,)*
                }
            }

            /// The severity a finding has unless `--deny` raises it.
            pub(crate) const fn severity(self) -> Severity {
                match self {
                    $(Code::$v => Severity::$sev,)*
                }
            }

            /// One line on what the check finds (the README's table says
            /// it at length, with an example; a test checks both list the
            /// same codes).
            #[cfg(test)]
            pub(crate) const fn summary(self) -> &'static str {
                match self {
                    $(Code::$v => $sum,)*
                }
            }
        }
    };
}

codes! {
    /// Unreadable file (the run exits 2).
    Vp000 "VP000" Error "the file cannot be read (exit code 2)";
    Vp001 "VP001" Error "not well-formed XML";
    Vp010 "VP010" Error "hostdev `mode` is not `subsystem` or `capabilities`";
    Vp011 "VP011" Error "hostdev `type` is missing or unknown (or the source address of an <interface type='hostdev'> has no type)";
    Vp012 "VP012" Error "`managed` is not `yes` or `no` (libvirt silently reads anything else as `no`)";
    Vp013 "VP013" Error "PCI hostdev without <source> or without a source <address>";
    Vp014 "VP014" Error "empty source <address/>: libvirt reads it as 0000:00:00.0, the host bridge";
    Vp015 "VP015" Error "source address 0000:00:00.x: the host bridge (not checked for s390x zPCI domains)";
    Vp020 "VP020" Error "address field libvirt cannot read as a number (`slot='1f'`, `bus='ff'`, `09`)";
    Vp021 "VP021" Error "address field out of range (bus <= 0xff, slot <= 0x1f, function <= 7)";
    Vp022 "VP022" Warning "PCI domain above 0xffff (only Intel VMD domains look like this)";
    Vp023 "VP023" Error "leading zero: libvirt reads the number as octal (`010` is 8)";
    Vp024 "VP024" Warning "decimal bus or slot of 10 or more: lspci's numbers are hex";
    Vp030 "VP030" Error "the same host device twice in one domain (<hostdev> and <interface type='hostdev'>)";
    Vp031 "VP031" Error "two devices of one domain at the same guest PCI address";
    Vp032 "VP032" Error "one boot order on two devices";
    Vp033 "VP033" Error "per-device boot order next to <os><boot dev>";
    Vp034 "VP034" Error "a guest PCI address its bus cannot hold";
    Vp035 "VP035" Error "one user alias on two devices";
    Vp040 "VP040" Warning "the same host device in several domains of the checked set (error with --deny shared)";
    Vp041 "VP041" Warning "members of one IOMMU group in several domains (needs a host; error with --deny shared)";
    Vp050 "VP050" Error "the host device is not present on the host";
    Vp051 "VP051" Error "IOMMU group not viable: an endpoint of the group is not in the same domain";
    Vp052 "VP052" Error "a PCI bridge or root port as hostdev";
    Vp053 "VP053" Error "the host bridge as hostdev";
    Vp054 "VP054" Error "a host-critical device (root disk, default-route NIC, boot VGA, ISA bridge) would leave the host";
    Vp055 "VP055" Warning "the device has no reset method";
    Vp056 "VP056" Error "the IOMMU group cannot be passed at all (no IOMMU, a bound host bridge or a non-PCI member in the group)";
    Vp057 "VP057" Error "unverified: a host fact the device depends on is not known (host-critical functions, IOMMU group membership)";
    Vp058 "VP058" Error "the host device is assigned to another domain that is running";
    Vp060 "VP060" Note "a consent entry in <metadata>: this domain passes a device despite a rule, on purpose (virt-pci guard honours it)";
    Vp061 "VP061" Warning "a consent entry the guard cannot use (device not a PCI address, or a rule consent cannot lift)";
}

as_string!(Code);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_sorted_and_serialise_as_today() {
        let codes: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        let mut sorted = codes.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(codes, sorted);
        for c in Code::ALL {
            let s = c.as_str();
            assert!(s.len() == 5 && s.starts_with("VP"), "{s}");
            assert_eq!(
                serde_json::to_string(c).unwrap_or_default(),
                format!("\"{s}\"")
            );
            assert!(!c.summary().is_empty());
        }
    }

    /// README's "checks" table lists every code, in order, with the
    /// table's severity: a code added here and not documented (or the
    /// other way round) fails.
    #[test]
    fn readme_lists_every_code_with_its_severity() {
        let readme = include_str!("../../README.md");
        let rows: Vec<(String, String)> = readme
            .lines()
            .filter(|l| l.starts_with("| VP"))
            .filter_map(|l| {
                let mut cells = l.split('|').map(str::trim).skip(1);
                Some((cells.next()?.to_string(), cells.next()?.to_string()))
            })
            .collect();
        let documented: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        let ours: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            documented, ours,
            "README's table of checks and Code::ALL differ"
        );
        for (c, (_, sev)) in Code::ALL.iter().zip(&rows) {
            let want = match c.severity() {
                Severity::Error => "error",
                Severity::Warning => "warning",
                Severity::Note => "note",
            };
            assert!(
                sev.starts_with(want),
                "{c}: README says {sev:?}, the table {want}"
            );
        }
    }
}
