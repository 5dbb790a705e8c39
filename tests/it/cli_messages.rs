//! Messages that read as one tool: arguments and environment are checked
//! before a plan is printed, nothing is said twice, what is said is true
//! (snapshots, test drivers, running domains), and every command follows
//! one exit-code rule (0 ok, 1 blocked or refused or errors found, 2 usage
//! or I/O). Every run names its host: a sample snapshot, the fixture host,
//! or a fake tree.

use crate::run::Vp;
use crate::setup::{repo, sample, stated_004, tempdir};
use predicates::prelude::*;
use predicates::str::contains;
use std::path::{Path, PathBuf};

/// The fixture host: a GPU on host drivers, an ISA bridge, the root NVMe.
fn fixture() -> PathBuf {
    repo().join("tests/fixtures/host-gpu.json")
}

fn vp() -> Vp {
    crate::run::vp()
}

/// `virt-pci --snapshot S ARGS...`
fn on(s: &Path, args: &[&str]) -> Vp {
    let mut c = vp();
    c.arg("--snapshot").arg(s).args(args);
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

// ---- Validate arguments and environment first, then plan, then print ----

#[test]
fn detach_on_a_snapshot_refuses_before_printing_any_step() {
    on(stated_004(), &["detach", "2b:00.0"])
        .assert()
        .code(2)
        .stdout("")
        .stderr(contains("a snapshot is a file, not a host"))
        .stderr(contains("--dry-run"));
    // The same for the other actions and for check --try.
    for args in [
        &["reattach", "2b:00.0"][..],
        &["reset", "2b:00.0"],
        &["check", "2b:00.0", "--try"],
    ] {
        on(stated_004(), args).assert().code(2).stdout("");
    }
    // A bad address is reported before the host is read.
    on(Path::new("/nonexistent/host.json"), &["detach", "zz"])
        .assert()
        .code(2)
        .stderr(contains("`zz` is not a PCI device address"))
        .stderr(contains("nonexistent").not());
    // --dry-run still prints the steps.
    on(stated_004(), &["detach", "2b:00.0", "--dry-run"])
        .assert()
        .success()
        .stdout(contains("1. detach (to vfio) 0000:2b:00.0"));
}

#[test]
fn snippet_rejects_options_before_printing_the_plan() {
    on(stated_004(), &["snippet", "2b:00.0", "--boot-order", "0"])
        .assert()
        .code(2)
        .stdout("")
        .stderr(contains("boot order 0 is not allowed"))
        .stderr(contains("Passing through").not());
    // An option that needs the plan (four functions from slot 0x1e run
    // past 0x1f) is checked after planning, still before printing.
    on(
        stated_004(),
        &["snippet", "2b:00.0", "--guest-address", "0000:06:1e.0"],
    )
    .assert()
    .code(2)
    .stdout("")
    .stderr(contains("run past slot 0x1f"))
    .stderr(contains("Passing through").not());
    // add: the same order.
    let d = tempdir();
    let f = d.path().join("vm.xml");
    std::fs::write(
        &f,
        "<domain type='kvm'><name>vm</name><devices/></domain>\n",
    )
    .unwrap();
    on(stated_004(), &["add"])
        .arg(&f)
        .args(["2b:00.0", "--boot-order", "0"])
        .assert()
        .code(2)
        .stderr(contains("Passing through").not());
}

#[test]
fn permissive_without_xen_is_an_error_not_a_warning() {
    on(stated_004(), &["snippet", "2b:00.0", "--permissive"])
        .assert()
        .code(2)
        .stdout("")
        .stderr(contains("--permissive is Xen-only"))
        .stderr(contains(
            "Write filtering of PCI device configuration space is not supported by qemu",
        ))
        .stderr(contains("--driver xen"));
    on(
        stated_004(),
        &["snippet", "2b:00.0", "--permissive", "--driver", "xen"],
    )
    .assert()
    .success()
    .stdout(contains("writeFiltering='no'"))
    .stderr(contains("unfiltered write access"))
    .stderr(contains("refuses").not());
}

// ---- snippet --split ----

#[test]
fn split_writes_one_root_element_per_file_named_by_node_device() {
    let d = tempdir();
    let dir = d.path().join("gpu");
    let out = on(
        stated_004(),
        &["snippet", "2b:00", "--alias", "ua-gpu", "--split"],
    )
    .arg(&dir)
    .assert()
    .success()
    .get_output()
    .clone();
    let listed: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    let names = [
        "pci_0000_2b_00_0.xml",
        "pci_0000_2b_00_1.xml",
        "pci_0000_2b_00_2.xml",
        "pci_0000_2b_00_3.xml",
    ];
    assert_eq!(
        listed,
        names
            .iter()
            .map(|n| dir.join(n).display().to_string())
            .collect::<Vec<_>>()
    );
    let mut aliases = Vec::new();
    for n in names {
        let x = std::fs::read_to_string(dir.join(n)).unwrap();
        // One root element: what xmllint and `virsh attach-device` take.
        let doc = roxmltree::Document::parse(&x).unwrap_or_else(|e| panic!("{n}: {e}\n{x}"));
        assert!(doc.root_element().has_tag_name("hostdev"));
        assert_eq!(x.matches("<hostdev ").count(), 1, "{x}");
        aliases.push(
            doc.descendants()
                .find(|n| n.has_tag_name("alias"))
                .and_then(|a| a.attribute("name"))
                .unwrap()
                .to_string(),
        );
    }
    // Numbered across the files as in the stream.
    assert_eq!(aliases, ["ua-gpu", "ua-gpu-1", "ua-gpu-2", "ua-gpu-3"]);
    // The stream and the files hold the same bytes.
    let stream = on(stated_004(), &["snippet", "2b:00", "--alias", "ua-gpu"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let joined: String = names
        .iter()
        .map(|n| std::fs::read_to_string(dir.join(n)).unwrap())
        .collect();
    assert_eq!(text(&stream), joined);
    // A file where the directory should be: usage error, nothing written.
    let file = d.path().join("plain");
    std::fs::write(&file, "x").unwrap();
    on(stated_004(), &["snippet", "2b:00.0", "--split"])
        .arg(&file)
        .assert()
        .code(2)
        .stderr(contains("not a directory"));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
}

// ---- validate: nothing to check, stdin ----

#[test]
fn validate_with_nothing_to_check_fails_unless_allowed() {
    let d = tempdir();
    vp().arg("validate")
        .arg(d.path())
        .assert()
        .code(2)
        .stdout("")
        .stderr(contains("nothing to check: no *.xml file in"))
        .stderr(contains("--allow-empty"));
    vp().arg("validate")
        .arg(d.path())
        .arg("--allow-empty")
        .assert()
        .success()
        .stdout(contains("checked 0 files"));
}

#[test]
fn validate_and_snapshot_read_stdin_with_a_dash() {
    let bad = "<domain type='kvm'><name>x</name><devices>\n<hostdev mode='subsystem' type='pci' managed='true'><source><address domain='0x0000' bus='0x2b' slot='0x00' function='0x0'/></source></hostdev>\n</devices></domain>\n";
    vp().args(["validate", "-"])
        .write_stdin(bad)
        .assert()
        .code(1)
        .stdout(contains("error[VP012]"))
        .stdout(contains("<stdin>:2:"))
        .stdout(contains("checked 1 file"));
    vp().args(["validate", "-", "-"])
        .write_stdin(bad)
        .assert()
        .code(2)
        .stderr(contains("more than once"));
    let snap = std::fs::read_to_string(stated_004()).unwrap();
    vp().args(["--snapshot", "-", "show", "2b:00.0"])
        .write_stdin(snap.clone())
        .assert()
        .success()
        .stdout(contains("verdict: ok — 4 travel together"));
    vp().args(["--snapshot", "-", "validate", "-"])
        .write_stdin(snap)
        .assert()
        .code(2)
        .stderr(contains("both the files and --snapshot"));
}

// ---- Nothing said twice ----

#[test]
fn a_split_group_warns_once_and_a_driverless_function_is_not_told_to_unbind() {
    // A listing does not say which drivers the others are on: said so,
    // once for the group.
    let o = on(stated_004(), &["snippet", "2b:00.0", "--no-strict-group"])
        .assert()
        .success()
        .get_output()
        .clone();
    let err = text(&o.stderr);
    assert_eq!(err.matches("warning[group-split]").count(), 1, "{err}");
    assert!(
        err.contains("0000:2b:00.1, 0000:2b:00.2, 0000:2b:00.3 stay on the host and listing:004-msi-b550m-mortar-turing-4fn.txt does not say which driver they are on"),
        "{err}"
    );
    assert!(!err.contains("unless it is unbound"), "{err}");
    // A fake tree of the same host: drivers are measured (none bound), so
    // the group stays viable; nobody is told to unbind what is unbound.
    let d = tempdir();
    let tree = d.path().join("host");
    vp().arg("fake-sysfs")
        .arg(stated_004())
        .arg(&tree)
        .assert()
        .success();
    let o = vp()
        .arg("--root")
        .arg(&tree)
        .args(["snippet", "2b:00.0", "--no-strict-group", "--force"])
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert_eq!(err.matches("warning[group-split]").count(), 1, "{err}");
    assert!(
        err.contains(
            "0000:2b:00.1, 0000:2b:00.2, 0000:2b:00.3 stay on the host without a host driver, which keeps the group viable"
        ),
        "{err}"
    );
    assert!(!err.contains("unbound or bound to vfio-pci"), "{err}");
    // Functions on host drivers: the group is not viable, said once.
    let o = on(&fixture(), &["snippet", "01:00.0", "--no-strict-group"])
        .assert()
        .success()
        .get_output()
        .clone();
    let err = text(&o.stderr);
    assert_eq!(err.matches("warning[group-split]").count(), 1, "{err}");
    assert!(err.contains("0000:01:00.1 (`snd_hda_intel`), 0000:01:00.2 (`xhci_hcd`), 0000:01:00.3 (`nvidia-gpu`) stay on host drivers"), "{err}");
    assert!(err.contains("\"group 1 is not viable\""), "{err}");
}

#[test]
fn prepare_and_release_name_their_domain_and_group_absent_devices() {
    let d = tempdir();
    let f = d.path().join("vm1.xml");
    let hd = |b: &str, f: &str| {
        format!("<hostdev mode='subsystem' type='pci' managed='no'><source><address domain='0x0000' bus='0x{b}' slot='0x00' function='0x{f}'/></source></hostdev>\n")
    };
    std::fs::write(
        &f,
        format!(
            "<domain type='kvm'><name>vm1</name><devices>\n{}{}{}</devices></domain>\n",
            hd("77", "0"),
            hd("77", "1"),
            hd("78", "0")
        ),
    )
    .unwrap();
    let o = on(stated_004(), &["prepare"])
        .arg(&f)
        .arg("--dry-run")
        .assert()
        .code(1)
        .stdout(contains("prepare `vm1`: nothing to do"))
        .stdout(contains("prepare :").not())
        .get_output()
        .clone();
    let err = text(&o.stderr);
    // One refusal for the three, one help.
    assert!(err.contains("error: refusing to prepare: domain `vm1` uses 0000:77:00.0, 0000:77:00.1, 0000:78:00.0, which are not present"), "{err}");
    assert_eq!(err.matches("virt-pci list").count(), 1, "{err}");
    assert!(!err.contains("also refused"), "{err}");
    on(stated_004(), &["release"])
        .arg(&f)
        .arg("--dry-run")
        .assert()
        .success()
        .stdout(contains("release `vm1`: nothing to do"))
        .stdout(contains("which are not present on"));
    // A domain without managed='no' hostdevs: named, not an empty list.
    let g = d.path().join("vm2.xml");
    std::fs::write(
        &g,
        "<domain type='kvm'><name>vm2</name><devices/></domain>\n",
    )
    .unwrap();
    on(stated_004(), &["prepare"])
        .arg(&g)
        .arg("--dry-run")
        .assert()
        .success()
        .stdout(contains("prepare `vm2`: nothing to do"));
}

#[test]
fn functions_on_host_drivers_are_one_warning() {
    let o = on(&fixture(), &["show", "01:00.0"]).output().unwrap();
    let out = text(&o.stdout);
    assert_eq!(out.matches("warning[host-driver]").count(), 1, "{out}");
    assert!(out.contains("warning[host-driver]: 0000:01:00.0 (`nouveau`), 0000:01:00.1 (`snd_hda_intel`), 0000:01:00.2 (`xhci_hcd`), 0000:01:00.3 (`nvidia-gpu`) are bound to host drivers; they will be unbound"), "{out}");
}

// ---- What is said is true ----

#[test]
fn usb_on_a_snapshot_without_usb_data_says_so() {
    on(stated_004(), &["usb", "1"])
        .assert()
        .code(1)
        .stderr(contains("holds no USB data"))
        .stderr(contains("this host has no USB buses").not());
    on(stated_004(), &["usb", "046d:c52b"])
        .assert()
        .code(1)
        .stderr(contains("holds no USB data"));
    // With USB data: the buses it has.
    on(&sample("013"), &["usb", "9"])
        .assert()
        .code(1)
        .stderr(contains("USB buses here: 1, 2"));
}

/// The `reset:` line of `show` and of `check`, without the label.
fn reset_line(out: &[u8]) -> String {
    text(out)
        .lines()
        .find_map(|l| {
            l.trim_start()
                .strip_prefix("reset:")
                .map(|r| r.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no reset line in {}", text(out)))
}

#[test]
fn show_and_check_describe_a_reset_in_the_same_words() {
    // 013: the listing says a reset exists, not which method; the fixture
    // lists flr and bus; 000: no reset at all.
    for (s, dev) in [
        (sample("013"), "03:00.0"),
        (fixture(), "01:00.0"),
        (sample("000"), "00:05.0"),
        (stated_004().to_path_buf(), "2b:00.0"),
    ] {
        let show = on(&s, &["show", dev]).output().unwrap();
        let check = on(&s, &["check", dev]).output().unwrap();
        assert_eq!(reset_line(&show.stdout), reset_line(&check.stdout), "{dev}");
    }
    assert!(reset_line(
        &on(&sample("013"), &["show", "03:00.0"])
            .output()
            .unwrap()
            .stdout
    )
    .contains("can be reset"));
}

#[test]
fn check_ends_with_a_verdict_and_exits_by_it() {
    on(stated_004(), &["check", "2b:00.0"])
        .assert()
        .success()
        .stdout(contains(
            "verdict: ok — 0000:2b:00.0 can be assigned; its IOMMU group is viable now",
        ));
    on(&fixture(), &["check", "01:00.0"])
        .assert()
        .success()
        .stdout(contains(
            "verdict: ok — 0000:01:00.0 can be assigned once its group is detached",
        ));
    on(stated_004(), &["check", "04:00.0"])
        .assert()
        .code(1)
        .stdout(contains(
            "verdict: blocked — 0000:04:00.0 cannot be assigned",
        ));
    let o = on(stated_004(), &["check", "2b:00.0", "--try", "--dry-run"])
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(
        text(&o.stdout)
            .lines()
            .last()
            .unwrap()
            .starts_with("verdict: not tried (--dry-run)"),
        "{}",
        text(&o.stdout)
    );
    let j: serde_json::Value = serde_json::from_slice(
        &on(stated_004(), &["check", "04:00.0", "--json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(j["verdict"], "blocked");
}

#[test]
fn vp024_is_silent_when_the_host_proves_the_decimal_reading() {
    // virt-xml / virt-install write decimal: bus="43" is 0000:2b:00.0.
    let d = tempdir();
    let f = d.path().join("vx.xml");
    let dev = |b: &str, f: &str| {
        format!("<hostdev mode=\"subsystem\" type=\"pci\" managed=\"yes\"><source><address domain=\"0\" bus=\"{b}\" slot=\"0\" function=\"{f}\"/></source></hostdev>\n")
    };
    std::fs::write(
        &f,
        format!(
            "<domain type=\"kvm\"><name>vx</name><devices>\n{}{}{}{}</devices></domain>\n",
            dev("43", "0"),
            dev("43", "1"),
            dev("43", "2"),
            dev("43", "3")
        ),
    )
    .unwrap();
    // Without a host the question stands.
    vp().arg("validate")
        .arg(&f)
        .assert()
        .success()
        .stdout(contains("warning[VP024]: bus='43' is decimal 43 (0x2b)"));
    // 004 has 2b:00.x and no bus 0x43: the host answers it.
    on(stated_004(), &["validate"])
        .arg(&f)
        .assert()
        .success()
        .stdout(contains("VP024").not())
        .stdout(contains("checked 1 file: 0 errors, 0 warnings"));
    // 004 has no bus 0x10 nor 0x0a: nothing is proven, the warning stays.
    let g = d.path().join("ten.xml");
    std::fs::write(
        &g,
        format!(
            "<domain type=\"kvm\"><name>t</name><devices>\n{}</devices></domain>\n",
            dev("10", "0")
        ),
    )
    .unwrap();
    on(stated_004(), &["validate"])
        .arg(&g)
        .assert()
        .code(1)
        .stdout(contains("warning[VP024]"))
        .stdout(contains("error[VP050]"));
}

// ---- list: tree JSON, filters, can-pass; hostdevs ----

#[test]
fn list_tree_json_is_a_tree() {
    let o = on(stated_004(), &["list", "--tree", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(j.get("devices").is_none(), "--tree was dropped");
    let root = &j["roots"][0];
    assert_eq!(root["bus"], "pci0000:00");
    // 2b:00.0 hangs below the root port 00:03.1.
    let port = root["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["address"] == "0000:00:03.1")
        .unwrap();
    assert!(port["children"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["address"] == "0000:2b:00.0"));
}

/// The group headers of `list` text output.
fn headers(out: &[u8]) -> Vec<String> {
    text(out)
        .lines()
        .filter(|l| l.starts_with("IOMMU group"))
        .map(str::to_string)
        .collect()
}

#[test]
fn list_filters_select_whole_groups_with_a_can_pass_column() {
    let s = stated_004();
    let all = on(s, &["list"]).output().unwrap();
    let h = headers(&all.stdout);
    assert!(
        h.contains(&"IOMMU group 14  can pass: yes".to_string()),
        "{h:?}"
    );
    assert!(
        h.contains(&"IOMMU group 13  can pass: no (host-critical)".to_string()),
        "{h:?}"
    );
    assert!(
        h.contains(&"IOMMU group 0  can pass: - (no endpoint)".to_string()),
        "{h:?}"
    );
    // --class 03: the two display controllers' groups, whole.
    let o = on(s, &["list", "--class", "03"]).output().unwrap();
    assert_eq!(
        headers(&o.stdout),
        [
            "IOMMU group 13  can pass: no (host-critical)",
            "IOMMU group 14  can pass: yes"
        ]
    );
    assert!(
        text(&o.stdout).contains("0000:2a:00.0"),
        "group 13 is shown whole"
    );
    for (args, groups) in [
        (&["--class", "vga"][..], vec!["13", "14"]),
        (&["--vendor", "10de"], vec!["13", "14"]),
        (&["--vendor", "nvidia", "--name", "rtx 2070"], vec!["14"]),
        (&["--group", "14", "--group", "4"], vec!["4", "14"]),
        (&["--name", "RTL8125"], vec!["13"]),
        (&["--class", "0c03", "--vendor", "1022"], vec!["13", "18"]),
    ] {
        let o = on(s, &[&["list"][..], args].concat()).output().unwrap();
        let got: Vec<String> = headers(&o.stdout)
            .iter()
            .map(|h| h.split_whitespace().nth(2).unwrap().to_string())
            .collect();
        assert_eq!(got, groups, "{args:?}");
    }
    // No match: empty output and a note, exit 0.
    on(s, &["list", "--vendor", "dead"])
        .assert()
        .success()
        .stdout("")
        .stderr(contains("no function on"));
    // JSON: the same selection, and the verdict per group.
    let j: serde_json::Value = serde_json::from_slice(
        &on(s, &["list", "--json", "--name", "rtx 2070"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(j["groups"].as_array().unwrap().len(), 1);
    assert_eq!(j["groups"][0]["can_pass"]["verdict"], "ok");
    assert_eq!(j["devices"].as_array().unwrap().len(), 4);
    // Tree + filter keeps the bridges above a match.
    let t = on(s, &["list", "--tree", "--name", "rtx 2070"])
        .output()
        .unwrap();
    let t = text(&t.stdout);
    assert!(t.contains("0000:00:03.1"), "{t}");
    assert!(!t.contains("0000:2a:00.0"), "{t}");
}

#[test]
fn hostdevs_lists_a_domains_devices_with_the_hosts_names() {
    let d = tempdir();
    let f = d.path().join("vm3.xml");
    std::fs::write(&f, "<domain type='kvm'>\n  <name>vm3</name>\n  <devices>\n    <hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x2b' slot='0x00' function='0x0'/></source></hostdev>\n    <hostdev mode='subsystem' type='pci' managed='no'><source><address domain='0x0000' bus='0x77' slot='0x00' function='0x1'/></source></hostdev>\n  </devices>\n</domain>\n").unwrap();
    let o = on(stated_004(), &["hostdevs"]).arg(&f).output().unwrap();
    assert!(o.status.success());
    let out = text(&o.stdout);
    assert!(
        out.starts_with(&format!("vm3 ({}): 2 PCI host devices", f.display())),
        "{out}"
    );
    assert!(out.contains("0000:2b:00.0  managed      NVIDIA Corporation TU104 [GeForce RTX 2070 SUPER]  group 14  driver=none  line 4"), "{out}");
    assert!(out.contains("note: IOMMU group 14 also holds 0000:2b:00.1, 0000:2b:00.2, 0000:2b:00.3, which the domain does not have"), "{out}");
    // Two hostdevs of one incomplete group: the note once.
    let o = on(stated_004(), &["hostdevs"])
        .arg(repo().join("samples/domains/bad-rtx2070-half-group.xml"))
        .output()
        .unwrap();
    assert_eq!(
        text(&o.stdout).matches("note: IOMMU group 14").count(),
        1,
        "{}",
        text(&o.stdout)
    );
    assert!(
        out.contains("0000:77:00.1  managed='no' not present on"),
        "{out}"
    );
    let j: serde_json::Value = serde_json::from_slice(
        &on(stated_004(), &["hostdevs", "-", "--json"])
            .write_stdin(std::fs::read(&f).unwrap())
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(j["file"], "<stdin>");
    assert_eq!(j["domain"], "vm3");
    assert_eq!(j["hostdevs"][0]["device"]["iommu_group"], 14);
    assert_eq!(j["hostdevs"][1]["present"], false);
    assert_eq!(j["hostdevs"][1]["managed"], false);
    // A malformed file: usage error with its position, before the host is read.
    std::fs::write(&f, "<domain>\n<devices>\n</domain>\n").unwrap();
    on(Path::new("/nonexistent.json"), &["hostdevs"])
        .arg(&f)
        .assert()
        .code(2)
        .stderr(contains("not well-formed"))
        .stderr(contains(":3:"));
}

// ---- One exit-code rule ----

#[test]
fn a_blocked_plan_exits_1_in_every_command_that_plans() {
    let s = stated_004();
    for args in [
        &["show", "04:00.0"][..],
        &["check", "04:00.0"],
        &["snippet", "04:00.0"],
        &["detach", "04:00.0", "--dry-run"],
    ] {
        on(s, args).assert().code(1);
    }
    for args in [&["show", "2b:00.0"][..], &["check", "2b:00.0"], &["list"]] {
        on(s, args).assert().success();
    }
    // 013 is a listing without stated facts: the USB controller's plan is
    // unverified, which needs --force to act on, so usb exits 1 too.
    on(&sample("013"), &["usb", "1"])
        .assert()
        .code(1)
        .stdout(contains("verdict: unverified"));
    on(&sample("013"), &["show", "00:14.0"]).assert().code(1);
    // usage: 2
    on(s, &["show", "2b:00.9"]).assert().code(2);
}

// ---- One error story: a file error shows its line with a caret ----

#[test]
fn a_broken_snapshot_shows_its_line_with_a_caret() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("host.json");
    std::fs::write(
        &f,
        "{\"format\": \"virt-pci-snapshot\",\n \"version\": 1,\n \"devices\": [1,]\n}\n",
    )
    .unwrap();
    let o = on(&f, &["list"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let p = f.display();
    assert_eq!(
        text(&o.stderr),
        format!(
            "error: {p}: trailing comma
 --> {p}:3:16
  |
3 |  \"devices\": [1,]
  |                ^
  |
  = help: make a snapshot on the host with `virt-pci snapshot -o FILE`
"
        )
    );
    // A domain for `hostdevs`: the same shape.
    let vm = d.path().join("vm.xml");
    std::fs::write(&vm, "<domain>\n<devices>\n</domain>\n").unwrap();
    let o = on(&f, &["hostdevs"]).arg(&vm).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let v = vm.display();
    assert_eq!(
        text(&o.stderr),
        format!(
            "error: {v} is not well-formed XML: expected 'devices' tag, not 'domain'
 --> {v}:3:1
  |
3 | </domain>
  | ^
  |
  = help: fix the XML (or get a fresh copy with `virsh dumpxml DOMAIN`)
"
        )
    );
}
