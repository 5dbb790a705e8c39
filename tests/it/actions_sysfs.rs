//! The device actions through the sysfs backend, against fake sysfs trees
//! in tempdirs: the exact writes, their order, all-or-nothing, refusals.
//! Real-kernel proof is the e2e VM's job.

use crate::fakesys::{desktop, vp};
use predicates::str::contains;
use virt_pci::actions::{self, sysfs::SysfsBackend, ActionOptions, Backend};
use virt_pci::address::PciAddress;

const GPU: PciAddress = PciAddress::new(0, 1, 0, 0);

#[test]
fn sysfs_backend_writes_exactly_what_libvirt_writes_in_order() {
    let f = desktop();
    let host = virt_pci::host::sysfs::read(f.path()).unwrap();
    let mut b = SysfsBackend::new(f.path());
    assert!(!b.verify, "a fake tree has no kernel: nothing to verify");
    let ap = actions::detach_plan(&host, &[GPU], &ActionOptions::default(), &b);
    let out = actions::execute(&ap, &mut b);
    assert!(out.ok(), "{:?}", out.failed);
    let w: Vec<(String, String)> = b.writes().to_vec();
    let expect = [
        (
            "sys/bus/pci/devices/0000:01:00.0/driver_override",
            "vfio-pci",
        ),
        (
            "sys/bus/pci/devices/0000:01:00.0/driver/unbind",
            "0000:01:00.0",
        ),
        ("sys/bus/pci/drivers_probe", "0000:01:00.0"),
        (
            "sys/bus/pci/devices/0000:01:00.1/driver_override",
            "vfio-pci",
        ),
        (
            "sys/bus/pci/devices/0000:01:00.1/driver/unbind",
            "0000:01:00.1",
        ),
        ("sys/bus/pci/drivers_probe", "0000:01:00.1"),
    ];
    let got: Vec<(&str, &str)> = w.iter().map(|(p, v)| (p.as_str(), v.as_str())).collect();
    assert_eq!(got, expect);
    // and the files really hold it (unbind went through the driver link)
    assert_eq!(f.read("sys/bus/pci/drivers/nouveau/unbind"), "0000:01:00.0");
    assert_eq!(
        f.read("sys/bus/pci/drivers/snd_hda_intel/unbind"),
        "0000:01:00.1"
    );
    assert_eq!(
        f.read("sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0/driver_override"),
        "vfio-pci"
    );
    // the root port stayed untouched
    assert_eq!(
        f.read("sys/devices/pci0000:00/0000:00:01.0/driver_override"),
        "(null)\n"
    );

    // back: clear the override with "\n", unbind, probe
    let mut b = SysfsBackend::new(f.path());
    b.reattach(&GPU).unwrap();
    let got: Vec<(String, String)> = b.writes().to_vec();
    assert_eq!(
        got,
        vec![
            (
                "sys/bus/pci/devices/0000:01:00.0/driver_override".to_string(),
                "\n".to_string()
            ),
            (
                "sys/bus/pci/devices/0000:01:00.0/driver/unbind".into(),
                "0000:01:00.0".into()
            ),
            ("sys/bus/pci/drivers_probe".into(), "0000:01:00.0".into()),
        ]
    );
    b.reset(&GPU).unwrap();
    assert_eq!(
        f.read("sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0/reset"),
        "1"
    );
}

#[test]
fn sysfs_backend_explains_a_missing_vfio_pci_driver() {
    let f = desktop();
    std::fs::remove_dir_all(f.path().join("sys/bus/pci/drivers/vfio-pci")).unwrap();
    let mut b = SysfsBackend::new(f.path());
    let e = b.detach(&GPU, "vfio").unwrap_err();
    assert!(e.message.contains("vfio-pci driver is not loaded"));
    assert_eq!(e.help.as_deref(), Some("load it with `modprobe vfio-pci`"));
    assert!(b.writes().is_empty(), "nothing written before the check");
}

#[test]
fn detach_dry_run_prints_the_exact_writes_and_changes_nothing() {
    let f = desktop();
    let root = f.root();
    vp(&["--root", &root, "detach", "01:00.0", "--dry-run"])
        .assert()
        .success()
        .stdout(contains("1. detach (to vfio) 0000:01:00.0 (requested)"))
        .stdout(contains(format!(
            "write vfio-pci > {root}/sys/bus/pci/devices/0000:01:00.1/driver_override"
        )))
        .stdout(contains("(bound to snd_hda_intel)"))
        .stdout(contains(format!(
            "write 0000:01:00.1 > {root}/sys/bus/pci/drivers_probe"
        )));
    assert_eq!(f.read("sys/bus/pci/drivers/nouveau/unbind"), "");
    assert_eq!(f.read("sys/bus/pci/drivers_probe"), "");
}

