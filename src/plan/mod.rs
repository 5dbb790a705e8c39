//! The plan for passing devices through: which functions travel together,
//! which stay on the host, what blocks and what warns.
//!
//! Every command that changes something (`snippet`, `add`, `detach`, ...)
//! computes a plan first and acts on nothing else, so `--dry-run` and `--json`
//! can show exactly what will happen. The rules follow the kernel's VFIO
//! viability rule (docs/libvirt.md §3): every *endpoint* of an IOMMU
//! group must leave the host drivers before a guest can open the group
//! ("group N is not viable"), while bridges and root ports may stay on
//! `pcieport`. libvirt itself checks none of this before start.

use crate::address::PciAddress;
use crate::host::{Critical, GroupMember, Host, IommuState, Kind};
use serde::Serialize;
use std::collections::BTreeSet;

mod findings;

pub(crate) use findings::finding;
pub use findings::{Code, Finding};

#[derive(Clone, Debug)]
pub struct PlanOptions {
    /// Pass the whole IOMMU group (the default). `false` is qvm-pci's
    /// no-strict-reset: only the named functions, with a loud warning.
    pub strict_group: bool,
    /// The domain the devices are for (`add --domain NAME`, `prepare`):
    /// its own use of them is no conflict.
    pub for_domain: Option<String>,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            strict_group: true,
            for_domain: None,
        }
    }
}

/// The one-word answer of a plan, strongest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Something blocks it (see `blockers`).
    Blocked,
    /// Nothing known blocks it, but a fact it depends on is not known
    /// (see `unverified`): it may be blocked on the real host.
    Unverified,
    /// Every fact is measured or stated and nothing blocks it.
    Ok,
    /// No function would travel.
    Nothing,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Blocked => "blocked",
            Verdict::Unverified => "unverified",
            Verdict::Ok => "ok",
            Verdict::Nothing => "nothing",
        }
    }
}

/// How to make an `unverified` plan verifiable, for help lines.
pub const HOW_TO_VERIFY: &str = "run `virt-pci snapshot -o host.json` on that host and pass `--snapshot host.json`, or state the facts: `virt-pci snapshot --from-listing FILE --root-disk ADDR --default-nic ADDR --boot-vga ADDR -o host.json` (`none` where no PCI function is it)";

