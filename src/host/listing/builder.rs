//! The state a listing is read into: recognised lines (`lines.rs`) become
//! devices, group members, USB buses and the paste's root-filesystem and
//! default-route evidence. What the lines leave open is filled in at the
//! end by the inference rules (`infer.rs`, `buses.rs`).
//!
//! Kept apart from the recognisers because one fact can come from several
//! formats (a driver from `lspci -k`, a `-vmm` record or a sysfs dump) and
//! is merged here once: the first paste to state a fact wins, and only the
//! first paste's groups are taken (companions add device facts).

use super::lines::{self, Context, DevLine, Line, R15Row, UsbRow};
use crate::address::PciAddress;
use crate::host::{Device, GroupMember, UsbBus, UsbDevice};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Default)]
pub(crate) struct Builder {
    pub devices: BTreeMap<PciAddress, Device>,
    pub groups: BTreeMap<u32, Vec<GroupMember>>,
    pub provenance: Vec<String>,
    pub usb: BTreeMap<u32, UsbBus>,
    /// Index of the current paste (companions increase it).
    section: usize,
    /// The paste whose groups are taken.
    group_section: Option<usize>,
    cur_group: Option<u32>,
    last_dev: Option<PciAddress>,
    /// Inside a `$ sysfs attributes of BDF` dump.
    sysfs_dev: Option<PciAddress>,
    pub known_parents: BTreeSet<PciAddress>,
    pub names: BTreeMap<String, (u16, u16)>,
    /// Devices seen without ids, to fill from `names` at the end.
    pub unnamed: Vec<(PciAddress, String)>,
    pub block_links: Vec<(String, PciAddress)>,
    pub net_links: Vec<(String, PciAddress)>,
    pub root_source: Option<String>,
    pub default_iface: Option<String>,
    pub no_group_evidence: bool,
    pub saw_drivers: bool,
    /// The `lspci -vmm` record being read: (field, value) pairs.
    vmm: Vec<(String, String)>,
}

impl Builder {
    /// Read one line (1-based `no` for errors).
    pub(crate) fn line(&mut self, raw: &str, no: usize) -> Result<(), (usize, String)> {
        let cx = Context {
            in_sysfs_dump: self.sysfs_dev.is_some(),
            in_vmm_record: !self.vmm.is_empty(),
        };
        let line = lines::recognise(raw, &cx).map_err(|e| (no, e))?;
        if !line.keeps_vmm_record() {
            self.flush_vmm();
        }
        self.apply(line);
        Ok(())
    }

    /// What each recognised line changes.
    fn apply(&mut self, line: Line<'_>) {
        match line {
            Line::Blank | Line::Comment | Line::Ignored => {}
            Line::Source(s) => self.provenance.push(format!("source: {s}")),
            Line::Companion => {
                self.section += 1;
                self.cur_group = None;
                self.last_dev = None;
                self.sysfs_dev = None;
            }
            // `### Group N ###`: a repeat of the groups; members merge as facts.
            Line::GroupRepeat => self.cur_group = None,
            Line::SysfsHeader(a) => {
                self.sysfs_dev = a;
                self.cur_group = None;
            }
            Line::Shell => {
                self.sysfs_dev = None;
                self.cur_group = None;
            }
            Line::SysfsAttr(t) => {
                if let Some(a) = self.sysfs_dev {
                    self.sysfs_attr(a, t);
                }
            }
            Line::VmmField(k, v) => {
                if k == "Slot" {
                    self.flush_vmm();
                }
                self.vmm.push((k.to_string(), v.to_string()));
            }
            Line::DmesgMember(m) => {
                if let Some((a, g)) = m.filter(|_| self.in_group_section()) {
                    self.devices.entry(a).or_insert_with(|| blank(a));
                    self.add_member(g, GroupMember::Pci(a));
                }
            }
            Line::FindMember(m) => {
                if let Some((g, name)) = m {
                    self.add_member(g, GroupMember::from_name(name));
                }
            }
            Line::GroupHeader(g, dev) => {
                self.cur_group = Some(g);
                if let Some(dl) = dev {
                    let a = self.device(dl);
                    self.add_member(g, GroupMember::Pci(a));
                }
            }
            Line::R15Header(g, row) => {
                self.cur_group = Some(g);
                self.r15_device(g, row);
            }
            Line::R15Continuation(row) => {
                if let Some(g) = self.cur_group {
                    self.r15_device(g, row);
                }
            }
            Line::Usb(row) => self.usb_row(row),
            other => self.apply_device_fact(other),
        }
    }

