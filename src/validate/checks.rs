//! The rules. Per file: well-formedness, the shape of every PCI hostdev
//! (`<hostdev>` and `<interface type='hostdev'>`, which libvirt folds into
//! one list), numbers as libvirt's `strtoul(…, 0)` reads them, duplicates
//! and guest-address clashes. Across files: one device (or one IOMMU group)
//! in several domains. Against a host: [`crate::plan::plan`] per domain, its
//! blockers and warnings mapped to stable codes.
//!
//! A stream of hostdev elements (what `virt-pci snippet` prints, several
//! roots) is not a well-formed document; it is parsed once inside a wrapper
//! element inserted before the first element, and every position is mapped
//! back to the file, so line, column and caret stay exact.

use super::{line_col, Diagnostic, Options, Related, Severity, Source};
use crate::address::{parse_libvirt_number, NumberForm, PciAddress};
use crate::domain::{child, is_el};
use crate::host::Host;
use crate::plan::{plan, Code, PlanOptions, Role};
use roxmltree::Node;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;

/// The wrapper around a multi-root snippet stream.
const WRAP: &str = "virt-pci-snippets";

/// What a file turned out to be.
pub enum FileKind {
    /// A domain or a snippet stream: its PCI hostdevs, for cross checks.
    Unit(Unit),
    /// Well-formed XML of another kind (a network, a host interface, …):
    /// not checked. Holds the root element's name, for the summary.
    Skipped(String),
    /// Not readable or not well-formed (already reported).
    Broken,
}

/// A domain (or snippet file) and the host devices it uses.
#[derive(Clone, Debug)]
pub struct Unit {
    /// Index into the sources.
    pub file: usize,
    /// `<name>` of a domain; `None` for snippets.
    pub name: Option<String>,
    pub is_domain: bool,
    pub hostdevs: Vec<UnitHostdev>,
}

/// A PCI host device as libvirt reads it, with where its `<address>` is.
#[derive(Clone, Debug)]
pub struct UnitHostdev {
    pub address: PciAddress,
    pub range: Range<usize>,
}

impl Unit {
    fn label(&self, src: &Source) -> String {
        match &self.name {
            Some(n) => format!("domain '{n}' ({})", src.path),
            None => src.path.clone(),
        }
    }
}

/// Positions in the parsed text (maybe wrapped) → positions in the file.
#[derive(Clone, Copy)]
struct OffsetMap {
    insert_at: usize,
    shift: usize,
    len: usize,
}

impl OffsetMap {
    fn pos(&self, p: usize) -> usize {
        let p = if p >= self.insert_at + self.shift {
            p - self.shift
        } else if p >= self.insert_at {
            self.insert_at
        } else {
            p
        };
        p.min(self.len)
    }
    fn range(&self, r: Range<usize>) -> Range<usize> {
        self.pos(r.start)..self.pos(r.end)
    }
}

struct Cx<'a> {
    src: &'a Source,
    map: OffsetMap,
    out: &'a mut Vec<Diagnostic>,
}

impl Cx<'_> {
    fn push(
        &mut self,
        code: &'static str,
        severity: Severity,
        parsed: Range<usize>,
        message: String,
        label: Option<String>,
        help: Option<String>,
    ) -> &mut Diagnostic {
        let r = self.map.range(parsed);
        push_at(self.src, self.out, code, severity, r, message, label, help)
    }

    fn related(&self, parsed: Range<usize>, label: String) -> Related {
        let r = self.map.range(parsed);
        // Line and column are filled in by `validate` from one index per
        // file (a scan per diagnostic was quadratic).
        let (line, column) = (0, 0);
        Related {
            line,
            column,
            byte_start: r.start,
            byte_end: r.end,
            label,
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn push_at<'o>(
    src: &Source,
    out: &'o mut Vec<Diagnostic>,
    code: &'static str,
    severity: Severity,
    r: Range<usize>,
    message: String,
    label: Option<String>,
    help: Option<String>,
) -> &'o mut Diagnostic {
    // Filled in by `validate` from one index per file.
    let (line, column) = (0, 0);
    out.push(Diagnostic {
        code,
        severity,
        message,
        file: src.path.clone(),
        line,
        column,
        byte_start: r.start,
        byte_end: r.end,
        label,
        help,
        related: Vec::new(),
    });
    let last = out.len() - 1;
    &mut out[last]
}

/// The name and byte offset of the first element, skipping the XML
/// declaration, processing instructions, comments and a byte-order mark.
fn first_element(text: &str) -> Option<(&str, usize)> {
    let mut i = 0;
    let b = text.as_bytes();
    if text.starts_with('\u{feff}') {
        i = 3;
    }
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let rest = &text[i..];
        if rest.starts_with("<?") {
            i += rest.find("?>")? + 2;
        } else if rest.starts_with("<!--") {
            i += rest.find("-->")? + 3;
        } else if rest.starts_with("<!DOCTYPE") {
            // Skip it (an internal subset ends with `]>`) to see the root.
            let end = match (rest.find('['), rest.find('>')) {
                (Some(b), Some(g)) if b < g => rest.find("]>")? + 2,
                (_, Some(g)) => g + 1,
                _ => return None,
            };
            i += end;
        } else if rest.starts_with("<!") {
            return None;
        } else if let Some(r) = rest.strip_prefix('<') {
            let end = r
                .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
                .unwrap_or(r.len());
            return Some((&r[..end], i));
        } else {
            return None;
        }
    }
}

/// The start-tag name of `n` (for a caret under `hostdev` in `<hostdev`).
fn tag_span(n: Node<'_, '_>) -> Range<usize> {
    let s = n.range().start + 1;
    s..s + n.tag_name().name().len()
}

fn attr_span(n: Node<'_, '_>, name: &str) -> Option<Range<usize>> {
    n.attribute_node(name).map(|a| a.range_value())
}

fn is_pci_interface(n: Node<'_, '_>) -> bool {
    is_el(n, "interface") && n.attribute("type") == Some("hostdev")
}

