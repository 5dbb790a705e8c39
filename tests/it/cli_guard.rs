//! `virt-pci guard` and `virt-pci hook`: every refusal rule, consent,
//! garbage on stdin, and the hook files, on fake roots.
//!
//! The host is the edit tests' fixture (`tests/fixtures/host-gpu.json`: a
//! 4-function GPU behind a root port in group 1, onboard audio with the LPC
//! bridge in group 2, the root filesystem's NVMe in group 3, a NIC alone in
//! group 4), laid out as a kernel-shaped sysfs tree by the library's own
//! writer, so the guard runs its real sysfs reader. The hook script itself
//! is run by the real `sh`.

use crate::fakesys::vp;
use std::path::{Path, PathBuf};
use virt_pci::host::{snapshot, Host};

const FIXTURE: &str = "tests/fixtures/host-gpu.json";

struct Root {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Root {
    fn s(&self) -> &str {
        self.path.to_str().unwrap()
    }
}

fn root_with(edit: impl FnOnce(&mut Host)) -> Root {
    let mut h = snapshot::load(Path::new(FIXTURE)).unwrap();
    edit(&mut h);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("root");
    virt_pci::host::fake::write(&h, &path).unwrap();
    Root { _dir: dir, path }
}

fn root() -> Root {
    root_with(|_| {})
}

fn hostdev(addr: &str, managed: &str) -> String {
    let a = virt_pci::PciAddress::parse(addr).unwrap();
    format!(
        "    <hostdev mode='subsystem' type='pci' managed='{managed}'>\n      <source>\n        <address {}/>\n      </source>\n    </hostdev>\n",
        a.libvirt_attrs('\'')
    )
}

fn domain(name: &str, meta: &str, devices: &str) -> String {
    format!("<domain type='kvm'>\n  <name>{name}</name>\n{meta}  <memory unit='KiB'>65536</memory>\n  <devices>\n{devices}  </devices>\n</domain>\n")
}

fn consent(entries: &[(&str, &str)]) -> String {
    let mut s = String::from(
        "  <metadata>\n    <virt-pci:consent xmlns:virt-pci='urn:virt-pci:consent:1'>\n",
    );
    for (d, r) in entries {
        s.push_str(&format!(
            "      <virt-pci:allow device='{d}' rule='{r}' reason='test'/>\n"
        ));
    }
    s.push_str("    </virt-pci:consent>\n  </metadata>\n");
    s
}

/// Run the guard as libvirt does; (exit code, stdout, stderr).
fn guard(root: &str, name: &str, xml: &str) -> (i32, String, String) {
    guard_op(root, name, "prepare", "begin", xml.as_bytes())
}

fn guard_op(root: &str, name: &str, op: &str, sub: &str, input: &[u8]) -> (i32, String, String) {
    let out = vp(&["--root", root, "guard", name, op, sub, "-"])
        .write_stdin(input.to_vec())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_root_disk_controller_is_refused_with_rule_device_and_fix() {
    let r = root();
    let (code, out, err) = guard(r.s(), "vm1", &domain("vm1", "", &hostdev("02:00.0", "yes")));
    assert_eq!(code, 1, "{err}");
    assert!(out.is_empty(), "the hook's stdout must stay empty: {out}");
    assert!(err.starts_with("virt-pci guard refused to start domain 'vm1' (1 problem; no device was touched):\nerror[root-filesystem]: 0000:02:00.0 is the controller of the root filesystem (/dev/nvme0n1)\n  --> domain 'vm1', device 0000:02:00.0\nhelp: the host would lose its root filesystem"), "{err}");
    assert!(
        err.contains("<virt-pci:allow device='0000:02:00.0' rule='root-filesystem'"),
        "{err}"
    );
    assert!(
        err.contains("`virt-pci add --force --domain vm1 0000:02:00.0`"),
        "{err}"
    );
}

#[test]
fn a_split_group_names_every_member_left_behind_and_the_fix() {
    let r = root();
    let (code, _, err) = guard(r.s(), "vm1", &domain("vm1", "", &hostdev("01:00.0", "yes")));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("error[group-not-viable]: IOMMU group 1 is not viable for this domain: 0000:01:00.1 (on `snd_hda_intel`), 0000:01:00.2 (on `xhci_hcd`), 0000:01:00.3 (on `nvidia-gpu`) are in the group with 0000:01:00.0 but not in the domain"), "{err}");
    assert!(err.contains("help: pass the whole group: `virt-pci add --domain vm1 0000:01:00.1 0000:01:00.2 0000:01:00.3`"), "{err}");
    // The root port in the group is no problem: bridges stay on pcieport.
    assert!(!err.contains("0000:00:01.0"), "{err}");
}

#[test]
fn members_on_vfio_pci_pci_stub_or_no_driver_keep_the_group_viable() {
    let r = root_with(|h| {
        for (f, drv) in [(1u8, Some("vfio-pci")), (2, Some("pci-stub")), (3, None)] {
            let a = virt_pci::PciAddress::new(0, 1, 0, f);
            h.devices.get_mut(&a).unwrap().driver = drv.map(str::to_string);
        }
    });
    let (code, _, err) = guard(r.s(), "vm1", &domain("vm1", "", &hostdev("01:00.0", "yes")));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("'vm1': 1 PCI hostdev in 1 IOMMU group checked: ok"),
        "{err}"
    );
}

