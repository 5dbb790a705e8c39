//! Line recognisers: what one line of each published listing format looks like.
//!
//! Kept apart from the builder (`builder.rs`) and the inference rules
//! (`infer.rs`, `buses.rs`) so that supporting a new paste format means adding
//! a recogniser here, without reading the rules that turn recognised lines
//! into a host. A recogniser only reads text: it never changes state.
//!
//! | line | meaning |
//! |---|---|
//! | `# source: …` | provenance, kept verbatim |
//! | `# ---- companion listing …` | a second paste of the same host: it adds device facts (drivers, subsystem ids, sysfs paths), never groups |
//! | `IOMMU Group N:` / `IOMMU group N` (any indent after) | Arch-wiki header; the indented lines below are members |
//! | `IOMMU Group N BDF class [cccc]: name [vvvv:dddd] (rev rr)` | flat one-liner |
//! | `Group N:<TAB>[vvvv:dddd] [R] BDF  class  name`, continuation `<TAB><TAB>[…]` | r15ch13 `iommu.sh`; `[R]` = a `reset` file exists |
//! | `USB:<TAB>[vvvv:pppp] Bus BBB Device DDD  name` | r15ch13 USB rows, on the controller of the group line above |
//! | `BDF class [cccc]: name [vvvv:dddd]` with `Subsystem:` / `Kernel driver in use:` lines below | `lspci -nn`, `-nnk`, `-nnkq`, `lspci -knn: ` prefix |
//! | `BDF class: name (rev rr)` | plain `lspci` (no ids) |
//! | `/sys/kernel/iommu_groups/N/devices/NAME` | `find` output; NAME may be a platform device |
//! | `Slot:` / `Class:` / `Vendor:` / `Device:` / `IOMMUGroup:` … records | `lspci -nnvmm` (with `-k`: `Driver:`) |
//! | `pci BDF: Adding to iommu group N` | dmesg: membership only (ids read `0xffff` unless another paste names them) |
//! | a bare member name under a group header (an mdev UUID) | non-PCI group member |
//! | `… BDF -> ../../devices/pci…/BDF` | sysfs link: the real parent bridges |
//! | `$ sysfs attributes of BDF` then `key=value`, `driver -> …` | raw sysfs dump (000) |
//! | `…/devices/pci…/BDF/…/block/NAME`, `…/net/NAME`, `/dev/NAME` (findmnt), `default via … dev IF` | root filesystem and default route, when the paste shows them |

use super::tokens::{
    bracketed_code, class_from_name, group_number, last_ids, looks_like_member, parse_bdf,
    parse_group, path_bdfs,
};
use crate::address::PciAddress;
use crate::host::sysfs::parse_sysfs_bdf;

