//! libvirt's own domain corpus as test data for `add`/`remove`.
//!
//! For every domain file in libvirt 9.0's tests/{qemuxml2argvdata,
//! qemuxml2xmloutdata, domainschemadata, genericxml2xmlindata,
//! genericxml2xmloutdata}:
//! - `add` then `remove` gives back the identical bytes;
//! - every file we write passes libvirt's RelaxNG (`domain.rng`, one
//!   xmllint process per batch of files) when the input did;
//! - where the file has PCI `<hostdev>`s, `remove --all` removes exactly
//!   those elements (element counts checked on a fresh parse).
//!
//! The corpus is not committed (`scripts/fetch-corpus.sh` fetches it). This
//! test passes with a note when it is absent, unless `VIRT_PCI_CORPUS=require`
//! (as tests/suites/30-corpus-edit.sh sets after fetching it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use virt_pci::domain;
use virt_pci::domain::edit::{EditError, Selection};
use virt_pci::domain::hostdev::HostdevOptions;
use virt_pci::{DeviceSpec, PciAddress};

const DIRS: [&str; 5] = [
    "qemuxml2argvdata",
    "qemuxml2xmloutdata",
    "domainschemadata",
    "genericxml2xmlindata",
    "genericxml2xmloutdata",
];
const SCHEMA: &str = "/usr/share/libvirt/schemas/domain.rng";

fn corpus() -> Option<PathBuf> {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&base)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("libvirt-"))
                && p.join("tests/qemuxml2argvdata").is_dir()
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|d| d.join("tests"))
}

/// The files xmllint accepts, from batches of `files`.
fn schema_valid(files: &[PathBuf]) -> std::collections::BTreeSet<PathBuf> {
    let mut ok = std::collections::BTreeSet::new();
    for chunk in files.chunks(300) {
        let out = Command::new("xmllint")
            .arg("--noout")
            .arg("--relaxng")
            .arg(SCHEMA)
            .args(chunk)
            .output()
            .expect("xmllint runs (install libxml2-utils)");
        let err = String::from_utf8_lossy(&out.stderr);
        for f in chunk {
            let line = format!("{} validates", f.display());
            if err.lines().any(|l| l == line) {
                ok.insert(f.clone());
            }
        }
    }
    ok
}

fn element_count(doc: &roxmltree::Document<'_>) -> usize {
    doc.descendants().filter(|n| n.is_element()).count()
}

