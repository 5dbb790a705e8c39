//! Hardware names from `pci.ids`, read at run time.
//!
//! Names come from the host's own database (Debian's hwdata installs
//! `/usr/share/misc/pci.ids`), the same file `lspci` and libvirt use, so names
//! match what users see elsewhere and no 3 MB table is compiled in. When the
//! file is missing, devices are shown by their ids only. Class names are
//! the one exception: the PCI class table is part of the PCI specification,
//! small and stable, so a built-in copy keeps output readable without hwdata.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The places Debian and other distributions install pci.ids.
pub(crate) const DEFAULT_PATHS: &[&str] = &[
    "/usr/share/misc/pci.ids",
    "/usr/share/hwdata/pci.ids",
    "/usr/share/pci.ids",
];

/// A name's place in `text` (start, end). Names are kept as spans of the
/// file rather than 40,000 separate Strings: building those was most of the
/// fixed cost of `list` on a small host (BENCHMARKS.md, list at scale).
type Span = (u32, u32);

#[derive(Default, Debug)]
pub struct PciIds {
    text: String,
    vendors: HashMap<u16, Span>,
    devices: HashMap<(u16, u16), Span>,
    subclasses: HashMap<u16, Span>,
    /// Where the names came from, if anywhere.
    pub path: Option<PathBuf>,
}

impl PciIds {
    /// No database: ids only, built-in class names.
    pub fn empty() -> PciIds {
        PciIds::default()
    }

    /// Load `path`, or the first default path that exists. A missing file is
    /// not an error (names are a convenience); an explicitly named file that
    /// cannot be read is.
    pub fn load(path: Option<&Path>) -> Result<PciIds, std::io::Error> {
        match path {
            Some(p) => {
                let text = std::fs::read(p)?;
                let mut ids = PciIds::from_bytes(text);
                ids.path = Some(p.to_path_buf());
                Ok(ids)
            }
            None => {
                for p in DEFAULT_PATHS {
                    if let Ok(text) = std::fs::read(p) {
                        let mut ids = PciIds::from_bytes(text);
                        ids.path = Some(PathBuf::from(p));
                        return Ok(ids);
                    }
                }
                Ok(PciIds::empty())
            }
        }
    }

    /// Parse the pci.ids text format (vendors, devices, classes; subsystem
    /// lines are skipped).
    pub fn parse(text: &str) -> PciIds {
        PciIds::from_text(text.to_string())
    }

    fn from_bytes(bytes: Vec<u8>) -> PciIds {
        PciIds::from_text(
            String::from_utf8(bytes)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        )
    }

    fn from_text(owned: String) -> PciIds {
        let mut ids = PciIds::default();
        let text = owned.as_str();
        let span = |s: &str| -> Span {
            let start = s.as_ptr() as usize - text.as_ptr() as usize;
            (start as u32, (start + s.len()) as u32)
        };
        let mut vendor: Option<u16> = None;
        let mut class: Option<u8> = None;
        for line in text.lines() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let hex4 = |s: &str| -> Option<u16> {
                let h = s.get(..4)?;
                u16::from_str_radix(h, 16).ok()
            };
            if let Some(rest) = line.strip_prefix("C ") {
                vendor = None;
                class = rest.get(..2).and_then(|h| u8::from_str_radix(h, 16).ok());
                continue;
            }
            if let Some(rest) = line.strip_prefix("\t\t") {
                let _ = rest; // subsystems and prog-ifs
                continue;
            }
            if let Some(rest) = line.strip_prefix('\t') {
                if let (Some(v), Some(id)) = (vendor, hex4(rest)) {
                    ids.devices
                        .insert((v, id), span(rest.get(4..).unwrap_or("").trim()));
                } else if let Some(c) = class {
                    if let Some(sc) = rest.get(..2).and_then(|h| u8::from_str_radix(h, 16).ok()) {
                        ids.subclasses.insert(
                            (u16::from(c) << 8) | u16::from(sc),
                            span(rest.get(2..).unwrap_or("").trim()),
                        );
                    }
                }
                continue;
            }
            class = None;
            vendor = hex4(line);
            if let Some(v) = vendor {
                ids.vendors
                    .insert(v, span(line.get(4..).unwrap_or("").trim()));
            }
        }
        ids.text = owned;
        ids
    }

    fn name(&self, (a, b): Span) -> &str {
        self.text.get(a as usize..b as usize).unwrap_or("")
    }

    pub fn vendor(&self, v: u16) -> Option<&str> {
        self.vendors.get(&v).map(|s| self.name(*s))
    }

    pub fn device(&self, v: u16, d: u16) -> Option<&str> {
        self.devices.get(&(v, d)).map(|s| self.name(*s))
    }

    /// The name of a class (`0x0c03` → "USB controller").
    pub fn class_name(&self, class16: u16) -> String {
        if let Some(n) = self.subclasses.get(&class16) {
            return self.name(*n).to_string();
        }
        builtin_class_name(class16).to_string()
    }
}