#[test]
fn the_whole_group_passes() {
    let r = root();
    let devs: String = (0..4)
        .map(|f| hostdev(&format!("01:00.{f}"), "yes"))
        .collect();
    let (code, out, err) = guard(r.s(), "vm1", &domain("vm1", "", &devs));
    assert_eq!(code, 0, "{err}");
    assert!(out.is_empty());
    assert!(
        err.contains("4 PCI hostdevs in 1 IOMMU group checked: ok"),
        "{err}"
    );
}

#[test]
fn bridges_and_the_host_bridge_are_refused_without_consent() {
    let r = root();
    let (code, _, err) = guard(
        r.s(),
        "vm1",
        &domain(
            "vm1",
            &consent(&[("0000:00:01.0", "host-critical")]),
            &hostdev("00:01.0", "yes"),
        ),
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("error[not-endpoint]: 0000:00:01.0 is a PCI bridge or root port"),
        "{err}"
    );
    assert!(
        !err.contains("group-not-viable"),
        "a bridge alone says only that: {err}"
    );
    let (code, _, err) = guard(r.s(), "vm1", &domain("vm1", "", &hostdev("00:00.0", "yes")));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("error[host-bridge]: 0000:00:00.0 is the host bridge"),
        "{err}"
    );
}

#[test]
fn an_isa_bridge_left_in_the_group_is_host_critical() {
    let r = root();
    let (code, _, err) = guard(r.s(), "vm1", &domain("vm1", "", &hostdev("00:1f.3", "yes")));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("error[isa-bridge]: 0000:00:1f.0, the chipset ISA/LPC bridge"),
        "{err}"
    );
}

#[test]
fn unmanaged_devices_must_be_on_vfio_pci() {
    let r = root();
    let (code, _, err) = guard(r.s(), "win", &domain("win", "", &hostdev("03:00.0", "no")));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("error[not-detached]: 0000:03:00.0 is managed='no' and is still bound to the host driver `igb`"), "{err}");
    assert!(
        err.contains("help: detach it (and its IOMMU group) first: `virt-pci prepare win`"),
        "{err}"
    );
    // managed='true' is managed='no' for libvirt.
    let (code, _, _) = guard(
        r.s(),
        "win",
        &domain("win", "", &hostdev("03:00.0", "true")),
    );
    assert_eq!(code, 1);
    let r = root_with(|h| {
        let a = virt_pci::PciAddress::new(0, 3, 0, 0);
        h.devices.get_mut(&a).unwrap().driver = Some("vfio-pci".into());
    });
    let (code, _, err) = guard(r.s(), "win", &domain("win", "", &hostdev("03:00.0", "no")));
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_device_held_by_another_running_domain_is_refused() {
    let r = root();
    let state = r.path.join("run/libvirt/qemu");
    std::fs::create_dir_all(&state).unwrap();
    let status = |name: &str| {
        format!("<domstatus state='running' reason='booted' pid='4242'>\n  <taint flag='high-privileges'/>\n  {}</domstatus>\n", domain(name, "", &hostdev("03:00.0", "yes")))
    };
    // Its own status file (a leftover) does not count.
    std::fs::write(state.join("vm1.xml"), status("vm1")).unwrap();
    let (code, _, err) = guard(r.s(), "vm1", &domain("vm1", "", &hostdev("03:00.0", "yes")));
    assert_eq!(code, 0, "{err}");
    std::fs::write(state.join("gaming.xml"), status("gaming")).unwrap();
    let (code, _, err) = guard(r.s(), "vm1", &domain("vm1", "", &hostdev("03:00.0", "yes")));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("error[in-use]: 0000:03:00.0 is assigned to the running domain `gaming`"),
        "{err}"
    );
    assert!(err.contains("`virsh shutdown gaming`"), "{err}");
}

