//! The kernel and IOMMU checks: is the IOMMU there (firmware), on (the
//! kernel's groups), isolating interrupts, and not weakened by options
//! (`allow_unsafe_interrupts`, `pcie_acs_override`). Each reads the ACPI
//! tables, `/sys/class/iommu`, `/sys/kernel/iommu_groups`, `/proc/cmdline`
//! or `/proc/interrupts` under the root; a snapshot records none of them
//! except the groups, so those answers are UNKNOWN there.
//!
//! WHY together: they share the command-line reading ([`cmdline`],
//! [`param`]) and their fixes point at each other (enable the firmware's
//! IOMMU first, then the kernel's).

use super::read::{
    add_param, check, cmdline, cmdline_check, param, unknown_in_snapshot, Read, Reader,
};
use super::{Check, Evidence, Facts, Status};
use crate::host::{Host, IommuState};

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
    let evidence = vec![
        r.presence("/sys/firmware/acpi/tables/DMAR", present(&dmar)),
        r.presence("/sys/firmware/acpi/tables/IVRS", present(&ivrs)),
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
    let (msg, fix) = iommu_off(&r, &words.unwrap_or_default());
    check(ID, T, Status::Fail, msg, evidence, Some(fix), RULE)
}

/// Why the kernel has no IOMMU groups, and the fix: an option that turns
/// it off, the firmware tables it found (or not), `intel_iommu=on`.
fn iommu_off(r: &Reader, w: &[String]) -> (String, String) {
    let off = [
        ("intel_iommu", "off"),
        ("amd_iommu", "off"),
        ("iommu", "off"),
    ]
    .into_iter()
    .find(|(k, v)| param(w, k) == Some(*v));
    let fw = r.exists("/sys/firmware/acpi/tables/DMAR");
    let fw_amd = r.exists("/sys/firmware/acpi/tables/IVRS");
    let fix = match off {
        Some((k, v)) => format!("remove `{k}={v}` from the kernel command line and reboot"),
        None if fw_amd => "the firmware has IVRS but the kernel did not start AMD-Vi: check `dmesg | grep -i AMD-Vi` (firmware bugs are reported there); amd_iommu is on by default".to_string(),
        None if fw && param(w, "intel_iommu").is_some_and(|v| v.split(',').any(|o| o == "on")) => "the firmware has DMAR and the kernel has intel_iommu=on, yet no groups: check `dmesg | grep -i DMAR` (the kernel reports why it gave up there)".to_string(),
        None if fw => add_param("intel_iommu=on"),
        None if param(w, "intel_iommu").is_some_and(|v| v.split(',').any(|o| o == "on")) => "first enable the IOMMU in the firmware (see iommu-firmware): the kernel already has intel_iommu=on".to_string(),
        None => format!(
            "first enable the IOMMU in the firmware (see iommu-firmware), then on Intel {}",
            add_param("intel_iommu=on")
        ),
    };
    let msg = match off {
        Some((k, v)) => format!("the IOMMU is off: the kernel was booted with `{k}={v}`"),
        None => "the IOMMU is off: /sys/kernel/iommu_groups is empty, so no device can be given to a guest with VFIO".into(),
    };
    (msg, fix)
}

/// `iommu=pt`: host-owned devices use an identity mapping, so only devices
/// given to guests pay for translation. A performance note, never a
/// failure (kernel-parameters.txt, `iommu=pt`).
pub fn iommu_passthrough_mode(facts: Facts) -> Check {
    const ID: &str = "iommu-pt";
    const T: &str = "IOMMU mode for host devices (iommu=pt)";
    const RULE: &str = "kernel-parameters.txt: iommu=pt";
    cmdline_check(facts, ID, T, RULE, |w| {
        if param(w, "iommu") == Some("pt") {
            let msg = "iommu=pt: host devices bypass translation (performance note only)";
            return (Status::Pass, msg.into(), None);
        }
        let msg = "iommu=pt not set: host devices' DMA is translated too (a small cost on I/O-heavy hosts; a performance note, not a problem)";
        let fix = "optional: add `iommu=pt` to the kernel command line";
        (Status::Pass, msg.into(), Some(fix.into()))
    })
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
    cmdline_check(facts, ID, T, RULE, |w| {
        let Some(v) = param(w, "pcie_acs_override") else {
            return (
                Status::Pass,
                "not set: the groups are the hardware's".into(),
                None,
            );
        };
        let msg = format!("pcie_acs_override={v}: the IOMMU groups are split by a patch, not by the hardware — devices in one group are NOT isolated from each other, and virt-pci's plan trusts the groups it is shown");
        let fix = "remove pcie_acs_override to see the real groups; put the device in a slot with its own group (a CPU-attached slot) instead";
        (Status::Warn, msg, Some(fix.into()))
    })
}
