//! The executor: a plan's steps in order, all-or-nothing.
//!
//! WHY one executor: rollback is the part that must never differ between
//! backends or commands. On the first failed step, every function this run
//! detached and has not given back yet is reattached, newest first, as
//! libvirt's own `virHostdevPreparePCIDevices` undoes a partial detach
//! (docs/libvirt.md §3); what cannot be undone is reported, never hidden.

use super::{ActionPlan, Backend, BackendError, Op, Step};
use crate::address::PciAddress;
use serde::Serialize;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::fixture::{host, Fake, GPU, HDA};
    use crate::actions::{detach_plan, try_plan, ActionOptions};

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
    fn vfio_node_is_checked_under_root() {
        let t = tempfile::tempdir().unwrap();
        let e = vfio_node_problem(t.path()).unwrap();
        assert!(e.help.unwrap().contains("modprobe vfio"));
        std::fs::create_dir_all(t.path().join("dev/vfio")).unwrap();
        std::fs::write(t.path().join("dev/vfio/vfio"), "").unwrap();
        assert!(vfio_node_problem(t.path()).is_none());
    }
}
