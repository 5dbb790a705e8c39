//! Acting on devices: detach, reattach, reset, prepare, release, check.
//!
//! WHY a plan of steps: every action is first built as an [`ActionPlan`] —
//! plain data computed from the host model and [`crate::plan`] — so
//! `--dry-run` and `--json` print exactly what will run, tests check the
//! order without touching hardware, and the executor ([`execute`]) is the one
//! place where all-or-nothing lives. A [`Backend`] performs single steps:
//! libvirt's node-device API (`libvirt.rs`) or sysfs writes
//! ([`sysfs::SysfsBackend`]).
//!
//! The parts, along their seams:
//! - this file: the data (steps, refusals, the action plan) and the
//!   [`Backend`] trait;
//! - `plan.rs`: the action plans from a passthrough plan, and the safety
//!   rules below;
//! - `execute.rs`: the executor with its rollback, and what the host must
//!   offer before it runs;
//! - backends: `sysfs.rs` (file writes under a root), `libvirt.rs` (the
//!   node-device API), `setup.rs` (which of them acts, from the resolved
//!   [`crate::invocation::Invocation`], and the host it acts on);
//! - `check.rs`: the one description of a reset that `show` and `check`
//!   print.
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
mod execute;
#[cfg(test)]
mod fixture;
mod libvirt;
mod plan;
mod setup;
pub mod sysfs;

pub use execute::{execute, vfio_node_problem, Failure, Outcome, RollbackFailure};
pub use plan::{
    detach_plan, prepare_plan, reattach_plan, release_plan, reset_plan, try_plan,
    unmanaged_hostdevs,
};
pub use setup::{setup, Acting, Setup, SetupError};

use crate::address::PciAddress;
use crate::plan::{Code, Finding, Plan};
use serde::Serialize;
use std::fmt;

/// What an action plan is for, as the command line names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Detach,
    Reattach,
    Reset,
    Prepare,
    Release,
    /// `check --try`: detach, reset and give back.
    CheckTry,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Detach => "detach",
            Action::Reattach => "reattach",
            Action::Reset => "reset",
            Action::Prepare => "prepare",
            Action::Release => "release",
            Action::CheckTry => "check --try",
        }
    }

    /// Giving devices back cannot cost the host what it needs: unknown
    /// facts do not stop these.
    pub(crate) fn gives_back(self) -> bool {
        matches!(self, Action::Reattach | Action::Release)
    }
}

/// Why an action does not run, as a stable code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusalCode {
    /// A plan finding's code: a blocker or an unverified fact that stops
    /// acting (`host-critical`, `fact-unknown`, ...), a function a running
    /// domain holds (`in-use`, which `--force` never overrides), a domain's
    /// hostdev the host does not have (`not-present`).
    Finding(Code),
    /// The domain `prepare` or `release` acts for is running.
    DomainRunning,
    /// `--persist`: a driverctl override binds the function elsewhere.
    DriverctlConflict,
}

impl RefusalCode {
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalCode::Finding(c) => c.as_str(),
            RefusalCode::DomainRunning => "domain-running",
            RefusalCode::DriverctlConflict => "driverctl-conflict",
        }
    }
}

as_string!(Action, RefusalCode);

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
    pub code: RefusalCode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// `--force` overrides it.
    pub forceable: bool,
}

impl Refusal {
    /// Whether it still stops the action: `--force` lifts only forceable
    /// refusals. The one rule both `ActionPlan` and `--persist` plans apply.
    pub(crate) fn blocks(&self, forced: bool) -> bool {
        !(forced && self.forceable)
    }

    pub(crate) fn from_finding(f: &Finding) -> Refusal {
        Refusal {
            code: RefusalCode::Finding(f.code),
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
    pub action: Action,
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
            .filter(|r| r.blocks(self.forced))
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
    pub(crate) fn new(message: impl Into<String>) -> BackendError {
        BackendError {
            message: message.into(),
            help: None,
        }
    }
    pub(crate) fn help(mut self, h: impl Into<String>) -> BackendError {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialise_as_the_strings_the_json_always_carried() {
        let json = |v: &dyn erased::Ser| v.json();
        for (a, s) in [
            (Action::Detach, "detach"),
            (Action::Reattach, "reattach"),
            (Action::Reset, "reset"),
            (Action::Prepare, "prepare"),
            (Action::Release, "release"),
            (Action::CheckTry, "check --try"),
        ] {
            assert_eq!(json(&a), format!("\"{s}\""));
            assert_eq!(a.to_string(), s);
        }
        for (c, s) in [
            (RefusalCode::Finding(Code::HostCritical), "host-critical"),
            (RefusalCode::Finding(Code::InUse), "in-use"),
            (RefusalCode::DomainRunning, "domain-running"),
            (RefusalCode::DriverctlConflict, "driverctl-conflict"),
        ] {
            assert_eq!(json(&c), format!("\"{s}\""));
            assert_eq!(c.to_string(), s);
        }
    }

    mod erased {
        pub trait Ser {
            fn json(&self) -> String;
        }
        impl<T: serde::Serialize> Ser for T {
            fn json(&self) -> String {
                serde_json::to_string(self).unwrap()
            }
        }
    }
}
