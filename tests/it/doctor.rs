//! `virt-pci doctor` against fake roots: every check's PASS / WARN / FAIL /
//! UNKNOWN path, with the evidence it must show, and the command line
//! (exit codes, JSON). Real-kernel proof (an emulated VT-d, and a guest
//! without one) is in the e2e VM (tests/e2e/guest/doctor.sh).

use crate::fakesys::{desktop, vp, FakeSys};
use std::fs;
use std::os::unix::fs::symlink;
use virt_pci::address::PciAddress;
use virt_pci::doctor::{self, Facts, Status};
use virt_pci::host::{sysfs, Host};

const GPU: PciAddress = PciAddress::new(0, 1, 0, 0);
const USB: PciAddress = PciAddress::new(0, 0, 0x14, 0);
const NVME: PciAddress = PciAddress::new(0, 2, 0, 0);
const LPC: PciAddress = PciAddress::new(0, 0, 0x1f, 0);

fn put(f: &FakeSys, rel: &str, content: &str) {
    let p = f.path().join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, content).unwrap();
}

fn host(f: &FakeSys) -> Host {
    sysfs::read(f.path()).unwrap()
}

/// A desktop with an Intel IOMMU that works: DMAR, dmar0, groups, IR
/// interrupts, vfio loaded, a clean command line.
fn good() -> FakeSys {
    let f = desktop();
    put(&f, "sys/firmware/acpi/tables/DMAR", "DMAR...");
    fs::create_dir_all(f.path().join("sys/class/iommu/dmar0/intel-iommu")).unwrap();
    put(&f, "sys/class/iommu/dmar0/intel-iommu/ecap", "f0050aff\n");
    put(
        &f,
        "proc/cmdline",
        "BOOT_IMAGE=/vmlinuz root=/dev/sda1 intel_iommu=on iommu=pt quiet\n",
    );
    put(
        &f,
        "proc/interrupts",
        "           CPU0\n  0:         20   IO-APIC    2-edge      timer\n 24:       1000  IR-PCI-MSI 32768-edge      xhci_hcd\n",
    );
    put(
        &f,
        "sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts",
        "N\n",
    );
    put(&f, "proc/sys/kernel/osrelease", "6.1.0-test\n");
    f
}

fn status_of(c: &doctor::Check) -> Status {
    c.status
}

#[test]
fn iommu_firmware_pass_fail_unknown() {
    let f = good();
    let h = host(&f);
    let c = doctor::iommu_firmware(Facts::Root(f.path()), &h);
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert!(c.message.contains("DMAR"));
    assert!(c.evidence[0]
        .path
        .ends_with("/sys/firmware/acpi/tables/DMAR"));
    assert_eq!(c.evidence[0].content, "(exists)");

    fs::remove_file(f.path().join("sys/firmware/acpi/tables/DMAR")).unwrap();
    let c = doctor::iommu_firmware(Facts::Root(f.path()), &h);
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(c.fix.as_deref().unwrap().contains("VT-d"), "{c:?}");

    put(&f, "sys/firmware/acpi/tables/IVRS", "IVRS");
    let c = doctor::iommu_firmware(Facts::Root(f.path()), &h);
    assert_eq!(c.status, Status::Pass);
    assert!(c.message.contains("AMD-Vi"));

    // No ACPI at all and no groups: cannot tell.
    let bare = FakeSys::new();
    let c = doctor::iommu_firmware(Facts::Root(bare.path()), &host(&bare));
    assert_eq!(c.status, Status::Unknown, "{c:?}");
    // A snapshot never has the tables.
    let c = doctor::iommu_firmware(Facts::Snapshot, &h);
    assert_eq!(c.status, Status::Unknown);
}

