//! virt-pci: safe, boring PCI passthrough with libvirt.
//!
//! The library holds every decision; the `virt-pci` binary only parses
//! arguments and prints. Data flows one way:
//!
//! host facts ([`host`]: sysfs, snapshot, libvirt node devices, listings)
//! → a [`plan`] (what travels, what stays, what blocks, what warns)
//! → an XML edit or a libvirt/sysfs action.
//!
//! See ARCHITECTURE.md for where a new check, command or host source goes.

// The library decides and returns; only the command line prints.
#![deny(clippy::print_stdout, clippy::print_stderr)]

/// The typed codes (`plan::Code`, `validate::Code`, `actions::Action`,
/// `actions::RefusalCode`) print and serialise as the string their
/// `as_str()` spells once: today's JSON and messages, byte for byte.
macro_rules! as_string {
    ($($t:ty),*) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    )*};
}

pub mod actions;
pub mod address;
pub mod diagnostic;
pub mod diff;
pub mod doctor;
pub mod domain;
pub mod fleet;
pub mod fsutil;
pub mod guard;
pub mod host;
pub mod invocation;
pub mod libvirt;
pub mod pciids;
pub mod persist;
pub mod plan;
pub mod report;
pub mod text;
pub mod validate;

pub use address::{DeviceSpec, PciAddress};
pub use host::Host;
