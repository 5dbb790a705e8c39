//! Acting on devices: detach, reattach, reset, prepare, release, check.
//!
//! WHY a plan of steps: every action is first built as an [`ActionPlan`] —
//! plain data computed from the host model and [`crate::plan`] — so
//! `--dry-run` and `--json` print exactly what will run, tests check the
//! order without touching hardware, and the executor ([`execute`]) is the one
//! place where all-or-nothing lives. A [`Backend`] performs single steps:
//! libvirt's node-device API ([`LibvirtBackend`], feature `libvirt`) or sysfs
//! writes ([`sysfs::SysfsBackend`]).
//!
//! Whole IOMMU groups by default: VFIO opens a group only when every
//! endpoint of it is off host drivers, and libvirt's own detach acts on one
//! function (docs/libvirt.md §5.3), so we expand to the plan's
//! `travels`. Bridges are never touched.
//!
//! Safety rules, before anything runs:
//! - plan blockers (host-critical devices and groups, bridges, the host
//!   bridge, no IOMMU) are refusals that `--force` may override;
//! - a device used by a running domain is refused always (unbinding a
//!   device a guest holds hangs or crashes the guest);
//! - detaching needs `/dev/vfio/vfio` ([`vfio_node_problem`]).

pub mod check;
pub mod sysfs;

use crate::address::PciAddress;
use crate::host::Host;
use crate::plan::{self, Finding, Plan, PlanOptions};
use serde::Serialize;
use std::fmt;

/// One thing a backend does to one function.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Away from the host driver, onto the stub (`vfio` → vfio-pci).
    Detach { driver: String },
    /// Back to the host driver.
    Reattach,
    /// Function-level (or whatever the kernel picks) reset.
    Reset,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Detach { driver } => write!(f, "detach (to {driver})"),
            Op::Reattach => f.write_str("reattach"),
            Op::Reset => f.write_str("reset"),
        }
    }
}

/// A step of a plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    #[serde(flatten)]
    pub op: Op,
    pub address: PciAddress,
    /// libvirt's node-device name.
    pub node: String,
    /// Why this step is there ("requested", "shares IOMMU group 1").
    pub why: String,
    /// The exact calls or writes the backend will make.
    pub calls: Vec<String>,
}

/// A function of the group that the plan leaves alone, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Skip {
    pub address: PciAddress,
    pub reason: String,
}

/// Why an action does not run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Refusal {
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// `--force` overrides it.
    pub forceable: bool,
}

impl Refusal {
    fn from_finding(f: &Finding) -> Refusal {
        Refusal {
            code: f.code.to_string(),
            address: f.address.clone(),
            message: f.message.clone(),
            help: f.help.clone(),
            forceable: true,
        }
    }
}

/// What to do, on what, in what order — printable before anything runs.
#[derive(Clone, Debug, Serialize)]
pub struct ActionPlan {
    /// `detach`, `reattach`, `reset`, `prepare`, `release`, `check --try`.
    pub action: String,
    pub backend: String,
    pub requested: Vec<PciAddress>,
    pub steps: Vec<Step>,
    pub skipped: Vec<Skip>,
    pub refusals: Vec<Refusal>,
    pub warnings: Vec<Finding>,
    /// The domain `prepare` and `release` act for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// `--force` was given: forceable refusals do not stop the plan.
    pub forced: bool,
    /// The passthrough plan the steps come from.
    pub plan: Plan,
}

impl ActionPlan {
    /// Refusals that stop the plan under the given `--force`.
    pub fn blocking(&self) -> Vec<&Refusal> {
        self.refusals
            .iter()
            .filter(|r| !(self.forced && r.forceable))
            .collect()
    }

    pub fn is_refused(&self) -> bool {
        !self.blocking().is_empty()
    }
}

/// Options shared by the device actions.
#[derive(Clone, Debug)]
pub struct ActionOptions {
    pub strict_group: bool,
    pub force: bool,
    /// libvirt's driver name for detach: `vfio` (the only one qemu takes).
    pub driver: String,
}

impl Default for ActionOptions {
    fn default() -> Self {
        ActionOptions {
            strict_group: true,
            force: false,
            driver: "vfio".into(),
        }
    }
}

