//! Planning `detach --persist` / `reattach --persist`: from the manifest
//! (what is bound at boot now) and the action plan `detach`/`reattach`
//! computed for the same request, the functions bound afterwards, the
//! refusals, and the file writes and removals — printable before anything
//! is written (`--dry-run`, `--json`). Each step below holds one rule.

use super::files::{render_all, Initramfs};
use super::module::host_module;
use super::{
    read_manifest, under, Entry, Manifest, PersistError, Written, DRACUT_CONF,
    INITRAMFS_TOOLS_HOOK, MODPROBE_CONF, UDEV_RULES,
};
use crate::actions::{ActionPlan, Refusal};
use crate::address::PciAddress;
use crate::host::Host;
use crate::plan::{Code, Finding};
use serde::Serialize;
use std::fs;
use std::path::Path;

/// One file change of a persist plan.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct FileChange {
    /// The path on the target system (`/etc/...`), under `--root` when given.
    pub path: String,
    /// `write` (create or replace) or `remove`.
    pub op: &'static str,
    /// Octal mode of a written file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

/// What `detach --persist` / `reattach --persist` will do: printable first.
#[derive(Clone, Debug, Serialize)]
pub struct PersistPlan {
    /// `persist` or `unpersist`.
    pub action: String,
    pub root: String,
    pub requested: Vec<PciAddress>,
    /// Functions bound at boot before and after this change.
    pub before: Vec<PciAddress>,
    pub after: Vec<PciAddress>,
    pub files: Vec<FileChange>,
    pub initramfs: Initramfs,
    /// The initramfs must be rebuilt for the change to reach it.
    pub initramfs_rebuild_needed: bool,
    /// Commands that will run (`--update-initramfs`) or that the user should run.
    pub commands: Vec<String>,
    pub refusals: Vec<Refusal>,
    pub warnings: Vec<Finding>,
    pub forced: bool,
    /// The manifest once the plan is applied.
    #[serde(skip)]
    pub(super) manifest: Manifest,
}

impl PersistPlan {
    fn blocking(&self) -> Vec<&Refusal> {
        self.refusals
            .iter()
            .filter(|r| r.blocks(self.forced))
            .collect()
    }
    pub fn is_refused(&self) -> bool {
        !self.blocking().is_empty()
    }
    /// Nothing to write or remove.
    pub fn is_noop(&self) -> bool {
        self.files.is_empty()
    }
}

/// Plan `detach --persist` (`add = true`) or `reattach --persist`.
///
/// `ap` is the action plan `detach`/`reattach` computed for the same
/// request: its refusals (host-critical devices, running domains) and its
/// group expansion (`plan.travels`) are used unchanged.
pub fn plan(
    root: &Path,
    host: &Host,
    ap: &ActionPlan,
    add: bool,
    update_initramfs: bool,
) -> Result<PersistPlan, PersistError> {
    let manifest = read_manifest(root)?.unwrap_or(Manifest {
        version: 1,
        ..Manifest::default()
    });
    let initramfs = Initramfs::detect(root);
    let before: Vec<PciAddress> = manifest.functions.iter().map(|e| e.address).collect();
    let mut warnings: Vec<Finding> = ap
        .warnings
        .iter()
        .filter(|w| w.code != Code::HostDriver)
        .cloned()
        .collect();
    let targets = &ap.plan.travels;
    let entries = if add {
        with_added(root, host, &manifest.functions, targets, &mut warnings)
    } else {
        with_removed(&manifest.functions, targets, &mut warnings)
    };
    let mut refusals = ap.refusals.clone();
    refusals.extend(driverctl_conflicts(root, &entries));
    let want = render_all(&entries, initramfs);
    let files = file_changes(&manifest, &want);
    let (initramfs_rebuild_needed, commands) =
        initramfs_rebuild(&files, initramfs, add, update_initramfs, &mut warnings);
    let after = entries.iter().map(|e| e.address).collect();
    let new_manifest = Manifest {
        version: 1,
        functions: entries,
        files: want
            .into_iter()
            .map(|(p, _, c)| Written {
                path: p.to_string(),
                content: c,
            })
            .collect(),
    };
    Ok(PersistPlan {
        action: if add { "persist" } else { "unpersist" }.into(),
        root: root.display().to_string(),
        requested: ap.requested.clone(),
        before,
        after,
        files,
        initramfs,
        initramfs_rebuild_needed,
        commands,
        refusals,
        warnings,
        forced: ap.forced,
        manifest: new_manifest,
    })
}

