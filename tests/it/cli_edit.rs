//! `virt-pci snippet/add/remove` end to end: outputs, exit codes, and bad
//! inputs that must leave every file as it was (bytes and mode compared).
//!
//! Hosts come from tests/fixtures/host-gpu.json (see tests/it/fixture_host.rs).
//! Filesystem failures are real where this machine allows it: a tiny tmpfs
//! mounted for the test, filled up (ENOSPC) or remounted read-only (EROFS,
//! which stops root too). Those two tests need root and mount(2); without
//! them they say so and pass. `/dev/full` is the kernel's always-full
//! device, a missing directory is really missing, and the permission test
//! runs the binary as `nobody` through setpriv.

use crate::run::Vp;
use predicates::prelude::*;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

const SNAP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/host-gpu.json");

const VM: &str = "<?xml version='1.0' encoding='UTF-8'?>
<!-- keep this comment -->
<domain type='kvm'>
  <name>win11</name>
  <memory unit='KiB'>8388608</memory>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
  </os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/libvirt/images/win11.qcow2'/>
      <target dev='sda' bus='sata'/>
    </disk>
  </devices>
</domain>
";

fn vp() -> Vp {
    let mut c = crate::run::vp();
    c.arg("--snapshot").arg(SNAP);
    c
}

fn file(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, text).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    p
}

/// Bytes and mode of a file, to prove it was not touched.
fn state(p: &Path) -> (Vec<u8>, u32, u64) {
    let m = fs::metadata(p).unwrap();
    (fs::read(p).unwrap(), m.mode(), m.ino())
}