/// A step failed in a backend.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BackendError {
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl BackendError {
    pub fn new(message: impl Into<String>) -> BackendError {
        BackendError {
            message: message.into(),
            help: None,
        }
    }
    pub fn help(mut self, h: impl Into<String>) -> BackendError {
        self.help = Some(h.into());
        self
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Performs single steps. Implementations: [`LibvirtBackend`],
/// [`sysfs::SysfsBackend`]; tests inject failing ones.
pub trait Backend {
    fn name(&self) -> String;
    /// The exact calls or writes `op` on `a` will make (for `--dry-run`);
    /// `driver` is the bound driver as the host model has it.
    fn describe(&self, op: &Op, a: &PciAddress, driver: Option<&str>) -> Vec<String>;
    fn detach(&mut self, a: &PciAddress, driver: &str) -> Result<(), BackendError>;
    fn reattach(&mut self, a: &PciAddress) -> Result<(), BackendError>;
    fn reset(&mut self, a: &PciAddress) -> Result<(), BackendError>;
    /// When this backend's reset may succeed without resetting anything,
    /// what to tell the user, and what to do about it.
    fn reset_caveat(&self) -> Option<(String, String)> {
        None
    }
}

fn note_reset_caveat(ap: &mut ActionPlan, backend: &dyn Backend) {
    if ap.steps.iter().any(|s| s.op == Op::Reset) {
        if let Some((c, help)) = backend.reset_caveat() {
            ap.warnings.push(Finding {
                code: "reset-may-skip",
                address: None,
                message: c,
                help: Some(help),
            });
        }
    }
}

fn new_plan(action: &str, backend: &dyn Backend, p: Plan, force: bool) -> ActionPlan {
    ActionPlan {
        action: action.into(),
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
            .chain(
                p.unverified
                    .iter()
                    .filter(|_| action != "reattach" && action != "release"),
            )
            .filter(|f| f.code != "in-use")
            .map(Refusal::from_finding)
            .collect(),
        // "bound to a host driver; it will be unbound" is about detaching;
        // a reset or a reattach unbinds nothing from a host driver.
        warnings: p
            .warnings
            .iter()
            .filter(|w| action == "detach" || w.code != "host-driver")
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
                    code: "in-use".into(),
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
    action: &str,
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
    let (mut ap, travels) = group_action("detach", host, requested, opts, backend);
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
    let (mut ap, travels) = group_action("reattach", host, requested, opts, backend);
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
    let (mut ap, travels) = group_action("reset", host, requested, opts, backend);
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
    ap.action = "prepare".into();
    ap.domain = Some(domain.to_string());
    // The domain itself running is one refusal in its own words, not a
    // per-device "the running domain `D` uses it" as if it were another
    // guest.
    let own_running = host.domains.iter().any(|u| u.domain == domain && u.running);
    if own_running {
        ap.refusals.retain(|r| {
            !(r.code == "in-use"
                && r.message
                    .ends_with(&format!("the running domain `{domain}` uses it")))
        });
        ap.refusals.push(Refusal {
            code: "domain-running".into(),
            address: None,
            message: format!("refusing to prepare `{domain}`: it is already running, and its devices are in use by it"),
            help: Some(format!("prepare runs before a start; to redo it, shut `{domain}` down first (`virsh shutdown {domain}`)")),
            forceable: false,
        });
    }
    if let Some((first, msg)) = absent_hostdevs(host, domain, hostdevs) {
        ap.refusals.push(Refusal {
            code: "not-present".into(),
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
            code: "nothing-to-prepare",
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
    let mut ap = new_plan("release", backend, p, opts.force);
    ap.domain = Some(domain.to_string());
    if let Some((first, msg)) = absent_hostdevs(host, domain, hostdevs) {
        ap.warnings.push(Finding {
            code: "not-present",
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
            code: "state-unknown",
            address: None,
            message: format!("cannot tell whether `{domain}` runs (no libvirt connection): make sure it is shut off — taking a device from a running guest hangs in the unbind"),
            help: Some("give -c URI so virt-pci can check".into()),
        });
    }
    if running == Some(true) {
        ap.refusals.push(Refusal {
            code: "domain-running".into(),
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
                        code: "returned-unreset",
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
    ap.action = "check --try".into();
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

/// What happened when a plan ran.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Outcome {
    /// Steps that succeeded, in order.
    pub done: Vec<Step>,
    /// The step that failed, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<Failure>,
    /// Functions reattached to undo a partial detach.
    pub rolled_back: Vec<PciAddress>,
    /// Rollback steps that failed too (the host needs a human).
    pub rollback_failures: Vec<RollbackFailure>,
}

/// The step that failed and the backend's reason.
#[derive(Clone, Debug, Serialize)]
pub struct Failure {
    pub step: Step,
    pub error: BackendError,
}

/// A function the rollback could not reattach.
#[derive(Clone, Debug, Serialize)]
pub struct RollbackFailure {
    pub address: PciAddress,
    pub error: BackendError,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.failed.is_none()
    }
}

/// Run a plan's steps in order. On the first failure, stop; every function
/// this run detached and has not reattached yet is reattached, newest first
/// (all-or-nothing). The caller checks refusals first; this does not.
pub fn execute(ap: &ActionPlan, backend: &mut dyn Backend) -> Outcome {
    let mut out = Outcome::default();
    let mut held: Vec<PciAddress> = Vec::new();
    for s in &ap.steps {
        let r = match &s.op {
            Op::Detach { driver } => backend.detach(&s.address, driver),
            Op::Reattach => backend.reattach(&s.address),
            Op::Reset => backend.reset(&s.address),
        };
        match r {
            Ok(()) => {
                match s.op {
                    Op::Detach { .. } => held.push(s.address),
                    Op::Reattach => held.retain(|a| *a != s.address),
                    Op::Reset => {}
                }
                out.done.push(s.clone());
            }
            Err(e) => {
                out.failed = Some(Failure {
                    step: s.clone(),
                    error: e,
                });
                for a in held.iter().rev() {
                    match backend.reattach(a) {
                        Ok(()) => out.rolled_back.push(*a),
                        Err(e) => out.rollback_failures.push(RollbackFailure {
                            address: *a,
                            error: e,
                        }),
                    }
                }
                break;
            }
        }
    }
    out
}

/// Why VFIO cannot work on the host under `root`, when `/dev/vfio/vfio` is
/// missing: libvirt would otherwise say only "VFIO device assignment is
/// currently not supported on this system".
pub fn vfio_node_problem(root: &std::path::Path) -> Option<BackendError> {
    let node = root.join("dev/vfio/vfio");
    if node.exists() {
        return None;
    }
    Some(
        BackendError::new(format!(
            "{} does not exist: VFIO is not available, so no device can be detached to vfio-pci (libvirt says \"VFIO device assignment is currently not supported on this system\")",
            node.display()
        ))
        .help("load VFIO with `modprobe vfio vfio-pci`; without systemd's kmod-static-nodes.service create the node with `kmod static-nodes --format=tmpfiles --output=/run/static-nodes.conf && systemd-tmpfiles --create --boot /run/static-nodes.conf`; and boot with the IOMMU on (intel_iommu=on / amd_iommu=on)"),
    )
}

/// The libvirt node-device API as a backend.
///
/// Reset is the exception: libvirt 9.0's `virNodeDeviceReset` returns
/// success without resetting a function that has FLR ("KVM will perform FLR
/// when starting and stopping a guest") or that is bound to vfio-pci
/// ("bound to vfio-pci - skip reset"), as the e2e VM showed. On this machine
/// (a local connection) the reset therefore goes through the kernel's sysfs
/// `reset` file, which really resets; on a remote host libvirt is the only
/// way, and the plan says it may do nothing.
#[cfg(feature = "libvirt")]
pub struct LibvirtBackend<'a> {
    pub conn: &'a crate::libvirt::Conn,
    /// Set for a local connection: resets go through this host's sysfs.
    pub local_reset: Option<sysfs::SysfsBackend>,
}

#[cfg(feature = "libvirt")]
impl<'a> LibvirtBackend<'a> {
    /// A backend for `conn`; resets go through `/sys` when the connection
    /// is to this machine (never for `test:///`, which is not a host).
    pub fn new(conn: &'a crate::libvirt::Conn) -> LibvirtBackend<'a> {
        let local_reset = crate::host::nodedev::uri_is_local(conn.uri())
            .then(|| sysfs::SysfsBackend::new(std::path::Path::new("/")));
        LibvirtBackend { conn, local_reset }
    }
}

#[cfg(feature = "libvirt")]
impl From<crate::libvirt::LibvirtError> for BackendError {
    fn from(e: crate::libvirt::LibvirtError) -> Self {
        BackendError {
            message: e.to_string(),
            help: e.help,
        }
    }
}

#[cfg(feature = "libvirt")]
impl Backend for LibvirtBackend<'_> {
    fn name(&self) -> String {
        format!("libvirt ({})", self.conn.uri())
    }
    fn describe(&self, op: &Op, a: &PciAddress, _driver: Option<&str>) -> Vec<String> {
        let n = a.node_name();
        vec![match op {
            Op::Detach { driver } => format!("virNodeDeviceDetachFlags({n}, \"{driver}\", 0)"),
            Op::Reattach => format!("virNodeDeviceReAttach({n})"),
            Op::Reset => match &self.local_reset {
                Some(_) => format!(
                    "write 1 > /sys/bus/pci/devices/{a}/reset (libvirt's virNodeDeviceReset skips FLR-capable and vfio-bound functions)"
                ),
                None => format!("virNodeDeviceReset({n})"),
            },
        }]
    }
    fn detach(&mut self, a: &PciAddress, driver: &str) -> Result<(), BackendError> {
        Ok(self.conn.nodedev_detach(a, driver)?)
    }
    fn reattach(&mut self, a: &PciAddress) -> Result<(), BackendError> {
        Ok(self.conn.nodedev_reattach(a)?)
    }
    fn reset(&mut self, a: &PciAddress) -> Result<(), BackendError> {
        match &mut self.local_reset {
            Some(b) => b.reset(a),
            None => Ok(self.conn.nodedev_reset(a)?),
        }
    }
    fn reset_caveat(&self) -> Option<(String, String)> {
        if self.local_reset.is_some() {
            return None;
        }
        let uri = self.conn.uri();
        // libvirt's test driver has no node-device detach, reattach or
        // reset at all (src/test/test_driver.c: absent from its node-device
        // table; virsh says "this function is not supported by the
        // connection driver"): it is not a host, remote or otherwise.
        if uri.starts_with("test:") {
            return Some((
                format!("{uri} is libvirt's test driver, not a host: it cannot detach, reattach or reset devices (\"this function is not supported by the connection driver\")"),
                "use --dry-run to see the steps; act on a real host (qemu:///system) or with --backend sysfs and --root".into(),
            ));
        }
        Some((
            format!("{uri} is another machine: the reset goes through libvirt, whose reset does nothing for a function bound to vfio-pci or one with FLR (libvirt resets those when a guest starts and stops), and succeeds anyway"),
            "run virt-pci on that host itself: a local reset writes the kernel's `reset` file".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{Device, GroupMember, IommuState};

    /// A hand-written fake backend: no real part can fail on demand, and the
    /// point is the executor's ordering and rollback, not any device.
    #[derive(Default)]
    struct Fake {
        fail_on: Option<(String, PciAddress)>,
        log: Vec<String>,
    }

    impl Backend for Fake {
        fn name(&self) -> String {
            "fake".into()
        }
        fn describe(&self, op: &Op, a: &PciAddress, _: Option<&str>) -> Vec<String> {
            vec![format!("{op} {a}")]
        }
        fn detach(&mut self, a: &PciAddress, _d: &str) -> Result<(), BackendError> {
            self.call("detach", a)
        }
        fn reattach(&mut self, a: &PciAddress) -> Result<(), BackendError> {
            self.call("reattach", a)
        }
        fn reset(&mut self, a: &PciAddress) -> Result<(), BackendError> {
            self.call("reset", a)
        }
    }

    impl Fake {
        fn call(&mut self, what: &str, a: &PciAddress) -> Result<(), BackendError> {
            self.log.push(format!("{what} {a}"));
            if self.fail_on.as_ref() == Some(&(what.to_string(), *a)) {
                Err(BackendError::new(format!("{what} {a} failed: device busy")))
            } else {
                Ok(())
            }
        }
    }

    fn host() -> Host {
        let mut h = Host {
            source: "test".into(),
            iommu: IommuState::Enabled,
            ..Host::default()
        };
        let mut add = |a: PciAddress, class: u32, g: u32, drv: Option<&str>, reset: bool| {
            let mut d = Device::new(a, 0x10de, 0x1000 + u16::from(a.function), class);
            d.iommu_group = Some(g);
            d.driver = drv.map(str::to_string);
            d.reset_methods = Some(if reset { vec!["flr".into()] } else { vec![] });
            d.reset = Some(reset);
            h.devices.insert(a, d);
            h.groups.entry(g).or_default().push(GroupMember::Pci(a));
        };
        add(
            PciAddress::new(0, 0, 1, 0),
            0x060400,
            1,
            Some("pcieport"),
            true,
        );
        add(
            PciAddress::new(0, 1, 0, 0),
            0x030000,
            1,
            Some("nouveau"),
            true,
        );
        add(
            PciAddress::new(0, 1, 0, 1),
            0x040300,
            1,
            Some("snd_hda_intel"),
            false,
        );
        add(
            PciAddress::new(0, 1, 0, 2),
            0x0c0330,
            1,
            Some("vfio-pci"),
            true,
        );
        add(PciAddress::new(0, 0, 0x1f, 0), 0x060100, 2, None, false);
        add(
            PciAddress::new(0, 0, 0x1f, 3),
            0x040300,
            2,
            Some("snd_hda_intel"),
            true,
        );
        h.mark_intrinsic_critical();
        h.facts = crate::host::HostFacts::measured();
        h
    }

    const GPU: PciAddress = PciAddress::new(0, 1, 0, 0);
    const HDA: PciAddress = PciAddress::new(0, 1, 0, 1);
    const USB: PciAddress = PciAddress::new(0, 1, 0, 2);

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
    fn failed_detach_reattaches_what_was_detached_newest_first() {
        let h = host();
        let mut f = Fake {
            fail_on: Some(("detach".into(), HDA)),
            ..Fake::default()
        };
        let ap = detach_plan(&h, &[GPU], &ActionOptions::default(), &f);
        let out = execute(&ap, &mut f);
        assert!(!out.ok());
        let failure = out.failed.clone().unwrap();
        let (step, err) = (failure.step, failure.error);
        assert_eq!(step.address, HDA);
        assert!(err.message.contains("device busy"));
        assert_eq!(out.rolled_back, vec![GPU]);
        assert_eq!(
            f.log,
            vec![
                "detach 0000:01:00.0",
                "detach 0000:01:00.1",
                "reattach 0000:01:00.0"
            ]
        );
    }

    #[test]
    fn rollback_failure_is_reported() {
        // Fails the first detach's undo too: the second detach fails, then
        // the reattach of the first.
        struct Twice(Vec<String>);
        impl Backend for Twice {
            fn name(&self) -> String {
                "twice".into()
            }
            fn describe(&self, _: &Op, _: &PciAddress, _: Option<&str>) -> Vec<String> {
                vec![]
            }
            fn detach(&mut self, a: &PciAddress, _: &str) -> Result<(), BackendError> {
                self.0.push(format!("detach {a}"));
                if *a == HDA {
                    Err(BackendError::new("no"))
                } else {
                    Ok(())
                }
            }
            fn reattach(&mut self, _: &PciAddress) -> Result<(), BackendError> {
                Err(BackendError::new("stuck"))
            }
            fn reset(&mut self, _: &PciAddress) -> Result<(), BackendError> {
                Ok(())
            }
        }
        let h = host();
        let mut b = Twice(vec![]);
        let ap = detach_plan(&h, &[GPU], &ActionOptions::default(), &b);
        let out = execute(&ap, &mut b);
        assert_eq!(out.rollback_failures.len(), 1);
        assert_eq!(out.rollback_failures[0].address, GPU);
        assert!(out.rolled_back.is_empty());
    }

    #[test]
    fn try_returns_the_group_to_where_it_was() {
        let h = host();
        let mut f = Fake::default();
        let ap = try_plan(&h, &[GPU], &f);
        let out = execute(&ap, &mut f);
        assert!(out.ok());
        assert_eq!(
            f.log,
            vec![
                "detach 0000:01:00.0",
                "detach 0000:01:00.1",
                "reset 0000:01:00.0",
                "reset 0000:01:00.2",
                "reattach 0000:01:00.1",
                "reattach 0000:01:00.0"
            ]
        );
        // a reset failure in the middle still puts both back
        let mut f = Fake {
            fail_on: Some(("reset".into(), GPU)),
            ..Fake::default()
        };
        let out = execute(&ap, &mut f);
        assert_eq!(out.rolled_back, vec![HDA, GPU]);
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
        assert_eq!(ap.blocking()[0].code, "host-critical");
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
        assert_eq!(ap.blocking()[0].code, "domain-running");
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
        assert_eq!(ap.action, "prepare");
    }

    #[test]
    fn vfio_node_is_checked_under_root() {
        let t = tempfile::tempdir().unwrap();
        let e = vfio_node_problem(t.path()).unwrap();
        assert!(e.help.unwrap().contains("modprobe vfio"));
        std::fs::create_dir_all(t.path().join("dev/vfio")).unwrap();
        std::fs::write(t.path().join("dev/vfio/vfio"), "").unwrap();
        assert!(vfio_node_problem(t.path()).is_none());
    }
}