/// Strip roxmltree's trailing ` at 3:7` (the position is printed separately).
fn xml_message(m: &str) -> String {
    let m = match m.rsplit_once(" at ") {
        Some((head, pos))
            if pos
                .split(':')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) =>
        {
            head
        }
        _ => m,
    };
    m.replace(&format!("'{WRAP}'"), "the end of the file")
}

/// Check one file: well-formedness and everything inside it.
pub fn check_file(index: usize, src: &Source, out: &mut Vec<Diagnostic>) -> FileKind {
    // Decide by parsing, never by a glance at the first tag: an empty file,
    // leading junk, an unterminated comment, a merge-conflict marker or a
    // truncated root tag is not well-formed, and a file a pre-commit hook
    // or CI trusts must fail then, not be skipped. Only well-formed XML of
    // another kind (a network, capabilities, …) is skipped.
    let first = first_element(&src.text);
    let wrapped;
    let (text, map) = match first {
        Some((name, at)) if name == "hostdev" || name == "interface" => {
            let open = format!("<{WRAP}>");
            wrapped = format!("{}{open}{}</{WRAP}>", &src.text[..at], &src.text[at..]);
            (
                wrapped.as_str(),
                OffsetMap {
                    insert_at: at,
                    shift: open.len(),
                    len: src.text.len(),
                },
            )
        }
        _ => (
            src.text.as_str(),
            OffsetMap {
                insert_at: usize::MAX,
                shift: 0,
                len: src.text.len(),
            },
        ),
    };
    let mut cx = Cx { src, map, out };
    let doc = match crate::domain::parse(text) {
        Ok(d) => d,
        Err(e) => {
            if e.message.contains("DTD") {
                // Well-formed, but entity expansion is not something a
                // validator run on untrusted pull requests should do.
                let at = src.text.find("<!DOCTYPE").unwrap_or(0);
                push_at(
                    src,
                    cx.out,
                    "VP001",
                    Severity::Error,
                    at..at + "<!DOCTYPE".len().min(src.text.len() - at),
                    "DOCTYPE declarations are not read (libvirt writes none)".into(),
                    None,
                    Some("remove the <!DOCTYPE …> line".into()),
                );
                return FileKind::Broken;
            }
            let at = offset_of(text, e.line, e.column);
            let mut at = map.pos(at);
            if at >= src.text.len() {
                // The file ended too early: point just after its last
                // character, not at an empty line after the final newline.
                at = src.text.trim_end().len();
            }
            let end = src.text[at..]
                .chars()
                .next()
                .map_or(at, |c| at + c.len_utf8());
            push_at(
                src,
                cx.out,
                "VP001",
                Severity::Error,
                at..end,
                format!("not well-formed XML: {}", xml_message(&e.message)),
                None,
                None,
            );
            return FileKind::Broken;
        }
    };
    let root = doc.root_element();
    let root_name = || match root.tag_name().namespace() {
        Some(ns) => format!("<{} xmlns='{ns}'>", root.tag_name().name()),
        None => format!("<{}>", root.tag_name().name()),
    };
    // Every `<devices>` (libvirt merges them); only libvirt's elements (no
    // namespace), as libvirt's XPath sees them.
    let (devices, name, s390): (Vec<Node<'_, '_>>, _, _) = if is_el(root, "domain") {
        let s390 = child(root, "os")
            .and_then(|os| child(os, "type"))
            .and_then(|t| t.attribute("arch"))
            .is_some_and(|a| a.starts_with("s390"));
        (
            crate::domain::devices_elements(&doc).collect(),
            crate::domain::domain_name(&doc),
            s390,
        )
    } else if root.has_tag_name(WRAP) {
        if !root
            .children()
            .any(|c| is_el(c, "hostdev") || is_pci_interface(c))
        {
            return FileKind::Skipped("hostdev elements of no kind virt-pci checks".into());
        }
        (vec![root], None, false)
    } else {
        return FileKind::Skipped(root_name());
    };

    let mut hostdevs: Vec<UnitHostdev> = Vec::new();
    let mut first_seen: HashMap<PciAddress, Range<usize>> = HashMap::new();
    for n in devices
        .iter()
        .flat_map(|d| d.children().filter(|n| n.is_element()))
    {
        let found = if is_el(n, "hostdev") {
            check_hostdev(&mut cx, n, s390)
        } else if is_pci_interface(n) {
            check_interface(&mut cx, n, s390)
        } else {
            None
        };
        let Some((a, parsed)) = found else { continue };
        if let Some(prev) = first_seen.get(&a) {
            let rel = cx.related(prev.clone(), format!("{a} first assigned here"));
            let what = if name.is_some() { "domain" } else { "file" };
            cx.push(
                "VP030",
                Severity::Error,
                parsed.clone(),
                format!("host device {a} is assigned twice in this {what}"),
                Some("the same source address again".into()),
                Some("remove one of them; libvirt refuses the domain (\"Hostdev already exists in the domain configuration\")".into()),
            )
            .related
            .push(rel);
        } else {
            first_seen.insert(a, parsed.clone());
        }
        hostdevs.push(UnitHostdev {
            address: a,
            range: map.range(parsed),
        });
    }
    for d in &devices {
        check_guest_addresses(&mut cx, *d);
    }
    if is_el(root, "domain") {
        check_guest_topology(&mut cx, &doc);
        check_consent(&mut cx, &doc);
    }
    FileKind::Unit(Unit {
        file: index,
        name,
        is_domain: is_el(root, "domain"),
        hostdevs,
    })
}

/// Consent entries (`crate::consent`): a note each, so a review sees what
/// was forced; a warning for an entry the guard cannot use.
fn check_consent(cx: &mut Cx<'_>, doc: &roxmltree::Document<'_>) {
    for e in crate::consent::entries(doc) {
        let reason = e
            .reason
            .as_deref()
            .map_or("no reason given".to_string(), |r| format!("reason: {r}"));
        match e.problem() {
            None => {
                cx.push(
                    "VP060",
                    Severity::Note,
                    e.range.clone(),
                    format!(
                        "consent: {} may start despite rule `{}` ({reason})",
                        e.device_text, e.rule
                    ),
                    Some("virt-pci guard lets the start through".into()),
                    None,
                );
            }
            Some(p) => {
                cx.push(
                    "VP061",
                    Severity::Warning,
                    e.range.clone(),
                    format!("consent entry the guard cannot use: {p}"),
                    None,
                    Some("see `virt-pci guard --help` for the entry's form and the rules".into()),
                );
            }
        }
    }
}

