//! Setup several test modules share: the repository's sample hosts, and
//! scratch directories.

use std::path::{Path, PathBuf};

/// The checkout: `samples/`, `tests/fixtures/`, the README.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `samples/hosts/`: the snapshots of 25 real machines (and their
/// listings in `listings/`).
pub fn samples_dir() -> PathBuf {
    repo().join("samples/hosts")
}

/// The sample hosts a sweep over every host reads: `$VIRT_PCI_SAMPLES`
/// when set (more machines than the repository holds), else
/// [`samples_dir`].
pub fn sweep_dir() -> PathBuf {
    std::env::var_os("VIRT_PCI_SAMPLES")
        .map(PathBuf::from)
        .unwrap_or_else(samples_dir)
}

/// The sample host snapshot whose name starts with `prefix` (the last in
/// name order, should several).
pub fn sample(prefix: &str) -> PathBuf {
    let mut v: Vec<PathBuf> = std::fs::read_dir(samples_dir())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json")
                && p.file_name().unwrap().to_string_lossy().starts_with(prefix)
        })
        .collect();
    v.sort();
    v.pop().unwrap_or_else(|| panic!("no sample {prefix}"))
}

/// The published listing that sample was converted from.
pub fn listing(prefix: &str) -> PathBuf {
    let s = sample(prefix);
    let name = s.file_stem().unwrap().to_string_lossy().into_owned();
    samples_dir().join(format!("listings/{name}.txt"))
}

/// A scratch directory, on tmpfs when there is one: a fake tree is
/// hundreds of small files, and a disk-backed /tmp makes that seconds per
/// sample (speed only).
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("virt-pci-test")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap()
}

/// Sample 004 with its host-critical facts stated, as a user would state
/// them for a listing (which shows none of them): SATA 02:00.1 holds the
/// root disk, NIC 2a:00.0 the default route, no boot VGA. Plans on it say
/// `ok` or `blocked`, not `unverified`. Read it; do not write next to it.
pub fn stated_004() -> &'static Path {
    // In cargo's per-target scratch directory, not a TempDir: a static is
    // never dropped, so a TempDir here left one directory behind per run.
    // `-o` writes atomically and the content is fixed, so runs may race.
    static SNAP: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    SNAP.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("004-stated.json");
        crate::run::vp()
            .args(["snapshot", "--from-listing"])
            .arg(listing("004"))
            .args(["--root-disk", "02:00.1", "--default-nic", "2a:00.0"])
            .args(["--boot-vga", "none", "-o"])
            .arg(&out)
            .assert()
            .success();
        out
    })
}
