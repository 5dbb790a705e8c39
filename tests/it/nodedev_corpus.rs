//! Node-device XML ↔ host model against libvirt's own corpus
//! (tests/nodedevschemadata/pci*.xml) and libvirt's RelaxNG schema
//! (`nodedev.rng`) as the oracle for what we emit. Runs in the default
//! build: the conversion needs no libvirt.

use crate::fakesys::{desktop, vp};
#[cfg(not(feature = "libvirt"))]
use predicates::str::contains;
use std::path::{Path, PathBuf};
use std::process::Command;
use virt_pci::address::PciAddress;
use virt_pci::host::{nodedev, GroupMember, Kind};

fn corpus(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus/libvirt-9.0.0/tests/nodedevschemadata")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; fetch the corpus with scripts/fetch-corpus.sh",
            p.display()
        )
    })
}

fn corpus_pci_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus/libvirt-9.0.0/tests/nodedevschemadata");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/fetch-corpus.sh", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with("pci") && n.ends_with(".xml")
        })
        .collect();
    v.sort();
    v
}

#[test]
fn eight_member_group_with_root_ports() {
    let n = nodedev::parse_device(&corpus("pci_8086_4238_pcie_wireless.xml"))
        .unwrap()
        .unwrap();
    assert_eq!(n.name, "pci_0000_03_00_0");
    assert_eq!(n.device.address, PciAddress::new(0, 3, 0, 0));
    assert_eq!(
        n.device.device_name.as_deref(),
        Some("Centrino Ultimate-N 6300")
    );
    let (g, members) = n.group.clone().unwrap();
    assert_eq!(g, 8);
    assert_eq!(members.len(), 8);
    assert_eq!(members[0], PciAddress::new(0, 0, 0x1c, 0));
    let h = nodedev::host_from_nodes("corpus", vec![n]);
    // members we have no XML for stay in the group (the plan reports them)
    assert_eq!(h.groups[&8].len(), 8);
    assert!(h.groups[&8].contains(&GroupMember::Pci(PciAddress::new(0, 0x0d, 0, 3))));
}

#[test]
fn driver_sriov_and_bridge_capabilities() {
    let n = nodedev::parse_device(&corpus("pci_82579LM_network_adapter.xml"))
        .unwrap()
        .unwrap();
    assert_eq!(n.device.driver.as_deref(), Some("e1000e"));
    assert_eq!(n.device.iommu_group, None);
    let n = nodedev::parse_device(&corpus("pci_0000_02_10_7_sriov_pf_vfs_all_header_type.xml"))
        .unwrap()
        .unwrap();
    assert_eq!(n.device.physfn, Some(PciAddress::new(0, 2, 0, 1)));
    assert_eq!(n.device.virtfns.len(), 4);
    assert_eq!(n.device.sriov_totalvfs, Some(7));
    assert_eq!(n.device.header_type, Some(1));
    assert_eq!(n.device.kind(), Kind::Bridge);
    assert_eq!(n.device.numa_node, Some(0));
    let n = nodedev::parse_device(&corpus("pci_8086_10c9_sriov_pf.xml"))
        .unwrap()
        .unwrap();
    assert_eq!(n.group.unwrap().1.len(), 2);
    // a scsi_host node is not a PCI device
    assert_eq!(
        nodedev::parse_device(&corpus("pci_8086_27c5_scsi_host.xml")).unwrap(),
        None
    );
}

#[test]
fn every_corpus_file_reads_or_fails_with_a_position() {
    let (mut ok, mut other) = (0, 0);
    for p in corpus_pci_files() {
        let text = std::fs::read_to_string(&p).unwrap();
        match nodedev::parse_device(&text) {
            Ok(Some(n)) => {
                // udev names (pci_0000_01_00_0) or old HAL names (pci_1002_71c4)
                assert!(n.name.starts_with("pci_"), "{}", p.display());
                ok += 1;
            }
            Ok(None) => other += 1,
            Err(e) => {
                assert!(e.line > 0, "{e}");
                assert!(
                    p.ends_with("pci_0000_00_02_0_header_type.xml"),
                    "{}: {e}",
                    p.display()
                );
            }
        }
    }
    // 14 PCI devices (one refused: bus 4294967295), 5 scsi nodes
    assert_eq!((ok, other), (13, 5));
}

