//! Test fixtures of the action plans and the executor: a host with one
//! GPU group and a chipset group, and a backend that fails on demand.

use super::{Backend, BackendError, Op};
use crate::address::PciAddress;
use crate::host::{Device, GroupMember, Host, IommuState};

/// A hand-written fake backend: no real part can fail on demand, and the
/// point is the executor's ordering and rollback, not any device.
#[derive(Default)]
pub(crate) struct Fake {
    pub(crate) fail_on: Option<(String, PciAddress)>,
    pub(crate) log: Vec<String>,
}

impl Backend for Fake {
    fn name(&self) -> String {
        "fake".into()
    }
    fn describe(&self, op: &Op, a: &PciAddress, _: Option<&str>) -> Vec<String> {
        vec![format!("{op} {a}")]
    }
    fn detach(&mut self, a: &PciAddress, _d: &str) -> Result<(), BackendError> {
        self.call("detach", a)
    }
    fn reattach(&mut self, a: &PciAddress) -> Result<(), BackendError> {
        self.call("reattach", a)
    }
    fn reset(&mut self, a: &PciAddress) -> Result<(), BackendError> {
        self.call("reset", a)
    }
}

impl Fake {
    fn call(&mut self, what: &str, a: &PciAddress) -> Result<(), BackendError> {
        self.log.push(format!("{what} {a}"));
        if self.fail_on.as_ref() == Some(&(what.to_string(), *a)) {
            Err(BackendError::new(format!("{what} {a} failed: device busy")))
        } else {
            Ok(())
        }
    }
}

pub(crate) fn host() -> Host {
    let mut h = Host {
        source: "test".into(),
        iommu: IommuState::Enabled,
        ..Host::default()
    };
    let mut add = |a: PciAddress, class: u32, g: u32, drv: Option<&str>, reset: bool| {
        let mut d = Device::new(a, 0x10de, 0x1000 + u16::from(a.function), class);
        d.iommu_group = Some(g);
        d.driver = drv.map(str::to_string);
        d.reset_methods = Some(if reset { vec!["flr".into()] } else { vec![] });
        d.reset = Some(reset);
        h.devices.insert(a, d);
        h.groups.entry(g).or_default().push(GroupMember::Pci(a));
    };
    add(
        PciAddress::new(0, 0, 1, 0),
        0x060400,
        1,
        Some("pcieport"),
        true,
    );
    add(
        PciAddress::new(0, 1, 0, 0),
        0x030000,
        1,
        Some("nouveau"),
        true,
    );
    add(
        PciAddress::new(0, 1, 0, 1),
        0x040300,
        1,
        Some("snd_hda_intel"),
        false,
    );
    add(
        PciAddress::new(0, 1, 0, 2),
        0x0c0330,
        1,
        Some("vfio-pci"),
        true,
    );
    add(PciAddress::new(0, 0, 0x1f, 0), 0x060100, 2, None, false);
    add(
        PciAddress::new(0, 0, 0x1f, 3),
        0x040300,
        2,
        Some("snd_hda_intel"),
        true,
    );
    h.mark_intrinsic_critical();
    h.facts = crate::host::HostFacts::measured();
    h
}

pub(crate) const GPU: PciAddress = PciAddress::new(0, 1, 0, 0);
pub(crate) const HDA: PciAddress = PciAddress::new(0, 1, 0, 1);
pub(crate) const USB: PciAddress = PciAddress::new(0, 1, 0, 2);
