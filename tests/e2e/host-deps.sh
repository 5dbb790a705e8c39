#!/bin/bash
# Host prerequisites of the e2e VM, installed when missing (as root; otherwise
# say what is missing and fail).
#
# Why each one:
#  - qemu-system-x86 from bookworm-backports (QEMU 10): bookworm's QEMU 7.2 has no
#    `igb` device model, and igb is the one emulated NIC with FLR, PM and bus reset
#    (the "device alone in its group that really resets"). The suite is added to
#    apt's sources when absent.
#  - debootstrap: builds the libvirt guest's root filesystem (stage 2).
#  - busybox-static: the stage-1 initramfs and the stage-2 lite initrd.
#  - gcc, libc6-dev: the static `e2e-pci` helper (VFIO ioctls, BAR marker register).
#  - e2fsprogs (mkfs.ext4 -d), cpio: images; jq: reads `list --json` in the guest.
# The guest kernel is NOT installed on the host: kernel.sh downloads the Debian
# kernel package and unpacks it into the e2e cache (the host never boots it).
set -euo pipefail

PKGS=(debootstrap busybox-static gcc libc6-dev e2fsprogs cpio zstd kmod jq)
BPO_PKGS=(qemu-system-x86)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

qemu_ok() {
  command -v qemu-system-x86_64 >/dev/null 2>&1 || return 1
  local v
  v=$(qemu-system-x86_64 --version | sed -n 's/^QEMU emulator version \([0-9]*\)\..*/\1/p')
  [ -n "$v" ] && [ "$v" -ge 8 ]   # igb appeared in QEMU 8.0
}

missing=()
for p in "${PKGS[@]}"; do installed "$p" || missing+=("$p"); done
need_qemu=0
qemu_ok || need_qemu=1

if [ "${#missing[@]}" -eq 0 ] && [ "$need_qemu" -eq 0 ]; then exit 0; fi

if [ "$(id -u)" -ne 0 ]; then
  echo "e2e: missing host packages: ${missing[*]} $([ $need_qemu = 1 ] && echo 'qemu-system-x86 (>= 8, bookworm-backports)')" >&2
  echo "help: run \`make e2e\` as root, or install them with apt-get" >&2
  exit 2
fi

export DEBIAN_FRONTEND=noninteractive
if [ "$need_qemu" -eq 1 ]; then
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
  if ! grep -rqs -- "${codename}-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "e2e: adding ${codename}-backports to apt's sources (QEMU >= 8 for the igb model)" >&2
    cat > "/etc/apt/sources.list.d/${codename}-backports.sources" <<EOF
Types: deb
URIs: http://deb.debian.org/debian
Suites: ${codename}-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  fi
fi
echo "e2e: installing ${missing[*]} $([ $need_qemu = 1 ] && echo "${BPO_PKGS[*]} (backports)")" >&2
apt-get update -qq
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ "$need_qemu" -eq 1 ]; then
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
  apt-get install -y -qq --no-install-recommends -t "${codename}-backports" "${BPO_PKGS[@]}" >/dev/null
fi
qemu_ok || { echo "e2e: qemu-system-x86_64 >= 8 still missing after install" >&2; exit 2; }