fn xmllint_nodedev(xml: &str) -> (bool, String) {
    let t = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(t.path(), xml).unwrap();
    let out = Command::new("xmllint")
        .args([
            "--noout",
            "--relaxng",
            "/usr/share/libvirt/schemas/nodedev.rng",
        ])
        .arg(t.path())
        .output()
        .expect("xmllint is the schema oracle: install libxml2-utils (scripts/install-deps.sh)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn emitted_devices_validate_against_libvirts_schema() {
    // the corpus, read and written back
    let mut hosts = Vec::new();
    for p in corpus_pci_files() {
        let text = std::fs::read_to_string(&p).unwrap();
        if let Ok(Some(n)) = nodedev::parse_device(&text) {
            hosts.push(nodedev::host_from_nodes("corpus", vec![n]));
        }
    }
    // the sample hosts, when present (samples/hosts/*.json; VIRT_PCI_SAMPLES overrides)
    let dir = crate::setup::sweep_dir();
    if let Ok(it) = std::fs::read_dir(&dir) {
        for p in it.map(|e| e.unwrap().path()) {
            if p.extension().is_some_and(|e| e == "json") {
                hosts.push(virt_pci::host::snapshot::load(&p).unwrap());
            }
        }
    }
    // and a host read from a fake sysfs tree
    let f = desktop();
    hosts.push(virt_pci::host::sysfs::read(f.path()).unwrap());
    // one xmllint run over every emitted device (one file each)
    let t = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for h in &hosts {
        for d in h.devices.values() {
            let x = nodedev::device_xml(h, d, "");
            // and it reads back to the same device
            let back = nodedev::parse_device(&x).unwrap().unwrap();
            assert_eq!(&back.device.address, &d.address);
            assert_eq!(back.device.iommu_group, d.iommu_group);
            let p = t.path().join(format!("d{}.xml", files.len()));
            std::fs::write(&p, &x).unwrap();
            files.push(p);
        }
    }
    let checked = files.len();
    let out = Command::new("xmllint")
        .args([
            "--noout",
            "--relaxng",
            "/usr/share/libvirt/schemas/nodedev.rng",
        ])
        .args(&files)
        .output()
        .expect("xmllint is the schema oracle: install libxml2-utils (scripts/install-deps.sh)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(err.matches(" validates").count(), checked, "{err}");
    assert!(checked >= 20, "{checked}");
    // the oracle can fail: a device without <vendor> is rejected
    let (ok, _) = xmllint_nodedev(
        "<device><name>x</name><capability type='pci'><domain>0</domain><bus>0</bus><slot>0</slot><function>0</function><product id='0x1'/></capability></device>",
    );
    assert!(!ok);
}

#[test]
fn snapshot_as_a_libvirt_test_driver_file() {
    let f = desktop();
    let root = f.root();
    let out = vp(&["--root", &root, "snapshot", "--format", "libvirt-test"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let x = String::from_utf8(out).unwrap();
    assert!(x.starts_with("<node>"));
    assert!(x.contains("<uuid>"), "the test driver needs a system UUID");
    assert!(x.contains("<name>pci_0000_01_00_0</name>"));
    assert!(x.contains("<iommuGroup number='1'>"));
    let doc = roxmltree::Document::parse(&x).unwrap();
    let n = doc
        .root_element()
        .children()
        .filter(|c| c.has_tag_name("device"))
        .count();
    assert_eq!(n, 11, "computer + 10 PCI functions");
}

#[cfg(not(feature = "libvirt"))]
#[test]
fn without_libvirt_an_explicit_connect_is_a_clear_error() {
    vp(&["-c", "test:///default", "list"])
        .assert()
        .code(2)
        .stderr(contains("built without libvirt support"))
        .stderr(contains("--features libvirt"));
    vp(&[
        "-c",
        "test:///default",
        "detach",
        "01:00.0",
        "--backend",
        "libvirt",
    ])
    .assert()
    .code(2)
    .stderr(contains("without libvirt support"));
}

#[cfg(not(feature = "libvirt"))]
#[test]
fn without_libvirt_the_environment_uri_is_ignored() {
    // LIBVIRT_DEFAULT_URI is virsh's; the default build reads sysfs.
    let f = desktop();
    let root = f.root();
    let mut c = vp(&["--root", &root, "list"]);
    c.env("LIBVIRT_DEFAULT_URI", "qemu:///system");
    c.assert().success().stdout(contains("0000:01:00.0"));
}