#[test]
fn detach_json_is_the_plan_then_the_outcome() {
    let f = desktop();
    let root = f.root();
    let out = vp(&[
        "--root",
        &root,
        "detach",
        "pci_0000_01_00_1",
        "--dry-run",
        "--json",
    ])
    .assert()
    .success()
    .get_output()
    .stdout
    .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["dry_run"], true);
    let steps = v["plan"]["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0]["op"], "detach");
    assert_eq!(steps[0]["driver"], "vfio");
    assert_eq!(steps[0]["address"], "0000:01:00.0");
    assert_eq!(steps[1]["node"], "pci_0000_01_00_1");

    let out = vp(&["--root", &root, "detach", "10de:1c82", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["outcome"]["done"].as_array().unwrap().len(), 2);
    assert_eq!(f.read("sys/bus/pci/drivers_probe"), "0000:01:00.1");
}

#[test]
fn detach_is_all_or_nothing() {
    let f = desktop();
    let root = f.root();
    // The audio function's driver_override cannot be written (a kernel
    // without the attribute): the GPU, detached first, must come back.
    std::fs::remove_file(
        f.path()
            .join("sys/devices/pci0000:00/0000:00:01.0/0000:01:00.1/driver_override"),
    )
    .unwrap();
    vp(&["--root", &root, "detach", "01:00.0"])
        .assert()
        .code(1)
        .stderr(contains("detach failed: detach (to vfio) 0000:01:00.1"))
        .stderr(contains("driver_override"))
        .stderr(contains("rolled back: reattached 0000:01:00.0"));
    // the same as data
    let out = vp(&["--root", &root, "detach", "01:00.0", "--json"])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["outcome"]["failed"]["step"]["address"], "0000:01:00.1");
    assert!(v["outcome"]["failed"]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("driver_override"));
    assert_eq!(
        v["outcome"]["rolled_back"],
        serde_json::json!(["0000:01:00.0"])
    );
    // the GPU's override was cleared again by the rollback
    assert_eq!(
        f.read("sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0/driver_override"),
        "\n"
    );
}

#[test]
fn host_critical_groups_are_refused_without_force() {
    let f = desktop();
    let root = f.root();
    vp(&["--root", &root, "detach", "00:1f.4"])
        .assert()
        .code(1)
        .stderr(contains("refusing to detach"))
        .stderr(contains("ISA/LPC bridge"))
        .stderr(contains("--force"));
    assert_eq!(f.read("sys/bus/pci/drivers/i801_smbus/unbind"), "");
    // bridges and the host bridge are refused too
    vp(&["--root", &root, "reset", "00:01.0"])
        .assert()
        .code(1)
        .stderr(contains("refus"));
    vp(&["--root", &root, "detach", "00:00.0"])
        .assert()
        .code(1)
        .stderr(contains("refus"))
        .stderr(contains("host bridge"));
}

#[test]
fn missing_dev_vfio_is_explained() {
    let f = desktop();
    let root = f.root();
    std::fs::remove_file(f.path().join("dev/vfio/vfio")).unwrap();
    vp(&["--root", &root, "detach", "01:00.0"])
        .assert()
        .code(1)
        .stderr(contains("dev/vfio/vfio does not exist"))
        .stderr(contains("modprobe vfio"))
        .stderr(contains("kmod static-nodes"));
    assert_eq!(f.read("sys/bus/pci/drivers_probe"), "");
}

#[test]
fn reattach_skips_functions_on_host_drivers_and_reset_writes_reset() {
    let f = desktop();
    let root = f.root();
    vp(&["--root", &root, "reattach", "00:14.0"])
        .assert()
        .success()
        .stdout(contains("done reattach 0000:00:14.0"));
    assert_eq!(
        f.read("sys/bus/pci/drivers/vfio-pci/unbind"),
        "0000:00:14.0"
    );
    vp(&["--root", &root, "reattach", "01:00.0", "--dry-run"])
        .assert()
        .success()
        .stdout(contains("nothing to do"))
        .stdout(contains("already on its host driver nouveau"));
    vp(&["--root", &root, "reset", "01:00.1", "--no-strict-group"])
        .assert()
        .success();
    assert_eq!(
        f.read("sys/devices/pci0000:00/0000:00:01.0/0000:01:00.1/reset"),
        "1"
    );
    assert_eq!(
        f.read("sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0/reset"),
        "",
        "--no-strict-group: only the named function"
    );
}