/// Byte offset of a 1-based line and character column.
fn offset_of(text: &str, line: u32, column: u32) -> usize {
    let mut start = 0;
    for _ in 1..line {
        match text[start..].find('\n') {
            Some(i) => start += i + 1,
            None => return text.len(),
        }
    }
    let line_text = &text[start..];
    start
        + line_text
            .char_indices()
            .nth(column.saturating_sub(1) as usize)
            .map_or(line_text.len(), |(i, _)| i)
}

fn check_managed(cx: &mut Cx<'_>, n: Node<'_, '_>) {
    let Some(attr) = n.attribute_node("managed") else {
        return;
    };
    let v = attr.value();
    if v == "yes" || v == "no" {
        return;
    }
    let fix = match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "on" | "yes" | "y" | "enabled" => Some("yes"),
        "false" | "0" | "off" | "no" | "n" | "disabled" => Some("no"),
        _ => None,
    };
    let help = match fix {
        Some("yes") => "write managed='yes' (libvirt then detaches the device from its host driver at start and gives it back at shutdown)".to_string(),
        Some(_) => "write managed='no'".to_string(),
        None => "write managed='yes' (libvirt detaches the device at start) or managed='no' (detach it yourself, e.g. `virt-pci detach`)".to_string(),
    };
    cx.push(
        "VP012",
        Severity::Error,
        attr.range_value(),
        format!("managed='{v}' is not `yes` or `no`: libvirt silently reads it as managed='no'"),
        Some("libvirt reads this as `no`".into()),
        Some(help),
    );
}

const SOURCE_HELP: &str = "write the host device's address as libvirt does, e.g. <address domain='0x0000' bus='0x03' slot='0x00' function='0x0'/>; `virt-pci snippet DEVICE` prints the whole hostdev";

fn check_hostdev(
    cx: &mut Cx<'_>,
    n: Node<'_, '_>,
    s390: bool,
) -> Option<(PciAddress, Range<usize>)> {
    match n.attribute("mode").unwrap_or("subsystem") {
        "subsystem" => {}
        "capabilities" => return None,
        other => {
            let span = attr_span(n, "mode").unwrap_or_else(|| tag_span(n));
            cx.push(
                "VP010",
                Severity::Error,
                span,
                format!("unknown hostdev mode='{other}'"),
                None,
                Some("PCI passthrough uses mode='subsystem' (or leave mode out)".into()),
            );
            return None;
        }
    }
    match n.attribute("type") {
        Some("pci") => {}
        Some("usb" | "scsi" | "scsi_host" | "mdev") => {
            check_managed(cx, n);
            return None;
        }
        Some(other) => {
            let span = attr_span(n, "type").unwrap_or_else(|| tag_span(n));
            cx.push(
                "VP011",
                Severity::Error,
                span,
                format!("unknown hostdev type='{other}'"),
                None,
                Some("PCI passthrough uses type='pci' (others: usb, scsi, scsi_host, mdev)".into()),
            );
            return None;
        }
        None => {
            cx.push(
                "VP011",
                Severity::Error,
                tag_span(n),
                "hostdev has no `type`: libvirt rejects it (\"missing source address type\")"
                    .into(),
                None,
                Some("add type='pci' for a PCI device".into()),
            );
            return None;
        }
    }
    check_managed(cx, n);
    let addr = source_address_node(cx, n)?;
    check_source_address(cx, addr, s390)
}

fn check_interface(
    cx: &mut Cx<'_>,
    n: Node<'_, '_>,
    s390: bool,
) -> Option<(PciAddress, Range<usize>)> {
    check_managed(cx, n);
    let addr = source_address_node(cx, n)?;
    match addr.attribute("type") {
        Some("pci") => check_source_address(cx, addr, s390),
        Some(_) => None,
        None => {
            cx.push(
                "VP011",
                Severity::Error,
                tag_span(addr),
                "the source <address> of an <interface type='hostdev'> has no `type`: libvirt rejects it (\"missing source address type\")".into(),
                None,
                Some("add type='pci' to the <address>".into()),
            );
            None
        }
    }
}

fn source_address_node<'a, 'i>(cx: &mut Cx<'_>, n: Node<'a, 'i>) -> Option<Node<'a, 'i>> {
    let Some(src) = child(n, "source") else {
        cx.push(
            "VP013",
            Severity::Error,
            tag_span(n),
            format!(
                "PCI <{}> without <source>: libvirt rejects it (\"Missing <source> element in hostdev device\")",
                n.tag_name().name()
            ),
            None,
            Some(SOURCE_HELP.into()),
        );
        return None;
    };
    let Some(addr) = child(src, "address") else {
        cx.push(
            "VP013",
            Severity::Error,
            tag_span(src),
            "<source> has no <address>: libvirt stores the hostdev as 0000:00:00.0, the host bridge".into(),
            None,
            Some(SOURCE_HELP.into()),
        );
        return None;
    };
    Some(addr)
}

/// Field name, largest value libvirt accepts, hex digits libvirt writes.
const FIELDS: [(&str, u64, usize); 4] = [
    ("domain", u32::MAX as u64, 4),
    ("bus", 0xff, 2),
    ("slot", 0x1f, 2),
    ("function", 7, 1),
];

fn hex(v: u64, width: usize) -> String {
    format!("0x{v:0width$x}")
}