#[test]
fn snippet_prints_the_whole_group_and_the_plan() {
    vp().args(["snippet", "01:00.0"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with(
            "<hostdev mode='subsystem' type='pci' managed='yes'>\n  <source>\n    <address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>",
        ))
        .stdout(predicate::str::contains("function='0x3'/>"))
        .stdout(predicate::str::contains("0x00' slot='0x01'").not()) // the root port stays
        .stderr(predicate::str::contains("4 travel together"));
}

#[test]
fn snippet_no_strict_group_warns_loudly() {
    vp().args(["snippet", "01:00.0", "--no-strict-group"])
        .assert()
        .success()
        .stdout(predicate::str::contains("function='0x1'").not())
        .stderr(predicate::str::contains("not viable"));
}

#[test]
fn blocked_plan_refuses_unless_forced() {
    vp().args(["snippet", "02:00.0"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains("root filesystem"))
        .stderr(predicate::str::contains("refusing"));
    vp().args(["snippet", "02:00.0", "--force"])
        .assert()
        .success()
        .stdout(predicate::str::contains("bus='0x02'"));
}

#[test]
fn permissive_warns() {
    vp().args(["snippet", "03:00.0", "--permissive", "--driver", "xen"])
        .assert()
        .success()
        .stdout(predicate::str::contains("<source writeFiltering='no'>"))
        .stderr(predicate::str::contains("config space"));
}

#[test]
fn bad_options_are_usage_errors() {
    vp().args(["snippet", "03:00.0", "--alias", "gpu"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("ua-"));
    vp().args([
        "snippet",
        "03:00.0",
        "--guest-address",
        "0000:00:1f.0",
        "03:00.0",
    ])
    .assert()
    .success();
    vp().args(["snippet", "01:00.0", "--guest-address", "0000:00:1f.0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("past slot 0x1f"));
}

#[test]
fn add_diff_writes_nothing_then_in_place_keeps_mode_symlink_and_backup() {
    let d = tempfile::tempdir().unwrap();
    let p = file(d.path(), "win11.xml", VM, 0o640);
    let link = d.path().join("vm.xml");
    std::os::unix::fs::symlink(&p, &link).unwrap();
    let before = state(&p);
    vp().arg("add")
        .arg(&link)
        .args(["01:00.0", "--diff"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "+    <hostdev mode='subsystem' type='pci' managed='yes'>",
        ))
        .stdout(predicate::str::contains("@@ "));
    assert_eq!(state(&p), before, "--diff wrote something");
    vp().arg("add")
        .arg(&link)
        .args(["01:00.0", "-i", "--backup", ".orig"])
        .assert()
        .success()
        .stdout("");
    let after = fs::read_to_string(&p).unwrap();
    assert!(
        after.starts_with("<?xml version='1.0' encoding='UTF-8'?>\n<!-- keep this comment -->\n")
    );
    assert_eq!(after.matches("<hostdev ").count(), 4);
    assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, 0o640);
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        fs::read_to_string(d.path().join("win11.xml.orig")).unwrap(),
        VM
    );
    // Adding again is a no-op that says so, and does not rewrite the file.
    let ino = fs::metadata(&p).unwrap().ino();
    vp().arg("add")
        .arg(&p)
        .args(["01:00.1", "-i"])
        .assert()
        .success()
        .stderr(predicate::str::contains("already in"))
        .stderr(predicate::str::contains("is unchanged"))
        // ... said once: not again as "unchanged; nothing written".
        .stderr(predicate::str::contains("unchanged").count(1));
    assert_eq!(fs::metadata(&p).unwrap().ino(), ino);
    // remove --all gives back the original bytes.
    vp().arg("remove")
        .arg(&p)
        .args(["--all", "-i"])
        .assert()
        .success();
    assert_eq!(fs::read_to_string(&p).unwrap(), VM);
}

#[test]
fn stdin_to_stdout_and_to_a_file() {
    let out = vp()
        .args(["add", "-", "03:00.0"])
        .write_stdin(VM)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let s = String::from_utf8(out).unwrap();
    assert!(s.contains("bus='0x03'") && s.contains("<!-- keep this comment -->"));
    let back = vp()
        .args(["remove", "-", "0000:03:00.0"])
        .write_stdin(s.clone())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(String::from_utf8(back).unwrap(), VM);
    let d = tempfile::tempdir().unwrap();
    let o = d.path().join("out.xml");
    vp().args(["add", "-", "03:00.0", "-o"])
        .arg(&o)
        .write_stdin(VM)
        .assert()
        .success();
    assert_eq!(fs::read_to_string(&o).unwrap(), s);
    vp().args(["add", "-", "03:00.0", "-i"])
        .write_stdin(VM)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot edit stdin in place"));
}

/// A file error looks like a `validate` finding: the place, the line with a
/// caret under the character the parser stopped at, then the help.
#[test]
fn a_malformed_domain_shows_its_line_with_a_caret() {
    let d = tempfile::tempdir().unwrap();
    let bad = file(
        d.path(),
        "bad.xml",
        "<domain type='kvm'>\n  <devices>\n    <hostdev mode='subsystem' type='pci'>\n  </devices>\n</domain>\n",
        0o600,
    );
    let before = state(&bad);
    let o = vp()
        .arg("add")
        .arg(&bad)
        .args(["03:00.0", "-i"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty());
    let b = bad.display();
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        format!(
            "error: {b}: malformed XML: expected 'hostdev' tag, not 'devices'
 --> {b}:4:3
  |
4 |   </devices>
  |   ^
  |
  = help: fix the XML (or get a fresh copy with `virsh dumpxml DOMAIN`); nothing was written
"
        )
    );
    assert_eq!(state(&bad), before);
    // The same from stdin, named as such.
    let o = vp()
        .args(["remove", "-", "03:00.0"])
        .write_stdin("<domain>\n  <name>vm</nam>\n</domain>\n")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "error: <stdin>: malformed XML: expected 'name' tag, not 'nam'
 --> <stdin>:2:11
  |
2 |   <name>vm</nam>
  |           ^
  |
  = help: fix the XML (or get a fresh copy with `virsh dumpxml DOMAIN`); nothing was written
"
    );
}

#[test]
fn malformed_and_non_domain_input_is_refused_untouched() {
    let d = tempfile::tempdir().unwrap();
    let bad = file(
        d.path(),
        "bad.xml",
        "<domain type='kvm'>\n  <devices>\n    <disk>\n  </devices>\n</domain>\n",
        0o600,
    );
    let before = state(&bad);
    vp().arg("add")
        .arg(&bad)
        .args(["03:00.0", "-i"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "--> {}:4:",
            bad.display()
        )))
        .stderr(predicate::str::contains("malformed XML"))
        .stderr(predicate::str::contains("help:"));
    assert_eq!(state(&bad), before);
    let net = file(
        d.path(),
        "net.xml",
        "<!-- a network -->\n<network>\n  <name>default</name>\n</network>\n",
        0o644,
    );
    let before = state(&net);
    vp().arg("remove")
        .arg(&net)
        .args(["--all", "-i"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not a libvirt domain"))
        .stderr(predicate::str::contains(format!("{}:2:1", net.display())));
    assert_eq!(state(&net), before);
    vp().args(["add", "/nonexistent/vm.xml", "03:00.0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot read /nonexistent/vm.xml"));
}

#[test]
fn removing_what_is_absent_names_it() {
    let d = tempfile::tempdir().unwrap();
    let p = file(d.path(), "vm.xml", VM, 0o644);
    let before = state(&p);
    vp().arg("remove")
        .arg(&p)
        .args(["05:00.0", "-i"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("not in the domain: 0000:05:00.0"));
    assert_eq!(state(&p), before);
}

#[test]
fn full_device_and_missing_directory() {
    let d = tempfile::tempdir().unwrap();
    let p = file(d.path(), "vm.xml", VM, 0o644);
    let before = state(&p);
    // /dev/full: every write fails with ENOSPC.
    vp().arg("add")
        .arg(&p)
        .args(["03:00.0", "-o", "/dev/full"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("No space left on device"))
        .stderr(predicate::str::contains("help:"));
    assert_eq!(state(&p), before);
    vp().arg("add")
        .arg(&p)
        .args(["03:00.0", "-o"])
        .arg(d.path().join("no/such/dir/out.xml"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no/such/dir"));
    assert_eq!(state(&p), before);
}

/// A tiny tmpfs mounted for one test, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn new(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let ok = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs { dir })
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn full_filesystem_leaves_the_original() {
    let Some(fsys) = Tmpfs::new("64k") else {
        eprintln!(
            "full_filesystem_leaves_the_original: cannot mount a tmpfs here (needs root); not run"
        );
        return;
    };
    let p = file(fsys.path(), "vm.xml", VM, 0o640);
    // Fill the filesystem to the last byte.
    let mut filler = fs::File::create(fsys.path().join("filler")).unwrap();
    let chunk = vec![0u8; 4096];
    while std::io::Write::write_all(&mut filler, &chunk).is_ok() {}
    let _ = std::io::Write::write_all(&mut filler, &[0u8; 1]);
    drop(filler);
    let before = state(&p);
    vp().arg("add")
        .arg(&p)
        .args(["01:00.0", "-i", "--backup", ".orig"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("No space left on device"))
        .stderr(predicate::str::contains("original file was not changed"));
    assert_eq!(state(&p), before);
    let left: Vec<_> = fs::read_dir(fsys.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 2, "temporary files left behind: {left:?}");
}

#[test]
fn read_only_filesystem_leaves_the_original() {
    let Some(fsys) = Tmpfs::new("1m") else {
        eprintln!("read_only_filesystem_leaves_the_original: cannot mount a tmpfs here (needs root); not run");
        return;
    };
    let p = file(fsys.path(), "vm.xml", VM, 0o644);
    let ro = std::process::Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(fsys.path())
        .status()
        .unwrap();
    assert!(ro.success());
    let before = state(&p);
    vp().arg("add")
        .arg(&p)
        .args(["01:00.0", "-i"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("Read-only file system"))
        .stderr(predicate::str::contains("-o FILE"));
    assert_eq!(state(&p), before);
}

#[test]
fn unprivileged_user_cannot_write_the_directory() {
    // Runs the real binary as `nobody` (setpriv) on a root-owned 0755
    // directory: the temporary file cannot be created (EACCES).
    let is_root = fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false);
    let setpriv = Path::new("/usr/bin/setpriv");
    if !is_root || !setpriv.exists() {
        eprintln!("unprivileged_user_cannot_write_the_directory: needs root and setpriv; not run");
        return;
    }
    let d = tempfile::Builder::new()
        .prefix("virt-pci-ro")
        .tempdir_in("/tmp")
        .unwrap();
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let p = file(d.path(), "vm.xml", VM, 0o666); // even a world-writable file
    let before = state(&p);
    let out = crate::run::vp()
        .args(["--snapshot", SNAP, "add"])
        .arg(&p)
        .args(["03:00.0", "-i"])
        .via(
            setpriv,
            ["--reuid=65534", "--regid=65534", "--clear-groups", "--"],
        )
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("cannot read") && err.contains(SNAP) {
        eprintln!(
            "unprivileged_user_cannot_write_the_directory: nobody cannot read the fixture; not run"
        );
        return;
    }
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("Permission denied"), "{err}");
    assert_eq!(state(&p), before);
}

/// A q35 domain with two root ports; the disk holds bus 1, boot order 1
/// and the alias `ua-disk` (line numbers below are of this text).
const FIT: &str = "<domain type='kvm'>
  <name>fit</name>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
  </os>
  <devices>
    <controller type='pci' index='0' model='pcie-root'/>
    <controller type='pci' index='1' model='pcie-root-port'>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0' multifunction='on'/>
    </controller>
    <controller type='pci' index='2' model='pcie-root-port'>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x1'/>
    </controller>
    <disk type='file' device='disk'>
      <source file='/var/lib/libvirt/images/fit.qcow2'/>
      <target dev='vda' bus='virtio'/>
      <boot order='1'/>
      <alias name='ua-disk'/>
      <address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>
    </disk>
  </devices>
</domain>
";

/// `add` with options that do not fit the domain: exit 1, the conflict
/// named with its line, a fix, and the file untouched.
#[test]
fn add_refuses_what_does_not_fit_the_domain() {
    let d = tempfile::tempdir().unwrap();
    let vm = file(d.path(), "vm.xml", FIT, 0o644);
    let before = state(&vm);
    let refused = |args: &[&str], error: &str, help: &str| {
        let o = vp()
            .arg("add")
            .arg(&vm)
            .arg("01:00.0")
            .args(args)
            .arg("-i")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        let want = format!("error: {}: {error}\n", vm.display());
        assert!(err.contains(&want), "{args:?}: want {want:?} in\n{err}");
        assert!(
            err.contains(&format!("help: {help}\n")),
            "{args:?}: want help {help:?} in\n{err}"
        );
        assert_eq!(state(&vm), before, "{args:?} changed the file");
    };
    let free = "free guest slots: 0000:00:01.0, 0000:00:03.0, 0000:00:04.0, 0000:00:05.0; e.g. --guest-address 0000:00:01.0 (or leave out --guest-address and let libvirt choose)";
    refused(
        &["--guest-address", "0000:01:00.0"],
        "guest slot 0000:01:00 is taken: <disk type='file'> uses 0000:01:00.0 (line 19)",
        free,
    );
    refused(
        &["--guest-address", "0000:06:00.0", "--guest-multifunction"],
        "guest bus 0x06 does not exist in this domain; its buses: 0x00 (pcie-root, slots 0x01-0x1f), 0x01 (pcie-root-port, slot 0x00), 0x02 (pcie-root-port, slot 0x00)",
        free,
    );
    refused(
        &["--guest-address", "0000:02:01.0"],
        "guest address 0000:02:01.0: bus 0x02 is a pcie-root-port and has only slot 0x00 (libvirt: \"Invalid PCI address 0000:02:01.0. slot must be <= 0\")",
        free,
    );
    refused(
        &["--guest-address", "0000:00:1f.0"],
        "guest slot 0000:00:1f is taken: the machine's ICH9 (LPC bridge, SATA, SMBus) uses 0000:00:1f.0",
        free,
    );
    refused(
        &["--boot-order", "1"],
        "--boot-order 1: <disk type='file'> already has <boot order='1'/> (line 17); libvirt refuses one boot order on two devices",
        "use a free boot order, e.g. --boot-order 2, or change that device's <boot order>",
    );
    refused(
        &["--alias", "ua-disk"],
        "alias `ua-disk` is already used by <disk type='file'> (line 18); libvirt refuses the domain (\"non unique alias detected\")",
        "choose another alias, e.g. --alias ua-disk2",
    );
    // Four functions without --guest-multifunction need four slots; after
    // the free root port 2 there are none on later buses.
    refused(
        &["--guest-address", "0000:02:00.0"],
        "4 hostdevs need 4 guest slots from 0000:02:00.0, and only 1 are free there; buses: 0x00 (pcie-root, slots 0x01-0x1f), 0x01 (pcie-root-port, slot 0x00), 0x02 (pcie-root-port, slot 0x00)",
        "add PCI controllers (e.g. <controller type='pci' model='pcie-root-port'/> per device on q35), use --guest-multifunction to share one slot per device, or leave out --guest-address",
    );
    // <os><boot dev> and a per-device boot order do not mix.
    let os = file(
        d.path(),
        "os.xml",
        &FIT.replace(
            "<type arch='x86_64' machine='q35'>hvm</type>",
            "<type arch='x86_64' machine='q35'>hvm</type>\n    <boot dev='hd'/>",
        )
        .replace("      <boot order='1'/>\n", ""),
        0o644,
    );
    let o = vp()
        .arg("add")
        .arg(&os)
        .args(["01:00.0", "--boot-order", "2", "-i"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains(&format!(
        "error: {}: --boot-order 2: this domain boots with <os><boot dev='hd'/> (line 5), and libvirt refuses per-device boot orders next to it",
        os.display()
    )));
}

/// Guest addresses land on free slots of existing buses; options for a
/// device already in the file are refused (never dropped), with a command.
#[test]
fn add_places_guest_addresses_and_refuses_options_for_present_devices() {
    let d = tempfile::tempdir().unwrap();
    let vm = file(d.path(), "vm.xml", FIT, 0o644);
    vp().arg("add")
        .arg(&vm)
        .args([
            "01:00.0",
            "--guest-address",
            "0000:02:00.0",
            "--guest-multifunction",
        ])
        .args(["--boot-order", "2", "--alias", "ua-gpu", "-i"])
        .assert()
        .success();
    let text = fs::read_to_string(&vm).unwrap();
    assert!(text.contains("<address type='pci' domain='0x0000' bus='0x02' slot='0x00' function='0x0' multifunction='on'/>"), "{text}");
    assert!(
        text.contains(
            "<address type='pci' domain='0x0000' bus='0x02' slot='0x00' function='0x3'/>"
        ),
        "{text}"
    );
    assert!(
        text.contains("<boot order='2'/>") && text.contains("<alias name='ua-gpu-3'/>"),
        "{text}"
    );
    assert!(
        text.ends_with("    </hostdev>\n  </devices>\n</domain>\n"),
        "{text}"
    );
    // Without --guest-multifunction, further devices take the next free slots.
    let vm2 = file(d.path(), "vm2.xml", FIT, 0o644);
    vp().arg("add")
        .arg(&vm2)
        .args(["01:00.0", "--guest-address", "0000:00:03.0", "-i"])
        .assert()
        .success();
    let text = fs::read_to_string(&vm2).unwrap();
    for s in ["0x03", "0x04", "0x05", "0x06"] {
        assert!(
            text.contains(&format!("bus='0x00' slot='{s}' function='0x0'/>")),
            "{s}: {text}"
        );
    }
    // The same device again with options: refused, file unchanged.
    let before = state(&vm);
    let o = vp()
        .arg("add")
        .arg(&vm)
        .args(["01:00.0", "--rom-file", "/x.rom", "--boot-order", "3", "-i"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!(
        "error: {}: 0000:01:00.0, 0000:01:00.1, 0000:01:00.2, 0000:01:00.3 are already in the domain; --rom-file, --boot-order would not be applied to them\n  --> {}:21:5\n",
        vm.display(),
        vm.display()
    )), "{err}");
    assert!(err.contains(&format!(
        "help: virt-pci does not change a hostdev the domain already has: remove it first with `virt-pci remove -i {} 0000:01:00.0 0000:01:00.1 0000:01:00.2 0000:01:00.3`, then run this add again; nothing was written",
        vm.display()
    )), "{err}");
    assert_eq!(state(&vm), before);
    // Plain add of what is there is still fine (nothing to do).
    vp().arg("add")
        .arg(&vm)
        .args(["01:00.0", "-i"])
        .assert()
        .success();
    assert_eq!(state(&vm), before);
}

/// `--json`: the change as data (what the Ansible module reads): the XML
/// before and after and the functions that moved. Written only with -i or
/// -o FILE; with --diff, or neither, the file stays as it was.
#[test]
fn json_reports_the_change_and_writes_only_when_asked() {
    let d = tempfile::tempdir().unwrap();
    let p = file(d.path(), "win11.xml", VM, 0o640);
    let untouched = state(&p);
    // The GPU's group: its four functions travel together.
    let four = || {
        serde_json::json!([
            "0000:01:00.0",
            "0000:01:00.1",
            "0000:01:00.2",
            "0000:01:00.3"
        ])
    };
    let json = |args: &[&str]| -> serde_json::Value {
        let out = vp().arg("add").arg(&p).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    for args in [&["01:00.0", "--json", "--diff"][..], &["01:00.0", "--json"]] {
        let r = json(args);
        assert_eq!(r["changed"], true, "{args:?}");
        assert_eq!(r["written"], false, "{args:?}");
        assert_eq!(r["added"], four());
        assert_eq!(r["before"], VM);
        assert!(r["after"]
            .as_str()
            .unwrap()
            .contains("<address domain='0x0000' bus='0x01' slot='0x00' function='0x1'/>"));
        assert_eq!(state(&p), untouched, "{args:?} wrote the file");
    }
    let r = json(&["01:00.0", "--json", "-i"]);
    assert_eq!((&r["changed"], &r["written"]), (&true.into(), &true.into()));
    assert_eq!(
        fs::read_to_string(&p).unwrap(),
        r["after"].as_str().unwrap()
    );
    // Again: nothing to add, nothing written, and the report says so.
    let r = json(&["01:00.0", "--json", "-i"]);
    assert_eq!(
        (&r["changed"], &r["written"]),
        (&false.into(), &false.into())
    );
    assert_eq!(r["added"], serde_json::json!([]));
    assert_eq!(r["already_present"], four());
    assert_eq!(r["before"], r["after"]);
    // remove --json: the other way round, back to the original bytes.
    let out = vp()
        .arg("remove")
        .arg(&p)
        .args(["01:00", "--json", "-i"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["removed"], four());
    assert_eq!(r["after"], VM);
    assert_eq!(fs::read_to_string(&p).unwrap(), VM);
    // Both on stdout cannot be: a usage error, nothing written.
    vp().arg("add")
        .arg(&p)
        .args(["01:00.0", "--json", "-o", "-"])
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicate::str::contains(
            "--json prints the change on stdout",
        ));
    assert_eq!(fs::read_to_string(&p).unwrap(), VM);
}
