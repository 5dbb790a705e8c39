# Shared by the e2e scripts (sourced). Paths, logging and the guest topology.
# shellcheck shell=bash

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$E2E_DIR/../.." && pwd)
# Logs and per-run scratch files: kept after the run for reading.
LOGDIR=${E2E_LOGDIR:-$REPO/target/e2e}
# Expensive, keyed artefacts (kernel package, root filesystem image). Under
# target/ so `cargo clean` drops them; E2E_CACHE moves them elsewhere.
# shellcheck disable=SC2034 # used by the scripts that source this file
CACHE=${E2E_CACHE:-$REPO/target/e2e-cache}

# Start of the run in microseconds; `elapsed` prints seconds since then (no forks:
# it timestamps every console line).
T0=${T0:-${EPOCHREALTIME/./}}
export T0

elapsed() {
  local d=$(( ${EPOCHREALTIME/./} - T0 ))
  printf '%4d.%d' $((d / 1000000)) $(((d / 100000) % 10))
}
say() { echo "[e2e $(elapsed)s] $*" >&2; }
die() { echo "[e2e $(elapsed)s] error: $*" >&2; exit 2; }

# The guest topology (see README "End-to-end test" and the research notes):
#   00:02.0 root port (2.5 GT/s x1: the kernel's fixed-delay path, so secondary
#           bus reset works) -> 01:00.0 igb       own group, FLR/PM/bus reset
#   00:03.0 root port -> 02:00.0 pcie-pci-bridge -> 03:01.0, 03:02.0 e1000
#           -> one group: the bridge and both endpoints
#   00:05.0 root port -> 04:00.0, 04:00.1 e1000 (multifunction) -> one group
#   00:06.0 virtio-blk: the guest's root disk (stage 2) or a scratch disk (stage 1)
#   00:00.0 host bridge, 00:1f.x ICH9 (LPC/SATA/SMBus)
# romfile= : no option ROMs (the host has no ipxe-qemu, the guest boots by -kernel).
# E2E_NO_IOMMU=1 leaves the emulated VT-d out (the doctor's "no IOMMU" guest).
topology_args() {
  local disk=$1
  [ "${E2E_NO_IOMMU:-0}" = 1 ] || printf '%s\n' -device intel-iommu,intremap=on,caching-mode=on
  printf '%s\n' \
    -device pcie-root-port,id=rp1,bus=pcie.0,chassis=1,addr=02.0,x-speed=2_5,x-width=1 \
    -device igb,bus=rp1,romfile= \
    -device pcie-root-port,id=rp2,bus=pcie.0,chassis=2,addr=03.0 \
    -device pcie-pci-bridge,id=br1,bus=rp2 \
    -device e1000,bus=br1,addr=01.0,romfile= \
    -device e1000,bus=br1,addr=02.0,romfile= \
    -device pcie-root-port,id=rp3,bus=pcie.0,chassis=3,addr=05.0 \
    -device e1000,bus=rp3,addr=00.0,multifunction=on,romfile= \
    -device e1000,bus=rp3,addr=00.1,romfile= \
    -drive "file=$disk,if=none,id=root,format=raw,snapshot=on,cache=unsafe" \
    -device virtio-blk-pci,drive=root,bus=pcie.0,addr=06.0
}

# run_qemu NAME TIMEOUT_S MEM SMP KERNEL INITRD APPEND DISK
# Boots the guest with a timestamped console log in $LOGDIR/NAME.log.
# E2E_ALLOW_REBOOT=1: a guest reboot restarts the machine in the same QEMU (the
# disk's snapshot=on overlay lives as long as QEMU, so files written before the
# reboot are there after it); otherwise a reboot ends QEMU.
# Returns qemu's status (124 on timeout).
run_qemu() {
  local name=$1 tmo=$2 mem=$3 smp=$4 kernel=$5 initrd=$6 append=$7 disk=$8
  local log=$LOGDIR/$name.log
  local -a topo noreboot=(-no-reboot)
  mapfile -t topo < <(topology_args "$disk")
  [ "${E2E_ALLOW_REBOOT:-0}" = 1 ] && noreboot=()
  say "$name: booting (timeout ${tmo}s, console log $log)"
  rm -f "$LOGDIR/$name.rc"
  # TCG only: /dev/kvm on the machines this runs on hangs or is absent.
  {
    timeout --kill-after=10 "$tmo" \
      qemu-system-x86_64 -accel tcg -M q35,kernel-irqchip=split -cpu max \
        -smp "$smp" -m "$mem" -nographic -vga none -net none \
        "${noreboot[@]}" "${topo[@]}" \
        -kernel "$kernel" -initrd "$initrd" -append "$append" </dev/null 2>&1 \
      && echo 0 >"$LOGDIR/$name.rc" || echo $? >"$LOGDIR/$name.rc"
  } | while IFS= read -r line; do
    printf '[%s] %s\n' "$(elapsed)" "${line%$'\r'}"
  done >"$log"
  return "$(cat "$LOGDIR/$name.rc" 2>/dev/null || echo 125)"
}
