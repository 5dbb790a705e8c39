#!/bin/bash
# Doctor stage, part 2: `virt-pci doctor` next to `virt-host-validate qemu` on a
# guest with an emulated VT-d (interrupt remapping on), and the boot-time binding
# of the two-function e1000 group (04:00.0/.1) across two real reboots:
#   boot 0: doctor; detach --persist refused for the root disk; detach --persist
#           of the group writes the files, binds nothing now          -> reboot
#   boot 1: both functions came up on vfio-pci with no command run (the other
#           e1000s, same vendor:device, did not); doctor sees it; reattach
#           --persist removes the files                               -> reboot
#   boot 2: both back on e1000
# Exit status: the next phase to boot into, 0 when done (init-doctor.sh reboots).
. /e2e/lib.sh
export PATH=/usr/local/bin:$PATH
PHASE=${1:-0}
RULES=/etc/udev/rules.d/05-virt-pci-vfio.rules
FILES="$RULES /etc/modprobe.d/virt-pci-vfio.conf /etc/modules-load.d/virt-pci-vfio.conf /var/lib/virt-pci/persist.json"

c_doctor_vtd() {
  vp doctor $MF0
  expect_rc 0 "doctor on the VT-d guest"
  expect_out "^PASS +IOMMU in firmware.*DMAR" "firmware DMAR"
  expect_out "^PASS +IOMMU in the kernel.*dmar0" "kernel IOMMU"
  expect_out "^PASS +Interrupt remapping: interrupts are remapped \(IR-" "interrupt remapping (intremap=on)"
  expect_out "^PASS +/dev/vfio/vfio" "VFIO node"
  expect_out "^PASS +Passthrough plan: ok .* $MF0 $MF1" "the plan takes both functions"
  vp -c qemu:///system doctor
  expect_rc 0 "doctor -c qemu:///system"
  expect_out "^PASS +libvirt QEMU driver: VFIO hostdevs" "libvirt offers VFIO"
  echo "  + virt-host-validate qemu"
  timeout 120 virt-host-validate qemu 2>&1 | sed 's/^/  | /'
  echo "  = exit ${PIPESTATUS[0]}"
}

c_refuse_root_disk() {
  vp detach --persist $DISK
  expect_rc 1 "detach --persist $DISK (root disk controller)"
  expect_out "refus" "detach --persist $DISK"
  [ -e $RULES ] && bad "$RULES written although refused"
  expect_drv $DISK virtio-pci
}

c_persist_group() {
  vp detach --persist --dry-run $MF0
  expect_rc 0 "detach --persist --dry-run $MF0"
  expect_out "write /etc/udev/rules.d/05-virt-pci-vfio.rules" "dry run shows the rule"
  [ -e $RULES ] && bad "--dry-run wrote $RULES"
  vp detach --persist $MF0
  expect_rc 0 "detach --persist $MF0"
  for f in $FILES; do
    [ -e "$f" ] || bad "$f not written"
  done
  grep -q "KERNEL==\"$MF1\"" $RULES || bad "$RULES lacks the group's other function $MF1"
  grep -qi 8086 $RULES && bad "$RULES matches by vendor id"
  sed 's/^/  rules: /' $RULES
  sed 's/^/  modprobe.d: /' /etc/modprobe.d/virt-pci-vfio.conf
  # Nothing is bound now: only at boot.
  expect_drv $MF0 e1000
  expect_drv $MF1 e1000
}

c_bound_at_boot() {
  dmesg | grep -iE 'vfio|e1000 0000:0[34]' | tail -n 12 | sed 's/^/  dmesg: /'
  expect_drv $MF0 vfio-pci
  expect_drv $MF1 vfio-pci
  # The same vendor:device elsewhere stays on the host: per address, not per id.
  expect_drv $B1 e1000
  expect_drv $B2 e1000
  expect_drv $IGB igb
  if [ "$(drv $MF0)" = vfio-pci ] && [ "$(drv $MF1)" = vfio-pci ]; then
    e2e-pci viable $MF0 || bad "group $(group_of $MF0) not viable for VFIO after boot"
  fi
}

c_doctor_in_effect() {
  vp doctor $MF0
  expect_out "^PASS +Boot-time vfio-pci bindings.*2 function\(s\).*in effect this boot" "doctor sees the binding in effect"
  expect_out "^PASS +Host driver: on vfio-pci \(bound at boot by virt-pci\)" "doctor names the boot binding"
}

c_unpersist() {
  vp reattach --persist $MF0
  expect_rc 0 "reattach --persist $MF0"
  for f in $FILES; do
    [ -e "$f" ] && bad "$f still there after reattach --persist"
  done
  expect_drv $MF0 vfio-pci   # nothing now: only at the next boot
}

c_back_on_e1000() {
  expect_drv $MF0 e1000
  expect_drv $MF1 e1000
  expect_no_override $MF0
  expect_no_override $MF1
  vp doctor
  printf '%s\n' "$OUT" | grep -q "Boot-time vfio-pci bindings" && bad "doctor still reports boot-time bindings"
}

log "doctor stage, boot $PHASE: $(uname -r); cmdline: $(cat /proc/cmdline)"
log "drivers at boot: $MF0=$(drv $MF0) $MF1=$(drv $MF1) $B1=$(drv $B1) $B2=$(drv $B2) $IGB=$(drv $IGB)"
record_baseline
case $PHASE in
0)
  check d0-doctor-vtd c_doctor_vtd
  check d0-persist-refuse-root-disk c_refuse_root_disk
  check d0-persist-group c_persist_group
  exit 1
  ;;
1)
  check d1-bound-at-boot c_bound_at_boot
  check d1-doctor-in-effect c_doctor_in_effect
  check d1-unpersist c_unpersist
  exit 2
  ;;
*)
  check d2-back-on-e1000 c_back_on_e1000
  result
  exit 0
  ;;
esac
