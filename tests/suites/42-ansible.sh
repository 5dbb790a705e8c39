#!/bin/bash
# The Ansible collection (ansible/ansible_collections/virt_pci/passthrough)
# with real ansible-core from PyPI, in a virtualenv this script makes (cached
# under target/). Playbooks run against localhost with sample snapshots, a
# fake sysfs tree, libvirt's test driver and a fake root for the guard hook —
# never this machine's devices or /etc/libvirt.
#   1. check mode changes nothing but reports the change, with a diff;
#   2. the real run changes the files; a second run reports no change;
#   3. state=absent gives the original bytes back; again, no change;
#   4. facts, and refusals that come back as failures with virt-pci's message.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=$(pwd)
BIN=$here/${VIRT_PCI_BIN:-target/debug/virt-pci}
[ -x "$BIN" ] || cargo build -q
cache=${VIRT_PCI_TEST_CACHE:-$here/target/ansible-test}
venv=$cache/venv
if [ ! -x "$venv/bin/ansible-playbook" ]; then
  mkdir -p "$cache"
  python3 -m venv "$venv" || { echo "FAIL: python3 -m venv (install python3-venv: make deps)"; exit 1; }
  "$venv/bin/pip" install -q 'ansible-core>=2.16,<2.20'
fi
"$venv/bin/ansible-playbook" --version > "$cache/version.txt" 2>&1; head -1 "$cache/version.txt"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
unset LIBVIRT_DEFAULT_URI VIRT_PCI_ROOT
export ANSIBLE_COLLECTIONS_PATH=$here/ansible ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0 \
  ANSIBLE_LOCALHOST_WARNING=0 ANSIBLE_INVENTORY_UNPARSED_WARNING=0 ANSIBLE_PYTHON_INTERPRETER=$venv/bin/python
export ANSIBLE_LOCAL_TEMP=$work/ansible-local ANSIBLE_REMOTE_TEMP=$work/ansible-remote

# Samples with the facts their owners would state (a listing does not say
# which functions the host needs; unverified plans are refused by add).
mkdir -p "$work/fleet"
"$BIN" snapshot --from-listing samples/hosts/listings/004-msi-b550m-mortar-turing-4fn.txt \
  --root-disk 02:00.1 --default-nic 2a:00.0 --boot-vga 04:00.0 -o "$work/fleet/004-msi-b550m-mortar-turing-4fn.json"
"$BIN" snapshot --from-listing samples/hosts/listings/014-thinkpad-p53-laptop-turing-tb3.txt \
  --root-disk 02:00.0 --default-nic 00:1f.6 --boot-vga 00:02.0 -o "$work/fleet/014-thinkpad-p53-laptop-turing-tb3.json"
cp samples/domains/win11-q35.xml "$work/win11-004.xml"
cp samples/domains/win11-q35.xml "$work/win11-014.xml"
mkdir -p "$work/root"
with_guard=false
if "$BIN" hook --help >/dev/null 2>&1; then with_guard=true; fi
with_libvirt=false
if "$BIN" --snapshot samples/hosts/004-msi-b550m-mortar-turing-4fn.json snapshot --format libvirt-test -o "$work/node-004.xml" 2>/dev/null &&
   "$BIN" -c "test://$work/node-004.xml" list >/dev/null 2>&1; then
  with_libvirt=true
fi
echo "guard module: $with_guard; libvirt test driver: $with_libvirt"
vars=(-e "vp=$BIN" -e "samples=$here/samples/hosts" -e "mappings=$here/samples/mappings" -e "fleet=$work/fleet" -e "work=$work"
      -e "with_guard=$with_guard" -e "with_libvirt=$with_libvirt")
play() { "$venv/bin/ansible-playbook" -i localhost, -c local "${vars[@]}" "$@"; }
changed() { sed -n 's/.*localhost *: ok=[0-9]* *changed=\([0-9]*\).*/\1/p' "$1"; }
fail=0
check() { if eval "$2"; then echo "ok: $1"; else echo "FAIL: $1"; fail=1; fi; }
orig=$(sha256sum < samples/domains/win11-q35.xml)