/// One recognised line. The recognisers run in a fixed order (see
/// [`recognise`]): the first that matches decides what the line is.
#[derive(Debug)]
pub(crate) enum Line<'a> {
    /// Empty or white space only.
    Blank,
    /// `# source: …`: provenance.
    Source(&'a str),
    /// `# ---- companion listing …`: a second paste of the same host.
    Companion,
    /// `### Group N ###`: a repeat of the groups.
    GroupRepeat,
    /// Any other `#` line.
    Comment,
    /// `$ sysfs attributes of BDF`: a raw sysfs dump of BDF follows.
    SysfsHeader(Option<PciAddress>),
    /// Any other `$` command line: ends a sysfs dump.
    Shell,
    /// A line inside a raw sysfs dump (`key=value`, `driver -> …`).
    SysfsAttr(&'a str),
    /// `Field:<TAB>value` of an `lspci -vmm` record.
    VmmField(&'a str, &'a str),
    /// dmesg `pci BDF: Adding to iommu group N` (when both read).
    DmesgMember(Option<(PciAddress, u32)>),
    /// `find /sys/kernel/iommu_groups` output: group and member name.
    FindMember(Option<(u32, &'a str)>),
    /// Arch-wiki `IOMMU Group N:`, with the flat one-liner's device.
    GroupHeader(u32, Option<DevLine>),
    /// r15ch13 `Group N:` with the row it carries.
    R15Header(u32, Option<R15Row>),
    /// r15ch13 `USB:` row.
    Usb(Option<UsbRow>),
    /// r15ch13 continuation row `[vvvv:dddd] …` under a `Group N:`.
    R15Continuation(Option<R15Row>),
    /// `lspci -k` `Subsystem: … [vvvv:dddd]`.
    Subsystem(Option<(u16, u16)>),
    /// `lspci -k` `Kernel driver in use: NAME`.
    Driver(&'a str),
    /// A line that is recognised and carries nothing the model keeps.
    Ignored,
    /// `… BDF -> ../../devices/pci…`: BDF and its parent bridges.
    SysfsLink(Option<(PciAddress, Vec<PciAddress>)>),
    /// `…/devices/pci…/BDF/…/block/NAME`.
    BlockLink(String, PciAddress),
    /// `…/devices/pci…/BDF/…/net/NAME`.
    NetLink(String, PciAddress),
    /// `/dev/NAME` alone on a line (findmnt's root source).
    RootSource(&'a str),
    /// `default via … dev IF` (`None`: `dev` is the last word).
    DefaultRoute(Option<&'a str>),
    /// An lspci device line; `indented` when it is a member under a header.
    Device { dev: DevLine, indented: bool },
    /// A bare name without white space: a non-PCI member under a header.
    Member(&'a str),
}

impl Line<'_> {
    /// Lines that do not end a pending `lspci -vmm` record.
    pub(crate) fn keeps_vmm_record(&self) -> bool {
        matches!(
            self,
            Line::Blank
                | Line::Source(_)
                | Line::Companion
                | Line::GroupRepeat
                | Line::Comment
                | Line::SysfsHeader(_)
                | Line::Shell
                | Line::SysfsAttr(_)
                | Line::VmmField(..)
        )
    }
}

/// What the reader is inside of, which changes what a line means.
pub(crate) struct Context {
    /// Inside a `$ sysfs attributes of BDF` dump.
    pub in_sysfs_dump: bool,
    /// An `lspci -vmm` record has started (its `Slot:` was read).
    pub in_vmm_record: bool,
}

/// Recognise one line (`raw`, untrimmed: indentation marks group members).
/// Errors are group numbers past the kernel's limit and member names that
/// are not one path component.
pub(crate) fn recognise<'a>(raw: &'a str, cx: &Context) -> Result<Line<'a>, String> {
    let t = raw.trim();
    if t.is_empty() {
        return Ok(Line::Blank);
    }
    if let Some(h) = t.strip_prefix('#') {
        return Ok(comment(h.trim()));
    }
    if let Some(rest) = t.strip_prefix("$ sysfs attributes of ") {
        return Ok(Line::SysfsHeader(parse_bdf(rest.trim())));
    }
    if t.starts_with('$') {
        return Ok(Line::Shell);
    }
    if cx.in_sysfs_dump {
        return Ok(Line::SysfsAttr(t));
    }
    if let Some(l) = vmm_field(t, cx.in_vmm_record) {
        return Ok(l);
    }
    if let Some(l) = dmesg_member(t)? {
        return Ok(l);
    }
    if let Some(l) = find_member(t)? {
        return Ok(l);
    }
    if let Some(l) = group_header(t)? {
        return Ok(l);
    }
    Ok(lspci_or_link(raw, t))
}

/// The formats without errors, in their order: r15ch13 rows, `lspci -k`
/// details, sysfs/block/net links, findmnt and `ip route`, lspci devices,
/// bare members.
fn lspci_or_link<'a>(raw: &'a str, t: &'a str) -> Line<'a> {
    if let Some(l) = r15_line(t) {
        return l;
    }
    if let Some(l) = lspci_detail(t) {
        return l;
    }
    if let Some(l) = link_or_route(t) {
        return l;
    }
    if let Some(dev) = parse_dev_line(t) {
        let indented = raw.starts_with(char::is_whitespace);
        return Line::Device { dev, indented };
    }
    if !t.contains(char::is_whitespace) && looks_like_member(t) {
        return Line::Member(t);
    }
    Line::Ignored
}

/// `# source: …`, `# ---- companion listing …`, `### Group N ###`, others.
fn comment(h: &str) -> Line<'_> {
    if let Some(s) = h.strip_prefix("source:") {
        Line::Source(s.trim())
    } else if h.starts_with("----") && h.contains("companion") {
        Line::Companion
    } else if h.starts_with("###") {
        Line::GroupRepeat
    } else {
        Line::Comment
    }
}

/// The fields of an `lspci -nnvmm` record (`Field:<TAB>value`). A record
/// starts at `Slot:`; the other fields count only inside one.
const VMM_FIELDS: &[&str] = &[
    "Slot",
    "Class",
    "Vendor",
    "Device",
    "SVendor",
    "SDevice",
    "Rev",
    "ProgIf",
    "Driver",
    "IOMMUGroup",
    "NUMANode",
    "PhySlot",
    "Module",
];

/// `Field:<TAB>value` of an `lspci -nnvmm` record.
fn vmm_field(t: &str, in_record: bool) -> Option<Line<'_>> {
    let (k, v) = t.split_once(':')?;
    (VMM_FIELDS.contains(&k) && (k == "Slot" || in_record)).then(|| Line::VmmField(k, v.trim()))
}

/// dmesg: `pci 0000:00:01.0: Adding to iommu group 0`.
fn dmesg_member(t: &str) -> Result<Option<Line<'_>>, String> {
    let Some(i) = t.find(": Adding to iommu group ") else {
        return Ok(None);
    };
    let bdf = t[..i].rsplit(' ').next().unwrap_or("");
    let digits = t[i + 24..].trim();
    let g = if !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit()) {
        Some(parse_group(digits)?)
    } else {
        None
    };
    Ok(Some(Line::DmesgMember(parse_bdf(bdf).zip(g))))
}

