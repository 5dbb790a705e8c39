//! Inference rule: **parent bridges** of every device of a listing.
//!
//! The paste's sysfs paths give them when it has them. Otherwise buses are
//! numbered depth-first as firmware does: on each bus the bridges are
//! visited in address order, and each takes a secondary bus by the first
//! of four rules that applies ([`Numbering::secondary_bus`]). Devices on the
//! bus of a device whose sysfs path the paste shows get the same parents. A
//! bus nobody claims is a root bus (`pciDDDD:BB`), as are bus 00 of every
//! domain and buses with a host bridge at `xx:00.0`.
//!
//! Kept apart from the other rules: it is the one that searches (a
//! recursive walk over buses), and the one the performance issue was about.

use crate::address::PciAddress;
use crate::host::{Device, GroupMember, Host};
use std::collections::{BTreeMap, BTreeSet};

/// Infer every device's parent bridges (see the module doc).
pub(crate) fn infer_parents(host: &mut Host, known: &BTreeSet<PciAddress>) {
    let parent_of_bus = number_buses(host);
    let addrs: Vec<PciAddress> = host.devices.keys().copied().collect();
    for a in addrs {
        if known.contains(&a) {
            continue;
        }
        let chain = match sibling_with_path(known, a) {
            Some(k) => host
                .devices
                .get(&k)
                .map(|d| d.parents.clone())
                .unwrap_or_default(),
            None => chain_of_bus(&parent_of_bus, (a.domain, a.bus)),
        };
        if let Some(d) = host.devices.get_mut(&a) {
            d.parents = chain;
        }
    }
}

/// A device on the same bus whose sysfs path the paste shows: its parents
/// are this device's parents.
fn sibling_with_path(known: &BTreeSet<PciAddress>, a: PciAddress) -> Option<PciAddress> {
    known
        .range(
            PciAddress::new(a.domain, a.bus, 0, 0)..=PciAddress::new(a.domain, a.bus, 0xff, 0xff),
        )
        .next()
        .copied()
}

/// The bridges above a bus, root first (a loop or a chain deeper than 32
/// ends the walk).
fn chain_of_bus(
    parent_of_bus: &BTreeMap<(u32, u8), PciAddress>,
    bus: (u32, u8),
) -> Vec<PciAddress> {
    let mut chain = Vec::new();
    let mut bus = bus;
    while let Some(p) = parent_of_bus.get(&bus) {
        if chain.contains(p) || chain.len() > 32 {
            break;
        }
        chain.push(*p);
        bus = (p.domain, p.bus);
    }
    chain.reverse();
    chain
}

/// Number the buses of every PCI domain: which bridge each bus is behind.
/// **Root buses**: the lowest occupied bus of a domain and buses with a host
/// bridge at `xx:00.0`; after those are walked, a bus nobody claimed is a
/// root bus of its own, and is walked in turn.
fn number_buses(host: &Host) -> BTreeMap<(u32, u8), PciAddress> {
    let mut occupied: BTreeMap<u32, BTreeSet<u8>> = BTreeMap::new();
    for a in host.devices.keys() {
        occupied.entry(a.domain).or_default().insert(a.bus);
    }
    let mut parent_of_bus = BTreeMap::new();
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
        let mut n = Numbering {
            host,
            dom: *dom,
            occupied: buses,
            assigned: roots.iter().copied().collect(),
            next: 0,
            parent_of_bus: &mut parent_of_bus,
        };
        let mut i = 0;
        while i < roots.len() {
            let r = roots[i];
            let hi = window_end(roots.iter().copied(), r, 0xff);
            n.next = u16::from(r) + 1;
            n.walk(r, hi, 0);
            i += 1;
            if i == roots.len() {
                // Buses nobody claimed are root buses of their own.
                if let Some(b) = buses.iter().copied().find(|b| !n.assigned.contains(b)) {
                    roots.push(b);
                    n.assigned.insert(b);
                    roots.sort();
                    i = roots.iter().position(|x| *x == b).unwrap_or(i);
                }
            }
        }
    }
    parent_of_bus
}

/// The last bus a bridge starting at `after` may own: one below the next
/// bus another root or sibling claims, else `default`.
fn window_end(claimed: impl Iterator<Item = u8>, after: u8, default: u8) -> u8 {
    claimed
        .filter(|x| *x > after)
        .min()
        .map(|x| x - 1)
        .unwrap_or(default)
}

