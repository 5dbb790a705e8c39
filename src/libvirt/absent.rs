//! [`crate::libvirt`] in a build without the `libvirt` feature: the same
//! face, and no way to get a connection.
//!
//! WHY an uninhabited [`Conn`] instead of `cfg` at every caller: the
//! command line and the actions stay one code path in both builds, and the
//! compiler proves that nothing after [`open`] can run here. The lean
//! `virt-pci` hands over to `virt-pci-libvirt` before it would get here
//! (`src/cli/companion.rs`); [`open`]'s error is what remains when that
//! companion is not installed.

use super::{DomainInfo, Impact, LibvirtError, Result, ERR_NOT_LINKED};
use crate::address::PciAddress;
use crate::host::Host;
use std::convert::Infallible;

/// A connection that cannot exist in this build.
pub struct Conn {
    never: Infallible,
}

/// Always the error that this binary has no libvirt.
pub fn open(uri: Option<&str>, _read_only: bool) -> Result<Conn> {
    Err(LibvirtError {
        action: format!("cannot connect to {}", uri.unwrap_or("libvirt")),
        message: "this virt-pci was built without libvirt support".into(),
        code: ERR_NOT_LINKED,
        help: Some(
            "install virt-pci-libvirt next to virt-pci (`make install`) or rebuild with `cargo build --features libvirt`"
                .into(),
        ),
    })
}

impl Conn {
    pub(crate) fn uri(&self) -> &str {
        match self.never {}
    }
    pub fn read_host(&self) -> Result<Host> {
        match self.never {}
    }
    pub fn domain_capabilities(&self) -> Result<String> {
        match self.never {}
    }
    pub fn domains(&self) -> Result<Vec<DomainInfo>> {
        match self.never {}
    }
    pub fn domain(&self, _name: &str) -> Result<DomainInfo> {
        match self.never {}
    }
    pub fn domain_xml_inactive(&self, _name: &str) -> Result<String> {
        match self.never {}
    }
    pub fn define_validated(&self, _xml: &str) -> Result<String> {
        match self.never {}
    }
    pub fn redefine(&self, _name: &str, _new_xml: &str) -> Result<()> {
        match self.never {}
    }
    pub fn attach_device(&self, _domain: &str, _xml: &str, _impact: Impact) -> Result<()> {
        match self.never {}
    }
    pub fn detach_device(&self, _domain: &str, _xml: &str, _impact: Impact) -> Result<()> {
        match self.never {}
    }
    pub fn nodedev_detach(&self, _a: &PciAddress, _driver: &str) -> Result<()> {
        match self.never {}
    }
    pub fn nodedev_reattach(&self, _a: &PciAddress) -> Result<()> {
        match self.never {}
    }
    pub fn nodedev_reset(&self, _a: &PciAddress) -> Result<()> {
        match self.never {}
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn open_says_what_is_missing_and_how_to_get_it() {
        // Irrefutable: the compiler knows no `Conn` can be made here.
        let Err(e) = super::open(Some("test:///default"), true);
        assert!(e.is_not_linked());
        assert_eq!(
            e.to_string(),
            "cannot connect to test:///default: this virt-pci was built without libvirt support"
        );
        assert!(e.help.unwrap().contains("--features libvirt"));
    }
}
