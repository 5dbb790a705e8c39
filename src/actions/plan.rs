//! Action plans from a passthrough plan: which functions each action
//! touches, in what order, what it skips and what it refuses (the safety
//! rules in the module docs of [`crate::actions`]).

use super::{Action, ActionOptions, ActionPlan, Backend, Op, Refusal, RefusalCode, Skip, Step};
use crate::address::PciAddress;
use crate::host::Host;
use crate::plan::{self, Code, Finding, Plan, PlanOptions};

fn note_reset_caveat(ap: &mut ActionPlan, backend: &dyn Backend) {
    if ap.steps.iter().any(|s| s.op == Op::Reset) {
        if let Some((c, help)) = backend.reset_caveat() {
            ap.warnings.push(Finding {
                code: Code::ResetMaySkip,
                address: None,
                message: c,
                help: Some(help),
            });
        }
    }
}

fn new_plan(action: Action, backend: &dyn Backend, p: Plan, force: bool) -> ActionPlan {
    ActionPlan {
        action,
        backend: backend.name(),
        requested: p.requested.clone(),
        steps: Vec::new(),
        skipped: Vec::new(),
        // Blocked and unverified plans are refused alike (`--force` acts
        // anyway); use by a running domain is `refuse_running`'s, which
        // `--force` never overrides.
        // Giving devices back (reattach, release) cannot cost the host
        // what it needs, so unknown facts do not stop those.
        refusals: p
            .blockers
            .iter()
            .chain(p.unverified.iter().filter(|_| !action.gives_back()))
            .filter(|f| f.code != Code::InUse)
            .map(Refusal::from_finding)
            .collect(),
        // "bound to a host driver; it will be unbound" is about detaching;
        // a reset or a reattach unbinds nothing from a host driver.
        warnings: p
            .warnings
            .iter()
            .filter(|w| action == Action::Detach || w.code != Code::HostDriver)
            .cloned()
            .collect(),
        domain: None,
        forced: force,
        plan: p,
    }
}

fn why(p: &Plan, a: &PciAddress) -> String {
    let s = a.to_string();
    p.groups
        .iter()
        .flat_map(|g| g.members.iter())
        .find(|m| m.member == s)
        .map(|m| m.reason.clone())
        .unwrap_or_else(|| "requested".into())
}

fn push_step(ap: &mut ActionPlan, host: &Host, backend: &dyn Backend, op: Op, a: PciAddress) {
    // After a detach in the same plan the function is on vfio-pci.
    let detached_before = ap
        .steps
        .iter()
        .any(|s| s.address == a && matches!(s.op, Op::Detach { .. }));
    let driver = if detached_before {
        Some("vfio-pci".to_string())
    } else {
        host.device(&a).and_then(|d| d.driver.clone())
    };
    let calls = backend.describe(&op, &a, driver.as_deref());
    ap.steps.push(Step {
        op,
        address: a,
        node: a.node_name(),
        why: why(&ap.plan, &a),
        calls,
    });
}

/// Refuse every function a running domain uses.
fn refuse_running(ap: &mut ActionPlan, host: &Host, targets: &[PciAddress], allow: Option<&str>) {
    for a in targets {
        for u in host.used_by(a) {
            if u.running && Some(u.domain.as_str()) != allow {
                ap.refusals.push(Refusal {
                    code: RefusalCode::Finding(Code::InUse),
                    address: Some(a.to_string()),
                    message: format!(
                        "refusing to touch {a}: the running domain `{}` uses it",
                        u.domain
                    ),
                    help: Some(format!(
                        "shut `{}` down first (`virsh shutdown {}`), or detach the device from it live",
                        u.domain, u.domain
                    )),
                    forceable: false,
                });
            }
        }
    }
}

fn is_stub(d: Option<&str>) -> bool {
    matches!(d, Some(x) if x == "vfio-pci" || x.starts_with("vfio") || x == "pci-stub")
}

/// The plan for `requested` turned into an empty action plan (refusals and
/// warnings filled in, running domains' devices refused), and the functions
/// it covers.
fn group_action(
    action: Action,
    host: &Host,
    requested: &[PciAddress],
    opts: &ActionOptions,
    backend: &dyn Backend,
) -> (ActionPlan, Vec<PciAddress>) {
    let p = plan::plan(
        host,
        requested,
        PlanOptions {
            strict_group: opts.strict_group,
            for_domain: None,
        },
    );
    let travels = p.travels.clone();
    let mut ap = new_plan(action, backend, p, opts.force);
    refuse_running(&mut ap, host, &travels, None);
    (ap, travels)
}