/// `find /sys/kernel/iommu_groups -type l`: `…/N/devices/NAME`.
fn find_member(t: &str) -> Result<Option<Line<'_>>, String> {
    let Some(rest) = t.strip_prefix("/sys/kernel/iommu_groups/") else {
        return Ok(None);
    };
    if let Some((g, tail)) = rest.split_once("/devices/") {
        if !g.is_empty() && g.bytes().all(|c| c.is_ascii_digit()) {
            let g = parse_group(g)?;
            // One name: `devices/../../../../etc/passwd` is not a member.
            crate::host::fake::check_name("group member", tail.trim())?;
            return Ok(Some(Line::FindMember(Some((g, tail.trim())))));
        }
    }
    Ok(Some(Line::FindMember(None)))
}

/// Arch-wiki `IOMMU Group N:` / `IOMMU group N BDF …`, and r15ch13's
/// `Group N:<TAB>[vvvv:dddd] [R] BDF  class  name`. A `Group ` line
/// without a number is not a header (later recognisers may take it).
fn group_header(t: &str) -> Result<Option<Line<'_>>, String> {
    if t.get(..12)
        .is_some_and(|p| p.eq_ignore_ascii_case("iommu group "))
    {
        return Ok(Some(match group_number(&t[12..])? {
            Some((g, after)) => {
                let dev = if after.is_empty() {
                    None
                } else {
                    parse_dev_line(after)
                };
                Line::GroupHeader(g, dev)
            }
            None => Line::Ignored,
        }));
    }
    if let Some(rest) = t.strip_prefix("Group ") {
        if let Some((g, after)) = group_number(rest)? {
            return Ok(Some(Line::R15Header(g, parse_r15_row(after))));
        }
    }
    Ok(None)
}

/// r15ch13's `USB:` rows and `[vvvv:dddd] …` continuation rows.
fn r15_line(t: &str) -> Option<Line<'_>> {
    if let Some(rest) = t.strip_prefix("USB:") {
        return Some(Line::Usb(parse_usb_row(rest.trim())));
    }
    if t.starts_with('[') && last_ids(t).map(|x| x.0) == Some(0) {
        return Some(Line::R15Continuation(parse_r15_row(t)));
    }
    None
}

/// `lspci -k` detail lines under a device.
fn lspci_detail(t: &str) -> Option<Line<'_>> {
    if let Some(rest) = t.strip_prefix("Subsystem:") {
        return Some(Line::Subsystem(last_ids(rest).map(|(_, v, d)| (v, d))));
    }
    if let Some(rest) = t.strip_prefix("Kernel driver in use:") {
        return Some(Line::Driver(rest.trim()));
    }
    if t.starts_with("Kernel modules:") || t.starts_with("DeviceName:") {
        return Some(Line::Ignored);
    }
    None
}

