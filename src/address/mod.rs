//! PCI addresses and the many ways users spell them.
//!
//! Users copy device names from `lspci`, from the Arch-wiki IOMMU script, from
//! `virsh nodedev-list`, from Qubes' `qvm-pci` and from Proxmox's "all
//! functions" form. Every one of those spellings is accepted here and printed
//! back in one canonical form (`0000:03:00.0`). Nothing PCI-looking is ever
//! reinterpreted as something else (virt-xml reads `01.00.0` as a USB device);
//! a string that fits no form is an error that lists the forms.
//!
//! [`xml`] reads numbers the way libvirt's C parser does (`strtoul` with
//! base 0: `0x` is hex, a leading `0` is octal), so the validator can say
//! when `slot='010'` means 8 and not 10, and holds the one reader and the
//! one writer of libvirt's PCI `<address>` element.

mod xml;

pub(crate) use xml::{parse_libvirt_number, LibvirtNumber, NumberForm};
pub(crate) use xml::{
    read_element, read_pci_address, AddressElement, Field, FieldError, FieldValue,
};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// One PCI function: domain, bus, slot (device) and function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciAddress {
    pub domain: u32,
    pub bus: u8,
    pub slot: u8,
    pub function: u8,
}

/// All functions of one PCI slot (`0000:03:00`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciSlot {
    pub domain: u32,
    pub bus: u8,
    pub slot: u8,
}

/// What a user may name on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceSpec {
    /// One function.
    Function(PciAddress),
    /// Every function of a slot (`03:00`, `0000:03:00`).
    Slot(PciSlot),
    /// A PCI `vendor:device` id pair, resolved against the host.
    Ids { vendor: u16, device: u16 },
}

/// A string that is not a PCI address in any accepted form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressError {
    pub input: String,
    pub reason: String,
}

/// The forms listed in every address error, so a user never has to guess.
pub(crate) const ACCEPTED_FORMS: &str =
    "accepted forms: 0000:03:00.0, 03:00.0, 03_00.0, dom0:03_00.0, \
pci_0000_03_00_0 (libvirt node device), 03:00 or 0000:03:00 (all functions of a slot), \
10de:1f82 (vendor:device), 10000:e1:00.0 (five-digit domains, Intel VMD)";

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not a PCI device address: {}",
            crate::text::shorten(&self.input),
            crate::text::shorten(&self.reason)
        )
    }
}

impl std::error::Error for AddressError {}

impl AddressError {
    fn new(input: &str, reason: impl Into<String>) -> Self {
        AddressError {
            input: input.to_string(),
            reason: reason.into(),
        }
    }

    /// The help line to print under the error.
    pub fn help(&self) -> &'static str {
        ACCEPTED_FORMS
    }
}

impl PciAddress {
    pub const fn new(domain: u32, bus: u8, slot: u8, function: u8) -> Self {
        PciAddress {
            domain,
            bus,
            slot,
            function,
        }
    }

    /// libvirt's node-device name: `pci_0000_03_00_0`.
    pub fn node_name(&self) -> String {
        format!(
            "pci_{:04x}_{:02x}_{:02x}_{:x}",
            self.domain, self.bus, self.slot, self.function
        )
    }

    pub(crate) fn slot_of(&self) -> PciSlot {
        PciSlot {
            domain: self.domain,
            bus: self.bus,
            slot: self.slot,
        }
    }

    /// Parse exactly one function (any accepted form that names a function).
    pub fn parse(s: &str) -> Result<PciAddress, AddressError> {
        if let Some(a) = Self::parse_canonical(s) {
            return Ok(a);
        }
        match DeviceSpec::parse(s)? {
            DeviceSpec::Function(a) => Ok(a),
            DeviceSpec::Slot(_) => Err(AddressError::new(
                s,
                "this names a whole slot; add the function, e.g. `.0`",
            )),
            DeviceSpec::Ids { .. } => Err(AddressError::new(
                s,
                "this is a vendor:device id pair, not an address",
            )),
        }
    }
}

