#!/bin/bash
# Prints the directory holding the guest kernel: DIR/boot/vmlinuz-KVER and
# DIR/lib/modules/KVER. The Debian kernel package (bookworm's linux-image-amd64
# target) is downloaded and unpacked into the cache, never installed on the host:
# the host does not boot it, and no initramfs hook runs.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
if [ -z "$pkg" ]; then
  apt-get update -qq >&2 || true
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
fi
[ -n "$pkg" ] || die "cannot find the Debian kernel package behind linux-image-amd64 (apt-get update?)"
ver=$(apt-cache policy "$pkg" | awk '/Candidate:/{print $2}')
dir=$CACHE/kernel/$pkg-$ver
if [ ! -e "$dir/.done" ]; then
  say "kernel: downloading $pkg $ver"
  rm -rf "$dir" "$dir.tmp"
  mkdir -p "$dir.tmp/deb"
  (cd "$dir.tmp/deb" && apt-get download -qq -o APT::Sandbox::User=root "$pkg=$ver" >&2)
  dpkg-deb -x "$dir.tmp"/deb/*.deb "$dir.tmp/root"
  # The package's postinst would run depmod; nothing runs it here.
  depmod -b "$dir.tmp/root" "$(ls "$dir.tmp/root/lib/modules")"
  mv "$dir.tmp/root" "$dir"
  rm -rf "$dir.tmp"
  touch "$dir/.done"
fi
echo "$dir"
