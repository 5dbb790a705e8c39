//! `<hostdev>` elements as libvirt writes them.
//!
//! One generator serves `snippet` (a lone element for `virsh attach-device`)
//! and `add` (elements spliced into a domain file). The element shape copies
//! libvirt's own formatter (`virDomainHostdevDefFormat`): `driver`, `source`,
//! then the device info (`boot`, `alias`, `rom`, guest `address`), with the
//! canonical number form `domain='0x0000' bus='0x03' slot='0x00'
//! function='0x0'` so what we write is what `virsh dumpxml` later shows. Only
//! the layout (indent, quote, line end) comes from a [`Style`], so an edit
//! looks like the file it lands in.
//!
//! Options are checked by [`HostdevOptions::check`] before anything is
//! rendered: every value we emit must pass libvirt's RelaxNG
//! (`schemas/hostdev.rng`) and its C parser (an alias without `ua-` is
//! silently dropped by libvirt, so we refuse it instead).

use crate::address::PciAddress;
use std::fmt;

/// The backend libvirt uses for the device (`<driver name='...'/>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    Vfio,
    Xen,
}

/// A guest PCI address (`<address type='pci' .../>` inside the hostdev).
pub type GuestAddress = PciAddress;

/// Everything a user may set on generated hostdevs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostdevOptions {
    /// `managed='yes'` (libvirt detaches and reattaches the device) or `no`.
    pub managed: bool,
    /// `<driver name=.../>`; `None` lets libvirt pick (VFIO on KVM hosts).
    pub driver: Option<Driver>,
    /// Xen's `<source writeFiltering='no'>` (qvm-pci's `permissive=true`).
    pub permissive: bool,
    /// `<rom bar='on|off'/>`, on every function.
    pub rom_bar: Option<bool>,
    /// `<rom file='...'/>`, on the primary function only.
    pub rom_file: Option<String>,
    /// `<boot order='N'/>`, on the primary function only.
    pub boot_order: Option<u32>,
    /// `<alias name='ua-...'/>`: the primary function gets the name, the
    /// others `NAME-1`, `NAME-2`, ... in output order.
    pub alias: Option<String>,
    /// The guest address of the first device; further physical devices take
    /// the following guest slots.
    pub guest_address: Option<GuestAddress>,
    /// Keep the functions of one physical device together on one guest slot
    /// (same function numbers), with `multifunction='on'` on function 0.
    pub guest_multifunction: bool,
    /// The function that gets `boot`, `rom file` and the bare alias
    /// (default: the first address rendered).
    pub primary: Option<PciAddress>,
}

impl Default for HostdevOptions {
    fn default() -> Self {
        HostdevOptions {
            managed: true,
            driver: None,
            permissive: false,
            rom_bar: None,
            rom_file: None,
            boot_order: None,
            alias: None,
            guest_address: None,
            guest_multifunction: false,
            primary: None,
        }
    }
}

/// Options that libvirt would reject or silently drop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionError {
    pub message: String,
    pub help: Option<String>,
}

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for OptionError {}

fn opt_err(message: String, help: &str) -> OptionError {
    OptionError {
        message,
        help: Some(help.to_string()),
    }
}

/// The layout of generated XML.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Style {
    /// Indentation of the `<hostdev>` line itself.
    pub base: String,
    /// One nesting level.
    pub unit: String,
    /// Attribute quote: `'` (libvirt) or `"`.
    pub quote: char,
    /// Line end: `\n` or `\r\n`.
    pub newline: String,
    /// Everything on one line, no indentation (files written that way).
    pub compact: bool,
}

impl Default for Style {
    /// libvirt's own: two spaces, single quotes, `\n`.
    fn default() -> Self {
        Style {
            base: String::new(),
            unit: "  ".into(),
            quote: '\'',
            newline: "\n".into(),
            compact: false,
        }
    }
}

