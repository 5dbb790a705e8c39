//! The manifest (`/var/lib/virt-pci/persist.json`): the functions bound
//! at boot and the exact content of every file written for them.
//!
//! WHY exact content: `reattach --persist` removes a file only when it is
//! still what we wrote, and a later `detach --persist` rewrites only files
//! whose content changes; `doctor` reads it to say whether each binding
//! took effect this boot.

use super::{under, PersistError, MANIFEST, MODPROBE_CONF, MODULES_LOAD, UDEV_RULES};
use crate::address::PciAddress;
use crate::host::Host;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::path::Path;

/// One function bound to vfio-pci at boot.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) address: PciAddress,
    /// The host driver's kernel module (for the softdep), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) module: Option<String>,
}

/// A file virt-pci wrote, with its exact content (so a removal can prove
/// the file is still ours).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Written {
    pub(crate) path: String,
    pub(crate) content: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Manifest {
    pub(crate) version: u32,
    pub(crate) functions: Vec<Entry>,
    pub(crate) files: Vec<Written>,
}

/// Read the manifest under `root`; `Ok(None)` when there is none.
pub(crate) fn read_manifest(root: &Path) -> Result<Option<Manifest>, PersistError> {
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

/// Whether each persisted function came up on vfio-pci this boot.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub(crate) struct BindingState {
    pub(crate) address: PciAddress,
    /// The driver now (`None`: unbound or not present).
    pub(crate) driver: Option<String>,
    pub(crate) present: bool,
    pub(crate) in_effect: bool,
}

/// The persisted functions and their state on `host`.
pub(crate) fn binding_states(m: &Manifest, host: &Host) -> Vec<BindingState> {
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