/// Read the four fields of an `<address>` as libvirt does, reporting every
/// field libvirt rejects or reads differently from what was meant.
/// `source`: a host address (VMD domains and lspci's hex matter there).
fn read_address_fields(cx: &mut Cx<'_>, addr: Node<'_, '_>, source: bool) -> Option<[u64; 4]> {
    let mut vals = [0u64; 4];
    let mut ok = true;
    for (i, (name, max, width)) in FIELDS.iter().enumerate() {
        let Some(attr) = addr.attribute_node(*name) else {
            continue;
        };
        let v = attr.value();
        let span = attr.range_value();
        let Some(n) = parse_libvirt_number(v) else {
            ok = false;
            let help = if !v.is_empty()
                && v.bytes().all(|b| b.is_ascii_digit())
                && v.starts_with('0')
            {
                let d = v.parse::<u64>().unwrap_or(0);
                format!(
                    "a leading 0 makes libvirt read octal, where 8 and 9 are not digits: write {name}='{}'",
                    hex(d, *width)
                )
            } else if !v.is_empty() && v.len() <= 8 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
                let h = u64::from_str_radix(v, 16).unwrap_or(0);
                format!(
                    "libvirt reads hex only with the 0x prefix: write {name}='{}'",
                    hex(h, *width)
                )
            } else {
                "write hex numbers with the 0x prefix, as libvirt does: domain='0x0000' bus='0x03' slot='0x00' function='0x0'".to_string()
            };
            cx.push(
                "VP020",
                Severity::Error,
                span,
                format!("libvirt cannot read {name}='{v}' as a number"),
                Some(
                    "libvirt reads numbers like C's strtoul: 0x… hex, 0… octal, else decimal"
                        .into(),
                ),
                Some(help),
            );
            continue;
        };
        if n.value > *max {
            ok = false;
            let range = if *name == "domain" {
                "0x00000000 to 0xffffffff".to_string()
            } else {
                format!("0 to {}", hex(*max, *width))
            };
            cx.push(
                "VP021",
                Severity::Error,
                span,
                format!(
                    "{name}='{v}' is out of range: a PCI {name} is {range} (libvirt: \"Invalid PCI address\")"
                ),
                None,
                Some("check the address with `lspci -D` or `virt-pci list`".into()),
            );
            continue;
        }
        vals[i] = n.value;
        if n.form == NumberForm::Octal {
            if let Ok(dec) = v.parse::<u64>() {
                if dec != n.value {
                    cx.push(
                        "VP023",
                        Severity::Error,
                        span.clone(),
                        format!(
                            "{name}='{v}' has a leading zero: libvirt reads it as octal, {} ({}), not {dec}",
                            n.value,
                            hex(n.value, *width)
                        ),
                        Some(format!("libvirt reads {}", hex(n.value, *width))),
                        Some(format!(
                            "write hex with 0x, as libvirt does: {name}='{}' for what libvirt reads now, {name}='{}' for decimal {dec}",
                            hex(n.value, *width),
                            hex(dec, *width)
                        )),
                    );
                }
            }
        }
        if source && *name == "domain" && n.value > 0xffff {
            cx.push(
                "VP022",
                Severity::Warning,
                span.clone(),
                format!(
                    "domain='{v}' is above 0xffff: only Intel VMD domains (10000 and up) look like this"
                ),
                None,
                Some("check the address with `virt-pci list`".into()),
            );
        }
        if source
            && (*name == "bus" || *name == "slot")
            && n.form == NumberForm::Decimal
            && n.value >= 10
        {
            cx.push(
                "VP024",
                Severity::Warning,
                span,
                format!(
                    "{name}='{v}' is decimal {v} ({}) to libvirt, but lspci prints {name} numbers in hex",
                    hex(n.value, *width)
                ),
                None,
                Some(format!(
                    "write {name}='{}' to keep decimal {v}, or {name}='0x{v}' if the number comes from lspci",
                    hex(n.value, *width)
                )),
            );
        }
    }
    ok.then_some(vals)
}

fn check_source_address(
    cx: &mut Cx<'_>,
    addr: Node<'_, '_>,
    s390: bool,
) -> Option<(PciAddress, Range<usize>)> {
    let span = addr.range();
    if FIELDS.iter().all(|(f, _, _)| addr.attribute(*f).is_none()) {
        cx.push(
            "VP014",
            Severity::Error,
            span,
            "empty source <address/>: libvirt reads it as 0000:00:00.0, the host bridge".into(),
            Some("no domain, bus, slot or function".into()),
            Some(SOURCE_HELP.into()),
        );
        return None;
    }
    let v = read_address_fields(cx, addr, true)?;
    let a = PciAddress::new(v[0] as u32, v[1] as u8, v[2] as u8, v[3] as u8);
    if a.domain == 0 && a.bus == 0 && a.slot == 0 && !s390 {
        cx.push(
            "VP015",
            Severity::Error,
            span,
            format!("source address {a} is the host bridge (root complex), which can never be passed through"),
            Some("libvirt treats an all-zero address as empty and does not check it".into()),
            Some("write the address of the device you mean; `virt-pci list` shows the devices".into()),
        );
        return None;
    }
    Some((a, span))
}

/// Every guest `<address type='pci'>` of the domain's devices: ranges, and
/// no two devices at one address.
fn check_guest_addresses(cx: &mut Cx<'_>, devices: Node<'_, '_>) {
    let mut seen: HashMap<[u64; 4], (Range<usize>, String)> = HashMap::new();
    for a in devices.descendants().filter(|d| {
        is_el(*d, "address")
            && d.attribute("type") == Some("pci")
            // A source address is the host's; a <console> is libvirt's
            // alias of the first <serial> and repeats its address.
            && !d
                .parent()
                .is_some_and(|p| is_el(p, "source") || is_el(p, "console"))
    }) {
        let Some(v) = read_address_fields(cx, a, false) else {
            continue;
        };
        if v[0] == 0 && v[1] == 0 && v[2] == 0 {
            // libvirt's "empty" address: it assigns one itself.
            continue;
        }
        let owner = a
            .parent()
            .filter(|p| p.is_element())
            .map(|p| match p.attribute("type") {
                Some(t) => format!("<{} type='{t}'>", p.tag_name().name()),
                None => format!("<{}>", p.tag_name().name()),
            })
            .unwrap_or_default();
        let addr = format!("{:04x}:{:02x}:{:02x}.{:x}", v[0], v[1], v[2], v[3]);
        if let Some((prev, prev_owner)) = seen.get(&v) {
            let rel = cx.related(prev.clone(), format!("{prev_owner} is here"));
            let msg =
                format!("guest PCI address {addr} of {owner} is already used by {prev_owner}");
            cx.push(
                "VP031",
                Severity::Error,
                a.range(),
                msg,
                Some("the same guest address again".into()),
                Some("give one of them another slot, or remove its <address> and let libvirt assign one (libvirt: \"Attempted double use of PCI Address\")".into()),
            )
            .related
            .push(rel);
        } else {
            seen.insert(v, (a.range(), owner));
        }
    }
}