/// Detach `requested` (and, by default, every endpoint of their groups).
/// Functions already on vfio-pci are skipped — and so are never reattached
/// by a rollback, as libvirt does (§3 step 3).
pub fn detach_plan(
    host: &Host,
    requested: &[PciAddress],
    opts: &ActionOptions,
    backend: &dyn Backend,
) -> ActionPlan {
    let (mut ap, travels) = group_action(Action::Detach, host, requested, opts, backend);
    for a in travels {
        let drv = host.device(&a).and_then(|d| d.driver.clone());
        if is_stub(drv.as_deref()) {
            ap.skipped.push(Skip {
                address: a,
                reason: format!("already bound to {}", drv.unwrap_or_default()),
            });
            continue;
        }
        push_step(
            &mut ap,
            host,
            backend,
            Op::Detach {
                driver: opts.driver.clone(),
            },
            a,
        );
    }
    ap
}

/// Give `requested` (and their groups' endpoints) back to the host drivers.
pub fn reattach_plan(
    host: &Host,
    requested: &[PciAddress],
    opts: &ActionOptions,
    backend: &dyn Backend,
) -> ActionPlan {
    let (mut ap, travels) = group_action(Action::Reattach, host, requested, opts, backend);
    for a in travels {
        let d = host.device(&a);
        let drv = d.and_then(|d| d.driver.clone());
        let overridden = d.and_then(|d| d.driver_override.clone()).is_some();
        if drv.is_some() && !is_stub(drv.as_deref()) && !overridden {
            ap.skipped.push(Skip {
                address: a,
                reason: format!("already on its host driver {}", drv.unwrap_or_default()),
            });
            continue;
        }
        push_step(&mut ap, host, backend, Op::Reattach, a);
    }
    ap
}

/// Reset `requested` (and their groups' endpoints).
pub fn reset_plan(
    host: &Host,
    requested: &[PciAddress],
    opts: &ActionOptions,
    backend: &dyn Backend,
) -> ActionPlan {
    let (mut ap, travels) = group_action(Action::Reset, host, requested, opts, backend);
    for a in travels {
        if host.device(&a).and_then(|d| d.can_reset()) == Some(false) {
            ap.skipped.push(Skip {
                address: a,
                reason: "has no reset method (no FLR, PM or bus reset)".into(),
            });
            continue;
        }
        push_step(&mut ap, host, backend, Op::Reset, a);
    }
    note_reset_caveat(&mut ap, backend);
    ap
}