#[test]
fn iommu_kernel_pass_fail_with_the_right_fix_unknown() {
    let f = good();
    let c = doctor::iommu_kernel(Facts::Root(f.path()), &host(&f));
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert!(c.message.contains("dmar0"), "{c:?}");

    // No groups, firmware has DMAR: the fix is intel_iommu=on.
    let g = good();
    fs::remove_dir_all(g.path().join("sys/kernel/iommu_groups")).unwrap();
    fs::create_dir_all(g.path().join("sys/kernel/iommu_groups")).unwrap();
    put(&g, "proc/cmdline", "root=/dev/sda1 quiet\n");
    let h = host(&g);
    let c = doctor::iommu_kernel(Facts::Root(g.path()), &h);
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(
        c.fix.as_deref().unwrap().contains("intel_iommu=on"),
        "{c:?}"
    );
    assert!(c
        .evidence
        .iter()
        .any(|e| e.path.ends_with("/proc/cmdline") && e.content == "root=/dev/sda1 quiet"));

    // Switched off on the command line: the fix removes that option.
    put(&g, "proc/cmdline", "root=/dev/sda1 intel_iommu=off\n");
    let c = doctor::iommu_kernel(Facts::Root(g.path()), &h);
    assert_eq!(c.status, Status::Fail);
    assert!(c.message.contains("intel_iommu=off"), "{c:?}");
    assert!(
        c.fix
            .as_deref()
            .unwrap()
            .starts_with("remove `intel_iommu=off`"),
        "{c:?}"
    );

    // Nothing readable: unknown, not pass.
    let bare = FakeSys::new();
    fs::remove_dir_all(bare.path().join("sys/kernel/iommu_groups")).unwrap();
    let c = doctor::iommu_kernel(Facts::Root(bare.path()), &host(&bare));
    assert_eq!(c.status, Status::Unknown, "{c:?}");

    // Snapshots: the recorded state.
    let mut h = host(&f);
    assert_eq!(
        doctor::iommu_kernel(Facts::Snapshot, &h).status,
        Status::Pass
    );
    h.iommu = virt_pci::host::IommuState::Disabled;
    assert_eq!(
        doctor::iommu_kernel(Facts::Snapshot, &h).status,
        Status::Fail
    );
    h.iommu = virt_pci::host::IommuState::Unknown;
    assert_eq!(
        doctor::iommu_kernel(Facts::Snapshot, &h).status,
        Status::Unknown
    );
}

#[test]
fn iommu_pt_is_a_note_never_a_failure() {
    let f = good();
    let c = doctor::iommu_passthrough_mode(Facts::Root(f.path()));
    assert_eq!(c.status, Status::Pass);
    assert!(c.message.starts_with("iommu=pt"));
    put(&f, "proc/cmdline", "root=/dev/sda1\n");
    let c = doctor::iommu_passthrough_mode(Facts::Root(f.path()));
    assert_eq!(c.status, Status::Pass);
    assert!(c.message.contains("not set"));
    fs::remove_file(f.path().join("proc/cmdline")).unwrap();
    assert_eq!(
        doctor::iommu_passthrough_mode(Facts::Root(f.path())).status,
        Status::Unknown
    );
}

#[test]
fn interrupt_remapping_pass_fail_capable_unknown() {
    let f = good();
    let c = doctor::interrupt_remapping(Facts::Root(f.path()));
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert!(c.message.contains("IR-PCI-MSI"), "{c:?}");

    // Interrupts not remapped, but the unit could (ECAP bit 3 set).
    put(
        &f,
        "proc/interrupts",
        "           CPU0\n 24:  1000  PCI-MSI 32768-edge  xhci_hcd\n",
    );
    let c = doctor::interrupt_remapping(Facts::Root(f.path()));
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(c.message.contains("ECAP.IR"), "{c:?}");
    assert!(c
        .evidence
        .iter()
        .any(|e| e.path.ends_with("dmar0/intel-iommu/ecap") && e.content == "f0050aff"));

    // Not capable: the fix names allow_unsafe_interrupts as the last resort.
    put(&f, "sys/class/iommu/dmar0/intel-iommu/ecap", "f0050af0\n");
    let c = doctor::interrupt_remapping(Facts::Root(f.path()));
    assert_eq!(c.status, Status::Fail);
    assert!(c.fix.as_deref().unwrap().contains("intremap=on"), "{c:?}");

    // Unreadable /proc/interrupts (a symlink loop: EACCES cannot be made as root).
    fs::remove_file(f.path().join("proc/interrupts")).unwrap();
    symlink("interrupts", f.path().join("proc/interrupts")).unwrap();
    let c = doctor::interrupt_remapping(Facts::Root(f.path()));
    assert_eq!(c.status, Status::Unknown, "{c:?}");
    assert!(c.evidence[0].content.starts_with("(unreadable:"), "{c:?}");
}

