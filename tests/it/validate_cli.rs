//! `virt-pci validate`: one test per check, with the exact message, the
//! location and the caret, on the small files in tests/fixtures/validate/.
//! Host checks read tests/fixtures/validate/host.json, a hand-written
//! snapshot (samples/hosts did not exist yet when these were written; its
//! `provenance` says what it models).

use crate::run::vp;

const DIR: &str = "tests/fixtures/validate";
const HOST: &str = "tests/fixtures/validate/host.json";

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Out {
    let mut cmd = vp();
    cmd.env_remove("NO_COLOR").arg("--color=never").args(args);
    let o = cmd.output().unwrap();
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn validate(files: &[&str]) -> Out {
    let mut a = vec!["validate"];
    a.extend_from_slice(files);
    run(&a)
}

fn validate_host(files: &[&str]) -> Out {
    let mut a = vec!["--snapshot", HOST, "validate"];
    a.extend_from_slice(files);
    run(&a)
}

fn f(name: &str) -> String {
    format!("{DIR}/{name}")
}

/// Assert a diagnostic `header` exists, is followed by ` --> loc`, and
/// (when `caret` is given) that its primary caret starts at the column of
/// `loc` and is `caret` characters long. Returns the block's lines.
fn expect(out: &Out, header: &str, loc: &str, caret: Option<usize>) -> Vec<String> {
    let lines: Vec<&str> = out.stdout.lines().collect();
    let Some(i) = lines.iter().position(|l| *l == header) else {
        panic!("no line {header:?} in:\n{}", out.stdout);
    };
    assert_eq!(
        lines[i + 1].trim_start(),
        format!("--> {loc}"),
        "location of {header:?}:\n{}",
        out.stdout
    );
    let end = lines[i + 1..]
        .iter()
        .position(|l| l.is_empty())
        .map_or(lines.len(), |p| i + 1 + p);
    let block: Vec<String> = lines[i..end].iter().map(|s| s.to_string()).collect();
    if let Some(len) = caret {
        let col: usize = loc.rsplit(':').next().unwrap().parse().unwrap();
        let line_no = loc.rsplit(':').nth(1).unwrap();
        // The source line, then the caret line under it.
        let src = block
            .iter()
            .position(|l| l.trim_start().starts_with(&format!("{line_no} |")))
            .unwrap_or_else(|| panic!("no source line {line_no} in {block:#?}"));
        let caret_line = &block[src + 1];
        let bar = caret_line.find('|').unwrap();
        let first = caret_line.find('^').unwrap();
        assert_eq!(first - bar - 1, col, "caret column in {block:#?}");
        let n = caret_line[first..]
            .chars()
            .take_while(|c| *c == '^')
            .count();
        assert_eq!(n, len, "caret length in {block:#?}");
    }
    block
}

fn has_help(block: &[String], help: &str) {
    assert!(
        block
            .iter()
            .any(|l| l.trim_start() == format!("= help: {help}")),
        "no help {help:?} in {block:#?}"
    );
}

fn summary(out: &Out) -> &str {
    out.stdout.lines().last().unwrap_or("")
}

#[test]
fn good_file_passes_with_and_without_a_host() {
    let o = validate(&[&f("good.xml")]);
    assert_eq!(o.code, 0, "{}", o.stdout);
    assert_eq!(o.stdout, "checked 1 file: 0 errors, 0 warnings\n");
    let o = validate_host(&[&f("good.xml")]);
    assert_eq!(o.code, 0, "{}", o.stdout);
    assert_eq!(summary(&o), "checked 1 file: 0 errors, 0 warnings");
}

#[test]
fn vp001_not_well_formed() {
    let o = validate(&[&f("vp001-malformed.xml")]);
    assert_eq!(o.code, 1);
    expect(
        &o,
        "error[VP001]: not well-formed XML: expected 'hostdev' tag, not 'devices'",
        &f("vp001-malformed.xml:5:3"),
        Some(1),
    );
    assert_eq!(summary(&o), "checked 1 file: 1 error, 0 warnings");
}

#[test]
fn vp010_mode() {
    let o = validate(&[&f("vp010-mode.xml")]);
    assert_eq!(o.code, 1);
    let b = expect(
        &o,
        "error[VP010]: unknown hostdev mode='subsys'",
        &f("vp010-mode.xml:8:20"),
        Some(6),
    );
    has_help(
        &b,
        "PCI passthrough uses mode='subsystem' (or leave mode out)",
    );
}

#[test]
fn vp011_missing_type() {
    let o = validate(&[&f("vp011-type.xml")]);
    assert_eq!(o.code, 1);
    let b = expect(
        &o,
        "error[VP011]: hostdev has no `type`: libvirt rejects it (\"missing source address type\")",
        &f("vp011-type.xml:8:6"),
        Some(7),
    );
    has_help(&b, "add type='pci' for a PCI device");
}

#[test]
fn vp012_managed_true() {
    let o = validate(&[&f("vp012-managed.xml")]);
    assert_eq!(o.code, 1);
    let b = expect(
        &o,
        "error[VP012]: managed='true' is not `yes` or `no`: libvirt silently reads it as managed='no'",
        &f("vp012-managed.xml:8:51"),
        Some(4),
    );
    assert!(b
        .iter()
        .any(|l| l.ends_with("^^^^ libvirt reads this as `no`")));
    has_help(&b, "write managed='yes' (libvirt then detaches the device from its host driver at start and gives it back at shutdown)");
    assert_eq!(summary(&o), "checked 1 file: 1 error, 0 warnings");
}

#[test]
fn vp013_missing_address() {
    let o = validate(&[&f("vp013-no-address.xml")]);
    assert_eq!(o.code, 1);
    expect(
        &o,
        "error[VP013]: <source> has no <address>: libvirt stores the hostdev as 0000:00:00.0, the host bridge",
        &f("vp013-no-address.xml:9:8"),
        Some(6),
    );
}

#[test]
fn vp014_empty_address() {
    let o = validate(&[&f("vp014-empty-address.xml")]);
    assert_eq!(o.code, 1);
    expect(
        &o,
        "error[VP014]: empty source <address/>: libvirt reads it as 0000:00:00.0, the host bridge",
        &f("vp014-empty-address.xml:10:9"),
        Some("<address/>".len()),
    );
}

#[test]
fn vp015_host_bridge_address() {
    let o = validate(&[&f("vp015-host-bridge.xml")]);
    assert_eq!(o.code, 1);
    expect(
        &o,
        "error[VP015]: source address 0000:00:00.0 is the host bridge (root complex), which can never be passed through",
        &f("vp015-host-bridge.xml:10:9"),
        None,
    );
}

#[test]
fn vp020_hex_without_prefix() {
    let o = validate(&[&f("vp020-unprefixed-hex.xml")]);
    assert_eq!(o.code, 1);
    let b = expect(
        &o,
        "error[VP020]: libvirt cannot read slot='1f' as a number",
        &f("vp020-unprefixed-hex.xml:10:51"),
        Some(2),
    );
    has_help(
        &b,
        "libvirt reads hex only with the 0x prefix: write slot='0x1f'",
    );
}

#[test]
fn vp021_out_of_range() {
    let o = validate(&[&f("vp021-range.xml")]);
    assert_eq!(o.code, 1);
    expect(
        &o,
        "error[VP021]: function='0x8' is out of range: a PCI function is 0 to 0x7 (libvirt: \"Invalid PCI address\")",
        &f("vp021-range.xml:10:67"),
        Some(3),
    );
}

#[test]
fn vp022_vmd_domain_is_a_warning() {
    let o = validate(&[&f("vp022-vmd-domain.xml")]);
    assert_eq!(o.code, 0);
    expect(
        &o,
        "warning[VP022]: domain='0x10000' is above 0xffff: only Intel VMD domains (10000 and up) look like this",
        &f("vp022-vmd-domain.xml:10:26"),
        Some(7),
    );
    assert_eq!(summary(&o), "checked 1 file: 0 errors, 1 warning");
}

#[test]
fn vp023_octal() {
    let o = validate(&[&f("vp023-octal.xml")]);
    assert_eq!(o.code, 1);
    let b = expect(
        &o,
        "error[VP023]: bus='010' has a leading zero: libvirt reads it as octal, 8 (0x08), not 10",
        &f("vp023-octal.xml:10:39"),
        Some(3),
    );
    has_help(
        &b,
        "write hex with 0x, as libvirt does: bus='0x08' for what libvirt reads now, bus='0x0a' for decimal 10",
    );
}

#[test]
fn vp024_decimal_bus() {
    let o = validate(&[&f("vp024-decimal.xml")]);
    assert_eq!(o.code, 0);
    let b = expect(
        &o,
        "warning[VP024]: bus='10' is decimal 10 (0x0a) to libvirt, but lspci prints bus numbers in hex",
        &f("vp024-decimal.xml:10:39"),
        Some(2),
    );
    has_help(
        &b,
        "write bus='0x0a' to keep decimal 10, or bus='0x10' if the number comes from lspci",
    );
    // --deny warnings turns it into an error.
    let o = run(&["validate", "--deny", "warnings", &f("vp024-decimal.xml")]);
    assert_eq!(o.code, 1);
    assert!(o.stdout.contains("error[VP024]"), "{}", o.stdout);
}

#[test]
fn vp030_duplicate_across_hostdev_and_interface() {
    let o = validate(&[&f("vp030-duplicate.xml")]);
    assert_eq!(o.code, 1);
    let b = expect(
        &o,
        "error[VP030]: host device 0000:01:00.0 is assigned twice in this domain",
        &f("vp030-duplicate.xml:16:9"),
        None,
    );
    assert!(
        b.iter()
            .any(|l| l.ends_with("0000:01:00.0 first assigned here")),
        "{b:#?}"
    );
}

#[test]
fn vp031_guest_address_clash() {
    let o = validate(&[&f("vp031-guest-clash.xml")]);
    assert_eq!(o.code, 1);
    expect(
        &o,
        "error[VP031]: guest PCI address 0000:00:05.0 of <controller type='usb'> is already used by <hostdev type='pci'>",
        &f("vp031-guest-clash.xml:15:7"),
        None,
    );
}

#[test]
fn vp031_function_the_machine_uses() {
    let o = validate(&[&f("vp031-built-in.xml")]);
    assert_eq!(o.code, 1);
    let b = expect(
        &o,
        "error[VP031]: guest PCI address 0000:00:1f.0 of <hostdev type='pci'> of host device 0000:01:00.0 is the machine's ICH9 LPC bridge",
        &f("vp031-built-in.xml:12:7"),
        Some(75),
    );
    has_help(&b, "give the device another slot, or remove its <address> and let libvirt assign one (libvirt: \"Attempted double use of PCI Address 0000:00:1f.0\")");
}

#[test]
fn vp032_duplicate_boot_order() {
    let o = validate(&[&f("vp032-boot-order.xml")]);
    assert_eq!(o.code, 1);
    let b = expect(
        &o,
        "error[VP032]: boot order 1 of <hostdev type='pci'> of host device 0000:01:00.0 is already given to another device",
        &f("vp032-boot-order.xml:17:7"),
        Some(17),
    );
    assert!(
        b.iter()
            .any(|l| l.ends_with("boot order 1 first given here")),
        "{b:#?}"
    );
    has_help(&b, "give each device its own boot order (libvirt: \"boot order '1' used for more than one device\")");
}

#[test]
fn vp033_mixed_boot_styles() {
    let o = validate(&[&f("vp033-boot-styles.xml")]);
    assert_eq!(o.code, 1);
    let b = expect(
        &o,
        "error[VP033]: <hostdev type='pci'> of host device 0000:01:00.0 has <boot order>, and the domain also boots with <os><boot dev='hd'/>",
        &f("vp033-boot-styles.xml:17:7"),
        Some(17),
    );
    assert!(
        b.iter().any(|l| l.ends_with("<os><boot dev> is here")),
        "{b:#?}"
    );
    has_help(&b, "use one style: remove the <os><boot dev=…/> lines, or every per-device <boot order> (libvirt: \"per-device boot elements cannot be used together with os/boot elements\")");
}

#[test]
fn vp034_guest_address_on_a_missing_bus() {
    let o = validate(&[&f("vp034-missing-bus.xml")]);
    assert_eq!(o.code, 1);
    let b = expect(
        &o,
        "error[VP034]: guest PCI address 0000:03:00.0 of <hostdev type='pci'> of host device 0000:01:00.0: guest bus 0x03 has no <controller>, and the pci-bridge libvirt adds for it has no slot 0x00 (slots start at 0x01)",
        &f("vp034-missing-bus.xml:16:7"),
        Some(75),
    );
    has_help(&b, "put the device on a bus with a free slot (buses: 0x00 (pci-root, slots 0x01-0x1f)), or remove its <address> and let libvirt assign one (libvirt: \"Invalid PCI address 0000:03:00.0. slot must be >= 1\")");
}

#[test]
fn vp035_duplicate_alias() {
    let o = validate(&[&f("vp035-alias.xml")]);
    assert_eq!(o.code, 1);
    let b = expect(
        &o,
        "error[VP035]: alias `ua-gpu` of <hostdev type='pci'> of host device 0000:01:00.0 is already used by another device",
        &f("vp035-alias.xml:17:7"),
        Some(22),
    );
    assert!(
        b.iter().any(|l| l.ends_with("`ua-gpu` first used here")),
        "{b:#?}"
    );
    has_help(
        &b,
        "give each device its own alias (libvirt: \"non unique alias detected: ua-gpu\")",
    );
}

#[test]
fn broken_files_are_errors_not_skipped() {
    let d = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(f("good.xml")).unwrap();
    let cases = [
        ("empty.xml", String::new()),
        ("junk.xml", format!("junk\n{good}")),
        ("comment.xml", format!("<!-- never closed\n{good}")),
        (
            "conflict.xml",
            format!("<<<<<<< HEAD\n{good}=======\n{good}>>>>>>> branch\n"),
        ),
        ("truncated.xml", good[..good.len() / 3].to_string()),
    ];
    for (name, text) in &cases {
        std::fs::write(d.path().join(name), text).unwrap();
    }
    let o = validate(&[d.path().to_str().unwrap()]);
    assert_eq!(o.code, 1, "{}", o.stdout);
    assert_eq!(
        o.stdout.matches("error[VP001]").count(),
        cases.len(),
        "{}",
        o.stdout
    );
    assert_eq!(summary(&o), "checked 5 files: 5 errors, 0 warnings");
}

#[test]
fn vp040_shared_device_is_a_warning_unless_denied() {
    let o = validate(&[&f("shared")]);
    assert_eq!(o.code, 0, "{}", o.stdout);
    expect(
        &o,
        &format!(
            "warning[VP040]: host device 0000:01:00.0 is also assigned to domain 'vm-a' ({}) at line 10:9",
            f("shared/vm-a.xml")
        ),
        &f("shared/vm-b.xml:10:9"),
        None,
    );
    assert_eq!(summary(&o), "checked 2 files: 0 errors, 2 warnings");
    let o = run(&["validate", "--deny", "shared", &f("shared")]);
    assert_eq!(o.code, 1);
    assert_eq!(summary(&o), "checked 2 files: 2 errors, 0 warnings");
}

#[test]
fn vp041_and_vp051_group_split_between_domains() {
    let o = validate_host(&[&f("group")]);
    assert_eq!(o.code, 1, "{}", o.stdout);
    expect(
        &o,
        &format!("warning[VP041]: host device 0000:01:00.0 is in IOMMU group 1 with 0000:01:00.1, which domain 'vm-audio' ({}) uses (line 10:9): the group cannot be split between running domains", f("group/vm-audio.xml")),
        &f("group/vm-gpu.xml:10:9"),
        None,
    );
    expect(
        &o,
        "error[VP051]: IOMMU group 1 is not viable for this domain: 0000:01:00.0 is in the group with 0000:01:00.1 but not in the domain",
        &f("group/vm-audio.xml:10:9"),
        None,
    );
}

#[test]
fn host_checks_run_only_when_a_host_is_named() {
    // The same file: no verdict about the host without one...
    let o = validate(&[&f("host/vp051-split-group.xml")]);
    assert_eq!(o.code, 0, "{}", o.stdout);
    // ...and "not viable" with one.
    let o = validate_host(&[&f("host/vp051-split-group.xml")]);
    assert_eq!(o.code, 1);
    let b = expect(
        &o,
        "error[VP051]: IOMMU group 1 is not viable for this domain: 0000:01:00.1 is in the group with 0000:01:00.0 but not in the domain",
        &f("host/vp051-split-group.xml:10:9"),
        None,
    );
    assert!(b
        .iter()
        .any(|l| l.ends_with("QEMU fails to start: \"group 1 is not viable\"")));
    has_help(
        &b,
        &format!(
            "pass every endpoint of the group: `virt-pci --snapshot {HOST} add -i {} 0000:01:00.1`",
            f("host/vp051-split-group.xml")
        ),
    );
}

#[test]
fn vp050_not_present() {
    let o = validate_host(&[&f("host/vp050-not-present.xml")]);
    assert_eq!(o.code, 1);
    expect(
        &o,
        "error[VP050]: 0000:06:00.0 is not present on fixture-desktop",
        &f("host/vp050-not-present.xml:10:9"),
        None,
    );
}

#[test]
fn vp052_root_port() {
    let o = validate_host(&[&f("host/vp052-root-port.xml")]);
    assert_eq!(o.code, 1);
    expect(
        &o,
        "error[VP052]: 0000:00:01.0 is a PCI bridge or root port and can never be a hostdev; libvirt refuses it: \"Non-endpoint PCI devices cannot be assigned to guests\"",
        &f("host/vp052-root-port.xml:10:9"),
        None,
    );
    // The bridge is the problem, not the group: no VP051 on top.
    assert!(!o.stdout.contains("VP051"), "{}", o.stdout);
}

#[test]
fn vp053_host_bridge_function() {
    let o = validate_host(&[&f("host/vp053-host-bridge.xml")]);
    assert_eq!(o.code, 1);
    expect(
        &o,
        "error[VP053]: 0000:00:18.0 is the host bridge (root complex): the host cannot run without it",
        &f("host/vp053-host-bridge.xml:10:9"),
        None,
    );
}

#[test]
fn vp054_host_critical() {
    let o = validate_host(&[&f("host/vp054-root-disk.xml")]);
    assert_eq!(o.code, 1);
    let b = expect(
        &o,
        "error[VP054]: 0000:02:00.0 is the controller of the root filesystem (/dev/nvme0n1)",
        &f("host/vp054-root-disk.xml:10:9"),
        None,
    );
    has_help(
        &b,
        "the host would lose its root filesystem; move the root disk, or pass a device in another group",
    );
}

#[test]
fn vp055_no_reset_is_a_warning() {
    let o = validate_host(&[&f("host/vp055-no-reset.xml")]);
    assert_eq!(o.code, 0, "{}", o.stdout);
    expect(
        &o,
        "warning[VP055]: 0000:03:00.0 has no reset method (no FLR, PM or bus reset): its state can leak between guest and host, and libvirt may fail with \"Unable to reset PCI device 0000:03:00.0: no FLR, PM reset or bus reset available\"",
        &f("host/vp055-no-reset.xml:10:9"),
        None,
    );
}

#[test]
fn vp056_group_with_an_mdev() {
    let o = validate_host(&[&f("host/vp056-mdev-in-group.xml")]);
    assert_eq!(o.code, 1);
    expect(
        &o,
        "error[VP056]: IOMMU group 7 also holds 11111111-2222-3333-4444-555555555555, which is not a PCI function (an mdev or a platform device) and cannot go with the group",
        &f("host/vp056-mdev-in-group.xml:10:9"),
        None,
    );
}

#[test]
fn snippet_streams() {
    // What `virt-pci snippet` prints: several roots, the whole group.
    let o = validate_host(&[&f("snippets/gpu-group.xml")]);
    assert_eq!(o.code, 0, "{}", o.stdout);
    let o = validate(&[&f("snippets/bad-stream.xml")]);
    assert_eq!(o.code, 1);
    expect(
        &o,
        "error[VP012]: managed='on' is not `yes` or `no`: libvirt silently reads it as managed='no'",
        &f("snippets/bad-stream.xml:8:47"),
        Some(2),
    );
    expect(
        &o,
        "error[VP030]: host device 0000:01:00.0 is assigned twice in this file",
        &f("snippets/bad-stream.xml:10:5"),
        None,
    );
    let o = validate(&[&f("snippets/unclosed.xml")]);
    assert_eq!(o.code, 1);
    expect(
        &o,
        "error[VP001]: not well-formed XML: expected 'hostdev' tag, not the end of the file",
        &f("snippets/unclosed.xml:4:12"),
        None,
    );
}

#[test]
fn directories_skip_hidden_dirs_other_files_and_foreign_xml() {
    let o = validate(&[&f("other")]);
    assert_eq!(o.code, 0, "{}", o.stdout);
    assert_eq!(
        o.stdout,
        "checked 1 file: 0 errors, 0 warnings (1 well-formed but not domain or hostdev XML, skipped: tests/fixtures/validate/other/network.xml <network>)\n"
    );
}

#[test]
fn json_format() {
    let o = run(&["validate", "--format", "json", &f("vp012-managed.xml")]);
    assert_eq!(o.code, 1);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["format"], "virt-pci-validate");
    assert_eq!(v["version"], 1);
    assert_eq!(v["files_checked"], 1);
    assert_eq!(v["errors"], 1);
    assert_eq!(v["warnings"], 0);
    let d = &v["diagnostics"][0];
    assert_eq!(d["code"], "VP012");
    assert_eq!(d["severity"], "error");
    assert_eq!(d["line"], 8);
    assert_eq!(d["column"], 51);
    let text = std::fs::read_to_string(f("vp012-managed.xml")).unwrap();
    let (s, e) = (
        d["byte_start"].as_u64().unwrap() as usize,
        d["byte_end"].as_u64().unwrap() as usize,
    );
    assert_eq!(&text[s..e], "true");
    assert!(d["help"]
        .as_str()
        .unwrap()
        .starts_with("write managed='yes'"));
}

