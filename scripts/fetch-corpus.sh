#!/bin/bash
# Fetch libvirt 9.0's own test data (Debian source package `libvirt`) into
# tests/corpus/libvirt-*/ (not committed). Adds a deb-src line for bookworm to
# apt's sources when none exists (needs root for that and for apt-get update).
# Prints the corpus directory on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p tests/corpus
dir=$(ls -d tests/corpus/libvirt-[0-9]*/ 2>/dev/null | head -1 || true)
if [ -n "$dir" ] && [ -d "$dir/tests/qemuxml2argvdata" ]; then echo "${dir%/}"; exit 0; fi
if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src ' /etc/apt/sources.list; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "fetch-corpus: no deb-src entry in apt's sources; run as root once to add it" >&2; exit 1
  fi
  cat > /etc/apt/sources.list.d/virt-pci-deb-src.sources <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  apt-get update -qq >&2
fi
command -v dpkg-source >/dev/null || { echo "fetch-corpus: dpkg-dev missing (make deps)" >&2; exit 1; }
( cd tests/corpus && apt-get source -qq --download-only libvirt >&2 )
dsc=$(ls tests/corpus/libvirt_*.dsc | head -1)
( cd tests/corpus && dpkg-source --no-check -x "$(basename "$dsc")" >&2 )
rm -f tests/corpus/libvirt_*.tar.* tests/corpus/libvirt_*.dsc
dir=$(ls -d tests/corpus/libvirt-[0-9]*/ | head -1)
echo "${dir%/}"
