#!/bin/bash
# Every snippet we generate passes libvirt's RelaxNG: schemas/hostdev.rng
# (a lone <hostdev> against the installed domaincommon.rng) over every
# combination of the hostdev options, on the fixture host. The multi-element
# stream is split with csplit exactly as the README tells users to, so the
# recipe is tested too. A deliberately broken snippet must fail (the oracle
# can say no).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -q
BIN=target/debug/virt-pci
SNAP=tests/fixtures/host-gpu.json
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
n=0; runs=0
for dev in 01:00.0 03:00.0; do
 for managed in yes no; do
  for driver in "" vfio xen; do
   for perm in "" --permissive; do
    for rom in "" "--rom-bar on" "--rom-bar off --rom-file /usr/share/vgabios/gpu&rom's.bin"; do
     for boot in "" "--boot-order 2"; do
      for alias in "" "--alias ua-gpu.0"; do
       for guest in "" "--guest-address 0000:06:00.0" "--guest-address 0000:06:00.0 --guest-multifunction"; do
        args=(snippet "$dev" --managed "$managed")
        [ -n "$driver" ] && args+=(--driver "$driver")
        [ -n "$perm" ] && args+=("$perm")
        case "$rom" in
          "--rom-bar on") args+=(--rom-bar on) ;;
          "") ;;
          *) args+=(--rom-bar off --rom-file "/usr/share/vgabios/gpu&rom's.bin") ;;
        esac
        # shellcheck disable=SC2206
        [ -n "$boot" ] && args+=($boot)
        [ -n "$alias" ] && args+=($alias)
        [ -n "$guest" ] && args+=($guest)
        runs=$((runs+1))
        "$BIN" --snapshot "$SNAP" "${args[@]}" > "$work/stream.xml" 2>/dev/null
        # The README's recipe: one file per <hostdev> for virsh attach-device.
        (cd "$work" && csplit -s -z -f "h$runs-" -b '%02d.xml' stream.xml '/^<hostdev/' '{*}')
       done
      done
     done
    done
   done
  done
 done
done
files=("$work"/h*.xml)
n=${#files[@]}
out=$(xmllint --noout --relaxng schemas/hostdev.rng "${files[@]}" 2>&1 || true)
ok=$(grep -c ' validates$' <<<"$out" || true)
# The oracle must be able to fail.
printf "<hostdev mode='subsystem' type='pci' managed='maybe'><source><address bus='0x01'/></source></hostdev>\n" > "$work/bad.xml"
if xmllint --noout --relaxng schemas/hostdev.rng "$work/bad.xml" 2>/dev/null; then
  echo "FAIL hostdev-schema: the oracle accepted managed='maybe'"; exit 1
fi
echo "hostdev-schema: $runs option combinations, $n <hostdev> elements, $ok pass schemas/hostdev.rng"
if [ "$ok" -ne "$n" ] || [ "$n" -lt "$runs" ]; then
  grep -v ' validates$' <<<"$out" | head -20
  echo "FAIL hostdev-schema"; exit 1
fi
echo "PASS hostdev-schema"