    /// Lines that add facts to a device or the host: `lspci -k` details,
    /// links, findmnt and `ip route`, device lines and bare members.
    fn apply_device_fact(&mut self, line: Line<'_>) {
        match line {
            Line::Subsystem(Some((v, d))) => {
                if let Some(dev) = self.last_dev.and_then(|a| self.devices.get_mut(&a)) {
                    dev.subsystem_vendor_id = Some(format!("0x{v:04x}"));
                    dev.subsystem_device_id = Some(format!("0x{d:04x}"));
                }
            }
            Line::Driver(name) => {
                if let Some(dev) = self.last_dev.and_then(|a| self.devices.get_mut(&a)) {
                    dev.driver = Some(name.to_string());
                    self.saw_drivers = true;
                }
            }
            Line::SysfsLink(Some((a, chain))) => {
                let dev = self.devices.entry(a).or_insert_with(|| blank(a));
                dev.parents = chain;
                self.known_parents.insert(a);
            }
            Line::BlockLink(n, a) => self.block_links.push((n, a)),
            Line::NetLink(n, a) => self.net_links.push((n, a)),
            Line::RootSource(s) => self.root_source = Some(s.to_string()),
            Line::DefaultRoute(i) => self.default_iface = i.map(str::to_string),
            Line::Device { dev, indented } => {
                let a = self.device(dev);
                // Members of a group header are indented; an unindented lspci
                // line starts a plain `lspci` paste.
                match self.cur_group {
                    Some(g) if indented => self.add_member(g, GroupMember::Pci(a)),
                    _ => self.cur_group = None,
                }
            }
            // A bare non-PCI member under a group header (an mdev UUID).
            Line::Member(t) => {
                if let Some(g) = self.cur_group {
                    self.add_member(g, GroupMember::Other(t.to_string()));
                }
            }
            _ => {}
        }
    }

    /// Groups come from the first paste that lists any; a companion's
    /// group lines add nothing.
    fn in_group_section(&self) -> bool {
        match self.group_section {
            None => true,
            Some(s) => s == self.section,
        }
    }

    fn add_member(&mut self, g: u32, m: GroupMember) {
        if !self.in_group_section() {
            return;
        }
        self.group_section = Some(self.section);
        let v = self.groups.entry(g).or_default();
        if !v.contains(&m) {
            v.push(m);
        }
    }

    /// Merge one device line; returns its address. What is already known
    /// stays: the first line to give a class, revision, name or ids wins.
    fn device(&mut self, dl: DevLine) -> PciAddress {
        let a = dl.addr;
        let class16 = dl.class16.unwrap_or(0xff00);
        let d = self.devices.entry(a).or_insert_with(|| blank(a));
        if d.class.is_empty() && dl.class16.is_some() {
            let pi = dl
                .prog_if
                .unwrap_or_else(|| super::infer::default_prog_if(class16, &dl.name));
            d.class = format!("0x{:06x}", (u32::from(class16) << 8) | u32::from(pi));
            d.header_type = Some(super::infer::header_from_class(class16));
        }
        if d.revision.is_none() {
            d.revision = dl.rev.map(|r| format!("0x{r:02x}"));
        }
        if d.device_name.is_none() && !dl.name.is_empty() {
            d.device_name = Some(dl.name.clone());
        }
        match dl.ids {
            Some((v, dv)) => {
                if d.vendor_id.is_empty() {
                    d.vendor_id = format!("0x{v:04x}");
                    d.device_id = format!("0x{dv:04x}");
                }
                self.names.entry(dl.name).or_insert((v, dv));
            }
            None => {
                if d.vendor_id.is_empty() {
                    self.unnamed.push((a, dl.name));
                }
            }
        }
        self.last_dev = Some(a);
        a
    }

