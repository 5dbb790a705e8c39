#!/bin/bash
# build-initramfs.sh KDIR VIRT_PCI_BIN OUT1 OUT2
# The initramfs of both stages (uncompressed cpio: nothing to decompress under TCG):
#  - busybox, the modules both stages load before anything else (in dependency
#    order, resolved here with modprobe --show-depends against the guest kernel),
#  - the payload: virt-pci, e2e-pci (static), jq, and tests/e2e/guest/*.
# OUT1 (stage 1) adds the shared libraries virt-pci and jq link, taken from this
# bookworm host (~70 MB with libvirt's); OUT2 (stage 2) leaves them out: the root
# disk has them. Stage 1 runs the checks right in the initramfs; stage 2 mounts the
# root disk, copies the payload into it (the disk is a snapshot) and switches root.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
KDIR=$1 BIN=$2 OUT1=$3 OUT2=$4
KVER=$(ls "$KDIR/lib/modules")
# vfio-pci and its stack, the drivers of the emulated endpoints, and what mounting
# the ext4 root on virtio-blk needs.
MODULES=(igb e1000 vfio vfio_iommu_type1 vfio-pci virtio_pci virtio_blk ext4)

work=$(mktemp -d "$LOGDIR/initramfs.XXXXXX")
libs=$(mktemp -d "$LOGDIR/initramfs-libs.XXXXXX")
trap 'rm -rf "$work" "$libs"' EXIT
mkdir -p "$work"/{bin,sbin,dev,proc,sys,tmp,run,mnt,modules,usr/local/bin,e2e}
cp /bin/busybox "$work/bin/busybox"
for a in $(/bin/busybox --list); do
  [ -e "$work/bin/$a" ] || ln -s busybox "$work/bin/$a"
done

: >"$work/modules/order"
for m in "${MODULES[@]}"; do
  modprobe -d "$KDIR" -S "$KVER" --show-depends "$m" | awk '$1=="insmod"{print $2}'
done | awk '!seen[$0]++' | while read -r ko; do
  cp "$ko" "$work/modules/"
  basename "$ko" >>"$work/modules/order"
done

# The doctor stage loads only what mounting the root needs: the e1000 driver must
# come from the root filesystem, where the boot-time binding under test lives.
for m in virtio_pci virtio_blk ext4; do
  modprobe -d "$KDIR" -S "$KVER" --show-depends "$m" | awk '$1=="insmod"{print $2}'
done | awk '!seen[$0]++' | while read -r ko; do basename "$ko"; done >"$work/modules/order-root"

# Executables and every shared library they load (same Debian release in the guest).
copy_with_libs() {
  local exe=$1 dest=$2
  cp "$exe" "$work$dest"
  ldd "$exe" 2>/dev/null | awk '/=> \//{print $3} /^\t\/lib/{print $1}' | while read -r lib; do
    mkdir -p "$libs$(dirname "$lib")"
    cp -L "$lib" "$libs$lib"
  done
}
copy_with_libs "$BIN" /usr/local/bin/virt-pci
strip --strip-debug "$work/usr/local/bin/virt-pci"
copy_with_libs "$(command -v jq)" /usr/local/bin/jq
gcc -static -O2 -Wall -Wextra -o "$work/usr/local/bin/e2e-pci" "$E2E_DIR/e2e-pci.c"
cp "$E2E_DIR"/guest/* "$work/e2e/"
chmod +x "$work"/e2e/*.sh
ln -s e2e/init.sh "$work/init"

(cd "$work" && find . | cpio -o -H newc --quiet) >"$OUT2"
# The kernel unpacks concatenated archives in turn.
{ cat "$OUT2"; (cd "$libs" && find . | cpio -o -H newc --quiet); } >"$OUT1"
say "initramfs: stage 1 $(du -h "$OUT1" | cut -f1), stage 2 $(du -h "$OUT2" | cut -f1) ($(wc -l <"$work/modules/order") modules, kernel $KVER)"