#[test]
fn unsafe_interrupts_warns() {
    let f = good();
    assert_eq!(
        status_of(&doctor::unsafe_interrupts(Facts::Root(f.path()))),
        Status::Pass
    );
    put(
        &f,
        "sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts",
        "Y\n",
    );
    let c = doctor::unsafe_interrupts(Facts::Root(f.path()));
    assert_eq!(c.status, Status::Warn);
    assert_eq!(c.evidence[0].content, "Y");
    assert!(c
        .fix
        .as_deref()
        .unwrap()
        .contains("allow_unsafe_interrupts=1"));
    fs::remove_dir_all(f.path().join("sys/module/vfio_iommu_type1")).unwrap();
    let c = doctor::unsafe_interrupts(Facts::Root(f.path()));
    assert_eq!(c.status, Status::Pass);
    assert!(c.message.contains("not loaded"));
}

#[test]
fn acs_override_warns() {
    let f = good();
    assert_eq!(
        doctor::acs_override(Facts::Root(f.path())).status,
        Status::Pass
    );
    put(
        &f,
        "proc/cmdline",
        "root=/dev/sda1 pcie_acs_override=downstream,multifunction\n",
    );
    let c = doctor::acs_override(Facts::Root(f.path()));
    assert_eq!(c.status, Status::Warn);
    assert!(c.message.contains("downstream,multifunction"));
    assert!(c.message.contains("NOT isolated"));
    assert_eq!(
        doctor::acs_override(Facts::Snapshot).status,
        Status::Unknown
    );
}

#[test]
fn vfio_pci_loaded_loadable_missing_unknown() {
    let f = good();
    // FakeSys registers vfio-pci (its directory lists bound devices in a
    // real sysfs; the fake has only the device-side links).
    let c = doctor::vfio_pci(Facts::Root(f.path()));
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert_eq!(c.message, "vfio-pci is loaded");
    symlink(
        f.path().join("sys/devices/pci0000:00/0000:00:14.0"),
        f.path().join("sys/bus/pci/drivers/vfio-pci/0000:00:14.0"),
    )
    .unwrap();
    let c = doctor::vfio_pci(Facts::Root(f.path()));
    assert_eq!(c.evidence[0].content, "bound: 0000:00:14.0");

    fs::remove_dir_all(f.path().join("sys/bus/pci/drivers/vfio-pci")).unwrap();
    put(
        &f,
        "lib/modules/6.1.0-test/modules.dep",
        "kernel/drivers/vfio/vfio.ko:\nkernel/drivers/vfio/pci/vfio-pci.ko: kernel/drivers/vfio/pci/vfio-pci-core.ko\n",
    );
    let c = doctor::vfio_pci(Facts::Root(f.path()));
    assert_eq!(c.status, Status::Warn, "{c:?}");
    assert!(c.fix.as_deref().unwrap().contains("modprobe vfio-pci"));

    put(
        &f,
        "lib/modules/6.1.0-test/modules.dep",
        "kernel/drivers/vfio/vfio.ko:\n",
    );
    let c = doctor::vfio_pci(Facts::Root(f.path()));
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(c.message.contains("6.1.0-test"));

    // Built in counts as available.
    put(
        &f,
        "lib/modules/6.1.0-test/modules.builtin",
        "kernel/drivers/vfio/pci/vfio-pci.ko\n",
    );
    assert_eq!(doctor::vfio_pci(Facts::Root(f.path())).status, Status::Warn);

    fs::remove_file(f.path().join("proc/sys/kernel/osrelease")).unwrap();
    assert_eq!(
        doctor::vfio_pci(Facts::Root(f.path())).status,
        Status::Unknown
    );
}

#[test]
fn vfio_node_pass_fail() {
    let f = good();
    assert_eq!(
        doctor::vfio_node(Facts::Root(f.path())).status,
        Status::Pass
    );
    fs::remove_file(f.path().join("dev/vfio/vfio")).unwrap();
    let c = doctor::vfio_node(Facts::Root(f.path()));
    assert_eq!(c.status, Status::Fail);
    assert!(c.message.contains("currently not supported"));
}

#[test]
fn libvirt_view_from_libvirts_own_domain_capabilities() {
    // libvirt 9.0's test data for QEMU 7.2 (the e2e guest's version).
    let xml = fs::read_to_string(
        "tests/corpus/libvirt-9.0.0/tests/domaincapsdata/qemu_7.2.0-q35.x86_64.xml",
    )
    .expect("libvirt corpus (scripts/fetch-corpus.sh)");
    let c = doctor::libvirt_view("qemu:///system", Ok(&xml));
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert!(
        c.evidence[0].content.contains("pciBackend: default vfio"),
        "{c:?}"
    );
    let no_vfio = xml.replace("<value>vfio</value>", "");
    assert_eq!(
        doctor::libvirt_view("qemu:///system", Ok(&no_vfio)).status,
        Status::Fail
    );
    let c = doctor::libvirt_view("qemu:///system", Err("Failed to connect socket"));
    assert_eq!(c.status, Status::Fail);
    assert!(c.fix.as_deref().unwrap().contains("libvirtd"));
}