#[test]
fn corpus_round_trip_and_schema() {
    let Some(tests) = corpus() else {
        if std::env::var("VIRT_PCI_CORPUS").as_deref() == Ok("require") {
            panic!("libvirt corpus missing: run scripts/fetch-corpus.sh");
        }
        eprintln!("corpus-edit: libvirt corpus not present, skipped (scripts/fetch-corpus.sh)");
        return;
    };
    // Two functions of a device no corpus file uses.
    let new = [
        PciAddress::new(0, 0xad, 0x1c, 0),
        PciAddress::new(0, 0xad, 0x1c, 1),
    ];
    let sel = Selection::Only(new.iter().map(|a| DeviceSpec::Function(*a)).collect());
    let out_dir = tempfile::tempdir().unwrap();
    let mut files = 0;
    let mut round_trips = 0;
    let mut created_devices: Vec<String> = Vec::new();
    let mut with_hostdevs = 0;
    let mut hostdevs_removed = 0;
    let mut skipped: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut failures: Vec<String> = Vec::new();
    // (input, output of add, output of remove --all)
    let mut written: Vec<(PathBuf, PathBuf, Option<PathBuf>)> = Vec::new();
    for d in DIRS {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(tests.join(d))
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "xml"))
            .collect();
        entries.sort();
        for p in entries {
            let name = format!("{d}/{}", p.file_name().unwrap().to_string_lossy());
            let Ok(bytes) = std::fs::read(&p) else {
                skipped
                    .entry("unreadable (dangling symlink)".into())
                    .or_default()
                    .push(name);
                continue;
            };
            let Ok(text) = String::from_utf8(bytes) else {
                skipped.entry("not UTF-8".into()).or_default().push(name);
                continue;
            };
            files += 1;
            let e = match domain::edit::add(&text, &new, &HostdevOptions::default()) {
                Ok(e) => e,
                Err(EditError::Malformed(m)) => {
                    skipped
                        .entry(format!(
                            "malformed XML (we refuse it): {}",
                            m.message.split(" at ").next().unwrap_or("")
                        ))
                        .or_default()
                        .push(name);
                    continue;
                }
                Err(EditError::NotDomain { found, .. }) => {
                    skipped
                        .entry(format!("root <{found}> is not <domain>"))
                        .or_default()
                        .push(name);
                    continue;
                }
                // A full bus 0 (pci-many): libvirt refuses the bridge it
                // would add for the new hostdevs, so add refuses first
                // (checked with libvirt in tests/suites/50-libvirt-oracle.sh).
                Err(EditError::Guest(g)) if g.message.contains("no free guest PCI slot") => {
                    skipped
                        .entry(
                            "add refused: no free guest PCI slot (libvirt would refuse the result)"
                                .into(),
                        )
                        .or_default()
                        .push(name);
                    continue;
                }
                Err(e) => {
                    failures.push(format!("{name}: add: {e}"));
                    continue;
                }
            };
            if e.added != new {
                failures.push(format!("{name}: added {:?}", e.added));
                continue;
            }
            let had_devices = domain::parse(&text)
                .map(|d| {
                    d.root_element()
                        .children()
                        .any(|c| c.has_tag_name("devices"))
                })
                .unwrap_or(true);
            match domain::edit::remove(&e.text, &sel) {
                Ok(r) if r.text == text => round_trips += 1,
                // add had to create <devices>; remove leaves it, empty.
                Ok(r)
                    if !had_devices
                        && r.text.contains("<devices>\n  </devices>\n")
                        && r.text.replacen("\n  <devices>\n  </devices>", "", 1) == text =>
                {
                    created_devices.push(name.clone())
                }
                Ok(_) => failures.push(format!("{name}: add+remove changed the bytes")),
                Err(err) => failures.push(format!("{name}: remove: {err}")),
            }
            let stem = name.replace('/', "__");
            let added_path = out_dir.path().join(format!("add__{stem}"));
            std::fs::write(&added_path, &e.text).unwrap();
            let mut removed_path = None;
            // remove --all removes exactly the PCI <hostdev> elements.
            let doc = domain::parse(&text).unwrap();
            let pci: Vec<_> = domain::pci_hostdevs(&doc)
                .into_iter()
                .filter(|h| !h.interface)
                .collect();
            let ifaces = domain::pci_hostdevs(&doc)
                .into_iter()
                .filter(|h| h.interface)
                .count();
            if !pci.is_empty() {
                with_hostdevs += 1;
                let inner: usize = pci
                    .iter()
                    .map(|h| {
                        doc.descendants()
                            .filter(|n| {
                                n.is_element()
                                    && n.range().start >= h.range.start
                                    && n.range().end <= h.range.end
                            })
                            .count()
                    })
                    .sum();
                match domain::edit::remove(&text, &Selection::All) {
                    Ok(r) => {
                        let nd = domain::parse(&r.text).unwrap();
                        let left = domain::pci_hostdevs(&nd);
                        let ok = left.iter().all(|h| h.interface)
                            && left.len() == ifaces
                            && element_count(&nd) == element_count(&doc) - inner
                            && r.removed.len()
                                == pci.iter().filter(|h| h.address.is_some()).count();
                        if ok {
                            hostdevs_removed += pci.len();
                            let rp = out_dir.path().join(format!("rm__{stem}"));
                            std::fs::write(&rp, &r.text).unwrap();
                            removed_path = Some(rp);
                        } else {
                            failures
                                .push(format!("{name}: remove --all removed the wrong elements"));
                        }
                    }
                    Err(err) => failures.push(format!("{name}: remove --all: {err}")),
                }
            }
            written.push((p.clone(), added_path, removed_path));
        }
    }
    // Schema: every output whose input validates must validate.
    let inputs: Vec<PathBuf> = written.iter().map(|w| w.0.clone()).collect();
    let valid_in = schema_valid(&inputs);
    let outs: Vec<PathBuf> = written
        .iter()
        .filter(|w| valid_in.contains(&w.0))
        .flat_map(|w| std::iter::once(w.1.clone()).chain(w.2.clone()))
        .collect();
    let valid_out = schema_valid(&outs);
    for o in &outs {
        if !valid_out.contains(o) {
            failures.push(format!(
                "{}: output no longer passes domain.rng",
                o.display()
            ));
        }
    }
    eprintln!(
        "corpus-edit: {files} domain files read from {}",
        tests.display()
    );
    eprintln!("corpus-edit: {round_trips} add+remove round trips byte-identical");
    eprintln!(
        "corpus-edit: {} inputs pass domain.rng; {} outputs written from them all still pass ({} add, {} remove --all)",
        valid_in.len(),
        valid_out.len(),
        written.iter().filter(|w| valid_in.contains(&w.0)).count(),
        written.iter().filter(|w| valid_in.contains(&w.0) && w.2.is_some()).count()
    );
    eprintln!(
        "corpus-edit: {} inputs fail domain.rng already (libvirt's negative tests); their outputs are not judged",
        written.len() - valid_in.len()
    );
    eprintln!(
        "corpus-edit: {} files without <devices>: add created it, remove left it empty (by design): {}",
        created_devices.len(),
        created_devices.join(" ")
    );
    eprintln!("corpus-edit: {with_hostdevs} files with PCI hostdevs; remove --all took exactly their {hostdevs_removed} <hostdev> elements");
    for (why, names) in &skipped {
        eprintln!(
            "corpus-edit: skipped {} ({why}): {}",
            names.len(),
            names.join(" ")
        );
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        round_trips > 1500,
        "only {round_trips} round trips: corpus incomplete?"
    );
    assert!(with_hostdevs > 20);
}

/// The sample domains (samples/domains) are valid, stay valid after adding
/// a 4-function GPU, and round-trip to the byte.
#[test]
fn sample_domains_stay_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/domains");
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        // bad-*.xml are the validator's deliberately broken examples.
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("bad-"))
        })
        .collect();
    inputs.sort();
    assert!(inputs.len() >= 3);
    let gpu: Vec<PciAddress> = (0..4).map(|f| PciAddress::new(0, 0x0a, 0, f)).collect();
    let out = tempfile::tempdir().unwrap();
    let mut outputs = Vec::new();
    for p in &inputs {
        let text = std::fs::read_to_string(p).unwrap();
        let e = domain::edit::add(&text, &gpu, &HostdevOptions::default()).unwrap();
        assert_eq!(e.added, gpu);
        let sel = Selection::Only(gpu.iter().map(|a| DeviceSpec::Function(*a)).collect());
        assert_eq!(
            domain::edit::remove(&e.text, &sel).unwrap().text,
            text,
            "{}",
            p.display()
        );
        let o = out.path().join(p.file_name().unwrap());
        std::fs::write(&o, &e.text).unwrap();
        outputs.push(o);
    }
    assert_eq!(
        schema_valid(&inputs).len(),
        inputs.len(),
        "a sample domain fails domain.rng"
    );
    assert_eq!(
        schema_valid(&outputs).len(),
        outputs.len(),
        "an edited sample fails domain.rng"
    );
}
