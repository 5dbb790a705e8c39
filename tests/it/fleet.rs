//! Many hosts: the 25 sample hosts as a fleet — inventory counts against the
//! snapshots themselves, placement of the sample domains, `map check`
//! catching a moved, replaced or regrouped card, and `retarget` from one
//! sample host to another and back to the original bytes.

use crate::run::Vp;
use crate::setup::{repo, sample, samples_dir};
use predicates::prelude::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn vp() -> Vp {
    let mut c = crate::run::vp();
    c.current_dir(repo());
    c
}

/// Sample hosts with the facts their owners would state: the listings do
/// not say which functions hold the root disk, the default route and the
/// console, and without them every verdict is `unverified` (and `add`,
/// `retarget` refuse). Written under the sample's own name, so the sample
/// mapping's host names apply.
const STATED: &[(&str, &str, &str, &str)] = &[
    (
        "004-msi-b550m-mortar-turing-4fn",
        "02:00.1",
        "2a:00.0",
        "04:00.0",
    ),
    (
        "014-thinkpad-p53-laptop-turing-tb3",
        "02:00.0",
        "00:1f.6",
        "00:02.0",
    ),
    (
        "017-x570-msi-matisse-gt710-rx580",
        "01:00.0",
        "26:00.0",
        "2d:00.0",
    ),
    (
        "018-gigabyte-x570-aorus-pro-3900x",
        "01:00.0",
        "06:00.0",
        "0b:00.0",
    ),
];

fn stated() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (name, root, nic, vga) in STATED {
        let listing = samples_dir().join(format!("listings/{name}.txt"));
        let out = d.path().join(format!("{name}.json"));
        vp().args([
            "snapshot",
            "--from-listing",
            &s(&listing),
            "--root-disk",
            root,
            "--default-nic",
            nic,
            "--boot-vga",
            vga,
            "-o",
            &s(&out),
        ])
        .assert()
        .success();
    }
    d
}

fn st(d: &tempfile::TempDir, prefix: &str) -> String {
    let (name, ..) = STATED.iter().find(|x| x.0.starts_with(prefix)).unwrap();
    s(&d.path().join(format!("{name}.json")))
}

