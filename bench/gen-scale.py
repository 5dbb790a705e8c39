#!/usr/bin/env python3
"""Inputs for the scale benchmarks (issue 11, item 14): sizes at which a
quadratic path showed. usage: gen-scale.py OUTDIR [FACTOR]

  hostdevs-N.xml   a domain with N identical PCI hostdevs (validate)
  attrs-N.xml      a domain whose <hostdev> source <address> has N attributes
  devices-N.json   a snapshot with N PCI functions (list --tree)
  domains-N.txt    an Arch-wiki listing with N PCI domains (snapshot --from-listing)

FACTOR (default 1) scales every N down for a quick pass.
"""
import json
import os
import sys

out = sys.argv[1]
factor = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
os.makedirs(out, exist_ok=True)

HEAD = """<domain type='kvm'>
  <name>scale</name>
  <memory unit='KiB'>1048576</memory>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices>
"""
TAIL = "  </devices>\n</domain>\n"
HOSTDEV = """    <hostdev mode='subsystem' type='pci' managed='yes'>
      <source>
        <address domain='0x0000' bus='0x2b' slot='0x00' function='0x0'/>
      </source>
    </hostdev>
"""


def n(x):
    return max(1, int(x * factor))


def write(name, text):
    with open(os.path.join(out, name), "w") as f:
        f.write(text)


def hostdevs(k):
    write(f"hostdevs-{k}.xml", HEAD + HOSTDEV * k + TAIL)


def attrs(k):
    extra = " ".join(f"x{i}='{i}'" for i in range(k))
    hd = HOSTDEV.replace("function='0x0'/>", f"function='0x0' {extra}/>")
    write(f"attrs-{k}.xml", HEAD + hd + TAIL)


def devices(k):
    # k functions: one root port per 8 endpoints, each endpoint its own group.
    devs, groups = [], []
    for i in range(k):
        dom, rest = divmod(i, 256 * 32 * 8)
        bus, rest = divmod(rest, 32 * 8)
        slot, fn = divmod(rest, 8)
        a = f"{dom:04x}:{bus:02x}:{slot:02x}.{fn}"
        devs.append({"address": a, "vendor_id": "0x8086", "device_id": "0x1234",
                     "class": "0x020000", "driver": None, "iommu_group": i,
                     "parents": [], "reset_methods": ["flr"], "reset": True})
        groups.append({"id": i, "members": [a]})
    snap = {"format": "virt-pci-snapshot", "version": 1, "source": "generated",
            "iommu": "enabled", "devices": devs, "groups": groups}
    write(f"devices-{k}.json", json.dumps(snap))


def domains(k):
    lines = []
    for i in range(k):
        lines.append(f"IOMMU Group {i}:")
        lines.append(f"\t{i + 1:04x}:01:00.0 Ethernet controller [0200]: Intel Corporation I350 [8086:1521] (rev 01)")
    write(f"domains-{k}.txt", "\n".join(lines) + "\n")


hostdevs(n(8000))
attrs(n(200000))
devices(n(100000))
domains(n(20000))
