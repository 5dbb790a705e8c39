//! Golden outputs: every JSON document virt-pci prints (and the `<hostdev>`
//! snippets), on every sample host, byte for byte as the code printed them
//! when they were captured (issue 12: "the JSON outputs are byte-identical
//! before and after on every sample host").
//!
//! The cases (`cases()`) follow `tests/suites/15-schemas.sh` and
//! `16-fleet-schemas.sh`: for each of `samples/hosts/*.json` and the
//! fixture host `tests/fixtures/host-gpu.json` — `list --json` (through
//! `--snapshot` and through a fake sysfs tree made by `fake-sysfs`, filtered,
//! `--tree`), `snapshot` of the fake tree, `show`/`check`/`snippet` of the
//! first endpoint of every group, `detach`/`reattach`/`check --try`
//! `--dry-run --json` plans, `hostdevs`, `prepare`/`release --dry-run`,
//! `validate --format json` over `samples/domains`, `doctor --json` on the
//! snapshot and on the fake tree, and an executed `reset` on the fake tree;
//! then the samples as a fleet (`inventory`, `place`, `map check`), `usb`,
//! and the 82 wild domains (`validate`, `hostdevs`), read from
//! `../shared/wild-domains` (or `$VIRT_PCI_WILD`), never copied here.
//!
//! Each family's cases live in `tests/golden/FAMILY.txt`: per case a header
//! `### NAME`, `### ARGS …`, `### EXIT N BYTES M`, then exactly M bytes of
//! stdout and a newline. Normalised: the fake trees' temporary directory
//! reads `$TMP` and the wild domains' directory reads `$WILD`; nothing else.
//! Device names come from the system's pci.ids (hwdata, installed by
//! `scripts/install-deps.sh`); its SHA-256 is recorded in `meta.txt`, and a
//! different file fails with that reason rather than with a thousand diffs.
//!
//! `GOLDEN_BLESS=1 cargo test --test it golden::` rewrites the files from what the
//! binary prints now. Bless ONLY for an intended change of output, and
//! review the diff: these files are the proof that a restructuring changed
//! nothing.

use crate::setup::repo;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Case {
    family: &'static str,
    name: String,
    args: Vec<String>,
}

#[derive(PartialEq)]
struct Record {
    args: String,
    exit: i32,
    stdout: Vec<u8>,
}

/// The wild domains, as a path relative to the checkout (or `$VIRT_PCI_WILD`).
fn wild_dir() -> String {
    let w = std::env::var("VIRT_PCI_WILD").unwrap_or_else(|_| "../shared/wild-domains".into());
    let p = repo().join(&w);
    assert!(
        p.is_dir(),
        "golden: the wild domains are not at {} (set VIRT_PCI_WILD to their directory)",
        p.display()
    );
    w
}

/// Runs the binary (through the guarded runner); stdout and exit code.
fn run(args: &[String]) -> (i32, Vec<u8>) {
    let out = crate::run::vp()
        .current_dir(repo())
        .args(args)
        .output()
        .expect("run virt-pci");
    (out.status.code().unwrap_or(-1), out.stdout)
}

