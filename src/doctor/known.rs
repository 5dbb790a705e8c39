//! Small, documented tables of devices and drivers with known passthrough
//! trouble. Each row names where the knowledge comes from; a table is never
//! a verdict on its own (the doctor says "known to", not "will").

/// Devices whose function-level reset does not bring them back to a clean
/// state (the AMD "reset bug"): after a guest used them once, the next
/// guest start fails or the GPU hangs until the host reboots.
///
/// Source: the device table of gnif/vendor-reset, `src/device-db.h`
/// (commit 03e525d3): AMD Polaris 10/11/12, Vega 10/20 and Navi 10/12/14
/// discrete GPUs, which that module gives a working device-specific reset.
/// The usual remedy: install vendor-reset and, on kernels since 5.15 (which
/// made the reset method selectable), `echo device_specific >
/// /sys/bus/pci/devices/BDF/reset_method` (Documentation/ABI/testing/
/// sysfs-bus-pci, `reset_method`).
pub(crate) struct BadReset {
    pub(crate) vendor: u16,
    pub(crate) devices: &'static [u16],
    pub(crate) family: &'static str,
}

pub(crate) const BAD_RESET: &[BadReset] = &[
    BadReset {
        vendor: 0x1002,
        devices: &[
            0x67c0, 0x67c1, 0x67c2, 0x67c4, 0x67c7, 0x67c8, 0x67c9, 0x67ca, 0x67cc, 0x67cf, 0x67d0,
            0x67df, 0x6fdf,
        ],
        family: "AMD Polaris 10 (RX 470/480/570/580)",
    },
    BadReset {
        vendor: 0x1002,
        devices: &[
            0x67e0, 0x67e1, 0x67e3, 0x67e7, 0x67e8, 0x67e9, 0x67eb, 0x67ef, 0x67ff,
        ],
        family: "AMD Polaris 11 (RX 460/560)",
    },
    BadReset {
        vendor: 0x1002,
        devices: &[
            0x6980, 0x6981, 0x6985, 0x6986, 0x6987, 0x6995, 0x6997, 0x699f,
        ],
        family: "AMD Polaris 12 (RX 540/550)",
    },
    BadReset {
        vendor: 0x1002,
        devices: &[
            0x6860, 0x6861, 0x6862, 0x6863, 0x6864, 0x6867, 0x6868, 0x6869, 0x686a, 0x686b, 0x686c,
            0x686d, 0x686e, 0x686f, 0x687f,
        ],
        family: "AMD Vega 10 (Vega 56/64)",
    },
    BadReset {
        vendor: 0x1002,
        devices: &[0x66a0, 0x66a1, 0x66a2, 0x66a3, 0x66a4, 0x66a7, 0x66af],
        family: "AMD Vega 20 (Radeon VII)",
    },
    BadReset {
        vendor: 0x1002,
        devices: &[
            0x7310, 0x7312, 0x7318, 0x7319, 0x731a, 0x731b, 0x731e, 0x731f,
        ],
        family: "AMD Navi 10 (RX 5600/5700)",
    },
    BadReset {
        vendor: 0x1002,
        devices: &[0x7340, 0x7341, 0x7347, 0x734f],
        family: "AMD Navi 14 (RX 5500)",
    },
    BadReset {
        vendor: 0x1002,
        devices: &[0x7360, 0x7362],
        family: "AMD Navi 12",
    },
];

/// The family of a device known to lack a working reset, if it is one.
pub(crate) fn bad_reset(vendor: u16, device: u16) -> Option<&'static str> {
    BAD_RESET
        .iter()
        .find(|b| b.vendor == vendor && b.devices.contains(&device))
        .map(|b| b.family)
}

pub(crate) const BAD_RESET_REMEDY: &str = "the usual remedy is the vendor-reset module (https://github.com/gnif/vendor-reset): load it, then `echo device_specific > /sys/bus/pci/devices/BDF/reset_method` (kernel 5.15+)";

/// Host drivers known to hang, crash or refuse when a device is unbound
/// from them while the host uses it — which is what libvirt's managed
/// detach does at VM start — so the device should be bound to vfio-pci at
/// boot instead (`virt-pci detach --persist`).
///
/// Sources: the Arch wiki, "PCI passthrough via OVMF", §"Isolating the GPU"
/// (bind vfio-pci early "to prevent the host driver from claiming the GPU");
/// user reports: bryansteiner/gpu-passthrough-tutorial#36 (amdgpu:
/// "nodedev-reattach hangs indefinitely"), joeknock90/Single-GPU-Passthrough
/// #93 ("virsh nodedev-reattach causes kernel oops"); NVIDIA's proprietary
/// driver keeps the device open through nvidia-persistenced/Xorg, and its
/// unbind blocks until they close it.
pub(crate) const HANGS_ON_UNBIND: &[(&str, &str)] = &[
    ("nvidia", "NVIDIA's driver blocks the unbind while Xorg, a Wayland compositor or nvidia-persistenced holds the GPU"),
    ("amdgpu", "amdgpu may hang or oops on unbind/rebind of a GPU the host used (and of the boot GPU)"),
    ("radeon", "radeon does not survive being unbound from a GPU the console uses"),
    ("nouveau", "nouveau may hang on unbind while a display server uses the GPU"),
    ("i915", "i915 cannot be unbound from the integrated GPU that drives the console without losing it"),
];

/// Why the host driver `name` is risky to unbind at VM start, if it is.
pub(crate) fn hangs_on_unbind(name: &str) -> Option<&'static str> {
    HANGS_ON_UNBIND
        .iter()
        .find(|(d, _)| *d == name)
        .map(|(_, why)| *why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polaris_is_known_and_navi21_is_not() {
        assert!(bad_reset(0x1002, 0x67df).unwrap().contains("Polaris"));
        assert_eq!(bad_reset(0x1002, 0x73bf), None, "Navi 21 resets fine");
        assert_eq!(bad_reset(0x10de, 0x67df), None, "vendor matters");
    }

    #[test]
    fn drivers_table() {
        assert!(hangs_on_unbind("nvidia").is_some());
        assert!(hangs_on_unbind("e1000").is_none());
    }
}
