#!/bin/bash
# Every test: unit and CLI tests with and without libvirt, plus the suites
# that need system tools (corpus, schema, pre-commit) — each script under
# tests/suites/ runs in order and must exit 0.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test
cargo test --features libvirt
for s in tests/suites/*.sh; do
  [ -e "$s" ] || continue
  echo "== $s"
  bash "$s"
done
