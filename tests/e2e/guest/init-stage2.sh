#!/bin/bash
# PID 1 of the stage-2 guest (debootstrapped bookworm; no systemd): the minimum a
# libvirt host needs, then the checks, then power off.
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
t "stage 2 root up"

# Gotcha 1: libvirt decides "VFIO is supported" by the existence of /dev/vfio/vfio;
# systemd's kmod-static-nodes normally creates the static nodes.
kmod static-nodes --format=tmpfiles --output=/run/static-nodes.conf &&
  systemd-tmpfiles --create --boot /run/static-nodes.conf
modprobe vfio-pci
ls -l /dev/vfio/

/lib/systemd/systemd-udevd --daemon
udevadm trigger --action=add --type=subsystems
udevadm trigger --action=add --type=devices
udevadm settle --timeout=60
t "udev settled"

mkdir -p /var/log/libvirt /run/libvirt
virtlogd -d
libvirtd -d
for _ in $(seq 1 300); do [ -S /run/libvirt/libvirt-sock ] && break; sleep 0.2; done
t "libvirtd up"

bash /e2e/stage2.sh
# libvirt's side of the story, for the host to file as target/e2e/stage2-libvirtd.log
# (the guest's disk is a snapshot): its PCI/hostdev debug lines and the nested
# QEMU logs.
echo "E2E-LIBVIRTD-LOG-BEGIN"
grep -E 'virPCI|virHostdev|qemuHostdev|nodeDevice|virNodeDevice| error ' /var/log/libvirt/libvirtd.log | tail -n 4000
for f in /var/log/libvirt/qemu/*.log; do [ -e "$f" ] && { echo "---- $f"; tail -n 40 "$f"; }; done
echo "E2E-LIBVIRTD-LOG-END"
t "power off"
sync
echo o >/proc/sysrq-trigger
sleep 10
