#!/bin/bash
# The main job on the embedded samples (real machines' published listings,
# converted by virt-pci itself): read a host, plan passthrough, see what
# blocks. Nothing here touches this machine's devices.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/virt-pci}
S=samples/hosts
if [ -t 1 ]; then B=$'\033[1m' N=$'\033[0m'; else B= N=; fi
section() { printf '\n%s== %s%s\n' "$B" "$*" "$N"; }
run() { echo; echo "\$ virt-pci $*"; "$BIN" "$@" || echo "(exit $?)"; }
[ -e "$S/004-msi-b550m-mortar-turing-4fn.json" ] || { echo "no samples (samples/hosts/*.json)"; exit 1; }

section "A desktop (MSI B550M, RTX 2070 SUPER + GT 710): devices by IOMMU group"
run --snapshot $S/004-msi-b550m-mortar-turing-4fn.json list

section "The Turing GPU: VGA, audio, USB and UCSI travel together; its root port stays"
run --snapshot $S/004-msi-b550m-mortar-turing-4fn.json show 2b:00.0

section "The GT 710 sits in the chipset group with the root disk's SATA controller and the NIC: blocked"
run --snapshot $S/004-msi-b550m-mortar-turing-4fn.json show 04:00.0

section "Intel onboard audio shares its group with the LPC bridge: blocked"
run --snapshot $S/001-asrock-z170-gaming-itx-gtx960.json show 00:1f.3

section "Which PCI controller is behind USB bus 1 (and what else goes with it)"
run --snapshot $S/013-b560-tigerlake-rx7600-reset-usb.json usb 1

section "A VM without an IOMMU gets a hint, not an empty table"
run --snapshot $S/000-virtio-microvm-no-iommu.json list

section "The same host read from a fake sysfs tree (--root), as on the machine itself"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$BIN" fake-sysfs $S/013-b560-tigerlake-rx7600-reset-usb.json "$tmp/b560"
run --root "$tmp/b560" show 03:00.0
echo
echo "Convert your own listing: virt-pci snapshot --from-listing my-iommu-groups.txt -o host.json"

section "validate: a domain that passes half of the RTX's IOMMU group (VP051), checked against host 004"
# A good counterpart, when another sample domain passes host 004's RTX (bus 0x2b).
good=$(grep -l "bus='0x2b'" samples/domains/*.xml 2>/dev/null | grep -v '/bad-' | head -1 || true)
run --snapshot $S/004-msi-b550m-mortar-turing-4fn.json validate ${good:+"$good"} samples/domains/bad-rtx2070-half-group.xml

section "validate: what libvirt's schema lets through (no host needed)"
run validate samples/domains/bad-hostdev-typos.xml

section "Snippets for virsh attach-device: the RTX 2070 SUPER goes whole (its IOMMU group); the plan is on stderr"
H=$S/004-msi-b550m-mortar-turing-4fn.json
run --snapshot "$H" snippet 2b:00.0 --alias ua-gpu

section "Byte-exact edits: add the GPU group to a Windows 11 VM (--diff writes nothing)"
run --snapshot "$H" add samples/domains/win11-q35.xml 2b:00.0 --diff

section "The same into a double-quoted, namespaced Debian VM: the file's own style is kept"
run --snapshot "$H" add samples/domains/debian12.xml 0000:2b:00.0 --diff
run remove samples/domains/debian12.xml 03:00.0 --diff