/// sysfs links (`… NAME -> ../../devices/pci0000:50/0000:50:01.2/…`),
/// block and net links printed by readlink, findmnt's `/dev/NAME`, and
/// `ip route`'s `default via … dev IF`.
fn link_or_route(t: &str) -> Option<Line<'_>> {
    if let Some((lhs, target)) = t.split_once(" -> ") {
        let name = lhs.split_whitespace().last().unwrap_or("");
        let link = parse_sysfs_bdf(name)
            .filter(|_| target.contains("devices/pci"))
            .map(|a| {
                (
                    a,
                    path_bdfs(target).into_iter().filter(|x| *x != a).collect(),
                )
            });
        return Some(Line::SysfsLink(link));
    }
    if t.contains("devices/pci") {
        let Some(a) = path_bdfs(t).last().copied() else {
            return Some(Line::Ignored);
        };
        return Some(if let Some(i) = t.rfind("/block/") {
            let n = t[i + 7..].split('/').next_back().unwrap_or("").to_string();
            Line::BlockLink(n, a)
        } else if let Some(i) = t.rfind("/net/") {
            let n = t[i + 5..].split('/').next().unwrap_or("").to_string();
            Line::NetLink(n, a)
        } else {
            Line::Ignored
        });
    }
    if t.starts_with("/dev/") && !t.contains(char::is_whitespace) {
        return Some(Line::RootSource(t));
    }
    if let Some(rest) = t.strip_prefix("default via ") {
        let f: Vec<&str> = rest.split_whitespace().collect();
        return Some(match f.iter().position(|w| *w == "dev") {
            Some(i) => Line::DefaultRoute(f.get(i + 1).copied()),
            None => Line::Ignored,
        });
    }
    None
}

/// Pieces of one lspci-style device line.
#[derive(Debug)]
pub(crate) struct DevLine {
    pub addr: PciAddress,
    pub class16: Option<u16>,
    pub name: String,
    pub ids: Option<(u16, u16)>,
    pub rev: Option<u8>,
    pub prog_if: Option<u8>,
}

/// Parse `BDF class [cccc]: name [vvvv:dddd] (rev rr) (prog-if pp [...])`,
/// with or without the codes.
pub(crate) fn parse_dev_line(line: &str) -> Option<DevLine> {
    let line = line.trim();
    let line = line
        .strip_prefix("lspci -knn:")
        .unwrap_or(line)
        .trim_start();
    let (tok, rest) = line.split_once(char::is_whitespace)?;
    let addr = parse_bdf(tok)?;
    let rest = rest.trim_start();
    let (class_part, name_part) = rest.split_once(": ")?;
    let (class_name, class16) = bracketed_code(class_part);
    let mut name_part = name_part.trim().to_string();
    let mut rev = None;
    let mut prog_if = None;
    if let Some(i) = name_part.find(" (prog-if ") {
        prog_if = name_part
            .get(i + 10..i + 12)
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        name_part.truncate(i);
    }
    if let Some(i) = name_part.find(" (rev ") {
        rev = name_part
            .get(i + 6..i + 8)
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        name_part.truncate(i);
    }
    let (name, ids) = match last_ids(&name_part) {
        Some((off, v, d)) => (name_part[..off].trim().to_string(), Some((v, d))),
        None => (name_part.trim().to_string(), None),
    };
    Some(DevLine {
        addr,
        class16: class16.or_else(|| class_from_name(class_name)),
        name,
        ids,
        rev,
        prog_if,
    })
}

/// One `lspci -nnvmm` record read: the device, and what `-k` adds.
pub(crate) struct VmmRecord {
    pub dev: DevLine,
    pub subsystem: Option<(u16, u16)>,
    pub driver: Option<String>,
    pub group: Option<u32>,
}

