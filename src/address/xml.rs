//! libvirt's PCI `<address>` element: its numbers, its one reader and its
//! one writer.
//!
//! libvirt reads each attribute of `<address type='pci' domain= bus= slot=
//! function=/>` with `strtoul(…, 0)` (`virPCIDeviceAddressParseXML`,
//! libvirt `src/conf/device_conf.c`): `0x` is hex, a leading `0` octal,
//! anything else decimal; a missing attribute is 0; then each field is range
//! checked (domain ≤ 0xffffffff, bus ≤ 0xff, slot ≤ 0x1f, function ≤ 7). So
//! `slot='1f'` is refused and `bus='010'` is 8. Every reader of such an
//! element in virt-pci (a domain's hostdevs, its guest addresses, node
//! devices' IOMMU groups, the validator) goes through [`read_element`],
//! which keeps each attribute's text, byte range and reading, so the
//! validator can put a caret under the one value libvirt refuses and the
//! others can ask for the address alone. [`PciAddress::libvirt_attrs`] is
//! the one writer, in libvirt's own spelling (`domain='0x0000' bus='0x03'
//! slot='0x00' function='0x0'`, `virPCIDeviceAddressFormat`).

use super::PciAddress;
use serde::Serialize;
use std::ops::Range;

/// How a libvirt number attribute was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum NumberForm {
    Decimal,
    Hex,
    /// A leading `0`: libvirt's `strtoul(..., 0)` reads it as octal.
    Octal,
}

/// A number as libvirt's C parser reads it (`virXMLPropUInt(.., base 0)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LibvirtNumber {
    pub(crate) value: u64,
    pub(crate) form: NumberForm,
}

/// Read `s` as libvirt does (`virXMLPropUInt` → `virStrToLong_uip` →
/// `strtoul(s, &end, 0)`, libvirt `src/util/virstring.c`): leading C
/// whitespace and one `+` are skipped, then `0x`/`0X` prefix = hex, leading
/// `0` = octal, otherwise decimal; anything after the digits or a `-` is an
/// error (callers check ranges: above `u32::MAX` libvirt fails too). `None` when libvirt would reject the
/// text (e.g. `1f`, an empty string, `-1`, `0x2b `, or `09`, which is not
/// valid octal). `bus='+0x2b'` and `bus=' 0x2b'` are 0x2b, as libvirt's QEMU
/// driver reads them (checked with `virsh define`, tests/suites/50-oracle.sh).
pub(crate) fn parse_libvirt_number(s: &str) -> Option<LibvirtNumber> {
    // C's isspace() in the "C" locale.
    let s = s.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let s = s.strip_prefix('+').unwrap_or(s);
    let (digits, radix, form) =
        if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
            (h, 16, NumberForm::Hex)
        } else if s.len() > 1 && s.starts_with('0') {
            (&s[1..], 8, NumberForm::Octal)
        } else {
            (s, 10, NumberForm::Decimal)
        };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix)
        .ok()
        .map(|value| LibvirtNumber { value, form })
}

/// One field of a PCI address, in the order libvirt writes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    Domain,
    Bus,
    Slot,
    Function,
}

impl Field {
    /// In libvirt's order.
    pub(crate) const ALL: [Field; 4] = [Field::Domain, Field::Bus, Field::Slot, Field::Function];

    /// The attribute's name.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Field::Domain => "domain",
            Field::Bus => "bus",
            Field::Slot => "slot",
            Field::Function => "function",
        }
    }

    /// The largest value libvirt accepts.
    pub(crate) const fn max(self) -> u64 {
        match self {
            Field::Domain => u32::MAX as u64,
            Field::Bus => 0xff,
            Field::Slot => 0x1f,
            Field::Function => 7,
        }
    }

    /// How many hex digits libvirt writes.
    pub(crate) const fn width(self) -> usize {
        match self {
            Field::Domain => 4,
            Field::Bus | Field::Slot => 2,
            Field::Function => 1,
        }
    }

    /// `value` as libvirt writes this field: `0x0000`, `0x03`, `0x0`.
    pub(crate) fn libvirt_form(self, value: u64) -> String {
        format!("0x{value:0w$x}", w = self.width())
    }

    /// This field of `a`.
    pub(crate) fn of(self, a: PciAddress) -> u64 {
        match self {
            Field::Domain => u64::from(a.domain),
            Field::Bus => u64::from(a.bus),
            Field::Slot => u64::from(a.slot),
            Field::Function => u64::from(a.function),
        }
    }
}

