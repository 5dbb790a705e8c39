//! The libvirt side (feature `libvirt`): connections, host facts through the
//! node-device API, domains by name, and the node-device actions.
//!
//! WHY this is thin: every decision (plan, XML reading) is in pure modules
//! ([`crate::host::nodedev`], [`crate::domain`]) that are tested without
//! libvirt; this module only moves strings in and out of the `virt` crate
//! (=0.5.0), and keeps its pitfalls in one place (docs/libvirt.md §6–7):
//! - `list_all_node_devices` gets ONLY `CAP_PCI_DEV`: the test driver
//!   rejects ACTIVE/INACTIVE flags (virsh's `nodedev-list` fails there);
//! - `Domain::attach_device` drops libvirt's error: only the `_flags`
//!   variants are used;
//! - libvirt prints every error on stderr unless the callback is cleared:
//!   we report errors ourselves, once, in rustc's shape;
//! - the crate's `CString::new(..).unwrap()` panics on a NUL byte: strings are
//!   checked first.

use crate::address::PciAddress;
use crate::host::{nodedev, Host};
use std::fmt;
use virt::connect::Connect;
use virt::domain::Domain;
use virt::enumutil::{Enum, RawEnum};
use virt::sys;

/// A libvirt call failed: what we tried, and libvirt's own message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LibvirtError {
    /// What virt-pci was doing ("detach pci_0000_01_00_0").
    pub action: String,
    /// libvirt's message, verbatim (users search for it).
    pub message: String,
    /// libvirt's `virErrorNumber` (3 = not supported by the driver).
    pub code: u32,
    /// A fix, when we know one.
    pub help: Option<String>,
}

/// `VIR_ERR_NO_SUPPORT`: the driver (e.g. the test driver) lacks the call.
pub const ERR_NO_SUPPORT: u32 = sys::VIR_ERR_NO_SUPPORT;

impl LibvirtError {
    fn new(action: impl Into<String>, e: virt::error::Error) -> LibvirtError {
        let message = e.message().to_string();
        let code = match e.code() {
            Enum::Known(k) => k.to_raw(),
            Enum::Unknown(u) => u,
        };
        let help = help_for(&message);
        LibvirtError {
            action: action.into(),
            message,
            code,
            help,
        }
    }

    fn input(action: impl Into<String>, message: impl Into<String>) -> LibvirtError {
        LibvirtError {
            action: action.into(),
            message: message.into(),
            code: sys::VIR_ERR_INVALID_ARG,
            help: None,
        }
    }

    /// The driver does not implement the call (the test driver cannot
    /// detach, reset, reattach, attach or detach devices).
    pub fn is_not_supported(&self) -> bool {
        self.code == ERR_NO_SUPPORT
    }
}

/// Known libvirt messages and what fixes them.
fn help_for(message: &str) -> Option<String> {
    if message.contains("VFIO device assignment is currently not supported") {
        Some("the host has no /dev/vfio/vfio: run `modprobe vfio` (or `kmod static-nodes` to create the node), and boot with the IOMMU on".into())
    } else if message.contains("authentication") || message.contains("Permission denied") {
        Some("detaching devices needs a read-write connection as root (or the libvirt group): try `sudo` or qemu:///system".into())
    } else if message.contains("Failed to connect socket")
        || message.contains("no connection driver")
    {
        Some(
            "is libvirtd (or virtqemud) running, and is the URI right? `virsh -c URI uri` tests it"
                .into(),
        )
    } else {
        None
    }
}

impl fmt::Display for LibvirtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.action, self.message)
    }
}

impl std::error::Error for LibvirtError {}

pub type Result<T> = std::result::Result<T, LibvirtError>;

/// An open connection and the URI it was opened with.
pub struct Conn {
    conn: Connect,
    uri: String,
}

fn no_nul(action: &str, s: &str) -> Result<()> {
    if s.contains('\0') {
        Err(LibvirtError::input(action, "the text contains a NUL byte"))
    } else {
        Ok(())
    }
}

/// Open `uri` (None: libvirt's default, which honours LIBVIRT_DEFAULT_URI).
/// Read-only connections are enough for everything but define/attach and
/// the node-device actions.
pub fn open(uri: Option<&str>, read_only: bool) -> Result<Conn> {
    virt::error::clear_error_callback();
    let shown = uri.unwrap_or("(default)").to_string();
    if let Some(u) = uri {
        no_nul("connect", u)?;
    }
    let action = format!("cannot connect to {shown}");
    let conn = if read_only {
        Connect::open_read_only(uri)
    } else {
        Connect::open(uri)
    }
    .map_err(|e| LibvirtError::new(action, e))?;
    let uri = conn.uri().unwrap_or(shown);
    Ok(Conn { conn, uri })
}

/// Which side of a domain a device change affects (`--config`, `--live`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Impact {
    pub config: bool,
    pub live: bool,
}

