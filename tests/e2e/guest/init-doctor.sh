#!/bin/bash
# PID 1 of the doctor stage's bookworm guest (no systemd). Boots like a host:
# what systemd-modules-load and udev do, nothing more — so whatever binds the
# e1000 functions to vfio-pci at boot comes from the files `virt-pci detach
# --persist` wrote, not from this script. The guest reboots itself between the
# phases of doctor.sh; the disk (snapshot=on) keeps its writes while QEMU runs.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
hostname e2e-guest
ip link set lo up
t() { echo "e2e-init: $* ($(cut -d' ' -f1 /proc/uptime)s)"; }
phase=$(cat /var/lib/e2e-doctor/phase 2>/dev/null || echo 0)
t "doctor stage, boot $phase"

# systemd-modules-load.service (modules-load.d(5)).
for f in /etc/modules-load.d/*.conf /usr/lib/modules-load.d/*.conf; do
  [ -e "$f" ] || continue
  sed 's/[#;].*//' "$f" | while read -r m; do
    [ -n "$m" ] && modprobe "$m" && echo "e2e-init: modules-load.d: loaded $m ($f)"
  done
done
# systemd's kmod-static-nodes.service (creates /dev/vfio/vfio).
kmod static-nodes --format=tmpfiles --output=/run/static-nodes.conf &&
  systemd-tmpfiles --create --boot /run/static-nodes.conf

/lib/systemd/systemd-udevd --daemon
udevadm trigger --action=add --type=subsystems
udevadm trigger --action=add --type=devices
udevadm settle --timeout=60
t "udev settled"

if [ "$phase" = 0 ]; then
  mkdir -p /var/log/libvirt /run/libvirt
  virtlogd -d
  libvirtd -d
  for _ in $(seq 1 300); do [ -S /run/libvirt/libvirt-sock ] && break; sleep 0.2; done
  t "libvirtd up"
fi

bash /e2e/doctor.sh "$phase"
next=$?
if [ "$next" = 0 ]; then
  t "power off"
  sync
  echo o >/proc/sysrq-trigger
else
  mkdir -p /var/lib/e2e-doctor
  echo "$next" >/var/lib/e2e-doctor/phase
  t "reboot into phase $next"
  sync
  mount -o remount,ro / 2>/dev/null
  echo b >/proc/sysrq-trigger
fi
# Wait for the power-off or reboot without running a program from the disk:
# the disk may already be gone, and a failing init panics, which with
# panic=-1 and reboots allowed restarts this boot until the time-out.
while :; do :; done