#[test]
fn consent_lifts_only_its_rule_for_its_device() {
    let r = root();
    let disk = hostdev("02:00.0", "yes");
    for (entries, ok) in [
        (vec![("0000:02:00.0", "root-filesystem")], true),
        (vec![("02:00.0", "host-critical")], true),
        (vec![("0000:02:00.0", "boot-vga")], false),
        (vec![("0000:03:00.0", "root-filesystem")], false),
        (vec![("0000:02:00.0", "not-a-rule")], false),
    ] {
        let (code, _, err) = guard(r.s(), "vm1", &domain("vm1", &consent(&entries), &disk));
        assert_eq!(code == 0, ok, "{entries:?}: {err}");
        if ok {
            assert!(
                err.contains("allowed by consent (") && err.contains("reason: test"),
                "{err}"
            );
        }
    }
    // A consented split group passes; its consent names the domain's device.
    let (code, _, err) = guard(
        r.s(),
        "vm1",
        &domain(
            "vm1",
            &consent(&[("0000:01:00.0", "group-not-viable")]),
            &hostdev("01:00.0", "yes"),
        ),
    );
    assert_eq!(code, 0, "{err}");
    // Consent never lifts what libvirt refuses anyway.
    let (code, _, err) = guard(
        r.s(),
        "vm1",
        &domain(
            "vm1",
            &consent(&[("0000:03:00.0", "not-detached")]),
            &hostdev("03:00.0", "no"),
        ),
    );
    assert_eq!(code, 1, "{err}");
    // A namespace that is not virt-pci's is not consent.
    let foreign = consent(&[("0000:02:00.0", "root-filesystem")])
        .replace("urn:virt-pci:consent:1", "urn:someone-else");
    let (code, _, _) = guard(r.s(), "vm1", &domain("vm1", &foreign, &disk));
    assert_eq!(code, 1);
}

