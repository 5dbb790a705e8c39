#!/bin/bash
# The Ansible collection (ansible/ansible_collections/virt_pci/passthrough)
# with real ansible-core from PyPI, in a virtualenv this script makes (cached
# under target/). Playbooks run against localhost with sample snapshots, a
# fake sysfs tree, libvirt's test driver and a fake root for the guard hook —
# never this machine's devices or /etc/libvirt.
#   1. check mode changes nothing but reports the change, with a diff;
#   2. the real run changes the files; a second run reports no change;
#   3. state=absent gives the original bytes back; again, no change;
#   4. facts, and refusals that come back as failures with virt-pci's message;
#   5. the same for domains libvirt has DEFINED (hostdev's `domain:`), on
#      libvirt's real QEMU driver: an unprivileged qemu:///session (uid 65534,
#      a throw-away $HOME and XDG_RUNTIME_DIR, as tests/suites/50-libvirt-
#      oracle.sh; nothing is started), the play run as that user. The test
#      driver (test:///) cannot show idempotence: every process opens a fresh
#      copy of its file, so a define is gone when the next task runs. The
#      host's facts come from sample snapshots, never this machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=$(pwd)
BIN=$here/${VIRT_PCI_BIN:-target/debug/virt-pci}
[ -x "$BIN" ] || cargo build -q
# The libvirt-linked companion the lean binary hands `-c`/`--domain` runs to
# (src/cli/companion.rs), next to it.
if [ -z "${VIRT_PCI_BIN:-}" ]; then cargo build -q --features libvirt --bin virt-pci-libvirt; fi
cache=${VIRT_PCI_TEST_CACHE:-$here/target/ansible-test}
venv=$cache/venv
# The system's python3 first: the defined-domain plays (5.) run as an
# unprivileged user, who must be able to run the venv's interpreter (a
# pyenv under /root is not). A venv made with another one is made again.
py=/usr/bin/python3; [ -x "$py" ] || py=$(command -v python3)
if [ -x "$venv/bin/ansible-playbook" ] && [ "$(cat "$venv/.made-with" 2>/dev/null)" != "$py" ]; then rm -rf "$venv"; fi
if [ ! -x "$venv/bin/ansible-playbook" ]; then
  mkdir -p "$cache"
  "$py" -m venv "$venv" || { echo "FAIL: python3 -m venv (install python3-venv: make deps)"; exit 1; }
  "$venv/bin/pip" install -q 'ansible-core>=2.16,<2.20'
  echo "$py" > "$venv/.made-with"
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
# Each module's DOCUMENTATION, EXAMPLES and RETURN parse (ansible-doc reads
# the first; `ansible-test sanity` needs a network, see README).
for m in facts guard hostdev; do
  if ! "$venv/bin/ansible-doc" -t module "virt_pci.passthrough.$m" > "$work/doc-$m.txt" 2>&1 ||
     ! "$venv/bin/python" - "$here/ansible/ansible_collections/virt_pci/passthrough/plugins/modules/$m.py" <<'PY'
import ast, sys, yaml
tree = ast.parse(open(sys.argv[1]).read())
docs = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign) for t in n.targets
        if isinstance(t, ast.Name) and t.id in ("DOCUMENTATION", "EXAMPLES", "RETURN")}
assert set(docs) == {"DOCUMENTATION", "EXAMPLES", "RETURN"}, sorted(docs)
for k, v in docs.items():
    yaml.safe_load(v)
PY
  then echo "FAIL: the $m module's documentation does not parse"; cat "$work/doc-$m.txt"; exit 1; fi
done
echo "ok: the modules' documentation parses"
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
  check "the guard hook is in the fake root" 'ls "$work"/root/etc/libvirt/hooks/qemu.d/ | grep virt-pci >/dev/null'
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