/// Why libvirt refuses an attribute's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FieldError {
    /// `strtoul` does not read it whole (`1f`, `09`, `-1`, empty).
    NotANumber,
    /// Read, but above [`Field::max`] (libvirt: "Invalid PCI address").
    OutOfRange(LibvirtNumber),
}

/// One attribute of an `<address>` element as written and as libvirt
/// reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FieldValue<'a> {
    pub(crate) field: Field,
    /// The value as written.
    pub(crate) text: &'a str,
    /// Byte range of the value (inside the quotes) in the document.
    pub(crate) span: Range<usize>,
    pub(crate) read: Result<LibvirtNumber, FieldError>,
}

/// The four attributes of an `<address>` element, in [`Field::ALL`]
/// order; `None` where the attribute is absent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AddressElement<'a> {
    pub(crate) fields: [Option<FieldValue<'a>>; 4],
}

/// Read the `domain`, `bus`, `slot` and `function` attributes (no
/// namespace) of `node` as libvirt does. The element's `type` is the
/// caller's business.
pub(crate) fn read_element<'a>(node: roxmltree::Node<'a, '_>) -> AddressElement<'a> {
    let fields = Field::ALL.map(|field| {
        let attr = node
            .attributes()
            .find(|a| a.name() == field.name() && a.namespace().is_none())?;
        let text = attr.value();
        let read = match parse_libvirt_number(text) {
            None => Err(FieldError::NotANumber),
            Some(n) if n.value > field.max() => Err(FieldError::OutOfRange(n)),
            Some(n) => Ok(n),
        };
        Some(FieldValue {
            field,
            text,
            span: attr.range_value(),
            read,
        })
    });
    AddressElement { fields }
}

/// The address of a libvirt PCI `<address>` element as libvirt reads it
/// (`virPCIDeviceAddressParseXML`): missing fields are 0; `None` when
/// libvirt would refuse a field.
pub(crate) fn read_pci_address(node: roxmltree::Node<'_, '_>) -> Option<PciAddress> {
    read_element(node).address()
}

impl AddressElement<'_> {
    /// No `domain`, `bus`, `slot` or `function` at all: libvirt's "empty"
    /// address (0000:00:00.0).
    pub(crate) fn is_empty(&self) -> bool {
        self.fields.iter().all(Option::is_none)
    }

    /// The attributes that are present.
    pub(crate) fn present(&self) -> impl Iterator<Item = &FieldValue<'_>> {
        self.fields.iter().flatten()
    }

    /// The address as libvirt reads it (a missing field is 0); `None` when
    /// libvirt refuses a field.
    pub(crate) fn address(&self) -> Option<PciAddress> {
        let mut v = [0u64; 4];
        for (slot, f) in v.iter_mut().zip(&self.fields) {
            if let Some(f) = f {
                *slot = f.read.ok()?.value;
            }
        }
        // Each value is within its field's range (read_element checked).
        Some(PciAddress::new(
            v[0] as u32,
            v[1] as u8,
            v[2] as u8,
            v[3] as u8,
        ))
    }
}

