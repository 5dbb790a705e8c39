//! Issue 11, items 3, 12, 13, 15, 16: hostile trees, files and names.
//! Every tree is a fake one under a temp dir (`fake-sysfs` of a sample,
//! then altered); nothing reads or writes the real /sys, /proc or /etc.
//! Runs that could hang are bounded: the reader runs in a thread and the
//! test fails after 60 s instead of hanging.

use crate::run::Vp;
use predicates::prelude::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

const S: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/samples/hosts/004-msi-b550m-mortar-turing-4fn.json"
);
const D: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/domains/win11-q35.xml");
const GPU_DIR: &str = "sys/devices/pci0000:00/0000:00:03.1/0000:2b:00.0";

fn vp() -> Vp {
    let mut c = crate::run::vp();
    c.timeout(Duration::from_secs(60));
    c
}

/// A fake tree of sample 004 under a fresh temp dir.
fn tree() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let host = virt_pci::host::snapshot::load(Path::new(S)).unwrap();
    virt_pci::host::fake::write(&host, t.path()).unwrap();
    t
}

fn mkfifo(p: &Path) {
    let _ = fs::remove_file(p);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        p,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
}

/// Read the tree in a thread; fail instead of hanging.
fn read_bounded(root: &Path) -> Result<virt_pci::Host, String> {
    let root = root.to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(virt_pci::host::sysfs::read(&root).map_err(|e| e.to_string()));
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the reader hung (> 60 s)")
}

fn gpu_dir(t: &Path) -> PathBuf {
    let d = t.join(GPU_DIR);
    assert!(d.is_dir(), "{}", d.display());
    d
}

#[test]
fn fifos_in_a_tree_never_hang_the_reader() {
    let t = tree();
    for name in ["revision", "driver_override", "numa_node"] {
        mkfifo(&gpu_dir(t.path()).join(name));
    }
    mkfifo(&t.path().join("proc/self/mountinfo"));
    mkfifo(&t.path().join("proc/net/route"));
    let h = read_bounded(t.path()).unwrap();
    assert!(h.devices.len() > 10);
    assert_eq!(h.facts.root_filesystem, virt_pci::host::Provenance::Unknown);
    assert_eq!(h.facts.default_route, virt_pci::host::Provenance::Unknown);
    // What could not be read is unknown, and said so.
    assert!(
        h.provenance
            .iter()
            .any(|p| p.contains("root filesystem controller unknown") && p.contains("FIFO")),
        "{:?}",
        h.provenance
    );
    assert!(h
        .provenance
        .iter()
        .any(|p| p.contains("default-route NIC unknown")));
}

#[test]
fn an_endless_attribute_is_a_clear_error() {
    let t = tree();
    let u = gpu_dir(t.path()).join("uevent");
    let _ = fs::remove_file(&u);
    std::os::unix::fs::symlink("/dev/zero", &u).unwrap();
    let e = read_bounded(t.path()).unwrap_err();
    assert!(
        e.contains("uevent") && e.contains("not a sysfs attribute"),
        "{e}"
    );
    vp().args(["--root"])
        .arg(t.path())
        .arg("list")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("larger than 64 KiB"));
}

#[test]
fn an_oversized_mountinfo_makes_the_root_disk_unknown_not_absent() {
    let t = tree();
    let m = t.path().join("proc/self/mountinfo");
    let _ = fs::remove_file(&m);
    fs::create_dir_all(m.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &m).unwrap();
    let h = read_bounded(t.path()).unwrap();
    assert_eq!(
        h.facts.root_filesystem,
        virt_pci::host::Provenance::Unknown,
        "an unreadable mountinfo is an unknown fact, not a measured absence"
    );
    assert!(
        h.provenance
            .iter()
            .any(|p| p.contains("root filesystem controller unknown")),
        "{:?}",
        h.provenance
    );
}