#[test]
fn device_plan_is_shows_verdict() {
    let f = good();
    let h = host(&f);
    // Bound to host drivers: the plan's warning is shown as evidence, the
    // status is device-host-driver's to give.
    let c = doctor::device_plan(&h, &GPU, true);
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert!(c.message.contains("0000:01:00.0 0000:01:00.1"), "{c:?}");
    assert!(
        c.evidence.iter().any(|e| e.path == "plan [host-driver]"),
        "{c:?}"
    );
    // Only one function of the group: the split warns.
    let c = doctor::device_plan(&h, &GPU, false);
    assert_eq!(c.status, Status::Warn, "{c:?}");
    let c = doctor::device_plan(&h, &LPC, true);
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(c.message.starts_with("blocked"));
    let c = doctor::device_plan(&h, &USB, true);
    assert_eq!(c.status, Status::Pass, "{c:?}");
}

#[test]
fn device_reset_paths() {
    let f = good();
    let mut h = host(&f);
    assert_eq!(doctor::device_reset(&h, &GPU).status, Status::Pass);
    // NVMe has a bus reset only.
    let c = doctor::device_reset(&h, &NVME);
    assert_eq!(c.status, Status::Warn);
    assert!(c.message.contains("only a bus reset"));
    // The LPC bridge has none.
    let c = doctor::device_reset(&h, &LPC);
    assert_eq!(c.status, Status::Warn);
    assert!(c.message.contains("no reset method"));
    // An RX 580 (Polaris 10): the reset bug, with vendor-reset named.
    let d = h.devices.get_mut(&GPU).unwrap();
    d.vendor_id = "0x1002".into();
    d.device_id = "0x67df".into();
    let c = doctor::device_reset(&h, &GPU);
    assert_eq!(c.status, Status::Warn, "{c:?}");
    assert!(c.message.contains("Polaris 10"));
    assert!(c.fix.as_deref().unwrap().contains("vendor-reset"));
    assert!(c
        .fix
        .as_deref()
        .unwrap()
        .contains("/sys/bus/pci/devices/0000:01:00.0/reset_method"));
    // Unknown methods: unknown.
    let d = h.devices.get_mut(&USB).unwrap();
    d.reset_methods = None;
    d.reset = None;
    assert_eq!(doctor::device_reset(&h, &USB).status, Status::Unknown);
}

#[test]
fn device_host_driver_recommends_boot_binding_for_known_hangs() {
    let f = good();
    let mut h = host(&f);
    const AUDIO: PciAddress = PciAddress::new(0, 1, 0, 1);
    assert_eq!(
        doctor::device_host_driver(Facts::Root(f.path()), &h, &AUDIO, false).status,
        Status::Pass,
        "snd_hda_intel is not in the table"
    );
    assert_eq!(
        doctor::device_host_driver(Facts::Root(f.path()), &h, &GPU, false).status,
        Status::Warn,
        "nouveau is"
    );
    h.devices.get_mut(&GPU).unwrap().driver = Some("nvidia".into());
    let c = doctor::device_host_driver(Facts::Root(f.path()), &h, &GPU, false);
    assert_eq!(c.status, Status::Warn);
    assert_eq!(
        c.fix.as_deref(),
        Some("bind it to vfio-pci at boot instead: `virt-pci detach --persist 0000:01:00.0`")
    );
    assert_eq!(
        doctor::device_host_driver(Facts::Root(f.path()), &h, &GPU, true).status,
        Status::Pass
    );
    assert_eq!(
        doctor::device_host_driver(Facts::Root(f.path()), &h, &USB, false).status,
        Status::Pass
    );
}

