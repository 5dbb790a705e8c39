//! libvirt node-device XML (`virsh nodedev-dumpxml`) turned into a
//! [`Host`](super::Host), so a remote `qemu+ssh://` host needs no local sysfs.
//! (Filled in by the libvirt work; see ARCHITECTURE.md.)
