//! The plan's test host: a GPU and its audio behind a root port, an
//! ISA bridge and onboard audio, a driverless host bridge; every fact
//! measured. Real machines come from `samples/hosts/` through the snapshot
//! reader ([`sample`]).

use super::PlanOptions;
use crate::address::PciAddress;
use crate::host::{Device, GroupMember, Host, IommuState};

pub(crate) const GPU: PciAddress = PciAddress::new(0, 1, 0, 0);
pub(crate) const HDA: PciAddress = PciAddress::new(0, 1, 0, 1);

pub(crate) fn host() -> Host {
    let mut h = Host {
        source: "test".into(),
        iommu: IommuState::Enabled,
        ..Host::default()
    };
    let mut add = |a: PciAddress, class: u32, g: u32, drv: Option<&str>| {
        let mut d = Device::new(a, 0x10de, 0x1000 + u16::from(a.function), class);
        d.iommu_group = Some(g);
        d.driver = drv.map(str::to_string);
        d.reset_methods = Some(vec!["flr".into()]);
        d.reset = Some(true);
        h.devices.insert(a, d);
        h.groups.entry(g).or_default().push(GroupMember::Pci(a));
    };
    add(PciAddress::new(0, 0, 0, 0), 0x060000, 0, None);
    add(PciAddress::new(0, 0, 1, 0), 0x060400, 1, Some("pcieport"));
    add(PciAddress::new(0, 1, 0, 0), 0x030000, 1, Some("nouveau"));
    add(
        PciAddress::new(0, 1, 0, 1),
        0x040300,
        1,
        Some("snd_hda_intel"),
    );
    add(PciAddress::new(0, 0, 0x1f, 0), 0x060100, 2, None);
    add(
        PciAddress::new(0, 0, 0x1f, 3),
        0x040300,
        2,
        Some("snd_hda_intel"),
    );
    h.mark_intrinsic_critical();
    h.facts = crate::host::HostFacts::measured();
    h
}

/// Only the named functions (`--no-strict-group`).
pub(crate) fn loose() -> PlanOptions {
    PlanOptions {
        strict_group: false,
        for_domain: None,
    }
}

/// A real machine from `samples/hosts/`, read as `--snapshot` reads it.
pub(crate) fn sample(name: &str) -> Host {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("samples/hosts")
        .join(name);
    crate::host::snapshot::load(&path).unwrap()
}

pub(crate) fn a(s: &str) -> PciAddress {
    PciAddress::parse(s).unwrap()
}

/// The codes of some findings, in order.
pub(crate) fn codes(v: &[super::Finding]) -> Vec<super::Code> {
    v.iter().map(|f| f.code).collect()
}

/// The one finding with `code` in `v` (fails the test when there is none).
pub(crate) fn one(v: &[super::Finding], code: super::Code) -> &super::Finding {
    v.iter()
        .find(|f| f.code == code)
        .unwrap_or_else(|| panic!("no {code} in {v:#?}"))
}
