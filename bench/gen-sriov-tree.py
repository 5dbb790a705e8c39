#!/usr/bin/env python3
"""Write a fake sysfs tree of a synthetic SR-IOV host, for `make bench`.

The layout follows docs/sysfs.md exactly (§1-§7): devices nested under
their bridge in sys/devices/pci0000:00/, sys/bus/pci/devices/<BDF> links with
the fixed `../../../devices/` prefix, `iommu_group`/`driver`/`subsystem`
links whose `../` depth matches the device's depth, group `devices/` links
with the fixed `../../../../devices/` prefix, attribute files in the kernel's
exact formats, and a binary `config` file (4096 bytes: PCIe extended config
space) carrying the same ids, class, header type and bus numbers, so `lspci
-A linux-sysfs -O sysfs.path=ROOT/sys/bus/pci` reads the tree as a real host.

Host: one host bridge 0000:00:00.0 and 16 root ports 0000:00:01.0..00:10.0
(pcieport, ACS: one group each). Behind root port k sits a ConnectX-5 PF
(15b3:1017, mlx5_core) at BB:00.0 with FUNCTIONS/16 - 1 VFs (15b3:1018) at
routing id PF + 1 + i (offset 1, stride 1, ARI: VFs run over several buses).
Every PF and every VF is its own IOMMU group, as on a server whose switches
have ACS (notes: fixtures 020, 021). FUNCTIONS counts PFs + VFs; the bridges
come on top (17 more).

This tree is fake on purpose: no real host with 16,384 functions is at hand.
It is only ever read (by virt-pci --root, lspci -A linux-sysfs, find/cat).

usage: gen-sriov-tree.py FUNCTIONS OUTDIR   (FUNCTIONS a multiple of 16, >= 32)
"""
import os
import shutil
import sys

PFS = 16


def bdf(dom, bus, slot, fn):
    return f"{dom:04x}:{bus:02x}:{slot:02x}.{fn:x}"


class Tree:
    def __init__(self, root):
        self.root = root
        self.sys = os.path.join(root, "sys")
        self.group = 0
        self.drivers = set()

    def write(self, path, data, mode=0o444):
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        fd = os.open(path, flags, mode)
        os.write(fd, data if isinstance(data, bytes) else data.encode())
        os.close(fd)

    def config(self, vendor, device, cls, rev, header, subv, subd, bus=None):
        c = bytearray(4096)
        c[0:2] = vendor.to_bytes(2, "little")
        c[2:4] = device.to_bytes(2, "little")
        c[4:6] = (0x0406).to_bytes(2, "little")  # memory + bus master
        c[6:8] = (0x0010).to_bytes(2, "little")  # capability list
        c[8] = rev
        c[9:12] = cls.to_bytes(3, "little")  # prog-if, subclass, class
        c[0x0E] = header
        if header == 1 and bus:
            c[0x18], c[0x19], c[0x1A] = bus
        elif header == 0:
            c[0x2C:0x2E] = subv.to_bytes(2, "little")
            c[0x2E:0x30] = subd.to_bytes(2, "little")
        # Capability list: one PCI Express capability (id 0x10) at 0x40,
        # port type endpoint (0) or root port (4), so lspci sees PCIe.
        c[0x34] = 0x40
        c[0x40] = 0x10
        c[0x41] = 0x00
        port = 4 if header == 1 else 0
        c[0x42:0x44] = (0x0002 | (port << 4)).to_bytes(2, "little")
        return bytes(c)

    def device(self, parent_rel, name, *, vendor, device, cls, rev=0, subv=0,
               subd=0, driver=None, reset=None, header=0, bus=None, extra=None):
        """Create one function; parent_rel is its parent dir below sys/."""
        rel = os.path.join(parent_rel, name)  # e.g. devices/pci0000:00/0000:00:01.0/...
        d = os.path.join(self.sys, rel)
        os.mkdir(d)
        up = "../" * (rel.count("/") + 1)  # from inside the device dir back to sys/
        w = lambda f, s, mode=0o444: self.write(os.path.join(d, f), s, mode)
        w("vendor", f"0x{vendor:04x}\n")
        w("device", f"0x{device:04x}\n")
        w("subsystem_vendor", f"0x{subv:04x}\n")
        w("subsystem_device", f"0x{subd:04x}\n")
        w("class", f"0x{cls:06x}\n")
        w("revision", f"0x{rev:02x}\n")
        w("irq", "0\n")
        w("numa_node", "0\n", 0o644)
        w("enable", "1\n" if driver else "0\n", 0o644)
        w("driver_override", "(null)\n", 0o644)
        w("local_cpulist", "0-1\n")
        w("power_state", "D0\n")
        w("modalias", "pci:v%08Xd%08Xsv%08Xsd%08Xbc%02Xsc%02Xi%02X\n" % (
            vendor, device, subv, subd, cls >> 16, (cls >> 8) & 0xFF, cls & 0xFF), )
        uev = (f"DRIVER={driver}\n" if driver else "") + (
            f"PCI_CLASS={cls:X}\nPCI_ID={vendor:04X}:{device:04X}\n"
            f"PCI_SUBSYS_ID={subv:04X}:{subd:04X}\nPCI_SLOT_NAME={name}\n")
        w("uevent", uev, 0o644)
        w("config", self.config(vendor, device, cls, rev, header, subv, subd, bus), 0o644)
        # One line per resource (6 BARs + ROM + 6 IOV BARs; bridges add 4
        # windows), `0x%016llx 0x%016llx 0x%016llx` (start end flags).
        w("resource", "0x%016x 0x%016x 0x%016x\n" % (0, 0, 0) * (17 if header == 1 else 13))
        if reset:
            w("reset", "", 0o200)
            w("reset_method", reset + "\n", 0o644)
        if bus:
            w("secondary_bus_number", f"{bus[1]}\n")
            w("subordinate_bus_number", f"{bus[2]}\n")
        for f, s in (extra or {}).items():
            w(f, s)
        os.symlink(up + "bus/pci", os.path.join(d, "subsystem"))
        # bus/pci/devices/<BDF> -> ../../../devices/...
        os.symlink("../../../" + rel, os.path.join(self.sys, "bus/pci/devices", name))
        if driver:
            ddir = os.path.join(self.sys, "bus/pci/drivers", driver)
            if driver not in self.drivers:
                os.makedirs(ddir)
                for f in ("bind", "unbind", "new_id", "remove_id", "uevent"):
                    self.write(os.path.join(ddir, f), "", 0o200)
                self.drivers.add(driver)
            os.symlink(up + "bus/pci/drivers/" + driver, os.path.join(d, "driver"))
            os.symlink("../../../../" + rel, os.path.join(ddir, name))
        g = self.group
        self.group += 1
        gdir = os.path.join(self.sys, "kernel/iommu_groups", str(g))
        os.makedirs(os.path.join(gdir, "devices"))
        self.write(os.path.join(gdir, "type"), "DMA\n", 0o644)
        self.write(os.path.join(gdir, "reserved_regions"),
                   "0x00000000fee00000 0x00000000feefffff msi\n")
        os.symlink(up + "kernel/iommu_groups/" + str(g), os.path.join(d, "iommu_group"))
        os.symlink("../../../../" + rel, os.path.join(gdir, "devices", name))
        return rel