#[test]
fn no_hostdevs_and_other_operations_pass_without_reading_the_host() {
    let missing = "/nonexistent/virt-pci-guard-test";
    let plain = domain("vm1", "", "    <disk type='file' device='disk'/>\n");
    let (code, out, err) = guard(missing, "vm1", &plain);
    assert_eq!(code, 0, "{err}");
    assert!(out.is_empty());
    assert!(
        err.contains("'vm1' has no PCI hostdev; nothing to check"),
        "{err}"
    );
    // USB hostdevs are not PCI.
    let usb = domain("vm1", "", "    <hostdev mode='subsystem' type='usb'><source><vendor id='0x1'/><product id='0x2'/></source></hostdev>\n");
    assert_eq!(guard(missing, "vm1", &usb).0, 0);
    for (op, sub) in [
        ("release", "end"),
        ("start", "begin"),
        ("started", "begin"),
        ("stopped", "end"),
        ("migrate", "begin"),
        ("restore", "begin"),
    ] {
        let (code, out, err) = guard_op(missing, "vm1", op, sub, b"\x00garbage");
        assert_eq!(
            (code, out.as_str(), err.as_str()),
            (0, "", ""),
            "{op} {sub}"
        );
    }
    // With hostdevs, a missing host blocks: the devices cannot be checked.
    let (code, _, err) = guard(
        missing,
        "vm1",
        &domain("vm1", "", &hostdev("01:00.0", "yes")),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot read this host's PCI devices"), "{err}");
}

#[test]
fn garbage_on_stdin_blocks_with_a_position_and_never_panics() {
    let r = root();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"".to_vec(), "<stdin>:1:1"),
        (b"<domain>\n  <devices>\n</domain>".to_vec(), "<stdin>:3:"),
        (
            b"<network><name>x</name></network>".to_vec(),
            "not a libvirt domain",
        ),
        (b"\xff\xfe<domain/>".to_vec(), "not UTF-8 (byte 0)"),
        (
            b"<!DOCTYPE x [<!ENTITY a 'b'>]><domain/>".to_vec(),
            "<stdin>:1:",
        ),
        (
            format!("<domain>{}</domain>", "<a>".repeat(10)).into_bytes(),
            "<stdin>:1:",
        ),
    ];
    for (input, want) in cases {
        let (code, out, err) = guard_op(r.s(), "vm1", "prepare", "begin", &input);
        assert_eq!(code, 2, "{err}");
        assert!(out.is_empty());
        assert!(err.contains(want), "want {want}: {err}");
        assert!(
            err.contains("virsh dumpxml NAME | virt-pci guard NAME prepare begin -"),
            "{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    let big = vec![b' '; virt_pci::guard::MAX_INPUT + 10];
    let (code, _, err) = guard_op(r.s(), "vm1", "prepare", "begin", &big);
    assert_eq!(code, 2);
    assert!(err.contains("larger than 16 MiB"), "{err}");
}

#[test]
fn hook_install_uninstall_status_on_a_fake_root() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().to_str().unwrap();
    let hook = d.path().join("etc/libvirt/hooks/qemu.d/virt-pci-guard");
    // The hook file runs this binary; the test names the host (--root, VIRT_PCI_ROOT).
    let bin = crate::run::bin_path();
    let b = bin.to_str().unwrap();
    vp(&["--root", root, "hook", "status", "--binary", b])
        .assert()
        .code(1)
        .stdout(predicates::str::contains("state: not installed"));
    vp(&["--root", root, "hook", "install", "--binary", b])
        .assert()
        .success()
        .stderr(predicates::str::contains(format!(
            "installed {}",
            hook.display()
        )))
        .stderr(predicates::str::contains(
            "no running libvirtd or virtqemud found",
        ));
    let text = std::fs::read_to_string(&hook).unwrap();
    assert_eq!(text, virt_pci::guard::hook::SCRIPT.replace("@VIRT_PCI@", b));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&hook).unwrap().permissions().mode() & 0o777,
        0o755
    );
    assert!(!d.path().join("etc/libvirt/hooks/qemu").exists());
    vp(&["--root", root, "hook", "install", "--binary", b])
        .assert()
        .success()
        .stderr(predicates::str::contains("installed and up to date"));
    // A running daemon (pid file + /proc entry under the root): with --root
    // the reload is only described, never sent.
    std::fs::create_dir_all(d.path().join("run")).unwrap();
    std::fs::create_dir_all(d.path().join("proc/4242")).unwrap();
    std::fs::write(d.path().join("run/libvirtd.pid"), "4242\n").unwrap();
    vp(&[
        "--root",
        root,
        "hook",
        "install",
        "--binary",
        "/usr/bin/virt-pci",
    ])
    .assert()
    .success()
    .stderr(predicates::str::contains("updated"))
    .stderr(predicates::str::contains(
        "reload libvirtd (`systemctl reload libvirtd` or `kill -HUP 4242`)",
    ))
    .stderr(
        predicates::str::contains("/usr/bin/virt-pci does not exist")
            .or(predicates::str::contains("reload")),
    );
    vp(&["--root", root, "hook", "status", "--binary", b])
        .assert()
        .code(1)
        .stdout(predicates::str::contains(
            "installed but outdated (runs /usr/bin/virt-pci)",
        ));
    vp(&["--root", root, "hook", "uninstall"])
        .assert()
        .success()
        .stderr(predicates::str::contains(format!(
            "removed {}",
            hook.display()
        )));
    assert!(!hook.exists());
    vp(&["--root", root, "hook", "uninstall"])
        .assert()
        .success()
        .stderr(predicates::str::contains(
            "not installed; nothing to remove",
        ));
    // Somebody else's file of that name is left alone.
    std::fs::write(&hook, "#!/bin/sh\nexit 0\n").unwrap();
    for args in [vec!["hook", "install"], vec!["hook", "uninstall"]] {
        let mut a = vec!["--root", root];
        a.extend(args);
        vp(&a).assert().code(1).stderr(predicates::str::contains(
            "was not written by virt-pci; leaving it alone",
        ));
    }
    assert_eq!(
        std::fs::read_to_string(&hook).unwrap(),
        "#!/bin/sh\nexit 0\n"
    );
}

