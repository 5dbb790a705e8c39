//! Address numbers as libvirt reads them (VP020–VP024).
//!
//! libvirt reads each field of an `<address>` with `strtoul(…, 0)`
//! (`virPCIDeviceAddressParseXML`, `src/conf/device_conf.c`): `0x` is hex,
//! a leading `0` octal, anything else decimal. So `slot='1f'` is refused,
//! `bus='010'` is 8, and `bus='10'` is ten where lspci meant sixteen. One
//! family, because each finding is about one attribute value and its help
//! says how libvirt would spell what was meant. Both host (source) and
//! guest addresses are read here; the warnings about lspci's hex and VMD
//! domains apply to host addresses only.

use super::context::Cx;
use super::Code;
use crate::address::{
    AddressElement, Field, FieldError, FieldValue, LibvirtNumber, NumberForm, PciAddress,
};

/// Report every field of an `<address>` (read once, by
/// [`crate::address::read_element`]) that libvirt rejects (VP020, VP021)
/// or reads differently from what was meant (VP022–VP024); the address as
/// libvirt reads it when it reads every field. `source`: a host address
/// (VMD domains and lspci's hex matter there).
pub(super) fn check_fields(
    cx: &mut Cx<'_>,
    e: &AddressElement<'_>,
    source: bool,
) -> Option<PciAddress> {
    for f in e.present() {
        match f.read {
            Err(FieldError::NotANumber) => not_a_number(cx, f),
            Err(FieldError::OutOfRange(_)) => out_of_range(cx, f),
            Ok(n) => {
                leading_zero(cx, f, n);
                if source {
                    lspci_would_differ(cx, f, n);
                }
            }
        }
    }
    e.address()
}

fn hex(v: u64, f: Field) -> String {
    f.libvirt_form(v)
}

/// VP020: `strtoul` does not read the value, with the spelling libvirt
/// would read as what was probably meant.
fn not_a_number(cx: &mut Cx<'_>, f: &FieldValue<'_>) {
    let (name, v) = (f.field.name(), f.text);
    let help = if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) && v.starts_with('0') {
        let d = v.parse::<u64>().unwrap_or(0);
        format!(
            "a leading 0 makes libvirt read octal, where 8 and 9 are not digits: write {name}='{}'",
            hex(d, f.field)
        )
    } else if !v.is_empty() && v.len() <= 8 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
        let h = u64::from_str_radix(v, 16).unwrap_or(0);
        format!(
            "libvirt reads hex only with the 0x prefix: write {name}='{}'",
            hex(h, f.field)
        )
    } else {
        "write hex numbers with the 0x prefix, as libvirt does: domain='0x0000' bus='0x03' slot='0x00' function='0x0'".to_string()
    };
    cx.push(
        Code::Vp020,
        f.span.clone(),
        format!("libvirt cannot read {name}='{v}' as a number"),
        Some("libvirt reads numbers like C's strtoul: 0x… hex, 0… octal, else decimal".into()),
        Some(help),
    );
}

/// VP021: read, but above what a PCI address holds.
fn out_of_range(cx: &mut Cx<'_>, f: &FieldValue<'_>) {
    let (name, v) = (f.field.name(), f.text);
    let range = if f.field == Field::Domain {
        "0x00000000 to 0xffffffff".to_string()
    } else {
        format!("0 to {}", hex(f.field.max(), f.field))
    };
    cx.push(
        Code::Vp021,
        f.span.clone(),
        format!(
            "{name}='{v}' is out of range: a PCI {name} is {range} (libvirt: \"Invalid PCI address\")"
        ),
        None,
        Some("check the address with `lspci -D` or `virt-pci list`".into()),
    );
}

/// VP023: a leading zero where octal and decimal differ (`010` is 8).
fn leading_zero(cx: &mut Cx<'_>, f: &FieldValue<'_>, n: LibvirtNumber) {
    if n.form != NumberForm::Octal {
        return;
    }
    let (name, v) = (f.field.name(), f.text);
    let Ok(dec) = v.parse::<u64>() else { return };
    if dec == n.value {
        return;
    }
    cx.push(
        Code::Vp023,
        f.span.clone(),
        format!(
            "{name}='{v}' has a leading zero: libvirt reads it as octal, {} ({}), not {dec}",
            n.value,
            hex(n.value, f.field)
        ),
        Some(format!("libvirt reads {}", hex(n.value, f.field))),
        Some(format!(
            "write hex with 0x, as libvirt does: {name}='{}' for what libvirt reads now, {name}='{}' for decimal {dec}",
            hex(n.value, f.field),
            hex(dec, f.field)
        )),
    );
}

/// VP022 and VP024, host addresses only: a domain only Intel VMD has, and
/// a decimal bus or slot that lspci (which prints hex) would not have
/// given.
fn lspci_would_differ(cx: &mut Cx<'_>, f: &FieldValue<'_>, n: LibvirtNumber) {
    let (name, v) = (f.field.name(), f.text);
    if f.field == Field::Domain && n.value > 0xffff {
        cx.push(
            Code::Vp022,
            f.span.clone(),
            format!(
                "domain='{v}' is above 0xffff: only Intel VMD domains (10000 and up) look like this"
            ),
            None,
            Some("check the address with `virt-pci list`".into()),
        );
    }
    if matches!(f.field, Field::Bus | Field::Slot) && n.form == NumberForm::Decimal && n.value >= 10
    {
        cx.push(
            Code::Vp024,
            f.span.clone(),
            format!(
                "{name}='{v}' is decimal {v} ({}) to libvirt, but lspci prints {name} numbers in hex",
                hex(n.value, f.field)
            ),
            None,
            Some(format!(
                "write {name}='{}' to keep decimal {v}, or {name}='0x{v}' if the number comes from lspci",
                hex(n.value, f.field)
            )),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::validate::testing::{codes, dom};

    #[test]
    fn octal_and_unreadable_numbers() {
        let hd = |attrs: &str| {
            dom(
                "",
                &format!("<hostdev mode='subsystem' type='pci'><source><address {attrs}/></source></hostdev>"),
            )
        };
        // 07 is the same in octal and decimal: no finding.
        assert!(codes(&hd("bus='0x01' slot='07'")).is_empty());
        assert_eq!(codes(&hd("bus='0x01' slot='010'")), ["VP023"]);
        assert_eq!(codes(&hd("bus='0x01' slot='09'")), ["VP020"]);
        assert_eq!(codes(&hd("bus='-1'")), ["VP020"]);
        assert_eq!(codes(&hd("bus='0x01' function='010'")), ["VP021"]);
        assert_eq!(codes(&hd("domain='0x100000000' bus='0x01'")), ["VP021"]);
    }
}