#[test]
fn check_reports_reset_scope_and_viability() {
    let f = desktop();
    let root = f.root();
    vp(&["--root", &root, "check", "02:00.0"])
        .assert()
        .success()
        .stdout(contains(
            "only a bus reset, which also resets 0000:02:00.1 (igb)",
        ))
        .stdout(contains("group 4 is not viable"))
        .stdout(contains("0000:02:00.1 (igb)"));
    let out = vp(&["--root", &root, "check", "01:00.0", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["viability"]["viable_now"], false);
    assert_eq!(v["reset"]["bus_reset_only"], false);
    assert_eq!(v["viability"]["endpoints"].as_array().unwrap().len(), 2);
}

#[test]
fn check_try_detaches_resets_and_returns_the_group() {
    let f = desktop();
    let root = f.root();
    let out = vp(&["--root", &root, "check", "01:00.0", "--try", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let done: Vec<String> = v["outcome"]["done"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{} {}",
                s["op"].as_str().unwrap(),
                s["address"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        done,
        vec![
            "detach 0000:01:00.0",
            "detach 0000:01:00.1",
            "reset 0000:01:00.0",
            "reset 0000:01:00.1",
            "reattach 0000:01:00.1",
            "reattach 0000:01:00.0"
        ]
    );
    assert_eq!(
        f.read("sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0/driver_override"),
        "\n"
    );
}

#[test]
fn prepare_and_release_a_domain_file() {
    let f = desktop();
    let root = f.root();
    let dom = f.path().join("vm.xml");
    std::fs::write(
        &dom,
        "<domain type='kvm'><name>vm</name><devices>\n\
<hostdev mode='subsystem' type='pci' managed='no'><source><address domain='0x0000' bus='0x01' slot='0x00' function='0x1'/></source></hostdev>\n\
<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x02' slot='0x00' function='0x0'/></source></hostdev>\n\
</devices></domain>",
    )
    .unwrap();
    let d = dom.to_string_lossy().into_owned();
    vp(&["--root", &root, "prepare", &d])
        .assert()
        .success()
        .stdout(contains("done detach (to vfio) 0000:01:00.0"))
        .stdout(contains("done detach (to vfio) 0000:01:00.1"));
    assert_eq!(f.read("sys/bus/pci/drivers/nouveau/unbind"), "0000:01:00.0");
    assert_eq!(
        f.read("sys/bus/pci/drivers/igb/unbind"),
        "",
        "managed='yes' is libvirt's job"
    );
    vp(&["--root", &root, "release", &d, "--dry-run"])
        .assert()
        .success()
        .stdout(contains("1. reset 0000:01:00.0"))
        .stdout(contains("3. reattach 0000:01:00.0"))
        .stdout(contains("cannot tell whether `vm` runs"));
    vp(&["--root", &root, "prepare", "/nonexistent/vm.xml"])
        .assert()
        .code(2)
        .stderr(contains("no libvirt connection"));
    std::fs::write(&dom, "<domain><devices>").unwrap();
    vp(&["--root", &root, "prepare", &d])
        .assert()
        .code(2)
        .stderr(contains("not well-formed"))
        .stderr(contains("vm.xml:1:"));
}

#[test]
fn a_snapshot_only_ever_dry_runs() {
    let f = desktop();
    let root = f.root();
    let snap = f.path().join("host.json");
    let s = snap.to_string_lossy().into_owned();
    vp(&["--root", &root, "snapshot", "-o", &s])
        .assert()
        .success();
    // the steps describe the snapshot's host, not the machine running the test
    vp(&["--snapshot", &s, "detach", "01:00.0", "--dry-run"])
        .assert()
        .success()
        .stdout(contains("(bound to nouveau)"))
        .stdout(contains("(bound to snd_hda_intel)"));
    vp(&["--snapshot", &s, "detach", "01:00.0"])
        .assert()
        .code(2)
        .stderr(contains("a snapshot is a file, not a host"));
}

#[test]
#[should_panic(expected = "test guard")]
fn the_test_guard_refuses_a_run_on_the_real_host() {
    let _ = vp(&["detach", "01:00.0"]).output();
}

#[test]
fn bad_device_specs_are_usage_errors() {
    let f = desktop();
    let root = f.root();
    vp(&["--root", &root, "detach", "01:00.9"])
        .assert()
        .code(2)
        .stderr(contains("help:"));
    vp(&["--root", &root, "detach", "05:00.0"])
        .assert()
        .code(1)
        .stderr(contains("no PCI device 0000:05:00.0"));
}
