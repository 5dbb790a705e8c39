#!/bin/bash
# The Arch-wiki IOMMU listing script (docs/peers.md §4.1), verbatim
# except that it reads a fake tree: /sys -> ROOT/sys, and lspci gets
# `-A linux-sysfs -O sysfs.path=ROOT/sys/bus/pci`. One lspci per device.
# usage: arch-iommu.sh ROOT [MAXGROUPS]   (MAXGROUPS: only the first N groups)
shopt -s nullglob
root=$1
max=${2:-0}
n=0
for g in $(find "$root"/sys/kernel/iommu_groups/* -maxdepth 0 -type d | sort -V); do
    n=$((n + 1)); if [ "$max" -gt 0 ] && [ "$n" -gt "$max" ]; then break; fi
    echo "IOMMU Group ${g##*/}:"
    for d in $g/devices/*; do echo -e "\t$(lspci -A linux-sysfs -O sysfs.path="$root"/sys/bus/pci -nns ${d##*/})"; done;
done;
