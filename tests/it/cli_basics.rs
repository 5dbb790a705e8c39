//! The command line's own behaviour: completions, man page, colour, and the
//! shape of errors. Every test names an explicit fake root or snapshot, so
//! nothing reads (let alone touches) this machine's devices.

use crate::run::{vp, Vp};
use predicates::prelude::*;
use std::fs;
use std::path::Path;

fn bin() -> Vp {
    let mut c = vp();
    c.env_remove("NO_COLOR");
    c
}

/// A two-device fake sysfs tree: a root port and a GPU behind it in group 1.
fn tiny_tree(root: &Path) {
    let sys = root.join("sys");
    let dev = |rel: &str, vendor: &str, device: &str, class: &str| {
        let d = sys.join("devices").join(rel);
        fs::create_dir_all(&d).unwrap();
        for (f, v) in [
            ("vendor", vendor),
            ("device", device),
            ("class", class),
            ("driver_override", "(null)"),
        ] {
            fs::write(d.join(f), format!("{v}\n")).unwrap();
        }
        d
    };
    let rp = dev("pci0000:00/0000:00:01.0", "0x8086", "0x1901", "0x060400");
    let gpu = dev(
        "pci0000:00/0000:00:01.0/0000:01:00.0",
        "0x10de",
        "0x1401",
        "0x030000",
    );
    fs::create_dir_all(sys.join("bus/pci/devices")).unwrap();
    fs::create_dir_all(sys.join("kernel/iommu_groups/1/devices")).unwrap();
    for (name, rel, depth) in [
        ("0000:00:01.0", "pci0000:00/0000:00:01.0", 3),
        ("0000:01:00.0", "pci0000:00/0000:00:01.0/0000:01:00.0", 4),
    ] {
        std::os::unix::fs::symlink(
            format!("../../../devices/{rel}"),
            sys.join("bus/pci/devices").join(name),
        )
        .unwrap();
        std::os::unix::fs::symlink(
            format!("../../../../devices/{rel}"),
            sys.join("kernel/iommu_groups/1/devices").join(name),
        )
        .unwrap();
        let d = sys.join("devices").join(rel);
        std::os::unix::fs::symlink(
            format!("{}kernel/iommu_groups/1", "../".repeat(depth)),
            d.join("iommu_group"),
        )
        .unwrap();
    }
    let _ = (rp, gpu);
}

#[test]
fn completions_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        bin()
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(predicate::str::contains("virt-pci"));
    }
    bin()
        .args(["completions", "tcsh"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("invalid value 'tcsh'"));
}

#[test]
fn man_page_renders_and_mentions_the_env_vars() {
    bin()
        .arg("man")
        .assert()
        .success()
        .stdout(predicate::str::starts_with(".ie"))
        .stdout(predicate::str::contains(".TH virt-pci"))
        .stdout(predicate::str::contains("LIBVIRT_DEFAULT_URI"))
        .stdout(predicate::str::contains("VIRT_PCI_ROOT"));
}