/// What happens to one member of a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Goes to the guest (a `<hostdev>` is emitted for it).
    Travels,
    /// Stays on the host without affecting the group (bridges, driverless
    /// host bridges).
    Stays,
    /// An endpoint left on the host by `--no-strict-group`.
    LeftBehind,
    /// Cannot follow, and so blocks the group.
    Blocks,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Member {
    /// The PCI address, or the kernel's name of a non-PCI member.
    pub member: String,
    pub role: Role,
    pub requested: bool,
    pub reason: String,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct GroupPlan {
    /// The IOMMU group, `None` when the device has none.
    pub group: Option<u32>,
    pub members: Vec<Member>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Plan {
    pub requested: Vec<PciAddress>,
    pub strict_group: bool,
    /// Every function that goes to the guest, in address order.
    pub travels: Vec<PciAddress>,
    pub groups: Vec<GroupPlan>,
    pub blockers: Vec<Finding>,
    /// Facts the plan depends on that the source does not give (unknown
    /// host-critical facts, unknown or inconsistent IOMMU groups).
    pub unverified: Vec<Finding>,
    pub warnings: Vec<Finding>,
    /// `blocked`, `unverified`, `ok` or `nothing`; see [`Plan::verdict`].
    pub verdict: Verdict,
}

impl Plan {
    /// Something blocks the plan; acting on it needs `--force`.
    pub fn is_blocked(&self) -> bool {
        !self.blockers.is_empty()
    }

    /// Blocked or unverified: commands that write XML or act refuse it
    /// without `--force`.
    pub fn needs_force(&self) -> bool {
        self.is_blocked() || !self.unverified.is_empty()
    }

    /// Blocked, then unverified, then ok (or nothing to pass through).
    pub fn verdict(&self) -> Verdict {
        if self.is_blocked() {
            Verdict::Blocked
        } else if !self.unverified.is_empty() {
            Verdict::Unverified
        } else if self.travels.is_empty() {
            Verdict::Nothing
        } else {
            Verdict::Ok
        }
    }

    /// The findings that stop commands which write or act: blockers, then
    /// unverified facts.
    pub fn refusals(&self) -> impl Iterator<Item = &Finding> {
        self.blockers.iter().chain(self.unverified.iter())
    }

    /// The functions `snippet` and `add` write as hostdevs: what travels;
    /// under `--force` also what was asked for that the plan held back (a
    /// bridge, a function it could not place), in address order.
    pub fn hostdev_set(&self, force: bool) -> Vec<PciAddress> {
        let mut out = self.travels.clone();
        if force {
            for a in &self.requested {
                if !out.contains(a) {
                    out.push(*a);
                }
            }
            out.sort();
        }
        out
    }
}

/// The name libvirt's non-endpoint error uses, for messages users search for.
const LIBVIRT_NON_ENDPOINT: &str =
    "libvirt refuses it: \"Non-endpoint PCI devices cannot be assigned to guests\"";

/// The one `group-split` warning for a group `--no-strict-group` splits.
/// The kernel's viability rule (`vfio_dev_viable` in the kernel's
/// `drivers/vfio/vfio.c`, docs/libvirt.md): a member with no driver, or on
/// vfio-pci/pci-stub, keeps the group viable; one on a host driver makes the
/// guest fail to start with QEMU's "group N is not viable". A driverless
/// member is therefore not told to "be unbound": it is, and stays viable
/// only until a driver binds it.
/// An endpoint `--no-strict-group` leaves on the host, and its driver.
struct LeftBehind {
    address: PciAddress,
    driver: Option<String>,
    state: LeftState,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum LeftState {
    /// On a host driver: the group is not viable.
    HostDriver,
    /// No driver shown, and the source did not measure drivers.
    DriverUnknown,
    /// No driver (measured), vfio-pci or pci-stub: viable for now.
    Viable,
}

fn split_warning(gid: u32, left: &[LeftBehind], source: &str) -> Option<Finding> {
    let first = left.first()?;
    let list = |state: LeftState| -> Vec<String> {
        left.iter()
            .filter(|x| x.state == state)
            .map(|x| match &x.driver {
                Some(d) => format!("{} (`{d}`)", x.address),
                None => x.address.to_string(),
            })
            .collect()
    };
    let verb = |n: &Vec<String>| if n.len() == 1 { "stays" } else { "stay" };
    let them = |n: &Vec<String>| if n.len() == 1 { "it is" } else { "they are" };
    let mut parts = Vec::new();
    let bound = list(LeftState::HostDriver);
    if !bound.is_empty() {
        parts.push(format!(
            "{} {} on host drivers, so the VM will not start under VFIO (\"group {gid} is not viable\") until {} unbound or bound to vfio-pci",
            bound.join(", "),
            verb(&bound),
            them(&bound),
        ));
    }
    let unknown = list(LeftState::DriverUnknown);
    if !unknown.is_empty() {
        parts.push(format!(
            "{} {} on the host and {source} does not say which driver {} on; on a host driver the VM will not start (\"group {gid} is not viable\")",
            unknown.join(", "),
            verb(&unknown),
            if unknown.len() == 1 { "it is" } else { "they are" },
        ));
    }
    let idle = list(LeftState::Viable);
    if !idle.is_empty() {
        parts.push(format!(
            "{} {} on the host without a host driver, which keeps the group viable only as long as no host driver binds {}",
            idle.join(", "),
            verb(&idle),
            if idle.len() == 1 { "it" } else { "them" },
        ));
    }
    Some(finding(
        Code::GroupSplit,
        Some(&first.address),
        format!("IOMMU group {gid} is split: {}", parts.join("; ")),
        Some("drop --no-strict-group to pass the whole group, or keep the rest of the group on vfio-pci (`virt-pci detach`) while the guest runs"),
    ))
}

/// Compute the plan for passing `requested` through.
///
/// Every address must be present on `host` (resolve specs first).
pub fn plan(host: &Host, requested: &[PciAddress], opts: PlanOptions) -> Plan {
    let mut p = Plan {
        requested: requested.to_vec(),
        strict_group: opts.strict_group,
        travels: Vec::new(),
        groups: Vec::new(),
        blockers: Vec::new(),
        unverified: Vec::new(),
        warnings: Vec::new(),
        verdict: Verdict::Nothing,
    };
    let req: BTreeSet<PciAddress> = requested.iter().copied().collect();
    let req_slots: BTreeSet<_> = requested.iter().map(|a| a.slot_of()).collect();
    let mut travels: BTreeSet<PciAddress> = BTreeSet::new();
    let mut seen_groups: BTreeSet<u32> = BTreeSet::new();

    for a in requested {
        let Some(d) = host.device(a) else {
            p.blockers.push(finding(
                Code::NotPresent,
                Some(a),
                format!("{a} is not present on {}", host.source),
                Some(&format!(
                    "`{}` shows the devices of this host",
                    host.suggest("list")
                )),
            ));
            continue;
        };
        // The requested device itself.
        match d.kind() {
            Kind::HostBridge => p.blockers.push(finding(
                Code::HostBridge,
                Some(a),
                format!("{a} is the host bridge (root complex): the host cannot run without it"),
                Some(&format!("name the device behind it instead; `{}` shows the topology", host.suggest("list --tree"))),
            )),
            Kind::Bridge => p.blockers.push(finding(
                Code::NotEndpoint,
                Some(a),
                format!("{a} is a PCI bridge or root port and can never be a hostdev; {LIBVIRT_NON_ENDPOINT}"),
                Some("pass the endpoint devices behind it; the bridge stays on the host"),
            )),
            Kind::Endpoint => {}
        }

        if d.iommu_group.is_none() {
            let (code, msg, help) = match host.iommu {
                IommuState::Disabled => (
                    Code::NoIommu,
                    format!("{a} has no IOMMU group: the host has no IOMMU groups at all, and VFIO passthrough needs them"),
                    "enable VT-d (Intel) or AMD-Vi/IOMMU (AMD) in the firmware, and boot with intel_iommu=on (Intel) or amd_iommu=on (AMD)",
                ),
                IommuState::Enabled => (
                    Code::NoIommuGroup,
                    format!("{a} has no IOMMU group: the IOMMU does not cover this device"),
                    "check the firmware's IOMMU settings for this root complex; the kernel log names uncovered devices",
                ),
                IommuState::Unknown => (
                    Code::GroupUnknown,
                    format!("{a}: the IOMMU group is not known from {}", host.source),
                    "read the host itself (or a snapshot of it) to plan with groups",
                ),
            };
            let f = finding(code, Some(a), msg, Some(help));
            if code == Code::GroupUnknown {
                p.unverified.push(f);
                if d.kind() == Kind::Endpoint {
                    travels.insert(*a);
                }
            } else {
                p.blockers.push(f);
            }
            p.groups.push(GroupPlan {
                group: None,
                members: vec![Member {
                    member: a.to_string(),
                    role: if code == Code::GroupUnknown {
                        Role::Travels
                    } else {
                        Role::Blocks
                    },
                    requested: true,
                    reason: "requested; no IOMMU group".into(),
                }],
            });
            continue;
        }
        let g = d.iommu_group;
        let gid = g.unwrap_or_default();
        if !seen_groups.insert(gid) {
            continue;
        }
        // A membership the source cannot vouch for is never taken for a
        // smaller group.
        let why = host
            .facts
            .groups_unreadable
            .as_ref()
            .or_else(|| host.facts.inconsistent_groups.get(&gid));
        if let Some(why) = why {
            p.unverified.push(finding(
                Code::GroupUnverified,
                Some(a),
                format!("the members of IOMMU group {gid} are not known: {why}"),
                Some("read the host again (`virt-pci snapshot -o host.json` on it); a group is never taken to be smaller than the kernel says"),
            ));
        }
        // Every requested function of this group goes through the same
        // rules, also when an inconsistent source (a partial listing, a
        // hand-made tree) does not list it among the group's members.
        let mut members = host.groups.get(&gid).cloned().unwrap_or_default();
        for r in requested {
            let in_group = host.device(r).and_then(|x| x.iommu_group) == g;
            if in_group && !members.contains(&GroupMember::Pci(*r)) {
                members.push(GroupMember::Pci(*r));
            }
        }
        let mut gp = GroupPlan {
            group: g,
            members: Vec::new(),
        };
        // Endpoints `--no-strict-group` leaves on the host: one warning for
        // the group, below.
        let mut left_behind: Vec<LeftBehind> = Vec::new();
        for m in &members {
            let GroupMember::Pci(ma) = m else {
                gp.members.push(Member {
                    member: m.to_string(),
                    role: Role::Blocks,
                    requested: false,
                    reason: "not a PCI function (mdev or platform device): cannot follow".into(),
                });
                p.blockers.push(finding(
                    Code::NonPciMember,
                    Some(m),
                    format!("IOMMU group {gid} also holds {m}, which is not a PCI function (an mdev or a platform device) and cannot go with the group"),
                    Some("remove the mdev (or unbind the platform device) first, or pick a device in another group"),
                ));
                continue;
            };
            let is_req = req.contains(ma);
            let Some(md) = host.device(ma) else {
                gp.members.push(Member {
                    member: ma.to_string(),
                    role: Role::Blocks,
                    requested: is_req,
                    reason: "listed in the group but not found on the PCI bus".into(),
                });
                p.blockers.push(finding(
                    Code::MissingMember,
                    Some(ma),
                    format!("IOMMU group {gid} lists {ma}, which is not on the PCI bus"),
                    None,
                ));
                continue;
            };
            match md.kind() {
                Kind::Bridge => {
                    gp.members.push(Member {
                        member: ma.to_string(),
                        role: if is_req { Role::Blocks } else { Role::Stays },
                        requested: is_req,
                        reason: "PCI bridge or root port: stays on the host (VFIO allows bridges in a group)".into(),
                    });
                    continue;
                }
                Kind::HostBridge if !is_req => {
                    if md.driver.is_none() {
                        gp.members.push(Member {
                            member: ma.to_string(),
                            role: Role::Stays,
                            requested: false,
                            reason: "host bridge with no driver: stays on the host and does not block the group".into(),
                        });
                    } else {
                        let drv = md.driver.clone().unwrap_or_default();
                        gp.members.push(Member {
                            member: ma.to_string(),
                            role: Role::Blocks,
                            requested: false,
                            reason: format!(
                                "host bridge bound to `{drv}`: the group cannot be made viable"
                            ),
                        });
                        p.blockers.push(finding(
                            Code::HostBridgeInGroup,
                            Some(ma),
                            format!("IOMMU group {gid} holds the host bridge {ma}, bound to `{drv}`; VFIO needs it unbound, and the host needs it"),
                            Some("this group cannot be passed through; an ACS-capable slot puts the device in a group of its own"),
                        ));
                    }
                    continue;
                }
                Kind::HostBridge => {
                    gp.members.push(Member {
                        member: ma.to_string(),
                        role: Role::Blocks,
                        requested: true,
                        reason: "the host bridge".into(),
                    });
                    continue;
                }
                Kind::Endpoint => {}
            }
            if !opts.strict_group && !is_req {
                gp.members.push(Member {
                    member: ma.to_string(),
                    role: Role::LeftBehind,
                    requested: false,
                    reason: "endpoint left on the host by --no-strict-group".into(),
                });
                left_behind.push(LeftBehind {
                    address: *ma,
                    driver: md.driver.clone(),
                    state: if host.keeps_group_viable(md) {
                        LeftState::Viable
                    } else if md.driver.is_none() {
                        LeftState::DriverUnknown
                    } else {
                        LeftState::HostDriver
                    },
                });
                continue;
            }
            let reason = if is_req {
                "requested".to_string()
            } else if req_slots.contains(&ma.slot_of()) {
                format!("another function of the same device; shares IOMMU group {gid}")
            } else {
                format!("shares IOMMU group {gid}: VFIO needs every endpoint of the group away from host drivers")
            };
            let mut role = Role::Travels;
            for c in &md.critical {
                role = Role::Blocks;
                let help = match c {
                    Critical::RootFilesystem { .. } => "the host would lose its root filesystem; move the root disk, or pass a device in another group",
                    Critical::DefaultRoute { .. } => "the host would lose its network; use another NIC for the host, or pass a device in another group",
                    Critical::BootVga => "the host would lose its console; switch the firmware's primary display, or use --force if the host runs headless",
                    Critical::IsaBridge => "the ISA/LPC bridge carries the TPM, super-I/O and firmware flash; this group cannot leave the host (an ACS override splits groups at a security cost)",
                };
                let what = if is_req {
                    format!("{ma} is the {c}")
                } else {
                    format!(
                        "{ma}, the {c}, shares IOMMU group {gid} and would have to leave the host"
                    )
                };
                p.blockers
                    .push(finding(Code::HostCritical, Some(ma), what, Some(help)));
            }
            gp.members.push(Member {
                member: ma.to_string(),
                role,
                requested: is_req,
                reason,
            });
            travels.insert(*ma);
        }
        if let Some(w) = split_warning(gid, &left_behind, &host.source) {
            p.warnings.push(w);
        }
        p.groups.push(gp);
    }

    // Warnings about what travels. Functions on host drivers are one
    // warning: the same thing happens to all of them.
    let mut on_host_drivers: Vec<String> = Vec::new();
    let mut first_on_host_driver: Option<PciAddress> = None;
    for a in &travels {
        let Some(d) = host.device(a) else { continue };
        if !req.contains(a) && !req_slots.contains(&a.slot_of()) {
            let class = crate::pciids::builtin_class_name(d.class16());
            p.warnings.push(finding(
                Code::UnrelatedDevice,
                Some(a),
                format!(
                    "{a} ({class}) shares the IOMMU group and leaves the host with the requested device{}",
                    if d.driver.is_some() && !d.driver_is_vfio_safe() {
                        format!(", taking it away from `{}`", d.driver.as_deref().unwrap_or(""))
                    } else {
                        String::new()
                    }
                ),
                Some("check that the host does not need it; a slot with its own IOMMU group avoids this"),
            ));
        }
        if d.can_reset() == Some(false) {
            p.warnings.push(finding(
                Code::NoReset,
                Some(a),
                format!("{a} has no reset method (no FLR, PM or bus reset): its state can leak between guest and host, and libvirt may fail with \"Unable to reset PCI device {a}: no FLR, PM reset or bus reset available\""),
                Some(&format!("avoid returning it to the host between guests; `{}` shows what reset would affect", host.suggest(&format!("check {a}")))),
            ));
        }
        if let Some(drv) = d.driver.as_deref() {
            if !d.driver_is_vfio_safe() {
                on_host_drivers.push(format!("{a} (`{drv}`)"));
                first_on_host_driver.get_or_insert(*a);
            }
        }
        let vfs = d.sriov_numvfs.unwrap_or(0).max(d.virtfns.len() as u32);
        if vfs > 0 {
            p.warnings.push(finding(
                Code::SriovPfActiveVfs,
                Some(a),
                format!("{a} is an SR-IOV physical function with {vfs} active VFs; they depend on the PF's host driver and disappear when it is unbound"),
                Some("pass a VF instead, or set sriov_numvfs to 0 first"),
            ));
        }
    }
    if let Some(first) = first_on_host_driver {
        let one = on_host_drivers.len() == 1;
        p.warnings.push(finding(
            Code::HostDriver,
            Some(&first),
            format!(
                "{} {} bound to {}host driver{}; {} will be unbound (managed='yes' does this at start, managed='no' needs `virt-pci detach` first)",
                on_host_drivers.join(", "),
                if one { "is" } else { "are" },
                if one { "a " } else { "" },
                if one { "" } else { "s" },
                if one { "it" } else { "they" },
            ),
            None,
        ));
    }
    p.travels = travels.into_iter().collect();
    split_cards(host, &mut p);
    unknown_facts(host, &mut p);
    domain_use(host, &opts, &mut p);
    p.verdict = p.verdict();
    p
}

/// The plan for starting a domain that holds exactly `devices`, judged as
/// the kernel and libvirt will judge it at that start (what `virt-pci
/// guard` runs at libvirt's `prepare begin`).
///
/// Unlike [`plan`], which says what *should* travel (the whole group), this
/// takes the domain as it is: the named functions travel, and every other
/// endpoint of their groups stays where it is. Such a member keeps the group
/// viable only on `vfio-pci`, `pci-stub` or no driver (the kernel's
/// `vfio_dev_viable`, drivers/vfio/vfio.c; from 5.19 the same policy through
/// `driver_managed_dma`); on any other driver QEMU fails with "group N is not
/// viable", so that is the blocker `group-not-viable`. A function or group
/// member that a running domain (in `host.domains`, other than this one)
/// holds blocks with `in-use`: libvirt's own check says only "in use by
/// driver QEMU, domain X" (src/hypervisor/virhostdev.c, `virHostdevIsPCINodeDeviceUsed`).
pub fn plan_for_start(host: &Host, devices: &[PciAddress]) -> Plan {
    let mut p = plan(
        host,
        devices,
        PlanOptions {
            strict_group: false,
            ..PlanOptions::default()
        },
    );
    p.warnings.retain(|w| w.code != Code::GroupSplit);
    let requested: Vec<String> = devices.iter().map(|a| a.to_string()).collect();
    let mut extra = Vec::new();
    for g in &p.groups {
        let gid = g.group.unwrap_or_default();
        let with: Vec<&str> = g
            .members
            .iter()
            .filter(|x| x.requested && x.role == Role::Travels)
            .map(|x| x.member.as_str())
            .collect();
        // Endpoints left behind on a host driver, one finding per group.
        let mut bound: Vec<(PciAddress, String)> = Vec::new();
        for m in g.members.iter().filter(|m| m.role == Role::LeftBehind) {
            let Ok(ma) = PciAddress::parse(&m.member) else {
                continue;
            };
            let Some(md) = host.device(&ma) else { continue };
            // A host-critical member stays the host's only if the group
            // does not leave: while the domain runs, the group's DMA
            // mappings belong to the guest, whatever the member's driver.
            for c in &md.critical {
                extra.push(finding(
                    Code::HostCritical,
                    Some(&ma),
                    format!("{ma}, the {c}, is in IOMMU group {gid} with this domain's {}; the host needs it, and the group cannot be split between host and guest", with.join(", ")),
                    Some("pick a device in another group; an ACS-capable slot puts a device in a group of its own"),
                ));
            }
            if !md.driver_is_vfio_safe() && md.critical.is_empty() {
                bound.push((ma, md.driver.clone().unwrap_or_default()));
            }
        }
        if !bound.is_empty() && !with.is_empty() {
            let list: Vec<String> = bound
                .iter()
                .map(|(a, d)| format!("{a} (on `{d}`)"))
                .collect();
            let (them, verb) = if bound.len() == 1 {
                ("it", "is")
            } else {
                ("them", "are")
            };
            extra.push(finding(
                Code::GroupNotViable,
                Some(&bound[0].0),
                format!(
                    "IOMMU group {gid} is not viable for this domain: {} {verb} in the group with {} but not in the domain, and on host drivers; QEMU would fail with \"group {gid} is not viable\"",
                    list.join(", "),
                    with.join(", ")
                ),
                Some(&format!(
                    "add {them} to the domain too (the whole group travels), or bind {them} to vfio-pci before the start"
                )),
            ));
        }
        for m in &g.members {
            let Ok(ma) = PciAddress::parse(&m.member) else {
                continue;
            };
            // The plan itself may already block a travelling function a
            // running domain holds; say it once.
            let said = p
                .blockers
                .iter()
                .any(|b| b.code == Code::InUse && b.address.as_deref() == Some(m.member.as_str()));
            if said {
                continue;
            }
            for u in host.domains.iter().filter(|u| u.running && u.address == ma) {
                let rel = if requested.contains(&m.member) {
                    format!("{ma} is assigned to the running domain `{}`", u.domain)
                } else {
                    format!(
                        "{ma}, in IOMMU group {gid} with this domain's devices, is assigned to the running domain `{}`",
                        u.domain
                    )
                };
                extra.push(Finding {
                    code: Code::InUse,
                    address: Some(ma.to_string()),
                    message: format!("{rel}; one IOMMU group can belong to one running domain only"),
                    help: Some(format!("shut `{}` down first (`virsh shutdown {}`), or take the device from it (`virt-pci remove --domain {} {ma}`)", u.domain, u.domain, u.domain)),
                });
            }
        }
    }
    p.blockers.extend(extra);
    p
}

/// After `remove`: a function that stays in the domain while another
/// endpoint of its IOMMU group left it makes the group non-viable when the
/// removed one returns to a host driver ("group N is not viable"). Only
/// members of the same group count; a sibling function in another group is
/// independent. Without a host the groups are not known, and a function of
/// the same device is named with that caveat.
pub fn removal_warnings(
    host: Option<&Host>,
    removed: &[PciAddress],
    kept: &[PciAddress],
) -> Vec<Finding> {
    let mut out = Vec::new();
    for k in kept {
        match host {
            Some(h) => {
                let g = h.device(k).and_then(|d| d.iommu_group);
                let Some(gid) = g else { continue };
                let same = removed.iter().find(|r| {
                    h.device(r).and_then(|d| d.iommu_group) == g
                        && h.device(r).is_some_and(|d| d.kind() == Kind::Endpoint)
                });
                if let Some(r) = same {
                    out.push(finding(
                        Code::GroupSplit,
                        Some(k),
                        format!("{k} stays in the domain while {r}, of the same IOMMU group {gid}, leaves it; the guest will not start under VFIO (\"group {gid} is not viable\") unless {r} stays on vfio-pci or no driver"),
                        Some(&format!("remove {k} too, or keep {r} on vfio-pci")),
                    ));
                }
            }
            None => {
                if let Some(r) = removed.iter().find(|r| r.slot_of() == k.slot_of()) {
                    out.push(finding(
                        Code::SiblingLeft,
                        Some(k),
                        format!("{k}, another function of the same device as {r}, stays in the domain; if they share an IOMMU group the guest will not start under VFIO unless {r} stays on vfio-pci"),
                        Some("name the host (--snapshot FILE, --root DIR or -c URI) to check the groups"),
                    ));
                }
            }
        }
    }
    out
}

/// Every travelling function whose host-critical facts the source does not
/// give (see [`Host::unknown_facts`]) makes the plan `unverified`: "ok"
/// would claim the host keeps its root disk, network and console without
/// knowing which functions those are.
fn unknown_facts(host: &Host, p: &mut Plan) {
    for a in &p.travels {
        let Some(d) = host.device(a) else { continue };
        let unknown = host.unknown_facts(d);
        if unknown.is_empty() {
            continue;
        }
        let what: Vec<&str> = unknown.iter().map(|f| f.describe()).collect();
        let how: Vec<&str> = unknown
            .iter()
            .map(|f| host.fact(*f).as_str())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        p.unverified.push(finding(
            Code::FactUnknown,
            Some(a),
            format!(
                "{a} ({}) could be {}: {} does not say ({})",
                crate::pciids::builtin_class_name(d.class16()),
                join_or(&what),
                host.source,
                how.join(", ")
            ),
            Some(HOW_TO_VERIFY),
        ));
    }
}

/// A card split across IOMMU groups (a GPU and its HDMI audio in separate
/// groups, common on AMD and behind ACS-capable switch ports): the other
/// functions of a requested card do not travel with it unless named, and a
/// guest driver usually expects the whole card. Say so, and name the slot.
fn split_cards(host: &Host, p: &mut Plan) {
    let mut seen = BTreeSet::new();
    for a in &p.requested {
        if !seen.insert(a.slot_of()) {
            continue;
        }
        let g = host.device(a).and_then(|d| d.iommu_group);
        let apart: Vec<String> = host
            .siblings(a)
            .into_iter()
            .filter(|s| s != a && !p.travels.contains(s))
            .filter_map(|s| {
                let d = host.device(&s)?;
                (d.kind() == Kind::Endpoint && d.iommu_group != g).then(|| {
                    format!(
                        "{s} ({}, IOMMU group {})",
                        crate::pciids::builtin_class_name(d.class16()),
                        d.iommu_group
                            .map(|x| x.to_string())
                            .unwrap_or_else(|| "none".into())
                    )
                })
            })
            .collect();
        if apart.is_empty() {
            continue;
        }
        let slot = a.slot_of();
        let short = if slot.domain == 0 {
            format!("{:02x}:{:02x}", slot.bus, slot.slot)
        } else {
            slot.to_string()
        };
        p.warnings.push(finding(
            Code::SplitCard,
            Some(a),
            format!(
                "the card {short} is split across IOMMU groups: {} {} not travel with {a}{}",
                apart.join(", "),
                if apart.len() == 1 { "does" } else { "do" },
                g.map(|x| format!(" (group {x})")).unwrap_or_default()
            ),
            Some(&format!(
                "pass the whole card by naming its slot `{short}`: `{}`",
                host.suggest(&format!("snippet {short}"))
            )),
        ));
    }
}

/// "a, b or c".
fn join_or(v: &[&str]) -> String {
    match v {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// Use by other domains: a travelling function that a running domain holds
/// blocks (the guest would lose it, or the VM would not start); one that a
/// defined, shut-off domain lists is a warning (assigning one device to
/// several VMs that run one at a time is legitimate). The domain the plan is
/// for ([`PlanOptions::for_domain`]) is no conflict.
fn domain_use(host: &Host, opts: &PlanOptions, p: &mut Plan) {
    for a in &p.travels {
        for u in host.used_by(a) {
            if opts.for_domain.as_deref() == Some(u.domain.as_str()) {
                continue;
            }
            if u.running {
                p.blockers.push(finding(
                    Code::InUse,
                    Some(a),
                    format!("{a} is assigned to the running domain `{}`", u.domain),
                    Some(&format!(
                        "shut `{}` down first (`virsh shutdown {}`), or take the device from it (`{}`)",
                        u.domain,
                        u.domain,
                        host.suggest(&format!(
                            "remove --domain {} {a}",
                            crate::address::shell_word(&u.domain)
                        ))
                    )),
                ));
            } else {
                p.warnings.push(finding(
                    Code::AssignedElsewhere,
                    Some(a),
                    format!(
                        "{a} is also assigned to the domain `{}` (shut off): only one of them can run at a time",
                        u.domain
                    ),
                    None,
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Device;

    fn host() -> Host {
        let mut h = Host {
            source: "test".into(),
            iommu: IommuState::Enabled,
            ..Host::default()
        };
        let mut add = |a: PciAddress, class: u32, g: u32, drv: Option<&str>| {
            let mut d = Device::new(a, 0x10de, 0x1000 + u16::from(a.function), class);
            d.iommu_group = Some(g);
            d.driver = drv.map(str::to_string);
            d.reset_methods = Some(vec!["flr".into()]);
            d.reset = Some(true);
            h.devices.insert(a, d);
            h.groups.entry(g).or_default().push(GroupMember::Pci(a));
        };
        add(PciAddress::new(0, 0, 0, 0), 0x060000, 0, None);
        add(PciAddress::new(0, 0, 1, 0), 0x060400, 1, Some("pcieport"));
        add(PciAddress::new(0, 1, 0, 0), 0x030000, 1, Some("nouveau"));
        add(
            PciAddress::new(0, 1, 0, 1),
            0x040300,
            1,
            Some("snd_hda_intel"),
        );
        add(PciAddress::new(0, 0, 0x1f, 0), 0x060100, 2, None);
        add(
            PciAddress::new(0, 0, 0x1f, 3),
            0x040300,
            2,
            Some("snd_hda_intel"),
        );
        h.mark_intrinsic_critical();
        h.facts = crate::host::HostFacts::measured();
        h
    }

    #[test]
    fn gpu_with_root_port_plans_cleanly() {
        let h = host();
        let p = plan(&h, &[PciAddress::new(0, 1, 0, 0)], PlanOptions::default());
        assert!(!p.is_blocked(), "{:?}", p.blockers);
        assert_eq!(
            p.travels,
            vec![PciAddress::new(0, 1, 0, 0), PciAddress::new(0, 1, 0, 1)]
        );
        let rp = &p.groups[0]
            .members
            .iter()
            .find(|m| m.member == "0000:00:01.0")
            .unwrap();
        assert_eq!(rp.role, Role::Stays);
    }

    #[test]
    fn lpc_bridge_blocks_onboard_audio() {
        let h = host();
        let p = plan(
            &h,
            &[PciAddress::new(0, 0, 0x1f, 3)],
            PlanOptions::default(),
        );
        assert!(p.is_blocked());
        assert_eq!(p.blockers[0].code, Code::HostCritical);
        assert!(
            p.blockers[0].message.contains("ISA/LPC bridge"),
            "{}",
            p.blockers[0].message
        );
    }

    #[test]
    fn bridges_and_host_bridge_are_refused() {
        let h = host();
        let p = plan(&h, &[PciAddress::new(0, 0, 1, 0)], PlanOptions::default());
        assert_eq!(p.blockers[0].code, Code::NotEndpoint);
        let p = plan(&h, &[PciAddress::new(0, 0, 0, 0)], PlanOptions::default());
        assert_eq!(p.blockers[0].code, Code::HostBridge);
        assert!(p.travels.is_empty());
    }

    #[test]
    fn no_strict_group_leaves_siblings_with_a_warning() {
        let h = host();
        let p = plan(
            &h,
            &[PciAddress::new(0, 1, 0, 0)],
            PlanOptions {
                strict_group: false,
                for_domain: None,
            },
        );
        assert_eq!(p.travels, vec![PciAddress::new(0, 1, 0, 0)]);
        assert!(p
            .warnings
            .iter()
            .any(|w| w.code == Code::GroupSplit && w.message.contains("group 1 is not viable")));
    }

    #[test]
    fn a_device_its_group_does_not_list_is_still_checked() {
        let mut h = host();
        let gpu = PciAddress::new(0, 1, 0, 0);
        h.groups
            .get_mut(&1)
            .unwrap()
            .retain(|m| m != &GroupMember::Pci(gpu));
        h.devices.get_mut(&gpu).unwrap().boot_vga = Some(true);
        h.mark_intrinsic_critical();
        let p = plan(&h, &[gpu], PlanOptions::default());
        assert!(p.is_blocked(), "{:?}", p.groups);
        assert_eq!(p.blockers[0].code, Code::HostCritical);
        assert!(p.groups[0]
            .members
            .iter()
            .any(|m| m.member == "0000:01:00.0" && m.requested));
    }

    #[test]
    fn plan_for_start_follows_the_kernels_viability_rule() {
        let mut h = host();
        let gpu = PciAddress::new(0, 1, 0, 0);
        let audio = PciAddress::new(0, 1, 0, 1);
        let p = plan_for_start(&h, &[gpu]);
        let b: Vec<_> = p.blockers.iter().map(|b| b.code).collect();
        assert_eq!(b, vec![Code::GroupNotViable]);
        assert!(p.blockers[0]
            .message
            .contains("0000:01:00.1 (on `snd_hda_intel`)"));
        assert!(!p.warnings.iter().any(|w| w.code == Code::GroupSplit));
        // On vfio-pci (or pci-stub, or no driver) the member keeps it viable.
        for drv in [Some("vfio-pci"), Some("pci-stub"), None] {
            h.devices.get_mut(&audio).unwrap().driver = drv.map(str::to_string);
            assert!(!plan_for_start(&h, &[gpu]).is_blocked(), "{drv:?}");
        }
        // Both in the domain: fine whatever the drivers.
        let h = host();
        assert!(!plan_for_start(&h, &[gpu, audio]).is_blocked());
    }

    #[test]
    fn plan_for_start_blocks_critical_members_left_behind_and_running_use() {
        let mut h = host();
        let audio = PciAddress::new(0, 0, 0x1f, 3);
        let p = plan_for_start(&h, &[audio]);
        assert_eq!(p.blockers.len(), 1, "{:?}", p.blockers);
        assert_eq!(p.blockers[0].code, Code::HostCritical);
        assert_eq!(p.blockers[0].address.as_deref(), Some("0000:00:1f.0"));
        let gpu = PciAddress::new(0, 1, 0, 0);
        let other = PciAddress::new(0, 1, 0, 1);
        h.domains.push(crate::host::DomainUse {
            domain: "gaming".into(),
            address: other,
            running: true,
            managed: true,
        });
        let p = plan_for_start(&h, &[gpu, other]);
        assert_eq!(p.blockers.len(), 1, "{:?}", p.blockers);
        assert_eq!(p.blockers[0].code, Code::InUse);
        assert!(p.blockers[0].message.contains("running domain `gaming`"));
        h.domains[0].running = false;
        assert!(!plan_for_start(&h, &[gpu, other]).is_blocked());
    }

    #[test]
    fn no_iommu_is_a_blocker_with_a_hint() {
        let mut h = host();
        h.groups.clear();
        h.iommu = IommuState::Disabled;
        for d in h.devices.values_mut() {
            d.iommu_group = None;
        }
        let p = plan(&h, &[PciAddress::new(0, 1, 0, 0)], PlanOptions::default());
        assert_eq!(p.blockers[0].code, Code::NoIommu);
        assert!(p.blockers[0]
            .help
            .as_deref()
            .unwrap_or("")
            .contains("intel_iommu=on"));
    }

    const GPU: PciAddress = PciAddress::new(0, 1, 0, 0);
    const HDA: PciAddress = PciAddress::new(0, 1, 0, 1);

    #[test]
    fn unknown_facts_make_the_plan_unverified_never_ok() {
        let mut h = host();
        h.facts.boot_vga = crate::host::Provenance::Unknown;
        let p = plan(&h, &[GPU], PlanOptions::default());
        assert_eq!(p.verdict(), Verdict::Unverified);
        assert_eq!(p.verdict, Verdict::Unverified);
        assert!(p.needs_force() && !p.is_blocked());
        assert_eq!(p.unverified.len(), 1, "{:?}", p.unverified);
        assert_eq!(p.unverified[0].code, Code::FactUnknown);
        assert!(p.unverified[0]
            .message
            .contains("could be the boot VGA device"));
        // The audio function cannot be any host-critical function.
        let p = plan(
            &h,
            &[HDA],
            PlanOptions {
                strict_group: false,
                for_domain: None,
            },
        );
        assert_eq!(p.verdict(), Verdict::Ok, "{:?}", p.unverified);
        // Assumed is not known either.
        h.facts.boot_vga = crate::host::Provenance::Assumed;
        assert_eq!(
            plan(&h, &[GPU], PlanOptions::default()).verdict(),
            Verdict::Unverified
        );
    }

    #[test]
    fn stated_facts_count_as_stated() {
        let mut h = host();
        h.facts = crate::host::HostFacts::default();
        h.state_fact(crate::host::CriticalFact::BootVga, &[GPU])
            .unwrap();
        h.state_fact(crate::host::CriticalFact::RootFilesystem, &[])
            .unwrap();
        h.state_fact(crate::host::CriticalFact::DefaultRoute, &[])
            .unwrap();
        let p = plan(&h, &[GPU], PlanOptions::default());
        assert_eq!(p.verdict(), Verdict::Blocked);
        assert!(p.unverified.is_empty(), "{:?}", p.unverified);
        assert!(p.blockers[0].message.contains("boot VGA"));
        h.state_fact(crate::host::CriticalFact::BootVga, &[])
            .unwrap();
        assert_eq!(
            plan(&h, &[GPU], PlanOptions::default()).verdict(),
            Verdict::Ok
        );
    }

    #[test]
    fn inconsistent_or_unknown_groups_are_unverified() {
        let mut h = host();
        h.groups.remove(&1);
        h.check_group_consistency();
        let p = plan(&h, &[GPU], PlanOptions::default());
        assert_eq!(p.verdict(), Verdict::Unverified);
        assert!(p.unverified.iter().any(|f| f.code == Code::GroupUnverified));
        let mut h = host();
        h.facts.groups_unreadable = Some("iommu_groups: permission denied".into());
        assert_eq!(
            plan(&h, &[GPU], PlanOptions::default()).verdict(),
            Verdict::Unverified
        );
    }

    #[test]
    fn other_domains_block_when_running_and_warn_when_stopped() {
        let mut h = host();
        let use_ = |domain: &str, running| crate::host::DomainUse {
            domain: domain.into(),
            address: HDA,
            running,
            managed: true,
        };
        h.domains = vec![use_("win10", true)];
        let p = plan(&h, &[GPU], PlanOptions::default());
        assert_eq!(p.verdict(), Verdict::Blocked);
        assert_eq!(p.blockers[0].code, Code::InUse);
        assert!(p.blockers[0].message.contains("`win10`"));
        // The domain the plan is for holds it: no conflict.
        let own = PlanOptions {
            for_domain: Some("win10".into()),
            ..PlanOptions::default()
        };
        assert_eq!(plan(&h, &[GPU], own).verdict(), Verdict::Ok);
        h.domains = vec![use_("nas", false)];
        let p = plan(&h, &[GPU], PlanOptions::default());
        assert_eq!(p.verdict(), Verdict::Ok);
        assert!(p
            .warnings
            .iter()
            .any(|w| w.code == Code::AssignedElsewhere && w.message.contains("`nas`")));
    }

    #[test]
    fn vfio_bound_members_keep_a_split_group_viable() {
        let mut h = host();
        h.devices.get_mut(&HDA).unwrap().driver = Some("vfio-pci".into());
        let p = plan(
            &h,
            &[GPU],
            PlanOptions {
                strict_group: false,
                for_domain: None,
            },
        );
        let w = p
            .warnings
            .iter()
            .find(|w| w.code == Code::GroupSplit)
            .unwrap();
        assert!(
            w.message.contains("keeps the group viable"),
            "{}",
            w.message
        );
        // A host driver does not.
        h.devices.get_mut(&HDA).unwrap().driver = Some("snd_hda_intel".into());
        let p = plan(
            &h,
            &[GPU],
            PlanOptions {
                strict_group: false,
                for_domain: None,
            },
        );
        let w = p
            .warnings
            .iter()
            .find(|w| w.code == Code::GroupSplit)
            .unwrap();
        assert!(w.message.contains("will not start"), "{}", w.message);
    }

    #[test]
    fn a_card_split_across_groups_is_named_with_its_slot() {
        let mut h = host();
        h.devices.get_mut(&HDA).unwrap().iommu_group = Some(7);
        h.groups
            .get_mut(&1)
            .unwrap()
            .retain(|m| m != &GroupMember::Pci(HDA));
        h.groups.insert(7, vec![GroupMember::Pci(HDA)]);
        let p = plan(&h, &[GPU], PlanOptions::default());
        let w = p
            .warnings
            .iter()
            .find(|w| w.code == Code::SplitCard)
            .unwrap();
        assert!(
            w.message.contains("the card 01:00 is split"),
            "{}",
            w.message
        );
        assert!(w.help.as_deref().unwrap_or("").contains("snippet 01:00"));
        // Naming the slot takes both: no warning.
        let p = plan(&h, &[GPU, HDA], PlanOptions::default());
        assert!(!p.warnings.iter().any(|w| w.code == Code::SplitCard));
    }

    #[test]
    fn removal_warns_only_for_members_of_the_same_group() {
        let h = host();
        let w = removal_warnings(Some(&h), &[GPU], &[HDA]);
        assert_eq!(w.len(), 1);
        assert!(w[0].message.contains("same IOMMU group 1"));
        let mut h2 = host();
        h2.devices.get_mut(&HDA).unwrap().iommu_group = Some(7);
        assert!(removal_warnings(Some(&h2), &[GPU], &[HDA]).is_empty());
        // Without a host: the same device, with the caveat.
        let w = removal_warnings(None, &[GPU], &[HDA]);
        assert!(w[0].message.contains("if they share an IOMMU group"));
    }

    #[test]
    fn force_adds_what_was_asked_for_and_the_plan_held_back() {
        let p = Plan {
            requested: vec![PciAddress::new(0, 0, 1, 0), PciAddress::new(0, 1, 0, 0)],
            strict_group: true,
            travels: vec![PciAddress::new(0, 1, 0, 0), PciAddress::new(0, 1, 0, 1)],
            groups: Vec::new(),
            blockers: Vec::new(),
            unverified: Vec::new(),
            warnings: Vec::new(),
            verdict: Verdict::Ok,
        };
        assert_eq!(p.hostdev_set(false), p.travels);
        assert_eq!(
            p.hostdev_set(true),
            vec![
                PciAddress::new(0, 0, 1, 0),
                PciAddress::new(0, 1, 0, 0),
                PciAddress::new(0, 1, 0, 1)
            ]
        );
    }
}
