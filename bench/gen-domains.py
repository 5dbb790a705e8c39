#!/usr/bin/env python3
"""Domain XML inputs for `make bench` (written under OUTDIR, never committed).

  q35.xml        a typical 4.8 KB Windows 11 q35 domain: 3 hostdevs (GPU,
                 its audio function, a USB controller), libosinfo metadata,
                 qemu:commandline, single quotes as libvirt writes them.
  big.xml        a synthetic domain just under 10 MiB (the largest domain virt-pci and virsh read) (docs/dependencies.md):
                 ~30,700 interleaved <disk>/<hostdev> elements, comments,
                 &amp; in text and attributes, both quote styles, odd
                 spacing. Every hostdev address is distinct, and none is on
                 the buses 0x01-0x40 that the bench adds from.
  hostdev/NNN.xml  COUNT variants of q35.xml with 1-8 hostdevs each
                 (managed yes/no, rom bar, boot order, guest addresses,
                 multifunction), for the validate benchmark.

usage: gen-domains.py OUTDIR COUNT
"""
import os
import random
import sys

Q35 = """<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <title>Windows 11 gaming &amp; CAD workstation</title>
  <metadata>
    <libosinfo:libosinfo xmlns:libosinfo="http://libosinfo.org/xmlns/libvirt/domain/1.0">
      <libosinfo:os id="http://microsoft.com/win/11"/>
    </libosinfo:libosinfo>
  </metadata>
  <memory unit='KiB'>16777216</memory>
  <currentMemory unit='KiB'>16777216</currentMemory>
  <memoryBacking>
    <hugepages/>
  </memoryBacking>
  <vcpu placement='static'>8</vcpu>
  <cputune>
    <vcpupin vcpu='0' cpuset='2'/>
    <vcpupin vcpu='1' cpuset='3'/>
    <vcpupin vcpu='2' cpuset='4'/>
    <vcpupin vcpu='3' cpuset='5'/>
  </cputune>
  <os firmware='efi'>
    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>
    <loader readonly='yes' secure='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.ms.fd</loader>
    <nvram template='/usr/share/OVMF/OVMF_VARS_4M.ms.fd'>/var/lib/libvirt/qemu/nvram/{name}_VARS.fd</nvram>
  </os>
  <features>
    <acpi/>
    <apic/>
    <hyperv mode='custom'>
      <relaxed state='on'/>
      <vapic state='on'/>
      <spinlocks state='on' retries='8191'/>
      <vendor_id state='on' value='0123756792CD'/>
    </hyperv>
    <kvm>
      <hidden state='on'/>
    </kvm>
    <vmport state='off'/>
    <smm state='on'/>
  </features>
  <cpu mode='host-passthrough' check='none' migratable='on'>
    <topology sockets='1' dies='1' cores='4' threads='2'/>
  </cpu>
  <clock offset='localtime'>
    <timer name='rtc' tickpolicy='catchup'/>
    <timer name='pit' tickpolicy='delay'/>
    <timer name='hpet' present='no'/>
    <timer name='hypervclock' present='yes'/>
  </clock>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <pm>
    <suspend-to-mem enabled='no'/>
    <suspend-to-disk enabled='no'/>
  </pm>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' discard='unmap'/>
      <source file='/var/lib/libvirt/images/{name}.qcow2'/>
      <target dev='sda' bus='sata'/>
      <boot order='2'/>
      <address type='drive' controller='0' bus='0' target='0' unit='0'/>
    </disk>
    <controller type='usb' index='0' model='qemu-xhci' ports='15'>
      <address type='pci' domain='0x0000' bus='0x02' slot='0x00' function='0x0'/>
    </controller>
    <controller type='pci' index='0' model='pcie-root'/>
    <controller type='pci' index='1' model='pcie-root-port'>
      <model name='pcie-root-port'/>
      <target chassis='1' port='0x10'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0' multifunction='on'/>
    </controller>
    <controller type='pci' index='2' model='pcie-root-port'>
      <model name='pcie-root-port'/>
      <target chassis='2' port='0x11'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x1'/>
    </controller>
    <controller type='sata' index='0'>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x1f' function='0x2'/>
    </controller>
    <interface type='network'>
      <mac address='52:54:00:6b:3c:58'/>
      <source network='default'/>
      <model type='virtio'/>
      <address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>
    </interface>
    <input type='mouse' bus='ps2'/>
    <input type='keyboard' bus='ps2'/>
    <tpm model='tpm-crb'>
      <backend type='emulator' version='2.0'/>
    </tpm>
    <audio id='1' type='none'/>
    <!-- GPU and its HDMI audio: IOMMU group 1 -->
{hostdevs}    <memballoon model='none'/>
  </devices>
  <qemu:commandline>
    <qemu:arg value='-fw_cfg'/>
    <qemu:arg value='opt/ovmf/X-PciMmio64Mb,string=65536'/>
  </qemu:commandline>
</domain>
"""