fn sorted_files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("golden: {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

fn rel(p: &Path) -> String {
    p.strip_prefix(repo())
        .unwrap_or(p)
        .to_string_lossy()
        .into_owned()
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// The first PCI endpoint of every group (every endpoint without groups), and
/// the last device, from the host's `list --json`.
fn representatives(host: &str) -> (Vec<String>, Option<String>) {
    let (code, out) = run(&s(&["--snapshot", host, "list", "--json"]));
    assert_eq!(code, 0, "golden: list --json on {host}");
    let d: serde_json::Value = serde_json::from_slice(&out).expect("list JSON");
    let devices = d["devices"].as_array().unwrap();
    let eps: Vec<&str> = devices
        .iter()
        .filter(|x| x["kind"] == "endpoint")
        .map(|x| x["address"].as_str().unwrap())
        .collect();
    let groups = d["groups"].as_array().unwrap();
    let mut firsts: Vec<String> = groups
        .iter()
        .filter_map(|g| {
            g["members"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|m| m.as_str())
                .find(|m| eps.contains(m))
                .map(String::from)
        })
        .collect();
    if groups.is_empty() {
        firsts = eps.iter().map(|x| x.to_string()).collect();
        firsts.sort();
    }
    let last = devices
        .last()
        .map(|x| x["address"].as_str().unwrap().to_string());
    (firsts, last)
}

/// Every case, in the order they run (the executed reset changes its fake
/// tree, so it comes after everything else that reads that tree).
fn cases(tmp: &str, wild: &str) -> Vec<Case> {
    let mut v = Vec::new();
    let mut add =
        |family: &'static str, name: String, args: Vec<String>| v.push(Case { family, name, args });
    let mut hosts = sorted_files(&repo().join("samples/hosts"), "json");
    hosts.push(repo().join("tests/fixtures/host-gpu.json"));
    let domains = sorted_files(&repo().join("samples/domains"), "xml");
    for h in &hosts {
        let host = rel(h);
        let name = h.file_stem().unwrap().to_string_lossy().into_owned();
        let root = format!("{tmp}/{name}");
        let (code, _) = run(&s(&["fake-sysfs", &host, &root]));
        assert_eq!(code, 0, "golden: fake-sysfs {host}");
        let snap = |rest: &[&str]| {
            let mut a = s(&["--snapshot", &host]);
            a.extend(s(rest));
            a
        };
        let fake = |rest: &[&str]| {
            let mut a = s(&["--root", &root]);
            a.extend(s(rest));
            a
        };
        add("list", format!("{name}.snap"), snap(&["list", "--json"]));
        add("list", format!("{name}.root"), fake(&["list", "--json"]));
        add(
            "list",
            format!("{name}.class03"),
            snap(&["list", "--json", "--class", "03"]),
        );
        add(
            "list",
            format!("{name}.tree"),
            snap(&["list", "--tree", "--json"]),
        );
        add(
            "list",
            format!("{name}.tree-vendor8086"),
            snap(&["list", "--tree", "--json", "--vendor", "8086"]),
        );
        add("snapshot", format!("{name}.root"), fake(&["snapshot"]));
        let (firsts, last) = representatives(&host);
        for (i, a) in firsts.iter().enumerate() {
            let n = format!("{name}.{a}");
            add("show", n.clone(), snap(&["show", a, "--json"]));
            add("check", n.clone(), snap(&["check", a, "--json"]));
            add("snippet", n.clone(), snap(&["snippet", a]));
            if i < 4 {
                add(
                    "action",
                    format!("{n}.detach"),
                    snap(&["detach", a, "--dry-run", "--json"]),
                );
                add(
                    "action",
                    format!("{n}.reattach"),
                    snap(&["reattach", a, "--dry-run", "--json"]),
                );
                add(
                    "action",
                    format!("{n}.try"),
                    snap(&["check", a, "--try", "--dry-run", "--json"]),
                );
            }
        }
        for d in &domains {
            let dn = d.file_stem().unwrap().to_string_lossy().into_owned();
            add(
                "hostdevs",
                format!("{name}.{dn}"),
                snap(&["hostdevs", &rel(d), "--json"]),
            );
        }
        for dn in ["truenas-hba", "bad-rtx2070-half-group"] {
            let d = format!("samples/domains/{dn}.xml");
            for op in ["prepare", "release"] {
                add(
                    "action",
                    format!("{name}.{op}.{dn}"),
                    snap(&[op, &d, "--dry-run", "--json"]),
                );
            }
        }
        add(
            "validate",
            format!("{name}.samples"),
            snap(&["validate", "--format", "json", "samples/domains"]),
        );
        let dev: Vec<&str> = last.iter().map(|x| x.as_str()).collect();
        let mut a = vec!["doctor", "--json"];
        a.extend(&dev);
        add("doctor", format!("{name}.snap"), snap(&a));
        add("doctor", format!("{name}.root"), fake(&a));
        if let Some(a) = firsts.first() {
            add(
                "action",
                format!("{name}.{a}.reset-run"),
                fake(&["reset", a, "--force", "--json"]),
            );
        }
    }
    // usb: the sample with USB data.
    let usb = "samples/hosts/013-b560-tigerlake-rx7600-reset-usb.json";
    for q in ["1", "2", "05e3:0608"] {
        add(
            "usb",
            format!("013.{q}"),
            s(&["--snapshot", usb, "usb", q, "--json"]),
        );
    }
    // The samples as a fleet.
    add(
        "fleet",
        "inventory".into(),
        s(&["inventory", "samples/hosts", "--json"]),
    );
    add(
        "fleet",
        "inventory.gpu-clean".into(),
        s(&[
            "inventory",
            "samples/hosts",
            "--class",
            "gpu",
            "--status",
            "clean",
            "--json",
        ]),
    );
    add(
        "fleet",
        "map-check".into(),
        s(&[
            "map",
            "check",
            "--hosts",
            "samples/hosts",
            "--json",
            "samples/mappings/gpus.json",
        ]),
    );
    for d in &domains {
        let dn = d.file_stem().unwrap().to_string_lossy().into_owned();
        for src in [
            "samples/hosts/004-msi-b550m-mortar-turing-4fn.json",
            "samples/hosts/018-gigabyte-x570-aorus-pro-3900x.json",
        ] {
            add(
                "fleet",
                format!("place.{dn}.from-{}", &src[14..17]),
                s(&[
                    "--snapshot",
                    src,
                    "place",
                    &rel(d),
                    "samples/hosts",
                    "--mapping",
                    "samples/mappings/gpus.json",
                    "--json",
                ]),
            );
        }
    }
    // The wild domains: one validate over all, without and with a host, and
    // each file's hostdevs against a host.
    add(
        "wild",
        "validate".into(),
        s(&["validate", "--format", "json", wild]),
    );
    for src in [
        "004-msi-b550m-mortar-turing-4fn",
        "018-gigabyte-x570-aorus-pro-3900x",
    ] {
        let host = format!("samples/hosts/{src}.json");
        add(
            "wild",
            format!("validate.{}", &src[..3]),
            s(&["--snapshot", &host, "validate", "--format", "json", wild]),
        );
    }
    let host = "samples/hosts/004-msi-b550m-mortar-turing-4fn.json";
    for d in sorted_files(&repo().join(wild), "xml") {
        let dn = d.file_name().unwrap().to_string_lossy().into_owned();
        add(
            "wild",
            format!("hostdevs.{dn}"),
            s(&[
                "--snapshot",
                host,
                "hostdevs",
                &format!("{wild}/{dn}"),
                "--json",
            ]),
        );
    }
    v
}

/// Runs every case on a few threads: first all that only read, then the
/// executed resets (which change their fake tree).
fn run_all(cases: &[Case]) -> Vec<(i32, Vec<u8>)> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    let mut out: Vec<Option<(i32, Vec<u8>)>> = (0..cases.len()).map(|_| None).collect();
    for writes in [false, true] {
        let todo: Vec<usize> = (0..cases.len())
            .filter(|&i| cases[i].args.iter().any(|a| a == "reset") == writes)
            .collect();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let done = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|sc| {
            for _ in 0..threads {
                sc.spawn(|| loop {
                    let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&i) = todo.get(k) else { break };
                    let r = run(&cases[i].args);
                    done.lock().unwrap().push((i, r));
                });
            }
        });
        for (i, r) in done.into_inner().unwrap() {
            out[i] = Some(r);
        }
    }
    out.into_iter()
        .map(|r| r.expect("every case ran"))
        .collect()
}