impl PciAddress {
    /// `0000:03:00.0` only, read without the general parser's copies (a
    /// fleet's snapshots hold a million); anything else is `None`.
    pub(crate) fn parse_canonical(s: &str) -> Option<PciAddress> {
        let b = s.as_bytes();
        if b.len() != 12 || b[4] != b':' || b[7] != b':' || b[10] != b'.' {
            return None;
        }
        let hex = |r: std::ops::Range<usize>| {
            b[r].iter().try_fold(0u32, |n, c| {
                char::from(*c).to_digit(16).map(|d| (n << 4) | d)
            })
        };
        Self::from_fields(hex(0..4)?, hex(5..7)?, hex(8..10)?, hex(11..12)?)
    }

    /// An address from its numbers as read, when they are in range (bus up
    /// to 0xff, slot 0x1f, function 7).
    pub(crate) fn from_fields(domain: u32, bus: u32, slot: u32, function: u32) -> Option<Self> {
        let bus = u8::try_from(bus).ok()?;
        if slot > 0x1f || function > 7 {
            return None;
        }
        Some(PciAddress::new(domain, bus, slot as u8, function as u8))
    }
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `0000:03:00.0` written digit by digit: the formatting machinery
        // was a tenth of `inventory --json` over a fleet. Domains above
        // 0xffff (VMD) take more digits and go the general way.
        if self.domain <= 0xffff && self.function <= 0xf {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            let nib = |v: u32, shift: u32| HEX[((v >> shift) & 0xf) as usize];
            let (d, b, s) = (self.domain, u32::from(self.bus), u32::from(self.slot));
            let text = [
                nib(d, 12),
                nib(d, 8),
                nib(d, 4),
                nib(d, 0),
                b':',
                nib(b, 4),
                nib(b, 0),
                b':',
                nib(s, 4),
                nib(s, 0),
                b'.',
                nib(u32::from(self.function), 0),
            ];
            return f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?);
        }
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.slot, self.function
        )
    }
}

impl fmt::Display for PciSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}:{:02x}:{:02x}", self.domain, self.bus, self.slot)
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Function(a) => a.fmt(f),
            DeviceSpec::Slot(s) => s.fmt(f),
            DeviceSpec::Ids { vendor, device } => write!(f, "{vendor:04x}:{device:04x}"),
        }
    }
}

impl FromStr for PciAddress {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PciAddress::parse(s)
    }
}

impl FromStr for DeviceSpec {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DeviceSpec::parse(s)
    }
}

impl Serialize for PciAddress {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PciAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        with_str(d, |s| PciAddress::parse(s).map_err(|e| e.to_string()))
    }
}

/// Read a string and convert it, borrowing from the document where the
/// deserializer can (no allocation per value: a fleet of snapshots holds a
/// million addresses).
pub(crate) fn with_str<'de, D: Deserializer<'de>, T>(
    d: D,
    f: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, D::Error> {
    struct V<F>(F);
    impl<'de, T, F: FnOnce(&str) -> Result<T, String>> serde::de::Visitor<'de> for V<F> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
            (self.0)(v).map_err(E::custom)
        }
    }
    d.deserialize_str(V(f))
}

fn hex_field(
    input: &str,
    field: &str,
    what: &str,
    min: usize,
    max: usize,
) -> Result<u32, AddressError> {
    if field.len() < min || field.len() > max || !field.bytes().all(|b| b.is_ascii_hexdigit()) {
        let digits = if min == max {
            format!("{min}")
        } else {
            format!("{min} to {max}")
        };
        return Err(AddressError::new(
            input,
            format!("the {what} `{field}` must be {digits} hex digits"),
        ));
    }
    u32::from_str_radix(field, 16)
        .map_err(|_| AddressError::new(input, format!("bad {what} `{field}`")))
}

fn check_slot(input: &str, slot: u32) -> Result<u8, AddressError> {
    if slot > 0x1f {
        return Err(AddressError::new(
            input,
            format!("slot 0x{slot:02x} is out of range (a PCI slot is 0x00 to 0x1f)"),
        ));
    }
    Ok(slot as u8)
}

