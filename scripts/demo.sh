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