fn normalise(b: &[u8], tmp: &str, wild: &str) -> Vec<u8> {
    String::from_utf8_lossy(b)
        .replace(tmp, "$TMP")
        .replace(wild, "$WILD")
        .into_bytes()
}

fn parse(family: &str, text: &[u8]) -> BTreeMap<String, Record> {
    let mut m = BTreeMap::new();
    let mut i = 0;
    let line = |i: &mut usize| -> String {
        let end = text[*i..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(text.len(), |p| *i + p);
        let l = String::from_utf8_lossy(&text[*i..end]).into_owned();
        *i = end + 1;
        l
    };
    while i < text.len() {
        let name = line(&mut i);
        let args = line(&mut i);
        let sizes = line(&mut i);
        let name = name
            .strip_prefix("### ")
            .unwrap_or_else(|| malformed(family, &name))
            .to_string();
        let args = args
            .strip_prefix("### ARGS ")
            .unwrap_or_else(|| malformed(family, &name));
        let mut f = sizes
            .strip_prefix("### EXIT ")
            .unwrap_or_else(|| malformed(family, &name))
            .split(" BYTES ");
        let exit: i32 = f
            .next()
            .and_then(|x| x.parse().ok())
            .unwrap_or_else(|| malformed(family, &name));
        let n: usize = f
            .next()
            .and_then(|x| x.parse().ok())
            .unwrap_or_else(|| malformed(family, &name));
        let stdout = text
            .get(i..i + n)
            .unwrap_or_else(|| malformed(family, &name))
            .to_vec();
        i += n + 1;
        m.insert(
            name,
            Record {
                args: args.to_string(),
                exit,
                stdout,
            },
        );
    }
    m
}

fn malformed(family: &str, near: &str) -> ! {
    panic!("golden: tests/golden/{family}.txt is malformed near {near:?}")
}

fn render(records: &[(&str, &Record)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, r) in records {
        out.extend(
            format!(
                "### {name}\n### ARGS {}\n### EXIT {} BYTES {}\n",
                r.args,
                r.exit,
                r.stdout.len()
            )
            .bytes(),
        );
        out.extend(&r.stdout);
        out.push(b'\n');
    }
    out
}

fn pci_ids_hash() -> String {
    let p = Path::new("/usr/share/misc/pci.ids");
    match Command::new("sha256sum").arg(p).output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string(),
        _ => "none".into(),
    }
}

