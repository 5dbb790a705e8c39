//! `detach --persist` / `reattach --persist` on fake roots: the files and
//! their contents, the manifest, exact undo, refusals like `detach`, and bad
//! input (half-written manifest, foreign or edited files, a failing write)
//! leaving everything as it was. That the files really bind at boot is the
//! e2e VM's proof (tests/e2e/guest/doctor.sh reboots the guest).

use crate::fakesys;
use crate::fakesys::{desktop, vp, FakeSys};
use predicates::str::contains;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

const RULES: &str = "etc/udev/rules.d/05-virt-pci-vfio.rules";
const MODPROBE: &str = "etc/modprobe.d/virt-pci-vfio.conf";
const LOAD: &str = "etc/modules-load.d/virt-pci-vfio.conf";
const HOOK: &str = "etc/initramfs-tools/hooks/virt-pci-vfio";
const MANIFEST: &str = "var/lib/virt-pci/persist.json";

/// Every file under `dir` with its content (to prove "nothing changed").
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    fn walk(base: &Path, d: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            let ft = e.file_type().unwrap();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            if ft.is_symlink() {
                out.insert(
                    rel,
                    fs::read_link(&p)
                        .unwrap()
                        .display()
                        .to_string()
                        .into_bytes(),
                );
            } else if ft.is_dir() {
                out.insert(rel.clone() + "/", Vec::new());
                walk(base, &p, out);
            } else {
                out.insert(rel, fs::read(&p).unwrap());
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

/// The desktop tree plus the directories a Debian host has, a module link
/// for nouveau, and modalias data for the unbound-function lookup.
fn host() -> FakeSys {
    let f = desktop();
    for d in [
        "etc/udev/rules.d",
        "etc/modprobe.d",
        "etc/modules-load.d",
        "etc/initramfs-tools/hooks",
        "sys/module/nouveau",
    ] {
        fs::create_dir_all(f.path().join(d)).unwrap();
    }
    symlink(
        f.path().join("sys/module/nouveau"),
        f.path().join("sys/bus/pci/drivers/nouveau/module"),
    )
    .unwrap();
    f
}

fn read(f: &FakeSys, rel: &str) -> String {
    fs::read_to_string(f.path().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn persist_writes_per_address_files_and_a_manifest_and_undo_removes_exactly_them() {
    let f = host();
    let before = tree(f.path());
    vp(&["--root", &f.root(), "detach", "--persist", "01:00.0"])
        .assert()
        .success()
        .stdout(contains(
            "bound to vfio-pci at boot, before: (none); after: 0000:01:00.0 0000:01:00.1",
        ))
        .stdout(contains("update-initramfs -u"))
        .stdout(contains("takes effect at the next boot"));
    let rules = read(&f, RULES);
    assert!(
        rules.contains("KERNEL==\"0000:01:00.0\", ATTR{driver_override}=\"vfio-pci\""),
        "{rules}"
    );
    assert!(
        rules.contains("KERNEL==\"0000:01:00.1\""),
        "the whole group: {rules}"
    );
    assert!(
        !rules.contains("10de"),
        "never by vendor:device id: {rules}"
    );
    let mp = read(&f, MODPROBE);
    assert!(mp.contains("softdep nouveau pre: vfio-pci\n"), "{mp}");
    assert!(
        mp.contains("softdep snd_hda_intel pre: vfio-pci\n"),
        "built-in fallback: {mp}"
    );
    assert!(
        mp.contains("install vfio-pci for d in 0000:01:00.0 0000:01:00.1;"),
        "{mp}"
    );
    assert!(read(&f, LOAD).ends_with("vfio-pci\n"));
    let hook = read(&f, HOOK);
    assert!(
        hook.contains("manual_add_modules vfio vfio_iommu_type1 vfio_pci"),
        "{hook}"
    );
    assert_eq!(
        fs::metadata(f.path().join(HOOK))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755
    );
    assert_eq!(
        fs::metadata(f.path().join(RULES))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o644
    );
    let m: serde_json::Value = serde_json::from_str(&read(&f, MANIFEST)).unwrap();
    assert_eq!(m["functions"][0]["address"], "0000:01:00.0");
    assert_eq!(m["functions"][0]["module"], "nouveau");
    assert_eq!(m["files"].as_array().unwrap().len(), 4);
    // Nothing was unbound now.
    assert_eq!(
        read(
            &f,
            "sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0/driver_override"
        ),
        "(null)\n"
    );
    // Doing it again changes nothing.
    vp(&["--root", &f.root(), "detach", "--persist", "01:00.1"])
        .assert()
        .success()
        .stdout(contains("nothing to change"));
    // doctor reports it, not in effect (the fake devices are still on their drivers).
    vp(&["--root", &f.root(), "doctor"])
        .assert()
        .stdout(contains("persisted but not on vfio-pci this boot: 0000:01:00.0 (nouveau), 0000:01:00.1 (snd_hda_intel)"));
    // Undo: exactly the files go; the directories stay.
    vp(&["--root", &f.root(), "reattach", "--persist", "01:00.0"])
        .assert()
        .success()
        .stdout(contains("remove /etc/udev/rules.d/05-virt-pci-vfio.rules"));
    let mut after = tree(f.path());
    after.remove("var/");
    after.remove("var/lib/");
    after.remove("var/lib/virt-pci/");
    assert_eq!(before, after);
}

#[test]
fn dry_run_shows_every_file_and_writes_nothing() {
    let f = host();
    let before = tree(f.path());
    vp(&[
        "--root",
        &f.root(),
        "detach",
        "--persist",
        "--dry-run",
        "01:00.0",
    ])
    .assert()
    .success()
    .stdout(contains(
        "write /etc/udev/rules.d/05-virt-pci-vfio.rules (mode 0644):",
    ))
    .stdout(contains(
        "write /etc/modprobe.d/virt-pci-vfio.conf (mode 0644):",
    ))
    .stdout(contains(
        "write /etc/modules-load.d/virt-pci-vfio.conf (mode 0644):",
    ))
    .stdout(contains(
        "write /etc/initramfs-tools/hooks/virt-pci-vfio (mode 0755):",
    ))
    .stdout(contains("`update-initramfs -u`"));
    let out = vp(&[
        "--root",
        &f.root(),
        "detach",
        "--persist",
        "--dry-run",
        "--json",
        "01:00.0",
    ])
    .assert()
    .success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["plan"]["commands"][0], "update-initramfs -u");
    assert_eq!(v["plan"]["files"].as_array().unwrap().len(), 4);
    assert_eq!(before, tree(f.path()));
}

#[test]
fn host_critical_is_refused_like_detach_and_nothing_is_written() {
    let f = host();
    let before = tree(f.path());
    let plain = vp(&["--root", &f.root(), "detach", "--dry-run", "00:1f.4"])
        .assert()
        .code(1);
    let plain_err = String::from_utf8_lossy(&plain.get_output().stderr).to_string();
    let p = vp(&["--root", &f.root(), "detach", "--persist", "00:1f.4"])
        .assert()
        .code(1);
    let err = String::from_utf8_lossy(&p.get_output().stderr).to_string();
    // The same refusal text as detach, with the action named.
    let reason = plain_err
        .lines()
        .next()
        .unwrap()
        .split_once(": ")
        .unwrap()
        .1
        .to_string();
    let reason = reason.trim_start_matches("refusing to detach: ");
    assert!(
        err.contains(reason),
        "detach said {plain_err}\npersist said {err}"
    );
    assert_eq!(before, tree(f.path()));
}

#[test]
fn half_written_manifest_is_a_clear_error_with_its_location() {
    let f = host();
    fs::create_dir_all(f.path().join("var/lib/virt-pci")).unwrap();
    fs::write(f.path().join(MANIFEST), "{\"version\": 1, \"functions\": [").unwrap();
    let before = tree(f.path());
    vp(&["--root", &f.root(), "detach", "--persist", "01:00.0"])
        .assert()
        .code(1)
        .stderr(contains("persist.json is not valid"))
        .stderr(contains("persist.json:1:"))
        .stderr(contains("help: virt-pci writes it atomically"));
    vp(&["--root", &f.root(), "reattach", "--persist", "01:00.0"])
        .assert()
        .code(1);
    assert_eq!(before, tree(f.path()));
    // doctor reports it as a failure too.
    vp(&["--root", &f.root(), "doctor"])
        .assert()
        .code(1)
        .stdout(contains("persist.json is not valid"));
}

#[test]
fn foreign_or_edited_files_are_never_overwritten_or_removed() {
    let f = host();
    fs::write(f.path().join(MODPROBE), "options foo bar=1\n").unwrap();
    let before = tree(f.path());
    vp(&["--root", &f.root(), "detach", "--persist", "01:00.0"])
        .assert()
        .code(1)
        .stderr(contains(
            "virt-pci-vfio.conf exists and was not written by virt-pci",
        ));
    assert_eq!(before, tree(f.path()));
    fs::remove_file(f.path().join(MODPROBE)).unwrap();
    vp(&["--root", &f.root(), "detach", "--persist", "01:00.0"])
        .assert()
        .success();
    fs::write(f.path().join(RULES), "# mine now\n").unwrap();
    let before = tree(f.path());
    vp(&["--root", &f.root(), "reattach", "--persist", "01:00.0"])
        .assert()
        .code(1)
        .stderr(contains(
            "05-virt-pci-vfio.rules changed since virt-pci wrote it",
        ));
    assert_eq!(before, tree(f.path()));
}

#[test]
fn a_failing_write_puts_back_every_file_already_written() {
    let f = host();
    // modules-load.d is a file, so the third write fails.
    fs::remove_dir(f.path().join("etc/modules-load.d")).unwrap();
    fs::write(f.path().join("etc/modules-load.d"), "not a directory").unwrap();
    let before = tree(f.path());
    vp(&["--root", &f.root(), "detach", "--persist", "01:00.0"])
        .assert()
        .code(1)
        .stderr(contains("modules-load.d"))
        .stderr(contains("every file virt-pci had changed was put back"));
    assert_eq!(before, tree(f.path()));
}

#[test]
fn identical_cards_stay_independent_and_unbound_functions_find_their_module() {
    let f = host();
    // A second GPU identical to 01:00.0, unbound, with a modalias that
    // modules.alias maps to nouveau.
    f.add(fakesys::Dev {
        addr: "0000:00:02.0",
        parent: None,
        vendor: "0x10de",
        device: "0x1c82",
        class: "0x030000",
        driver: None,
        group: Some(9),
        reset_method: "flr",
    });
    let modalias = "pci:v000010DEd00001C82sv00001043sd00008613bc03sc00i00";
    fs::write(
        f.path()
            .join("sys/devices/pci0000:00/0000:00:02.0/modalias"),
        format!("{modalias}\n"),
    )
    .unwrap();
    fs::create_dir_all(f.path().join("proc/sys/kernel")).unwrap();
    fs::write(f.path().join("proc/sys/kernel/osrelease"), "6.1.0-test\n").unwrap();
    fs::create_dir_all(f.path().join("lib/modules/6.1.0-test")).unwrap();
    fs::write(
        f.path().join("lib/modules/6.1.0-test/modules.alias"),
        "alias pci:v000010DEd*sv*sd*bc03sc*i* nouveau\nalias pci:v00008086d*sv*sd*bc*sc*i* other\n",
    )
    .unwrap();
    vp(&["--root", &f.root(), "detach", "--persist", "00:02.0"])
        .assert()
        .success();
    let rules = read(&f, RULES);
    assert!(rules.contains("0000:00:02.0"));
    assert!(
        !rules.contains("0000:01:00.0"),
        "the twin stays on the host: {rules}"
    );
    assert!(read(&f, MODPROBE).contains("softdep nouveau pre: vfio-pci"));
}

#[test]
fn driverctl_conflict_and_initramfs_options() {
    let f = host();
    fs::create_dir_all(f.path().join("etc/driverctl.d")).unwrap();
    fs::write(
        f.path().join("etc/driverctl.d/pci-0000:01:00.1"),
        "snd_hda_intel\n",
    )
    .unwrap();
    vp(&["--root", &f.root(), "detach", "--persist", "01:00.0"])
        .assert()
        .code(1)
        .stderr(contains(
            "driverctl binds 0000:01:00.1 to `snd_hda_intel` at boot",
        ))
        .stderr(contains("driverctl unset-override 0000:01:00.1"));
    fs::remove_file(f.path().join("etc/driverctl.d/pci-0000:01:00.1")).unwrap();
    // --update-initramfs would rebuild this machine's initramfs: refused under --root.
    vp(&[
        "--root",
        &f.root(),
        "detach",
        "--persist",
        "--update-initramfs",
        "01:00.0",
    ])
    .assert()
    .code(2)
    .stderr(contains("chroot"));
    // Without an initramfs generator: no hook, a note instead.
    fs::remove_dir_all(f.path().join("etc/initramfs-tools")).unwrap();
    vp(&["--root", &f.root(), "detach", "--persist", "01:00.0"])
        .assert()
        .success()
        .stdout(contains("no initramfs-tools or dracut configuration found"));
    assert!(!f.path().join(HOOK).exists());
    // dracut: its own file.
    let g = host();
    fs::remove_dir_all(g.path().join("etc/initramfs-tools")).unwrap();
    fs::create_dir_all(g.path().join("etc/dracut.conf.d")).unwrap();
    vp(&["--root", &g.root(), "detach", "--persist", "01:00.0"])
        .assert()
        .success()
        .stdout(contains("`dracut -f`"));
    assert!(read(&g, "etc/dracut.conf.d/virt-pci-vfio.conf")
        .contains("force_drivers+=\" vfio vfio_iommu_type1 vfio_pci \""));
}

#[test]
fn persist_needs_a_host_not_a_snapshot() {
    vp(&[
        "--snapshot",
        "samples/hosts/013-b560-tigerlake-rx7600-reset-usb.json",
        "detach",
        "--persist",
        "--dry-run",
        "03:00.0",
    ])
    .assert()
    .code(2)
    .stderr(contains("a snapshot is a file, not a host"));
    // --update-initramfs only with --persist.
    let f = host();
    vp(&[
        "--root",
        &f.root(),
        "detach",
        "--update-initramfs",
        "01:00.0",
    ])
    .assert()
    .code(2);
}
