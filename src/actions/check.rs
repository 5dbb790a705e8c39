//! `virt-pci check DEVICE`: can this device be assigned, and what would
//! resetting it do to the rest of the machine?
//!
//! WHY: the classic "is it assignable" scripts only look at the group
//! number. What actually breaks at start is (a) an endpoint of the group
//! still on a host driver — the kernel says "group N is not viable" — and
//! (b) a reset that cannot be done without a secondary bus reset, which
//! libvirt refuses while anything else on the bus is in use ("Active …
//! devices on bus with …, not doing bus reset", docs/libvirt.md §4).
//! This report names both, per function, before anyone starts a VM.

use crate::address::PciAddress;
use crate::host::{Host, Kind};
use crate::plan::{self, Plan, PlanOptions, Verdict};
use serde::Serialize;

/// A function and the driver it is on.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct FunctionState {
    pub address: PciAddress,
    pub driver: Option<String>,
    /// It keeps a VFIO group from being viable now (an endpoint on a host driver).
    pub blocks_viability: bool,
}

/// What a reset of the device means.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ResetInfo {
    /// `reset_method` contents (`flr`, `pm`, `bus`, ...), `None` when the
    /// source does not say (libvirt node XML, listings).
    pub methods: Option<Vec<String>>,
    /// The `reset` file exists.
    pub reset_file: Option<bool>,
    /// Only a bus (or slot) reset is available: it resets every function
    /// behind the same bridge.
    pub bus_reset_only: bool,
    /// Other functions on the same bus, which a bus reset also resets.
    pub shares_bus_with: Vec<FunctionState>,
    /// A sentence for humans.
    pub summary: String,
}

/// Group viability now.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Viability {
    pub group: Option<u32>,
    /// Every endpoint of the group and its driver.
    pub endpoints: Vec<FunctionState>,
    pub viable_now: bool,
    pub summary: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct CheckReport {
    /// The plan's verdict ([`crate::plan::Plan::verdict`]): a group that is
    /// not viable *now* (an endpoint on a host driver) is still `ok`:
    /// detaching fixes it, and the report says how.
    pub verdict: Verdict,
    pub address: PciAddress,
    pub kind: Kind,
    pub driver: Option<String>,
    pub reset: ResetInfo,
    pub viability: Viability,
    /// Domains that use the device.
    pub used_by: Vec<crate::host::DomainUse>,
    /// The passthrough plan (blockers, warnings) for the device.
    pub plan: Plan,
}

fn state(host: &Host, a: &PciAddress) -> FunctionState {
    let d = host.device(a);
    FunctionState {
        address: *a,
        driver: d.and_then(|d| d.driver.clone()),
        blocks_viability: d.is_some_and(|d| d.kind() == Kind::Endpoint && !d.driver_is_vfio_safe()),
    }
}

/// What resetting `a` means: the one description `show`, `check` and the
/// JSON views share (so two commands never disagree about one device).
/// Built on [`crate::host::Device::can_reset`], as `list` and the plan are.
pub fn reset_info(host: &Host, a: &PciAddress) -> Option<ResetInfo> {
    let d = host.device(a)?;
    let methods = d.reset_methods.clone();
    let has = |m: &str| methods.as_ref().is_some_and(|v| v.iter().any(|x| x == m));
    let function_reset =
        has("flr") || has("pm") || has("af") || has("device_specific") || has("acpi");
    let bus_reset_only = !function_reset && (has("bus") || has("cxl_bus"));
    let shares_bus_with: Vec<FunctionState> = host
        .devices
        .keys()
        .filter(|o| o.domain == a.domain && o.bus == a.bus && *o != a)
        .map(|o| state(host, o))
        .collect();
    let listed = methods.clone().unwrap_or_default();
    let summary = match d.can_reset() {
        Some(true) if function_reset => format!(
            "{a} can be reset on its own ({}); other devices are not affected",
            listed.join(", ")
        ),
        Some(true) if bus_reset_only && shares_bus_with.is_empty() => format!(
            "{a} has only a bus reset; nothing else is on bus {:02x}, so nothing else is affected",
            a.bus
        ),
        Some(true) if bus_reset_only => {
            let busy: Vec<String> = shares_bus_with
                .iter()
                .map(|s| match &s.driver {
                    Some(dr) => format!("{} ({dr})", s.address),
                    None => s.address.to_string(),
                })
                .collect();
            format!(
                "{a} has only a bus reset, which also resets {}; libvirt refuses it while any of them is in use (\"Active … devices on bus with {a}, not doing bus reset\")",
                busy.join(", ")
            )
        }
        Some(true) if !listed.is_empty() => {
            format!("{a} can be reset ({})", listed.join(", "))
        }
        Some(true) => format!(
            "{a} can be reset (the kernel offers a reset; {} does not say which method)",
            host.source
        ),
        Some(false) => format!(
            "{a} has no reset method (no FLR, PM or bus reset): state can leak between guests and the host"
        ),
        None => format!("{a}: reset methods are not known from {}", host.source),
    };
    Some(ResetInfo {
        methods,
        reset_file: d.reset,
        bus_reset_only,
        shares_bus_with,
        summary,
    })
}