def main():
    if len(sys.argv) != 3 or not sys.argv[1].isdigit():
        sys.exit(__doc__.strip().splitlines()[-1])
    n = int(sys.argv[1])
    out = sys.argv[2]
    if n % PFS or n < 2 * PFS:
        sys.exit(f"gen-sriov-tree: FUNCTIONS must be a multiple of {PFS} and >= {2 * PFS}")
    per_pf = n // PFS  # PF + VFs
    nvf = per_pf - 1
    nbus = (per_pf + 255) // 256
    if 1 + PFS * nbus > 255:
        sys.exit("gen-sriov-tree: too many functions for one PCI domain")
    if os.path.exists(out):
        shutil.rmtree(out)
    t = Tree(out)
    for p in ("devices/pci0000:00", "bus/pci/devices", "bus/pci/drivers",
              "kernel/iommu_groups", "class/iommu/dmar0"):
        os.makedirs(os.path.join(t.sys, p))
    t.write(os.path.join(t.sys, "bus/pci/drivers_probe"), "", 0o200)
    t.write(os.path.join(t.sys, "bus/pci/drivers_autoprobe"), "1\n", 0o644)
    root = "devices/pci0000:00"
    t.device(root, bdf(0, 0, 0, 0), vendor=0x8086, device=0x2020, cls=0x060000,
             rev=4, subv=0x8086, subd=0x0000)
    for k in range(PFS):
        base = 1 + k * nbus
        rp = t.device(root, bdf(0, 0, 1 + k, 0), vendor=0x8086, device=0x2030,
                      cls=0x060400, rev=4, driver="pcieport", header=1,
                      reset="pm bus", bus=(0, base, base + nbus - 1))
        pf = bdf(0, base, 0, 0)
        vfs = []
        for i in range(nvf):
            rid = (base << 8) + 1 + i
            vfs.append(bdf(0, rid >> 8, (rid >> 3) & 0x1F, rid & 7))
        t.device(rp, pf, vendor=0x15B3, device=0x1017, cls=0x020000,
                 subv=0x15B3, subd=0x0007, driver="mlx5_core", reset="flr bus",
                 extra={"sriov_totalvfs": f"{nvf}\n", "sriov_numvfs": f"{nvf}\n",
                        "sriov_offset": "1\n", "sriov_stride": "1\n",
                        "sriov_vf_device": "1018\n", "sriov_drivers_autoprobe": "1\n"})
        pfdir = os.path.join(t.sys, rp)
        for i, vf in enumerate(vfs):
            t.device(rp, vf, vendor=0x15B3, device=0x1018, cls=0x020000,
                     subv=0x15B3, subd=0x0007, driver="mlx5_core", reset="flr")
            os.symlink("../" + vf, os.path.join(pfdir, pf, f"virtfn{i}"))
            os.symlink("../" + pf, os.path.join(pfdir, vf, "physfn"))
    print(f"{out}: {n} SR-IOV functions ({PFS} PFs x {nvf} VFs) + {1 + PFS} bridges, "
          f"{t.group} IOMMU groups")


if __name__ == "__main__":
    main()
