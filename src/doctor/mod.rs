//! `virt-pci doctor`: is this host ready for PCI passthrough, and is this
//! device? Every check is one function below, says PASS / WARN / FAIL /
//! UNKNOWN, shows the evidence it read (path and content) and the fix, and
//! names in its doc the upstream source of its rule.
//!
//! WHY a separate module and not more `validate` codes: these are facts of
//! a running host (firmware tables, kernel command line, loaded modules),
//! read-only, and most of them do not exist in a snapshot or a libvirt
//! node-device dump. Where a fact is missing the answer is UNKNOWN, never
//! PASS: `virt-host-validate` says "IOMMU enabled: WARN" on a host it cannot
//! read, and users cannot tell that from a real problem.
//!
//! Reads only: files under a root directory (`--root`, `/` on a host) and
//! the [`Host`] model; the per-device verdict is [`crate::plan`]'s, exactly
//! as `show` prints it.

pub mod known;

use crate::address::PciAddress;
use crate::host::{Host, IommuState};
use crate::persist;
use crate::plan::{self, Code, PlanOptions};
use serde::Serialize;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The outcome of one check, worst last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Pass,
    Unknown,
    Warn,
    Fail,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::Unknown => "UNKNOWN",
        })
    }
}

/// A file (or directory) a check read, and what it held.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Evidence {
    /// The path on the host (`/sys/...`), under `--root` when given.
    pub path: String,
    /// Trimmed content; for a directory its entries; `(missing)`,
    /// `(unreadable: ...)`, or `(exists)` for a file not worth reading.
    pub content: String,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Check {
    /// Stable id (`iommu-firmware`, `device-reset`, ...).
    pub id: &'static str,
    pub title: &'static str,
    /// The PCI function a per-device check is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<PciAddress>,
    pub status: Status,
    pub message: String,
    pub evidence: Vec<Evidence>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// Where the rule comes from (kernel source, spec, libvirt source).
    pub rule: &'static str,
}

/// All checks of one run.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub source: String,
    pub checks: Vec<Check>,
    pub pass: usize,
    pub warn: usize,
    pub fail: usize,
    pub unknown: usize,
}

impl Report {
    pub fn new(source: String, checks: Vec<Check>) -> Report {
        let n = |s: Status| checks.iter().filter(|c| c.status == s).count();
        Report {
            source,
            pass: n(Status::Pass),
            warn: n(Status::Warn),
            fail: n(Status::Fail),
            unknown: n(Status::Unknown),
            checks,
        }
    }
    pub fn failed(&self) -> bool {
        self.fail > 0
    }
}

/// Where host files are read from: a root directory, or nowhere (a
/// snapshot records devices, not firmware tables or the command line).
#[derive(Clone, Copy, Debug)]
pub enum Facts<'a> {
    Root(&'a Path),
    Snapshot,
}

/// What reading one path gave.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Read {
    Missing,
    Unreadable(String),
    Text(String),
    Dir(Vec<String>),
}

struct Reader<'a> {
    root: &'a Path,
}

impl Reader<'_> {
    fn full(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }
    fn read(&self, abs: &str) -> Read {
        let p = self.full(abs);
        match fs::metadata(&p) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Read::Missing,
            Err(e) => Read::Unreadable(e.to_string()),
            Ok(m) if m.is_dir() => match fs::read_dir(&p) {
                Ok(it) => {
                    let mut v: Vec<String> = it
                        .filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect();
                    v.sort();
                    Read::Dir(v)
                }
                Err(e) => Read::Unreadable(e.to_string()),
            },
            Ok(_) => match fs::read(&p) {
                Ok(b) => Read::Text(String::from_utf8_lossy(&b).trim_end().to_string()),
                Err(e) => Read::Unreadable(e.to_string()),
            },
        }
    }
    /// Evidence for a path, from what was read.
    fn ev(&self, abs: &str, r: &Read) -> Evidence {
        Evidence {
            path: self.full(abs).display().to_string(),
            content: match r {
                Read::Missing => "(missing)".into(),
                Read::Unreadable(e) => format!("(unreadable: {e})"),
                Read::Text(t) => t.clone(),
                Read::Dir(v) if v.is_empty() => "(empty directory)".into(),
                Read::Dir(v) => v.join(" "),
            },
        }
    }
    fn exists(&self, abs: &str) -> bool {
        fs::symlink_metadata(self.full(abs)).is_ok()
    }
}

fn check(
    id: &'static str,
    title: &'static str,
    status: Status,
    message: impl Into<String>,
    evidence: Vec<Evidence>,
    fix: Option<String>,
    rule: &'static str,
) -> Check {
    Check {
        id,
        title,
        device: None,
        status,
        message: message.into(),
        evidence,
        fix,
        rule,
    }
}

fn unknown_in_snapshot(
    id: &'static str,
    title: &'static str,
    what: &str,
    rule: &'static str,
) -> Check {
    check(
        id,
        title,
        Status::Unknown,
        format!("a snapshot does not record {what} (run doctor on the host itself)"),
        Vec::new(),
        None,
        rule,
    )
}

/// The kernel command line, split into words (`None`: unreadable).
fn cmdline(r: &Reader) -> (Read, Option<Vec<String>>) {
    let c = r.read("/proc/cmdline");
    let words = match &c {
        Read::Text(t) => Some(t.split_whitespace().map(str::to_string).collect()),
        _ => None,
    };
    (c, words)
}

fn param<'a>(words: &'a [String], name: &str) -> Option<&'a str> {
    words
        .iter()
        .rev()
        .find_map(|w| w.strip_prefix(name).and_then(|rest| rest.strip_prefix('=')))
}

/// How to add a kernel parameter, for fixes.
fn add_param(p: &str) -> String {
    format!("add `{p}` to the kernel command line (Debian/Ubuntu: GRUB_CMDLINE_LINUX_DEFAULT in /etc/default/grub, then `update-grub`; systemd-boot: /etc/kernel/cmdline) and reboot")
}