/// Build the report for one function present on `host`.
pub fn check(host: &Host, a: &PciAddress) -> Option<CheckReport> {
    let d = host.device(a)?;
    let reset = reset_info(host, a)?;
    let group = d.iommu_group;
    let endpoints: Vec<FunctionState> = host
        .group_of(a)
        .iter()
        .filter_map(|m| match m {
            crate::host::GroupMember::Pci(p) => Some(*p),
            _ => None,
        })
        .filter(|p| host.device(p).is_some_and(|x| x.kind() == Kind::Endpoint))
        .map(|p| state(host, &p))
        .collect();
    let blocking: Vec<String> = endpoints
        .iter()
        .filter(|e| e.blocks_viability)
        .map(|e| format!("{} ({})", e.address, e.driver.clone().unwrap_or_default()))
        .collect();
    let viable_now = group.is_some() && blocking.is_empty();
    let vsum = match group {
        None => format!("{a} has no IOMMU group: VFIO cannot assign it"),
        Some(g) if blocking.is_empty() => format!(
            "IOMMU group {g} is viable: every endpoint is on vfio-pci, pci-stub or no driver"
        ),
        Some(g) => format!(
            "IOMMU group {g} is not viable yet: {} still on host drivers; a VM using it fails with \"group {g} is not viable\" until they are detached (`{}` does the whole group; managed='yes' hostdevs for every one of them do it at start)",
            blocking.join(", "),
            host.suggest(&format!("detach {a}"))
        ),
    };
    let plan = plan::plan(host, &[*a], PlanOptions::default());
    let verdict = plan.verdict();
    Some(CheckReport {
        verdict,
        address: *a,
        kind: d.kind(),
        driver: d.driver.clone(),
        reset,
        viability: Viability {
            group,
            endpoints,
            viable_now,
            summary: vsum,
        },
        used_by: host.used_by(a).into_iter().cloned().collect(),
        plan,
    })
}

impl CheckReport {
    /// The closing line of `check`, in the words of `show`'s verdict.
    pub fn verdict_line(&self) -> String {
        let a = self.address;
        let n = |v: usize, w: &str| format!("{v} {w}{}", if v == 1 { "" } else { "s" });
        match self.verdict {
            Verdict::Blocked => format!(
                "blocked — {a} cannot be assigned as it is ({})",
                n(self.plan.blockers.len(), "blocker")
            ),
            Verdict::Unverified => format!(
                "unverified — {a} may be assigned, but {} it depends on {} not known (commands that act need --force)",
                n(self.plan.unverified.len(), "host fact"),
                if self.plan.unverified.len() == 1 { "is" } else { "are" }
            ),
            Verdict::Nothing => format!("nothing — no function of {a} can travel"),
            Verdict::Ok if self.viability.viable_now => {
                format!("ok — {a} can be assigned; its IOMMU group is viable now")
            }
            Verdict::Ok => format!(
                "ok — {a} can be assigned once its group is detached (`virt-pci detach {a}`, or managed='yes' hostdevs for the whole group)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{Device, GroupMember, IommuState};

    #[test]
    fn bus_reset_names_the_neighbours_and_viability_the_host_drivers() {
        let mut h = Host {
            source: "t".into(),
            iommu: IommuState::Enabled,
            ..Host::default()
        };
        let gpu = PciAddress::new(0, 1, 0, 0);
        let hda = PciAddress::new(0, 1, 0, 1);
        for (a, class, drv, m) in [
            (gpu, 0x030000, Some("vfio-pci"), vec!["bus"]),
            (hda, 0x040300, Some("snd_hda_intel"), vec!["flr", "bus"]),
        ] {
            let mut d = Device::new(a, 0x10de, 1, class);
            d.driver = drv.map(str::to_string);
            d.iommu_group = Some(3);
            d.reset_methods = Some(m.into_iter().map(str::to_string).collect());
            d.reset = Some(true);
            h.devices.insert(a, d);
            h.groups.entry(3).or_default().push(GroupMember::Pci(a));
        }
        let r = check(&h, &gpu).unwrap();
        assert!(r.reset.bus_reset_only);
        assert_eq!(r.reset.shares_bus_with[0].address, hda);
        assert!(
            r.reset.summary.contains("not doing bus reset"),
            "{}",
            r.reset.summary
        );
        assert!(!r.viability.viable_now);
        assert!(r.viability.summary.contains("group 3 is not viable"));
        assert!(r.viability.summary.contains("0000:01:00.1 (snd_hda_intel)"));
        let r = check(&h, &hda).unwrap();
        assert!(!r.reset.bus_reset_only);
        assert!(r.reset.summary.contains("on its own"));
    }
}
