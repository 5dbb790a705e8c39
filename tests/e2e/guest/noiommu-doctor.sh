#!/bin/sh
# Doctor stage, part 1 (busybox initramfs): a guest booted WITHOUT an IOMMU
# (no -device intel-iommu, so the firmware has no ACPI DMAR table). `virt-pci
# doctor` must fail (exit 1) and name the fix: the firmware setting first.
. /e2e/lib.sh

c_doctor_no_iommu() {
  if [ -e /sys/firmware/acpi/tables/DMAR ]; then
    bad "this guest has an ACPI DMAR table: the IOMMU was not left out"
    return
  fi
  vp doctor
  expect_rc 1 "doctor on a guest without an IOMMU"
  expect_out "^FAIL +IOMMU in firmware" "the firmware check fails"
  expect_out "fix: enable VT-d" "the firmware check's fix names VT-d"
  expect_out "^FAIL +IOMMU in the kernel.*iommu_groups is empty" "the kernel check fails"
  expect_out "fix: first enable the IOMMU in the firmware" "the kernel check's fix starts at the firmware"
  vp doctor --json
  expect_rc 1 "doctor --json without an IOMMU"
  st=$(printf '%s' "$OUT" | jq -r '.checks[] | select(.id == "iommu-firmware") | .status')
  [ "$st" = FAIL ] || bad "doctor --json: iommu-firmware is '$st', expected FAIL"
}

log "doctor without an IOMMU: $(uname -r), $(ls /sys/kernel/iommu_groups | wc -l) IOMMU groups, cmdline: $(cat /proc/cmdline)"
record_baseline
check n-doctor-no-iommu c_doctor_no_iommu
result