/// The IOMMU as the firmware describes it: the ACPI DMAR table (Intel VT-d)
/// or IVRS table (AMD-Vi).
///
/// Rule: the Intel VT-d specification, ch. 8 "BIOS Considerations" (the
/// DMAR table is how firmware reports remapping hardware), and AMD's IOMMU
/// specification §5 (IVRS); Linux exposes every ACPI table as a file in
/// `/sys/firmware/acpi/tables` (drivers/acpi/sysfs.c). No table means the
/// firmware has VT-d / AMD-Vi switched off (or the machine has none), and
/// no kernel option can help.
pub fn iommu_firmware(facts: Facts, host: &Host) -> Check {
    const ID: &str = "iommu-firmware";
    const T: &str = "IOMMU in firmware (ACPI DMAR / IVRS)";
    const RULE: &str = "Intel VT-d spec ch. 8 (DMAR), AMD IOMMU spec §5 (IVRS); tables in /sys/firmware/acpi/tables (drivers/acpi/sysfs.c)";
    let Facts::Root(root) = facts else {
        return unknown_in_snapshot(ID, T, "the firmware's ACPI tables", RULE);
    };
    let r = Reader { root };
    let dmar = r.read("/sys/firmware/acpi/tables/DMAR");
    let ivrs = r.read("/sys/firmware/acpi/tables/IVRS");
    let tables = r.read("/sys/firmware/acpi/tables");
    let present = |x: &Read| !matches!(x, Read::Missing);
    // The tables are mode 0400: existence is the fact, content is binary.
    let ev = |abs: &str, x: &Read| Evidence {
        path: r.full(abs).display().to_string(),
        content: if present(x) {
            "(exists)".into()
        } else {
            "(missing)".into()
        },
    };
    let evidence = vec![
        ev("/sys/firmware/acpi/tables/DMAR", &dmar),
        ev("/sys/firmware/acpi/tables/IVRS", &ivrs),
    ];
    if present(&dmar) || present(&ivrs) {
        let which = if present(&dmar) {
            "DMAR (Intel VT-d)"
        } else {
            "IVRS (AMD-Vi)"
        };
        return check(
            ID,
            T,
            Status::Pass,
            format!("the firmware describes an IOMMU: ACPI {which}"),
            evidence,
            None,
            RULE,
        );
    }
    if !matches!(tables, Read::Dir(_)) {
        // No ACPI (device-tree machines: an SMMU is described elsewhere).
        let status = if host.iommu == IommuState::Enabled {
            Status::Pass
        } else {
            Status::Unknown
        };
        return check(
            ID,
            T,
            status,
            if status == Status::Pass {
                "no ACPI tables to read, but the kernel has IOMMU groups".to_string()
            } else {
                "no ACPI tables to read (not an ACPI machine?)".to_string()
            },
            vec![r.ev("/sys/firmware/acpi/tables", &tables)],
            None,
            RULE,
        );
    }
    check(
        ID,
        T,
        Status::Fail,
        "no ACPI DMAR or IVRS table: the firmware does not offer an IOMMU to the kernel",
        evidence,
        Some("enable VT-d (Intel: \"VT-d\", \"Intel Virtualization Technology for Directed I/O\") or AMD-Vi (AMD: \"IOMMU\", \"AMD-Vi\", often also SVM) in the firmware setup; in a VM, give it a virtual IOMMU (QEMU: -device intel-iommu,intremap=on with -M q35,kernel-irqchip=split)".into()),
        RULE,
    )
}

/// The IOMMU as the kernel runs it: `/sys/class/iommu/*` (one entry per
/// remapping unit, drivers/iommu/iommu-sysfs.c) and groups in
/// `/sys/kernel/iommu_groups` (Documentation/ABI/testing/
/// sysfs-kernel-iommu_groups), with the command-line options that switch
/// it: `intel_iommu=on|off`, `amd_iommu=off`, `iommu=off`
/// (Documentation/admin-guide/kernel-parameters.txt). Intel's IOMMU is off
/// by default unless the kernel was built with
/// CONFIG_INTEL_IOMMU_DEFAULT_ON; AMD's is on when the firmware has IVRS.
pub fn iommu_kernel(facts: Facts, host: &Host) -> Check {
    const ID: &str = "iommu-kernel";
    const T: &str = "IOMMU in the kernel (groups)";
    const RULE: &str = "drivers/iommu/iommu.c, iommu-sysfs.c; kernel-parameters.txt (intel_iommu=, amd_iommu=, iommu=)";
    let Facts::Root(root) = facts else {
        return match host.iommu {
            IommuState::Enabled => check(
                ID,
                T,
                Status::Pass,
                format!("{} IOMMU groups in the snapshot", host.groups.len()),
                Vec::new(),
                None,
                RULE,
            ),
            IommuState::Disabled => check(
                ID,
                T,
                Status::Fail,
                "the snapshot has no IOMMU groups: the IOMMU was off",
                Vec::new(),
                Some(add_param("intel_iommu=on") + " (AMD: on by default; remove amd_iommu=off)"),
                RULE,
            ),
            IommuState::Unknown => unknown_in_snapshot(ID, T, "whether the IOMMU was on", RULE),
        };
    };
    let r = Reader { root };
    let class = r.read("/sys/class/iommu");
    let groups = r.read("/sys/kernel/iommu_groups");
    let (cl, words) = cmdline(&r);
    let mut evidence = vec![r.ev("/sys/class/iommu", &class), {
        let mut e = r.ev("/sys/kernel/iommu_groups", &groups);
        if let Read::Dir(v) = &groups {
            if v.len() > 12 {
                e.content = format!("{} groups: {} ...", v.len(), v[..12].join(" "));
            }
        }
        e
    }];
    evidence.push(r.ev("/proc/cmdline", &cl));
    let n_groups = match &groups {
        Read::Dir(v) => v.len(),
        _ => 0,
    };
    let units = match &class {
        Read::Dir(v) => v.clone(),
        _ => Vec::new(),
    };
    if n_groups > 0 {
        return check(
            ID,
            T,
            Status::Pass,
            format!(
                "the IOMMU is on: {n_groups} groups{}",
                if units.is_empty() {
                    String::new()
                } else {
                    format!(", units {}", units.join(" "))
                }
            ),
            evidence,
            None,
            RULE,
        );
    }
    if matches!(groups, Read::Unreadable(_)) || words.is_none() && matches!(groups, Read::Missing) {
        return check(
            ID,
            T,
            Status::Unknown,
            "cannot read the IOMMU groups",
            evidence,
            None,
            RULE,
        );
    }
    let w = words.unwrap_or_default();
    let off = [
        ("intel_iommu", "off"),
        ("amd_iommu", "off"),
        ("iommu", "off"),
    ]
    .into_iter()
    .find(|(k, v)| param(&w, k) == Some(*v));
    let fw = r.exists("/sys/firmware/acpi/tables/DMAR");
    let fw_amd = r.exists("/sys/firmware/acpi/tables/IVRS");
    let fix = match off {
        Some((k, v)) => format!("remove `{k}={v}` from the kernel command line and reboot"),
        None if fw_amd => "the firmware has IVRS but the kernel did not start AMD-Vi: check `dmesg | grep -i AMD-Vi` (firmware bugs are reported there); amd_iommu is on by default".to_string(),
        None if fw && param(&w, "intel_iommu").is_some_and(|v| v.split(',').any(|o| o == "on")) => "the firmware has DMAR and the kernel has intel_iommu=on, yet no groups: check `dmesg | grep -i DMAR` (the kernel reports why it gave up there)".to_string(),
        None if fw => add_param("intel_iommu=on"),
        None if param(&w, "intel_iommu").is_some_and(|v| v.split(',').any(|o| o == "on")) => "first enable the IOMMU in the firmware (see iommu-firmware): the kernel already has intel_iommu=on".to_string(),
        None => format!(
            "first enable the IOMMU in the firmware (see iommu-firmware), then on Intel {}",
            add_param("intel_iommu=on")
        ),
    };
    let msg = match off {
        Some((k, v)) => format!("the IOMMU is off: the kernel was booted with `{k}={v}`"),
        None => "the IOMMU is off: /sys/kernel/iommu_groups is empty, so no device can be given to a guest with VFIO".into(),
    };
    check(ID, T, Status::Fail, msg, evidence, Some(fix), RULE)
}

