//! Whole-output snapshots of the human output (issue 12 item 8): the other
//! tests check fragments with `contains(…)` and keep doing so for the
//! behaviour they name; these compare everything a command prints, so a
//! restructuring cannot change a line nobody asserted on.
//!
//! Each case is `tests/snapshots/NAME.txt`: the command line, the exit code,
//! stdout and stderr, on sample hosts (and a fake tree made by `fake-sysfs`,
//! whose temporary path reads `$TMP`). Colour is off (`NO_COLOR=1`); device
//! names come from the system's pci.ids, as in `golden.rs`.
//!
//! After an intended change of output, `SNAPSHOT_BLESS=1 cargo test --test
//! it snapshots::` rewrites the files; review the diff.

use crate::setup::repo;
use std::path::Path;

const S004: &str = "samples/hosts/004-msi-b550m-mortar-turing-4fn.json";
const S018: &str = "samples/hosts/018-gigabyte-x570-aorus-pro-3900x.json";
const S028: &str = "samples/hosts/028-skylake-sp-8gpu-server-cx5-vf-partial.json";
const FIXTURE: &str = "tests/fixtures/host-gpu.json";

/// A unified diff of two texts, at most `lines` lines (shared with golden.rs).
pub fn diff(want: &str, got: &str, lines: usize) -> String {
    let d = similar::TextDiff::from_lines(want, got);
    let text = d
        .unified_diff()
        .context_radius(3)
        .header("expected", "now")
        .to_string();
    let mut out: Vec<&str> = text.lines().take(lines).collect();
    if text.lines().count() > lines {
        out.push("…");
    }
    out.join("\n")
}

/// Runs `virt-pci ARGS` from the checkout and compares (or, with
/// `SNAPSHOT_BLESS=1`, writes) `tests/snapshots/NAME.txt`.
fn snapshot(name: &str, args: &[&str], tmp: Option<&Path>) {
    let out = crate::run::vp()
        .current_dir(repo())
        .args(args)
        .output()
        .expect("run virt-pci");
    let mut got = format!(
        "$ virt-pci {}\nexit: {}\n--- stdout\n{}--- stderr\n{}",
        args.join(" "),
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if let Some(t) = tmp {
        got = got.replace(t.to_str().unwrap(), "$TMP");
    }
    let path = repo().join(format!("tests/snapshots/{name}.txt"));
    if std::env::var_os("SNAPSHOT_BLESS").is_some_and(|v| !v.is_empty()) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (SNAPSHOT_BLESS=1 cargo test --test it snapshots:: writes it)",
            path.display()
        )
    });
    assert!(
        want == got,
        "{name}: the output differs from {}:\n{}\nIf (and only if) the change is intended: \
         SNAPSHOT_BLESS=1 cargo test --test it snapshots::, and review the diff.",
        path.display(),
        diff(&want, &got, 120)
    );
}

#[test]
fn list_by_group_and_as_a_tree() {
    snapshot("list-004", &["--snapshot", S004, "list"], None);
    snapshot("list-018", &["--snapshot", S018, "list"], None);
    snapshot("list-fixture", &["--snapshot", FIXTURE, "list"], None);
    snapshot(
        "list-tree-004",
        &["--snapshot", S004, "list", "--tree"],
        None,
    );
    snapshot(
        "list-tree-028",
        &["--snapshot", S028, "list", "--tree"],
        None,
    );
}

#[test]
fn show_a_gpu_and_a_device_in_a_shared_group() {
    snapshot(
        "show-004-gpu",
        &["--snapshot", S004, "show", "2b:00.0"],
        None,
    );
    snapshot(
        "show-fixture-gpu",
        &["--snapshot", FIXTURE, "show", "03:00.0"],
        None,
    );
}

#[test]
fn check_and_detach_plans() {
    snapshot(
        "check-004-gpu",
        &["--snapshot", S004, "check", "2b:00.0"],
        None,
    );
    snapshot(
        "detach-dry-run-004-gpu",
        &["--snapshot", S004, "detach", "2b:00.0", "--dry-run"],
        None,
    );
    snapshot(
        "reattach-dry-run-fixture-gpu",
        &["--snapshot", FIXTURE, "reattach", "03:00.0", "--dry-run"],
        None,
    );
}

#[test]
fn validate_renders_like_rustc() {
    snapshot("validate-samples", &["validate", "samples/domains"], None);
    snapshot(
        "validate-samples-004",
        &["--snapshot", S004, "validate", "samples/domains"],
        None,
    );
    snapshot(
        "validate-fixtures",
        &["validate", "tests/fixtures/validate"],
        None,
    );
}

#[test]
fn inventory_and_place_over_the_samples() {
    snapshot("inventory", &["inventory", "samples/hosts"], None);
    snapshot(
        "place-004-half-group",
        &[
            "--snapshot",
            S004,
            "place",
            "samples/domains/bad-rtx2070-half-group.xml",
            "samples/hosts",
        ],
        None,
    );
}

#[test]
fn doctor_on_a_snapshot_and_on_a_fake_tree() {
    snapshot(
        "doctor-004-snapshot",
        &["--snapshot", S004, "doctor", "2b:00.0"],
        None,
    );
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("004");
    let r = root.to_str().unwrap();
    let made = crate::run::vp()
        .current_dir(repo())
        .args(["fake-sysfs", S004, r])
        .output()
        .unwrap();
    assert!(made.status.success());
    snapshot(
        "doctor-004-root",
        &["--root", r, "doctor", "2b:00.0"],
        Some(t.path()),
    );
}
