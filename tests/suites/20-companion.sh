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
# grep reads all of ldd's output: with pipefail, `grep -q` exiting at the first match
# can kill ldd with SIGPIPE and fail the pipeline (seen: companion-links-libvirt).

if ldd "$B/virt-pci" | grep libvirt >/dev/null; then bad lean-binary-has-no-libvirt; else ok lean-binary-has-no-libvirt; fi
if ldd "$B/virt-pci-libvirt" | grep 'libvirt\.so' >/dev/null; then ok companion-links-libvirt; else bad companion-links-libvirt; fi

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
S=samples/hosts/004-msi-b550m-mortar-turing-4fn.json
"$B/virt-pci" --snapshot "$S" snapshot --format libvirt-test -o "$tmp/host.xml"
URI="test://$tmp/host.xml"

# A libvirt invocation through the lean binary works (the companion runs it).
if out=$("$B/virt-pci" -c "$URI" --color never list 2>&1) && grep -q 'IOMMU group 14' <<<"$out"; then
  ok hand-over-reads-through-libvirt
else bad hand-over-reads-through-libvirt; echo "$out" | head -5; fi

# Issue 12's bug: `remove` reads the host to resolve a vendor:device, and the
# hand-over did not know. 10de:1e84 is 004's RTX 2070 SUPER (2b:00.0).
"$B/virt-pci" --snapshot "$S" add --force samples/domains/win11-q35.xml 2b:00.0 -o "$tmp/vm.xml" 2>/dev/null
if out=$("$B/virt-pci" -c "$URI" remove "$tmp/vm.xml" 10de:1e84 2>&1) && grep -q 'removing from .*0000:2b:00.0' <<<"$out"; then
  ok remove-by-ids-hands-over
else bad remove-by-ids-hands-over; echo "$out" | head -5; fi
# The same URI from the environment names the same host (not this machine's sysfs).
if out=$(LIBVIRT_DEFAULT_URI="$URI" "$B/virt-pci" remove "$tmp/vm.xml" 10de:1e84 2>&1) && grep -q 'removing from .*0000:2b:00.0' <<<"$out"; then
  ok remove-by-ids-env-uri
else bad remove-by-ids-env-uri; echo "$out" | head -5; fi
# Facts from a snapshot, domains from the connection: one invocation.
# (`show` exits 1 when the plan needs --force: the listing sample is unverified.)
rc=0; out=$("$B/virt-pci" -c "$URI" --snapshot "$S" --color never show 2b:00.0 2>&1) || rc=$?
if [ "$rc" -le 1 ] && grep -q 'verdict:' <<<"$out"; then
  ok snapshot-facts-with-libvirt-domains
else bad snapshot-facts-with-libvirt-domains; echo "$out" | head -5; fi
# Acting hands over at the same point: the plan is libvirt's, read and
# printed by the companion (the lean build's libvirt face cannot connect).
if out=$("$B/virt-pci" -c "$URI" --color never detach 2b:00.0 --dry-run --force 2>&1) \
  && grep -q "backend libvirt (test://$tmp/host.xml)" <<<"$out"; then
  ok detach-plan-hands-over
else bad detach-plan-hands-over; echo "$out" | head -5; fi
# Two hosts named: an error, not a silent ranking.
if out=$("$B/virt-pci" --snapshot "$S" --root "$tmp" list 2>&1); then bad two-hosts-refused
elif grep -q -- '--snapshot and --root both name a host' <<<"$out"; then ok two-hosts-refused
else bad two-hosts-refused; echo "$out"; fi

# Without the companion: offline work is unaffected, and a libvirt
# invocation says how to get libvirt support.
mv "$B/virt-pci-libvirt" "$tmp/"
rc=0; out=$("$B/virt-pci" --snapshot "$S" --color never show 2b:00.0 2>&1) || rc=$?
if [ "$rc" -le 1 ] && grep -q 'verdict:' <<<"$out"; then ok offline-without-companion; else bad offline-without-companion; echo "$out" | head -5; fi
if out=$("$B/virt-pci" -c "$URI" list 2>&1); then bad missing-companion-explained
elif grep -q 'built without libvirt support' <<<"$out"; then ok missing-companion-explained
else bad missing-companion-explained; echo "$out"; fi
# ...and LIBVIRT_DEFAULT_URI is not silently replaced by this machine's sysfs.
if out=$(LIBVIRT_DEFAULT_URI="$URI" "$B/virt-pci" remove "$tmp/vm.xml" 10de:1e84 2>&1); then bad env-uri-never-reads-local-sysfs
elif grep -q 'built without libvirt support' <<<"$out"; then ok env-uri-never-reads-local-sysfs
else bad env-uri-never-reads-local-sysfs; echo "$out"; fi
mv "$tmp/virt-pci-libvirt" "$B/"

# VIRT_PCI_NO_COMPANION=1 keeps the lean behaviour even with the companion there.
if out=$(VIRT_PCI_NO_COMPANION=1 "$B/virt-pci" -c "$URI" list 2>&1); then bad no-companion-env
elif grep -q 'built without libvirt support' <<<"$out"; then ok no-companion-env
else bad no-companion-env; fi

echo "20-companion: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
