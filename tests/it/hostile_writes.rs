//! Issue 11, items 1, 4 and 5: writes that must land where the kernel would
//! let them, serialised, atomic and never clobbering.
//!
//! Everything happens under a fresh temp dir. The symlink test needs root
//! (to own the file and `lchown` the planted link to `nobody`, uid 65534);
//! without root it says so and passes. The race test is bounded: 20 rounds
//! of two concurrent edits of one file.

use crate::run::Vp;
use predicates::prelude::*;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

const S: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/samples/hosts/004-msi-b550m-mortar-turing-4fn.json"
);
const D: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/domains/win11-q35.xml");

fn vp() -> Vp {
    let mut c = crate::run::vp();
    c.arg("--snapshot").arg(S);
    c
}

fn is_root() -> bool {
    fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(1) == 0
}

#[test]
fn output_never_follows_another_users_link_in_a_sticky_dir() {
    if !is_root() {
        eprintln!("needs root (to plant a link owned by nobody); not run");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let sticky = t.path().join("tmp");
    fs::create_dir(&sticky).unwrap();
    fs::set_permissions(&sticky, fs::Permissions::from_mode(0o1777)).unwrap();
    let precious = t.path().join("root-owned");
    fs::write(&precious, "root's file\n").unwrap();
    let link = sticky.join("o.xml");
    std::os::unix::fs::symlink(&precious, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).unwrap();
    let before = fs::read(&precious).unwrap();
    vp().arg("add")
        .arg(D)
        .args(["2c:00.0", "-o"])
        .arg(&link)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("protected_symlinks"))
        .stderr(predicate::str::contains("nothing was written").not());
    assert_eq!(
        fs::read(&precious).unwrap(),
        before,
        "the link's target was replaced"
    );
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    // A dangling planted link must not create its target either.
    let ghost = t.path().join("ghost");
    let link2 = sticky.join("n.xml");
    std::os::unix::fs::symlink(&ghost, &link2).unwrap();
    std::os::unix::fs::lchown(&link2, Some(65534), Some(65534)).unwrap();
    vp().arg("snapshot")
        .arg("-o")
        .arg(&link2)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("protected_symlinks"))
        .stderr(predicate::str::contains("nothing was written"));
    assert!(!ghost.exists());
    // Our own link there is followed, as the kernel would.
    let mine = sticky.join("mine.xml");
    std::os::unix::fs::symlink(&precious, &mine).unwrap();
    vp().arg("add")
        .arg(D)
        .args(["2c:00.0", "-o"])
        .arg(&mine)
        .assert()
        .success();
    assert!(fs::read_to_string(&precious).unwrap().contains("<hostdev"));
}

#[test]
fn concurrent_add_and_remove_keep_both_changes() {
    let t = tempfile::tempdir().unwrap();
    let c = t.path().join("c.xml");
    fs::copy(D, &c).unwrap();
    vp().arg("add")
        .arg(&c)
        .args(["2c:00.0", "-i"])
        .assert()
        .success();
    let start = fs::read(&c).unwrap();
    let run = |cmd: &str, dev: &str| {
        crate::run::vp()
            .args(["--snapshot", S, cmd])
            .arg(&c)
            .args([dev, "-i"])
            .std_command()
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    for round in 0..20 {
        fs::write(&c, &start).unwrap();
        let mut a = run("add", "2d:00.4");
        let mut r = run("remove", "2c:00.0");
        assert!(a.wait().unwrap().success());
        assert!(r.wait().unwrap().success());
        let now = fs::read_to_string(&c).unwrap();
        assert!(
            now.contains("bus='0x2d'") && !now.contains("bus='0x2c'"),
            "round {round}: a change was lost:\n{now}"
        );
    }
}

#[test]
fn snapshot_output_is_atomic_and_new_files_follow_the_umask() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("snap.json");
    vp().args(["snapshot", "-o"]).arg(&p).assert().success();
    // The umask of the test process is inherited: 0666 & ~umask.
    let umask = current_umask();
    assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o666 & !umask);
    let out = t.path().join("o.xml");
    vp().arg("add")
        .arg(D)
        .args(["2c:00.0", "-o"])
        .arg(&out)
        .assert()
        .success();
    assert_eq!(fs::metadata(&out).unwrap().mode() & 0o777, 0o666 & !umask);
    // /dev/full: ENOSPC, and the message does not claim an original.
    if Path::new("/dev/full").exists() {
        vp().args(["snapshot", "-o", "/dev/full"])
            .assert()
            .code(2)
            .stderr(predicate::str::contains("No space left on device"));
    }
}

fn current_umask() -> u32 {
    let s = fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        .unwrap_or(0o022)
}

#[test]
fn backups_never_clobber_and_never_linger() {
    let t = tempfile::tempdir().unwrap();
    let vm = t.path().join("vm");
    let other = t.path().join("vm.xml");
    fs::copy(D, &vm).unwrap();
    fs::write(&other, "precious").unwrap();
    vp().arg("add")
        .arg(&vm)
        .args(["2c:00.0", "-i", "--backup", ".xml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("exists already"))
        .stderr(predicate::str::contains("another --backup suffix"));
    assert_eq!(fs::read_to_string(&other).unwrap(), "precious");
    assert_eq!(fs::read(&vm).unwrap(), fs::read(D).unwrap());
    vp().arg("add")
        .arg(&vm)
        .args(["2c:00.0", "-i", "--backup", ""])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("backup suffix"));
    // A failed edit (a device that is not on the host) leaves no backup.
    vp().arg("add")
        .arg(&vm)
        .args(["77:00.0", "-i", "--backup", ".orig"])
        .assert()
        .failure();
    let names: Vec<_> = fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn a_250_byte_name_is_edited_in_place() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join(format!("{}.xml", "v".repeat(246)));
    fs::copy(D, &p).unwrap();
    vp().arg("add")
        .arg(&p)
        .args(["2c:00.0", "-i"])
        .assert()
        .success();
    assert!(fs::read_to_string(&p).unwrap().contains("bus='0x2c'"));
    assert_eq!(fs::read_dir(t.path()).unwrap().count(), 1);
}

#[test]
fn stale_temporary_files_of_a_killed_writer_are_removed() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("vm.xml");
    fs::copy(D, &p).unwrap();
    // What a SIGKILL between create and rename leaves: our name, unlocked.
    let stale = t.path().join(".virt-pci-00000000abcd.tmp");
    fs::write(&stale, "<domain").unwrap();
    fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(600))
        .unwrap();
    vp().arg("add")
        .arg(&p)
        .args(["2c:00.0", "-i"])
        .assert()
        .success();
    assert!(!stale.exists());
    assert_eq!(fs::read_dir(t.path()).unwrap().count(), 1);
}
