//! The stable codes of plan findings, as one enum.
//!
//! A finding's code is what scripts, `validate` (VP050–VP058), the guard's
//! consent rules, `inventory` and `place` key on. As strings, a typo in one
//! comparison (`"host-critcal"`) silently dropped a check; as variants it
//! does not compile. Each variant serialises to the string the JSON outputs
//! have always carried (`schemas/plan.schema.json`), spelled once, in
//! [`Code::as_str`].
//!
//! The action plan (`detach`, `prepare`, ...) and `--persist` add warnings of
//! their own in the same [`Finding`] shape; their codes are here too, so
//! there is one list of what a finding can say.

use serde::Serialize;

/// Declares [`Code`] and its one string table.
macro_rules! codes {
    ($( $(#[$doc:meta])* $variant:ident = $text:literal, )*) => {
        /// A finding's stable code.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code {
            $( $(#[$doc])* $variant, )*
        }

        impl Code {
            /// The code as JSON and messages carry it (`host-critical`).
            pub fn as_str(self) -> &'static str {
                match self {
                    $( Code::$variant => $text, )*
                }
            }

            /// Every code, for the tests that keep the table honest.
            #[cfg(test)]
            pub(crate) const ALL: &'static [Code] = &[$( Code::$variant, )*];
        }
    };
}

codes! {
    // The plan's blockers.
    /// A requested address is not on the host (also `release` of a
    /// hostdev the host does not have, a warning there).
    NotPresent = "not-present",
    /// The host bridge (root complex) was requested.
    HostBridge = "host-bridge",
    /// A bridge or root port was requested (libvirt: "Non-endpoint PCI
    /// devices cannot be assigned to guests").
    NotEndpoint = "not-endpoint",
    /// The host has no IOMMU groups at all.
    NoIommu = "no-iommu",
    /// The IOMMU is on but does not cover the device.
    NoIommuGroup = "no-iommu-group",
    /// A member of the group is not a PCI function (mdev, platform device).
    NonPciMember = "non-pci-member",
    /// The group lists a function that is not on the PCI bus.
    MissingMember = "missing-member",
    /// The group holds a host bridge bound to a driver.
    HostBridgeInGroup = "host-bridge-in-group",
    /// A travelling function (or, at a start, a member left behind) is one
    /// the host needs: root disk, default route, boot VGA, ISA bridge.
    HostCritical = "host-critical",
    /// A travelling function is held by a running domain.
    InUse = "in-use",
    /// At a start: an endpoint outside the domain keeps its group on a host
    /// driver (the kernel's "group N is not viable").
    GroupNotViable = "group-not-viable",

    // The plan's unverified facts.
    /// The source does not know the device's IOMMU group.
    GroupUnknown = "group-unknown",
    /// The source cannot vouch for the group's membership.
    GroupUnverified = "group-unverified",
    /// A travelling function could be host-critical; nobody measured or
    /// stated it.
    FactUnknown = "fact-unknown",

    // The plan's warnings.
    /// `--no-strict-group` leaves endpoints of the group behind; also
    /// `remove` keeping one endpoint of a group whose other one leaves.
    GroupSplit = "group-split",
    /// `remove` without a host: a function of the same card stays.
    SiblingLeft = "sibling-left",
    /// A function travels only because it shares the group.
    UnrelatedDevice = "unrelated-device",
    /// A travelling function has no reset method.
    NoReset = "no-reset",
    /// Travelling functions are bound to host drivers.
    HostDriver = "host-driver",
    /// A travelling SR-IOV PF has active VFs.
    SriovPfActiveVfs = "sriov-pf-active-vfs",
    /// Functions of a requested card are in other groups.
    SplitCard = "split-card",
    /// A travelling function is also in a shut-off domain.
    AssignedElsewhere = "assigned-elsewhere",

    // Warnings of the action plan (`src/actions/`).
    /// The backend's caveat about the resets it would do.
    ResetMaySkip = "reset-may-skip",
    /// `prepare` finds nothing to do.
    NothingToPrepare = "nothing-to-prepare",
    /// Whether the domain runs is not known (no libvirt connection).
    StateUnknown = "state-unknown",
    /// A function without a reset goes back to the host (`--return-unreset`).
    ReturnedUnreset = "returned-unreset",

    // Warnings of `--persist` (`src/persist/`).
    /// The kernel module driving a function is not known (no softdep).
    ModuleUnknown = "module-unknown",
    /// `--persist` removal of a function virt-pci did not persist.
    NotPersisted = "not-persisted",
    /// Neither initramfs-tools nor dracut was found.
    InitramfsUnknown = "initramfs-unknown",
    /// `--update-initramfs` with nothing in the initramfs to change.
    NoInitramfsRebuild = "no-initramfs-rebuild",
}

as_string!(Code);

/// A blocker or warning with a stable code.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Finding {
    pub code: Code,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

pub(crate) fn finding(
    code: Code,
    a: Option<&dyn ToString>,
    message: String,
    help: Option<&str>,
) -> Finding {
    Finding {
        code,
        address: a.map(|a| a.to_string()),
        message,
        help: help.map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn codes_are_distinct_kebab_case_and_serialise_as_their_string() {
        let mut seen = BTreeSet::new();
        for c in Code::ALL {
            let s = c.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(
                s.split('-')
                    .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase())),
                "{s}"
            );
            assert_eq!(serde_json::to_string(c).unwrap(), format!("\"{s}\""));
            assert_eq!(c.to_string(), s);
        }
        assert_eq!(Code::HostCritical.as_str(), "host-critical");
        assert_eq!(Code::SriovPfActiveVfs.as_str(), "sriov-pf-active-vfs");
    }

    #[test]
    fn a_finding_serialises_as_it_always_has() {
        let f = finding(Code::NoReset, Some(&"0000:01:00.0"), "m".into(), None);
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            r#"{"code":"no-reset","address":"0000:01:00.0","message":"m"}"#
        );
    }
}
