//! Boot-time binding to vfio-pci: `detach --persist` and `reattach --persist`.
//!
//! WHY: some host drivers cannot let go of a device cleanly once they have it
//! (GPU drivers hang or crash on unbind, see [`crate::doctor::known`]), so the
//! device must come up on vfio-pci at boot, before its driver claims it. The
//! usual recipe — `vfio-pci.ids=VVVV:DDDD` — catches *every* card with those
//! ids; we bind **per address**, and the whole IOMMU group as
//! [`crate::plan`] says, refused for host-critical devices exactly like
//! `detach` (the refusals come from the same [`crate::actions::detach_plan`]).
//!
//! The mechanism, one file each, every one written by us alone, atomically
//! ([`crate::fsutil::write_atomic`]), and listed in a manifest so `reattach
//! --persist` removes exactly what was written:
//!
//! 1. `/etc/modprobe.d/virt-pci-vfio.conf`:
//!    - `softdep HOSTMODULE pre: vfio-pci` for each host driver module of the
//!      functions (modprobe.d(5): the soft dependency is loaded first), and
//!    - `install vfio-pci ...`: when vfio-pci is loaded, first write
//!      `vfio-pci` to `driver_override` of each persisted function, then
//!      load vfio-pci itself (`modprobe --ignore-install`). This is the Arch
//!      wiki's per-address recipe ("PCI passthrough via OVMF", *Using
//!      identical guest and host GPUs*, `vfio-pci-override.sh`). Because of
//!      the softdep, the overrides are in place before the host driver's
//!      module is loaded, whichever device's uevent loads it: a driver load
//!      probes every unbound device it matches, so an override written only
//!      by that device's own udev event could lose the race against a twin
//!      card's event. The kernel skips a driver whose name differs from
//!      `driver_override` (drivers/pci/pci-driver.c, `pci_match_device`).
//! 2. `/etc/udev/rules.d/05-virt-pci-vfio.rules`: on each function's `add`
//!    event, `ATTR{driver_override}="vfio-pci"` and a `drivers_probe` write
//!    (for a device that appears later, or a vfio-pci built into the kernel,
//!    where the install hook never runs). `05-` sorts before udev's
//!    `80-drivers.rules`, which loads driver modules by modalias.
//! 3. `/etc/modules-load.d/virt-pci-vfio.conf`: load vfio-pci early
//!    (modules-load.d(5)), which runs the install hook at boot.
//! 4. The initramfs, where host drivers may be loaded before the root
//!    filesystem is mounted: initramfs-tools includes `/etc/modprobe.d` and
//!    `/etc/udev/rules.d` only as its hooks decide, so for initramfs-tools a
//!    hook `/etc/initramfs-tools/hooks/virt-pci-vfio` adds the vfio modules,
//!    our modprobe.d file and our udev rule (initramfs-tools(7), HOOK
//!    SCRIPTS, `manual_add_modules`, `copy_file`); for dracut a
//!    `/etc/dracut.conf.d/virt-pci-vfio.conf` with `force_drivers+=` and
//!    `install_items+=` (dracut.conf(5)). Either needs a rebuild
//!    (`update-initramfs -u`, `dracut -f`), run only with `--update-initramfs`.
//!
//! driverctl (Debian `driverctl` 0.111) persists its own overrides as
//! `/etc/driverctl.d/BUS-ADDRESS` holding the driver name and re-applies them
//! from udev; an override there for one of our functions to another driver
//! would fight ours, so it is refused with the `driverctl unset-override`
//! that removes it. (We do not write driverctl files: one mechanism, ours,
//! whose files the manifest owns.)
//!
//! Nothing here touches a device: the binding takes effect at the next boot
//! (`virt-pci detach` does it now). `doctor` reports whether it took effect.
//! All paths are under a root directory (`--root` in tests; `/` on a host).

use crate::actions::{ActionPlan, Refusal};
use crate::address::PciAddress;
use crate::fsutil;
use crate::host::Host;
use crate::plan::{Code, Finding};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The manifest: what virt-pci persisted and the exact files it wrote.
pub const MANIFEST: &str = "/var/lib/virt-pci/persist.json";
pub const UDEV_RULES: &str = "/etc/udev/rules.d/05-virt-pci-vfio.rules";
pub const MODPROBE_CONF: &str = "/etc/modprobe.d/virt-pci-vfio.conf";
pub const MODULES_LOAD: &str = "/etc/modules-load.d/virt-pci-vfio.conf";
pub const INITRAMFS_TOOLS_HOOK: &str = "/etc/initramfs-tools/hooks/virt-pci-vfio";
pub const DRACUT_CONF: &str = "/etc/dracut.conf.d/virt-pci-vfio.conf";