use predicates::prelude::PredicateBooleanExt;

#[test]
fn the_installed_hook_runs_the_guard_and_lets_starts_through_without_it() {
    let r = root();
    let d = tempfile::tempdir().unwrap();
    // The hook file runs this binary; the test names the host (--root, VIRT_PCI_ROOT).
    let bin = crate::run::bin_path();
    let script = d.path().join("hook.sh");
    let run = |script: &Path, xml: &str| {
        let mut c = std::process::Command::new("sh");
        c.arg(script)
            .args(["vm1", "prepare", "begin", "-"])
            .env("VIRT_PCI_ROOT", r.s())
            .env("VIRT_PCI_NO_COMPANION", "1")
            .env_remove("LIBVIRT_DEFAULT_URI")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        use std::io::Write;
        // libvirt ignores a hook that closes stdin early (vircommand.c: "child
        // closed stdin early, ignoring EPIPE"); the hook for a missing binary
        // exits without reading, so a broken pipe here is that, not a failure.
        let written = child.stdin.take().unwrap().write_all(xml.as_bytes());
        if let Err(e) = written {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
        }
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let disk = domain("vm1", "", &hostdev("02:00.0", "yes"));
    std::fs::write(&script, virt_pci::guard::hook::render(&bin).unwrap()).unwrap();
    let (code, err) = run(&script, &disk);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("error[root-filesystem]"), "{err}");
    let (code, _) = run(&script, &domain("vm1", "", ""));
    assert_eq!(code, 0);
    // The binary is gone: the start goes on, and the reason is on stderr.
    let gone = d.path().join("no-such-virt-pci");
    std::fs::write(&script, virt_pci::guard::hook::render(&gone).unwrap()).unwrap();
    let (code, err) = run(&script, &disk);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!(
            "virt-pci guard: {} is missing or not executable; 'vm1' prepare begin is NOT checked",
            gone.display()
        )),
        "{err}"
    );
}

#[test]
fn add_force_records_consent_and_remove_takes_it_away() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("vm1.xml");
    let orig = domain("vm1", "", "    <disk type='file' device='disk'/>\n");
    std::fs::write(&f, &orig).unwrap();
    let fs = f.to_str().unwrap();
    vp(&["--snapshot", FIXTURE, "add", fs, "02:00.0", "-i"])
        .assert()
        .code(1);
    vp(&[
        "--snapshot",
        FIXTURE,
        "add",
        fs,
        "02:00.0",
        "--force",
        "--reason",
        "root is on USB here",
        "-i",
    ])
    .assert()
    .success()
    .stderr(predicates::str::contains("recording consent in"));
    let forced = std::fs::read_to_string(&f).unwrap();
    assert!(forced.contains("  <name>vm1</name>\n  <metadata>\n    <virt-pci:consent xmlns:virt-pci='urn:virt-pci:consent:1'>\n      <virt-pci:allow device='0000:02:00.0' rule='root-filesystem' reason='root is on USB here'/>\n    </virt-pci:consent>\n  </metadata>\n  <memory"), "{forced}");
    // The guard honours it on a host laid out from the same facts.
    let r = root();
    assert_eq!(guard(r.s(), "vm1", &forced).0, 0);
    // --force again: nothing new.
    vp(&["--snapshot", FIXTURE, "add", fs, "02:00.0", "--force", "-i"])
        .assert()
        .success();
    assert_eq!(std::fs::read_to_string(&f).unwrap(), forced);
    // --reason needs --force.
    vp(&["--snapshot", FIXTURE, "add", fs, "03:00.0", "--reason", "x"])
        .assert()
        .code(2);
    vp(&["--snapshot", FIXTURE, "remove", fs, "02:00.0", "-i"])
        .assert()
        .success()
        .stderr(predicates::str::contains(
            "consent entries of the removed devices",
        ));
    assert_eq!(std::fs::read_to_string(&f).unwrap(), orig);
    // A forced split group records group-not-viable for the device it passes.
    let out = vp(&[
        "--snapshot",
        FIXTURE,
        "add",
        fs,
        "01:00.0",
        "--no-strict-group",
        "--force",
    ])
    .output()
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("<virt-pci:allow device='0000:01:00.0' rule='group-not-viable'"),
        "{text}"
    );
}