fn json(args: &[&str]) -> Value {
    let out = vp().args(args).output().unwrap();
    assert!(
        out.status.success() || out.status.code() == Some(1),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Whether a snapshot device is an endpoint, read from the JSON alone
/// (header type 1/2 or a bridge/host-bridge class is not).
fn is_endpoint(d: &Value) -> bool {
    let class =
        u32::from_str_radix(d["class"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
    let ht = d["header_type"].as_u64();
    if matches!(ht.map(|h| h & 0x7f), Some(1) | Some(2)) {
        return false;
    }
    !matches!(class >> 8, 0x0600 | 0x0604 | 0x0607 | 0x0609)
}

#[test]
fn inventory_counts_match_every_sample_snapshot() {
    let inv = json(&["inventory", "samples/hosts", "--json"]);
    assert_eq!(inv["format"], "virt-pci-inventory");
    let hosts = inv["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 25);
    for h in hosts {
        let name = h["name"].as_str().unwrap();
        let snap: Value = serde_json::from_str(
            &std::fs::read_to_string(samples_dir().join(format!("{name}.json"))).unwrap(),
        )
        .unwrap();
        let devs = snap["devices"].as_array().unwrap();
        assert_eq!(
            h["functions"].as_u64().unwrap() as usize,
            devs.len(),
            "{name}"
        );
        let endpoints: Vec<&Value> = devs.iter().filter(|d| is_endpoint(d)).collect();
        assert_eq!(
            h["passable"].as_u64().unwrap() as usize,
            endpoints.len(),
            "{name}"
        );
        // No filter: every endpoint is listed once, and the counts add up.
        let listed = h["devices"].as_array().unwrap();
        assert_eq!(listed.len(), endpoints.len(), "{name}");
        let sum: u64 = h["counts"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(sum as usize, endpoints.len(), "{name}");
        for d in listed {
            let a = d["address"].as_str().unwrap();
            let sd = devs.iter().find(|x| x["address"] == a).unwrap();
            assert_eq!(d["iommu_group"], sd["iommu_group"], "{name} {a}");
            // A function without a group never passes; one whose group
            // holds a host-critical function is blocked.
            if sd["iommu_group"].is_null() && snap["iommu"] != "unknown" {
                assert_eq!(d["status"], "blocked", "{name} {a}");
            }
            if let Some(g) = sd["iommu_group"].as_u64() {
                let critical_in_group = devs.iter().any(|x| {
                    x["iommu_group"].as_u64() == Some(g)
                        && is_endpoint(x)
                        && x["critical"].as_array().is_some_and(|c| !c.is_empty())
                });
                if critical_in_group {
                    assert_eq!(d["status"], "blocked", "{name} {a}");
                    assert_eq!(d["code"], "host-critical", "{name} {a}");
                }
            }
        }
    }
    // The listing does not say which functions the host needs: unverified.
    let raw = hosts
        .iter()
        .find(|h| h["name"].as_str().unwrap().starts_with("004"))
        .unwrap();
    assert_eq!(raw["facts"], "unverified");
    let d2b = raw["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["address"] == "0000:2b:00.0")
        .unwrap();
    assert_eq!(d2b["status"], "unverified");
    assert_eq!(d2b["code"], "fact-unknown");
    // With the facts stated: the RTX 2070's group is clean, the GT 710
    // shares the chipset group with the root disk's controller.
    let sd = stated();
    let inv = json(&["inventory", &st(&sd, "004"), "--json"]);
    let h004 = &inv["hosts"][0];
    assert_eq!(h004["facts"], "stated");
    let find = |a: &str| {
        h004["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["address"] == a)
            .unwrap()
            .clone()
    };
    assert_eq!(find("0000:2b:00.0")["status"], "clean");
    assert_eq!(find("0000:2b:00.0")["group_endpoints"], 4);
    assert_eq!(find("0000:04:00.0")["status"], "blocked");
    assert!(find("0000:04:00.0")["reason"]
        .as_str()
        .unwrap()
        .contains("root filesystem"));
}

#[test]
fn inventory_filters_and_text() {
    let inv = json(&[
        "inventory",
        &s(&sample("004")),
        &s(&sample("016")),
        "--class",
        "gpu",
        "--json",
    ]);
    for h in inv["hosts"].as_array().unwrap() {
        for d in h["devices"].as_array().unwrap() {
            assert!(d["class"].as_str().unwrap().starts_with("0x03"), "{d}");
        }
    }
    let a6000 = json(&[
        "inventory",
        &s(&sample("016")),
        "--id",
        "10de:2230",
        "--json",
    ]);
    let devs = a6000["hosts"][0]["devices"].as_array().unwrap();
    assert_eq!(devs.len(), 2);
    let blocked = json(&[
        "inventory",
        "samples/hosts",
        "--status",
        "blocked",
        "--json",
    ]);
    for h in blocked["hosts"].as_array().unwrap() {
        for d in h["devices"].as_array().unwrap() {
            assert_eq!(d["status"], "blocked");
        }
    }
    let sd = stated();
    vp().args(["inventory", &st(&sd, "004"), "--class", "gpu"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "38 functions, 16 passable, 2 match: 1 clean, 1 blocked",
        ))
        .stdout(predicate::str::contains(
            "0000:2b:00.0  0300    10de:1e84  -          clean",
        ))
        .stdout(predicate::str::contains(
            "└ 0000:02:00.1 is the controller of the root filesystem",
        ));
    vp().args(["inventory", &s(&sample("004")), "--class", "graphics"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("`graphics` is not a device class"))
        .stderr(predicate::str::contains("help: give a name (gpu"));
    vp().args(["inventory", "no-such.json"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot read host no-such.json"));
    let d = tempfile::tempdir().unwrap();
    vp().args(["inventory", &s(d.path())])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("holds no snapshots"));
}

#[test]
fn a_four_function_turing_card_runs_only_where_such_a_card_sits_in_a_clean_group() {
    let p = json(&[
        "--snapshot",
        &s(&sample("004")),
        "place",
        "samples/domains/bad-rtx2070-half-group.xml",
        "samples/hosts",
        "--json",
    ]);
    let fits: Vec<(&str, &str)> = p["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["host"].as_str().unwrap(), h["fit"].as_str().unwrap()))
        .collect();
    assert_eq!(fits.len(), 25);
    let ok: Vec<&str> = fits.iter().filter(|f| f.1 != "no").map(|f| f.0).collect();
    assert_eq!(ok, vec!["004-msi-b550m-mortar-turing-4fn"]);
    // Nothing known blocks it there, but the listing does not say which
    // functions the host needs.
    let h = p["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["fit"] != "no")
        .unwrap();
    assert_eq!(h["fit"], "unverified");
    // The domain names two functions; the group takes all four.
    assert_eq!(
        h["adds"],
        serde_json::json!(["0000:2b:00.2", "0000:2b:00.3"])
    );
    // Every host that cannot says why.
    for h in p["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["fit"] == "no")
    {
        assert!(!h["reasons"].as_array().unwrap().is_empty(), "{h}");
    }
    // By logical name, the Quadro of sample 014 (another Turing model,
    // also four functions in one clean group) qualifies too.
    let p = json(&[
        "--snapshot",
        &s(&sample("004")),
        "place",
        "samples/domains/bad-rtx2070-half-group.xml",
        "samples/hosts",
        "--mapping",
        "samples/mappings/gpus.json",
        "--json",
    ]);
    let ok: Vec<&str> = p["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["fit"] != "no")
        .map(|h| h["host"].as_str().unwrap())
        .collect();
    assert_eq!(
        ok,
        vec![
            "004-msi-b550m-mortar-turing-4fn",
            "014-thinkpad-p53-laptop-turing-tb3"
        ]
    );
    // A blocked group: the GT 710 of sample 004 shares the chipset group
    // with the root disk's controller (stated).
    let sd = stated();
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("gt710.xml");
    vp().args([
        "--snapshot",
        &st(&sd, "018"),
        "add",
        "samples/domains/win11-q35.xml",
        "0c:00.0",
        "-o",
        &s(&f),
    ])
    .assert()
    .success();
    vp().args(["--snapshot", &st(&sd, "018"), "place", &s(&f), &st(&sd, "004"), &st(&sd, "017"), &st(&sd, "018")])
        .assert()
        .success()
        .stdout(predicate::str::contains("004-msi-b550m-mortar-turing-4fn: no\n  0000:02:00.1, the controller of the root filesystem"))
        .stdout(predicate::str::contains("017-x570-msi-matisse-gt710-rx580: ok\n  0000:0c:00.0 → 0000:24:00.0, 0000:0c:00.1 → 0000:24:00.1"))
        .stdout(predicate::str::contains("can run on 2 of 3 hosts"));
    // Nowhere: exit 1.
    vp().args([
        "--snapshot",
        &s(&sample("004")),
        "place",
        "samples/domains/bad-rtx2070-half-group.xml",
        &s(&sample("016")),
    ])
    .assert()
    .code(1)
    .stdout(predicate::str::contains("can run on 0 of 1 host\n"));
    // No source host and no mapping: the addresses mean nothing.
    vp().args([
        "place",
        "samples/domains/bad-rtx2070-half-group.xml",
        &s(&sample("004")),
    ])
    .assert()
    .code(2)
    .stderr(predicate::str::contains(
        "no mapping names it, and no source host",
    ));
}

/// A copy of the sample mapping with one entry changed.
fn mapping_with(edit: impl Fn(&mut Value)) -> (tempfile::TempDir, PathBuf) {
    let mut m: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("samples/mappings/gpus.json")).unwrap(),
    )
    .unwrap();
    edit(&mut m);
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("m.json");
    std::fs::write(&p, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    (d, p)
}

#[test]
fn map_check_catches_moved_replaced_and_regrouped_cards() {
    vp().args([
        "map",
        "check",
        "samples/mappings/gpus.json",
        "--hosts",
        "samples/hosts",
    ])
    .assert()
    .success()
    .stdout(
        "samples/mappings/gpus.json: checked 5 entries against 25 hosts: 0 errors, 0 warnings\n",
    );
    let e = "/devices/turing-gpu/hosts/004-msi-b550m-mortar-turing-4fn";
    // The card moved: the mapping still says 2c:00, the card is at 2b:00.
    let (_d, moved) = mapping_with(|m| m.pointer_mut(e).unwrap()["path"] = "0000:2c:00".into());
    vp().args(["map", "check", &s(&moved), "--hosts", "samples/hosts"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "error: `turing-gpu` on 004-msi-b550m-mortar-turing-4fn: 0000:2c:00.0 is 1022:148a; 10de:1e84 is now at 0000:2b:00.0 (card moved?)",
        ))
        .stderr(predicate::str::contains("help: set \"path\" to \"0000:2b:00\" for 004-msi-b550m-mortar-turing-4fn"))
        .stdout(predicate::str::contains("1 error"));
    // Replaced: another id at the path.
    let (_d2, replaced) = mapping_with(|m| m.pointer_mut(e).unwrap()["id"] = "10de:2204".into());
    vp().args(["map", "check", &s(&replaced), "--hosts", &s(&sample("004"))])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "0000:2b:00.0 is 10de:1e84, the mapping says 10de:2204",
        ));
    // Group changed.
    let (_d3, regrouped) = mapping_with(|m| m.pointer_mut(e).unwrap()["iommugroup"] = 15.into());
    let r = json(&[
        "map",
        "check",
        &s(&regrouped),
        "--hosts",
        &s(&sample("004")),
        "--json",
    ]);
    assert_eq!(r["problems"][0]["code"], "group-changed");
    assert_eq!(r["problems"][0]["host"], "004-msi-b550m-mortar-turing-4fn");
    assert_eq!(r["problems"][0]["address"], "0000:2b:00");
    assert!(r["problems"][0]["message"]
        .as_str()
        .unwrap()
        .contains("IOMMU group 14, the mapping says 15"));
    // Placement refuses a stale entry, with the same words.
    vp().args([
        "--snapshot",
        &s(&sample("004")),
        "place",
        "samples/domains/bad-rtx2070-half-group.xml",
        &s(&sample("004")),
        "--mapping",
        &s(&regrouped),
    ])
    .assert()
    .code(1)
    .stdout(predicate::str::contains("mapping says 15"));
    // A malformed mapping: file:line:col.
    let d = tempfile::tempdir().unwrap();
    let bad = d.path().join("bad.json");
    std::fs::write(&bad, "{\"format\": \"virt-pci-mapping\", \"version\": 1,\n \"devices\": {\"g\": {\"hosts\": {\"h\": {\"path\": \"2b:00.9\", \"id\": \"10de:1e84\"}}}}}\n").unwrap();
    vp().args(["map", "check", &s(&bad), "--hosts", &s(&sample("004"))])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "--> {}:2:",
            bad.display()
        )))
        .stderr(predicate::str::contains("not a PCI device address"));
}

#[test]
fn retarget_there_and_back_gives_the_original_bytes() {
    let sd = stated();
    let d = tempfile::tempdir().unwrap();
    // The GT 710 from sample 018 to 017 (same card, other address), by ids.
    let a = d.path().join("a.xml");
    vp().args([
        "--snapshot",
        &st(&sd, "018"),
        "add",
        "samples/domains/win11-q35.xml",
        "0c:00.0",
        "-o",
        &s(&a),
    ])
    .assert()
    .success();
    vp().args(["--snapshot", &st(&sd, "018"), "retarget", &s(&a), "--to", &st(&sd, "017"), "--diff"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "-        <address domain='0x0000' bus='0x0c' slot='0x00' function='0x0'/>\n+        <address domain='0x0000' bus='0x24' slot='0x00' function='0x0'/>",
        ));
    let b = d.path().join("b.xml");
    let c = d.path().join("c.xml");
    vp().args([
        "--snapshot",
        &st(&sd, "018"),
        "retarget",
        &s(&a),
        "--to",
        &st(&sd, "017"),
        "-o",
        &s(&b),
    ])
    .assert()
    .success();
    vp().args([
        "--snapshot",
        &st(&sd, "017"),
        "retarget",
        &s(&b),
        "--to",
        &st(&sd, "018"),
        "-o",
        &s(&c),
    ])
    .assert()
    .success();
    let (ta, tb, tc) = (
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        std::fs::read(&c).unwrap(),
    );
    assert_ne!(ta, tb);
    assert_eq!(ta.len(), tb.len(), "only attribute values change");
    assert_eq!(ta, tc);

    // The whole Turing group from 004 to 014 by logical name, in place, and back.
    let t = d.path().join("turing.xml");
    vp().args([
        "--snapshot",
        &st(&sd, "004"),
        "add",
        "samples/domains/win11-q35.xml",
        "2b:00.0",
        "-o",
        &s(&t),
    ])
    .assert()
    .success();
    let orig = std::fs::read(&t).unwrap();
    vp().args([
        "--snapshot",
        &st(&sd, "004"),
        "retarget",
        &s(&t),
        "--to",
        &st(&sd, "014"),
        "--mapping",
        "samples/mappings/gpus.json",
        "-i",
    ])
    .assert()
    .success();
    let there = std::fs::read_to_string(&t).unwrap();
    assert!(
        there.contains("bus='0x01' slot='0x00' function='0x3'"),
        "{there}"
    );
    assert!(!there.contains("bus='0x2b'"), "{there}");
    vp().args([
        "--snapshot",
        &st(&sd, "014"),
        "retarget",
        &s(&t),
        "--to",
        &st(&sd, "004"),
        "--mapping",
        "samples/mappings/gpus.json",
        "-i",
    ])
    .assert()
    .success();
    assert_eq!(std::fs::read(&t).unwrap(), orig);
}

#[test]
fn retarget_expands_groups_and_refuses_what_the_target_cannot_take() {
    let sd = stated();
    let d = tempfile::tempdir().unwrap();
    // The half-passed RTX 2070 moves to the Quadro of 014: its whole group goes.
    let f = d.path().join("half.xml");
    std::fs::copy(
        repo().join("samples/domains/bad-rtx2070-half-group.xml"),
        &f,
    )
    .unwrap();
    let out = vp()
        .args([
            "--snapshot",
            &st(&sd, "004"),
            "retarget",
            &s(&f),
            "--to",
            &st(&sd, "014"),
            "--mapping",
            "samples/mappings/gpus.json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let addrs = virt_pci::domain::edit::hostdev_addresses(&text).unwrap();
    let want: Vec<virt_pci::PciAddress> = (0..4)
        .map(|f| virt_pci::PciAddress::new(0, 1, 0, f))
        .collect();
    assert_eq!(addrs, want);
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("also holds 0000:01:00.2, 0000:01:00.3; added"));

    // The GT 710 cannot go to 004 (the chipset group): refused, file untouched.
    let a = d.path().join("a.xml");
    vp().args([
        "--snapshot",
        &st(&sd, "018"),
        "add",
        "samples/domains/win11-q35.xml",
        "0c:00.0",
        "-o",
        &s(&a),
    ])
    .assert()
    .success();
    let before = std::fs::read(&a).unwrap();
    vp().args([
        "--snapshot",
        &st(&sd, "018"),
        "retarget",
        &s(&a),
        "--to",
        &st(&sd, "004"),
        "-i",
    ])
    .assert()
    .code(1)
    .stderr(predicate::str::contains(
        "refusing to retarget to 004-msi-b550m-mortar-turing-4fn",
    ))
    .stderr(predicate::str::contains(
        "help: nothing was written; --force writes it anyway",
    ));
    assert_eq!(std::fs::read(&a).unwrap(), before);
    // A host without the card: the reason, nothing written.
    vp().args(["--snapshot", &st(&sd, "018"), "retarget", &s(&a), "--to", &s(&sample("016")), "-i"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("cannot retarget to 016-trx40-threadripper-2x-rtx-a6000: no 10de:128b + 10de:0e0f on this host"));
    assert_eq!(std::fs::read(&a).unwrap(), before);
    // A hostdev the source host does not have.
    vp().args([
        "--snapshot",
        &s(&sample("016")),
        "retarget",
        &s(&a),
        "--to",
        &st(&sd, "017"),
    ])
    .assert()
    .code(2)
    .stderr(predicate::str::contains(
        "hostdev 0000:0c:00.0 is not on the source host 016-trx40-threadripper-2x-rtx-a6000",
    ));
    // A target whose facts are not known is refused like a blocked one.
    vp().args([
        "--snapshot",
        &st(&sd, "018"),
        "retarget",
        &s(&a),
        "--to",
        &s(&sample("017")),
        "-i",
    ])
    .assert()
    .code(1)
    .stderr(predicate::str::contains(
        "refusing to retarget to 017-x570-msi-matisse-gt710-rx580 (unverified)",
    ))
    .stderr(predicate::str::contains(
        "help: nothing was written; --force writes it anyway",
    ));
    assert_eq!(std::fs::read(&a).unwrap(), before);
}