fn check_function(input: &str, field: &str) -> Result<u8, AddressError> {
    let f = hex_field(input, field, "function", 1, 1)?;
    if f > 7 {
        return Err(AddressError::new(
            input,
            format!("function {f:x} is out of range (a PCI function is 0 to 7)"),
        ));
    }
    Ok(f as u8)
}

impl DeviceSpec {
    /// Parse any accepted spelling. See [`ACCEPTED_FORMS`].
    pub fn parse(input: &str) -> Result<DeviceSpec, AddressError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(AddressError::new(input, "it is empty"));
        }
        let lower = s.to_ascii_lowercase();
        if let Some(rest) = lower.strip_prefix("pci_") {
            return Self::parse_nodedev_name(input, rest);
        }
        let body = Self::strip_qubes_backend(input, &lower)?;
        if let Some((bus, rest)) = body.split_once('_') {
            return Self::parse_qubes(input, bus, rest);
        }
        Self::parse_colon_form(input, body.strip_prefix("0x").unwrap_or(body))
    }

    /// libvirt's node-device name: `pci_DDDD_BB_SS_F` (`rest` is after `pci_`).
    fn parse_nodedev_name(input: &str, rest: &str) -> Result<DeviceSpec, AddressError> {
        let parts: Vec<&str> = rest.split('_').collect();
        if parts.len() != 4 {
            return Err(AddressError::new(
                input,
                "a libvirt node-device name has four parts: pci_0000_03_00_0",
            ));
        }
        let domain = hex_field(input, parts[0], "domain", 4, 8)?;
        let bus = hex_field(input, parts[1], "bus", 2, 2)? as u8;
        let slot = check_slot(input, hex_field(input, parts[2], "slot", 2, 2)?)?;
        let function = check_function(input, parts[3])?;
        Ok(DeviceSpec::Function(PciAddress::new(
            domain, bus, slot, function,
        )))
    }

    /// Qubes' `dom0:03_00.0`: the backend domain name goes, `03_00.0` stays.
    /// A hex head (`0000:03:00.0`) is a PCI domain, not a Qubes name.
    fn strip_qubes_backend<'a>(input: &str, lower: &'a str) -> Result<&'a str, AddressError> {
        match lower.split_once(':') {
            Some((head, tail))
                if tail.contains('_')
                    && (head.is_empty() || !head.bytes().all(|b| b.is_ascii_hexdigit())) =>
            {
                if head.is_empty() {
                    return Err(AddressError::new(
                        input,
                        "the Qubes backend domain name is empty",
                    ));
                }
                Ok(tail)
            }
            _ => Ok(lower),
        }
    }

    /// Qubes' `03_00.0` (`bus`, then `rest` = `00.0`): always PCI domain 0.
    fn parse_qubes(input: &str, bus: &str, rest: &str) -> Result<DeviceSpec, AddressError> {
        let (slot, func) = rest
            .split_once('.')
            .ok_or_else(|| AddressError::new(input, "the Qubes form needs a function: 03_00.0"))?;
        let bus = hex_field(input, bus, "bus", 2, 2)? as u8;
        let slot = check_slot(input, hex_field(input, slot, "slot", 2, 2)?)?;
        let function = check_function(input, func)?;
        Ok(DeviceSpec::Function(PciAddress::new(
            0, bus, slot, function,
        )))
    }

    /// lspci's and libvirt's colon forms: `[DDDD:]BB:SS[.F]` (a function or a
    /// whole slot) and `VVVV:DDDD` (ids, told apart by a part of 3+ digits).
    fn parse_colon_form(input: &str, body: &str) -> Result<DeviceSpec, AddressError> {
        let (head, func) = match body.rsplit_once('.') {
            Some((h, f)) => (h, Some(f)),
            None => (body, None),
        };
        let parts: Vec<&str> = head.split(':').collect();
        let (domain, bus, slot) = match parts.as_slice() {
            [a, b] if func.is_none() && (a.len() >= 3 || b.len() >= 3) => {
                let b = b.strip_prefix("0x").unwrap_or(b);
                let vendor = hex_field(input, a, "vendor id", 4, 4)? as u16;
                let device = hex_field(input, b, "device id", 4, 4)? as u16;
                return Ok(DeviceSpec::Ids { vendor, device });
            }
            [bus, slot] => (0, *bus, *slot),
            [domain, bus, slot] => (hex_field(input, domain, "domain", 1, 8)?, *bus, *slot),
            _ => {
                return Err(AddressError::new(
                    input,
                    "it matches none of the accepted forms",
                ))
            }
        };
        let bus = hex_field(input, bus, "bus", 1, 2)? as u8;
        let slot = check_slot(input, hex_field(input, slot, "slot", 1, 2)?)?;
        Ok(match func {
            Some(f) => DeviceSpec::Function(PciAddress::new(
                domain,
                bus,
                slot,
                check_function(input, f)?,
            )),
            None => DeviceSpec::Slot(PciSlot { domain, bus, slot }),
        })
    }
}