/// libvirt keeps the consent element (a namespaced child of <metadata>)
/// through define and dumpxml: its generic domain parser, as in the QEMU
/// driver (the e2e test checks the QEMU driver itself).
#[test]
fn libvirt_keeps_the_consent_metadata() {
    if std::process::Command::new("virsh")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: no virsh");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("vm.xml");
    let text = format!(
        "<domain type='test'>\n  <name>consent-test</name>\n{}  <memory unit='KiB'>65536</memory>\n  <os><type>hvm</type></os>\n</domain>\n",
        consent(&[("0000:2b:00.0", "boot-vga")])
    );
    std::fs::write(&f, text).unwrap();
    let out = std::process::Command::new("virsh")
        .args(["-c", "test:///default"])
        .arg(format!(
            "define --validate {}; dumpxml consent-test",
            f.display()
        ))
        .env_remove("LIBVIRT_DEFAULT_URI")
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{s} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        s.contains("<virt-pci:consent xmlns:virt-pci=\"urn:virt-pci:consent:1\">")
            || s.contains("<virt-pci:consent xmlns:virt-pci='urn:virt-pci:consent:1'>"),
        "{s}"
    );
    assert!(
        s.contains("device='0000:2b:00.0' rule='boot-vga' reason='test'")
            || s.contains("device=\"0000:2b:00.0\" rule=\"boot-vga\" reason=\"test\""),
        "{s}"
    );
}

#[test]
fn validate_reports_consent_entries_as_notes() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("vm.xml");
    let meta = consent(&[
        ("0000:02:00.0", "root-filesystem"),
        ("gpu", "boot-vga"),
        ("0000:02:00.0", "bridge"),
    ]);
    std::fs::write(&f, domain("vm1", &meta, &hostdev("02:00.0", "yes"))).unwrap();
    let out = vp(&[
        "--snapshot",
        FIXTURE,
        "validate",
        "--format",
        "json",
        f.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let codes: Vec<(String, String)> = j["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["code"].as_str().unwrap().to_string(),
                d["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let has = |c: &str, s: &str| codes.contains(&(c.to_string(), s.to_string()));
    assert!(has("VP060", "note"), "{codes:?}");
    assert!(has("VP061", "warning"), "{codes:?}");
    assert_eq!(
        codes.iter().filter(|(c, _)| c == "VP061").count(),
        2,
        "{codes:?}"
    );
    // The host check still reports the forced device; notes are not counted.
    assert!(has("VP054", "error"), "{codes:?}");
    assert_eq!(j["warnings"], 2);
    vp(&["validate", f.to_str().unwrap(), "--snapshot", FIXTURE])
        .assert()
        .code(1)
        .stdout(predicates::str::contains(format!(
            "note[VP060]: consent: 0000:02:00.0 may start despite rule `root-filesystem` (reason: test)\n --> {}:5:7",
            f.display()
        )))
        .stdout(predicates::str::contains("checked 1 file: 1 error, 2 warnings"));
}

/// `detach` through sysfs refuses a device a running domain holds, read from
/// libvirt's status files as the guard reads them — so the lean binary, which
/// cannot ask libvirt, refuses it too (it used to plan the detach).
#[test]
fn sysfs_detach_refuses_a_device_a_running_domain_holds() {
    let r = root();
    let detach = |r: &Root| {
        crate::run::vp()
            .args(["--root", r.s(), "detach", "--dry-run", "03:00.0"])
            .output()
            .unwrap()
    };
    let free = detach(&r);
    assert_eq!(free.status.code(), Some(0), "{free:?}");
    let state = r.path.join("run/libvirt/qemu");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(
        state.join("gaming.xml"),
        format!(
            "<domstatus state='running' reason='booted' pid='4242'>\n  {}</domstatus>\n",
            domain("gaming", "", &hostdev("03:00.0", "yes"))
        ),
    )
    .unwrap();
    let held = detach(&r);
    let err = String::from_utf8_lossy(&held.stderr);
    let out = String::from_utf8_lossy(&held.stdout);
    assert_eq!(held.status.code(), Some(1), "{out}{err}");
    assert!(format!("{out}{err}").contains("gaming"), "{out}{err}");
}