impl Impact {
    pub const CONFIG: Impact = Impact {
        config: true,
        live: false,
    };
    pub const LIVE: Impact = Impact {
        config: false,
        live: true,
    };
    pub const BOTH: Impact = Impact {
        config: true,
        live: true,
    };
}

/// A defined domain: name, whether it runs, and its XML (inactive, and live
/// when running).
#[derive(Clone, Debug)]
pub struct DomainInfo {
    pub name: String,
    pub running: bool,
    /// The persistent configuration (`VIR_DOMAIN_XML_INACTIVE`).
    pub inactive_xml: String,
    /// The live XML of a running domain.
    pub live_xml: Option<String>,
}

impl Conn {
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The raw connection, for callers that need more of the `virt` API.
    pub fn raw(&self) -> &Connect {
        &self.conn
    }

    /// The XML of every PCI node device (only the CAP_PCI_DEV flag: see the
    /// module docs).
    pub fn pci_node_xmls(&self) -> Result<Vec<String>> {
        let devs = self
            .conn
            .list_all_node_devices(sys::VIR_CONNECT_LIST_NODE_DEVICES_CAP_PCI_DEV)
            .map_err(|e| LibvirtError::new("cannot list PCI node devices", e))?;
        let mut out = Vec::with_capacity(devs.len());
        for d in devs {
            let name = d.name().unwrap_or_default();
            out.push(
                d.xml_desc(0)
                    .map_err(|e| LibvirtError::new(format!("cannot read node device {name}"), e))?,
            );
        }
        Ok(out)
    }

    /// The host as libvirt sees it: PCI node devices, IOMMU groups, and
    /// which domains use which device ([`Host::domains`]).
    pub fn read_host(&self) -> Result<Host> {
        let xmls = self.pci_node_xmls()?;
        let mut host = nodedev::host_from_xml(
            &format!("libvirt:{}", self.uri),
            xmls.iter().map(String::as_str),
        )
        .map_err(|e| LibvirtError::input("cannot read node-device XML", e.to_string()))?;
        host.domains = domain_uses(&self.domains()?);
        Ok(host)
    }

    /// The QEMU driver's domain capabilities for its default emulator,
    /// machine and virtualisation type (`virsh domcapabilities`).
    pub fn domain_capabilities(&self) -> Result<String> {
        self.conn
            .domain_capabilities(None, None, None, None, 0)
            .map_err(|e| LibvirtError::new("cannot read the domain capabilities", e))
    }