/// `s` as one word for a POSIX shell: unchanged when it is plain, else in
/// single quotes (for suggested commands that must run as printed).
pub fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-_./:=,+@%".contains(&c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(d: u32, b: u8, s: u8, fun: u8) -> DeviceSpec {
        DeviceSpec::Function(PciAddress::new(d, b, s, fun))
    }

    /// The short way for the written form reads exactly what the general
    /// parser reads, and leaves everything else to it.
    #[test]
    fn the_canonical_form_reads_as_the_general_parser_reads_it() {
        let general = |s: &str| match DeviceSpec::parse(s) {
            Ok(DeviceSpec::Function(a)) => Some(a),
            _ => None,
        };
        let mut n = 0;
        for s in [
            "0000:03:00.0",
            "ffff:ff:1f.7",
            "FFFF:AB:1F.7",
            "0000:00:20.0",
            "0000:00:00.8",
            "0000:0g:00.0",
            "0000-03:00.0",
            "0000:03:00_0",
            " 000:03:00.0",
            "0000:03:00.0 ",
            "+000:03:00.0",
            "0000:+3:00.0",
            "0000:03:00.é",
        ] {
            assert_eq!(
                PciAddress::parse_canonical(s),
                general(s).filter(|_| s.len() == 12 && !s.starts_with(' ')),
                "{s}"
            );
            n += usize::from(PciAddress::parse_canonical(s).is_some());
        }
        assert_eq!(n, 3);
        for (d, b, sl, fu) in [(0, 0, 0, 0), (0xabcd, 0x3e, 0x1f, 7), (0x1, 0xff, 0x10, 3)] {
            let a = PciAddress::new(d, b, sl, fu);
            assert_eq!(PciAddress::parse_canonical(&a.to_string()), Some(a));
        }
    }

    /// Written digit by digit, as `{:04x}:{:02x}:{:02x}.{:x}` writes it.
    #[test]
    fn an_address_is_written_as_the_format_string_writes_it() {
        for (d, b, s, f) in [
            (0, 0, 0, 0),
            (0xffff, 0xff, 0xff, 0xf),
            (0x10000, 1, 2, 3),
            (0xabc, 0x3e, 0x1f, 7),
            (0, 1, 2, 0x10),
        ] {
            let a = PciAddress::new(d, b, s, f);
            assert_eq!(a.to_string(), format!("{d:04x}:{b:02x}:{s:02x}.{f:x}"));
            assert_eq!(format!("[{a:>20}]"), format!("[{}]", a.to_string()));
        }
    }

    #[test]
    fn every_accepted_form() {
        assert_eq!(DeviceSpec::parse("0000:03:00.0").unwrap(), f(0, 3, 0, 0));
        assert_eq!(DeviceSpec::parse("03:00.0").unwrap(), f(0, 3, 0, 0));
        assert_eq!(DeviceSpec::parse("03_00.0").unwrap(), f(0, 3, 0, 0));
        assert_eq!(DeviceSpec::parse("dom0:03_00.0").unwrap(), f(0, 3, 0, 0));
        assert_eq!(
            DeviceSpec::parse("sys-usb:00_14.0").unwrap(),
            f(0, 0, 0x14, 0)
        );
        assert_eq!(
            DeviceSpec::parse("pci_0000_03_00_0").unwrap(),
            f(0, 3, 0, 0)
        );
        assert_eq!(
            DeviceSpec::parse("pci_10000_e1_00_0").unwrap(),
            f(0x10000, 0xe1, 0, 0)
        );
        assert_eq!(
            DeviceSpec::parse("03:00").unwrap(),
            DeviceSpec::Slot(PciSlot {
                domain: 0,
                bus: 3,
                slot: 0
            })
        );
        assert_eq!(
            DeviceSpec::parse("0000:03:00").unwrap(),
            DeviceSpec::Slot(PciSlot {
                domain: 0,
                bus: 3,
                slot: 0
            })
        );
        assert_eq!(
            DeviceSpec::parse("10de:1f82").unwrap(),
            DeviceSpec::Ids {
                vendor: 0x10de,
                device: 0x1f82
            }
        );
        assert_eq!(
            DeviceSpec::parse("10000:e1:00.0").unwrap(),
            f(0x10000, 0xe1, 0, 0)
        );
        assert_eq!(
            DeviceSpec::parse("0000:0A:1F.7").unwrap(),
            f(0, 0xa, 0x1f, 7)
        );
        assert_eq!(DeviceSpec::parse(" 3:0.1 ").unwrap(), f(0, 3, 0, 1));
    }

    #[test]
    fn canonical_forms() {
        let a = PciAddress::new(0, 3, 0, 0);
        assert_eq!(a.to_string(), "0000:03:00.0");
        assert_eq!(a.node_name(), "pci_0000_03_00_0");
        assert_eq!(
            a.libvirt_attrs('\''),
            "domain='0x0000' bus='0x03' slot='0x00' function='0x0'"
        );
        let vmd = PciAddress::new(0x10000, 0xe1, 0, 0);
        assert_eq!(vmd.to_string(), "10000:e1:00.0");
        assert_eq!(vmd.node_name(), "pci_10000_e1_00_0");
        assert_eq!(
            DeviceSpec::parse(&vmd.node_name()).unwrap(),
            DeviceSpec::Function(vmd)
        );
    }

    #[test]
    fn malformed_forms_are_errors_that_list_the_forms() {
        let cases = [
            ("", "it is empty"),
            ("01.00.0", "matches none"),
            ("1f.01.02", "matches none"),
            ("0000:03:20.0", "slot 0x20 is out of range"),
            ("0000:03:00.8", "function 8 is out of range"),
            ("03:00.a", "function a is out of range"),
            ("0000:3g:00.0", "the bus `3g` must be"),
            ("pci_0000_03_00", "four parts"),
            ("pci_0000_3_00_0", "the bus `3` must be 2 hex digits"),
            ("03_00", "needs a function"),
            (":03_00.0", "backend domain name is empty"),
            ("nonsense", "matches none"),
            ("10de:1f8", "the device id `1f8` must be 4 hex digits"),
            (
                "123456789:00:00.0",
                "the domain `123456789` must be 1 to 8 hex digits",
            ),
            ("0000:03:00.0.1", "the slot `00.0`"),
        ];
        for (input, needle) in cases {
            let err = DeviceSpec::parse(input).expect_err(input);
            assert!(
                err.to_string().contains(needle),
                "{input:?}: {err} does not contain {needle:?}"
            );
            assert!(err.help().contains("pci_0000_03_00_0"));
        }
    }

    #[test]
    fn address_parse_refuses_slots_and_ids() {
        assert!(PciAddress::parse("03:00")
            .unwrap_err()
            .to_string()
            .contains("whole slot"));
        assert!(PciAddress::parse("10de:1f82")
            .unwrap_err()
            .to_string()
            .contains("vendor:device"));
    }
}
