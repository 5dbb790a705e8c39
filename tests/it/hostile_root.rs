//! Issue 11, item 2: `--root DIR` actions act beneath DIR only. Hostile
//! trees in temp dirs: a `reset` that links outside, an absolute `driver`
//! link as a copied real tree has. The absolute-link test runs the binary
//! with the real /sys hidden behind an empty tmpfs in a private mount
//! namespace (`unshare -m`), with a canary file where the link points, so
//! even a regression could not reach a real device; without unshare/root
//! it says so and passes.

use crate::fakesys::{desktop, vp};
use predicates::str::contains;
use std::fs;
use virt_pci::actions::sysfs::SysfsBackend;
use virt_pci::actions::Backend;
use virt_pci::address::PciAddress;

const AUDIO: PciAddress = PciAddress::new(0, 1, 0, 1);

#[test]
fn a_reset_linking_outside_the_root_is_refused_and_the_target_untouched() {
    let f = desktop();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    fs::write(&victim, "precious\n").unwrap();
    let reset = f
        .path()
        .join("sys/devices/pci0000:00/0000:00:01.0/0000:01:00.1/reset");
    fs::remove_file(&reset).unwrap();
    // Relative, climbing out of DIR.
    let up = "../".repeat(reset.components().count());
    std::os::unix::fs::symlink(format!("{up}{}", victim.display()), &reset).unwrap();
    let root = f.root();
    vp(&["--root", &root, "reset", "01:00.1", "--no-strict-group"])
        .assert()
        .failure()
        .stderr(contains("leads outside"))
        .stderr(contains("reset"));
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
    // Absolute, straight at it.
    fs::remove_file(&reset).unwrap();
    std::os::unix::fs::symlink(&victim, &reset).unwrap();
    let mut b = SysfsBackend::new(f.path());
    let e = b.reset(&AUDIO).unwrap_err();
    assert!(e.message.contains("leads outside"), "{e}");
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
    // drivers_probe too.
    let probe = f.path().join("sys/bus/pci/drivers_probe");
    fs::remove_file(&probe).unwrap();
    std::os::unix::fs::symlink(&victim, &probe).unwrap();
    let e = b.reattach(&AUDIO).unwrap_err();
    assert!(e.message.contains("leads outside"), "{e}");
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
}

#[test]
fn an_absolute_driver_link_never_reaches_the_real_sys() {
    let is_root = rustix::process::geteuid().is_root();
    let unshare = std::path::Path::new("/usr/bin/unshare");
    if !is_root || !unshare.exists() {
        eprintln!("needs root and unshare (to hide the real /sys); not run");
        return;
    }
    let f = desktop();
    let drv = f
        .path()
        .join("sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0/driver");
    fs::remove_file(&drv).unwrap();
    std::os::unix::fs::symlink("/sys/bus/pci/drivers/nvme", &drv).unwrap();
    let canary = f.path().join("canary");
    let script = r#"mount -t tmpfs none /sys || exit 99
mkdir -p /sys/bus/pci/drivers/nvme && : > /sys/bus/pci/drivers/nvme/unbind
"$@"; rc=$?
cat /sys/bus/pci/drivers/nvme/unbind > "$CANARY"; exit $rc"#;
    let out = crate::run::vp()
        .args(["--root", &f.root(), "detach", "01:00.0"])
        .env("CANARY", &canary)
        .via(
            unshare,
            ["-m", "--propagation", "private", "sh", "-c", script, "sh"],
        )
        .output()
        .unwrap();
    if out.status.code() == Some(99) {
        eprintln!("cannot mount a tmpfs in a mount namespace here; not run");
        return;
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("leads outside"), "{stderr}");
    assert_eq!(
        fs::read_to_string(&canary).unwrap(),
        "",
        "wrote outside the root"
    );
    // Refused before the first write: the override is untouched.
    assert_eq!(
        f.read("sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0/driver_override"),
        "(null)\n"
    );
}

#[test]
fn dry_run_and_the_real_run_name_the_same_paths_all_under_the_root() {
    let f = desktop();
    let root = f.root();
    let dry = vp(&[
        "--root",
        &root,
        "reset",
        "01:00.1",
        "--no-strict-group",
        "--dry-run",
    ])
    .assert()
    .success();
    let shown = String::from_utf8_lossy(&dry.get_output().stdout).into_owned();
    let mut b = SysfsBackend::new(f.path());
    b.reset(&AUDIO).unwrap();
    for (rel, value) in b.writes() {
        let line = format!("write {value} > {root}/{rel}");
        assert!(shown.contains(&line), "{line} not in:\n{shown}");
    }
    assert_eq!(
        f.read("sys/devices/pci0000:00/0000:00:01.0/0000:01:00.1/reset"),
        "1"
    );
}