/// The domain's guest side as libvirt's QEMU driver builds it at define
/// time ([`crate::guest`]): built-in functions of the machine (VP031),
/// duplicate boot orders (VP032), per-device boot next to `<os><boot dev>`
/// (VP033), guest addresses the bus cannot hold (VP034), duplicate user
/// aliases (VP035). Each message quotes libvirt's own error.
fn check_guest_topology(cx: &mut Cx<'_>, doc: &roxmltree::Document<'_>) {
    use crate::guest::{boot_order_value, slots_for_model, Machine, Topology};
    let t = Topology::read(doc);
    if !matches!(doc.root_element().attribute("type"), Some("kvm" | "qemu")) {
        // Checked against libvirt's QEMU driver only.
        return;
    }
    for o in t.used.iter().filter(|o| o.endpoint) {
        let Some(r) = o.range.clone() else { continue };
        let a = o.address;
        let own_place = |o: &crate::guest::Occupant| {
            // The IDE/USB controller at its own PIIX3 address is no clash.
            (a.function == 1 && o.what.starts_with("<controller type='ide' index='0'"))
                || (a.function == 2 && o.what.starts_with("<controller type='usb' index='0'"))
        };
        if let Some(b) = t.built_in(a).filter(|_| !own_place(o)) {
            cx.push(
                "VP031",
                Severity::Error,
                r.clone(),
                format!("guest PCI address {a} of {} is {b}", o.what),
                Some("always there on this machine type".into()),
                Some(format!("give the device another slot, or remove its <address> and let libvirt assign one (libvirt: \"Attempted double use of PCI Address {a}\")")),
            );
            continue;
        }
        if t.machine == Machine::Other {
            continue;
        }
        if a.domain != 0 {
            cx.push(
                "VP034",
                Severity::Error,
                r,
                format!("guest PCI address {a} of {} is in PCI domain 0x{:04x}; a QEMU guest has only domain 0", o.what, a.domain),
                None,
                Some(format!("write domain='0x0000' (libvirt: \"Invalid PCI address {a}. Only PCI domain 0 is available\")")),
            );
            continue;
        }
        let (model, missing) = match t.buses.get(&a.bus) {
            Some(b) => match b.model.as_deref() {
                Some(m) => (m.to_string(), false),
                None => continue,
            },
            None => match t.machine.default_bus_model() {
                Some(m) => (m.to_string(), true),
                None => continue,
            },
        };
        let what = if missing {
            format!(
                "guest bus 0x{:02x} has no <controller>, and the {model} libvirt adds for it",
                a.bus
            )
        } else {
            format!("guest bus 0x{:02x} is a {model} and", a.bus)
        };
        let (msg, libvirt) = match slots_for_model(&model) {
            None => (
                format!("{what} takes no endpoint device"),
                format!("The device at PCI address {a} cannot be plugged into the PCI controller with index='{}'", a.bus),
            ),
            Some((lo, _)) if a.slot < lo => (
                format!("{what} has no slot 0x{:02x} (slots start at 0x{lo:02x})", a.slot),
                format!("Invalid PCI address {a}. slot must be >= {lo}"),
            ),
            Some((_, hi)) if a.slot > hi => (
                format!(
                    "{what} has {}",
                    if hi == 0 { "only slot 0x00".to_string() } else { format!("slots up to 0x{hi:02x}") }
                ),
                format!("Invalid PCI address {a}. slot must be <= {hi}"),
            ),
            Some(_) => continue,
        };
        cx.push(
            "VP034",
            Severity::Error,
            r,
            format!("guest PCI address {a} of {}: {msg}", o.what),
            None,
            Some(format!(
                "put the device on a bus with a free slot (buses: {}), or remove its <address> and let libvirt assign one (libvirt: \"{libvirt}\")",
                t.describe_buses()
            )),
        );
    }
    let mut first: HashMap<u64, Range<usize>> = HashMap::new();
    for b in &t.boot_orders {
        let Some(v) = boot_order_value(&b.value) else {
            continue;
        };
        if let Some(prev) = first.get(&v) {
            let rel = cx.related(prev.clone(), format!("boot order {v} first given here"));
            cx.push(
                "VP032",
                Severity::Error,
                b.range.clone(),
                format!("boot order {v} of {} is already given to another device", b.owner),
                Some("the same boot order again".into()),
                Some(format!("give each device its own boot order (libvirt: \"boot order '{v}' used for more than one device\")")),
            )
            .related
            .push(rel);
        } else {
            first.insert(v, b.range.clone());
        }
    }
    if let (Some(os), Some(dev)) = (t.os_boot.first(), t.boot_orders.first()) {
        let rel = cx.related(os.range.clone(), "<os><boot dev> is here".into());
        cx.push(
            "VP033",
            Severity::Error,
            dev.range.clone(),
            format!(
                "{} has <boot order>, and the domain also boots with <os><boot dev='{}'/>",
                dev.owner, os.value
            ),
            Some("per-device boot order".into()),
            Some("use one style: remove the <os><boot dev=…/> lines, or every per-device <boot order> (libvirt: \"per-device boot elements cannot be used together with os/boot elements\")".into()),
        )
        .related
        .push(rel);
    }
    let mut seen: HashMap<&str, Range<usize>> = HashMap::new();
    for al in &t.aliases {
        if let Some(prev) = seen.get(al.value.as_str()) {
            let rel = cx.related(prev.clone(), format!("`{}` first used here", al.value));
            cx.push(
                "VP035",
                Severity::Error,
                al.range.clone(),
                format!(
                    "alias `{}` of {} is already used by another device",
                    al.value, al.owner
                ),
                Some("the same alias again".into()),
                Some(format!(
                    "give each device its own alias (libvirt: \"non unique alias detected: {}\")",
                    al.value
                )),
            )
            .related
            .push(rel);
        } else {
            seen.insert(&al.value, al.range.clone());
        }
    }
}

