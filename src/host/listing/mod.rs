//! Published IOMMU listings turned into a [`Host`].
//!
//! People paste what their machine has — the Arch-wiki group script, `lspci
//! -nnk`, r15ch13's `iommu.sh`, `find /sys/kernel/iommu_groups` — into
//! forums, wikis and issues. Reading those pastes lets a user ask "what would
//! virt-pci do on this machine?" before owning it (`virt-pci snapshot
//! --from-listing FILE`), and it is how the real machines in `samples/hosts/`
//! become the project's own inputs.
//!
//! One line-oriented reader handles every format, because real pastes mix
//! them (a group listing followed by an `lspci -nnk` companion). It is split
//! along what changes for different reasons:
//!
//! | file | holds |
//! |---|---|
//! | `lines.rs` | line recognisers: what a line of each published format looks like (the table of formats) |
//! | `builder.rs` | recognised lines merged into devices, groups, USB buses and the paste's evidence |
//! | `infer.rs` | inference rules for what listings lack (prog-if, header type, ids from names, IOMMU state, host-critical facts only when shown) |
//! | `buses.rs` | the inference rule for parent bridges (depth-first bus numbering) |

mod builder;
mod buses;
mod infer;
mod lines;
mod tokens;

pub(crate) use infer::{disk_of, predictable_name};

use super::Host;
use std::fmt;
use std::path::{Path, PathBuf};

/// What to paste instead, for errors.
pub const HELP: &str = "paste the output of the Arch-wiki IOMMU group script, `lspci -nnk`, or `find /sys/kernel/iommu_groups -type l`";

/// A listing that could not be read.
#[derive(Debug)]
pub struct ListingError {
    pub path: PathBuf,
    pub line: usize,
    pub message: String,
    pub help: Option<String>,
}

impl fmt::Display for ListingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}: {}", self.path.display(), self.line, self.message)
        } else {
            write!(f, "{}: {}", self.path.display(), self.message)
        }
    }
}

impl std::error::Error for ListingError {}