#[test]
fn github_format() {
    let o = run(&["validate", "--format", "github", &f("vp012-managed.xml")]);
    assert_eq!(o.code, 1);
    let first = o.stdout.lines().next().unwrap();
    assert_eq!(
        first,
        format!("::error file={},line=8,col=51,title=VP012::managed='true' is not `yes` or `no`: libvirt silently reads it as managed='no'%0Ahelp: write managed='yes' (libvirt then detaches the device from its host driver at start and gives it back at shutdown)", f("vp012-managed.xml"))
    );
    assert_eq!(summary(&o), "checked 1 file: 1 error, 0 warnings");
}

#[test]
fn io_and_usage_problems_exit_2() {
    let o = validate(&[&f("good.xml"), &f("does-not-exist.xml")]);
    assert_eq!(o.code, 2);
    assert!(o.stdout.contains(&format!(
        "error[VP000]: cannot read {}: No such file or directory",
        f("does-not-exist.xml")
    )));
    assert_eq!(summary(&o), "checked 2 files: 1 error, 0 warnings");
    let o = run(&[
        "--snapshot",
        HOST,
        "validate",
        "--this-machine",
        &f("good.xml"),
    ]);
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("cannot be combined"), "{}", o.stderr);
    // The old spelling says where the flag went (`--live` is hot-plug now).
    let o = run(&["validate", "--live", &f("good.xml")]);
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("--this-machine"), "{}", o.stderr);
    let o = run(&[
        "--snapshot",
        "/nonexistent.json",
        "validate",
        &f("good.xml"),
    ]);
    assert_eq!(o.code, 2);
    let o = run(&["validate"]);
    assert_eq!(o.code, 2);
}

