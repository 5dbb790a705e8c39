#!/bin/bash
# libvirt's own QEMU driver as the oracle for what `virt-pci add` writes
# (tests/oracle/define_oracle.py says what is checked and normalised).
# Runs libvirtd's session daemon unprivileged (uid 65534, a throw-away
# $HOME and XDG_RUNTIME_DIR under a temp dir); domains are defined and
# undefined, never started. Needs root (to drop to uid 65534) and the
# packages scripts/install-deps.sh installs.
set -euo pipefail
cd "$(dirname "$0")/../.."
wild=${VIRT_PCI_WILD:-../shared/wild-domains}
corpus=tests/corpus/libvirt-9.0.0/tests/qemuxml2argvdata
if [ "$(id -u)" -ne 0 ]; then
  echo "FAIL libvirt-oracle: needs root to run libvirt's QEMU driver as an unprivileged throw-away user"; exit 1
fi
for t in virsh libvirtd qemu-system-x86_64 setpriv python3; do
  command -v "$t" >/dev/null || { echo "FAIL libvirt-oracle: $t missing (run scripts/install-deps.sh)"; exit 1; }
done
[ -d "$wild" ] || { echo "FAIL libvirt-oracle: $wild (the 82 wild domains) not found"; exit 1; }
scripts/fetch-corpus.sh >/dev/null
cargo build -q
tmp=$(mktemp -d /tmp/virt-pci-oracle.XXXXXX)
mkdir -p "$tmp/home" "$tmp/run" "$tmp/work"
chmod 700 "$tmp/run"
chown -R 65534:65534 "$tmp"
chmod 755 "$tmp"
cleanup() {
  # The session daemon this suite autostarted (its pid file), nothing else.
  local pidf="$tmp/run/libvirt/libvirtd.pid"
  if [ -f "$pidf" ]; then kill "$(cat "$pidf")" 2>/dev/null || true; sleep 0.2; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
# The samples are converted listings: which function holds /, the default
# route or the boot VGA is unknown there, so their plans are `unverified`
# and add refuses without --force. The oracle is about the domain side, so
# it states those facts (none of them is a function passed here).
# (ORACLE_S4/ORACLE_S10 set: use those hosts, e.g. to measure an older build.)
if [ -z "${ORACLE_S4:-}" ]; then
  for n in 004-msi-b550m-mortar-turing-4fn 010-asus-z690-alderlake-tb4-2xradeon; do
    target/debug/virt-pci snapshot --from-listing "samples/hosts/listings/$n.txt" \
      --root-disk none --default-nic none --boot-vga none -o "$tmp/work/${n%%-*}.json"
  done
  export ORACLE_S4="$tmp/work/004.json" ORACLE_S10="$tmp/work/010.json"
fi
python3 tests/oracle/define_oracle.py "$wild" "$corpus" "$tmp/work" "$tmp/home" "$tmp/run"