#[test]
fn device_boot_vga_rom_and_link() {
    let f = good();
    let gpu_dir = "sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0";
    put(&f, &format!("{gpu_dir}/boot_vga"), "1\n");
    let h = host(&f);
    let c = doctor::device_boot_vga(&h, &GPU).unwrap();
    assert_eq!(c.status, Status::Warn);
    assert!(c.message.contains("single-GPU passthrough"));
    assert!(
        doctor::device_boot_vga(&h, &NVME).is_none(),
        "only VGA functions have boot_vga"
    );
    put(&f, &format!("{gpu_dir}/boot_vga"), "0\n");
    assert_eq!(
        doctor::device_boot_vga(&host(&f), &GPU).unwrap().status,
        Status::Pass
    );

    // ROM: a GPU without one warns; with one passes; a snapshot does not know.
    let c = doctor::device_rom(Facts::Root(f.path()), &h, &GPU);
    assert_eq!(c.status, Status::Warn, "{c:?}");
    assert_eq!(
        doctor::device_rom(Facts::Root(f.path()), &h, &NVME).status,
        Status::Pass
    );
    fs::write(f.path().join(gpu_dir).join("rom"), vec![0u8; 131072]).unwrap();
    let c = doctor::device_rom(Facts::Root(f.path()), &h, &GPU);
    assert_eq!(c.status, Status::Pass);
    assert!(c.message.contains("128 KiB"));
    assert_eq!(
        doctor::device_rom(Facts::Snapshot, &h, &GPU).status,
        Status::Unknown
    );

    // Link: none recorded, then full, then downtrained.
    assert_eq!(
        doctor::device_link(Facts::Root(f.path()), &h, &GPU).status,
        Status::Unknown
    );
    for (n, v) in [
        ("current_link_speed", "16.0 GT/s PCIe"),
        ("max_link_speed", "16.0 GT/s PCIe"),
        ("current_link_width", "16"),
        ("max_link_width", "16"),
    ] {
        put(&f, &format!("{gpu_dir}/{n}"), &format!("{v}\n"));
    }
    let c = doctor::device_link(Facts::Root(f.path()), &h, &GPU);
    assert_eq!(c.status, Status::Pass, "{c:?}");
    put(
        &f,
        &format!("{gpu_dir}/current_link_speed"),
        "2.5 GT/s PCIe\n",
    );
    put(&f, &format!("{gpu_dir}/current_link_width"), "8\n");
    let c = doctor::device_link(Facts::Root(f.path()), &h, &GPU);
    assert_eq!(c.status, Status::Warn);
    assert_eq!(
        c.message,
        "running below its capability: 2.5 GT/s PCIe x8, capable of 16.0 GT/s PCIe x16"
    );
}

#[test]
fn cli_exit_codes_and_json() {
    let f = good();
    let out = vp(&["--root", &f.root(), "doctor", "--json", "00:14.0"])
        .assert()
        .code(0);
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v["fail"], 0);
    let ids: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.starts_with(&["iommu-firmware", "iommu-kernel"]),
        "{ids:?}"
    );
    assert!(ids.contains(&"device-plan"));
    // A FAIL anywhere: exit 1, and the fix is printed.
    fs::remove_file(f.path().join("dev/vfio/vfio")).unwrap();
    vp(&["--root", &f.root(), "doctor"])
        .assert()
        .code(1)
        .stdout(predicates::str::contains("FAIL    /dev/vfio/vfio"))
        .stdout(predicates::str::contains("fix: `modprobe vfio`"));
    // A snapshot: unknowns, never a pass for what it cannot know.
    let out = vp(&[
        "--snapshot",
        "samples/hosts/013-b560-tigerlake-rx7600-reset-usb.json",
        "doctor",
        "--json",
    ])
    .assert()
    .code(0);
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    for c in v["checks"].as_array().unwrap() {
        if c["id"] != "iommu-kernel" {
            assert_eq!(c["status"], "UNKNOWN", "{c}");
        }
    }
    // Bad device spec: usage error.
    vp(&["--root", &f.root(), "doctor", "zz:zz"])
        .assert()
        .code(2);
}

#[test]
fn an_unverified_plan_is_unknown_not_a_pass() {
    // A published listing does not say which GPU is the boot VGA device.
    let h = virt_pci::host::snapshot::load(std::path::Path::new(
        "samples/hosts/017-x570-msi-matisse-gt710-rx580.json",
    ))
    .unwrap();
    let rx580 = PciAddress::new(0, 0x2d, 0, 0);
    let c = doctor::device_plan(&h, &rx580, true);
    assert_eq!(c.status, Status::Unknown, "{c:?}");
    assert!(c.message.starts_with("unverified:"), "{c:?}");
    let c = doctor::device_boot_vga(&h, &rx580).unwrap();
    assert_eq!(c.status, Status::Unknown, "{c:?}");
    let c = doctor::device_reset(&h, &rx580);
    assert_eq!(
        c.status,
        Status::Warn,
        "the table needs only the ids: {c:?}"
    );
}