#[test]
fn real_sample_host_half_passed_gpu_is_not_viable() {
    // samples/hosts/004: a real B550 desktop whose RTX 2070 SUPER has four
    // functions in IOMMU group 14; the sample domain passes two. The listing
    // says nothing about boot VGA or the root disk: unverified (VP057).
    let sample = "samples/hosts/004-msi-b550m-mortar-turing-4fn.json";
    let dom = "samples/domains/bad-rtx2070-half-group.xml";
    let o = run(&["--snapshot", sample, "validate", dom]);
    assert_eq!(o.code, 1, "{}", o.stdout);
    assert!(
        o.stdout.contains(
            "error[VP057]: 0000:2b:00.0 (VGA compatible controller) could be the boot VGA device"
        ),
        "{}",
        o.stdout
    );
    // With the facts stated, exactly the viability error remains.
    let stated = crate::setup::stated_004();
    let stated_s = stated.to_str().unwrap();
    let o = run(&["--snapshot", stated_s, "validate", dom]);
    assert_eq!(o.code, 1, "{}", o.stdout);
    let b = expect(
        &o,
        "error[VP051]: IOMMU group 14 is not viable for this domain: 0000:2b:00.2, 0000:2b:00.3 are in the group with 0000:2b:00.0, 0000:2b:00.1 but not in the domain",
        "samples/domains/bad-rtx2070-half-group.xml:17:9",
        None,
    );
    assert!(b
        .iter()
        .any(|l| l.ends_with("QEMU fails to start: \"group 14 is not viable\"")));
    has_help(
        &b,
        &format!("pass every endpoint of the group: `virt-pci --snapshot {stated_s} add -i {dom} 0000:2b:00.2 0000:2b:00.3`"),
    );
    assert_eq!(summary(&o), "checked 1 file: 1 error, 0 warnings");
    // The kernel's rule (vfio_dev_viable): members on vfio-pci (or no
    // pci-stub) keep the group viable, so the same domain passes.
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(stated).unwrap()).unwrap();
    for d in v["devices"].as_array_mut().unwrap() {
        if d["address"] == "0000:2b:00.2" {
            d["driver"] = "vfio-pci".into();
        }
        if d["address"] == "0000:2b:00.3" {
            d["driver"] = "pci-stub".into();
        }
    }
    let t = tempfile::tempdir().unwrap();
    let on_vfio = t.path().join("004-vfio.json");
    std::fs::write(&on_vfio, serde_json::to_string(&v).unwrap()).unwrap();
    let o = run(&["--snapshot", on_vfio.to_str().unwrap(), "validate", dom]);
    assert_eq!(o.code, 0, "{}", o.stdout);
    assert_eq!(summary(&o), "checked 1 file: 0 errors, 0 warnings");
}

#[test]
fn libvirt_default_uri_alone_names_no_host() {
    // Set for virsh on many hypervisors: the same files keep their verdict.
    let o = vp()
        .env_remove("VIRT_PCI_NO_COMPANION")
        .env_remove("NO_COLOR")
        .env("LIBVIRT_DEFAULT_URI", "test:///default")
        .args([
            "--color=never",
            "validate",
            "tests/fixtures/validate/host/vp051-split-group.xml",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "checked 1 file: 0 errors, 0 warnings\n"
    );
}

#[test]
fn validate_dot_names_files_as_git_does() {
    // The pre-commit hooks run `validate .`: positions read `vms/bad.xml`,
    // not `./vms/bad.xml`.
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir(t.path().join("vms")).unwrap();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(DIR);
    std::fs::copy(src.join("vp012-managed.xml"), t.path().join("vms/bad.xml")).unwrap();
    let out = vp()
        .current_dir(t.path())
        .args(["validate", "."])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let all = format!("{}{err}", String::from_utf8_lossy(&out.stdout));
    assert!(all.contains(" --> vms/bad.xml:8:51\n"), "{all}");
    assert!(!all.contains("./"), "{all}");
}