/// `iommu=pt`: host-owned devices use an identity mapping, so only devices
/// given to guests pay for translation. A performance note, never a
/// failure (kernel-parameters.txt, `iommu=pt`).
pub fn iommu_passthrough_mode(facts: Facts) -> Check {
    const ID: &str = "iommu-pt";
    const T: &str = "IOMMU mode for host devices (iommu=pt)";
    const RULE: &str = "kernel-parameters.txt: iommu=pt";
    let Facts::Root(root) = facts else {
        return unknown_in_snapshot(ID, T, "the kernel command line", RULE);
    };
    let r = Reader { root };
    let (cl, words) = cmdline(&r);
    let ev = vec![r.ev("/proc/cmdline", &cl)];
    match words {
        None => check(ID, T, Status::Unknown, "cannot read the kernel command line", ev, None, RULE),
        Some(w) if param(&w, "iommu") == Some("pt") => check(ID, T, Status::Pass, "iommu=pt: host devices bypass translation (performance note only)", ev, None, RULE),
        Some(_) => check(ID, T, Status::Pass, "iommu=pt not set: host devices' DMA is translated too (a small cost on I/O-heavy hosts; a performance note, not a problem)", ev, Some("optional: add `iommu=pt` to the kernel command line".into()), RULE),
    }
}

/// Interrupt remapping: without it, VFIO's type1 backend refuses a group
/// ("No interrupt remapping support. Use the module param
/// "allow_unsafe_interrupts" to enable VFIO IOMMU support on this
/// platform", drivers/vfio/vfio_iommu_type1.c) because a guest could forge
/// MSIs. Seen in `/proc/interrupts` as the `IR-` chips the remapping
/// domains register ("IR-PCI-MSI", "IR-IO-APIC": drivers/iommu/intel/
/// irq_remapping.c, drivers/iommu/amd/iommu.c), or as the IR bit (bit 3)
/// of a VT-d unit's extended capability register (`/sys/class/iommu/
/// dmarN/intel-iommu/ecap`, VT-d spec §11.4.3) when it is only capable.
pub fn interrupt_remapping(facts: Facts) -> Check {
    const ID: &str = "interrupt-remapping";
    const T: &str = "Interrupt remapping";
    const RULE: &str = "drivers/vfio/vfio_iommu_type1.c (isolated MSI), IR- chips in /proc/interrupts (drivers/iommu/intel/irq_remapping.c), VT-d spec §11.4.3 ECAP.IR";
    let Facts::Root(root) = facts else {
        return unknown_in_snapshot(ID, T, "/proc/interrupts", RULE);
    };
    let r = Reader { root };
    let irq = r.read("/proc/interrupts");
    let mut evidence = Vec::new();
    if let Read::Text(t) = &irq {
        let ir: Vec<&str> = t.lines().filter(|l| l.contains(" IR-")).collect();
        if let Some(first) = ir.first() {
            let chip = first
                .split_whitespace()
                .find(|w| w.starts_with("IR-"))
                .unwrap_or("IR-");
            evidence.push(Evidence {
                path: r.full("/proc/interrupts").display().to_string(),
                content: format!(
                    "{} interrupts through remapping chips, e.g. {}",
                    ir.len(),
                    first.split_whitespace().collect::<Vec<_>>().join(" ")
                ),
            });
            return check(
                ID,
                T,
                Status::Pass,
                format!("interrupts are remapped ({chip})"),
                evidence,
                None,
                RULE,
            );
        }
        evidence.push(Evidence {
            path: r.full("/proc/interrupts").display().to_string(),
            content: "(no IR- interrupt chip)".into(),
        });
    } else {
        evidence.push(r.ev("/proc/interrupts", &irq));
    }
    // Capability of the VT-d units, when there are any.
    let mut capable = None;
    if let Read::Dir(units) = r.read("/sys/class/iommu") {
        for u in units.iter().filter(|u| u.starts_with("dmar")) {
            let p = format!("/sys/class/iommu/{u}/intel-iommu/ecap");
            let e = r.read(&p);
            if let Read::Text(t) = &e {
                if let Ok(v) = u64::from_str_radix(t.trim().trim_start_matches("0x"), 16) {
                    capable = Some(capable.unwrap_or(true) && v & (1 << 3) != 0);
                }
            }
            evidence.push(r.ev(&p, &e));
        }
    }
    match (&irq, capable) {
        (Read::Text(_), Some(true)) => check(ID, T, Status::Fail, "the IOMMU can remap interrupts (ECAP.IR) but no interrupt goes through it: interrupt remapping is off", evidence, Some("remove `intremap=off` / `intel_iommu=...,no_intremap`-style options from the kernel command line; check `dmesg | grep -i remapping`".into()), RULE),
        (Read::Text(_), _) => check(ID, T, Status::Fail, "no interrupt remapping: VFIO refuses to give devices to guests unless vfio_iommu_type1 allow_unsafe_interrupts=1, which lets a guest forge interrupts", evidence, Some("turn on the IOMMU with interrupt remapping (x2APIC/IR in the firmware; in QEMU: -device intel-iommu,intremap=on with -M q35,kernel-irqchip=split); only on trusted guests: `options vfio_iommu_type1 allow_unsafe_interrupts=1`".into()), RULE),
        _ => check(ID, T, Status::Unknown, "cannot read /proc/interrupts", evidence, None, RULE),
    }
}