def hostdev(dom, bus, slot, fn, managed="yes", extra="", q="'", ind="    "):
    return (f"{ind}<hostdev mode={q}subsystem{q} type={q}pci{q} managed={q}{managed}{q}>\n"
            f"{ind}  <source>\n"
            f"{ind}    <address domain={q}0x{dom:04x}{q} bus={q}0x{bus:02x}{q} "
            f"slot={q}0x{slot:02x}{q} function={q}0x{fn:x}{q}/>\n"
            f"{ind}  </source>\n{extra}"
            f"{ind}</hostdev>\n")


def q35(name, hds):
    uuid = "%08x-%04x-4%03x-8%03x-%012x" % (
        hash(name) & 0xFFFFFFFF, 0x1234, 0x567, 0x89A, abs(hash(name)) & 0xFFFFFFFFFFFF)
    return Q35.format(name=name, uuid=uuid, hostdevs="".join(hds))


def typical():
    return q35("win11", [
        hostdev(0, 0x0A, 0, 0, extra="    <rom bar='on'/>\n      <boot order='1'/>\n".replace(
            "    <rom", "      <rom", 1)),
        hostdev(0, 0x0A, 0, 1),
        hostdev(0, 0x0C, 0, 3, managed="no"),
    ])


def variant(rng, i):
    hds = []
    n = rng.randint(1, 8)
    used = set()
    for k in range(n):
        while True:
            a = (0, rng.randint(1, 0xFE), rng.randint(0, 0x1F), rng.randint(0, 7))
            if a not in used:
                used.add(a)
                break
        extra = ""
        if rng.random() < 0.3:
            extra += "      <rom bar='%s'/>\n" % rng.choice(["on", "off"])
        if rng.random() < 0.2:
            extra += "      <driver name='vfio'/>\n"
        if rng.random() < 0.3:
            extra += ("      <address type='pci' domain='0x0000' bus='0x%02x' slot='0x00' "
                      "function='0x%x'%s/>\n" % (3 + k, 0, " multifunction='on'" if k == 0 else ""))
        if rng.random() < 0.2:
            extra += "      <alias name='ua-pt%d'/>\n" % k
        hds.append(hostdev(*a, managed=rng.choice(["yes", "yes", "no"]), extra=extra,
                           q=rng.choice(["'", '"'])))
    return q35(f"guest{i:03d}", hds)


def big(target=10 * 1024 * 1024 - 4096):
    head, tail = Q35.split("{hostdevs}")
    head = head.format(name="big", uuid="c7a5fdbd-cdaf-9455-926a-d65c16db1809", hostdevs="")
    tail = tail.format(name="big")
    parts = [head]
    size = len(head) + len(tail)
    i = 0
    disks = hostdevs = 0
    # hostdev addresses: domain 0x0001.., bus 0x41..0xff, all slots/functions
    addrs = ((d, b, s, f) for d in range(1, 0x100) for b in range(0x41, 0x100)
             for s in range(32) for f in range(8))
    while size < target:
        q = "'" if i % 3 else '"'
        if i % 2 == 0:
            dev = "vd" + "".join(chr(97 + (i // 2 // 26 ** k) % 26) for k in range(3))
            el = (f"    <disk type={q}file{q} device={q}disk{q}>\n"
                  f"      <driver name={q}qemu{q} type={q}qcow2{q} cache = {q}none{q}/>\n"
                  f"      <source file={q}/var/lib/libvirt/images/r&amp;d-{i:06d}.qcow2{q}/>\n"
                  f"      <target dev={q}{dev}{q} bus={q}virtio{q}/>\n"
                  f"      <serial>RD-{i:06d}</serial>\n"
                  f"      <alias name={q}ua-disk{i:06d}{q}/>\n"
                  f"    </disk>\n")
            disks += 1
        else:
            a = next(addrs)
            extra = "      <rom bar='off'/>\n" if i % 7 == 1 else ""
            extra += (f"      <alias name={q}ua-hostdev{i:06d}{q}/>\n"
                      f"      <address type='pci' domain='0x0000' bus='0x{1 + (i >> 8) % 255:02x}' "
                      f"slot='0x{(i >> 3) % 32:02x}' function='0x{i % 8:x}'/>\n")
            el = hostdev(*a, managed="yes" if i % 5 else "no", extra=extra, q=q)
            hostdevs += 1
        if i % 10 == 0:
            el = f"    <!-- element {i}: R&D <pool> \"bulk\" -->\n" + el
        parts.append(el)
        size += len(el)
        i += 1
    parts.append(tail)
    return "".join(parts), disks, hostdevs


def main():
    if len(sys.argv) != 3 or not sys.argv[2].isdigit():
        sys.exit(__doc__.strip().splitlines()[-1])
    out, count = sys.argv[1], int(sys.argv[2])
    os.makedirs(os.path.join(out, "hostdev"), exist_ok=True)
    with open(os.path.join(out, "q35.xml"), "w") as f:
        f.write(typical())
    text, disks, hostdevs = big()
    with open(os.path.join(out, "big.xml"), "w") as f:
        f.write(text)
    rng = random.Random(7)
    for i in range(count):
        with open(os.path.join(out, "hostdev", f"{i:03d}.xml"), "w") as f:
            f.write(variant(rng, i))
    print(f"{out}: q35.xml, big.xml ({len(text)} B, {disks} disks + {hostdevs} hostdevs), "
          f"{count} hostdev domains")


if __name__ == "__main__":
    main()