/// One device (or, with a host, one IOMMU group) in several domains.
pub fn check_shared(
    sources: &[Source],
    units: &[Unit],
    host: Option<&Host>,
    opts: Options,
    out: &mut Vec<Diagnostic>,
) {
    let sev = if opts.deny_shared {
        Severity::Error
    } else {
        Severity::Warning
    };
    let help = "only one of these domains can run at a time; if that is intended, this is fine (use --deny shared to make it an error)";
    let mut by_addr: BTreeMap<PciAddress, (usize, &UnitHostdev)> = BTreeMap::new();
    let mut by_group: BTreeMap<u32, (usize, &UnitHostdev)> = BTreeMap::new();
    for (ui, u) in units.iter().enumerate().filter(|(_, u)| u.is_domain) {
        let src = &sources[u.file];
        let mut reported: BTreeSet<PciAddress> = BTreeSet::new();
        for h in &u.hostdevs {
            match by_addr.get(&h.address) {
                Some((fu, fh)) if *fu != ui && !same_domain(&units[*fu], u) => {
                    if reported.insert(h.address) {
                        let (l, c) = line_col(&sources[units[*fu].file].text, fh.range.start);
                        push_at(
                            src,
                            out,
                            "VP040",
                            sev,
                            h.range.clone(),
                            format!(
                                "host device {} is also assigned to {} at line {l}:{c}",
                                h.address,
                                units[*fu].label(&sources[units[*fu].file])
                            ),
                            None,
                            Some(help.into()),
                        );
                    }
                    continue;
                }
                Some(_) => continue,
                None => {
                    by_addr.insert(h.address, (ui, h));
                }
            }
            // Only endpoints count: bridges in a group stay on the host.
            let Some(g) = host
                .and_then(|hs| hs.device(&h.address))
                .filter(|d| d.kind() == crate::host::Kind::Endpoint)
                .and_then(|d| d.iommu_group)
            else {
                continue;
            };
            match by_group.get(&g) {
                Some((fu, fh))
                    if *fu != ui && fh.address != h.address && !same_domain(&units[*fu], u) =>
                {
                    let (l, c) = line_col(&sources[units[*fu].file].text, fh.range.start);
                    push_at(
                        src,
                        out,
                        "VP041",
                        sev,
                        h.range.clone(),
                        format!(
                            "host device {} is in IOMMU group {g} with {}, which {} uses (line {l}:{c}): the group cannot be split between running domains",
                            h.address,
                            fh.address,
                            units[*fu].label(&sources[units[*fu].file])
                        ),
                        None,
                        Some(help.into()),
                    );
                }
                Some(_) => {}
                None => {
                    by_group.insert(g, (ui, h));
                }
            }
        }
    }
}

/// Two files that define the same domain name are two versions of one VM
/// (libvirt keeps one definition per name), not two VMs sharing a device.
fn same_domain(a: &Unit, b: &Unit) -> bool {
    a.name.is_some() && a.name == b.name
}

/// Map a plan finding code to ours.
fn plan_code(code: Code) -> Option<(&'static str, Severity)> {
    Some(match code {
        Code::NotPresent => ("VP050", Severity::Error),
        Code::NotEndpoint => ("VP052", Severity::Error),
        Code::HostBridge => ("VP053", Severity::Error),
        Code::HostCritical => ("VP054", Severity::Error),
        Code::NoReset => ("VP055", Severity::Warning),
        Code::HostBridgeInGroup
        | Code::NonPciMember
        | Code::NoIommu
        | Code::NoIommuGroup
        | Code::MissingMember => ("VP056", Severity::Error),
        Code::FactUnknown | Code::GroupUnknown | Code::GroupUnverified => {
            ("VP057", Severity::Error)
        }
        Code::InUse => ("VP058", Severity::Error),
        // Said by no VP code: a file check has no start to judge, and the
        // rest are advice or belong to actions (listed, so that a new code
        // is a decision here, not a silent omission).
        Code::GroupNotViable
        | Code::GroupSplit
        | Code::SiblingLeft
        | Code::UnrelatedDevice
        | Code::HostDriver
        | Code::SriovPfActiveVfs
        | Code::SplitCard
        | Code::AssignedElsewhere
        | Code::ResetMaySkip
        | Code::NothingToPrepare
        | Code::StateUnknown
        | Code::ReturnedUnreset
        | Code::ModuleUnknown
        | Code::NotPersisted
        | Code::InitramfsUnknown
        | Code::NoInitramfsRebuild => return None,
    })
}

/// VP024 asks whether a decimal bus or slot was meant as lspci's hex. A
/// host answers it: when the number as libvirt reads it (decimal) names a
/// function of the host and the hex reading does not — virt-install and
/// virt-xml write `bus="43"` for 0000:2b:00.0 — the warning is dropped.
fn drop_vp024_the_host_answers(src: &Source, u: &Unit, host: &Host, out: &mut Vec<Diagnostic>) {
    out.retain(|d| {
        if d.code != "VP024" || d.file != src.path {
            return true;
        }
        let Some(h) = u
            .hostdevs
            .iter()
            .find(|h| h.range.start <= d.byte_start && d.byte_end <= h.range.end)
        else {
            return true;
        };
        let (Some(field), Some(value)) = (
            d.message.split('=').next(),
            src.text.get(d.byte_start..d.byte_end),
        ) else {
            return true;
        };
        let Ok(hex) = u8::from_str_radix(value, 16) else {
            return true;
        };
        let mut other = h.address;
        match field {
            "bus" => other.bus = hex,
            "slot" if hex <= 0x1f => other.slot = hex,
            "slot" => return host.device(&h.address).is_none(),
            _ => return true,
        }
        !(host.device(&h.address).is_some() && host.device(&other).is_none())
    });
}

