//! The tokens listing lines are made of: `[vvvv:dddd]` ids, BDFs as lspci
//! prints them, IOMMU group numbers, class names and `[cccc]` codes, sysfs
//! paths. Shared by every recogniser in `lines.rs`, so that each token is
//! read one way whichever format it appears in.

use crate::address::PciAddress;
use crate::host::sysfs::parse_sysfs_bdf;

/// Exactly four hex digits.
pub(crate) fn hex4(s: &str) -> Option<u16> {
    if s.len() == 4 && s.bytes().all(|c| c.is_ascii_hexdigit()) {
        u16::from_str_radix(s, 16).ok()
    } else {
        None
    }
}

/// `[vvvv:dddd]` anywhere in `s`: the last occurrence, and its byte offset.
pub(crate) fn last_ids(s: &str) -> Option<(usize, u16, u16)> {
    let b = s.as_bytes();
    let mut i = s.len();
    while i >= 11 {
        let start = i - 11;
        if b[start] == b'[' && b[start + 5] == b':' && b[start + 10] == b']' {
            if let (Some(v), Some(d)) = (
                s.get(start + 1..start + 5).and_then(hex4),
                s.get(start + 6..start + 10).and_then(hex4),
            ) {
                return Some((start, v, d));
            }
        }
        i -= 1;
    }
    None
}

/// A BDF as lspci prints it: `BB:SS.F` or `DDDD:BB:SS.F`.
pub(crate) fn parse_bdf(tok: &str) -> Option<PciAddress> {
    if let Some(a) = parse_sysfs_bdf(tok) {
        return Some(a);
    }
    parse_sysfs_bdf(&format!("0000:{tok}"))
}

/// A group number and the text after it; `Err` when the digits are there
/// but overflow a u32 (the kernel's group ids are `unsigned int`), so the
/// line is reported instead of silently dropped.
pub(crate) fn group_number(rest: &str) -> Result<Option<(u32, &str)>, String> {
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    if end == 0 {
        return Ok(None);
    }
    let n: u32 = parse_group(&rest[..end])?;
    let after = rest[end..].trim_start();
    let after = after.strip_prefix(':').unwrap_or(after).trim();
    Ok(Some((n, after)))
}

/// Decimal digits as a group number; too large is an error.
pub(crate) fn parse_group(digits: &str) -> Result<u32, String> {
    digits.parse().map_err(|_| {
        format!(
            "IOMMU group number {} is larger than the kernel's limit ({})",
            crate::text::shorten(digits),
            u32::MAX
        )
    })
}

/// The classes a class name is looked up among (the explicit entries of
/// the built-in table; the generic fallbacks would be ambiguous).
const NAMED_CLASSES: &[u16] = &[
    0x0100, 0x0101, 0x0104, 0x0106, 0x0107, 0x0108, 0x0180, 0x0200, 0x0207, 0x0280, 0x0300, 0x0302,
    0x0380, 0x0401, 0x0403, 0x0480, 0x0500, 0x0580, 0x0600, 0x0601, 0x0604, 0x0607, 0x0680, 0x0700,
    0x0780, 0x0800, 0x0805, 0x0806, 0x0880, 0x0c03, 0x0c05, 0x0c80, 0x0c0a, 0x1080, 0x1101, 0x1180,
    0x1200, 0x1300, 0xff00,
];

/// The 16-bit class for a class name (reverse of the built-in table): how
/// r15ch13 and plain `lspci`, which print no class code, get one.
pub(crate) fn class_from_name(name: &str) -> Option<u16> {
    let n = name.trim();
    NAMED_CLASSES
        .iter()
        .copied()
        .find(|c| crate::pciids::builtin_class_name(*c) == n)
}

/// `Name [1022]` / `Host bridge [0600]`: the text and the 4-digit hex code
/// in the last brackets (lspci's `-nn` form).
pub(crate) fn bracketed_code(v: &str) -> (&str, Option<u16>) {
    match v.rfind(" [") {
        Some(i) if v.ends_with(']') => (&v[..i], hex4(&v[i + 2..v.len() - 1])),
        _ => (v, None),
    }
}

/// The PCI functions named in a sysfs path, in order.
pub(crate) fn path_bdfs(p: &str) -> Vec<PciAddress> {
    p.split('/').filter_map(parse_sysfs_bdf).collect()
}

/// A name that can be a non-PCI group member (an mdev UUID, a platform
/// device): at least 8 characters of `[A-Za-z0-9-_.:]`.
pub(crate) fn looks_like_member(t: &str) -> bool {
    t.len() >= 8
        && t.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.:".contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names() {
        assert_eq!(class_from_name("PCI bridge"), Some(0x0604));
        assert_eq!(class_from_name("Serial bus controller"), Some(0x0c80));
    }
}