impl PciAddress {
    /// The attributes of a libvirt `<address>` element, as libvirt writes
    /// them: `domain='0x0000' bus='0x03' slot='0x00' function='0x0'`.
    pub fn libvirt_attrs(&self, quote: char) -> String {
        let mut s = String::new();
        for f in Field::ALL {
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str(&format!(
                "{}={quote}{}{quote}",
                f.name(),
                f.libvirt_form(f.of(*self))
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libvirt_numbers() {
        let n = |s| parse_libvirt_number(s);
        assert_eq!(
            n("0x1f"),
            Some(LibvirtNumber {
                value: 31,
                form: NumberForm::Hex
            })
        );
        assert_eq!(
            n("010"),
            Some(LibvirtNumber {
                value: 8,
                form: NumberForm::Octal
            })
        );
        assert_eq!(
            n("10"),
            Some(LibvirtNumber {
                value: 10,
                form: NumberForm::Decimal
            })
        );
        assert_eq!(
            n("0"),
            Some(LibvirtNumber {
                value: 0,
                form: NumberForm::Decimal
            })
        );
        assert_eq!(n("1f"), None);
        assert_eq!(n("09"), None);
        assert_eq!(n(""), None);
        assert_eq!(n("0x"), None);
        assert_eq!(n("-1"), None);
        // strtoul: leading whitespace and one `+`, nothing after the digits.
        let v = |s| n(s).map(|x| x.value);
        assert_eq!(v("+0x2b"), Some(0x2b));
        assert_eq!(v(" 0x2b"), Some(0x2b));
        assert_eq!(v("\t\n +010"), Some(8));
        assert_eq!(v("0x2b "), None);
        assert_eq!(v("++1"), None);
        assert_eq!(v("+ 1"), None);
        assert_eq!(v("+"), None);
        assert_eq!(v("-0"), None);
        assert_eq!(v("0xffffffff"), Some(0xffff_ffff));
        assert_eq!(v("0x100000000"), Some(0x1_0000_0000));
    }

    fn element(attrs: &str) -> (String, Option<PciAddress>, Option<(Field, FieldError)>) {
        let xml = format!("<address type='pci' {attrs}/>");
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let e = read_element(doc.root_element());
        let err = e
            .present()
            .find(|f| f.read.is_err())
            .map(|f| (f.field, f.read.unwrap_err()));
        let spans: Vec<&str> = e.present().map(|f| &xml[f.span.clone()]).collect();
        (spans.join(","), e.address(), err)
    }

    #[test]
    fn one_reader_of_the_address_element() {
        let (spans, a, err) = element("domain='0x0000' bus='0x2b' slot='0x00' function='0x1'");
        assert_eq!(spans, "0x0000,0x2b,0x00,0x1");
        assert_eq!(a, Some(PciAddress::new(0, 0x2b, 0, 1)));
        assert_eq!(err, None);
        // Missing fields are 0; octal and decimal as strtoul reads them.
        assert_eq!(
            element("bus='010' slot='10'").1,
            Some(PciAddress::new(0, 8, 10, 0))
        );
        assert_eq!(
            element("bus='0x01' slot='1f'").2,
            Some((Field::Slot, FieldError::NotANumber))
        );
        let (_, a, err) = element("function='0x8'");
        assert_eq!(a, None);
        assert!(matches!(err, Some((Field::Function, FieldError::OutOfRange(n))) if n.value == 8));
        assert_eq!(
            element("domain='0x10000' bus='0x01'").1,
            Some(PciAddress::new(0x10000, 1, 0, 0))
        );
        assert!(element("domain='0x100000000'").1.is_none());
        // A namespaced attribute is not libvirt's.
        let doc = roxmltree::Document::parse("<address xmlns:x='urn:x' x:bus='0x03'/>").unwrap();
        assert!(read_element(doc.root_element()).is_empty());
    }

    #[test]
    fn one_writer_in_libvirts_spelling() {
        let a = PciAddress::new(0x10000, 0x2b, 0x1f, 7);
        assert_eq!(
            a.libvirt_attrs('\''),
            "domain='0x10000' bus='0x2b' slot='0x1f' function='0x7'"
        );
        assert_eq!(
            PciAddress::new(0, 3, 0, 0).libvirt_attrs('"'),
            "domain=\"0x0000\" bus=\"0x03\" slot=\"0x00\" function=\"0x0\""
        );
        // What the writer writes, the reader reads back.
        let xml = format!("<address {}/>", a.libvirt_attrs('\''));
        let doc = roxmltree::Document::parse(&xml).unwrap();
        assert_eq!(read_element(doc.root_element()).address(), Some(a));
    }
}
