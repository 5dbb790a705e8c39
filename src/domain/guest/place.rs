//! Where `add` may put new hostdevs on the guest side, and whether its
//! options fit: free slots per bus model, the address a `--guest-address`
//! names (refused as libvirt refuses it, with the buses and first free slots
//! in the help), boot orders and aliases that must be unique.

use super::{line_of, Bus, GuestError, Machine, Occupant, Topology};
use crate::address::PciAddress;

impl Topology {
    /// Who uses any function of `(bus, slot)` in PCI domain 0.
    pub(crate) fn slot_user(&self, bus: u8, slot: u8) -> Option<&Occupant> {
        self.used
            .iter()
            .find(|o| o.address.domain == 0 && o.address.bus == bus && o.address.slot == slot)
    }

    /// Slots of `bus` a hostdev may take that no device uses.
    pub(crate) fn free_slots(&self, bus: &Bus) -> Vec<u8> {
        let Some((lo, hi)) = bus.slots() else {
            return Vec::new();
        };
        (lo..=hi)
            .filter(|s| self.slot_user(bus.index, *s).is_none())
            .collect()
    }

    /// The buses and their free slots, for messages.
    pub(crate) fn describe_buses(&self) -> String {
        self.buses
            .values()
            .map(Bus::describe)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The first free guest slots, as `--guest-address` values.
    pub(crate) fn free_addresses(&self, n: usize) -> Vec<PciAddress> {
        self.buses
            .values()
            .flat_map(|b| {
                self.free_slots(b)
                    .into_iter()
                    .map(|s| PciAddress::new(0, b.index, s, 0))
            })
            .take(n)
            .collect()
    }

    fn free_help(&self) -> String {
        let free = self.free_addresses(4);
        if free.is_empty() {
            return "this domain has no free guest slot for a hostdev: add a <controller type='pci' model='pcie-root-port'/> (q35) or model='pci-bridge' (pc), or leave out --guest-address and let libvirt place the device".into();
        }
        format!(
            "free guest slots: {}; e.g. --guest-address {} (or leave out --guest-address and let libvirt choose)",
            free.iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            free[0]
        )
    }

    /// Why `a` cannot hold a new device's slot, if it cannot.
    fn refuse_slot(&self, a: PciAddress, text: &str) -> Option<GuestError> {
        if a.domain != 0 {
            return Some(GuestError::new(
                format!("guest address {a} is in PCI domain 0x{:04x}; libvirt's QEMU guests have only domain 0 (\"Only PCI domain 0 is available\")", a.domain),
                self.free_help(),
            ));
        }
        if a.bus == 0 && a.slot == 0 {
            return Some(GuestError::new(
                format!("guest address {a} is slot 0 of bus 0, the guest's host bridge (libvirt reads 0000:00:00.x as \"no address\" and would choose one itself)"),
                self.free_help(),
            ));
        }
        let Some(bus) = self.buses.get(&a.bus) else {
            return Some(GuestError::new(
                format!(
                    "guest bus 0x{:02x} does not exist in this domain; its buses: {}",
                    a.bus,
                    self.describe_buses()
                ),
                self.free_help(),
            ));
        };
        match bus.slots() {
            None => {
                return Some(GuestError::new(
                    format!(
                        "guest bus 0x{:02x} ({}) takes no endpoint device",
                        a.bus,
                        bus.model.as_deref().unwrap_or("a controller without model")
                    ),
                    self.free_help(),
                ))
            }
            Some((lo, hi)) if a.slot < lo || a.slot > hi => {
                let range = if lo == hi {
                    format!("only slot 0x{lo:02x}")
                } else {
                    format!("slots 0x{lo:02x}-0x{hi:02x}")
                };
                return Some(GuestError::new(
                    format!(
                        "guest address {a}: bus 0x{:02x} is a {} and has {range} (libvirt: \"Invalid PCI address {a}. slot must be {}\")",
                        a.bus,
                        bus.model.as_deref().unwrap_or("controller"),
                        if a.slot < lo { format!(">= {lo}") } else { format!("<= {hi}") }
                    ),
                    self.free_help(),
                ));
            }
            Some(_) => {}
        }
        if let Some(o) = self.slot_user(a.bus, a.slot) {
            let at = match &o.range {
                Some(r) => format!(" (line {})", line_of(text, r.start)),
                None => String::new(),
            };
            return Some(GuestError::new(
                format!(
                    "guest slot {:04x}:{:02x}:{:02x} is taken: {} uses {}{at}",
                    a.domain, a.bus, a.slot, o.what, o.address
                ),
                self.free_help(),
            ));
        }
        None
    }

    /// Guest addresses for new hostdevs `addrs` from `start`: the first
    /// physical device at `start`, each further one on the next free slot
    /// (same bus first, then the following buses). With `multifunction`,
    /// the functions of one physical device share its slot (host function
    /// numbers kept, `multifunction='on'` on function 0 when there are
    /// several). Every slot written is checked as libvirt will; `text` is
    /// the document, for line numbers.
    pub(crate) fn place(
        &self,
        addrs: &[PciAddress],
        start: PciAddress,
        multifunction: bool,
        text: &str,
    ) -> Result<Vec<(PciAddress, bool)>, GuestError> {
        // Units that each take one guest slot.
        let mut units: Vec<Vec<usize>> = Vec::new();
        if multifunction {
            let mut slots: Vec<crate::address::PciSlot> = Vec::new();
            for (i, a) in addrs.iter().enumerate() {
                match slots.iter().position(|s| *s == a.slot_of()) {
                    Some(k) => units[k].push(i),
                    None => {
                        slots.push(a.slot_of());
                        units.push(vec![i]);
                    }
                }
            }
        } else {
            units = (0..addrs.len()).map(|i| vec![i]).collect();
        }
        if let Some(e) = self.refuse_slot(start, text) {
            return Err(e);
        }
        let mut out = vec![(start, false); addrs.len()];
        let mut taken: Vec<(u8, u8)> = Vec::new();
        let mut cursor = (start.bus, start.slot);
        for (k, unit) in units.iter().enumerate() {
            let (bus, slot) = if k == 0 {
                cursor
            } else {
                match self.next_free(cursor, &taken) {
                    Some(p) => p,
                    None => {
                        return Err(GuestError::new(
                            format!(
                                "{} hostdevs need {} guest slots from {start}, and only {k} are free there; buses: {}",
                                addrs.len(),
                                units.len(),
                                self.describe_buses()
                            ),
                            "add PCI controllers (e.g. <controller type='pci' model='pcie-root-port'/> per device on q35), use --guest-multifunction to share one slot per device, or leave out --guest-address".to_string(),
                        ))
                    }
                }
            };
            taken.push((bus, slot));
            cursor = (bus, slot);
            let several = unit.len() > 1;
            for &i in unit {
                let f = if multifunction {
                    addrs[i].function
                } else if k == 0 {
                    start.function
                } else {
                    0
                };
                out[i] = (PciAddress::new(0, bus, slot, f), several && f == 0);
            }
        }
        Ok(out)
    }

    fn next_free(&self, after: (u8, u8), taken: &[(u8, u8)]) -> Option<(u8, u8)> {
        self.buses
            .values()
            .filter(|b| b.index >= after.0)
            .flat_map(|b| self.free_slots(b).into_iter().map(move |s| (b.index, s)))
            .find(|p| *p > after && !taken.contains(p))
    }

    /// Whether libvirt can place new hostdevs that have no guest address.
    ///
    /// When every slot of every bus is taken, libvirt 9.0 adds a bridge
    /// for them and then refuses its own result ("PCI controller at index 1
    /// (0x01) has bus='0x01', but index must be larger than bus", seen on
    /// libvirt's `pci-many.xml`); so this is refused before writing.
    pub(crate) fn check_room(&self) -> Result<(), GuestError> {
        if self.machine == Machine::Other || !self.free_addresses(1).is_empty() {
            return Ok(());
        }
        Err(GuestError::new(
            format!(
                "this domain has no free guest PCI slot for a new hostdev (buses: {}), and libvirt cannot add a bridge on a full bus 0",
                self.describe_buses()
            ),
            "free a guest slot (remove a device, or move one behind a <controller type='pci' model='pci-bridge'> that has a free slot), then add again".into(),
        ))
    }

    /// Whether boot order `n` can be given to a new device.
    pub(crate) fn check_boot_order(&self, n: u32, text: &str) -> Result<(), GuestError> {
        if let Some(b) = self.os_boot.first() {
            return Err(GuestError::new(
                format!(
                    "--boot-order {n}: this domain boots with <os><boot dev='{}'/> (line {}), and libvirt refuses per-device boot orders next to it (\"per-device boot elements cannot be used together with os/boot elements\")",
                    b.value,
                    line_of(text, b.range.start)
                ),
                "leave out --boot-order, or replace the <os><boot dev=…/> lines by <boot order='N'/> in the devices (disk first, e.g. <boot order='1'/> in the system <disk>), then add with --boot-order".to_string(),
            ));
        }
        let taken = |k: u32| {
            self.boot_orders.iter().find(|b| {
                crate::address::parse_libvirt_number(&b.value).map(|v| v.value)
                    == Some(u64::from(k))
            })
        };
        if let Some(b) = taken(n) {
            let free = (1..).find(|k| taken(*k).is_none()).unwrap_or(n + 1);
            return Err(GuestError::new(
                format!(
                    "--boot-order {n}: {} already has <boot order='{}'/> (line {}); libvirt refuses one boot order on two devices",
                    b.owner,
                    b.value,
                    line_of(text, b.range.start)
                ),
                format!("use a free boot order, e.g. --boot-order {free}, or change that device's <boot order>"),
            ));
        }
        Ok(())
    }

    /// Whether the user alias `name` is free.
    pub(crate) fn check_alias(&self, name: &str, text: &str) -> Result<(), GuestError> {
        if let Some(a) = self.aliases.iter().find(|a| a.value == name) {
            let mut k = 2;
            while self.aliases.iter().any(|a| a.value == format!("{name}{k}")) {
                k += 1;
            }
            return Err(GuestError::new(
                format!(
                    "alias `{name}` is already used by {} (line {}); libvirt refuses the domain (\"non unique alias detected\")",
                    a.owner,
                    line_of(text, a.range.start)
                ),
                format!("choose another alias, e.g. --alias {name}{k}"),
            ));
        }
        Ok(())
    }
}