/// The PCI class table (PCI Code and ID Assignment Specification), for the
/// classes that matter when deciding what to pass through.
pub(crate) fn builtin_class_name(class16: u16) -> &'static str {
    match class16 {
        0x0100 => "SCSI storage controller",
        0x0101 => "IDE interface",
        0x0104 => "RAID bus controller",
        0x0106 => "SATA controller",
        0x0107 => "Serial Attached SCSI controller",
        0x0108 => "Non-Volatile memory controller",
        0x0180 => "Mass storage controller",
        0x0200 => "Ethernet controller",
        0x0207 => "Infiniband controller",
        0x0280 => "Network controller",
        0x0300 => "VGA compatible controller",
        0x0302 => "3D controller",
        0x0380 => "Display controller",
        0x0401 => "Multimedia audio controller",
        0x0403 => "Audio device",
        0x0480 => "Multimedia controller",
        0x0500 => "RAM memory",
        0x0580 => "Memory controller",
        0x0600 => "Host bridge",
        0x0601 => "ISA bridge",
        0x0604 => "PCI bridge",
        0x0607 => "CardBus bridge",
        0x0609 => "PCI bridge",
        0x0680 => "Bridge",
        0x0700 => "Serial controller",
        0x0780 => "Communication controller",
        0x0800 => "PIC",
        0x0805 => "SD Host controller",
        0x0806 => "IOMMU",
        0x0880 => "System peripheral",
        0x0c03 => "USB controller",
        0x0c05 => "SMBus",
        0x0c80 => "Serial bus controller",
        0x0c0a => "Thunderbolt/USB4",
        0x1080 => "Encryption controller",
        0x1101 => "Performance counters",
        0x1180 => "Signal processing controller",
        0x1200 => "Processing accelerators",
        0x1300 => "Non-Essential Instrumentation",
        0xff00 => "Unassigned class",
        _ => match class16 >> 8 {
            0x01 => "Mass storage controller",
            0x02 => "Network controller",
            0x03 => "Display controller",
            0x04 => "Multimedia controller",
            0x05 => "Memory controller",
            0x06 => "Bridge",
            0x07 => "Communication controller",
            0x08 => "Generic system peripheral",
            0x0c => "Serial bus controller",
            0x0d => "Wireless controller",
            0x11 => "Signal processing controller",
            0x12 => "Processing accelerators",
            _ => "Unclassified device",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "# comment\n10de  NVIDIA Corporation\n\t1f82  TU117 [GeForce GTX 1650]\n\t\t1043 8754  subsys\n8086  Intel Corporation\n\t1533  I210 Gigabit Network Connection\nC 0c  Serial bus controller\n\t03  USB controller\n\t\t30  XHCI\n";

    #[test]
    fn parses_vendors_devices_classes() {
        let ids = PciIds::parse(SAMPLE);
        assert_eq!(ids.vendor(0x10de), Some("NVIDIA Corporation"));
        assert_eq!(ids.device(0x10de, 0x1f82), Some("TU117 [GeForce GTX 1650]"));
        assert_eq!(
            ids.device(0x8086, 0x1533),
            Some("I210 Gigabit Network Connection")
        );
        assert_eq!(ids.device(0x8086, 0x1f82), None);
        assert_eq!(ids.class_name(0x0c03), "USB controller");
        assert_eq!(PciIds::empty().class_name(0x0604), "PCI bridge");
        assert_eq!(PciIds::empty().vendor(0x10de), None);
    }

    #[test]
    fn explicit_missing_file_is_an_error() {
        assert!(PciIds::load(Some(Path::new("/nonexistent/pci.ids"))).is_err());
    }
}