    /// Every defined or running domain with its XML and state.
    pub fn domains(&self) -> Result<Vec<DomainInfo>> {
        let doms = self
            .conn
            .list_all_domains(0)
            .map_err(|e| LibvirtError::new("cannot list domains", e))?;
        let mut out = Vec::new();
        for d in doms {
            out.push(info(&d)?);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn lookup(&self, name: &str) -> Result<Domain> {
        no_nul("look up domain", name)?;
        self.conn
            .lookup_domain_by_name(name)
            .map_err(|e| LibvirtError::new(format!("cannot find domain `{name}`"), e))
    }

    /// One domain by name.
    pub fn domain(&self, name: &str) -> Result<DomainInfo> {
        info(&self.lookup(name)?)
    }

    /// The persistent (inactive) XML of a domain: what `add --domain` edits.
    pub fn domain_xml_inactive(&self, name: &str) -> Result<String> {
        self.lookup(name)?
            .xml_desc(sys::VIR_DOMAIN_XML_INACTIVE)
            .map_err(|e| LibvirtError::new(format!("cannot read the XML of `{name}`"), e))
    }

    /// Define (or redefine) a domain with libvirt's schema validation
    /// (`VIR_DOMAIN_DEFINE_VALIDATE`, as `virsh define --validate`). Returns
    /// the domain's name.
    pub fn define_validated(&self, xml: &str) -> Result<String> {
        no_nul("define domain", xml)?;
        let d = self
            .conn
            .define_domain_xml_flags(xml, sys::VIR_DOMAIN_DEFINE_VALIDATE)
            .map_err(|e| LibvirtError::new("cannot define the domain", e))?;
        d.name()
            .map_err(|e| LibvirtError::new("cannot read the defined domain's name", e))
    }

    /// Redefine domain `name` with `new_xml` (validated, as
    /// [`Conn::define_validated`]), refusing an edit that would rename it:
    /// libvirt would silently define a second domain instead. This is what
    /// `add/remove --domain` call after splicing the inactive XML.
    pub fn redefine(&self, name: &str, new_xml: &str) -> Result<()> {
        let action = format!("cannot redefine `{name}`");
        let doc = crate::domain::parse(new_xml).map_err(|e| {
            LibvirtError::input(&action, format!("the new XML is not well-formed: {e}"))
        })?;
        let new_name = crate::domain::domain_name(&doc);
        if new_name.as_deref() != Some(name) {
            return Err(LibvirtError::input(
                &action,
                format!(
                    "the edited XML names the domain {}, not `{name}`",
                    new_name
                        .map(|n| format!("`{n}`"))
                        .unwrap_or_else(|| "nothing".into())
                ),
            ));
        }
        self.lookup(name)?;
        self.define_validated(new_xml).map(|_| ())
    }

    fn flags(impact: Impact) -> u32 {
        let mut f = 0;
        if impact.config {
            f |= sys::VIR_DOMAIN_AFFECT_CONFIG;
        }
        if impact.live {
            f |= sys::VIR_DOMAIN_AFFECT_LIVE;
        }
        f
    }

    /// Hot-plug a device (a `<hostdev>` element) with
    /// `virDomainAttachDeviceFlags`. After [`Conn::redefine`] has put the
    /// hostdev in the persistent config, use `Impact::LIVE` only (CONFIG
    /// again would add it twice: "Hostdev already exists").
    pub fn attach_device(&self, domain: &str, device_xml: &str, impact: Impact) -> Result<()> {
        no_nul("attach device", device_xml)?;
        Self::check_impact("attach device", impact)?;
        self.lookup(domain)?
            .attach_device_flags(device_xml, Self::flags(impact))
            .map_err(|e| LibvirtError::new(format!("cannot attach the device to `{domain}`"), e))
    }

    /// Hot-unplug a device with `virDomainDetachDeviceFlags`.
    pub fn detach_device(&self, domain: &str, device_xml: &str, impact: Impact) -> Result<()> {
        no_nul("detach device", device_xml)?;
        Self::check_impact("detach device", impact)?;
        self.lookup(domain)?
            .detach_device_flags(device_xml, Self::flags(impact))
            .map_err(|e| LibvirtError::new(format!("cannot detach the device from `{domain}`"), e))
    }

    fn check_impact(action: &str, impact: Impact) -> Result<()> {
        if impact.config || impact.live {
            Ok(())
        } else {
            Err(LibvirtError::input(
                action,
                "neither the config nor the live domain was chosen",
            ))
        }
    }

    fn node(&self, a: &PciAddress, what: &str) -> Result<virt::nodedev::NodeDevice> {
        let name = a.node_name();
        self.conn
            .lookup_node_device_by_name(&name)
            .map_err(|e| LibvirtError::new(format!("cannot {what} {a}: no node device {name}"), e))
    }

    /// `virNodeDeviceDetachFlags(dev, driver)`: one function to the stub
    /// driver (`vfio`). libvirt does not look at the rest of the group.
    pub fn nodedev_detach(&self, a: &PciAddress, driver: &str) -> Result<()> {
        no_nul("detach", driver)?;
        self.node(a, "detach")?
            .detach_flags(Some(driver), 0)
            .map_err(|e| LibvirtError::new(format!("cannot detach {a}"), e))
    }

    /// `virNodeDeviceReAttach`: back to the host driver.
    pub fn nodedev_reattach(&self, a: &PciAddress) -> Result<()> {
        self.node(a, "reattach")?
            .reattach()
            .map_err(|e| LibvirtError::new(format!("cannot reattach {a}"), e))
    }

    /// `virNodeDeviceReset` (a no-op on vfio-bound or FLR-capable devices,
    /// libvirt.md §4).
    pub fn nodedev_reset(&self, a: &PciAddress) -> Result<()> {
        self.node(a, "reset")?
            .reset()
            .map_err(|e| LibvirtError::new(format!("cannot reset {a}"), e))
    }
}

fn info(d: &Domain) -> Result<DomainInfo> {
    let name = d
        .name()
        .map_err(|e| LibvirtError::new("cannot read a domain's name", e))?;
    let running = d
        .is_active()
        .map_err(|e| LibvirtError::new(format!("cannot read the state of `{name}`"), e))?;
    let inactive_xml = d
        .xml_desc(sys::VIR_DOMAIN_XML_INACTIVE)
        .map_err(|e| LibvirtError::new(format!("cannot read the XML of `{name}`"), e))?;
    let live_xml =
        if running {
            Some(d.xml_desc(0).map_err(|e| {
                LibvirtError::new(format!("cannot read the live XML of `{name}`"), e)
            })?)
        } else {
            None
        };
    Ok(DomainInfo {
        name,
        running,
        inactive_xml,
        live_xml,
    })
}

/// Which domains use which device: a running domain's live hostdevs count
/// as running uses; hostdevs only in a persistent config count as not
/// running (the device is free now, but the domain will want it at start).
pub fn domain_uses(domains: &[DomainInfo]) -> Vec<crate::host::DomainUse> {
    let mut list: Vec<(&str, bool, &str)> = Vec::new();
    for d in domains {
        if let Some(live) = &d.live_xml {
            list.push((&d.name, true, live));
        }
        list.push((&d.name, false, &d.inactive_xml));
    }
    let mut out: Vec<crate::host::DomainUse> = Vec::new();
    for u in nodedev::domain_uses(list) {
        if !out
            .iter()
            .any(|o| o.domain == u.domain && o.address == u.address)
        {
            out.push(u);
        }
    }
    out
}