/// `allow_unsafe_interrupts=Y` on vfio_iommu_type1: VFIO gives out groups
/// without interrupt isolation — a guest can then send arbitrary MSIs to
/// the host (drivers/vfio/vfio_iommu_type1.c, module parameter doc:
/// "Enable VFIO IOMMU support for on platforms without interrupt remapping
/// support.").
pub fn unsafe_interrupts(facts: Facts) -> Check {
    const ID: &str = "unsafe-interrupts";
    const T: &str = "vfio_iommu_type1 allow_unsafe_interrupts";
    const RULE: &str = "drivers/vfio/vfio_iommu_type1.c: allow_unsafe_interrupts";
    let Facts::Root(root) = facts else {
        return unknown_in_snapshot(ID, T, "module parameters", RULE);
    };
    let r = Reader { root };
    let p = "/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts";
    let v = r.read(p);
    let ev = vec![r.ev(p, &v)];
    match &v {
        Read::Text(t) if t == "Y" || t == "1" => check(ID, T, Status::Warn, "allow_unsafe_interrupts is on: devices are given to guests without interrupt isolation (a guest can forge interrupts to the host)", ev, Some("remove `options vfio_iommu_type1 allow_unsafe_interrupts=1` from /etc/modprobe.d and `vfio_iommu_type1.allow_unsafe_interrupts=1` from the kernel command line, once interrupt remapping works".into()), RULE),
        Read::Text(_) => check(ID, T, Status::Pass, "off (interrupt isolation is required)", ev, None, RULE),
        Read::Missing => check(ID, T, Status::Pass, "vfio_iommu_type1 is not loaded, so the option is not in effect", ev, None, RULE),
        _ => check(ID, T, Status::Unknown, "cannot read the parameter", ev, None, RULE),
    }
}

/// `pcie_acs_override=`: an out-of-tree kernel patch (Alex Williamson,
/// "pci: Enable overrides for missing ACS capabilities", 2013, never
/// merged; carried by linux-zen, Proxmox and others) that makes the kernel
/// *pretend* devices are isolated. The groups it shows are not real
/// isolation: devices in one real group can still reach each other with
/// peer-to-peer DMA.
pub fn acs_override(facts: Facts) -> Check {
    const ID: &str = "acs-override";
    const T: &str = "pcie_acs_override";
    const RULE: &str = "out-of-tree patch \"pci: Enable overrides for missing ACS capabilities\" (not in mainline Linux)";
    let Facts::Root(root) = facts else {
        return unknown_in_snapshot(ID, T, "the kernel command line", RULE);
    };
    let r = Reader { root };
    let (cl, words) = cmdline(&r);
    let ev = vec![r.ev("/proc/cmdline", &cl)];
    match words {
        None => check(ID, T, Status::Unknown, "cannot read the kernel command line", ev, None, RULE),
        Some(w) => match param(&w, "pcie_acs_override") {
            Some(v) => check(ID, T, Status::Warn, format!("pcie_acs_override={v}: the IOMMU groups are split by a patch, not by the hardware — devices in one group are NOT isolated from each other, and virt-pci's plan trusts the groups it is shown"), ev, Some("remove pcie_acs_override to see the real groups; put the device in a slot with its own group (a CPU-attached slot) instead".into()), RULE),
            None => check(ID, T, Status::Pass, "not set: the groups are the hardware's", ev, None, RULE),
        },
    }
}

fn kernel_release(r: &Reader) -> Option<String> {
    match r.read("/proc/sys/kernel/osrelease") {
        Read::Text(t) if !t.is_empty() => Some(t),
        _ => None,
    }
}