const HEADER: &str = "# Written by virt-pci (detach --persist); `virt-pci reattach --persist` removes it.\n# Do not edit: virt-pci refuses to remove or rewrite a file that changed.\n";

/// One function bound to vfio-pci at boot.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    pub address: PciAddress,
    /// The host driver's kernel module (for the softdep), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
}

/// A file virt-pci wrote, with its exact content (so a removal can prove
/// the file is still ours).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Written {
    pub path: String,
    pub content: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    pub version: u32,
    pub functions: Vec<Entry>,
    pub files: Vec<Written>,
}

/// A problem with the files under the root: message, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistError {
    pub message: String,
    /// `file:line:col` when a file's content is at fault.
    pub location: Option<String>,
    pub help: Vec<String>,
}

impl PersistError {
    fn new(message: impl Into<String>) -> PersistError {
        PersistError {
            message: message.into(),
            location: None,
            help: Vec::new(),
        }
    }
    fn help(mut self, h: impl Into<String>) -> PersistError {
        self.help.push(h.into());
        self
    }
}

impl std::fmt::Display for PersistError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn under(root: &Path, abs: &str) -> PathBuf {
    root.join(abs.trim_start_matches('/'))
}

/// Read the manifest under `root`; `Ok(None)` when there is none.
pub fn read_manifest(root: &Path) -> Result<Option<Manifest>, PersistError> {
    let p = under(root, MANIFEST);
    let text = match fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(
                PersistError::new(format!("cannot read the manifest {}: {e}", p.display()))
                    .help("virt-pci keeps the list of boot-time bindings there; run as root"),
            )
        }
    };
    let m: Manifest = serde_json::from_str(&text).map_err(|e| PersistError {
        message: format!("the manifest {} is not valid: {e}", p.display()),
        location: Some(format!("{}:{}:{}", p.display(), e.line(), e.column())),
        help: vec![
            "virt-pci writes it atomically, so it was changed by hand or by another program".into(),
            format!(
                "restore it, or remove the files it lists by hand ({UDEV_RULES}, {MODPROBE_CONF}, {MODULES_LOAD}, and the initramfs hook) and then the manifest"
            ),
        ],
    })?;
    if m.version != 1 {
        return Err(PersistError::new(format!(
            "the manifest {} has version {}, this virt-pci knows version 1",
            p.display(),
            m.version
        ))
        .help("use the virt-pci that wrote it"));
    }
    Ok(Some(m))
}

/// Which initramfs generator the system under the root uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Initramfs {
    InitramfsTools,
    Dracut,
    /// Neither found: nothing to add (the host driver may still be in an
    /// initramfs we do not know how to extend; the plan says so).
    Unknown,
}

impl Initramfs {
    fn detect(root: &Path) -> Initramfs {
        if under(root, "/etc/initramfs-tools").is_dir() {
            Initramfs::InitramfsTools
        } else if under(root, "/etc/dracut.conf.d").is_dir() {
            Initramfs::Dracut
        } else {
            Initramfs::Unknown
        }
    }
    /// The rebuild command, as the user would type it.
    pub fn rebuild_command(self) -> Option<&'static str> {
        match self {
            Initramfs::InitramfsTools => Some("update-initramfs -u"),
            Initramfs::Dracut => Some("dracut -f"),
            Initramfs::Unknown => None,
        }
    }
}

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
    #[serde(skip)]
    manifest: Manifest,
}

impl PersistPlan {
    pub fn blocking(&self) -> Vec<&Refusal> {
        self.refusals
            .iter()
            .filter(|r| !(self.forced && r.forceable))
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

/// The host driver's module of a function: the bound driver's `module`
/// link, else the kernel's modalias table (`modules.alias`, as modprobe
/// resolves a modalias) for a function that is unbound or on vfio-pci.
fn host_module(root: &Path, host: &Host, a: &PciAddress) -> Option<String> {
    let d = host.device(a)?;
    if let Some(drv) = d.driver.as_deref().filter(|d| !d.starts_with("vfio")) {
        let link = under(root, &format!("/sys/bus/pci/drivers/{drv}/module"));
        if let Ok(t) = fs::read_link(&link) {
            return t.file_name().map(|n| n.to_string_lossy().into_owned());
        }
        // Built in: no module link; the driver name is all there is.
        return Some(drv.to_string());
    }
    let dir = d.sysfs_path.as_ref()?;
    let modalias = fs::read_to_string(under(root, &format!("/sys/{dir}/modalias"))).ok()?;
    let release = fs::read_to_string(under(root, "/proc/sys/kernel/osrelease")).ok()?;
    let aliases = fs::read_to_string(under(
        root,
        &format!("/lib/modules/{}/modules.alias", release.trim()),
    ))
    .ok()?;
    let m = modalias.trim();
    aliases.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        (w.next()? == "alias").then_some(())?;
        let pat = w.next()?;
        let module = w.next()?;
        (pat.starts_with("pci:") && !module.starts_with("vfio") && glob(pat, m))
            .then(|| module.to_string())
    })
}

