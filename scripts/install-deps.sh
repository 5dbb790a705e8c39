#!/bin/bash
# Install the Debian packages the build, tests and demo need, when missing.
# As root it runs apt-get; otherwise it says what is missing and goes on
# (tests that need a missing tool fail with a clear message).
set -euo pipefail

PKGS=(
  pkg-config libvirt-dev libvirt0   # `libvirt` feature (virt crate); libvirt0 also ships /usr/share/libvirt/schemas and the test driver
  libvirt-clients                   # virt-xml-validate, virsh (test oracle)
  libxml2-utils                     # xmllint --relaxng: the schema oracle
  hwdata                            # /usr/share/misc/pci.ids: device names
  pciutils                          # lspci: reads our fake trees (sample tests)
  python3-venv                      # virtualenvs: pre-commit, ansible-core, ansible-test sanity (tests/suites/4[123]-*.sh)
  dpkg-dev                          # apt-get source libvirt (corpus)
  python3-jsonschema                # JSON Schema oracle (tests/suites/15-schemas.sh)
  libvirt-daemon libvirt-daemon-driver-qemu qemu-system-x86  # libvirt's QEMU driver: the define oracle (tests/suites/50-libvirt-oracle.sh)
  swtpm swtpm-tools                 # so domains with a <tpm> define under that oracle
  zsh fish                          # completion scripts run in the real shells (tests/it/completions.rs)
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# QEMU >= 8 (bookworm-backports, installed by tests/e2e/host-deps.sh) moved
# spice and qxl into a module package of exactly its own version; without
# it libvirt refuses domains with <graphics type='spice'> or qxl video.
qemu_v=$(dpkg-query -W -f='${Version}' qemu-system-x86 2>/dev/null || true)
if [ -n "$qemu_v" ] && apt-cache madison qemu-system-modules-spice 2>/dev/null | grep -qF "| $qemu_v |"; then
  dpkg-query -W -f='${Status}' qemu-system-modules-spice 2>/dev/null | grep -q "install ok installed" \
    || missing+=("qemu-system-modules-spice=$qemu_v")
fi
if [ "${#missing[@]}" -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing Debian packages (run as root to install): ${missing[*]}" >&2
  exit 0
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
