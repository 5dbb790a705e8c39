#!/bin/sh
# Stage 1: the kernel alone (busybox initramfs). virt-pci's sysfs backend against
# the real driver core, VFIO and PCI reset paths.
. /e2e/lib.sh
log "stage 1: $(uname -r), $(ls /sys/kernel/iommu_groups | wc -l) IOMMU groups"
for g in /sys/kernel/iommu_groups/*; do echo "  group ${g##*/}: $(ls "$g/devices" | tr '\n' ' ')"; done
for p in "$SYS"/*; do echo "  ${p##*/} $(cat "$p/vendor"):$(cat "$p/device") class $(cat "$p/class") driver $(drv "${p##*/}") reset [$(cat "$p/reset_method" 2>/dev/null)]"; done
record_baseline

# shellcheck disable=SC2034 # read by the checks in lib.sh
BACKEND=sysfs
check 0-topology c_topology
check 0-reset-witness c_reset_witness
check 1-list-json-sysfs c_list_json
check 2-detach-reattach-bridge-group-sysfs c_detach_bridge_group
check 3-reset-igb-sysfs c_reset_igb
check 4-all-or-nothing-sysfs c_all_or_nothing
result
