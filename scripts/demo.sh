#!/bin/bash
# The main job on the embedded samples: read real hosts, plan passthrough.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/virt-pci}
run() { echo; echo "\$ virt-pci $*"; "$BIN" "$@" || echo "(exit $?)"; }
for s in samples/hosts/*.json; do
  [ -e "$s" ] || { echo "no samples yet"; exit 0; }
done
run --snapshot samples/hosts/004-msi-b550m-mortar-turing-4fn.json list
run --snapshot samples/hosts/004-msi-b550m-mortar-turing-4fn.json show 0000:0a:00.0

# validate: a good and a bad domain from samples/domains, against sample host 004
# (RTX 2070 SUPER: four functions in IOMMU group 14), then one full of typos.
# The good one: another sample domain that passes host 004's RTX (bus 0x2b).
good=$(grep -l "bus='0x2b'" samples/domains/*.xml 2>/dev/null | grep -v '/bad-' | head -1 || true)
run --snapshot samples/hosts/004-msi-b550m-mortar-turing-4fn.json validate ${good:+"$good"} samples/domains/bad-rtx2070-half-group.xml
run validate samples/domains/bad-hostdev-typos.xml

# Issue 3: <hostdev> snippets and byte-exact edits. The 4-function RTX 2070
# SUPER of sample 004 goes whole (its IOMMU group), into a Windows 11 VM
# (--diff writes nothing) and into a double-quoted, namespaced Debian VM.
H=samples/hosts/004-msi-b550m-mortar-turing-4fn.json
run --snapshot "$H" snippet 2b:00.0 --alias ua-gpu
run --snapshot "$H" add samples/domains/win11-q35.xml 2b:00.0 --diff
run --snapshot "$H" add samples/domains/debian12.xml 0000:2b:00.0 --diff
run remove samples/domains/debian12.xml 03:00.0 --diff