#[test]
fn json_outputs_are_byte_identical_to_the_golden_files() {
    let bless = std::env::var_os("GOLDEN_BLESS").is_some_and(|v| !v.is_empty());
    let dir = repo().join("tests/golden");
    let tmpdir = tempfile::tempdir().unwrap();
    let tmp = tmpdir.path().to_string_lossy().into_owned();
    let wild = wild_dir();
    let meta = format!("pci.ids sha256 {}\n", pci_ids_hash());
    if !bless {
        let had = fs::read_to_string(dir.join("meta.txt")).unwrap_or_default();
        assert_eq!(
            had, meta,
            "golden: /usr/share/misc/pci.ids is not the one the golden files were captured with \
             (device names differ); install Debian bookworm's hwdata (scripts/install-deps.sh)"
        );
    }
    let cases = cases(&tmp, &wild);
    let mut now: BTreeMap<&str, Vec<(String, Record)>> = BTreeMap::new();
    let outputs = run_all(&cases);
    for (c, (exit, stdout)) in cases.iter().zip(outputs) {
        let args = String::from_utf8(normalise(c.args.join(" ").as_bytes(), &tmp, &wild)).unwrap();
        now.entry(c.family).or_default().push((
            c.name.clone(),
            Record {
                args,
                exit,
                stdout: normalise(&stdout, &tmp, &wild),
            },
        ));
    }
    if bless {
        fs::create_dir_all(&dir).unwrap();
        for (family, recs) in &now {
            let recs: Vec<(&str, &Record)> = recs.iter().map(|(n, r)| (n.as_str(), r)).collect();
            fs::write(dir.join(format!("{family}.txt")), render(&recs)).unwrap();
        }
        fs::write(dir.join("meta.txt"), meta).unwrap();
        eprintln!("golden: blessed {} cases", cases.len());
        return;
    }
    let mut failures = 0;
    let mut report = String::new();
    for (family, recs) in &now {
        let path = dir.join(format!("{family}.txt"));
        let text = fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "golden: {}: {e} (GOLDEN_BLESS=1 cargo test --test it golden:: captures it)",
                path.display()
            )
        });
        let mut want = parse(family, &text);
        for (name, got) in recs {
            let Some(w) = want.remove(name) else {
                failures += 1;
                let _ = writeln!(report, "new case {family}/{name} (not in the golden file)");
                continue;
            };
            if w == *got {
                continue;
            }
            failures += 1;
            if failures > 1 {
                let _ = writeln!(report, "also differs: {family}/{name}");
                continue;
            }
            let _ = writeln!(
                report,
                "first differing case: {family}/{name}\n  virt-pci {}\n  exit: golden {}, now {}",
                got.args, w.exit, got.exit
            );
            if w.args != got.args {
                let _ = writeln!(report, "  golden args: {}", w.args);
            }
            let (a, b) = (
                String::from_utf8_lossy(&w.stdout),
                String::from_utf8_lossy(&got.stdout),
            );
            let text = crate::snapshots::diff(&a, &b, 80);
            for l in text.lines().take(80) {
                let _ = writeln!(report, "    {l}");
            }
        }
        for name in want.keys() {
            failures += 1;
            let _ = writeln!(report, "case {family}/{name} is golden but no longer runs");
        }
    }
    assert!(
        failures == 0,
        "golden: {failures} of {} cases differ from tests/golden/\n{report}\n\
         If (and only if) the change of output is intended: GOLDEN_BLESS=1 cargo test --test it golden::, \
         and review the diff.",
        cases.len()
    );
    eprintln!("golden: {} cases byte-identical", cases.len());
}