/// An `lspci -nnvmm` record's fields as a device (`None` without a
/// readable `Slot:`).
pub(crate) fn vmm_record(rec: &[(String, String)]) -> Option<VmmRecord> {
    let get = |k: &str| rec.iter().find(|(f, _)| f == k).map(|(_, v)| v.as_str());
    let addr = get("Slot").and_then(parse_bdf)?;
    let code = |k: &str| bracketed_code(get(k).unwrap_or(""));
    let (class_name, class16) = code("Class");
    let (vname, vid) = code("Vendor");
    let (dname, did) = code("Device");
    let dev = DevLine {
        addr,
        class16: class16.or_else(|| class_from_name(class_name)),
        name: format!("{vname} {dname}").trim().to_string(),
        ids: vid.zip(did),
        rev: get("Rev").and_then(|r| u8::from_str_radix(r, 16).ok()),
        prog_if: get("ProgIf").and_then(|r| u8::from_str_radix(r, 16).ok()),
    };
    Some(VmmRecord {
        dev,
        subsystem: code("SVendor").1.zip(code("SDevice").1),
        driver: get("Driver").map(str::to_string),
        group: get("IOMMUGroup").and_then(|g| g.parse::<u32>().ok()),
    })
}

/// One r15ch13 row: `[vvvv:dddd] [R] BDF  class  name`.
#[derive(Debug)]
pub(crate) struct R15Row {
    pub dev: DevLine,
    /// `[R]`: the `reset` file exists.
    pub reset: bool,
}

/// Parse an r15ch13 row (columns separated by two or more spaces).
fn parse_r15_row(after: &str) -> Option<R15Row> {
    let (_, v, d) = last_ids(after.get(..11).unwrap_or(""))?;
    let mut rest = after[11..].trim_start();
    let mut reset = false;
    if let Some(r) = rest.strip_prefix("[R]") {
        reset = true;
        rest = r.trim_start();
    }
    let cols: Vec<&str> = rest
        .split("  ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let addr = cols.first().and_then(|b| parse_bdf(b))?;
    let class_name = cols.get(1).copied().unwrap_or("");
    let name = cols.get(2).copied().unwrap_or("").to_string();
    let dev = DevLine {
        addr,
        class16: class_from_name(class_name),
        name,
        ids: Some((v, d)),
        rev: None,
        prog_if: None,
    };
    Some(R15Row { dev, reset })
}

/// One r15ch13 `USB:` row: `[vvvv:pppp] Bus BBB Device DDD name…`.
#[derive(Debug)]
pub(crate) struct UsbRow {
    pub vendor: u16,
    pub product: u16,
    pub bus: u32,
    pub device: u32,
    pub name: String,
}

fn parse_usb_row(rest: &str) -> Option<UsbRow> {
    let (_, vendor, product) = last_ids(rest.get(..11).unwrap_or(""))?;
    let f: Vec<&str> = rest[11..].split_whitespace().collect();
    if f.len() < 4 || f[0] != "Bus" || f[2] != "Device" {
        return None;
    }
    let (Ok(bus), Ok(device)) = (f[1].parse::<u32>(), f[3].parse::<u32>()) else {
        return None;
    };
    Some(UsbRow {
        vendor,
        product,
        bus,
        device,
        name: f[4..].join(" "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_line_forms() {
        let d = parse_dev_line("00:14.0 USB controller [0c03]: Intel Corporation 100 Series USB 3.0 xHCI Controller [8086:a12f] (rev 31)").unwrap();
        assert_eq!(d.addr, PciAddress::new(0, 0, 0x14, 0));
        assert_eq!(d.class16, Some(0x0c03));
        assert_eq!(d.ids, Some((0x8086, 0xa12f)));
        assert_eq!(d.rev, Some(0x31));
        assert_eq!(
            d.name,
            "Intel Corporation 100 Series USB 3.0 xHCI Controller"
        );
        let d = parse_dev_line("0001:01:00.1 Ethernet controller: Intel Corporation I350 Gigabit Network Connection (rev 01)").unwrap();
        assert_eq!(d.addr, PciAddress::new(1, 1, 0, 1));
        assert_eq!(d.class16, Some(0x0200));
        assert_eq!(d.ids, None);
        let d = parse_dev_line("lspci -knn: 00:00.0 Host bridge [0600]: AMD [1022:1480]").unwrap();
        assert_eq!(d.ids, Some((0x1022, 0x1480)));
        assert!(parse_dev_line("BOOT_IMAGE=/boot/vmlinuz root=/dev/sda").is_none());
    }
}
