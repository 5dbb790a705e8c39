//! The libvirt-linked half of [`crate::libvirt`] (feature `libvirt`): the
//! `virt` crate's calls, each error mapped to a [`LibvirtError`] with what
//! we tried. The pitfalls it avoids are in the parent module's docs.

use super::{domain_uses, DomainInfo, Impact, LibvirtError, Result};
use crate::address::PciAddress;
use crate::host::{nodedev, Host};
use virt::connect::Connect;
use virt::domain::Domain;
use virt::enumutil::{Enum, RawEnum};
use virt::sys;

// The face's codes are libvirt's (it has no `virt` crate to ask).
const _: () = assert!(super::ERR_NO_SUPPORT == sys::VIR_ERR_NO_SUPPORT);

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
}

fn no_nul(action: &str, s: &str) -> Result<()> {
    if s.contains('\0') {
        Err(LibvirtError::input(action, "the text contains a NUL byte"))
    } else {
        Ok(())
    }
}

/// An open connection and the URI it was opened with.
pub struct Conn {
    conn: Connect,
    uri: String,
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

impl Conn {
    pub(crate) fn uri(&self) -> &str {
        &self.uri
    }

    /// The XML of every PCI node device (only the CAP_PCI_DEV flag: see the
    /// module docs).
    fn pci_node_xmls(&self) -> Result<Vec<String>> {
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