/// Read a listing file.
pub fn load(path: &Path) -> Result<Host, ListingError> {
    let bytes = std::fs::read(path).map_err(|e| ListingError {
        path: path.to_path_buf(),
        line: 0,
        message: format!("cannot read the listing: {e}"),
        help: None,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parse(&text, &format!("listing:{name}")).map_err(|(line, message)| ListingError {
        path: path.to_path_buf(),
        line,
        message,
        help: Some(HELP.into()),
    })
}

/// Parse a listing's text. Errors carry the 1-based line.
pub fn parse(text: &str, source: &str) -> Result<Host, (usize, String)> {
    let mut b = builder::Builder::default();
    for (i, raw) in text.lines().enumerate() {
        b.line(raw, i + 1)?;
    }
    infer::finish(b, source)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::PciAddress;
    use crate::host::GroupMember;

    #[test]
    fn a_bridge_on_the_last_bus_of_its_window_does_not_panic() {
        // Issue 11: BTreeSet range start > end on this Arch-wiki listing.
        let t = "IOMMU Group 1:\n\t00:07.1 PCI bridge [0604]: X [1:1]\nIOMMU Group 10:\n\t00:08.1 PCI bridge [0604]: X [1:1]\n\t02:08.0 PCI bridge [0604]: X [1:1]\nIOMMU Group 9:\n\t01:00.2 PCI bridge [0604]: X [1:1]\n";
        let h = parse(t, "t").unwrap();
        assert_eq!(h.devices.len(), 4);
    }

    #[test]
    fn members_that_are_not_names_and_huge_group_numbers_are_errors_with_the_line() {
        let t = "/sys/kernel/iommu_groups/1/devices/0000:00:01.0\n/sys/kernel/iommu_groups/1/devices/../../../../etc/passwd\n";
        let (line, m) = parse(t, "t").unwrap_err();
        assert_eq!(line, 2);
        assert!(m.contains("group member"), "{m}");
        let t = "IOMMU Group 1:\n\t00:07.1 PCI bridge [0604]: X [1022:1483]\nIOMMU Group 99999999999:\n\t00:08.1 PCI bridge [0604]: X [1022:1483]\n";
        let (line, m) = parse(t, "t").unwrap_err();
        assert_eq!(line, 3);
        assert!(m.contains("99999999999"), "{m}");
        let t = "IOMMU Group 1:\n\t01:00.0 VGA compatible controller [0300]: X [10de:1e84]\n\tKernel driver in use: ../../x\n";
        let (_, m) = parse(t, "t").unwrap_err();
        assert!(m.contains("driver name"), "{m}");
    }

    #[test]
    fn dmesg_membership_and_vmm_records() {
        // Real lines from the dmesg companion of sample 017.
        let dmesg = "[    0.718707] iommu: Default domain type: Translated \n\
[    0.810743] pci 0000:00:00.2: AMD-Vi: IOMMU performance counters supported\n\
[    0.811098] pci 0000:00:01.0: Adding to iommu group 0\n\
[    0.811324] pci 0000:00:01.1: Adding to iommu group 1\n\
[    0.811401] pci 0000:01:00.0: Adding to iommu group 1\n";
        let h = parse(dmesg, "t").unwrap();
        assert_eq!(h.groups.len(), 2);
        assert_eq!(
            h.groups[&1],
            vec![
                GroupMember::Pci(PciAddress::new(0, 0, 1, 1)),
                GroupMember::Pci(PciAddress::new(0, 1, 0, 0))
            ]
        );
        // Membership only: ids read as absent hardware does.
        assert_eq!(h.devices[&PciAddress::new(0, 1, 0, 0)].vendor_id, "0xffff");
        // lspci -nnvmm with -k.
        let vmm = "Slot:\t03:00.0\nClass:\tVGA compatible controller [0300]\nVendor:\tNVIDIA Corporation [10de]\n\
Device:\tTU104 [1e84]\nSVendor:\tMSI [1462]\nSDevice:\tDevice [3750]\nRev:\ta1\nDriver:\tnouveau\nIOMMUGroup:\t14\n\n\
Slot:\t00:00.0\nClass:\tHost bridge [0600]\nVendor:\tAMD [1022]\nDevice:\tRoot Complex [1630]\n";
        let h = parse(vmm, "t").unwrap();
        let d = &h.devices[&PciAddress::new(0, 3, 0, 0)];
        assert_eq!(
            (d.vendor_id.as_str(), d.device_id.as_str()),
            ("0x10de", "0x1e84")
        );
        assert_eq!(d.class, "0x030000");
        assert_eq!(d.revision.as_deref(), Some("0xa1"));
        assert_eq!(d.subsystem_vendor_id.as_deref(), Some("0x1462"));
        assert_eq!(d.driver.as_deref(), Some("nouveau"));
        assert_eq!(d.iommu_group, Some(14));
        assert_eq!(h.devices[&PciAddress::new(0, 0, 0, 0)].iommu_group, None);
    }

    #[test]
    fn garbage_is_refused() {
        let e = parse("hello\nworld\n", "t").unwrap_err();
        assert!(
            e.1.contains("no PCI devices or IOMMU groups found"),
            "{e:?}"
        );
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    /// Fragments real listings are made of, to combine into near-misses.
    const FRAGS: &[&str] = &[
        "IOMMU Group ",
        "IOMMU group 7 ",
        "Group 3:\t",
        "[8086:a2af] ",
        "[R] ",
        "00:14.0 ",
        "0000:01:00.1 ",
        "USB:\t\t[1d6b:0002]\t\t Bus 001 Device 001 ",
        "Slot:\t",
        "Class:\t",
        "Host bridge [0600]: ",
        "Vendor:\tX [10de]",
        "IOMMUGroup:\t",
        "(rev ff)",
        "(prog-if 30 [XHCI])",
        "# ---- companion listing ----",
        "$ sysfs attributes of 0000:00:01.0",
        "class=0x",
        "driver -> ",
        "/sys/kernel/iommu_groups/1/devices/",
        " -> ../../devices/pci0000:00/",
        "Subsystem: [",
        "é",
        "\t",
        ":",
        "pci 0000:00:01.0: Adding to iommu group ",
        "default via 1.2.3.4 dev ",
        "/dev/",
        "/block/",
        "ü[",
    ];

    proptest! {
        #[test]
        fn never_panics_on_any_text(text in "\\PC{0,400}") {
            let _ = parse(&text, "fuzz");
        }

        #[test]
        fn never_panics_on_listing_like_text(
            parts in proptest::collection::vec((0..FRAGS.len(), "[0-9a-f:. \\[\\]é]{0,6}", any::<bool>()), 0..60)
        ) {
            let mut text = String::new();
            for (i, junk, nl) in parts {
                text.push_str(FRAGS[i]);
                text.push_str(&junk);
                if nl { text.push('\n'); }
            }
            let _ = parse(&text, "fuzz");
        }
    }
}
