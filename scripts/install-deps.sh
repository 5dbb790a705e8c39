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
  python3-venv                      # pre-commit test
  dpkg-dev                          # apt-get source libvirt (corpus)
  python3-jsonschema                # JSON Schema oracle (tests/suites/15-schemas.sh)
  zsh fish                          # completion scripts run in the real shells (tests/completions.rs)
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing Debian packages (run as root to install): ${missing[*]}" >&2
  exit 0
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
