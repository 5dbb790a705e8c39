#!/bin/bash
# Regenerate samples/hosts/*.json from the verbatim listings in
# samples/hosts/listings/*.txt with virt-pci's own converter
# (`virt-pci snapshot --from-listing`). tests/it/samples.rs checks that the
# committed JSON equals a fresh conversion.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/debug/virt-pci}
[ -x "$BIN" ] || cargo build -q
n=0
for l in samples/hosts/listings/*.txt; do
  out="samples/hosts/$(basename "${l%.txt}").json"
  "$BIN" snapshot --from-listing "$l" -o "$out"
  n=$((n + 1))
done
echo "make-samples: wrote $n snapshots in samples/hosts/"
