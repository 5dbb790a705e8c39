#!/bin/sh
# PID 1 of the e2e initramfs (busybox). Loads the modules, then either runs the
# kernel-only checks (e2e=stage1) or mounts the debootstrapped root disk, copies the
# payload into it and switches root to init-stage2.sh (e2e=stage2).
export PATH=/usr/local/bin:/bin:/sbin
export LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
echo "e2e-init: up $(cut -d' ' -f1 /proc/uptime)s, kernel $(uname -r)"
stage=stage1
for w in $(cat /proc/cmdline); do
  case $w in e2e=*) stage=${w#e2e=} ;; esac
done
# The doctor stage boots like a host whose initramfs only mounts the root: the
# NIC drivers load from the root filesystem (see build-initramfs.sh).
order=/modules/order
[ "$stage" = doctor ] && order=/modules/order-root
while read -r ko; do
  insmod "/modules/$ko" || echo "e2e-init: insmod $ko failed"
done <"$order"

off() { echo "e2e-init: power off"; sync; poweroff -f; sleep 5; echo o >/proc/sysrq-trigger; }

case $stage in
stage1)
  sh /e2e/stage1.sh
  off
  ;;
doctor-noiommu)
  sh /e2e/noiommu-doctor.sh
  off
  ;;
stage2 | doctor)
  i=0
  while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  if ! mount -t ext4 /dev/vda /mnt; then
    echo "E2E-RESULT FAIL cannot mount the root disk /dev/vda"
    off
  fi
  mkdir -p /mnt/e2e /mnt/usr/local/bin
  cp /usr/local/bin/virt-pci /usr/local/bin/e2e-pci /mnt/usr/local/bin/
  cp /e2e/* /mnt/e2e/
  umount /proc /sys /tmp
  umount /dev
  next=/e2e/init-stage2.sh
  [ "$stage" = doctor ] && next=/e2e/init-doctor.sh
  exec switch_root /mnt "$next"
  ;;
esac
echo "E2E-RESULT FAIL unknown stage '$stage'"
off
