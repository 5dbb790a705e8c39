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
//! them (a group listing followed by an `lspci -nnk` companion):
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
//!
//! ## What listings lack, and how it is filled in (heuristics)
//!
//! Unknown facts stay `None` (reset methods, NUMA node, boot VGA). Facts the
//! model needs to build a faithful sysfs tree are inferred, each by one rule:
//!
//! * **Class prog-if**: listings print the 16-bit class; the low byte takes
//!   the usual value: USB `0c03` → `30` (xHCI; `20` when the name says EHCI,
//!   `10` OHCI, `00` UHCI), NVMe `0108` → `02`, SATA `0106` → `01` (AHCI),
//!   VGA `0300` → `00`, everything else `00`.
//! * **Class from a name** (r15ch13 and plain `lspci` print no class code):
//!   the reverse of the built-in PCI class table.
//! * **Ids from a name** (plain `lspci`): the ids another line of the same
//!   paste gives for the same name, else a small table of the devices seen in
//!   published pastes without ids ([`KNOWN_NAMES`]).
//! * **Header type** from the class: PCI bridge `0604`/`0609` → 1, CardBus
//!   `0607` → 2, else 0.
//! * **Parent bridge**: the paste's sysfs paths when it has them. Otherwise
//!   buses are numbered depth-first as firmware does: on each bus the bridges
//!   are visited in address order; a bridge takes as secondary bus (1) a bus
//!   that holds a device of its own IOMMU group (the strongest hint: no ACS
//!   between them), else (2) the next bus number in depth-first order when a
//!   device sits on it, else (3) on a root bus only, when there are at
//!   least as many occupied buses left as bridges, the next occupied one
//!   (firmware skipped a number; below a root bus a far bus more likely
//!   belongs to a later sibling of an ancestor), else (4) it is taken to be
//!   an empty slot, which still uses up a bus number. Devices on the bus of a
//!   device whose sysfs path the paste shows get the same parents. A bus nobody claims is a root
//!   bus (`pciDDDD:BB`), as are bus 00 of every domain and buses with a host
//!   bridge at `xx:00.0`.
//! * **Root-filesystem controller, default-route NIC, boot VGA**: never
//!   inferred. The paste's own `findmnt`/block links, `ip route`/net links and
//!   `boot_vga` attributes make them *measured* (the host printed them);
//!   otherwise they are *unknown* ([`super::Provenance`]), and a plan touching
//!   a function that could be one of them is `unverified`. Whoever knows the
//!   host states them: `virt-pci snapshot --from-listing FILE --root-disk
//!   ADDR --default-nic ADDR --boot-vga ADDR` (`none` for "no PCI function").
//! * **IOMMU state**: groups present → enabled; a sysfs dump showing
//!   `iommu_group: absent` and no groups → disabled; otherwise unknown.

use super::{Critical, Device, GroupMember, Host, IommuState, Provenance, UsbBus, UsbDevice};
use crate::address::PciAddress;
use crate::host::sysfs::parse_sysfs_bdf;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

/// Devices that published pastes name without ids (plain `lspci`):
/// `(name as lspci prints it, vendor, device)`.
pub const KNOWN_NAMES: &[(&str, u16, u16)] = &[
    (
        "Broadcom Inc. and subsidiaries BCM2712 PCIe Bridge",
        0x14e4,
        0x2712,
    ),
    (
        "Intel Corporation I350 Gigabit Network Connection",
        0x8086,
        0x1521,
    ),
    ("Raspberry Pi Ltd RP1 PCIe 2.0 South Bridge", 0x1de4, 0x0001),
];

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

#[derive(Default)]
struct Builder {
    devices: BTreeMap<PciAddress, Device>,
    groups: BTreeMap<u32, Vec<GroupMember>>,
    provenance: Vec<String>,
    usb: BTreeMap<u32, UsbBus>,
    /// Index of the current paste (companions increase it).
    section: usize,
    /// The paste whose groups are taken.
    group_section: Option<usize>,
    cur_group: Option<u32>,
    last_dev: Option<PciAddress>,
    /// Inside a `$ sysfs attributes of BDF` dump.
    sysfs_dev: Option<PciAddress>,
    known_parents: BTreeSet<PciAddress>,
    names: BTreeMap<String, (u16, u16)>,
    /// Devices seen without ids, to fill from `names` at the end.
    unnamed: Vec<(PciAddress, String)>,
    block_links: Vec<(String, PciAddress)>,
    net_links: Vec<(String, PciAddress)>,
    root_source: Option<String>,
    default_iface: Option<String>,
    no_group_evidence: bool,
    saw_drivers: bool,
    /// The `lspci -vmm` record being read: (field, value) pairs.
    vmm: Vec<(String, String)>,
}