/// The domain's devices against the host, through the plan.
pub fn check_against_host(sources: &[Source], u: &Unit, host: &Host, out: &mut Vec<Diagnostic>) {
    if u.hostdevs.is_empty() {
        return;
    }
    let src = &sources[u.file];
    drop_vp024_the_host_answers(src, u, host, out);
    let requested: Vec<PciAddress> = u
        .hostdevs
        .iter()
        .map(|h| h.address)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let p = plan(
        host,
        &requested,
        PlanOptions {
            for_domain: u.name.clone(),
            ..PlanOptions::default()
        },
    );
    let group_of = |a: &PciAddress| host.device(a).and_then(|d| d.iommu_group);
    // Where to point for a finding about `addr`: its own hostdev, else a
    // hostdev of the same group, else the first.
    let locate = |addr: Option<&str>| -> Range<usize> {
        let a = addr.and_then(|s| PciAddress::parse(s).ok());
        if let Some(a) = a {
            if let Some(h) = u.hostdevs.iter().find(|h| h.address == a) {
                return h.range.clone();
            }
            let g = group_of(&a);
            if g.is_some() {
                if let Some(h) = u.hostdevs.iter().find(|h| group_of(&h.address) == g) {
                    return h.range.clone();
                }
            }
        }
        u.hostdevs[0].range.clone()
    };
    let mut seen: BTreeSet<(&'static str, String)> = BTreeSet::new();
    for f in p
        .blockers
        .iter()
        .chain(p.unverified.iter())
        .chain(p.warnings.iter())
    {
        let Some((code, sev)) = plan_code(f.code) else {
            continue;
        };
        if !seen.insert((code, f.message.clone())) {
            continue;
        }
        push_at(
            src,
            out,
            code,
            sev,
            locate(f.address.as_deref()),
            f.message.clone(),
            None,
            f.help.clone(),
        );
    }
    for g in &p.groups {
        // The kernel's rule (vfio_dev_viable, drivers/vfio/group.c): a
        // member on vfio-pci, pci-stub or no driver keeps the group viable
        // though the domain does not list it.
        let missing: Vec<&str> = g
            .members
            .iter()
            .filter(|m| m.role == Role::Travels && !m.requested)
            .filter(|m| {
                PciAddress::parse(&m.member)
                    .ok()
                    .and_then(|a| host.device(&a))
                    .is_none_or(|d| !host.keeps_group_viable(d))
            })
            .map(|m| m.member.as_str())
            .collect();
        if missing.is_empty() {
            continue;
        }
        let Some(gid) = g.group else { continue };
        let have: Vec<&str> = g
            .members
            .iter()
            .filter(|m| m.requested && m.role == Role::Travels)
            .map(|m| m.member.as_str())
            .collect();
        if have.is_empty() {
            // Only a bridge or the host bridge was named: VP052/VP053 say so.
            continue;
        }
        let first = have.first().copied();
        let (them, verb) = if missing.len() == 1 {
            (missing[0].to_string(), "is")
        } else {
            (missing.join(", "), "are")
        };
        push_at(
            src,
            out,
            "VP051",
            Severity::Error,
            locate(first),
            format!(
                "IOMMU group {gid} is not viable for this domain: {them} {verb} in the group with {} but not in the domain",
                have.join(", ")
            ),
            Some(format!("QEMU fails to start: \"group {gid} is not viable\"")),
            Some(format!(
                "pass every endpoint of the group: `{}`",
                host.suggest(&format!(
                    "add {} {}",
                    match src.path.strip_prefix("domain:") {
                        Some(name) => format!("--domain {}", crate::address::shell_word(name)),
                        None => format!("-i {}", crate::address::shell_word(&src.path)),
                    },
                    missing.join(" ")
                ))
            )),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::{validate, Inputs};

    fn codes(text: &str) -> Vec<&'static str> {
        let inputs = Inputs::from_sources(vec![Source {
            path: "t.xml".into(),
            text: text.into(),
        }]);
        validate(&inputs, None, Options::default())
            .diagnostics
            .iter()
            .map(|d| d.code)
            .collect()
    }

    fn dom(os: &str, devices: &str) -> String {
        format!(
            "<domain type='kvm'><name>t</name><os>{os}</os><devices>{devices}</devices></domain>"
        )
    }

    const HB: &str = "<hostdev mode='subsystem' type='pci'><source><address domain='0x0000' bus='0x00' slot='0x00' function='0x0'/></source></hostdev>";

    #[test]
    fn host_bridge_address_is_fine_on_s390x_zpci() {
        assert_eq!(codes(&dom("<type arch='x86_64'>hvm</type>", HB)), ["VP015"]);
        assert!(codes(&dom(
            "<type arch='s390x' machine='s390-ccw-virtio'>hvm</type>",
            HB
        ))
        .is_empty());
    }

    #[test]
    fn non_pci_hostdevs_are_only_checked_for_managed() {
        let usb = "<hostdev mode='subsystem' type='usb' managed='true'><source><vendor id='0x1234'/></source></hostdev>";
        assert_eq!(codes(&dom("", usb)), ["VP012"]);
        let caps = "<hostdev mode='capabilities' type='storage'><source><block>/dev/sda</block></source></hostdev>";
        assert!(codes(&dom("", caps)).is_empty());
        let usb_if = "<interface type='hostdev'><source><address type='usb' bus='1' device='2'/></source></interface>";
        assert!(codes(&dom("", usb_if)).is_empty());
        let no_type_if =
            "<interface type='hostdev'><source><address bus='0x03'/></source></interface>";
        assert_eq!(codes(&dom("", no_type_if)), ["VP011"]);
    }

    #[test]
    fn console_repeats_the_serial_address() {
        let a = "<address type='pci' domain='0x0000' bus='0x00' slot='0x04' function='0x0'/>";
        let x = dom(
            "",
            &format!("<serial type='dev'>{a}</serial><console type='dev'>{a}</console>"),
        );
        assert!(codes(&x).is_empty());
        let x = dom(
            "",
            &format!("<serial type='dev'>{a}</serial><watchdog model='i6300esb'>{a}</watchdog>"),
        );
        assert_eq!(codes(&x), ["VP031"]);
    }

    #[test]
    fn empty_guest_address_is_auto_assigned() {
        let x = dom(
            "",
            "<controller type='usb'><address type='pci'/></controller><controller type='sata'><address type='pci'/></controller>",
        );
        assert!(codes(&x).is_empty());
    }

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

    #[test]
    fn two_versions_of_one_domain_do_not_share() {
        let hd =
            "<hostdev mode='subsystem' type='pci'><source><address bus='0x03'/></source></hostdev>";
        let src = |path: &str, name: &str| Source {
            path: path.into(),
            text: format!("<domain><name>{name}</name><devices>{hd}</devices></domain>"),
        };
        let run = |a: Source, b: Source| -> Vec<&'static str> {
            validate(&Inputs::from_sources(vec![a, b]), None, Options::default())
                .diagnostics
                .iter()
                .map(|d| d.code)
                .collect()
        };
        assert!(run(src("a.xml", "vm"), src("b.xml", "vm")).is_empty());
        assert_eq!(run(src("a.xml", "vm1"), src("b.xml", "vm2")), ["VP040"]);
    }

    #[test]
    fn doctype_is_reported_not_skipped() {
        let x = "<?xml version='1.0'?>\n<!DOCTYPE domain [<!ENTITY a 'b'>]>\n<domain><name>x</name></domain>";
        assert_eq!(first_element(x).map(|f| f.0), Some("domain"));
        assert_eq!(codes(x), ["VP001"]);
    }

    #[test]
    fn only_well_formed_foreign_xml_is_skipped() {
        let src = |path: &str, text: &str| Source {
            path: path.into(),
            text: text.into(),
        };
        let inputs = Inputs::from_sources(vec![
            src("net.xml", "<network><name>default</name></network>"),
            src("iface.xml", "<interface type='ethernet' name='eth0'/>"),
        ]);
        let r = validate(&inputs, None, Options::default());
        assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
        assert_eq!(r.files_skipped, 2);
        assert_eq!(r.skipped[0].root, "<network>");
        assert!(
            r.summary()
                .contains("skipped: net.xml <network>, iface.xml"),
            "{}",
            r.summary()
        );
        // Not well-formed: an error, whatever the first tag looks like.
        let d = "<domain type='kvm'><name>vm</name><devices/></domain>\n";
        for broken in [
            String::new(),
            "   \n".to_string(),
            format!("junk{d}"),
            format!("<!-- unterminated\n{d}"),
            format!("<<<<<<< HEAD\n{d}=======\n{d}>>>>>>> other\n"),
            "<dom".to_string(),
            d[..d.len() / 2].to_string(),
            "<device/><device/>".to_string(),
        ] {
            assert_eq!(codes(&broken), ["VP001"], "{broken:?}");
        }
        // Every truncation of a domain before its end is an error.
        for cut in 0..d.len() - 1 {
            assert_eq!(codes(&d[..cut]), ["VP001"], "cut at {cut}: {:?}", &d[..cut]);
        }
    }

    #[test]
    fn every_devices_element_counts_and_foreign_elements_do_not() {
        let hd = |b: &str| {
            format!("<hostdev mode='subsystem' type='pci'><source><address bus='{b}'/></source></hostdev>")
        };
        // libvirt merges a second <devices>: the duplicate is found.
        let x = format!(
            "<domain><name>v</name><devices>{}</devices><devices>{}</devices></domain>",
            hd("0x2b"),
            hd("0x2b")
        );
        assert_eq!(codes(&x), ["VP030"]);
        // A foreign-namespace hostdev or devices is not libvirt's.
        let x = format!(
            "<domain><name>v</name><devices>{}<x:hostdev xmlns:x='urn:x' mode='subsystem' type='pci'><x:source><x:address bus='0x2b'/></x:source></x:hostdev></devices><x:devices xmlns:x='urn:x'>{}</x:devices></domain>",
            hd("0x2b"),
            hd("0x2b")
        );
        assert!(codes(&x).is_empty(), "{:?}", codes(&x));
        // strtoul: leading space and `+` read as libvirt does.
        let x = format!(
            "<domain><name>v</name><devices>{}{}</devices></domain>",
            hd(" 0x2b"),
            hd("+0x2b")
        );
        assert_eq!(codes(&x), ["VP030"]);
    }

    #[test]
    fn first_element_skips_the_prolog() {
        assert_eq!(
            first_element("\u{feff}<?xml version='1.0'?>\n<!-- x -->\n<hostdev mode='subsystem'/>"),
            Some(("hostdev", 36))
        );
        assert_eq!(first_element("<domain>"), Some(("domain", 0)));
        assert_eq!(first_element("text"), None);
    }

    #[test]
    fn offsets_map_back_through_the_wrapper() {
        let m = OffsetMap {
            insert_at: 5,
            shift: 10,
            len: 20,
        };
        assert_eq!(m.pos(3), 3);
        assert_eq!(m.pos(7), 5);
        assert_eq!(m.pos(15), 5);
        assert_eq!(m.pos(16), 6);
        assert_eq!(m.pos(100), 20);
    }

    #[test]
    fn offset_of_line_and_column() {
        let t = "ab\ncé\nx";
        assert_eq!(offset_of(t, 1, 1), 0);
        assert_eq!(offset_of(t, 2, 2), 4);
        assert_eq!(offset_of(t, 3, 1), 7);
        assert_eq!(offset_of(t, 9, 1), t.len());
    }

    #[test]
    fn xml_messages_lose_the_position_and_the_wrapper() {
        assert_eq!(
            xml_message("expected 'hostdev' tag, not 'virt-pci-snippets' at 3:1"),
            "expected 'hostdev' tag, not the end of the file"
        );
        assert_eq!(xml_message("unknown token at x"), "unknown token at x");
    }
}
