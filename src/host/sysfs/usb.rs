//! USB buses and devices from `sys/bus/usb/devices`: which PCI controller
//! each bus hangs off (`virt-pci usb`, and the warning that passing a USB
//! controller takes every device on its buses along).

use super::{pci_components, read_trim};
use crate::host::{UsbBus, UsbDevice};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

/// Every USB bus with its controller and devices (empty without USB).
pub(crate) fn read_usb(sys: &Path) -> Vec<UsbBus> {
    let dir = sys.join("bus/usb/devices");
    let Ok(it) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut buses: BTreeMap<u32, UsbBus> = BTreeMap::new();
    let mut devices: Vec<UsbDevice> = Vec::new();
    for e in it.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        let rd = |f: &str| read_trim(&path.join(f));
        if let Some(n) = name.strip_prefix("usb") {
            let Ok(bus) = n.parse::<u32>() else { continue };
            let real = fs::canonicalize(&path).unwrap_or(path.clone());
            let controller = pci_components(&real).last().copied();
            buses.insert(
                bus,
                UsbBus {
                    bus,
                    controller,
                    devices: Vec::new(),
                },
            );
        } else if !name.contains(':') {
            // A device (`1-2`, `1-2.3`); interfaces have a ':' and are skipped.
            let (Some(b), Some(dn), Some(v), Some(p)) =
                (rd("busnum"), rd("devnum"), rd("idVendor"), rd("idProduct"))
            else {
                continue;
            };
            let (Ok(bus), Ok(device)) = (b.parse(), dn.parse()) else {
                continue;
            };
            let name = match (rd("manufacturer"), rd("product")) {
                (Some(m), Some(p)) => Some(format!("{m} {p}")),
                (None, Some(p)) => Some(p),
                (Some(m), None) => Some(m),
                _ => None,
            };
            devices.push(UsbDevice {
                bus,
                device,
                vendor_id: v,
                product_id: p,
                name,
            });
        }
    }
    devices.sort_by_key(|d| (d.bus, d.device));
    for d in devices {
        if let Some(b) = buses.get_mut(&d.bus) {
            b.devices.push(d);
        }
    }
    buses.into_values().collect()
}