/// Parse a listing's text. Errors carry the 1-based line.
pub fn parse(text: &str, source: &str) -> Result<Host, (usize, String)> {
    let mut b = Builder::default();
    for (i, raw) in text.lines().enumerate() {
        b.line(raw, i + 1)?;
    }
    b.finish(source)
}

fn hex4(s: &str) -> Option<u16> {
    if s.len() == 4 && s.bytes().all(|c| c.is_ascii_hexdigit()) {
        u16::from_str_radix(s, 16).ok()
    } else {
        None
    }
}

/// `[vvvv:dddd]` anywhere in `s`: the last occurrence, and its byte offset.
fn last_ids(s: &str) -> Option<(usize, u16, u16)> {
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
fn parse_bdf(tok: &str) -> Option<PciAddress> {
    if let Some(a) = parse_sysfs_bdf(tok) {
        return Some(a);
    }
    parse_sysfs_bdf(&format!("0000:{tok}"))
}

/// A group number and the text after it; `Err` when the digits are there
/// but overflow a u32 (the kernel's group ids are `unsigned int`), so the
/// line is reported instead of silently dropped.
fn group_number(rest: &str) -> Result<Option<(u32, &str)>, String> {
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
fn parse_group(digits: &str) -> Result<u32, String> {
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

/// The 16-bit class for a class name (reverse of the built-in table).
fn class_from_name(name: &str) -> Option<u16> {
    let n = name.trim();
    NAMED_CLASSES
        .iter()
        .copied()
        .find(|c| crate::pciids::builtin_class_name(*c) == n)
}

/// The usual prog-if for a 16-bit class (see the module doc).
pub fn default_prog_if(class16: u16, name: &str) -> u8 {
    match class16 {
        0x0c03 => {
            if name.contains("EHCI") {
                0x20
            } else if name.contains("OHCI") {
                0x10
            } else if name.contains("UHCI") {
                0x00
            } else {
                0x30
            }
        }
        0x0108 => 0x02,
        0x0106 => 0x01,
        _ => 0x00,
    }
}

/// Header type from the class (see the module doc).
pub fn header_from_class(class16: u16) -> u8 {
    match class16 {
        0x0604 | 0x0609 => 1,
        0x0607 => 2,
        _ => 0,
    }
}

/// Pieces of one lspci-style device line.
struct DevLine {
    addr: PciAddress,
    class16: Option<u16>,
    class_name: String,
    name: String,
    ids: Option<(u16, u16)>,
    rev: Option<u8>,
    prog_if: Option<u8>,
}

/// Parse `BDF class [cccc]: name [vvvv:dddd] (rev rr) (prog-if pp [...])`,
/// with or without the codes.
fn parse_dev_line(line: &str) -> Option<DevLine> {
    let line = line.trim();
    let line = line
        .strip_prefix("lspci -knn:")
        .unwrap_or(line)
        .trim_start();
    let (tok, rest) = line.split_once(char::is_whitespace)?;
    let addr = parse_bdf(tok)?;
    let rest = rest.trim_start();
    let (class_part, name_part) = rest.split_once(": ")?;
    let (class_name, class16) = match class_part.rfind(" [") {
        Some(i) if class_part.ends_with(']') => {
            let code = &class_part[i + 2..class_part.len() - 1];
            (class_part[..i].to_string(), hex4(code))
        }
        _ => (class_part.to_string(), None),
    };
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
        class16: class16.or_else(|| class_from_name(&class_name)),
        class_name,
        name,
        ids,
        rev,
        prog_if,
    })
}

/// The PCI functions named in a sysfs path, in order.
fn path_bdfs(p: &str) -> Vec<PciAddress> {
    p.split('/').filter_map(parse_sysfs_bdf).collect()
}

impl Builder {
    fn in_group_section(&self) -> bool {
        match self.group_section {
            None => true,
            Some(s) => s == self.section,
        }
    }

    fn add_member(&mut self, g: u32, m: GroupMember) {
        if !self.in_group_section() {
            return;
        }
        self.group_section = Some(self.section);
        let v = self.groups.entry(g).or_default();
        if !v.contains(&m) {
            v.push(m);
        }
    }

    /// Merge one device line; returns its address.
    fn device(&mut self, dl: DevLine) -> PciAddress {
        let a = dl.addr;
        let class16 = dl.class16.unwrap_or(0xff00);
        let d = self.devices.entry(a).or_insert_with(|| blank(a));
        if d.class.is_empty() && dl.class16.is_some() {
            let pi = dl
                .prog_if
                .unwrap_or_else(|| default_prog_if(class16, &dl.name));
            d.class = format!("0x{:06x}", (u32::from(class16) << 8) | u32::from(pi));
            d.header_type = Some(header_from_class(class16));
        }
        if d.revision.is_none() {
            d.revision = dl.rev.map(|r| format!("0x{r:02x}"));
        }
        if d.device_name.is_none() && !dl.name.is_empty() {
            d.device_name = Some(dl.name.clone());
        }
        match dl.ids {
            Some((v, dv)) => {
                if d.vendor_id.is_empty() {
                    d.vendor_id = format!("0x{v:04x}");
                    d.device_id = format!("0x{dv:04x}");
                }
                self.names.entry(dl.name.clone()).or_insert((v, dv));
            }
            None => {
                if d.vendor_id.is_empty() {
                    self.unnamed.push((a, dl.name.clone()));
                }
            }
        }
        let _ = dl.class_name;
        self.last_dev = Some(a);
        a
    }

    fn line(&mut self, raw: &str, no: usize) -> Result<(), (usize, String)> {
        let t = raw.trim();
        if t.is_empty() {
            return Ok(());
        }
        if let Some(h) = t.strip_prefix('#') {
            let h = h.trim();
            if let Some(s) = h.strip_prefix("source:") {
                self.provenance.push(format!("source: {}", s.trim()));
            } else if h.starts_with("----") && h.contains("companion") {
                self.section += 1;
                self.cur_group = None;
                self.last_dev = None;
                self.sysfs_dev = None;
            } else if h.starts_with("###") {
                // `### Group N ###`: a repeat of the groups; members merge as facts.
                self.cur_group = None;
            }
            return Ok(());
        }
        if let Some(rest) = t.strip_prefix("$ sysfs attributes of ") {
            self.sysfs_dev = parse_bdf(rest.trim());
            self.cur_group = None;
            return Ok(());
        }
        if t.starts_with('$') {
            self.sysfs_dev = None;
            self.cur_group = None;
            return Ok(());
        }
        if let Some(a) = self.sysfs_dev {
            return {
                self.sysfs_attr(a, t);
                Ok(())
            };
        }
        // lspci -nnvmm records: `Field:<TAB>value`, a record per `Slot:`.
        if let Some((k, v)) = t.split_once(':') {
            let known = [
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
            if known.contains(&k) && (k == "Slot" || !self.vmm.is_empty()) {
                if k == "Slot" {
                    self.flush_vmm();
                }
                self.vmm.push((k.to_string(), v.trim().to_string()));
                return Ok(());
            }
        }
        self.flush_vmm();
        // dmesg: `pci 0000:00:01.0: Adding to iommu group 0`
        if let Some(i) = t.find(": Adding to iommu group ") {
            let bdf = t[..i].rsplit(' ').next().unwrap_or("");
            let digits = t[i + 24..].trim();
            let g = if !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit()) {
                Some(parse_group(digits).map_err(|e| (no, e))?)
            } else {
                None
            };
            if let (Some(a), Some(g)) = (parse_bdf(bdf), g) {
                if self.in_group_section() {
                    self.devices.entry(a).or_insert_with(|| blank(a));
                    self.add_member(g, GroupMember::Pci(a));
                }
            }
            return Ok(());
        }
        // find /sys/kernel/iommu_groups -type l
        if let Some(rest) = t.strip_prefix("/sys/kernel/iommu_groups/") {
            if let Some((g, tail)) = rest.split_once("/devices/") {
                if !g.is_empty() && g.bytes().all(|c| c.is_ascii_digit()) {
                    let g = parse_group(g).map_err(|e| (no, e))?;
                    // One name: `devices/../../../../etc/passwd` is not a member.
                    super::fake::check_name("group member", tail.trim()).map_err(|e| (no, e))?;
                    self.add_member(g, GroupMember::from_name(tail.trim()));
                }
            }
            return Ok(());
        }
        // Arch-wiki: `IOMMU Group N:` / `IOMMU group N BDF ...`
        if t.get(..12)
            .is_some_and(|p| p.eq_ignore_ascii_case("iommu group "))
        {
            if let Some((g, after)) = group_number(&t[12..]).map_err(|e| (no, e))? {
                self.cur_group = Some(g);
                if !after.is_empty() {
                    if let Some(dl) = parse_dev_line(after) {
                        let a = self.device(dl);
                        self.add_member(g, GroupMember::Pci(a));
                    }
                }
            }
            return Ok(());
        }
        // r15ch13: `Group N:\t[vvvv:dddd] [R] BDF  class  name`
        if let Some(rest) = t.strip_prefix("Group ") {
            if let Some((g, after)) = group_number(rest).map_err(|e| (no, e))? {
                self.cur_group = Some(g);
                self.r15_device(g, after);
                return Ok(());
            }
        }
        if let Some(rest) = t.strip_prefix("USB:") {
            self.usb_row(rest.trim());
            return Ok(());
        }
        if t.starts_with('[') && last_ids(t).map(|x| x.0) == Some(0) {
            if let Some(g) = self.cur_group {
                self.r15_device(g, t);
            }
            return Ok(());
        }
        // lspci -k detail lines.
        if let Some(rest) = t.strip_prefix("Subsystem:") {
            if let (Some(a), Some((_, v, d))) = (self.last_dev, last_ids(rest)) {
                if let Some(dev) = self.devices.get_mut(&a) {
                    dev.subsystem_vendor_id = Some(format!("0x{v:04x}"));
                    dev.subsystem_device_id = Some(format!("0x{d:04x}"));
                }
            }
            return Ok(());
        }
        if let Some(rest) = t.strip_prefix("Kernel driver in use:") {
            if let Some(a) = self.last_dev {
                if let Some(dev) = self.devices.get_mut(&a) {
                    dev.driver = Some(rest.trim().to_string());
                    self.saw_drivers = true;
                }
            }
            return Ok(());
        }
        if t.starts_with("Kernel modules:") || t.starts_with("DeviceName:") {
            return Ok(());
        }
        // sysfs links: `... NAME -> ../../devices/pci0000:50/0000:50:01.2/0000:51:00.4`
        if let Some((lhs, target)) = t.split_once(" -> ") {
            let name = lhs.split_whitespace().last().unwrap_or("");
            if let Some(a) = parse_sysfs_bdf(name) {
                if target.contains("devices/pci") {
                    let chain: Vec<PciAddress> =
                        path_bdfs(target).into_iter().filter(|x| *x != a).collect();
                    let dev = self.devices.entry(a).or_insert_with(|| blank(a));
                    dev.parents = chain;
                    self.known_parents.insert(a);
                }
            }
            return Ok(());
        }
        // Block and net links printed by readlink.
        if t.contains("devices/pci") {
            let bdfs = path_bdfs(t);
            if let Some(a) = bdfs.last().copied() {
                if let Some(i) = t.rfind("/block/") {
                    let n = t[i + 7..].split('/').next_back().unwrap_or("").to_string();
                    self.block_links.push((n, a));
                } else if let Some(i) = t.rfind("/net/") {
                    let n = t[i + 5..].split('/').next().unwrap_or("").to_string();
                    self.net_links.push((n, a));
                }
            }
            return Ok(());
        }
        if t.starts_with("/dev/") && !t.contains(char::is_whitespace) {
            self.root_source = Some(t.to_string());
            return Ok(());
        }
        if let Some(rest) = t.strip_prefix("default via ") {
            let f: Vec<&str> = rest.split_whitespace().collect();
            if let Some(i) = f.iter().position(|w| *w == "dev") {
                self.default_iface = f.get(i + 1).map(|s| s.to_string());
            }
            return Ok(());
        }
        // lspci lines, possibly under a group header.
        if let Some(dl) = parse_dev_line(t) {
            let a = self.device(dl);
            // Members of a group header are indented; an unindented lspci
            // line starts a plain `lspci` paste.
            match self.cur_group {
                Some(g) if raw.starts_with(char::is_whitespace) => {
                    self.add_member(g, GroupMember::Pci(a))
                }
                _ => self.cur_group = None,
            }
            return Ok(());
        }
        // A bare non-PCI member under a group header (an mdev UUID).
        if let Some(g) = self.cur_group {
            if !t.contains(char::is_whitespace) && looks_like_member(t) {
                self.add_member(g, GroupMember::Other(t.to_string()));
            }
        }
        Ok(())
    }

    /// Turn the pending `lspci -vmm` record into a device.
    fn flush_vmm(&mut self) {
        let rec = std::mem::take(&mut self.vmm);
        let get = |k: &str| rec.iter().find(|(f, _)| f == k).map(|(_, v)| v.as_str());
        let Some(a) = get("Slot").and_then(parse_bdf) else {
            return;
        };
        // `Name [1022]` / `Host bridge [0600]`: the code in the last brackets.
        let code = |v: Option<&str>| -> (String, Option<u16>) {
            let v = v.unwrap_or("");
            match v.rfind(" [") {
                Some(i) if v.ends_with(']') => (v[..i].to_string(), hex4(&v[i + 2..v.len() - 1])),
                _ => (v.to_string(), None),
            }
        };
        let (class_name, class16) = code(get("Class"));
        let (vname, vid) = code(get("Vendor"));
        let (dname, did) = code(get("Device"));
        let a = self.device(DevLine {
            addr: a,
            class16: class16.or_else(|| class_from_name(&class_name)),
            class_name,
            name: format!("{vname} {dname}").trim().to_string(),
            ids: vid.zip(did),
            rev: get("Rev").and_then(|r| u8::from_str_radix(r, 16).ok()),
            prog_if: get("ProgIf").and_then(|r| u8::from_str_radix(r, 16).ok()),
        });
        let (_, sv) = code(get("SVendor"));
        let (_, sd) = code(get("SDevice"));
        let drv = get("Driver").map(str::to_string);
        let group = get("IOMMUGroup").and_then(|g| g.parse::<u32>().ok());
        if let Some(d) = self.devices.get_mut(&a) {
            if let (Some(sv), Some(sd)) = (sv, sd) {
                d.subsystem_vendor_id = Some(format!("0x{sv:04x}"));
                d.subsystem_device_id = Some(format!("0x{sd:04x}"));
            }
            if drv.is_some() {
                d.driver = drv;
                self.saw_drivers = true;
            }
        }
        if let Some(g) = group {
            self.add_member(g, GroupMember::Pci(a));
        }
    }

    fn r15_device(&mut self, g: u32, after: &str) {
        let Some((_, v, d)) = last_ids(after.get(..11).unwrap_or("")) else {
            return;
        };
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
        let Some(a) = cols.first().and_then(|b| parse_bdf(b)) else {
            return;
        };
        let class_name = cols.get(1).copied().unwrap_or("");
        let name = cols.get(2).copied().unwrap_or("").to_string();
        let class16 = class_from_name(class_name);
        let a = self.device(DevLine {
            addr: a,
            class16,
            class_name: class_name.to_string(),
            name,
            ids: Some((v, d)),
            rev: None,
            prog_if: None,
        });
        if let Some(dev) = self.devices.get_mut(&a) {
            // `[R]` means the `reset` file exists; its absence is not
            // proof of no reset in this script's output, so keep None.
            if reset {
                dev.reset = Some(true);
            }
        }
        self.add_member(g, GroupMember::Pci(a));
    }

    fn usb_row(&mut self, rest: &str) {
        let Some(ctrl) = self.last_dev else { return };
        let Some((_, v, p)) = last_ids(rest.get(..11).unwrap_or("")) else {
            return;
        };
        let f: Vec<&str> = rest[11..].split_whitespace().collect();
        // Bus BBB Device DDD name...
        if f.len() < 4 || f[0] != "Bus" || f[2] != "Device" {
            return;
        }
        let (Ok(bus), Ok(dev)) = (f[1].parse::<u32>(), f[3].parse::<u32>()) else {
            return;
        };
        let name = f[4..].join(" ");
        let b = self.usb.entry(bus).or_insert(UsbBus {
            bus,
            controller: Some(ctrl),
            devices: Vec::new(),
        });
        if dev == 1 && v == 0x1d6b {
            return; // the root hub is the bus itself
        }
        b.devices.push(UsbDevice {
            bus,
            device: dev,
            vendor_id: format!("{v:04x}"),
            product_id: format!("{p:04x}"),
            name: if name.is_empty() { None } else { Some(name) },
        });
    }

    fn sysfs_attr(&mut self, a: PciAddress, t: &str) {
        if t.starts_with("iommu_group: absent") {
            self.no_group_evidence = true;
        }
        let dev = self.devices.entry(a).or_insert_with(|| blank(a));
        if let Some(target) = t.strip_prefix("driver -> ") {
            dev.driver = target.rsplit('/').next().map(str::to_string);
            self.saw_drivers = true;
            return;
        }
        match t {
            "reset_method: absent" => dev.reset_methods = Some(Vec::new()),
            "reset: absent" => dev.reset = Some(false),
            "boot_vga: absent" => dev.boot_vga = None,
            "sriov_totalvfs: absent" | "sriov_numvfs: absent" => {}
            _ => {}
        }
        let Some((k, v)) = t.split_once('=') else {
            return;
        };
        let v = v.trim().to_string();
        match k {
            "vendor" => dev.vendor_id = v,
            "device" => dev.device_id = v,
            "subsystem_vendor" => dev.subsystem_vendor_id = Some(v),
            "subsystem_device" => dev.subsystem_device_id = Some(v),
            "class" => dev.class = v,
            "revision" => dev.revision = Some(v),
            "numa_node" => dev.numa_node = v.parse().ok(),
            "reset_method" => {
                dev.reset_methods = Some(v.split_whitespace().map(str::to_string).collect())
            }
            "boot_vga" => dev.boot_vga = Some(v == "1"),
            _ => {}
        }
    }

    fn finish(mut self, source: &str) -> Result<Host, (usize, String)> {
        self.flush_vmm();
        // Ids from names.
        for (a, name) in std::mem::take(&mut self.unnamed) {
            let ids = self.names.get(&name).copied().or_else(|| {
                KNOWN_NAMES
                    .iter()
                    .find(|(n, _, _)| *n == name)
                    .map(|(_, v, d)| (*v, *d))
            });
            if let (Some((v, d)), Some(dev)) = (ids, self.devices.get_mut(&a)) {
                if dev.vendor_id.is_empty() {
                    dev.vendor_id = format!("0x{v:04x}");
                    dev.device_id = format!("0x{d:04x}");
                }
            }
        }
        // Drop entries that never got ids or a class (a sysfs link to a
        // device the paste does not describe).
        let incomplete: Vec<PciAddress> = self
            .devices
            .values()
            .filter(|d| d.vendor_id.is_empty() || d.class.is_empty())
            .map(|d| d.address)
            .collect();
        if self.devices.len() == incomplete.len() && self.groups.is_empty() {
            return Err((
                0,
                "no PCI devices or IOMMU groups found: this does not look like an IOMMU group listing or lspci output".into(),
            ));
        }
        for a in incomplete {
            if let Some(d) = self.devices.get_mut(&a) {
                if d.vendor_id.is_empty() {
                    d.vendor_id = "0xffff".into();
                    d.device_id = "0xffff".into();
                }
                if d.class.is_empty() {
                    d.class = "0xff0000".into();
                }
            }
        }
        for d in self.devices.values_mut() {
            if d.header_type.is_none() {
                d.header_type = Some(header_from_class(d.class16()));
            }
        }
        for v in self.groups.values_mut() {
            v.sort();
        }
        let iommu = if !self.groups.is_empty() {
            IommuState::Enabled
        } else if self.no_group_evidence {
            IommuState::Disabled
        } else {
            IommuState::Unknown
        };
        let mut host = Host {
            source: source.to_string(),
            provenance: self.provenance.clone(),
            iommu,
            devices: std::mem::take(&mut self.devices),
            groups: std::mem::take(&mut self.groups),
            usb: std::mem::take(&mut self.usb).into_values().collect(),
            domains: Vec::new(),
            facts: Default::default(),
            invocation: None,
        };
        host.link_groups();
        infer_parents(&mut host, &self.known_parents);
        self.mark_critical(&mut host);
        host.mark_intrinsic_critical();
        // Names become paths in fake trees: a driver `../../etc` is an error.
        super::fake::check_names(&host).map_err(|e| (0, e))?;
        Ok(host)
    }

    /// Root filesystem and default route, only where the paste shows them
    /// (its `findmnt`/block links, its `ip route` and net links): those are
    /// measured by the host that printed them. Nothing else is inferred: a
    /// listing that does not show them leaves them unknown, and the plan says
    /// `unverified` for every function that could be them.
    fn mark_critical(&self, host: &mut Host) {
        let root = self.root_source.as_deref().and_then(|src| {
            let n = src.strip_prefix("/dev/")?;
            let disk = disk_of(n);
            self.block_links
                .iter()
                .find(|(b, _)| b == n || b == &disk)
                .map(|(_, a)| (*a, n.to_string()))
        });
        if let Some((a, block)) = root {
            if let Some(d) = host.devices.get_mut(&a) {
                d.critical
                    .push(Critical::RootFilesystem { block: Some(block) });
                host.facts.root_filesystem = Provenance::Measured;
            }
        }
        let nic = self.default_iface.as_deref().and_then(|i| {
            self.net_links
                .iter()
                .find(|(n, _)| n == i)
                .map(|(_, a)| (*a, i.to_string()))
        });
        if let Some((a, interface)) = nic {
            if let Some(d) = host.devices.get_mut(&a) {
                d.critical.push(Critical::DefaultRoute {
                    interface: Some(interface),
                });
                host.facts.default_route = Provenance::Measured;
            }
        }
        if self.saw_drivers {
            host.facts.drivers = Provenance::Measured;
        }
        // A raw sysfs dump shows `boot_vga` for VGA functions: measured when
        // it does for every one of them (and for at least one).
        let vga: Vec<&Device> = host
            .devices
            .values()
            .filter(|d| d.class16() == 0x0300)
            .collect();
        if !vga.is_empty() && vga.iter().all(|d| d.boot_vga.is_some()) {
            host.facts.boot_vga = Provenance::Measured;
        }
    }
}

/// A device known only by address so far (ids filled later or left 0xffff).
fn blank(a: PciAddress) -> Device {
    let mut d = Device::new(a, 0, 0, 0);
    d.vendor_id = String::new();
    d.device_id = String::new();
    d.class = String::new();
    d
}

fn looks_like_member(t: &str) -> bool {
    t.len() >= 8
        && t.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.:".contains(&c))
}

/// The whole disk of a block device name (`nvme0n1p2` → `nvme0n1`, `sda2` → `sda`).
pub fn disk_of(name: &str) -> String {
    if name.starts_with("nvme") || name.starts_with("mmcblk") {
        if let Some(i) = name.rfind('p') {
            if i > 0 && name[i + 1..].bytes().all(|c| c.is_ascii_digit()) && i + 1 < name.len() {
                return name[..i].to_string();
            }
        }
        return name.to_string();
    }
    name.trim_end_matches(|c: char| c.is_ascii_digit())
        .to_string()
}

/// systemd's predictable interface name for a PCI NIC.
pub fn predictable_name(d: &Device) -> String {
    let prefix = if d.class16() == 0x0280 { "wl" } else { "en" };
    let a = d.address;
    let mut s = String::from(prefix);
    if a.domain != 0 {
        s.push_str(&format!("P{}", a.domain));
    }
    s.push_str(&format!("p{}s{}", a.bus, a.slot));
    if a.function > 0 {
        s.push_str(&format!("f{}", a.function));
    }
    s
}

/// Infer every device's parent bridges (see the module doc).
fn infer_parents(host: &mut Host, known: &BTreeSet<PciAddress>) {
    // Occupied buses per domain.
    let mut occupied: BTreeMap<u32, BTreeSet<u8>> = BTreeMap::new();
    for a in host.devices.keys() {
        occupied.entry(a.domain).or_default().insert(a.bus);
    }
    let mut parent_of_bus: BTreeMap<(u32, u8), PciAddress> = BTreeMap::new();
    for (dom, buses) in &occupied {
        let lowest = *buses.iter().next().unwrap_or(&0);
        let mut roots: Vec<u8> = buses
            .iter()
            .copied()
            .filter(|b| {
                *b == lowest
                    || host
                        .devices
                        .get(&PciAddress::new(*dom, *b, 0, 0))
                        .map(|d| d.class16() == 0x0600)
                        .unwrap_or(false)
            })
            .collect();
        let mut assigned: BTreeSet<u8> = roots.iter().copied().collect();
        let mut i = 0;
        while i < roots.len() {
            let r = roots[i];
            let hi = roots
                .iter()
                .copied()
                .filter(|x| *x > r)
                .min()
                .map(|x| x - 1)
                .unwrap_or(0xff);
            let mut next = u16::from(r) + 1;
            walk(
                host,
                *dom,
                r,
                hi,
                0,
                buses,
                &mut assigned,
                &mut next,
                &mut parent_of_bus,
            );
            i += 1;
            if i == roots.len() {
                // Buses nobody claimed are root buses of their own.
                if let Some(b) = buses.iter().copied().find(|b| !assigned.contains(b)) {
                    roots.push(b);
                    assigned.insert(b);
                    roots.sort();
                    i = roots.iter().position(|x| *x == b).unwrap_or(i);
                }
            }
        }
    }
    let addrs: Vec<PciAddress> = host.devices.keys().copied().collect();
    for a in addrs {
        if known.contains(&a) {
            continue;
        }
        // A sibling on the same bus whose sysfs path the paste shows.
        if let Some(k) = known
            .range(
                PciAddress::new(a.domain, a.bus, 0, 0)
                    ..=PciAddress::new(a.domain, a.bus, 0xff, 0xff),
            )
            .next()
        {
            let chain = host
                .devices
                .get(k)
                .map(|d| d.parents.clone())
                .unwrap_or_default();
            if let Some(d) = host.devices.get_mut(&a) {
                d.parents = chain;
            }
            continue;
        }
        let mut chain = Vec::new();
        let mut bus = (a.domain, a.bus);
        while let Some(p) = parent_of_bus.get(&bus) {
            if chain.contains(p) || chain.len() > 32 {
                break;
            }
            chain.push(*p);
            bus = (p.domain, p.bus);
        }
        chain.reverse();
        if let Some(d) = host.devices.get_mut(&a) {
            d.parents = chain;
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn walk(
    host: &Host,
    dom: u32,
    bus: u8,
    hi: u8,
    depth: u32,
    occupied: &BTreeSet<u8>,
    assigned: &mut BTreeSet<u8>,
    next: &mut u16,
    parent_of_bus: &mut BTreeMap<(u32, u8), PciAddress>,
) {
    // The bus's own devices only (a range of the sorted map): scanning
    // every device per bus made 20,000 PCI domains take 48 s (issue 11).
    let bridges: Vec<&Device> = host
        .devices
        .range(PciAddress::new(dom, bus, 0, 0)..=PciAddress::new(dom, bus, 0xff, 0xff))
        .map(|(_, d)| d)
        .filter(|d| d.is_bridge())
        .collect();
    // Group hints: the lowest free bus > bus holding a member of the bridge's group.
    let hint = |d: &Device, assigned: &BTreeSet<u8>| -> Option<u8> {
        let g = d.iommu_group?;
        host.groups
            .get(&g)?
            .iter()
            .filter_map(|m| match m {
                GroupMember::Pci(a) if a.domain == dom && a.bus > bus && a.bus <= hi => Some(a.bus),
                _ => None,
            })
            .filter(|b| !assigned.contains(b))
            .min()
    };
    for (i, br) in bridges.iter().enumerate() {
        let own = hint(br, assigned);
        let others: BTreeSet<u8> = bridges[i + 1..]
            .iter()
            .filter_map(|b| hint(b, assigned))
            .filter(|b| Some(*b) != own)
            .collect();
        // No bus above `bus` up to `hi` (a bridge on the last bus of its
        // window): nothing is free. `range` panics on an empty range whose
        // start is past its end (issue 11: 3% of fuzzed listings).
        let free: Vec<u8> = if bus < hi {
            occupied
                .range(bus + 1..=hi)
                .copied()
                .filter(|b| !assigned.contains(b) && u16::from(*b) >= *next)
                .collect()
        } else {
            Vec::new()
        };
        let sec = if let Some(h) = own {
            Some(h)
        } else if *next <= u16::from(hi)
            && occupied.contains(&(*next as u8))
            && !assigned.contains(&(*next as u8))
            && !others.contains(&(*next as u8))
        {
            Some(*next as u8)
        } else {
            let remaining = bridges.len() - i;
            let cand = free.iter().copied().find(|b| !others.contains(b));
            // Only on a root bus: below it, a later sibling of an ancestor
            // may own the far bus.
            if depth == 0 && free.len() >= remaining {
                cand
            } else {
                None
            }
        };
        match sec {
            Some(s) => {
                assigned.insert(s);
                parent_of_bus.insert((dom, s), br.address);
                *next = u16::from(s) + 1;
                let sub_hi = others
                    .iter()
                    .copied()
                    .filter(|b| *b > s)
                    .min()
                    .map(|b| b - 1)
                    .unwrap_or(hi);
                walk(
                    host,
                    dom,
                    s,
                    sub_hi,
                    depth + 1,
                    occupied,
                    assigned,
                    next,
                    parent_of_bus,
                );
            }
            None => {
                // An empty slot still takes a bus number.
                *next += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn names() {
        assert_eq!(disk_of("nvme0n1p2"), "nvme0n1");
        assert_eq!(disk_of("sda2"), "sda");
        assert_eq!(disk_of("vda"), "vda");
        let d = Device::new(PciAddress::new(0, 0x2a, 0, 1), 0x10ec, 0x8125, 0x020000);
        assert_eq!(predictable_name(&d), "enp42s0f1");
        assert_eq!(class_from_name("PCI bridge"), Some(0x0604));
        assert_eq!(class_from_name("Serial bus controller"), Some(0x0c80));
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