/// The one XML escaper: a value for an attribute quoted with `quote` (also
/// right for element text, where the quote needs no escaping but may be).
/// `&`, `<`, `>` and the quote in use become entities; line ends and tabs
/// become character references, because an XML parser normalises a literal
/// one in an attribute to a space (XML 1.0 §3.3.3), so the value libvirt
/// reads back would differ. For text shown on a terminal, see
/// [`crate::text`] instead.
pub(crate) fn escape_attr(v: &str, quote: char) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '&' => s.push_str("&amp;"),
            '<' => s.push_str("&lt;"),
            '>' => s.push_str("&gt;"),
            '\'' if quote == '\'' => s.push_str("&apos;"),
            '"' if quote == '"' => s.push_str("&quot;"),
            '\n' => s.push_str("&#10;"),
            '\r' => s.push_str("&#13;"),
            '\t' => s.push_str("&#9;"),
            c => s.push(c),
        }
    }
    s
}

/// One hostdev's guest address and whether it carries `multifunction='on'`.
fn guest_addresses(addrs: &[PciAddress], opts: &HostdevOptions) -> Vec<Option<(PciAddress, bool)>> {
    let Some(start) = opts.guest_address else {
        return vec![None; addrs.len()];
    };
    let mut out = Vec::with_capacity(addrs.len());
    if opts.guest_multifunction {
        // One guest slot per physical device, in order of first appearance.
        let mut slots: Vec<crate::address::PciSlot> = Vec::new();
        for a in addrs {
            let idx = match slots.iter().position(|s| *s == a.slot_of()) {
                Some(i) => i,
                None => {
                    slots.push(a.slot_of());
                    slots.len() - 1
                }
            };
            let fns = addrs.iter().filter(|b| b.slot_of() == a.slot_of()).count();
            let g = PciAddress::new(
                start.domain,
                start.bus,
                start.slot.saturating_add(idx as u8),
                a.function,
            );
            out.push(Some((g, fns > 1 && a.function == 0)));
        }
    } else {
        for (i, _) in addrs.iter().enumerate() {
            let g = if i == 0 {
                start
            } else {
                PciAddress::new(
                    start.domain,
                    start.bus,
                    start.slot.saturating_add(i as u8),
                    0,
                )
            };
            out.push(Some((g, false)));
        }
    }
    out
}

impl HostdevOptions {
    /// The options given that change a hostdev's element (`--boot-order`,
    /// `--alias`, …), as their command-line names. `add` refuses them for a
    /// device the domain already has instead of dropping them.
    pub fn given(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if !self.managed {
            v.push("--managed no");
        }
        if self.driver.is_some() {
            v.push("--driver");
        }
        if self.permissive {
            v.push("--permissive");
        }
        if self.rom_bar.is_some() {
            v.push("--rom-bar");
        }
        if self.rom_file.is_some() {
            v.push("--rom-file");
        }
        if self.boot_order.is_some() {
            v.push("--boot-order");
        }
        if self.alias.is_some() {
            v.push("--alias");
        }
        if self.guest_address.is_some() {
            v.push("--guest-address");
        }
        v
    }

    /// The alias each of `addrs` gets: the primary function the name, the
    /// others `NAME-1`, `NAME-2`, … in order.
    pub fn aliases(&self, addrs: &[PciAddress]) -> Vec<String> {
        let Some(al) = &self.alias else {
            return Vec::new();
        };
        let primary = self.primary.or_else(|| addrs.first().copied());
        let mut n = 0;
        addrs
            .iter()
            .map(|a| {
                if Some(*a) == primary {
                    al.clone()
                } else {
                    n += 1;
                    format!("{al}-{n}")
                }
            })
            .collect()
    }

