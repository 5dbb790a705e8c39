#!/bin/bash
# Every snippet we generate passes libvirt's RelaxNG: schemas/hostdev.rng
# (a lone <hostdev> against the installed domaincommon.rng) over every
# combination of the hostdev options, on the fixture host. Each combination
# is written with `snippet --split DIR`, one file per <hostdev>, as the README
# tells users to (--permissive only with --driver xen: QEMU refuses it, and
# snippet says so with exit 2). A deliberately broken snippet must fail (the
# oracle can say no).
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
        [ -n "$perm" ] && [ "$driver" != xen ] && continue
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
        # The README's recipe: one file per <hostdev> for virsh attach-device.
        "$BIN" --snapshot "$SNAP" "${args[@]}" --split "$work/h$runs" > /dev/null 2>&1
       done
      done
     done
    done
   done
  done
 done
done
# --permissive without Xen: refused before anything is written.
if "$BIN" --snapshot "$SNAP" snippet 01:00.0 --permissive --split "$work/perm" >/dev/null 2>&1 || [ -e "$work/perm" ]; then
  echo "FAIL hostdev-schema: --permissive without --driver xen was not refused, or wrote files"; exit 1
fi
files=("$work"/h*/*.xml)
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