#[test]
fn slave_and_bridge_cycles_with_fan_out_finish() {
    let t = tree();
    let sys = t.path().join("sys");
    let names = ["dm-0", "dm-1", "dm-2"];
    for n in names {
        let d = sys.join("devices/virtual/block").join(n);
        fs::create_dir_all(d.join("slaves")).unwrap();
        for m in names {
            std::os::unix::fs::symlink(format!("../../{m}"), d.join("slaves").join(m)).unwrap();
        }
        std::os::unix::fs::symlink(
            format!("../../devices/virtual/block/{n}"),
            sys.join("class/block").join(n),
        )
        .unwrap();
    }
    let _ = fs::remove_file(sys.join("dev/block/253:0"));
    std::os::unix::fs::symlink(
        "../../devices/virtual/block/dm-0",
        sys.join("dev/block/253:0"),
    )
    .unwrap();
    fs::write(
        t.path().join("proc/self/mountinfo"),
        "22 1 253:0 / / rw - ext4 /dev/mapper/root rw\n",
    )
    .unwrap();
    let bridges = ["br0", "br1", "br2"];
    for n in bridges {
        let d = sys.join("devices/virtual/net").join(n);
        fs::create_dir_all(d.join("brif")).unwrap();
        for m in bridges {
            std::os::unix::fs::symlink(format!("../../{m}"), d.join("brif").join(m)).unwrap();
        }
        std::os::unix::fs::symlink(
            format!("../../devices/virtual/net/{n}"),
            sys.join("class/net").join(n),
        )
        .unwrap();
    }
    fs::write(
        t.path().join("proc/net/route"),
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\nbr0\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n",
    )
    .unwrap();
    let started = std::time::Instant::now();
    read_bounded(t.path()).unwrap();
    // Not a speed claim: a bound far above the normal milliseconds, far
    // below the minutes the unbounded walk took.
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn validate_dir_survives_symlink_loops_and_fifos_and_counts_each_file_once() {
    let t = tempfile::tempdir().unwrap();
    fs::copy(D, t.path().join("vm.xml")).unwrap();
    std::os::unix::fs::symlink(".", t.path().join("a")).unwrap();
    std::os::unix::fs::symlink(".", t.path().join("b")).unwrap();
    fs::create_dir(t.path().join("sub")).unwrap();
    std::os::unix::fs::symlink("..", t.path().join("sub/up")).unwrap();
    mkfifo(&t.path().join("pipe.xml"));
    vp().arg("validate")
        .arg(t.path())
        .assert()
        .success()
        .stdout(predicate::str::contains("checked 1 file"))
        .stderr(predicate::str::contains(
            "pipe.xml: a FIFO, not a regular file; skipped",
        ))
        .stderr(predicate::str::contains("already searched"));
}

#[test]
fn domains_over_virshs_limit_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let big = t.path().join("big.xml");
    let mut text = fs::read_to_string(D).unwrap();
    let pad = format!("<!-- {} -->\n", "x".repeat(1024 * 1024));
    let at = text.find("<devices>").unwrap();
    text.insert_str(at, &pad.repeat(11));
    fs::write(&big, &text).unwrap();
    vp().args(["--snapshot", S, "add"])
        .arg(&big)
        .args(["2b:00.0", "-i"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("larger than 10 MiB"))
        .stderr(predicate::str::contains("VSH_MAX_XML_FILE"));
    vp().arg("validate")
        .arg(&big)
        .assert()
        .code(2)
        .stdout(predicate::str::contains("larger than 10 MiB"));
}

#[test]
fn fake_sysfs_refuses_names_that_are_paths() {
    let t = tempfile::tempdir().unwrap();
    let snap = fs::read_to_string(S).unwrap();
    for (from, to) in [
        ("\"driver\": null", "\"driver\": \"../../../../escaped\""),
        (
            "\n        \"0000:2c:00.0\"",
            "\n        \"../../../../escaped\"",
        ),
    ] {
        assert!(snap.contains(from), "{from}");
        let bad = t.path().join("bad.json");
        fs::write(&bad, snap.replacen(from, to, 1)).unwrap();
        let out = t.path().join("tree");
        vp().arg("fake-sysfs")
            .arg(&bad)
            .arg(&out)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("cannot be a file name"));
        assert!(!out.exists(), "a refused tree was partly written");
        assert!(!t.path().join("escaped").exists());
    }
    let listing = t.path().join("l.txt");
    fs::write(
        &listing,
        "/sys/kernel/iommu_groups/1/devices/0000:00:01.0\n/sys/kernel/iommu_groups/1/devices/../../../../etc/passwd\n",
    )
    .unwrap();
    vp().args(["snapshot", "--from-listing"])
        .arg(&listing)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("l.txt:2: group member"));
}

#[test]
fn snapshot_versions_are_reported_as_written() {
    let t = tempfile::tempdir().unwrap();
    let snap = fs::read_to_string(S).unwrap();
    let v = t.path().join("v.json");
    let at = snap.find("\"version\": ").unwrap() + "\"version\": ".len();
    let end = at + snap[at..].find(',').unwrap();
    fs::write(&v, format!("{}\"1\"{}", &snap[..at], &snap[end..])).unwrap();
    vp().arg("--snapshot")
        .arg(&v)
        .arg("list")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("version \"1\" is not a number"));
}

#[test]
fn a_doctype_is_shown_on_its_own_line() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("dt.xml");
    fs::write(
        &p,
        "<?xml version='1.0'?>\n<!DOCTYPE domain [<!ENTITY a 'b'>]>\n<domain type='kvm'><name>x</name><devices/></domain>\n",
    )
    .unwrap();
    vp().args(["--snapshot", S, "add"])
        .arg(&p)
        .arg("2b:00.0")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("dt.xml:2:1"));
}

#[test]
fn control_characters_from_a_snapshot_or_an_argument_are_escaped() {
    let t = tempfile::tempdir().unwrap();
    let snap = fs::read_to_string(S).unwrap();
    let evil = snap
        .replacen(
            "\"device_name\": \"",
            "\"device_name\": \"GPU\\nerror: fake \\u001b]0;pwned\\u0007",
            1,
        )
        .replacen("\"driver\": null", "\"driver\": \"x\\u001b[2J\"", 1);
    let p = t.path().join("evil.json");
    fs::write(&p, evil).unwrap();
    for cmd in [&["list"][..], &["list", "--tree"], &["show", "00:01.0"]] {
        // show of the host bridge exits 1 (a blocked plan); list 0.
        let out = vp().arg("--snapshot").arg(&p).args(cmd).assert();
        assert!(matches!(out.get_output().status.code(), Some(0 | 1)));
        let o = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
        assert!(!o.contains('\u{1b}'), "{cmd:?}: raw ESC in:\n{o}");
        assert!(
            !o.contains("\nerror: fake"),
            "{cmd:?}: a forged line in:\n{o}"
        );
    }
    let long = "x".repeat(120_000);
    let out = vp()
        .args(["--snapshot", S, "snippet", &long])
        .assert()
        .code(2);
    assert!(out.get_output().stderr.len() < 2_000);
}