/// fnmatch(3) with `*` and `?` only, as modules.alias patterns use.
fn glob(p: &str, s: &str) -> bool {
    let (p, s) = (p.as_bytes(), s.as_bytes());
    let (mut pi, mut si, mut star, mut mark) = (0, 0, None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

fn render_udev(entries: &[Entry]) -> String {
    let mut s = String::from(HEADER);
    s.push_str("# Each function comes up with driver_override=vfio-pci; drivers_probe then lets\n# vfio-pci (when loaded) bind it. Per address, never per vendor:device id.\n");
    for e in entries {
        s.push_str(&format!(
            "ACTION==\"add\", SUBSYSTEM==\"pci\", KERNEL==\"{a}\", ATTR{{driver_override}}=\"vfio-pci\", RUN+=\"/bin/sh -c 'echo {a} > /sys/bus/pci/drivers_probe'\"\n",
            a = e.address
        ));
    }
    s
}

fn render_modprobe(entries: &[Entry]) -> String {
    let mut s = String::from(HEADER);
    let mut mods: Vec<&str> = entries.iter().filter_map(|e| e.module.as_deref()).collect();
    mods.sort();
    mods.dedup();
    s.push_str("# vfio-pci loads before each host driver below; loading it first sets driver_override\n# of the persisted functions, so the host driver skips them.\n");
    for m in mods {
        s.push_str(&format!("softdep {m} pre: vfio-pci\n"));
    }
    let list: Vec<String> = entries.iter().map(|e| e.address.to_string()).collect();
    s.push_str(&format!(
        "install vfio-pci for d in {}; do [ -e /sys/bus/pci/devices/$d/driver_override ] && echo vfio-pci > /sys/bus/pci/devices/$d/driver_override; done; /sbin/modprobe --ignore-install vfio-pci $CMDLINE_OPTS; for d in {}; do echo $d > /sys/bus/pci/drivers_probe; done 2>/dev/null; true\n",
        list.join(" "),
        list.join(" ")
    ));
    s
}

fn render_modules_load() -> String {
    format!("{HEADER}vfio-pci\n")
}

fn render_initramfs_tools_hook() -> String {
    format!(
        "#!/bin/sh\n{}# initramfs-tools hook (initramfs-tools(7)): the vfio modules, virt-pci's\n# modprobe.d file and udev rule go into the initramfs, so a host driver loaded there\n# also finds the functions already claimed for vfio-pci.\nPREREQ=\"\"\nprereqs() {{ echo \"$PREREQ\"; }}\ncase \"$1\" in prereqs) prereqs; exit 0 ;; esac\n. /usr/share/initramfs-tools/hook-functions\nmanual_add_modules vfio vfio_iommu_type1 vfio_pci\ncopy_file config {MODPROBE_CONF} {MODPROBE_CONF}\ncopy_file config {UDEV_RULES} {UDEV_RULES}\nexit 0\n",
        HEADER
    )
}

fn render_dracut() -> String {
    format!(
        "{HEADER}force_drivers+=\" vfio vfio_iommu_type1 vfio_pci \"\ninstall_items+=\" {MODPROBE_CONF} {UDEV_RULES} \"\n"
    )
}

/// Every file for a set of functions (empty set: no files).
fn render_all(entries: &[Entry], initramfs: Initramfs) -> Vec<(&'static str, u32, String)> {
    if entries.is_empty() {
        return Vec::new();
    }
    let mut v = vec![
        (UDEV_RULES, 0o644, render_udev(entries)),
        (MODPROBE_CONF, 0o644, render_modprobe(entries)),
        (MODULES_LOAD, 0o644, render_modules_load()),
    ];
    match initramfs {
        Initramfs::InitramfsTools => {
            v.push((INITRAMFS_TOOLS_HOOK, 0o755, render_initramfs_tools_hook()))
        }
        Initramfs::Dracut => v.push((DRACUT_CONF, 0o644, render_dracut())),
        Initramfs::Unknown => {}
    }
    v
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
    let mut entries = manifest.functions.clone();
    let mut warnings: Vec<Finding> = ap
        .warnings
        .iter()
        .filter(|w| w.code != Code::HostDriver)
        .cloned()
        .collect();
    let targets = &ap.plan.travels;
    if add {
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
    } else {
        for a in targets {
            if !entries.iter().any(|e| e.address == *a) {
                warnings.push(Finding {
                    code: Code::NotPersisted,
                    address: Some(a.to_string()),
                    message: format!("{a} is not bound to vfio-pci at boot by virt-pci: nothing to remove for it"),
                    help: None,
                });
            }
        }
        entries.retain(|e| !targets.contains(&e.address));
    }
    let mut refusals = ap.refusals.clone();
    // A driverctl override of the same function would fight ours.
    for e in &entries {
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
    // The files: new content for each, removal of the ones no longer needed.
    let want = render_all(&entries, initramfs);
    let mut files = Vec::new();
    for (path, mode, content) in &want {
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
    let touches_initramfs = files.iter().any(|f| {
        [UDEV_RULES, MODPROBE_CONF, INITRAMFS_TOOLS_HOOK, DRACUT_CONF].contains(&f.path.as_str())
    });
    let initramfs_rebuild_needed = touches_initramfs && initramfs != Initramfs::Unknown;
    let mut commands = Vec::new();
    if initramfs_rebuild_needed {
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
    if update_initramfs && !initramfs_rebuild_needed {
        warnings.push(Finding {
            code: Code::NoInitramfsRebuild,
            address: None,
            message: "--update-initramfs: nothing in the initramfs changes, not rebuilding".into(),
            help: None,
        });
    }
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

/// The state of a file before we touched it, to put back on failure.
struct Saved {
    path: PathBuf,
    old: Option<(Vec<u8>, u32)>,
}

fn restore(saved: &[Saved]) -> Vec<String> {
    let mut problems = Vec::new();
    for s in saved.iter().rev() {
        let r = match &s.old {
            Some((data, mode)) => fsutil::write_atomic(&s.path, data, None)
                .map_err(|e| e.to_string())
                .and_then(|_| {
                    fs::set_permissions(&s.path, fs::Permissions::from_mode(*mode))
                        .map_err(|e| e.to_string())
                }),
            None => match fs::remove_file(&s.path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(20) => {
                    Ok(())
                }
                Err(e) => Err(format!("cannot remove {}: {e}", s.path.display())),
            },
        };
        if let Err(e) = r {
            problems.push(e);
        }
    }
    problems
}

/// Check that every file the plan touches is ours (absent, or exactly what
/// the manifest says we wrote): a user's file of the same name, or our file
/// edited since, is never overwritten or removed.
fn check_ownership(root: &Path, old: &Manifest, p: &PersistPlan) -> Result<(), PersistError> {
    let paths: Vec<&str> = p
        .files
        .iter()
        .map(|f| f.path.as_str())
        .chain(p.manifest.files.iter().map(|w| w.path.as_str()))
        .collect();
    for path in paths {
        let full = under(root, path);
        let current = match fs::read(&full) {
            Ok(c) => Some(c),
            // ENOTDIR: a parent is not a directory, so the file is not
            // there (the write will fail and say why).
            Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(20) => None,
            Err(e) => {
                return Err(
                    PersistError::new(format!("cannot read {}: {e}", full.display()))
                        .help("nothing was changed"),
                )
            }
        };
        let ours = old.files.iter().find(|w| w.path == path);
        match (current, ours) {
            (None, _) => {}
            (Some(c), Some(w)) if c == w.content.as_bytes() => {}
            (Some(_), Some(_)) => return Err(PersistError::new(format!(
                "{} changed since virt-pci wrote it",
                full.display()
            ))
            .help(
                "virt-pci does not overwrite or remove a file someone edited; nothing was changed",
            )
            .help(format!(
                "put back what the manifest {MANIFEST} records for it, or move your version away"
            ))),
            (Some(_), None) => {
                return Err(PersistError::new(format!(
                    "{} exists and was not written by virt-pci",
                    full.display()
                ))
                .help("nothing was changed; move it away (or merge it by hand) and run again"))
            }
        }
    }
    Ok(())
}

/// A file's mode and content to write (`None`: remove it).
type ModeAndData = (u32, Vec<u8>);

/// Write the plan's files, then the manifest; all or nothing: on any
/// failure every file already changed is put back and the error says so.
pub fn apply(p: &PersistPlan) -> Result<(), PersistError> {
    let root = Path::new(&p.root);
    let old = read_manifest(root)?.unwrap_or_default();
    check_ownership(root, &old, p)?;
    let mut saved: Vec<Saved> = Vec::new();
    let mut steps: Vec<(String, Option<ModeAndData>)> = p
        .files
        .iter()
        .map(|f| {
            let data = f.content.as_ref().map(|c| {
                let mode = f
                    .mode
                    .as_deref()
                    .and_then(|m| u32::from_str_radix(m, 8).ok())
                    .unwrap_or(0o644);
                (mode, c.clone().into_bytes())
            });
            (f.path.clone(), data)
        })
        .collect();
    // The manifest last: it describes what is on disk only once it is.
    if p.manifest.functions.is_empty() {
        if under(root, MANIFEST).exists() {
            steps.push((MANIFEST.to_string(), None));
        }
    } else {
        let mut json = serde_json::to_string_pretty(&p.manifest)
            .map_err(|e| PersistError::new(format!("cannot encode the manifest: {e}")))?;
        json.push('\n');
        steps.push((MANIFEST.to_string(), Some((0o644, json.into_bytes()))));
    }
    for (path, data) in steps {
        let full = under(root, &path);
        let old = match fs::read(&full) {
            Ok(c) => {
                let mode = fs::metadata(&full)
                    .map(|m| m.permissions().mode() & 0o7777)
                    .unwrap_or(0o644);
                Some((c, mode))
            }
            Err(_) => None,
        };
        let result = match &data {
            Some((mode, bytes)) => full
                .parent()
                .map(fs::create_dir_all)
                .unwrap_or(Ok(()))
                .map_err(|e| format!("cannot create the directory of {}: {e}", full.display()))
                .and_then(|_| fsutil::write_atomic(&full, bytes, None).map_err(|e| e.to_string()))
                .and_then(|_| {
                    fs::set_permissions(&full, fs::Permissions::from_mode(*mode))
                        .map_err(|e| format!("cannot set the mode of {}: {e}", full.display()))
                }),
            None => match fs::remove_file(&full) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(format!("cannot remove {}: {e}", full.display())),
            },
        };
        // Saved before the error check: a failed write may still have
        // created the file (e.g. the mode step), and restore puts it back.
        saved.push(Saved {
            path: full.clone(),
            old,
        });
        if let Err(e) = result {
            let problems = restore(&saved);
            let mut err = PersistError::new(e);
            if problems.is_empty() {
                err = err.help("every file virt-pci had changed was put back: nothing changed");
            } else {
                for pb in problems {
                    err = err.help(format!("could NOT put back: {pb}"));
                }
            }
            return Err(err);
        }
    }
    Ok(())
}

/// Whether each persisted function came up on vfio-pci this boot.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct BindingState {
    pub address: PciAddress,
    /// The driver now (`None`: unbound or not present).
    pub driver: Option<String>,
    pub present: bool,
    pub in_effect: bool,
}

/// The persisted functions and their state on `host`.
pub fn binding_states(m: &Manifest, host: &Host) -> Vec<BindingState> {
    m.functions
        .iter()
        .map(|e| {
            let d = host.device(&e.address);
            let driver = d.and_then(|d| d.driver.clone());
            BindingState {
                address: e.address,
                present: d.is_some(),
                in_effect: driver.as_deref() == Some("vfio-pci"),
                driver,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_modules_alias_patterns() {
        let m = "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00";
        assert!(glob("pci:v00008086d0000100Esv*sd*bc*sc*i*", m));
        assert!(!glob("pci:v00008086d0000100Fsv*sd*bc*sc*i*", m));
        assert!(glob("pci:v*d*sv*sd*bc02sc00i*", m));
        assert!(!glob("pci:v*d*sv*sd*bc03sc00i*", m));
        assert!(glob("*", ""));
        assert!(!glob("a?", "a"));
    }

    #[test]
    fn udev_rule_is_per_address() {
        let e = [Entry {
            address: PciAddress::new(0, 4, 0, 1),
            module: Some("e1000".into()),
        }];
        let r = render_udev(&e);
        assert!(r.contains("KERNEL==\"0000:04:00.1\""), "{r}");
        assert!(!r.contains("8086"), "never by id: {r}");
        let m = render_modprobe(&e);
        assert!(m.contains("softdep e1000 pre: vfio-pci\n"), "{m}");
        assert!(m.contains("for d in 0000:04:00.1;"), "{m}");
    }
}
