#!/usr/bin/env python3
"""Generate a fleet of host snapshots for `make bench` (fleet part).

usage: gen-fleet.py DIR COUNT [SEED]

Each host has between 64 and 4,096 PCI functions, log-uniformly distributed
(as many hosts with 64–128 functions as with 2,048–4,096: a fleet is mostly
small machines and a few SR-IOV-heavy servers; mean ≈ 970). A host is built
like the samples: a host bridge, an LPC/ISA bridge with its SMBus function
(group 1, host-critical by class), then root ports (bridges, each in its own
group) with one card behind each: a 4-function Turing GPU in one group, an
NVMe drive, or an SR-IOV NIC whose VFs each have a group of their own. The
first NVMe carries the root filesystem and the first NIC the default route
(host-critical), so plans have something to block. Deterministic per seed.
"""
import json
import math
import os
import random
import sys

out, count = sys.argv[1], int(sys.argv[2])
seed = int(sys.argv[3]) if len(sys.argv) > 3 else 16
rng = random.Random(seed)
os.makedirs(out, exist_ok=True)


def dev(addr, vendor, device, cls, group, header=0, driver=None, critical=None, sub=None):
    d = {"address": addr, "vendor_id": f"0x{vendor:04x}", "device_id": f"0x{device:04x}",
         "class": f"0x{cls:06x}", "header_type": header, "driver": driver,
         "iommu_group": group, "reset_methods": ["flr"] if header == 0 else [], "reset": header == 0}
    if sub:
        d["subsystem_vendor_id"], d["subsystem_device_id"] = f"0x{sub[0]:04x}", f"0x{sub[1]:04x}"
    if critical:
        d["critical"] = critical
    return d


def host(n):
    devs, groups = [], {}

    def add(d):
        devs.append(d)
        groups.setdefault(d["iommu_group"], []).append(d["address"])

    add(dev("0000:00:00.0", 0x8086, 0x3e30, 0x060000, 0))
    add(dev("0000:00:1f.0", 0x8086, 0xa306, 0x060100, 1))
    add(dev("0000:00:1f.4", 0x8086, 0xa323, 0x0c0500, 1, driver="i801_smbus"))
    g = 2
    dom, bus, port = 0, 1, 0
    nvme = nic = 0
    while len(devs) < n:
        left = n - len(devs)
        if bus > 250:
            dom, bus, port = dom + 1, 1, 0
        rp = f"{dom:04x}:00:{1 + port // 8:02x}.{port % 8}"
        port += 1
        if port >= 8 * 30:
            dom, bus, port = dom + 1, 1, 0
        add(dev(rp, 0x8086, 0xa340, 0x060400, g, header=1, driver="pcieport"))
        g += 1
        kind = rng.random()
        b = f"{dom:04x}:{bus:02x}:00"
        if left >= 5 and kind < 0.25:
            for f, (d_id, cls, drv) in enumerate([(0x1e84, 0x030000, "nouveau"), (0x10f8, 0x040300, "snd_hda_intel"),
                                                 (0x1ad8, 0x0c0330, "xhci_hcd"), (0x1ad9, 0x0c8000, None)]):
                add(dev(f"{b}.{f}", 0x10de, d_id, cls, g, driver=drv, sub=(0x1462, 0xc729)))
            g += 1
        elif left >= 2 and kind < 0.5:
            crit = [{"kind": "root_filesystem", "block": "/dev/nvme0n1p2"}] if nvme == 0 else None
            add(dev(f"{b}.0", 0x144d, 0xa808, 0x010802, g, driver="nvme", critical=crit, sub=(0x144d, 0xa801)))
            nvme += 1
            g += 1
        else:
            vfs = min(left - 2, rng.choice([0, 7, 15, 31, 63]))
            crit = [{"kind": "default_route", "interface": "eno1"}] if nic == 0 else None
            add(dev(f"{b}.0", 0x8086, 0x1521, 0x020000, g, driver="igb", critical=crit, sub=(0x8086, 0x0001)))
            nic += 1
            g += 1
            for v in range(vfs):
                slot, fn = 0x10 + (v // 8), v % 8
                if slot > 0x1f:
                    break
                add(dev(f"{b[:-2]}{slot:02x}.{fn}", 0x8086, 0x1520, 0x020000, g, driver="igbvf"))
                g += 1
        bus += 1
    devs = devs[:n]
    keep = {d["address"] for d in devs}
    return {"format": "virt-pci-snapshot", "version": 1, "source": "generated:bench/gen-fleet.py",
            "iommu": "enabled", "devices": devs,
            "groups": [{"id": k, "members": [m for m in v if m in keep]} for k, v in sorted(groups.items())
                       if any(m in keep for m in v)]}


total = 0
for i in range(count):
    n = int(round(math.exp(rng.uniform(math.log(64), math.log(4096)))))
    h = host(n)
    total += len(h["devices"])
    with open(os.path.join(out, f"host-{i:04d}.json"), "w") as f:
        json.dump(h, f, separators=(",", ":"))
print(json.dumps({"hosts": count, "functions": total}))