/// `detach --persist`: every travelling function not bound at boot yet is
/// added, with its host driver's module for the softdep (a warning where
/// none can be found: the udev rule still binds it), in address order.
fn with_added(
    root: &Path,
    host: &Host,
    current: &[Entry],
    targets: &[PciAddress],
    warnings: &mut Vec<Finding>,
) -> Vec<Entry> {
    let mut entries = current.to_vec();
    for a in targets {
        if entries.iter().any(|e| e.address == *a) {
            continue;
        }
        let module = host_module(root, host, a);
        if module.is_none() {
            warnings.push(Finding {
                code: Code::ModuleUnknown,
                address: Some(a.to_string()),
                message: format!("cannot tell which kernel module drives {a}: no softdep for it; the udev rule still binds it at its add event"),
                help: Some("bind it while it is on its host driver, or check `modinfo -F alias` of its driver".into()),
            });
        }
        entries.push(Entry {
            address: *a,
            module,
        });
    }
    entries.sort_by_key(|e| e.address);
    entries
}

/// `reattach --persist`: the travelling functions are dropped; one we did
/// not bind at boot is a warning, not an error (nothing to remove).
fn with_removed(
    current: &[Entry],
    targets: &[PciAddress],
    warnings: &mut Vec<Finding>,
) -> Vec<Entry> {
    for a in targets {
        if !current.iter().any(|e| e.address == *a) {
            warnings.push(Finding {
                code: Code::NotPersisted,
                address: Some(a.to_string()),
                message: format!(
                    "{a} is not bound to vfio-pci at boot by virt-pci: nothing to remove for it"
                ),
                help: None,
            });
        }
    }
    let mut entries = current.to_vec();
    entries.retain(|e| !targets.contains(&e.address));
    entries
}

/// A driverctl override (`/etc/driverctl.d/pci-ADDRESS`) of a function we
/// bind, to another driver than vfio-pci, would fight ours: refused (not
/// forceable) with the command that removes it.
fn driverctl_conflicts(root: &Path, entries: &[Entry]) -> Vec<Refusal> {
    let mut refusals = Vec::new();
    for e in entries {
        let p = under(root, &format!("/etc/driverctl.d/pci-{}", e.address));
        if let Ok(drv) = fs::read_to_string(&p) {
            if drv.trim() != "vfio-pci" {
                refusals.push(Refusal {
                    code: crate::actions::RefusalCode::DriverctlConflict,
                    address: Some(e.address.to_string()),
                    message: format!(
                        "driverctl binds {} to `{}` at boot ({})",
                        e.address,
                        drv.trim(),
                        p.display()
                    ),
                    help: Some(format!(
                        "remove that override first: `driverctl unset-override {}`",
                        e.address
                    )),
                    forceable: false,
                });
            }
        }
    }
    refusals
}

/// The files to write (new, or content changed since the manifest) and to
/// remove (in the manifest, no longer wanted).
fn file_changes(manifest: &Manifest, want: &[(&'static str, u32, String)]) -> Vec<FileChange> {
    let mut files = Vec::new();
    for (path, mode, content) in want {
        let old = manifest.files.iter().find(|w| w.path == *path);
        if old.is_some_and(|w| w.content == *content) {
            continue;
        }
        files.push(FileChange {
            path: (*path).to_string(),
            op: "write",
            mode: Some(format!("{mode:04o}")),
            content: Some(content.clone()),
        });
    }
    for w in &manifest.files {
        if !want.iter().any(|(p, _, _)| *p == w.path) {
            files.push(FileChange {
                path: w.path.clone(),
                op: "remove",
                mode: None,
                content: None,
            });
        }
    }
    files
}

/// Whether the initramfs must be rebuilt (a file it includes changes and
/// we know its generator), and the command that does it. Without a known
/// generator, a `detach --persist` says what to add by hand (mkinitcpio);
/// `--update-initramfs` with nothing to rebuild says it does nothing.
fn initramfs_rebuild(
    files: &[FileChange],
    initramfs: Initramfs,
    add: bool,
    update_initramfs: bool,
    warnings: &mut Vec<Finding>,
) -> (bool, Vec<String>) {
    let touches_initramfs = files.iter().any(|f| {
        [UDEV_RULES, MODPROBE_CONF, INITRAMFS_TOOLS_HOOK, DRACUT_CONF].contains(&f.path.as_str())
    });
    let rebuild_needed = touches_initramfs && initramfs != Initramfs::Unknown;
    let mut commands = Vec::new();
    if rebuild_needed {
        if let Some(c) = initramfs.rebuild_command() {
            commands.push(c.to_string());
        }
    } else if initramfs == Initramfs::Unknown && touches_initramfs && add {
        warnings.push(Finding {
            code: Code::InitramfsUnknown,
            address: None,
            message: "no initramfs-tools or dracut configuration found: if a host driver of these functions is loaded from the initramfs, add the vfio modules and the modprobe.d file to it yourself".into(),
            help: Some(format!("with mkinitcpio: MODULES=(vfio_pci vfio vfio_iommu_type1) and FILES=({MODPROBE_CONF}) in /etc/mkinitcpio.conf, then `mkinitcpio -P`")),
        });
    }
    if update_initramfs && !rebuild_needed {
        warnings.push(Finding {
            code: Code::NoInitramfsRebuild,
            address: None,
            message: "--update-initramfs: nothing in the initramfs changes, not rebuilding".into(),
            help: None,
        });
    }
    (rebuild_needed, commands)
}
