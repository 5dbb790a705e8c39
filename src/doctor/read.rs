//! How a doctor check reads the host and builds its answer: every check
//! reads files under a root through [`Reader`] (so the evidence it shows is
//! the path and content it really read, `(missing)` and `(unreadable: ...)`
//! included), and returns a [`Check`] built by [`check`].
//!
//! WHY one place: the evidence strings (`(missing)`, `(exists)`, `(empty
//! directory)`) are part of `doctor --json` and of what users compare
//! between hosts; one reader keeps them the same in every check.

use super::{Check, Evidence, Facts, Status};
use crate::address::PciAddress;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// What reading one path gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Read {
    Missing,
    Unreadable(String),
    Text(String),
    Dir(Vec<String>),
}

pub(super) struct Reader<'a> {
    pub(super) root: &'a Path,
}

impl Reader<'_> {
    pub(super) fn full(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }
    pub(super) fn read(&self, abs: &str) -> Read {
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
    pub(super) fn ev(&self, abs: &str, r: &Read) -> Evidence {
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
    pub(super) fn exists(&self, abs: &str) -> bool {
        fs::symlink_metadata(self.full(abs)).is_ok()
    }
    /// Evidence of a path whose existence is the fact (binary or
    /// unreadable content): `(exists)` or `(missing)`.
    pub(super) fn presence(&self, abs: &str, present: bool) -> Evidence {
        Evidence {
            path: self.full(abs).display().to_string(),
            content: if present { "(exists)" } else { "(missing)" }.into(),
        }
    }
}

pub(super) fn check(
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

pub(super) fn unknown_in_snapshot(
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
pub(super) fn cmdline(r: &Reader) -> (Read, Option<Vec<String>>) {
    let c = r.read("/proc/cmdline");
    let words = match &c {
        Read::Text(t) => Some(t.split_whitespace().map(str::to_string).collect()),
        _ => None,
    };
    (c, words)
}

/// A check that judges the kernel command line alone: unknown in a
/// snapshot (it records none) and where `/proc/cmdline` cannot be read;
/// otherwise `judge` gives the status, message and fix from its words, and
/// the file is the evidence.
pub(super) fn cmdline_check(
    facts: Facts,
    id: &'static str,
    title: &'static str,
    rule: &'static str,
    judge: impl FnOnce(&[String]) -> (Status, String, Option<String>),
) -> Check {
    let Facts::Root(root) = facts else {
        return unknown_in_snapshot(id, title, "the kernel command line", rule);
    };
    let r = Reader { root };
    let (cl, words) = cmdline(&r);
    let ev = vec![r.ev("/proc/cmdline", &cl)];
    let Some(w) = words else {
        let msg = "cannot read the kernel command line";
        return check(id, title, Status::Unknown, msg, ev, None, rule);
    };
    let (status, message, fix) = judge(&w);
    check(id, title, status, message, ev, fix, rule)
}

pub(super) fn param<'a>(words: &'a [String], name: &str) -> Option<&'a str> {
    words
        .iter()
        .rev()
        .find_map(|w| w.strip_prefix(name).and_then(|rest| rest.strip_prefix('=')))
}

/// How to add a kernel parameter, for fixes.
pub(super) fn add_param(p: &str) -> String {
    format!("add `{p}` to the kernel command line (Debian/Ubuntu: GRUB_CMDLINE_LINUX_DEFAULT in /etc/default/grub, then `update-grub`; systemd-boot: /etc/kernel/cmdline) and reboot")
}

/// The running kernel's release (`uname -r`), from the root.
pub(super) fn kernel_release(r: &Reader) -> Option<String> {
    match r.read("/proc/sys/kernel/osrelease") {
        Read::Text(t) if !t.is_empty() => Some(t),
        _ => None,
    }
}

/// A per-device check: `c` about the function `a`.
pub(super) fn dev_check(a: PciAddress, mut c: Check) -> Check {
    c.device = Some(a);
    c
}

/// A per-device check that cannot be answered from this source.
pub(super) fn dev_unknown(
    a: &PciAddress,
    id: &'static str,
    title: &'static str,
    message: &str,
    rule: &'static str,
) -> Check {
    dev_check(
        *a,
        check(id, title, Status::Unknown, message, Vec::new(), None, rule),
    )
}
