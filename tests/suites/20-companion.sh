#!/bin/bash
# The installed layout: `virt-pci` without libvirt, `virt-pci-libvirt` next to
# it. Proves that the lean binary does not link libvirt, hands over exactly
# for libvirt invocations (through libvirt's real test driver), and explains
# itself when the companion is missing. Nothing here touches real devices:
# every run names a snapshot, a fake root or a test:/// URI.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -q --features libvirt --bin virt-pci-libvirt
cargo build -q --bin virt-pci
B=target/debug
pass=0; fail=0
ok()  { echo "PASS $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }

if ldd "$B/virt-pci" | grep -q libvirt; then bad lean-binary-has-no-libvirt; else ok lean-binary-has-no-libvirt; fi
if ldd "$B/virt-pci-libvirt" | grep -q 'libvirt\.so'; then ok companion-links-libvirt; else bad companion-links-libvirt; fi

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
S=samples/hosts/004-msi-b550m-mortar-turing-4fn.json
"$B/virt-pci" --snapshot "$S" snapshot --format libvirt-test -o "$tmp/host.xml"
URI="test://$tmp/host.xml"

# A libvirt invocation through the lean binary works (the companion runs it).
if out=$("$B/virt-pci" -c "$URI" --color never list 2>&1) && grep -q 'IOMMU group 14' <<<"$out"; then
  ok hand-over-reads-through-libvirt
else bad hand-over-reads-through-libvirt; echo "$out" | head -5; fi

# Without the companion: offline work is unaffected, and a libvirt
# invocation says how to get libvirt support.
mv "$B/virt-pci-libvirt" "$tmp/"
if "$B/virt-pci" --snapshot "$S" --color never show 2b:00.0 >/dev/null; then ok offline-without-companion; else bad offline-without-companion; fi
if out=$("$B/virt-pci" -c "$URI" list 2>&1); then bad missing-companion-explained
elif grep -q 'built without libvirt support' <<<"$out"; then ok missing-companion-explained
else bad missing-companion-explained; echo "$out"; fi
mv "$tmp/virt-pci-libvirt" "$B/"

# VIRT_PCI_NO_COMPANION=1 keeps the lean behaviour even with the companion there.
if out=$(VIRT_PCI_NO_COMPANION=1 "$B/virt-pci" -c "$URI" list 2>&1); then bad no-companion-env
elif grep -q 'built without libvirt support' <<<"$out"; then ok no-companion-env
else bad no-companion-env; fi

echo "20-companion: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