#[test]
fn color_always_never_and_no_color() {
    let t = tempfile::tempdir().unwrap();
    tiny_tree(t.path());
    let root = t.path().to_str().unwrap();
    let out = bin()
        .args(["--root", root, "--color", "always", "list"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\u{1b}["),
        "always paints"
    );
    let out = bin()
        .args(["--root", root, "--color", "never", "list"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("\u{1b}["),
        "never paints not"
    );
    // auto + not a terminal (captured) + NO_COLOR: plain
    let out = bin()
        .env("NO_COLOR", "1")
        .args(["--root", root, "list"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("\u{1b}["));
}

#[test]
fn list_reads_the_fake_root_from_the_env_too() {
    let t = tempfile::tempdir().unwrap();
    tiny_tree(t.path());
    bin()
        .env("VIRT_PCI_ROOT", t.path())
        .args(["list", "--color", "never"])
        .assert()
        .success()
        .stdout(predicate::str::contains("IOMMU group 1"))
        .stdout(predicate::str::contains(
            "0000:01:00.0 VGA compatible controller [0300]",
        ))
        .stdout(predicate::str::contains("[bridge]"));
}

#[test]
fn show_plans_the_gpu_and_leaves_the_root_port() {
    let t = tempfile::tempdir().unwrap();
    tiny_tree(t.path());
    let out = bin()
        .args([
            "--root",
            t.path().to_str().unwrap(),
            "--color",
            "never",
            "show",
            "pci_0000_01_00_0",
            "--json",
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The tiny tree has no /proc: the root disk and default route are not
    // known, so the plan is unverified, and show says so with exit 1 (as
    // snippet would refuse it).
    assert_eq!(v["plan"]["verdict"], "unverified");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(v["plan"]["travels"], serde_json::json!(["0000:01:00.0"]));
    assert_eq!(v["plan"]["blockers"], serde_json::json!([]));
    let members = v["plan"]["groups"][0]["members"].as_array().unwrap();
    let rp = members
        .iter()
        .find(|m| m["member"] == "0000:00:01.0")
        .unwrap();
    assert_eq!(rp["role"], "stays");
}

#[test]
fn bad_address_is_a_usage_error_listing_the_forms() {
    let t = tempfile::tempdir().unwrap();
    tiny_tree(t.path());
    bin()
        .args([
            "--root",
            t.path().to_str().unwrap(),
            "--color",
            "never",
            "show",
            "1f.01.02",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "error: `1f.01.02` is not a PCI device address",
        ))
        .stderr(predicate::str::contains(
            "help: accepted forms: 0000:03:00.0",
        ));
}

#[test]
fn absent_device_names_what_is_on_that_bus() {
    let t = tempfile::tempdir().unwrap();
    tiny_tree(t.path());
    bin()
        .args([
            "--root",
            t.path().to_str().unwrap(),
            "--color",
            "never",
            "show",
            "01:00.1",
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no PCI device 0000:01:00.1"))
        .stderr(predicate::str::contains("help: on that bus: 0000:01:00.0"));
}

#[test]
fn a_root_without_sysfs_is_explained() {
    let t = tempfile::tempdir().unwrap();
    bin()
        .args([
            "--root",
            t.path().to_str().unwrap(),
            "--color",
            "never",
            "list",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot read the PCI device list"))
        .stderr(predicate::str::contains("must hold a sysfs tree"));
}

#[test]
fn a_bad_snapshot_says_where() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("host.json");
    fs::write(
        &p,
        "{\n  \"format\": \"virt-pci-snapshot\",\n  \"version\": 1,\n  \"devices\": [ oops ]\n}\n",
    )
    .unwrap();
    bin()
        .args([
            "--snapshot",
            p.to_str().unwrap(),
            "--color",
            "never",
            "list",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("host.json:4:"));
    fs::write(&p, "{\"devices\": []}").unwrap();
    bin()
        .args([
            "--snapshot",
            p.to_str().unwrap(),
            "--color",
            "never",
            "list",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not a virt-pci snapshot"));
}

#[test]
fn snapshot_round_trips_through_a_file() {
    let t = tempfile::tempdir().unwrap();
    tiny_tree(t.path());
    let snap = t.path().join("snap.json");
    bin()
        .args([
            "--root",
            t.path().to_str().unwrap(),
            "snapshot",
            "-o",
            snap.to_str().unwrap(),
        ])
        .assert()
        .success();
    let a = bin()
        .args(["--root", t.path().to_str().unwrap(), "list", "--json"])
        .output()
        .unwrap();
    let b = bin()
        .args(["--snapshot", snap.to_str().unwrap(), "list", "--json"])
        .output()
        .unwrap();
    let mut va: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    let mut vb: serde_json::Value = serde_json::from_slice(&b.stdout).unwrap();
    va["source"] = serde_json::Value::Null;
    vb["source"] = serde_json::Value::Null;
    assert_eq!(va, vb);
}

#[cfg(not(feature = "libvirt"))]
#[test]
fn connect_without_libvirt_support_is_explained() {
    bin()
        .args(["-c", "qemu:///system", "--color", "never", "list"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("built without libvirt support"))
        .stderr(predicate::str::contains("--features libvirt"));
}

#[test]
fn the_boot_vga_device_is_host_critical_and_refused() {
    let t = tempfile::tempdir().unwrap();
    tiny_tree(t.path());
    // The kernel writes boot_vga only for VGA-class functions; `1` marks the
    // firmware's console device.
    fs::write(
        t.path()
            .join("sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0/boot_vga"),
        "1\n",
    )
    .unwrap();
    let root = t.path().to_str().unwrap();
    bin()
        .args(["--root", root, "--color", "never", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "[host-critical: boot VGA device (the host's console)]",
        ));
    let out = bin()
        .args(["--root", root, "show", "01:00.0", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["plan"]["blockers"][0]["code"], "host-critical");
    assert_eq!(
        v["plan"]["blockers"][0]["message"],
        "0000:01:00.0 is the boot VGA device (the host's console)"
    );
    // Acting on it is refused without --force (dry run: nothing is written).
    bin()
        .args([
            "--root",
            root,
            "--color",
            "never",
            "detach",
            "01:00.0",
            "--dry-run",
            "--backend",
            "sysfs",
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("refus"));
}