/// The depth-first numbering of one PCI domain.
struct Numbering<'a> {
    host: &'a Host,
    dom: u32,
    /// Buses with a device on them.
    occupied: &'a BTreeSet<u8>,
    /// Buses already behind a bridge (or roots).
    assigned: BTreeSet<u8>,
    /// The next bus number firmware would hand out.
    next: u16,
    parent_of_bus: &'a mut BTreeMap<(u32, u8), PciAddress>,
}

impl Numbering<'_> {
    /// Visit the bridges on `bus` in address order; each takes a secondary
    /// bus in `bus+1..=hi` (or none: an empty slot) and is walked below.
    fn walk(&mut self, bus: u8, hi: u8, depth: u32) {
        // The bus's own devices only (a range of the sorted map): scanning
        // every device per bus made 20,000 PCI domains take 48 s (issue 11).
        let host = self.host;
        let dom = self.dom;
        let bridges: Vec<&Device> = host
            .devices
            .range(PciAddress::new(dom, bus, 0, 0)..=PciAddress::new(dom, bus, 0xff, 0xff))
            .map(|(_, d)| d)
            .filter(|d| d.is_bridge())
            .collect();
        for (i, br) in bridges.iter().enumerate() {
            let own = self.group_hint(br, bus, hi);
            let others: BTreeSet<u8> = bridges[i + 1..]
                .iter()
                .filter_map(|b| self.group_hint(b, bus, hi))
                .filter(|b| Some(*b) != own)
                .collect();
            let remaining = bridges.len() - i;
            match self.secondary_bus(bus, hi, depth, own, &others, remaining) {
                Some(s) => {
                    self.assigned.insert(s);
                    self.parent_of_bus.insert((dom, s), br.address);
                    self.next = u16::from(s) + 1;
                    let sub_hi = window_end(others.iter().copied(), s, hi);
                    self.walk(s, sub_hi, depth + 1);
                }
                None => {
                    // An empty slot still takes a bus number.
                    self.next += 1;
                }
            }
        }
    }

    /// **Group hint**: the lowest free bus in `bus+1..=hi` holding a member
    /// of the bridge's own IOMMU group (no ACS between them).
    fn group_hint(&self, d: &Device, bus: u8, hi: u8) -> Option<u8> {
        let g = d.iommu_group?;
        self.host
            .groups
            .get(&g)?
            .iter()
            .filter_map(|m| match m {
                GroupMember::Pci(a) if a.domain == self.dom && a.bus > bus && a.bus <= hi => {
                    Some(a.bus)
                }
                _ => None,
            })
            .filter(|b| !self.assigned.contains(b))
            .min()
    }

    /// **Secondary bus** of a bridge on `bus`, by the first rule that
    /// applies: (1) a bus that holds a device of its own IOMMU group (`own`,
    /// the strongest hint), else (2) the next bus number in depth-first
    /// order when a device sits on it (and no later sibling's group claims
    /// it), else (3) on a root bus only, when there are at least as many
    /// occupied free buses left as bridges (`remaining`), the next occupied
    /// one (firmware skipped a number; below a root bus a far bus more
    /// likely belongs to a later sibling of an ancestor), else (4) none: an
    /// empty slot.
    fn secondary_bus(
        &self,
        bus: u8,
        hi: u8,
        depth: u32,
        own: Option<u8>,
        others: &BTreeSet<u8>,
        remaining: usize,
    ) -> Option<u8> {
        if own.is_some() {
            return own;
        }
        let next = self.next;
        if next <= u16::from(hi)
            && self.occupied.contains(&(next as u8))
            && !self.assigned.contains(&(next as u8))
            && !others.contains(&(next as u8))
        {
            return Some(next as u8);
        }
        // No bus above `bus` up to `hi` (a bridge on the last bus of its
        // window): nothing is free. `range` panics on an empty range whose
        // start is past its end (issue 11: 3% of fuzzed listings).
        let free: Vec<u8> = if bus < hi {
            self.occupied
                .range(bus + 1..=hi)
                .copied()
                .filter(|b| !self.assigned.contains(b) && u16::from(*b) >= next)
                .collect()
        } else {
            Vec::new()
        };
        let cand = free.iter().copied().find(|b| !others.contains(b));
        // Only on a root bus: below it, a later sibling of an ancestor
        // may own the far bus.
        if depth == 0 && free.len() >= remaining {
            cand
        } else {
            None
        }
    }
}