    /// Turn the pending `lspci -vmm` record into a device.
    pub(crate) fn flush_vmm(&mut self) {
        let rec = std::mem::take(&mut self.vmm);
        let Some(r) = lines::vmm_record(&rec) else {
            return;
        };
        let a = self.device(r.dev);
        if let Some(d) = self.devices.get_mut(&a) {
            if let Some((sv, sd)) = r.subsystem {
                d.subsystem_vendor_id = Some(format!("0x{sv:04x}"));
                d.subsystem_device_id = Some(format!("0x{sd:04x}"));
            }
            if r.driver.is_some() {
                d.driver = r.driver;
                self.saw_drivers = true;
            }
        }
        if let Some(g) = r.group {
            self.add_member(g, GroupMember::Pci(a));
        }
    }

    fn r15_device(&mut self, g: u32, row: Option<R15Row>) {
        let Some(row) = row else { return };
        let a = self.device(row.dev);
        if let Some(dev) = self.devices.get_mut(&a) {
            // `[R]` means the `reset` file exists; its absence is not
            // proof of no reset in this script's output, so keep None.
            if row.reset {
                dev.reset = Some(true);
            }
        }
        self.add_member(g, GroupMember::Pci(a));
    }

    /// A USB row belongs to the controller of the device line above it.
    fn usb_row(&mut self, row: Option<UsbRow>) {
        let Some(ctrl) = self.last_dev else { return };
        let Some(r) = row else { return };
        let b = self.usb.entry(r.bus).or_insert(UsbBus {
            bus: r.bus,
            controller: Some(ctrl),
            devices: Vec::new(),
        });
        if r.device == 1 && r.vendor == 0x1d6b {
            return; // the root hub is the bus itself
        }
        b.devices.push(UsbDevice {
            bus: r.bus,
            device: r.device,
            vendor_id: format!("{:04x}", r.vendor),
            product_id: format!("{:04x}", r.product),
            name: if r.name.is_empty() {
                None
            } else {
                Some(r.name)
            },
        });
    }

    /// A raw sysfs dump's attributes are the kernel's own values.
    fn sysfs_attr(&mut self, a: PciAddress, t: &str) {
        if t.starts_with("iommu_group: absent") {
            self.no_group_evidence = true;
        }
        let dev = self.devices.entry(a).or_insert_with(|| blank(a));
        if let Some(target) = t.strip_prefix("driver -> ") {
            dev.driver = target.rsplit('/').next().map(str::to_string);
            self.saw_drivers = true;
            return;
        }
        match t {
            "reset_method: absent" => dev.reset_methods = Some(Vec::new()),
            "reset: absent" => dev.reset = Some(false),
            "boot_vga: absent" => dev.boot_vga = None,
            _ => {}
        }
        let Some((k, v)) = t.split_once('=') else {
            return;
        };
        let v = v.trim().to_string();
        match k {
            "vendor" => dev.vendor_id = v,
            "device" => dev.device_id = v,
            "subsystem_vendor" => dev.subsystem_vendor_id = Some(v),
            "subsystem_device" => dev.subsystem_device_id = Some(v),
            "class" => dev.class = v,
            "revision" => dev.revision = Some(v),
            "numa_node" => dev.numa_node = v.parse().ok(),
            "reset_method" => {
                dev.reset_methods = Some(v.split_whitespace().map(str::to_string).collect())
            }
            "boot_vga" => dev.boot_vga = Some(v == "1"),
            _ => {}
        }
    }
}

/// A device known only by address so far (ids filled later or left 0xffff).
fn blank(a: PciAddress) -> Device {
    let mut d = Device::new(a, 0, 0, 0);
    d.vendor_id = String::new();
    d.device_id = String::new();
    d.class = String::new();
    d
}