play --check --diff tests/ansible/converge.yml > "$work/check.out" 2>&1 || { cat "$work/check.out"; exit 1; }
check "check mode reports changes" '[ "$(changed "$work/check.out")" -ge 2 ]'
check "check mode shows the diff" 'grep -q "^+        <address domain=.0x0000. bus=.0x01. slot=.0x00. function=.0x3./>" "$work/check.out"'
check "check mode writes nothing" '[ "$(sha256sum < "$work/win11-004.xml")" = "$orig" ] && [ "$(sha256sum < "$work/win11-014.xml")" = "$orig" ] && [ ! -e "$work/root/etc" ]'

play tests/ansible/converge.yml > "$work/run1.out" 2>&1 || { cat "$work/run1.out"; exit 1; }
n=2; $with_guard && n=3
check "first run changes $n things" '[ "$(changed "$work/run1.out")" -eq $n ]'
check "004 has the whole group of 2b:00" '[ "$(grep -c "bus=.0x2b." "$work/win11-004.xml")" -eq 4 ]'
check "014 has turing-gpu with its alias" 'grep -q "ua-turing-gpu" "$work/win11-014.xml" && [ "$(grep -c "bus=.0x01. slot=.0x00" "$work/win11-014.xml")" -eq 4 ]'
if $with_guard; then
  check "the guard hook is in the fake root" 'ls "$work"/root/etc/libvirt/hooks/qemu.d/ | grep -q virt-pci'
fi
play tests/ansible/converge.yml > "$work/run2.out" 2>&1 || { cat "$work/run2.out"; exit 1; }
check "second run changes nothing" '[ "$(changed "$work/run2.out")" -eq 0 ]'

play -e state=absent tests/ansible/converge.yml > "$work/absent1.out" 2>&1 || { cat "$work/absent1.out"; exit 1; }
check "absent changes $n things" '[ "$(changed "$work/absent1.out")" -eq $n ]'
check "absent gives the original bytes back" '[ "$(sha256sum < "$work/win11-004.xml")" = "$orig" ] && [ "$(sha256sum < "$work/win11-014.xml")" = "$orig" ]'
play -e state=absent tests/ansible/converge.yml > "$work/absent2.out" 2>&1 || { cat "$work/absent2.out"; exit 1; }
check "absent again changes nothing" '[ "$(changed "$work/absent2.out")" -eq 0 ]'

"$BIN" --snapshot samples/hosts/016-trx40-threadripper-2x-rtx-a6000.json fake-sysfs samples/hosts/016-trx40-threadripper-2x-rtx-a6000.json "$work/fake-016" 2>/dev/null ||
  "$BIN" fake-sysfs samples/hosts/016-trx40-threadripper-2x-rtx-a6000.json "$work/fake-016"
python3 - "$here/samples/mappings/gpus.json" "$work/moved.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
m["devices"]["turing-gpu"]["hosts"]["014-thinkpad-p53-laptop-turing-tb3"]["path"] = "0000:02:00"
json.dump(m, open(sys.argv[2], "w"), indent=2)
PY
before=$(sha256sum < "$work/win11-004.xml")
play tests/ansible/facts-and-failures.yml > "$work/facts.out" 2>&1 || { cat "$work/facts.out"; fail=1; }
check "facts and failures playbook" 'grep -q "localhost *: ok=[0-9]* *changed=0 .*failed=0" "$work/facts.out"'
check "a refused task leaves the file alone" '[ "$(sha256sum < "$work/win11-004.xml")" = "$before" ]'
[ "$fail" -eq 0 ] || { echo "--- outputs"; tail -n 40 "$work"/*.out; exit 1; }
echo "42-ansible: all passed"
