//! Applying a persist plan: every file the plan touches must be ours
//! (absent, or exactly what the manifest says we wrote); the files are
//! written atomically ([`crate::fsutil::write_atomic`]) and the manifest
//! last; on any failure every file already changed is put back.

use super::{read_manifest, under, Manifest, PersistError, PersistPlan, MANIFEST};
use crate::fsutil;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

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