    /// Refuse what libvirt would reject or drop, whatever the domain.
    pub fn check(&self) -> Result<(), OptionError> {
        if let Some(a) = &self.alias {
            let ok_chars = a
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if !a.starts_with("ua-") || a.len() <= 3 || !ok_chars {
                return Err(opt_err(
                    format!("alias `{a}` would be dropped by libvirt"),
                    "user aliases start with `ua-` and use only letters, digits, `_`, `-` and `.`: --alias ua-gpu",
                ));
            }
        }
        if let Some(f) = &self.rom_file {
            if !f.starts_with('/') {
                return Err(opt_err(
                    format!("ROM file `{f}` is not an absolute path"),
                    "libvirt's schema needs an absolute path: --rom-file /usr/share/vgabios/gpu.rom",
                ));
            }
            if f.chars().any(|c| c.is_control()) {
                return Err(opt_err(
                    format!("ROM file {f:?} contains a control character"),
                    "give the plain path of the ROM file",
                ));
            }
        }
        if self.permissive && self.driver != Some(Driver::Xen) {
            // libvirt's QEMU driver rejects any writeFiltering at define
            // (src/qemu/qemu_validate.c, qemuValidateDomainDeviceDefHostdev:
            // "Write filtering of PCI device configuration space is not
            // supported by qemu"); only the Xen (libxl) driver takes it.
            return Err(opt_err(
                "--permissive is Xen-only: libvirt's QEMU driver refuses the domain (\"Write filtering of PCI device configuration space is not supported by qemu\")".into(),
                "on a Xen host add --driver xen; on QEMU/KVM drop --permissive",
            ));
        }
        if self.boot_order == Some(0) {
            return Err(opt_err(
                "boot order 0 is not allowed".into(),
                "boot orders start at 1: --boot-order 1",
            ));
        }
        if self.guest_multifunction && self.guest_address.is_none() {
            return Err(opt_err(
                "--guest-multifunction needs --guest-address".into(),
                "give the guest slot for the first device: --guest-address 0000:06:00.0",
            ));
        }
        if let Some(g) = self.guest_address {
            if self.guest_multifunction && g.function != 0 {
                return Err(opt_err(
                    format!("guest address {g} names function {}; with --guest-multifunction the host's function numbers are kept", g.function),
                    "give function 0: --guest-address 0000:06:00.0",
                ));
            }
        }
        Ok(())
    }

    /// For a lone snippet (no domain to place it in): the guest slots
    /// counted up from `--guest-address` must stay on its bus. `add`
    /// places addresses with [`crate::domain::guest::Topology::place`] instead.
    pub fn check_guest_run(&self, addrs: &[PciAddress]) -> Result<(), OptionError> {
        if let Some(g) = self.guest_address {
            let n = if self.guest_multifunction {
                addrs
                    .iter()
                    .map(|a| a.slot_of())
                    .collect::<std::collections::BTreeSet<_>>()
                    .len()
            } else {
                addrs.len()
            };
            let last = g.slot as usize + n.saturating_sub(1);
            if last > 0x1f {
                return Err(opt_err(
                    format!(
                        "{n} guest slots from 0x{:02x} run past slot 0x1f on guest bus 0x{:02x}",
                        g.slot, g.bus
                    ),
                    "start at a lower guest slot, or use --guest-multifunction to share slots",
                ));
            }
        }
        Ok(())
    }

    /// Warnings the user must see for these options.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.permissive {
            w.push("--permissive gives the guest unfiltered write access to the device's PCI config space (Xen's writeFiltering='no', qvm-pci's permissive=true); a malicious guest can use it against the host".to_string());
        }
        if !self.managed {
            w.push("managed='no': libvirt will not detach the devices; run `virt-pci detach` (or `virt-pci prepare DOMAIN`) before starting the guest".to_string());
        }
        w
    }
}

/// `<hostdev>` elements for `addrs`, in the given order, laid out in `style`.
///
/// Each line starts with `style.base` and ends with `style.newline`; in
/// compact style the elements follow each other on one line. Call
/// [`HostdevOptions::check`] first: values are escaped, not validated.
pub fn render(addrs: &[PciAddress], opts: &HostdevOptions, style: &Style) -> String {
    render_placed(addrs, opts, style, guest_addresses(addrs, opts))
}