/// vfio-pci: loaded (`/sys/module/vfio_pci`, the driver directory
/// `/sys/bus/pci/drivers/vfio-pci`), or loadable (listed in the running
/// kernel's `modules.dep` or `modules.builtin` under
/// `/lib/modules/$(uname -r)`, as modprobe finds it: kmod's
/// libkmod/libkmod-module.c).
pub fn vfio_pci(facts: Facts) -> Check {
    const ID: &str = "vfio-pci";
    const T: &str = "vfio-pci driver";
    const RULE: &str =
        "drivers/vfio/pci/vfio_pci.c; modules.dep / modules.builtin (kmod, depmod(8))";
    let Facts::Root(root) = facts else {
        return unknown_in_snapshot(ID, T, "loaded modules", RULE);
    };
    let r = Reader { root };
    let drv = r.read("/sys/bus/pci/drivers/vfio-pci");
    let module = r.read("/sys/module/vfio_pci");
    let mut ev = vec![
        r.ev("/sys/bus/pci/drivers/vfio-pci", &drv),
        Evidence {
            path: r.full("/sys/module/vfio_pci").display().to_string(),
            content: if matches!(module, Read::Missing) {
                "(missing)".into()
            } else {
                "(exists)".into()
            },
        },
    ];
    if matches!(drv, Read::Dir(_)) {
        let bound: Vec<&String> = match &drv {
            Read::Dir(v) => v
                .iter()
                .filter(|n| crate::host::sysfs::parse_sysfs_bdf(n).is_some())
                .collect(),
            _ => Vec::new(),
        };
        ev[0].content = if bound.is_empty() {
            "(driver registered, no device bound)".into()
        } else {
            format!(
                "bound: {}",
                bound
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        };
        return check(ID, T, Status::Pass, "vfio-pci is loaded", ev, None, RULE);
    }
    let Some(rel) = kernel_release(&r) else {
        return check(ID, T, Status::Unknown, "vfio-pci is not loaded, and the kernel release (/proc/sys/kernel/osrelease) is unknown", ev, None, RULE);
    };
    let dep_p = format!("/lib/modules/{rel}/modules.dep");
    let bi_p = format!("/lib/modules/{rel}/modules.builtin");
    let dep = r.read(&dep_p);
    let bi = r.read(&bi_p);
    let has = |x: &Read| matches!(x, Read::Text(t) if t.lines().any(|l| l.split(':').next().is_some_and(|m| m.ends_with("/vfio-pci.ko") || m.contains("/vfio-pci.ko."))));
    let found = has(&dep) || has(&bi);
    let short = |x: &Read, p: &str| Evidence {
        path: r.full(p).display().to_string(),
        content: match x {
            Read::Text(_) if has(x) => "lists vfio-pci.ko".into(),
            Read::Text(_) => "(no vfio-pci.ko)".into(),
            other => r.ev(p, other).content,
        },
    };
    ev.push(short(&dep, &dep_p));
    ev.push(short(&bi, &bi_p));
    if found {
        check(ID, T, Status::Warn, format!("vfio-pci is not loaded, but kernel {rel} has it"), ev, Some("`modprobe vfio-pci` (libvirt loads it on a managed start; `detach --persist` loads it at boot)".into()), RULE)
    } else if matches!(dep, Read::Text(_)) {
        check(
            ID,
            T,
            Status::Fail,
            format!("kernel {rel} has no vfio-pci module"),
            ev,
            Some(
                "install the kernel's module package, or a kernel built with CONFIG_VFIO_PCI"
                    .into(),
            ),
            RULE,
        )
    } else {
        check(
            ID,
            T,
            Status::Unknown,
            format!("vfio-pci is not loaded and {dep_p} cannot be read"),
            ev,
            None,
            RULE,
        )
    }
}

/// `/dev/vfio/vfio`, the VFIO container device. libvirt decides "VFIO is
/// supported" by its existence (src/util/virhostdev.c,
/// `virHostdevHostSupportsPassthroughVFIO`) and otherwise refuses with
/// "VFIO device assignment is currently not supported on this system".
pub fn vfio_node(facts: Facts) -> Check {
    const ID: &str = "vfio-node";
    const T: &str = "/dev/vfio/vfio";
    const RULE: &str = "libvirt src/util/virhostdev.c: virHostdevHostSupportsPassthroughVFIO";
    let Facts::Root(root) = facts else {
        return unknown_in_snapshot(ID, T, "/dev", RULE);
    };
    let r = Reader { root };
    let exists = r.exists("/dev/vfio/vfio");
    let ev = vec![Evidence {
        path: r.full("/dev/vfio/vfio").display().to_string(),
        content: if exists {
            "(exists)".into()
        } else {
            "(missing)".into()
        },
    }];
    if exists {
        check(
            ID,
            T,
            Status::Pass,
            "the VFIO container device exists",
            ev,
            None,
            RULE,
        )
    } else {
        check(ID, T, Status::Fail, "no /dev/vfio/vfio: libvirt says \"VFIO device assignment is currently not supported on this system\"", ev, Some("`modprobe vfio`; without systemd's kmod-static-nodes.service: `kmod static-nodes --format=tmpfiles --output=/run/static-nodes.conf && systemd-tmpfiles --create --boot /run/static-nodes.conf`".into()), RULE)
    }
}

/// Boot-time bindings written by `detach --persist`, and whether each
/// function is on vfio-pci this boot.
pub fn persistent_bindings(facts: Facts, host: &Host) -> Option<Check> {
    const ID: &str = "persistent-bindings";
    const T: &str = "Boot-time vfio-pci bindings (detach --persist)";
    const RULE: &str = "virt-pci's manifest (src/persist.rs)";
    let Facts::Root(root) = facts else {
        return None;
    };
    let path = root
        .join(persist::MANIFEST.trim_start_matches('/'))
        .display()
        .to_string();
    let m = match persist::read_manifest(root) {
        Ok(None) => return None,
        Ok(Some(m)) => m,
        Err(e) => {
            return Some(check(
                ID,
                T,
                Status::Fail,
                e.message.clone(),
                vec![Evidence {
                    path,
                    content: e.location.unwrap_or_default(),
                }],
                e.help.first().cloned(),
                RULE,
            ));
        }
    };
    let states = persist::binding_states(&m, host);
    let mut ev = vec![Evidence {
        path,
        content: states
            .iter()
            .map(|s| s.address.to_string())
            .collect::<Vec<_>>()
            .join(" "),
    }];
    for s in &states {
        ev.push(Evidence {
            path: format!(
                "{}/driver",
                root.join(format!("sys/bus/pci/devices/{}", s.address))
                    .display()
            ),
            content: s.driver.clone().unwrap_or_else(|| {
                if s.present {
                    "(none)".into()
                } else {
                    "(device missing)".into()
                }
            }),
        });
    }
    let not: Vec<String> = states
        .iter()
        .filter(|s| !s.in_effect)
        .map(|s| {
            format!(
                "{} ({})",
                s.address,
                s.driver
                    .as_deref()
                    .unwrap_or(if s.present { "unbound" } else { "missing" })
            )
        })
        .collect();
    Some(if not.is_empty() {
        check(
            ID,
            T,
            Status::Pass,
            format!(
                "{} function(s) bound to vfio-pci at boot, all in effect this boot",
                states.len()
            ),
            ev,
            None,
            RULE,
        )
    } else {
        check(ID, T, Status::Warn, format!("persisted but not on vfio-pci this boot: {}", not.join(", ")), ev, Some("reboot after `detach --persist`; if a host driver comes from the initramfs, rebuild it (`update-initramfs -u` or `dracut -f`, or `detach --persist --update-initramfs`)".into()), RULE)
    })
}

/// libvirt's QEMU driver's view: reachable, and its domain capabilities
/// list `<hostdev supported='yes'>` with `vfio` among the `pciBackend`
/// values (libvirt src/qemu/qemu_capabilities.c,
/// `virQEMUCapsFillDomainDeviceHostdevCaps`: vfio is offered only when
/// `virHostdevHostSupportsPassthroughVFIO()` holds). `caps` is the
/// `virConnectGetDomainCapabilities` XML, or the error getting it.
pub fn libvirt_view(uri: &str, caps: Result<&str, &str>) -> Check {
    const ID: &str = "libvirt-vfio";
    const T: &str = "libvirt QEMU driver: VFIO hostdevs";
    const RULE: &str =
        "libvirt src/qemu/qemu_capabilities.c: virQEMUCapsFillDomainDeviceHostdevCaps";
    let ev_path = format!("virConnectGetDomainCapabilities on {uri}");
    let xml = match caps {
        Err(e) => return check(ID, T, Status::Fail, format!("libvirt at {uri}: {e}"), vec![Evidence { path: ev_path, content: e.to_string() }], Some("start libvirtd (`systemctl start libvirtd` or the virtqemud socket) and check the URI and your permissions".into()), RULE),
        Ok(x) => x,
    };
    let doc = match roxmltree::Document::parse(xml) {
        Ok(d) => d,
        Err(e) => {
            return check(
                ID,
                T,
                Status::Unknown,
                format!("libvirt's domain capabilities are not XML: {e}"),
                Vec::new(),
                None,
                RULE,
            )
        }
    };
    let hostdev = doc.descendants().find(|n| {
        n.has_tag_name("hostdev") && n.parent().is_some_and(|p| p.has_tag_name("devices"))
    });
    let supported = hostdev.and_then(|h| h.attribute("supported"));
    let backends: Vec<String> = hostdev
        .into_iter()
        .flat_map(|h| h.children())
        .filter(|n| n.has_tag_name("enum") && n.attribute("name") == Some("pciBackend"))
        .flat_map(|e| e.children().filter(|v| v.has_tag_name("value")))
        .filter_map(|v| v.text().map(str::to_string))
        .collect();
    let ev = vec![Evidence {
        path: ev_path,
        content: format!(
            "<hostdev supported='{}'> pciBackend: {}",
            supported.unwrap_or("?"),
            if backends.is_empty() {
                "(none)".into()
            } else {
                backends.join(" ")
            }
        ),
    }];
    if supported == Some("yes") && backends.iter().any(|b| b == "vfio") {
        check(
            ID,
            T,
            Status::Pass,
            format!("libvirt at {uri} can assign PCI devices with VFIO"),
            ev,
            None,
            RULE,
        )
    } else {
        check(ID, T, Status::Fail, format!("libvirt at {uri} does not offer VFIO PCI assignment (\"host doesn't support VFIO PCI passthrough\" at start)"), ev, Some("libvirt offers vfio only when /dev/vfio/vfio exists: see vfio-node and iommu-kernel".into()), RULE)
    }
}

/// Every host check, in order.
pub fn host_checks(facts: Facts, host: &Host) -> Vec<Check> {
    let mut v = vec![
        iommu_firmware(facts, host),
        iommu_kernel(facts, host),
        iommu_passthrough_mode(facts),
        interrupt_remapping(facts),
        unsafe_interrupts(facts),
        acs_override(facts),
        vfio_pci(facts),
        vfio_node(facts),
    ];
    v.extend(persistent_bindings(facts, host));
    v
}

fn dev_check(a: PciAddress, mut c: Check) -> Check {
    c.device = Some(a);
    c
}

/// The plan's verdict for the device, computed exactly as `show` computes
/// it ([`crate::plan::plan`], whole group): `blocked` is FAIL, `unverified`
/// (a fact the plan needs is not known) is UNKNOWN, `ok` is PASS — or WARN
/// when a plan warning is not one another check reports itself.
pub fn device_plan(host: &Host, a: &PciAddress, strict_group: bool) -> Check {
    const ID: &str = "device-plan";
    const T: &str = "Passthrough plan";
    const RULE: &str = "src/plan.rs (the kernel's VFIO group viability rule)";
    // Warnings another doctor check reports with its own status.
    const OWN_CHECK: [Code; 2] = [Code::HostDriver, Code::NoReset];
    let p = plan::plan(
        host,
        std::slice::from_ref(a),
        PlanOptions {
            strict_group,
            ..PlanOptions::default()
        },
    );
    let travels: Vec<String> = p.travels.iter().map(|t| t.to_string()).collect();
    let mut ev = vec![Evidence {
        path: host
            .device(a)
            .and_then(|d| d.sysfs_path.clone())
            .map(|s| format!("/sys/{s}/iommu_group"))
            .unwrap_or_else(|| host.source.clone()),
        content: host
            .device(a)
            .and_then(|d| d.iommu_group)
            .map(|g| format!("group {g}"))
            .unwrap_or_else(|| "no group".into()),
    }];
    for f in p.blockers.iter().chain(&p.unverified).chain(&p.warnings) {
        ev.push(Evidence {
            path: format!("plan [{}]", f.code),
            content: f.message.clone(),
        });
    }
    let (status, msg, fix) = if p.is_blocked() {
        let b = &p.blockers[0];
        (
            Status::Fail,
            format!("blocked: {}", b.message),
            b.help.clone(),
        )
    } else if let Some(u) = p.unverified.first() {
        // `unverified`: a fact the plan depends on is not known here.
        (
            Status::Unknown,
            format!("unverified: {}", u.message),
            u.help
                .clone()
                .or_else(|| Some(plan::HOW_TO_VERIFY.to_string())),
        )
    } else if travels.is_empty() {
        (Status::Unknown, "nothing to pass through".into(), None)
    } else if let Some(w) = p.warnings.iter().find(|w| !OWN_CHECK.contains(&w.code)) {
        (
            Status::Warn,
            format!("ok with warnings — travels together: {}", travels.join(" ")),
            w.help.clone(),
        )
    } else {
        (
            Status::Pass,
            format!("ok — travels together: {}", travels.join(" ")),
            None,
        )
    };
    dev_check(*a, check(ID, T, status, msg, ev, fix, RULE))
}

/// Reset methods (`reset_method`, Documentation/ABI/testing/sysfs-bus-pci;
/// the methods the kernel tries in drivers/pci/pci.c `pci_reset_fn_methods`)
/// and the table of devices known to lack a working reset ([`known`]).
pub fn device_reset(host: &Host, a: &PciAddress) -> Check {
    const ID: &str = "device-reset";
    const T: &str = "Reset";
    const RULE: &str = "drivers/pci/pci.c pci_reset_fn_methods; gnif/vendor-reset src/device-db.h";
    let Some(d) = host.device(a) else {
        return dev_check(
            *a,
            check(
                ID,
                T,
                Status::Unknown,
                "not present",
                Vec::new(),
                None,
                RULE,
            ),
        );
    };
    let ev = vec![Evidence {
        path: d
            .sysfs_path
            .as_ref()
            .map(|s| format!("/sys/{s}/reset_method"))
            .unwrap_or_else(|| host.source.clone()),
        content: match &d.reset_methods {
            Some(m) if m.is_empty() => "(none)".into(),
            Some(m) => m.join(" "),
            None => "(not recorded)".into(),
        },
    }];
    if let Some(family) = known::bad_reset(d.vendor(), d.device()) {
        return dev_check(*a, check(ID, T, Status::Warn, format!("{family}: known to lack a working reset (the AMD \"reset bug\"): after one guest used it, the next start may fail or hang until the host reboots"), ev, Some(known::BAD_RESET_REMEDY.replace("BDF", &a.to_string())), RULE));
    }
    let c = match (d.can_reset(), &d.reset_methods) {
        (None, _) => check(ID, T, Status::Unknown, "the source does not say which reset methods it has", ev, None, RULE),
        (Some(false), _) => check(ID, T, Status::Warn, "no reset method (no FLR, PM or bus reset): state a guest leaves in it reaches the next guest or the host", ev, Some("prefer a device with FLR for passthrough; virt-pci release keeps it on vfio-pci after use".into()), RULE),
        (Some(true), Some(m)) if m.iter().any(|x| x == "flr" || x == "af_flr" || x == "device_specific") => check(ID, T, Status::Pass, format!("function-level reset available ({})", m.join(" ")), ev, None, RULE),
        (Some(true), Some(m)) if m.iter().all(|x| x == "bus") => check(ID, T, Status::Warn, "only a bus reset: it resets every function behind the same bridge, so they must all be assigned or idle", ev, Some("pass the whole slot/bus through, or accept that siblings are reset too".into()), RULE),
        (Some(true), _) => check(ID, T, Status::Pass, "a reset method is available", ev, None, RULE),
    };
    dev_check(*a, c)
}

/// The host driver now: one known to hang or refuse unbinding at VM start
/// ([`known::HANGS_ON_UNBIND`]) should be replaced by a boot-time binding.
pub fn device_host_driver(facts: Facts, host: &Host, a: &PciAddress, persisted: bool) -> Check {
    const ID: &str = "device-host-driver";
    const T: &str = "Host driver";
    const RULE: &str =
        "Arch wiki \"PCI passthrough via OVMF\" §Isolating the GPU; src/doctor/known.rs";
    let Some(d) = host.device(a) else {
        return dev_check(
            *a,
            check(
                ID,
                T,
                Status::Unknown,
                "not present",
                Vec::new(),
                None,
                RULE,
            ),
        );
    };
    let ev = vec![Evidence {
        path: d
            .sysfs_path
            .as_ref()
            .map(|s| format!("/sys/{s}/driver"))
            .unwrap_or_else(|| host.source.clone()),
        content: d.driver.clone().unwrap_or_else(|| "(none)".into()),
    }];
    let c = match d.driver.as_deref() {
        Some(drv) if drv.starts_with("vfio") || drv == "pci-stub" => check(ID, T, Status::Pass, format!("on {drv}{}", if persisted { " (bound at boot by virt-pci)" } else { "" }), ev, None, RULE),
        Some(drv) => match known::hangs_on_unbind(drv) {
            Some(why) if !persisted => check(ID, T, Status::Warn, format!("bound to {drv}: {why}"), ev, Some(format!("bind it to vfio-pci at boot instead: `virt-pci detach --persist {a}`"))
, RULE),
            _ => check(ID, T, Status::Pass, format!("bound to {drv}; libvirt unbinds it at start (managed) or `virt-pci detach` does"), ev, None, RULE),
        },
        // A snapshot (a published listing above all) may not record drivers.
        None if matches!(facts, Facts::Snapshot) && !host.facts.drivers.is_known() => check(ID, T, Status::Unknown, "no driver recorded (unbound, or the source does not say)", ev, None, RULE),
        None => check(ID, T, Status::Pass, "no driver bound", ev, None, RULE),
    };
    dev_check(*a, c)
}

/// The boot GPU (`boot_vga` = 1, drivers/pci/pci-sysfs.c; only VGA-class
/// functions have the file): passing the only GPU takes the host's console
/// away, and needs what virt-pci does not do — stop the display manager,
/// unbind the virtual consoles and the EFI framebuffer, often a ROM file.
pub fn device_boot_vga(host: &Host, a: &PciAddress) -> Option<Check> {
    const RULE: &str = "drivers/pci/pci-sysfs.c: boot_vga";
    let d = host.device(a)?;
    let Some(v) = d.boot_vga.filter(|_| host.facts.boot_vga.is_known()) else {
        // Only VGA-class functions can be the boot GPU; for them "not
        // recorded" is unknown, not "no".
        return d.class.starts_with("0x0300").then(|| {
            dev_check(
                *a,
                check(
                    "device-boot-vga",
                    "Boot GPU",
                    Status::Unknown,
                    format!("{} does not say whether this is the boot GPU", host.source),
                    Vec::new(),
                    None,
                    RULE,
                ),
            )
        });
    };
    let ev = vec![Evidence {
        path: d
            .sysfs_path
            .as_ref()
            .map(|s| format!("/sys/{s}/boot_vga"))
            .unwrap_or_else(|| host.source.clone()),
        content: if v { "1".into() } else { "0".into() },
    }];
    Some(dev_check(
        *a,
        if v {
            check("device-boot-vga", "Boot GPU", Status::Warn, "this is the boot GPU (the host's console): passing it through is single-GPU passthrough, which needs more than virt-pci does — stopping the display manager, unbinding the virtual consoles and the EFI/simple framebuffer, often a clean ROM — and leaves the host without a display", ev, Some("use a second GPU for the host (or the integrated one: select it as primary in the firmware), or follow a single-GPU passthrough guide for the hook scripts".into()), RULE)
        } else {
            check(
                "device-boot-vga",
                "Boot GPU",
                Status::Pass,
                "not the boot GPU",
                ev,
                None,
                RULE,
            )
        },
    ))
}

/// The option ROM BAR (`rom`, drivers/pci/pci-sysfs.c; 0600, and reading
/// it needs `echo 1 > rom` first, which virt-pci does not do: read-only).
/// A GPU without a ROM BAR often needs a ROM file (`<rom file=.../>`) for
/// UEFI guests.
pub fn device_rom(facts: Facts, host: &Host, a: &PciAddress) -> Check {
    const ID: &str = "device-rom";
    const T: &str = "Option ROM";
    const RULE: &str = "drivers/pci/pci-sysfs.c: rom attribute (pci_create_rom)";
    let d = host.device(a);
    let (Facts::Root(root), Some(dir)) = (facts, d.and_then(|d| d.sysfs_path.clone())) else {
        return dev_check(
            *a,
            check(
                ID,
                T,
                Status::Unknown,
                "the ROM BAR is not recorded here",
                Vec::new(),
                None,
                RULE,
            ),
        );
    };
    let r = Reader { root };
    let p = format!("/sys/{dir}/rom");
    let gpu = d.is_some_and(|d| d.class.starts_with("0x03"));
    let c = match fs::metadata(r.full(&p)) {
        Ok(m) => check(ID, T, Status::Pass, format!("has a ROM BAR of {} KiB (not read: that needs `echo 1 > rom`, a write)", m.len() / 1024), vec![Evidence { path: r.full(&p).display().to_string(), content: format!("(exists, {} bytes)", m.len()) }], None, RULE),
        Err(e) if e.kind() == io::ErrorKind::NotFound => check(ID, T, if gpu { Status::Warn } else { Status::Pass }, if gpu { "a GPU without a ROM BAR: a UEFI guest may show nothing until given a ROM file" } else { "no option ROM (not needed for this class)" }, vec![r.ev(&p, &Read::Missing)], gpu.then(|| "dump the ROM from a host where it is readable, or take the vendor's, and add <rom file='...'/> to the hostdev".to_string()), RULE),
        Err(e) => check(ID, T, Status::Unknown, format!("cannot stat the ROM BAR: {e}"), vec![r.ev(&p, &Read::Unreadable(e.to_string()))], None, RULE),
    };
    dev_check(*a, c)
}

/// PCIe link now vs capable (`current_link_speed`, `max_link_speed`,
/// `current_link_width`, `max_link_width`: Documentation/ABI/testing/
/// sysfs-bus-pci). A link running below what both ends can do is a slot,
/// riser or BIOS setting problem — or a GPU saving power while idle.
pub fn device_link(facts: Facts, host: &Host, a: &PciAddress) -> Check {
    const ID: &str = "device-link";
    const T: &str = "PCIe link";
    const RULE: &str =
        "Documentation/ABI/testing/sysfs-bus-pci: current_link_speed, max_link_speed, *_link_width";
    let d = host.device(a);
    let (Facts::Root(root), Some(dir)) = (facts, d.and_then(|d| d.sysfs_path.clone())) else {
        return dev_check(
            *a,
            check(
                ID,
                T,
                Status::Unknown,
                "the link is not recorded here",
                Vec::new(),
                None,
                RULE,
            ),
        );
    };
    let r = Reader { root };
    let f = |n: &str| {
        let p = format!("/sys/{dir}/{n}");
        let v = r.read(&p);
        (
            r.ev(&p, &v),
            match v {
                Read::Text(t) => Some(t),
                _ => None,
            },
        )
    };
    let (e1, cs) = f("current_link_speed");
    let (e2, ms) = f("max_link_speed");
    let (e3, cw) = f("current_link_width");
    let (e4, mw) = f("max_link_width");
    let ev = vec![e1, e2, e3, e4];
    let c = match (cs, ms, cw, mw) {
        (Some(cs), Some(ms), Some(cw), Some(mw)) => {
            let gt = |s: &str| {
                s.split_whitespace()
                    .next()
                    .and_then(|x| x.parse::<f64>().ok())
            };
            let n = |s: &str| s.trim().parse::<u32>().ok();
            let slow = matches!((gt(&cs), gt(&ms)), (Some(c), Some(m)) if c < m);
            let narrow = matches!((n(&cw), n(&mw)), (Some(c), Some(m)) if c < m);
            let now = format!("{cs} x{cw}, capable of {ms} x{mw}");
            if slow || narrow {
                check(ID, T, Status::Warn, format!("running below its capability: {now}"), ev, Some("a GPU lowers its link speed when idle (check under load); otherwise check the slot's lanes, risers and the firmware's PCIe generation setting".into()), RULE)
            } else {
                check(ID, T, Status::Pass, now, ev, None, RULE)
            }
        }
        _ => check(
            ID,
            T,
            Status::Unknown,
            "no PCIe link attributes (conventional PCI, or not exposed)",
            ev,
            None,
            RULE,
        ),
    };
    dev_check(*a, c)
}

/// Every per-device check for `a`.
pub fn device_checks(facts: Facts, host: &Host, a: &PciAddress, strict_group: bool) -> Vec<Check> {
    let persisted = match facts {
        Facts::Root(root) => persist::read_manifest(root)
            .ok()
            .flatten()
            .is_some_and(|m| m.functions.iter().any(|e| e.address == *a)),
        Facts::Snapshot => false,
    };
    let mut v = vec![
        device_plan(host, a, strict_group),
        device_reset(host, a),
        device_host_driver(facts, host, a, persisted),
    ];
    v.extend(device_boot_vga(host, a));
    v.push(device_rom(facts, host, a));
    v.push(device_link(facts, host, a));
    v
}
