//! Which kernel module drives a function, for the `softdep HOSTMODULE pre:
//! vfio-pci` line: the bound driver's `module` link, else the module the
//! kernel's `modules.alias` names for the function's modalias (what
//! modprobe loads for it), matched with fnmatch(3)'s `*` and `?`.

use super::under;
use crate::address::PciAddress;
use crate::host::Host;
use std::fs;
use std::path::Path;

/// The host driver's module of a function: the bound driver's `module`
/// link, else the kernel's modalias table (`modules.alias`, as modprobe
/// resolves a modalias) for a function that is unbound or on vfio-pci.
pub(super) fn host_module(root: &Path, host: &Host, a: &PciAddress) -> Option<String> {
    let d = host.device(a)?;
    if let Some(drv) = d.driver.as_deref().filter(|d| !d.starts_with("vfio")) {
        let link = under(root, &format!("/sys/bus/pci/drivers/{drv}/module"));
        if let Ok(t) = fs::read_link(&link) {
            return t.file_name().map(|n| n.to_string_lossy().into_owned());
        }
        // Built in: no module link; the driver name is all there is.
        return Some(drv.to_string());
    }
    let dir = d.sysfs_path.as_ref()?;
    let modalias = fs::read_to_string(under(root, &format!("/sys/{dir}/modalias"))).ok()?;
    let release = fs::read_to_string(under(root, "/proc/sys/kernel/osrelease")).ok()?;
    let aliases = fs::read_to_string(under(
        root,
        &format!("/lib/modules/{}/modules.alias", release.trim()),
    ))
    .ok()?;
    let m = modalias.trim();
    aliases.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        (w.next()? == "alias").then_some(())?;
        let pat = w.next()?;
        let module = w.next()?;
        (pat.starts_with("pci:") && !module.starts_with("vfio") && glob(pat, m))
            .then(|| module.to_string())
    })
}

/// fnmatch(3) with `*` and `?` only, as modules.alias patterns use.
fn glob(p: &str, s: &str) -> bool {
    let (p, s) = (p.as_bytes(), s.as_bytes());
    let (mut pi, mut si, mut star, mut mark) = (0, 0, None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_modules_alias_patterns() {
        let m = "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00";
        assert!(glob("pci:v00008086d0000100Esv*sd*bc*sc*i*", m));
        assert!(!glob("pci:v00008086d0000100Fsv*sd*bc*sc*i*", m));
        assert!(glob("pci:v*d*sv*sd*bc02sc00i*", m));
        assert!(!glob("pci:v*d*sv*sd*bc03sc00i*", m));
        assert!(glob("*", ""));
        assert!(!glob("a?", "a"));
    }
}