/// [`render`] with guest addresses already chosen (one per address, with
/// whether it carries `multifunction='on'`): `add` places them with
/// [`crate::domain::guest::Topology::place`] so they fit the domain.
pub(crate) fn render_placed(
    addrs: &[PciAddress],
    opts: &HostdevOptions,
    style: &Style,
    guests: Vec<Option<(PciAddress, bool)>>,
) -> String {
    render_each_placed(addrs, opts, style, guests)
        .into_iter()
        .map(|(_, s)| s)
        .collect()
}

/// The name `snippet --split` gives the file of `a`'s `<hostdev>`: its
/// libvirt node-device name (`pci_0000_2b_00_0.xml`), unique per function
/// and the same on every run.
pub fn split_file_name(a: &PciAddress) -> String {
    format!("{}.xml", a.node_name())
}

/// Each function's `<hostdev>` on its own, as [`render`] would lay it out
/// in the stream (aliases, boot order and guest addresses numbered across
/// all of them): one root element each, for `virsh attach-device`.
pub fn render_each(
    addrs: &[PciAddress],
    opts: &HostdevOptions,
    style: &Style,
) -> Vec<(PciAddress, String)> {
    render_each_placed(addrs, opts, style, guest_addresses(addrs, opts))
}

fn render_each_placed(
    addrs: &[PciAddress],
    opts: &HostdevOptions,
    style: &Style,
    guests: Vec<Option<(PciAddress, bool)>>,
) -> Vec<(PciAddress, String)> {
    let q = style.quote;
    let primary = opts.primary.or_else(|| addrs.first().copied());
    let mut each = Vec::new();
    let mut alias_n = 0usize;
    for (a, guest) in addrs.iter().zip(guests) {
        let mut out = String::new();
        let mut lines: Vec<(usize, String)> = Vec::new();
        let managed = if opts.managed { "yes" } else { "no" };
        lines.push((
            0,
            format!("<hostdev mode={q}subsystem{q} type={q}pci{q} managed={q}{managed}{q}>"),
        ));
        if let Some(d) = opts.driver {
            let name = match d {
                Driver::Vfio => "vfio",
                Driver::Xen => "xen",
            };
            lines.push((1, format!("<driver name={q}{name}{q}/>")));
        }
        if opts.permissive {
            lines.push((1, format!("<source writeFiltering={q}no{q}>")));
        } else {
            lines.push((1, "<source>".into()));
        }
        lines.push((2, format!("<address {}/>", a.libvirt_attrs(q))));
        lines.push((1, "</source>".into()));
        let is_primary = Some(*a) == primary;
        if is_primary {
            if let Some(n) = opts.boot_order {
                lines.push((1, format!("<boot order={q}{n}{q}/>")));
            }
        }
        if let Some(al) = &opts.alias {
            let name = if is_primary {
                al.clone()
            } else {
                alias_n += 1;
                format!("{al}-{alias_n}")
            };
            lines.push((1, format!("<alias name={q}{}{q}/>", escape_attr(&name, q))));
        }
        let file = if is_primary {
            opts.rom_file.as_ref()
        } else {
            None
        };
        if opts.rom_bar.is_some() || file.is_some() {
            let mut r = String::from("<rom");
            if let Some(b) = opts.rom_bar {
                r.push_str(&format!(" bar={q}{}{q}", if b { "on" } else { "off" }));
            }
            if let Some(f) = file {
                r.push_str(&format!(" file={q}{}{q}", escape_attr(f, q)));
            }
            r.push_str("/>");
            lines.push((1, r));
        }
        if let Some((g, multi)) = guest {
            let mut s = format!("<address type={q}pci{q} {}", g.libvirt_attrs(q));
            if multi {
                s.push_str(&format!(" multifunction={q}on{q}"));
            }
            s.push_str("/>");
            lines.push((1, s));
        }
        lines.push((0, "</hostdev>".into()));
        for (depth, l) in lines {
            if style.compact {
                out.push_str(&l);
            } else {
                out.push_str(&style.base);
                for _ in 0..depth {
                    out.push_str(&style.unit);
                }
                out.push_str(&l);
                out.push_str(&style.newline);
            }
        }
        each.push((*a, out));
    }
    each
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libvirt_style_by_default() {
        let s = render(
            &[PciAddress::new(0, 3, 0, 0)],
            &HostdevOptions::default(),
            &Style::default(),
        );
        assert_eq!(
            s,
            "<hostdev mode='subsystem' type='pci' managed='yes'>\n  <source>\n    <address domain='0x0000' bus='0x03' slot='0x00' function='0x0'/>\n  </source>\n</hostdev>\n"
        );
    }

    #[test]
    fn multifunction_keeps_functions_on_one_guest_slot() {
        let addrs = [PciAddress::new(0, 1, 0, 0), PciAddress::new(0, 1, 0, 1)];
        let opts = HostdevOptions {
            guest_address: Some(PciAddress::new(0, 6, 0, 0)),
            guest_multifunction: true,
            alias: Some("ua-gpu".into()),
            boot_order: Some(2),
            ..HostdevOptions::default()
        };
        opts.check().unwrap();
        opts.check_guest_run(&addrs).unwrap();
        let s = render(&addrs, &opts, &Style::default());
        assert!(s.contains("<address type='pci' domain='0x0000' bus='0x06' slot='0x00' function='0x0' multifunction='on'/>"), "{s}");
        assert!(
            s.contains(
                "<address type='pci' domain='0x0000' bus='0x06' slot='0x00' function='0x1'/>"
            ),
            "{s}"
        );
        assert!(s.contains("<alias name='ua-gpu'/>") && s.contains("<alias name='ua-gpu-1'/>"));
        assert_eq!(s.matches("<boot order='2'/>").count(), 1);
    }

    #[test]
    fn bad_options_are_refused() {
        let a = [PciAddress::new(0, 1, 0, 0)];
        let bad = |o: HostdevOptions| o.check().and_then(|()| o.check_guest_run(&a)).unwrap_err();
        assert!(bad(HostdevOptions {
            alias: Some("gpu".into()),
            ..Default::default()
        })
        .message
        .contains("dropped"));
        assert!(bad(HostdevOptions {
            rom_file: Some("vbios.rom".into()),
            ..Default::default()
        })
        .message
        .contains("absolute"));
        assert!(bad(HostdevOptions {
            boot_order: Some(0),
            ..Default::default()
        })
        .message
        .contains("0"));
        assert!(bad(HostdevOptions {
            guest_multifunction: true,
            ..Default::default()
        })
        .message
        .contains("--guest-address"));
    }

    #[test]
    fn permissive_and_unmanaged_warn() {
        let o = HostdevOptions {
            permissive: true,
            managed: false,
            ..Default::default()
        };
        let w = o.warnings().join("\n");
        assert!(w.contains("config space"), "{w}");
        assert!(w.contains("virt-pci detach"), "{w}");
        // Without Xen it is an error, not a warning: QEMU refuses it.
        let e = o.check().unwrap_err();
        assert!(e.message.contains("not supported by qemu"), "{}", e.message);
        let xen = HostdevOptions {
            permissive: true,
            driver: Some(Driver::Xen),
            ..Default::default()
        };
        assert!(xen.check().is_ok());
        assert_eq!(xen.warnings().len(), 1);
        assert!(HostdevOptions::default().warnings().is_empty());
    }

    #[test]
    fn double_quotes_and_crlf_follow_the_style() {
        let st = Style {
            base: "    ".into(),
            unit: "\t".into(),
            quote: '"',
            newline: "\r\n".into(),
            compact: false,
        };
        let o = HostdevOptions {
            rom_file: Some("/a'b\"&.rom".into()),
            ..Default::default()
        };
        let s = render(&[PciAddress::new(0, 3, 0, 0)], &o, &st);
        assert!(s.starts_with("    <hostdev mode=\"subsystem\""));
        assert!(s.contains("\r\n    \t<source>\r\n"));
        assert!(s.contains("file=\"/a'b&quot;&amp;.rom\""), "{s}");
    }
}
