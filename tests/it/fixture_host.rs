//! The small host used by the edit tests: `tests/fixtures/host-gpu.json`.
//!
//! A hand-built model (no real machine has exactly this), written through
//! the library so the snapshot format stays right: a 4-function Turing GPU
//! behind a root port (group 1), onboard audio next to the LPC bridge
//! (group 2, blocked), an NVMe carrying the root filesystem (group 3,
//! blocked), and a NIC alone in group 4. Run with
//! `VIRT_PCI_WRITE_FIXTURES=1 cargo test --test it fixture_host::` to rewrite it.

use virt_pci::host::{snapshot, Critical, Device, GroupMember, Host, IommuState};
use virt_pci::PciAddress;

fn host() -> Host {
    let mut h = Host {
        source: "fixture".into(),
        iommu: IommuState::Enabled,
        ..Host::default()
    };
    let mut add = |a: PciAddress, v: u16, d: u16, class: u32, g: u32, drv: Option<&str>| {
        let mut dev = Device::new(a, v, d, class);
        dev.iommu_group = Some(g);
        dev.driver = drv.map(str::to_string);
        dev.reset_methods = Some(vec!["flr".into(), "bus".into()]);
        dev.reset = Some(true);
        h.devices.insert(a, dev);
        h.groups.entry(g).or_default().push(GroupMember::Pci(a));
    };
    let p = PciAddress::new;
    add(p(0, 0, 0, 0), 0x8086, 0x3e30, 0x060000, 0, None);
    add(p(0, 0, 1, 0), 0x8086, 0x1901, 0x060400, 1, Some("pcieport"));
    add(p(0, 1, 0, 0), 0x10de, 0x1e84, 0x030000, 1, Some("nouveau"));
    add(
        p(0, 1, 0, 1),
        0x10de,
        0x10f8,
        0x040300,
        1,
        Some("snd_hda_intel"),
    );
    add(p(0, 1, 0, 2), 0x10de, 0x1ad8, 0x0c0330, 1, Some("xhci_hcd"));
    add(
        p(0, 1, 0, 3),
        0x10de,
        0x1ad9,
        0x0c8000,
        1,
        Some("nvidia-gpu"),
    );
    add(p(0, 0, 0x1f, 0), 0x8086, 0xa305, 0x060100, 2, None);
    add(
        p(0, 0, 0x1f, 3),
        0x8086,
        0xa348,
        0x040300,
        2,
        Some("snd_hda_intel"),
    );
    add(p(0, 2, 0, 0), 0x144d, 0xa808, 0x010802, 3, Some("nvme"));
    add(p(0, 3, 0, 0), 0x8086, 0x1533, 0x020000, 4, Some("igb"));
    for f in 0..4 {
        if let Some(d) = h.devices.get_mut(&p(0, 1, 0, f)) {
            d.parents = vec![p(0, 0, 1, 0)];
        }
    }
    if let Some(d) = h.devices.get_mut(&p(0, 2, 0, 0)) {
        d.critical.push(Critical::RootFilesystem {
            block: Some("nvme0n1".into()),
        });
    }
    h.mark_intrinsic_critical();
    // A host read from its own sysfs: every host-critical fact measured.
    h.facts = virt_pci::host::HostFacts::measured();
    h
}

#[test]
fn fixture_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/host-gpu.json");
    let want = snapshot::to_string(&host());
    if std::env::var_os("VIRT_PCI_WRITE_FIXTURES").is_some() {
        std::fs::write(path, &want).unwrap();
    }
    let have = std::fs::read_to_string(path).unwrap_or_default();
    assert_eq!(have, want, "regenerate with VIRT_PCI_WRITE_FIXTURES=1");
}