/// The `managed='no'` PCI hostdevs of a domain document.
pub fn unmanaged_hostdevs(domain_xml: &str) -> Result<Vec<PciAddress>, crate::domain::XmlError> {
    let doc = crate::domain::parse(domain_xml)?;
    let mut out = Vec::new();
    for h in crate::domain::pci_hostdevs(&doc) {
        if !h.is_managed() {
            if let Some(a) = h.address {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
    }
    Ok(out)
}

/// One sentence for every hostdev of `domain` the host does not have (not
/// one per function, each with the same help), and the first of them.
fn absent_hostdevs(host: &Host, domain: &str, hostdevs: &[PciAddress]) -> Option<(String, String)> {
    let absent: Vec<String> = hostdevs
        .iter()
        .filter(|a| host.device(a).is_none())
        .map(|a| a.to_string())
        .collect();
    let first = absent.first()?.clone();
    let msg = format!(
        "domain `{domain}` uses {}, which {} not present on {}",
        absent.join(", "),
        if absent.len() == 1 { "is" } else { "are" },
        host.source
    );
    Some((first, msg))
}

/// `prepare DOMAIN`: detach the domain's `managed='no'` hostdevs and every
/// endpoint co-grouped with them, so the domain can start.
pub fn prepare_plan(
    host: &Host,
    domain: &str,
    hostdevs: &[PciAddress],
    opts: &ActionOptions,
    backend: &dyn Backend,
) -> ActionPlan {
    let present: Vec<PciAddress> = hostdevs
        .iter()
        .copied()
        .filter(|a| host.device(a).is_some())
        .collect();
    let mut ap = detach_plan(host, &present, opts, backend);
    ap.action = Action::Prepare;
    ap.domain = Some(domain.to_string());
    // The domain itself running is one refusal in its own words, not a
    // per-device "the running domain `D` uses it" as if it were another
    // guest.
    let own_running = host.domains.iter().any(|u| u.domain == domain && u.running);
    if own_running {
        ap.refusals.retain(|r| {
            !(r.code == RefusalCode::Finding(Code::InUse)
                && r.message
                    .ends_with(&format!("the running domain `{domain}` uses it")))
        });
        ap.refusals.push(Refusal {
            code: RefusalCode::DomainRunning,
            address: None,
            message: format!("refusing to prepare `{domain}`: it is already running, and its devices are in use by it"),
            help: Some(format!("prepare runs before a start; to redo it, shut `{domain}` down first (`virsh shutdown {domain}`)")),
            forceable: false,
        });
    }
    if let Some((first, msg)) = absent_hostdevs(host, domain, hostdevs) {
        ap.refusals.push(Refusal {
            code: RefusalCode::Finding(Code::NotPresent),
            address: Some(first),
            message: msg,
            help: Some(
                "fix the domain's <hostdev> source addresses (`virt-pci list` shows the devices)"
                    .into(),
            ),
            forceable: true,
        });
    }
    if hostdevs.is_empty() {
        ap.warnings.push(Finding {
            code: Code::NothingToPrepare,
            address: None,
            message: format!("domain `{domain}` has no managed='no' PCI hostdevs: libvirt detaches managed ones itself at start"),
            help: None,
        });
    }
    ap
}

/// `release DOMAIN`: after shutdown, reset the domain's `managed='no'`
/// hostdevs (and co-grouped endpoints), then reattach them to the host.
///
/// Security rule (qvm-pci's and the kernel's VFIO advice): a function that
/// cannot be reset may carry state a guest left behind (firmware, DMA
/// setup) into the host, so it stays on vfio-pci unless `return_unreset`.
pub fn release_plan(
    host: &Host,
    domain: &str,
    running: Option<bool>,
    hostdevs: &[PciAddress],
    opts: &ActionOptions,
    return_unreset: bool,
    backend: &dyn Backend,
) -> ActionPlan {
    let present: Vec<PciAddress> = hostdevs
        .iter()
        .copied()
        .filter(|a| host.device(a).is_some())
        .collect();
    let p = plan::plan(
        host,
        &present,
        PlanOptions {
            strict_group: opts.strict_group,
            for_domain: Some(domain.to_string()),
        },
    );
    let travels = p.travels.clone();
    let mut ap = new_plan(Action::Release, backend, p, opts.force);
    ap.domain = Some(domain.to_string());
    if let Some((first, msg)) = absent_hostdevs(host, domain, hostdevs) {
        ap.warnings.push(Finding {
            code: Code::NotPresent,
            address: Some(first),
            message: format!(
                "{msg}: nothing to release for {}",
                if msg.contains(", ") { "them" } else { "it" }
            ),
            help: None,
        });
    }
    if running.is_none() {
        ap.warnings.push(Finding {
            code: Code::StateUnknown,
            address: None,
            message: format!("cannot tell whether `{domain}` runs (no libvirt connection): make sure it is shut off — taking a device from a running guest hangs in the unbind"),
            help: Some("give -c URI so virt-pci can check".into()),
        });
    }
    if running == Some(true) {
        ap.refusals.push(Refusal {
            code: RefusalCode::DomainRunning,
            address: None,
            message: format!("refusing to release the devices of `{domain}`: it is running"),
            help: Some(format!("shut it down first: `virsh shutdown {domain}`")),
            forceable: false,
        });
    }
    refuse_running(&mut ap, host, &travels, Some(domain));
    let mut back = Vec::new();
    for a in &travels {
        match host.device(a).and_then(|d| d.can_reset()) {
            Some(false) => {
                if return_unreset {
                    ap.warnings.push(Finding {
                        code: Code::ReturnedUnreset,
                        address: Some(a.to_string()),
                        message: format!("{a} has no reset method and goes back to the host as the guest left it (--return-unreset)"),
                        help: None,
                    });
                    back.push(*a);
                } else {
                    ap.skipped.push(Skip {
                        address: *a,
                        reason: "has no reset method: stays on vfio-pci so guest state cannot reach the host (--return-unreset returns it anyway)".into(),
                    });
                }
            }
            _ => {
                push_step(&mut ap, host, backend, Op::Reset, *a);
                back.push(*a);
            }
        }
    }
    for a in back {
        push_step(&mut ap, host, backend, Op::Reattach, a);
    }
    note_reset_caveat(&mut ap, backend);
    ap
}

/// `check --try`: detach the whole group, reset every endpoint, and put
/// back exactly what was detached — the group ends where it started.
pub fn try_plan(host: &Host, requested: &[PciAddress], backend: &dyn Backend) -> ActionPlan {
    let opts = ActionOptions::default();
    let mut ap = detach_plan(host, requested, &opts, backend);
    ap.action = Action::CheckTry;
    let detached: Vec<PciAddress> = ap.steps.iter().map(|s| s.address).collect();
    let travels = ap.plan.travels.clone();
    for a in &travels {
        if host.device(a).and_then(|d| d.can_reset()) != Some(false) {
            push_step(&mut ap, host, backend, Op::Reset, *a);
        }
    }
    for a in detached.into_iter().rev() {
        push_step(&mut ap, host, backend, Op::Reattach, a);
    }
    note_reset_caveat(&mut ap, backend);
    ap
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::fixture::{host, Fake, GPU, HDA, USB};

    #[test]
    fn detach_takes_the_group_skips_bridges_and_vfio_members() {
        let h = host();
        let f = Fake::default();
        let ap = detach_plan(&h, &[GPU], &ActionOptions::default(), &f);
        let order: Vec<PciAddress> = ap.steps.iter().map(|s| s.address).collect();
        assert_eq!(order, vec![GPU, HDA]);
        assert_eq!(ap.skipped[0].address, USB);
        assert!(!ap.is_refused());
        assert_eq!(ap.steps[0].node, "pci_0000_01_00_0");
    }

    #[test]
    fn running_domains_are_refused_even_with_force() {
        let mut h = host();
        h.domains.push(crate::host::DomainUse {
            domain: "win10".into(),
            address: HDA,
            running: true,
            managed: true,
        });
        let opts = ActionOptions {
            force: true,
            ..ActionOptions::default()
        };
        let ap = detach_plan(&h, &[GPU], &opts, &Fake::default());
        assert!(ap.is_refused());
        let r = &ap.blocking()[0];
        assert!(r.message.contains("refusing") && r.message.contains("win10"));
    }

    #[test]
    fn host_critical_is_refused_unless_forced() {
        let h = host();
        let hda = PciAddress::new(0, 0, 0x1f, 3);
        let ap = detach_plan(&h, &[hda], &ActionOptions::default(), &Fake::default());
        assert!(ap.is_refused());
        assert_eq!(
            ap.blocking()[0].code,
            RefusalCode::Finding(Code::HostCritical)
        );
        let ap = detach_plan(
            &h,
            &[hda],
            &ActionOptions {
                force: true,
                ..ActionOptions::default()
            },
            &Fake::default(),
        );
        assert!(!ap.is_refused());
    }

    #[test]
    fn release_keeps_unresettable_functions_on_vfio() {
        let h = host();
        let f = Fake::default();
        let ap = release_plan(
            &h,
            "vm",
            Some(false),
            &[GPU],
            &ActionOptions::default(),
            false,
            &f,
        );
        let ops: Vec<String> = ap
            .steps
            .iter()
            .map(|s| format!("{} {}", s.op, s.address))
            .collect();
        assert_eq!(
            ops,
            vec![
                "reset 0000:01:00.0",
                "reset 0000:01:00.2",
                "reattach 0000:01:00.0",
                "reattach 0000:01:00.2"
            ]
        );
        assert_eq!(ap.skipped[0].address, HDA);
        let ap = release_plan(
            &h,
            "vm",
            Some(false),
            &[GPU],
            &ActionOptions::default(),
            true,
            &f,
        );
        assert!(ap
            .steps
            .iter()
            .any(|s| s.address == HDA && s.op == Op::Reattach));
        let ap = release_plan(
            &h,
            "vm",
            Some(true),
            &[GPU],
            &ActionOptions::default(),
            false,
            &f,
        );
        assert_eq!(ap.blocking()[0].code, RefusalCode::DomainRunning);
    }

    #[test]
    fn prepare_reads_unmanaged_hostdevs_only() {
        let x = "<domain><name>vm</name><devices>\
<hostdev mode='subsystem' type='pci' managed='no'><source><address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></source></hostdev>\
<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x00' slot='0x1f' function='0x3'/></source></hostdev>\
</devices></domain>";
        let hd = unmanaged_hostdevs(x).unwrap();
        assert_eq!(hd, vec![GPU]);
        let ap = prepare_plan(
            &host(),
            "vm",
            &hd,
            &ActionOptions::default(),
            &Fake::default(),
        );
        assert_eq!(ap.steps.len(), 2);
        assert_eq!(ap.action, Action::Prepare);
    }
}
