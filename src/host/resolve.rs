//! A user's device spec (`01:00.0`, `01:00`, `10de:1e84`, a node-device
//! name) resolved against a host, with errors that list candidates and a
//! command line to try on the same host ([`Host::suggest`]).
//!
//! Kept apart from the model: this is the one place that turns what a user
//! typed into addresses, so every command resolves the same way.

use super::{Device, Host};
use crate::address::{DeviceSpec, PciAddress};
use std::fmt;

/// Resolving a user's device spec against a host failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolveError {
    pub spec: String,
    pub message: String,
    /// Candidates or a hint, one per line.
    pub help: Vec<String>,
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ResolveError {}

impl Host {
    /// Turn a user's spec into functions present on this host.
    pub fn resolve(&self, spec: &DeviceSpec) -> Result<Vec<PciAddress>, ResolveError> {
        match spec {
            DeviceSpec::Function(a) => {
                if self.devices.contains_key(a) {
                    Ok(vec![*a])
                } else {
                    Err(self.not_found(&a.to_string(), |d| {
                        d.address.bus == a.bus && d.address.domain == a.domain
                    }))
                }
            }
            DeviceSpec::Slot(s) => {
                let v: Vec<PciAddress> = self
                    .devices
                    .keys()
                    .filter(|k| k.slot_of() == *s)
                    .copied()
                    .collect();
                if v.is_empty() {
                    Err(self.not_found(&s.to_string(), |d| {
                        d.address.bus == s.bus && d.address.domain == s.domain
                    }))
                } else {
                    Ok(v)
                }
            }
            DeviceSpec::Ids { vendor, device } => {
                let v: Vec<&Device> = self
                    .devices
                    .values()
                    .filter(|d| d.vendor() == *vendor && d.device() == *device)
                    .collect();
                match v.len() {
                    1 => Ok(vec![v[0].address]),
                    0 => Err(ResolveError {
                        spec: spec.to_string(),
                        message: format!(
                            "no PCI device with vendor:device {spec} on {}",
                            self.source
                        ),
                        help: vec![format!(
                            "`{}` shows the devices of this host",
                            self.suggest("list")
                        )],
                    }),
                    _ => Err(ResolveError {
                        spec: spec.to_string(),
                        message: format!(
                            "{} PCI devices match vendor:device {spec}; name one by address",
                            v.len()
                        ),
                        help: v
                            .iter()
                            .map(|d| format!("candidate: {}", d.address))
                            .collect(),
                    }),
                }
            }
        }
    }

    pub(super) fn not_found(&self, what: &str, near: impl Fn(&Device) -> bool) -> ResolveError {
        let mut help: Vec<String> = self
            .devices
            .values()
            .filter(|d| near(d))
            .take(8)
            .map(|d| format!("on that bus: {}", d.address))
            .collect();
        if help.is_empty() {
            help.push(format!(
                "`{}` shows the devices of this host",
                self.suggest("list")
            ));
        }
        ResolveError {
            spec: what.to_string(),
            message: format!("no PCI device {what} on {}", self.source),
            help,
        }
    }

    /// Resolve several specs, keeping order and dropping repeats.
    pub fn resolve_all(&self, specs: &[DeviceSpec]) -> Result<Vec<PciAddress>, ResolveError> {
        let mut out = Vec::new();
        for s in specs {
            for a in self.resolve(s)? {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
        Ok(out)
    }

    /// A `virt-pci` command line for `rest` (`add vm.xml 01:00.1`) on this
    /// same host: with the options of [`Host::invocation`], else the ones its
    /// source implies (`--snapshot FILE`, `--root DIR`, `-c URI`).
    pub fn suggest(&self, rest: &str) -> String {
        let inv = match &self.invocation {
            Some(i) => i.clone(),
            None => {
                let quote = |s: &str| crate::address::shell_word(s);
                if let Some(f) = self.source.strip_prefix("snapshot:") {
                    format!("--snapshot {}", quote(f))
                } else if let Some(u) = self.source.strip_prefix("libvirt:") {
                    format!("-c {}", quote(u))
                } else if let Some(r) = self.source.strip_prefix("sysfs:") {
                    if r == "/" {
                        String::new()
                    } else {
                        format!("--root {}", quote(r))
                    }
                } else {
                    String::new()
                }
            }
        };
        if inv.is_empty() {
            format!("virt-pci {rest}")
        } else {
            format!("virt-pci {inv} {rest}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_vendor_device_lists_candidates() {
        let mut h = Host {
            source: "test".into(),
            ..Host::default()
        };
        for f in 0..2 {
            let a = PciAddress::new(0, 1, 0, f);
            h.devices
                .insert(a, Device::new(a, 0x10de, 0x1f82, 0x030000));
        }
        let spec = DeviceSpec::parse("10de:1f82").unwrap();
        let e = h.resolve(&spec).unwrap_err();
        assert!(e.message.contains("2 PCI devices match"), "{e}");
        assert_eq!(
            e.help,
            vec!["candidate: 0000:01:00.0", "candidate: 0000:01:00.1"]
        );
        let e = h
            .resolve(&DeviceSpec::parse("8086:1234").unwrap())
            .unwrap_err();
        assert!(e
            .message
            .contains("no PCI device with vendor:device 8086:1234"));
        let slot = h.resolve(&DeviceSpec::parse("01:00").unwrap()).unwrap();
        assert_eq!(slot.len(), 2);
        let e = h
            .resolve(&DeviceSpec::parse("01:00.2").unwrap())
            .unwrap_err();
        assert_eq!(e.message, "no PCI device 0000:01:00.2 on test");
        assert!(e.help.contains(&"on that bus: 0000:01:00.0".to_string()));
    }
}