# 5. Defined domains on qemu:///session, as uid 65534 (needs root to drop to
# it, and libvirt's daemon and QEMU: scripts/install-deps.sh installs them).
domain_part() {
  if [ "$(id -u)" -ne 0 ]; then echo "FAIL: the defined-domain plays need root (to run libvirt's session daemon as uid 65534)"; return 1; fi
  for t in virsh libvirtd qemu-system-x86_64 setpriv; do
    command -v "$t" >/dev/null || { echo "FAIL: $t missing (run scripts/install-deps.sh)"; return 1; }
  done
  sess=$(mktemp -d /tmp/virt-pci-ansible-session.XXXXXX)
  mkdir -p "$sess/home" "$sess/run" "$sess/tmp"
  chmod 700 "$sess/run"
  cp "$work/fleet/"*.json "$sess/"
  # The unprivileged session has no /dev/kvm: the sample VM as type='qemu'.
  sed "s/<domain type='kvm'>/<domain type='qemu'>/" samples/domains/win11-q35.xml > "$sess/win11.xml"
  sed -e "s/<domain type='kvm'>/<domain type='qemu'>/" -e "s|<name>win11</name>|<name>win11-014</name>|" \
      -e "/<uuid>/d" samples/domains/win11-q35.xml > "$sess/win11-014.xml"
  chown -R 65534:65534 "$sess"; chmod 755 "$sess"
  as_user() {
    setpriv --reuid=65534 --regid=65534 --clear-groups env -i PATH=/usr/bin:/usr/sbin:/bin:/sbin \
      HOME="$sess/home" XDG_RUNTIME_DIR="$sess/run" LC_ALL=C.UTF-8 "$@"
  }
  vsh() { as_user virsh -q -c qemu:///session "$@"; }
  inactive() { vsh dumpxml --inactive "$1"; }
  dplay() {
    as_user ANSIBLE_COLLECTIONS_PATH="$here/ansible" ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0 \
      ANSIBLE_LOCALHOST_WARNING=0 ANSIBLE_INVENTORY_UNPARSED_WARNING=0 ANSIBLE_PYTHON_INTERPRETER="$venv/bin/python" \
      ANSIBLE_LOCAL_TEMP="$sess/tmp/local" ANSIBLE_REMOTE_TEMP="$sess/tmp/remote" \
      "$venv/bin/ansible-playbook" -i localhost, -c local -e "vp=$BIN" -e "sess=$sess" \
      -e "mappings=$here/samples/mappings" "$@"
  }
  vsh define "$sess/win11.xml" >/dev/null && vsh define "$sess/win11-014.xml" >/dev/null ||
    { echo "FAIL: virsh -c qemu:///session define (the sample domains)"; return 1; }
  local d0 e0
  d0=$(inactive win11 | sha256sum); e0=$(inactive win11-014 | sha256sum)
  dplay --check --diff tests/ansible/domain.yml > "$work/dom-check.out" 2>&1 || { cat "$work/dom-check.out"; return 1; }
  check "domain: check mode reports 2 changes" '[ "$(changed "$work/dom-check.out")" -eq 2 ]'
  check "domain: the diff is of the inactive XML, with the whole group" \
    'grep -q "domain:win11 (inactive)" "$work/dom-check.out" && grep -q "^+ *<address domain=.0x0000. bus=.0x2b. slot=.0x00. function=.0x3./>" "$work/dom-check.out"'
  check "domain: check mode defines nothing (virsh dumpxml --inactive unchanged)" \
    '[ "$(inactive win11 | sha256sum)" = "$d0" ] && [ "$(inactive win11-014 | sha256sum)" = "$e0" ]'
  dplay --diff tests/ansible/domain.yml > "$work/dom-run1.out" 2>&1 || { cat "$work/dom-run1.out"; return 1; }
  check "domain: first run changes 2 domains" '[ "$(changed "$work/dom-run1.out")" -eq 2 ]'
  check "domain: win11 is defined with the whole group of 2b:00" '[ "$(inactive win11 | grep -c "bus=.0x2b.")" -eq 4 ]'
  check "domain: win11-014 has turing-gpu with its alias" \
    'inactive win11-014 | grep "ua-turing-gpu" >/dev/null && [ "$(inactive win11-014 | grep -c "<address domain=.0x0000. bus=.0x01. slot=.0x00")" -eq 4 ]'
  check "domain: the run's diff shows the guest address libvirt assigned" \
    'grep -q "^+ *<address type=.pci. domain=.0x0000. bus=.0x0[0-9a-f]. slot=.0x00. function=.0x0./>" "$work/dom-run1.out"'
  local d1
  d1=$(inactive win11 | sha256sum)
  dplay tests/ansible/domain.yml > "$work/dom-run2.out" 2>&1 || { cat "$work/dom-run2.out"; return 1; }
  check "domain: second run changes nothing" '[ "$(changed "$work/dom-run2.out")" -eq 0 ]'
  check "domain: and defines nothing" '[ "$(inactive win11 | sha256sum)" = "$d1" ]'
  dplay tests/ansible/domain-refused.yml > "$work/dom-refused.out" 2>&1 || { cat "$work/dom-refused.out"; return 1; }
  check "domain: refusals fail with virt-pci's message" 'grep -q "localhost *: ok=[0-9]* *changed=0 .*failed=0" "$work/dom-refused.out"'
  check "domain: a refusal leaves the definition alone" '[ "$(inactive win11 | sha256sum)" = "$d1" ]'
  dplay --check -e state=absent tests/ansible/domain.yml > "$work/dom-absent-check.out" 2>&1 || { cat "$work/dom-absent-check.out"; return 1; }
  check "domain: absent in check mode reports 2 changes, defines nothing" \
    '[ "$(changed "$work/dom-absent-check.out")" -eq 2 ] && [ "$(inactive win11 | sha256sum)" = "$d1" ]'
  dplay -e state=absent tests/ansible/domain.yml > "$work/dom-absent1.out" 2>&1 || { cat "$work/dom-absent1.out"; return 1; }
  check "domain: absent changes 2 domains" '[ "$(changed "$work/dom-absent1.out")" -eq 2 ]'
  check "domain: no hostdev is left" '! inactive win11 | grep "<hostdev" >/dev/null && ! inactive win11-014 | grep "<hostdev" >/dev/null'
  dplay -e state=absent tests/ansible/domain.yml > "$work/dom-absent2.out" 2>&1 || { cat "$work/dom-absent2.out"; return 1; }
  check "domain: absent again changes nothing" '[ "$(changed "$work/dom-absent2.out")" -eq 0 ]'
  # --force writes what was asked for beside what travels (Plan::hostdev_set);
  # absent takes out the same set.
  local forced='{"devices004": ["04:00.0"], "force": true}'
  dplay -e "$forced" tests/ansible/domain.yml > "$work/dom-forced.out" 2>&1 || { cat "$work/dom-forced.out"; return 1; }
  check "domain: force adds the boot GPU" 'inactive win11 | grep "<address domain=.0x0000. bus=.0x04. slot=.0x00. function=.0x0./>" >/dev/null'
  dplay -e "$forced" -e state=absent tests/ansible/domain.yml > "$work/dom-forced-absent.out" 2>&1 || { cat "$work/dom-forced-absent.out"; return 1; }
  check "domain: absent takes out everything force added" '! inactive win11 | grep "<hostdev" >/dev/null'
}
session_cleanup() {
  # The session daemon this suite autostarted (its pid file), nothing else.
  if [ -n "${sess:-}" ]; then
    local pidf="$sess/run/libvirt/libvirtd.pid"
    if [ -f "$pidf" ]; then kill "$(cat "$pidf")" 2>/dev/null || true; sleep 0.2; fi
    rm -rf "$sess"
  fi
  rm -rf "$work"
}
sess=
trap session_cleanup EXIT
domain_part || fail=1

[ "$fail" -eq 0 ] || { echo "--- outputs"; tail -n 40 "$work"/*.out; exit 1; }
echo "42-ansible: all passed"
