#!/bin/bash
# build-rootfs.sh KDIR: prints the path of the stage-2 root filesystem image,
# building it when the cache has none for this key.
# The image: debootstrap'd Debian bookworm (minbase) with libvirt 9.0 and QEMU 7.2,
# the guest kernel's modules (only those the test loads, so udev's coldplug is quick),
# libvirt's debug log for PCI and hostdev handling. No test payload: virt-pci and the
# guest scripts come with each run's initramfs, so the image is rebuilt only when
# its key changes: the package list, this script, the kernel version.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
KDIR=$1
KVER=$(ls "$KDIR/lib/modules")
SUITE=bookworm
MIRROR=${E2E_MIRROR:-http://deb.debian.org/debian}
PKGS=(
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
  libvirt-daemon-system libpam-systemd   # polkitd needs a logind (debootstrap fails without)
  qemu-system-x86 udev kmod pciutils procps iproute2 systemd-sysv dbus jq
)
# Modules the guest may load after switch_root (with their dependencies).
MODULES=(igb e1000 vfio vfio_iommu_type1 vfio-pci virtio_pci virtio_blk ext4 tun)

key=$( { printf '%s\n' "$SUITE" "$KVER" "${PKGS[@]}" "${MODULES[@]}"; cat "$0"; } | sha256sum | cut -c1-16)
img=$CACHE/rootfs-$SUITE-$key.img
if [ -e "$img" ]; then
  say "rootfs: cached $img"
  echo "$img"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || die "building the guest root filesystem needs root (debootstrap)"

dir=$CACHE/rootfs-build
# debootstrap mounts proc/sys inside the target; an interrupted build must not
# leave them behind (rm -rf would walk into them).
unmount_all() { grep -o " $dir/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true; }
trap unmount_all EXIT
unmount_all
rm -rf "$dir" "$img.tmp"
mkdir -p "$dir"
say "rootfs: debootstrap $SUITE (${#PKGS[@]} packages) from $MIRROR"
debootstrap --variant=minbase --include="$(IFS=,; echo "${PKGS[*]}")" \
  "$SUITE" "$dir" "$MIRROR" >&2
say "rootfs: debootstrap done"

# Kernel modules: the closure of MODULES, then depmod for the guest.
mkdir -p "$dir/lib/modules/$KVER"
cp "$KDIR/lib/modules/$KVER"/modules.{builtin,builtin.modinfo,order} "$dir/lib/modules/$KVER/"
for m in "${MODULES[@]}"; do
  modprobe -d "$KDIR" -S "$KVER" --show-depends "$m" | awk '$1=="insmod"{print $2}'
done | sort -u | while read -r ko; do
  rel=${ko#"$KDIR"/}
  rel=${rel#./}
  mkdir -p "$dir/$(dirname "$rel")"
  cp "$ko" "$dir/$rel"
done
depmod -b "$dir" "$KVER"

# libvirt: debug log of the PCI code (shows e.g. "is bound to vfio-pci - skip reset").
cat >>"$dir/etc/libvirt/libvirtd.conf" <<'CONF'
log_filters="1:util.pci 1:hypervisor.virhostdev 1:node_device 1:qemu.qemu_hostdev 3:*"
log_outputs="1:file:/var/log/libvirt/libvirtd.log"
CONF
echo e2e-guest >"$dir/etc/hostname"
: >"$dir/etc/fstab"

# Trim what a test guest never reads.
rm -rf "$dir"/usr/share/{doc,man,info,locale}/* "$dir"/var/cache/apt/archives/*.deb \
  "$dir"/var/lib/apt/lists/*
size_mb=$(( $(du -sm "$dir" | cut -f1) * 13 / 10 + 64 ))
say "rootfs: $(du -sh "$dir" | cut -f1), ext4 image of ${size_mb} MiB"
mkfs.ext4 -q -F -L e2eroot -d "$dir" "$img.tmp" "${size_mb}M" >&2
rm -rf "$dir"
# Older images (other keys) are dead weight.
find "$CACHE" -maxdepth 1 -name "rootfs-*.img" ! -name "$(basename "$img")" -delete
mv "$img.tmp" "$img"
say "rootfs: built $img"
echo "$img"
